//! Guest-physical memory as the simulated host sees it: the driver's pool frames, by frame number.
//!
//! The host is the hypervisor, not a PD of the guest: it reaches guest pages by physical frame
//! number, regardless of which guest address space maps them. Reads copy the frame's bytes;
//! writes go through the driver's permanent mapping of its pool (`sel4-sim` has no physical write
//! operation), which lands in the same frame and counts as one PD write in the counters.

use core::fmt;
use std::collections::BTreeMap;
use std::rc::Rc;

use sel4_sim::FrameId;
use vmbus_driver::ids::PageId;
use vmbus_driver::kernel::PAGE_SIZE;

use crate::instance::SharedKernel;

/// Why a guest-memory access by the host failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMemFault {
    /// The frame number is not guest memory the host may reach (not a pool page).
    NotGuestMemory(u64),
    /// The access runs past the end of the page.
    OutOfPage {
        /// Offset in the page.
        offset: usize,
        /// Bytes asked for.
        len: usize,
    },
    /// The frame or the driver's mapping of it is gone (a bug of the simulation).
    Unreachable(u64),
}

impl fmt::Display for GuestMemFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotGuestMemory(pfn) => write!(f, "frame {pfn:#x} is not guest memory"),
            Self::OutOfPage { offset, len } => {
                write!(f, "{len} bytes at page offset {offset} run past the page")
            }
            Self::Unreachable(pfn) => write!(f, "frame {pfn:#x} cannot be reached"),
        }
    }
}

impl std::error::Error for GuestMemFault {}

/// The host's view of guest memory.
#[derive(Debug, Clone)]
pub struct GuestMem {
    kernel: SharedKernel,
    by_pfn: Rc<BTreeMap<u64, (PageId, FrameId)>>,
}

impl GuestMem {
    /// The view over the pool frames `by_pfn` of `kernel`.
    #[must_use]
    pub fn new(kernel: SharedKernel, by_pfn: Rc<BTreeMap<u64, (PageId, FrameId)>>) -> Self {
        Self { kernel, by_pfn }
    }

    fn lookup(&self, pfn: u64, offset: usize, len: usize) -> Result<(PageId, FrameId), GuestMemFault> {
        let entry = *self
            .by_pfn
            .get(&pfn)
            .ok_or(GuestMemFault::NotGuestMemory(pfn))?;
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(entry),
            _ => Err(GuestMemFault::OutOfPage { offset, len }),
        }
    }

    /// Copies bytes of frame `pfn` at `offset` into `buf`.
    ///
    /// # Errors
    /// [`GuestMemFault`].
    pub fn read(&self, pfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), GuestMemFault> {
        let (_, frame) = self.lookup(pfn, offset, buf.len())?;
        let k = self.kernel.borrow();
        let bytes = k
            .sim
            .frame_bytes(frame)
            .ok_or(GuestMemFault::Unreachable(pfn))?;
        buf.copy_from_slice(&bytes[offset..offset + buf.len()]);
        Ok(())
    }

    /// Copies `data` into frame `pfn` at `offset`.
    ///
    /// # Errors
    /// [`GuestMemFault`].
    pub fn write(&self, pfn: u64, offset: usize, data: &[u8]) -> Result<(), GuestMemFault> {
        let (page, _) = self.lookup(pfn, offset, data.len())?;
        let mut k = self.kernel.borrow_mut();
        let k = &mut *k;
        let base = k
            .seam
            .pool_vaddr(page)
            .ok_or(GuestMemFault::Unreachable(pfn))?;
        k.sim
            .write(k.seam.driver(), base + offset as u64, data)
            .map_err(|_| GuestMemFault::Unreachable(pfn))
    }
}
