//! The patched QEMU checked on its own, with Debian bookworm's Linux kernel as the guest: a
//! second, independent VMBus guest, so that a failure of our driver under this QEMU can be told
//! apart from a failure of the QEMU series.
//!
//! The guest is the unsigned `linux-image-*-amd64` package and an initramfs of ours (Debian's
//! static busybox, `hv_vmbus` and `hv_balloon` with their module dependencies, an `/init` that
//! prints the guest's VMBus devices and memory every second). Two boots:
//!
//! 1. **Balloon**: VMBus negotiated (the kernel's `Vmbus version:` line), `hv_balloon` bound
//!    (its Dynamic Memory protocol line), QMP `balloon` down to 300 MiB and up to 1 GiB (past the
//!    boot size: hot-add from a memory backend), each checked from both sides (`query-balloon`
//!    and the guest's MemTotal). QEMU's hv-balloon acts about 50 s after the guest connects,
//!    and Linux ignores balloon-up while S4 is possible, hence `ICH9-LPC.disable_s4=1`. Then
//!    `device_del` must be refused: the guest uses memory the device hot-added.
//! 2. **Rescind**: with the VM stopped, `device_del` of the balloon must leave the device in
//!    place (the guest cannot answer the rescind); after `cont` the guest closes the channel and
//!    releases the relid, QEMU reports DEVICE_DELETED and the guest's device list is empty.
//!    Then a new hv-balloon (new id and instance id) is hot-plugged: QEMU offers it to the
//!    connected guest, which binds hv_balloon again; a second one beside it is refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cpio::Cpio;
use super::qmp::{self, Qmp};
use super::{ensure_packages, firmware_dirs, out_dir, qemu_binary};
use crate::image::tools;

/// The modules the guest loads (their dependencies come along).
const MODULES: &[&str] = &["hv_vmbus", "hv_balloon"];

/// The kernel's line that says which VMBus version it negotiated.
const VMBUS_LINE: &str = "hv_vmbus: Vmbus version:";
/// hv_balloon's line once the Dynamic Memory protocol is agreed.
const DM_LINE: &str = "hv_balloon: Using Dynamic Memory protocol version";
/// The start of the guest's status line (see [`INIT`]).
const STATUS: &str = "guest: vmbus devices: [";

/// The initramfs's `/init`; `@MODULES@` becomes the modules to load, in order.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in @MODULES@; do
  insmod /lib/modules/$m.ko || echo "guest: insmod $m failed"
done
echo "guest: modules loaded"
while true; do
  echo "guest: vmbus devices: [$(ls /sys/bus/vmbus/devices 2>/dev/null | tr '\n' ' ')] mem_total_kb=$(awk '/^MemTotal/{print $2}' /proc/meminfo)"
  sleep 1
done
"#;

/// Memory the guest boots with, MiB.
const BOOT_MIB: u64 = 512;
/// The balloon-down target, MiB.
const DOWN_MIB: u64 = 300;
/// The balloon-up target (hot-adding past the boot size), MiB.
const UP_MIB: u64 = 1024;
/// hv-balloon waits about 50 s after the guest connects; what a balloon step may take.
const BALLOON_WAIT: Duration = Duration::from_secs(240);
/// How long the guest may take to boot and bind its drivers under the software CPU.
const BOOT_WAIT: Duration = Duration::from_secs(180);
const MIB: u64 = 1024 * 1024;

/// Runs both boots and returns a short report, or what went wrong (with the log paths).
pub fn linux_guest_check(root: &Path) -> Result<String, String> {
    let start = Instant::now();
    let qemu = qemu_binary(root)?;
    let firmware = firmware_dirs()?;
    let dir = out_dir(root).join("linux");
    let guest = prepare_guest(&dir)?;
    let mut report = format!(
        "QEMU's VMBus host under TCG ({}), guest: Debian's {} (2 vCPUs)\n",
        qemu.display(),
        guest.package
    );
    let base = Machine {
        qemu,
        firmware,
        guest,
        dir: dir.clone(),
    };
    balloon_boot(&base, &mut report)?;
    rescind_boot(&base, &mut report)?;
    let _ = writeln!(report, "  total {:.0} s", start.elapsed().as_secs_f64());
    Ok(report)
}

/// The kernel and initramfs of the guest.
#[derive(Debug)]
struct Guest {
    package: String,
    kernel: PathBuf,
    initramfs: PathBuf,
}

