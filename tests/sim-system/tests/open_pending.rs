//! A teardown that starts while OPENCHANNEL_RESULT is outstanding, against a host that follows
//! the reference server's rules (`hv_host::Host::hold_open_results`): a CLOSECHANNEL for a
//! channel whose open is pending is a guest error that changes nothing, and the device keeps
//! the ring GPADL (its GPADL_TORNDOWN waits for the close). The driver waits for the result:
//! on success CLOSECHANNEL then GPADL_TEARDOWN, and if the result never comes it quarantines
//! the pages and sends neither. A rescinded channel is closed at once.

mod common;

use hv_host::{DeviceId, DeviceSpec};
use vmbus_client::PendingOpen;
use vmbus_driver::driver::{ChannelState, ConnectionState};
use vmbus_driver::ids::{ClientId, RelId};
use vmbus_driver::msg::MessageType;

use common::{Rig, client, guest_msgs, instance, log_since};

struct Held {
    rig: Rig,
    id: ClientId,
    relid: RelId,
    device: DeviceId,
    pending: PendingOpen,
    pool: usize,
    mark: u64,
}

/// The heartbeat client opens an echo device whose host holds the open result.
fn held_open() -> Held {
    let mut rig = Rig::booted(&[]);
    let (id, class) = client(&rig.w, "heartbeat");
    let device = rig
        .w
        .host_mut()
        .add_device(DeviceSpec::echo(class, instance(1)))
        .unwrap();
    rig.run_until(|w| w.driver_channels().len() == 1, 300)
        .expect("offered");
    let relid = rig.relid_of(class);
    let pool = rig.w.pool_free();
    rig.w.host_mut().hold_open_results(true);
    let pending = rig.start_open(id, relid).expect("open accepted");
    rig.run_until(
        |w| w.driver().channel(relid).map(|c| c.state) == Some(ChannelState::OpenPending),
        300,
    )
    .expect("OPENCHANNEL sent");
    rig.step();
    let mark = rig.w.host().log().total();
    Held {
        rig,
        id,
        relid,
        device,
        pending,
        pool,
        mark,
    }
}

fn guest_errors(rig: &Rig) -> Vec<String> {
    rig.w
        .host()
        .errors()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn sent(rig: &Rig, mark: u64, t: MessageType) -> Vec<usize> {
    guest_msgs(&log_since(&rig.w, mark), t, |_| true)
}

#[test]
fn a_client_close_before_the_open_result_sends_no_closechannel() {
    let mut h = held_open();
    h.rig
        .w
        .as_client(h.id, |ctx| h.pending.cancel(ctx))
        .expect("close accepted");
    for _ in 0..30 {
        h.rig.step();
    }
    assert!(sent(&h.rig, h.mark, MessageType::CLOSECHANNEL).is_empty());
    assert!(sent(&h.rig, h.mark, MessageType::GPADL_TEARDOWN).is_empty());
    h.rig.w.host_mut().hold_open_results(false);
    h.rig.settle(600, "after the result");
    let close = sent(&h.rig, h.mark, MessageType::CLOSECHANNEL);
    let teardown = sent(&h.rig, h.mark, MessageType::GPADL_TEARDOWN);
    assert_eq!((close.len(), teardown.len()), (1, 1));
    assert!(close[0] < teardown[0], "CLOSECHANNEL before GPADL_TEARDOWN");
    assert_eq!(guest_errors(&h.rig), Vec::<String>::new());
    assert_eq!(h.rig.w.driver().quarantined_pages(), 0);
    assert_eq!(h.rig.w.pool_free(), h.pool, "every page is back");
    assert_eq!(h.rig.w.host().gpadl_count(), 0);
    h.rig.finish("close mid-open");
}

#[test]
fn unload_before_the_open_result_closes_only_after_it() {
    let mut h = held_open();
    h.rig.w.unload();
    for _ in 0..30 {
        h.rig.step();
    }
    assert!(sent(&h.rig, h.mark, MessageType::CLOSECHANNEL).is_empty());
    h.rig.w.host_mut().hold_open_results(false);
    h.rig
        .run_until(
            |w| w.driver().connection().state == ConnectionState::Disconnected,
            900,
        )
        .expect("unloaded");
    assert_eq!(guest_errors(&h.rig), Vec::<String>::new());
    assert_eq!(h.rig.w.driver().quarantined_pages(), 0);
    assert_eq!(h.rig.w.host().gpadl_count(), 0);
}

#[test]
fn an_open_result_that_never_comes_quarantines_the_pages_without_closechannel() {
    let mut h = held_open();
    // Far past the reply timeout (64 ticks).
    for _ in 0..200 {
        h.rig.step();
    }
    let s = h.rig.w.driver_stats();
    assert_eq!(s.unresolved_opens, 1);
    assert!(sent(&h.rig, h.mark, MessageType::CLOSECHANNEL).is_empty());
    assert!(sent(&h.rig, h.mark, MessageType::GPADL_TEARDOWN).is_empty());
    assert_eq!(h.rig.w.driver().quarantined_pages(), 8);
    assert_eq!(guest_errors(&h.rig), Vec::<String>::new());
    // The relid is not offered to anyone while the host may still open it.
    let again = h.rig.start_open(h.id, h.relid);
    assert!(again.is_err(), "{again:?}");
    // The late answer resolves it: closed, GPADL torn down, the pages come back.
    h.rig.w.host_mut().hold_open_results(false);
    h.rig.settle(600, "after the late result");
    let close = sent(&h.rig, h.mark, MessageType::CLOSECHANNEL);
    let teardown = sent(&h.rig, h.mark, MessageType::GPADL_TEARDOWN);
    assert_eq!((close.len(), teardown.len()), (1, 1));
    assert!(close[0] < teardown[0]);
    assert_eq!(h.rig.w.driver().quarantined_pages(), 0);
    assert_eq!(h.rig.w.pool_free(), h.pool);
    let _ch = h.rig.open(h.id, h.relid);
    assert_eq!(guest_errors(&h.rig), Vec::<String>::new());
}

#[test]
fn a_rescind_before_the_open_result_closes_at_once() {
    let mut h = held_open();
    h.rig.mon.strict_rescinds = false;
    h.rig.w.host_mut().remove_device(h.device).unwrap();
    h.rig.settle(600, "after the rescind");
    let close = sent(&h.rig, h.mark, MessageType::CLOSECHANNEL);
    let teardown = sent(&h.rig, h.mark, MessageType::GPADL_TEARDOWN);
    let released = sent(&h.rig, h.mark, MessageType::RELID_RELEASED);
    assert_eq!((close.len(), teardown.len(), released.len()), (1, 1, 1));
    assert!(close[0] < teardown[0] && teardown[0] < released[0]);
    assert_eq!(guest_errors(&h.rig), Vec::<String>::new());
    assert_eq!(h.rig.w.pool_free(), h.pool);
    h.rig.finish("rescind mid-open");
}
