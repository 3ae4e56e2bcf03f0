//! R2: an event (interrupt) for a relid is dispatched while that channel is being torn down.
//!
//! Client `heartbeat` holds relid R; the host rescinds it, the driver tears it down and
//! releases it, the host offers R again for another device class and client `shutdown` opens
//! it. An event flag for R is injected before every phase of that sequence. What must hold: the
//! event reaches the old owner only while its channel is open, is otherwise dropped and counted,
//! and is never delivered to the new owner unless the new channel was already open when the
//! host raised it. Both devices are idle (they never raise events themselves), so every event
//! the clients see is the injected one.

use std::cell::Cell;

use hv_host::{DeviceKind, DeviceSpec, offers::ChannelState as HostState};
use vmbus_driver::driver::ChannelState;

use crate::common::{self, Rig, instance, run_sequence_with, sweep};
use crate::progs::Script;

/// Which way the injected event went, per injection point.
#[derive(Debug, Default)]
struct Outcomes {
    to_old_owner: u32,
    dropped: u32,
    to_new_owner: u32,
}

fn case(k: Option<u64>, seen: &mut Outcomes) -> u64 {
    let ctx = format!("R2 event injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    let (a, a_class) = common::client(&rig.w, "heartbeat");
    let (b, b_class) = common::client(&rig.w, "shutdown");
    let a_spec = DeviceSpec::echo(a_class, instance(1)).with_kind(DeviceKind::Idle);
    let b_spec = DeviceSpec::echo(b_class, instance(2)).with_kind(DeviceKind::Idle);
    rig.w.host_mut().add_device(a_spec).unwrap();
    rig.run_until(|w| w.driver_channels().len() == 1, 100)
        .unwrap();
    let relid = rig.relid_of(a_class);
    let (sa, rec_a) = Script::new(relid, 0, false);
    rig.w.set_program(a, Box::new(sa));
    rig.run_until(|_| rec_a.borrow().opened, 300).unwrap();
    rig.settle(300, &ctx);
    let before = rig.w.driver_stats();

    // The sequence: rescind, teardown, release, the new offer, the new owner's open.
    rig.w.host_mut().rescind(relid).unwrap();
    let (sb, rec_b) = Script::new(relid, 0, false);
    let mut sb = Some(sb);
    let b_added = Cell::new(false);
    let b_open_at_injection = Cell::new(None);
    let len = run_sequence_with(
        &mut rig,
        k,
        600,
        |rig| {
            let row = rig.w.driver().channel(relid);
            b_open_at_injection.set(Some(
                row.is_some_and(|r| r.state == ChannelState::Open && r.client == Some(b)),
            ));
            rig.w.host_mut().flood_events([relid.0]);
        },
        |rig| {
            if !b_added.get() && rig.w.host().channel_state(relid) == HostState::Free {
                rig.w.host_mut().add_device(b_spec).unwrap();
                b_added.set(true);
            }
            let offered = rig
                .w
                .driver()
                .channel(relid)
                .is_some_and(|r| r.class == b_class);
            if offered && let Some(p) = sb.take() {
                rig.w.set_program(b, Box::new(p));
            }
        },
        |rig| rec_b.borrow().opened && common::quiet(&rig.w),
        &ctx,
    );
    rig.settle(300, &ctx);
    for _ in 0..5 {
        rig.step();
    }

    let after = rig.w.driver_stats();
    let delivered = after.events_delivered - before.events_delivered;
    let dropped = after.events_dropped_stale - before.events_dropped_stale;
    let rb = rec_b.borrow();
    assert!(rb.opened && rb.error.is_none(), "{ctx}: new owner opened");
    assert_eq!(rig.relid_of(b_class), relid, "{ctx}: the relid was reused");
    // The new owner's slot counter (monotonic over the slot's life, which began with this
    // channel) counts every event the driver delivered to it, seen by the client or not.
    let row = rig.w.driver().channel(relid).unwrap();
    assert_eq!(
        (row.state, row.client),
        (ChannelState::Open, Some(b)),
        "{ctx}"
    );
    match b_open_at_injection.get() {
        None => assert_eq!((delivered, dropped, row.events), (0, 0, 0), "{ctx}"),
        Some(true) => {
            // Raised after the new channel opened: it is the new owner's event.
            assert_eq!(
                (delivered, dropped, row.events, rb.events),
                (1, 0, 1, 1),
                "{ctx}"
            );
            seen.to_new_owner += 1;
        }
        Some(false) => {
            assert_eq!(row.events, 0, "{ctx}: a stale event reached the new owner");
            assert_eq!(rb.events, 0, "{ctx}: the new owner saw an event");
            // Delivered (to the old owner, whose channel was still open) or dropped: once.
            assert_eq!(delivered + dropped, 1, "{ctx}");
            assert!(rec_a.borrow().events <= 1, "{ctx}");
            seen.to_old_owner += u32::from(delivered == 1);
            seen.dropped += u32::from(dropped == 1);
        }
    }
    drop(rb);
    rig.finish(&ctx);
    len
}

#[test]
fn r2_event_for_a_torn_down_relid_is_never_delivered_to_the_new_owner() {
    let mut seen = Outcomes::default();
    sweep("R2", |k| case(k, &mut seen));
    // The sweep reached every window: the old owner still open, the teardown (dropped), and
    // the new owner open.
    assert!(
        seen.to_old_owner > 0 && seen.dropped > 0 && seen.to_new_owner > 0,
        "{seen:?}"
    );
}
