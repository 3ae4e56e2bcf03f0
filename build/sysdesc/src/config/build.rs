//! The PD programs' build scripts: the configuration of the PDs that run the program, from the
//! description the image is built for.

use std::path::{Path, PathBuf};

use super::{program_configs, render};

/// The environment variable naming the system description a PD program is built for
/// (`cargo xtask image` sets it; without it a program takes the description it belongs to).
pub const DESCRIPTION_ENV: &str = "SEL4_SYSTEM_DESCRIPTION";

/// The generated source of `program` for the description at `path` (and its companion), or
/// why there is none: the description is invalid, or none of its PDs runs the program.
pub fn program_source(path: &Path, program: &str) -> Result<String, String> {
    let sys = crate::load(path).map_err(|diags| {
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        format!(
            "{}: invalid system description:\n{}",
            path.display(),
            lines.join("\n")
        )
    })?;
    let configs = program_configs(&sys, program);
    if configs.is_empty() {
        return Err(format!(
            "no protection domain of {} runs program `{program}` (program_image path=\"{program}.elf\")",
            path.display()
        ));
    }
    Ok(render(&sys, &configs))
}

/// The whole build script of a PD program: reads the description named by [`DESCRIPTION_ENV`]
/// (default: `default_description`, relative to the package), writes `$OUT_DIR/config.rs` for
/// the program `CARGO_PKG_NAME`, and tells cargo when to run again. On a problem it prints it and
/// fails the build.
pub fn build_script(default_description: &str) {
    println!("cargo:rerun-if-env-changed={DESCRIPTION_ENV}");
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let path = match std::env::var_os(DESCRIPTION_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => manifest.join(default_description),
    };
    let companion = crate::companion_path(&path);
    println!("cargo:rerun-if-changed={}", path.display());
    if companion.exists() {
        println!("cargo:rerun-if-changed={}", companion.display());
    }
    let program = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("config.rs");
    let written = program_source(&path, &program).and_then(|text| {
        if std::fs::read_to_string(&out).is_ok_and(|old| old == text) {
            return Ok(());
        }
        std::fs::write(&out, text).map_err(|e| format!("{}: {e}", out.display()))
    });
    if let Err(e) = written {
        eprintln!("error: the configuration of `{program}`: {e}");
        std::process::exit(1);
    }
}
