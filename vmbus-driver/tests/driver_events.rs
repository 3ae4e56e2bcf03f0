//! Driver core: host events to clients (R2), the interrupt order, and client signals to the
//! host (only when the ring says so).

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelStatus, ClientError, Request, Response};
use vmbus_driver::hv::HvStatus;
use vmbus_driver::ids::{ConnectionId, PageId, RelId, SlotId};
use vmbus_driver::msg::{ChannelMessage, MessageType};

#[test]
fn events_reach_the_owner_with_one_notification_per_client_per_interrupt() {
    let mut w = World::new(vec![
        offer(5, NET, 1, 0),
        offer(6, SCSI, 2, 0),
        offer(7, HEARTBEAT, 3, 0),
    ]);
    w.connect();
    let a5 = w.open(A, 5);
    let a6 = w.open(A, 6);
    let b7 = w.open(B, 7);
    w.clear_log();
    for r in [5, 6, 7] {
        w.hv.raise(r);
    }
    w.pump();
    assert_eq!(w.events(), [Ev::Notify(A), Ev::Notify(B)]);
    for (c, h) in [(A, a5), (A, a6), (B, b7)] {
        let rec = w.k.status(c, h.slot);
        assert_eq!((rec.state, rec.event_count), (ChannelStatus::Open, 1));
    }
    // Counters are monotonic per slot.
    w.hv.raise(5);
    w.pump();
    w.hv.raise(5);
    w.pump();
    assert_eq!(w.k.status(A, a5.slot).event_count, 3);
    assert_eq!(w.k.status(A, a6.slot).event_count, 1);
    assert_eq!(w.d.stats().events_delivered, 5);
    assert_eq!(w.d.channel(vmbus_driver::ids::RelId(5)).unwrap().events, 3);
}

#[test]
fn events_are_taken_before_messages_and_the_irq_is_acked_last() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    w.log.borrow_mut().clear();
    // The event and the rescind arrive together: the event belongs to the live channel.
    w.hv.raise(5);
    w.hv.rescind(5);
    w.hv.send(&ChannelMessage::OfferChannel(offer(9, NET, 9, 0)));
    w.d.on_interrupt(&mut w.hv, &mut w.k, w.now);
    let log = w.log.borrow().clone();
    assert_eq!(log.first(), Some(&Ev::Notify(A)));
    assert!(matches!(log[1], Ev::Revoke(_)));
    assert_eq!(log.last(), Some(&Ev::AckIrq));
    assert_eq!(log.iter().filter(|e| **e == Ev::AckIrq).count(), 1);
    assert_eq!(w.k.status(A, h.slot).event_count, 1);
    // Two messages were queued behind the first: EOM written for each pending one.
    assert!(w.hv.eoms >= 2, "EOMs {}", w.hv.eoms);
}

#[test]
fn events_for_dead_or_unopened_relids_are_dropped_and_counted() {
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(9, NET, 2, 0)]);
    w.connect();
    let h = w.open(A, 5);
    w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
    w.call(A, Request::Close { handle: h });
    w.clear_log();
    // Offered but not open, in teardown, never offered, flag 0.
    for r in [9, 5, 100, 0] {
        w.hv.raise(r);
    }
    w.pump();
    assert!(w.events().is_empty(), "{:?}", w.events());
    let s = w.d.stats();
    assert_eq!(
        (s.events_dropped_stale, s.events_flag0, s.events_delivered),
        (3, 1, 0)
    );
    assert_eq!(w.k.status(A, h.slot).event_count, 0);
}

#[test]
fn reused_relid_gets_no_event_raised_for_its_previous_channel() {
    // R2: an event raised for the old channel is taken while the old one is being torn down
    // and must not show up on the new channel opened on the same relid.
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let old = w.open(A, 5);
    w.hv.rescind(5);
    w.hv.raise(5);
    w.pump(); // the event is taken first, delivered to the still-open old channel
    w.hv.send(&ChannelMessage::OfferChannel(offer(5, NET, 1, 0)));
    w.pump();
    w.hv.raise(5); // raised before the new channel is open: dropped
    w.pump();
    let new = w.open(A, 5);
    assert_eq!(new.slot, old.slot);
    let before = w.k.status(A, new.slot).event_count;
    assert_eq!(w.d.stats().events_dropped_stale, 1);
    w.hv.raise(5);
    w.pump();
    assert_eq!(w.k.status(A, new.slot).event_count, before + 1);
}

/// Writes write_index, read_index and interrupt_mask into the outbound ring header of the only
/// GPADL the host holds (its first page).
fn set_outbound(w: &mut World, write: u32, read: u32, mask: u32) {
    assert_eq!(w.hv.gpadls.len(), 1);
    let frame = w.hv.gpadls.values().next().unwrap()[0];
    let page = (0..w.k.pages.len() as u32)
        .map(PageId)
        .find(|p| frame_of(*p) == frame)
        .unwrap();
    let p = &mut w.k.pages[page.0 as usize];
    p[0..4].copy_from_slice(&write.to_le_bytes());
    p[4..8].copy_from_slice(&read.to_le_bytes());
    p[8..12].copy_from_slice(&mask.to_le_bytes());
}

