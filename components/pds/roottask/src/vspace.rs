//! Mapping frames into any VSpace, creating the paging structures on the way, and the root
//! task's scratch page for filling frames before they are handed out.

use sel4::{
    Error, Frame, PageDirectory, PageTable, Pdpt, Rights, VSpace, Word, mem::Region,
    object_type as ot, slot,
};

use crate::alloc::Alloc;

/// Where the root task maps a frame to fill it (inside the run-time mapping range).
pub const SCRATCH: usize = 0xBFFF_F000;

/// Paging structures made but found present already (kept for the next need instead of lost).
#[derive(Debug, Default)]
pub struct Spares([Option<Word>; 3]);

/// Maps one paging structure (capability) into a VSpace at an address.
type MapFn = fn(Word, VSpace, Word) -> Result<(), Error>;

/// Makes sure the PDPT, page directory and page table above `vaddr` exist in `vs`.
pub fn tables(a: &mut Alloc, sp: &mut Spares, vs: VSpace, vaddr: Word) -> Result<(), Error> {
    let levels: [(Word, MapFn); 3] = [
        (ot::seL4_X86_PDPTObject, |c, v, a| Pdpt(c).map(v, a)),
        (ot::seL4_X86_PageDirectoryObject, |c, v, a| {
            PageDirectory(c).map(v, a)
        }),
        (ot::seL4_X86_PageTableObject, |c, v, a| {
            PageTable(c).map(v, a)
        }),
    ];
    for (i, (ty, map)) in levels.iter().enumerate() {
        let cap = match sp.0[i].take() {
            Some(c) => c,
            None => a.paging(*ty)?,
        };
        match map(cap, vs, vaddr) {
            Ok(()) => {}
            Err(Error::DeleteFirst) => sp.0[i] = Some(cap), // already there
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Maps a frame, creating missing paging structures.
pub fn map(
    a: &mut Alloc,
    sp: &mut Spares,
    f: Frame,
    vs: VSpace,
    vaddr: Word,
    rights: Rights,
) -> Result<(), Error> {
    match f.map(vs, vaddr, rights) {
        Err(Error::FailedLookup) => {
            tables(a, sp, vs, vaddr)?;
            f.map(vs, vaddr, rights)
        }
        other => other,
    }
}

/// Maps `f` at the scratch address of the root task, lets `fill` write it, and unmaps it.
pub fn fill(
    a: &mut Alloc,
    sp: &mut Spares,
    f: Frame,
    fill: impl FnOnce(&Region),
) -> Result<(), Error> {
    let own = VSpace(slot::seL4_CapInitThreadVSpace);
    map(a, sp, f, own, SCRATCH as Word, Rights::READ_WRITE)?;
    if let Some(r) = Region::new(SCRATCH, 4096) {
        fill(&r);
    }
    f.unmap()
}
