//! Offers: REQUESTOFFERS, sub-channels, connection ids per mode, hot add, and the SynIC's
//! MessagePending / EOM rule that paces them.

mod common;

use common::*;
use hv_host::{DeviceSpec, GuestError, HostConfig};
use vmbus_driver::hv::{HvMessageType, HvStatus, parse_message_slot};
use vmbus_driver::ids::{ConnectionId, RelId};
use vmbus_driver::msg::{self, ChannelMessage};
use vmbus_driver::version::Version;

#[test]
fn hyperv_offers_then_alloffers_with_subchannels_and_distinct_connection_ids() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)).with_sub_channels(2))
        .unwrap();
    g.host
        .add_device(DeviceSpec::echo(class(2), instance(2)))
        .unwrap();
    let offers = g.connect(Version::WIN10_V5_3);
    assert_eq!(offers.len(), 4);
    let relids: Vec<u32> = offers.iter().map(|o| o.child_relid.0).collect();
    assert_eq!(relids, [1, 2, 3, 4]);
    for o in &offers[..3] {
        assert_eq!((o.if_type, o.if_instance), (class(1), instance(1)));
    }
    let subs: Vec<u16> = offers.iter().map(|o| o.sub_channel_index).collect();
    assert_eq!(subs, [0, 1, 2, 0]);
    for o in &offers {
        // OpenVMM's scheme relid | SINT 2 << 12: never QEMU's 16 + relid.
        assert_eq!(o.connection_id, ConnectionId(o.child_relid.0 | 0x2000));
        assert!(o.is_dedicated_interrupt);
        // Hyper-V mode offers every channel with a distinct monitor id (relid - 1).
        assert!(o.monitor_allocated);
        assert_eq!(u32::from(o.monitor_id), o.child_relid.0 - 1);
    }
}

#[test]
fn monitor_ids_switched_off_offer_no_monitor() {
    let cfg = HostConfig {
        monitor_ids: false,
        ..HostConfig::hyperv()
    };
    let mut g = Guest::new(cfg, 1);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let o = g.connect(Version::WIN10_V5_3)[0];
    assert!(!o.monitor_allocated);
    assert_eq!(o.monitor_id, 0xFF);
}

#[test]
fn offer_bytes_follow_the_protocol_offsets() {
    let mut g = Guest::new(HostConfig::qemu(), 1);
    g.host
        .add_device(DeviceSpec::echo(class(9), instance(9)))
        .unwrap();
    assert!(g.accepted(Version::WIN10));
    g.post(&ChannelMessage::RequestOffers);
    let got = g.take();
    let b = &got[0].bytes;
    // QEMU rounds the 196-byte offer up to 200.
    assert_eq!((got[0].slot_size, b.len()), (200, 200));
    assert_eq!(u32le(b, 0), 1);
    assert_eq!(&b[8..24], &class(9).0);
    assert_eq!(&b[24..40], &instance(9).0);
    assert_eq!(u32le(b, 184), 1, "child_relid");
    assert_eq!(
        (b[188], b[189]),
        (0, 0),
        "QEMU: monitor id 0, not allocated"
    );
    assert_eq!(b[190], 1, "is_dedicated_interrupt");
    assert_eq!(u32le(b, 192), 17, "QEMU connection id 16 + relid");
    assert_eq!(&b[196..200], &[0; 4]);
    assert_eq!(u32le(&got[1].bytes, 0), 4, "ALLOFFERS_DELIVERED");
}

#[test]
fn a_busy_slot_sets_message_pending_and_nothing_moves_until_eom() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    for i in 0..3 {
        g.host
            .add_device(DeviceSpec::echo(class(i), instance(i)))
            .unwrap();
    }
    assert!(g.accepted(Version::WIN10_V5_3));
    g.post(&ChannelMessage::RequestOffers);
    let slot = g.host.synic().read_slot();
    let m = parse_message_slot(&slot).unwrap().unwrap();
    assert!(m.pending, "more offers wait behind the first");
    assert_eq!(slot[5] & 1, 1);
    // Free the slot without EOM: the host must not deliver.
    assert!(g.host.synic_mut().clear_slot(HvMessageType::VMBUS));
    g.host.process();
    assert!(!g.host.synic().slot_busy(), "no delivery without EOM");
    assert!(g.host.synic().waiting_for_eom());
    g.host.end_of_message();
    let m = parse_message_slot(&g.host.synic().read_slot())
        .unwrap()
        .unwrap();
    let Ok(ChannelMessage::OfferChannel(o)) = msg::decode(m.payload(), None) else {
        panic!()
    };
    assert_eq!(o.child_relid, RelId(2));
    // The rest through the guest's own consume procedure (offer 2 is still in the slot).
    let rest = g.msgs();
    assert_eq!(rest.len(), 3, "offers 2 and 3, ALLOFFERS_DELIVERED");
    assert!(matches!(rest[0], ChannelMessage::OfferChannel(o) if o.child_relid == RelId(2)));
    assert_eq!(rest[2], ChannelMessage::AllOffersDelivered);
    assert_eq!(g.host.synic().stats().delivered, 5);
}

