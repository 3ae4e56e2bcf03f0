//! `cargo xtask check [PATH]`: validate a system description (default `system.xml`).
//!
//! Prints every problem as `file:line: message` and exits 1, or prints a one-line summary.
//! Checking takes time linear in the size of the description (see `sysdesc`); the problems are
//! written through one buffer, as a description can have hundreds of thousands of them.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn main(args: &[String]) -> ExitCode {
    let mut path = None;
    for a in args {
        match a.as_str() {
            "-h" | "--help" => {
                println!("usage: cargo xtask check [PATH]   (default: system.xml)");
                return ExitCode::SUCCESS;
            }
            flag if flag.starts_with('-') => {
                eprintln!("xtask check: unknown option `{flag}`");
                return ExitCode::from(2);
            }
            p if path.is_none() => path = Some(PathBuf::from(p)),
            extra => {
                eprintln!("xtask check: unexpected argument `{extra}`");
                return ExitCode::from(2);
            }
        }
    }
    let path = path.unwrap_or_else(|| PathBuf::from("system.xml"));
    match sysdesc::load(&path) {
        Ok(sys) => {
            let clients = sys.vmbus_clients().count();
            let driver = sys
                .vmbus_driver()
                .map_or("no VMBus driver".to_string(), |d| {
                    format!("VMBus driver \"{}\"", d.name)
                });
            println!(
                "{}: ok: {} protection domains, {} memory regions, {} channels, {driver}, {clients} VMBus clients",
                path.display(),
                sys.pds.len(),
                sys.regions.len(),
                sys.channels.len(),
            );
            ExitCode::SUCCESS
        }
        Err(diags) => {
            let mut err = std::io::BufWriter::new(std::io::stderr().lock());
            for d in &diags {
                let _ = writeln!(err, "{d}");
            }
            let _ = writeln!(
                err,
                "{}: {} error{}",
                path.display(),
                diags.len(),
                if diags.len() == 1 { "" } else { "s" }
            );
            let _ = err.flush();
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_xml() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../system.xml").to_string()
    }

    #[test]
    fn repository_description_passes() {
        assert_eq!(main(&[repo_xml()]), ExitCode::SUCCESS);
    }

    #[test]
    fn broken_description_fails() {
        let dir = std::env::temp_dir().join(format!("xtask-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.xml");
        let xml = std::fs::read_to_string(repo_xml())
            .unwrap()
            .replace("priority=\"200\"", "priority=\"90\"");
        std::fs::write(&bad, xml).unwrap();
        assert_eq!(main(&[bad.display().to_string()]), ExitCode::FAILURE);
        assert_eq!(
            main(&[dir.join("missing.xml").display().to_string()]),
            ExitCode::FAILURE
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unknown_option_is_a_usage_error() {
        assert_eq!(main(&["--frobnicate".to_string()]), ExitCode::from(2));
    }
}
