//! The driver's `Kernel` seam (docs/architecture.md#the-seams) implemented on the simulated kernel.
//!
//! The driver PD holds the original capability of every pool page, mapped in its own VSpace at
//! `pool_base + page * 4096`; its reads and writes of pages go through that mapping. Granting a
//! page copies the original into a free slot of the driver's CSpace and maps the copy, through
//! the driver's copy of the client's VSpace capability, at `window_base + window_page * 4096` of
//! the client. Revoking a page unmaps each copy (`Page_Unmap`): the client mappings are gone,
//! and the copies stay in the driver's CSpace, unmapped, for the page's next grant, which then
//! only maps one (no client ever holds a capability, so an unmapped copy in the driver's
//! CSpace gives no client a way back to the page). Rescind to reuse costs two invocations per
//! page (unmap, map) where copy, map, unmap, revoke took four, and it does not depend on what
//! a delete or a revoke does to mappings (seL4 5.0.0 on x86 leaves them unless the capability
//! is the frame's last).
//!
//! A page lent to the host (the balloon) loses the driver's own mapping as well
//! ([`DriverSeam::unmap_own`], `X86_Page_Unmap` of the original); until
//! [`DriverSeam::map_own`] maps it back, every access the driver makes to it through the seam is
//! refused with `FailedLookup`'s code and counted ([`DriverSeam::unmapped_accesses`]), so tests
//! can prove the driver never touches memory the host owns.

use vmbus_driver::ids::{ClientId, PageId};
use vmbus_driver::kernel::{Kernel, KernelError};

use crate::error::Error;
use crate::frames::PAGE_SIZE;
use crate::ids::{CapPtr, PdId, SlotRef};
use crate::rights::CapRights;
use crate::sim::{SLOT_VSPACE, Sim};
use crate::vspace::USER_TOP;

/// One client PD as the driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSetup {
    /// The client's number in the system description.
    pub id: ClientId,
    /// The client PD.
    pub pd: PdId,
    /// First virtual address of the client's channel window (page aligned).
    pub window_base: u64,
    /// Pages in the window.
    pub window_pages: usize,
    /// Badge the driver's notification capability for this client carries.
    pub badge: u64,
}

/// The VMBus interrupt as the driver receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IrqSetup {
    /// Interrupt number.
    pub irq: u32,
    /// Badge the interrupt signals on the driver's notification.
    pub badge: u64,
}

/// What to build for the driver PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverSetup {
    /// The driver PD (created by the caller).
    pub driver: PdId,
    /// Number of pool pages.
    pub pool_pages: u32,
    /// Where the pool is mapped in the driver (page aligned).
    pub pool_base: u64,
    /// The clients.
    pub clients: Vec<ClientSetup>,
    /// The interrupt, if the driver takes one.
    pub irq: Option<IrqSetup>,
}

/// A client as wired for the driver: the setup plus the capabilities created for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLink {
    /// What was asked for.
    pub setup: ClientSetup,
    /// Driver slot: copy of the client's VSpace capability (Microkit's `cap_vspace`).
    pub vspace_cap: CapPtr,
    /// Driver slot: badged, write-only capability to the client's notification.
    pub notify_cap: CapPtr,
    /// Client slot: the client's own capability to its notification (it waits on this one).
    pub client_ntfn: CapPtr,
    /// Which pool page each window page holds.
    window: Vec<Option<PageId>>,
}

impl ClientLink {
    /// Virtual address of window page `window_page` in the client.
    #[must_use]
    pub fn window_vaddr(&self, window_page: usize) -> u64 {
        self.setup.window_base + (window_page * PAGE_SIZE) as u64
    }

    /// The pool page granted at `window_page`, if any.
    #[must_use]
    pub fn window_page(&self, window_page: usize) -> Option<PageId> {
        self.window.get(window_page).copied().flatten()
    }
}

/// One granted copy of a pool page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Grant {
    client: usize,
    window_page: usize,
    copy: CapPtr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolPage {
    original: CapPtr,
    vaddr: u64,
    taken: bool,
    /// Whether the driver's own mapping of the page is in place (false while lent).
    own_mapped: bool,
    grants: Vec<Grant>,
    /// Copies of the original kept unmapped in the driver's CSpace for the next grant.
    spares: Vec<CapPtr>,
}

