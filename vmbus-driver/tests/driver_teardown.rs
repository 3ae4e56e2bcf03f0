//! Driver core: the one teardown path of docs/lifetime.md (rescind, close, fault, unload), its
//! exact order, its races (R1, R3, R5, R7, R8) and the quarantine of unconfirmed GPADL teardowns.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelHandle, ChannelStatus, ClientError, Request, Response};
use vmbus_driver::driver::{AbstractPhase, ChannelState, ConnectionState, TeardownReason};
use vmbus_driver::ids::{GpadlId, PageId, RelId};
use vmbus_driver::msg::{ChannelMessage, GpadlCreated, MessageType, OpenChannelResult};

/// A compact view of the log: posts as (type, relid-or-gpadl field at offset 8), seam calls as
/// they are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Post(MessageType, u32),
    Revoke(PageId),
    Notify(vmbus_driver::ids::ClientId),
    Zero(PageId),
    Return(PageId),
}

fn steps(w: &World) -> Vec<Step> {
    w.events()
        .into_iter()
        .filter_map(|e| match &e {
            Ev::Post(_, b) => Some(Step::Post(e.msgtype().unwrap(), u32_at(b, 8))),
            Ev::Revoke(p) => Some(Step::Revoke(*p)),
            Ev::Notify(c) => Some(Step::Notify(*c)),
            Ev::Zero(p) => Some(Step::Zero(*p)),
            Ev::Return(p) => Some(Step::Return(*p)),
            _ => None,
        })
        .collect()
}

/// The pages granted for a channel, in GPADL order.
fn pages_of(w: &World, relid: u32) -> Vec<PageId> {
    let gpadl = gpadl_of(w, relid);
    let frames = &w.hv.gpadls[&gpadl.0];
    frames
        .iter()
        .map(|f| {
            (0..w.k.pages.len() as u32)
                .map(PageId)
                .find(|p| frame_of(*p) == *f)
                .unwrap()
        })
        .collect()
}

fn gpadl_of(w: &World, relid: u32) -> GpadlId {
    let headers = w.posts_of(MessageType::GPADL_HEADER);
    let h = headers
        .iter()
        .rev()
        .find(|h| u32_at(h, 8) == relid)
        .unwrap();
    GpadlId(u32_at(h, 12))
}

fn teardown_of(pages: &[PageId], client_notified: bool) -> Vec<Step> {
    let mut v: Vec<Step> = pages.iter().map(|p| Step::Revoke(*p)).collect();
    if client_notified {
        v.push(Step::Notify(A));
    }
    v
}

fn zero_return(pages: &[PageId]) -> Vec<Step> {
    pages
        .iter()
        .flat_map(|p| [Step::Zero(*p), Step::Return(*p)])
        .collect()
}

fn signal(w: &mut World, client: vmbus_driver::ids::ClientId, handle: ChannelHandle) -> Response {
    w.call(client, Request::Signal { handle })
}

