//! GPADL bookkeeping: creation with bodies, the refusals a host makes (Hyper-V: failure status;
//! QEMU: silence), teardown, and teardown of a GPADL an open channel still uses.

mod common;

use common::*;
use hv_host::{DeviceSpec, GuestError, HostConfig};
use vmbus_driver::ids::{GpadlId, RelId};
use vmbus_driver::msg::{ChannelMessage, GpadlBody, GpadlTeardown, PfnList};
use vmbus_driver::version::Version;

const FAIL: u32 = 0x8000_FFFF;

fn hyperv() -> (Guest, RelId) {
    let mut g = Guest::new(HostConfig::hyperv(), 80);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    (g, r)
}

fn qemu() -> (Guest, RelId) {
    let mut g = Guest::new(HostConfig::qemu(), 80);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10)[0].child_relid;
    (g, r)
}

fn created(g: &mut Guest) -> Vec<(RelId, GpadlId, u32)> {
    g.msgs()
        .into_iter()
        .map(|m| match m {
            ChannelMessage::GpadlCreated(c) => (c.child_relid, c.gpadl, c.creation_status),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_60_page_gpadl_in_a_header_and_two_bodies_is_created_with_every_pfn() {
    let (mut g, r) = hyperv();
    g.create_gpadl(r, GpadlId(5), 3, 60);
    // 26 PFNs in the header, 28 + 6 in the bodies: one reply, after the last body.
    assert_eq!(created(&mut g), [(r, GpadlId(5), 0)]);
    let received: Vec<_> = g
        .host
        .log()
        .iter()
        .filter(|l| l.dir == hv_host::Direction::Received)
        .map(|l| l.msgtype.0)
        .collect();
    assert_eq!(&received[received.len() - 3..], &[8, 9, 9]);
    assert_eq!(g.host.counters().gpadls_created, 1);
    let want: Vec<u64> = (3..63).map(|i| BASE_PFN + i).collect();
    assert_eq!(g.host.gpadl_pfns(GpadlId(5)), Some(&want[..]));
}

#[test]
fn hyperv_refuses_id_zero_an_id_in_use_and_an_unknown_relid_with_a_failure_status() {
    let (mut g, r) = hyperv();
    g.create_gpadl(r, GpadlId(0), 0, 2);
    assert_eq!(created(&mut g), [(r, GpadlId(0), FAIL)]);
    g.create_gpadl(r, GpadlId(1), 0, 2);
    g.create_gpadl(r, GpadlId(1), 2, 2);
    assert_eq!(created(&mut g), [(r, GpadlId(1), 0), (r, GpadlId(1), FAIL)]);
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::GpadlIdInUse(GpadlId(1)))
    );
    g.create_gpadl(RelId(99), GpadlId(2), 0, 2);
    assert_eq!(created(&mut g), [(RelId(99), GpadlId(2), FAIL)]);
}

#[test]
fn hyperv_body_for_an_unknown_gpadl_gets_no_reply_and_an_overflowing_body_fails_the_gpadl() {
    let (mut g, r) = hyperv();
    let body = |id, n: usize| {
        ChannelMessage::GpadlBody(GpadlBody {
            msgnumber: 0,
            gpadl: GpadlId(id),
            pfns: PfnList::from_slice(&vec![BASE_PFN; n]).unwrap(),
        })
    };
    g.post(&body(77, 3));
    assert!(g.take().is_empty());
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::UnknownGpadl(GpadlId(77)))
    );
    // A 30-page GPADL: the header carries 26, so the body may carry 4; send 5.
    let pfns: Vec<u64> = (0..30).map(|i| BASE_PFN + i).collect();
    let mut msgs = vmbus_driver::gpadl::gpadl_messages(r, GpadlId(8), &pfns).unwrap();
    g.post(&msgs.next().unwrap());
    assert!(g.take().is_empty(), "no reply before the last body");
    g.post(&body(8, 5));
    assert_eq!(created(&mut g), [(r, GpadlId(8), FAIL)]);
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::GpadlInconsistent(GpadlId(8)))
    );
    // The failed id is free again.
    g.create_gpadl(r, GpadlId(8), 0, 4);
    assert_eq!(created(&mut g), [(r, GpadlId(8), 0)]);
}

#[test]
fn hyperv_an_inconsistent_header_is_answered_with_a_failure_naming_relid_and_id() {
    let (mut g, r) = hyperv();
    // range_buflen says 3 pages, byte_count says 2: decode rejects it.
    let mut raw = [0u8; 44];
    raw[0] = 8;
    raw[8..12].copy_from_slice(&r.0.to_le_bytes());
    raw[12..16].copy_from_slice(&9u32.to_le_bytes());
    raw[16..18].copy_from_slice(&32u16.to_le_bytes());
    raw[18..20].copy_from_slice(&1u16.to_le_bytes());
    raw[20..24].copy_from_slice(&8192u32.to_le_bytes());
    g.host
        .post_message(g.conn, vmbus_driver::hv::HvMessageType::VMBUS, &raw);
    assert_eq!(created(&mut g), [(r, GpadlId(9), FAIL)]);
}