/// The driver PD's side of the seam: its pool, its clients, its interrupt. Kernel operations
/// take the [`Sim`] explicitly; [`DriverView`] and [`SimKernel`] bundle the two as a [`Kernel`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverSeam {
    driver: PdId,
    pages: Vec<PoolPage>,
    /// Free pages, taken from the end (built so that page 0 goes first).
    free: Vec<PageId>,
    clients: Vec<ClientLink>,
    irq_handler: Option<CapPtr>,
    driver_ntfn: Option<CapPtr>,
    /// Accesses the driver tried through its removed mapping of a page (see the module doc).
    unmapped_accesses: std::cell::Cell<u64>,
}

fn refused(e: Error) -> KernelError {
    KernelError::Refused(e.code())
}

impl DriverSeam {
    /// Builds the driver's pool (frames retyped into its CSpace and mapped read-write at
    /// `pool_base`), a copy of each client's VSpace capability, a notification per client (the
    /// client holds the original, the driver a badged write-only mint), and the IRQ handler bound
    /// to a notification of the driver's.
    ///
    /// # Errors
    /// `AlignmentError` for an unaligned pool base or window, `InvalidArgument` for a window or
    /// pool past the user top or a client id given twice, and any error of the kernel operations.
    pub fn new(sim: &mut Sim, setup: &DriverSetup) -> Result<Self, Error> {
        let d = setup.driver;
        sim.pd(d)?;
        let page = PAGE_SIZE as u64;
        let check_range = |base: u64, pages: u64| -> Result<(), Error> {
            if !base.is_multiple_of(page) {
                return Err(Error::AlignmentError);
            }
            match pages
                .checked_mul(page)
                .and_then(|len| base.checked_add(len))
            {
                Some(end) if end <= USER_TOP => Ok(()),
                _ => Err(Error::InvalidArgument),
            }
        };
        // Validate the whole layout before any kernel operation, so a refused setup leaves the
        // simulation untouched.
        check_range(setup.pool_base, u64::from(setup.pool_pages))?;
        for (i, c) in setup.clients.iter().enumerate() {
            sim.pd(c.pd)?;
            check_range(c.window_base, c.window_pages as u64)?;
            if setup.clients[..i].iter().any(|o| o.id == c.id) {
                return Err(Error::InvalidArgument);
            }
        }
        let mut pages = Vec::with_capacity(setup.pool_pages as usize);
        if setup.pool_pages > 0 {
            for (i, cap) in sim
                .create_frames(d, setup.pool_pages)?
                .into_iter()
                .enumerate()
            {
                let vaddr = setup.pool_base + i as u64 * page;
                sim.map_own(d, cap, vaddr, CapRights::READ_WRITE)?;
                pages.push(PoolPage {
                    original: cap,
                    vaddr,
                    taken: false,
                    own_mapped: true,
                    grants: Vec::new(),
                    spares: Vec::new(),
                });
            }
        }
        let mut clients = Vec::with_capacity(setup.clients.len());
        for c in &setup.clients {
            let vspace_cap =
                sim.copy_to_free(SlotRef::new(c.pd, SLOT_VSPACE), d, CapRights::ALL)?;
            let client_ntfn = sim.create_notification(c.pd)?;
            let notify_cap = sim.mint_to_free(
                SlotRef::new(c.pd, client_ntfn),
                d,
                CapRights::WRITE,
                c.badge,
            )?;
            clients.push(ClientLink {
                setup: *c,
                vspace_cap,
                notify_cap,
                client_ntfn,
                window: vec![None; c.window_pages],
            });
        }
        let (irq_handler, driver_ntfn) = match setup.irq {
            Some(irq) => {
                let ntfn = sim.create_notification(d)?;
                let badged =
                    sim.mint_to_free(SlotRef::new(d, ntfn), d, CapRights::WRITE, irq.badge)?;
                let handler = sim.create_irq_handler(d, irq.irq)?;
                sim.irq_set_notification(SlotRef::new(d, handler), SlotRef::new(d, badged))?;
                (Some(handler), Some(ntfn))
            }
            None => (None, None),
        };
        let free = (0..setup.pool_pages).rev().map(PageId).collect();
        Ok(Self {
            driver: d,
            pages,
            free,
            clients,
            irq_handler,
            driver_ntfn,
            unmapped_accesses: std::cell::Cell::new(0),
        })
    }

