//! The deterministic scheduler: the simulated host, the driver and the client programs of one
//! instantiated system, advanced step by step.
//!
//! One [`World::step`] is: the host runs ([`World::host_step`]: queued guest messages, devices on
//! their rings, and the SynIC interrupt raised in the kernel model), the driver runs
//! ([`World::driver_step`]: client faults delivered to it, the VMBus interrupt if the kernel
//! delivered one, the tick), the clock advances, then every client program runs one step in
//! description order. Tests call the parts separately and change the host (rescind, offer,
//! hostile modes) between any two of them. Nothing is random: the same calls give the same run.

use std::collections::VecDeque;

use hv_host::{Host, HostConfig};
use sel4_sim::{Counters, FaultMessage, PdId, PdState, SimConfig, SlotRef};
use vmbus_driver::driver::{ChannelInfo, ClientConfig, Driver, DriverConfig, Stats};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, VpIndex};
use vmbus_driver::version::Version;

use crate::guestmem::GuestMem;
use crate::instance::{ClientInfo, Instance};
use crate::kernel::DriverKernel;
use crate::program::{ClientCtx, ClientProgram, Flow};
use hv_host::GuestPort as HostPort;

/// Most entries kept in the world's trace (oldest dropped first).
pub const TRACE_CAPACITY: usize = 4096;

/// Interrupt passes one driver step runs at most; if the driver still reports pending messages
/// the next driver step continues without waiting for a new interrupt.
pub const PASSES_PER_STEP: usize = 64;

/// How a world is built.
#[derive(Debug, Clone, Copy)]
pub struct WorldConfig {
    /// The kernel model's options.
    pub sim: SimConfig,
    /// The host's rules and versions.
    pub host: HostConfig,
    /// The newest version the driver asks for.
    pub max_version: Version,
    /// Ticks (world steps) the driver waits for a host reply.
    pub reply_timeout: u64,
    /// The VP the driver targets.
    pub target_vp: VpIndex,
    /// World steps a client's blocking wait may run the host and driver for before it gives up
    /// (0: waits never block; they return what is pending).
    pub block_budget: u64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            sim: SimConfig::default(),
            host: HostConfig::hyperv(),
            max_version: Version::WIN10_V5_3,
            reply_timeout: 64,
            target_vp: VpIndex(0),
            block_budget: 256,
        }
    }
}

/// A client fault as the world recorded it before handing it to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    /// The client.
    pub client: ClientId,
    /// The kernel's fault message.
    pub fault: FaultMessage,
    /// The tick at which the driver was told.
    pub tick: u64,
}

/// Something the world did, for tests and the live view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceEvent {
    /// The host raised the VMBus interrupt and the kernel delivered it.
    IrqRaised,
    /// The driver handled its interrupt (`more`: it stopped at its per-pass bound).
    DriverInterrupt {
        /// More messages were pending.
        more: bool,
    },
    /// A client made a protected call to the driver.
    ClientCall(ClientId),
    /// A client faulted and the driver was told.
    ClientFault(ClientId),
    /// A client stopped (faulted) and is no longer scheduled.
    ClientStopped(ClientId),
    /// A client program finished.
    ClientDone(ClientId),
}

/// The host, the driver, the kernel model and the clock: everything but the client programs.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) inst: Instance,
    pub(crate) driver: Box<Driver>,
    pub(crate) host: Box<Host>,
    pub(crate) guest: GuestMem,
    pub(crate) now: u64,
    pub(crate) block_budget: u64,
    pub(crate) faults: Vec<FaultRecord>,
    pub(crate) trace: VecDeque<(u64, TraceEvent)>,
    /// The driver stopped at its per-pass bound with messages still pending.
    pub(crate) interrupt_more: bool,
}

impl Core {
    pub(crate) fn trace(&mut self, e: TraceEvent) {
        log::trace!("tick {}: {e:?}", self.now);
        if self.trace.len() == TRACE_CAPACITY {
            self.trace.pop_front();
        }
        self.trace.push_back((self.now, e));
    }

