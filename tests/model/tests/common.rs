//! Helpers shared by the model's integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use lifetime_model::explore::{Report, explore};
use lifetime_model::{Config, LifetimeModel};
use stateright::{Checker, Expectation, Model};

/// The configuration without the host's hostile freedoms.
pub fn polite(channels: usize, clients: usize, pages: usize, offers: u8) -> Config {
    Config {
        channels,
        clients,
        pages,
        offers_per_relid: offers,
        host_silent_after_rescind: false,
        host_refuses_open: false,
        reply_timeouts: false,
        kernel_failures: 0,
        ..Config::default()
    }
}

/// `cfg` where up to `failures` kernel operations (grant, revoke, zero) may fail per run.
pub fn failing(failures: u8, cfg: Config) -> Config {
    Config {
        kernel_failures: failures,
        ..cfg
    }
}

/// The configuration with every host freedom and teardown timeouts.
pub fn hostile(channels: usize, clients: usize, pages: usize, offers: u8) -> Config {
    Config {
        host_silent_after_rescind: true,
        host_refuses_open: true,
        reply_timeouts: true,
        ..polite(channels, clients, pages, offers)
    }
}

/// Runs the explorer exhaustively, prints its figures and findings, returns the report.
pub fn run_explore(cfg: Config) -> Report {
    let r = explore(&LifetimeModel::new(cfg), None);
    println!(
        "explore {cfg:?}: {} states, {} transitions, depth {} in {:.2?}",
        r.states, r.transitions, r.max_depth, r.elapsed
    );
    for f in &r.findings {
        println!("{}", f.render());
    }
    r
}

/// Asserts the exploration found nothing wrong and reached every "sometimes" property except
/// those listed as impossible in this configuration.
pub fn assert_clean(r: &Report, impossible: &[&str]) {
    assert!(
        r.findings.is_empty(),
        "findings: {:?}",
        r.findings.iter().map(|f| &f.what).collect::<Vec<_>>()
    );
    assert!(!r.bounded);
    let mut unreached = r.unreached.clone();
    unreached.sort_unstable();
    let mut expected: Vec<&str> = impossible.to_vec();
    expected.sort_unstable();
    assert_eq!(
        unreached, expected,
        "coverage differs from what this configuration allows"
    );
}

/// Runs stateright's BFS checker exhaustively and returns (unique states, failed property names,
/// sometimes-properties not reached).
pub fn run_stateright(cfg: Config) -> (usize, Vec<&'static str>, Vec<&'static str>) {
    let start = std::time::Instant::now();
    let model = LifetimeModel::new(cfg);
    let props = model.properties();
    let c = model.checker().threads(2).spawn_bfs().join();
    println!(
        "stateright {cfg:?}: {} unique states, {} generated, depth {} in {:.2?}",
        c.unique_state_count(),
        c.state_count(),
        c.max_depth(),
        start.elapsed()
    );
    let mut failed = Vec::new();
    let mut unreached = Vec::new();
    for p in props {
        let found = c.discovery(p.name);
        match (p.expectation, found) {
            (Expectation::Sometimes, None) => unreached.push(p.name),
            (Expectation::Sometimes, Some(_)) | (_, None) => {}
            (_, Some(path)) => {
                println!("stateright: violated {}", p.name);
                for (i, a) in path.into_actions().iter().enumerate() {
                    println!("  {:>3}. {a}", i + 1);
                }
                failed.push(p.name);
            }
        }
    }
    (c.unique_state_count(), failed, unreached)
}
