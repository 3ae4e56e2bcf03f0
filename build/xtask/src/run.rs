//! `cargo xtask run`, the main job: boots the system of `system.xml` on the simulation (the
//! seL4 model, the simulated Hyper-V host, the VMBus driver and one workload per client PD),
//! runs a scenario with hot removal and re-adding, prints the live channel table at the moments
//! that matter and a final summary. Logs go through the `log` facade to stderr; the tables and
//! the summary go to stdout.

mod devices;
mod logger;
mod options;
mod program;
mod report;
mod scenario;
mod sddf;
mod services;
mod table;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::process::ExitCode;

use log::error;

use crate::args::parse_or_exit;
pub(crate) use options::parse as parse_options;
use options::{Options, USAGE};
use report::Report;
use scenario::{RunError, Runner};

/// Entry point of `cargo xtask run [options]`.
pub fn main(args: &[String]) -> ExitCode {
    let opts = match parse_or_exit("run", USAGE, parse_options(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    logger::init(logger::level_for(opts.verbosity));
    let mut stdout = std::io::stdout();
    match execute(&opts, &mut stdout) {
        Ok(r) => match verdict(&r) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                error!("inconsistent end state: {why}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a completed run succeeded: every page accounted for, every echo, network answer and
/// block verified (the exit status of `cargo xtask run`).
pub(crate) fn verdict(r: &Report) -> Result<(), String> {
    let p = r.problems();
    if p.is_empty() {
        Ok(())
    } else {
        Err(p.join("; "))
    }
}

/// Runs `opts`' scenario, writing the tables and the summary to `out`.
pub(crate) fn execute(opts: &Options, out: &mut dyn Write) -> Result<Report, RunError> {
    execute_with(opts, out, None)
}

/// [`execute`], with `after_step` run after every world step (tests: a host that misbehaves
/// in ways no hostile mode covers).
pub(crate) fn execute_with(
    opts: &Options,
    out: &mut dyn Write,
    after_step: Option<&mut dyn FnMut(&mut sim_system::World)>,
) -> Result<Report, RunError> {
    let devices: Vec<String> = opts
        .devices
        .iter()
        .map(|d| format!("{}x{}+{}", d.name, d.count, d.sub_channels))
        .collect();
    log::info!(
        "scenario {}, host {:?}, devices {}{}, seed {}",
        opts.scenario.name(),
        opts.host,
        devices.join(","),
        if opts.echo { " (echo)" } else { "" },
        opts.seed
    );
    let report = {
        let mut runner = Runner::new(opts, out)?;
        if let Some(f) = after_step {
            runner = runner.after_step(f);
        }
        runner.execute()?
    };
    out.write_all(table::summary(&report).as_bytes())
        .map_err(|e| RunError::Output(e.to_string()))?;
    Ok(report)
}
