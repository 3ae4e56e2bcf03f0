//! The scenarios of the main job, over a [`Runner`] that owns the world, the device set and
//! the client workloads, and prints the channel table at the moments that matter.

use std::io::Write;

use hv_host::{DeviceId, DeviceSpec, HostConfig, Hostile};
use log::{info, warn};
use sel4_sim::SimConfig;
use sim_system::{Instance, World, WorldConfig};
use vmbus_driver::driver::{ChannelState, ConnectionState};
use vmbus_driver::guid::{self, Guid};
use vmbus_driver::ids::RelId;
use vmbus_driver::version::Version;

use super::devices::{DeviceReq, class_label};
use super::options::{HostKind, HostileMode, Options, ScenarioName};
use super::program::{BusClient, Handle, Mode, Totals};
use super::report::{Report, add_totals};
use super::sddf::Sddf;
use super::services::{ServiceReport, Services, is_service};
use super::table::channel_table;

/// Steps a boot, a teardown or an unload may take before the run gives up on it.
const SETTLE_STEPS: u64 = 2000;

/// World steps per simulated second: the host's integration services tick (a heartbeat and a
/// time sample) once every this many steps.
const IC_TICK_EVERY: u64 = 4;

/// Pages the default scenario's host balloons out, and how many of them it gives back.
const BALLOON_PAGES: u32 = 256;
/// Pages the default scenario's host gives back.
const UNBALLOON_PAGES: u64 = 128;

/// Device classes whose channels carry traffic without a host action: echo devices, and the
/// heartbeat and time sync services, which the host ticks.
fn steady_traffic(class: &Guid) -> bool {
    !matches!(class_label(class).as_str(), "shutdown" | "kvp" | "dynmem")
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunError {
    /// The description did not load or instantiate.
    System(String),
    /// The host refused a device.
    Device(String),
    /// Something that must happen did not within its step budget.
    Stuck(&'static str),
    /// Writing the output failed.
    Output(String),
    /// After the hostile modes a channel the host offers is not serving traffic.
    NotRecovered(String),
}

impl core::fmt::Display for RunError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::System(e) => write!(f, "system description: {e}"),
            Self::Device(e) => write!(f, "device set: {e}"),
            Self::Stuck(what) => write!(f, "{what} did not happen within {SETTLE_STEPS} steps"),
            Self::Output(e) => write!(f, "output: {e}"),
            Self::NotRecovered(e) => write!(f, "not recovered after the hostile modes: {e}"),
        }
    }
}

/// One device of the set: what to offer and, while offered, its host id.
#[derive(Debug, Clone, Copy)]
struct Placed {
    name: &'static str,
    spec: DeviceSpec,
    id: Option<DeviceId>,
}

/// The world of one run and everything the scenarios do to it.
pub(crate) struct Runner<'o> {
    w: World,
    opts: &'o Options,
    devices: Vec<Placed>,
    handles: Vec<Handle>,
    out: &'o mut dyn Write,
    rng: u64,
    version: Option<Version>,
    services: Services,
    /// World steps run (the IC tick's clock).
    steps_run: u64,
    /// The host's IC/DM trace printed so far (its total at the last print).
    trace_mark: u64,
    /// The real network and storage drivers and their sDDF clients.
    sddf: Sddf,
    /// Run after every world step (tests: a host that misbehaves in ways no mode covers).
    after_step: Option<&'o mut dyn FnMut(&mut World)>,
}

impl core::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runner")
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

