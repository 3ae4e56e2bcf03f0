//! The root task's boot information (`seL4_BootInfo`, `libsel4/include/sel4/bootinfo_types.h`),
//! read field by field from the packed structure the kernel maps for the root task, and the extra
//! boot information after it: chunks of `seL4_BootInfoHeader` (id, length) that start one page
//! after the boot information, `extraLen` bytes in all. Our kernel patch
//! (`build/sel4-patches/0001-x86-hyperv-service.patch`) adds the Hyper-V chunk ([`HyperV`]).

use crate::bootinfo_header::SEL4_BOOTINFO_HEADER_X86_HYPERV;
use crate::{CPtr, Word};

/// Byte offsets inside the packed `seL4_BootInfo` of seL4 5.0.0 on x86-64: eight words, six
/// slot regions of two words, a byte, two words, one more slot region, then the untyped list.
mod offset {
    pub const EXTRA_LEN: usize = 0;
    pub const NODE_ID: usize = 8;
    pub const IPC_BUFFER: usize = 32;
    pub const EMPTY: usize = 40;
    pub const USER_IMAGE_FRAMES: usize = 72;
    pub const CNODE_SIZE_BITS: usize = 136;
    pub const UNTYPED: usize = 153;
    pub const UNTYPED_LIST: usize = 169;
    /// `seL4_UntypedDesc`: paddr (8), two padding bytes, sizeBits, isDevice.
    pub const UNTYPED_DESC: usize = 12;
    /// The extra boot information starts one page after the boot information.
    pub const EXTRA: usize = 4096;
    /// `seL4_BootInfoHeader`: id and length (of the whole chunk, header included), one word each.
    pub const CHUNK_HEADER: usize = 16;
}

/// What the kernel's Hyper-V service handed the root task at boot (the chunk
/// `SEL4_BOOTINFO_HEADER_X86_HYPERV`, `seL4_X86_BootInfo_HyperV`): four capabilities in the root
/// CNode and what the driver needs to know about the SynIC. Present only when the kernel found
/// Hyper-V (CPUID "Hv#1" with the SynIC, hypercall and VP-index MSRs and the right to post
/// messages and signal events) and enabled the SynIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HyperV {
    /// The `X86HyperV` capability (post message, signal event, end of message).
    pub cap: CPtr,
    /// Frame capability (4 KiB, read-write) of the SynIC message page (SIM).
    pub sim: CPtr,
    /// Frame capability (4 KiB, read-write) of the SynIC event flags page (SIEF).
    pub sief: CPtr,
    /// IRQ handler capability of SINT2 (to bind to a notification and acknowledge).
    pub irq_handler: CPtr,
    /// The kernel's number of that IRQ (vector minus 0x20).
    pub irq: Word,
    /// The vector SINT2 is programmed with.
    pub vector: Word,
    /// The boot CPU's VP index (HV_X64_MSR_VP_INDEX): the target VP of channels.
    pub vp_index: Word,
    /// CPUID 0x40000003: EAX (privileges) in the low half, EBX (partition privileges) above.
    pub features: Word,
}

impl HyperV {
    /// Words after the chunk header, in this order.
    const WORDS: usize = 8;

    /// Finds the Hyper-V chunk in the extra boot information `extra` (the `extraLen` bytes after
    /// the boot information page). Walks the chunks from the start; a chunk whose length is
    /// shorter than its header or runs past `extra` ends the walk, so a damaged region yields
    /// `None`, never a read out of bounds.
    pub fn find(extra: &[u8]) -> Option<HyperV> {
        let word = |b: &[u8], at: usize| -> Option<Word> {
            Some(Word::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let mut at = 0;
        while at + offset::CHUNK_HEADER <= extra.len() {
            let id = word(extra, at)?;
            let len = usize::try_from(word(extra, at + 8)?).ok()?;
            if len < offset::CHUNK_HEADER || len > extra.len() - at {
                return None;
            }
            if id == SEL4_BOOTINFO_HEADER_X86_HYPERV {
                let chunk = &extra[at + offset::CHUNK_HEADER..at + len];
                if chunk.len() < Self::WORDS * 8 {
                    return None;
                }
                let w = |i: usize| word(chunk, i * 8);
                return Some(HyperV {
                    cap: w(0)?,
                    sim: w(1)?,
                    sief: w(2)?,
                    irq_handler: w(3)?,
                    irq: w(4)?,
                    vector: w(5)?,
                    vp_index: w(6)?,
                    features: w(7)?,
                });
            }
            at += len;
        }
        None
    }
}

/// A range of slots `[start, end)` of the root task's CNode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRegion {
    /// First slot.
    pub start: Word,
    /// First slot after the region.
    pub end: Word,
}

/// One untyped capability the kernel handed to the root task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UntypedDesc {
    /// Physical address.
    pub paddr: Word,
    /// log2 of its size in bytes.
    pub size_bits: u8,
    /// Device memory (not RAM; cannot back kernel objects).
    pub is_device: bool,
}

