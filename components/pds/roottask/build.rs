//! Links with the image's linker script and tracks the generated system table.
fn main() {
    pd_build::link_with_image_script();
    // The system table (written by `cargo xtask image`) is included from this path.
    println!("cargo:rerun-if-env-changed=SEL4_SYSTEM_RS");
    if let Ok(p) = std::env::var("SEL4_SYSTEM_RS") {
        println!("cargo:rerun-if-changed={p}");
    }
}
