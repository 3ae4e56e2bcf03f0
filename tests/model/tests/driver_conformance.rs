//! Conformance of the real driver core (`vmbus_driver::driver`) to the model: every trace up to
//! a depth and seeded random walks, abstract states compared after every step. Needs the
//! `driver` feature: `cargo test -p lifetime-model --features driver --test driver_conformance`.
#![cfg(feature = "driver")]

mod common;

use common::{failing, hostile, polite};
use lifetime_model::abstraction::AbstractMsg;
use lifetime_model::conformance::Implementation;
use lifetime_model::conformance::driver_adapter::DriverImplementation;
use lifetime_model::conformance::{all_traces, random_walks, run_trace};
use lifetime_model::host::Reply;
use lifetime_model::state::Handle;
use lifetime_model::{Action, Config, LifetimeModel};

fn fresh(m: &LifetimeModel) -> DriverImplementation {
    DriverImplementation::new(m).unwrap_or_else(|e| panic!("driver setup: {e}"))
}

fn model(cfg: Config, unload: bool) -> LifetimeModel {
    LifetimeModel::new(Config {
        symmetry: false,
        unload,
        ..cfg
    })
}

/// A polite host (answers everything, no timeouts), no unload: every trace of 5 steps over 2
/// relids and 2 clients, then random walks with re-offers.
#[test]
fn driver_follows_the_model_with_a_polite_host() {
    let m = model(polite(2, 2, 2, 1), false);
    let steps = all_traces(&m, &fresh(&m), 5).unwrap_or_else(|d| panic!("{d}"));
    println!("all traces to depth 5: {steps} steps");
    let m2 = model(polite(2, 2, 2, 2), false);
    let walked = random_walks(&m2, || fresh(&m2), 1000, 80, 1).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
}

/// A hostile host (silence after rescind, refused opens), no timeouts, no unload.
#[test]
fn driver_follows_the_model_with_a_hostile_host() {
    let cfg = Config {
        reply_timeouts: false,
        ..hostile(2, 2, 2, 2)
    };
    let m = model(cfg, false);
    let steps = all_traces(&m, &fresh(&m), 5).unwrap_or_else(|d| panic!("{d}"));
    println!("all traces to depth 5: {steps} steps");
    let walked = random_walks(&m, || fresh(&m), 1000, 80, 2).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
}

/// A hostile host with reply timeouts (late opens fail, unanswered teardowns quarantine), no
/// unload: every trace of 5 steps and long walks with several timeouts in a row.
#[test]
fn driver_follows_the_model_with_a_hostile_host_and_timeouts() {
    let m = model(hostile(2, 2, 2, 2), false);
    let steps = all_traces(&m, &fresh(&m), 5).unwrap_or_else(|d| panic!("{d}"));
    println!("all traces to depth 5: {steps} steps");
    let walked = random_walks(&m, || fresh(&m), 2000, 80, 2).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
}

/// A hostile host with reply timeouts, walks short enough for one or two timeouts.
#[test]
fn driver_follows_the_model_through_single_timeouts() {
    let m = model(hostile(1, 2, 1, 2), false);
    let steps = all_traces(&m, &fresh(&m), 6).unwrap_or_else(|d| panic!("{d}"));
    println!("all traces to depth 6: {steps} steps");
    let walked = random_walks(&m, || fresh(&m), 1000, 30, 4).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
}

/// With unload, including a rescind that crosses the driver's UNLOAD: the driver must post
/// nothing after UNLOAD (the host resets on it), so that rescind is ignored.
#[test]
fn driver_follows_the_model_through_unload() {
    let m = model(polite(2, 2, 2, 1), true);
    let steps = all_traces(&m, &fresh(&m), 5).unwrap_or_else(|d| panic!("{d}"));
    println!("all traces to depth 5: {steps} steps");
    let m2 = model(hostile(2, 2, 2, 2), true);
    let walked = random_walks(&m2, || fresh(&m2), 2000, 80, 3).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
}

/// A kernel that fails one grant, revoke or zeroing of a ring page per run, anywhere, with a
/// hostile host and timeouts: the driver keeps a page whose revoke or zeroing failed out of the
/// pool for good (the harness's kernel also refuses any later zeroing, return or grant of it),
/// and the rest of the teardown goes on as the model says.
#[test]
fn driver_quarantines_for_good_a_page_whose_kernel_operation_failed() {
    let m = model(failing(1, hostile(1, 2, 2, 2)), false);
    let steps = all_traces(&m, &fresh(&m), 6).unwrap_or_else(|d| panic!("{d}"));
    println!("all traces to depth 6: {steps} steps");
    // Deep enough for a failed grant (the eighth step at the earliest).
    let m1 = model(failing(1, hostile(1, 1, 1, 1)), false);
    let steps = all_traces(&m1, &fresh(&m1), 8).unwrap_or_else(|d| panic!("{d}"));
    println!("one client, all traces to depth 8: {steps} steps");
    let walked = random_walks(&m, || fresh(&m), 2000, 40, 5).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
    let m2 = model(failing(1, hostile(2, 2, 2, 2)), true);
    let walked = random_walks(&m2, || fresh(&m2), 2000, 80, 6).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks with unload: {walked} steps");
}

