//! The service clients of the main job: the programs of `sim_system::services` on the clients
//! whose first class is an integration service or Dynamic Memory, and what the report shows of
//! each (with the host's side of the same service).

use std::fmt::Write as _;

use hv_host::Service;
use ic::kvp::Kvp;
use ic::service::Negotiation;
use ic::services::{Heartbeat, Shutdown, TimeSync};
use ic::shutdown::Request as HostRequest;
use sim_system::services::{
    DynMemClient, DynMemHandle, GUEST_INFO, IcClient, IcHandle, IcService, KVP_STORE, LinkStats,
    Pause,
};
use sim_system::{ClientInfo, ClientProgram, World};
use vmbus_driver::driver::{StopKind, UnloadEnd};
use vmbus_driver::guid::{self, Guid};

use super::program::Totals;

type KvpSvc = Kvp<'static, KVP_STORE>;

/// The service programs installed, by service.
#[derive(Debug, Default)]
pub(crate) struct Services {
    pub heartbeat: Option<IcHandle<Heartbeat>>,
    pub shutdown: Option<IcHandle<Shutdown>>,
    pub timesync: Option<IcHandle<TimeSync>>,
    pub kvp: Option<IcHandle<KvpSvc>>,
    pub dynmem: Option<DynMemHandle>,
    /// The pause switches of the integration services (the balloon client keeps its channel:
    /// see [`Services::pause_ic`]).
    pauses: Vec<Pause>,
}

/// Whether `c` runs a service program (its first class is a service's).
pub(crate) fn is_service(c: &ClientInfo) -> bool {
    c.classes.first().is_some_and(|g| {
        [
            guid::HEARTBEAT,
            guid::SHUTDOWN,
            guid::TIME_SYNC,
            guid::KVP,
            guid::DYNAMIC_MEMORY,
        ]
        .contains(g)
    })
}

fn ic<S: IcService>(
    service: S,
    class: Guid,
    pauses: &mut Vec<Pause>,
) -> (IcClient<S>, IcHandle<S>) {
    let p = IcClient::with_class(service, class);
    pauses.push(p.pause_switch());
    let h = p.handle();
    (p, h)
}

impl Services {
    /// Installs the service program of every service client of `w` (time sync first, so that
    /// the shutdown program can read its clock).
    pub(crate) fn install(w: &mut World) -> Self {
        let mut s = Self::default();
        let clients: Vec<ClientInfo> = w.instance().clients().to_vec();
        let mut order: Vec<&ClientInfo> = clients.iter().filter(|c| is_service(c)).collect();
        order.sort_by_key(|c| c.classes[0] != guid::TIME_SYNC);
        for c in order {
            let class = c.classes[0];
            let program: Box<dyn ClientProgram> = if class == guid::HEARTBEAT {
                let (p, h) = ic(Heartbeat::default(), class, &mut s.pauses);
                s.heartbeat = Some(h);
                Box::new(p)
            } else if class == guid::TIME_SYNC {
                let (p, h) = ic(TimeSync::default(), class, &mut s.pauses);
                s.timesync = Some(h);
                Box::new(p)
            } else if class == guid::SHUTDOWN {
                let (p, h) = ic(Shutdown::default(), class, &mut s.pauses);
                s.shutdown = Some(h);
                match &s.timesync {
                    Some(clock) => Box::new(p.with_clock(clock.clone())),
                    None => Box::new(p),
                }
            } else if class == guid::KVP {
                let (p, h) = ic(KvpSvc::new(GUEST_INFO), class, &mut s.pauses);
                s.kvp = Some(h);
                Box::new(p)
            } else {
                let p = DynMemClient::with_class(class);
                s.dynmem = Some(p.handle());
                s.pauses.push(p.pause_switch());
                Box::new(p)
            };
            w.set_program(c.id, program);
        }
        s
    }

    /// Has every service program close its channel (`true`) or open again. The balloon client
    /// keeps its record across the reopen, and the host the pages it holds, so a later deflate
    /// still returns them.
    pub(crate) fn pause_ic(&self, pause: bool) {
        for p in &self.pauses {
            if pause { p.pause() } else { p.resume() }
        }
    }

