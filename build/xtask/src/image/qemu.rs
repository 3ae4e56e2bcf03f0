//! Boots the image under QEMU (software CPU) with a bounded run time, keeps the serial log in
//! `build/out/serial.log`, and reads the verdict from QEMU's exit status: the root task writes
//! to the `isa-debug-exit` port, which makes QEMU exit with `(value << 1) | 1`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Image, tools};

/// Value the root task writes for a passing run (QEMU then exits with 33).
pub const PASS_VALUE: i32 = 0x10;
/// The line the root task prints after every check passed.
pub const PASS_LINE: &str = "qemu-test: PASS";

/// The root task's first line.
const ROOT_FIRST_LINE: &str = "root: seL4 root task started";

/// Options of `qemu` and `qemu-test`.
#[derive(Debug)]
pub struct Opts {
    /// Longest run before QEMU is killed.
    pub timeout: Duration,
}

impl Default for Opts {
    /// 60 seconds: a passing run takes about one.
    fn default() -> Self {
        Opts {
            timeout: Duration::from_secs(60),
        }
    }
}

/// The outcome of one boot.
#[derive(Debug)]
pub struct Run {
    /// QEMU's exit status, or `None` when it was killed at the timeout.
    pub status: Option<i32>,
    /// Wall time from QEMU's start to its exit.
    pub secs: f64,
    /// Wall time from QEMU's start to the root task's first line (polled every 20 ms).
    pub first_output: Option<f64>,
    /// The serial log.
    pub log: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "QEMU exited with {s} after {:.2} s", self.secs)?,
            None => write!(f, "QEMU killed at the timeout after {:.2} s", self.secs)?,
        }
        match self.first_output {
            Some(t) => write!(f, "; root task's first output after {t:.2} s"),
            None => Ok(()),
        }
    }
}

impl Run {
    /// Passing means: the pass value came through isa-debug-exit and the log says so.
    pub fn verdict(&self) -> Result<(), String> {
        let want = (PASS_VALUE << 1) | 1;
        match self.status {
            Some(s) if s == want && self.log.contains(PASS_LINE) => {
                eprintln!("xtask qemu-test: PASS ({self})");
                Ok(())
            }
            Some(s) if s == want => Err(format!(
                "exit status says pass but the log lacks `{PASS_LINE}` ({self})"
            )),
            Some(s) if s & 1 == 1 => Err(format!(
                "the root task reported failure (value {:#x}; {self})",
                s >> 1
            )),
            Some(_) => Err(format!(
                "QEMU stopped without a verdict (reset or crash; {self})"
            )),
            None => Err(format!(
                "no verdict before the timeout ({self}); the kernel may have halted"
            )),
        }
    }
}

/// Boots the image; the serial log is printed after the run and kept in `out/serial.log`.
pub fn boot(img: &Image, out: &Path, o: &Opts) -> Result<Run, String> {
    tools::ensure(
        "qemu-system-x86_64",
        "qemu-system-x86",
        "the image boots under QEMU",
    )?;
    let log_path = out.join("serial.log");
    let _ = std::fs::remove_file(&log_path);
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        "pc",
        "-cpu",
        "qemu64,+fsgsbase,+pdpe1gb",
        "-m",
        "512",
        "-display",
        "none",
    ])
    .args([
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ])
    .arg("-serial")
    .arg(format!("file:{}", log_path.display()))
    .arg("-kernel")
    .arg(&img.kernel32)
    .arg("-initrd")
    .arg(&img.roottask)
    .stdin(Stdio::null());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    let mut first_output = None;
    let status = loop {
        if first_output.is_none()
            && std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains(ROOT_FIRST_LINE))
        {
            first_output = Some(start.elapsed().as_secs_f64());
        }
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st.code();
        }
        if start.elapsed() > o.timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = start.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    println!(
        "---- serial log ({}) ----\n{log}---- end of serial log ----",
        log_path.display()
    );
    Ok(Run {
        status,
        secs,
        first_output,
        log,
    })
}
