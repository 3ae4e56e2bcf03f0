//! `cargo xtask mutants [ARGS]`: mutation testing (cargo-mutants) of the driver code whose
//! mistakes the tests must notice: the teardown state machine, the open path and the ring
//! reader, against the test packages that exercise them. Extra arguments go to `cargo mutants`
//! as they are (`-j 2`, `--timeout-multiplier 3`, `--in-place`, `--re PATTERN`, `--list`, ...).
//! cargo-mutants is installed from crates.io if it is missing. Not part of CI and not run by
//! `cargo xtask test`: a full run (360 mutants) takes over an hour on two cores. Quicker: test
//! in place with a sample and only the test targets that reach these files, e.g.
//! `cargo xtask mutants --in-place --shard 0/3 --sharding round-robin
//! --cargo-arg=--test=driver_teardown --cargo-arg=--test=ring_rules ...`.

use std::process::{Command, ExitCode};

use crate::image::root;

/// The mutated files, relative to the repository root.
pub(crate) const FILES: &[&str] = &[
    "vmbus-driver/src/driver/teardown.rs",
    "vmbus-driver/src/driver/open.rs",
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
        .args(cargo_args(args))
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
    fn the_mutated_files_exist() {
        for f in FILES {
            assert!(root().join(f).is_file(), "{f} is gone: update FILES");
        }
    }
}