/// The boot information page.
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    base: *const u8,
}

impl BootInfo {
    /// Wraps the pointer the kernel passed to the root task in `rdi`.
    ///
    /// # Safety
    ///
    /// `base` is the boot-information page the kernel mapped for this root task, and it stays
    /// mapped for the rest of the program, and so do the `extraLen` bytes of extra boot
    /// information one page after it (the kernel maps them there whenever `extraLen` is not 0).
    pub const unsafe fn from_raw(base: *const u8) -> Self {
        BootInfo { base }
    }

    fn word(&self, off: usize) -> Word {
        // SAFETY: `from_raw`'s contract: the page is mapped; every offset used here lies within
        // the structure (the untyped list is bounded by `untyped()`).
        unsafe { self.base.add(off).cast::<Word>().read_unaligned() }
    }

    fn byte(&self, off: usize) -> u8 {
        // SAFETY: as in `word`.
        unsafe { self.base.add(off).read() }
    }

    fn region(&self, off: usize) -> SlotRegion {
        SlotRegion {
            start: self.word(off),
            end: self.word(off + 8),
        }
    }

    /// The extra boot information: `extraLen` bytes, one page after the boot information.
    pub fn extra(&self) -> &[u8] {
        let len = self.word(offset::EXTRA_LEN) as usize;
        if len == 0 {
            return &[];
        }
        // SAFETY: `from_raw`'s contract: the kernel mapped `extraLen` bytes one page after the
        // boot information, and they stay mapped and unchanged (the kernel never writes them
        // after boot) for the life of `self`.
        unsafe { core::slice::from_raw_parts(self.base.add(offset::EXTRA), len) }
    }

    /// The kernel's Hyper-V service, when the kernel found Hyper-V (see [`HyperV`]).
    pub fn hyperv(&self) -> Option<HyperV> {
        HyperV::find(self.extra())
    }

    /// ID of this node (0 on a uniprocessor kernel).
    pub fn node_id(&self) -> Word {
        self.word(offset::NODE_ID)
    }

    /// Virtual address of the root task's IPC buffer.
    pub fn ipc_buffer(&self) -> Word {
        self.word(offset::IPC_BUFFER)
    }

    /// Empty slots of the root CNode.
    pub fn empty(&self) -> SlotRegion {
        self.region(offset::EMPTY)
    }

    /// Frame capabilities of the root task's own image.
    pub fn user_image_frames(&self) -> SlotRegion {
        self.region(offset::USER_IMAGE_FRAMES)
    }

    /// log2 of the number of slots of the root CNode.
    pub fn cnode_size_bits(&self) -> u8 {
        self.byte(offset::CNODE_SIZE_BITS)
    }

    /// Slots holding untyped capabilities.
    pub fn untyped(&self) -> SlotRegion {
        self.region(offset::UNTYPED)
    }

