//! Every hostile mode of the simulated host against the system of system.xml: malformed and
//! truncated messages, out-of-range relids, duplicate offers, a rescind of an unknown relid,
//! GPADL_CREATED for an unknown GPADL, wrong fields in replies, no reply at all (the timeout
//! path, with pages quarantined and never reused), event floods and corrupt ring indices.
//!
//! In each: the driver stays up (connected, still serving), the other channels keep working
//! (echo traffic on a second client's channel continues after the hostile input), and the
//! error is counted in the driver's stats and logged. The invariant monitor runs throughout.

mod common;

use hv_host::{DeviceKind, DeviceSpec, Hostile, RingSide};
use sim_system::{EchoClient, EchoHandle};
use vmbus_driver::driver::{ConnectionState, Stats};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, GpadlId, RelId};
use vmbus_driver::msg::MessageType;
use vmbus_driver::ring::Control;

use common::{Rig, client, instance, logcap};

/// Two clients with echo traffic on their own channels: A (`heartbeat`) is where the hostile
/// input lands when it needs a channel, B (`shutdown`) is the bystander.
struct Bed {
    rig: Rig,
    a_class: Guid,
    ra: RelId,
    ea: EchoHandle,
    rb: RelId,
    eb: EchoHandle,
    c: ClientId,
    c_class: Guid,
}

fn bed() -> Bed {
    logcap::install();
    let mut rig = Rig::booted(&[]);
    rig.fine = false;
    // Injected rescinds are not the driver's to answer.
    rig.mon.strict_rescinds = false;
    let (a, a_class) = client(&rig.w, "heartbeat");
    let (b, b_class) = client(&rig.w, "shutdown");
    let (c, c_class) = client(&rig.w, "timesync");
    let mut handles = Vec::new();
    for (id, class, n) in [(a, a_class, 1), (b, b_class, 2)] {
        rig.w
            .host_mut()
            .add_device(DeviceSpec::echo(class, instance(n)))
            .unwrap();
        let e = EchoClient::new(class).in_flight(2).payload_len(40);
        handles.push(e.handle());
        rig.w.set_program(id, Box::new(e));
    }
    let (ea, eb) = (handles[0].clone(), handles[1].clone());
    rig.run_until(|_| ea.stats().echoed >= 4 && eb.stats().echoed >= 4, 600)
        .expect("traffic on both channels");
    let (ra, rb) = (rig.relid_of(a_class), rig.relid_of(b_class));
    let _ = logcap::take();
    Bed {
        rig,
        a_class,
        ra,
        ea,
        rb,
        eb,
        c,
        c_class,
    }
}

impl Bed {
    fn stats(&self) -> Stats {
        self.rig.w.driver_stats()
    }

    /// The driver is connected and the bystander's traffic moves on by at least 8 echoes.
    fn bystander_keeps_working(&mut self, context: &str) {
        let want = self.eb.stats().echoed + 8;
        let eb = self.eb.clone();
        self.rig
            .run_until(|_| eb.stats().echoed >= want, 900)
            .unwrap_or_else(|_| panic!("{context}: the other channel stalled: {:?}", eb.stats()));
        assert_eq!(
            self.rig.w.driver().connection().state,
            ConnectionState::Connected,
            "{context}: the driver stays connected"
        );
        let s = self.eb.stats();
        assert_eq!(
            (s.mismatches, s.errors, s.gone),
            (0, 0, 0),
            "{context}: {s:?}"
        );
        assert_eq!(
            self.rig.w.driver().channel(self.rb).map(|r| r.state),
            Some(vmbus_driver::driver::ChannelState::Open),
            "{context}"
        );
    }

    fn finish(&mut self, context: &str) {
        self.rig.mon.assert_clean(context);
    }
}

/// Asserts `after - before` of the selected counter and of `hostile` are both `n`.
fn counted(before: &Stats, after: &Stats, field: fn(&Stats) -> u64, n: u64, what: &str) {
    assert_eq!(field(after) - field(before), n, "{what}: detailed counter");
    assert!(after.hostile - before.hostile >= n, "{what}: hostile total");
}

