//! The integration services' host side: negotiation, one round of each service (the guest side
//! is the `ic` crate where it covers it, raw bytes elsewhere), byte-exact requests, and the
//! hostile switches with what the guest answered.

mod common;

use common::svc::Svc;
use common::u32le;
use hv_host::devices::ic::{TYPE_HEARTBEAT, TYPE_SHUTDOWN};
use hv_host::devices::timesync::{DEFAULT_BASE_FILETIME, TICK_100NS};
use hv_host::{DeviceSpec, GuestError, Hostile, IcFault, IcPhase, IcVer, Service};
use ic::header::IcVersion;

const E_FAIL: u32 = 0x8000_4005;

/// Opens `spec` and answers the negotiation with the `ic` crate for `versions`.
fn negotiated(spec: DeviceSpec, versions: &[IcVersion]) -> Svc {
    let mut s = Svc::open(spec, 0);
    let (tid, mut m) = s.one();
    let (n, _) = ic::negotiate::answer(&mut m, versions).unwrap();
    s.send(tid, &m[..n]);
    s
}

#[test]
fn heartbeat_negotiation_is_byte_exact_and_agrees_on_3_0() {
    let mut s = Svc::open(DeviceSpec::heartbeat(), 0);
    let (tid, m) = s.one();
    #[rustfmt::skip]
    let want: [u8; 52] = [
        0, 0, 0, 0, 44, 0, 0, 0,             // pipe header: flags, size of what follows
        1, 0, 0, 0, 0, 0, 1, 0, 0, 0,        // framework 1.0, type 0, service 1.0
        24, 0, 0, 0, 0, 0, 0, 3, 0, 0,       // body 24, status 0, tid 0, flags 3, reserved
        2, 0, 2, 0, 0, 0, 0, 0,              // 2 frameworks, 2 services, reserved
        1, 0, 0, 0, 3, 0, 0, 0,              // frameworks 1.0, 3.0
        1, 0, 0, 0, 3, 0, 0, 0,              // services 1.0, 3.0
    ];
    assert_eq!(&m[..52], &want[..]);
    assert!(m[52..].iter().all(|&b| b == 0), "padding");
    let from = s.g.host.trace().total();
    let mut a = m.clone();
    let (n, _) = ic::negotiate::answer(&mut a, &ic::heartbeat::VERSIONS).unwrap();
    s.send(tid, &a[..n]);
    let hb = s.g.host.ic(Service::Heartbeat);
    assert_eq!(hb.phase(), IcPhase::Ready);
    assert_eq!(hb.agreed(), Some((IcVer::new(3, 0), IcVer::new(3, 0))));
    assert_eq!(
        s.trace_since(from),
        ["guest->host ic heartbeat: negotiate framework 3.0 service 3.0 agreed"]
    );
}

