//! The conformance harness: traces drawn from the model (all traces up to a depth, random
//! walks) drive an implementation; its abstract state is compared after every step.

mod common;

use common::{failing, hostile};
use lifetime_model::conformance::reference::ModelImplementation;
use lifetime_model::conformance::{all_traces, random_walks};
use lifetime_model::{Config, LifetimeModel, Variant};

fn model(variant: Variant) -> LifetimeModel {
    LifetimeModel::new(Config {
        symmetry: false,
        variant,
        ..failing(1, hostile(2, 2, 2, 2))
    })
}

#[test]
fn harness_accepts_an_implementation_that_matches_the_model() {
    let m = model(Variant::Correct);
    let imp = ModelImplementation::new(&m, Variant::Correct);
    let steps = all_traces(&m, &imp, 5).unwrap_or_else(|d| panic!("{d}"));
    println!("all traces to depth 5: {steps} steps");
    assert!(steps > 10_000);
    let walked = random_walks(
        &m,
        || ModelImplementation::new(&m, Variant::Correct),
        200,
        80,
        7,
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert!(walked > 200);
}

/// Each broken driver, run as the implementation against the correct model, must be caught by
/// random walks, with the diverging trace printed.
#[test]
fn harness_catches_every_broken_implementation() {
    let m = model(Variant::Correct);
    for v in Variant::ALL.into_iter().filter(|v| *v != Variant::Correct) {
        let d = random_walks(&m, || ModelImplementation::new(&m, v), 2000, 80, 11)
            .expect_err(&format!("{v}: a broken implementation conformed"));
        println!("{v}: {d}");
        assert!(!d.trace.is_empty());
    }
}