#[test]
fn malformed_host_messages_are_counted_and_logged_and_the_bus_keeps_working() {
    let mut b = bed();
    let before = b.stats();
    // Garbage that decodes as no message.
    b.rig.w.host_mut().inject_raw(&[0xEE; 40], 40);
    // A valid header type with a body of the wrong size for it.
    let mut bogus = [0u8; 12];
    bogus[..4].copy_from_slice(&MessageType::OFFERCHANNEL.0.to_le_bytes());
    b.rig.w.host_mut().inject_raw(&bogus, 12);
    // A slot whose size byte exceeds the 240-byte payload (malformed at the SynIC level).
    b.rig.w.host_mut().inject_raw(&[0u8; 16], 0xF8);
    // Unknown message types on the next offer: the hot-added device is never taken.
    b.rig.w.host_mut().set_hostile(Hostile {
        unknown_type: true,
        targets: Hostile::bit(MessageType::OFFERCHANNEL),
        ..Hostile::NONE
    });
    b.rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)))
        .unwrap();
    for _ in 0..10 {
        b.rig.step();
    }
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    let after = b.stats();
    counted(&before, &after, |s| s.malformed, 4, "malformed");
    assert!(logcap::logged("malformed host message"), "logged");
    assert!(
        b.rig
            .w
            .driver_channels()
            .iter()
            .all(|r| r.class != b.c_class),
        "the mangled offer was not taken"
    );
    b.bystander_keeps_working("malformed");
    b.finish("malformed");
}

#[test]
fn truncated_host_messages_are_counted_and_logged_and_the_bus_keeps_working() {
    let mut b = bed();
    let before = b.stats();
    b.rig.w.host_mut().set_hostile(Hostile {
        truncate: true,
        targets: Hostile::bit(MessageType::OFFERCHANNEL),
        ..Hostile::NONE
    });
    b.rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)))
        .unwrap();
    for _ in 0..10 {
        b.rig.step();
    }
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    // A header cut short (4 of its 8 bytes).
    b.rig
        .w
        .host_mut()
        .inject_raw(&MessageType::GPADL_TORNDOWN.0.to_le_bytes(), 4);
    for _ in 0..4 {
        b.rig.step();
    }
    let after = b.stats();
    counted(&before, &after, |s| s.malformed, 2, "truncated");
    assert!(logcap::logged("malformed host message"), "logged");
    b.bystander_keeps_working("truncated");
    b.finish("truncated");
}

#[test]
fn out_of_range_relids_are_counted_and_logged_and_never_reach_the_table() {
    let mut b = bed();
    let before = b.stats();
    b.rig.w.host_mut().set_hostile(Hostile {
        out_of_range_relids: true,
        targets: Hostile::bit(MessageType::OFFERCHANNEL),
        ..Hostile::NONE
    });
    b.rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)))
        .unwrap();
    for _ in 0..6 {
        b.rig.step();
    }
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    b.rig.w.host_mut().inject_rescind(RelId(5000));
    b.rig.w.host_mut().inject_rescind(RelId(0));
    for _ in 0..4 {
        b.rig.step();
    }
    let after = b.stats();
    counted(&before, &after, |s| s.relid_out_of_range, 3, "out of range");
    assert!(logcap::logged("outside 1..2048"), "logged");
    assert_eq!(
        b.rig.w.driver_channels().len(),
        2,
        "nothing new in the table"
    );
    b.bystander_keeps_working("out of range");
    b.finish("out of range");
}

#[test]
fn duplicate_offers_are_counted_and_logged_and_the_channel_is_offered_once() {
    let mut b = bed();
    let before = b.stats();
    b.rig.w.host_mut().set_hostile(Hostile {
        duplicate_offers: true,
        ..Hostile::NONE
    });
    b.rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)))
        .unwrap();
    b.rig
        .run_until(|w| w.driver_channels().len() == 3, 60)
        .expect("offered");
    for _ in 0..4 {
        b.rig.step();
    }
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    let after = b.stats();
    counted(&before, &after, |s| s.duplicate_offers, 1, "duplicate");
    assert_eq!(after.offers - before.offers, 1, "taken once");
    assert!(logcap::logged("duplicate offer"), "logged");
    // The offer works: the third client opens it and echoes.
    let e = EchoClient::new(b.c_class).in_flight(1);
    let ec = e.handle();
    b.rig.w.set_program(b.c, Box::new(e));
    b.rig
        .run_until(|_| ec.stats().echoed >= 3, 600)
        .expect("traffic on the duplicated offer");
    b.bystander_keeps_working("duplicate");
    b.finish("duplicate");
}

