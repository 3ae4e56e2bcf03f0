//! Project commands: `cargo xtask check | gen | image | qemu | qemu-test | run`.

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <command> [args]\n\
         commands:\n  \
         check [PATH]   validate a system description (default: system.xml)\n"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        return usage();
    };
    let rest = &args[1..];
    match cmd.as_str() {
        _ => {
            let _ = rest;
            usage()
        }
    }
}