/// An open whose OPENCHANNEL_RESULT is late (the driver gave up on it: the relid is
/// unresolved) while the bus unloads: UNLOAD goes out (the host resets the channel with it) and
/// the late result, crossing UNLOAD, is answered by nothing.
#[test]
fn a_late_open_result_crossing_unload_is_not_answered() {
    let m = model(hostile(1, 1, 1, 1), true);
    let trace = [
        Action::HostOffer(0),
        Action::DriverMessage,
        Action::ClientOpen(0, 0),
        Action::HostReceive(Reply::Answer), // GPADL_HEADER
        Action::DriverMessage,              // OPENCHANNEL
        Action::HostReceive(Reply::Answer), // OPENCHANNEL: success, not yet seen
        Action::DriverTimeout,              // gives up: unresolved
        Action::Unload,                     // UNLOAD at once
        Action::DriverMessage,              // the late result: nothing after UNLOAD
    ];
    let imp = run_trace(&m, fresh(&m), &trace).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(imp.abstract_state().to_host, [AbstractMsg::Unload]);
    let walked = random_walks(&m, || fresh(&m), 5_000, 14, 8).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
}

/// Client 0 opens relid 1; the host opens it; the driver grants the ring pages.
const OPEN_BY_CLIENT_0: [Action; 7] = [
    Action::HostOffer(0),
    Action::DriverMessage,
    Action::ClientOpen(0, 0),
    Action::HostReceive(Reply::Answer), // GPADL_HEADER
    Action::DriverMessage,              // GPADL_CREATED: OPENCHANNEL
    Action::HostReceive(Reply::Answer), // OPENCHANNEL: success
    Action::DriverMessage,              // OPENCHANNEL_RESULT: grant
];

/// The revoke at client 0's close fails, so client 0 may still map the ring pages: after the
/// teardown they are quarantined for good, and client 1's open of the same relid gets the other
/// pool pages (the harness's kernel would refuse a grant of a tainted page).
#[test]
fn a_page_whose_revoke_failed_is_never_granted_again() {
    let m = model(failing(1, polite(1, 2, 2, 1)), false);
    let mut trace = OPEN_BY_CLIENT_0.to_vec();
    trace.extend([
        Action::KernelFault(0),
        Action::ClientClose(0, 0), // revoke fails; CLOSECHANNEL, GPADL_TEARDOWN
        Action::HostReceive(Reply::Answer), // CLOSECHANNEL
        Action::HostReceive(Reply::Answer), // GPADL_TEARDOWN
        Action::DriverMessage,     // GPADL_TORNDOWN: quarantined for good
        Action::ClientOpen(1, 0),
        Action::HostReceive(Reply::Answer),
        Action::DriverMessage,
        Action::HostReceive(Reply::Answer),
        Action::DriverMessage, // client 1 gets the other pages
    ]);
    let imp = run_trace(&m, fresh(&m), &trace).unwrap_or_else(|d| panic!("{d}"));
    let pages = lifetime_model::conformance::driver_adapter::PAGES_PER_CHANNEL;
    assert_eq!(imp.tainted_pages(), pages);
    assert_eq!(imp.pages_mapped_by(0), pages, "client 0 keeps its mapping");
    assert_eq!(imp.pages_mapped_by(1), pages);
    assert_eq!(imp.driver().stats().quarantine_revoke_failed, pages as u64);
    let a = imp.abstract_state();
    assert_eq!((a.pool, a.quarantined), (0, 1));
}

/// Granting the ring pages fails after the host opened the channel: the open fails into the
/// teardown path, which closes the channel (the host confirmed it) and revokes; nothing was
/// left mapped, so GPADL_TORNDOWN returns the pages to the pool.
#[test]
fn a_failed_grant_fails_the_open_into_a_teardown_that_closes_the_channel() {
    let m = model(failing(1, polite(1, 1, 1, 1)), false);
    let mut trace = OPEN_BY_CLIENT_0.to_vec();
    trace.insert(6, Action::KernelFault(0));
    let imp = run_trace(&m, fresh(&m), &trace).unwrap_or_else(|d| panic!("{d}"));
    let a = imp.abstract_state();
    assert_eq!(
        a.to_host,
        [AbstractMsg::CloseChannel(0), AbstractMsg::GpadlTeardown(0)]
    );
    assert_eq!(a.handles[0], [Handle::Stale]);
    assert_eq!(imp.pages_mapped_by(0), 0);
    trace.extend([
        Action::HostReceive(Reply::Answer), // CLOSECHANNEL
        Action::HostReceive(Reply::Answer), // GPADL_TEARDOWN
        Action::DriverMessage,              // GPADL_TORNDOWN
    ]);
    let imp = run_trace(&m, fresh(&m), &trace).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(imp.abstract_state().pool, 1);
    assert_eq!(imp.tainted_pages(), 0);
}