#[test]
fn rescind_of_an_unknown_relid_is_counted_and_logged_and_releases_nothing() {
    let mut b = bed();
    let before = b.stats();
    let mark = b.rig.w.host().log().total();
    b.rig.w.host_mut().inject_rescind(RelId(1500));
    for _ in 0..4 {
        b.rig.step();
    }
    let after = b.stats();
    counted(
        &before,
        &after,
        |s| s.unknown_rescinds,
        1,
        "unknown rescind",
    );
    assert!(logcap::logged("rescind of unknown"), "logged");
    let log = common::log_since(&b.rig.w, mark);
    assert!(common::guest_msgs(&log, MessageType::RELID_RELEASED, |_| true).is_empty());
    b.bystander_keeps_working("unknown rescind");
    b.finish("unknown rescind");
}

#[test]
fn gpadl_created_for_an_unknown_gpadl_is_counted_and_logged_and_opens_still_work() {
    let mut b = bed();
    let before = b.stats();
    b.rig
        .w
        .host_mut()
        .inject_gpadl_created(b.ra, GpadlId(0x0777_7001), 0);
    for _ in 0..3 {
        b.rig.step();
    }
    // A stray GPADL_CREATED right after the real one, during an open.
    b.rig.w.host_mut().set_hostile(Hostile {
        stray_gpadl_created: true,
        ..Hostile::NONE
    });
    b.rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)))
        .unwrap();
    let e = EchoClient::new(b.c_class).in_flight(1);
    let ec = e.handle();
    b.rig.w.set_program(b.c, Box::new(e));
    b.rig
        .run_until(|_| ec.stats().echoed >= 3, 600)
        .expect("the open with a stray reply completes");
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    let after = b.stats();
    counted(&before, &after, |s| s.unknown_gpadl, 2, "unknown GPADL");
    assert!(logcap::logged("GPADL_CREATED for unknown"), "logged");
    b.bystander_keeps_working("unknown GPADL");
    b.finish("unknown GPADL");
}

#[test]
fn wrong_openid_in_the_open_reply_is_counted_and_the_open_is_resolved_by_a_rescind() {
    let mut b = bed();
    let before = b.stats();
    let free = b.rig.w.pool_free();
    b.rig.w.host_mut().set_hostile(Hostile {
        wrong_fields: true,
        targets: Hostile::bit(MessageType::OPENCHANNEL_RESULT),
        ..Hostile::NONE
    });
    let dev = b
        .rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)))
        .unwrap();
    let e = EchoClient::new(b.c_class).in_flight(1);
    let ec = e.handle();
    b.rig.w.set_program(b.c, Box::new(e));
    b.rig
        .run_until(|_| ec.stats().open_failures >= 1, 600)
        .expect("the open fails");
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    let after = b.stats();
    counted(&before, &after, |s| s.mismatched_replies, 1, "wrong openid");
    assert!(after.timeouts - before.timeouts >= 1, "the open timed out");
    assert!(logcap::logged("wrong openid"), "logged");
    // The right answer never came: the host may hold the channel open on the GPADL, so the
    // pages stay quarantined and nothing is closed until the host says more.
    assert_eq!(after.unresolved_opens - before.unresolved_opens, 1);
    assert_eq!(b.rig.w.driver().quarantined_pages(), 8);
    resolve_by_rescind(&mut b, dev, &ec, free, "wrong openid");
}

