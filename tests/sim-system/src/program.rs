//! Client programs: scripted workloads of client PDs, and the context they run in, which is the
//! client library's [`ClientEnv`] on the simulated system.

use sel4_sim::{MemError, PdId, PdState, SlotRef};
use vmbus_client::{ClientEnv, WindowLayout};
use vmbus_driver::ids::ClientId;

use crate::instance::ClientInfo;
use crate::ringmem::ClientRingMem;
use crate::world::Core;

/// Whether a program wants to run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Run me at the next step.
    Continue,
    /// Finished: never run again.
    Done,
}

/// A client PD's workload, run one step at a time by the world.
pub trait ClientProgram {
    /// Does one step of work as the client.
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow;
}

/// A closure as a program.
impl<F: FnMut(&mut ClientCtx<'_>) -> Flow> ClientProgram for F {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        self(ctx)
    }
}

/// A client PD running for one step: its view of the system. Every memory access goes through
/// its VSpace; a protected call runs the driver to completion before returning; a blocking wait
/// lets the host and the driver run (up to the world's block budget) until the driver notifies.
#[derive(Debug)]
pub struct ClientCtx<'w> {
    core: &'w mut Core,
    info: ClientInfo,
    ppcalls: u64,
}

impl<'w> ClientCtx<'w> {
    pub(crate) fn new(core: &'w mut Core, id: ClientId) -> Self {
        let info = core
            .inst
            .client(id)
            .cloned()
            .unwrap_or_else(|| panic!("no client {id}"));
        Self {
            core,
            info,
            ppcalls: 0,
        }
    }

    /// The client's id.
    #[must_use]
    pub fn id(&self) -> ClientId {
        self.info.id
    }

    /// The client's wiring (window, control page, classes).
    #[must_use]
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// The client's PD.
    #[must_use]
    pub fn pd(&self) -> PdId {
        self.info.pd
    }

    /// The current tick.
    #[must_use]
    pub fn now(&self) -> u64 {
        self.core.now
    }

    /// The partition reference counter (100 ns units since the partition started): on
    /// Hyper-V a guest reads it from the reference TSC page or its MSR; here it is the
    /// simulated host's clock, which [`hv_host::Host::ic_tick`] advances.
    #[must_use]
    pub fn reference_time(&self) -> u64 {
        self.core.host.reference_time()
    }

    /// Protected calls made through this context.
    #[must_use]
    pub const fn ppcalls(&self) -> u64 {
        self.ppcalls
    }

    /// Whether the client PD is stopped by a fault (it executes nothing more).
    #[must_use]
    pub fn stopped(&self) -> bool {
        self.core.inst.kernel().borrow().sim.pd_state(self.info.pd) == Ok(PdState::Stopped)
    }

    /// Reads the client's own memory at `vaddr` (e.g. a window address it kept): faults like
    /// any access of the PD.
    ///
    /// # Errors
    /// The kernel model's [`MemError`].
    pub fn read_memory(&mut self, vaddr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.core
            .inst
            .kernel()
            .borrow_mut()
            .sim
            .read(self.info.pd, vaddr, buf)
    }

    /// Writes the client's own memory at `vaddr`.
    ///
    /// # Errors
    /// The kernel model's [`MemError`].
    pub fn write_memory(&mut self, vaddr: u64, data: &[u8]) -> Result<(), MemError> {
        self.core
            .inst
            .kernel()
            .borrow_mut()
            .sim
            .write(self.info.pd, vaddr, data)
    }

    /// The notification word pending for the client, if any, without blocking.
    pub fn poll_notification(&mut self) -> Option<u64> {
        let mut k = self.core.inst.kernel().borrow_mut();
        let k = &mut *k;
        let pd = self.info.pd;
        // The driver signals the client through the seam's notification; Microkit channel
        // notifications arrive on the PD's own one. Both count.
        let from_driver = k
            .seam
            .client(self.info.id)
            .map(|l| l.client_ntfn)
            .and_then(|n| k.sim.wait(SlotRef::new(pd, n)).ok().flatten());
        let from_channels = k.sim.pd_wait(pd).ok().flatten();
        match (from_driver, from_channels) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) | b.unwrap_or(0)),
        }
    }
}

impl ClientEnv for ClientCtx<'_> {
    type Mem = ClientRingMem;

    fn ppcall_driver(&mut self) {
        // A stopped PD executes nothing, and a call needs a pp channel to the driver.
        if self.stopped()
            || self
                .core
                .inst
                .pp_target(self.info.pd, self.info.driver_channel)
                != Some(self.core.inst.driver())
        {
            return;
        }
        self.ppcalls += 1;
        self.core.client_call(self.info.id);
    }

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) {
        let vaddr = self.info.control_vaddr + offset as u64;
        if self.read_memory(vaddr, buf).is_err() {
            buf.fill(0);
        }
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) {
        let vaddr = self.info.control_vaddr + offset as u64;
        // A refused write changes nothing; the PD is stopped and the world stops running it.
        let _ = self.write_memory(vaddr, data);
    }

    fn wait_notification(&mut self) -> Option<u64> {
        if let Some(w) = self.poll_notification() {
            return Some(w);
        }
        for _ in 0..self.core.block_budget {
            if self.stopped() {
                return None;
            }
            self.core.tick();
            if let Some(w) = self.poll_notification() {
                return Some(w);
            }
        }
        None
    }

    fn ring_mem(&mut self, first: usize, pages: usize) -> ClientRingMem {
        ClientRingMem::new(
            self.core.inst.kernel().clone(),
            self.info.pd,
            self.info.window_base + (first as u64) * crate::layout::PAGE,
            pages,
        )
    }

    fn window(&self) -> WindowLayout {
        WindowLayout {
            pages: self.info.window_pages,
            max_channels: self.info.max_channels,
        }
    }

    // Window access goes through the client's own VSpace, as its loads and stores would: a
    // page the driver revoked is a fault (false), never another page's bytes.
    fn window_read(&mut self, window_page: usize, offset: usize, buf: &mut [u8]) -> bool {
        match self.window_vaddr(window_page, offset, buf.len()) {
            Some(vaddr) => self.read_memory(vaddr, buf).is_ok(),
            None => false,
        }
    }

    fn window_write(&mut self, window_page: usize, offset: usize, data: &[u8]) -> bool {
        match self.window_vaddr(window_page, offset, data.len()) {
            Some(vaddr) => self.write_memory(vaddr, data).is_ok(),
            None => false,
        }
    }
}

impl ClientCtx<'_> {
    /// The address of byte `offset` of window page `window_page`, when `len` bytes from there
    /// stay inside the window.
    fn window_vaddr(&self, window_page: usize, offset: usize, len: usize) -> Option<u64> {
        let page = crate::layout::PAGE as usize;
        let start = window_page.checked_mul(page)?.checked_add(offset)?;
        let end = start.checked_add(len)?;
        (end <= self.info.window_pages * page).then(|| self.info.window_base + start as u64)
    }
}
