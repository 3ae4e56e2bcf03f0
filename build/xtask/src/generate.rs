//! `cargo xtask gen`.

use std::process::ExitCode;

pub fn main(_args: &[String]) -> ExitCode {
    eprintln!("xtask gen: not built yet");
    ExitCode::FAILURE
}
