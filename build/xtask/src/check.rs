//! `cargo xtask check [PATH] [--vmbus PATH]`: validate a system description (default
//! `system.xml`) and its VMBus companion (default: `<stem>.vmbus.xml` beside it, if present).
//!
//! Prints every problem as `file:line: message` (the file being the description or the companion,
//! whichever the problem is in) and exits 1, or prints a one-line summary. Checking takes time
//! linear in the size of the description (see `sysdesc`); the problems are written through one
//! buffer, as a description can have hundreds of thousands of them.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::args::{Arg, ArgError, Args, parse_or_exit};

/// Usage of `cargo xtask check`.
pub(crate) const USAGE: &str = "usage: cargo xtask check [PATH] [--vmbus PATH]
Validates a system description (a plain Microkit file) and its VMBus companion, and the
companion's references into the description; prints every problem as file:line: message.
  PATH          the description (default: system.xml)
  --vmbus PATH  the companion (default: <stem>.vmbus.xml beside PATH, if it exists; without one
                the system has no VMBus wiring)
  -h, --help    this text";

/// What to check.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Opts {
    /// The description.
    pub path: PathBuf,
    /// The companion, if named.
    pub vmbus: Option<PathBuf>,
}

/// Parses the arguments after `check`.
pub(crate) fn parse(args: &[String]) -> Result<Opts, ArgError> {
    let mut args = Args::new(args)?;
    let mut path = None;
    let mut vmbus = None;
    while let Some(a) = args.next()? {
        match a {
            Arg::Long("--vmbus") => vmbus = Some(PathBuf::from(args.value("--vmbus")?)),
            Arg::Pos(p) if path.is_none() => path = Some(PathBuf::from(p)),
            other => return Err(other.unexpected()),
        }
    }
    Ok(Opts {
        path: path.unwrap_or_else(|| PathBuf::from("system.xml")),
        vmbus,
    })
}

pub fn main(args: &[String]) -> ExitCode {
    let Opts { path, vmbus } = match parse_or_exit("check", USAGE, parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let vmbus = vmbus.or_else(|| {
        let beside = sysdesc::companion_path(&path);
        beside.exists().then_some(beside)
    });
    match sysdesc::load_pair(&path, vmbus.as_deref()) {
        Ok(sys) => {
            let wiring = match &vmbus {
                None => format!(
                    "no VMBus wiring (no {} beside it)",
                    sysdesc::companion_name(&path.display().to_string())
                ),
                Some(v) => {
                    let driver = sys
                        .vmbus_driver()
                        .map_or("no VMBus driver".to_string(), |d| {
                            format!("VMBus driver \"{}\"", d.name)
                        });
                    let host = sys
                        .vmbus_host()
                        .map_or(String::new(), |h| format!(", host \"{}\"", h.name));
                    format!(
                        "{}: ok: {driver}{host}, {} VMBus clients",
                        v.display(),
                        sys.vmbus_clients().count()
                    )
                }
            };
            println!(
                "{}: ok: {} protection domains, {} memory regions, {} channels; {wiring}",
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

    fn repo(file: &str) -> String {
        format!("{}/../../{file}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn repository_descriptions_pass() {
        for d in ["system.xml", "build/qemu-test.xml", "build/qemu-e2e.xml"] {
            assert_eq!(main(&[repo(d)]), ExitCode::SUCCESS, "{d}");
        }
    }

    /// A scratch folder with copies of system.xml and its companion, edited by `edit`.
    fn scratch(name: &str, edit: impl Fn(String, String) -> (String, String)) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-check-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let xml = std::fs::read_to_string(repo("system.xml")).unwrap();
        let vm = std::fs::read_to_string(repo("system.vmbus.xml")).unwrap();
        let (xml, vm) = edit(xml, vm);
        std::fs::write(dir.join("system.xml"), xml).unwrap();
        std::fs::write(dir.join("system.vmbus.xml"), vm).unwrap();
        dir
    }

    #[test]
    fn broken_description_fails() {
        let dir = scratch("bad", |xml, vm| {
            (xml.replace("priority=\"200\"", "priority=\"90\""), vm)
        });
        let bad = dir.join("system.xml").display().to_string();
        assert_eq!(main(&[bad]), ExitCode::FAILURE);
        assert_eq!(
            main(&[dir.join("missing.xml").display().to_string()]),
            ExitCode::FAILURE
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_companion_beside_the_description_is_checked_or_named() {
        let dir = scratch("companion", |xml, vm| {
            (xml, vm.replace("pool_pages=\"8192\"", "pool_pages=\"64\""))
        });
        let xml = dir.join("system.xml").display().to_string();
        // Found beside the description: its wrong pool size fails the check.
        assert_eq!(main(std::slice::from_ref(&xml)), ExitCode::FAILURE);
        // Named with --vmbus: the repository's own companion passes.
        assert_eq!(
            main(&[xml.clone(), "--vmbus".into(), repo("system.vmbus.xml")]),
            ExitCode::SUCCESS
        );
        // Without any companion the description is a system without VMBus wiring.
        std::fs::remove_file(dir.join("system.vmbus.xml")).unwrap();
        assert_eq!(main(&[xml]), ExitCode::SUCCESS);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn options_name_the_description_and_the_companion() {
        let line = crate::args::line;
        assert_eq!(
            parse(&line(&["a.xml", "--vmbus", "b.xml"])),
            Ok(Opts {
                path: "a.xml".into(),
                vmbus: Some("b.xml".into())
            })
        );
        assert_eq!(
            parse(&[]),
            Ok(Opts {
                path: "system.xml".into(),
                vmbus: None
            })
        );
        assert_eq!(
            parse(&line(&["--vmbus"])),
            Err(ArgError::MissingValue("--vmbus".into()))
        );
        assert_eq!(
            parse(&line(&["a.xml", "b.xml"])),
            Err(ArgError::Unexpected("b.xml".into()))
        );
        assert_eq!(main(&line(&["--frobnicate"])), ExitCode::from(2));
    }
}
