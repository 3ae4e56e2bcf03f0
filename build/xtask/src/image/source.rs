//! Obtains the seL4 5.0.0 kernel source through cargo: the crates.io package `sel4-sys` 0.0.28
//! carries it (`build/sel4-source/Cargo.toml` pins it), and it is copied out of the registry
//! cache, which is never modified.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::tools;

/// The pinned package and version.
const PACKAGE: &str = "sel4-sys";
const VERSION: &str = "0.0.28";

/// Fetches the package (a no-op when cached) and returns the `seL4/` folder in the registry.
pub fn locate(root: &Path) -> Result<PathBuf, String> {
    let manifest = root.join("build/sel4-source/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // --locked keeps the pinned lock file; fetch needs the network only the first time.
    tools::run(
        Command::new(&cargo)
            .args(["fetch", "--locked", "--manifest-path"])
            .arg(&manifest),
    )
    .map_err(|e| {
        format!("cannot fetch the seL4 source ({PACKAGE} {VERSION} from crates.io): {e}")
    })?;
    let json = tools::output(
        Command::new(&cargo)
            .args([
                "metadata",
                "--offline",
                "--locked",
                "--format-version",
                "1",
                "--manifest-path",
            ])
            .arg(&manifest),
    )?;
    // The manifest path of the package: find `"name":"sel4-sys","version":"0.0.28"` and the
    // `manifest_path` of that object. The JSON is cargo's own; a small scan avoids a JSON crate.
    let key = format!("\"name\":\"{PACKAGE}\",\"version\":\"{VERSION}\"");
    let at = json
        .find(&key)
        .ok_or(format!("cargo metadata does not list {PACKAGE} {VERSION}"))?;
    let rest = &json[at..];
    let mp = rest
        .find("\"manifest_path\":\"")
        .ok_or("cargo metadata: no manifest_path")?
        + 17;
    let end = rest[mp..]
        .find('"')
        .ok_or("cargo metadata: bad manifest_path")?;
    let dir = Path::new(&rest[mp..mp + end])
        .parent()
        .ok_or("bad manifest path")?
        .join("seL4");
    if !dir.join("Makefile").is_file() || !dir.join("libsel4").is_dir() {
        return Err(format!("{} does not hold the seL4 source", dir.display()));
    }
    Ok(dir)
}

/// Copies the source to `dest` once (kept between runs so that make rebuilds incrementally).
pub fn copy(src: &Path, dest: &Path) -> Result<(), String> {
    let stamp = dest.join(".copied-from");
    let want = src.display().to_string();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dest);
    let parent = dest.parent().ok_or("bad destination")?;
    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    tools::run(Command::new("cp").arg("-R").arg(src).arg(dest))?;
    // The registry copy is read-only for us; make the build copy writable (make regenerates headers).
    tools::run(Command::new("chmod").args(["-R", "u+w"]).arg(dest))?;
    std::fs::write(&stamp, want).map_err(|e| e.to_string())
}
