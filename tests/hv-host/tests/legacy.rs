//! Pre-2.4 signalling through the legacy interrupt page, MODIFYCHANNEL, and the message log.

mod common;

use common::*;
use hv_host::{DeviceSpec, Direction, GuestError, HostConfig};
use vmbus_driver::hv::HvStatus;
use vmbus_driver::ids::{ConnectionId, GpadlId, RelId, VpIndex};
use vmbus_driver::msg::{
    ChannelMessage, ContactTarget, InitiateContact, MessageType, ModifyChannel,
};
use vmbus_driver::ring::RingWriter;
use vmbus_driver::version::Version;

/// Connects at `v` with the interrupt page at test page 4.
fn legacy(v: Version) -> (Guest, RelId, ConnectionId) {
    let mut g = Guest::new(HostConfig::hyperv(), 5);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let ic = ChannelMessage::InitiateContact(InitiateContact {
        version_requested: v,
        target_vcpu: VpIndex(0),
        target: ContactTarget::InterruptPage(g.mem.pfn(4) * 4096),
        monitor_page1: 0,
        monitor_page2: 0,
        client_id: None,
    });
    assert_eq!(g.post_on(ConnectionId(1), &ic), HvStatus::SUCCESS);
    g.take_with(Some(v));
    g.version = Some(v);
    g.post(&ChannelMessage::RequestOffers);
    let ChannelMessage::OfferChannel(o) = g.msgs()[0] else {
        panic!()
    };
    assert_eq!(g.open(o.child_relid, GpadlId(1), 0, 2, 2), 0);
    (g, o.child_relid, o.connection_id)
}

fn send_one(g: &Guest) {
    let mut w = RingWriter::new(GuestRing {
        mem: g.mem.clone(),
        first: 0,
        pages: 2,
    })
    .unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(1, false, b"legacy").unwrap();
    assert!(b.commit().signal);
}

#[test]
fn win7_host_to_guest_uses_the_interrupt_page_and_flag_0() {
    let (mut g, r, conn) = legacy(Version::WIN7);
    send_one(&g);
    assert_eq!(g.host.signal_event(conn, 0), HvStatus::SUCCESS);
    let mut mem = g.mem.clone();
    g.host.poll(&mut mem);
    let page = g.mem.0.borrow()[4];
    assert_eq!(page[r.0 as usize / 8] & (1 << (r.0 % 8)), 1 << (r.0 % 8));
    let flags = *g.host.synic().flags();
    assert_eq!(flags[0], 1, "Hyper-V sets flag 0, not the relid's flag");
}

#[test]
fn ws2008_guest_to_host_signals_on_connection_2_through_the_page_second_half() {
    let (mut g, r, _) = legacy(Version::WS2008);
    send_one(&g);
    // Bit relid in the second half, then a signal on connection 2.
    g.mem.0.borrow_mut()[4][2048 + r.0 as usize / 8] |= 1 << (r.0 % 8);
    assert_eq!(g.host.signal_event(ConnectionId(2), 0), HvStatus::SUCCESS);
    let mut mem = g.mem.clone();
    g.host.poll(&mut mem);
    assert_eq!(g.host.channel(r).unwrap().stats.packets_out, 1);
    assert_eq!(
        g.mem.0.borrow()[4][2048 + r.0 as usize / 8],
        0,
        "host cleared it"
    );
}

#[test]
fn modifychannel_is_answered_from_5_3_and_retargets_the_channel() {
    let mut g = Guest::new(HostConfig::hyperv(), 4);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    assert_eq!(g.open(r, GpadlId(1), 0, 2, 2), 0);
    let m = ChannelMessage::ModifyChannel(ModifyChannel {
        child_relid: r,
        target_vp: VpIndex(3),
    });
    g.post(&m);
    assert!(matches!(
        g.msgs()[..],
        [ChannelMessage::ModifyChannelResponse(x)] if x.child_relid == r && x.status == 0
    ));
    assert_eq!(g.host.channel(r).unwrap().target_vp, 3);
    // Before 4.1 the message does not exist.
    let mut old = Guest::new(HostConfig::hyperv(), 1);
    assert!(old.accepted(Version::WIN10));
    old.post(&m);
    assert!(old.take().is_empty());
    assert!(matches!(
        old.host.errors().last(),
        Some(GuestError::Decode(_))
    ));
}

/// Direction, type, relid, GPADL id, status of one log record.
type Entry = (
    Direction,
    MessageType,
    Option<RelId>,
    Option<GpadlId>,
    Option<u32>,
);

#[test]
fn the_log_records_every_message_in_order_with_its_ids() {
    let mut g = Guest::new(HostConfig::hyperv(), 4);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    let mark = g.host.log().total();
    assert_eq!(g.open(r, GpadlId(9), 0, 2, 2), 0);
    let seq: Vec<Entry> = g
        .host
        .log()
        .since(mark)
        .map(|l| (l.dir, l.msgtype, l.relid, l.gpadl, l.status))
        .collect();
    use Direction::*;
    assert_eq!(
        seq,
        [
            (
                Received,
                MessageType::GPADL_HEADER,
                Some(r),
                Some(GpadlId(9)),
                None
            ),
            (
                Sent,
                MessageType::GPADL_CREATED,
                Some(r),
                Some(GpadlId(9)),
                Some(0)
            ),
            (
                Received,
                MessageType::OPENCHANNEL,
                Some(r),
                Some(GpadlId(9)),
                None
            ),
            (
                Sent,
                MessageType::OPENCHANNEL_RESULT,
                Some(r),
                None,
                Some(0)
            ),
        ]
    );
}
