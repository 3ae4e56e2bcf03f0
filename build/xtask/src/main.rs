//! Project commands: `cargo xtask run | test | check | gen | image | qemu | qemu-test`.

use std::process::ExitCode;

mod check;
mod generate;
mod image;
mod mutants;
mod run;
mod test;

const USAGE: &str = "usage: cargo xtask <command> [args]
commands:
  check [PATH]   validate a system description (default: system.xml)
  gen [ARGS]     generate per-PD constants from a system description
  image [ARGS]   build the seL4 kernel, the PD programs and the boot image
  mutants [ARGS] mutation testing of teardown, open and the ring reader (not in CI)
  qemu [ARGS]    boot the image under QEMU
  qemu-test      boot the image under QEMU and check the verdict
  run [ARGS]     the main job: the system of system.xml on the simulation (run --help)
  test [--quick] the whole test suite (--quick: workspace tests only)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "check" => check::main(rest),
        "gen" => generate::main(rest),
        "image" => image::image(rest),
        "mutants" => mutants::main(rest),
        "qemu" => image::qemu(rest),
        "qemu-test" => image::qemu_test(rest),
        "run" => run::main(rest),
        "test" => test::main(rest),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("unknown command `{other}`\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
