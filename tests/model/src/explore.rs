//! An explicit-state explorer over the same model, for what stateright's properties cannot say:
//! deadlock with a reason, and liveness ("every rescind ends in RELID_RELEASED when the host
//! answers") as a check on the graph of system steps.
//!
//! Liveness is checked under a quiescent environment: from every reachable state, if the host
//! offers, rescinds, signals nothing more and the clients ask for nothing more, the system steps
//! alone (the driver's handlers and timers, the host answering) must (a) never cycle, so every
//! fair run of them ends, and (b) end only in settled states ([`properties::settled`]): no
//! rescinded relid waiting for its release, every GPADL the host still has belonging to an open
//! channel, nothing in flight. Together: after the last stimulus, every rescind is released and
//! every GPADL torn down, whatever order the system steps take.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use stateright::{Expectation, Model};

use crate::model::{Action, LifetimeModel};
use crate::properties;
use crate::state::State;

/// What went wrong, with the shortest trace from the initial state that shows it.
#[derive(Clone, Debug)]
pub struct Finding {
    /// The property or check that failed.
    pub what: String,
    /// Actions from the initial state to the offending state.
    pub trace: Vec<Action>,
    /// For a cycle: the system steps that return to the offending state.
    pub cycle: Vec<Action>,
    /// The offending state.
    pub state: State,
}

impl Finding {
    /// The trace as numbered lines, followed by the offending state.
    pub fn render(&self) -> String {
        let mut out = format!("violated: {}\n", self.what);
        for (i, a) in self.trace.iter().enumerate() {
            let _ = writeln!(out, "  {:>3}. {a}", i + 1);
        }
        if !self.cycle.is_empty() {
            out.push_str("  then, forever:\n");
            for a in &self.cycle {
                let _ = writeln!(out, "       {a}");
            }
        }
        let _ = writeln!(out, "  final state: {:?}", self.state);
        out
    }
}

/// Result of an exploration.
#[derive(Clone, Debug)]
pub struct Report {
    /// Distinct states reached.
    pub states: usize,
    /// Transitions taken (including those to already known states).
    pub transitions: usize,
    /// Deepest BFS level reached.
    pub max_depth: usize,
    /// Whether the depth bound cut the exploration short.
    pub bounded: bool,
    /// Wall time.
    pub elapsed: Duration,
    /// Failed properties and checks, one finding each (shortest trace found).
    pub findings: Vec<Finding>,
    /// "sometimes" properties never satisfied.
    pub unreached: Vec<&'static str>,
}

impl Report {
    /// The finding for `what`, if any.
    pub fn finding(&self, what: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.what == what)
    }
}

/// Name of the liveness check in findings.
pub const LIVENESS: &str =
    "under a quiescent environment every rescind is released and every GPADL torn down";
/// Name of the system-cycle check in findings.
pub const LIVELOCK: &str = "system steps alone never cycle (no livelock)";
/// Name of the deadlock check in findings.
pub const DEADLOCK: &str = "every state that has no successor is a proper end (no deadlock)";

