//! Obtains the seL4 5.0.0 kernel source through cargo: the crates.io package `sel4-sys` 0.0.28
//! carries it (`build/sel4-source/Cargo.toml` pins it), and it is copied out of the registry
//! cache, which is never modified. Our patches (`build/sel4-patches/*.patch`, in name order; why
//! each exists: `build/sel4-patches/README.md`) are applied to the copy with `patch -p1`.

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

/// Where the patches to the kernel source live, relative to the repository root.
pub const PATCHES: &str = "build/sel4-patches";

/// The patches to apply, in name order, with their contents.
fn patches(dir: &Path) -> Result<Vec<(PathBuf, String)>, String> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "patch"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((p, text))
        })
        .collect()
}

/// 64-bit FNV-1a: a stable hash for the stamp (not for security; it only has to change when a
/// patch does).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the copy at `dest` was made from: the registry folder, then one line per patch with its
/// name and the hash of its text.
fn stamp(src: &Path, patches: &[(PathBuf, String)]) -> String {
    let mut s = src.display().to_string();
    for (path, text) in patches {
        let name = path.file_name().map_or("?".into(), |n| n.to_string_lossy());
        s.push_str(&format!(
            "\npatch {name} fnv1a64 {:016x}",
            fnv1a(text.as_bytes())
        ));
    }
    s
}

/// Copies the source to `dest` and applies the patches, once (kept between runs so that make
/// rebuilds incrementally). A different registry folder or a changed, added or removed patch
/// makes a fresh copy, and deletes the kernel's build folder (`dest/../kernel/build`) so that
/// nothing built from the old source survives.
pub fn copy(src: &Path, dest: &Path) -> Result<(), String> {
    let patches = patches(&super::root().join(PATCHES))?;
    let stamp_path = dest.join(".copied-from");
    let want = stamp(src, &patches);
    if std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == want) {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(dest);
    let parent = dest.parent().ok_or("bad destination")?;
    let _ = std::fs::remove_dir_all(parent.join("kernel/build"));
    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    tools::run(Command::new("cp").arg("-R").arg(src).arg(dest))?;
    // The registry copy is read-only for us; make the build copy writable (make regenerates headers).
    tools::run(Command::new("chmod").args(["-R", "u+w"]).arg(dest))?;
    if !patches.is_empty() {
        tools::ensure(
            "patch",
            "patch",
            "our changes to the seL4 source are patches",
        )?;
    }
    for (path, _) in &patches {
        let applied = tools::run(
            Command::new("patch")
                .args(["-p1", "--batch", "--forward", "--quiet", "-d"])
                .arg(dest)
                .arg("-i")
                .arg(path),
        );
        if let Err(e) = applied {
            // No stamp: the next run starts again from a fresh copy.
            let _ = std::fs::remove_dir_all(dest);
            return Err(format!(
                "{} does not apply to seL4 5.0.0: {e}",
                path.display()
            ));
        }
    }
    std::fs::write(&stamp_path, want).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_changes_with_any_patch_text() {
        let src = Path::new("/registry/sel4-sys-0.0.28/seL4");
        let one = |text: &str| vec![(PathBuf::from("p/0001-a.patch"), text.to_string())];
        assert_eq!(stamp(src, &[]), "/registry/sel4-sys-0.0.28/seL4");
        assert_eq!(stamp(src, &one("+x\n")), stamp(src, &one("+x\n")));
        assert_ne!(stamp(src, &one("+x\n")), stamp(src, &one("+y\n")));
        assert_ne!(stamp(src, &one("+x\n")), stamp(src, &[]));
        assert!(stamp(src, &one("")).ends_with("patch 0001-a.patch fnv1a64 cbf29ce484222325"));
    }

    #[test]
    fn the_patches_of_the_repository_are_found_in_name_order() {
        let found = patches(&crate::image::root().join(PATCHES)).unwrap();
        let names: Vec<_> = found
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert!(names.iter().any(|n| n == "0001-x86-hyperv-service.patch"));
    }
}
