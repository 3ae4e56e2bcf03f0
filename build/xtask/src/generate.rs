//! `cargo xtask gen [--program NAME] [--out DIR] [PATH]`: the configuration each PD program's
//! build script generates from a system description (default `system.xml`) and its companion.
//!
//! The text is exactly the `$OUT_DIR/config.rs` the program's `build.rs` writes when the image is
//! built for that description (`sysdesc::config::program_source`, the same function): with
//! `--program`, that program's; without, every program of the description. It goes to standard
//! output, or with `--out DIR` to `DIR/<program>.rs` (a file whose content is unchanged is not
//! rewritten).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::args::{Arg, ArgError, Args, parse_or_exit};

/// Usage of `cargo xtask gen`.
pub(crate) const USAGE: &str = "usage: cargo xtask gen [--program NAME] [--out DIR] [PATH]
Prints the configuration each PD program's build script generates from a system description
and its VMBus companion (exactly its $OUT_DIR/config.rs when the image is built for PATH).
  PATH            the description (default: system.xml)
  --program NAME  only this program's (a program_image NAME.elf of the description)
  --out DIR       write DIR/<program>.rs instead (unchanged files are not rewritten)
  -h, --help      this text";

/// What to generate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Opts {
    /// The description.
    pub path: PathBuf,
    /// One program only.
    pub program: Option<String>,
    /// The output folder (none: standard output).
    pub out: Option<PathBuf>,
}

/// Parses the arguments after `gen`.
pub(crate) fn parse(args: &[String]) -> Result<Opts, ArgError> {
    let mut args = Args::new(args)?;
    let mut o = Opts {
        path: PathBuf::from("system.xml"),
        program: None,
        out: None,
    };
    let mut path = None;
    while let Some(a) = args.next()? {
        match a {
            Arg::Long("--program") => o.program = Some(args.value("--program")?.to_string()),
            Arg::Long("--out") => o.out = Some(PathBuf::from(args.value("--out")?)),
            Arg::Pos(p) if path.is_none() => path = Some(PathBuf::from(p)),
            other => return Err(other.unexpected()),
        }
    }
    if let Some(p) = path {
        o.path = p;
    }
    Ok(o)
}

fn write_if_changed(path: &Path, text: &str) -> std::io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    std::fs::write(path, text)?;
    Ok(true)
}

pub fn main(args: &[String]) -> ExitCode {
    let Opts { path, program, out } = match parse_or_exit("gen", USAGE, parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let programs = match &program {
        Some(p) => vec![p.clone()],
        None => match sysdesc::load(&path) {
            Ok(sys) => {
                let mut v: Vec<String> = Vec::new();
                for pd in &sys.pds {
                    let p = sysdesc::config::program_name(&pd.program_image.path).to_string();
                    if !v.contains(&p) {
                        v.push(p);
                    }
                }
                v
            }
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
        },
    };
    let mut texts = Vec::new();
    for p in &programs {
        match sysdesc::config::program_source(&path, p) {
            Ok(text) => texts.push((p, text)),
            Err(e) => {
                eprintln!("xtask gen: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let Some(out) = out else {
        for (_, text) in &texts {
            print!("{text}");
        }
        return ExitCode::SUCCESS;
    };
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("xtask gen: cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    let mut written = 0;
    for (p, text) in &texts {
        let file = out.join(format!("{p}.rs"));
        match write_if_changed(&file, text) {
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
        texts.len(),
        out.display()
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(file: &str) -> String {
        format!("{}/../../{file}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn writes_one_file_per_program_as_the_build_scripts_do() {
        let dir = std::env::temp_dir().join(format!("xtask-gen-{}", std::process::id()));
        let out = dir.display().to_string();
        let e2e = repo("build/qemu-e2e.xml");
        assert_eq!(
            main(&["--out".into(), out.clone(), e2e.clone()]),
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
                "echo-client-a.rs",
                "echo-client-b.rs",
                "hv-host-pd.rs",
                "vmbus-driver-pd.rs"
            ]
        );
        let driver = std::fs::read_to_string(dir.join("vmbus-driver-pd.rs")).unwrap();
        assert_eq!(
            driver,
            sysdesc::config::program_source(Path::new(&e2e), "vmbus-driver-pd").unwrap()
        );
        // An unchanged file keeps its modification time (not rewritten).
        let before = std::fs::metadata(dir.join("vmbus-driver-pd.rs"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            main(&[
                "--program".into(),
                "vmbus-driver-pd".into(),
                "--out".into(),
                out,
                e2e
            ]),
            ExitCode::SUCCESS
        );
        let after = std::fs::metadata(dir.join("vmbus-driver-pd.rs"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(before, after);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_program_no_pd_runs_fails() {
        assert_eq!(
            main(&[
                "--program".into(),
                "nobody".into(),
                "--out".into(),
                "/nonexistent-never-written".into(),
                repo("system.xml")
            ]),
            ExitCode::FAILURE
        );
    }
}
