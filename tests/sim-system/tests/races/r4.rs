//! R4: the channel list walked by the interrupt path while process context edits it.
//!
//! Client `heartbeat` runs echo traffic on one channel: every echo is a host event the driver's
//! interrupt path dispatches through the channel table. Client `shutdown` closes its own channel
//! (a table edit from a client call, the "process context") while the host raises an event for
//! that channel, injected before every phase of the traffic. What must hold: one event loop owns
//! the table, so the edit never loses or misroutes an event of the other channel (its status
//! counter equals the events the host raised for it), the closed channel's event is dropped and
//! counted, and the close runs once.

use hv_host::DeviceKind;
use vmbus_driver::driver::ChannelState;

use crate::common::{self, Rig, open_echo, run_sequence, sweep};
use crate::progs::Script;

const ROUND_TRIPS: u32 = 6;

fn case(k: Option<u64>) -> u64 {
    let ctx = format!("R4 close + event injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    let (a, a_class) = common::client(&rig.w, "heartbeat");
    let (b, b_class) = common::client(&rig.w, "shutdown");
    let (rb, ch_b) = open_echo(&mut rig, b, b_class, 2, DeviceKind::Idle);
    rig.w
        .host_mut()
        .add_device(hv_host::DeviceSpec::echo(a_class, common::instance(1)))
        .unwrap();
    rig.run_until(|w| w.driver_channels().len() == 2, 100)
        .unwrap();
    let ra = rig.relid_of(a_class);
    let (sa, rec_a) = Script::new(ra, ROUND_TRIPS, false);
    rig.w.set_program(a, Box::new(sa));
    rig.run_until(|_| rec_a.borrow().opened, 300).unwrap();
    let before = rig.w.driver_stats();
    let a_events_before = rig.w.driver().channel(ra).unwrap().events;

    let mut ch_b = Some(ch_b);
    let mut b_state_at_injection = None;
    let len = run_sequence(
        &mut rig,
        k,
        900,
        |rig| {
            let ch = ch_b.take().expect("one injection");
            b_state_at_injection = rig.w.driver().channel(rb).map(|r| r.state);
            rig.w.host_mut().flood_events([rb.0]);
            rig.w
                .as_client(b, |c| ch.close(c))
                .expect("close of an open channel");
        },
        |rig| rec_a.borrow().echoes >= ROUND_TRIPS && common::quiet(&rig.w),
        &ctx,
    );
    rig.settle(300, &ctx);
    if let Some(ch) = ch_b.take() {
        rig.w.as_client(b, |c| ch.close(c)).expect("close");
        rig.settle(300, &ctx);
    }

    let ra_row = rig.w.driver().channel(ra).unwrap();
    let host_signals = rig.w.host().channel(ra).unwrap().stats.signals_to_guest;
    let r = rec_a.borrow();
    assert_eq!((r.echoes, r.mismatches), (ROUND_TRIPS, 0), "{ctx}");
    assert!(r.error.is_none(), "{ctx}: {:?}", r.error);
    assert!(host_signals >= u64::from(ROUND_TRIPS), "{ctx}");
    assert_eq!(
        u64::from(ra_row.events),
        host_signals,
        "{ctx}: every event the host raised for the busy channel reached its owner"
    );
    assert_eq!(ra_row.state, ChannelState::Open, "{ctx}");
    let after = rig.w.driver_stats();
    if k.is_some() {
        assert_eq!(b_state_at_injection, Some(ChannelState::Open), "{ctx}");
        // The close and the event were handled in one order or the other; the event never
        // reached anyone else, and the closed channel's counter did not move after the close.
        let to_a = u64::from(ra_row.events - a_events_before);
        let delivered_b = after.events_delivered - before.events_delivered - to_a;
        let dropped = after.events_dropped_stale - before.events_dropped_stale;
        assert_eq!(delivered_b + dropped, 1, "{ctx}");
        assert_eq!(dropped, 1, "{ctx}: the close ran before the next dispatch");
    }
    assert!(
        rig.w
            .driver()
            .channel(rb)
            .is_some_and(|r| r.state == ChannelState::Offered),
        "{ctx}: the closed channel is offered again"
    );
    assert_eq!(after.teardowns - before.teardowns, 1, "{ctx}: one close");
    assert_eq!(
        after.teardowns_completed - before.teardowns_completed,
        1,
        "{ctx}"
    );
    drop(r);
    rig.finish(&ctx);
    len
}

#[test]
fn r4_table_edits_from_client_calls_never_lose_or_misroute_interrupt_path_events() {
    sweep("R4", case);
}