    /// Runs the host once: queued guest messages, devices, then the interrupt.
    pub(crate) fn host_step(&mut self) {
        self.host.process();
        self.host.poll(&mut self.guest);
        self.raise_pending_irq();
    }

    /// Turns the host's pending SynIC interrupt into the VMBus IRQ of the kernel model.
    pub(crate) fn raise_pending_irq(&mut self) {
        if self.host.synic_mut().take_interrupt() {
            let irq = self.inst.vmbus_irq().irq;
            let outcome = self.inst.kernel().borrow_mut().sim.raise_irq(irq);
            if outcome == sel4_sim::IrqOutcome::Delivered {
                self.trace(TraceEvent::IrqRaised);
            }
        }
    }

    /// Runs the driver once: faults, the interrupt if delivered, the tick.
    pub(crate) fn driver_step(&mut self) {
        self.driver_faults();
        self.driver_interrupt();
        self.driver_tick();
    }

    /// Hands every client fault waiting in the driver's fault inbox to the driver.
    pub(crate) fn driver_faults(&mut self) {
        let driver_pd = self.inst.driver();
        loop {
            let fault = self.inst.kernel().borrow_mut().sim.take_fault(driver_pd);
            let Ok(Some(fault)) = fault else { break };
            let Some(client) = self.inst.client_by_pd(fault.pd).map(|c| c.id) else {
                continue;
            };
            self.faults.push(FaultRecord {
                client,
                fault,
                tick: self.now,
            });
            self.trace(TraceEvent::ClientFault(client));
            let now = self.now;
            let mut k = self.inst.kernel().borrow_mut();
            let mut dk = DriverKernel::new(&mut k, self.inst.clients());
            let mut hv = HostPort::new(&mut self.host);
            self.driver.on_client_fault(&mut hv, &mut dk, client, now);
        }
    }

    /// If the kernel delivered the VMBus interrupt to the driver's notification, runs the
    /// driver's interrupt handler (again while it reports more pending messages).
    pub(crate) fn driver_interrupt(&mut self) {
        let driver_pd = self.inst.driver();
        let word = {
            let mut k = self.inst.kernel().borrow_mut();
            match k.seam.driver_notification() {
                Some(n) => k.sim.wait(SlotRef::new(driver_pd, n)).ok().flatten(),
                None => None,
            }
        };
        let delivered = word.is_some_and(|w| w & self.inst.vmbus_irq().badge != 0);
        if !delivered && !self.interrupt_more {
            return;
        }
        self.interrupt_more = false;
        for _ in 0..PASSES_PER_STEP {
            let now = self.now;
            let more = {
                let mut k = self.inst.kernel().borrow_mut();
                let mut dk = DriverKernel::new(&mut k, self.inst.clients());
                let mut hv = HostPort::new(&mut self.host);
                self.driver.on_interrupt(&mut hv, &mut dk, now)
            };
            self.trace(TraceEvent::DriverInterrupt { more });
            self.interrupt_more = more;
            if !more {
                break;
            }
        }
        // Messages the host queued while the driver ran raise the next interrupt now.
        self.raise_pending_irq();
    }

    /// The driver's periodic tick (timeouts).
    pub(crate) fn driver_tick(&mut self) {
        let now = self.now;
        let mut k = self.inst.kernel().borrow_mut();
        let mut dk = DriverKernel::new(&mut k, self.inst.clients());
        let mut hv = HostPort::new(&mut self.host);
        self.driver.on_tick(&mut hv, &mut dk, now);
    }

    /// A protected call from `client` to the driver.
    pub(crate) fn client_call(&mut self, client: ClientId) {
        self.trace(TraceEvent::ClientCall(client));
        let now = self.now;
        {
            let mut k = self.inst.kernel().borrow_mut();
            let mut dk = DriverKernel::new(&mut k, self.inst.clients());
            let mut hv = HostPort::new(&mut self.host);
            self.driver.on_client_call(&mut hv, &mut dk, client, now);
        }
        self.raise_pending_irq();
    }

    /// Host, driver, clock: what runs while a client blocks.
    pub(crate) fn tick(&mut self) {
        self.host_step();
        self.driver_step();
        self.now += 1;
    }
}

