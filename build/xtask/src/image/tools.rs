//! Running external programs, installing the ones that are missing, and timing steps.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs a command to completion; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Runs a command and returns its standard output.
pub fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| format!("{cmd:?}: {e}"))
}

/// Whether a program is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs Debian packages (`apt-get`), saying clearly what is missing when that cannot work.
pub fn apt_install(packages: &[&str], why: &str) -> Result<(), String> {
    eprintln!("xtask: installing {} ({why})", packages.join(" "));
    if !have("apt-get") {
        return Err(format!(
            "{why}: install the Debian packages {} (no apt-get here)",
            packages.join(" ")
        ));
    }
    let sudo: &[&str] = if output(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0") {
        &[]
    } else {
        &["sudo"]
    };
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.to_vec();
        all.push("apt-get");
        all.extend_from_slice(args);
        let mut c = Command::new(all[0]);
        c.args(&all[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut c)
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend_from_slice(packages);
    apt(&args).map_err(|e| format!("{why}: could not install {}: {e}", packages.join(" ")))
}

/// Makes sure a program exists, installing its Debian package when it does not.
pub fn ensure(program: &str, package: &str, why: &str) -> Result<(), String> {
    if have(program) {
        return Ok(());
    }
    apt_install(&[package], why)?;
    if have(program) {
        Ok(())
    } else {
        Err(format!(
            "{program} still missing after installing {package}"
        ))
    }
}

/// Times named steps and prints them.
#[derive(Debug, Default)]
pub struct Timings(Vec<(String, f64)>);

impl Timings {
    /// Runs one step and records its duration.
    pub fn step<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        eprintln!("xtask: {name} ...");
        let t = Instant::now();
        let r = f();
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "xtask: {name}: {secs:.1} s{}",
            if r.is_err() { " (failed)" } else { "" }
        );
        self.0.push((name.to_string(), secs));
        r
    }

    /// The recorded steps, for the summary.
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|(n, s)| format!("  {n:<28} {s:>6.1} s\n"))
            .collect()
    }
}

/// Writes a file only when its content changes, so make and cargo see no spurious updates.
pub fn write_if_changed(path: &Path, content: &str) -> Result<bool, String> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, content).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(true)
}
