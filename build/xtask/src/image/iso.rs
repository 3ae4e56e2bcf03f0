//! `cargo xtask iso`: a bootable ISO of the image for a Hyper-V Generation 1 VM (BIOS firmware,
//! so GRUB's PC platform), which loads the seL4 kernel and the root task by multiboot, exactly
//! as QEMU's `-kernel`/`-initrd` do in `qemu-test`. `grub-mkrescue` (Debian's grub-pc-bin,
//! xorriso and mtools, installed when missing) writes it to `build/out/vmbus-sel4.iso`.
//!
//! The smoke test boots the ISO under QEMU from its CD-ROM drive and checks that the kernel and
//! the root task came up from it (and, under the project's patched QEMU with a VMBus host, that
//! the kernel found Hyper-V).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Image, tools};

/// The GRUB configuration: no menu delay, the serial console (Hyper-V's COM1, a named pipe on
/// the host), and the multiboot entry.
const GRUB_CFG: &str = "set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
menuentry \"seL4 VMBus driver\" {
    multiboot /boot/sel4/kernel.elf
    module /boot/sel4/roottask.elf roottask
    boot
}
";

/// Builds the ISO of `img` under `out`; its path.
pub fn build(img: &Image, out: &Path) -> Result<PathBuf, String> {
    if !Path::new("/usr/lib/grub/i386-pc").is_dir() {
        tools::apt_install(
            &["grub-pc-bin", "grub-common"],
            "the ISO boots through GRUB's PC (BIOS) platform, as a Hyper-V Generation 1 VM does",
        )?;
    }
    tools::ensure(
        "xorriso",
        "xorriso",
        "grub-mkrescue writes the ISO with xorriso",
    )?;
    tools::ensure(
        "mformat",
        "mtools",
        "grub-mkrescue builds its EFI image with mtools",
    )?;
    let tree = out.join("iso");
    let _ = std::fs::remove_dir_all(&tree);
    let boot = tree.join("boot");
    let sel4 = boot.join("sel4");
    let grub = boot.join("grub");
    for d in [&sel4, &grub] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let copy = |from: &Path, to: PathBuf| {
        std::fs::copy(from, &to)
            .map(|_| ())
            .map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))
    };
    copy(&img.kernel32, sel4.join("kernel.elf"))?;
    copy(&img.roottask, sel4.join("roottask.elf"))?;
    std::fs::write(grub.join("grub.cfg"), GRUB_CFG).map_err(|e| e.to_string())?;
    let iso = out.join("vmbus-sel4.iso");
    tools::run_logged(
        Command::new("grub-mkrescue").arg("-o").arg(&iso).arg(&tree),
        &out.join("iso.log"),
    )?;
    Ok(iso)
}
