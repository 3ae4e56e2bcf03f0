//! Each hostile mode produces the bytes it claims, read back from the SynIC slot, the event
//! flags and the guest's ring headers.

mod common;

use common::*;
use hv_host::{DeviceSpec, HostConfig, Hostile, RingSide};
use vmbus_driver::hv::HvMessageType;
use vmbus_driver::ids::{GpadlId, RelId};
use vmbus_driver::msg::{self, ChannelMessage, DecodeError, MessageType};
use vmbus_driver::ring::{Control, Corruption, RingError, RingReader};
use vmbus_driver::version::Version;

fn guest_with_device() -> Guest {
    let mut g = Guest::new(HostConfig::hyperv(), 8);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    g
}

fn set(g: &mut Guest, f: impl FnOnce(&mut Hostile)) {
    let mut h = g.host.hostile();
    f(&mut h);
    g.host.set_hostile(h);
}

#[test]
fn unknown_type_rewrites_the_header_type() {
    let mut g = guest_with_device();
    assert!(g.accepted(Version::WIN10_V5_3));
    set(&mut g, |h| h.unknown_type = true);
    g.post(&ChannelMessage::RequestOffers);
    let got = g.take();
    assert_eq!(got.len(), 2);
    for m in &got {
        assert_eq!(u32le(&m.bytes, 0), 0x7F);
        assert_eq!(
            msg::decode(&m.bytes, g.version),
            Err(DecodeError::UnknownType(0x7F))
        );
    }
}

#[test]
fn oversize_slot_states_more_than_240_bytes_and_the_guest_still_frees_the_slot() {
    let mut g = guest_with_device();
    set(&mut g, |h| h.oversize_slot = true);
    g.post_on(
        vmbus_driver::ids::ConnectionId(4),
        &initiate_contact(Version::WIN10_V5_3),
    );
    let slot = g.host.synic().read_slot();
    assert_eq!(slot[4], 0xF8);
    let got = g.take();
    assert_eq!(got.len(), 1);
    assert!(got[0].msg.is_none());
    assert!(
        !g.host.synic().slot_busy(),
        "consume_message cleared the malformed slot"
    );
}

#[test]
fn truncate_cuts_messages_below_their_minimum_size() {
    let mut g = guest_with_device();
    set(&mut g, |h| h.truncate = true);
    g.post_on(
        vmbus_driver::ids::ConnectionId(4),
        &initiate_contact(Version::WIN10_V5_3),
    );
    let got = g.take_with(None);
    assert_eq!((got[0].slot_size, got[0].bytes.len()), (8, 8));
    assert_eq!(u32le(&got[0].bytes, 0), 15);
    assert!(matches!(
        msg::decode(&got[0].bytes, None),
        Err(DecodeError::TooShort {
            len: 8,
            min: 16,
            ..
        })
    ));
    // Offers (196 bytes) arrive as 98.
    g.host.set_hostile(Hostile::NONE);
    assert!(g.accepted(Version::WIN10_V5_3));
    set(&mut g, |h| {
        h.truncate = true;
        h.targets = Hostile::bit(MessageType::OFFERCHANNEL);
    });
    g.post(&ChannelMessage::RequestOffers);
    let got = g.take();
    assert_eq!(got[0].bytes.len(), 98);
    assert_eq!(
        got[1].msg,
        Some(ChannelMessage::AllOffersDelivered),
        "not targeted"
    );
}

#[test]
fn wrong_fields_break_the_echoed_ids() {
    let mut g = guest_with_device();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    set(&mut g, |h| h.wrong_fields = true);
    g.create_gpadl(r, GpadlId(5), 0, 4);
    assert!(matches!(
        g.msgs()[..],
        [ChannelMessage::GpadlCreated(c)] if c.gpadl == GpadlId(6) && c.creation_status == 0
    ));
    g.post(&open_channel(r, GpadlId(5), 2));
    let got = g.take();
    assert_eq!(u32le(&got[0].bytes, 12), r.0 + 100 + 1, "openid + 1");
    g.post_on(
        vmbus_driver::ids::ConnectionId(4),
        &initiate_contact(Version::WIN10_V5_3),
    );
    let got = g.take_with(None);
    assert_eq!(got[0].bytes[9], 0x7F);
    assert_eq!(u32le(&got[0].bytes, 12), u32::MAX);
}

#[test]
fn out_of_range_relids_name_relids_past_2047() {
    let mut g = guest_with_device();
    assert!(g.accepted(Version::WIN10_V5_3));
    set(&mut g, |h| h.out_of_range_relids = true);
    g.post(&ChannelMessage::RequestOffers);
    let got = g.take();
    assert_eq!(u32le(&got[0].bytes, 184), 2049);
}

#[test]
fn duplicate_offers_send_every_offer_twice() {
    let mut g = guest_with_device();
    assert!(g.accepted(Version::WIN10_V5_3));
    set(&mut g, |h| h.duplicate_offers = true);
    g.post(&ChannelMessage::RequestOffers);
    let got = g.msgs();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], got[1]);
    assert!(matches!(got[0], ChannelMessage::OfferChannel(o) if o.child_relid == RelId(1)));
}