#[test]
fn rescind_runs_revoke_close_teardown_release_then_zero_and_return_in_that_order() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    let pages = pages_of(&w, 5);
    let gpadl = gpadl_of(&w, 5);
    let generation = w.d.channel(RelId(5)).unwrap().generation;
    w.clear_log();
    w.hv.rescind(5);
    w.pump();

    let mut expected = teardown_of(&pages, true);
    expected.push(Step::Post(MessageType::CLOSECHANNEL, 5));
    expected.push(Step::Post(MessageType::GPADL_TEARDOWN, 5));
    expected.push(Step::Post(MessageType::RELID_RELEASED, 5));
    expected.extend(zero_return(&pages));
    assert_eq!(steps(&w), expected);
    // GPADL_TEARDOWN names the ring GPADL.
    assert_eq!(
        u32_at(&w.posts_of(MessageType::GPADL_TEARDOWN)[0], 12),
        gpadl.0
    );
    // The client saw Gone for its handle's generation; the relid is free; pages are clean.
    let rec = w.k.status(A, h.slot);
    assert_eq!(
        (rec.state, rec.generation),
        (ChannelStatus::Gone, h.generation)
    );
    assert!(w.d.channel(RelId(5)).is_none());
    assert_eq!(w.k.pages_out(), 0);
    assert!(w.k.granted.is_empty());
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
    // The stale handle is refused (R1).
    assert_eq!(
        signal(&mut w, A, h),
        Response::Error(ClientError::ChannelGone)
    );
    assert_eq!(
        w.call(A, Request::Close { handle: h }),
        Response::Error(ClientError::ChannelGone)
    );

    // The host re-offers the relid: a new generation, and the old handle still does not reach it.
    w.hv.send(&ChannelMessage::OfferChannel(offer(5, NET, 1, 0)));
    w.pump();
    assert!(w.d.channel(RelId(5)).unwrap().generation > generation);
    let h2 = w.open(A, 5);
    assert_ne!(h2.generation, h.generation);
    assert_eq!(
        w.call(A, Request::Close { handle: h }),
        Response::Error(ClientError::ChannelGone)
    );
    assert_eq!(w.d.stats().relids_released, 1);
}

#[test]
fn client_close_takes_the_same_path_without_relid_released() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    let pages = pages_of(&w, 5);
    w.clear_log();
    assert_eq!(w.call(A, Request::Close { handle: h }), Response::Closed);
    // The revoke happened inside the call, before the response.
    assert!(w.k.granted.is_empty());
    w.pump();
    let mut expected = teardown_of(&pages, true);
    expected.push(Step::Post(MessageType::CLOSECHANNEL, 5));
    expected.push(Step::Post(MessageType::GPADL_TEARDOWN, 5));
    expected.extend(zero_return(&pages));
    assert_eq!(steps(&w), expected);
    assert_eq!(w.d.channel(RelId(5)).unwrap().state, ChannelState::Offered);
    assert_eq!(
        w.call(A, Request::Close { handle: h }),
        Response::Error(ClientError::ChannelGone)
    );
    // The offer can be opened again, in the freed slot.
    let h2 = w.open(A, 5);
    assert_eq!(h2.slot, h.slot);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
}

#[test]
fn client_fault_tears_down_only_that_clients_channels() {
    let mut w = World::new(vec![
        offer(5, NET, 1, 0),
        offer(6, SCSI, 2, 0),
        offer(7, HEARTBEAT, 3, 0),
    ]);
    w.connect();
    let a1 = w.open(A, 5);
    let a2 = w.open(A, 6);
    let b = w.open(B, 7);
    w.clear_log();
    w.d.on_client_fault(&mut w.hv, &mut w.k, A, w.now);
    w.pump();
    for h in [a1, a2] {
        assert_eq!(w.k.status(A, h.slot).state, ChannelStatus::Gone);
    }
    let closes: Vec<u32> = w
        .posts_of(MessageType::CLOSECHANNEL)
        .iter()
        .map(|b| u32_at(b, 8))
        .collect();
    assert_eq!(closes, [5, 6]);
    assert!(w.posts_of(MessageType::RELID_RELEASED).is_empty());
    assert_eq!(w.k.status(B, b.slot).state, ChannelStatus::Open);
    assert_eq!(w.d.channel(RelId(7)).unwrap().state, ChannelState::Open);
    assert_eq!(w.k.pages_out(), 4, "only B's pages remain out");
    assert_eq!(w.d.stats().client_faults, 1);
}

