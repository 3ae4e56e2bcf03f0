//! Driver core: the INITIATE_CONTACT version walk, connection ids, REQUESTOFFERS and offers.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::driver::{ConnectionState, Driver, MIN_VERSION};
use vmbus_driver::hv::HvStatus;
use vmbus_driver::ids::{ConnectionId, RelId};
use vmbus_driver::msg::MessageType;
use vmbus_driver::version::Version;

/// Versions requested by the INITIATE_CONTACT posts, read at offset 8 of the raw bytes.
fn requested(w: &World) -> Vec<Version> {
    w.posts_of(MessageType::INITIATE_CONTACT)
        .iter()
        .map(|b| Version(u32_at(b, 8)))
        .collect()
}

#[test]
fn newest_version_first_and_msg_conn_id_used_afterwards() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.hv.msg_conn_id = 7;
    w.connect();
    // 6.0 first (max_version 6.0), refused by a 5.3 host, then 5.3 accepted.
    assert_eq!(requested(&w), [Version::WIN10_V6_0, Version::WIN10_V5_3]);
    let c = w.d.connection();
    assert_eq!(c.version, Some(Version::WIN10_V5_3));
    assert_eq!(c.msg_conn_id, ConnectionId(7));
    let conns = w.post_connections();
    // Both INITIATE_CONTACTs on connection 4, REQUESTOFFERS on the id the host handed back.
    assert_eq!(conns, [ConnectionId(4), ConnectionId(4), ConnectionId(7)]);
    assert_eq!(w.d.channels().count(), 1);
}

#[test]
fn initiate_contact_bytes_follow_the_5_0_layout() {
    let mut w = World::with_max(vec![], Version::WIN10_V5_3);
    w.connect();
    let b = &w.posts_of(MessageType::INITIATE_CONTACT)[0];
    assert_eq!(b.len(), 40);
    assert_eq!(u32_at(b, 0), 14);
    assert_eq!(u32_at(b, 8), 0x0005_0003);
    assert_eq!(u32_at(b, 12), TARGET_VP, "target_vcpu");
    assert_eq!(b[16], 2, "msg_sint");
    assert_eq!(b[17], 0, "msg_vtl");
    assert_eq!(&b[18..40], &[0u8; 22][..], "no features, no monitor pages");
}

#[test]
fn host_without_connection_4_falls_back_to_4_0_on_connection_1() {
    // A QEMU-like host: posts to connection 4 fail, 4.1 is refused, 4.0 accepted.
    let mut w = World::with_max(vec![offer(1, NET, 1, 0)], Version::WIN10_V5_3);
    w.hv.conn4 = false;
    w.hv.max_accept = Version::WIN10;
    w.connect();
    // The 5.x attempts never reached the host (the fake logs only successful posts).
    assert_eq!(requested(&w), [Version::WIN10_V4_1, Version::WIN10]);
    assert_eq!(w.d.version(), Some(Version::WIN10));
    assert_eq!(w.d.connection().msg_conn_id, ConnectionId(1));
    assert!(w.post_connections().iter().all(|c| *c == ConnectionId(1)));
    // 5.3, 5.2, 5.1, 5.0 skipped at the hypercall, 4.1 refused.
    assert_eq!(w.d.connection().versions_refused, 5);
    // < 5.0 layout: the third qword is the interrupt page (0), target_vcpu honoured (>= 3.0).
    let b = &w.posts_of(MessageType::INITIATE_CONTACT)[1];
    assert_eq!(u32_at(b, 12), TARGET_VP);
    assert_eq!(&b[16..24], &[0u8; 8][..]);
}

#[test]
fn every_version_refused_fails_without_going_below_2_4() {
    let mut w = World::with_max(vec![], Version::WIN10_V5_3);
    w.hv.max_accept = Version(1);
    w.d.start(&mut w.hv, w.now);
    w.pump();
    assert_eq!(w.d.connection().state, ConnectionState::Failed);
    let asked = requested(&w);
    assert_eq!(asked.first(), Some(&Version::WIN10_V5_3));
    assert_eq!(asked.last(), Some(&MIN_VERSION));
    assert_eq!(asked.len(), 8, "5.3 5.2 5.1 5.0 4.1 4.0 3.0 2.4");
    // A failed driver can be started again.
    w.hv.max_accept = Version::WIN8_1;
    w.d.start(&mut w.hv, w.now);
    w.pump();
    assert_eq!(w.d.version(), Some(Version::WIN8_1));
}