#[test]
fn qemu_sends_one_message_at_a_time() {
    let mut g = Guest::new(HostConfig::qemu(), 1);
    for i in 0..3 {
        g.host
            .add_device(DeviceSpec::echo(class(i), instance(i)))
            .unwrap();
    }
    assert!(g.accepted(Version::WIN10));
    g.post(&ChannelMessage::RequestOffers);
    assert_eq!(
        g.host.synic().queued(),
        1,
        "one waits for the slot, the rest in the host"
    );
    assert!(g.host.outbox_pending() >= 2);
    assert_eq!(g.msgs().len(), 4);
}

#[test]
fn hot_add_after_alloffers_offers_at_once_and_a_second_requestoffers_is_refused() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    let offers = g.connect(Version::WIN10_V5_3);
    assert!(offers.is_empty());
    g.host
        .add_device(DeviceSpec::echo(class(5), instance(5)))
        .unwrap();
    let m = g.msgs();
    assert!(matches!(m[..], [ChannelMessage::OfferChannel(o)] if o.child_relid == RelId(1)));
    g.post(&ChannelMessage::RequestOffers);
    assert!(g.take().is_empty());
    assert_eq!(g.host.errors().last(), Some(GuestError::OffersAlreadySent));
}

#[test]
fn requestoffers_before_the_handshake_is_refused() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    g.host
        .add_device(DeviceSpec::echo(class(5), instance(5)))
        .unwrap();
    let st = g.post_on(ConnectionId(1), &ChannelMessage::RequestOffers);
    assert_eq!(st, HvStatus::SUCCESS);
    assert!(g.take().is_empty());
    assert!(matches!(
        g.host.errors().last(),
        Some(GuestError::NotConnected(_))
    ));
}

#[test]
fn relids_run_out_at_2047() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    let spec = DeviceSpec::echo(class(1), instance(1)).with_sub_channels(2046);
    g.host.add_device(spec).unwrap();
    assert_eq!(
        g.host.add_device(DeviceSpec::echo(class(2), instance(2))),
        Err(hv_host::HostError::NoFreeRelid)
    );
    assert_eq!(g.host.channels().count(), 2047);
    assert!(g.host.channel(RelId(2047)).is_some());
    assert!(g.host.channel(RelId(0)).is_none());
}

#[test]
fn monitored_devices_get_a_monitor_id_on_hyperv_only() {
    let mut spec = DeviceSpec::echo(class(1), instance(1));
    spec.monitored = true;
    let cfg = HostConfig {
        monitor_ids: false,
        ..HostConfig::hyperv()
    };
    let mut g = Guest::new(cfg, 1);
    g.host.add_device(spec).unwrap();
    let o = g.connect(Version::WIN10_V5_3)[0];
    assert!(o.monitor_allocated);
    assert_eq!(o.monitor_id, 0);
    let mut q = Guest::new(HostConfig::qemu(), 1);
    q.host.add_device(spec).unwrap();
    let o = q.connect(Version::WIN10)[0];
    assert!(!o.monitor_allocated);
}

#[test]
fn qemu_answers_a_second_requestoffers_with_alloffers_alone() {
    let mut g = Guest::new(HostConfig::qemu(), 1);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    assert_eq!(g.connect(Version::WIN10).len(), 1);
    g.post(&ChannelMessage::RequestOffers);
    assert_eq!(g.msgs(), [ChannelMessage::AllOffersDelivered]);
    assert_eq!(g.host.counters().guest_errors, 0);
}
