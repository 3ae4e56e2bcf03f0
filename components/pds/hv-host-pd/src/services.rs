//! The host's part of `system.xml`'s run: it offers the integration services and the Dynamic
//! Memory device that the system's clients serve, and once every service has negotiated it
//! plays a short script of what Hyper-V does to a running guest: heartbeats and time samples
//! (one simulated second per tick), a KVP exchange (the host's own script in `hv_host`), a
//! balloon inflate and a partial deflate, and finally a shutdown request, which the guest
//! answers by stopping in order (every channel closed, UNLOAD).
//!
//! The host runs only when the driver calls it, and the image has no timer: each step of the
//! script is taken when the guest has answered the one before, so the run moves at the pace of
//! the guest's answers. Each step prints what the host saw, the IC and Dynamic Memory message
//! trace since the last step, and at the end each service's state.

use hv_host::{DeviceSpec, DmPhase, GuestMemory, Host, IcPhase, Service};
use pd_runtime::config::Guid as ConfigGuid;
use pd_runtime::println;
use vmbus_driver::guid::Guid;

use crate::vsc::Vsc;

/// Simulated seconds (heartbeats and time samples) before the balloon is inflated.
const TICKS_BEFORE_BALLOON: u32 = 3;
/// Simulated seconds in all before the shutdown request.
const TICKS: u32 = 6;
/// Pages the host takes with its balloon request (1 MiB).
const BALLOON_PAGES: u32 = 256;
/// Pages it gives back with its unballoon request.
const UNBALLOON_PAGES: u64 = 128;
/// The host's clock at the start (2026-12-05 00:00:00 UTC as a Windows file time: 100 ns units
/// since 1601).
const START_FILETIME: u64 = 116_444_736_000_000_000 + 1_796_428_800 * 10_000_000;

/// The integration services and their device specifications, in the order they are offered.
const DEVICES: [(Service, DeviceSpec); 5] = [
    (Service::Heartbeat, DeviceSpec::heartbeat()),
    (Service::Shutdown, DeviceSpec::shutdown()),
    (Service::TimeSync, DeviceSpec::timesync()),
    (Service::Kvp, DeviceSpec::kvp()),
    (Service::DynamicMemory, DeviceSpec::dynamic_memory()),
];

/// Where the script is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for every offered service to negotiate.
    Negotiating,
    /// Heartbeats and time samples, `ticks` seconds so far.
    Ticking,
    /// The balloon request is out.
    Inflating,
    /// The unballoon request is out.
    Deflating,
    /// The shutdown request is out.
    ShutdownAsked,
    /// The guest answered the shutdown and unloaded the bus.
    Done,
}

/// The script's state.
#[derive(Debug)]
pub struct Services {
    offered: [bool; DEVICES.len()],
    phase: Phase,
    ticks: u32,
    trace_seen: u64,
    /// The network and storage run.
    vsc: Vsc,
    /// Why the script failed, once it has.
    pub failed: Option<&'static str>,
}

/// Whether the system's clients (`classes`: every class they serve, from the host's generated
/// configuration) serve one of the integration-service or Dynamic Memory classes.
pub fn serves(classes: &[ConfigGuid]) -> bool {
    DEVICES.iter().any(|(_, spec)| served(classes, spec.class)) || crate::vsc::serves(classes)
}

fn served(classes: &[ConfigGuid], class: Guid) -> bool {
    classes.iter().any(|g| Guid(g.0) == class)
}

impl Services {
    /// Offers the device of each service some client of the system serves.
    pub fn new(host: &mut Host, classes: &[ConfigGuid]) -> Services {
        let mut offered = [false; DEVICES.len()];
        for ((service, spec), on) in DEVICES.iter().zip(&mut offered) {
            if !served(classes, spec.class) {
                continue;
            }
            match host.add_device(*spec) {
                Ok(_) => *on = true,
                Err(e) => println!("hv-host: adding the {service} device: {e}"),
            }
        }
        let vsc = Vsc::new(host, classes);
        host.set_host_time(START_FILETIME);
        println!(
            "hv-host: {} service devices ready; waiting for the guest's INITIATE_CONTACT",
            offered.iter().filter(|&&o| o).count()
        );
        Services {
            offered,
            phase: Phase::Negotiating,
            ticks: 0,
            trace_seen: 0,
            vsc,
            failed: None,
        }
    }