#[test]
fn signal_issues_the_hypercall_only_for_unread_data_and_an_unmasked_host() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    let sig = |w: &mut World| w.call(A, Request::Signal { handle: h });
    w.clear_log();
    // Empty ring.
    assert_eq!(sig(&mut w), Response::Signalled { hypercall: false });
    // Unread data, host listening: HvCallSignalEvent on the offer's connection id.
    set_outbound(&mut w, 64, 0, 0);
    assert_eq!(sig(&mut w), Response::Signalled { hypercall: true });
    assert_eq!(w.events(), [Ev::Signal(ConnectionId(0x105))]);
    // Host masked interrupts.
    set_outbound(&mut w, 64, 0, 1);
    assert_eq!(sig(&mut w), Response::Signalled { hypercall: false });
    // Host caught up.
    set_outbound(&mut w, 128, 128, 0);
    assert_eq!(sig(&mut w), Response::Signalled { hypercall: false });
    let s = w.d.stats();
    assert_eq!((s.signals, s.signals_suppressed), (1, 3));
    // A refused hypercall is reported.
    set_outbound(&mut w, 8, 0, 0);
    w.hv.signal_status = HvStatus::ACCESS_DENIED;
    assert_eq!(sig(&mut w), Response::Error(ClientError::SignalFailed));
    // A host that forgot the port has rescinded the channel (the rescind is in flight).
    for gone in [HvStatus::INVALID_PORT_ID, HvStatus::INVALID_CONNECTION_ID] {
        w.hv.signal_status = gone;
        assert_eq!(sig(&mut w), Response::Error(ClientError::ChannelGone));
    }
    assert_eq!(w.d.stats().signal_failures, 3);
    // Another client's use of the handle, or a forged generation, is refused.
    w.hv.signal_status = HvStatus::SUCCESS;
    assert_eq!(
        w.call(B, Request::Signal { handle: h }),
        Response::Error(ClientError::ChannelGone)
    );
    let mut forged = h;
    forged.generation += 1;
    assert_eq!(
        w.call(A, Request::Signal { handle: forged }),
        Response::Error(ClientError::ChannelGone)
    );
    let mut bad_slot = h;
    bad_slot.slot = SlotId(500);
    assert_eq!(
        w.call(A, Request::Signal { handle: bad_slot }),
        Response::Error(ClientError::ChannelGone)
    );
}

#[test]
fn signal_before_the_open_completes_is_refused() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let Response::Opening { handle } = w.call(
        A,
        Request::Open {
            relid: RelId(5),
            out_ring_pages: 2,
            in_ring_pages: 2,
        },
    ) else {
        panic!()
    };
    assert_eq!(
        w.call(A, Request::Signal { handle }),
        Response::Error(ClientError::NotOpen)
    );
    w.pump();
    assert_eq!(
        w.call(A, Request::Signal { handle }),
        Response::Signalled { hypercall: false }
    );
}

#[test]
fn a_signal_loop_costs_one_hypercall_per_ring_change() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    let sig = |w: &mut World| w.call(A, Request::Signal { handle: h });
    set_outbound(&mut w, 64, 0, 0);
    w.clear_log();
    let hypercalls = |w: &World| {
        w.events()
            .iter()
            .filter(|e| matches!(e, Ev::Signal(_)))
            .count()
    };
    for _ in 0..1000 {
        sig(&mut w);
    }
    assert_eq!(hypercalls(&w), 1, "nothing the host can see changed");
    // New data: one more.
    set_outbound(&mut w, 128, 0, 0);
    for _ in 0..100 {
        sig(&mut w);
    }
    assert_eq!(hypercalls(&w), 2);
    // The host read some and more was written: one more.
    set_outbound(&mut w, 192, 64, 0);
    for _ in 0..100 {
        sig(&mut w);
    }
    assert_eq!(hypercalls(&w), 3);
    let s = w.d.stats();
    assert_eq!((s.signals, s.signals_suppressed), (3, 1197));
    assert_eq!(w.d.client_stats(A).unwrap().signals_suppressed, 1197);
}

#[test]
fn a_clients_corrupt_ring_counts_against_the_client_not_the_host() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    // First the client's write index past the data area, then the host's read index.
    for (write, read, expected) in [(0x10_0000, 0, (1, 0, 0)), (64, 0x10_0004, (1, 1, 1))] {
        set_outbound(&mut w, write, read, 0);
        assert_eq!(
            w.call(A, Request::Signal { handle: h }),
            Response::Error(ClientError::RingCorrupt)
        );
        let s = w.d.stats();
        assert_eq!(
            (s.client_corrupt_rings, s.corrupt_rings, s.hostile),
            expected
        );
        assert_eq!(w.d.client_stats(A).unwrap().corrupt_rings, 1);
        assert_eq!(w.d.client_stats(B).unwrap().corrupt_rings, 0);
    }
}
