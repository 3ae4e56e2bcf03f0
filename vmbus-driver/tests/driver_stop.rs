//! The orderly stop a permitted client asks for (`Request::Stop`): every channel of every
//! client is closed (client mappings revoked, teardown) before UNLOAD, the driver says when it
//! is over, other clients are refused, and asking twice changes nothing.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelStatus, ClientError, Request, Response};
use vmbus_driver::driver::{ConnectionState, StopKind, UnloadEnd};
use vmbus_driver::msg::MessageType;

fn world_with_channels() -> (
    World,
    Vec<(
        vmbus_driver::ids::ClientId,
        vmbus_driver::control::ChannelHandle,
    )>,
) {
    let mut w = World::new(vec![
        offer(1, NET, 1, 0),
        offer(2, SCSI, 2, 0),
        offer(3, HEARTBEAT, 3, 0),
    ]);
    w.connect();
    let open = vec![(A, w.open(A, 1)), (A, w.open(A, 2)), (B, w.open(B, 3))];
    (w, open)
}

fn stop(w: &mut World, client: vmbus_driver::ids::ClientId, restart: bool) -> Response {
    w.call(client, Request::Stop { restart })
}

#[test]
fn a_stop_closes_every_channel_and_revokes_every_mapping_before_unload_is_sent() {
    let (mut w, open) = world_with_channels();
    let granted: usize = w.k.granted.values().map(Vec::len).sum();
    assert!(granted > 0);
    w.clear_log();
    assert_eq!(stop(&mut w, B, false), Response::Stopping);
    assert_eq!(w.d.stopped(), None, "not over before the host answered");
    w.pump();
    let log = w.events();
    let unload_at = log
        .iter()
        .position(|e| e.msgtype() == Some(MessageType::UNLOAD))
        .expect("UNLOAD sent");
    let revokes = log[..unload_at]
        .iter()
        .filter(|e| matches!(e, Ev::Revoke(_)))
        .count();
    assert!(
        revokes >= granted,
        "every granted page revoked before UNLOAD"
    );
    assert!(
        !log[unload_at..]
            .iter()
            .any(|e| matches!(e, Ev::Revoke(_) | Ev::Post(..))
                && e.msgtype() != Some(MessageType::UNLOAD)),
        "nothing revoked or posted after UNLOAD: {:?}",
        &log[unload_at..]
    );
    let types = w.posted_types();
    for t in [MessageType::CLOSECHANNEL, MessageType::GPADL_TEARDOWN] {
        assert_eq!(types.iter().filter(|x| **x == t).count(), 3, "{t:?}");
    }
    assert_eq!(types.last(), Some(&MessageType::UNLOAD));
    assert!(
        w.k.granted.values().all(Vec::is_empty),
        "no client mapping left"
    );
    assert!(w.k.lifetime_violations().is_empty());
    assert_eq!(w.k.pages_out(), 0, "every page back in the pool");
    for (c, h) in open {
        assert_eq!(w.k.status(c, h.slot).state, ChannelStatus::Gone);
    }
    assert_eq!(w.d.connection().state, ConnectionState::Disconnected);
    assert_eq!(w.d.stopped(), Some(StopKind::PowerOff));
    let s = w.d.stopping().unwrap();
    assert_eq!((s.by, s.unload), (B, Some(UnloadEnd::Answered)));
}

#[test]
fn a_client_without_power_permission_cannot_stop_the_system() {
    let (mut w, open) = world_with_channels();
    w.clear_log();
    for restart in [false, true] {
        assert_eq!(
            stop(&mut w, A, restart),
            Response::Error(ClientError::NotPermitted)
        );
    }
    assert!(w.posted_types().is_empty(), "nothing sent to the host");
    assert!(!w.events().iter().any(|e| matches!(e, Ev::Revoke(_))));
    assert_eq!(w.d.stopping(), None);
    assert_eq!(w.d.connection().state, ConnectionState::Connected);
    for (c, h) in open {
        assert_eq!(w.k.status(c, h.slot).state, ChannelStatus::Open);
    }
}

#[test]
fn a_second_stop_while_stopping_changes_nothing() {
    let (mut w, _) = world_with_channels();
    w.clear_log();
    assert_eq!(stop(&mut w, B, true), Response::Stopping);
    // Again before the host answered anything, then with the other kind: the first stays.
    assert_eq!(stop(&mut w, B, true), Response::Stopping);
    assert_eq!(stop(&mut w, B, false), Response::Stopping);
    w.pump();
    assert_eq!(
        stop(&mut w, B, false),
        Response::Stopping,
        "and after it is over"
    );
    w.pump();
    let types = w.posted_types();
    assert_eq!(
        types.iter().filter(|t| **t == MessageType::UNLOAD).count(),
        1
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == MessageType::CLOSECHANNEL)
            .count(),
        3
    );
    assert_eq!(w.d.stopped(), Some(StopKind::Restart));
    assert!(w.k.lifetime_violations().is_empty());
    assert_eq!(w.k.pages_out(), 0);
}

#[test]
fn a_host_that_never_answers_unload_ends_the_stop_at_the_reply_timeout() {
    let (mut w, _) = world_with_channels();
    w.hv.silent.insert(MessageType::UNLOAD_RESPONSE.0);
    stop(&mut w, B, false);
    w.pump();
    assert_eq!(w.posted_types().last(), Some(&MessageType::UNLOAD));
    assert_eq!(w.d.stopped(), None, "waiting for UNLOAD_RESPONSE");
    w.tick(TIMEOUT - 1);
    assert_eq!(w.d.stopped(), None);
    w.tick(1);
    assert_eq!(w.d.stopped(), Some(StopKind::PowerOff));
    assert_eq!(w.d.stopping().unwrap().unload, Some(UnloadEnd::TimedOut));
}

#[test]
fn a_stop_before_the_bus_is_connected_is_over_at_once() {
    let mut w = World::new(vec![]);
    assert_eq!(stop(&mut w, B, false), Response::Stopping);
    assert_eq!(w.d.stopped(), Some(StopKind::PowerOff));
    assert_eq!(w.d.stopping().unwrap().unload, Some(UnloadEnd::NotSent));
    assert!(w.posted_types().is_empty());
}

#[test]
fn a_client_cannot_open_a_channel_once_the_stop_began() {
    let (mut w, _) = world_with_channels();
    w.hv.silent.insert(MessageType::UNLOAD_RESPONSE.0);
    stop(&mut w, B, false);
    assert_eq!(
        w.call(A, open_request(1, 2, 2)),
        Response::Error(ClientError::NotConnected)
    );
}
