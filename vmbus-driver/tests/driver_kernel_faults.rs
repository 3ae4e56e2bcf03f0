//! Every kernel operation of open, close, rescind, client fault, unload and the reply timeouts,
//! and of allocating, freeing and tearing down buffers, made to fail, at each position, in each
//! channel state and in three ways (refused, half done, done but reported failed): no page ever
//! goes back to the pool, or to a second client, while a client may still hold a capability to
//! it or the host a GPADL over it, and every page stays accounted for.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{BufferHandle, ChannelHandle, Request, Response};
use vmbus_driver::ids::RelId;
use vmbus_driver::msg::MessageType;

/// Where A's channel (relid 5) is when the failure is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Before {
    /// Offered, not opened (the action is the open).
    Offered,
    /// GPADL_CREATED never comes.
    GpadlPending,
    /// OPENCHANNEL_RESULT never comes.
    OpenPending,
    Open,
    /// Open, with its sub-channel (relid 8) open too: the primary's teardown covers it (R7).
    OpenWithSub,
    /// Closed by the client; GPADL_TORNDOWN never comes.
    TeardownPending,
    /// Open, with a buffer under a GPADL and one without.
    OpenWithBuffers,
    /// Open, with a buffer whose GPADL_CREATED never comes.
    BufferCreating,
}

/// What happens while the failure is armed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Open,
    Close,
    Rescind,
    ClientFault,
    Unload,
    Timeout,
    /// Allocate a buffer under a GPADL and one without, and let the host create the GPADL.
    AllocBuffers,
    /// Free every buffer of A's channel.
    FreeBuffers,
}

const MODES: [FailMode; 3] = [FailMode::Refuse, FailMode::Partial, FailMode::Done];
const BUFFER_STATES: [Before; 2] = [Before::OpenWithBuffers, Before::BufferCreating];
const BUFFER_ACTIONS: [Action; 6] = [
    Action::FreeBuffers,
    Action::Close,
    Action::Rescind,
    Action::ClientFault,
    Action::Unload,
    Action::Timeout,
];
const STATES: [Before; 5] = [
    Before::GpadlPending,
    Before::OpenPending,
    Before::Open,
    Before::OpenWithSub,
    Before::TeardownPending,
];
const ACTIONS: [Action; 5] = [
    Action::Close,
    Action::Rescind,
    Action::ClientFault,
    Action::Unload,
    Action::Timeout,
];

fn world() -> World {
    World::new(vec![
        offer(5, NET, 1, 0),
        offer(6, NET, 2, 0),
        offer(7, HEARTBEAT, 3, 0),
        offer(8, NET, 1, 1),
    ])
}

fn check(w: &World, ctx: &str) {
    let v = w.k.lifetime_violations();
    assert!(v.is_empty(), "{ctx}: {v:?}");
    let held = w.k.free_pages_the_host_holds(&w.hv);
    assert!(
        held.is_empty(),
        "{ctx}: free pages under a live GPADL: {held:?}"
    );
}

/// Pages out of the pool = pages in channels + pages the driver says it quarantined, unless
/// the injected failure itself hid a page from the driver (a take or return that happened but
/// was reported failed).
fn check_accounting(w: &World, ctx: &str) {
    let hidden = w.k.injected.borrow().iter().any(|(_, op)| {
        matches!(*op, "take_page" | "return_page")
            && w.k.fail.is_some_and(|p| p.mode != FailMode::Refuse)
    });
    if hidden {
        return;
    }
    let held: usize = w.d.channels().map(|c| c.pages).sum::<usize>() + w.d.buffer_pages();
    assert_eq!(
        w.k.pages_out(),
        held + w.d.quarantined_pages(),
        "{ctx}: pages out of the pool are not all accounted for"
    );
}

/// Asks for a buffer under a GPADL and one without on A's channel `h`, keeping their handles.
fn alloc_buffers(w: &mut World, h: ChannelHandle) -> Vec<BufferHandle> {
    let mut out = Vec::new();
    for gpadl in [true, false] {
        let req = Request::AllocBuffer {
            handle: h,
            pages: 3,
            gpadl,
        };
        match w.try_call(A, req) {
            Some(Response::BufferCreating { buffer }) => out.push(buffer),
            Some(Response::Buffer(info)) => out.push(info.buffer),
            _ => {}
        }
    }
    out
}

/// Brings A's relid 5 to `state`; returns its handle once one exists, and the handles of
/// its buffers.
fn prepare_buffers(w: &mut World, state: Before) -> (Option<ChannelHandle>, Vec<BufferHandle>) {
    match state {
        Before::OpenWithBuffers | Before::BufferCreating => {
            w.connect();
            let h = w.open(A, 5);
            if state == Before::BufferCreating {
                w.hv.silent.insert(MessageType::GPADL_CREATED.0);
            }
            let b = alloc_buffers(w, h);
            assert_eq!(b.len(), 2);
            w.pump();
            (Some(h), b)
        }
        _ => (prepare(w, state), Vec::new()),
    }
}

