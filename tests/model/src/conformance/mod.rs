//! Conformance: drive an implementation with traces drawn from the model (every trace up to a
//! depth, and seeded random walks) and compare its [`AbstractState`] with the model's after every
//! step.
//!
//! An [`Implementation`] receives each model action together with the model's state before and
//! after it, so the harness can play the host and the clients exactly as the model did (which
//! message the host sends, which reply it chose). Actions the model treats as no-ops (a refused
//! open, a stale close) are applied too: the implementation must not change either.

#[cfg(feature = "driver")]
pub mod driver_adapter;
pub mod reference;

use core::fmt;

use crate::abstraction::{AbstractState, abstract_model};
use crate::model::{Action, LifetimeModel};
use crate::state::State;

/// A system under test, reduced to the model's terms.
pub trait Implementation: Clone {
    /// Performs `action`. `before` and `after` are the model's states around it (equal when the
    /// model treats the action as a no-op). An `Err` is a divergence the adapter detected itself
    /// (e.g. the host expected a message the implementation did not send).
    fn apply(&mut self, action: Action, before: &State, after: &State) -> Result<(), String>;
    /// The implementation's abstract state now.
    fn abstract_state(&self) -> AbstractState;
}

/// The first point where the implementation and the model disagree.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// The actions applied, the last one being where they diverged.
    pub trace: Vec<Action>,
    /// The model's abstract state after the last action.
    pub model: AbstractState,
    /// The implementation's abstract state after the last action.
    pub implementation: AbstractState,
    /// The adapter's own complaint, if it raised one.
    pub error: Option<String>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "implementation diverges from the model after:")?;
        for (i, a) in self.trace.iter().enumerate() {
            writeln!(f, "  {:>3}. {a}", i + 1)?;
        }
        if let Some(e) = &self.error {
            writeln!(f, "adapter: {e}")?;
        }
        writeln!(f, "model:          {:?}", self.model)?;
        write!(f, "implementation: {:?}", self.implementation)
    }
}

/// Every action enabled in `s` with the model's result (the same state for a no-op).
fn moves(model: &LifetimeModel, s: &State) -> Vec<(Action, State)> {
    let mut actions = Vec::new();
    model.enabled(s, &mut actions);
    actions
        .into_iter()
        .map(|a| (a, model.step(s, a).unwrap_or(*s)))
        .collect()
}

/// Applies one step to both and compares.
fn step<I: Implementation>(
    model: &LifetimeModel,
    imp: &mut I,
    trace: &[Action],
    before: &State,
    action: Action,
    after: &State,
) -> Result<(), Box<Divergence>> {
    let res = imp.apply(action, before, after);
    let want = abstract_model(model, after);
    let got = imp.abstract_state();
    if res.is_err() || want != got {
        return Err(Box::new(Divergence {
            trace: trace.to_vec(),
            model: want,
            implementation: got,
            error: res.err(),
        }));
    }
    Ok(())
}

/// Checks the initial states agree, then every trace of exactly `depth` actions (or shorter
/// where the model stops), depth first, cloning the implementation at each branch. Returns the
/// number of steps checked.
pub fn all_traces<I: Implementation>(
    model: &LifetimeModel,
    imp: &I,
    depth: usize,
) -> Result<usize, Box<Divergence>> {
    assert!(
        !model.cfg.symmetry,
        "conformance traces need stable client numbers"
    );
    let init = model.init();
    check_initial(model, imp)?;
    let mut trace = Vec::new();
    let mut steps = 0;
    dfs(model, imp, &init, depth, &mut trace, &mut steps)?;
    Ok(steps)
}

fn check_initial<I: Implementation>(model: &LifetimeModel, imp: &I) -> Result<(), Box<Divergence>> {
    let want = abstract_model(model, &model.init());
    let got = imp.abstract_state();
    if want != got {
        return Err(Box::new(Divergence {
            trace: Vec::new(),
            model: want,
            implementation: got,
            error: None,
        }));
    }
    Ok(())
}

fn dfs<I: Implementation>(
    model: &LifetimeModel,
    imp: &I,
    s: &State,
    depth: usize,
    trace: &mut Vec<Action>,
    steps: &mut usize,
) -> Result<(), Box<Divergence>> {
    if depth == 0 {
        return Ok(());
    }
    for (a, n) in moves(model, s) {
        trace.push(a);
        let mut child = imp.clone();
        *steps += 1;
        step(model, &mut child, trace, s, a, &n)?;
        dfs(model, &child, &n, depth - 1, trace, steps)?;
        trace.pop();
    }
    Ok(())
}

