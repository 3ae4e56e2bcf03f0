//! Driver core: teardown and open rules that a mutation run of `driver/teardown.rs` and
//! `driver/open.rs` (`cargo xtask mutants`) found no test for: a GPADL id in quarantine is
//! never handed out again, a MODIFYCHANNEL still pending when the teardown starts cannot stop
//! it, and every failed kernel operation of a teardown is counted.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{
    ChannelStatus, ClientError, REQUEST_AREA, REQUEST_OFFSET, RESPONSE_AREA, RESPONSE_OFFSET,
    Request, Response, decode_frame, encode_frame,
};
use vmbus_driver::driver::Stats;
use vmbus_driver::hv::HvStatus;
use vmbus_driver::ids::{ClientId, GpadlId, PageId, RelId, VpIndex};
use vmbus_driver::kernel::{Kernel, KernelError};
use vmbus_driver::msg::{ChannelMessage, MessageType, ModifyChannelResponse, OpenChannelResult};

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

/// A kernel without page contents or a log, for long runs of opens that fail at their first
/// post: pages come from and go back to a plain list; only the control page of one client is
/// real.
struct LeanKernel {
    client: ClientId,
    free: Vec<PageId>,
    pool: usize,
    control: Vec<u8>,
}

impl LeanKernel {
    /// A kernel whose client `client` has `req` in its request area.
    fn new(client: ClientId, req: Request) -> LeanKernel {
        let mut control = vec![0u8; 4096];
        let n = encode_frame(
            &req,
            &mut control[REQUEST_OFFSET..REQUEST_OFFSET + REQUEST_AREA],
        )
        .unwrap();
        assert!(n > 0);
        LeanKernel {
            client,
            free: (0..64).map(|i| PageId(100_000 + i)).collect(),
            pool: 64,
            control,
        }
    }

    /// The last response written.
    fn response(&self) -> Response {
        decode_frame(&self.control[RESPONSE_OFFSET..RESPONSE_OFFSET + RESPONSE_AREA]).unwrap()
    }
}

