//! Driver core: hostile host input is counted, logged and never disturbs other channels.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelStatus, Request};
use vmbus_driver::driver::{ChannelState, MESSAGES_PER_PASS};
use vmbus_driver::ids::{ConnectionId, GpadlId, RelId};
use vmbus_driver::msg::{
    ChannelMessage, GpadlCreated, MessageType, OpenChannelResult, VersionResponse,
    VersionResponseExt, encode,
};

/// A world with relid 5 open by A, to check that hostile input leaves it working.
fn with_open_channel() -> (World, vmbus_driver::control::ChannelHandle) {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    (w, h)
}

/// The channel still gets events and the table is unchanged.
fn still_works(w: &mut World, h: vmbus_driver::control::ChannelHandle) {
    let before = w.k.status(A, h.slot).event_count;
    w.hv.raise(5);
    w.pump();
    let rec = w.k.status(A, h.slot);
    assert_eq!(
        (rec.state, rec.event_count),
        (ChannelStatus::Open, before + 1)
    );
    assert_eq!(w.d.channel(RelId(5)).unwrap().state, ChannelState::Open);
}

#[test]
fn malformed_and_truncated_messages_are_counted_and_dropped() {
    let (mut w, h) = with_open_channel();
    let mut offer_bytes = [0u8; 240];
    let n = encode(
        &ChannelMessage::OfferChannel(offer(8, NET, 8, 0)),
        &mut offer_bytes,
    )
    .unwrap();
    assert_eq!(n, 196);
    w.hv.send_raw(&[1, 0, 0]); // shorter than a header
    w.hv.send_raw(&[99, 0, 0, 0, 0, 0, 0, 0]); // unknown type
    w.hv.send_raw(&offer_bytes[..100]); // truncated offer
    w.hv.send_raw(&[2, 0, 0, 0, 0, 0, 0, 0, 5]); // truncated rescind of relid 5
    let mut slot = [0u8; 256];
    slot[0] = 1;
    slot[4] = 250; // payload size over 240
    w.hv.send_slot(slot);
    w.pump();
    let s = *w.d.stats();
    assert_eq!((s.malformed, s.hostile), (5, 5));
    assert!(w.d.channel(RelId(8)).is_none());
    still_works(&mut w, h);
}

#[test]
fn out_of_range_relids_are_counted_in_every_message() {
    let (mut w, h) = with_open_channel();
    for relid in [0, 2048, 0xFFFF_FFFF] {
        w.hv.send(&ChannelMessage::OfferChannel(offer(relid, NET, 9, 0)));
        w.hv.send(&ChannelMessage::GpadlCreated(GpadlCreated {
            child_relid: RelId(relid),
            gpadl: GpadlId(1),
            creation_status: 0,
        }));
        w.hv.send(&ChannelMessage::OpenChannelResult(OpenChannelResult {
            child_relid: RelId(relid),
            openid: 1,
            status: 0,
        }));
    }
    w.pump();
    assert_eq!(w.d.stats().relid_out_of_range, 9);
    assert_eq!(w.d.channels().count(), 1);
    still_works(&mut w, h);
}

#[test]
fn duplicate_offer_is_ignored_and_keeps_the_first() {
    let (mut w, h) = with_open_channel();
    let generation = w.d.channel(RelId(5)).unwrap().generation;
    w.hv.send(&ChannelMessage::OfferChannel(offer(5, HEARTBEAT, 2, 0)));
    w.pump();
    let info = w.d.channel(RelId(5)).unwrap();
    assert_eq!((info.class, info.generation), (NET, generation));
    assert_eq!(w.d.stats().duplicate_offers, 1);
    still_works(&mut w, h);
}

#[test]
fn offer_with_an_invalid_connection_id_is_refused() {
    let (mut w, h) = with_open_channel();
    let mut o = offer(8, NET, 8, 0);
    o.connection_id = ConnectionId(0x0100_0001);
    w.hv.send(&ChannelMessage::OfferChannel(o));
    w.pump();
    assert!(w.d.channel(RelId(8)).is_none());
    assert_eq!(w.d.stats().malformed, 1);
    still_works(&mut w, h);
}

#[test]
fn gpadl_replies_for_unknown_gpadls_are_counted() {
    let (mut w, h) = with_open_channel();
    let real = GpadlId(u32_at(&w.posts_of(MessageType::GPADL_HEADER)[0], 12));
    for g in [
        GpadlId(0),
        GpadlId(0xdead_beef),
        GpadlId(real.0 ^ 0x1000),
        real,
    ] {
        w.hv.send(&ChannelMessage::GpadlCreated(GpadlCreated {
            child_relid: RelId(5),
            gpadl: g,
            creation_status: 0,
        }));
        w.hv.torndown(g.0);
    }
    w.pump();
    let s = *w.d.stats();
    // The real id is known but neither reply is awaited now.
    assert_eq!((s.unknown_gpadl, s.mismatched_replies), (6, 2));
    still_works(&mut w, h);
}

