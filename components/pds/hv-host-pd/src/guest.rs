//! Guest memory as the host PD sees it: the pool region's frames, by frame number.
//!
//! The root task maps the pool region into this PD from the region's own frame capabilities and
//! writes the frame numbers behind the mapping into the PD info page (`pd-info`). The
//! driver's grants are copies of *its* capabilities to the same frames, so its revocations never
//! touch this mapping: the host keeps reading and writing guest memory whatever the driver grants
//! or revokes, as a hypervisor does.

use core::sync::atomic::Ordering;

use hv_host::{GuestMemError, GuestMemory};
use pd_support::info::Info;
use pd_support::page::{PAGE, SharedPage};

/// The pool region as guest memory.
#[derive(Debug)]
pub struct PoolMemory {
    info: Info,
    start: u64,
    end: u64,
}

impl PoolMemory {
    /// Guest memory over the mapping at `start` of `pages` pages, with frame numbers from `info`.
    pub fn new(info: Info, start: usize, pages: usize) -> PoolMemory {
        PoolMemory {
            info,
            start: start as u64,
            end: (start + pages * PAGE) as u64,
        }
    }

    /// Pages of the mapping the info page accounts for.
    pub fn known_pages(&self) -> u64 {
        self.info
            .runs()
            .iter()
            .filter(|r| r.vaddr >= self.start && r.vaddr + r.pages * 4096 <= self.end)
            .map(|r| r.pages)
            .sum()
    }

    fn page(&self, pfn: u64, offset: usize, len: usize) -> Result<SharedPage, GuestMemError> {
        if offset.checked_add(len).is_none_or(|e| e > PAGE) {
            return Err(GuestMemError::OutOfPage { offset, len });
        }
        self.info
            .translate(pfn, self.start, self.end)
            .and_then(|v| SharedPage::at(v as usize))
            .ok_or(GuestMemError::NoSuchPage(pfn))
    }
}

impl GuestMemory for PoolMemory {
    fn read(&mut self, pfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let p = self.page(pfn, offset, buf.len())?;
        p.read_bytes(offset, buf);
        Ok(())
    }

    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) -> Result<(), GuestMemError> {
        let p = self.page(pfn, offset, data.len())?;
        p.write_bytes(offset, data);
        Ok(())
    }

    fn load_u32(&mut self, pfn: u64, offset: usize, order: Ordering) -> Result<u32, GuestMemError> {
        if !offset.is_multiple_of(4) {
            return Err(GuestMemError::OutOfPage { offset, len: 4 });
        }
        Ok(self.page(pfn, offset, 4)?.load_u32(offset, order))
    }

    fn store_u32(
        &mut self,
        pfn: u64,
        offset: usize,
        value: u32,
        order: Ordering,
    ) -> Result<(), GuestMemError> {
        if !offset.is_multiple_of(4) {
            return Err(GuestMemError::OutOfPage { offset, len: 4 });
        }
        self.page(pfn, offset, 4)?.store_u32(offset, value, order);
        Ok(())
    }

    /// One atomic swap (acquire-release whatever `order` says): the guest may set bits in the
    /// word at any moment (the monitor page's pending bits), none may be lost between a load and
    /// a store.
    fn swap_u32(
        &mut self,
        pfn: u64,
        offset: usize,
        value: u32,
        _order: Ordering,
    ) -> Result<u32, GuestMemError> {
        if !offset.is_multiple_of(4) {
            return Err(GuestMemError::OutOfPage { offset, len: 4 });
        }
        Ok(self.page(pfn, offset, 4)?.swap_u32(offset, value))
    }
}