impl Kernel for LeanKernel {
    fn take_page(&mut self) -> Result<PageId, KernelError> {
        self.free.pop().ok_or(KernelError::PoolEmpty)
    }
    fn return_page(&mut self, page: PageId) -> Result<(), KernelError> {
        self.free.push(page);
        Ok(())
    }
    fn page_frame(&self, page: PageId) -> Result<u64, KernelError> {
        Ok(frame_of(page))
    }
    fn write_page(&mut self, _: PageId, _: usize, _: &[u8]) -> Result<(), KernelError> {
        Ok(())
    }
    fn read_page(&self, _: PageId, _: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        buf.fill(0);
        Ok(())
    }
    fn zero_page(&mut self, _: PageId) -> Result<(), KernelError> {
        Ok(())
    }
    fn grant(&mut self, _: PageId, _: ClientId, _: usize) -> Result<(), KernelError> {
        Ok(())
    }
    fn revoke(&mut self, _: PageId) -> Result<(), KernelError> {
        Ok(())
    }
    fn pool_pages(&self) -> usize {
        self.pool
    }
    fn free_pages(&self) -> usize {
        self.free.len()
    }
    fn unmap_own(&mut self, _: PageId) -> Result<(), KernelError> {
        Ok(())
    }
    fn map_own(&mut self, _: PageId) -> Result<(), KernelError> {
        Ok(())
    }
    fn notify(&mut self, _: ClientId) -> Result<(), KernelError> {
        Ok(())
    }
    fn ack_irq(&mut self) -> Result<(), KernelError> {
        Ok(())
    }
    fn control_read(&self, c: ClientId, off: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        if c != self.client {
            return Err(KernelError::NoSuchClient);
        }
        buf.copy_from_slice(&self.control[off..off + buf.len()]);
        Ok(())
    }
    fn control_write(&mut self, c: ClientId, off: usize, data: &[u8]) -> Result<(), KernelError> {
        if c != self.client {
            return Err(KernelError::NoSuchClient);
        }
        self.control[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// Bits of a GPADL id that name the channel's table entry, its relid (the rest counts
/// allocations).
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
    // Every further open fails at its GPADL_HEADER, after its GPADL id was allocated, until
    // the 21-bit allocation count has wrapped and the next id for relid 5's table entry would
    // be the quarantined one again. A kernel without page contents keeps the churn cheap.
    let churn = (1u32 << (32 - INDEX_BITS)) - 1;
    let mut lean = LeanKernel::new(A, open_request(5, 2, 2));
    for _ in 0..churn {
        w.hv.post_failures.push_back(HvStatus::INVALID_PARAMETER);
        w.d.on_client_call(&mut w.hv, &mut lean, A, w.now);
    }
    let s = w.d.stats();
    assert_eq!(s.post_failures, u64::from(churn));
    assert_eq!(s.open_failures, u64::from(churn));
    assert_eq!(
        lean.response(),
        Response::Error(ClientError::HostUnreachable)
    );
    assert_eq!(lean.pool, lean.free.len(), "every churned page came back");
    assert_eq!(w.d.open_count(), 0);
    w.clear_log();
    let h = w.open(A, 5);
    let fresh = gpadl_of(&w, 5);
    assert_ne!(
        fresh, quarantined,
        "a GPADL id the host may still hold was reused"
    );
    assert_eq!(
        fresh.0 & ((1 << INDEX_BITS) - 1),
        quarantined.0 & ((1 << INDEX_BITS) - 1),
        "the same table entry"
    );
    assert_eq!(
        fresh.0 & ((1 << INDEX_BITS) - 1),
        5,
        "relid 5's table entry"
    );
    // The late GPADL_TORNDOWN of the quarantined GPADL frees its pages and leaves the new
    // channel alone.
    w.hv.torndown(quarantined.0);
    w.pump();
    assert_eq!(w.d.quarantined_pages(), 0);
    assert_eq!(w.d.stats().quarantine_released_pages, 4);
    assert_eq!(w.d.stats().mismatched_replies, 0);
    assert_eq!(w.k.status(A, h.slot).state, ChannelStatus::Open);
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
    let s = w.d.stats();
    assert_eq!((s.opens, s.pages_taken, s.retargets), (1, 4, 1));
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
        assert_eq!(s.quarantined_pages, n);
        assert_eq!(w.d.quarantined_pages(), n as usize);
    }
    assert!(w.k.lifetime_violations().is_empty());
}

/// Closes A's open relid 5 with the first `op` of the close failing in `mode`; returns the
/// world after the host answered, or `None` if the close has no such operation.
fn close_with_failed(op: &str, mode: FailMode) -> Option<World> {
    for at in 0..100 {
        let mut w = World::new(vec![offer(5, NET, 1, 0)]);
        w.connect();
        let h = w.open(A, 5);
        w.k.arm(FailPlan { at, mode });
        w.try_call(A, Request::Close { handle: h });
        w.pump();
        let injected = w.k.injected.borrow().first().map(|(_, o)| *o);
        w.k.fail = None;
        match injected {
            Some(o) if o == op => return Some(w),
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

#[test]
fn a_page_whose_zeroing_or_return_fails_is_counted_once_by_cause() {
    type Cause = fn(&Stats) -> u64;
    let zero: Cause = |s| s.quarantine_zero_failed;
    let ret: Cause = |s| s.quarantine_return_failed;
    let revoke: Cause = |s| s.quarantine_revoke_failed;
    for (op, cause, others) in [
        ("zero_page", zero, [ret, revoke]),
        ("return_page", ret, [zero, revoke]),
    ] {
        let w = close_with_failed(op, FailMode::Refuse).unwrap_or_else(|| panic!("no {op}"));
        let s = w.d.stats();
        assert_eq!(s.kernel_errors, 1, "{op}");
        assert_eq!(cause(s), 1, "{op}");
        assert_eq!(others.map(|c| c(s)), [0, 0], "{op}");
        assert_eq!(s.quarantined_pages, 1, "{op}");
        assert_eq!(s.pages_returned, 3, "{op}");
        assert_eq!(w.d.quarantined_pages(), 1, "{op}");
        assert_eq!(w.k.pages_out(), 1, "{op}");
        assert!(w.k.lifetime_violations().is_empty(), "{op}");
    }
}

#[test]
fn an_open_whose_gpadl_created_times_out_tears_the_gpadl_down_at_that_timeout() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.silent.insert(MessageType::GPADL_CREATED.0);
    let handle = w.start_open(A, 5);
    w.pump();
    w.clear_log();
    // The host may have created the GPADL without telling us: GPADL_TEARDOWN at once, not
    // after a second timeout.
    w.tick(TIMEOUT + 1);
    assert_eq!(w.posted_types(), [MessageType::GPADL_TEARDOWN]);
    assert_eq!(w.d.stats().timeouts, 1);
    assert_eq!(w.k.status(A, handle.slot).state, ChannelStatus::Failed);
    w.pump();
    assert_eq!(w.d.open_count(), 0);
    assert_eq!(w.k.pages_out(), 0);
    let s = w.d.stats();
    assert_eq!(
        (s.teardowns, s.teardowns_completed, s.open_failures),
        (1, 1, 1)
    );
}

#[test]
fn an_open_whose_result_times_out_gives_up_at_that_timeout() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.silent.insert(MessageType::OPENCHANNEL_RESULT.0);
    let handle = w.start_open(A, 5);
    w.pump();
    w.clear_log();
    w.tick(TIMEOUT + 1);
    // Waiting longer would not change that the result did not come: no CLOSECHANNEL, no
    // GPADL_TEARDOWN; the pages stay quarantined under the GPADL and the entry is free now.
    assert_eq!(w.posted_types(), []);
    assert_eq!(w.d.stats().timeouts, 1);
    assert_eq!(w.d.stats().unresolved_opens, 1);
    assert_eq!(w.d.open_count(), 0);
    assert_eq!(w.d.quarantined_pages(), 4);
    assert_eq!(w.k.status(A, handle.slot).state, ChannelStatus::Failed);
}

#[test]
fn a_quarantined_gpadl_with_a_tainted_page_releases_only_its_clean_pages() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    let gpadl = gpadl_of(&w, 5);
    w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
    // The close's first revoke fails, and the host never confirms the GPADL's teardown.
    w.k.arm(FailPlan {
        at: 1,
        mode: FailMode::Refuse,
    });
    assert_eq!(w.call(A, Request::Close { handle: h }), Response::Closed);
    assert_eq!(w.k.injected.borrow().as_slice(), &[(1, "revoke")]);
    w.k.fail = None;
    w.pump();
    w.tick(TIMEOUT + 1);
    assert_eq!(w.d.open_count(), 0);
    let s = w.d.stats();
    assert_eq!(s.quarantine_revoke_failed, 1);
    assert_eq!(
        s.quarantine_unconfirmed, 3,
        "the tainted page is counted once"
    );
    assert_eq!(s.quarantined_pages, 4);
    assert_eq!(w.d.quarantined_pages(), 4);
    // The late GPADL_TORNDOWN frees the three clean pages; the tainted one stays out.
    w.hv.silent.clear();
    w.hv.torndown(gpadl.0);
    w.pump();
    assert_eq!(w.d.stats().quarantine_released_pages, 3);
    assert_eq!(w.d.quarantined_pages(), 1);
    assert_eq!(w.k.pages_out(), 1);
    assert!(w.k.lifetime_violations().is_empty());
}

/// The fake kernel with every revoke refused on top of its own armed failure.
struct RevokeRefused<'a>(&'a mut FakeKernel);