#[test]
fn heartbeat_round_sends_the_sequence_and_checks_plus_one() {
    let mut s = negotiated(DeviceSpec::heartbeat(), &ic::heartbeat::VERSIONS);
    assert!(s.recv().is_empty(), "nothing before a tick");
    s.g.host.ic_tick();
    let (tid, mut m) = s.one();
    // Framework 3.0, type 1, service 3.0, body 16, flags 3, sequence 1.
    assert_eq!(&m[8..20], &[3, 0, 0, 0, 1, 0, 3, 0, 0, 0, 16, 0]);
    assert_eq!(m[25], 3);
    assert_eq!(
        &m[28..44],
        &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let (n, next) = ic::heartbeat::answer(&mut m).unwrap();
    assert_eq!(next, 2);
    s.send(tid, &m[..n]);
    let hb = s.g.host.ic(Service::Heartbeat);
    assert_eq!(hb.heartbeat_sequence(), 1);
    assert_eq!(hb.heartbeat_last_answered(), Some(2));
    assert_eq!((hb.heartbeat_wrong(), hb.stats().answers), (0, 2));
    // A wrong answer is counted and reported.
    s.g.host.ic_tick();
    let (tid, mut m) = s.one();
    m[28..36].copy_from_slice(&7u64.to_le_bytes());
    m[8 + 17] = 5;
    s.send(tid, &m);
    let hb = s.g.host.ic(Service::Heartbeat);
    assert_eq!(
        (hb.heartbeat_wrong(), hb.heartbeat_last_answered()),
        (1, Some(2))
    );
    assert_eq!(
        s.g.host.errors().last(),
        Some(GuestError::Ic(
            s.relid,
            IcFault::WrongSequence {
                expected: 3,
                got: 7
            }
        ))
    );
}

#[test]
fn shutdown_request_and_the_guests_status_are_recorded() {
    let mut s = negotiated(DeviceSpec::shutdown(), &ic::shutdown::VERSIONS);
    assert_eq!(
        s.g.host.ic(Service::Shutdown).agreed(),
        Some((IcVer::new(3, 0), IcVer::new(3, 2)))
    );
    s.g.host.request_shutdown(2).unwrap();
    let (tid, mut m) = s.one();
    // Type 3, body 2060: reason planned, 30 s, flags 2.
    assert_eq!(&m[12..14], &TYPE_SHUTDOWN.to_le_bytes());
    assert_eq!(&m[18..20], &2060u16.to_le_bytes());
    assert_eq!(
        (u32le(&m, 28), u32le(&m, 32), u32le(&m, 36)),
        (0x8000_0000, 30, 2)
    );
    let (n, req) = ic::shutdown::answer(&mut m).unwrap();
    assert_eq!(req, ic::shutdown::Request::Restart { forced: false });
    s.send(tid, &m[..n]);
    assert_eq!(s.g.host.ic(Service::Shutdown).shutdown_status(), Some(0));
    // Hibernate: this guest refuses with E_FAIL, and the host records it.
    s.g.host.request_shutdown(4).unwrap();
    let (tid, mut m) = s.one();
    let (n, _) = ic::shutdown::answer(&mut m).unwrap();
    s.send(tid, &m[..n]);
    let sd = s.g.host.ic(Service::Shutdown);
    assert_eq!(sd.shutdown_status(), Some(E_FAIL));
    assert_eq!(sd.stats().failed_answers, 1);
}

#[test]
fn timesync_4_0_samples_carry_the_reference_time_and_older_ones_do_not() {
    let mut s = negotiated(DeviceSpec::timesync(), &ic::timesync::VERSIONS);
    s.g.host.ic_tick();
    let (tid, mut m) = s.one();
    assert_eq!(&m[18..20], &22u16.to_le_bytes());
    let (n, sample) = ic::timesync::answer(&mut m, IcVersion::new(4, 0)).unwrap();
    assert_eq!(sample.host_time, DEFAULT_BASE_FILETIME + TICK_100NS);
    assert_eq!(sample.reference, Some(TICK_100NS));
    assert_eq!(m[44], 1, "first sample: SYNC");
    s.send(tid, &m[..n]);
    let ts = s.g.host.ic(Service::TimeSync);
    assert_eq!((ts.timesync_samples(), ts.stats().answers), (1, 2));
    let last = ts.timesync_last_sample().unwrap();
    assert!(last.v4 && last.ref_time == TICK_100NS);
    s.g.host.ic_tick();
    let (_, m) = s.one();
    assert_eq!(m[44], 2, "later samples: SAMPLE");

    let mut old = negotiated(DeviceSpec::timesync(), &[IcVersion::new(3, 0)]);
    old.g.host.ic_tick();
    let (_, mut m) = old.one();
    assert_eq!(&m[18..20], &25u16.to_le_bytes());
    assert_eq!(m[28 + 24], 1);
    let (_, sample) = ic::timesync::answer(&mut m, IcVersion::new(3, 0)).unwrap();
    assert_eq!(sample.reference, None);
}

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(|u| u.to_le_bytes())
        .collect()
}

