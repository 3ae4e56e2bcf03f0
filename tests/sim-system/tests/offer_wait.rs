//! A client that starts before its device is offered sleeps on the driver's notification and
//! is woken by the offer of its class (and only by that), on the simulated seL4 kernel and
//! host: `vmbus_client::wait_for_offer` over the driver's offers-delivered counter.

use hv_host::DeviceSpec;
use sim_system::{World, WorldConfig};
use vmbus_client::{ClientError, offers_delivered, wait_for_offer};
use vmbus_driver::driver::ConnectionState;
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::ClientId;

/// The repository's system, connected, with only the heartbeat device offered.
fn connected() -> World {
    let mut w = World::repository(&WorldConfig::default());
    let hb = w.client("heartbeat").unwrap().classes[0];
    w.host_mut()
        .add_device(DeviceSpec::echo(hb, Guid([1; 16])))
        .unwrap();
    w.start();
    w.run_until(
        |w| w.driver().connection().state == ConnectionState::Connected,
        100,
    )
    .expect("connects");
    w.run(5);
    w
}

fn client(w: &World, name: &str) -> (ClientId, Guid) {
    let c = w.client(name).unwrap();
    (c.id, c.classes[0])
}

#[test]
fn a_client_waiting_before_its_device_is_offered_is_woken_by_the_hot_add() {
    let mut w = connected();
    let (ts, class) = client(&w, "timesync");
    // Nothing of its class yet: the wait sleeps and, with nothing coming, ends without an offer.
    let r = w.as_client(ts, |ctx| wait_for_offer(ctx, class));
    assert_eq!(r, Err(ClientError::NoOffer));
    assert_eq!(w.as_client(ts, |ctx| offers_delivered(ctx)), 0);
    // The host adds the device while the client sleeps: the offer wakes it and it gets the
    // relid the driver holds for it.
    w.host_mut()
        .add_device(DeviceSpec::echo(class, Guid([2; 16])))
        .unwrap();
    let relid = w
        .as_client(ts, |ctx| wait_for_offer(ctx, class))
        .expect("woken by the offer");
    assert!(w.driver_channels().iter().any(|c| c.relid == relid));
    assert_eq!(w.as_client(ts, |ctx| offers_delivered(ctx)), 1);
    assert_eq!(w.driver().offers_delivered(ts), Some(1));
}

#[test]
fn an_offer_of_another_class_does_not_wake_a_waiting_client_nor_move_its_counter() {
    let mut w = connected();
    let (ts, class) = client(&w, "timesync");
    let (kvp, kvp_class) = client(&w, "kvp");
    w.host_mut()
        .add_device(DeviceSpec::echo(kvp_class, Guid([3; 16])))
        .unwrap();
    let r = w.as_client(ts, |ctx| wait_for_offer(ctx, class));
    assert_eq!(
        r,
        Err(ClientError::NoOffer),
        "the kvp offer did not wake it"
    );
    assert_eq!(w.as_client(ts, |ctx| offers_delivered(ctx)), 0);
    assert_eq!(w.as_client(ts, |ctx| ctx.poll_notification()), None);
    // The kvp client did hear about its own.
    assert_eq!(w.as_client(kvp, |ctx| offers_delivered(ctx)), 1);
    assert!(w.as_client(kvp, |ctx| ctx.poll_notification()).is_some());
}

#[test]
fn a_rescinded_device_offered_again_wakes_its_waiting_client_again() {
    let mut w = connected();
    let (ts, class) = client(&w, "timesync");
    let dev = w
        .host_mut()
        .add_device(DeviceSpec::echo(class, Guid([4; 16])))
        .unwrap();
    let first = w
        .as_client(ts, |ctx| wait_for_offer(ctx, class))
        .expect("first offer");
    w.host_mut().remove_device(dev).unwrap();
    w.run_until(
        |w| !w.driver_channels().iter().any(|c| c.relid == first),
        100,
    )
    .expect("rescinded");
    // Drain the notifications so far: the next wake-up must come from the new offer.
    while w.as_client(ts, |ctx| ctx.poll_notification()).is_some() {}
    w.host_mut()
        .add_device(DeviceSpec::echo(class, Guid([4; 16])))
        .unwrap();
    let again = w
        .as_client(ts, |ctx| wait_for_offer(ctx, class))
        .expect("woken by the new offer");
    assert!(w.driver_channels().iter().any(|c| c.relid == again));
    assert_eq!(w.as_client(ts, |ctx| offers_delivered(ctx)), 2);
}
