//! Dynamic Memory, host side: version and capabilities answered byte-exact, status reports
//! recorded, balloon and unballoon rounds with the page checks, and the hostile switches.

mod common;

use common::svc::{RING_PAGES, Svc};
use common::u32le;
use hv_host::devices::dynmem::{DM_SCRIBBLE, UNKNOWN_RANGE};
use hv_host::{DeviceSpec, DmFault, DmOptions, DmPhase, GuestError, Hostile};

fn msg(ty: u16, trans: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&ty.to_le_bytes());
    m.extend_from_slice(&((8 + body.len()) as u16).to_le_bytes());
    m.extend_from_slice(&trans.to_le_bytes());
    m.extend_from_slice(body);
    m
}

fn version(v: u32, last: bool) -> Vec<u8> {
    let mut b = v.to_le_bytes().to_vec();
    b.extend_from_slice(&u32::from(last).to_le_bytes());
    msg(1, 7, &b)
}

fn caps() -> Vec<u8> {
    let mut b = 1u64.to_le_bytes().to_vec();
    b.extend_from_slice(&256u64.to_le_bytes());
    b.extend_from_slice(&0x1_0000u64.to_le_bytes());
    msg(3, 8, &b)
}

fn ranges(ty_more: (u16, bool), rs: &[(u64, u64)]) -> Vec<u8> {
    let mut b = 0u32.to_le_bytes().to_vec();
    b.extend_from_slice(&((rs.len() as u32) << 1 | u32::from(ty_more.1)).to_le_bytes());
    for (start, n) in rs {
        b.extend_from_slice(&(start | n << 40).to_le_bytes());
    }
    msg(ty_more.0, 9, &b)
}

/// A device that accepted 2.0 and the capabilities; `extra` guest pages after the rings.
fn ready(extra: usize) -> Svc {
    let mut s = Svc::open(DeviceSpec::dynamic_memory(), extra);
    s.poll();
    assert!(s.recv().is_empty(), "the guest speaks first");
    s.send(0, &version(0x2_0000, false));
    s.recv();
    s.send(0, &caps());
    s.recv();
    assert_eq!(s.g.host.dm().phase(), DmPhase::Ready);
    s
}

