//! R1: a rescind arrives while another path has just looked the channel up by relid.
//!
//! The path that looks the channel up is the client's: it holds a handle (slot, relid,
//! generation) from its open and names it in every Signal and Close. The rescind is injected
//! before every phase of the client's open / traffic / close sequence. What must hold: a request
//! naming a generation from before the rescind is refused (`ChannelGone`), never acted on, even
//! once the same relid is offered again and opened into the same slot by a new channel.

use hv_host::DeviceSpec;
use vmbus_client::{ClientError, call};
use vmbus_driver::control::{self, Request, Response};
use vmbus_driver::driver::ChannelState;

use crate::common::{self, Rig, instance, run_sequence, sweep};
use crate::progs::Script;

const ROUND_TRIPS: u32 = 3;

/// Sends `req` as client `id` and returns the driver's response.
fn raw(rig: &mut Rig, id: vmbus_driver::ids::ClientId, req: Request) -> Response {
    rig.w
        .as_client(id, |ctx| call(ctx, &req))
        .expect("driver answers")
}

fn case(k: Option<u64>) -> u64 {
    let ctx = format!("R1 rescind injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    let (hb, class) = common::client(&rig.w, "heartbeat");
    let spec = DeviceSpec::echo(class, instance(1));
    rig.w.host_mut().add_device(spec).unwrap();
    rig.run_until(|w| w.driver_channels().len() == 1, 100)
        .unwrap();
    let relid = rig.relid_of(class);
    let (script, rec) = Script::new(relid, ROUND_TRIPS, true);
    rig.w.set_program(hb, Box::new(script));

    let mut rescinded = false;
    let len = run_sequence(
        &mut rig,
        k,
        600,
        |rig| {
            rig.w.host_mut().rescind(relid).expect("host rescinds");
            rescinded = true;
        },
        |rig| rec.borrow().done && common::quiet(&rig.w),
        &ctx,
    );
    rig.settle(600, &ctx);

    // The script either completed or saw the channel go away cleanly: no other error.
    let r = rec.borrow();
    match r.error {
        None => assert!(r.closed, "{ctx}: script ended without closing"),
        Some(ClientError::ChannelGone | ClientError::OpenFailed) => assert!(rescinded, "{ctx}"),
        // The host closed the port at its rescind; the driver had not yet seen the message and
        // passed the signal on, and the hypercall failed (the host's INVALID_PORT_ID).
        Some(ClientError::Refused(control::ClientError::SignalFailed)) => {
            assert!(rescinded, "{ctx}")
        }
        Some(ClientError::Refused(control::ClientError::NoSuchOffer)) => {
            assert!(rescinded && r.handles.is_empty(), "{ctx}: refused open")
        }
        Some(e) => panic!("{ctx}: the client saw {e}"),
    }
    assert_eq!(r.mismatches, 0, "{ctx}");
    let old = r.handles.clone();
    drop(r);

    // Every handle from before is refused now.
    for h in &old {
        for req in [
            Request::Signal { handle: *h },
            Request::Close { handle: *h },
        ] {
            assert_eq!(
                raw(&mut rig, hb, req),
                Response::Error(control::ClientError::ChannelGone),
                "{ctx}: stale {h:?}"
            );
        }
    }

    // The same relid, offered again when it was rescinded, opens as a new channel in the same
    // slot; the old handles still reach nothing.
    if rescinded {
        rig.w.host_mut().add_device(spec).unwrap();
        rig.run_until(|w| w.driver_channels().len() == 1, 100)
            .unwrap_or_else(|_| panic!("{ctx}: re-offer"));
        assert_eq!(rig.relid_of(class), relid, "{ctx}: the relid is reused");
    }
    let mut ch = rig.open(hb, relid);
    let new = ch.handle();
    for h in &old {
        assert_eq!((h.slot, h.relid), (new.slot, new.relid), "{ctx}");
        assert!(new.generation != h.generation, "{ctx}: generation moved on");
        for req in [
            Request::Signal { handle: *h },
            Request::Close { handle: *h },
        ] {
            assert_eq!(
                raw(&mut rig, hb, req),
                Response::Error(control::ClientError::ChannelGone),
                "{ctx}: stale {h:?} after reopen"
            );
        }
    }
    let row = rig.w.driver().channel(relid).expect("row");
    assert_eq!(
        row.state,
        ChannelState::Open,
        "{ctx}: stale close did nothing"
    );
    // The new channel works.
    rig.w
        .as_client(hb, |c| ch.send(c, &[7u8; 16]))
        .expect("send");
    let mut got = None;
    for _ in 0..60 {
        rig.phase_step();
        let mut buf = [0u8; 64];
        if let Some(r) = rig.w.as_client(hb, |c| ch.recv(c, &mut buf)).expect("recv") {
            got = Some(buf[..r.len].to_vec());
            break;
        }
    }
    assert_eq!(got, Some(vec![7u8; 16]), "{ctx}: echo on the new channel");
    rig.w.as_client(hb, |c| ch.close(c)).expect("close");
    rig.settle(600, &ctx);
    assert_eq!(
        rig.w.pool_free() + rig.w.connection_pages(),
        8192,
        "{ctx}: pages back"
    );
    rig.finish(&ctx);
    len
}

#[test]
fn r1_rescind_during_a_client_lookup_leaves_only_stale_handles_that_are_refused() {
    sweep("R1", case);
}
