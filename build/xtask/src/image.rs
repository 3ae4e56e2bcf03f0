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
//! claim with test PDs). `qemu-test` without `--system` builds and boots both, one after the other,
//! and passes only if both pass; each serial log is kept as `build/out/serial-NAME.log`.

mod bindings;
mod crosscheck;
mod kernel;
mod pds;
mod qemu;
mod source;
mod system;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tools::Timings;

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
struct Opts {
    /// Rewrite `components/sel4-sys/src/generated.rs` instead of failing when it differs.
    bless: bool,
    /// The system descriptions to build (`--system`, repeatable; empty: the command's default).
    systems: Vec<PathBuf>,
    /// Longest QEMU run.
    qemu: qemu::Opts,
}

fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        bless: false,
        systems: Vec::new(),
        qemu: qemu::Opts::default(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bless" => o.bless = true,
            "--system" => o
                .systems
                .push(PathBuf::from(it.next().ok_or("--system needs a path")?)),
            "--timeout" => {
                let v = it.next().ok_or("--timeout needs seconds")?;
                let secs = v.parse().map_err(|_| format!("bad --timeout `{v}`"))?;
                o.qemu.timeout = std::time::Duration::from_secs(secs);
            }
            other => {
                return Err(format!(
                    "unknown option `{other}` (options: --bless, --system PATH, --timeout SECS)"
                ));
            }
        }
    }
    Ok(o)
}

/// The end-to-end system (default of `image` and `qemu`).
fn e2e_system() -> PathBuf {
    root().join("build/qemu-e2e.xml")
}

/// The systems `qemu-test` boots by default: the grant/revoke test, then the end-to-end one.
fn test_systems() -> Vec<PathBuf> {
    vec![root().join("build/qemu-test.xml"), e2e_system()]
}

/// The one system of `image` and `qemu`.
fn one_system(o: &Opts) -> Result<PathBuf, String> {
    match o.systems.as_slice() {
        [] => Ok(e2e_system()),
        [one] => Ok(one.clone()),
        _ => Err("give --system once (only qemu-test takes several)".into()),
    }
}

/// `cargo xtask image [--bless] [--system PATH]`.
pub fn image(args: &[String]) -> ExitCode {
    let r = parse_opts(args).and_then(|o| {
        let mut t = Timings::default();
        build_image(&o, &one_system(&o)?, &mut t).map(|_| ())?;
        eprintln!("xtask image: timings\n{}", t.summary());
        Ok(())
    });
    finish(r, "image")
}

/// What `image` produced.
#[derive(Debug)]
pub struct Image {
    /// Kernel for QEMU (32-bit ELF).
    pub kernel32: PathBuf,
    /// Root task ELF (the first multiboot module).
    pub roottask: PathBuf,
}

fn build_image(o: &Opts, system: &Path, t: &mut Timings) -> Result<Image, String> {
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
/// system), then boot it with the serial log on the terminal and in `build/out/serial.log`.
pub fn qemu(args: &[String]) -> ExitCode {
    let r = (|| {
        let opts = parse_opts(args)?;
        let mut t = Timings::default();
        let img = build_image(&opts, &one_system(&opts)?, &mut t)?;
        let run = t.step("boot under QEMU", || {
            qemu::boot(&img, &out_dir(), &opts.qemu)
        })?;
        eprintln!("xtask qemu: {run}\n{}", t.summary());
        Ok(())
    })();
    finish(r, "qemu")
}

/// `cargo xtask qemu-test [--system PATH]... [--timeout SECS]`: for each system (default: the
/// grant/revoke test and the end-to-end system), build, boot, and pass only when the root task
/// reports success through `isa-debug-exit`. Every system runs even after a failure, so one
/// run shows every verdict.
pub fn qemu_test(args: &[String]) -> ExitCode {
    let r = (|| {
        let opts = parse_opts(args)?;
        let systems = if opts.systems.is_empty() {
            test_systems()
        } else {
            opts.systems.clone()
        };
        let mut verdicts = Vec::new();
        for system in &systems {
            let name = system
                .file_stem()
                .map_or("system".into(), |s| s.to_string_lossy().into_owned());
            eprintln!("xtask qemu-test: system {}", system.display());
            let mut t = Timings::default();
            let verdict = build_image(&opts, system, &mut t).and_then(|img| {
                let run = t.step("boot under QEMU", || {
                    qemu::boot(&img, &out_dir(), &opts.qemu)
                })?;
                let kept = out_dir().join(format!("serial-{name}.log"));
                let _ = std::fs::copy(out_dir().join("serial.log"), &kept);
                eprintln!(
                    "xtask qemu-test: {name}: timings (serial log in {})\n{}",
                    kept.display(),
                    t.summary()
                );
                run.verdict()
            });
            verdicts.push((name, verdict));
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
    })();
    finish(r, "qemu-test")
}