#[test]
fn rescind_of_an_unknown_relid_and_gpadl_created_for_an_unknown_gpadl() {
    let mut g = guest_with_device();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    assert!(g.host.inject_rescind(RelId(1234)));
    assert!(g.host.inject_gpadl_created(r, GpadlId(0xDEAD), 0));
    let got = g.take();
    assert_eq!(u32le(&got[0].bytes, 0), 2);
    assert_eq!(u32le(&got[0].bytes, 8), 1234);
    assert_eq!(
        got[1].msg,
        Some(ChannelMessage::GpadlCreated(msg::GpadlCreated {
            child_relid: r,
            gpadl: GpadlId(0xDEAD),
            creation_status: 0
        }))
    );
    // The mode form: a stray GPADL_CREATED after each real one.
    set(&mut g, |h| h.stray_gpadl_created = true);
    g.create_gpadl(r, GpadlId(1), 0, 2);
    let m = g.msgs();
    assert_eq!(m.len(), 2);
    let ChannelMessage::GpadlCreated(stray) = m[1] else {
        panic!()
    };
    assert!(g.host.gpadl_pfns(stray.gpadl).is_none());
}

#[test]
fn silence_withholds_replies_of_the_chosen_types_only() {
    let mut g = guest_with_device();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    set(&mut g, |h| {
        h.silence = Hostile::bit(MessageType::GPADL_TEARDOWN)
    });
    g.create_gpadl(r, GpadlId(1), 0, 2);
    assert_eq!(g.msgs().len(), 1, "GPADL_CREATED still comes");
    g.post(&ChannelMessage::GpadlTeardown(msg::GpadlTeardown {
        child_relid: r,
        gpadl: GpadlId(1),
    }));
    assert!(g.take().is_empty());
    assert_eq!(g.host.counters().silenced, 1);
    assert_eq!(
        g.host.gpadl_count(),
        0,
        "the host tore it down, it just did not say so"
    );
    set(&mut g, |h| {
        h.silence = Hostile::bit(MessageType::INITIATE_CONTACT)
    });
    g.post_on(
        vmbus_driver::ids::ConnectionId(4),
        &initiate_contact(Version::WIN10_V5_3),
    );
    assert!(g.take().is_empty());
}

#[test]
fn event_flood_sets_every_channel_flag() {
    let mut g = guest_with_device();
    g.connect(Version::WIN10_V5_3);
    set(&mut g, |h| h.event_flood = true);
    let mut mem = g.mem.clone();
    g.host.poll(&mut mem);
    let flags = *g.host.synic().flags();
    assert_eq!(flags[0], !1u32, "flag 0 is never a channel");
    assert!(flags[1..].iter().all(|&w| w == u32::MAX));
    assert!(g.host.synic_mut().take_interrupt());
    let mut n = 0;
    vmbus_driver::hv::scan_events(&mut hv_host::GuestPort::new(&mut g.host), 2, |_| n += 1)
        .unwrap();
    assert_eq!(n, 2047);
}

#[test]
fn corrupt_ring_indices_write_out_of_range_indices_the_guest_rejects() {
    let mut g = guest_with_device();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    assert_eq!(g.open(r, GpadlId(1), 0, 2, 2), 0);
    set(&mut g, |h| h.corrupt_ring_indices = true);
    let mut mem = g.mem.clone();
    g.host.poll(&mut mem);
    assert_eq!(g.mem.u32_at(2, Control::WriteIndex.offset()), 4096 + 8);
    assert_eq!(g.mem.u32_at(0, Control::ReadIndex.offset()), 4096 + 8);
    let mut rx = RingReader::new(GuestRing {
        mem: g.mem.clone(),
        first: 2,
        pages: 2,
    })
    .unwrap();
    assert!(matches!(
        rx.batch(),
        Err(RingError::Corrupt(Corruption::IndexOutOfRange(4104)))
    ));
    // The single-shot action: a misaligned index.
    g.host.set_hostile(Hostile::NONE);
    g.host
        .corrupt_ring(&mut mem, r, RingSide::Inbound, Control::WriteIndex, 12)
        .unwrap();
    assert!(matches!(
        rx.batch(),
        Err(RingError::Corrupt(Corruption::IndexMisaligned(12)))
    ));
}

#[test]
fn inject_raw_sends_any_bytes_with_any_size_byte() {
    let mut g = guest_with_device();
    assert!(g.host.inject_raw(&[1, 0, 0, 0, 0, 0, 0, 0, 9, 9], 10));
    let slot = g.host.synic().read_slot();
    assert_eq!(u32le(&slot, 0), HvMessageType::VMBUS.0);
    assert_eq!(slot[4], 10);
    assert_eq!(&slot[16..26], &[1, 0, 0, 0, 0, 0, 0, 0, 9, 9]);
    let got = g.take_with(None);
    assert!(matches!(
        msg::decode(&got[0].bytes, None),
        Err(DecodeError::TooShort { .. })
    ));
    // Every record is in the log, in order.
    let sent: Vec<_> = g
        .host
        .log()
        .iter()
        .filter(|l| l.dir == hv_host::Direction::Sent)
        .map(|l| l.msgtype.0)
        .collect();
    assert_eq!(sent, [1]);
}