/// Zeroing the pages fails at the end of a confirmed teardown: they may hold the client's data,
/// so they stay out of the pool for good.
#[test]
fn a_page_whose_zeroing_failed_stays_out_of_the_pool() {
    let m = model(failing(1, polite(1, 1, 1, 1)), false);
    let mut trace = OPEN_BY_CLIENT_0.to_vec();
    trace.extend([
        Action::ClientClose(0, 0),
        Action::HostReceive(Reply::Answer), // CLOSECHANNEL
        Action::HostReceive(Reply::Answer), // GPADL_TEARDOWN
        Action::KernelFault(0),
        Action::DriverMessage, // GPADL_TORNDOWN: zeroing fails
    ]);
    let imp = run_trace(&m, fresh(&m), &trace).unwrap_or_else(|d| panic!("{d}"));
    let pages = lifetime_model::conformance::driver_adapter::PAGES_PER_CHANNEL;
    let a = imp.abstract_state();
    assert_eq!((a.pool, a.quarantined), (0, 1));
    assert_eq!(imp.driver().stats().quarantine_zero_failed, pages as u64);
}

/// A client closes while OPENCHANNEL_RESULT is outstanding: the driver revokes at once but
/// sends neither CLOSECHANNEL nor GPADL_TEARDOWN until the host's answer shows the channel open.
#[test]
fn closing_before_the_open_result_waits_for_it_before_closechannel() {
    let m = model(polite(1, 1, 1, 1), false);
    let trace = [
        Action::HostOffer(0),
        Action::DriverMessage,
        Action::ClientOpen(0, 0),
        Action::HostReceive(Reply::Answer), // GPADL_HEADER
        Action::DriverMessage,              // OPENCHANNEL
        Action::ClientClose(0, 0),          // nothing posted yet
        Action::HostReceive(Reply::Answer), // OPENCHANNEL: success
        Action::DriverMessage,              // now CLOSECHANNEL, GPADL_TEARDOWN
    ];
    let imp = run_trace(&m, fresh(&m), &trace[..6]).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        imp.abstract_state().to_host,
        [AbstractMsg::OpenChannel(0)],
        "nothing posted after OPENCHANNEL"
    );
    let imp = run_trace(&m, fresh(&m), &trace).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        imp.abstract_state().to_host,
        [AbstractMsg::CloseChannel(0), AbstractMsg::GpadlTeardown(0)]
    );
}

/// The same open whose result never comes in time: the driver gives up (no CLOSECHANNEL, no
/// GPADL_TEARDOWN, pages quarantined, the relid unopenable); the late result then closes the
/// channel and tears the GPADL down, and its GPADL_TORNDOWN frees the pages.
#[test]
fn an_unanswered_open_leaves_the_relid_unresolved_until_the_late_result() {
    let m = model(hostile(1, 2, 1, 1), false);
    let trace = [
        Action::HostOffer(0),
        Action::DriverMessage,
        Action::ClientOpen(0, 0),
        Action::HostReceive(Reply::Answer), // GPADL_HEADER
        Action::DriverMessage,              // OPENCHANNEL
        Action::HostReceive(Reply::Answer), // OPENCHANNEL: success, not yet seen
        Action::DriverTimeout,              // gives up: unresolved
        Action::ClientOpen(1, 0),           // refused: unresolved
        Action::DriverMessage,              // the late result: CLOSECHANNEL, GPADL_TEARDOWN
        Action::HostReceive(Reply::Answer), // CLOSECHANNEL
        Action::HostReceive(Reply::Answer), // GPADL_TEARDOWN
        Action::DriverMessage,              // GPADL_TORNDOWN: pages back in the pool
        Action::ClientOpen(1, 0),           // now it opens
    ];
    let imp = run_trace(&m, fresh(&m), &trace[..8]).unwrap_or_else(|d| panic!("{d}"));
    let a = imp.abstract_state();
    assert!(a.to_host.is_empty());
    assert_eq!((a.pool, a.quarantined), (0, 1));
    assert_eq!(
        a.handles[1],
        [Handle::None],
        "the unresolved relid refused client 1"
    );
    let imp = run_trace(&m, fresh(&m), &trace).unwrap_or_else(|d| panic!("{d}"));
    let a = imp.abstract_state();
    assert_eq!(a.handles[1], [Handle::Current]);
    assert_eq!(a.quarantined, 0);
}
