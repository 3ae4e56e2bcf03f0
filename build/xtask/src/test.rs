//! `cargo xtask test`: the project's whole test suite, stage by stage.
//!
//! Stages: the workspace's unit, integration and property tests; the loom model of the ring
//! signalling; the driver core against the formal model; Miri over the one crate that touches raw
//! shared memory; the real-kernel test under QEMU, and the lints of the PD programs built for it.
//! `--quick` runs only the first. Each stage is a child process whose output (cargo's progress
//! included) streams to the terminal as it runs; the closing line counts the stages.

use crate::steps::Steps;
use std::path::Path;
use std::process::{Command, ExitCode};

use crate::args::{Arg, ArgError, Args, parse_or_exit};
use crate::image::{root, tools};

/// The nightly toolchain Miri runs on, pinned to a date so that a new nightly cannot break the
/// suite: installed with its `miri` and `rust-src` components by the Miri stage when missing.
/// README's Miri command names the same toolchain.
pub(crate) const MIRI_TOOLCHAIN: &str = "nightly-2026-05-20";

/// One stage: `program args` in the repository root.
#[derive(Debug)]
struct Stage {
    name: &'static str,
    program: &'static str,
    /// A rustup toolchain for cargo (`cargo +TOOLCHAIN ...`); `None`: the pinned one.
    toolchain: Option<&'static str>,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// The stages, in order; `--quick` runs the first.
const STAGES: &[Stage] = &[
    Stage {
        name: "workspace tests",
        program: "cargo",
        toolchain: None,
        // The harness's `--quiet` (a dot per test); cargo itself shows its build progress.
        args: &["test", "--workspace", "--", "--quiet"],
        env: &[],
    },
    Stage {
        name: "loom model of ring signalling",
        program: "cargo",
        toolchain: None,
        args: &[
            "test",
            "-p",
            "vmbus-driver",
            "--test",
            "ring_loom",
            "--release",
            "--",
            "--quiet",
        ],
        env: &[
            ("RUSTFLAGS", "--cfg loom"),
            ("CARGO_TARGET_DIR", "target/loom"),
        ],
    },
    Stage {
        name: "the driver core conforms to the formal lifetime model",
        program: "cargo",
        toolchain: None,
        args: &[
            "test",
            "--release",
            "-p",
            "lifetime-model",
            "--features",
            "driver",
            "--test",
            "driver_conformance",
            "--",
            "--quiet",
        ],
        env: &[],
    },
    Stage {
        name: "miri over shared-mem",
        program: "cargo",
        toolchain: Some(MIRI_TOOLCHAIN),
        args: &[
            "miri",
            "test",
            "-p",
            "shared-mem",
            "--features",
            "heap",
            "--",
            "--quiet",
        ],
        env: &[],
    },
    Stage {
        name: "real seL4 kernel under QEMU",
        program: "cargo",
        toolchain: None,
        args: &["xtask", "qemu-test"],
        env: &[],
    },
    // The PD programs form their own workspace (built for x86_64-unknown-none): the same fmt and
    // clippy commands CI runs (`cargo xtask lint`).
    Stage {
        name: "PD programs: fmt and clippy",
        program: "cargo",
        toolchain: None,
        args: &["xtask", "lint", "--pds"],
        env: &[],
    },
];

/// What `cargo xtask test` was asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TestOpts {
    /// Only the first stage.
    pub quick: bool,
}

/// Usage of `cargo xtask test`, with the stages.
pub(crate) fn usage() -> String {
    let mut s = String::from(
        "usage: cargo xtask test [--quick]
Runs the test suite (everything CI runs after the lints), stage by stage, each stage's output
on the terminal, and closes with the count of stages passed and failed. Stages:
",
    );
    for (i, st) in STAGES.iter().enumerate() {
        s.push_str(&format!("  {}. {}\n", i + 1, st.name));
    }
    s.push_str(&format!(
        "Stage 4 installs the {MIRI_TOOLCHAIN} toolchain with miri and rust-src (rustup) if missing;
stage 5 installs QEMU, make, gcc, binutils, python3-venv (apt-get) and kconfiglib (PyPI) if
missing. The whole suite takes about 20 minutes on two cores.
  --quick     only stage 1 (a few minutes)
  -h, --help  this text"
    ));
    s
}

/// Parses the arguments after `test`.
pub(crate) fn parse(args: &[String]) -> Result<TestOpts, ArgError> {
    let mut args = Args::new(args)?;
    let mut o = TestOpts { quick: false };
    while let Some(a) = args.next()? {
        match a {
            Arg::Long("--quick") => o.quick = true,
            other => return Err(other.unexpected()),
        }
    }
    Ok(o)
}