    fn is_offered(&self, s: Service) -> bool {
        DEVICES
            .iter()
            .zip(&self.offered)
            .any(|((svc, _), &on)| *svc == s && on)
    }

    /// Prints the trace records since the last call.
    fn print_trace(&mut self, host: &Host) {
        for r in host.trace().since(self.trace_seen) {
            println!("hv-host: trace: {r}");
            self.trace_seen = r.seq + 1;
        }
    }

    fn negotiated(&self, host: &Host) -> bool {
        let ics = [
            Service::Heartbeat,
            Service::Shutdown,
            Service::TimeSync,
            Service::Kvp,
        ];
        ics.iter()
            .filter(|s| self.is_offered(**s))
            .all(|s| host.ic(*s).phase() == IcPhase::Ready)
            && (!self.is_offered(Service::DynamicMemory) || host.dm().phase() == DmPhase::Ready)
    }

    /// Every heartbeat and time sample sent so far was answered (or refused): the guest has
    /// caught up and the next simulated second may start.
    fn caught_up(&self, host: &Host) -> bool {
        [Service::Heartbeat, Service::TimeSync]
            .iter()
            .filter(|s| self.is_offered(**s))
            .all(|s| {
                let st = host.ic(*s).stats();
                st.answers + st.refused + st.unanswered >= st.requests
            })
    }

    /// Takes the next step after the host ran (`true` when it changed something the host
    /// must act on: poll again).
    pub fn step<G: GuestMemory>(&mut self, host: &mut Host, mem: &mut G) -> bool {
        self.print_trace(host);
        if self.failed.is_some() {
            return false;
        }
        let vsc_changed = self.vsc.step(host, mem);
        if let Some(why) = self.vsc.failed {
            self.failed = Some(why);
            return false;
        }
        vsc_changed | self.step_services(host, mem)
    }

    fn step_services<G: GuestMemory>(&mut self, host: &mut Host, mem: &mut G) -> bool {
        match self.phase {
            Phase::Negotiating => {
                if self.negotiated(host) {
                    println!("hv-host: every service negotiated");
                    self.phase = Phase::Ticking;
                    return self.tick(host);
                }
                false
            }
            Phase::Ticking => {
                if !self.caught_up(host) {
                    return false;
                }
                if host.ic(Service::Heartbeat).heartbeat_wrong() != 0 {
                    self.failed = Some("a heartbeat was answered with the wrong sequence number");
                    return false;
                }
                if self.ticks == TICKS_BEFORE_BALLOON && self.is_offered(Service::DynamicMemory) {
                    return match host.balloon(BALLOON_PAGES) {
                        Ok(()) => {
                            println!("hv-host: balloon request: {BALLOON_PAGES} pages");
                            self.phase = Phase::Inflating;
                            true
                        }
                        Err(e) => self.fail("the balloon request could not be sent", e),
                    };
                }
                if self.ticks >= TICKS {
                    // The network and storage clients keep their traffic going: the host runs
                    // again on their calls until their run is done.
                    return self.vsc.done() && self.ask_shutdown(host);
                }
                self.tick(host)
            }
            Phase::Inflating => {
                let dm = host.dm();
                if dm.balloon_pending().is_some() {
                    return false;
                }
                println!(
                    "hv-host: the guest ballooned {} pages in {} ranges ({} refused by the host's checks); writing into them",
                    dm.pages_held(),
                    dm.ranges().len(),
                    dm.rejected_pages()
                );
                if dm.pages_held() != u64::from(BALLOON_PAGES) || dm.rejected_pages() != 0 {
                    self.failed = Some("the balloon answer is not the pages asked for");
                    return false;
                }
                match host.unballoon(UNBALLOON_PAGES) {
                    Ok(n) => {
                        println!("hv-host: unballoon request: {n} pages back to the guest");
                        self.phase = Phase::Deflating;
                        true
                    }
                    Err(e) => self.fail("the unballoon request could not be sent", e),
                }
            }
            Phase::Deflating => {
                if host.dm().unballoon_pending() {
                    return false;
                }
                let scribbled = host.dm_scribbled_pages(mem);
                println!(
                    "hv-host: the guest took {UNBALLOON_PAGES} pages back; {scribbled} of them still hold what the host wrote"
                );
                if scribbled != 0 {
                    // The driver zeroes a page when it takes it back, before the pool has it.
                    self.failed = Some("deflated pages were not zeroed");
                    return false;
                }
                self.phase = Phase::Ticking;
                self.tick(host)
            }
            Phase::ShutdownAsked => {
                let status = host.ic(Service::Shutdown).shutdown_status();
                if status.is_some_and(|st| st != 0) {
                    self.failed = Some("the guest refused the shutdown");
                    return false;
                }
                if status.is_some() && host.connection().version().is_none() {
                    println!("hv-host: the guest closed its channels and unloaded the bus");
                    self.phase = Phase::Done;
                }
                false
            }
            Phase::Done => false,
        }
    }

