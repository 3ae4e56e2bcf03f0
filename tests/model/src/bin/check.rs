//! Command-line model checker: `cargo run --release -p lifetime-model --bin check -- --help`.

use std::process::ExitCode;
use std::time::Instant;

use lifetime_model::explore::explore;
use lifetime_model::{Config, LifetimeModel, Variant};
use stateright::{Checker, Model};

const USAGE: &str = "\
check the channel-lifetime model

usage: check [options]
  --channels N      relids the host may offer (1-3, default 2)
  --clients N       client PDs (1-3, default 2)
  --pages N         ring-page pool size (1-4, default 2)
  --offers N        offers per relid, re-offers after release (default 1)
  --depth N         stop exploring at N steps (default: exhaustive)
  --host-freedoms   host may stay silent after a rescind and refuse opens; teardown timeouts on
  --kernel-failures N
                    kernel operations (grant, revoke, zero) that may fail per run (0-3, default 0)
  --no-unload       no bus unload
  --no-symmetry     do not merge states that differ only by client numbering
  --variant NAME    correct | revoke-after-teardown | release-twice | reuse-before-torndown |
                    events-not-taken-before-messages | reuse-after-failed-revoke |
                    close-before-open-result (default correct)
  --engine E        explore (own BFS: safety, deadlock, liveness) | stateright (BFS) | both
                    (default explore)";

fn parse() -> Result<(Config, Option<usize>, String), String> {
    let mut cfg = Config {
        offers_per_relid: 1,
        host_silent_after_rescind: false,
        host_refuses_open: false,
        reply_timeouts: false,
        kernel_failures: 0,
        ..Config::default()
    };
    let mut depth = None;
    let mut engine = "explore".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        let num = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--channels" => cfg.channels = num(val()?)?,
            "--clients" => cfg.clients = num(val()?)?,
            "--pages" => cfg.pages = num(val()?)?,
            "--offers" => cfg.offers_per_relid = num(val()?)?.min(255) as u8,
            "--depth" => depth = Some(num(val()?)?),
            "--host-freedoms" => {
                cfg.host_silent_after_rescind = true;
                cfg.host_refuses_open = true;
                cfg.reply_timeouts = true;
            }
            "--kernel-failures" => cfg.kernel_failures = num(val()?)?.min(255) as u8,
            "--no-unload" => cfg.unload = false,
            "--no-symmetry" => cfg.symmetry = false,
            "--variant" => {
                let v = val()?;
                cfg.variant = Variant::ALL
                    .into_iter()
                    .find(|x| x.to_string() == v)
                    .ok_or(format!("unknown variant {v}"))?;
            }
            "--engine" => engine = val()?,
            "--help" | "-h" => return Err(USAGE.to_string()),
            _ => return Err(format!("unknown option {a}\n{USAGE}")),
        }
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok((cfg, depth, engine))
}

fn main() -> ExitCode {
    let (cfg, depth, engine) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!("config: {cfg:?}, depth bound: {depth:?}");
    let mut failed = false;
    if engine == "explore" || engine == "both" {
        let r = explore(&LifetimeModel::new(cfg), depth);
        println!(
            "explore: {} states, {} transitions, depth {}{} in {:.2?}",
            r.states,
            r.transitions,
            r.max_depth,
            if r.bounded {
                " (bounded)"
            } else {
                " (exhaustive)"
            },
            r.elapsed
        );
        for f in &r.findings {
            println!("{}", f.render());
        }
        for u in &r.unreached {
            println!("not reached: {u}");
        }
        failed |= !r.findings.is_empty();
    }
    if engine == "stateright" || engine == "both" {
        let start = Instant::now();
        let mut b = LifetimeModel::new(cfg).checker().threads(2);
        if let Some(d) = depth {
            b = b.target_max_depth(d);
        }
        let c = b.spawn_bfs().join();
        println!(
            "stateright: {} unique states, {} generated, depth {} in {:.2?}",
            c.unique_state_count(),
            c.state_count(),
            c.max_depth(),
            start.elapsed()
        );
        let model = LifetimeModel::new(cfg);
        for p in model.properties() {
            let found = c.discovery(p.name);
            let bad = found.is_some() == p.expectation.discovery_is_failure();
            if let (Some(path), true) = (&found, p.expectation.discovery_is_failure()) {
                println!("violated: {}", p.name);
                for (i, a) in path.clone().into_actions().iter().enumerate() {
                    println!("  {:>3}. {a}", i + 1);
                }
            } else if bad {
                println!("not reached: {}", p.name);
            }
            failed |= bad && p.expectation.discovery_is_failure();
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