impl Kernel for RevokeRefused<'_> {
    fn take_page(&mut self) -> Result<PageId, KernelError> {
        self.0.take_page()
    }
    fn return_page(&mut self, page: PageId) -> Result<(), KernelError> {
        self.0.return_page(page)
    }
    fn page_frame(&self, page: PageId) -> Result<u64, KernelError> {
        self.0.page_frame(page)
    }
    fn write_page(&mut self, page: PageId, off: usize, data: &[u8]) -> Result<(), KernelError> {
        self.0.write_page(page, off, data)
    }
    fn read_page(&self, page: PageId, off: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        self.0.read_page(page, off, buf)
    }
    fn zero_page(&mut self, page: PageId) -> Result<(), KernelError> {
        self.0.zero_page(page)
    }
    fn grant(&mut self, page: PageId, c: ClientId, at: usize) -> Result<(), KernelError> {
        self.0.grant(page, c, at)
    }
    fn revoke(&mut self, _: PageId) -> Result<(), KernelError> {
        Err(KernelError::Refused(1))
    }
    fn pool_pages(&self) -> usize {
        self.0.pool_pages()
    }
    fn free_pages(&self) -> usize {
        self.0.free_pages()
    }
    fn unmap_own(&mut self, page: PageId) -> Result<(), KernelError> {
        self.0.unmap_own(page)
    }
    fn map_own(&mut self, page: PageId) -> Result<(), KernelError> {
        self.0.map_own(page)
    }
    fn notify(&mut self, c: ClientId) -> Result<(), KernelError> {
        self.0.notify(c)
    }
    fn ack_irq(&mut self) -> Result<(), KernelError> {
        self.0.ack_irq()
    }
    fn control_read(&self, c: ClientId, off: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        self.0.control_read(c, off, buf)
    }
    fn control_write(&mut self, c: ClientId, off: usize, data: &[u8]) -> Result<(), KernelError> {
        self.0.control_write(c, off, data)
    }
}

