//! Shared scaffolding of the scenario tests (races, soak, hostile host): a [`Rig`] that runs the
//! world of system.xml in fine steps (host, driver, clients) with the invariant [`Monitor`]
//! watching after every one, the injection sweep of the race tests, and small helpers.
//!
//! Each test binary uses only part of this module.
#![allow(dead_code)]

pub mod logcap;
pub mod monitor;

use hv_host::DeviceSpec;
use sim_system::{World, WorldConfig};
use vmbus_client::{Channel, ClientError, PendingOpen, start_open};
use vmbus_driver::driver::{ChannelState, ConnectionState};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, RelId};

pub use monitor::Monitor;

/// Fine steps per world step: host, driver, then clock + clients.
pub const PHASES: u64 = 3;

/// A world and its invariant monitor, stepped one phase at a time.
#[derive(Debug)]
pub struct Rig {
    /// The world.
    pub w: World,
    /// The invariant checker, fed after every phase.
    pub mon: Monitor,
    /// Phases run.
    pub phase: u64,
    /// Driver phases handle one SynIC message each (`World::driver_message_step`), so that
    /// injections land between any two messages of an exchange.
    pub fine: bool,
}

/// A client of system.xml by name: its id and first device class.
pub fn client(w: &World, name: &str) -> (ClientId, Guid) {
    let c = w
        .client(name)
        .unwrap_or_else(|| panic!("system.xml has no client {name}"));
    (c.id, c.classes[0])
}

/// An instance GUID for test device `n`.
pub const fn instance(n: u8) -> Guid {
    Guid([n; 16])
}

impl Rig {
    /// The repository's world with `cfg`, booted: connected, the initial `devices` offered.
    pub fn boot(cfg: &WorldConfig, devices: &[DeviceSpec]) -> Self {
        let mut w = World::repository(cfg);
        for d in devices {
            w.host_mut().add_device(*d).expect("host takes the device");
        }
        let mon = Monitor::new(&w);
        let mut rig = Self {
            w,
            mon,
            phase: 0,
            fine: true,
        };
        rig.w.start();
        let n = devices
            .iter()
            .map(|d| usize::from(d.sub_channels) + 1)
            .sum::<usize>();
        rig.run_until(
            |w| {
                w.driver().connection().state == ConnectionState::Connected
                    && w.driver_channels().len() == n
            },
            300,
        )
        .expect("boot: connected with every offer");
        rig
    }

    /// The default world booted with `devices`.
    pub fn booted(devices: &[DeviceSpec]) -> Self {
        Self::boot(&WorldConfig::default(), devices)
    }

    /// Runs one phase: the host, the driver, or the clock and every client.
    pub fn phase_step(&mut self) {
        match self.phase % PHASES {
            0 => self.w.host_step(),
            1 if self.fine => self.w.driver_message_step(),
            1 => self.w.driver_step(),
            _ => {
                self.w.advance_clock(1);
                for i in 0..self.w.instance().clients().len() {
                    // Client ids are positions in the client table (7 in system.xml).
                    self.w.client_step(ClientId(i as u16));
                }
            }
        }
        self.phase += 1;
        self.mon.observe(&self.w);
    }

    /// One world step (all three phases).
    pub fn step(&mut self) {
        for _ in 0..PHASES {
            self.phase_step();
        }
    }

    /// Phases until `cond` holds (checked before each); `Err(phases)` if it never did.
    pub fn run_until(
        &mut self,
        cond: impl Fn(&World) -> bool,
        max_phases: u64,
    ) -> Result<u64, u64> {
        for n in 0..max_phases {
            if cond(&self.w) {
                return Ok(n);
            }
            self.phase_step();
        }
        if cond(&self.w) {
            Ok(max_phases)
        } else {
            Err(max_phases)
        }
    }

    /// Runs until nothing is in flight (see [`quiet`]), then two more world steps so clients see
    /// the outcome. Panics if the system does not settle within `max_phases`.
    pub fn settle(&mut self, max_phases: u64, context: &str) {
        if let Err(n) = self.run_until(quiet, max_phases) {
            panic!(
                "{context}: not quiet after {n} phases: driver {:?}, host inbound {}, outbox {}",
                self.w.driver_channels(),
                self.w.host().inbound_pending(),
                self.w.host().outbox_pending()
            );
        }
        for _ in 0..2 {
            self.step();
        }
    }

    /// As client `id`: asks to open `relid` (non-blocking), returning the pending open.
    pub fn start_open(&mut self, id: ClientId, relid: RelId) -> Result<PendingOpen, ClientError> {
        self.w.as_client(id, |ctx| start_open(ctx, relid, 4, 4))
    }

    /// As client `id`: opens `relid` and steps until the open completes.
    pub fn open(&mut self, id: ClientId, relid: RelId) -> Channel<sim_system::ClientRingMem> {
        let p = self.start_open(id, relid).expect("open accepted");
        for _ in 0..300 {
            if let Some(ch) = self
                .w
                .as_client(id, |ctx| p.poll(ctx))
                .expect("open completes")
            {
                return ch;
            }
            self.phase_step();
        }
        panic!("open of {relid} did not complete");
    }

