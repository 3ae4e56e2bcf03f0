//! Per-iteration times of the criterion benchmarks of this folder, kept so that each bench can
//! print its own medians and ratios after criterion's report (shared by `driver` and `vsc`).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

thread_local! {
    /// Per-iteration times (ns) of each benchmark, from its criterion samples.
    static SAMPLES: RefCell<BTreeMap<String, Vec<f64>>> = const { RefCell::new(BTreeMap::new()) };
}

/// Records one criterion sample of `name`: `iters` iterations took `took`.
pub fn record(name: &str, iters: u64, took: Duration) {
    SAMPLES.with(|s| {
        s.borrow_mut()
            .entry(name.to_string())
            .or_default()
            .push(took.as_nanos() as f64 / iters.max(1) as f64);
    });
}

/// (median, min, max) per-iteration ns of a benchmark's samples.
pub fn spread(name: &str) -> Option<(f64, f64, f64)> {
    SAMPLES.with(|s| {
        let s = s.borrow();
        let mut v = s.get(name)?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some((v[v.len() / 2], v[0], v[v.len() - 1]))
    })
}

/// Median per-iteration ns of a benchmark's samples.
#[allow(dead_code, reason = "one bench of the folder uses only the spread")]
pub fn median(name: &str) -> Option<f64> {
    spread(name).map(|(m, _, _)| m)
}
