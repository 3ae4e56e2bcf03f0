//! A sequence of named steps (the stages of `cargo xtask test`, the checks of `cargo xtask lint`):
//! each announced, run, timed and counted, and one exit code for them all.

use std::process::{Command, ExitCode};
use std::time::Instant;

use crate::image::tools;

/// The running count of a command's steps.
pub(crate) struct Steps {
    /// The xtask command, for the progress lines.
    command: &'static str,
    passed: u32,
    failed: u32,
}

impl Steps {
    pub(crate) fn new(command: &'static str) -> Self {
        Self {
            command,
            passed: 0,
            failed: 0,
        }
    }

    /// Runs `cmd` as the step `name` with its output shown; returns whether it succeeded.
    pub(crate) fn run(&mut self, name: &str, cmd: &mut Command) -> bool {
        println!("== xtask {}: {name}", self.command);
        let start = Instant::now();
        let ok = tools::run(cmd).is_ok();
        println!(
            "== xtask {}: {name} {} in {:.1} s",
            self.command,
            if ok { "passed" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
        self.record(ok);
        ok
    }

    /// Counts a step that failed before its command could run.
    pub(crate) fn failed(&mut self) {
        self.record(false);
    }

    fn record(&mut self, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }

    /// Prints `label: N passed, M failed`; success only if nothing failed.
    pub(crate) fn finish(self, label: &str) -> ExitCode {
        println!("{label}: {} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
