//! R6: driver removal (close) ordered after the channel memory is freed.
//!
//! Client `heartbeat` closes its open channel; client `shutdown` opens a channel of its own
//! (taking ring pages from the pool the closing channel's pages go back to), injected before
//! every phase of the close. What must hold: CLOSECHANNEL and the GPADL teardown complete before
//! any page goes back to the pool, so the new channel's GPADL shares a page with the closed one
//! only if the host confirmed the old GPADL's teardown first (the monitor also checks after
//! every phase that no free page is in a GPADL the host holds or mapped by a client).

use hv_host::DeviceKind;
use vmbus_driver::msg::MessageType;

use crate::common::{self, Rig, open_echo, run_sequence_with, sweep};

fn case(k: Option<u64>, reused: &mut u32) -> u64 {
    let ctx = format!("R6 open injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    let (a, a_class) = common::client(&rig.w, "heartbeat");
    let (b, b_class) = common::client(&rig.w, "shutdown");
    let (ra, ch_a) = open_echo(&mut rig, a, a_class, 1, DeviceKind::Echo);
    rig.w
        .host_mut()
        .add_device(hv_host::DeviceSpec::echo(b_class, common::instance(2)))
        .unwrap();
    rig.run_until(|w| w.driver_channels().len() == 2, 100)
        .unwrap();
    let rb = rig.relid_of(b_class);
    rig.settle(300, &ctx);
    let ga = rig.w.host().channel(ra).unwrap().ring_gpadl.unwrap();
    let a_pfns = rig.w.host().gpadl_pfns(ga).unwrap().to_vec();
    let mark = rig.w.host().log().total();

    let mut ch_a = Some(ch_a);
    let mut pending_b = None;
    let len = run_sequence_with(
        &mut rig,
        k,
        600,
        |rig| pending_b = Some(rig.start_open(b, rb).expect("open accepted")),
        |rig| {
            if let Some(ch) = ch_a.take() {
                rig.w.as_client(a, |c| ch.close(c)).expect("close");
            }
        },
        |rig| common::quiet(&rig.w) && rig.w.host().gpadl_pfns(ga).is_none(),
        &ctx,
    );
    rig.settle(300, &ctx);
    let log = common::log_since(&rig.w, mark);
    let close = common::guest_msgs(&log, MessageType::CLOSECHANNEL, |r| r.relid == Some(ra));
    let teardown = common::guest_msgs(&log, MessageType::GPADL_TEARDOWN, |r| r.gpadl == Some(ga));
    let torndown = common::host_msgs(&log, MessageType::GPADL_TORNDOWN, |r| r.gpadl == Some(ga));
    assert_eq!(
        (close.len(), teardown.len(), torndown.len()),
        (1, 1, 1),
        "{ctx}"
    );
    assert!(
        close[0] < teardown[0] && teardown[0] < torndown[0],
        "{ctx}: close, then GPADL teardown, then torn down"
    );
    if pending_b.is_some() {
        let gb = rig
            .w
            .host()
            .channel(rb)
            .unwrap()
            .ring_gpadl
            .expect("b open");
        let b_pfns = rig.w.host().gpadl_pfns(gb).unwrap();
        let header = common::guest_msgs(&log, MessageType::GPADL_HEADER, |r| r.gpadl == Some(gb));
        let shares = b_pfns.iter().any(|p| a_pfns.contains(p));
        if shares {
            *reused += 1;
            assert!(
                header[0] > torndown[0],
                "{ctx}: the new GPADL reuses a page before the old one's GPADL_TORNDOWN"
            );
        }
    }
    assert_eq!(rig.w.driver().quarantined_pages(), 0, "{ctx}");
    rig.finish(&ctx);
    len
}

#[test]
fn r6_close_and_gpadl_teardown_complete_before_any_page_returns_to_the_pool() {
    let mut reused = 0;
    sweep("R6", |k| case(k, &mut reused));
    // Pages are reused (the pool hands back the last pages returned), so the order mattered.
    assert!(
        reused > 0,
        "no injection point reused the closed channel's pages"
    );
}