/// Explores every state reachable within `max_depth` steps (all of them when `None`) and checks
/// every property, deadlock and liveness.
pub fn explore(model: &LifetimeModel, max_depth: Option<usize>) -> Report {
    let start = Instant::now();
    let props = model.properties();
    let init = model.init();
    let mut states = vec![init];
    let mut index: HashMap<State, u32> = HashMap::from([(init, 0)]);
    let mut parent: Vec<(u32, Option<Action>)> = vec![(0, None)];
    let mut depth: Vec<u16> = vec![0];
    let mut sys_off: Vec<u32> = vec![0];
    let mut sys_to: Vec<(u32, Action)> = Vec::new();
    let mut expanded: Vec<bool> = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut sometimes_hit = vec![false; props.len()];
    let mut transitions = 0usize;
    let mut bounded = false;

    let trace = |parent: &[(u32, Option<Action>)], mut id: u32| {
        let mut t = Vec::new();
        while let (p, Some(a)) = parent[id as usize] {
            t.push(a);
            id = p;
        }
        t.reverse();
        t
    };

    let mut next = 0usize;
    while next < states.len() {
        let id = next as u32;
        let s = states[next];
        next += 1;
        let mut broken = false;
        for (i, p) in props.iter().enumerate() {
            match p.expectation {
                Expectation::Always if !(p.condition)(model, &s) => {
                    broken = true;
                    if !findings.iter().any(|f| f.what == p.name) {
                        findings.push(Finding {
                            what: p.name.to_string(),
                            trace: trace(&parent, id),
                            cycle: Vec::new(),
                            state: s,
                        });
                    }
                }
                Expectation::Sometimes if (p.condition)(model, &s) => sometimes_hit[i] = true,
                _ => {}
            }
        }
        let at_bound = max_depth.is_some_and(|d| usize::from(depth[id as usize]) >= d);
        if at_bound || broken {
            // Not expanded: past the bound, or past a violation (already reported).
            bounded |= at_bound;
            expanded.push(false);
            sys_off.push(sys_to.len() as u32);
            continue;
        }
        expanded.push(true);
        let succ = model.successors(&s);
        if succ.is_empty() && !model.is_end(&s) && !findings.iter().any(|f| f.what == DEADLOCK) {
            findings.push(Finding {
                what: DEADLOCK.to_string(),
                trace: trace(&parent, id),
                cycle: Vec::new(),
                state: s,
            });
        }
        for (a, n) in succ {
            transitions += 1;
            let nid = match index.get(&n) {
                Some(&nid) => nid,
                None => {
                    let nid = states.len() as u32;
                    states.push(n);
                    index.insert(n, nid);
                    parent.push((id, Some(a)));
                    depth.push(depth[id as usize].saturating_add(1));
                    nid
                }
            };
            if a.is_system() {
                sys_to.push((nid, a));
            }
        }
        sys_off.push(sys_to.len() as u32);
    }
    drop(index);

    // Liveness, part (b): every fully expanded state without system steps is settled.
    for (id, s) in states.iter().enumerate() {
        if expanded[id] && sys_off[id] == sys_off[id + 1] && !properties::settled(s) {
            findings.push(Finding {
                what: LIVENESS.to_string(),
                trace: trace(&parent, id as u32),
                cycle: Vec::new(),
                state: *s,
            });
            break;
        }
    }
    // Liveness, part (a): the system-step graph is acyclic (iterative DFS, three colours).
    if let Some((at, cycle)) = find_system_cycle(&sys_off, &sys_to) {
        findings.push(Finding {
            what: LIVELOCK.to_string(),
            trace: trace(&parent, at),
            cycle,
            state: states[at as usize],
        });
    }

    let unreached = props
        .iter()
        .zip(&sometimes_hit)
        .filter(|(p, hit)| p.expectation == Expectation::Sometimes && !**hit)
        .map(|(p, _)| p.name)
        .collect();
    Report {
        states: states.len(),
        transitions,
        max_depth: depth.iter().copied().max().map_or(0, usize::from),
        bounded,
        elapsed: start.elapsed(),
        findings,
        unreached,
    }
}

/// A cycle of system steps: the state it passes through and the actions around it.
fn find_system_cycle(off: &[u32], to: &[(u32, Action)]) -> Option<(u32, Vec<Action>)> {
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let n = off.len() - 1;
    let mut colour = vec![WHITE; n];
    // Stack of (state, next edge index); the grey path is the stack itself.
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for root in 0..n as u32 {
        if colour[root as usize] != WHITE {
            continue;
        }
        colour[root as usize] = GREY;
        stack.push((root, off[root as usize]));
        while let Some(&mut (v, ref mut e)) = stack.last_mut() {
            if *e == off[v as usize + 1] {
                colour[v as usize] = BLACK;
                stack.pop();
                continue;
            }
            let (w, _) = to[*e as usize];
            *e += 1;
            match colour[w as usize] {
                WHITE => {
                    colour[w as usize] = GREY;
                    stack.push((w, off[w as usize]));
                }
                GREY => {
                    // Back edge: the cycle runs from w along the stack to v, then back to w.
                    let from = stack.iter().position(|&(x, _)| x == w).unwrap_or(0);
                    let cycle = stack[from..]
                        .iter()
                        .map(|&(_, e)| to[e as usize - 1].1)
                        .collect();
                    return Some((w, cycle));
                }
                _ => {}
            }
        }
    }
    None
}