#[test]
fn replies_naming_the_wrong_relid_or_openid_are_ignored() {
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(6, NET, 2, 0)]);
    w.connect();
    w.hv.silent.insert(MessageType::GPADL_CREATED.0);
    w.hv.silent.insert(MessageType::OPENCHANNEL_RESULT.0);
    w.call(
        A,
        Request::Open {
            relid: RelId(5),
            out_ring_pages: 2,
            in_ring_pages: 2,
        },
    );
    let gpadl = GpadlId(u32_at(&w.posts_of(MessageType::GPADL_HEADER)[0], 12));
    // Right GPADL, wrong relid: ignored, still pending.
    w.hv.send(&ChannelMessage::GpadlCreated(GpadlCreated {
        child_relid: RelId(6),
        gpadl,
        creation_status: 0,
    }));
    w.pump();
    assert_eq!(
        w.d.channel(RelId(5)).unwrap().state,
        ChannelState::GpadlPending
    );
    w.hv.send(&ChannelMessage::GpadlCreated(GpadlCreated {
        child_relid: RelId(5),
        gpadl,
        creation_status: 0,
    }));
    w.pump();
    assert_eq!(
        w.d.channel(RelId(5)).unwrap().state,
        ChannelState::OpenPending
    );
    let openid = u32_at(&w.posts_of(MessageType::OPENCHANNEL)[0], 12);
    // Wrong openid, and a result for a relid nobody is opening.
    for (relid, id) in [(5, openid.wrapping_add(1)), (6, openid)] {
        w.hv.send(&ChannelMessage::OpenChannelResult(OpenChannelResult {
            child_relid: RelId(relid),
            openid: id,
            status: 0,
        }));
    }
    w.pump();
    assert_eq!(
        w.d.channel(RelId(5)).unwrap().state,
        ChannelState::OpenPending
    );
    assert_eq!(w.d.stats().mismatched_replies, 3);
    w.hv.send(&ChannelMessage::OpenChannelResult(OpenChannelResult {
        child_relid: RelId(5),
        openid,
        status: 0,
    }));
    w.pump();
    assert_eq!(w.d.channel(RelId(5)).unwrap().state, ChannelState::Open);
}

#[test]
fn unexpected_and_foreign_messages_are_counted() {
    let (mut w, h) = with_open_channel();
    w.hv.send(&ChannelMessage::VersionResponse(VersionResponse {
        version_supported: true,
        connection_state: Default::default(),
        msg_conn_id: ConnectionId(9),
        ext: VersionResponseExt::None,
    }));
    w.hv.send(&ChannelMessage::AllOffersDelivered);
    w.hv.send(&ChannelMessage::UnloadResponse);
    w.hv.send(&ChannelMessage::RequestOffers); // a guest-to-host message
    let mut timer = [0u8; 256];
    timer[0..4].copy_from_slice(&0x8000_0010u32.to_le_bytes());
    w.hv.send_slot(timer);
    w.pump();
    let s = *w.d.stats();
    assert_eq!((s.unexpected_messages, s.foreign_messages), (4, 1));
    assert_eq!(w.d.connection().msg_conn_id, ConnectionId(1));
    still_works(&mut w, h);
}

#[test]
fn message_flood_is_handled_in_bounded_passes() {
    let (mut w, h) = with_open_channel();
    for _ in 0..(MESSAGES_PER_PASS + 10) {
        w.hv.rescind(77);
    }
    assert!(w.d.on_interrupt(&mut w.hv, &mut w.k, w.now), "more pending");
    assert_eq!(w.hv.queue.len(), 10);
    assert!(!w.d.on_interrupt(&mut w.hv, &mut w.k, w.now));
    assert_eq!(
        w.d.stats().unknown_rescinds,
        (MESSAGES_PER_PASS + 10) as u64
    );
    assert_eq!(w.d.stats().message_bound_hits, 1);
    still_works(&mut w, h);
}

#[test]
fn event_flood_on_every_flag_touches_only_the_open_channel() {
    let (mut w, h) = with_open_channel();
    w.hv.events = [u32::MAX; 64];
    w.pump();
    let s = *w.d.stats();
    assert_eq!(s.events_delivered, 1);
    assert_eq!(s.events_dropped_stale, 2046);
    assert_eq!(s.events_flag0, 1);
    assert_eq!(w.k.status(A, h.slot).event_count, 1);
}