impl<'o> Runner<'o> {
    /// Instantiates the description, builds the world and gives every client its workload.
    pub(crate) fn new(opts: &'o Options, out: &'o mut dyn Write) -> Result<Self, RunError> {
        let sys = match &opts.system {
            Some(p) => sysdesc::load(p).map_err(|d| {
                RunError::System(
                    d.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n"),
                )
            })?,
            None => sim_system::load_repository_system().map_err(RunError::System)?,
        };
        let inst = Instance::build(&sys, SimConfig::default())
            .map_err(|e| RunError::System(e.to_string()))?;
        let host = match opts.host {
            HostKind::HyperV => HostConfig::hyperv(),
            HostKind::Qemu => HostConfig::qemu(),
        };
        let mut w = World::new(
            inst,
            &WorldConfig {
                host,
                ..WorldConfig::default()
            },
        );
        let mut handles = Vec::new();
        let clients: Vec<_> = w.instance().clients().to_vec();
        // The real devices: netvsc on the network client, storvsc on the SCSI client, unless
        // --echo (or the set has no such device).
        let real = |name: &str| !opts.echo && opts.devices.iter().any(|d| d.name == name);
        let mut sddf = Sddf::default();
        let (mut net_done, mut blk_done) = (!real("net"), !real("scsi"));
        for c in clients.iter().filter(|c| !is_service(c)) {
            if !net_done && c.classes.contains(&guid::NETWORK) {
                info!("{} runs netvsc as an sDDF network driver", c.name);
                sddf.install_net(&mut w, c.id);
                net_done = true;
                continue;
            }
            if !blk_done && c.classes.contains(&guid::SCSI) {
                info!("{} runs storvsc as an sDDF block driver", c.name);
                sddf.install_blk(&mut w, c.id);
                blk_done = true;
                continue;
            }
            let slot_pages = c.window_pages / c.max_channels.max(1);
            let (program, handle) = BusClient::new(&c.name, slot_pages);
            w.set_program(c.id, Box::new(program));
            handles.push(handle);
        }
        let services = Services::install(&mut w);
        let mut devices = Vec::new();
        let mut serial = 0u32;
        for req in &opts.devices {
            if !clients.iter().any(|c| c.classes.contains(&req.class)) {
                warn!(
                    "no client of the description serves {}: its channels stay unopened",
                    req.name
                );
            }
            for _ in 0..req.count {
                serial += 1;
                devices.push(Placed {
                    name: req.name,
                    spec: spec_for(req, serial, opts.seed, opts.echo),
                    id: None,
                });
            }
        }
        Ok(Self {
            w,
            opts,
            devices,
            handles,
            out,
            rng: opts.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            version: None,
            services,
            steps_run: 0,
            trace_mark: 0,
            sddf,
            after_step: None,
        })
    }

    /// Has `f` run after every world step.
    pub(crate) fn after_step(mut self, f: &'o mut dyn FnMut(&mut World)) -> Self {
        self.after_step = Some(f);
        self
    }

    fn next_random(&mut self, below: usize) -> usize {
        // xorshift64: deterministic per seed, no dependency.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % below.max(1) as u64) as usize
    }

