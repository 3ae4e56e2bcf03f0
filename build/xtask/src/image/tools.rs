//! Running external programs, installing the ones that are missing, and timing steps.
//!
//! Long builds are never silent: [`run`] leaves the child's output on the terminal (cargo shows
//! its own progress bar there), and [`run_logged`], for a build whose output belongs in a log,
//! shows a progress line while it runs.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, IsTerminal as _, Read, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The command line as a person would type it (program and arguments, without the
/// environment), for the line that says what runs.
pub fn shown(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion with its output on the terminal, after a line that says what
/// runs; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: $ {}", shown(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

/// Lines of a failed build's log repeated in the error.
const TAIL_LINES: usize = 30;

/// How often a build that is not on a terminal reports that it is still going.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Runs a long build whose output belongs in `log` rather than on the terminal (the kernel's
/// make, whose compiler warns a few dozen times about code we do not own). Every line goes to
/// the log; the terminal gets a progress line: the latest line, rewritten in place, on a
/// terminal, or a line every ten seconds otherwise (CI). A failure's error carries the log's
/// last lines and its path.
pub fn run_logged(cmd: &mut Command, log: &Path) -> Result<(), String> {
    eprintln!("xtask: $ {}   (output in {})", shown(cmd), log.display());
    let mut file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let (tx, rx) = mpsc::channel::<String>();
    let pipes: [Option<Box<dyn Read + Send>>; 2] = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    let readers: Vec<_> = pipes
        .into_iter()
        .flatten()
        .map(|pipe| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(pipe);
                let mut buf = Vec::new();
                while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    if tx.send(line).is_err() {
                        break;
                    }
                    buf.clear();
                }
            })
        })
        .collect();
    drop(tx);
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut reported = start;
    let mut lines = 0usize;
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    for line in rx {
        // A full disk shows up as a short log; the build itself goes on.
        let _ = writeln!(file, "{line}");
        lines += 1;
        if tty {
            let shown: String = line.chars().take(100).collect();
            eprint!(
                "\r\x1b[K  [{lines} lines, {:.0} s] {shown}",
                start.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        } else if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            eprintln!(
                "  ... {lines} lines after {:.0} s: {line}",
                start.elapsed().as_secs_f64()
            );
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    if tty {
        eprint!("\r\x1b[K");
    }
    for r in readers {
        let _ = r.join();
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {cmd:?}: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let tail: Vec<String> = tail.into();
    Err(format!(
        "{cmd:?} failed: {status}\n{}\n(full log: {})",
        tail.join("\n"),
        log.display()
    ))
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

/// A Python virtual environment at `venv` with `packages` installed from PyPI (`why` says what
/// needs it, for the message when `python3-venv` is missing). The environment is created once;
/// a stamp in it names the packages, so a changed list installs again.
pub fn python_venv(venv: &Path, packages: &[&str], why: &str) -> Result<(), String> {
    let python = venv.join("bin/python");
    if !python.exists() {
        let make = || run(Command::new("python3").args(["-m", "venv"]).arg(venv));
        if make().is_err() {
            let _ = std::fs::remove_dir_all(venv);
            apt_install(&["python3-venv"], why)?;
            make()?;
        }
    }
    let stamp = venv.join(".packages");
    let want = packages.join(" ");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(&want) {
        run(Command::new(&python)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages))
        .map_err(|e| format!("pip could not install {want} from PyPI: {e}"))?;
        std::fs::write(&stamp, &want).map_err(|e| e.to_string())?;
    }
    Ok(())
}