#[test]
fn teardown_requested_by_every_path_at_once_runs_each_step_once() {
    // R3 / R8: close, then rescind, fault and unload while the GPADL teardown is unanswered.
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    let gpadl = gpadl_of(&w, 5);
    w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
    w.clear_log();
    assert_eq!(w.call(A, Request::Close { handle: h }), Response::Closed);
    w.hv.rescind(5);
    w.pump();
    w.d.on_client_fault(&mut w.hv, &mut w.k, A, w.now);
    w.d.unload(&mut w.hv, &mut w.k, w.now);
    w.hv.rescind(5); // a duplicate rescind is hostile and ignored
    w.pump();
    assert_eq!(
        w.posted_types(),
        [MessageType::CLOSECHANNEL, MessageType::GPADL_TEARDOWN]
    );
    assert_eq!(
        w.d.abstract_channel(RelId(5)).unwrap().phase,
        AbstractPhase::Teardown
    );
    assert_eq!(w.d.stats().unknown_rescinds, 1);
    // The host finally confirms: one RELID_RELEASED, pages back once, then UNLOAD.
    w.hv.torndown(gpadl.0);
    w.pump();
    assert_eq!(
        w.posted_types(),
        [
            MessageType::CLOSECHANNEL,
            MessageType::GPADL_TEARDOWN,
            MessageType::RELID_RELEASED,
            MessageType::UNLOAD
        ]
    );
    assert_eq!(w.d.connection().state, ConnectionState::Disconnected);
    assert_eq!(w.k.pages_out(), 0);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
    assert_eq!(w.d.stats().teardowns, 1);
    assert_eq!(w.d.stats().teardowns_completed, 1);
}

#[test]
fn rescind_while_gpadl_pending_waits_for_gpadl_created_then_tears_it_down() {
    // R5: the rescind overtakes the GPADL creation.
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.silent.insert(MessageType::GPADL_CREATED.0);
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
    let gpadl = gpadl_of(&w, 5);
    w.clear_log();
    w.hv.rescind(5);
    w.pump();
    // Revoked and told, but nothing sent: the GPADL may be half created.
    assert!(w.posted_types().is_empty());
    assert_eq!(w.k.status(A, handle.slot).state, ChannelStatus::Gone);
    assert_eq!(w.k.pages_out(), 4);
    let a = w.d.abstract_channel(RelId(5)).unwrap();
    assert_eq!(
        (a.phase, a.gpadl_alive, a.rescinded),
        (AbstractPhase::Teardown, true, true)
    );
    // GPADL_CREATED arrives: no OPENCHANNEL, no CLOSECHANNEL; the GPADL is torn down.
    w.hv.send(&ChannelMessage::GpadlCreated(GpadlCreated {
        child_relid: RelId(5),
        gpadl,
        creation_status: 0,
    }));
    w.pump();
    assert_eq!(
        w.posted_types(),
        [MessageType::GPADL_TEARDOWN, MessageType::RELID_RELEASED]
    );
    assert_eq!(w.k.pages_out(), 0);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
}

#[test]
fn rescind_while_gpadl_pending_and_created_never_comes_still_tears_down() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.silent.insert(MessageType::GPADL_CREATED.0);
    w.call(
        A,
        Request::Open {
            relid: RelId(5),
            out_ring_pages: 2,
            in_ring_pages: 2,
        },
    );
    w.hv.rescind(5);
    w.pump();
    w.clear_log();
    w.tick(TIMEOUT);
    w.pump();
    // The host may hold it: GPADL_TEARDOWN, then (answered) RELID_RELEASED and the pages back.
    assert_eq!(
        w.posted_types(),
        [MessageType::GPADL_TEARDOWN, MessageType::RELID_RELEASED]
    );
    assert_eq!(w.k.pages_out(), 0);
}