#[test]
fn qemu_ignores_bad_headers_and_unknown_ids_but_does_not_check_the_relid() {
    let (mut g, r) = qemu();
    g.create_gpadl(r, GpadlId(0), 0, 2);
    g.create_gpadl(r, GpadlId(1), 0, 2);
    g.create_gpadl(r, GpadlId(1), 0, 2);
    g.create_gpadl(RelId(500), GpadlId(2), 0, 2);
    // Id 0 and the duplicate: nothing. The unknown relid is echoed with status 0.
    assert_eq!(
        created(&mut g),
        [(r, GpadlId(1), 0), (RelId(500), GpadlId(2), 0)]
    );
    g.post(&ChannelMessage::GpadlTeardown(GpadlTeardown {
        child_relid: r,
        gpadl: GpadlId(40),
    }));
    assert!(g.take().is_empty(), "teardown of an unknown id: no reply");
    assert!(g.host.counters().ignored >= 3);
}

#[test]
fn teardown_is_answered_with_torndown_and_frees_the_id() {
    for (mut g, r) in [hyperv(), qemu()] {
        g.create_gpadl(r, GpadlId(3), 0, 4);
        created(&mut g);
        g.post(&ChannelMessage::GpadlTeardown(GpadlTeardown {
            child_relid: r,
            gpadl: GpadlId(3),
        }));
        assert_eq!(
            g.msgs(),
            [ChannelMessage::GpadlTorndown(
                vmbus_driver::msg::GpadlTorndown { gpadl: GpadlId(3) }
            )]
        );
        g.create_gpadl(r, GpadlId(3), 0, 4);
        assert_eq!(created(&mut g), [(r, GpadlId(3), 0)]);
    }
}

#[test]
fn hyperv_teardown_of_a_ring_gpadl_in_use_waits_for_the_close() {
    let (mut g, r) = hyperv();
    assert_eq!(g.open(r, GpadlId(4), 0, 2, 2), 0);
    g.post(&ChannelMessage::GpadlTeardown(GpadlTeardown {
        child_relid: r,
        gpadl: GpadlId(4),
    }));
    assert!(
        g.take().is_empty(),
        "no GPADL_TORNDOWN while the channel is open"
    );
    g.post(&ChannelMessage::CloseChannel(
        vmbus_driver::msg::CloseChannel { child_relid: r },
    ));
    assert!(matches!(
        g.msgs()[..],
        [ChannelMessage::GpadlTorndown(t)] if t.gpadl == GpadlId(4)
    ));
    assert_eq!(g.host.gpadl_count(), 0);
}

#[test]
fn qemu_teardown_of_a_ring_gpadl_in_use_is_answered_at_once() {
    let (mut g, r) = qemu();
    assert_eq!(g.open(r, GpadlId(4), 0, 2, 2), 0);
    g.post(&ChannelMessage::GpadlTeardown(GpadlTeardown {
        child_relid: r,
        gpadl: GpadlId(4),
    }));
    assert!(matches!(
        g.msgs()[..],
        [ChannelMessage::GpadlTorndown(t)] if t.gpadl == GpadlId(4)
    ));
    // Still mapped by the open channel until it closes.
    assert_eq!(g.host.gpadl_count(), 1);
    g.post(&ChannelMessage::CloseChannel(
        vmbus_driver::msg::CloseChannel { child_relid: r },
    ));
    assert!(g.take().is_empty());
    assert_eq!(g.host.gpadl_count(), 0);
}

#[test]
fn hyperv_teardown_of_an_unknown_gpadl_or_for_another_channel_is_a_guest_error() {
    let (mut g, r) = hyperv();
    g.create_gpadl(r, GpadlId(3), 0, 4);
    created(&mut g);
    g.post(&ChannelMessage::GpadlTeardown(GpadlTeardown {
        child_relid: r,
        gpadl: GpadlId(30),
    }));
    assert!(g.take().is_empty());
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::UnknownGpadl(GpadlId(30)))
    );
    g.post(&ChannelMessage::GpadlTeardown(GpadlTeardown {
        child_relid: RelId(1500),
        gpadl: GpadlId(3),
    }));
    assert!(g.take().is_empty());
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::UnknownRelid(RelId(1500)))
    );
}

#[test]
fn qemu_ignores_pfns_beyond_the_headers_count() {
    let (mut g, r) = qemu();
    let pfns: Vec<u64> = (0..30).map(|i| BASE_PFN + i).collect();
    let mut msgs = vmbus_driver::gpadl::gpadl_messages(r, GpadlId(8), &pfns).unwrap();
    g.post(&msgs.next().unwrap());
    // Four PFNs are missing; the body brings six.
    let extra: Vec<u64> = (26..32).map(|i| BASE_PFN + i).collect();
    g.post(&ChannelMessage::GpadlBody(GpadlBody {
        msgnumber: 0,
        gpadl: GpadlId(8),
        pfns: PfnList::from_slice(&extra).unwrap(),
    }));
    assert_eq!(created(&mut g), [(r, GpadlId(8), 0)]);
    assert_eq!(g.host.gpadl_pfns(GpadlId(8)), Some(&pfns[..]));
}