/// The command of `stage`, run in the repository root `root` (whatever folder `cargo xtask` was
/// started from: the stages name paths relative to it).
fn command(stage: &Stage, root: &Path) -> Command {
    let mut cmd = Command::new(stage.program);
    if let Some(t) = stage.toolchain {
        cmd.arg(format!("+{t}"));
    }
    cmd.args(stage.args).current_dir(root);
    for (k, v) in stage.env {
        cmd.env(k, v);
    }
    cmd
}

/// Whether [`MIRI_TOOLCHAIN`] is installed with Miri and the standard library's source.
fn miri_installed() -> bool {
    let miri = Command::new("cargo")
        .args([&format!("+{MIRI_TOOLCHAIN}"), "miri", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let sysroot = Command::new("rustc")
        .args([&format!("+{MIRI_TOOLCHAIN}"), "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    miri && sysroot.is_some_and(|s| Path::new(&s).join("lib/rustlib/src/rust/library").is_dir())
}

/// Installs [`MIRI_TOOLCHAIN`] with `miri` and `rust-src` when missing (rustup), then builds
/// Miri's sysroot (`cargo miri setup`, a no-op once built), each with its output shown.
fn prepare_miri(root: &Path) -> Result<(), String> {
    if !miri_installed() {
        println!("== xtask test: installing {MIRI_TOOLCHAIN} with miri and rust-src (for Miri)");
        tools::run(Command::new("rustup").args([
            "toolchain",
            "install",
            MIRI_TOOLCHAIN,
            "--profile",
            "minimal",
            "--component",
            "miri,rust-src",
        ]))?;
    }
    println!("== xtask test: Miri's sysroot (built once)");
    tools::run(
        Command::new("cargo")
            .args([&format!("+{MIRI_TOOLCHAIN}"), "miri", "setup"])
            .current_dir(root),
    )
}

pub fn main(args: &[String]) -> ExitCode {
    let usage = usage();
    let opts = match parse_or_exit("test", &usage, parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let root = root();
    let stages = if opts.quick { &STAGES[..1] } else { STAGES };
    let mut steps = Steps::new("test");
    for stage in stages {
        if stage.toolchain == Some(MIRI_TOOLCHAIN)
            && let Err(e) = prepare_miri(&root)
        {
            eprintln!("== xtask test: {}: cannot set up Miri: {e}", stage.name);
            steps.failed();
            continue;
        }
        steps.run(stage.name, &mut command(stage, &root));
    }
    steps.finish("stages")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::line;

    #[test]
    fn help_does_not_start_the_suite() {
        assert_eq!(parse(&line(&["--help"])), Err(ArgError::Help));
        assert_eq!(parse(&line(&["-h"])), Err(ArgError::Help));
        assert_eq!(parse(&line(&["--quick", "--help"])), Err(ArgError::Help));
        // main returns at once, successfully (the suite would take minutes and fail in a test).
        assert_eq!(main(&line(&["--help"])), ExitCode::SUCCESS);
        assert!(usage().contains("miri over shared-mem"));
    }

    #[test]
    fn unknown_arguments_are_errors() {
        assert_eq!(
            parse(&line(&["--quik"])),
            Err(ArgError::Unknown("--quik".into()))
        );
        assert_eq!(
            parse(&line(&["quick"])),
            Err(ArgError::Unexpected("quick".into()))
        );
        assert_eq!(
            parse(&line(&["--quick=yes"])),
            Err(ArgError::NoValueExpected("--quick".into()))
        );
        assert_eq!(main(&line(&["--quik"])), ExitCode::from(2));
        assert_eq!(parse(&line(&["--quick"])), Ok(TestOpts { quick: true }));
        assert_eq!(parse(&line(&[])), Ok(TestOpts { quick: false }));
    }

    #[test]
    fn stages_run_in_the_root_and_miri_on_the_pinned_nightly() {
        let root = root();
        let miri = STAGES.iter().find(|s| s.name.starts_with("miri")).unwrap();
        let cmd = command(miri, &root);
        assert_eq!(cmd.get_current_dir(), Some(root.as_path()));
        let first = cmd.get_args().next().unwrap();
        assert_eq!(first, format!("+{MIRI_TOOLCHAIN}").as_str());
        // A dated nightly, so the suite does not move with the nightly channel.
        let date = MIRI_TOOLCHAIN.strip_prefix("nightly-").unwrap();
        assert!(date.len() == 10 && date.bytes().filter(|b| *b == b'-').count() == 2);
        // README's Miri command names the same toolchain.
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        assert!(readme.contains(&format!("cargo +{MIRI_TOOLCHAIN} miri test")));
        // Nothing asks for cargo's --quiet, which hides the build's progress.
        for s in STAGES {
            let before_harness = s.args.split(|a| *a == "--").next().unwrap();
            assert!(!before_harness.contains(&"--quiet"), "{}", s.name);
        }
    }
}
