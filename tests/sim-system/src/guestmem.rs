//! Guest-physical memory as the simulated host sees it: the driver's pool frames, by frame number.
//!
//! The host is the hypervisor, not a PD of the guest: it reaches guest pages by physical frame
//! number, regardless of which guest address space maps them: reads and writes go to the frame's
//! bytes by physical address (`Sim::frame_write`), so a page no guest address space maps (one the
//! driver lent to the host for the balloon) is still the host's to write.

use std::rc::Rc;

use hv_host::{GuestMemError, GuestMemory};
use sel4_sim::FrameId;
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::PageId;

use crate::instance::{PfnMap, SharedKernel};

/// The host's view of guest memory: [`GuestMemory`] over the pool frames.
#[derive(Debug, Clone)]
pub struct GuestMem {
    kernel: SharedKernel,
    by_pfn: Rc<PfnMap>,
}

impl GuestMem {
    /// The view over the pool frames `by_pfn` of `kernel`.
    #[must_use]
    pub fn new(kernel: SharedKernel, by_pfn: Rc<PfnMap>) -> Self {
        Self { kernel, by_pfn }
    }

    fn lookup(
        &self,
        pfn: u64,
        offset: usize,
        len: usize,
    ) -> Result<(PageId, FrameId), GuestMemError> {
        let entry = *self
            .by_pfn
            .get(&pfn)
            .ok_or(GuestMemError::NoSuchPage(pfn))?;
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(entry),
            _ => Err(GuestMemError::OutOfPage { offset, len }),
        }
    }

    /// Copies bytes of frame `pfn` at `offset` into `buf`.
    ///
    /// # Errors
    /// `NoSuchPage` for a frame outside the pool, `OutOfPage` past the page end.
    pub fn read(&self, pfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), GuestMemError> {
        let (_, frame) = self.lookup(pfn, offset, buf.len())?;
        let k = self.kernel.borrow();
        let bytes = k
            .sim
            .frame_bytes(frame)
            .ok_or(GuestMemError::NoSuchPage(pfn))?;
        buf.copy_from_slice(&bytes[offset..offset + buf.len()]);
        Ok(())
    }

    /// Copies `data` into frame `pfn` at `offset`.
    ///
    /// # Errors
    /// As [`GuestMem::read`].
    pub fn write(&self, pfn: u64, offset: usize, data: &[u8]) -> Result<(), GuestMemError> {
        let (_, frame) = self.lookup(pfn, offset, data.len())?;
        if self
            .kernel
            .borrow_mut()
            .sim
            .frame_write(frame, offset, data)
        {
            Ok(())
        } else {
            Err(GuestMemError::NoSuchPage(pfn))
        }
    }
}

impl GuestMemory for GuestMem {
    fn read(&mut self, pfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), GuestMemError> {
        GuestMem::read(self, pfn, offset, buf)
    }

    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) -> Result<(), GuestMemError> {
        GuestMem::write(self, pfn, offset, data)
    }
}
