//! Writes a large generated system description to stdout, for timing `cargo xtask check`.
//!
//! `cargo run -p sysdesc --release --example huge_description -- [--channels N] [--pds N]
//! [--maps N] [--clients N] [--vmbus big.vmbus.xml] > big.xml` (the shape is described in
//! `tests/common/scale.rs`; `--vmbus` also writes the VMBus companion, for a description named
//! `big.xml`).

#[path = "../tests/common/scale.rs"]
mod scale;

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut shape = scale::Shape::channels(200_000);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    let mut vmbus = None;
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!(
                "usage: huge_description [--channels N] [--pds N] [--maps N] [--clients N] [--vmbus PATH] (default: --channels 200000)"
            );
            return ExitCode::SUCCESS;
        }
        if flag == "--vmbus" {
            let Some(path) = it.next() else {
                eprintln!("huge_description: --vmbus needs a path");
                return ExitCode::from(2);
            };
            vmbus = Some(std::path::PathBuf::from(path));
            continue;
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
    if let Some(path) = &vmbus {
        let stem = path
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".vmbus.xml"))
            .unwrap_or("big");
        if let Err(e) = std::fs::write(path, scale::companion(shape, &format!("{stem}.xml"))) {
            eprintln!("huge_description: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
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