/// What both boots share.
#[derive(Debug)]
struct Machine {
    qemu: PathBuf,
    firmware: Vec<PathBuf>,
    guest: Guest,
    dir: PathBuf,
}

/// The unsigned image package behind `linux-image-amd64` (e.g.
/// `linux-image-6.1.0-57-amd64-unsigned`), from `apt-cache depends` output.
fn unsigned_package(depends: &str) -> Option<String> {
    depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-") && p.ends_with("-amd64"))
        .map(|p| format!("{p}-unsigned"))
}

/// Downloads a Debian package into `dir` and unpacks it into `into`.
fn fetch_deb(package: &str, dir: &Path, into: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    tools::run(
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(dir),
    )
    .map_err(|e| format!("apt-get download {package}: {e}"))?;
    let deb = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .ok_or_else(|| format!("no {package} .deb in {}", dir.display()))?;
    if into.exists() {
        std::fs::remove_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    }
    tools::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(into))
}

/// `.ko` files under `dir`, by module name.
fn modules_in(dir: &Path, found: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            modules_in(&p, found);
        } else if let Some(stem) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            found.insert(stem.replace('-', "_"), p.clone());
        }
    }
}

/// The `depends=` field of a module's `.modinfo` section (what modinfo prints).
pub(super) fn module_depends(ko: &[u8]) -> Vec<String> {
    let mark = b"depends=";
    ko.windows(mark.len())
        .enumerate()
        .filter(|(i, w)| *w == mark && (*i == 0 || ko[i - 1] == 0))
        .map(|(i, _)| {
            let rest = &ko[i + mark.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).to_string()
        })
        .next()
        .map(|s| {
            s.split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.replace('-', "_"))
                .collect()
        })
        .unwrap_or_default()
}

/// `wanted` and their dependencies, dependencies first.
fn load_order(wanted: &[&str], modules: &BTreeMap<String, PathBuf>) -> Result<Vec<String>, String> {
    fn visit(
        name: &str,
        modules: &BTreeMap<String, PathBuf>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), String> {
        if order.iter().any(|m| m == name) {
            return Ok(());
        }
        if depth > 32 {
            return Err(format!("module dependencies of {name} loop"));
        }
        let path = modules
            .get(name)
            .ok_or_else(|| format!("the kernel package has no module {name}"))?;
        let ko = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for dep in module_depends(&ko) {
            visit(&dep, modules, order, depth + 1)?;
        }
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for w in wanted {
        visit(w, modules, &mut order, 0)?;
    }
    Ok(order)
}

/// The guest's kernel (downloaded once) and a fresh initramfs.
fn prepare_guest(dir: &Path) -> Result<Guest, String> {
    ensure_packages(
        &["dpkg-dev"],
        "the Linux guest is unpacked from Debian packages",
    )?;
    let stamp = dir.join(".package");
    let root = dir.join("kernel");
    let package = match std::fs::read_to_string(&stamp) {
        Ok(p) if root.join("boot").is_dir() => p,
        _ => {
            let depends =
                || tools::output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]));
            let mut found = depends().ok().as_deref().and_then(unsigned_package);
            if found.is_none() {
                // A machine whose package lists were never read.
                tools::run(Command::new("apt-get").args(["update", "-qq"]))?;
                found = unsigned_package(&depends()?);
            }
            let package =
                found.ok_or("apt-cache finds no linux-image-*-amd64 behind linux-image-amd64")?;
            fetch_deb(&package, &dir.join("deb"), &root)?;
            std::fs::write(&stamp, &package).map_err(|e| e.to_string())?;
            package
        }
    };
    let kernel = std::fs::read_dir(root.join("boot"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("no vmlinuz in {}", root.join("boot").display()))?;
    let busybox = dir.join("busybox/bin/busybox");
    if !busybox.is_file() {
        fetch_deb("busybox-static", &dir.join("deb"), &dir.join("busybox"))?;
    }
    let mut modules = BTreeMap::new();
    modules_in(&root.join("lib/modules"), &mut modules);
    let order = load_order(MODULES, &modules)?;

    let mut c = Cpio::new();
    for d in ["bin", "dev", "proc", "sys", "lib", "lib/modules"] {
        c.dir(d);
    }
    c.file(
        "bin/busybox",
        0o755,
        &std::fs::read(&busybox).map_err(|e| format!("{}: {e}", busybox.display()))?,
    );
    c.file(
        "init",
        0o755,
        INIT.replace("@MODULES@", &order.join(" ")).as_bytes(),
    );
    for m in &order {
        let ko = std::fs::read(&modules[m]).map_err(|e| e.to_string())?;
        c.file(&format!("lib/modules/{m}.ko"), 0o644, &ko);
    }
    let initramfs = dir.join("initramfs.cpio");
    std::fs::write(&initramfs, c.finish()).map_err(|e| format!("{}: {e}", initramfs.display()))?;
    Ok(Guest {
        package,
        kernel,
        initramfs,
    })
}