/// One client PD's scheduling state.
struct ClientSlot {
    program: Option<Box<dyn ClientProgram>>,
    done: bool,
    stopped: bool,
}

impl core::fmt::Debug for ClientSlot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientSlot")
            .field("program", &self.program.is_some())
            .field("done", &self.done)
            .field("stopped", &self.stopped)
            .finish()
    }
}

/// The whole simulated system.
#[derive(Debug)]
pub struct World {
    pub(crate) core: Core,
    clients: Vec<ClientSlot>,
    steps: u64,
}

/// `run_until` gave up: the condition did not hold within the step budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimit {
    /// Steps run.
    pub steps: u64,
}

impl core::fmt::Display for StepLimit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "condition not reached within {} steps", self.steps)
    }
}

impl std::error::Error for StepLimit {}

/// Builds the driver's configuration from the instantiated clients.
fn driver_for(inst: &Instance, cfg: &WorldConfig) -> Box<Driver> {
    let classes: Vec<Vec<Guid>> = inst.clients().iter().map(|c| c.classes.clone()).collect();
    let clients: Vec<ClientConfig<'_>> = inst
        .clients()
        .iter()
        .zip(&classes)
        .map(|(c, cl)| ClientConfig {
            id: c.id,
            window_pages: c.window_pages,
            max_channels: c.max_channels,
            classes: cl,
            instance: c.instance,
            power: c.power,
            low_latency: c.low_latency,
        })
        .collect();
    Box::new(Driver::new(&DriverConfig {
        target_vp: cfg.target_vp,
        max_version: cfg.max_version,
        reply_timeout: cfg.reply_timeout,
        clients: &clients,
    }))
}

impl World {
    /// A world over an instantiated system, with a host that offers nothing yet and a driver
    /// that has not started.
    #[must_use]
    pub fn new(inst: Instance, cfg: &WorldConfig) -> Self {
        let driver = driver_for(&inst, cfg);
        let guest = inst.guest_mem();
        let clients = inst
            .clients()
            .iter()
            .map(|_| ClientSlot {
                program: None,
                done: false,
                stopped: false,
            })
            .collect();
        Self {
            core: Core {
                inst,
                driver,
                host: Box::new(Host::new(cfg.host)),
                guest,
                now: 0,
                block_budget: cfg.block_budget,
                faults: Vec::new(),
                trace: VecDeque::new(),
                interrupt_more: false,
            },
            clients,
            steps: 0,
        }
    }

    /// The repository's system.xml, instantiated with `cfg`'s kernel options.
    ///
    /// # Panics
    /// If the repository's description does not load or instantiate.
    #[must_use]
    pub fn repository(cfg: &WorldConfig) -> Self {
        let sys = crate::load_repository_system().unwrap_or_else(|e| panic!("system.xml: {e}"));
        let inst = Instance::build(&sys, cfg.sim)
            .unwrap_or_else(|e| panic!("system.xml does not instantiate: {e}"));
        Self::new(inst, cfg)
    }

    /// Starts the driver as the seL4 driver PD does, through `Driver::start_monitored`: it takes
    /// its two monitor pages from the pool (through the kernel seam) and passes them in
    /// INITIATE_CONTACT, so channels the host offers with a monitor id are signalled through the
    /// monitor page instead of the hypercall.
    pub fn start(&mut self) {
        self.with_seams(|driver, hv, k, now| driver.start_monitored(hv, k, now));
    }

    /// Starts the driver without monitor pages (`Driver::start`): every signal to the host is a
    /// hypercall, as with a host that offers no monitor ids.
    pub fn start_unmonitored(&mut self) {
        let now = self.core.now;
        let mut hv = HostPort::new(&mut self.core.host);
        self.core.driver.start(&mut hv, now);
        self.core.raise_pending_irq();
    }

    /// Unloads the bus: the driver tears every channel down and sends UNLOAD.
    pub fn unload(&mut self) {
        self.with_seams(|driver, hv, k, now| driver.unload(hv, k, now));
    }

