//! The driver's `Kernel` seam on the simulated system: `sel4-sim`'s seam for the pool, grants,
//! revocation, notifications and the interrupt, plus the clients' control pages, which the driver
//! reaches through its own mappings of them.

use sel4_sim::{MemError, SimKernel};
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::{ClientId, PageId};
use vmbus_driver::kernel::{Kernel, KernelError};

use crate::instance::ClientInfo;

/// seL4's `FailedLookup` code: what a driver access through a missing mapping would amount to.
const FAILED_LOOKUP: u32 = 6;

/// The driver PD's view of the kernel for one call into the driver: borrow the shared kernel,
/// wrap it, call the driver, drop it.
#[derive(Debug)]
pub struct DriverKernel<'a> {
    kernel: &'a mut SimKernel,
    clients: &'a [ClientInfo],
}

impl<'a> DriverKernel<'a> {
    /// Wraps the simulated kernel for the driver, with the clients' control-page placement.
    pub fn new(kernel: &'a mut SimKernel, clients: &'a [ClientInfo]) -> Self {
        Self { kernel, clients }
    }

    /// The wrapped kernel (for observers).
    #[must_use]
    pub fn sim_kernel(&self) -> &SimKernel {
        self.kernel
    }

    fn control_vaddr(
        &self,
        client: ClientId,
        offset: usize,
        len: usize,
    ) -> Result<u64, KernelError> {
        let c = self
            .clients
            .get(usize::from(client.0))
            .ok_or(KernelError::NoSuchClient)?;
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(c.driver_control_vaddr + offset as u64),
            _ => Err(KernelError::OutOfBounds),
        }
    }

    /// Reads `buf.len()` bytes at `offset` of `client`'s control page, through the driver's
    /// mapping (no side effect on the simulation).
    ///
    /// # Errors
    /// `NoSuchClient`, `OutOfBounds` past the page, `Refused` if the mapping is gone.
    pub fn control_read(
        &self,
        client: ClientId,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), KernelError> {
        let vaddr = self.control_vaddr(client, offset, buf.len())?;
        self.kernel
            .sim
            .peek(self.kernel.seam.driver(), vaddr, buf)
            .map_err(|_| KernelError::Refused(FAILED_LOOKUP))
    }

    /// Writes `data` at `offset` of `client`'s control page through the driver's mapping.
    ///
    /// # Errors
    /// As [`DriverKernel::control_read`].
    pub fn control_write(
        &mut self,
        client: ClientId,
        offset: usize,
        data: &[u8],
    ) -> Result<(), KernelError> {
        let vaddr = self.control_vaddr(client, offset, data.len())?;
        let driver = self.kernel.seam.driver();
        self.kernel
            .sim
            .write(driver, vaddr, data)
            .map_err(|e: MemError| match e {
                MemError::Fault(_) | MemError::Stopped(_) | MemError::NoSuchPd(_) => {
                    KernelError::Refused(FAILED_LOOKUP)
                }
            })
    }
}

impl Kernel for DriverKernel<'_> {
    fn take_page(&mut self) -> Result<PageId, KernelError> {
        self.kernel.take_page()
    }
    fn return_page(&mut self, page: PageId) -> Result<(), KernelError> {
        self.kernel.return_page(page)
    }
    fn page_frame(&self, page: PageId) -> Result<u64, KernelError> {
        self.kernel.page_frame(page)
    }
    fn write_page(&mut self, page: PageId, offset: usize, data: &[u8]) -> Result<(), KernelError> {
        self.kernel.write_page(page, offset, data)
    }
    fn read_page(&self, page: PageId, offset: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        self.kernel.read_page(page, offset, buf)
    }
    fn zero_page(&mut self, page: PageId) -> Result<(), KernelError> {
        self.kernel.zero_page(page)
    }
    fn or_page_u32(&mut self, page: PageId, offset: usize, bits: u32) -> Result<(), KernelError> {
        self.kernel.or_page_u32(page, offset, bits)
    }
    fn grant(
        &mut self,
        page: PageId,
        client: ClientId,
        window_page: usize,
    ) -> Result<(), KernelError> {
        self.kernel.grant(page, client, window_page)
    }
    fn revoke(&mut self, page: PageId) -> Result<(), KernelError> {
        self.kernel.revoke(page)
    }
    fn pool_pages(&self) -> usize {
        self.kernel.pool_pages()
    }
    fn free_pages(&self) -> usize {
        self.kernel.free_pages()
    }
    fn unmap_own(&mut self, page: PageId) -> Result<(), KernelError> {
        self.kernel.unmap_own(page)
    }
    fn map_own(&mut self, page: PageId) -> Result<(), KernelError> {
        self.kernel.map_own(page)
    }
    fn notify(&mut self, client: ClientId) -> Result<(), KernelError> {
        self.kernel.notify(client)
    }
    fn ack_irq(&mut self) -> Result<(), KernelError> {
        self.kernel.ack_irq()
    }
    fn control_read(
        &self,
        client: ClientId,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), KernelError> {
        DriverKernel::control_read(self, client, offset, buf)
    }
    fn control_write(
        &mut self,
        client: ClientId,
        offset: usize,
        data: &[u8],
    ) -> Result<(), KernelError> {
        DriverKernel::control_write(self, client, offset, data)
    }
}