#[test]
fn rescind_while_open_pending_closes_and_ignores_the_late_result() {
    // R1: the rescind races the OPENCHANNEL_RESULT.
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.silent.insert(MessageType::OPENCHANNEL_RESULT.0);
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
    w.pump();
    assert_eq!(
        w.d.channel(RelId(5)).unwrap().state,
        ChannelState::OpenPending
    );
    let openid = u32_at(&w.posts_of(MessageType::OPENCHANNEL)[0], 12);
    w.clear_log();
    w.hv.rescind(5);
    w.pump();
    assert_eq!(
        w.posted_types(),
        [
            MessageType::CLOSECHANNEL,
            MessageType::GPADL_TEARDOWN,
            MessageType::RELID_RELEASED
        ]
    );
    // The late success must grant nothing to anyone.
    w.hv.send(&ChannelMessage::OpenChannelResult(OpenChannelResult {
        child_relid: RelId(5),
        openid,
        status: 0,
    }));
    w.pump();
    assert!(!w.events().iter().any(|e| matches!(e, Ev::Grant(..))));
    assert_eq!(w.k.status(A, handle.slot).state, ChannelStatus::Gone);
    assert_eq!(w.d.stats().mismatched_replies, 1);
    assert_eq!(w.k.pages_out(), 0);
}

#[test]
fn rescind_of_unknown_or_out_of_range_relid_is_counted_and_ignored() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.clear_log();
    for relid in [77, 0, 2048, 5000] {
        w.hv.rescind(relid);
    }
    w.pump();
    assert!(w.posted_types().is_empty());
    let s = w.d.stats();
    assert_eq!(
        (s.unknown_rescinds, s.relid_out_of_range, s.hostile),
        (1, 3, 4)
    );
    // An offered (unopened) relid: released at once, and only once.
    w.hv.rescind(5);
    w.hv.rescind(5);
    w.pump();
    assert_eq!(w.posted_types(), [MessageType::RELID_RELEASED]);
    assert_eq!(w.d.stats().unknown_rescinds, 2);
    assert!(w.d.channel(RelId(5)).is_none());
}

#[test]
fn unconfirmed_gpadl_teardown_quarantines_the_pages_until_a_late_torndown() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    let pages = pages_of(&w, 5);
    let gpadl = gpadl_of(&w, 5);
    w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
    w.hv.rescind(5);
    w.pump();
    w.tick(TIMEOUT - 1);
    assert_eq!(w.d.stats().timeouts, 0);
    w.clear_log();
    w.tick(1);
    // Released to the host, but the pages never go back.
    assert_eq!(w.posted_types(), [MessageType::RELID_RELEASED]);
    assert!(
        !w.events()
            .iter()
            .any(|e| matches!(e, Ev::Zero(_) | Ev::Return(_)))
    );
    assert_eq!(w.k.pages_out(), 4);
    assert_eq!(w.d.stats().quarantined_pages, 4);
    assert_eq!(w.d.quarantined_pages(), 4);
    assert_eq!(w.d.open_count(), 0);
    let _ = h;
    // A new channel never gets a quarantined page.
    w.hv.silent.clear();
    w.hv.send(&ChannelMessage::OfferChannel(offer(5, NET, 1, 0)));
    w.pump();
    w.open(A, 5);
    let fresh = pages_of(&w, 5);
    assert!(fresh.iter().all(|p| !pages.contains(p)));
    // A late GPADL_TORNDOWN for the quarantined GPADL frees exactly those pages.
    w.clear_log();
    w.hv.torndown(gpadl.0);
    w.pump();
    assert_eq!(steps(&w), zero_return(&pages));
    assert_eq!(w.d.quarantined_pages(), 0);
    assert_eq!(w.d.stats().quarantine_released_pages, 4);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
}

