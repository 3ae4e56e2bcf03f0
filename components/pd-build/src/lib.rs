//! What every program of the image does at build time, written once: link with the image's
//! linker script (`components/pds/link.ld`, beside every program's package), and, for a PD program, generate its configuration
//! (`$OUT_DIR/config.rs`) from the system description `cargo xtask image` builds for.

use std::path::PathBuf;

/// Links the program being built with the image's linker script.
pub fn link_with_image_script() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let script = dir.join("../link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg=-T{}", script.display());
}

/// The whole build script of a PD program: the linker script, then the configuration of the PDs
/// that run this program, from the description named by `SEL4_SYSTEM_DESCRIPTION` or, without
/// it, `default_description` (relative to the program's package: the system it belongs to).
pub fn pd_program(default_description: &str) {
    link_with_image_script();
    sysdesc::config::build_script(default_description);
}