    /// Description of the `i`-th untyped capability (slot `untyped().start + i`), if there is one.
    pub fn untyped_desc(&self, i: usize) -> Option<UntypedDesc> {
        let r = self.untyped();
        if i as Word >= r.end.saturating_sub(r.start) {
            return None;
        }
        let at = offset::UNTYPED_LIST + i * offset::UNTYPED_DESC;
        Some(UntypedDesc {
            paddr: self.word(at),
            size_bits: self.byte(at + 10),
            is_device: self.byte(at + 11) != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use super::*;

    #[test]
    fn fields_are_read_from_the_packed_offsets_of_the_header() {
        // A page laid out by hand from bootinfo_types.h: 8-byte words, packed.
        let mut page = [0u8; 256];
        let put =
            |p: &mut [u8; 256], at: usize, v: u64| p[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(&mut page, 32, 0x5000); // ipcBuffer
        put(&mut page, 40, 30); // empty.start
        put(&mut page, 48, 4096); // empty.end
        page[136] = 12; // initThreadCNodeSizeBits
        put(&mut page, 153, 20); // untyped.start
        put(&mut page, 161, 22); // untyped.end
        put(&mut page, 169, 0x10_0000); // untypedList[0].paddr
        page[179] = 20; // sizeBits
        put(&mut page, 181, 0xfee0_0000); // untypedList[1].paddr
        page[191] = 12;
        page[192] = 1; // isDevice
        // SAFETY: the array outlives `bi` and is as large as every offset read below.
        let bi = unsafe { BootInfo::from_raw(page.as_ptr()) };
        assert_eq!(bi.ipc_buffer(), 0x5000);
        assert_eq!(
            bi.empty(),
            SlotRegion {
                start: 30,
                end: 4096
            }
        );
        assert_eq!(bi.cnode_size_bits(), 12);
        assert_eq!(
            bi.untyped_desc(0),
            Some(UntypedDesc {
                paddr: 0x10_0000,
                size_bits: 20,
                is_device: false
            })
        );
        assert_eq!(
            bi.untyped_desc(1),
            Some(UntypedDesc {
                paddr: 0xfee0_0000,
                size_bits: 12,
                is_device: true
            })
        );
        assert_eq!(bi.untyped_desc(2), None);
    }

    /// Extra boot information laid out as the patched kernel writes it: optional chunks, then a
    /// padding chunk over the rest of `len` bytes.
    fn extra(chunks: &[(u64, Vec<u64>)], len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, words) in chunks {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&(16 + 8 * words.len() as u64).to_le_bytes());
            for w in words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        let pad = (len - out.len()) as u64;
        out.extend_from_slice(&0u64.to_le_bytes());
        out.extend_from_slice(&pad.to_le_bytes());
        out.resize(len, 0);
        out
    }

    const HV: u64 = SEL4_BOOTINFO_HEADER_X86_HYPERV;

    fn fields() -> Vec<u64> {
        vec![12, 13, 14, 15, 123, 155, 0, 0x2f7f | 0x30 << 32]
    }

    #[test]
    fn the_hyperv_chunk_is_found_after_other_chunks() {
        // A VBE-like chunk (id 1) of an odd length first: the walk follows lengths, not words.
        let vbe = (1, vec![7; 3]);
        let bytes = extra(&[vbe, (HV, fields())], 4096);
        let mut odd = bytes.clone();
        odd.insert(16 + 24, 0xAA); // one extra byte inside the VBE chunk
        odd[8..16].copy_from_slice(&(16u64 + 24 + 1).to_le_bytes());
        let want = HyperV {
            cap: 12,
            sim: 13,
            sief: 14,
            irq_handler: 15,
            irq: 123,
            vector: 155,
            vp_index: 0,
            features: 0x2f7f | 0x30 << 32,
        };
        assert_eq!(HyperV::find(&bytes), Some(want));
        assert_eq!(HyperV::find(&odd[..4096]), Some(want));
    }

    #[test]
    fn no_hyperv_chunk_means_none() {
        assert_eq!(HyperV::find(&[]), None);
        assert_eq!(HyperV::find(&extra(&[], 4096)), None);
        assert_eq!(HyperV::find(&extra(&[(1, vec![0; 40])], 4096)), None);
    }

    #[test]
    fn damaged_chunks_end_the_walk_without_reading_out_of_bounds() {
        let good = extra(&[(HV, fields())], 4096);
        // A chunk too short for the eight words.
        assert_eq!(HyperV::find(&extra(&[(HV, vec![1; 7])], 4096)), None);
        // A length of zero (would loop forever), shorter than a header, or past the end.
        for bad_len in [0u64, 8, 4097, u64::MAX] {
            let mut b = good.clone();
            b[8..16].copy_from_slice(&bad_len.to_le_bytes());
            assert_eq!(HyperV::find(&b), None, "length {bad_len}");
        }
        // The region ends inside the chunk.
        assert_eq!(HyperV::find(&good[..16 + 8 * 7]), None);
        // Every truncation of a valid region is handled.
        for n in 0..good.len() {
            let _ = HyperV::find(&good[..n]);
        }
    }

    #[test]
    fn the_boot_information_leads_to_the_extra_pages() {
        let mut page = vec![0u8; 4096 + 4096];
        page[0..8].copy_from_slice(&4096u64.to_le_bytes()); // extraLen
        page[4096..].copy_from_slice(&extra(&[(HV, fields())], 4096));
        // SAFETY: the vector outlives `bi` and holds the page and `extraLen` bytes after it.
        let bi = unsafe { BootInfo::from_raw(page.as_ptr()) };
        assert_eq!(bi.extra().len(), 4096);
        assert_eq!(bi.hyperv().map(|h| h.irq_handler), Some(15));
        page[0..8].copy_from_slice(&0u64.to_le_bytes());
        // SAFETY: as above; with extraLen 0 nothing after the page is read.
        let bi = unsafe { BootInfo::from_raw(page.as_ptr()) };
        assert_eq!(bi.hyperv(), None);
    }
}
