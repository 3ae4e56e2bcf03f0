//! Driver core: open-path rules that a mutation run of `driver/open.rs` (`cargo xtask
//! mutants`) found no test for.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelStatus, ClientError, Request, Response};
use vmbus_driver::driver::{ClientConfig, DriverConfig, RetargetError};
use vmbus_driver::hv::HvStatus;
use vmbus_driver::ids::VpIndex;
use vmbus_driver::ids::{GpadlId, RelId, SlotId};
use vmbus_driver::msg::OpenChannelResult;
use vmbus_driver::msg::{ChannelMessage, GpadlCreated, MessageType};
use vmbus_driver::version::Version;

#[test]
fn a_relid_the_host_released_cannot_be_opened() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.clear_log();
    w.hv.rescind(5);
    w.pump();
    assert_eq!(w.posted_types(), [MessageType::RELID_RELEASED]);
    w.clear_log();
    // The entry is free again, though it still remembers the class A may open.
    let r = w.call(A, open_request(5, 2, 2));
    assert_eq!(r, Response::Error(ClientError::NoSuchOffer));
    assert!(w.events().is_empty(), "{:?}", w.events());
    assert_eq!(w.d.open_count(), 0);
    assert!(w.d.channel(RelId(5)).is_none());
}

#[test]
fn retarget_errors_say_what_went_wrong() {
    for (e, text) in [
        (
            RetargetError::NotSupported,
            "MODIFYCHANNEL needs protocol 4.1",
        ),
        (RetargetError::NotOpen, "channel not open"),
        (RetargetError::Pending, "a MODIFYCHANNEL is still pending"),
        (
            RetargetError::PostFailed,
            "MODIFYCHANNEL could not be posted",
        ),
    ] {
        assert_eq!(e.to_string(), text);
    }
}

/// Opens A's relid 5 with operation `at` of the kernel refused, then lets the host answer.
/// Returns the world and the name of the operation that was refused, if any.
fn open_with_refused_op(at: u64) -> (World, Option<&'static str>) {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.k.arm(FailPlan {
        at,
        mode: FailMode::Refuse,
    });
    w.try_call(A, open_request(5, 2, 2));
    w.pump();
    let op = w.k.injected.borrow().first().map(|(_, op)| *op);
    w.k.fail = None;
    (w, op)
}

#[test]
fn each_failed_kernel_operation_of_an_open_counts_one_kernel_error() {
    for target in ["page_frame", "write_page", "grant"] {
        let mut seen = false;
        for at in 0..200 {
            let (w, op) = open_with_refused_op(at);
            let Some(op) = op else { break };
            if op != target {
                continue;
            }
            seen = true;
            assert_eq!(w.d.stats().kernel_errors, 1, "{op} refused at {at}");
            assert_eq!(w.d.open_count(), 0, "{op} refused at {at}: the open failed");
            assert!(w.k.lifetime_violations().is_empty());
        }
        assert!(seen, "no {target} in an open");
    }
}

#[test]
fn a_gpadl_whose_body_could_not_be_posted_is_torn_down_at_once() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.clear_log();
    // 16 + 16 pages do not fit the GPADL_HEADER: a GPADL_BODY follows, and its post fails
    // after the host took the header.
    w.hv.post_failures
        .extend([HvStatus::SUCCESS, HvStatus::INVALID_PARAMETER]);
    let r = w.call(A, open_request(5, 16, 16));
    assert_eq!(r, Response::Error(ClientError::HostUnreachable));
    // The host may hold the partial GPADL: it is torn down now, not after a reply timeout.
    assert_eq!(w.posted_types(), [MessageType::GPADL_TEARDOWN]);
    let gpadl = u32_at(&w.posts_of(MessageType::GPADL_TEARDOWN)[0], 12);
    assert_ne!(gpadl, 0);
    w.pump();
    assert_eq!(w.d.open_count(), 0);
    assert_eq!(w.k.pages_out(), 0);
    assert_eq!(w.d.stats().timeouts, 0);
    assert_eq!(w.k.status(A, SlotId(0)).state, ChannelStatus::Failed);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
}

#[test]
fn a_gpadl_whose_header_could_not_be_posted_is_not_torn_down() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.clear_log();
    w.hv.post_failures.push_back(HvStatus::INVALID_PARAMETER);
    let r = w.call(A, open_request(5, 2, 2));
    assert_eq!(r, Response::Error(ClientError::HostUnreachable));
    // The host has nothing: no GPADL_TEARDOWN, and the pages are back at once.
    assert_eq!(w.posted_types(), []);
    assert_eq!(w.d.open_count(), 0);
    assert_eq!(w.k.pages_out(), 0);
    assert_eq!(w.d.quarantined_pages(), 0);
}

