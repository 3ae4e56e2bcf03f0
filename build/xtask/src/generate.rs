//! `cargo xtask gen [--pd NAME] [--out DIR] [PATH]`: write generated Rust source.
//!
//! One file per PD (`<module>.rs`, the PD's constants) plus `system_table.rs` (the whole system
//! for the root task), into `DIR` (default `target/sysdesc`). With `--pd`, only that PD's file.
//! A file whose content is unchanged is not rewritten, so builds that watch it stay quiet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask gen [--pd NAME] [--out DIR] [PATH]   (default PATH: system.xml, DIR: target/sysdesc)";

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    std::fs::write(path, text)?;
    Ok(true)
}

pub fn main(args: &[String]) -> ExitCode {
    let mut pd = None;
    let mut out = PathBuf::from("target/sysdesc");
    let mut path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--pd" | "--out" => {
                let Some(v) = it.next() else {
                    eprintln!("xtask gen: `{a}` needs a value\n{USAGE}");
                    return ExitCode::from(2);
                };
                if a == "--pd" {
                    pd = Some(v.clone());
                } else {
                    out = PathBuf::from(v);
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            flag if flag.starts_with('-') => {
                eprintln!("xtask gen: unknown option `{flag}`\n{USAGE}");
                return ExitCode::from(2);
            }
            p if path.is_none() => path = Some(PathBuf::from(p)),
            extra => {
                eprintln!("xtask gen: unexpected argument `{extra}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let path = path.unwrap_or_else(|| PathBuf::from("system.xml"));
    let sys = match sysdesc::load(&path) {
        Ok(sys) => sys,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            eprintln!(
                "xtask gen: {} is not valid; nothing generated",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let names: Vec<&str> = match &pd {
        Some(name) if sys.pd(name).is_none() => {
            eprintln!(
                "xtask gen: no protection domain \"{name}\" in {}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
        Some(name) => vec![name.as_str()],
        None => sys.pds.iter().map(|p| p.name.as_str()).collect(),
    };
    // Two PD names may map to one module name ("a-b", "a_b"): refuse rather than overwrite.
    let mut files: Vec<(String, String)> = Vec::new();
    for name in &names {
        let file = format!("{}.rs", sysdesc::module_name(name));
        if let Some((_, other)) = files.iter().find(|(f, _)| *f == file) {
            eprintln!("xtask gen: PDs \"{other}\" and \"{name}\" would both be written to {file}");
            return ExitCode::FAILURE;
        }
        files.push((file, name.to_string()));
    }
    if pd.is_none() && files.iter().any(|(f, _)| f == "system_table.rs") {
        eprintln!("xtask gen: a PD's module name clashes with system_table.rs");
        return ExitCode::FAILURE;
    }
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("xtask gen: cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let mut outputs: Vec<(PathBuf, String)> = Vec::new();
    for (file, name) in &files {
        if let Some(text) = sysdesc::generate_pd_constants(&sys, name) {
            outputs.push((out.join(file), text));
        }
    }
    if pd.is_none() {
        outputs.push((
            out.join("system_table.rs"),
            sysdesc::generate_system_table(&sys),
        ));
    }
    let mut written = 0;
    for (file, text) in &outputs {
        match write_if_changed(file, text) {
            Ok(true) => written += 1,
            Ok(false) => {}
            Err(e) => {
                eprintln!("xtask gen: cannot write {}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "xtask gen: {} files in {} ({written} changed)",
        outputs.len(),
        out.display()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_xml() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../system.xml").to_string()
    }

    #[test]
    fn writes_one_file_per_pd_and_the_table() {
        let dir = std::env::temp_dir().join(format!("xtask-gen-{}", std::process::id()));
        let out = dir.display().to_string();
        assert_eq!(
            main(&["--out".into(), out.clone(), repo_xml()]),
            ExitCode::SUCCESS
        );
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "dynmem.rs",
                "heartbeat.rs",
                "hv_host.rs",
                "kvp.rs",
                "net.rs",
                "shutdown.rs",
                "storage.rs",
                "system_table.rs",
                "timesync.rs",
                "vmbus_driver.rs"
            ]
        );
        let net = std::fs::read_to_string(dir.join("net.rs")).unwrap();
        assert!(net.contains("pub mod net {"));
        // An unchanged file keeps its modification time (not rewritten).
        let before = std::fs::metadata(dir.join("net.rs"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            main(&["--pd".into(), "net".into(), "--out".into(), out, repo_xml()]),
            ExitCode::SUCCESS
        );
        let after = std::fs::metadata(dir.join("net.rs"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_pd_fails() {
        assert_eq!(
            main(&[
                "--pd".into(),
                "nobody".into(),
                "--out".into(),
                "/nonexistent-never-written".into(),
                repo_xml()
            ]),
            ExitCode::FAILURE
        );
    }
}
