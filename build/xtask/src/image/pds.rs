//! Builds the PD programs and the root task (the separate workspace `components/pds`) for
//! `x86_64-unknown-none`, with the system table the root task includes.
//!
//! Every program's build script generates its configuration from the description named by
//! `SEL4_SYSTEM_DESCRIPTION` (`pd_build::pd_program`, through `sysdesc::config::build_script`), which this build sets to the
//! system being built: cargo reruns a build script when that variable changes, so a program is
//! rebuilt with each system's values.

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
    description: &Path,
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
    cmd.env(sysdesc::config::DESCRIPTION_ENV, description);
    if let Some(s) = system_rs {
        cmd.env("SEL4_SYSTEM_RS", s);
    }
    tools::run(&mut cmd)
}

/// Builds the programs of the system described at `description`, writes the system table, and
/// builds the root task.
pub fn build(root: &Path, out: &Path, description: &Path) -> Result<Built, String> {
    let pds = root.join("components/pds");
    let target_dir = out.join("pds-target");
    let description = &description
        .canonicalize()
        .map_err(|e| format!("{}: {e}", description.display()))?;
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
    let packages = packages(&pds)?;
    let missing: Vec<&str> = programs
        .iter()
        .filter(|p| !packages.contains(p))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{}: no program in components/pds for {} (a program_image `NAME.elf` is the package NAME there)",
            description.display(),
            missing
                .iter()
                .map(|m| format!("`{m}.elf`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if tools::have("rustup") {
        // Idempotent; rust-toolchain.toml lists the target, but an existing toolchain may lack it.
        let _ = tools::output(
            Command::new("rustup")
                .args(["target", "add", TARGET])
                .current_dir(root),
        );
    }
    let names: Vec<&str> = programs.iter().map(String::as_str).collect();
    cargo_build(&pds, &target_dir, &names, description, None)?;
    let bin_dir = target_dir.join(TARGET).join("release");
    let system_rs = out.join("system.rs");
    tools::write_if_changed(&system_rs, &sys.render(&bin_dir)?)?;
    cargo_build(
        &pds,
        &target_dir,
        &["roottask"],
        description,
        Some(&system_rs),
    )?;
    let roottask = out.join("roottask.elf");
    std::fs::copy(bin_dir.join("roottask"), &roottask)
        .map_err(|e| format!("copy root task: {e}"))?;
    Ok(Built { roottask, programs })
}

/// The package names of the workspace `pds` (each member folder's `name = "..."`).
fn packages(pds: &Path) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(pds).map_err(|e| format!("{}: {e}", pds.display()))?;
    let mut names = Vec::new();
    for e in entries.flatten() {
        let Ok(toml) = std::fs::read_to_string(e.path().join("Cargo.toml")) else {
            continue;
        };
        let name = toml.lines().find_map(|l| {
            let v = l
                .trim()
                .strip_prefix("name")?
                .trim_start()
                .strip_prefix('=')?;
            Some(v.trim().trim_matches('"').to_string())
        });
        names.extend(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The programs a description names.
    fn programs_of(description: &Path) -> Vec<String> {
        let desc = sysdesc::load(description).unwrap_or_else(|d| panic!("{d:?}"));
        system::from_description(&desc).unwrap().programs()
    }

    #[test]
    fn every_program_of_the_repository_systems_is_a_package() {
        let root = super::super::root();
        let names = packages(&root.join("components/pds")).unwrap();
        for system in [
            "system.xml",
            "build/qemu-test.xml",
            "build/qemu-e2e.xml",
            "build/qemu-hyperv.xml",
        ] {
            for p in programs_of(&root.join(system)) {
                assert!(names.contains(&p), "{system}: {p} not in {names:?}");
            }
        }
    }

    #[test]
    fn a_system_whose_programs_do_not_exist_is_refused_by_name() {
        let root = super::super::root();
        let out = std::env::temp_dir().join(format!("xtask-pds-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        // system.xml with two programs that no package provides.
        let xml = std::fs::read_to_string(root.join("system.xml"))
            .unwrap()
            .replace("heartbeat-pd.elf", "no-such-heartbeat.elf")
            .replace("storage-pd.elf", "no-such-storage.elf");
        let vmbus = std::fs::read_to_string(root.join("system.vmbus.xml")).unwrap();
        std::fs::write(out.join("system.xml"), xml).unwrap();
        std::fs::write(out.join("system.vmbus.xml"), vmbus).unwrap();
        let e = build(&root, &out, &out.join("system.xml")).unwrap_err();
        assert!(
            e.contains("`no-such-heartbeat.elf`") && e.contains("`no-such-storage.elf`"),
            "{e}"
        );
        assert!(!e.contains("vmbus-driver-pd"), "{e}");
        let _ = std::fs::remove_dir_all(&out);
    }
}