/// The GPADL id of the newest GPADL_HEADER posted.
fn last_gpadl(w: &World) -> GpadlId {
    let headers = w.posts_of(MessageType::GPADL_HEADER);
    GpadlId(u32_at(headers.last().expect("no GPADL_HEADER"), 12))
}

#[test]
fn a_stale_gpadl_created_for_an_earlier_open_is_not_taken_for_a_later_one() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    // Eight opens and closes of the same relid, then a third whose GPADL_CREATED is late.
    let mut earlier = Vec::new();
    for _ in 0..8 {
        let h = w.open(A, 5);
        earlier.push(last_gpadl(&w));
        assert_eq!(w.call(A, Request::Close { handle: h }), Response::Closed);
        w.pump();
        assert_eq!(w.d.open_count(), 0);
    }
    w.hv.silent.insert(MessageType::GPADL_CREATED.0);
    let handle = w.start_open(A, 5);
    w.pump();
    let current = last_gpadl(&w);
    assert!(!earlier.contains(&current), "{current} reused: {earlier:?}");
    w.clear_log();
    // A stale or duplicated GPADL_CREATED for an earlier GPADL names a GPADL that is gone.
    for old in &earlier {
        w.hv.send(&ChannelMessage::GpadlCreated(GpadlCreated {
            child_relid: RelId(5),
            gpadl: *old,
            creation_status: 0,
        }));
    }
    w.pump();
    assert_eq!(w.posted_types(), [], "OPENCHANNEL before the GPADL exists");
    assert_eq!(w.d.stats().unknown_gpadl, 8);
    assert_eq!(w.d.stats().hostile, 8);
    // The real one opens the channel.
    w.hv.send(&ChannelMessage::GpadlCreated(GpadlCreated {
        child_relid: RelId(5),
        gpadl: current,
        creation_status: 0,
    }));
    w.pump();
    assert_eq!(w.posted_types(), [MessageType::OPENCHANNEL]);
    assert_eq!(w.k.status(A, handle.slot).state, ChannelStatus::Open);
}

#[test]
fn a_sub_channel_cannot_be_opened_while_its_primary_is_still_opening() {
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(8, NET, 1, 1)]);
    w.connect();
    w.hv.silent.insert(MessageType::OPENCHANNEL_RESULT.0);
    w.start_open(A, 5);
    w.pump();
    let r = w.call(A, open_request(8, 2, 2));
    assert_eq!(r, Response::Error(ClientError::NotPermitted));
    assert_eq!(w.d.open_count(), 1);
}

#[test]
fn a_channel_of_exactly_the_largest_ring_size_opens() {
    // One client whose window slot is larger than the largest channel.
    let classes = [NET];
    let clients = [ClientConfig {
        id: A,
        window_pages: 1024,
        max_channels: 2,
        classes: &classes,
        instance: None,
        power: false,
        low_latency: false,
    }];
    let cfg = DriverConfig {
        target_vp: VpIndex(TARGET_VP),
        max_version: Version::WIN10_V5_3,
        reply_timeout: TIMEOUT,
        clients: &clients,
    };
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(6, NET, 2, 0)]);
    w.d.init(&cfg).unwrap();
    w.connect();
    let r = w.call(A, open_request(6, 129, 128));
    assert_eq!(r, Response::Error(ClientError::BadRingSize));
    w.open_sized(A, 5, 128, 128);
    assert_eq!(w.d.channel(RelId(5)).unwrap().pages, 256);
    assert_eq!(w.k.pages_out(), 256);
}

#[test]
fn a_late_open_result_resolves_only_the_open_it_names() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.silent.insert(MessageType::OPENCHANNEL_RESULT.0);
    w.start_open(A, 5);
    w.pump();
    let gpadl = last_gpadl(&w);
    // The result never comes in time: the driver gives up, the pages stay quarantined.
    w.tick(TIMEOUT + 1);
    assert_eq!(w.d.stats().unresolved_opens, 1);
    assert_eq!(w.d.quarantined_pages(), 4);
    w.hv.silent.clear();
    w.clear_log();
    let late = |openid: u32| {
        ChannelMessage::OpenChannelResult(OpenChannelResult {
            child_relid: RelId(5),
            openid,
            status: 0,
        })
    };
    // A result naming another open changes nothing.
    w.hv.send(&late(gpadl.0 + 1));
    w.pump();
    assert_eq!(w.posted_types(), []);
    assert_eq!(w.d.stats().mismatched_replies, 1);
    // The one it waited for: the host opened the channel, so CLOSECHANNEL, then the GPADL's
    // teardown, whose GPADL_TORNDOWN frees the pages; the relid can be opened again.
    w.hv.send(&late(gpadl.0));
    w.pump();
    assert_eq!(
        w.posted_types(),
        [MessageType::CLOSECHANNEL, MessageType::GPADL_TEARDOWN]
    );
    assert_eq!(w.d.quarantined_pages(), 0);
    assert_eq!(w.k.pages_out(), 0);
    w.open(A, 5);
}
