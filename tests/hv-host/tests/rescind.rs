//! Rescind at any moment, RELID_RELEASED tracking (no reuse before release), and UNLOAD.

mod common;

use common::*;
use hv_host::{ChannelState, DeviceSpec, GuestError, HostConfig};
use vmbus_driver::hv::HvStatus;
use vmbus_driver::ids::{GpadlId, RelId};
use vmbus_driver::msg::{
    ChannelMessage, CloseChannel, GpadlTeardown, GpadlTorndown, RelIdReleased, RescindChannelOffer,
};
use vmbus_driver::version::Version;

fn setup() -> (Guest, RelId) {
    let mut g = Guest::new(HostConfig::hyperv(), 8);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    (g, r)
}

fn release(g: &mut Guest, r: RelId) {
    g.post(&ChannelMessage::RelIdReleased(RelIdReleased {
        child_relid: r,
    }));
}

#[test]
fn rescind_of_an_open_channel_follows_the_teardown_order_and_frees_the_relid_on_release() {
    let (mut g, r) = setup();
    assert_eq!(g.open(r, GpadlId(1), 0, 2, 2), 0);
    let conn = g.host.channel(r).unwrap().connection_id;
    g.host.rescind(r).unwrap();
    assert_eq!(
        g.msgs(),
        [ChannelMessage::RescindChannelOffer(RescindChannelOffer {
            child_relid: r
        })]
    );
    assert_eq!(g.host.channel_state(r), ChannelState::Rescinded);
    assert_eq!(g.host.signal_event(conn, 0), HvStatus::INVALID_PORT_ID);
    // CLOSECHANNEL for a rescinded channel: ignored, no reply.
    g.post(&ChannelMessage::CloseChannel(CloseChannel {
        child_relid: r,
    }));
    assert!(g.take().is_empty());
    // GPADL_TEARDOWN for a rescinded channel: answered at once.
    g.post(&ChannelMessage::GpadlTeardown(GpadlTeardown {
        child_relid: r,
        gpadl: GpadlId(1),
    }));
    assert_eq!(
        g.msgs(),
        [ChannelMessage::GpadlTorndown(GpadlTorndown {
            gpadl: GpadlId(1)
        })]
    );
    // A new device now must not get the rescinded relid.
    g.host
        .add_device(DeviceSpec::echo(class(2), instance(2)))
        .unwrap();
    let m = g.msgs();
    assert!(matches!(m[..], [ChannelMessage::OfferChannel(o)] if o.child_relid != r));
    release(&mut g, r);
    assert!(g.take().is_empty(), "RELID_RELEASED has no reply");
    assert_eq!(g.host.channel_state(r), ChannelState::Free);
    assert_eq!(g.host.counters().releases, 1);
    // Now the relid is reused.
    g.host
        .add_device(DeviceSpec::echo(class(3), instance(3)))
        .unwrap();
    let m = g.msgs();
    assert!(matches!(m[..], [ChannelMessage::OfferChannel(o)] if o.child_relid == r));
    assert_eq!(g.host.counters().guest_errors, 0);
}

#[test]
fn a_duplicate_release_and_a_release_of_a_live_channel_are_guest_errors() {
    let (mut g, r) = setup();
    release(&mut g, r);
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::ReleaseNotRescinded(r))
    );
    assert_eq!(g.host.channel_state(r), ChannelState::Offered);
    g.host.rescind(r).unwrap();
    g.take();
    release(&mut g, r);
    release(&mut g, r);
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::DuplicateRelease(r))
    );
    release(&mut g, RelId(1999));
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::UnknownRelid(RelId(1999)))
    );
    assert_eq!(g.host.counters().releases, 1);
}

#[test]
fn gpadls_left_on_a_rescinded_channel_are_dropped_at_release() {
    let (mut g, r) = setup();
    g.create_gpadl(r, GpadlId(3), 0, 4);
    g.take();
    g.host.rescind(r).unwrap();
    g.take();
    release(&mut g, r);
    assert_eq!(g.host.gpadl_count(), 0);
    assert_eq!(g.host.counters().gpadls_dropped, 1);
}

#[test]
fn a_gpadl_completed_after_the_rescind_is_refused() {
    let (mut g, r) = setup();
    g.host.rescind(r).unwrap();
    g.take();
    g.create_gpadl(r, GpadlId(3), 0, 4);
    assert!(matches!(
        g.msgs()[..],
        [ChannelMessage::GpadlCreated(c)] if c.creation_status == 0x8000_FFFF
    ));
    // OPENCHANNEL for it: ignored.
    g.post(&open_channel(r, GpadlId(3), 2));
    assert!(g.take().is_empty());
}

