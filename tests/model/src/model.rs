//! The stateright [`Model`]: which actions each party may take in a state, and what they do.

use core::fmt;

use stateright::{Model, Property};

use crate::config::Config;
use crate::driver;
use crate::host::{self, Reply};
use crate::properties;
use crate::state::{Conn, Handle, NONE, PageState, State};
use crate::symmetry;

/// One atomic step of one party.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The host offers a relid (environment).
    HostOffer(u8),
    /// The host rescinds a relid (environment).
    HostRescind(u8),
    /// The host signals an open channel's event flag (environment).
    HostSignal(u8),
    /// The host handles the next guest message, answering as chosen (system).
    HostReceive(Reply),
    /// The driver's interrupt with a message in the slot: take the event flags, then handle the
    /// message (system).
    DriverMessage,
    /// The driver's interrupt with only event flags set (system).
    DriverEvents,
    /// The oldest waits for a host reply time out (system).
    DriverTimeout,
    /// Client `.0` asks to open relid `.1` (environment).
    ClientOpen(u8, u8),
    /// Client `.0` closes its handle to relid `.1` (environment).
    ClientClose(u8, u8),
    /// Client `.0` faults (environment).
    ClientFault(u8),
    /// The driver PD is told to unload the bus (environment).
    Unload,
    /// The kernel will fail the operation (grant, revoke or zero) on pool page `.0` that the
    /// next step makes, if it makes one (environment).
    KernelFault(u8),
}

impl Action {
    /// A step of the system under the lifetime rule (driver, or the host answering), as opposed
    /// to a new stimulus from the environment. Liveness is checked over system steps alone.
    pub fn is_system(self) -> bool {
        matches!(
            self,
            Self::HostReceive(_) | Self::DriverMessage | Self::DriverEvents | Self::DriverTimeout
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HostOffer(r) => write!(f, "host offers relid {}", r + 1),
            Self::HostRescind(r) => write!(f, "host rescinds relid {}", r + 1),
            Self::HostSignal(r) => write!(f, "host signals relid {}", r + 1),
            Self::HostReceive(reply) => write!(f, "host receives next message ({reply:?})"),
            Self::DriverMessage => f.write_str("driver: interrupt with the next host message"),
            Self::DriverEvents => f.write_str("driver: interrupt with event flags only"),
            Self::DriverTimeout => {
                f.write_str("driver: the oldest waits for a host reply time out")
            }
            Self::ClientOpen(c, r) => write!(f, "client {c} opens relid {}", r + 1),
            Self::ClientClose(c, r) => write!(f, "client {c} closes relid {}", r + 1),
            Self::ClientFault(c) => write!(f, "client {c} faults"),
            Self::Unload => f.write_str("driver unloads the bus"),
            Self::KernelFault(p) => {
                write!(
                    f,
                    "the kernel will fail the next step's operation on page {p}"
                )
            }
        }
    }
}

/// The channel-lifetime model for one [`Config`].
#[derive(Clone, Debug)]
pub struct LifetimeModel {
    /// Bounds and variant.
    pub cfg: Config,
}

impl LifetimeModel {
    /// A model of `cfg`. Call [`Config::validate`] first; out-of-range bounds panic here.
    pub fn new(cfg: Config) -> Self {
        if let Err(e) = cfg.validate() {
            panic!("invalid model configuration: {e}");
        }
        Self { cfg }
    }

    /// The single initial state: connected, nothing offered, every page in the pool.
    pub fn init(&self) -> State {
        State::default()
    }

    /// Every action enabled in `s`, in a fixed order.
    pub fn enabled(&self, s: &State, out: &mut Vec<Action>) {
        let cfg = &self.cfg;
        if s.violations != 0 {
            // A run that broke a rule is over: its violation is reported, and exploring past it
            // only multiplies broken states.
            return;
        }
        let mut replies = Vec::new();
        host::replies(cfg, s, &mut replies);
        out.extend(replies.into_iter().map(Action::HostReceive));
        if !s.to_driver.is_empty() {
            out.push(Action::DriverMessage);
        }
        if s.host.flags.iter().any(Option::is_some) {
            out.push(Action::DriverEvents);
        }
        if cfg.reply_timeouts && s.drv.iter().any(|c| c.phase.is_waiting()) {
            out.push(Action::DriverTimeout);
        }
        for r in 0..cfg.channels as u8 {
            out.push(Action::HostOffer(r));
            out.push(Action::HostRescind(r));
            out.push(Action::HostSignal(r));
        }
        let driver_alive = s.conn != Conn::Unloaded;
        for c in 0..cfg.clients as u8 {
            let client = &s.clients[usize::from(c)];
            if client.faulted || !driver_alive {
                continue;
            }
            for r in 0..cfg.channels as u8 {
                match client.handles[usize::from(r)] {
                    Handle::None => out.push(Action::ClientOpen(c, r)),
                    Handle::Current | Handle::Stale => out.push(Action::ClientClose(c, r)),
                }
            }
            out.push(Action::ClientFault(c));
        }
        if cfg.unload && s.conn == Conn::Connected {
            out.push(Action::Unload);
        }
        for p in 0..cfg.pages as u8 {
            if self.fault_possible(s, p) {
                out.push(Action::KernelFault(p));
            }
        }
    }

