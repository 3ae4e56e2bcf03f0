//! Writes a large generated system description to stdout, for timing `cargo xtask check`.
//!
//! `cargo run -p sysdesc --release --example huge_description -- [--channels N] [--pds N]
//! [--maps N] [--clients N] > big.xml` (the shape is described in `tests/common/scale.rs`).

#[path = "../tests/common/scale.rs"]
mod scale;

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut shape = scale::Shape::channels(200_000);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!(
                "usage: huge_description [--channels N] [--pds N] [--maps N] [--clients N] (default: --channels 200000)"
            );
            return ExitCode::SUCCESS;
        }
        let Some(n) = it.next().and_then(|v| v.parse::<usize>().ok()) else {
            eprintln!("huge_description: {flag} needs a number");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--channels" => shape.pds = scale::Shape::channels(n).pds,
            "--pds" => shape.pds = n.max(scale::CHANNELS_PER_PD + 1),
            "--maps" => shape.maps = n,
            "--clients" => shape.clients = n.min(23),
            _ => {
                eprintln!("huge_description: unknown option `{flag}`");
                return ExitCode::from(2);
            }
        }
    }
    let xml = scale::description(shape);
    eprintln!(
        "huge_description: {} PDs, {} channels, {} maps, {} bytes",
        shape.pds + shape.clients + 1,
        shape.channel_count(),
        shape.pds * shape.maps,
        xml.len()
    );
    if std::io::stdout().lock().write_all(xml.as_bytes()).is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