#[test]
fn primary_teardown_covers_its_sub_channels_first() {
    // R7.
    let mut w = World::new(vec![
        offer(1, NET, 7, 0),
        offer(2, NET, 7, 1),
        offer(3, NET, 7, 2),
    ]);
    w.connect();
    w.open(A, 1);
    w.open(A, 2);
    w.open(A, 3);
    w.clear_log();
    w.hv.rescind(1);
    w.pump();
    let posts: Vec<(MessageType, u32)> = steps(&w)
        .into_iter()
        .filter_map(|s| match s {
            Step::Post(t, r) => Some((t, r)),
            _ => None,
        })
        .collect();
    assert_eq!(
        posts,
        [
            (MessageType::CLOSECHANNEL, 2),
            (MessageType::GPADL_TEARDOWN, 2),
            (MessageType::CLOSECHANNEL, 3),
            (MessageType::GPADL_TEARDOWN, 3),
            (MessageType::CLOSECHANNEL, 1),
            (MessageType::GPADL_TEARDOWN, 1),
            (MessageType::RELID_RELEASED, 1),
        ]
    );
    // The sub-channels stay offered (the host rescinds them on its own).
    assert_eq!(w.d.channel(RelId(2)).unwrap().state, ChannelState::Offered);
    assert_eq!(w.k.pages_out(), 0);
    // The primary waits for a sub-channel whose teardown is unanswered.
    let mut w = World::new(vec![offer(1, NET, 7, 0), offer(2, NET, 7, 1)]);
    w.connect();
    let p = w.open(A, 1);
    w.open(A, 2);
    let sub_gpadl = gpadl_of(&w, 2);
    w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
    w.clear_log();
    w.call(A, Request::Close { handle: p });
    w.pump();
    assert_eq!(
        w.posted_types(),
        [MessageType::CLOSECHANNEL, MessageType::GPADL_TEARDOWN]
    );
    assert_eq!(
        w.d.channel(RelId(1)).unwrap().state,
        ChannelState::TearingDown(TeardownReason::ClientClose)
    );
    w.hv.silent.clear();
    w.hv.torndown(sub_gpadl.0);
    w.pump();
    assert_eq!(w.posted_types().len(), 4);
    assert_eq!(w.d.open_count(), 0);
}

#[test]
fn unload_tears_down_every_channel_then_sends_unload() {
    let mut w = World::new(vec![
        offer(1, NET, 1, 0),
        offer(2, HEARTBEAT, 2, 0),
        offer(3, SCSI, 3, 0),
    ]);
    w.connect();
    let a = w.open(A, 1);
    w.open(B, 2);
    w.clear_log();
    w.d.unload(&mut w.hv, &mut w.k, w.now);
    w.pump();
    let types = w.posted_types();
    assert_eq!(types.len(), 5);
    assert_eq!(types.last(), Some(&MessageType::UNLOAD));
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == MessageType::GPADL_TEARDOWN)
            .count(),
        2
    );
    assert!(!types.contains(&MessageType::RELID_RELEASED));
    assert_eq!(w.d.connection().state, ConnectionState::Disconnected);
    assert_eq!(w.d.channels().count(), 0);
    assert_eq!(w.k.pages_out(), 0);
    assert_eq!(w.k.status(A, a.slot).state, ChannelStatus::Gone);
    // Reconnect after unload.
    w.connect();
    assert_eq!(w.d.channels().count(), 3);

    // A host that never answers UNLOAD: disconnected after the timeout.
    w.hv.silent.insert(MessageType::UNLOAD_RESPONSE.0);
    w.d.unload(&mut w.hv, &mut w.k, w.now);
    w.pump();
    assert_eq!(w.d.connection().state, ConnectionState::Unloading);
    w.tick(TIMEOUT);
    assert_eq!(w.d.connection().state, ConnectionState::Disconnected);
}

#[test]
fn sub_channel_finishing_at_once_does_not_run_the_primary_ahead_of_its_revoke() {
    // The host refuses the sub-channel's CLOSECHANNEL and GPADL_TEARDOWN posts, so the sub's
    // teardown ends (quarantined) inside the primary's; the primary must still revoke before
    // it closes, and never return a page that is still granted.
    let mut w = World::new(vec![offer(1, NET, 7, 0), offer(2, NET, 7, 1)]);
    w.connect();
    let p = w.open(A, 1);
    w.open(A, 2);
    let primary_pages = pages_of(&w, 1);
    w.clear_log();
    w.hv.post_failures
        .push_back(vmbus_driver::hv::HvStatus::ACCESS_DENIED);
    w.hv.post_failures
        .push_back(vmbus_driver::hv::HvStatus::ACCESS_DENIED);
    assert_eq!(w.call(A, Request::Close { handle: p }), Response::Closed);
    w.pump();
    let s = steps(&w);
    let first_primary_revoke = s
        .iter()
        .position(|x| *x == Step::Revoke(primary_pages[0]))
        .unwrap();
    let primary_close = s
        .iter()
        .position(|x| *x == Step::Post(MessageType::CLOSECHANNEL, 1))
        .unwrap();
    assert!(first_primary_revoke < primary_close, "{s:?}");
    assert_eq!(w.d.quarantined_pages(), 4, "the sub-channel's pages");
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
    assert_eq!(w.d.open_count(), 0);
}

