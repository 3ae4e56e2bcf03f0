//! R7: sub-channel lists walked while the primary is freed.
//!
//! Client `net` opens a device's primary channel and its first sub-channel (the device offers
//! two), then closes the primary. Injected before every phase of that close, in two sweeps: the
//! host rescinds the open sub-channel, or the client asks to open the other sub-channel. What
//! must hold: the primary's teardown covers its sub-channels first (each sub-channel's
//! CLOSECHANNEL and GPADL teardown come before the primary's CLOSECHANNEL), a sub-channel open
//! asked for once the primary is going is refused, and each teardown step runs once.

use hv_host::DeviceSpec;
use vmbus_client::ClientError;
use vmbus_driver::control;
use vmbus_driver::ids::RelId;
use vmbus_driver::msg::MessageType;

use crate::common::{self, Rig, instance, run_sequence_with, sweep};

#[derive(Clone, Copy, Debug)]
enum Inject {
    RescindSub,
    OpenSub,
}

fn case(k: Option<u64>, inject: Inject) -> u64 {
    let ctx = format!("R7 {inject:?} injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    let (net, class) = common::client(&rig.w, "net");
    rig.w
        .host_mut()
        .add_device(DeviceSpec::echo(class, instance(3)).with_sub_channels(2))
        .unwrap();
    rig.run_until(|w| w.driver_channels().len() == 3, 100)
        .unwrap();
    let rows = rig.w.driver_channels();
    let relid_of = |i: u16| {
        rows.iter()
            .find(|r| r.sub_channel_index == i)
            .map(|r| r.relid)
            .unwrap()
    };
    let (p, s1, s2) = (relid_of(0), relid_of(1), relid_of(2));
    let ch_p = rig.open(net, p);
    let ch_s1 = rig.open(net, s1);
    rig.settle(300, &ctx);
    let gpadl = |rig: &Rig, r: RelId| rig.w.host().channel(r).unwrap().ring_gpadl.unwrap();
    let (gp, gs1) = (gpadl(&rig, p), gpadl(&rig, s1));
    let mark = rig.w.host().log().total();
    let before = rig.w.driver_stats();

    let mut ch_p = Some(ch_p);
    let mut sub_open: Option<Result<(), ClientError>> = None;
    let len = run_sequence_with(
        &mut rig,
        k,
        600,
        |rig| match inject {
            Inject::RescindSub => rig.w.host_mut().rescind(s1).expect("rescind"),
            Inject::OpenSub => sub_open = Some(rig.start_open(net, s2).map(|_| ())),
        },
        |rig| {
            if let Some(ch) = ch_p.take() {
                rig.w
                    .as_client(net, |c| ch.close(c))
                    .expect("close primary");
            }
        },
        |rig| {
            common::quiet(&rig.w)
                && rig
                    .w
                    .driver_channels()
                    .iter()
                    .all(|r| r.state != vmbus_driver::driver::ChannelState::Open)
        },
        &ctx,
    );
    rig.settle(300, &ctx);
    drop(ch_s1);

    let log = common::log_since(&rig.w, mark);
    let closes =
        |r: RelId| common::guest_msgs(&log, MessageType::CLOSECHANNEL, |m| m.relid == Some(r));
    let p_close = closes(p);
    assert_eq!(p_close.len(), 1, "{ctx}: one CLOSECHANNEL for the primary");
    let s1_close = closes(s1);
    assert_eq!(
        s1_close.len(),
        1,
        "{ctx}: one CLOSECHANNEL for the sub-channel"
    );
    assert!(s1_close[0] < p_close[0], "{ctx}: sub-channel closed first");
    let torn = common::host_msgs(&log, MessageType::GPADL_TORNDOWN, |m| m.gpadl == Some(gs1));
    assert_eq!(torn.len(), 1, "{ctx}");
    assert!(
        torn[0] < p_close[0],
        "{ctx}: sub-channel GPADL gone before the primary closes"
    );
    let p_teardown = common::guest_msgs(&log, MessageType::GPADL_TEARDOWN, |m| m.gpadl == Some(gp));
    assert_eq!(p_teardown.len(), 1, "{ctx}");
    match (inject, sub_open) {
        (_, None) | (Inject::RescindSub, _) => {}
        (Inject::OpenSub, Some(Ok(()))) => {
            // Accepted before the close: torn down with the others, before the primary.
            let s2_msgs =
                common::guest_msgs(&log, MessageType::GPADL_HEADER, |m| m.relid == Some(s2));
            assert_eq!(s2_msgs.len(), 1, "{ctx}");
            let s2_close = closes(s2);
            assert!(s2_close.iter().all(|&c| c < p_close[0]), "{ctx}");
        }
        (Inject::OpenSub, Some(Err(e))) => {
            assert_eq!(
                e,
                ClientError::Refused(control::ClientError::NotPermitted),
                "{ctx}: sub-channel of a closing primary"
            );
            assert!(closes(s2).is_empty(), "{ctx}");
        }
    }
    let after = rig.w.driver_stats();
    assert_eq!(
        after.teardowns - before.teardowns,
        after.teardowns_completed - before.teardowns_completed,
        "{ctx}"
    );
    assert_eq!(
        rig.w.pool_free() + rig.w.connection_pages(),
        8192,
        "{ctx}: every page back"
    );
    rig.finish(&ctx);
    len
}

#[test]
fn r7_primary_teardown_covers_a_sub_channel_rescinded_meanwhile_first() {
    sweep("R7/rescind", |k| case(k, Inject::RescindSub));
}

#[test]
fn r7_sub_channel_open_racing_the_primary_close_is_refused_or_torn_down_first() {
    sweep("R7/open", |k| case(k, Inject::OpenSub));
}