/// Runs one given trace from the initial state, comparing after every step, and returns the
/// implementation at its end (for tests that look closer at a particular run). As in the other
/// runs, an action the model treats as a no-op is applied too; one it does not enable is
/// reported as a divergence of the trace itself.
pub fn run_trace<I: Implementation>(
    model: &LifetimeModel,
    mut imp: I,
    trace: &[Action],
) -> Result<I, Box<Divergence>> {
    check_initial(model, &imp)?;
    let mut s = model.init();
    for (i, &a) in trace.iter().enumerate() {
        let mut enabled = Vec::new();
        model.enabled(&s, &mut enabled);
        let n = model.step(&s, a).unwrap_or(s);
        if !enabled.contains(&a) {
            return Err(Box::new(Divergence {
                trace: trace[..=i].to_vec(),
                model: abstract_model(model, &s),
                implementation: imp.abstract_state(),
                error: Some(format!("the model does not enable {a} here")),
            }));
        };
        step(model, &mut imp, &trace[..=i], &s, a, &n)?;
        s = n;
    }
    Ok(imp)
}

/// A small deterministic generator (xorshift64*), so walks replay from their seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value; 0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Next value below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

/// Replays `trace` on the model and a fresh implementation; the divergence, if one occurs.
/// `None` also when the trace is not a run of the model.
fn replay<I: Implementation>(
    model: &LifetimeModel,
    fresh: &impl Fn() -> I,
    trace: &[Action],
) -> Option<Divergence> {
    let mut imp = fresh();
    let mut s = model.init();
    for (i, a) in trace.iter().enumerate() {
        let mut enabled = Vec::new();
        model.enabled(&s, &mut enabled);
        if !enabled.contains(a) {
            return None;
        }
        let n = model.step(&s, *a).unwrap_or(s);
        if let Err(d) = step(model, &mut imp, &trace[..=i], &s, *a, &n) {
            return Some(*d);
        }
        s = n;
    }
    None
}

/// Removes actions from a diverging trace while it still diverges, so the report shows only
/// the steps that matter.
fn shrink<I: Implementation>(
    model: &LifetimeModel,
    fresh: &impl Fn() -> I,
    mut d: Divergence,
) -> Box<Divergence> {
    let mut i = d.trace.len();
    while i > 0 {
        i -= 1;
        if i >= d.trace.len() {
            continue;
        }
        let mut shorter = d.trace.clone();
        shorter.remove(i);
        if let Some(found) = replay(model, fresh, &shorter) {
            d = found;
        }
    }
    Box::new(d)
}

/// `walks` random walks of up to `len` actions each from `fresh()`, seeded from `seed`. A walk
/// stops early at a state with no action. Returns the number of steps checked.
pub fn random_walks<I: Implementation>(
    model: &LifetimeModel,
    fresh: impl Fn() -> I,
    walks: usize,
    len: usize,
    seed: u64,
) -> Result<usize, Box<Divergence>> {
    assert!(
        !model.cfg.symmetry,
        "conformance traces need stable client numbers"
    );
    let mut rng = Rng::new(seed);
    let mut steps = 0;
    for _ in 0..walks {
        let mut imp = fresh();
        check_initial(model, &imp)?;
        let mut s = model.init();
        let mut trace = Vec::new();
        for _ in 0..len {
            let m = moves(model, &s);
            if m.is_empty() {
                break;
            }
            // Unload and faults end most of the interesting behaviour: make them rare so walks
            // go deep (offers, opens, rescinds, re-offers) before ending.
            let mut pick = m[rng.below(m.len())];
            for _ in 0..4 {
                if !matches!(pick.0, Action::Unload | Action::ClientFault(_)) {
                    break;
                }
                pick = m[rng.below(m.len())];
            }
            let (a, n) = pick;
            trace.push(a);
            steps += 1;
            if let Err(d) = step(model, &mut imp, &trace, &s, a, &n) {
                return Err(shrink(model, &fresh, *d));
            }
            s = n;
        }
    }
    Ok(steps)
}