/// The host resets on UNLOAD: a rescind (or offer) that crosses the driver's UNLOAD must not be
/// answered, or RELID_RELEASED would name a relid the host no longer holds.
#[test]
fn rescind_crossing_unload_gets_no_relid_released_after_unload() {
    let mut w = World::new(vec![offer(1, NET, 1, 0)]);
    w.connect();
    // The host stays silent on UNLOAD so the crossing messages arrive while the driver waits.
    w.hv.silent.insert(MessageType::UNLOAD_RESPONSE.0);
    w.clear_log();
    w.d.unload(&mut w.hv, &mut w.k, w.now);
    w.pump();
    assert_eq!(w.posted_types(), vec![MessageType::UNLOAD]);
    let hostile_before = w.d.stats().hostile;
    w.hv.rescind(1);
    w.hv.send(&ChannelMessage::OfferChannel(offer(2, NET, 2, 0)));
    w.pump();
    assert_eq!(
        w.posted_types(),
        vec![MessageType::UNLOAD],
        "nothing is posted after UNLOAD"
    );
    assert_eq!(
        w.d.stats().hostile,
        hostile_before,
        "crossing is not hostile"
    );
    w.tick(TIMEOUT);
    assert_eq!(w.d.connection().state, ConnectionState::Disconnected);
    assert_eq!(w.d.channels().count(), 0);
}

#[test]
fn a_lost_rescind_leaves_no_zombie_when_the_device_is_offered_again() {
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(6, NET, 2, 0)]);
    w.connect();
    let h = w.open(A, 5);
    // The host rescinded relid 5 but the rescind never arrived; the host does not answer for
    // a channel it dropped, and it offers the same device (class, instance, sub-channel 0)
    // under relid 9.
    w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
    w.clear_log();
    w.hv.send(&ChannelMessage::OfferChannel(offer(9, NET, 1, 0)));
    w.pump();
    assert_eq!(w.d.stats().implied_rescinds, 1);
    assert_eq!(
        w.posted_types(),
        [MessageType::CLOSECHANNEL, MessageType::GPADL_TEARDOWN]
    );
    assert_eq!(w.k.status(A, h.slot).state, ChannelStatus::Gone);
    // After the reply timeout the teardown ends locally: pages quarantined, relid released.
    w.tick(TIMEOUT + 1);
    assert_eq!(
        w.posted_types(),
        [
            MessageType::CLOSECHANNEL,
            MessageType::GPADL_TEARDOWN,
            MessageType::RELID_RELEASED
        ]
    );
    assert!(w.d.channel(RelId(5)).is_none());
    assert_eq!(w.d.quarantined_pages(), 4);
    // The re-offered channel opens in the freed slot; the other device was never touched.
    w.hv.silent.clear();
    let h9 = w.open(A, 9);
    assert_eq!(h9.slot, h.slot);
    assert_eq!(w.d.channel(RelId(6)).unwrap().state, ChannelState::Offered);
    // A duplicate of a live relid's own offer is still just a duplicate.
    w.hv.send(&ChannelMessage::OfferChannel(offer(9, NET, 1, 0)));
    w.pump();
    assert_eq!(w.d.stats().implied_rescinds, 1);
    assert_eq!(w.d.stats().duplicate_offers, 1);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
}
