//! `cargo xtask lint [--root] [--pds]`: formatting and clippy, warnings denied, over the root
//! workspace and the PD programs' workspace (`components/pds`, built for `x86_64-unknown-none`,
//! with the same `[workspace.lints]`). One list of commands for CI (`.ci/run` runs this) and for
//! `cargo xtask test`'s PD stage (`--pds`).
//!
//! The root task includes the system table that `cargo xtask image` generates
//! (`SEL4_SYSTEM_RS`). Its code is the same whatever the table holds, so the PD clippy runs
//! against an empty table written by this command ([`SYSTEM_STUB`]): it works on a clean clone,
//! before any image was built, and never depends on a stale `build/out/`. The generated table
//! itself is compiled by every `cargo xtask image`.

use crate::steps::Steps;
use std::path::Path;
use std::process::{Command, ExitCode};

use crate::args::{Arg, ArgError, Args, parse_or_exit};
use crate::image::root;
use crate::image::tools;

/// Usage of `cargo xtask lint`.
pub(crate) const USAGE: &str = "usage: cargo xtask lint [--root] [--pds]
Checks formatting (cargo fmt --check) and runs clippy with warnings denied over the root
workspace (all targets) and the PD programs' workspace components/pds (for
x86_64-unknown-none); also the formatting of the fuzz targets (tests/fuzz). CI runs this.
  --root      only the root workspace (and tests/fuzz's formatting)
  --pds       only components/pds
              (default, or both given: everything)
  -h, --help  this text";

/// Which workspace a check runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workspace {
    /// The repository's root workspace (and the formatting of `tests/fuzz`).
    Root,
    /// `components/pds`.
    Pds,
}

/// One check: `cargo ARGS` in `dir` (relative to the repository root).
#[derive(Debug)]
struct Check {
    name: &'static str,
    workspace: Workspace,
    dir: &'static str,
    args: &'static [&'static str],
}

/// Every check, in the order they run.
const CHECKS: &[Check] = &[
    Check {
        name: "fmt: workspace",
        workspace: Workspace::Root,
        dir: ".",
        args: &["fmt", "--all", "--check"],
    },
    Check {
        name: "fmt: tests/fuzz",
        workspace: Workspace::Root,
        dir: "tests/fuzz",
        // Not `--all`, which would also format the path dependencies (the root workspace).
        args: &["fmt", "--check"],
    },
    Check {
        name: "clippy: workspace",
        workspace: Workspace::Root,
        dir: ".",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    },
    Check {
        name: "fmt: components/pds",
        workspace: Workspace::Pds,
        dir: "components/pds",
        args: &["fmt", "--all", "--check"],
    },
    Check {
        name: "clippy: components/pds",
        workspace: Workspace::Pds,
        dir: "components/pds",
        args: &["clippy", "--workspace", "--", "-D", "warnings"],
    },
];

/// The system table the PD clippy compiles the root task with: no PDs, regions or channels.
pub(crate) const SYSTEM_STUB: &str = "// Written by `cargo xtask lint`: an empty system, so that \
     clippy can check the root task without a built image.\n\
     pub static SYSTEM: System = System { pds: &[], regions: &[], channels: &[] };\n";

/// Parses the arguments after `lint`: the workspaces to check.
pub(crate) fn parse(args: &[String]) -> Result<Vec<Workspace>, ArgError> {
    let mut args = Args::new(args)?;
    let mut chosen = Vec::new();
    while let Some(a) = args.next()? {
        match a {
            Arg::Long("--root") => chosen.push(Workspace::Root),
            Arg::Long("--pds") => chosen.push(Workspace::Pds),
            other => return Err(other.unexpected()),
        }
    }
    if chosen.is_empty() {
        chosen = vec![Workspace::Root, Workspace::Pds];
    }
    Ok(chosen)
}

/// The command of `check`, run from the repository root `root`; `stub` is the empty system
/// table for the root task.
fn command(check: &Check, root: &Path, stub: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(check.args).current_dir(root.join(check.dir));
    if check.workspace == Workspace::Pds {
        // The host's RUSTFLAGS (if any) are not for x86_64-unknown-none.
        cmd.env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env("SEL4_SYSTEM_RS", stub);
    }
    cmd
}

pub fn main(args: &[String]) -> ExitCode {
    let chosen = match parse_or_exit("lint", USAGE, parse(args)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let root = root();
    let stub = root.join("build/out/lint/system.rs");
    if chosen.contains(&Workspace::Pds)
        && let Err(e) = tools::write_if_changed(&stub, SYSTEM_STUB)
    {
        eprintln!("xtask lint: {e}");
        return ExitCode::FAILURE;
    }
    let mut steps = Steps::new("lint");
    for check in CHECKS.iter().filter(|c| chosen.contains(&c.workspace)) {
        steps.run(check.name, &mut command(check, &root, &stub));
    }
    steps.finish("lint")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::line;

    #[test]
    fn workspaces_are_chosen_by_flags() {
        let both = vec![Workspace::Root, Workspace::Pds];
        assert_eq!(parse(&line(&[])), Ok(both.clone()));
        assert_eq!(parse(&line(&["--root", "--pds"])), Ok(both));
        assert_eq!(parse(&line(&["--pds"])), Ok(vec![Workspace::Pds]));
        assert_eq!(parse(&line(&["--pds", "--help"])), Err(ArgError::Help));
        assert_eq!(
            parse(&line(&["--all"])),
            Err(ArgError::Unknown("--all".into()))
        );
    }

    #[test]
    fn every_check_runs_in_an_existing_folder_and_denies_warnings() {
        for c in CHECKS {
            assert!(
                root().join(c.dir).join("Cargo.toml").is_file(),
                "{}",
                c.name
            );
            if c.args[0] == "clippy" {
                assert!(c.args.ends_with(&["--", "-D", "warnings"]), "{}", c.name);
            }
        }
    }

    #[test]
    fn the_pd_clippy_gets_the_empty_system_table() {
        let root = root();
        let stub = Path::new("/x/system.rs");
        let pd = CHECKS
            .iter()
            .find(|c| c.workspace == Workspace::Pds && c.args[0] == "clippy")
            .unwrap();
        let cmd = command(pd, &root, stub);
        assert!(
            cmd.get_envs()
                .any(|(k, v)| k == "SEL4_SYSTEM_RS" && v == Some(stub.as_os_str()))
        );
        assert!(SYSTEM_STUB.contains("pub static SYSTEM: System"));
    }
}
