//! `cargo xtask image | qemu | qemu-test`: the real seL4 image.

use std::process::ExitCode;

pub fn image(_args: &[String]) -> ExitCode {
    eprintln!("xtask image: not built yet");
    ExitCode::FAILURE
}

pub fn qemu(_args: &[String]) -> ExitCode {
    eprintln!("xtask qemu: not built yet");
    ExitCode::FAILURE
}

pub fn qemu_test(_args: &[String]) -> ExitCode {
    eprintln!("xtask qemu-test: not built yet");
    ExitCode::FAILURE
}