/// A running QEMU, killed when dropped.
struct Running {
    child: Child,
    serial: PathBuf,
    stderr: PathBuf,
    qmp: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// The guest's console so far.
    fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default()).into_owned()
    }

    /// QEMU's own messages so far.
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    /// Waits until `done` holds for the console, up to `wait`; `what` names it in the error.
    fn wait_for(
        &mut self,
        what: &str,
        wait: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if done(&self.serial()) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "QEMU exited ({status}) before {what}\n{}",
                    self.logs()
                ));
            }
            if start.elapsed() > wait {
                return Err(format!("no {what} after {wait:?}\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The log paths and QEMU's last messages, for an error.
    fn logs(&self) -> String {
        let err = self.stderr();
        let tail: Vec<&str> = err.lines().rev().take(8).collect();
        format!(
            "(guest console: {}, QEMU: {})\n{}",
            self.serial.display(),
            self.stderr.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    }
}

/// Boots the guest with `extra` arguments; `name` names the logs.
fn boot(m: &Machine, name: &str, extra: &[&str]) -> Result<Running, String> {
    let serial = m.dir.join(format!("{name}.serial.log"));
    let stderr = m.dir.join(format!("{name}.qemu.log"));
    let qmp = m.dir.join(format!("{name}.qmp"));
    let _ = std::fs::remove_file(&qmp);
    let _ = std::fs::remove_file(&serial);
    let mut cmd = Command::new(&m.qemu);
    for fw in &m.firmware {
        cmd.arg("-L").arg(fw);
    }
    cmd.args([
        "-accel",
        "tcg",
        "-M",
        "q35",
        "-cpu",
        "qemu64,hv-vpindex,hv-synic,hv-relaxed",
        "-smp",
        "2",
        "-display",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-device",
        "vmbus-bridge",
        "-global",
        "ICH9-LPC.disable_s4=1",
        "-append",
        "console=ttyS0 panic=-1 memhp_default_state=online",
    ])
    .arg("-kernel")
    .arg(&m.guest.kernel)
    .arg("-initrd")
    .arg(&m.guest.initramfs)
    .arg("-serial")
    .arg(format!("file:{}", serial.display()))
    .arg("-qmp")
    .arg(format!("unix:{},server=on,wait=off", qmp.display()))
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(File::create(&stderr).map_err(|e| format!("{}: {e}", stderr.display()))?);
    eprintln!("xtask qemu-linux: $ {}", tools::shown(&cmd));
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", m.qemu.display()))?;
    Ok(Running {
        child,
        serial,
        stderr,
        qmp,
    })
}

/// The first console line that contains `mark`, trimmed.
fn line_with<'a>(log: &'a str, mark: &str) -> Option<&'a str> {
    log.lines()
        .find(|l| l.contains(mark))
        .map(|l| l[l.find(mark).unwrap_or(0)..].trim())
}

/// The guest's last status line: its VMBus devices and its MemTotal in kB.
pub(super) fn last_status(log: &str) -> Option<(Vec<String>, u64)> {
    let line = log.lines().rev().find(|l| l.starts_with(STATUS))?;
    let devices = line[STATUS.len()..].split(']').next()?;
    let total = line.split("mem_total_kb=").nth(1)?.trim().parse().ok()?;
    Some((
        devices.split_whitespace().map(str::to_string).collect(),
        total,
    ))
}

/// Waits for the guest to negotiate VMBus, bind hv_balloon and print its status.
fn wait_bound(r: &mut Running) -> Result<(String, String), String> {
    r.wait_for("hv_balloon bound (Dynamic Memory)", BOOT_WAIT, |log| {
        log.contains(DM_LINE) && last_status(log).is_some_and(|(d, _)| !d.is_empty())
    })?;
    let log = r.serial();
    let vmbus = line_with(&log, VMBUS_LINE).ok_or("no VMBus version line")?;
    let dm = line_with(&log, DM_LINE).ok_or("no Dynamic Memory line")?;
    Ok((vmbus.to_string(), dm.to_string()))
}

/// QEMU's balloon size, bytes.
fn balloon_actual(q: &mut Qmp) -> Result<u64, String> {
    let reply = q.execute("query-balloon", "{}")?;
    qmp::number(&reply, "actual").ok_or(format!("query-balloon: {reply}"))
}

/// Sets the balloon target to `mib` and waits for QEMU and the guest to agree: QEMU's
/// `actual` at the target and the guest's MemTotal past `guest_ok`. Returns the guest's
/// MemTotal and the time it took.
fn balloon_to(
    r: &mut Running,
    q: &mut Qmp,
    mib: u64,
    guest_ok: impl Fn(u64) -> bool,
) -> Result<(u64, Duration), String> {
    let start = Instant::now();
    q.execute("balloon", &format!("{{\"value\": {}}}", mib * MIB))?;
    loop {
        let actual = balloon_actual(q)?;
        let total = last_status(&r.serial()).map_or(0, |(_, t)| t);
        if actual == mib * MIB && guest_ok(total) {
            return Ok((total, start.elapsed()));
        }
        if start.elapsed() > BALLOON_WAIT {
            return Err(format!(
                "balloon {mib} MiB: after {BALLOON_WAIT:?} QEMU reports {} MiB, the guest \
                 MemTotal {total} kB\n{}",
                actual / MIB,
                r.logs()
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The device ids under `/machine/peripheral`.
fn peripherals(q: &mut Qmp) -> Result<Vec<String>, String> {
    let reply = q.execute("qom-list", r#"{"path": "/machine/peripheral"}"#)?;
    Ok(qmp::strings(&reply, "name"))
}

/// Boot 1: VMBus, the balloon down and up, device_del refused after hot-add.
fn balloon_boot(m: &Machine, report: &mut String) -> Result<(), String> {
    let t0 = Instant::now();
    let mem = format!("{BOOT_MIB}M,maxmem=64G");
    let mut r = boot(
        m,
        "balloon",
        &[
            "-m",
            &mem,
            "-object",
            "memory-backend-ram,id=hvmem,size=1G",
            "-device",
            "hv-balloon,id=balloon,memdev=hvmem",
        ],
    )?;
    let (vmbus, dm) = wait_bound(&mut r)?;
    let bound = t0.elapsed();
    let _ = writeln!(report, "  {vmbus}\n  {dm}");
    let _ = writeln!(
        report,
        "  boot to hv_balloon bound: {:.0} s",
        bound.as_secs_f64()
    );
    let mut q = Qmp::connect(&r.qmp, Duration::from_secs(10))?;
    let before = balloon_actual(&mut q)?;
    let (_, total0) = last_status(&r.serial()).ok_or("no guest status")?;
    let taken = (BOOT_MIB - DOWN_MIB) * 1024;
    let (down, t_down) = balloon_to(&mut r, &mut q, DOWN_MIB, |t| {
        t > 0 && t + taken * 9 / 10 <= total0
    })?;
    let _ = writeln!(
        report,
        "  balloon {} -> {DOWN_MIB} MiB: guest MemTotal {total0} -> {down} kB, {:.0} s \
         (hv-balloon waits ~50 s after the guest connects)",
        before / MIB,
        t_down.as_secs_f64()
    );
    let added = (UP_MIB - BOOT_MIB) * 1024;
    let (up, t_up) = balloon_to(&mut r, &mut q, UP_MIB, |t| t >= total0 + added * 9 / 10)?;
    let _ = writeln!(
        report,
        "  balloon {DOWN_MIB} -> {UP_MIB} MiB (hot-add): guest MemTotal {down} -> {up} kB, {:.0} s",
        t_up.as_secs_f64()
    );
    match q.execute("device_del", r#"{"id": "balloon"}"#) {
        Ok(reply) => {
            return Err(format!(
                "device_del of a balloon whose memory the guest uses was accepted: {reply}"
            ));
        }
        Err(e) if e.contains("hot-added") => {
            if !peripherals(&mut q)?.iter().any(|p| p == "balloon") {
                return Err("the refused device is gone".into());
            }
            let _ = writeln!(report, "  device_del after hot-add refused: {e}");
        }
        Err(e) => return Err(format!("device_del: unexpected error: {e}")),
    }
    let _ = q.execute("quit", "{}");
    let _ = writeln!(report, "  boot 1: {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Boot 2: a rescind, first unanswered (VM stopped), then answered; then a hot-plug.
fn rescind_boot(m: &Machine, report: &mut String) -> Result<(), String> {
    let t0 = Instant::now();
    let mem = format!("{BOOT_MIB}M");
    let mut r = boot(
        m,
        "rescind",
        &["-m", &mem, "-device", "hv-balloon,id=balloon"],
    )?;
    wait_bound(&mut r)?;
    let mut q = Qmp::connect(&r.qmp, Duration::from_secs(10))?;
    q.execute("stop", "{}")?;
    q.execute("device_del", r#"{"id": "balloon"}"#)?;
    if q.wait_event("DEVICE_DELETED", "balloon", Duration::from_secs(3))? {
        return Err("the device went while the guest could not answer the rescind".into());
    }
    if !peripherals(&mut q)?.iter().any(|p| p == "balloon") {
        return Err("the device is gone from /machine/peripheral before the guest answered".into());
    }
    let resumed = Instant::now();
    q.execute("cont", "{}")?;
    if !q.wait_event("DEVICE_DELETED", "balloon", Duration::from_secs(60))? {
        return Err(format!(
            "no DEVICE_DELETED 60 s after the guest resumed\n{}",
            r.logs()
        ));
    }
    let deleted = resumed.elapsed();
    let mark = r.serial().len();
    r.wait_for(
        "the guest's VMBus device list empty",
        Duration::from_secs(30),
        |log| log.len() > mark && last_status(&log[mark..]).is_some_and(|(d, _)| d.is_empty()),
    )?;
    if peripherals(&mut q)?.iter().any(|p| p == "balloon") {
        return Err("DEVICE_DELETED, yet the device is still listed".into());
    }
    let _ = writeln!(
        report,
        "  rescind: device kept while the guest was stopped; DEVICE_DELETED {:.1} s after cont; \
         the guest's VMBus device list is empty",
        deleted.as_secs_f64(),
    );
    let plugged = Instant::now();
    let mark = r.serial().len();
    q.execute(
        "device_add",
        r#"{"driver": "hv-balloon", "id": "balloon2", "instanceid": "4856ba11-0000-4000-8000-00000000000b"}"#,
    )?;
    r.wait_for(
        "hv_balloon bound to the hot-plugged device",
        BOOT_WAIT,
        |log| {
            log.len() > mark
                && log[mark..].contains(DM_LINE)
                && last_status(&log[mark..]).is_some_and(|(d, _)| !d.is_empty())
        },
    )?;
    let devices = last_status(&r.serial()).map(|(d, _)| d).unwrap_or_default();
    let _ = writeln!(
        report,
        "  hot-plug: hv_balloon bound again {:.1} s after device_add; guest VMBus devices {devices:?}",
        plugged.elapsed().as_secs_f64()
    );
    match q.execute(
        "device_add",
        r#"{"driver": "hv-balloon", "id": "balloon3"}"#,
    ) {
        Ok(reply) => return Err(format!("a second hv-balloon was accepted: {reply}")),
        Err(e) if e.contains("balloon") => {
            let _ = writeln!(report, "  a second hv-balloon refused: {e}");
        }
        Err(e) => return Err(format!("device_add of a second hv-balloon: {e}")),
    }
    let errors = r.stderr();
    if let Some(l) = errors.lines().find(|l| l.contains("unknown message type")) {
        return Err(format!("QEMU: {l}"));
    }
    let _ = q.execute("quit", "{}");
    let _ = writeln!(report, "  boot 2: {:.0} s", t0.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unsigned_image_behind_the_meta_package() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(
            unsigned_package(out).as_deref(),
            Some("linux-image-6.1.0-57-amd64-unsigned")
        );
        assert_eq!(unsigned_package("linux-image-amd64\n"), None);
    }

    #[test]
    fn reads_module_dependencies_from_modinfo() {
        let ko = b"\x7fELF...\0license=GPL\0depends=hv_vmbus,some-dep\0vermagic=6.1\0";
        assert_eq!(module_depends(ko), ["hv_vmbus", "some_dep"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
        // `xdepends=` is another field.
        assert!(module_depends(b"\0xdepends=a\0").is_empty());
    }

    #[test]
    fn reads_the_guests_status_line() {
        let log = "noise\nguest: vmbus devices: [a-b c-d ] mem_total_kb=402112\n";
        assert_eq!(
            last_status(log),
            Some((vec!["a-b".to_string(), "c-d".to_string()], 402_112))
        );
        let empty = "guest: vmbus devices: [] mem_total_kb=1\n";
        assert_eq!(last_status(empty), Some((vec![], 1)));
        assert_eq!(last_status("guest: modules loaded\n"), None);
    }
}
