//! `cargo xtask image | qemu | qemu-test`: the real seL4 image.
//!
//! `image` fetches the seL4 5.0.0 source through cargo, configures it with kconfiglib in a
//! virtual environment it creates, builds the kernel, regenerates and checks our bindings, builds
//! the PD programs and the root task for `x86_64-unknown-none`, and leaves everything in
//! `build/out/`. `qemu` boots that image; `qemu-test` boots it and turns the root task's verdict
//! (written to QEMU's `isa-debug-exit` port) into the exit status.
//!
//! Systems: `build/qemu-e2e.xml` (the end-to-end scenario: simulated host, driver core and two
//! clients as PDs; the default of `image` and `qemu`) and `build/qemu-test.xml` (the grant/revoke
//! claim with test PDs), each with its VMBus companion (`<stem>.vmbus.xml`). Each system is built
//! from its own description: the root task's table from it here, and every PD program's
//! configuration by the program's build script from the same files (`pds`). `qemu-test` without
//! `--system` builds and boots both, one after the other, and passes only if both pass; each
//! serial log is kept as `build/out/serial-NAME.log`.

mod bindings;
mod crosscheck;
mod iso;
mod kernel;
mod on_hyperv;
mod pds;
mod qemu;
mod source;
mod system;
pub(crate) mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tools::Timings;

use crate::args::{Arg, ArgError, Args, parse_or_exit};

/// The repository root (two levels above this crate).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

/// Where every output goes (ignored by git).
fn out_dir() -> PathBuf {
    root().join("build/out")
}

fn finish(r: Result<(), String>, what: &str) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Options of `image`, `qemu` and `qemu-test`.
#[derive(Debug)]
pub(crate) struct Opts {
    /// Rewrite `components/sel4-sys/src/generated.rs` instead of failing when it differs.
    bless: bool,
    /// The system descriptions to build (`--system`, repeatable; empty: the command's default).
    systems: Vec<PathBuf>,
    /// Longest QEMU run.
    qemu: qemu::Opts,
    /// `--host`: the host the driver must talk to (empty: what the description says).
    host: Option<Host>,
}

/// The host a system's driver talks to, as its description wires it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The simulated host PD (`<host>` in the companion); boots under stock QEMU.
    Sim,
    /// Hyper-V itself (`<hyperv>`); boots under QEMU with the project's Hyper-V patches, or on
    /// Hyper-V.
    HyperV,
    /// No host (the grant/revoke test system).
    None,
}

impl Host {
    fn parse(s: &str) -> Option<Host> {
        match s {
            "sim" => Some(Host::Sim),
            "hyperv" => Some(Host::HyperV),
            _ => None,
        }
    }

    /// The name `--host` takes.
    pub fn name(self) -> &'static str {
        match self {
            Host::Sim => "sim",
            Host::HyperV => "hyperv",
            Host::None => "none",
        }
    }

    /// The host the driver of `system` talks to.
    fn of(system: &Path) -> Result<Host, String> {
        let d = sysdesc::load(system).map_err(|diags| {
            let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
            text.join("\n")
        })?;
        let driver = d
            .vmbus_driver()
            .and_then(|p| sysdesc::config::pd_config(&d, &p.name))
            .and_then(|c| c.driver);
        Ok(match driver.map(|c| c.hypervisor) {
            Some(sysdesc::config::HvConfig::StandIn { .. }) => Host::Sim,
            Some(sysdesc::config::HvConfig::HyperV { .. }) => Host::HyperV,
            _ => Host::None,
        })
    }
}

/// The three commands of this module, which share their options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmd {
    /// `cargo xtask image`.
    Image,
    /// `cargo xtask qemu`.
    Qemu,
    /// `cargo xtask qemu-test`.
    QemuTest,
    /// `cargo xtask iso`.
    Iso,
}

impl Cmd {
    /// The command's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Qemu => "qemu",
            Self::QemuTest => "qemu-test",
            Self::Iso => "iso",
        }
    }

    /// The command's usage.
    pub(crate) fn usage(self) -> &'static str {
        match self {
            Self::Image => IMAGE_USAGE,
            Self::Qemu => QEMU_USAGE,
            Self::QemuTest => QEMU_TEST_USAGE,
            Self::Iso => ISO_USAGE,
        }
    }
}