    /// The driver PD.
    #[must_use]
    pub const fn driver(&self) -> PdId {
        self.driver
    }

    /// The wiring of client `id`.
    #[must_use]
    pub fn client(&self, id: ClientId) -> Option<&ClientLink> {
        self.clients.iter().find(|c| c.setup.id == id)
    }

    /// Driver slot of the original capability of `page`.
    #[must_use]
    pub fn original_cap(&self, page: PageId) -> Option<CapPtr> {
        self.pages.get(page.0 as usize).map(|p| p.original)
    }

    /// Where `page` is mapped in the driver.
    #[must_use]
    pub fn pool_vaddr(&self, page: PageId) -> Option<u64> {
        self.pages.get(page.0 as usize).map(|p| p.vaddr)
    }

    /// Unmapped copies the seam keeps in the driver's CSpace for the next grants (at most one
    /// per page and simultaneous mapping that page ever had).
    #[must_use]
    pub fn spare_copies(&self) -> usize {
        self.pages.iter().map(|p| p.spares.len()).sum()
    }

    /// Number of client mappings `page` has.
    #[must_use]
    pub fn grant_count(&self, page: PageId) -> usize {
        self.pages
            .get(page.0 as usize)
            .map_or(0, |p| p.grants.len())
    }

    /// Number of pages in the free pool.
    #[must_use]
    pub fn free_pages(&self) -> usize {
        self.free.len()
    }

    /// Number of pages in the pool.
    #[must_use]
    pub fn pool_pages(&self) -> usize {
        self.pages.len()
    }

    /// Whether the driver's own mapping of `page` is removed (the page is lent to the host).
    #[must_use]
    pub fn own_unmapped(&self, page: PageId) -> bool {
        self.pages
            .get(page.0 as usize)
            .is_some_and(|p| !p.own_mapped)
    }

    /// Accesses (write, read, zero, return) the driver tried on a page whose own mapping was
    /// removed: each refused, none reached the page.
    #[must_use]
    pub fn unmapped_accesses(&self) -> u64 {
        self.unmapped_accesses.get()
    }

    /// Refuses an access to a page whose own mapping is removed, counting it.
    fn check_own_mapped(&self, p: &PoolPage) -> Result<(), KernelError> {
        if p.own_mapped {
            return Ok(());
        }
        self.unmapped_accesses.set(self.unmapped_accesses.get() + 1);
        Err(refused(Error::FailedLookup))
    }

    /// [`Kernel::unmap_own`]: `X86_Page_Unmap` of the page's original capability, which holds
    /// the driver's mapping. A page already unmapped is a no-op.
    ///
    /// # Errors
    /// `NoSuchPage`, `Refused`.
    pub fn unmap_own(&mut self, sim: &mut Sim, page: PageId) -> Result<(), KernelError> {
        let p = self.page(page)?;
        if !p.own_mapped {
            return Ok(());
        }
        let original = p.original;
        sim.unmap(SlotRef::new(self.driver, original))
            .map_err(refused)?;
        if let Some(p) = self.pages.get_mut(page.0 as usize) {
            p.own_mapped = false;
        }
        Ok(())
    }

    /// [`Kernel::map_own`]: maps the original capability again at the page's pool address
    /// through the driver's own VSpace capability. A mapped page is a no-op.
    ///
    /// # Errors
    /// `NoSuchPage`, `Refused`.
    pub fn map_own(&mut self, sim: &mut Sim, page: PageId) -> Result<(), KernelError> {
        let p = self.page(page)?;
        if p.own_mapped {
            return Ok(());
        }
        let (original, vaddr) = (p.original, p.vaddr);
        sim.map_own(self.driver, original, vaddr, CapRights::READ_WRITE)
            .map_err(refused)?;
        if let Some(p) = self.pages.get_mut(page.0 as usize) {
            p.own_mapped = true;
        }
        Ok(())
    }

    /// Driver slot of the notification the interrupt signals (the driver waits on it).
    #[must_use]
    pub const fn driver_notification(&self) -> Option<CapPtr> {
        self.driver_ntfn
    }