#[test]
fn rescind_before_the_offer_went_out_frees_the_relid_silently() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    let d = g
        .host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.host.device_relids(d).next().unwrap();
    g.host.rescind(r).unwrap();
    assert_eq!(g.host.channel_state(r), ChannelState::Free);
    let offers = g.connect(Version::WIN10_V5_3);
    assert!(offers.is_empty());
}

#[test]
fn remove_device_rescinds_sub_channels_before_the_primary() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    let d = g
        .host
        .add_device(DeviceSpec::echo(class(1), instance(1)).with_sub_channels(2))
        .unwrap();
    g.connect(Version::WIN10_V5_3);
    g.host.remove_device(d).unwrap();
    let order: Vec<u32> = g
        .msgs()
        .iter()
        .map(|m| match m {
            ChannelMessage::RescindChannelOffer(r) => r.child_relid.0,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(order, [3, 2, 1]);
}

#[test]
fn qemu_rescinds_on_removal_and_releases_only_a_rescinded_relid() {
    // QEMU with the project's series (build/qemu/): device_del rescinds; RELID_RELEASED of a
    // channel that was not rescinded is ignored, with no error; that of a rescinded one frees it
    // and drops the GPADLs the guest left.
    let mut g = Guest::new(HostConfig::qemu(), 1);
    let d = g
        .host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10)[0].child_relid;
    release(&mut g, r);
    assert_eq!(g.host.channel_state(r), ChannelState::Offered);
    assert_eq!(g.host.counters().guest_errors, 0);
    g.host.remove_device(d).unwrap();
    assert!(
        g.msgs()
            .iter()
            .any(|m| matches!(m, ChannelMessage::RescindChannelOffer(x) if x.child_relid == r))
    );
    assert_eq!(g.host.channel_state(r), ChannelState::Rescinded);
    release(&mut g, r);
    assert_eq!(g.host.channel_state(r), ChannelState::Free);
    assert_eq!(g.host.counters().releases, 1);
    assert_eq!(g.host.counters().guest_errors, 0);
}

#[test]
fn unload_answers_unload_response_and_resets_everything() {
    for cfg in [HostConfig::hyperv(), HostConfig::qemu()] {
        let mut g = Guest::new(cfg, 8);
        g.host
            .add_device(DeviceSpec::echo(class(1), instance(1)))
            .unwrap();
        g.host
            .add_device(DeviceSpec::echo(class(2), instance(2)))
            .unwrap();
        let offers = g.connect(Version::WIN10);
        let (r1, r2) = (offers[0].child_relid, offers[1].child_relid);
        assert_eq!(g.open(r1, GpadlId(1), 0, 2, 2), 0);
        if cfg.mode == hv_host::Mode::HyperV {
            g.host.rescind(r2).unwrap();
            g.take();
        }
        g.post(&ChannelMessage::Unload);
        let got = g.take();
        assert_eq!(got.len(), 1);
        assert_eq!(u32le(&got[0].bytes, 0), 17, "UNLOAD_RESPONSE");
        assert_eq!(g.host.connection(), hv_host::Connection::Disconnected);
        assert_eq!(g.host.channel_state(r1), ChannelState::Offered);
        assert_eq!(g.host.gpadl_count(), 0);
        if cfg.mode == hv_host::Mode::HyperV {
            // The guest holds no references after an unload: the rescinded relid is free.
            assert_eq!(g.host.channel_state(r2), ChannelState::Free);
        }
        // A message after the unload needs a new handshake.
        g.post(&ChannelMessage::RequestOffers);
        assert!(g.take().is_empty());
    }
}

#[test]
fn qemu_unload_drops_the_guest_messages_still_queued() {
    let mut g = Guest::new(HostConfig::qemu(), 8);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10)[0].child_relid;
    // A GPADL_CREATED waits for the slot (nothing consumed), so the next messages queue up.
    g.create_gpadl(r, GpadlId(1), 0, 2);
    g.create_gpadl(r, GpadlId(2), 2, 2);
    g.post(&ChannelMessage::Unload);
    g.create_gpadl(r, GpadlId(3), 4, 2);
    assert_eq!(
        g.host.inbound_pending(),
        2,
        "UNLOAD and GPADL 3 wait behind GPADL 2's reply"
    );
    // Only consumption lets the host go on: GPADL 1's reply, GPADL 2's, UNLOAD_RESPONSE.
    let types: Vec<u32> = g.take().iter().map(|m| u32le(&m.bytes, 0)).collect();
    assert_eq!(
        types,
        [10, 10, 17],
        "GPADL 3's header was dropped with the unload"
    );
    assert_eq!(g.host.inbound_pending(), 0);
    assert_eq!(g.host.gpadl_count(), 0);
}