    fn print(&mut self, text: &str) -> Result<(), RunError> {
        self.out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| RunError::Output(e.to_string()))
    }

    /// Prints the channel table (and, with `--trace` or `-v`, the host's IC/DM trace since the
    /// last table).
    fn table(&mut self, moment: &str) -> Result<(), RunError> {
        info!("{moment}");
        let t = channel_table(&self.w, moment);
        self.print(&t)?;
        self.print_trace()
    }

    fn print_trace(&mut self) -> Result<(), RunError> {
        if !(self.opts.trace || self.opts.verbosity > 0) {
            return Ok(());
        }
        let trace = self.w.host().trace();
        let total = trace.total();
        if total == self.trace_mark {
            return Ok(());
        }
        let mut s = String::from("-- the host's integration-service and Dynamic Memory trace --\n");
        let first = trace.iter().next().map_or(total, |r| r.seq);
        if first > self.trace_mark {
            s.push_str(&format!(
                "  ({} earlier records overwritten)\n",
                first - self.trace_mark
            ));
        }
        for r in trace.since(self.trace_mark) {
            s.push_str(&format!("  {r}\n"));
        }
        self.trace_mark = total;
        self.print(&s)
    }

    /// The services' state now, printed.
    fn services_table(&mut self, moment: &str) -> Result<(), RunError> {
        let r = ServiceReport::gather(&self.w, &self.services);
        self.print(&format!("-- services {moment} --\n{}", r.render()))
    }

    /// Steps, remembering the negotiated version; the host's integration services tick every
    /// [`IC_TICK_EVERY`] steps.
    fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.steps_run += 1;
            if self.steps_run.is_multiple_of(IC_TICK_EVERY) {
                self.w.host_mut().ic_tick();
            }
            self.w.step();
            self.sddf.step(&mut self.w);
            if let Some(f) = &mut self.after_step {
                f(&mut self.w);
            }
            if let Some(v) = self.w.driver().version() {
                self.version = Some(v);
            }
        }
    }

    /// Steps until `cond` holds of the runner (the sDDF clients' state included).
    fn run_until_r(
        &mut self,
        what: &'static str,
        cond: impl Fn(&Self) -> bool,
    ) -> Result<(), RunError> {
        for _ in 0..SETTLE_STEPS {
            if cond(self) {
                return Ok(());
            }
            self.run(1);
        }
        if cond(self) {
            Ok(())
        } else {
            Err(RunError::Stuck(what))
        }
    }

    /// Steps until `cond` holds.
    fn run_until(
        &mut self,
        what: &'static str,
        mut cond: impl FnMut(&World) -> bool,
    ) -> Result<(), RunError> {
        for _ in 0..SETTLE_STEPS {
            if cond(&self.w) {
                return Ok(());
            }
            self.run(1);
        }
        if cond(&self.w) {
            Ok(())
        } else {
            Err(RunError::Stuck(what))
        }
    }

    fn is_qemu(&self) -> bool {
        self.opts.host == HostKind::Qemu
    }

    /// Offers device `i` (nothing to do if it is offered already, as on a QEMU host, where a
    /// "removal" only closed its channels).
    fn add(&mut self, i: usize) -> Result<(), RunError> {
        let d = self.devices[i];
        if d.id.is_some() {
            return Ok(());
        }
        let id = self
            .w
            .host_mut()
            .add_device(d.spec)
            .map_err(|e| RunError::Device(format!("{}: {e}", d.name)))?;
        info!(
            "host offers {} ({} sub-channels) as device {}",
            d.name, d.spec.sub_channels, id.0
        );
        self.devices[i].id = Some(id);
        Ok(())
    }

    /// Channels the offered devices have (primaries and sub-channels).
    fn offered_channels(&self) -> usize {
        self.devices
            .iter()
            .filter(|d| d.id.is_some())
            .map(|d| usize::from(d.spec.sub_channels) + 1)
            .sum()
    }

    /// Offers every device, starts the driver and waits for the handshake and the offers.
    fn boot(&mut self) -> Result<(), RunError> {
        for i in 0..self.devices.len() {
            self.add(i)?;
        }
        // As a guest on Hyper-V: monitor pages at connect, so channels offered with a monitor id
        // are signalled through the monitor page (no hypercall); QEMU's host offers none.
        self.w.start();
        let n = self.offered_channels();
        self.run_until("the handshake and every offer", |w| {
            w.driver().connection().state == ConnectionState::Connected
                && w.driver_channels().len() == n
        })?;
        self.version = self.w.driver().version();
        self.table("after boot: handshake done, every offer received")
    }

    /// Waits until no channel is half-way (opening or in teardown) and every offered channel
    /// that a client serves is open.
    /// A real driver opens one channel of its class: the others stay offered.
    fn settle(&mut self, what: &'static str) -> Result<(), RunError> {
        let real = self.sddf.real_classes();
        self.run_until(what, |w| {
            let chans = w.driver_channels();
            chans.iter().all(|c| {
                matches!(c.state, ChannelState::Open)
                    || (c.state == ChannelState::Offered
                        && (!w
                            .instance()
                            .clients()
                            .iter()
                            .any(|cl| cl.classes.contains(&c.class))
                            || (real.contains(&c.class)
                                && chans
                                    .iter()
                                    .any(|o| o.class == c.class && o.state == ChannelState::Open))))
            })
        })
    }

    /// Waits until no channel is half-way (opening or in teardown). Every host reply the
    /// driver waits for has a timeout, so this holds within a bounded time whatever the host
    /// did or failed to do.
    fn quiesce(&mut self) -> Result<(), RunError> {
        self.run_until("the end of every open and teardown", |w| {
            w.driver_channels()
                .iter()
                .all(|c| matches!(c.state, ChannelState::Open | ChannelState::Offered))
        })
    }

    /// Hot removal of device `i`: its sub-channels, then its primary, are rescinded (Hyper-V;
    /// QEMU's `device_del` with the project's series).
    fn remove(&mut self, i: usize) -> Result<(), RunError> {
        let d = self.devices[i];
        let Some(id) = d.id else { return Ok(()) };
        info!(
            "host removes {} (device {}) while traffic flows",
            d.name, id.0
        );
        self.sddf.removing(&d.spec.class);
        self.w
            .host_mut()
            .remove_device(id)
            .map_err(|e| RunError::Device(format!("{}: {e}", d.name)))?;
        self.devices[i].id = None;
        Ok(())
    }

    /// Waits until the driver has released every rescinded relid.
    fn released(&mut self) -> Result<(), RunError> {
        // The host keeps a rescinded relid until RELID_RELEASED, the driver marks it until its
        // teardown ends: both must be done.
        self.run_until("the teardown of every rescinded channel", |w| {
            w.host()
                .channels()
                .all(|c| c.state != hv_host::ChannelState::Rescinded)
                && w.driver_channels().iter().all(|c| !c.rescinded)
        })
    }

    /// Every client closes everything, then opens again ([`Services::pause_ic`] for the
    /// service clients).
    /// The real drivers keep their channels.
    fn close_and_reopen(&mut self) -> Result<(), RunError> {
        for h in &self.handles {
            h.set_mode(Mode::CloseAll);
        }
        self.services.pause_ic(true);
        self.run(2);
        let keep = self.sddf.driver_clients();
        self.run_until("the clients' closes", |w| {
            w.driver_channels().iter().all(|c| {
                c.state == ChannelState::Offered || c.client.is_some_and(|id| keep.contains(&id))
            })
        })?;
        for h in &self.handles {
            h.set_mode(Mode::Active);
        }
        self.services.pause_ic(false);
        Ok(())
    }

    /// The configured hostile modes, one after the other, each for a traffic phase with a hot
    /// removal and re-adding in its middle; the host is honest again after each.
    fn hostile_phase(&mut self, modes: &[HostileMode]) -> Result<(), RunError> {
        let phase = (self.opts.steps / 8).max(20);
        for &m in modes {
            let mut h = Hostile::NONE;
            m.apply(&mut h);
            warn!("host turns hostile: {}", m.name());
            self.w.host_mut().set_hostile(h);
            self.run(phase / 4);
            // The service modes act on the service's own messages: have the host send some.
            match m {
                HostileMode::DmTruncate | HostileMode::DmOversize => {
                    let _ = self.w.host_mut().balloon(8);
                }
                HostileMode::DmUnballoonUnknown => {
                    let _ = self.w.host_mut().unballoon(1);
                }
                _ => {}
            }
            self.run(phase / 4);
            // A service mode touches a device of its own kind (its negotiation is bent when it
            // opens again); a bus mode a random one.
            let candidates: Vec<usize> = match m.service() {
                Some(kind) => (0..self.devices.len())
                    .filter(|&i| {
                        let n = self.devices[i].name;
                        if kind == "dynmem" {
                            n == "dynmem"
                        } else {
                            matches!(n, "heartbeat" | "shutdown" | "timesync" | "kvp")
                        }
                    })
                    .collect(),
                None => (0..self.devices.len()).collect(),
            };
            let touched = (!self.is_qemu() && !candidates.is_empty())
                .then(|| candidates[self.next_random(candidates.len())]);
            if let Some(i) = touched {
                self.remove(i)?;
                self.run(phase / 4);
                self.add(i)?;
            }
            self.run(phase / 4);
            self.w.host_mut().set_hostile(Hostile::NONE);
            info!("host honest again after {}", m.name());
            let mut again: Vec<usize> = touched.into_iter().collect();
            if m == HostileMode::CorruptRing && !self.is_qemu() {
                // netvsc and storvsc keep a channel whose ring the host corrupted (they log
                // the error on every pass and do not close it, unlike the echo and service
                // clients): the honest host removes their devices and offers them again.
                let real = self.sddf.real_classes();
                for i in 0..self.devices.len() {
                    if real.contains(&self.devices[i].spec.class) && !again.contains(&i) {
                        again.push(i);
                    }
                }
            }
            if !again.is_empty() {
                // The hostile mode may have mangled the rescind or the offer: the honest host
                // removes the device and offers it again, and its channels must serve again
                // (the driver learns of a lost rescind from the new offer of the same device).
                for &i in &again {
                    self.remove(i)?;
                }
                self.run(phase / 4);
                for &i in &again {
                    self.add(i)?;
                }
            }
            self.run(phase);
            let t = channel_table(&self.w, &format!("after hostile mode {}", m.name()));
            if self.opts.verbosity > 0 {
                self.print(&t)?;
            }
        }
        self.table("after the hostile modes")
    }

    /// Packets the host has moved on each of its open channels so far.
    fn host_traffic(&self) -> Vec<(RelId, u64)> {
        self.w
            .host()
            .channels()
            .map(|c| (c.relid, c.stats.packets_in + c.stats.packets_out))
            .collect()
    }

    /// Every channel the host offers (of a class some client serves) is open in the driver and
    /// moved traffic since `before`; the driver holds no channel the host does not have open.
    fn check_recovered(&self, before: &[(RelId, u64)]) -> Result<(), RunError> {
        let served = |class: &Guid| {
            self.w
                .instance()
                .clients()
                .iter()
                .any(|cl| cl.classes.contains(class))
        };
        let real = self.sddf.real_classes();
        let mut problems = Vec::new();
        for c in self.w.host().channels() {
            if c.state == hv_host::ChannelState::Rescinded || !served(&c.class) {
                continue;
            }
            // A real driver opens one channel of its class.
            if real.contains(&c.class)
                && c.state != hv_host::ChannelState::Open
                && self
                    .w
                    .host()
                    .channels()
                    .any(|o| o.class == c.class && o.state == hv_host::ChannelState::Open)
            {
                continue;
            }
            // Shutdown, KVP (after its script) and Dynamic Memory move nothing unless the host
            // asks: open is all they can show.
            let steady = steady_traffic(&c.class);
            let moved = c.stats.packets_in + c.stats.packets_out;
            let was = before
                .iter()
                .find(|(r, _)| *r == c.relid)
                .map_or(0, |(_, n)| *n);
            if c.state != hv_host::ChannelState::Open {
                problems.push(format!("{} is offered but not open", c.relid));
            } else if steady && moved <= was {
                problems.push(format!("{} is open but moved no traffic", c.relid));
            }
        }
        for d in self.w.driver_channels() {
            let live = self
                .w
                .host()
                .channel(d.relid)
                .is_some_and(|h| h.state == hv_host::ChannelState::Open);
            if d.state == ChannelState::Open && !live {
                problems.push(format!(
                    "{} is open in the driver but not on the host (a zombie)",
                    d.relid
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RunError::NotRecovered(problems.join("; ")))
        }
    }

    /// Unloads the bus and waits for the teardowns and UNLOAD_RESPONSE.
    fn unload(&mut self) -> Result<(), RunError> {
        info!(
            "unloading the bus with {} channels open",
            self.w.driver().open_count()
        );
        self.w.unload();
        self.run_until("the unload", |w| {
            w.driver().connection().state == ConnectionState::Disconnected
                && w.driver().open_count() == 0
        })?;
        self.table("after unload")
    }

    /// All clients' counters.
    pub(crate) fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for h in &self.handles {
            add_totals(&mut t, &h.totals());
        }
        t
    }

    /// Runs the chosen scenario to its end and gathers the report.
    pub(crate) fn execute(mut self) -> Result<Report, RunError> {
        let s = self.opts.steps;
        self.boot()?;
        self.run(s / 4);
        self.table("clients opened their channels; traffic flowing")?;
        match self.opts.scenario {
            ScenarioName::Default => self.default_scenario(s)?,
            ScenarioName::Hotplug => self.hotplug(s)?,
            ScenarioName::RescindStorm => self.rescind_storm(s)?,
            ScenarioName::Unload => {}
            ScenarioName::Hostile => {
                let modes: Vec<HostileMode> = if self.opts.hostile.is_empty() {
                    HostileMode::ALL.iter().map(|(_, m)| *m).collect()
                } else {
                    self.opts.hostile.clone()
                };
                self.hostile_phase(&modes)?;
                self.quiesce()?;
                self.settle("every offered channel open again")?;
                let before = self.host_traffic();
                self.run(s / 4);
                self.table("recovered: traffic after the hostile modes")?;
                self.check_recovered(&before)?;
            }
        }
        if !self.opts.hostile.is_empty() && self.opts.scenario != ScenarioName::Hostile {
            let modes = self.opts.hostile.clone();
            self.hostile_phase(&modes)?;
        }
        if self.opts.scenario == ScenarioName::Default && self.can_stop() {
            self.orderly_stop()?;
        } else {
            self.unload()?;
        }
        let mut totals = self.totals();
        add_totals(&mut totals, &self.services.totals());
        let services = ServiceReport::gather(&self.w, &self.services);
        let (network, storage) = self.sddf.report(&self.w);
        let mut report = Report::gather(
            &self.w,
            self.opts.scenario.name(),
            self.version,
            totals,
            services,
        );
        report.network = network;
        report.storage = storage;
        report.honest = self.opts.hostile.is_empty() && self.opts.scenario != ScenarioName::Hostile;
        Ok(report)
    }

    /// Whether the host can ask for a shutdown: a shutdown device is offered and its client
    /// runs (negotiated).
    fn can_stop(&self) -> bool {
        self.devices
            .iter()
            .any(|d| d.name == "shutdown" && d.id.is_some())
            && self
                .services
                .shutdown
                .as_ref()
                .is_some_and(|h| matches!(h.negotiation(), ic::service::Negotiation::Agreed { .. }))
    }

    /// The host asks the guest to shut down: the shutdown client answers and asks the driver
    /// to stop; every channel closes and the bus unloads.
    fn orderly_stop(&mut self) -> Result<(), RunError> {
        info!(
            "the host asks the guest to shut down with {} channels open",
            self.w.driver().open_count()
        );
        self.w
            .host_mut()
            .request_shutdown(0)
            .map_err(|e| RunError::Device(format!("shutdown request: {e}")))?;
        self.run_until("the orderly stop", |w| w.driver().stopped().is_some())?;
        self.table("after the orderly stop: every channel closed, UNLOAD answered")
    }

    /// The host balloons pages out, then gives part of them back.
    fn balloon(&mut self, s: u64) -> Result<(), RunError> {
        let ready = self.services.dynmem.as_ref().is_some_and(|h| h.ready())
            && self.w.host().dm().phase() == hv_host::DmPhase::Ready;
        if !ready {
            return Ok(());
        }
        let held = self.w.host().dm().pages_held();
        let lent = self.w.driver().lent_pages();
        info!("host balloons out {BALLOON_PAGES} pages");
        self.w
            .host_mut()
            .balloon(BALLOON_PAGES)
            .map_err(|e| RunError::Device(format!("balloon: {e}")))?;
        self.run_until("the balloon inflating", |w| {
            w.host().dm().pages_held() == held + u64::from(BALLOON_PAGES)
                && w.driver().lent_pages() == lent + BALLOON_PAGES as usize
        })?;
        self.table(&format!(
            "after the host ballooned out {BALLOON_PAGES} pages"
        ))?;
        self.services_table("after the inflate")?;
        self.run(s / 8);
        info!("host gives {UNBALLOON_PAGES} pages back");
        let n = self
            .w
            .host_mut()
            .unballoon(UNBALLOON_PAGES)
            .map_err(|e| RunError::Device(format!("unballoon: {e}")))?;
        let want = lent + BALLOON_PAGES as usize - n as usize;
        self.run_until("the balloon deflating", |w| {
            w.driver().lent_pages() == want && !w.host().dm().unballoon_pending()
        })?;
        self.table(&format!("after the host gave {n} pages back"))?;
        self.services_table("after the deflate")
    }

    /// Hot removal of the network and storage devices while traffic flows (the first device
    /// when the set has neither), then re-adding them: with the real devices, traffic is
    /// verified before the removal, the drivers report the link down and answer the requests in
    /// flight with `NoDevice`, every page comes back, and traffic is verified again after the
    /// re-add.
    fn default_scenario(&mut self, s: u64) -> Result<(), RunError> {
        let mut targets: Vec<usize> = (0..self.devices.len())
            .filter(|&i| matches!(self.devices[i].name, "net" | "scsi"))
            .collect();
        if targets.is_empty() {
            if self.devices.is_empty() {
                return Ok(());
            }
            targets.push(0);
        }
        let mut names: Vec<&str> = targets.iter().map(|&i| self.devices[i].name).collect();
        names.dedup();
        let name = names.join(" and ");
        self.run_until_r("the network and storage drivers ready", |r| {
            r.sddf.drivers_ready()
        })?;
        self.run_until_r("traffic checked before the removal", |r| {
            r.sddf.checked_since_mark()
        })?;
        // Mid-traffic: a block request in flight when the host removes the devices.
        self.run_until_r("a block request in flight", |r| r.sddf.blk_busy())?;
        self.sddf.mark();
        let mark = self.w.host().log().total();
        for &i in &targets {
            self.remove(i)?;
        }
        self.run_until_r("the drivers' link down and NoDevice answers", |r| {
            r.sddf.noticed_removal()
        })?;
        self.released()?;
        let order = teardown_messages(&self.w, mark);
        self.print(&format!(
            "-- hot removal of {name}: the teardown as the host saw it --\n{order}"
        ))?;
        self.table(&format!("after hot removal of {name}: relids released"))?;
        let pool = self.w.instance().pool().pages as i64;
        let in_channels: usize = self.w.driver_channels().iter().map(|c| c.pages).sum();
        let (free, quarantined, lent) = (
            self.w.pool_free(),
            self.w.driver().quarantined_pages(),
            self.w.driver().lent_pages(),
        );
        let monitor = self.w.driver().connection_pages();
        let unaccounted = pool
            - free as i64
            - in_channels as i64
            - quarantined as i64
            - lent as i64
            - monitor as i64;
        self.print(&format!(
            "-- pool after the teardown: {free} free, {in_channels} in channels, {quarantined} quarantined, {lent} lent, {monitor} monitor pages, {unaccounted} unaccounted --\n"
        ))?;
        if unaccounted != 0 {
            return Err(RunError::NotRecovered(format!(
                "{unaccounted} pool pages unaccounted after the removal of {name}"
            )));
        }
        for &i in &targets {
            self.add(i)?;
        }
        self.run(s / 4);
        self.settle("the re-added channels opening")?;
        self.run_until_r("the network and storage drivers ready again", |r| {
            r.sddf.drivers_ready()
        })?;
        self.run_until_r("traffic checked after the re-add", |r| {
            r.sddf.checked_since_mark()
        })?;
        self.table(&format!("after re-adding {name}: clients reopened"))?;
        self.run(s / 4);
        // The clients' own closes: every channel closed by its client, then opened again.
        self.close_and_reopen()?;
        self.settle("the channels reopening after the clients' closes")?;
        self.run(s / 8);
        // Dynamic Memory: the host takes pages and gives some back.
        self.balloon(s)?;
        self.run(s / 8);
        Ok(())
    }

    /// Rounds of removing a random device and adding it back, with a new device hot-added
    /// after boot and removed again.
    fn hotplug(&mut self, s: u64) -> Result<(), RunError> {
        let extra = self.devices.len();
        let template = self
            .devices
            .iter()
            .find(|d| d.name == "scsi")
            .or(self.devices.first())
            .copied();
        if let Some(mut t) = template {
            t.spec.instance = Guid::from_fields(0xADD0_0000 | extra as u32, 0, 0, [0xA; 8]);
            t.id = None;
            self.devices.push(t);
            self.add(extra)?;
            self.run(s / 8);
            self.table(&format!("hot add of a second {} device", t.name))?;
        }
        for round in 0..6 {
            let i = self.next_random(self.devices.len());
            let name = self.devices[i].name;
            self.remove(i)?;
            self.run(s / 16);
            self.released()?;
            self.add(i)?;
            self.run(s / 8);
            info!("hotplug round {round}: {name} removed and added back");
        }
        self.settle("every channel reopening")?;
        self.table("after the hotplug rounds")
    }

    /// Every device removed at once, repeatedly, under traffic.
    fn rescind_storm(&mut self, s: u64) -> Result<(), RunError> {
        for round in 0..5 {
            for i in 0..self.devices.len() {
                self.remove(i)?;
            }
            let gap = 1 + self.next_random(3) as u64;
            self.run(gap);
            if round == 0 {
                self.table("rescind storm: every channel rescinded")?;
            }
            self.released()?;
            for i in 0..self.devices.len() {
                self.add(i)?;
            }
            self.run(s / 8);
            info!("rescind storm round {round} done");
        }
        self.settle("every channel reopening")?;
        self.table("after the rescind storm")
    }
}