    /// The services' connection counters, as client totals.
    pub(crate) fn totals(&self) -> Totals {
        let mut links: Vec<LinkStats> = Vec::new();
        links.extend(self.heartbeat.as_ref().map(IcHandle::link));
        links.extend(self.shutdown.as_ref().map(IcHandle::link));
        links.extend(self.timesync.as_ref().map(IcHandle::link));
        links.extend(self.kvp.as_ref().map(IcHandle::link));
        links.extend(self.dynmem.as_ref().map(DynMemHandle::link));
        let mut t = Totals::default();
        for l in links {
            t.opens_started += l.opens_started;
            t.opens += l.opens;
            t.open_failures += l.open_failures;
            t.gone += l.gone;
            t.closed += l.closed;
            t.errors += l.errors;
        }
        t
    }
}

/// What the summary shows of the services at the end of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceReport {
    /// One line per service (and per fact), ready to print.
    pub lines: Vec<String>,
    /// Heartbeat: the host's last sequence sent and the last correct answer.
    pub heartbeat: Option<(u64, Option<u64>)>,
    /// Time sync: samples taken by the client.
    pub samples: u64,
    /// KVP: pairs in the client's store.
    pub kvp_pairs: usize,
    /// Pages the host holds in its balloon.
    pub host_held: u64,
    /// Pages the driver lends.
    pub lent: usize,
    /// Balloon: pages inflated and deflated in all (client's counts).
    pub inflated: u64,
    /// Balloon pages deflated in all.
    pub deflated: u64,
    /// Requests the service clients refused (never answered).
    pub refused: u64,
    /// The orderly stop, if one ended.
    pub stop: Option<(StopKind, Option<UnloadEnd>)>,
}

/// Unix seconds as a UTC date and time (proleptic Gregorian calendar).
pub(crate) fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn negotiation(n: Negotiation) -> String {
    match n {
        Negotiation::Pending => "not negotiated".into(),
        Negotiation::NoCommonVersion => "no common version".into(),
        Negotiation::Agreed { framework, service } => format!(
            "framework {}.{} service {}.{}",
            framework.major, framework.minor, service.major, service.minor
        ),
    }
}

fn link(l: &LinkStats) -> String {
    format!("opens {} gone {} closed {}", l.opens, l.gone, l.closed)
}

