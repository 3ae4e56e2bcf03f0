//! Links with the image's linker script and generates this program's configuration
//! (`$OUT_DIR/config.rs`) from the system description `cargo xtask image` builds (the variable
//! `SEL4_SYSTEM_DESCRIPTION`; without it, the system this program belongs to:
//! `build/qemu-e2e.xml`).
fn main() {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let script = dir.join("../link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg=-T{}", script.display());
    sysdesc::config::build_script("../../../build/qemu-e2e.xml");
}
