//! Project commands: `cargo xtask bench | check | gen | image | iso | lint | mutants | qemu |
//! qemu-test | run | test`. Every command answers `-h` / `--help` with its usage and does nothing else; an unknown
//! or malformed argument is an error (exit status 2) that names it (see `args`).

use std::process::ExitCode;

mod args;
mod bench;
mod check;
mod generate;
mod image;
mod lint;
mod mutants;
mod qemu_host;
mod run;
mod steps;
mod test;

const USAGE: &str =
    "usage: cargo xtask <command> [args]   (cargo xtask <command> --help: its options)
commands:
  bench [--quick] the ring and driver benchmarks with their baselines, one table of ratios
  check [ARGS]   validate a system description and its VMBus companion
  gen [ARGS]     print each PD program's configuration, generated from a description
  image [ARGS]   build the seL4 kernel, the PD programs and the boot image
  iso [ARGS]     a bootable ISO of the image (GRUB, multiboot) for a Hyper-V VM, smoke-tested
  lint [ARGS]    fmt and clippy over the root workspace and components/pds (what CI runs)
  mutants [ARGS] mutation testing of teardown, open and the ring reader (not in CI)
  qemu [ARGS]    boot the image under QEMU
  qemu-test [ARGS] boot the image(s) under QEMU and check the verdicts
  qemu-build     build the project's patched QEMU (Hyper-V and VMBus under the software CPU)
  qemu-linux     check the patched QEMU with Debian's Linux kernel as the guest
  run [ARGS]     the main job: the system of system.xml on the simulation
  test [--quick] the whole test suite (--quick: workspace tests only)
  help [COMMAND] this text, or the command's usage";

/// The command named `cmd`, if there is one.
fn command(cmd: &str) -> Option<fn(&[String]) -> ExitCode> {
    Some(match cmd {
        "bench" => bench::main,
        "check" => check::main,
        "gen" => generate::main,
        "image" => image::image,
        "iso" => image::iso,
        "lint" => lint::main,
        "mutants" => mutants::main,
        "qemu" => image::qemu,
        "qemu-test" => image::qemu_test,
        "qemu-build" => qemu_host::build_main,
        "qemu-linux" => qemu_host::linux_main,
        "run" => run::main,
        "test" => test::main,
        _ => return None,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    match (cmd.as_str(), rest) {
        ("help" | "--help" | "-h", []) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        ("help" | "--help" | "-h", [name]) if command(name).is_some() => {
            command(name).map_or(ExitCode::FAILURE, |f| f(&["--help".to_string()]))
        }
        ("help" | "--help" | "-h", _) => {
            eprintln!("xtask help: unexpected `{}`\n{USAGE}", rest.join(" "));
            ExitCode::from(2)
        }
        (name, _) => match command(name) {
            Some(f) => f(rest),
            None => {
                eprintln!("unknown command `{name}`\n{USAGE}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    //! Every command answers `--help` without doing anything and refuses what it does not know,
    //! checked through each command's parser (the entry points print and return at once on
    //! both).
    use super::*;
    use crate::args::{ArgError, line};
    use crate::image::Cmd;

    /// A command's parser, reduced to "did it parse, and if not, why".
    type Parser = Box<dyn Fn(&[String]) -> Result<(), ArgError>>;

    /// Each command's parser.
    fn parsers() -> Vec<(&'static str, Parser)> {
        vec![
            ("bench", Box::new(|a| bench::parse(a).map(drop))),
            ("check", Box::new(|a| check::parse(a).map(drop))),
            ("gen", Box::new(|a| generate::parse(a).map(drop))),
            (
                "image",
                Box::new(|a| image::parse_opts(Cmd::Image, a).map(drop)),
            ),
            (
                "iso",
                Box::new(|a| image::parse_opts(Cmd::Iso, a).map(drop)),
            ),
            ("lint", Box::new(|a| lint::parse(a).map(drop))),
            ("mutants", Box::new(|a| mutants::parse(a).map(drop))),
            (
                "qemu",
                Box::new(|a| image::parse_opts(Cmd::Qemu, a).map(drop)),
            ),
            (
                "qemu-test",
                Box::new(|a| image::parse_opts(Cmd::QemuTest, a).map(drop)),
            ),
            ("qemu-build", Box::new(qemu_host::parse)),
            ("qemu-linux", Box::new(qemu_host::parse)),
            ("run", Box::new(|a| run::parse_options(a).map(drop))),
            ("test", Box::new(|a| test::parse(a).map(drop))),
        ]
    }

    #[test]
    fn every_command_has_a_parser_here() {
        let names: Vec<&str> = parsers().iter().map(|(n, _)| *n).collect();
        for line in USAGE.lines().skip(2) {
            let name = line.split_whitespace().next().unwrap();
            assert!(
                name == "help" || names.contains(&name),
                "{name}: no parser test"
            );
            assert!(name == "help" || command(name).is_some(), "{name}");
        }
        assert_eq!(names.len(), USAGE.lines().count() - 3);
    }

    #[test]
    fn help_answers_without_work() {
        for (name, parse) in parsers() {
            for help in ["--help", "-h"] {
                assert_eq!(parse(&line(&[help])), Err(ArgError::Help), "{name} {help}");
            }
            // Also after other arguments, even unknown ones.
            assert_eq!(
                parse(&line(&["--bogus", "--help"])),
                Err(ArgError::Help),
                "{name}"
            );
        }
        // `test --help` in particular never starts the suite.
        assert_eq!(
            command("test").unwrap()(&line(&["--help"])),
            ExitCode::SUCCESS
        );
    }

    #[test]
    fn unknown_arguments_are_errors() {
        for (name, parse) in parsers() {
            assert_eq!(
                parse(&line(&["--bogus"])),
                Err(ArgError::Unknown("--bogus".into())),
                "{name}"
            );
            assert_eq!(
                parse(&line(&["-Z"])),
                Err(ArgError::Unknown("-Z".into())),
                "{name}"
            );
            assert_eq!(
                command(name).unwrap()(&line(&["--bogus"])),
                ExitCode::from(2),
                "{name}"
            );
        }
    }

    #[test]
    fn malformed_values_are_errors() {
        assert_eq!(
            image::parse_opts(Cmd::Qemu, &line(&["--timeout", "soon"])).map(drop),
            Err(ArgError::BadValue {
                option: "--timeout".into(),
                value: "soon".into(),
                expected: "a whole number of seconds".into()
            })
        );
        // `image` does not boot, so it has no timeout.
        assert_eq!(
            image::parse_opts(Cmd::Image, &line(&["--timeout", "5"])).map(drop),
            Err(ArgError::Unknown("--timeout".into()))
        );
        assert!(matches!(
            image::parse_opts(Cmd::Qemu, &line(&["--system", "a", "--system", "b"])),
            Err(ArgError::Conflict(_))
        ));
        assert!(image::parse_opts(Cmd::QemuTest, &line(&["--system=a", "--system", "b"])).is_ok());
        assert_eq!(
            image::parse_opts(Cmd::Image, &line(&["--system"])).map(drop),
            Err(ArgError::MissingValue("--system".into()))
        );
        assert_eq!(
            image::parse_opts(Cmd::Image, &line(&["--bless=yes"])).map(drop),
            Err(ArgError::NoValueExpected("--bless".into()))
        );
    }
}