impl ServiceReport {
    /// Gathers the services' state from their handles and the host.
    pub(crate) fn gather(w: &World, s: &Services) -> Self {
        let mut r = Self::default();
        let host = w.host();
        let mut line = |text: String| r.lines.push(text);
        if let Some(h) = &s.heartbeat {
            let hc = host.ic(Service::Heartbeat);
            r.heartbeat = Some((hc.heartbeat_sequence(), hc.heartbeat_last_answered()));
            r.refused += h.refused();
            line(format!(
                "heartbeat: {}; sequence {} on this channel, answered {}; host sent {} requests, {} answered, wrong {}, unanswered {}; guest refused {}; {}",
                negotiation(h.negotiation()),
                hc.heartbeat_sequence(),
                hc.heartbeat_last_answered()
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                hc.stats().requests,
                hc.stats().answers,
                hc.heartbeat_wrong(),
                hc.stats().unanswered,
                h.refused(),
                link(&h.link())
            ));
        }
        if let Some(h) = &s.timesync {
            r.samples = h.samples();
            r.refused += h.refused();
            let last = h.last_sample().map_or_else(
                || "none".into(),
                |(sample, _)| {
                    sample.unix_nanos().map_or_else(
                        || "before 1970".into(),
                        |ns| format!("host time {}", utc(ns / 1_000_000_000)),
                    )
                },
            );
            let clock = h
                .clock_at(host.reference_time())
                .map_or_else(|| "not set".into(), |ns| utc(ns / 1_000_000_000));
            line(format!(
                "timesync:  {}; {} samples taken (host sent {} requests), last sample: {last}; guest clock now {clock}; refused {}; {}",
                negotiation(h.negotiation()),
                h.samples(),
                host.ic(Service::TimeSync).stats().requests,
                h.refused(),
                link(&h.link())
            ));
        }
        if let Some(h) = &s.kvp {
            let pairs = h.pairs();
            r.kvp_pairs = pairs.len();
            r.refused += h.refused();
            let ops = h.ops();
            let statuses = host.kvp_statuses();
            line(format!(
                "kvp:       {}; host SET/GET/DELETE answers {} ok {} failed; guest done enumerate {} set {} get {} delete {}; refused {}; {}",
                negotiation(h.negotiation()),
                statuses.iter().filter(|(_, st)| *st == 0).count(),
                statuses.iter().filter(|(_, st)| *st != 0).count(),
                ops.done[3],
                ops.done[1],
                ops.done[0],
                ops.done[2],
                h.refused(),
                link(&h.link())
            ));
            for p in pairs {
                line(format!(
                    "  guest store, pool {}: {} = {:?}",
                    p.pool, p.key, p.value
                ));
            }
            // The host keeps what it read over every open: each pair once.
            let mut seen: Vec<(u8, String, String)> = Vec::new();
            for e in host.kvp_entries() {
                let entry = (e.pool, e.key_chars().collect(), e.value_chars().collect());
                if !seen.contains(&entry) {
                    seen.push(entry);
                }
            }
            for (pool, key, value) in seen {
                line(format!("  host read, pool {pool}: {key} = {value:?}"));
            }
        }
        if let Some(h) = &s.dynmem {
            let st = h.stats();
            let dm = host.dm();
            r.host_held = dm.pages_held();
            r.lent = w.driver().lent_pages();
            r.inflated = st.inflated_total;
            r.deflated = st.deflated_total;
            let state = h.state();
            line(format!(
                "dynmem:    protocol {}; balloon: host holds {} pages, driver lends {}, client ballooned {} (inflated {} deflated {} in all), refused {}; status reports {} (host got {}, last free {} of {}); {}",
                state
                    .version
                    .map_or_else(|| "none".into(), |v| v.to_string()),
                dm.pages_held(),
                r.lent,
                st.ballooned_now,
                st.inflated_total,
                st.deflated_total,
                st.refused + state.startup_refused,
                state.status_reports,
                dm.status_reports(),
                dm.last_status().map_or(0, |s| s.0),
                w.instance().pool().pages,
                link(&state.link)
            ));
        }
        if let Some(h) = &s.shutdown {
            let reqs: Vec<String> = h
                .requests()
                .iter()
                .map(|q| match q {
                    HostRequest::Shutdown { forced } => format!("shut down (forced {forced})"),
                    HostRequest::Restart { forced } => format!("restart (forced {forced})"),
                    HostRequest::Hibernate => "hibernate (refused)".into(),
                    HostRequest::Unknown(f) => format!("unknown {f:#x} (refused)"),
                })
                .collect();
            r.refused += h.refused();
            let stop = w.driver().stopping();
            r.stop = w
                .driver()
                .stopped()
                .map(|k| (k, stop.and_then(|s| s.unload)));
            let stopped = match r.stop {
                Some((k, u)) => format!(
                    "system stopped: {}, every channel closed, UNLOAD {}",
                    match k {
                        StopKind::PowerOff => "power off",
                        StopKind::Restart => "restart",
                    },
                    match u {
                        Some(UnloadEnd::Answered) => "answered",
                        Some(UnloadEnd::TimedOut) => "timed out",
                        Some(UnloadEnd::NotSent) | None => "not sent",
                    }
                ),
                None => "no stop".into(),
            };
            let when = h
                .state()
                .extra
                .stop_clock
                .map(|ns| format!(" at {}", utc(ns / 1_000_000_000)))
                .unwrap_or_default();
            line(format!(
                "shutdown:  {}; host requests [{}], status {}; stop asked {}{when}; {stopped}; {}",
                negotiation(h.negotiation()),
                reqs.join(", "),
                host.ic(Service::Shutdown)
                    .shutdown_status()
                    .map_or_else(|| "-".into(), |s| format!("{s:#x}")),
                match h.stop_asked() {
                    Some(true) => "restart",
                    Some(false) => "power off",
                    None => "no",
                },
                link(&h.link())
            ));
        }
        r
    }

    /// The summary's service section.
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            let _ = writeln!(s, "{l}");
        }
        s
    }
}