/// Fills a KVP value record at `at` (value type 1).
fn put_value(m: &mut [u8], at: usize, key: &str, value: &str) {
    let (k, v) = (utf16z(key), utf16z(value));
    m[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
    m[at + 4..at + 8].copy_from_slice(&(k.len() as u32).to_le_bytes());
    m[at + 8..at + 12].copy_from_slice(&(v.len() as u32).to_le_bytes());
    m[at + 12..at + 12 + k.len()].copy_from_slice(&k);
    m[at + 524..at + 524 + v.len()].copy_from_slice(&v);
}

#[test]
fn kvp_script_enumerates_sets_gets_and_deletes_and_keeps_the_entries() {
    let mut s = negotiated(DeviceSpec::kvp(), &[IcVersion::new(4, 0)]);
    let mut ops = Vec::new();
    for _ in 0..10 {
        s.poll();
        let Some((tid, mut m)) = s.recv().pop() else {
            break;
        };
        let (op, pool) = (m[28], m[29]);
        assert_eq!(&m[18..20], &2580u16.to_le_bytes());
        ops.push((op, pool));
        let mut status = 0u32;
        match op {
            3 => {
                let i = u32le(&m, 32);
                if i < 2 {
                    put_value(&mut m, 36, &format!("Key{i}"), &format!("Value{i}"));
                } else {
                    status = 0x8007_0103;
                }
            }
            0 => put_value(&mut m, 32, "HostName", "hv-host-sim"),
            _ => {}
        }
        m[20..24].copy_from_slice(&status.to_le_bytes());
        m[25] = 5;
        s.send(tid, &m);
    }
    assert_eq!(
        ops,
        [
            (3, 2),
            (3, 2),
            (3, 2),
            (1, 0),
            (1, 0),
            (1, 0),
            (0, 0),
            (2, 0)
        ]
    );
    let keys: Vec<(u8, String, String)> =
        s.g.host
            .kvp_entries()
            .iter()
            .map(|e| (e.pool, e.key_chars().collect(), e.value_chars().collect()))
            .collect();
    assert_eq!(
        keys,
        [
            (2, "Key0".into(), "Value0".into()),
            (2, "Key1".into(), "Value1".into()),
            (0, "HostName".into(), "hv-host-sim".into())
        ]
    );
    assert_eq!(
        s.g.host.kvp_statuses(),
        [(1, 0), (1, 0), (1, 0), (0, 0), (2, 0)]
    );
    assert_eq!(s.g.host.kvp_step(), hv_host::devices::kvp::KvpStep::Done);
}

#[test]
fn foreign_versions_get_counts_zero_and_the_service_does_not_start() {
    let mut s2 = Svc::open(DeviceSpec::heartbeat(), 0);
    s2.g.host.set_hostile(Hostile {
        ic_foreign_versions: true,
        ..Hostile::NONE
    });
    let (tid, mut m) = s2.one();
    assert_eq!(&m[36..48], &[7, 0, 0, 0, 7, 0, 0, 0, 7, 0, 1, 0]);
    let (n, out) = ic::negotiate::answer(&mut m, &ic::heartbeat::VERSIONS).unwrap();
    assert_eq!(out, ic::negotiate::Outcome::NoCommonVersion);
    s2.send(tid, &m[..n]);
    assert_eq!(
        s2.g.host.ic(Service::Heartbeat).phase(),
        IcPhase::NoCommonVersion
    );
    s2.g.host.ic_tick();
    s2.poll();
    assert!(s2.recv().is_empty());
}

/// A negotiated heartbeat with `h` switched on, and the next request after a tick.
fn bent(h: Hostile) -> (Svc, u64, Vec<u8>) {
    let mut s = negotiated(DeviceSpec::heartbeat(), &ic::heartbeat::VERSIONS);
    s.g.host.set_hostile(h);
    s.g.host.ic_tick();
    let (tid, m) = s.one();
    (s, tid, m)
}

#[test]
fn truncated_oversize_and_response_flag_requests_are_refused_by_the_guest_and_counted_unanswered() {
    for (h, check) in [
        (
            Hostile {
                ic_truncate: true,
                ..Hostile::NONE
            },
            (|m: &[u8]| assert_eq!(m.len(), 16)) as fn(&[u8]),
        ),
        (
            Hostile {
                ic_oversize_body: true,
                ..Hostile::NONE
            },
            |m: &[u8]| assert_eq!(&m[18..20], &0xFFF0u16.to_le_bytes()),
        ),
        (
            Hostile {
                ic_response_flag: true,
                ..Hostile::NONE
            },
            |m: &[u8]| assert_eq!(m[25], 5),
        ),
    ] {
        let (mut s, _, mut m) = bent(h);
        check(&m);
        assert!(
            ic::heartbeat::answer(&mut m).is_err(),
            "the guest refuses it"
        );
        s.g.host.set_hostile(Hostile::NONE);
        s.g.host.ic_tick();
        let (_, m) = s.one();
        assert_eq!(u32le(&m, 28), 2, "the next request goes out");
        let hb = s.g.host.ic(Service::Heartbeat);
        assert_eq!(hb.stats().unanswered, 1);
        assert!(s.trace_since(0).iter().any(|l| l.contains("(hostile)")));
    }
}

#[test]
fn wrong_service_and_unknown_type_requests_are_answered_e_fail_and_recorded() {
    for (h, ty) in [
        (
            Hostile {
                ic_wrong_service: true,
                ..Hostile::NONE
            },
            TYPE_SHUTDOWN,
        ),
        (
            Hostile {
                ic_unknown_type: true,
                ..Hostile::NONE
            },
            0x7F,
        ),
    ] {
        let (mut s, tid, mut m) = bent(h);
        assert_eq!(&m[12..14], &ty.to_le_bytes());
        assert!(matches!(
            ic::heartbeat::answer(&mut m.clone()),
            Err(ic::header::IcError::Unexpected(_))
        ));
        // As Linux does for a type it does not know: the request back with E_FAIL.
        m[20..24].copy_from_slice(&E_FAIL.to_le_bytes());
        m[25] = 5;
        let from = s.g.host.trace().total();
        s.send(tid, &m);
        let hb = s.g.host.ic(Service::Heartbeat);
        assert_eq!(hb.stats().failed_answers, 1);
        assert_eq!(hb.stats().last_status, Some(E_FAIL));
        assert_eq!(
            s.trace_since(from),
            ["guest->host ic heartbeat: answer status 0x80004005"]
        );
    }
}

#[test]
fn malformed_answers_are_guest_errors_never_panics() {
    let (mut s, tid, m) = bent(Hostile::NONE);
    let r = s.relid;
    let mut no_flag = m.clone();
    no_flag[25] = 3;
    let mut oversize = m.clone();
    oversize[25] = 5;
    oversize[18..20].copy_from_slice(&4000u16.to_le_bytes());
    let mut wrong_type = m.clone();
    wrong_type[25] = 5;
    wrong_type[12..14].copy_from_slice(&TYPE_SHUTDOWN.to_le_bytes());
    let mut resp = m.clone();
    resp[25] = 5;
    let cases: [(&[u8], u64, IcFault); 5] = [
        (&m[..10], tid, IcFault::Truncated(16)),
        (&no_flag, tid, IcFault::NotAResponse(3)),
        (
            &oversize,
            tid,
            IcFault::BodyOversize {
                body: 4000,
                room: 16,
            },
        ),
        (
            &wrong_type,
            tid,
            IcFault::WrongType {
                expected: TYPE_HEARTBEAT,
                got: TYPE_SHUTDOWN,
            },
        ),
        (
            &resp,
            tid + 9,
            IcFault::WrongTransaction {
                expected: tid,
                got: tid + 9,
            },
        ),
    ];
    for (bytes, t, fault) in cases {
        s.send(t, bytes);
        let e = s.g.host.errors().last();
        if let IcFault::BodyOversize { body, .. } = fault {
            assert!(
                matches!(e, Some(GuestError::Ic(_, IcFault::BodyOversize { body: b, .. })) if b == body)
            );
        } else {
            assert_eq!(e, Some(GuestError::Ic(r, fault)));
        }
    }
    assert_eq!(s.g.host.ic(Service::Heartbeat).stats().refused, 5);
    // An answer with nothing waiting.
    let mut ok = m.clone();
    let (n, _) = ic::heartbeat::answer(&mut ok).unwrap();
    s.send(tid, &ok[..n]);
    s.send(tid, &ok[..n]);
    assert_eq!(
        s.g.host.errors().last(),
        Some(GuestError::Ic(r, IcFault::Unsolicited))
    );
}