const IMAGE_USAGE: &str = "usage: cargo xtask image [--system PATH] [--host sim|hyperv] [--bless]
Builds the seL4 5.0.0 kernel (with the project's Hyper-V service patch), checks our sel4-sys
bindings against it, and builds the PD programs and the root task of a system, into build/out/
(installs make, gcc, binutils, patch and python3-venv with apt-get, and kconfiglib and friends
from PyPI, when they are missing).
  --system PATH   the system description (default: build/qemu-e2e.xml; with --host hyperv,
                  build/qemu-hyperv.xml)
  --host HOST     the host the driver talks to: sim (the simulated host PD) or hyperv
                  (Hyper-V itself, through the kernel's Hyper-V service); the description
                  must wire that host (`<host>` or `<hyperv>` in its companion)
  --bless         rewrite components/sel4-sys/src/generated.rs when the kernel's interface
                  files generate something else (default: fail)
  -h, --help      this text";

const QEMU_USAGE: &str =
    "usage: cargo xtask qemu [--system PATH] [--host sim|hyperv] [--timeout SECS] [--bless]
Builds the image (as `cargo xtask image`), then boots it under QEMU's software CPU with the
serial log on the terminal and in build/out/serial.log (installs QEMU with apt-get if missing;
a system on Hyper-V boots under the project's patched QEMU, `cargo xtask qemu-build`, with
QEMU's VMBus host and its hv-balloon device).
  --system PATH   the system description (default: build/qemu-e2e.xml; with --host hyperv,
                  build/qemu-hyperv.xml)
  --host HOST     sim or hyperv, as for `cargo xtask image`
  --timeout SECS  stop QEMU after SECS seconds (default: 60)
  --bless         as for `cargo xtask image`
  -h, --help      this text";

const QEMU_TEST_USAGE: &str =
    "usage: cargo xtask qemu-test [--system PATH]... [--timeout SECS] [--bless]
For each system: builds the image, boots it under QEMU and passes only when the root task
reports success (through isa-debug-exit; a system on Hyper-V also needs QEMU's side of its
scenario: the device removed, the teardown in order in QEMU's trace, no guest error). Every
system runs even after a failure; each serial log is kept as build/out/serial-NAME.log.
  --system PATH   a system description, repeatable
                  (default: build/qemu-test.xml, build/qemu-e2e.xml and
                  build/qemu-hyperv.xml, the last also from its ISO, after
                  `cargo xtask qemu-linux`'s check of the patched QEMU)
  --timeout SECS  stop QEMU after SECS seconds, per boot (default: 60)
  --bless         as for `cargo xtask image`
  -h, --help      this text";

const ISO_USAGE: &str =
    "usage: cargo xtask iso [--system PATH] [--host sim|hyperv] [--timeout SECS] [--bless]
Builds the image (as `cargo xtask image`; default the system on Hyper-V) and a bootable ISO of
it, build/out/vmbus-sel4.iso: GRUB for BIOS firmware (a Hyper-V Generation 1 VM) loading the
kernel and the root task by multiboot (installs grub-pc-bin, xorriso and mtools with apt-get
when missing). Then boots the ISO from QEMU's CD-ROM drive as a smoke test, with the system's
scenario and verdict (a system on Hyper-V under the project's patched QEMU).
  --system PATH   the system description (default: build/qemu-hyperv.xml)
  --host HOST     sim or hyperv, as for `cargo xtask image` (default: hyperv)
  --timeout SECS  stop QEMU after SECS seconds (default: 60)
  --bless         as for `cargo xtask image`
  -h, --help      this text";

pub(crate) fn parse_opts(cmd: Cmd, args: &[String]) -> Result<Opts, ArgError> {
    let mut args = Args::new(args)?;
    let mut o = Opts {
        bless: false,
        systems: Vec::new(),
        qemu: qemu::Opts::default(),
        host: None,
    };
    while let Some(a) = args.next()? {
        match a {
            Arg::Long("--bless") => o.bless = true,
            Arg::Long("--system") => o.systems.push(PathBuf::from(args.value("--system")?)),
            Arg::Long("--host") if cmd != Cmd::QemuTest => {
                let v = args.value("--host")?;
                o.host = Some(Host::parse(v).ok_or_else(|| {
                    ArgError::Conflict(format!("--host takes sim or hyperv, not {v:?}"))
                })?);
            }
            Arg::Long("--timeout") if cmd != Cmd::Image => {
                let secs = args.parsed("--timeout", "a whole number of seconds")?;
                o.qemu.timeout = std::time::Duration::from_secs(secs);
            }
            other => return Err(other.unexpected()),
        }
    }
    if cmd != Cmd::QemuTest && o.systems.len() > 1 {
        return Err(ArgError::Conflict(
            "give --system once (only qemu-test takes several)".into(),
        ));
    }
    Ok(o)
}

/// The options of `cmd`, or the exit status after `--help` or a usage error.
fn opts_or_exit(cmd: Cmd, args: &[String]) -> Result<Opts, ExitCode> {
    parse_or_exit(cmd.name(), cmd.usage(), parse_opts(cmd, args))
}

/// The end-to-end system (default of `image` and `qemu`).
fn e2e_system() -> PathBuf {
    root().join("build/qemu-e2e.xml")
}

/// The QEMU that boots `img`: Debian's for a simulated host, the project's patched one (built
/// when absent) for a system on Hyper-V.
fn machine_for(img: &Image) -> Result<qemu::Machine, String> {
    if img.host != Host::HyperV {
        return Ok(qemu::Machine::Stock);
    }
    Ok(qemu::Machine::HyperV {
        binary: crate::qemu_host::qemu_binary(&root())?,
        firmware: crate::qemu_host::firmware_dirs()?,
        devices: vec![on_hyperv::boot_device()],
    })
}

/// Boots `img` (the scenario of a system on Hyper-V drives QEMU's side too); the run and its
/// verdict.
fn boot_image(img: &Image, o: &Opts) -> Result<(qemu::Run, Result<(), String>), String> {
    match machine_for(img)? {
        qemu::Machine::Stock => {
            let run = qemu::boot(img, &out_dir(), &o.qemu)?;
            let verdict = run.verdict();
            Ok((run, verdict))
        }
        m => on_hyperv::run(&m, img, &out_dir(), &o.qemu),
    }
}

/// The system on Hyper-V (default of `--host hyperv`).
fn hyperv_system() -> PathBuf {
    root().join("build/qemu-hyperv.xml")
}

/// The systems `qemu-test` boots by default: the grant/revoke test, the end-to-end one, the
/// repository's own system (its integration services and Dynamic Memory against the simulated
/// host, ending in the orderly stop the host asks for), then the one on Hyper-V (under the
/// project's patched QEMU).
fn test_systems() -> Vec<PathBuf> {
    vec![
        root().join("build/qemu-test.xml"),
        e2e_system(),
        root().join("system.xml"),
        hyperv_system(),
    ]
}

/// The one system of `image` and `qemu`: the one given, or the default for `--host`.
fn one_system(o: &Opts) -> Result<PathBuf, String> {
    match (o.systems.as_slice(), o.host) {
        ([], Some(Host::HyperV)) => Ok(hyperv_system()),
        ([], _) => Ok(e2e_system()),
        ([one], _) => Ok(one.clone()),
        _ => Err("give --system once (only qemu-test takes several)".into()),
    }
}

/// `cargo xtask image [--bless] [--system PATH]`.
pub fn image(args: &[String]) -> ExitCode {
    let o = match opts_or_exit(Cmd::Image, args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let r = (|| {
        let mut t = Timings::default();
        build_image(&o, &one_system(&o)?, &mut t).map(|_| ())?;
        eprintln!("xtask image: timings\n{}", t.summary());
        Ok(())
    })();
    finish(r, "image")
}

/// What `image` produced.
#[derive(Debug)]
pub struct Image {
    /// Kernel for QEMU (32-bit ELF).
    pub kernel32: PathBuf,
    /// Root task ELF (the first multiboot module).
    pub roottask: PathBuf,
    /// The host its driver talks to.
    pub host: Host,
    /// The bootable ISO (`cargo xtask iso`), when one was built: QEMU then boots from it.
    pub iso: Option<PathBuf>,
}

/// The description at `system` and its companion, as messages name them.
fn describe(system: &Path) -> String {
    let companion = sysdesc::companion_path(system);
    if companion.exists() {
        format!(
            "{} (VMBus wiring: {})",
            system.display(),
            companion.display()
        )
    } else {
        format!("{} (no VMBus wiring)", system.display())
    }
}

fn build_image(o: &Opts, system: &Path, t: &mut Timings) -> Result<Image, String> {
    let host = Host::of(system)?;
    eprintln!(
        "xtask image: system {}; host: {}",
        describe(system),
        host.name()
    );
    if let Some(want) = o.host
        && want != host
    {
        return Err(format!(
            "--host {} asks for a driver that talks to {}, but {} wires host {} (the companion's `<host>` is the simulated host, `<hyperv>` Hyper-V)",
            want.name(),
            if want == Host::HyperV {
                "Hyper-V"
            } else {
                "the simulated host"
            },
            system.display(),
            host.name()
        ));
    }
    let root = root();
    let out = out_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let registry = t.step("fetch seL4 source (cargo)", || source::locate(&root))?;
    let sel4 = out.join("sel4");
    t.step("copy seL4 source", || source::copy(&registry, &sel4))?;
    let venv = t.step("python venv (kconfiglib)", || kernel::venv(&out))?;
    let autoconf = t.step("configure (kconfiglib)", || {
        kernel::configure(&sel4, &venv, &out)
    })?;
    let k = t.step("build kernel (make)", || {
        kernel::build(&sel4, &venv, &autoconf, &out)
    })?;
    t.step("generate sel4-sys bindings", || {
        check_bindings(&root, &sel4, &k.autoconf, o.bless)
    })?;
    t.step("cross-check labels (gcc)", || {
        let conf = std::fs::read_to_string(&k.autoconf).map_err(|e| e.to_string())?;
        let ours = bindings::labels(&sel4, &conf)?;
        let gen_dir = k.autoconf.parent().ok_or("bad autoconf path")?;
        let n = crosscheck::labels(
            &out.join("kernel/build"),
            gen_dir,
            &out.join("kernel"),
            &ours,
        )?;
        eprintln!(
            "xtask image: {n} invocation labels agree with the kernel's own generated headers"
        );
        Ok(())
    })?;
    let built = t.step("build PDs and root task", || {
        pds::build(&root, &out, system)
    })?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "xtask image: kernel {} ({} bytes), root task {} ({} bytes, PD programs embedded: {})",
        k.elf32.display(),
        size(&k.elf32),
        built.roottask.display(),
        size(&built.roottask),
        built.programs.join(", ")
    );
    Ok(Image {
        kernel32: k.elf32,
        roottask: built.roottask,
        host,
        iso: None,
    })
}

fn check_bindings(root: &Path, sel4: &Path, autoconf: &Path, bless: bool) -> Result<(), String> {
    let conf = std::fs::read_to_string(autoconf).map_err(|e| e.to_string())?;
    let fresh = rustfmt(&bindings::generate(sel4, &conf)?)?;
    let path = root.join(bindings::OUTPUT);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == fresh {
        return Ok(());
    }
    if bless {
        tools::write_if_changed(&path, &fresh)?;
        eprintln!("xtask image: rewrote {}", bindings::OUTPUT);
        return Ok(());
    }
    let fresh_path = out_dir().join("generated.rs");
    tools::write_if_changed(&fresh_path, &fresh)?;
    Err(format!(
        "{} differs from what the kernel's interface files generate ({}); run `cargo xtask image --bless` and commit it",
        bindings::OUTPUT,
        fresh_path.display()
    ))
}

/// Formats generated code the way `cargo fmt` leaves it, so the checked-in copy stays stable.
fn rustfmt(code: &str) -> Result<String, String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2024", "--emit", "stdout"])
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run rustfmt: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(code.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("rustfmt rejected the generated bindings".into());
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

/// `cargo xtask qemu [--system PATH] [--timeout SECS]`: build the image (default: the end-to-end
/// system), say which description it boots, then boot it with the serial log on the terminal and
/// in `build/out/serial.log`.
pub fn qemu(args: &[String]) -> ExitCode {
    let opts = match opts_or_exit(Cmd::Qemu, args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let r = (|| {
        let mut t = Timings::default();
        let system = one_system(&opts)?;
        let img = build_image(&opts, &system, &mut t)?;
        eprintln!(
            "xtask qemu: booting the system of {} (host: {})",
            describe(&system),
            img.host.name()
        );
        let (run, _) = t.step("boot under QEMU", || boot_image(&img, &opts))?;
        eprintln!("xtask qemu: {}: {run}\n{}", system.display(), t.summary());
        Ok(())
    })();
    finish(r, "qemu")
}

/// `cargo xtask iso`: the image of a system (default: the one on Hyper-V) as a bootable ISO,
/// smoke-tested by booting it from QEMU's CD-ROM drive.
pub fn iso(args: &[String]) -> ExitCode {
    let mut o = match opts_or_exit(Cmd::Iso, args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    o.host = o.host.or(Some(Host::HyperV));
    let r = (|| {
        let mut t = Timings::default();
        let system = one_system(&o)?;
        let mut img = build_image(&o, &system, &mut t)?;
        let path = t.step("ISO (grub-mkrescue)", || iso::build(&img, &out_dir()))?;
        eprintln!("xtask iso: {}", path.display());
        img.iso = Some(path);
        let (_, verdict) = t.step("smoke test: boot the ISO under QEMU", || {
            boot_image(&img, &o)
        })?;
        eprintln!("xtask iso: timings\n{}", t.summary());
        verdict
    })();
    finish(r, "iso")
}

/// `cargo xtask qemu-test [--system PATH]... [--timeout SECS]`: for each system (default: the
/// grant/revoke test and the end-to-end system), build, boot, and pass only when the root task
/// reports success through `isa-debug-exit`. Every system runs even after a failure, so one
/// run shows every verdict.
pub fn qemu_test(args: &[String]) -> ExitCode {
    let opts = match opts_or_exit(Cmd::QemuTest, args) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let r: Result<(), String> = {
        let defaults = opts.systems.is_empty();
        let systems = if defaults {
            test_systems()
        } else {
            opts.systems.clone()
        };
        let mut verdicts = Vec::new();
        if defaults {
            // The QEMU series on its own, with Linux as the guest: a failure there is the
            // patch's, never our driver's.
            eprintln!("xtask qemu-test: the QEMU series with Debian's Linux as the guest");
            let v = crate::qemu_host::linux_guest_check(&root()).map(|report| {
                eprintln!("xtask qemu-test: linux-guest: {report}");
            });
            verdicts.push(("linux-guest".to_string(), v));
        }
        for system in &systems {
            let name = system
                .file_stem()
                .map_or("system".into(), |s| s.to_string_lossy().into_owned());
            eprintln!("xtask qemu-test: system {}", system.display());
            let mut t = Timings::default();
            let mut img = None;
            let verdict = build_image(&opts, system, &mut t).and_then(|i| {
                let (_, verdict) = t.step("boot under QEMU", || boot_image(&i, &opts))?;
                let kept = out_dir().join(format!("serial-{name}.log"));
                let _ = std::fs::copy(out_dir().join("serial.log"), &kept);
                eprintln!(
                    "xtask qemu-test: {name}: timings (serial log in {})\n{}",
                    kept.display(),
                    t.summary()
                );
                img = Some(i);
                verdict
            });
            verdicts.push((name.clone(), verdict));
            // The system on Hyper-V also from its ISO, as a Hyper-V VM boots it.
            if let Some(mut i) = img.filter(|i| defaults && i.host == Host::HyperV) {
                eprintln!("xtask qemu-test: {name} from its ISO (GRUB)");
                let v = iso::build(&i, &out_dir()).and_then(|path| {
                    i.iso = Some(path);
                    let (_, v) = boot_image(&i, &opts)?;
                    v
                });
                verdicts.push((format!("{name}-iso"), v));
            }
        }
        let mut failed = Vec::new();
        for (name, v) in &verdicts {
            match v {
                Ok(()) => eprintln!("xtask qemu-test: {name}: PASS"),
                Err(e) => {
                    eprintln!("xtask qemu-test: {name}: FAIL: {e}");
                    failed.push(name.as_str());
                }
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(format!("failed: {}", failed.join(", ")))
        }
    };
    finish(r, "qemu-test")
}