    /// Runs `f` on the driver with its host and kernel seams and the current time, then
    /// raises the interrupt if the host has one pending.
    fn with_seams(&mut self, f: impl FnOnce(&mut Driver, &mut HostPort, &mut DriverKernel, u64)) {
        let now = self.core.now;
        let core = &mut self.core;
        let mut k = core.inst.kernel().borrow_mut();
        let mut dk = DriverKernel::new(&mut k, core.inst.clients());
        let mut hv = HostPort::new(&mut core.host);
        f(&mut core.driver, &mut hv, &mut dk, now);
        drop(k);
        core.raise_pending_irq();
    }

    /// Installs `program` as client `id`'s workload (replacing any earlier one).
    ///
    /// # Panics
    /// If `id` names no client.
    pub fn set_program(&mut self, id: ClientId, program: Box<dyn ClientProgram>) {
        let slot = &mut self.clients[usize::from(id.0)];
        slot.program = Some(program);
        slot.done = false;
    }

    /// Runs the host once.
    pub fn host_step(&mut self) {
        self.core.host_step();
    }

    /// Runs the driver once (faults, interrupt, tick).
    pub fn driver_step(&mut self) {
        self.core.driver_step();
    }

    /// The first part of a driver step alone: client faults waiting in the driver's fault inbox
    /// go to `Driver::on_client_fault`.
    pub fn driver_fault_step(&mut self) {
        self.core.driver_faults();
    }

    /// The second part alone: the driver's interrupt handler, if the kernel delivered the
    /// VMBus interrupt (or the previous pass stopped with messages pending).
    pub fn driver_interrupt_step(&mut self) {
        self.core.driver_interrupt();
    }

    /// The third part alone: the driver's tick (timeouts) at the current time.
    pub fn driver_tick_step(&mut self) {
        self.core.driver_tick();
    }

    /// Advances the clock by `ticks` without running anything (for timeout scenarios).
    pub fn advance_clock(&mut self, ticks: u64) {
        self.core.now += ticks;
    }

    /// Runs client `id`'s program once, unless it is done or stopped by a fault. Returns whether
    /// it ran.
    pub fn client_step(&mut self, id: ClientId) -> bool {
        let i = usize::from(id.0);
        let Some(slot) = self.clients.get_mut(i) else {
            return false;
        };
        if slot.done || slot.stopped {
            return false;
        }
        let Some(mut program) = slot.program.take() else {
            return false;
        };
        let flow = {
            let mut ctx = ClientCtx::new(&mut self.core, id);
            program.step(&mut ctx)
        };
        let slot = &mut self.clients[i];
        slot.program = Some(program);
        if flow == Flow::Done {
            slot.done = true;
            self.core.trace(TraceEvent::ClientDone(id));
        }
        self.check_stopped(id);
        true
    }

    /// Marks client `id` stopped if its PD faulted.
    fn check_stopped(&mut self, id: ClientId) {
        let Some(pd) = self.core.inst.client(id).map(|c| c.pd) else {
            return;
        };
        let stopped = self.core.inst.kernel().borrow().sim.pd_state(pd) == Ok(PdState::Stopped);
        if stopped && !self.clients[usize::from(id.0)].stopped {
            self.clients[usize::from(id.0)].stopped = true;
            self.core.trace(TraceEvent::ClientStopped(id));
        }
    }

    /// Restarts client `id` after a fault (as its fault handler would: the PD resumes and is
    /// scheduled again). Its program, if any, continues.
    pub fn restart_client(&mut self, id: ClientId) {
        if let Some(pd) = self.core.inst.client(id).map(|c| c.pd) {
            let _ = self.core.inst.kernel().borrow_mut().sim.resume(pd);
        }
        if let Some(slot) = self.clients.get_mut(usize::from(id.0)) {
            slot.stopped = false;
        }
    }

