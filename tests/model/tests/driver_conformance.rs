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