    fn page(&self, page: PageId) -> Result<&PoolPage, KernelError> {
        self.pages
            .get(page.0 as usize)
            .ok_or(KernelError::NoSuchPage)
    }

    fn client_index(&self, id: ClientId) -> Result<usize, KernelError> {
        self.clients
            .iter()
            .position(|c| c.setup.id == id)
            .ok_or(KernelError::NoSuchClient)
    }

    /// [`Kernel::take_page`].
    ///
    /// # Errors
    /// `PoolEmpty`.
    pub fn take_page(&mut self) -> Result<PageId, KernelError> {
        let page = self.free.pop().ok_or(KernelError::PoolEmpty)?;
        if let Some(p) = self.pages.get_mut(page.0 as usize) {
            p.taken = true;
        }
        Ok(page)
    }

    /// [`Kernel::return_page`]; the seam checks the caller's promise: a page still granted is
    /// refused with `RevokeFirst`'s code, a page not taken or not zero with `IllegalOperation`'s.
    ///
    /// # Errors
    /// `NoSuchPage`, `Refused`.
    pub fn return_page(&mut self, sim: &Sim, page: PageId) -> Result<(), KernelError> {
        let p = self.page(page)?;
        if !p.taken {
            return Err(refused(Error::IllegalOperation));
        }
        self.check_own_mapped(p)?;
        if !p.grants.is_empty() {
            return Err(refused(Error::RevokeFirst));
        }
        let mut buf = [0u8; PAGE_SIZE];
        sim.peek(self.driver, p.vaddr, &mut buf)
            .map_err(|_| refused(Error::FailedLookup))?;
        if buf.iter().any(|&b| b != 0) {
            return Err(refused(Error::IllegalOperation));
        }
        if let Some(p) = self.pages.get_mut(page.0 as usize) {
            p.taken = false;
        }
        self.free.push(page);
        Ok(())
    }

    /// [`Kernel::page_frame`]: the frame number of the page's simulated physical address.
    ///
    /// # Errors
    /// `NoSuchPage`, `Refused`.
    pub fn page_frame(&self, sim: &Sim, page: PageId) -> Result<u64, KernelError> {
        let p = self.page(page)?;
        let paddr = sim
            .frame_paddr(SlotRef::new(self.driver, p.original))
            .map_err(refused)?;
        Ok(paddr / PAGE_SIZE as u64)
    }

