//! Address spaces: mapping and unmapping 4 KiB frames and the paging structures above them.

use sel4_sys::{Error, Word, invocation as inv};

use crate::{AsidPool, Frame, PageDirectory, PageTable, Pdpt, Rights, VSpace};

/// Default x86 memory attributes (write-back cached).
pub const DEFAULT_ATTRS: Word = 0;
/// Size of a frame.
pub const PAGE_SIZE: usize = 4096;

impl Frame {
    /// Maps the frame at `vaddr` of `vspace`. Fails with `FailedLookup` when a paging structure
    /// above is missing, and with `DeleteFirst` when this capability is already mapped.
    pub fn map(self, vspace: VSpace, vaddr: Word, rights: Rights) -> Result<(), Error> {
        // SAFETY: crate docs: the mapped range is never memory that Rust references.
        unsafe { inv::x86_page_map(self.0, vspace.0, vaddr, rights.0, DEFAULT_ATTRS) }
    }

    /// Removes the mapping made through this capability.
    pub fn unmap(self) -> Result<(), Error> {
        // SAFETY: as for `map`; afterwards accesses to the page fault, which the system handles.
        unsafe { inv::x86_page_unmap(self.0) }
    }

    /// The frame's physical address.
    pub fn paddr(self) -> Result<Word, Error> {
        // SAFETY: a query; no effect.
        unsafe { inv::x86_page_get_address(self.0) }
    }
}

impl PageTable {
    /// Installs the table for the 2 MiB range around `vaddr`.
    pub fn map(self, vspace: VSpace, vaddr: Word) -> Result<(), Error> {
        // SAFETY: an empty table maps nothing yet.
        unsafe { inv::x86_page_table_map(self.0, vspace.0, vaddr, DEFAULT_ATTRS) }
    }
}

impl PageDirectory {
    /// Installs the directory for the 1 GiB range around `vaddr`.
    pub fn map(self, vspace: VSpace, vaddr: Word) -> Result<(), Error> {
        // SAFETY: an empty directory maps nothing yet.
        unsafe { inv::x86_page_directory_map(self.0, vspace.0, vaddr, DEFAULT_ATTRS) }
    }
}

impl Pdpt {
    /// Installs the table for the 512 GiB range around `vaddr`.
    pub fn map(self, vspace: VSpace, vaddr: Word) -> Result<(), Error> {
        // SAFETY: an empty table maps nothing yet.
        unsafe { inv::x86_pdpt_map(self.0, vspace.0, vaddr, DEFAULT_ATTRS) }
    }
}

impl AsidPool {
    /// Gives a new VSpace an address-space id, which it needs before anything is mapped.
    pub fn assign(self, vspace: VSpace) -> Result<(), Error> {
        // SAFETY: no memory effect.
        unsafe { inv::x86_asid_pool_assign(self.0, vspace.0) }
    }
}