    /// A failure may be armed for page `p`: the run's budget is not spent, none is armed, the
    /// bus is not unloaded, and the page is shared (in use, or quarantined awaiting a late
    /// GPADL_TORNDOWN) and not already tainted.
    fn fault_possible(&self, s: &State, p: u8) -> bool {
        usize::from(p) < self.cfg.pages
            && s.kernel.failures < self.cfg.kernel_failures
            && s.conn != Conn::Unloaded
            && s.kernel.armed == NONE
            && s.kernel.pages[usize::from(p)] != PageState::Pool
            && !s.kernel.is_tainted(p)
    }

    /// Applies `action` to `s`; `None` when the action is not enabled or changes nothing.
    pub fn step(&self, s: &State, action: Action) -> Option<State> {
        let cfg = &self.cfg;
        let mut n = *s;
        match action {
            Action::HostOffer(r) => {
                if !host::offer(cfg, &mut n, r) {
                    return None;
                }
            }
            Action::HostRescind(r) => {
                if !host::rescind(&mut n, r) {
                    return None;
                }
            }
            Action::HostSignal(r) => {
                if !host::signal(&mut n, r) {
                    return None;
                }
            }
            Action::HostReceive(reply) => {
                let mut ok = Vec::new();
                host::replies(cfg, s, &mut ok);
                if !ok.contains(&reply) {
                    return None;
                }
                host::receive(&mut n, reply);
            }
            Action::DriverMessage => {
                if s.to_driver.is_empty() {
                    return None;
                }
                driver::on_message(cfg, &mut n);
            }
            Action::DriverEvents => {
                if s.host.flags.iter().all(Option::is_none) {
                    return None;
                }
                driver::deliver_events(&mut n);
            }
            Action::DriverTimeout => {
                if !cfg.reply_timeouts || s.drv.iter().all(|c| !c.phase.is_waiting()) {
                    return None;
                }
                driver::on_timeout(cfg, &mut n);
            }
            Action::ClientOpen(c, r) => {
                let client = &s.clients[usize::from(c)];
                if !self.client_may_act(s, c) || client.handles[usize::from(r)] != Handle::None {
                    return None;
                }
                driver::on_open(cfg, &mut n, c, r);
            }
            Action::ClientClose(c, r) => {
                let client = &s.clients[usize::from(c)];
                if !self.client_may_act(s, c) || client.handles[usize::from(r)] == Handle::None {
                    return None;
                }
                driver::on_close(cfg, &mut n, c, r);
            }
            Action::ClientFault(c) => {
                if !self.client_may_act(s, c) {
                    return None;
                }
                driver::on_fault(cfg, &mut n, c);
            }
            Action::Unload => {
                if !cfg.unload || s.conn != Conn::Connected {
                    return None;
                }
                driver::on_unload(cfg, &mut n);
            }
            Action::KernelFault(p) => {
                if !self.fault_possible(s, p) {
                    return None;
                }
                n.kernel.armed = p;
            }
        }
        if !matches!(action, Action::KernelFault(_)) {
            // A failure armed for this step and not used by it is gone: the step ran as if it
            // had never been armed (and the run's budget is untouched).
            n.kernel.armed = NONE;
        }
        if n == *s {
            return None;
        }
        Some(if cfg.symmetry {
            symmetry::canonical(&n, cfg.clients)
        } else {
            n
        })
    }

    fn client_may_act(&self, s: &State, c: u8) -> bool {
        usize::from(c) < self.cfg.clients
            && !s.clients[usize::from(c)].faulted
            && s.conn != Conn::Unloaded
    }

    /// Whether `s` is a proper end: the bus is unloaded and nothing is in flight.
    pub fn is_final(&self, s: &State) -> bool {
        s.conn == Conn::Unloaded && s.to_driver.is_empty() && s.to_host.is_empty()
    }

    /// Whether a state without successors is a proper end rather than a deadlock: the bus is
    /// unloaded, or (when the model has no unload) nothing is owed and nothing can happen, or a
    /// violation already ended the run.
    pub fn is_end(&self, s: &State) -> bool {
        s.violations != 0 || self.is_final(s) || (!self.cfg.unload && properties::settled(s))
    }

    /// The `(action, next state)` pairs of `s` (actions that change nothing are left out).
    pub fn successors(&self, s: &State) -> Vec<(Action, State)> {
        let mut actions = Vec::new();
        self.enabled(s, &mut actions);
        actions
            .into_iter()
            .filter_map(|a| self.step(s, a).map(|n| (a, n)))
            .collect()
    }
}

impl Model for LifetimeModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.init()]
    }

    fn actions(&self, state: &State, actions: &mut Vec<Action>) {
        self.enabled(state, actions);
    }

    fn next_state(&self, last_state: &State, action: Action) -> Option<State> {
        self.step(last_state, action)
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }

    fn properties(&self) -> Vec<Property<Self>> {
        properties::all()
    }
}
