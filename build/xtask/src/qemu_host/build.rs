//! Configures and builds `qemu-system-x86_64` from the patched tree, and keeps the binary in
//! `build/out/qemu/bin/` with a stamp of the series it was built from.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{ensure_packages, out_dir, source};
use crate::image::tools::{self, Timings};

/// Debian packages the build needs (meson comes from PyPI: bookworm's is older than 1.5).
const PACKAGES: &[&str] = &[
    "gcc",
    "pkg-config",
    "ninja-build",
    "libglib2.0-dev",
    "libpixman-1-dev",
    "libfdt-dev",
    "flex",
    "bison",
    "python3-venv",
    "xz-utils",
    "patch",
];

/// Python packages of the build's virtual environment: QEMU 10.0 wants meson >= 1.5 (and
/// pycotap for its test harness); these are the versions QEMU 10.0 itself bundles.
const PY_PACKAGES: &[&str] = &["meson==1.5.2", "pycotap==1.3.1"];

/// QEMU's configuration: the x86-64 system emulator alone, with the software CPU, KVM (whose
/// behaviour the series keeps), and the Dynamic Memory device.
const CONFIGURE: &[&str] = &[
    "--target-list=x86_64-softmmu",
    "--without-default-features",
    "--disable-docs",
    "--enable-kvm",
    "--enable-tcg",
    "--enable-hv-balloon",
    "--disable-download",
    "--disable-install-blobs",
];

/// The virtual environment with meson, `out/venv`; its Python.
fn venv(out: &Path) -> Result<PathBuf, String> {
    let venv = out.join("venv");
    tools::python_venv(
        &venv,
        PY_PACKAGES,
        "QEMU's build runs meson from a virtual environment",
    )?;
    Ok(venv.join("bin/python3"))
}

/// The binary, built when it is missing or was built from another series or configuration.
pub(super) fn ensure(root: &Path) -> Result<PathBuf, String> {
    let out = out_dir(root);
    let series = source::series(root)?;
    let key = format!("{}\n{}\n", series.hash, CONFIGURE.join(" "));
    let bin_dir = out.join("bin");
    let binary = bin_dir.join("qemu-system-x86_64");
    let stamp = bin_dir.join(".series");
    let fresh = || binary.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == key);
    if fresh() {
        return Ok(binary);
    }
    // One build at a time (two commands may want the binary at once); the second finds it
    // built when the first lets go.
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let lock_path = out.join(".build.lock");
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!("xtask: waiting for another build of the patched QEMU to finish");
        lock.lock()
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    }
    if fresh() {
        return Ok(binary);
    }

    let mut t = Timings::default();
    t.step("qemu: Debian packages", || {
        ensure_packages(PACKAGES, "the patched QEMU is built from source")
    })?;
    let python = t.step("qemu: meson venv", || venv(&out))?;
    let tarball = t.step("qemu: source package", || source::orig_tarball(&out))?;
    let tree = t.step("qemu: unpack and apply the series", || {
        source::prepare_tree(&out, &series, &tarball)
    })?;
    let build = out.join("build");
    let build_stamp = build.join(".vmbus-configured");
    if !std::fs::read_to_string(&build_stamp).is_ok_and(|s| s == key) {
        t.step("qemu: configure", || {
            if build.exists() {
                std::fs::remove_dir_all(&build).map_err(|e| format!("{}: {e}", build.display()))?;
            }
            std::fs::create_dir_all(&build).map_err(|e| format!("{}: {e}", build.display()))?;
            tools::run_logged(
                Command::new(tree.join("configure"))
                    .arg(format!("--python={}", python.display()))
                    .args(CONFIGURE)
                    .current_dir(&build),
                &out.join("configure.log"),
            )?;
            std::fs::write(&build_stamp, &key).map_err(|e| e.to_string())
        })?;
    }
    t.step("qemu: ninja qemu-system-x86_64", || {
        tools::run_logged(
            Command::new("ninja")
                .arg("qemu-system-x86_64")
                .current_dir(&build),
            &out.join("ninja.log"),
        )
    })?;
    std::fs::create_dir_all(&bin_dir).map_err(|e| format!("{}: {e}", bin_dir.display()))?;
    // A copy under a temporary name, renamed: a QEMU that is running keeps its file.
    let fresh = bin_dir.join(".qemu-system-x86_64.new");
    std::fs::copy(build.join("qemu-system-x86_64"), &fresh)
        .map_err(|e| format!("{}: {e}", fresh.display()))?;
    std::fs::rename(&fresh, &binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    std::fs::write(&stamp, &key).map_err(|e| format!("{}: {e}", stamp.display()))?;
    eprint!(
        "xtask qemu-build: built {}\n{}",
        binary.display(),
        t.summary()
    );
    Ok(binary)
}
