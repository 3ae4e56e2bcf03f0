//! Clients hear about offers: every offer a client may open moves its offers-delivered counter
//! in the control page and notifies it, at connect and when hot-added later; an offer it may
//! not open does neither.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{OFFERS_DELIVERED_OFFSET, OFFERS_DELIVERED_SIZE};
use vmbus_driver::driver::{ClientConfig, Driver, DriverConfig};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, VpIndex};
use vmbus_driver::msg::ChannelMessage;
use vmbus_driver::version::Version;

/// The counter as the client reads it from its control page.
fn counter(k: &FakeKernel, c: ClientId) -> u32 {
    let page = &k.control[&c];
    u32::from_le_bytes(
        page[OFFERS_DELIVERED_OFFSET..OFFERS_DELIVERED_OFFSET + OFFERS_DELIVERED_SIZE]
            .try_into()
            .unwrap(),
    )
}

fn notifies(w: &World, c: ClientId) -> usize {
    w.events().iter().filter(|e| **e == Ev::Notify(c)).count()
}

fn hot_add(w: &mut World, relid: u32, class: Guid, inst: u8) {
    w.hv.send(&ChannelMessage::OfferChannel(offer(relid, class, inst, 0)));
    w.pump();
}

#[test]
fn a_client_waiting_before_its_device_exists_is_woken_exactly_when_it_is_hot_added() {
    let mut w = World::new(vec![offer(1, HEARTBEAT, 1, 0)]);
    w.connect();
    // Connected, nothing of A's classes offered: A has heard nothing.
    assert_eq!(counter(&w.k, A), 0);
    assert_eq!(notifies(&w, A), 0);
    assert_eq!(counter(&w.k, B), 1, "B's offer at connect counted");
    assert_eq!(notifies(&w, B), 1);
    w.clear_log();
    // Time passes with nothing for A: no wake-up.
    w.tick(1);
    assert_eq!(notifies(&w, A), 0);
    hot_add(&mut w, 7, NET, 7);
    assert_eq!(counter(&w.k, A), 1);
    assert_eq!(
        notifies(&w, A),
        1,
        "one notification for the hot-added offer"
    );
    assert_eq!(notifies(&w, B), 0);
    assert_eq!(w.d.offers_delivered(A), Some(1));
    // Stored before the notification: a client woken by it sees the new count.
    let log = w.events();
    assert_eq!(log.last(), Some(&Ev::Notify(A)));
}

#[test]
fn an_offer_of_another_class_neither_wakes_a_client_nor_moves_its_counter() {
    let mut w = World::new(vec![]);
    w.connect();
    w.clear_log();
    hot_add(&mut w, 3, HEARTBEAT, 3);
    hot_add(&mut w, 4, Guid([0x77; 16]), 4);
    assert_eq!(counter(&w.k, A), 0);
    assert_eq!(notifies(&w, A), 0);
    assert_eq!(counter(&w.k, B), 1);
    assert_eq!(notifies(&w, B), 1);
    // Each of A's classes counts.
    hot_add(&mut w, 5, SCSI, 5);
    hot_add(&mut w, 6, NET, 6);
    assert_eq!(counter(&w.k, A), 2);
    assert_eq!(notifies(&w, A), 2);
}

#[test]
fn an_offer_of_another_instance_does_not_wake_a_client_with_an_instance_filter() {
    const CLASSES: [Guid; 1] = [NET];
    let filtered = ClientId(5);
    let clients = [ClientConfig {
        id: filtered,
        window_pages: WINDOW_PAGES,
        max_channels: MAX_CHANNELS,
        classes: &CLASSES,
        instance: Some(Guid([2; 16])),
        power: false,
        low_latency: false,
    }];
    let log: Log = Default::default();
    let mut hv = FakeHv::new(log.clone());
    let mut k = FakeKernel::new(log.clone(), 64, &[filtered]);
    let mut d = Box::new(Driver::new(&DriverConfig {
        target_vp: VpIndex(0),
        max_version: Version::WIN10_V5_3,
        reply_timeout: TIMEOUT,
        clients: &clients,
    }));
    d.start(&mut hv, 1);
    let pump = |hv: &mut FakeHv, k: &mut FakeKernel, d: &mut Driver| {
        while hv.busy() {
            d.on_interrupt(hv, k, 1);
        }
    };
    pump(&mut hv, &mut k, &mut d);
    hv.send(&ChannelMessage::OfferChannel(offer(1, NET, 1, 0)));
    pump(&mut hv, &mut k, &mut d);
    assert_eq!(counter(&k, filtered), 0);
    assert!(!log.borrow().contains(&Ev::Notify(filtered)));
    hv.send(&ChannelMessage::OfferChannel(offer(2, NET, 2, 0)));
    pump(&mut hv, &mut k, &mut d);
    assert_eq!(counter(&k, filtered), 1);
    assert_eq!(
        log.borrow()
            .iter()
            .filter(|e| **e == Ev::Notify(filtered))
            .count(),
        1
    );
}

#[test]
fn a_device_rescinded_and_offered_again_wakes_its_client_again() {
    let mut w = World::new(vec![offer(1, NET, 1, 0)]);
    w.connect();
    assert_eq!(counter(&w.k, A), 1);
    w.clear_log();
    w.hv.rescind(1);
    w.pump();
    assert_eq!(counter(&w.k, A), 1, "a rescind is not an offer");
    hot_add(&mut w, 1, NET, 1);
    assert_eq!(counter(&w.k, A), 2);
    assert_eq!(notifies(&w, A), 1);
    // Under a new relid too.
    w.hv.rescind(1);
    w.pump();
    hot_add(&mut w, 9, NET, 1);
    assert_eq!(counter(&w.k, A), 3);
    assert_eq!(notifies(&w, A), 2);
}

#[test]
fn the_counter_is_written_only_by_the_driver_and_only_ever_grows() {
    let mut w = World::new(vec![offer(1, NET, 1, 0), offer(2, SCSI, 2, 0)]);
    w.connect();
    assert_eq!(counter(&w.k, A), 2);
    // A client request does not touch it (the response area ends before it).
    let _ = w.call(
        A,
        vmbus_driver::control::Request::ListOffers {
            start: vmbus_driver::ids::RelId(0),
        },
    );
    assert_eq!(counter(&w.k, A), 2);
    w.d.unload(&mut w.hv, &mut w.k, w.now);
    w.pump();
    w.connect();
    assert_eq!(counter(&w.k, A), 4, "offers after a reconnect count on");
}
