//! The `Kernel` seam: the capability operations the driver needs from seL4
//! (docs/architecture.md#the-seams).
//!
//! The driver PD holds the original frame capability of every pool page. Granting a page to a
//! client copies that capability and maps the copy into the client's window; revoking the original
//! deletes every copy and with them every client mapping. The seL4 implementation lives in
//! `components/`, the simulated one in `tests/`.

use core::fmt;

use crate::ids::{ClientId, PageId};

/// Why a kernel operation failed. None of these is caused by peer data: they are driver bugs or
/// resource exhaustion, and the driver treats them as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelError {
    /// The pool has no free page.
    PoolEmpty,
    /// The page id names no page of the pool.
    NoSuchPage,
    /// The client id names no client of the system.
    NoSuchClient,
    /// The window page index is outside the client's window.
    OutsideWindow,
    /// The window page is already mapped.
    WindowSlotBusy,
    /// An access to page memory went past the end of the page.
    OutOfBounds,
    /// The kernel refused the operation with this error code.
    Refused(u32),
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PoolEmpty => f.write_str("ring-page pool is empty"),
            Self::NoSuchPage => f.write_str("no such pool page"),
            Self::NoSuchClient => f.write_str("no such client"),
            Self::OutsideWindow => f.write_str("window page outside the client's window"),
            Self::WindowSlotBusy => f.write_str("window page already mapped"),
            Self::OutOfBounds => f.write_str("access past the end of a page"),
            Self::Refused(code) => write!(f, "kernel refused the operation (error {code})"),
        }
    }
}

/// Capability operations of the driver PD.
pub trait Kernel {
    /// Takes a free page from the pool. Pool pages are zero and mapped nowhere but in the driver.
    fn take_page(&mut self) -> Result<PageId, KernelError>;
    /// Returns a page to the pool. The caller has revoked it and zeroed it.
    fn return_page(&mut self, page: PageId) -> Result<(), KernelError>;
    /// Guest-physical frame number (4 KiB units) of a pool page, for GPADLs.
    fn page_frame(&self, page: PageId) -> Result<u64, KernelError>;
    /// Copies `data` into the driver's own mapping of `page` at `offset`.
    fn write_page(&mut self, page: PageId, offset: usize, data: &[u8]) -> Result<(), KernelError>;
    /// Copies bytes out of the driver's own mapping of `page` at `offset`.
    fn read_page(&self, page: PageId, offset: usize, buf: &mut [u8]) -> Result<(), KernelError>;
    /// Fills `page` with zeroes.
    fn zero_page(&mut self, page: PageId) -> Result<(), KernelError>;
    /// Atomically ORs `bits` into the little-endian u32 at `offset` (4-byte aligned) of the
    /// driver's own mapping of `page`: a locked read-modify-write that a host (or hypervisor)
    /// updating the same word concurrently cannot lose (the monitor page's pending bits,
    /// docs/protocol.md#monitor-pages).
    ///
    /// The default is a read followed by a write, exact only where nothing else writes the page
    /// meanwhile (single-threaded test seams); the seL4 seam and the simulated seam override it.
    fn or_page_u32(&mut self, page: PageId, offset: usize, bits: u32) -> Result<(), KernelError> {
        if !offset.is_multiple_of(4) {
            return Err(KernelError::OutOfBounds);
        }
        let mut b = [0u8; 4];
        self.read_page(page, offset, &mut b)?;
        let v = u32::from_le_bytes(b) | bits;
        self.write_page(page, offset, &v.to_le_bytes())
    }
    /// Maps a copy of the page's original capability at page `window_page` of the client's
    /// channel window (read-write, uncached attributes as the kernel's default). The seam may
    /// reuse a copy it kept from an earlier grant of the page.
    fn grant(
        &mut self,
        page: PageId,
        client: ClientId,
        window_page: usize,
    ) -> Result<(), KernelError>;
    /// Revokes the page: every client mapping of it is gone when this returns, and no client
    /// holds a capability to it (the seam may keep unmapped copies in the driver's own CSpace
    /// for the next grant). Revoking a page that is mapped nowhere is a no-op.
    fn revoke(&mut self, page: PageId) -> Result<(), KernelError>;
    /// Pages in the pool, free or not (for the balloon's reserve and `MemoryInfo`).
    fn pool_pages(&self) -> usize;
    /// Pages free in the pool now (taken by neither a channel nor the balloon, nor kept out).
    fn free_pages(&self) -> usize;
    /// Removes the driver's own mapping of a taken `page`, so that nothing in the guest can
    /// touch it while the host owns it (a balloon lend; the caller revoked it first). Until
    /// [`Kernel::map_own`] restores the mapping, `write_page`, `read_page` and `zero_page` of
    /// the page fail and `return_page` refuses it. Unmapping an unmapped page is a no-op.
    fn unmap_own(&mut self, page: PageId) -> Result<(), KernelError>;
    /// Maps `page` into the driver again, at the address it had, read-write (a balloon
    /// reclaim; the caller zeroes it next). Mapping a mapped page is a no-op.
    fn map_own(&mut self, page: PageId) -> Result<(), KernelError>;
    /// Signals the client's notification from the driver.
    fn notify(&mut self, client: ClientId) -> Result<(), KernelError>;
    /// Acknowledges the VMBus interrupt so the next one can be delivered.
    fn ack_irq(&mut self) -> Result<(), KernelError>;
    /// Copies bytes out of `client`'s control page (the 4 KiB page shared by the driver and that
    /// client only, layout in [`crate::control`]) at `offset`.
    ///
    /// The default refuses with `NoSuchClient`, for seams that serve no clients (unit tests of
    /// other parts); every seam the driver core runs on overrides it.
    fn control_read(
        &self,
        client: ClientId,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), KernelError> {
        let _ = (client, offset, buf);
        Err(KernelError::NoSuchClient)
    }
    /// Copies `data` into `client`'s control page at `offset`. Default as for
    /// [`Kernel::control_read`].
    fn control_write(
        &mut self,
        client: ClientId,
        offset: usize,
        data: &[u8],
    ) -> Result<(), KernelError> {
        let _ = (client, offset, data);
        Err(KernelError::NoSuchClient)
    }
}
