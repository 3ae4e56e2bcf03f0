//! Conformance of the real driver core (`vmbus_driver::driver`) to the model: every trace up to
//! a depth and seeded random walks, abstract states compared after every step. Needs the
//! `driver` feature: `cargo test -p lifetime-model --features driver --test driver_conformance`.
#![cfg(feature = "driver")]

mod common;

use common::{hostile, polite};
use lifetime_model::conformance::driver_adapter::DriverImplementation;
use lifetime_model::conformance::{all_traces, random_walks};
use lifetime_model::{Config, LifetimeModel};

fn fresh(m: &LifetimeModel) -> DriverImplementation {
    DriverImplementation::new(m).unwrap_or_else(|e| panic!("driver setup: {e}"))
}

/// A polite host (answers everything, no timeouts): every trace of 6 steps over 2 relids and
/// 2 clients, then random walks with re-offers.
#[test]
fn driver_follows_the_model_with_a_polite_host() {
    let m = LifetimeModel::new(Config {
        symmetry: false,
        ..polite(2, 2, 2, 1)
    });
    let steps = all_traces(&m, &fresh(&m), 6).unwrap_or_else(|d| panic!("{d}"));
    println!("all traces to depth 6: {steps} steps");
    let m2 = LifetimeModel::new(Config {
        symmetry: false,
        ..polite(2, 2, 2, 2)
    });
    let walked = random_walks(&m2, || fresh(&m2), 300, 80, 1).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
}

/// A hostile host (silence after rescind, refused opens) and teardown timeouts.
#[test]
fn driver_follows_the_model_with_a_hostile_host() {
    let m = LifetimeModel::new(Config {
        symmetry: false,
        ..hostile(2, 2, 2, 2)
    });
    let walked = random_walks(&m, || fresh(&m), 300, 80, 2).unwrap_or_else(|d| panic!("{d}"));
    println!("random walks: {walked} steps");
}