#[test]
fn a_slot_that_a_failed_grant_may_have_reached_is_retired_when_its_revoke_fails() {
    let mut done = false;
    for at in 0..50 {
        let mut w = World::new(vec![offer(5, NET, 1, 0), offer(6, NET, 2, 0)]);
        w.connect();
        let handle = w.start_open(A, 5);
        // A grant goes half way (a copy in A's reach), and no revoke succeeds afterwards.
        w.k.arm(FailPlan {
            at,
            mode: FailMode::Partial,
        });
        while w.hv.busy() {
            let mut k = RevokeRefused(&mut w.k);
            w.d.on_interrupt(&mut w.hv, &mut k, w.now);
        }
        let injected = w.k.injected.borrow().first().map(|(_, op)| *op);
        w.k.fail = None;
        match injected {
            Some("grant") => {}
            Some(_) => continue,
            None => break,
        }
        done = true;
        assert_eq!(w.k.status(A, handle.slot).state, ChannelStatus::Failed);
        assert_eq!(w.d.stats().quarantine_revoke_failed, 4);
        // The slot may still map the pages: A's next channel gets another one.
        let h6 = w.open(A, 6);
        assert_ne!(
            h6.slot, handle.slot,
            "the slot was reused (grant failed at op {at})"
        );
        assert!(w.k.lifetime_violations().is_empty());
    }
    assert!(done, "no grant in an open");
}

#[test]
fn a_close_while_the_open_result_is_awaited_closes_when_the_result_arrives() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.silent.insert(MessageType::OPENCHANNEL_RESULT.0);
    let handle = w.start_open(A, 5);
    w.pump();
    let gpadl = gpadl_of(&w, 5);
    assert_eq!(w.call(A, Request::Close { handle }), Response::Closed);
    w.pump();
    w.clear_log();
    // The host opened the channel after all: CLOSECHANNEL, then the GPADL, without waiting
    // for a timeout.
    w.hv.send(&ChannelMessage::OpenChannelResult(OpenChannelResult {
        child_relid: RelId(5),
        openid: gpadl.0,
        status: 0,
    }));
    w.pump();
    assert_eq!(
        w.posted_types(),
        [MessageType::CLOSECHANNEL, MessageType::GPADL_TEARDOWN]
    );
    assert_eq!(w.d.open_count(), 0);
    assert_eq!(w.k.pages_out(), 0);
    assert_eq!(w.d.stats().timeouts, 0);
}

#[test]
fn a_gpadl_torndown_for_a_gpadl_never_created_is_counted_as_hostile() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    let h = w.open(A, 5);
    let gpadl = gpadl_of(&w, 5);
    w.clear_log();
    w.hv.torndown(gpadl.0 + (1 << INDEX_BITS));
    w.hv.torndown(0x7fff_ffff);
    w.pump();
    let s = w.d.stats();
    assert_eq!((s.hostile, s.unknown_gpadl), (2, 2));
    // Nothing else happened: the open channel keeps its pages.
    assert_eq!(w.posted_types(), []);
    assert_eq!(w.k.status(A, h.slot).state, ChannelStatus::Open);
    assert_eq!(w.k.pages_out(), 4);
}
