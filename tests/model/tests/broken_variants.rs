//! The checker must catch real bugs: each deliberately broken driver is explored and the test
//! asserts that the specific invariant it breaks is reported, with a counterexample trace
//! (printed; run with `--nocapture` to read it) that replays in the model.

mod common;

use common::{failing, hostile, polite, run_explore, run_stateright};
use lifetime_model::explore::{LIVENESS, Report};
use lifetime_model::properties::names;
use lifetime_model::{Config, LifetimeModel, Variant};

/// Explores `cfg` with `variant`, without client symmetry so the trace keeps client numbers.
fn broken(cfg: Config, variant: Variant) -> Report {
    run_explore(Config {
        variant,
        symmetry: false,
        ..cfg
    })
}

/// The trace must replay step by step in the model and end in the reported state.
fn assert_replays(cfg: Config, r: &Report, what: &str) {
    let f = r
        .finding(what)
        .unwrap_or_else(|| panic!("not reported: {what}"));
    let model = LifetimeModel::new(cfg);
    let mut s = model.init();
    for a in &f.trace {
        s = model
            .step(&s, *a)
            .unwrap_or_else(|| panic!("trace step {a} not enabled"));
    }
    assert_eq!(s, f.state, "trace does not end in the reported state");
    assert!(!f.trace.is_empty());
}

#[test]
fn revoking_after_teardown_leaves_the_client_reaching_a_channel_it_lost() {
    let cfg = Config {
        variant: Variant::RevokeAfterTeardown,
        symmetry: false,
        ..polite(1, 2, 2, 1)
    };
    let r = broken(cfg, cfg.variant);
    assert_replays(cfg, &r, names::CLIENT_REACH);
    let (_, failed, _) = run_stateright(cfg);
    assert!(
        failed.contains(&names::CLIENT_REACH),
        "stateright missed it: {failed:?}"
    );
}

#[test]
fn releasing_twice_is_reported_as_a_second_relid_released() {
    let cfg = Config {
        variant: Variant::ReleaseTwice,
        symmetry: false,
        ..polite(1, 2, 2, 1)
    };
    let r = broken(cfg, cfg.variant);
    assert_replays(cfg, &r, names::RELEASE_ONCE);
    let (_, failed, _) = run_stateright(cfg);
    assert!(
        failed.contains(&names::RELEASE_ONCE),
        "stateright missed it: {failed:?}"
    );
}

#[test]
fn reusing_a_page_before_torndown_puts_a_live_gpadl_page_in_the_pool() {
    let cfg = Config {
        variant: Variant::ReuseBeforeTorndown,
        symmetry: false,
        ..polite(1, 2, 2, 1)
    };
    let r = broken(cfg, cfg.variant);
    assert_replays(cfg, &r, names::POOL_NO_GPADL);
    let (_, failed, _) = run_stateright(cfg);
    assert!(
        failed.contains(&names::POOL_NO_GPADL),
        "stateright missed it: {failed:?}"
    );
}

#[test]
fn not_taking_events_before_messages_lets_an_old_event_reach_the_next_owner() {
    let cfg = Config {
        variant: Variant::EventsNotTakenBeforeMessages,
        symmetry: false,
        ..polite(1, 2, 2, 2)
    };
    let r = broken(cfg, cfg.variant);
    assert_replays(cfg, &r, names::NO_STRAY_EVENT);
    // The correct driver, same bounds: no stray event.
    let ok = run_explore(Config {
        variant: Variant::Correct,
        ..cfg
    });
    assert!(ok.findings.is_empty());
}

#[test]
fn reusing_a_page_whose_revoke_failed_puts_a_page_a_client_still_maps_in_the_pool() {
    let cfg = Config {
        variant: Variant::ReuseAfterFailedRevoke,
        symmetry: false,
        ..failing(1, polite(1, 2, 2, 1))
    };
    let r = broken(cfg, cfg.variant);
    assert_replays(cfg, &r, names::POOL_UNMAPPED);
    assert_replays(cfg, &r, names::TAINTED_KEPT);
    // stateright explores past the pool state: the page is then granted to the other client
    // while the first may still map it.
    let (_, failed, _) = run_stateright(cfg);
    assert!(
        failed.contains(&names::POOL_UNMAPPED) && failed.contains(&names::SINGLE_HOLDER),
        "stateright missed it: {failed:?}"
    );
    // The correct driver, same bounds and the same failing kernel: nothing found.
    let ok = run_explore(Config {
        variant: Variant::Correct,
        ..cfg
    });
    assert!(ok.findings.is_empty());
}

#[test]
fn closing_before_the_open_result_sends_a_closechannel_the_host_ignores() {
    let cfg = Config {
        variant: Variant::CloseBeforeOpenResult,
        symmetry: false,
        ..polite(1, 2, 2, 1)
    };
    let r = broken(cfg, cfg.variant);
    assert_replays(cfg, &r, names::CLOSE_CONFIRMED);
    let (_, failed, _) = run_stateright(cfg);
    assert!(
        failed.contains(&names::CLOSE_CONFIRMED),
        "stateright missed it: {failed:?}"
    );
    // The correct driver, same bounds, with reply timeouts (an open result that never comes):
    // nothing found.
    let ok = run_explore(Config {
        variant: Variant::Correct,
        ..hostile(1, 2, 2, 1)
    });
    assert!(ok.findings.is_empty());
}

#[test]
fn a_silent_host_without_reply_timeouts_leaves_a_rescind_unreleased() {
    let cfg = Config {
        reply_timeouts: false,
        ..hostile(1, 1, 1, 1)
    };
    let r = run_explore(cfg);
    assert_replays(cfg, &r, LIVENESS);
    // With the timeout the same host cannot stall the release.
    let timed = run_explore(Config {
        reply_timeouts: true,
        ..cfg
    });
    assert!(timed.findings.is_empty());
}