/// The host removes device `dev` (its rescind resolves the unanswered open: CLOSECHANNEL,
/// GPADL_TEARDOWN, RELID_RELEASED) and offers it again; the client's open then works and the
/// quarantined pages are back.
fn resolve_by_rescind(
    b: &mut Bed,
    dev: hv_host::DeviceId,
    ec: &EchoHandle,
    free: usize,
    what: &str,
) {
    b.rig.mon.strict_rescinds = false;
    b.rig.w.host_mut().remove_device(dev).unwrap();
    b.rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)))
        .unwrap();
    let ec2 = ec.clone();
    b.rig
        .run_until(|_| ec2.stats().echoed >= 2, 900)
        .unwrap_or_else(|_| panic!("{what}: a later open works"));
    assert_eq!(b.rig.w.driver().quarantined_pages(), 0, "{what}: released");
    assert_eq!(
        b.rig.w.pool_free(),
        free - 8,
        "{what}: only the working channel holds pages"
    );
    b.bystander_keeps_working(what);
    b.finish(what);
}

/// No reply to one message type during an open: the open times out. Without GPADL_CREATED the
/// teardown frees what the host confirms and the client's next open works; without
/// OPENCHANNEL_RESULT the host may still open the channel, so the pages stay quarantined until
/// the host's rescind resolves it.
fn silent_open_reply(silenced: MessageType) {
    let what = format!("silent {silenced}");
    let mut b = bed();
    let before = b.stats();
    let free = b.rig.w.pool_free();
    b.rig.w.host_mut().set_hostile(Hostile {
        silence: Hostile::bit(silenced),
        ..Hostile::NONE
    });
    let dev = b
        .rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)))
        .unwrap();
    let e = EchoClient::new(b.c_class).in_flight(1);
    let ec = e.handle();
    b.rig.w.set_program(b.c, Box::new(e));
    b.rig
        .run_until(|_| ec.stats().open_failures >= 1, 900)
        .unwrap_or_else(|_| panic!("{what}: the open fails"));
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    let after = b.stats();
    // A timeout is counted as such (the host may just be slow), not as hostile input.
    assert_eq!(after.timeouts - before.timeouts, 1, "{what}: counted");
    assert!(logcap::logged("open timed out"), "{what}: logged");
    if silenced == MessageType::OPENCHANNEL {
        assert_eq!(after.unresolved_opens - before.unresolved_opens, 1);
        assert_eq!(b.rig.w.driver().quarantined_pages(), 8, "{what}: held");
        resolve_by_rescind(&mut b, dev, &ec, free, &what);
        return;
    }
    b.rig
        .run_until(|_| ec.stats().echoed >= 2, 900)
        .unwrap_or_else(|_| panic!("{what}: a later open works"));
    let after = b.stats();
    assert_eq!(
        after.quarantined_pages, 0,
        "{what}: the host confirmed the teardown"
    );
    assert_eq!(
        b.rig.w.pool_free(),
        free - 8,
        "{what}: the failed open's pages are back"
    );
    b.bystander_keeps_working(&what);
    b.finish(&what);
}

#[test]
fn no_reply_to_gpadl_header_times_out_the_open_and_returns_its_pages() {
    silent_open_reply(MessageType::GPADL_HEADER);
}

#[test]
fn no_reply_to_openchannel_quarantines_the_pages_until_the_host_resolves_it() {
    silent_open_reply(MessageType::OPENCHANNEL);
}

