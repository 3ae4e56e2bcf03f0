//! R5: an offer processed twice because its rescind ran first.
//!
//! Two sweeps over a hot-added offer and its open by client `heartbeat`:
//! - the host's own rescind of the new relid, injected before every phase of the offer / open
//!   sequence: the driver handles offer and rescind in arrival order, the relid ends released
//!   exactly once, never offered twice, and the same device added again is offered once and
//!   opens;
//! - a RESCIND_CHANNELOFFER for the relid the host is about to offer (a rescind of an unknown,
//!   not yet offered relid), injected before every phase around the offer: when it arrives
//!   first it is counted and ignored and the offer that follows is taken once; when it arrives
//!   after the offer it rescinds that offer.

use std::cell::Cell;

use hv_host::{DeviceSpec, Direction};
use vmbus_driver::msg::MessageType;

use crate::common::{self, Rig, instance, run_sequence, run_sequence_with, sweep};
use crate::progs::Script;

fn host_rescind_case(k: Option<u64>) -> u64 {
    let ctx = format!("R5 host rescind injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    let (a, class) = common::client(&rig.w, "heartbeat");
    let spec = DeviceSpec::echo(class, instance(1));
    let before = rig.w.driver_stats();
    rig.w.host_mut().add_device(spec).unwrap();
    // The host allocates the lowest free relid.
    let relid = rig.w.host().channels().next().expect("allocated").relid;
    let (s, rec) = Script::new(relid, 1, false);
    rig.w.set_program(a, Box::new(s));
    let rescinded = Cell::new(false);
    let len = run_sequence(
        &mut rig,
        k,
        600,
        |rig| {
            rig.w.host_mut().rescind(relid).expect("host rescinds");
            rescinded.set(true);
        },
        |rig| {
            let r = rec.borrow();
            let gone = rescinded.get() && rig.w.driver().channel(relid).is_none();
            (r.echoes >= 1 || r.done || gone) && common::quiet(&rig.w)
        },
        &ctx,
    );
    rig.settle(600, &ctx);
    let after = rig.w.driver_stats();
    assert_eq!(after.duplicate_offers, before.duplicate_offers, "{ctx}");
    assert_eq!(after.unknown_rescinds, before.unknown_rescinds, "{ctx}");
    assert!(
        after.offers - before.offers <= 1,
        "{ctx}: offered at most once"
    );
    if rescinded.get() {
        assert!(rig.w.driver().channel(relid).is_none(), "{ctx}: gone");
        // Each rescind the host sent got its release (the monitor checks "exactly one").
        assert_eq!(
            after.relids_released - before.relids_released,
            after.rescinds - before.rescinds,
            "{ctx}"
        );
        rig.w.set_program(
            a,
            Box::new(|_: &mut sim_system::ClientCtx<'_>| sim_system::Flow::Done),
        );
        rig.settle(300, &ctx);
        // The device comes back: offered once, and it opens.
        let offers = rig.w.driver_stats().offers;
        rig.w.host_mut().add_device(spec).unwrap();
        rig.run_until(|w| w.driver_channels().len() == 1, 100)
            .unwrap_or_else(|_| panic!("{ctx}: offered again"));
        assert_eq!(rig.w.driver_stats().offers, offers + 1, "{ctx}");
        let relid = rig.relid_of(class);
        let ch = rig.open(a, relid);
        rig.w.as_client(a, |c| ch.close(c)).expect("close");
        rig.settle(300, &ctx);
    } else {
        assert!(rec.borrow().echoes >= 1, "{ctx}");
    }
    rig.finish(&ctx);
    len
}

#[test]
fn r5_host_rescind_racing_its_offer_is_handled_in_arrival_order_and_never_offers_twice() {
    sweep("R5/host", host_rescind_case);
}

/// Phase at which the host adds the device in the unknown-rescind sweep.
const OFFER_AT: u64 = 6;

fn early_rescind_case(k: Option<u64>) -> u64 {
    let ctx = format!("R5 early rescind injected before phase {k:?}");
    let mut rig = Rig::booted(&[]);
    // The rescind names a relid the host has not offered, and answering it is not the
    // driver's business: the monitor's rescind balance does not apply.
    rig.mon.strict_rescinds = false;
    let (_, class) = common::client(&rig.w, "heartbeat");
    let spec = DeviceSpec::echo(class, instance(1));
    let before = rig.w.driver_stats();
    let mark = rig.w.host().log().total();
    // With no device, the host's next relid is 1.
    let relid = vmbus_driver::ids::RelId(1);
    let phase = Cell::new(0);
    let injected = Cell::new(false);
    let len = run_sequence_with(
        &mut rig,
        k,
        600,
        |rig| {
            rig.w.host_mut().inject_rescind(relid);
            injected.set(true);
        },
        |rig| {
            if phase.get() == OFFER_AT {
                rig.w.host_mut().add_device(spec).unwrap();
                assert_eq!(rig.w.host().channels().next().unwrap().relid, relid);
            }
            phase.set(phase.get() + 1);
        },
        |rig| phase.get() > OFFER_AT && common::quiet(&rig.w),
        &ctx,
    );
    rig.settle(300, &ctx);
    let after = rig.w.driver_stats();
    let log = common::log_since(&rig.w, mark);
    let offer = common::host_msgs(&log, MessageType::OFFERCHANNEL, |r| r.relid == Some(relid));
    let rescind = common::host_msgs(&log, MessageType::RESCIND_CHANNELOFFER, |_| true);
    let released = common::guest_msgs(&log, MessageType::RELID_RELEASED, |_| true);
    assert_eq!(offer.len(), 1, "{ctx}");
    assert_eq!(after.duplicate_offers, before.duplicate_offers, "{ctx}");
    assert_eq!(
        after.offers - before.offers,
        1,
        "{ctx}: the offer was taken once"
    );
    if !injected.get() {
        assert!(rescind.is_empty() && released.is_empty(), "{ctx}");
    } else if rescind[0] < offer[0] {
        // Arrived first: a rescind of an unknown relid, counted and ignored.
        assert_eq!(after.unknown_rescinds - before.unknown_rescinds, 1, "{ctx}");
        assert!(released.is_empty(), "{ctx}: nothing to release");
        assert!(
            rig.w.driver().channel(relid).is_some(),
            "{ctx}: the offer stands"
        );
    } else {
        // Arrived after the offer: it rescinds it, released once, after the rescind.
        assert_eq!(after.unknown_rescinds, before.unknown_rescinds, "{ctx}");
        assert_eq!(released.len(), 1, "{ctx}");
        assert!(released[0] > rescind[0], "{ctx}");
        assert!(rig.w.driver().channel(relid).is_none(), "{ctx}");
        assert!(log[released[0]].dir == Direction::Received);
    }
    rig.finish(&ctx);
    len
}

#[test]
fn r5_rescind_arriving_before_its_offer_is_counted_and_the_offer_is_taken_once() {
    sweep("R5/early", early_rescind_case);
}
