//! Builds the PD programs and the root task (the separate workspace `components/pds`) for
//! `x86_64-unknown-none`, with the system table the root task includes.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{system, tools};

/// What was built.
#[derive(Debug)]
pub struct Built {
    /// The root task ELF, PD programs embedded.
    pub roottask: PathBuf,
    /// Names of the embedded PD programs.
    pub programs: Vec<String>,
}

const TARGET: &str = "x86_64-unknown-none";

fn cargo_build(
    pds: &Path,
    target_dir: &Path,
    packages: &[&str],
    system_rs: Option<&Path>,
) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(pds)
        .args(["build", "--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", target_dir);
    // The host's RUSTFLAGS (if any) are not for this target.
    cmd.env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for p in packages {
        cmd.args(["-p", p]);
    }
    if let Some(s) = system_rs {
        cmd.env("SEL4_SYSTEM_RS", s);
    }
    tools::run(&mut cmd)
}

/// Builds the programs of the system described at `description`, writes the system table, and
/// builds the root task.
pub fn build(root: &Path, out: &Path, description: &Path) -> Result<Built, String> {
    if tools::have("rustup") {
        // Idempotent; rust-toolchain.toml lists the target, but an existing toolchain may lack it.
        let _ = tools::output(
            Command::new("rustup")
                .args(["target", "add", TARGET])
                .current_dir(root),
        );
    }
    let pds = root.join("components/pds");
    let target_dir = out.join("pds-target");
    let desc = sysdesc::load(description).map_err(|diags| {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        format!(
            "{}: invalid system description:\n{}",
            description.display(),
            lines.join("\n")
        )
    })?;
    let sys = system::from_description(&desc)?;
    let programs = sys.programs();
    let names: Vec<&str> = programs.iter().map(String::as_str).collect();
    cargo_build(&pds, &target_dir, &names, None)?;
    let bin_dir = target_dir.join(TARGET).join("release");
    let system_rs = out.join("system.rs");
    tools::write_if_changed(&system_rs, &sys.render(&bin_dir)?)?;
    cargo_build(&pds, &target_dir, &["roottask"], Some(&system_rs))?;
    let roottask = out.join("roottask.elf");
    std::fs::copy(bin_dir.join("roottask"), &roottask)
        .map_err(|e| format!("copy root task: {e}"))?;
    Ok(Built { roottask, programs })
}