#[test]
fn no_reply_to_gpadl_teardown_quarantines_the_pages_and_they_are_never_reused() {
    let mut b = bed();
    let before = b.stats();
    let free = b.rig.w.pool_free();
    let ga = b.rig.w.host().channel(b.ra).unwrap().ring_gpadl.unwrap();
    let quarantined_pfns = b.rig.w.host().gpadl_pfns(ga).unwrap().to_vec();
    b.rig.w.host_mut().set_hostile(Hostile {
        silence: Hostile::bit(MessageType::GPADL_TEARDOWN),
        ..Hostile::NONE
    });
    b.rig.w.host_mut().rescind(b.ra).unwrap();
    let ea = b.ea.clone();
    b.rig
        .run_until(
            |w| w.driver_channels().len() == 1 && ea.stats().gone == 1,
            900,
        )
        .expect("the teardown finishes on its timeout");
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    let after = b.stats();
    assert_eq!(after.timeouts - before.timeouts, 1, "timed out");
    assert!(logcap::logged("pages quarantined"), "logged");
    assert_eq!(b.rig.w.driver().quarantined_pages(), 8);
    assert_eq!(after.quarantined_pages - before.quarantined_pages, 8);
    assert_eq!(
        after.relids_released - before.relids_released,
        1,
        "still released"
    );
    assert_eq!(
        b.rig.w.pool_free(),
        free,
        "the 8 pages stay out of the pool"
    );
    // Many later channels: none gets a quarantined page.
    for n in 0..20u8 {
        b.rig
            .w
            .host_mut()
            .add_device(DeviceSpec::echo(b.a_class, instance(10 + n)))
            .unwrap();
        let opens = b.ea.stats().opens;
        let ea = b.ea.clone();
        b.rig
            .run_until(
                |_| ea.stats().opens > opens && ea.stats().open_relid.is_some(),
                600,
            )
            .expect("reopened");
        let relid = b.ea.stats().open_relid.unwrap();
        let g = b.rig.w.host().channel(relid).unwrap().ring_gpadl.unwrap();
        let pfns = b.rig.w.host().gpadl_pfns(g).unwrap();
        assert!(
            pfns.iter().all(|p| !quarantined_pfns.contains(p)),
            "cycle {n}: a quarantined page was reused"
        );
        b.rig.w.host_mut().rescind(relid).unwrap();
        let ea = b.ea.clone();
        b.rig
            .run_until(
                |w| w.driver_channels().len() == 1 && ea.stats().open_relid.is_none(),
                600,
            )
            .expect("torn down");
    }
    assert_eq!(b.rig.w.driver().quarantined_pages(), 8, "still quarantined");
    assert_eq!(b.rig.w.pool_free(), free);
    b.bystander_keeps_working("silent teardown");
    b.finish("silent teardown");
}

#[test]
fn event_floods_are_dropped_and_counted_while_traffic_continues() {
    let mut b = bed();
    let before = b.stats();
    b.rig.w.host_mut().set_hostile(Hostile {
        event_flood: true,
        ..Hostile::NONE
    });
    let want_a = b.ea.stats().echoed + 8;
    let want_b = b.eb.stats().echoed + 8;
    let (ea, eb) = (b.ea.clone(), b.eb.clone());
    let steps = b
        .rig
        .run_until(
            |_| ea.stats().echoed >= want_a && eb.stats().echoed >= want_b,
            900,
        )
        .expect("both channels keep echoing under the flood");
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    let after = b.stats();
    // Every flooded flag but the two open channels' is dropped at each dispatch.
    let dropped = after.events_dropped_stale - before.events_dropped_stale;
    assert!(
        dropped >= 2045 * (steps / 3).max(1),
        "dropped {dropped} over {steps} phases"
    );
    assert_eq!(after.kernel_errors, before.kernel_errors);
    b.bystander_keeps_working("flood");
    b.finish("flood");
}

#[test]
fn corrupt_ring_indices_break_only_that_channel_and_the_client_recovers() {
    let mut b = bed();
    let mut mem = b.rig.w.instance().guest_mem();
    let ra = b.ra;
    // Corrupt the host-to-guest write index just before the clients run (the device would
    // rewrite it at its next run), so the client's next receive reads it.
    while b.rig.phase % common::PHASES != 2 {
        b.rig.phase_step();
    }
    b.rig
        .w
        .host_mut()
        .corrupt_ring(
            &mut mem,
            ra,
            RingSide::Inbound,
            Control::WriteIndex,
            0x00FF_FFF8,
        )
        .unwrap();
    let ea = b.ea.clone();
    b.rig
        .run_until(|_| ea.stats().errors >= 1, 300)
        .expect("the client sees the corrupt ring");
    assert!(
        matches!(
            b.ea.last_error(),
            Some(vmbus_client::ClientError::Ring(
                vmbus_driver::ring::RingError::Corrupt(_)
            ))
        ),
        "{:?}",
        b.ea.last_error()
    );
    assert_eq!(b.ea.stats().mismatches, 0);
    // The client gives the channel back and opens it again; traffic resumes.
    let echoed = b.ea.stats().echoed;
    b.rig
        .run_until(|_| ea.stats().echoed >= echoed + 4, 900)
        .expect("the reopened channel works");
    b.bystander_keeps_working("corrupt ring");
    b.finish("corrupt ring");
}

