//! `cargo xtask mutants [-- ARGS]`: mutation testing (cargo-mutants) of the driver code whose
//! mistakes the tests must notice: the teardown state machine and the channel states it moves
//! through, the channel table, the page pool, the open path and the ring reader, against the test packages that exercise them. The arguments after `--` go to
//! `cargo mutants` as they are (`-j 2`, `--timeout-multiplier 3`, `--in-place`, `--re PATTERN`,
//! `--list`, ...).
//! cargo-mutants is installed from crates.io if it is missing. Not part of CI and not run by
//! `cargo xtask test`: a full run (448 mutants) takes hours on two cores. Quicker: test
//! in place with a sample and only the test targets that reach these files, e.g.
//! `cargo xtask mutants -- --in-place --shard 0/3 --sharding round-robin
//! --cargo-arg=--test=driver_teardown --cargo-arg=--test=ring_rules ...`.

use std::process::{Command, ExitCode};

use crate::args::{Arg, ArgError, Args, parse_or_exit};
use crate::image::root;

/// Usage of `cargo xtask mutants`.
pub(crate) const USAGE: &str = "usage: cargo xtask mutants [-- CARGO-MUTANTS-ARGS...]
Mutation testing (cargo-mutants) of the teardown state machine, the channel states and table,
the page pool, the open path and the ring reader against the vmbus-driver and sim-system tests. Not in CI and not in `cargo xtask test`:
a full run takes hours on two cores. Installs cargo-mutants from crates.io if missing.
  -- ARGS...   passed to `cargo mutants` as they are, e.g. `-- -j 2 --in-place --shard 0/3`
               (`-- --help` shows cargo-mutants' own options)
  -h, --help   this text";

/// Parses the arguments after `mutants`: only what follows `--`, which is returned.
pub(crate) fn parse(args: &[String]) -> Result<Vec<String>, ArgError> {
    let mut args = Args::new(args)?;
    let mut extra = Vec::new();
    while let Some(a) = args.next()? {
        match a {
            Arg::Rest(rest) => extra.extend_from_slice(rest),
            other => return Err(other.unexpected()),
        }
    }
    Ok(extra)
}

/// The mutated files, relative to the repository root.
pub(crate) const FILES: &[&str] = &[
    "vmbus-driver/src/driver/teardown.rs",
    "vmbus-driver/src/driver/open.rs",
    "vmbus-driver/src/driver/state.rs",
    "vmbus-driver/src/driver/channels.rs",
    "vmbus-driver/src/driver/pool.rs",
    "vmbus-driver/src/ring/reader.rs",
];

/// The packages whose tests must catch each mutant.
pub(crate) const TEST_PACKAGES: &[&str] = &["vmbus-driver", "sim-system"];

/// The arguments of `cargo` for a run with `extra` passed through.
pub(crate) fn cargo_args(extra: &[String]) -> Vec<String> {
    let mut args = vec!["mutants".to_string()];
    for f in FILES {
        args.extend(["--file".to_string(), (*f).to_string()]);
    }
    for p in TEST_PACKAGES {
        args.extend(["--test-package".to_string(), (*p).to_string()]);
    }
    args.extend(extra.iter().cloned());
    args
}

fn installed() -> bool {
    Command::new("cargo")
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn main(args: &[String]) -> ExitCode {
    let extra = match parse_or_exit("mutants", USAGE, parse(args)) {
        Ok(e) => e,
        Err(code) => return code,
    };
    if !installed() {
        println!("== xtask mutants: installing cargo-mutants");
        let ok = Command::new("cargo")
            .args(["install", "--locked", "cargo-mutants"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot install cargo-mutants");
            return ExitCode::FAILURE;
        }
    }
    match Command::new("cargo")
        .args(cargo_args(&extra))
        .current_dir(root())
        .status()
    {
        // cargo-mutants' exit code says what it found (2: missed mutants, 3: timeouts, ...).
        Ok(s) => ExitCode::from(s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)),
        Err(e) => {
            eprintln!("cannot start cargo mutants: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_and_test_package_is_named_and_extra_arguments_come_last() {
        let extra = ["-j".to_string(), "2".to_string()];
        let args = cargo_args(&extra);
        assert_eq!(
            args,
            [
                "mutants",
                "--file",
                "vmbus-driver/src/driver/teardown.rs",
                "--file",
                "vmbus-driver/src/driver/open.rs",
                "--file",
                "vmbus-driver/src/driver/state.rs",
                "--file",
                "vmbus-driver/src/driver/channels.rs",
                "--file",
                "vmbus-driver/src/driver/pool.rs",
                "--file",
                "vmbus-driver/src/ring/reader.rs",
                "--test-package",
                "vmbus-driver",
                "--test-package",
                "sim-system",
                "-j",
                "2",
            ]
        );
    }

    #[test]
    fn only_arguments_after_the_separator_pass_through() {
        let line = crate::args::line;
        assert_eq!(
            parse(&line(&["--", "-j", "2", "--help"])),
            Ok(line(&["-j", "2", "--help"]))
        );
        assert_eq!(parse(&line(&[])), Ok(vec![]));
        assert_eq!(parse(&line(&["--help", "--", "-j"])), Err(ArgError::Help));
        assert_eq!(
            parse(&line(&["-j", "2"])),
            Err(ArgError::Unknown("-j".into()))
        );
        assert_eq!(
            parse(&line(&["--in-place"])),
            Err(ArgError::Unknown("--in-place".into()))
        );
    }

    #[test]
    fn the_mutated_files_exist() {
        for f in FILES {
            assert!(root().join(f).is_file(), "{f} is gone: update FILES");
        }
    }
}