    fn tick(&mut self, host: &mut Host) -> bool {
        self.ticks += 1;
        host.ic_tick();
        true
    }

    fn ask_shutdown(&mut self, host: &mut Host) -> bool {
        self.summary(host);
        if !self.is_offered(Service::Shutdown) {
            self.phase = Phase::Done;
            return false;
        }
        match host.request_shutdown(0) {
            Ok(()) => {
                println!("hv-host: shutdown request (power off)");
                self.phase = Phase::ShutdownAsked;
                true
            }
            Err(e) => self.fail("the shutdown request could not be sent", e),
        }
    }

    fn fail(&mut self, why: &'static str, e: impl core::fmt::Display) -> bool {
        println!("hv-host: {why}: {e}");
        self.failed = Some(why);
        false
    }

    /// Each service's state as the host sees it.
    fn summary(&self, host: &Host) {
        for s in [
            Service::Heartbeat,
            Service::Shutdown,
            Service::TimeSync,
            Service::Kvp,
        ] {
            if !self.is_offered(s) {
                continue;
            }
            let ic = host.ic(s);
            let st = ic.stats();
            match ic.agreed() {
                Some((fw, svc)) => println!(
                    "hv-host: {s}: framework {fw}, service {svc}; {} requests, {} answers, {} refused",
                    st.requests, st.answers, st.refused
                ),
                None => println!("hv-host: {s}: not negotiated ({:?})", ic.phase()),
            }
        }
        if self.is_offered(Service::Heartbeat) {
            let hb = host.ic(Service::Heartbeat);
            println!(
                "hv-host: heartbeat: sequence {}, last answered {:?}, wrong answers {}",
                hb.heartbeat_sequence(),
                hb.heartbeat_last_answered(),
                hb.heartbeat_wrong()
            );
        }
        if let Some(t) = host.ic(Service::TimeSync).timesync_last_sample() {
            println!(
                "hv-host: timesync: {} samples; last: host time {} s after 1970, reference {}",
                host.ic(Service::TimeSync).timesync_samples(),
                t.host_time.saturating_sub(116_444_736_000_000_000) / 10_000_000,
                t.ref_time
            );
        }
        for e in host.kvp_entries() {
            let mut key = heapless_string();
            let mut value = heapless_string();
            for c in e.key_chars() {
                let _ = key.push(c);
            }
            for c in e.value_chars() {
                let _ = value.push(c);
            }
            println!("hv-host: kvp: pool {}: {} = {}", e.pool, key, value);
        }
        if self.is_offered(Service::DynamicMemory) {
            let dm = host.dm();
            println!(
                "hv-host: dynamic memory: protocol {:#x}, {} status reports (last avail/committed {:?}), {} pages held by the host",
                dm.version().unwrap_or(0),
                dm.status_reports(),
                dm.last_status(),
                dm.pages_held()
            );
        }
    }
}

/// A short string for a log line.
fn heapless_string() -> heapless::String<96> {
    heapless::String::new()
}