#[test]
fn max_version_caps_the_walk() {
    let mut w = World::with_max(vec![], Version::WIN10_V5);
    w.connect();
    assert_eq!(requested(&w), [Version::WIN10_V5]);
}

#[test]
fn invalid_msg_conn_id_is_treated_as_a_refusal() {
    let mut w = World::with_max(vec![], Version::WIN10_V5_3);
    w.hv.msg_conn_id = 0x0100_0000; // bit 24: not a connection id
    w.d.start(&mut w.hv, w.now);
    w.pump();
    // Every >= 5.0 answer is unusable; 4.1 (on connection 1) is accepted.
    assert_eq!(w.d.version(), Some(Version::WIN10_V4_1));
    assert_eq!(w.d.stats().malformed, 4);
}

#[test]
fn transient_post_failures_are_retried_a_bounded_number_of_times() {
    let mut w = World::with_max(vec![], Version::WIN10_V5_3);
    for _ in 0..3 {
        w.hv.post_failures.push_back(HvStatus::INSUFFICIENT_BUFFERS);
    }
    w.connect();
    assert_eq!(w.d.stats().post_retries, 3);
    assert_eq!(requested(&w), [Version::WIN10_V5_3]);

    // A host that never accepts the post: each version gives up after POST_RETRIES retries.
    let mut w = World::with_max(vec![], Version::WIN10_V5);
    for _ in 0..10_000 {
        w.hv.post_failures.push_back(HvStatus::INSUFFICIENT_MEMORY);
    }
    w.d.start(&mut w.hv, w.now);
    let per_version = u64::from(vmbus_driver::driver::POST_RETRIES);
    // 5.0, 4.1, 4.0, 3.0, 2.4 each tried 1 + POST_RETRIES times.
    assert_eq!(w.d.stats().post_retries, 5 * per_version);
    assert_eq!(w.d.stats().post_failures, 5);
    assert_eq!(w.d.connection().state, ConnectionState::Failed);
}

#[test]
fn silent_host_times_out_the_handshake() {
    let mut w = World::new(vec![]);
    w.hv.silent.insert(MessageType::VERSION_RESPONSE.0);
    w.d.start(&mut w.hv, w.now);
    w.pump();
    assert_eq!(w.d.connection().state, ConnectionState::Connecting);
    w.tick(TIMEOUT - 1);
    assert_eq!(w.d.connection().state, ConnectionState::Connecting);
    w.tick(1);
    assert_eq!(w.d.connection().state, ConnectionState::Failed);
    assert_eq!(w.d.stats().timeouts, 1);
}

#[test]
fn missing_alloffers_delivered_times_out_into_connected() {
    let mut w = World::new(vec![offer(3, NET, 1, 0)]);
    w.hv.silent.insert(MessageType::ALLOFFERS_DELIVERED.0);
    w.d.start(&mut w.hv, w.now);
    w.pump();
    assert_eq!(w.d.connection().state, ConnectionState::RequestingOffers);
    // Offers already count and can be opened while waiting.
    w.open(A, 3);
    w.tick(TIMEOUT);
    assert_eq!(w.d.connection().state, ConnectionState::Connected);
}

#[test]
fn offers_fill_the_table_and_hot_add_works_after_connect() {
    let mut w = World::new(vec![offer(1, NET, 1, 0), offer(2047, HEARTBEAT, 2, 0)]);
    w.connect();
    let rows: Vec<_> = w.d.channels().map(|c| (c.relid, c.class)).collect();
    assert_eq!(rows, [(RelId(1), NET), (RelId(2047), HEARTBEAT)]);
    w.hv.send(&vmbus_driver::msg::ChannelMessage::OfferChannel(offer(
        9, SCSI, 3, 0,
    )));
    w.pump();
    assert_eq!(w.d.channel(RelId(9)).unwrap().class, SCSI);
    assert_eq!(w.d.stats().offers, 3);
}

#[test]
fn driver_fits_a_test_thread_stack() {
    let size = core::mem::size_of::<Driver>();
    println!("size_of::<Driver>() = {size} bytes");
    assert!(size < 320 * 1024, "Driver is {size} bytes");
}
