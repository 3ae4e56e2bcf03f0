//! `cargo xtask test`: the project's whole test suite, stage by stage.
//!
//! Stages: the workspace's unit, integration and property tests; the loom model of the ring
//! signalling; the driver core against the formal model; Miri over the one crate that touches raw
//! shared memory; the real-kernel test under QEMU, and the lints of the PD programs built for it.
//! `--quick` runs only the first. Each stage is a child process so its output streams as it runs;
//! the closing line counts the stages.

use std::process::{Command, ExitCode};
use std::time::Instant;

struct Stage {
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const STAGES: &[Stage] = &[
    Stage {
        name: "workspace tests",
        program: "cargo",
        args: &["test", "--workspace", "--quiet"],
        env: &[],
    },
    Stage {
        name: "loom model of ring signalling",
        program: "cargo",
        args: &[
            "test",
            "--quiet",
            "-p",
            "vmbus-driver",
            "--test",
            "ring_loom",
            "--release",
        ],
        env: &[
            ("RUSTFLAGS", "--cfg loom"),
            ("CARGO_TARGET_DIR", "target/loom"),
        ],
    },
    Stage {
        name: "the driver core conforms to the formal lifetime model",
        program: "cargo",
        args: &[
            "test",
            "--quiet",
            "--release",
            "-p",
            "lifetime-model",
            "--features",
            "driver",
            "--test",
            "driver_conformance",
        ],
        env: &[],
    },
    Stage {
        name: "miri over shared-mem",
        program: "cargo",
        args: &[
            "+nightly",
            "miri",
            "test",
            "--quiet",
            "-p",
            "shared-mem",
            "--features",
            "heap",
        ],
        env: &[],
    },
    Stage {
        name: "real seL4 kernel under QEMU",
        program: "cargo",
        args: &["xtask", "qemu-test"],
        env: &[],
    },
    // The PD programs form their own workspace (built for x86_64-unknown-none); the root task
    // includes the system table that `qemu-test` just generated.
    Stage {
        name: "PD programs: fmt and clippy",
        program: "bash",
        args: &[
            "-c",
            "cd components/pds && cargo fmt --all --check && \
             SEL4_SYSTEM_RS=\"$PWD/../../build/out/system.rs\" cargo clippy --workspace --quiet -- -D warnings",
        ],
        env: &[],
    },
];

fn run_stage(stage: &Stage) -> bool {
    println!("== xtask test: {}", stage.name);
    let start = Instant::now();
    let mut cmd = Command::new(stage.program);
    cmd.args(stage.args);
    for (k, v) in stage.env {
        cmd.env(k, v);
    }
    let ok = match cmd.status() {
        Ok(status) => status.success(),
        Err(e) => {
            eprintln!("cannot start {}: {e}", stage.program);
            false
        }
    };
    println!(
        "== xtask test: {} {} in {:.1} s",
        stage.name,
        if ok { "passed" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    ok
}

/// Miri needs the nightly toolchain's `miri` component; install it if absent (idempotent).
fn prepare_miri() -> bool {
    Command::new("rustup")
        .args([
            "component",
            "add",
            "miri",
            "rust-src",
            "--toolchain",
            "nightly",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn main(args: &[String]) -> ExitCode {
    let quick = args.iter().any(|a| a == "--quick");
    let stages = if quick { &STAGES[..1] } else { STAGES };
    let (mut passed, mut failed) = (0, 0);
    for stage in stages {
        if stage.name.starts_with("miri") && !prepare_miri() {
            eprintln!("cannot install miri for the nightly toolchain");
            failed += 1;
            continue;
        }
        if run_stage(stage) {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    println!("stages: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