    /// The relid of the driver's only offer of `class` (panics if there is none or several).
    pub fn relid_of(&self, class: Guid) -> RelId {
        let rows: Vec<_> = self
            .w
            .driver_channels()
            .into_iter()
            .filter(|c| c.class == class && c.sub_channel_index == 0)
            .collect();
        assert_eq!(rows.len(), 1, "one offer of {class:?}: {rows:?}");
        rows[0].relid
    }

    /// Final checks after settling: the monitor's end checks, then no violation anywhere.
    pub fn finish(&mut self, context: &str) {
        self.mon.check_quiescent(&self.w);
        self.mon.assert_clean(context);
    }
}

/// Nothing is in flight: the host has no guest message to process and no event to send, the
/// SynIC slot and queue are empty, no interrupt is pending, and every driver channel is offered
/// or open (nothing opening or being torn down).
pub fn quiet(w: &World) -> bool {
    let h = w.host();
    let rows = w.driver_channels();
    let open = rows
        .iter()
        .filter(|c| c.state == ChannelState::Open)
        .count();
    h.inbound_pending() == 0
        && h.outbox_pending() == 0
        && h.synic().queued() == 0
        && !h.synic().slot_busy()
        && !h.synic().interrupt_pending()
        && rows
            .iter()
            .all(|c| matches!(c.state, ChannelState::Offered | ChannelState::Open))
        && w.driver().open_count() == open
}

/// The race sweep: runs `case` once without injection to learn how many phases the raced
/// sequence takes, then once per phase `k` of it with the racing input injected before phase
/// `k` (and once more after its last phase). `case(k)` returns the phases the sequence took.
/// Returns the number of injection points run.
pub fn sweep(name: &str, mut case: impl FnMut(Option<u64>) -> u64) -> u64 {
    let len = case(None);
    assert!(len > 0, "{name}: the raced sequence took no step");
    for k in 0..=len {
        case(Some(k));
    }
    eprintln!(
        "{name}: racing input injected at each of {} points",
        len + 1
    );
    len + 1
}

/// Runs the raced sequence of a sweep case: before each phase `i`, injects if `Some(i) == k`;
/// stops once `done` holds and the injection (if any) happened. Returns the phases run.
pub fn run_sequence(
    rig: &mut Rig,
    k: Option<u64>,
    max_phases: u64,
    inject: impl FnMut(&mut Rig),
    done: impl Fn(&Rig) -> bool,
    context: &str,
) -> u64 {
    run_sequence_with(rig, k, max_phases, inject, |_| {}, done, context)
}

/// As [`run_sequence`], with `drive` called before every phase (after the injection): the
/// test's own part of the sequence (host actions that wait for a state, one-off client calls).
pub fn run_sequence_with(
    rig: &mut Rig,
    k: Option<u64>,
    max_phases: u64,
    mut inject: impl FnMut(&mut Rig),
    mut drive: impl FnMut(&mut Rig),
    done: impl Fn(&Rig) -> bool,
    context: &str,
) -> u64 {
    let mut injected = k.is_none();
    for i in 0..max_phases {
        if k == Some(i) {
            inject(rig);
            injected = true;
        }
        drive(rig);
        if injected && done(rig) {
            return i;
        }
        rig.phase_step();
    }
    panic!("{context}: the sequence did not finish within {max_phases} phases");
}

/// The host's log records from sequence number `mark` on (the log keeps 1024).
pub fn log_since(w: &World, mark: u64) -> Vec<hv_host::LogRecord> {
    assert!(
        w.host().log().total() - mark <= hv_host::log::LOG_CAPACITY as u64,
        "log overran"
    );
    w.host().log().since(mark).copied().collect()
}

/// Positions in `log` of guest messages (`Received`) of type `t` that satisfy `f`.
pub fn guest_msgs(
    log: &[hv_host::LogRecord],
    t: vmbus_driver::msg::MessageType,
    f: impl Fn(&hv_host::LogRecord) -> bool,
) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, r)| r.dir == hv_host::Direction::Received && r.msgtype == t && f(r))
        .map(|(i, _)| i)
        .collect()
}

/// Positions in `log` of host messages (`Sent`) of type `t` that satisfy `f`.
pub fn host_msgs(
    log: &[hv_host::LogRecord],
    t: vmbus_driver::msg::MessageType,
    f: impl Fn(&hv_host::LogRecord) -> bool,
) -> Vec<usize> {
    log.iter()
        .enumerate()
        .filter(|(_, r)| r.dir == hv_host::Direction::Sent && r.msgtype == t && f(r))
        .map(|(i, _)| i)
        .collect()
}

/// Boots the default world, offers an echo device of `class` and opens it as client `id` with a
/// [`Channel`] kept by the test. Returns the relid.
pub fn open_echo(
    rig: &mut Rig,
    id: ClientId,
    class: Guid,
    n: u8,
    kind: hv_host::DeviceKind,
) -> (RelId, Channel<sim_system::ClientRingMem>) {
    let before = rig.w.driver_channels().len();
    rig.w
        .host_mut()
        .add_device(DeviceSpec::echo(class, instance(n)).with_kind(kind))
        .expect("host takes the device");
    rig.run_until(|w| w.driver_channels().len() == before + 1, 100)
        .expect("offered");
    let relid = rig.relid_of(class);
    let ch = rig.open(id, relid);
    (relid, ch)
}