    fn span(&self, page: PageId, offset: usize, len: usize) -> Result<u64, KernelError> {
        let p = self.page(page)?;
        self.check_own_mapped(p)?;
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(p.vaddr + offset as u64),
            _ => Err(KernelError::OutOfBounds),
        }
    }

    /// [`Kernel::write_page`], through the driver's own mapping.
    ///
    /// # Errors
    /// `NoSuchPage`, `OutOfBounds`, `Refused` if the driver's mapping faults.
    pub fn write_page(
        &mut self,
        sim: &mut Sim,
        page: PageId,
        offset: usize,
        data: &[u8],
    ) -> Result<(), KernelError> {
        let vaddr = self.span(page, offset, data.len())?;
        sim.write(self.driver, vaddr, data)
            .map_err(|_| refused(Error::FailedLookup))
    }

    /// [`Kernel::read_page`], through the driver's own mapping.
    ///
    /// # Errors
    /// `NoSuchPage`, `OutOfBounds`, `Refused` if the driver's mapping faults.
    pub fn read_page(
        &self,
        sim: &Sim,
        page: PageId,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), KernelError> {
        let vaddr = self.span(page, offset, buf.len())?;
        sim.peek(self.driver, vaddr, buf)
            .map_err(|_| refused(Error::FailedLookup))
    }

    /// [`Kernel::or_page_u32`], through the driver's own mapping: the load, the OR and the store
    /// happen in one call on the simulation, which nothing else runs during, so the update is
    /// atomic with respect to every other PD (and the simulated host).
    ///
    /// # Errors
    /// As [`DriverSeam::write_page`]; `OutOfBounds` for an offset not 4-byte aligned.
    pub fn or_page_u32(
        &mut self,
        sim: &mut Sim,
        page: PageId,
        offset: usize,
        bits: u32,
    ) -> Result<(), KernelError> {
        if !offset.is_multiple_of(4) {
            return Err(KernelError::OutOfBounds);
        }
        let vaddr = self.span(page, offset, 4)?;
        let mut b = [0u8; 4];
        sim.peek(self.driver, vaddr, &mut b)
            .map_err(|_| refused(Error::FailedLookup))?;
        let v = u32::from_le_bytes(b) | bits;
        sim.write(self.driver, vaddr, &v.to_le_bytes())
            .map_err(|_| refused(Error::FailedLookup))
    }

    /// [`Kernel::zero_page`].
    ///
    /// # Errors
    /// As [`DriverSeam::write_page`].
    pub fn zero_page(&mut self, sim: &mut Sim, page: PageId) -> Result<(), KernelError> {
        self.write_page(sim, page, 0, &[0; PAGE_SIZE])
    }

    /// [`Kernel::grant`]. Granting a page that is in the free pool is refused with
    /// `IllegalOperation`'s code; a kernel refusal (e.g. `DeleteFirst` when the client already
    /// has something at that address) leaves no copy behind.
    ///
    /// # Errors
    /// `NoSuchPage`, `NoSuchClient`, `OutsideWindow`, `WindowSlotBusy`, `Refused`.
    pub fn grant(
        &mut self,
        sim: &mut Sim,
        page: PageId,
        client: ClientId,
        window_page: usize,
    ) -> Result<(), KernelError> {
        let original = {
            let p = self.page(page)?;
            if !p.taken {
                return Err(refused(Error::IllegalOperation));
            }
            p.original
        };
        let ci = self.client_index(client)?;
        let link = &self.clients[ci];
        match link.window.get(window_page) {
            None => return Err(KernelError::OutsideWindow),
            Some(Some(_)) => return Err(KernelError::WindowSlotBusy),
            Some(None) => {}
        }
        let vaddr = link.window_vaddr(window_page);
        let vspace = SlotRef::new(self.driver, link.vspace_cap);
        let spare = self
            .pages
            .get_mut(page.0 as usize)
            .and_then(|p| p.spares.pop());
        let copy = match spare {
            Some(c) => c,
            None => sim
                .copy_to_free(
                    SlotRef::new(self.driver, original),
                    self.driver,
                    CapRights::READ_WRITE,
                )
                .map_err(refused)?,
        };
        let copy_ref = SlotRef::new(self.driver, copy);
        if let Err(e) = sim.map(copy_ref, vspace, vaddr, CapRights::READ_WRITE) {
            // The copy is unmapped: keep it for the next grant.
            if let Some(p) = self.pages.get_mut(page.0 as usize) {
                p.spares.push(copy);
            }
            return Err(refused(e));
        }
        self.clients[ci].window[window_page] = Some(page);
        if let Some(p) = self.pages.get_mut(page.0 as usize) {
            p.grants.push(Grant {
                client: ci,
                window_page,
                copy,
            });
        }
        Ok(())
    }

    /// [`Kernel::revoke`]: `Page_Unmap` of every copy mapped into a client; the copies stay in
    /// the driver's CSpace, unmapped, for the page's next grant. The mappings are gone however
    /// the kernel treats deletes (no delete or revoke is involved).
    ///
    /// # Errors
    /// `NoSuchPage`, `Refused` (the grants not yet unmapped stay recorded: the driver
    /// quarantines the page).
    pub fn revoke(&mut self, sim: &mut Sim, page: PageId) -> Result<(), KernelError> {
        let grants = self.page(page)?.grants.clone();
        for g in grants {
            sim.unmap(SlotRef::new(self.driver, g.copy))
                .map_err(refused)?;
            if let Some(slot) = self
                .clients
                .get_mut(g.client)
                .and_then(|c| c.window.get_mut(g.window_page))
            {
                *slot = None;
            }
            if let Some(p) = self.pages.get_mut(page.0 as usize) {
                p.grants.retain(|x| x.copy != g.copy);
                p.spares.push(g.copy);
            }
        }
        Ok(())
    }

    /// [`Kernel::notify`]: signals the client's notification with the driver's badge for it.
    ///
    /// # Errors
    /// `NoSuchClient`, `Refused`.
    pub fn notify(&mut self, sim: &mut Sim, client: ClientId) -> Result<(), KernelError> {
        let ci = self.client_index(client)?;
        let cap = self.clients[ci].notify_cap;
        sim.signal(SlotRef::new(self.driver, cap)).map_err(refused)
    }

    /// [`Kernel::ack_irq`]; without an interrupt set up it is refused with
    /// `InvalidCapability`'s code.
    ///
    /// # Errors
    /// `Refused`.
    pub fn ack_irq(&mut self, sim: &mut Sim) -> Result<(), KernelError> {
        let handler = self.irq_handler.ok_or(refused(Error::InvalidCapability))?;
        sim.irq_ack(SlotRef::new(self.driver, handler))
            .map_err(refused)
    }
}