/// The `corrupt_ring_indices` mode rewrites the indices of every open channel at each host poll.
/// A device that runs in the same poll writes its own index back (the host's device keeps its
/// index privately), so the corruption stays visible where the device is idle: client
/// `timesync` holds a channel to an idle device and is hit; the echo channels keep working.
#[test]
fn corrupt_ring_indices_mode_breaks_the_hit_channel_and_never_the_driver() {
    let mut b = bed();
    b.rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)).with_kind(DeviceKind::Idle))
        .unwrap();
    let e = EchoClient::new(b.c_class).in_flight(1);
    let ec = e.handle();
    b.rig.w.set_program(b.c, Box::new(e));
    b.rig
        .run_until(|_| ec.stats().sent >= 1, 300)
        .expect("the idle channel opened");
    let before = b.stats();
    b.rig.w.host_mut().set_hostile(Hostile {
        corrupt_ring_indices: true,
        ..Hostile::NONE
    });
    b.rig
        .run_until(|_| ec.stats().errors >= 1, 300)
        .expect("the client sees its corrupt ring");
    b.rig.w.host_mut().set_hostile(Hostile::NONE);
    assert!(
        matches!(
            ec.last_error(),
            Some(vmbus_client::ClientError::Ring(
                vmbus_driver::ring::RingError::Corrupt(_)
            ))
        ),
        "{:?}",
        ec.last_error()
    );
    // The client gave the channel back and opens it again.
    b.rig
        .run_until(|_| ec.stats().opens >= 2, 600)
        .expect("reopened");
    let after = b.stats();
    assert!(
        after.teardowns > before.teardowns,
        "the broken channel was closed"
    );
    assert_eq!(after.kernel_errors, before.kernel_errors);
    for (e, name) in [(&b.ea, "heartbeat"), (&b.eb, "shutdown")] {
        let want = e.stats().echoed + 4;
        let e2 = e.clone();
        b.rig
            .run_until(|_| e2.stats().echoed >= want, 900)
            .unwrap_or_else(|_| panic!("{name}'s traffic continues"));
        assert_eq!(e.stats().mismatches, 0);
    }
    assert_eq!(
        b.rig.w.driver().connection().state,
        ConnectionState::Connected
    );
    b.finish("corrupt ring mode");
}

/// The driver reads the outbound ring header when a client asks it to signal the host; a read
/// index the host wrote out of range is hostile input the driver should count (and log), not
/// just pass over.
#[test]
fn corrupt_outbound_ring_index_seen_by_the_driver_is_counted_and_logged() {
    let mut b = bed();
    b.rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(b.c_class, instance(3)).with_kind(DeviceKind::Idle))
        .unwrap();
    b.rig
        .run_until(|w| w.driver_channels().len() == 3, 60)
        .expect("offered");
    let rc = b.rig.relid_of(b.c_class);
    let ch = b.rig.open(b.c, rc);
    let mut mem = b.rig.w.instance().guest_mem();
    b.rig
        .w
        .host_mut()
        .corrupt_ring(
            &mut mem,
            rc,
            RingSide::Outbound,
            Control::ReadIndex,
            0x00FF_FFF8,
        )
        .unwrap();
    let _ = logcap::take();
    let before = b.stats();
    let handle = ch.handle();
    let r = b.rig.w.as_client(b.c, |c| {
        vmbus_client::call(c, &vmbus_driver::control::Request::Signal { handle })
    });
    assert!(r.is_ok(), "the driver answers: {r:?}");
    let after = b.stats();
    assert!(
        after.hostile > before.hostile,
        "counted: {before:?} -> {after:?}"
    );
    assert!(logcap::logged("ring"), "logged");
    b.bystander_keeps_working("corrupt outbound index");
}