/// Brings A's relid 5 to `state`; returns its handle once one exists.
fn prepare(w: &mut World, state: Before) -> Option<ChannelHandle> {
    w.connect();
    let open = open_request(5, 2, 2);
    match state {
        Before::OpenWithBuffers | Before::BufferCreating => unreachable!(),
        Before::Offered => None,
        Before::GpadlPending | Before::OpenPending => {
            let silenced = if state == Before::GpadlPending {
                MessageType::GPADL_CREATED
            } else {
                MessageType::OPENCHANNEL_RESULT
            };
            w.hv.silent.insert(silenced.0);
            let Response::Opening { handle } = w.call(A, open) else {
                panic!("open refused")
            };
            w.pump();
            Some(handle)
        }
        Before::Open => Some(w.open(A, 5)),
        Before::OpenWithSub => {
            let h = w.open(A, 5);
            w.open(A, 8);
            Some(h)
        }
        Before::TeardownPending => {
            let h = w.open(A, 5);
            w.hv.silent.insert(MessageType::GPADL_TORNDOWN.0);
            w.call(A, Request::Close { handle: h });
            w.pump();
            Some(h)
        }
    }
}

fn act(w: &mut World, action: Action, handle: Option<ChannelHandle>, buffers: &[BufferHandle]) {
    match action {
        Action::AllocBuffers => {
            if let Some(h) = handle {
                alloc_buffers(w, h);
                w.pump();
            }
        }
        Action::FreeBuffers => {
            if let Some(handle) = handle {
                for &buffer in buffers {
                    w.try_call(A, Request::FreeBuffer { handle, buffer });
                }
            }
        }
        Action::Open => {
            w.try_call(A, open_request(5, 2, 2));
        }
        Action::Close => {
            if let Some(handle) = handle {
                w.try_call(A, Request::Close { handle });
            }
        }
        Action::Rescind => w.hv.rescind(5),
        Action::ClientFault => w.d.on_client_fault(&mut w.hv, &mut w.k, A, w.now),
        Action::Unload => w.d.unload(&mut w.hv, &mut w.k, w.now),
        Action::Timeout => w.tick(TIMEOUT + 1),
    }
}

/// One run: the failure of operation `at` in `mode` during `action` from `state`. Returns
/// whether the failure was injected (false: the action has fewer operations).
fn run(state: Before, action: Action, at: u64, mode: FailMode) -> bool {
    let ctx = format!("{state:?} / {action:?} / op {at} {mode:?}");
    let mut w = world();
    let (handle, buffers) = prepare_buffers(&mut w, state);
    check(&w, &ctx);
    w.k.arm(FailPlan { at, mode });
    act(&mut w, action, handle, &buffers);
    check(&w, &ctx);
    w.pump();
    check(&w, &ctx);
    // Every reply the host held back now times out; the rest of the run has no failures.
    let injected = w.k.injected.borrow().clone();
    w.k.fail = None;
    for _ in 0..4 {
        w.tick(TIMEOUT + 1);
        check(&w, &ctx);
        w.pump();
        check(&w, &ctx);
    }
    w.k.fail = Some(FailPlan { at, mode });
    w.k.injected.borrow_mut().clone_from(&injected);
    check_accounting(&w, &ctx);
    w.k.fail = None;
    // The pool's pages go to other channels and another client: none may still be reachable
    // from A's old channel.
    w.hv.silent.clear();
    if w.d.connection().state == vmbus_driver::driver::ConnectionState::Connected {
        for (client, relid) in [(B, 7), (A, 6)] {
            let r = w.try_call(client, open_request(relid, 2, 2));
            w.pump();
            check(&w, &format!("{ctx}: reopen {relid}: {r:?}"));
        }
        if w.d.channel(RelId(5)).is_some_and(|c| c.client.is_none()) {
            w.try_call(A, open_request(5, 2, 2));
            w.pump();
            check(&w, &format!("{ctx}: reopen 5"));
        }
    }
    !injected.is_empty()
}

/// Sweeps every operation position of `action` from `state` in every mode; returns the number
/// of failure points injected.
fn sweep(state: Before, action: Action) -> usize {
    let mut points = 0;
    for mode in MODES {
        for at in 0.. {
            if !run(state, action, at, mode) {
                break;
            }
            points += 1;
            assert!(at < 10_000, "runaway sweep");
        }
    }
    points
}

#[test]
fn a_failed_kernel_operation_never_leads_to_reuse() {
    let mut points = sweep(Before::Offered, Action::Open);
    for state in STATES {
        for action in ACTIONS {
            points += sweep(state, action);
        }
    }
    println!("injected failure points covered: {points}");
    assert!(points > 800, "only {points} failure points");
}

#[test]
fn a_failed_kernel_operation_of_a_buffer_never_leads_to_reuse() {
    let mut points = sweep(Before::Open, Action::AllocBuffers);
    for state in BUFFER_STATES {
        for action in BUFFER_ACTIONS {
            points += sweep(state, action);
        }
    }
    println!("injected buffer failure points covered: {points}");
    assert!(points > 400, "only {points} failure points");
}

#[test]
fn a_failed_revoke_quarantines_the_page_for_good_and_retires_the_slot() {
    let mut w = world();
    let h = prepare(&mut w, Before::Open);
    // The close's first operations: reading the request, then revoking the first page.
    w.k.arm(FailPlan {
        at: 1,
        mode: FailMode::Refuse,
    });
    w.call(A, Request::Close { handle: h.unwrap() });
    assert_eq!(w.k.injected.borrow().as_slice(), &[(1, "revoke")]);
    w.k.fail = None;
    w.pump();
    check(&w, "after the close");
    let s = w.d.stats();
    assert_eq!(s.quarantine_revoke_failed, 1);
    assert_eq!(w.d.quarantined_pages(), 1);
    assert_eq!(w.k.pages_out(), 1, "the other three pages went back");
    // A late GPADL_TORNDOWN or anything else never frees it; A's slot 0 is never used again.
    let h2 = w.open(A, 5);
    assert_ne!(h2.slot, h.unwrap().slot, "the retired slot was reused");
    check(&w, "after reopening");
}
