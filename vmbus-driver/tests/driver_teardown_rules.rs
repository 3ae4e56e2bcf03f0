//! Driver core: teardown and open rules that a mutation run of `driver/teardown.rs` and
//! `driver/open.rs` (`cargo xtask mutants`) found no test for: a GPADL id in quarantine is
//! never handed out again, a MODIFYCHANNEL still pending when the teardown starts cannot stop
//! it, and every failed kernel operation of a teardown is counted.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelStatus, ClientError, Request, Response};
use vmbus_driver::hv::HvStatus;
use vmbus_driver::ids::{GpadlId, RelId, VpIndex};
use vmbus_driver::msg::{ChannelMessage, MessageType, ModifyChannelResponse};

/// The GPADL id of the newest GPADL_HEADER posted for `relid`.
fn gpadl_of(w: &World, relid: u32) -> GpadlId {
    let headers = w.posts_of(MessageType::GPADL_HEADER);
    let h = headers
        .iter()
        .rev()
        .find(|h| u32_at(h, 8) == relid)
        .expect("no GPADL_HEADER");
    GpadlId(u32_at(h, 12))
}

/// Open-table index bits of a GPADL id (the rest counts allocations).
const INDEX_BITS: u32 = 11;

/// Opens A's relid 5, closes it and lets the GPADL teardown time out: its pages are
/// quarantined under the returned GPADL id, which the host may still hold.
fn quarantine_one(w: &mut World) -> GpadlId {
    let h = w.open(A, 5);
    let gpadl = gpadl_of(w, 5);
    w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
    assert_eq!(w.call(A, Request::Close { handle: h }), Response::Closed);
    w.pump();
    w.tick(TIMEOUT + 1);
    assert_eq!(w.d.open_count(), 0);
    assert_eq!(w.d.quarantined_pages(), 4);
    w.hv.silent.clear();
    gpadl
}

#[test]
fn a_gpadl_id_in_quarantine_is_never_sent_again_after_the_sequence_wraps() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let quarantined = quarantine_one(&mut w);
    assert_eq!(quarantined.0 >> INDEX_BITS, 1, "the first allocation");
    // A kernel with a small pool of its own keeps the bookkeeping cheap for the churn below.
    let kernel = std::mem::replace(&mut w.k, FakeKernel::new(w.log.clone(), 16, &[A, B]));
    // Every further open fails at its GPADL_HEADER, after its GPADL id was allocated, until
    // the 21-bit allocation count has wrapped and the next id for table entry 0 would be the
    // quarantined one again.
    let churn = (1u32 << (32 - INDEX_BITS)) - 1;
    let open = Request::Open {
        relid: 5,
        out_ring_pages: 2,
        in_ring_pages: 2,
    };
    for i in 0..churn {
        w.hv.post_failures.push_back(HvStatus::INVALID_PARAMETER);
        let r = w.call(A, open);
        if r != Response::Error(ClientError::HostUnreachable) {
            panic!("churn open {i}: {r:?}");
        }
        if i % 4096 == 0 {
            w.clear_log();
        }
    }
    w.clear_log();
    assert_eq!(w.d.stats().post_failures, u64::from(churn));
    assert_eq!(w.k.pages_out(), 0);
    w.k = kernel;
    let h = w.open(A, 5);
    let fresh = gpadl_of(&w, 5);
    assert_ne!(
        fresh, quarantined,
        "a GPADL id the host may still hold was reused"
    );
    assert_eq!(fresh.0 & ((1 << INDEX_BITS) - 1), 1, "table entry 0");
    // The late GPADL_TORNDOWN of the quarantined GPADL frees its pages and leaves the new
    // channel alone.
    w.hv.torndown(quarantined.0);
    w.pump();
    assert_eq!(w.d.quarantined_pages(), 0);
    assert_eq!(w.d.stats().quarantine_released_pages, 4);
    assert_eq!(w.d.stats().mismatched_replies, 0);
    assert_eq!(
        w.k.status(A, usize::from(h.slot)).state,
        ChannelStatus::Open
    );
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
}

#[test]
fn a_late_modifychannel_response_during_teardown_is_refused_and_the_teardown_still_times_out() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    // The host takes the MODIFYCHANNEL but answers only after the channel's teardown began.
    w.hv.silent.insert(MessageType::MODIFYCHANNEL_RESPONSE.0);
    w.d.retarget(&mut w.hv, RelId(5), VpIndex(1), w.now)
        .unwrap();
    w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
    assert_eq!(w.call(A, Request::Close { handle: h }), Response::Closed);
    w.pump();
    assert_eq!(
        w.posted_types().iter().rev().take(2).collect::<Vec<_>>(),
        [&MessageType::GPADL_TEARDOWN, &MessageType::CLOSECHANNEL]
    );
    let mismatched = w.d.stats().mismatched_replies;
    w.hv.send(&ChannelMessage::ModifyChannelResponse(
        ModifyChannelResponse {
            child_relid: RelId(5),
            status: 0,
        },
    ));
    w.pump();
    // Nothing awaits that response any more: it is counted, and it does not cancel the
    // GPADL_TORNDOWN deadline, so the teardown still ends with the pages in quarantine.
    assert_eq!(w.d.stats().mismatched_replies, mismatched + 1);
    assert_eq!(w.d.open_count(), 1);
    w.tick(TIMEOUT + 1);
    assert_eq!(w.d.open_count(), 0, "the teardown never timed out");
    assert_eq!(w.d.quarantined_pages(), 4);
    assert_eq!(w.d.stats().quarantine_unconfirmed, 4);
    // And a late GPADL_TORNDOWN frees them.
    w.hv.torndown(gpadl_of(&w, 5).0);
    w.pump();
    assert_eq!(w.d.quarantined_pages(), 0);
    assert_eq!(w.k.pages_out(), 0);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
}

#[test]
fn each_failed_revoke_of_a_teardown_counts_one_kernel_error() {
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(6, NET, 2, 0)]);
    w.connect();
    let h5 = w.open(A, 5);
    let h6 = w.open(A, 6);
    assert_eq!(w.d.stats().kernel_errors, 0);
    for (n, h) in [(1, h5), (2, h6)] {
        // The close's operations: reading the request, then revoking the first page.
        w.k.arm(FailPlan {
            at: 1,
            mode: FailMode::Refuse,
        });
        assert_eq!(w.call(A, Request::Close { handle: h }), Response::Closed);
        assert_eq!(w.k.injected.borrow().as_slice(), &[(1, "revoke")]);
        w.k.fail = None;
        w.pump();
        let s = w.d.stats();
        assert_eq!(s.kernel_errors, n, "kernel errors after {n} failed revokes");
        assert_eq!(s.quarantine_revoke_failed, n);
        assert_eq!(w.d.quarantined_pages(), n as usize);
    }
    assert!(w.k.lifetime_violations().is_empty());
}
