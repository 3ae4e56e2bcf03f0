//! VSpaces: page-granular mappings of frames, `X86_Page_Map` and `X86_Page_Unmap`.
//!
//! Page tables are not modelled: every page-aligned user address below the user top can take a
//! mapping, where seL4 would first need the covering page table mapped (`FailedLookup`).

use std::collections::BTreeMap;

use crate::cap::{Cap, MappedAt};
use crate::error::Error;
use crate::frames::{PAGE_BITS, PAGE_SIZE};
use crate::ids::{FrameId, PdId, SlotRef, VSpaceId};
use crate::rights::{CapRights, VmRights};
use crate::sim::{SLOT_VSPACE, Sim};

/// seL4 x86-64's `PPTR_USER_TOP`: a mapping must end at or below this address.
pub const USER_TOP: u64 = 0x0000_7fff_ffff_ffff;

/// One present page of a VSpace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageMapping {
    /// The frame mapped.
    pub frame: FrameId,
    /// The rights user accesses have.
    pub rights: VmRights,
    /// The frame capability the mapping was made with; `None` once that capability was deleted
    /// without removing the mapping (only with the seL4 5.0.0 quirk).
    pub cap: Option<SlotRef>,
}

/// An address space.
#[derive(Debug)]
pub(crate) struct VSpaceObj {
    /// The PD that runs in this address space.
    pub owner: PdId,
    /// Present pages by virtual page number.
    pub pages: BTreeMap<u64, PageMapping>,
}

impl VSpaceObj {
    pub fn new(owner: PdId) -> Self {
        Self {
            owner,
            pages: BTreeMap::new(),
        }
    }
}

impl Sim {
    /// `X86_Page_Map`: maps the frame capability `frame` at `vaddr` of the VSpace that the
    /// capability `vspace` names, with the capability's rights masked by `rights` (seL4 silently
    /// downgrades; a mask without read leaves a kernel-only mapping that every access faults on).
    ///
    /// # Errors
    /// Checked in seL4 5.0's order: `InvalidCapability` (not a frame, frame capability already
    /// mapped, not a VSpace capability), `InvalidArgument` (mapping would pass [`USER_TOP`]),
    /// `AlignmentError` (vaddr not page aligned), `DeleteFirst` (the page is already mapped);
    /// lookup errors.
    pub fn map(
        &mut self,
        frame: SlotRef,
        vspace: SlotRef,
        vaddr: u64,
        rights: CapRights,
    ) -> Result<(), Error> {
        match self.map_inner(frame, vspace, vaddr, rights) {
            Ok(()) => {
                self.counters.maps += 1;
                Ok(())
            }
            Err(e) => self.refuse(e),
        }
    }

    fn map_inner(
        &mut self,
        frame: SlotRef,
        vspace: SlotRef,
        vaddr: u64,
        rights: CapRights,
    ) -> Result<(), Error> {
        let Some(Cap::Frame {
            id,
            rights: cap_rights,
            mapped,
        }) = self.slot(frame)?.cap
        else {
            return Err(Error::InvalidCapability);
        };
        if mapped.is_some() {
            return Err(Error::InvalidCapability);
        }
        let Some(Cap::VSpace { id: vs }) = self.slot(vspace)?.cap else {
            return Err(Error::InvalidCapability);
        };
        if vaddr
            .checked_add(PAGE_SIZE as u64)
            .is_none_or(|top| top > USER_TOP)
        {
            return Err(Error::InvalidArgument);
        }
        if !vaddr.is_multiple_of(PAGE_SIZE as u64) {
            return Err(Error::AlignmentError);
        }
        let vm_rights = cap_rights.mask(rights);
        let space = self
            .vspaces
            .get_mut(vs.0 as usize)
            .ok_or(Error::InvalidCapability)?;
        let vpn = vaddr >> PAGE_BITS;
        if space.pages.contains_key(&vpn) {
            return Err(Error::DeleteFirst);
        }
        space.pages.insert(
            vpn,
            PageMapping {
                frame: id,
                rights: vm_rights,
                cap: Some(frame),
            },
        );
        let at = MappedAt { vspace: vs, vaddr };
        self.slot_mut(frame)?.cap = Some(Cap::Frame {
            id,
            rights: cap_rights,
            mapped: Some(at),
        });
        Ok(())
    }

