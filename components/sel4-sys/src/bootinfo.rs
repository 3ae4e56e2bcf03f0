//! The root task's boot information (`seL4_BootInfo`, `libsel4/include/sel4/bootinfo_types.h`),
//! read field by field from the packed structure the kernel maps for the root task.

use crate::Word;

/// Byte offsets inside the packed `seL4_BootInfo` of seL4 5.0.0 on x86-64: eight words, six
/// slot regions of two words, a byte, two words, one more slot region, then the untyped list.
mod offset {
    pub const NODE_ID: usize = 8;
    pub const IPC_BUFFER: usize = 32;
    pub const EMPTY: usize = 40;
    pub const USER_IMAGE_FRAMES: usize = 72;
    pub const CNODE_SIZE_BITS: usize = 136;
    pub const UNTYPED: usize = 153;
    pub const UNTYPED_LIST: usize = 169;
    /// `seL4_UntypedDesc`: paddr (8), two padding bytes, sizeBits, isDevice.
    pub const UNTYPED_DESC: usize = 12;
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
    /// mapped for the rest of the program.
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
}
