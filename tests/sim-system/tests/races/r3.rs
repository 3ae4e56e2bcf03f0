//! R3: bus shutdown frees all channels while a rescind is half done.
//!
//! Two clients hold open channels; the host rescinds one of them, and the bus unload (UNLOAD
//! at shutdown) is injected before every phase of that rescind's teardown. What must hold:
//! shutdown and rescind share one teardown path and each step of it runs exactly once: one
//! CLOSECHANNEL per open channel, one GPADL_TEARDOWN per GPADL, one RELID_RELEASED for the
//! rescind, all of them before UNLOAD, and every page back in the pool.

use hv_host::{DeviceKind, DeviceSpec, Direction};
use vmbus_driver::driver::ConnectionState;
use vmbus_driver::msg::MessageType;

use crate::common::{self, Rig, instance, run_sequence, sweep};
use crate::progs::Script;

fn case(k: Option<u64>) -> u64 {
    let ctx = format!("R3 unload injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    let (a, a_class) = common::client(&rig.w, "heartbeat");
    let (b, b_class) = common::client(&rig.w, "shutdown");
    for (class, n) in [(a_class, 1), (b_class, 2)] {
        let spec = DeviceSpec::echo(class, instance(n)).with_kind(DeviceKind::Idle);
        rig.w.host_mut().add_device(spec).unwrap();
    }
    rig.run_until(|w| w.driver_channels().len() == 2, 100)
        .unwrap();
    let (ra, rb) = (rig.relid_of(a_class), rig.relid_of(b_class));
    let (sa, rec_a) = Script::new(ra, 0, false);
    let (sb, rec_b) = Script::new(rb, 0, false);
    rig.w.set_program(a, Box::new(sa));
    rig.w.set_program(b, Box::new(sb));
    rig.run_until(|_| rec_a.borrow().opened && rec_b.borrow().opened, 300)
        .unwrap();
    rig.settle(300, &ctx);
    let gpadls: Vec<u32> = rig
        .w
        .host()
        .channels()
        .filter_map(|c| c.ring_gpadl.map(|g| g.0))
        .collect();
    assert_eq!(gpadls.len(), 2);
    let mark = rig.w.host().log().total();
    let before = rig.w.driver_stats();
    // The answered unload also returns the connection's two monitor pages.
    let monitor = rig.w.connection_pages() as u64;
    assert_eq!(monitor, 2, "{ctx}");

    rig.w.host_mut().rescind(ra).unwrap();
    let mut unloaded = false;
    let len = run_sequence(
        &mut rig,
        k,
        600,
        |rig| {
            rig.w.unload();
            unloaded = true;
        },
        |rig| {
            common::quiet(&rig.w)
                && rig.w.driver_stats().relids_released == before.relids_released + 1
        },
        &ctx,
    );
    if !unloaded {
        // The baseline: the rescind alone, then the shutdown.
        rig.w.unload();
    }
    rig.settle(600, &ctx);
    assert_eq!(
        rig.w.driver().connection().state,
        ConnectionState::Disconnected,
        "{ctx}: unload completed"
    );

    let log: Vec<_> = rig.w.host().log().since(mark).copied().collect();
    let count = |t: MessageType, f: &dyn Fn(&hv_host::LogRecord) -> bool| {
        log.iter()
            .filter(|r| r.dir == Direction::Received && r.msgtype == t && f(r))
            .count()
    };
    let pos = |t: MessageType| {
        log.iter()
            .rposition(|r| r.dir == Direction::Received && r.msgtype == t)
    };
    for relid in [ra, rb] {
        assert_eq!(
            count(MessageType::CLOSECHANNEL, &|r| r.relid == Some(relid)),
            1,
            "{ctx}: one CLOSECHANNEL for {relid}"
        );
    }
    for g in &gpadls {
        assert_eq!(
            count(MessageType::GPADL_TEARDOWN, &|r| r.gpadl.map(|x| x.0)
                == Some(*g)),
            1,
            "{ctx}: one GPADL_TEARDOWN for {g:#x}"
        );
    }
    assert_eq!(
        count(MessageType::RELID_RELEASED, &|r| r.relid == Some(ra)),
        1,
        "{ctx}: one RELID_RELEASED for the rescind"
    );
    assert_eq!(count(MessageType::RELID_RELEASED, &|_| true), 1, "{ctx}");
    assert_eq!(
        count(MessageType::UNLOAD, &|_| true),
        1,
        "{ctx}: one UNLOAD"
    );
    let unload = pos(MessageType::UNLOAD).unwrap();
    for t in [
        MessageType::CLOSECHANNEL,
        MessageType::GPADL_TEARDOWN,
        MessageType::RELID_RELEASED,
    ] {
        assert!(pos(t).unwrap() < unload, "{ctx}: {t} after UNLOAD");
    }
    let after = rig.w.driver_stats();
    assert_eq!(
        after.teardowns - before.teardowns,
        2,
        "{ctx}: two teardowns"
    );
    assert_eq!(
        after.teardowns_completed - before.teardowns_completed,
        2,
        "{ctx}"
    );
    assert_eq!(
        after.pages_returned - before.pages_returned,
        16 + monitor,
        "{ctx}"
    );
    assert_eq!(
        rig.w.pool_free() + rig.w.connection_pages(),
        8192,
        "{ctx}: every page back"
    );
    assert_eq!(rig.w.driver().open_count(), 0, "{ctx}");
    assert_eq!(rig.w.host().gpadl_count(), 0, "{ctx}");
    for id in [a, b] {
        assert!(!rig.w.client_stopped(id), "{ctx}: no client faulted");
    }
    rig.finish(&ctx);
    len
}

#[test]
fn r3_shutdown_during_a_half_done_rescind_runs_each_teardown_step_once() {
    sweep("R3", case);
}
