//! Exhaustive checks of the correct driver: every reachable state of each bounded configuration
//! satisfies every invariant, no run deadlocks, and every rescind ends in a release.

mod common;

use common::{assert_clean, failing, hostile, polite, run_explore, run_stateright};

const REOFFER: &str = "sometimes: a re-offered relid is open again";
const QUARANTINE: &str = "sometimes: a page is quarantined";
const POOL_EMPTY: &str = "sometimes: the pool is empty while a relid is free";
const BOTH_CLIENTS: &str = "sometimes: both clients hold a channel";
const REVOKE_FAILED: &str = "sometimes: a client keeps a page whose revoke failed";
const UNRESOLVED: &str = "sometimes: a relid is left unresolved";

/// 2 channels x 2 clients x 2 pages, each relid offered once, polite host, unload. Both
/// checkers must agree on the state count.
#[test]
fn two_channels_two_clients_keep_every_invariant_in_every_state() {
    let cfg = polite(2, 2, 2, 1);
    let r = run_explore(cfg);
    // One offer per relid: no re-offer; a polite host: no quarantine, no unanswered open; 2
    // pages for 2 relids; a kernel that never fails.
    assert_clean(
        &r,
        &[REOFFER, QUARANTINE, POOL_EMPTY, REVOKE_FAILED, UNRESOLVED],
    );
    let (states, failed, unreached) = run_stateright(cfg);
    assert!(failed.is_empty(), "stateright found violations: {failed:?}");
    assert_eq!(
        states, r.states,
        "the two checkers disagree on the state space"
    );
    assert_eq!(unreached.len(), 5);
}

/// 2 channels x 2 clients sharing 1 page, with a host that may refuse opens and stay silent
/// after a rescind, and teardown timeouts: pool exhaustion and quarantine.
#[test]
fn hostile_host_with_one_page_never_breaks_the_lifetime_rule() {
    let r = run_explore(hostile(2, 2, 1, 1));
    // One page: never two channels held at once.
    assert_clean(&r, &[REOFFER, BOTH_CLIENTS, REVOKE_FAILED]);
}

/// 1 channel x 2 clients, the relid offered twice (rescind, release, re-offer, the other client
/// opens it): events of the old incarnation must not reach the new owner.
#[test]
fn reoffered_relid_never_leaks_to_its_next_owner() {
    let r = run_explore(hostile(1, 2, 2, 2));
    assert_clean(&r, &[BOTH_CLIENTS, REVOKE_FAILED]);
}

/// 1 channel x 2 clients x 2 pages, re-offers, every host freedom, and one kernel operation
/// (grant, revoke or zero) that may fail anywhere: a page whose revoke or zeroing failed is
/// never back in the pool or granted to anyone while its old holder may still map it, and the
/// lifetime rule holds around it.
#[test]
fn a_failed_kernel_operation_never_leads_to_reuse() {
    let r = run_explore(failing(1, hostile(1, 2, 2, 2)));
    // One channel: both clients hold a channel at once only through a page a client kept.
    assert_clean(&r, &[]);
}

/// 2 channels x 1 client with every host freedom (about 2 million states; run with
/// `cargo test --release -p lifetime-model -- --ignored`).
#[test]
#[ignore = "about 20 s and 1.3 GiB in release, longer in the test profile"]
fn two_channels_hostile_host_exhaustive() {
    let r = run_explore(hostile(2, 1, 2, 1));
    assert_clean(&r, &[REOFFER, BOTH_CLIENTS, REVOKE_FAILED]);
}

/// 2 channels x 2 clients x 2 pages with one kernel failure, polite host (about 4 million
/// states).
#[test]
#[ignore = "about 35 s and 2.5 GiB in release"]
fn two_channels_two_clients_kernel_failure_exhaustive() {
    let r = run_explore(failing(1, polite(2, 2, 2, 1)));
    assert_clean(&r, &[REOFFER, UNRESOLVED]);
}

/// 2 channels x 2 clients sharing 1 page, every host freedom, one kernel failure.
#[test]
#[ignore = "about 8 s in release, longer in the test profile"]
fn hostile_host_one_page_kernel_failure_exhaustive() {
    let r = run_explore(failing(1, hostile(2, 2, 1, 1)));
    assert_clean(&r, &[REOFFER, BOTH_CLIENTS]);
}

/// 2 channels x 2 clients, each relid offered twice (about 4 million states).
#[test]
#[ignore = "about 45 s and 2.6 GiB in release"]
fn two_channels_two_clients_reoffers_exhaustive() {
    let r = run_explore(polite(2, 2, 2, 2));
    assert_clean(&r, &[QUARANTINE, POOL_EMPTY, REVOKE_FAILED, UNRESOLVED]);
}