    /// Builder: maps `frame` (a slot of `pd`) into `pd`'s own VSpace at `vaddr`, using the VSpace
    /// capability in [`SLOT_VSPACE`].
    ///
    /// # Errors
    /// As [`Sim::map`].
    pub fn map_own(
        &mut self,
        pd: PdId,
        frame: crate::CapPtr,
        vaddr: u64,
        rights: CapRights,
    ) -> Result<(), Error> {
        self.map(
            SlotRef::new(pd, frame),
            SlotRef::new(pd, SLOT_VSPACE),
            vaddr,
            rights,
        )
    }

    /// `X86_Page_Unmap`: removes the mapping made with frame capability `frame`; an unmapped
    /// frame capability is a successful no-op, as in seL4.
    ///
    /// # Errors
    /// `InvalidCapability` if the slot holds no frame capability; lookup errors.
    pub fn unmap(&mut self, frame: SlotRef) -> Result<(), Error> {
        let cap = match self.slot(frame) {
            Ok(s) => s.cap,
            Err(e) => return self.refuse(e),
        };
        let Some(Cap::Frame { id, rights, mapped }) = cap else {
            return self.refuse(Error::InvalidCapability);
        };
        if let Some(at) = mapped {
            self.remove_mapping(at.vspace, at.vaddr);
            self.set_cap(
                frame,
                Some(Cap::Frame {
                    id,
                    rights,
                    mapped: None,
                }),
            );
        }
        self.counters.unmap_calls += 1;
        Ok(())
    }

    /// The PD that runs in VSpace `vs`.
    #[must_use]
    pub fn vspace_owner(&self, vs: VSpaceId) -> Option<PdId> {
        self.vspaces.get(vs.0 as usize).map(|s| s.owner)
    }

    /// The mapping at the page containing `vaddr` of `pd`'s VSpace, if any.
    ///
    /// # Errors
    /// [`Error::NoSuchPd`].
    pub fn mapping(&self, pd: PdId, vaddr: u64) -> Result<Option<PageMapping>, Error> {
        let vs = self.pd(pd)?.vspace;
        Ok(self
            .vspaces
            .get(vs.0 as usize)
            .and_then(|s| s.pages.get(&(vaddr >> PAGE_BITS)).copied()))
    }

    /// Number of present pages in `pd`'s VSpace.
    ///
    /// # Errors
    /// [`Error::NoSuchPd`].
    pub fn mapped_page_count(&self, pd: PdId) -> Result<usize, Error> {
        let vs = self.pd(pd)?.vspace;
        Ok(self.vspaces.get(vs.0 as usize).map_or(0, |s| s.pages.len()))
    }

    /// Removes the page at `vaddr` of `vs` (the capability side is the caller's business).
    pub(crate) fn remove_mapping(&mut self, vs: VSpaceId, vaddr: u64) {
        if let Some(space) = self.vspaces.get_mut(vs.0 as usize)
            && let Some(m) = space.pages.remove(&(vaddr >> PAGE_BITS))
        {
            self.counters.unmaps += 1;
            if m.cap.is_none()
                && let Some(f) = self.frame_obj_mut(m.frame)
            {
                f.orphan_maps = f.orphan_maps.saturating_sub(1);
            }
        }
    }

    /// Leaves the page at `vaddr` of `vs` mapped although its capability is being deleted (the
    /// seL4 5.0.0 behaviour); the frame stays alive for the stale mapping.
    pub(crate) fn orphan_mapping(&mut self, vs: VSpaceId, vaddr: u64, frame: FrameId) {
        if let Some(space) = self.vspaces.get_mut(vs.0 as usize)
            && let Some(m) = space.pages.get_mut(&(vaddr >> PAGE_BITS))
        {
            m.cap = None;
            if let Some(f) = self.frame_obj_mut(frame) {
                f.orphan_maps += 1;
            }
        }
    }

    /// Translates one page access of `pd` (no side effects).
    pub(crate) fn translate(
        &self,
        pd: PdId,
        vaddr: u64,
        write: bool,
    ) -> Result<(FrameId, usize), bool> {
        let Ok(p) = self.pd(pd) else {
            return Err(false);
        };
        let Some(m) = self
            .vspaces
            .get(p.vspace.0 as usize)
            .and_then(|s| s.pages.get(&(vaddr >> PAGE_BITS)))
        else {
            return Err(false);
        };
        let allowed = if write {
            m.rights.can_write()
        } else {
            m.rights.can_read()
        };
        if !allowed || self.frame_obj(m.frame).is_none() {
            return Err(true);
        }
        Ok((m.frame, (vaddr % PAGE_SIZE as u64) as usize))
    }
}
