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
/// Values the root task writes after an orderly stop the host asked for (power off, restart):
/// QEMU then exits with 37 or 39.
pub const STOP_VALUES: [(i32, &str); 2] = [(0x12, "power off"), (0x13, "restart")];
/// The start of the line the root task prints after an orderly stop.
pub const STOP_LINE: &str = "root: orderly stop";

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
    /// What QEMU itself printed (its warnings and the guest errors it logs).
    pub qemu_messages: String,
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
    /// Passing means: the pass value came through isa-debug-exit and the log says so, or the
    /// system stopped in order at the host's request (the stop value came through and the log
    /// has the root task's stop line).
    pub fn verdict(&self) -> Result<(), String> {
        let want = (PASS_VALUE << 1) | 1;
        let stop = STOP_VALUES
            .iter()
            .find(|(v, _)| self.status == Some((v << 1) | 1));
        if let Some((_, what)) = stop {
            return if self.log.contains(STOP_LINE) {
                eprintln!(
                    "xtask qemu: the system stopped in order ({what}) at the host's request ({self})"
                );
                Ok(())
            } else {
                Err(format!(
                    "exit status says {what} but the log lacks `{STOP_LINE}` ({self})"
                ))
            };
        }
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

/// QEMU trace events of its VMBus host (printed on its standard error): the host's side of the
/// handshake, the opens and the teardown.
pub const VMBUS_TRACE: &[&str] = &[
    "vmbus_initiate_contact",
    "vmbus_open_channel",
    "vmbus_rescind_channel",
    "vmbus_close_channel",
    "vmbus_gpadl_teardown",
    "vmbus_gpadl_torndown",
    "vmbus_relid_released",
    "vmbus_unplug_device",
];

/// QEMU trace events of its Dynamic Memory device: the balloon and unballoon requests it posts
/// and the guest's answers it takes.
pub const HV_BALLOON_TRACE: &[&str] = &[
    "hv_balloon_outgoing_balloon",
    "hv_balloon_incoming_balloon",
    "hv_balloon_outgoing_unballoon",
    "hv_balloon_incoming_unballoon",
];

/// The QEMU a system boots under.
#[derive(Debug)]
pub enum Machine {
    /// Debian's QEMU (`qemu-system-x86`), software CPU, no Hyper-V.
    Stock,
    /// The project's patched QEMU (`cargo xtask qemu-build`): Hyper-V under the software CPU,
    /// QEMU's VMBus host and its Dynamic Memory device, driven through QMP.
    HyperV {
        /// Its `qemu-system-x86_64`.
        binary: std::path::PathBuf,
        /// Firmware folders (`-L`).
        firmware: Vec<std::path::PathBuf>,
        /// `-device` arguments after `vmbus-bridge`: the VMBus devices at boot.
        devices: Vec<String>,
    },
}

/// Boots the image; the serial log is printed after the run and kept in `out/serial.log`.
pub fn boot(img: &Image, out: &Path, o: &Opts) -> Result<Run, String> {
    boot_on(&Machine::Stock, img, out, o, |_, _| Ok(()))
}

/// Boots the image under `machine`; `watch` sees the serial log so far and the QMP socket's
/// path every 20 ms while QEMU runs (the scenario's host-side actions).
pub fn boot_on(
    machine: &Machine,
    img: &Image,
    out: &Path,
    o: &Opts,
    mut watch: impl FnMut(&str, &Path) -> Result<(), String>,
) -> Result<Run, String> {
    let log_path = out.join("serial.log");
    let qmp = out.join("qmp.sock");
    let _ = std::fs::remove_file(&log_path);
    let _ = std::fs::remove_file(&qmp);
    let mut cmd = match machine {
        Machine::Stock => {
            tools::ensure(
                "qemu-system-x86_64",
                "qemu-system-x86",
                "the image boots under QEMU",
            )?;
            let mut c = Command::new("qemu-system-x86_64");
            c.args(["-cpu", "qemu64,+fsgsbase,+pdpe1gb"]);
            c
        }
        Machine::HyperV {
            binary,
            firmware,
            devices,
        } => {
            let mut c = Command::new(binary);
            for dir in firmware {
                c.arg("-L").arg(dir);
            }
            c.args([
                "-accel",
                "tcg",
                "-cpu",
                "qemu64,+fsgsbase,+pdpe1gb,hv-synic,hv-vpindex",
                "-nic",
                "none",
                "-device",
                "vmbus-bridge",
            ])
            .args(devices.iter().flat_map(|d| ["-device", d.as_str()]))
            // QEMU's own record of the VMBus and Dynamic Memory messages it handles, for the verdict.
            .args(
                VMBUS_TRACE
                    .iter()
                    .chain(HV_BALLOON_TRACE)
                    .flat_map(|t| ["-trace", *t]),
            )
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp.display()));
            c
        }
    };
    cmd.args(["-machine", "pc", "-m", "512", "-display", "none"])
        .args([
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ])
        .arg("-serial")
        .arg(format!("file:{}", log_path.display()));
    // An image with its ISO boots from the CD-ROM drive through GRUB, as a Hyper-V Generation 1
    // VM boots it; otherwise QEMU's own multiboot loader takes the kernel and the root task.
    match &img.iso {
        None => {
            cmd.arg("-kernel")
                .arg(&img.kernel32)
                .arg("-initrd")
                .arg(&img.roottask);
        }
        Some(iso) => {
            cmd.arg("-cdrom").arg(iso).args(["-boot", "d"]);
        }
    }
    cmd.stdin(Stdio::null()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start QEMU: {e}"))?;
    // QEMU's own messages (guest errors it logs, warnings): collected for the verdict.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
            text
        })
    });
    let mut first_output = None;
    let mut failure = None;
    let status = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if first_output.is_none() && log.contains(ROOT_FIRST_LINE) {
            first_output = Some(start.elapsed().as_secs_f64());
        }
        if failure.is_none()
            && let Err(e) = watch(&log, &qmp)
        {
            failure = Some(e);
        }
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st.code();
        }
        if start.elapsed() > o.timeout || failure.is_some() {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = start.elapsed().as_secs_f64();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let qemu_messages = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    println!(
        "---- serial log ({}) ----\n{log}---- end of serial log ----",
        log_path.display()
    );
    if !qemu_messages.is_empty() {
        println!("---- QEMU's messages ----\n{qemu_messages}---- end of QEMU's messages ----");
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Run {
        status,
        secs,
        first_output,
        log,
        qemu_messages,
    })
}
