//! R8: a reference count reaches zero early because two teardown paths each drop one.
//!
//! The host rescinds client `heartbeat`'s open channel; a second teardown request is injected
//! before every phase of that teardown, in three sweeps: the client closes the channel, the
//! client faults (touches memory it does not have, and the driver takes its fault), or the host
//! sends the rescind a second time. What must hold: teardown is a state machine, not a counter;
//! the second request is a no-op: one teardown, one CLOSECHANNEL, one GPADL_TEARDOWN, one
//! RELID_RELEASED, the pages returned once, and nothing else disturbed.

use hv_host::DeviceKind;
use vmbus_client::ClientError;
use vmbus_driver::msg::MessageType;

use crate::common::{self, Rig, open_echo, run_sequence, sweep};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Second {
    Close,
    Fault,
    Rescind,
}

fn case(k: Option<u64>, second: Second) -> u64 {
    let ctx = format!("R8 second teardown ({second:?}) injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    if second == Second::Rescind {
        // The duplicate rescind is the host's fault: it gets no second release.
        rig.mon.strict_rescinds = false;
    }
    let (a, class) = common::client(&rig.w, "heartbeat");
    let (relid, ch) = open_echo(&mut rig, a, class, 1, DeviceKind::Echo);
    rig.settle(300, &ctx);
    let g = rig.w.host().channel(relid).unwrap().ring_gpadl.unwrap();
    let mark = rig.w.host().log().total();
    let before = rig.w.driver_stats();
    let window_end = {
        let c = rig.w.client("heartbeat").unwrap();
        c.window_base + (c.window_pages as u64 - 1) * 4096
    };

    rig.w.host_mut().rescind(relid).unwrap();
    let mut ch = Some(ch);
    let mut close_result = None;
    let len = run_sequence(
        &mut rig,
        k,
        600,
        |rig| match second {
            Second::Close => {
                let ch = ch.take().unwrap();
                close_result = Some(rig.w.as_client(a, |c| ch.close(c)));
            }
            Second::Fault => {
                // The last window page is never granted (the ring slot is 8 of 64 pages).
                let r = rig
                    .w
                    .as_client(a, |c| c.read_memory(window_end, &mut [0u8; 4]));
                assert!(r.is_err(), "the access faults");
            }
            Second::Rescind => {
                rig.w.host_mut().inject_rescind(relid);
            }
        },
        |rig| {
            common::quiet(&rig.w)
                && rig.w.driver().channel(relid).is_none()
                && (second != Second::Fault || !rig.w.faults().is_empty() || k.is_none())
        },
        &ctx,
    );
    rig.settle(300, &ctx);

    let log = common::log_since(&rig.w, mark);
    let n = |t: MessageType| common::guest_msgs(&log, t, |m| m.relid == Some(relid)).len();
    assert_eq!(n(MessageType::CLOSECHANNEL), 1, "{ctx}");
    assert_eq!(n(MessageType::GPADL_TEARDOWN), 1, "{ctx}");
    assert_eq!(n(MessageType::RELID_RELEASED), 1, "{ctx}");
    assert_eq!(
        common::guest_msgs(&log, MessageType::GPADL_TEARDOWN, |m| m.gpadl == Some(g)).len(),
        1,
        "{ctx}"
    );
    let after = rig.w.driver_stats();
    assert_eq!(after.teardowns - before.teardowns, 1, "{ctx}: one teardown");
    assert_eq!(
        after.teardowns_completed - before.teardowns_completed,
        1,
        "{ctx}"
    );
    assert_eq!(
        after.pages_returned - before.pages_returned,
        8,
        "{ctx}: pages returned once"
    );
    assert_eq!(after.kernel_errors, before.kernel_errors, "{ctx}");
    assert_eq!(rig.w.pool_free() + rig.w.connection_pages(), 8192, "{ctx}");
    assert_eq!(rig.w.driver().open_count(), 0, "{ctx}");
    match second {
        Second::Close => {
            if let Some(r) = close_result {
                // Before the driver saw the rescind the close is accepted (and the rescind only
                // adds the release); after, the handle is stale.
                assert!(
                    matches!(r, Ok(()) | Err(ClientError::ChannelGone)),
                    "{ctx}: {r:?}"
                );
            }
        }
        Second::Fault => {
            if k.is_some() {
                assert_eq!(rig.w.faults().len(), 1, "{ctx}");
                assert_eq!(after.client_faults - before.client_faults, 1, "{ctx}");
            }
        }
        Second::Rescind => {
            if k.is_some() {
                assert_eq!(after.unknown_rescinds - before.unknown_rescinds, 1, "{ctx}");
            }
        }
    }
    rig.finish(&ctx);
    len
}

#[test]
fn r8_client_close_during_a_rescind_teardown_is_a_no_op() {
    sweep("R8/close", |k| case(k, Second::Close));
}

#[test]
fn r8_client_fault_during_a_rescind_teardown_is_a_no_op() {
    sweep("R8/fault", |k| case(k, Second::Fault));
}

#[test]
fn r8_duplicate_rescind_during_a_teardown_is_counted_and_changes_nothing() {
    sweep("R8/rescind", |k| case(k, Second::Rescind));
}