/// A borrowed view of the simulation as the driver's [`Kernel`].
#[derive(Debug)]
pub struct DriverView<'a> {
    /// The simulated kernel.
    pub sim: &'a mut Sim,
    /// The driver's seam state.
    pub seam: &'a mut DriverSeam,
}

/// An owned simulation plus the driver's seam, usable as the driver's [`Kernel`] by value.
#[derive(Debug)]
pub struct SimKernel {
    /// The simulated kernel (tests act as clients and hardware through it).
    pub sim: Sim,
    /// The driver's seam state.
    pub seam: DriverSeam,
}

impl SimKernel {
    /// Builds the driver's seam in `sim` and bundles the two.
    ///
    /// # Errors
    /// As [`DriverSeam::new`].
    pub fn new(mut sim: Sim, setup: &DriverSetup) -> Result<Self, Error> {
        let seam = DriverSeam::new(&mut sim, setup)?;
        Ok(Self { sim, seam })
    }

    /// A borrowed [`DriverView`] of this kernel.
    pub fn view(&mut self) -> DriverView<'_> {
        DriverView {
            sim: &mut self.sim,
            seam: &mut self.seam,
        }
    }
}

macro_rules! impl_kernel {
    ($ty:ty) => {
        impl Kernel for $ty {
            fn take_page(&mut self) -> Result<PageId, KernelError> {
                self.seam.take_page()
            }
            fn return_page(&mut self, page: PageId) -> Result<(), KernelError> {
                self.seam.return_page(&self.sim, page)
            }
            fn page_frame(&self, page: PageId) -> Result<u64, KernelError> {
                self.seam.page_frame(&self.sim, page)
            }
            fn write_page(
                &mut self,
                page: PageId,
                offset: usize,
                data: &[u8],
            ) -> Result<(), KernelError> {
                self.seam.write_page(&mut self.sim, page, offset, data)
            }
            fn read_page(
                &self,
                page: PageId,
                offset: usize,
                buf: &mut [u8],
            ) -> Result<(), KernelError> {
                self.seam.read_page(&self.sim, page, offset, buf)
            }
            fn zero_page(&mut self, page: PageId) -> Result<(), KernelError> {
                self.seam.zero_page(&mut self.sim, page)
            }
            fn or_page_u32(
                &mut self,
                page: PageId,
                offset: usize,
                bits: u32,
            ) -> Result<(), KernelError> {
                self.seam.or_page_u32(&mut self.sim, page, offset, bits)
            }
            fn grant(
                &mut self,
                page: PageId,
                client: ClientId,
                window_page: usize,
            ) -> Result<(), KernelError> {
                self.seam.grant(&mut self.sim, page, client, window_page)
            }
            fn revoke(&mut self, page: PageId) -> Result<(), KernelError> {
                self.seam.revoke(&mut self.sim, page)
            }
            fn pool_pages(&self) -> usize {
                self.seam.pool_pages()
            }
            fn free_pages(&self) -> usize {
                self.seam.free_pages()
            }
            fn unmap_own(&mut self, page: PageId) -> Result<(), KernelError> {
                self.seam.unmap_own(&mut self.sim, page)
            }
            fn map_own(&mut self, page: PageId) -> Result<(), KernelError> {
                self.seam.map_own(&mut self.sim, page)
            }
            fn notify(&mut self, client: ClientId) -> Result<(), KernelError> {
                self.seam.notify(&mut self.sim, client)
            }
            fn ack_irq(&mut self) -> Result<(), KernelError> {
                self.seam.ack_irq(&mut self.sim)
            }
        }
    };
}

impl_kernel!(DriverView<'_>);
impl_kernel!(SimKernel);
