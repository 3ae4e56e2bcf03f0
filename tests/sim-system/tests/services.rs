//! The service programs of `system.xml` (`sim_system::services`) against the simulated host's
//! real devices, over the full driver and the simulated seL4 kernel: negotiation, each
//! service's requests, the balloon's page ownership, the orderly stop, and each hostile switch
//! of the host's integration services and Dynamic Memory.

use hv_host::devices::kvp::KvpStep;
use hv_host::devices::timesync::{TICK_100NS, UNIX_EPOCH_FILETIME};
use hv_host::{DeviceId, DeviceSpec, Hostile, IcPhase, Service};
use ic::kvp::{AUTO_KEYS, Kvp};
use ic::service::Negotiation;
use ic::services::{Heartbeat, Shutdown, TimeSync};
use ic::shutdown::Request as HostRequest;
use sel4_sim::FrameId;
use sim_system::services::{DynMemClient, DynMemHandle, GUEST_INFO, IcClient, IcHandle, KVP_STORE};
use sim_system::{World, WorldConfig};
use vmbus_driver::control::Response;
use vmbus_driver::driver::{ConnectionState, StopKind, UnloadEnd};
use vmbus_driver::ids::PageId;

type KvpSvc = Kvp<'static, KVP_STORE>;

/// The repository's system with the five service devices and the five service programs.
struct Sys {
    w: World,
    hb: IcHandle<Heartbeat>,
    sd: IcHandle<Shutdown>,
    ts: IcHandle<TimeSync>,
    kvp: IcHandle<KvpSvc>,
    dm: DynMemHandle,
    devs: [DeviceId; 5],
}

const SPECS: [fn() -> DeviceSpec; 5] = [
    DeviceSpec::heartbeat,
    DeviceSpec::shutdown,
    DeviceSpec::timesync,
    DeviceSpec::kvp,
    DeviceSpec::dynamic_memory,
];

impl Sys {
    /// Booted with `hostile` on from the start; every program installed.
    fn with_hostile(hostile: Hostile) -> Self {
        let mut w = World::repository(&WorldConfig::default());
        w.host_mut().set_hostile(hostile);
        let devs = SPECS.map(|s| w.host_mut().add_device(s()).expect("host takes the device"));
        let hb = IcClient::new(Heartbeat::default());
        let ts = IcClient::new(TimeSync::default());
        let sd = IcClient::new(Shutdown::default()).with_clock(ts.handle());
        let kvp = IcClient::new(KvpSvc::new(GUEST_INFO));
        let dm = DynMemClient::new();
        let handles = (
            hb.handle(),
            sd.handle(),
            ts.handle(),
            kvp.handle(),
            dm.handle(),
        );
        let id = |w: &World, n: &str| w.client(n).unwrap().id;
        for (name, p) in [
            (
                "heartbeat",
                Box::new(hb) as Box<dyn sim_system::ClientProgram>,
            ),
            ("shutdown", Box::new(sd)),
            ("timesync", Box::new(ts)),
            ("kvp", Box::new(kvp)),
            ("dynmem", Box::new(dm)),
        ] {
            let c = id(&w, name);
            w.set_program(c, p);
        }
        w.start();
        w.run_until(
            |w| w.driver().connection().state == ConnectionState::Connected,
            200,
        )
        .expect("connects");
        let (hb, sd, ts, kvp, dm) = handles;
        let mut s = Self {
            w,
            hb,
            sd,
            ts,
            kvp,
            dm,
            devs,
        };
        s.run(30);
        s
    }

    fn boot() -> Self {
        let s = Self::with_hostile(Hostile::NONE);
        for svc in [
            Service::Heartbeat,
            Service::Shutdown,
            Service::TimeSync,
            Service::Kvp,
        ] {
            assert_eq!(s.w.host().ic(svc).phase(), IcPhase::Ready, "{svc}");
        }
        assert!(s.dm.ready(), "{:?}", s.dm.state());
        s
    }