#[test]
fn version_and_capabilities_are_answered_byte_exact_and_refusals_are_configurable() {
    let opts = DmOptions {
        accept_2_0: false,
        ..DmOptions::ALL
    };
    let mut s = Svc::open(DeviceSpec::dynamic_memory_with(opts), 0);
    s.send(0, &version(0x2_0000, false));
    let (_, m) = s.recv().pop().unwrap();
    assert_eq!(&m[..16], &[2, 0, 16, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    s.send(0, &version(0x1_0000, false));
    let (_, m) = s.recv().pop().unwrap();
    assert_eq!(&m[..16], &[2, 0, 16, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(s.g.host.dm().version(), Some(0x1_0000));
    s.send(0, &caps());
    let (_, m) = s.recv().pop().unwrap();
    assert_eq!(&m[..16], &[4, 0, 16, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    let c = s.g.host.dm().capabilities().unwrap();
    assert!(c.balloon && !c.hot_add && c.min_pages == 256);
    let trace = s.trace_since(0);
    assert_eq!(trace[0], "guest->host dm: VERSION_REQUEST 2.0 refused");
    assert_eq!(trace[1], "guest->host dm: VERSION_REQUEST 1.0 accepted");
    // A status report.
    let mut b = vec![0u8; 40];
    b[..8].copy_from_slice(&1000u64.to_le_bytes());
    b[8..16].copy_from_slice(&600u64.to_le_bytes());
    s.send(0, &msg(5, 10, &b));
    assert_eq!(s.g.host.dm().last_status(), Some((1000, 600)));
    assert_eq!(s.g.host.dm().status_reports(), 1);
}

#[test]
fn balloon_and_unballoon_round_with_scribbled_pages() {
    let mut s = ready(8);
    let base = s.g.mem.pfn(2 * RING_PAGES);
    s.g.host.balloon(4).unwrap();
    let (_, m) = s.one();
    assert_eq!(&m[..16], &[6, 0, 16, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]);
    s.send(0, &ranges((7, true), &[(base, 1)]));
    assert_eq!(s.g.host.dm().balloon_pending(), Some(4));
    s.send(0, &ranges((7, false), &[(base + 1, 3)]));
    let dm = s.g.host.dm();
    assert_eq!((dm.pages_held(), dm.balloon_pending()), (4, None));
    assert_eq!(
        s.g.mem.u32_at(2 * RING_PAGES + 3, 100),
        u32::from_le_bytes([DM_SCRIBBLE; 4])
    );
    assert_eq!(s.g.host.unballoon(3), Ok(3));
    let (_, m) = s.one();
    assert_eq!(&m[..8], &[8, 0, 24, 0, 2, 0, 0, 0]);
    assert_eq!((u32le(&m, 8), u32le(&m, 12)), (0, 1));
    assert_eq!(
        u64::from_le_bytes(m[16..24].try_into().unwrap()),
        (base + 1) | 3 << 40
    );
    let mut mem = s.g.mem.clone();
    assert_eq!(s.g.host.dm_scribbled_pages(&mut mem), 3, "not zeroed yet");
    for p in 1..4 {
        s.g.mem.0.borrow_mut()[2 * RING_PAGES + p].fill(0);
    }
    assert_eq!(s.g.host.dm_scribbled_pages(&mut mem), 0);
    s.send(0, &msg(9, 11, &[]));
    let dm = s.g.host.dm();
    assert_eq!((dm.pages_held(), dm.unballoon_pending()), (1, false));
    assert!(
        s.trace_since(0)
            .iter()
            .any(|l| l == "host->guest dm: UNBALLOON_REQUEST 1 ranges, 3 pages")
    );
}

#[test]
fn pages_in_use_outside_memory_or_ballooned_twice_are_refused() {
    let mut s = ready(4);
    let r = s.relid;
    let base = s.g.mem.pfn(2 * RING_PAGES);
    s.g.host.balloon(8).unwrap();
    s.one();
    let ring = s.g.mem.pfn(1);
    s.send(0, &ranges((7, true), &[(ring, 1)]));
    assert_eq!(
        s.g.host.errors().last(),
        Some(GuestError::Dm(r, DmFault::RingPage(ring)))
    );
    s.send(0, &ranges((7, true), &[(0x99_0000, 2)]));
    assert_eq!(
        s.g.host.errors().last(),
        Some(GuestError::Dm(r, DmFault::NotGuestMemory(0x99_0000)))
    );
    s.send(0, &ranges((7, true), &[(base, 2)]));
    s.send(0, &ranges((7, false), &[(base + 1, 1)]));
    assert_eq!(
        s.g.host.errors().last(),
        Some(GuestError::Dm(r, DmFault::AlreadyBallooned(base + 1)))
    );
    let dm = s.g.host.dm();
    assert_eq!((dm.pages_held(), dm.rejected_pages()), (2, 4));
    // Responses with nothing asked, and garbage.
    s.send(0, &ranges((7, false), &[(base + 3, 1)]));
    assert_eq!(
        s.g.host.errors().last(),
        Some(GuestError::Dm(r, DmFault::Unsolicited(7)))
    );
    s.send(0, &msg(9, 1, &[]));
    assert_eq!(
        s.g.host.errors().last(),
        Some(GuestError::Dm(r, DmFault::Unsolicited(9)))
    );
    // Shorter than its header says (the ring pads the 3 bytes to 8).
    s.send(0, &[1, 0, 4]);
    let short = DmFault::BadSize {
        ty: 1,
        size: 4,
        len: 8,
    };
    assert_eq!(s.g.host.errors().last(), Some(GuestError::Dm(r, short)));
    s.send(0, &msg(0x55, 1, &[]));
    assert_eq!(
        s.g.host.errors().last(),
        Some(GuestError::Dm(r, DmFault::UnknownType(0x55)))
    );
    assert_eq!(s.g.host.dm().pages_held(), 2);
}

#[test]
fn hostile_dm_balloon_before_capabilities_unknown_unballoon_and_truncation() {
    let mut s = Svc::open(DeviceSpec::dynamic_memory(), 0);
    s.g.host.set_hostile(Hostile {
        dm_balloon_before_capabilities: true,
        ..Hostile::NONE
    });
    s.send(0, &version(0x2_0000, false));
    let got = s.recv();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].1[0], got[1].1[0]),
        (2, 6),
        "version response, then a balloon request"
    );
    // The guest answers it with nothing: recorded.
    s.send(0, &ranges((7, false), &[]));
    assert_eq!(s.g.host.dm().balloon_pending(), None);

    let mut s = ready(0);
    s.g.host.set_hostile(Hostile {
        dm_unballoon_unknown: true,
        ..Hostile::NONE
    });
    assert_eq!(s.g.host.unballoon(1), Ok(1));
    let (_, m) = s.one();
    let raw = u64::from_le_bytes(m[16..24].try_into().unwrap());
    assert_eq!(raw, UNKNOWN_RANGE.start | 1 << 40);
    s.send(0, &msg(9, 3, &[]));
    assert!(!s.g.host.dm().unballoon_pending());

    let mut s = Svc::open(DeviceSpec::dynamic_memory(), 0);
    s.g.host.set_hostile(Hostile {
        dm_truncate: true,
        ..Hostile::NONE
    });
    s.send(0, &version(0x2_0000, false));
    let (_, m) = s.recv().pop().unwrap();
    assert_eq!(m.len(), 8, "4 bytes, padded to 8");
    assert_eq!(&m[..4], &[2, 0, 16, 0]);
    assert!(
        s.trace_since(0)
            .iter()
            .any(|l| l.contains("(hostile) cut to 4 bytes"))
    );
}
