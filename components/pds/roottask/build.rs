//! Links with the image's linker script and tracks the generated system table.
fn main() {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let script = dir.join("../link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rustc-link-arg=-T{}", script.display());
    // The system table (written by `cargo xtask image`) is included from this path.
    println!("cargo:rerun-if-env-changed=SEL4_SYSTEM_RS");
    if let Ok(p) = std::env::var("SEL4_SYSTEM_RS") {
        println!("cargo:rerun-if-changed={p}");
    }
}