    /// Runs `f` as client `id` now (outside its program): a one-off action of that PD. Faults it
    /// causes stop the client as for a program.
    ///
    /// # Panics
    /// If `id` names no client.
    pub fn as_client<R>(&mut self, id: ClientId, f: impl FnOnce(&mut ClientCtx<'_>) -> R) -> R {
        let r = {
            let mut ctx = ClientCtx::new(&mut self.core, id);
            f(&mut ctx)
        };
        self.check_stopped(id);
        r
    }

    /// One world step: host, driver, clock, then each client once.
    pub fn step(&mut self) {
        self.core.host_step();
        self.core.driver_step();
        self.core.now += 1;
        for i in 0..self.clients.len() {
            // Client ids are the positions in the client table (at most u16::MAX of them).
            self.client_step(ClientId(i as u16));
        }
        self.steps += 1;
    }

    /// Steps until `cond` holds (checked before each step) or `max_steps` steps ran.
    ///
    /// # Errors
    /// [`StepLimit`] when the condition never held.
    pub fn run_until(
        &mut self,
        mut cond: impl FnMut(&World) -> bool,
        max_steps: u64,
    ) -> Result<u64, StepLimit> {
        for n in 0..max_steps {
            if cond(self) {
                return Ok(n);
            }
            self.step();
        }
        if cond(self) {
            Ok(max_steps)
        } else {
            Err(StepLimit { steps: max_steps })
        }
    }

    /// Steps `n` times.
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.step();
        }
    }

    // ---- observation and injection ----

    /// The instantiated system.
    #[must_use]
    pub fn instance(&self) -> &Instance {
        &self.core.inst
    }

    /// The driver.
    #[must_use]
    pub fn driver(&self) -> &Driver {
        &self.core.driver
    }

    /// The driver's counters.
    #[must_use]
    pub fn driver_stats(&self) -> Stats {
        *self.core.driver.stats()
    }

    /// The driver's channel table, one row per known relid.
    #[must_use]
    pub fn driver_channels(&self) -> Vec<ChannelInfo> {
        self.core.driver.channels().collect()
    }

    /// The host.
    #[must_use]
    pub fn host(&self) -> &Host {
        &self.core.host
    }

    /// The host, to inject actions (offer, rescind, hostile modes) between steps.
    pub fn host_mut(&mut self) -> &mut Host {
        &mut self.core.host
    }

    /// The kernel model's operation counters.
    #[must_use]
    pub fn sim_counters(&self) -> Counters {
        *self.core.inst.kernel().borrow().sim.counters()
    }

    /// Free pages in the driver's pool.
    #[must_use]
    pub fn pool_free(&self) -> usize {
        self.core.inst.kernel().borrow().seam.free_pages()
    }

    /// Pool pages the driver holds for the connection rather than for a channel: the two
    /// monitor pages [`World::start`] takes (none before the start, none after an answered
    /// unload, none with [`World::start_unmonitored`]).
    #[must_use]
    pub fn connection_pages(&self) -> usize {
        self.core.driver.connection_pages()
    }

    /// Faults the world handed to the driver, oldest first.
    #[must_use]
    pub fn faults(&self) -> &[FaultRecord] {
        &self.core.faults
    }

    /// Whether client `id` was stopped by a fault.
    #[must_use]
    pub fn client_stopped(&self, id: ClientId) -> bool {
        self.clients
            .get(usize::from(id.0))
            .is_some_and(|c| c.stopped)
    }

    /// Whether client `id`'s program finished.
    #[must_use]
    pub fn client_done(&self, id: ClientId) -> bool {
        self.clients.get(usize::from(id.0)).is_some_and(|c| c.done)
    }

    /// The client named `name`.
    #[must_use]
    pub fn client(&self, name: &str) -> Option<&ClientInfo> {
        self.core.inst.client_by_name(name)
    }

    /// The PD of client `id`.
    #[must_use]
    pub fn client_pd(&self, id: ClientId) -> Option<PdId> {
        self.core.inst.client(id).map(|c| c.pd)
    }

    /// The current tick.
    #[must_use]
    pub const fn now(&self) -> u64 {
        self.core.now
    }

    /// World steps run.
    #[must_use]
    pub const fn steps(&self) -> u64 {
        self.steps
    }

    /// The trace (tick, event), oldest first, at most [`TRACE_CAPACITY`] entries.
    pub fn trace(&self) -> impl Iterator<Item = &(u64, TraceEvent)> + '_ {
        self.core.trace.iter()
    }
}