    fn run(&mut self, n: u64) {
        self.w.run(n);
    }

    /// `n` simulated seconds: a host tick, then a few steps for the answers.
    fn ticks(&mut self, n: u64) {
        for _ in 0..n {
            self.w.host_mut().ic_tick();
            self.run(3);
        }
    }

    fn until(&mut self, what: &str, cond: impl FnMut(&World) -> bool) {
        self.w
            .run_until(cond, 400)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    /// Inflates the balloon by `pages` and waits for the host to hold them.
    fn inflate(&mut self, pages: u32) {
        let held = self.w.host().dm().pages_held();
        self.w.host_mut().balloon(pages).expect("balloon request");
        self.until("the balloon answered", |w| {
            w.host().dm().balloon_pending().is_none()
                && w.host().dm().pages_held() == held + u64::from(pages)
        });
    }

    /// The pool page and frame of guest frame number `pfn`.
    fn page_of(&self, pfn: u64) -> (PageId, FrameId) {
        *self
            .w
            .instance()
            .pool()
            .by_pfn
            .get(&pfn)
            .unwrap_or_else(|| panic!("{pfn:#x} is no pool page"))
    }

    /// Whether any client, or the driver, maps `frame` (the kernel model's page tables).
    fn mapped_anywhere(&self, page: PageId, frame: FrameId) -> Vec<String> {
        let k = self.w.instance().kernel().borrow();
        let mut at = Vec::new();
        for c in self.w.instance().clients() {
            for i in 0..c.window_pages {
                let v = c.window_base + (i as u64) * 4096;
                if let Ok(Some(m)) = k.sim.mapping(c.pd, v)
                    && m.frame == frame
                {
                    at.push(format!("{} at {v:#x}", c.name));
                }
            }
        }
        let vaddr = k.seam.pool_vaddr(page).unwrap();
        if let Ok(Some(m)) = k.sim.mapping(self.w.instance().driver(), vaddr)
            && m.frame == frame
        {
            at.push("the driver".into());
        }
        if k.seam.grant_count(page) > 0 {
            at.push("a granted copy".into());
        }
        at
    }

    /// Every page the host holds now.
    fn held_pfns(&self) -> Vec<u64> {
        self.w
            .host()
            .dm()
            .ranges()
            .iter()
            .flat_map(|r| r.start..r.start + u64::from(r.count))
            .collect()
    }

    fn set_hostile(&mut self, h: Hostile) {
        self.w.host_mut().set_hostile(h);
    }

    /// Removes service device `i` and offers it again; waits for the program to reopen.
    fn readd(&mut self, i: usize) {
        self.w.host_mut().remove_device(self.devs[i]).unwrap();
        self.run(40);
        self.devs[i] = self.w.host_mut().add_device(SPECS[i]()).unwrap();
        self.run(40);
    }
}

fn agreed(n: Negotiation) -> Option<(u16, u16, u16, u16)> {
    match n {
        Negotiation::Agreed { framework, service } => Some((
            framework.major,
            framework.minor,
            service.major,
            service.minor,
        )),
        _ => None,
    }
}

fn host_agreed(w: &World, s: Service) -> Option<(u16, u16, u16, u16)> {
    w.host()
        .ic(s)
        .agreed()
        .map(|(f, v)| (f.major, f.minor, v.major, v.minor))
}

#[test]
fn every_service_client_agrees_on_the_versions_the_host_recorded() {
    let s = Sys::boot();
    let w = &s.w;
    assert_eq!(
        agreed(s.hb.negotiation()),
        host_agreed(w, Service::Heartbeat)
    );
    assert_eq!(
        agreed(s.sd.negotiation()),
        host_agreed(w, Service::Shutdown)
    );
    assert_eq!(
        agreed(s.ts.negotiation()),
        host_agreed(w, Service::TimeSync)
    );
    assert_eq!(agreed(s.kvp.negotiation()), host_agreed(w, Service::Kvp));
    // The newest each side speaks: framework 3.0 everywhere; heartbeat 3.0, shutdown 3.2,
    // time sync 4.0, KVP 4.0.
    assert_eq!(agreed(s.hb.negotiation()), Some((3, 0, 3, 0)));
    assert_eq!(agreed(s.sd.negotiation()), Some((3, 0, 3, 2)));
    assert_eq!(agreed(s.ts.negotiation()), Some((3, 0, 4, 0)));
    assert_eq!(agreed(s.kvp.negotiation()), Some((3, 0, 4, 0)));
    // Dynamic Memory: the version the host accepted, and the capabilities it recorded.
    let dm = s.dm.state();
    assert_eq!(dm.version.map(|v| v.0), w.host().dm().version());
    let caps = w.host().dm().capabilities().expect("capabilities reported");
    assert!(caps.balloon && !caps.hot_add);
    assert!(
        dm.status_reports >= 1,
        "a status report after the negotiation"
    );
    assert_eq!(w.host().dm().status_reports(), dm.status_reports);
    assert_eq!(
        w.host().counters().guest_errors,
        0,
        "{:?}",
        w.host().errors()
    );
    assert_eq!(w.driver_stats().hostile, 0);
}

#[test]
fn heartbeat_answers_every_tick_with_the_sequence_plus_one() {
    let mut s = Sys::boot();
    for n in 1..=6u64 {
        s.ticks(1);
        let hb = s.w.host().ic(Service::Heartbeat);
        assert_eq!(hb.heartbeat_sequence(), n);
        assert_eq!(hb.heartbeat_last_answered(), Some(n + 1), "tick {n}");
        assert_eq!(s.hb.last_sequence(), Some(n + 1));
    }
    let hb = s.w.host().ic(Service::Heartbeat);
    assert_eq!((hb.heartbeat_wrong(), hb.stats().unanswered), (0, 0));
    assert_eq!(s.hb.answered(), 7, "the negotiation and six heartbeats");
    assert_eq!(s.hb.refused(), 0);
}

#[test]
fn time_samples_are_taken_and_the_clock_follows_the_host_within_a_millisecond() {
    let mut s = Sys::boot();
    // 2030-06-01T12:00:00Z.
    let unix = 1_906_372_800u64;
    let filetime = UNIX_EPOCH_FILETIME + unix * 10_000_000;
    s.w.host_mut().set_host_time(filetime);
    let at = s.w.host().reference_time();
    s.ticks(5);
    let host_ts = s.w.host().ic(Service::TimeSync);
    assert_eq!(s.ts.samples(), host_ts.timesync_samples());
    assert_eq!(s.ts.samples(), 5);
    let (sample, taken) = s.ts.last_sample().expect("a sample");
    assert!(taken);
    assert_eq!(
        Some(sample.host_time),
        host_ts.timesync_last_sample().map(|t| t.host_time)
    );
    assert_eq!(sample.reference, Some(at + 5 * TICK_100NS), "4.0 samples");
    // Later, without a new sample: the clock runs on the reference counter.
    let now = s.w.host().reference_time() + 3 * TICK_100NS;
    let host_ns = (filetime + (now - at) - UNIX_EPOCH_FILETIME) * 100;
    let clock = s.ts.clock_at(now).expect("the clock is set");
    assert!(
        clock.abs_diff(host_ns) <= 1_000_000,
        "clock {clock} vs host {host_ns}"
    );
    assert_eq!(clock / 1_000_000_000, unix + 8);
}

#[test]
fn the_kvp_script_enumerates_the_auto_pool_and_sets_gets_and_deletes_in_the_store() {
    let mut s = Sys::boot();
    s.until("the KVP script", |w| w.host().kvp_step() == KvpStep::Done);
    let entries: Vec<(u8, String, String)> =
        s.w.host()
            .kvp_entries()
            .iter()
            .map(|e| (e.pool, e.key_chars().collect(), e.value_chars().collect()))
            .collect();
    let mut want: Vec<(u8, String, String)> = (0..10u32)
        .map(|i| {
            let (k, v) = GUEST_INFO.pair(i).unwrap();
            (2, k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(
        want.iter().map(|e| e.1.as_str()).collect::<Vec<_>>(),
        AUTO_KEYS
    );
    want.push((0, "HostName".into(), "hv-host-sim".into()));
    assert_eq!(entries, want, "the auto pool, then the GET of HostName");
    // Three SETs, the GET and the DELETE, all done.
    assert_eq!(
        s.w.host().kvp_statuses(),
        [(1, 0), (1, 0), (1, 0), (0, 0), (2, 0)]
    );
    // The store keeps what the host set, less what it deleted.
    let pairs: Vec<(u8, String, String)> = s
        .kvp
        .pairs()
        .into_iter()
        .map(|p| (p.pool, p.key, p.value))
        .collect();
    assert_eq!(
        pairs,
        [
            (0, "HostName".into(), "hv-host-sim".into()),
            (
                0,
                "PhysicalHostNameFullyQualified".into(),
                "sim.invalid".into()
            ),
        ]
    );
    let ops = s.kvp.ops();
    // 10 auto-pool entries; the 11th index ends the enumeration with a failure status.
    assert_eq!((ops.done[3], ops.refused[3]), (10, 1));
    assert_eq!((ops.done[1], ops.done[0], ops.done[2]), (3, 1, 1));
}

#[test]
fn inflated_pages_are_mapped_nowhere_in_the_guest_and_the_driver_lends_what_the_host_holds() {
    let mut s = Sys::boot();
    s.inflate(48);
    s.inflate(16);
    let held = s.held_pfns();
    assert_eq!(held.len(), 64);
    assert_eq!(s.w.driver().lent_pages(), 64);
    assert_eq!(s.w.driver_stats().balloon_pages_lent, 64);
    let dm = s.w.client("dynmem").unwrap().id;
    assert_eq!(s.w.driver().lent_pages_of(dm), Some(64));
    assert_eq!(s.dm.stats().ballooned_now, 64);
    for pfn in held {
        let (page, frame) = s.page_of(pfn);
        let at = s.mapped_anywhere(page, frame);
        assert!(at.is_empty(), "ballooned {pfn:#x} is mapped by {at:?}");
        assert!(s.w.instance().kernel().borrow().seam.own_unmapped(page));
    }
    assert_eq!(
        s.w.instance().kernel().borrow().seam.unmapped_accesses(),
        0,
        "the driver never touched a lent page"
    );
    // A status report after each change.
    assert!(s.w.host().dm().status_reports() >= 3);
    assert_eq!(
        s.w.host().counters().guest_errors,
        0,
        "{:?}",
        s.w.host().errors()
    );
}

#[test]
fn deflated_pages_are_zeroed_back_in_the_pool_and_reused_clean() {
    let mut s = Sys::boot();
    let free0 = s.w.pool_free();
    s.inflate(32);
    assert_eq!(s.w.pool_free(), free0 - 32);
    let returned = s.w.host_mut().unballoon(20).unwrap();
    assert_eq!(returned, 20);
    // The request goes out at the host's next poll; the answer comes within a few steps.
    s.run(20);
    assert!(!s.w.host().dm().unballoon_pending(), "answered");
    assert_eq!(s.w.host().dm().pages_held(), 12);
    assert_eq!(s.w.driver().lent_pages(), 12);
    assert_eq!(s.w.driver_stats().balloon_pages_reclaimed, 20);
    assert_eq!(s.dm.stats().deflated_total, 20);
    assert_eq!(
        s.w.pool_free(),
        free0 - 12,
        "the pages are back in the pool"
    );
    // The host scribbled over every page it held; the driver zeroed each before it went back.
    let mut mem = s.w.instance().guest_mem();
    assert_eq!(s.w.host().dm_scribbled_pages(&mut mem), 0);
    let pfns: Vec<u64> =
        s.w.host()
            .dm()
            .returned()
            .iter()
            .flat_map(|r| r.start..r.start + u64::from(r.count))
            .collect();
    assert_eq!(pfns.len(), 20);
    {
        let k = s.w.instance().kernel().borrow();
        for &pfn in &pfns {
            let (page, frame) = s.page_of(pfn);
            assert!(!k.seam.own_unmapped(page), "mapped in the driver again");
            let bytes = k.sim.frame_bytes(frame).unwrap();
            assert!(bytes.iter().all(|&b| b == 0), "{pfn:#x} not zeroed");
        }
    }
    // Reuse: the heartbeat reconnects on fresh ring pages (the pool hands out the returned
    // ones first) and its rings hold nothing of the host's scribble.
    s.readd(0);
    s.ticks(2);
    assert_eq!(s.w.host().ic(Service::Heartbeat).heartbeat_wrong(), 0);
    assert_eq!(s.hb.link().opens, 2);
    let mut mem = s.w.instance().guest_mem();
    assert_eq!(s.w.host().dm_scribbled_pages(&mut mem), 0);
    assert_eq!(s.w.instance().kernel().borrow().seam.unmapped_accesses(), 0);
}

/// Requests a stop with `flags` and checks it ends as `kind`.
fn orderly_stop(flags: u32, kind: StopKind, want: HostRequest) {
    let mut s = Sys::boot();
    s.ticks(2);
    s.w.host_mut().set_host_time(UNIX_EPOCH_FILETIME);
    s.w.host_mut().request_shutdown(flags).unwrap();
    s.until("the orderly stop", |w| w.driver().stopped().is_some());
    assert_eq!(s.sd.requests(), [want]);
    assert_eq!(s.sd.stop_asked(), Some(kind == StopKind::Restart));
    assert_eq!(s.sd.stop_answer(), Some(Ok(Response::Stopping)));
    assert_eq!(s.sd.state().extra.stop_clock.map(|ns| ns > 0), Some(true));
    assert_eq!(s.w.host().ic(Service::Shutdown).shutdown_status(), Some(0));
    let d = s.w.driver();
    assert_eq!(d.stopped(), Some(kind));
    let info = d.stopping().unwrap();
    assert_eq!(info.unload, Some(UnloadEnd::Answered), "UNLOAD answered");
    assert_eq!(info.by, s.w.client("shutdown").unwrap().id);
    assert_eq!(d.open_count(), 0, "every channel closed");
    assert_eq!(d.connection().state, ConnectionState::Disconnected);
    assert!(s.w.driver_channels().iter().all(|c| c.pages == 0));
    // No client maps a ring or buffer page any more: nothing in its window.
    let k = s.w.instance().kernel().borrow();
    for c in s.w.instance().clients() {
        for page in 0..c.window_pages as u64 {
            assert!(
                k.sim
                    .mapping(c.pd, c.window_base + page * 4096)
                    .unwrap()
                    .is_none(),
                "{}: window page {page} still mapped",
                c.name
            );
        }
    }
}

#[test]
fn a_shutdown_request_has_the_client_stop_the_system_with_power_off() {
    orderly_stop(
        0,
        StopKind::PowerOff,
        HostRequest::Shutdown { forced: false },
    );
}

#[test]
fn a_restart_request_stops_the_system_with_restart() {
    orderly_stop(3, StopKind::Restart, HostRequest::Restart { forced: true });
}

#[test]
fn hibernation_is_refused_and_nothing_stops() {
    let mut s = Sys::boot();
    s.w.host_mut().request_shutdown(4).unwrap();
    s.run(20);
    assert_eq!(s.sd.requests(), [HostRequest::Hibernate]);
    assert_eq!(
        s.w.host().ic(Service::Shutdown).shutdown_status(),
        Some(ic::shutdown::E_FAIL)
    );
    assert_eq!(s.sd.stop_asked(), None);
    assert!(s.w.driver().stopping().is_none());
    assert_eq!(s.w.driver().open_count(), 5);
}

#[test]
fn a_rescinded_service_reconnects_and_negotiates_again_when_offered_anew() {
    let mut s = Sys::boot();
    for i in 0..5 {
        s.readd(i);
    }
    assert_eq!(s.hb.link().opens, 2);
    assert_eq!(s.hb.link().gone, 1);
    assert_eq!(s.kvp.state().negotiations.len(), 2);
    assert!(s.dm.ready());
    assert_eq!(s.dm.link().opens, 2);
    s.ticks(2);
    assert_eq!(
        s.w.host().ic(Service::Heartbeat).heartbeat_last_answered(),
        Some(3),
        "the new channel's sequence starts again"
    );
    s.inflate(8);
    assert_eq!(s.w.driver().lent_pages(), 8);
}

/// The heartbeat (and everything else) going on after a hostile switch was turned off again.
fn honest_again(s: &mut Sys) {
    s.set_hostile(Hostile::NONE);
    let before = s.w.host().ic(Service::Heartbeat).heartbeat_last_answered();
    s.ticks(2);
    let after = s.w.host().ic(Service::Heartbeat).heartbeat_last_answered();
    assert!(
        after > before,
        "heartbeat answered again: {before:?} -> {after:?}"
    );
    assert_eq!(
        s.w.driver().open_count(),
        5,
        "every service channel still open"
    );
    assert_eq!(
        s.w.driver_stats().hostile,
        0,
        "nothing hostile at the bus level"
    );
    assert_eq!(s.hb.link().opens, 1, "the same channel");
}

#[test]
fn malformed_ic_requests_are_refused_unanswered_and_the_services_go_on() {
    type Switch = fn(&mut Hostile);
    let switches: [(&str, Switch); 5] = [
        ("truncate", |h| h.ic_truncate = true),
        ("oversize body", |h| h.ic_oversize_body = true),
        ("response flag", |h| h.ic_response_flag = true),
        ("unknown type", |h| h.ic_unknown_type = true),
        ("wrong service", |h| h.ic_wrong_service = true),
    ];
    for (name, set) in switches {
        let mut s = Sys::boot();
        let mut h = Hostile::NONE;
        set(&mut h);
        s.set_hostile(h);
        s.ticks(2);
        assert_eq!(s.hb.refused(), 2, "{name}: both heartbeats refused");
        assert_eq!(s.ts.refused(), 2, "{name}: both samples refused");
        assert_eq!(s.ts.samples(), 0, "{name}");
        assert!(!s.hb.state().refusals.is_empty(), "{name}");
        honest_again(&mut s);
        let hb = s.w.host().ic(Service::Heartbeat);
        // The host saw its hostile requests go unanswered (the second when the next was due).
        assert!(hb.stats().unanswered >= 1, "{name}: {:?}", hb.stats());
        assert_eq!(hb.heartbeat_wrong(), 0, "{name}");
        assert_eq!(s.ts.samples(), 2, "{name}: samples taken again");
        assert!(
            s.w.host().format_trace().contains("(hostile)"),
            "{name}: the trace names the bent requests"
        );
    }
}

#[test]
fn foreign_ic_versions_get_no_common_version_and_an_honest_reoffer_agrees() {
    let mut s = Sys::with_hostile(Hostile {
        ic_foreign_versions: true,
        ..Hostile::NONE
    });
    assert_eq!(s.hb.negotiation(), Negotiation::NoCommonVersion);
    assert_eq!(s.kvp.negotiation(), Negotiation::NoCommonVersion);
    assert_eq!(
        s.w.host().ic(Service::Heartbeat).phase(),
        IcPhase::NoCommonVersion
    );
    // Dynamic Memory has no IC negotiation: it went on.
    assert!(s.dm.ready());
    assert_eq!(s.w.driver().open_count(), 5, "the channels stay open");
    s.set_hostile(Hostile::NONE);
    s.readd(0);
    assert_eq!(agreed(s.hb.negotiation()), Some((3, 0, 3, 0)));
    s.ticks(1);
    assert_eq!(
        s.w.host().ic(Service::Heartbeat).heartbeat_last_answered(),
        Some(2)
    );
    assert_eq!(s.w.driver_stats().hostile, 0);
}

#[test]
fn malformed_dm_requests_are_refused_and_the_channel_and_other_services_go_on() {
    for (name, h) in [
        (
            "truncate",
            Hostile {
                dm_truncate: true,
                ..Hostile::NONE
            },
        ),
        (
            "oversize",
            Hostile {
                dm_oversize: true,
                ..Hostile::NONE
            },
        ),
    ] {
        let mut s = Sys::boot();
        s.set_hostile(h);
        s.w.host_mut().balloon(8).unwrap();
        s.run(20);
        let st = s.dm.stats();
        assert_eq!(st.refused, 1, "{name}: {st:?}");
        assert_eq!(
            (st.ballooned_now, s.w.driver().lent_pages()),
            (0, 0),
            "{name}"
        );
        assert!(!s.dm.state().errors.is_empty(), "{name}");
        assert_eq!(s.dm.link().opens, 1, "{name}: the channel stays");
        honest_again(&mut s);
        // The host still waits for an answer to the request the guest could not read; a new
        // device starts afresh and balloons.
        s.readd(4);
        s.inflate(8);
        assert_eq!(s.w.driver().lent_pages(), 8, "{name}");
    }
}

#[test]
fn a_balloon_request_before_the_capabilities_is_answered_with_no_pages() {
    let mut s = Sys::with_hostile(Hostile {
        dm_balloon_before_capabilities: true,
        ..Hostile::NONE
    });
    assert!(s.dm.ready(), "{:?}", s.dm.state());
    assert_eq!(s.dm.state().startup_refused, 1);
    let dm = s.w.host().dm();
    assert_eq!(dm.balloon_pending(), None, "the early request was answered");
    assert_eq!(dm.pages_held(), 0);
    assert_eq!(s.w.driver().lent_pages(), 0);
    s.set_hostile(Hostile::NONE);
    s.inflate(4);
    assert_eq!(s.w.driver().lent_pages(), 4);
}

#[test]
fn an_unballoon_of_pages_never_ballooned_is_refused_and_nothing_is_reclaimed() {
    let mut s = Sys::boot();
    s.inflate(8);
    s.set_hostile(Hostile {
        dm_unballoon_unknown: true,
        ..Hostile::NONE
    });
    s.w.host_mut().unballoon(1).unwrap();
    s.run(20);
    assert!(!s.w.host().dm().unballoon_pending(), "answered");
    let st = s.dm.stats();
    assert_eq!((st.refused, st.deflated_total, st.ballooned_now), (1, 0, 8));
    assert_eq!(s.w.driver().lent_pages(), 8, "nothing given back");
    assert_eq!(s.w.driver_stats().balloon_pages_reclaimed, 0);
    honest_again(&mut s);
}

#[test]
fn pages_ballooned_before_a_rescind_are_still_given_back_after_the_device_returns() {
    let mut s = Sys::boot();
    s.inflate(16);
    assert_eq!(s.w.driver().lent_pages(), 16);
    // The host rescinds the balloon device and offers it again: the pages it holds stay its
    // own, and the client (whose record outlives the channel) still knows them.
    s.readd(4);
    assert!(s.dm.ready());
    assert_eq!(
        s.w.host().dm().pages_held(),
        16,
        "the host still holds them"
    );
    assert_eq!(s.w.host_mut().unballoon(16).unwrap(), 16);
    s.run(20);
    assert!(!s.w.host().dm().unballoon_pending(), "answered");
    assert_eq!(s.w.host().dm().pages_held(), 0);
    assert_eq!(s.w.driver().lent_pages(), 0, "every page back in the pool");
    assert_eq!(s.dm.stats().deflated_total, 16);
    assert_eq!(s.dm.stats().refused, 0);
}