/// The host's description of device `serial` of `req`: the host's own device for the
/// integration services and Dynamic Memory, its network adapter (loopback switch) and SCSI
/// controller (RAM disk) for network and SCSI unless `echo`, an echo device for the rest; the
/// instance GUID is derived from the seed and its number.
fn spec_for(req: &DeviceReq, serial: u32, seed: u64, echo: bool) -> DeviceSpec {
    let s = seed.to_le_bytes();
    let instance = Guid::from_fields(
        serial,
        (seed >> 48) as u16,
        0x4000,
        [0x80, s[0], s[1], s[2], s[3], s[4], s[5], 0x01],
    );
    let spec = match req.name {
        "heartbeat" => DeviceSpec::heartbeat(),
        "shutdown" => DeviceSpec::shutdown(),
        "timesync" => DeviceSpec::timesync(),
        "kvp" => DeviceSpec::kvp(),
        "dynmem" => DeviceSpec::dynamic_memory(),
        "net" if !echo => DeviceSpec::network(),
        "scsi" if !echo => DeviceSpec::scsi(),
        _ => DeviceSpec::echo(req.class, instance),
    };
    DeviceSpec { instance, ..spec }.with_sub_channels(req.sub_channels)
}

/// The host's message log since `mark`, one line per message of the rescind and teardown
/// sequence (docs/lifetime.md: RESCIND, CLOSECHANNEL, GPADL_TEARDOWN, GPADL_TORNDOWN,
/// RELID_RELEASED).
fn teardown_messages(w: &World, mark: u64) -> String {
    use vmbus_driver::msg::MessageType as T;
    let wanted = [
        T::RESCIND_CHANNELOFFER,
        T::CLOSECHANNEL,
        T::GPADL_TEARDOWN,
        T::GPADL_TORNDOWN,
        T::RELID_RELEASED,
    ];
    let mut s = String::new();
    for r in w.host().log().since(mark) {
        if !wanted.contains(&r.msgtype) {
            continue;
        }
        let dir = match r.dir {
            hv_host::Direction::Sent => "host  -> guest",
            hv_host::Direction::Received => "guest -> host ",
        };
        let what = r
            .relid
            .map(|x| x.to_string())
            .or(r.gpadl.map(|g| g.to_string()))
            .unwrap_or_default();
        s.push_str(&format!("  {dir}  {:<22} {what}\n", r.msgtype.to_string()));
    }
    s
}
