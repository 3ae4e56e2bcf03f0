//! The project's patched QEMU: Hyper-V and QEMU's VMBus host under the software CPU.
//!
//! Every machine here has a KVM without Hyper-V emulation, so QEMU's VMBus host (`vmbus-bridge`)
//! and its Dynamic Memory device (`hv-balloon`) run only under QEMU's software CPU (TCG), which
//! upstream QEMU does not allow. `build/qemu/patches/` is the project's patch series that adds it
//! (and hot removal of VMBus devices by rescind); `build/qemu/README.md` explains each patch.
//!
//! - `cargo xtask qemu-build` ([`qemu_binary`]): Debian's QEMU 10.0 source, the series, a build
//!   of `qemu-system-x86_64` alone, kept in `build/out/qemu/bin/` until the series changes.
//! - `cargo xtask qemu-linux` ([`linux_guest_check`]): the series checked on its own, with
//!   Debian's Linux kernel as the guest: VMBus negotiated, the balloon driver bound, balloon down
//!   and up through QMP, and a rescind that the guest answers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::args::{Arg, ArgError, Args, parse_or_exit};
use crate::image::{root, tools};

mod build;
mod cpio;
mod linux_guest;
pub(crate) mod qmp;
mod source;

pub use linux_guest::linux_guest_check;

/// Usage of `cargo xtask qemu-build`.
pub(crate) const BUILD_USAGE: &str = "usage: cargo xtask qemu-build
Builds the project's patched QEMU (Hyper-V and VMBus under the software CPU) into
build/out/qemu/bin/qemu-system-x86_64: Debian's QEMU 10.0 source (trixie, fetched once through
a private apt configuration), the series of build/qemu/patches/, x86_64-softmmu only. Does
nothing when the binary is there and the series has not changed. Installs the Debian packages
the build needs; meson comes from PyPI into build/out/qemu/venv.
  -h, --help  this text";

/// Usage of `cargo xtask qemu-linux`.
pub(crate) const LINUX_USAGE: &str = "usage: cargo xtask qemu-linux
Checks the patched QEMU (building it when needed) with Debian bookworm's Linux kernel as the
guest: VMBus negotiated, hv_balloon bound, balloon down and up through QMP (hv-balloon acts
about 50 s after the guest connects), device_del of hv-balloon refused while the guest uses
memory it hot-added, then on a second boot a rescind the guest answers (the device stays while
the guest is stopped and goes once it has released the channel). About two minutes; logs in
build/out/qemu/linux/.
  -h, --help  this text";

/// The folder of everything this module builds or downloads.
pub(crate) fn out_dir(root: &Path) -> PathBuf {
    root.join("build/out/qemu")
}

/// The patched `qemu-system-x86_64`, built first when it is absent or older than the series.
pub fn qemu_binary(root: &Path) -> Result<PathBuf, String> {
    build::ensure(root)
}

/// The firmware folders the patched QEMU needs (`-L`): SeaBIOS and QEMU's option ROMs from
/// Debian's `seabios` and `qemu-system-data`, installed when missing.
pub fn firmware_dirs() -> Result<Vec<PathBuf>, String> {
    let dirs = [
        ("/usr/share/seabios/bios-256k.bin", "seabios"),
        ("/usr/share/qemu/kvmvapic.bin", "qemu-system-data"),
    ];
    let missing: Vec<&str> = dirs
        .iter()
        .filter(|(file, _)| !Path::new(file).is_file())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        tools::apt_install(&missing, "the patched QEMU boots with Debian's firmware")?;
    }
    Ok(dirs
        .iter()
        .filter_map(|(file, _)| Path::new(file).parent().map(Path::to_path_buf))
        .collect())
}

/// Both commands take no options: only `--help`.
pub(crate) fn parse(args: &[String]) -> Result<(), ArgError> {
    let mut a = Args::new(args)?;
    match a.next()? {
        None => Ok(()),
        Some(other) => Err(Arg::unexpected(other)),
    }
}

/// `cargo xtask qemu-build`.
pub fn build_main(args: &[String]) -> ExitCode {
    if let Err(code) = parse_or_exit("qemu-build", BUILD_USAGE, parse(args)) {
        return code;
    }
    match qemu_binary(&root()) {
        Ok(binary) => {
            println!("{}", binary.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask qemu-build: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask qemu-linux`.
pub fn linux_main(args: &[String]) -> ExitCode {
    if let Err(code) = parse_or_exit("qemu-linux", LINUX_USAGE, parse(args)) {
        return code;
    }
    match linux_guest_check(&root()) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask qemu-linux: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Debian packages of `packages` that are not installed.
pub(crate) fn missing_packages<'a>(packages: &[&'a str]) -> Vec<&'a str> {
    packages
        .iter()
        .copied()
        .filter(|p| {
            tools::output(std::process::Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .map_or(true, |s| !s.contains("install ok installed"))
        })
        .collect()
}

/// Installs the Debian packages of `packages` that are missing.
pub(crate) fn ensure_packages(packages: &[&str], why: &str) -> Result<(), String> {
    let missing = missing_packages(packages);
    if missing.is_empty() {
        Ok(())
    } else {
        tools::apt_install(&missing, why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::line;

    #[test]
    fn commands_take_no_arguments() {
        assert_eq!(parse(&line(&[])), Ok(()));
        assert_eq!(parse(&line(&["x"])), Err(ArgError::Unexpected("x".into())));
    }
}
