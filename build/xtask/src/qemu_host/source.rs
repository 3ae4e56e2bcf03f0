//! Debian's QEMU 10.0 source package, fetched once through a private apt configuration, and the
//! project's series applied to a fresh copy of it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::image::tools;

/// Where the source package comes from: Debian trixie (QEMU 10.0.x), read through apt
/// configuration files of our own so the machine's sources stay as they are.
const SOURCES_LIST: &str = "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
                            http://deb.debian.org/debian trixie main\n";

/// The QEMU release the series is written against.
const QEMU_SERIES: &str = "10.0.";

/// The series of `build/qemu/patches/`: its patches in order and a hash of all of it.
#[derive(Debug)]
pub(super) struct Series {
    /// The patch files, in the order of the `series` file.
    pub patches: Vec<PathBuf>,
    /// FNV-1a over the `series` file and every patch (a stamp, not a signature).
    pub hash: String,
}

/// 64-bit FNV-1a, continued from `h`.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The patch names of a `series` file: one a line, blank lines and `#` comments skipped.
pub(super) fn series_names(text: &str) -> Vec<&str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Reads `build/qemu/patches/series` and the patches it names.
pub(super) fn series(root: &Path) -> Result<Series, String> {
    let dir = root.join("build/qemu/patches");
    let list = dir.join("series");
    let text = std::fs::read_to_string(&list).map_err(|e| format!("{}: {e}", list.display()))?;
    let mut h = fnv1a(0xcbf2_9ce4_8422_2325, text.as_bytes());
    let mut patches = Vec::new();
    for name in series_names(&text) {
        let path = dir.join(name);
        let body = std::fs::read(&path)
            .map_err(|e| format!("{} (named in {}): {e}", path.display(), list.display()))?;
        h = fnv1a(h, &body);
        patches.push(path);
    }
    if patches.is_empty() {
        return Err(format!("{} names no patch", list.display()));
    }
    Ok(Series {
        patches,
        hash: format!("{h:016x}"),
    })
}

/// The orig tarball of a source folder, if one is there (`qemu_10.0.13+ds.orig.tar.xz`).
fn find_tarball(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("qemu_") && n.ends_with(".orig.tar.xz"))
        })
        .collect();
    found.sort();
    found.pop()
}

/// apt options that point every configuration and state path into `apt`.
fn apt_private(apt: &Path) -> Vec<String> {
    vec![
        format!(
            "-oDir::Etc::SourceList={}",
            apt.join("sources.list").display()
        ),
        format!(
            "-oDir::Etc::SourceParts={}",
            apt.join("sources.list.d").display()
        ),
        format!("-oDir::State::Lists={}", apt.join("lists").display()),
        format!("-oDir::Cache={}", apt.join("cache").display()),
    ]
}

/// The orig tarball of Debian's QEMU 10.0 source package, downloaded into `out/src` the first
/// time (checked by apt against the archive's signed index).
pub(super) fn orig_tarball(out: &Path) -> Result<PathBuf, String> {
    let src = out.join("src");
    if let Some(t) = find_tarball(&src) {
        return Ok(t);
    }
    let apt = out.join("apt");
    for d in [
        src.clone(),
        apt.join("sources.list.d"),
        apt.join("lists/partial"),
        apt.join("cache/archives/partial"),
    ] {
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    tools::write_if_changed(&apt.join("sources.list"), SOURCES_LIST)?;
    let opts = apt_private(&apt);
    tools::run(Command::new("apt-get").args(&opts).args(["-q", "update"]))
        .map_err(|e| format!("reading Debian trixie's source index: {e}"))?;
    tools::run(
        Command::new("apt-get")
            .args(&opts)
            .args(["-q", "source", "--download-only", "qemu"])
            .current_dir(&src),
    )
    .map_err(|e| format!("downloading Debian's QEMU source package: {e}"))?;
    let tarball = find_tarball(&src).ok_or_else(|| {
        format!(
            "apt-get source left no qemu orig tarball in {}",
            src.display()
        )
    })?;
    let name = tarball.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.starts_with(&format!("qemu_{QEMU_SERIES}")) {
        return Err(format!(
            "{name}: the series is written for QEMU {QEMU_SERIES}x; remove it and point \
             SOURCES_LIST at a suite that has QEMU {QEMU_SERIES}x"
        ));
    }
    Ok(tarball)
}

/// The line of `meson.build` that unpacks the edk2 firmware blobs, which Debian's `+ds`
/// tarball does not ship (we do not install firmware either).
const EDK2_UNPACK: &str = "    unpack_edk2_blobs = bzip2.found()";

/// A fresh source tree from `tarball` with the series applied, in `out/tree`; kept while the
/// series and the tarball are the same (`.vmbus-series` holds what it was made from).
pub(super) fn prepare_tree(out: &Path, series: &Series, tarball: &Path) -> Result<PathBuf, String> {
    let tree = out.join("tree");
    let stamp = tree.join(".vmbus-series");
    let key = format!("{} {}", series.hash, tarball.display());
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == key) {
        return Ok(tree);
    }
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    }
    std::fs::create_dir_all(&tree).map_err(|e| format!("{}: {e}", tree.display()))?;
    tools::run(
        Command::new("tar")
            .arg("-xf")
            .arg(tarball)
            .arg("-C")
            .arg(&tree)
            .arg("--strip-components=1"),
    )?;
    let meson = tree.join("meson.build");
    let text = std::fs::read_to_string(&meson).map_err(|e| format!("{}: {e}", meson.display()))?;
    if !text.contains(EDK2_UNPACK) {
        return Err(format!(
            "{}: no `{}` line to turn off (a QEMU other than 10.0?)",
            meson.display(),
            EDK2_UNPACK.trim()
        ));
    }
    std::fs::write(
        &meson,
        text.replace(EDK2_UNPACK, "    unpack_edk2_blobs = false"),
    )
    .map_err(|e| format!("{}: {e}", meson.display()))?;
    for patch in &series.patches {
        tools::run(
            Command::new("patch")
                .args(["-p1", "--batch", "--forward", "--quiet", "-i"])
                .arg(patch)
                .current_dir(&tree),
        )
        .map_err(|e| format!("{} does not apply: {e}", patch.display()))?;
    }
    std::fs::write(&stamp, key).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_file_lists_patches_in_order() {
        assert_eq!(
            series_names("# the series\n0001-a.patch\n\n  0002-b.patch  \n"),
            ["0001-a.patch", "0002-b.patch"]
        );
    }

    #[test]
    fn the_repository_series_names_existing_patches_and_its_hash_follows_them() {
        let root = crate::image::root();
        let s = series(&root).unwrap();
        assert!(s.patches.len() >= 5, "{:?}", s.patches);
        assert_eq!(s.hash, series(&root).unwrap().hash);
        // Any change to a patch changes the stamp.
        assert_ne!(fnv1a(1, b"a"), fnv1a(1, b"b"));
        for p in &s.patches {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(
                text.starts_with("From "),
                "{}: not git format-patch",
                p.display()
            );
            assert!(text.contains("\nSigned-off-by: "), "{}", p.display());
        }
    }
}
