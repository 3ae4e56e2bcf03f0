//! Builds the seL4 5.0.0 kernel: a Python virtual environment with kconfiglib, the configuration
//! header from our fragment, the kernel's own Makefile out of tree, and the 32-bit ELF copy that
//! QEMU's multiboot loader wants (docs/sel4.md#building-the-image).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tools;

/// Our kernel configuration: x86-64 PC, debug kernel with printing (the image's log), local APIC
/// in xAPIC mode and no PCID or IOMMU (QEMU's software CPU lacks x2APIC and INVPCID), and a root
/// CNode of 2^16 slots (system.xml's pool alone takes 8192 frames plus their copies).
pub const FRAGMENT: &str = "CONFIG_ARCH_X86=y
CONFIG_ARCH_X86_64=y
CONFIG_PLAT_PC99=y
CONFIG_DEBUG_BUILD=y
CONFIG_PRINTING=y
CONFIG_XAPIC=y
CONFIG_ROOT_CNODE_SIZE_BITS=16
# CONFIG_IOMMU is not set
# CONFIG_COLOUR_PRINTING is not set
# CONFIG_SUPPORT_PCID is not set
";

/// Python packages the kernel's build tools need.
const PY_PACKAGES: &[&str] = &["kconfiglib", "tempita", "ply", "six"];

/// Writes autoconf.h from the fragment with kconfiglib.
const KCONFIG_SCRIPT: &str = "import sys, kconfiglib
k = kconfiglib.Kconfig(sys.argv[1], warn_to_stderr=False)
k.load_config(sys.argv[2])
k.write_autoconf(sys.argv[3])
";

/// The warnings of the kernel's Makefile without `error`: gcc 12 warns where the 2017 code base
/// did not, and the Makefile's own `-Werror` would stop the build.
const WARNINGS: &str = "all strict-prototypes missing-prototypes nested-externs missing-declarations undef pointer-arith no-nonnull";

/// The outputs of a kernel build.
#[derive(Debug)]
pub struct Kernel {
    /// The 32-bit copy for multiboot.
    pub elf32: PathBuf,
    /// The generated configuration header.
    pub autoconf: PathBuf,
}

/// Creates the virtual environment under `out/venv` and installs the Python packages.
pub fn venv(out: &Path) -> Result<PathBuf, String> {
    let venv = out.join("venv");
    tools::python_venv(
        &venv,
        PY_PACKAGES,
        "the kernel's configuration needs a Python virtual environment",
    )?;
    Ok(venv)
}

/// Generates `out/kernel/gen/autoconf.h` from [`FRAGMENT`].
pub fn configure(sel4: &Path, venv: &Path, out: &Path) -> Result<PathBuf, String> {
    let gen_dir = out.join("kernel/gen");
    let fragment = gen_dir.join("fragment.config");
    tools::write_if_changed(&fragment, FRAGMENT)?;
    let fresh = gen_dir.join("autoconf.h.new");
    tools::run(
        Command::new(venv.join("bin/python"))
            .args(["-c", KCONFIG_SCRIPT])
            .arg(sel4.join("Kconfig"))
            .arg(&fragment)
            .arg(&fresh)
            .env("KERNEL_PATH", sel4)
            .env("KERNEL_ROOT_PATH", sel4)
            .current_dir(sel4),
    )?;
    let text = std::fs::read_to_string(&fresh).map_err(|e| e.to_string())?;
    let autoconf = gen_dir.join("autoconf.h");
    if tools::write_if_changed(&autoconf, &text)? {
        // The kernel's Makefile does not track autoconf.h: a new configuration needs a clean build.
        let _ = std::fs::remove_dir_all(out.join("kernel/build"));
    }
    Ok(autoconf)
}

/// Runs the kernel's Makefile and makes the 32-bit copy.
pub fn build(sel4: &Path, venv: &Path, autoconf: &Path, out: &Path) -> Result<Kernel, String> {
    tools::ensure("make", "make", "the kernel is built with make")?;
    tools::ensure("gcc", "gcc", "the kernel is C")?;
    tools::ensure("objcopy", "binutils", "multiboot needs a 32-bit ELF")?;
    let dir = out.join("kernel/build");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let inc = autoconf
        .parent()
        .ok_or("bad autoconf path")?
        .display()
        .to_string();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    // gcc 12 prints a few dozen warnings about the 2017 code; keep them in a log, and only a
    // progress line on the terminal.
    let log_path = out.join("kernel/make.log");
    tools::run_logged(
        Command::new("make")
            .arg("-f")
            .arg(sel4.join("Makefile"))
            .arg(format!("SOURCE_ROOT={}", sel4.display()))
            .args([
                "ARCH=x86",
                "SEL4_ARCH=x86_64",
                "PLAT=pc99",
                "DEBUG=1",
                "CIRCULAR_INCLUDES=true",
                "XMLLINT_PATH=true",
            ])
            .arg(format!("WARNINGS={WARNINGS}"))
            .arg(format!("-j{jobs}"))
            .arg("kernel.elf")
            .env("PATH", path)
            .env("VIRTUAL_ENV", venv)
            .env("CPPFLAGS", format!("-I{inc}"))
            .env(
                "CFLAGS",
                format!("-I{inc} -fno-pie -fcf-protection=none -fno-stack-protector -mno-red-zone"),
            )
            .env("LDFLAGS", "-no-pie")
            .current_dir(&dir),
        &log_path,
    )?;
    let elf = dir.join("kernel.elf");
    let elf32 = out.join("kernel32.elf");
    tools::run(
        Command::new("objcopy")
            .args(["-O", "elf32-i386"])
            .arg(&elf)
            .arg(&elf32),
    )?;
    Ok(Kernel {
        elf32,
        autoconf: autoconf.to_path_buf(),
    })
}
