//! `cargo xtask bench [--quick]`: the ring benchmark and the driver benchmark, each with its
//! baselines measured in the same run, and one table of their figures.
//!
//! The benches print their figures as machine-readable lines, which this command collects while
//! it streams their output:
//!
//! ```text
//! BENCH<TAB>bench<TAB>case<TAB>metric<TAB>median<TAB>lo<TAB>hi
//! BENCHNOTE<TAB>bench<TAB>what the spread [lo..hi] of that bench's figures is
//! ```
//!
//! The table has one section per bench, one row per case and one column per metric; a cell is
//! `median [lo..hi]`, or the one value when the spread is nil (a counted figure). The ring
//! bench's threads are pinned to two distinct cores when more than two are available
//! (`VMBUS_BENCH_PIN=1`, which the bench weighs against `available_parallelism`); on a machine
//! with two cores shared with other work the two-thread figures move a lot between runs, and the
//! ratios (taken against baselines in the same run) are the figures to compare.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use crate::args::{Arg, ArgError, Args, parse_or_exit};
use crate::image::root;

/// Usage of `cargo xtask bench`.
pub(crate) const USAGE: &str = "usage: cargo xtask bench [--quick]
Runs the ring benchmark (our ring over both ring memories against a memcpy hand-off and
bbqueue, one index publish per packet and batched, signals per 1000 packets, one-thread CPU cost)
and the driver benchmark (event dispatch against 1 channel, open/close cycles, kernel operations
per page), then prints one table: median [spread] of every figure, ratios against baselines
measured in the same run. The ring's two threads are pinned to distinct cores when more than two
cores are available. About 3 minutes on two cores, builds included.
  --quick     fewer rounds and packets, short criterion samples (about a minute once built)
  -h, --help  this text";

/// What `cargo xtask bench` was asked to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BenchOpts {
    /// Fewer repetitions.
    pub quick: bool,
}

/// Parses the arguments after `bench`.
pub(crate) fn parse(args: &[String]) -> Result<BenchOpts, ArgError> {
    let mut args = Args::new(args)?;
    let mut o = BenchOpts { quick: false };
    while let Some(a) = args.next()? {
        match a {
            Arg::Long("--quick") => o.quick = true,
            other => return Err(other.unexpected()),
        }
    }
    Ok(o)
}

/// One benchmark run: its name and its `cargo` arguments and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub name: &'static str,
    pub args: Vec<String>,
    pub env: Vec<(&'static str, &'static str)>,
}

/// The benchmarks `cargo xtask bench` runs, in order.
pub(crate) fn jobs(o: BenchOpts) -> Vec<Job> {
    let strings = |a: &[&str]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
    let mut ring_env = vec![("VMBUS_BENCH_PIN", "1")];
    let mut driver = strings(&["bench", "-p", "sim-system", "--bench", "driver"]);
    if o.quick {
        ring_env.push(("VMBUS_BENCH_QUICK", "1"));
        driver.extend(strings(&[
            "--",
            "--warm-up-time",
            "0.1",
            "--measurement-time",
            "0.3",
            "--sample-size",
            "10",
        ]));
    }
    vec![
        Job {
            name: "ring",
            args: strings(&["bench", "-p", "vmbus-driver", "--bench", "ring_throughput"]),
            env: ring_env,
        },
        Job {
            name: "driver",
            args: driver,
            env: Vec::new(),
        },
    ]
}

/// One figure from a `BENCH` line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figure {
    pub bench: String,
    pub case: String,
    pub metric: String,
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
}

/// What a line of a bench's output carries for the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    Figure(Figure),
    /// `BENCHNOTE`: the bench and what its spreads are.
    Note(String, String),
}

/// Reads a `BENCH` or `BENCHNOTE` line; `None` for any other line, and for a malformed one.
pub(crate) fn parse_line(line: &str) -> Option<Line> {
    let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split('\t').collect();
    match fields.as_slice() {
        ["BENCH", bench, case, metric, median, lo, hi] => {
            let num = |s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite());
            Some(Line::Figure(Figure {
                bench: (*bench).to_string(),
                case: (*case).to_string(),
                metric: (*metric).to_string(),
                median: num(median)?,
                lo: num(lo)?,
                hi: num(hi)?,
            }))
        }
        ["BENCHNOTE", bench, note] => Some(Line::Note((*bench).to_string(), (*note).to_string())),
        _ => None,
    }
}

/// A number with about three significant digits.
fn num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A cell: `median [lo..hi]`, or the one value of a figure without spread.
pub(crate) fn cell(f: &Figure) -> String {
    let (m, lo, hi) = (num(f.median), num(f.lo), num(f.hi));
    if lo == m && hi == m {
        m
    } else {
        format!("{m} [{lo}..{hi}]")
    }
}

/// Items of `it` in order of first appearance, each once.
fn first_seen<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = Vec::new();
    for s in it {
        if !v.contains(&s) {
            v.push(s);
        }
    }
    v
}

/// The table: per bench (in order of first appearance) its note, a header of its metrics and one
/// row per case; a case without some metric has an empty cell there.
pub(crate) fn table(lines: &[Line]) -> String {
    let figures: Vec<&Figure> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Figure(f) => Some(f),
            Line::Note(..) => None,
        })
        .collect();
    let mut out = String::new();
    for bench in first_seen(figures.iter().map(|f| f.bench.as_str())) {
        let mine: Vec<&Figure> = figures
            .iter()
            .copied()
            .filter(|f| f.bench == bench)
            .collect();
        let metrics = first_seen(mine.iter().map(|f| f.metric.as_str()));
        let cases = first_seen(mine.iter().map(|f| f.case.as_str()));
        let rows: Vec<(&str, Vec<String>)> = cases
            .iter()
            .map(|&c| {
                let cells = metrics
                    .iter()
                    .map(|&m| {
                        // The last figure of a (case, metric) wins, should one repeat.
                        mine.iter()
                            .rev()
                            .find(|f| f.case == c && f.metric == m)
                            .map(|f| cell(f))
                            .unwrap_or_default()
                    })
                    .collect();
                (c, cells)
            })
            .collect();
        let case_w = cases
            .iter()
            .map(|c| c.len())
            .chain([bench.len()])
            .max()
            .unwrap_or(0);
        let widths: Vec<usize> = metrics
            .iter()
            .enumerate()
            .map(|(i, m)| {
                rows.iter()
                    .map(|(_, cells)| cells[i].len())
                    .chain([m.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        out.push_str(&format!("== {bench}\n"));
        for l in lines {
            if let Line::Note(b, note) = l
                && b == bench
            {
                out.push_str(&format!("   {note}\n"));
            }
        }
        let mut header = format!("{bench:<case_w$}");
        for (m, w) in metrics.iter().zip(&widths) {
            header.push_str(&format!(" | {m:>w$}"));
        }
        out.push_str(header.trim_end());
        out.push('\n');
        out.push_str(&"-".repeat(header.len()));
        out.push('\n');
        for (c, cells) in rows {
            let mut row = format!("{c:<case_w$}");
            for (v, w) in cells.iter().zip(&widths) {
                row.push_str(&format!(" | {v:>w$}"));
            }
            out.push_str(row.trim_end());
            out.push('\n');
        }
    }
    out
}

/// Runs `job` in the repository root with its output streamed to ours (stderr as it is, stdout
/// line by line); returns the `BENCH` lines it printed, or why it failed.
fn run_job(job: &Job) -> Result<Vec<Line>, String> {
    let mut cmd = Command::new("cargo");
    cmd.args(&job.args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    let mut lines = Vec::new();
    if let Some(out) = child.stdout.take() {
        for l in BufReader::new(out).lines() {
            let l = l.map_err(|e| format!("reading its output: {e}"))?;
            println!("{l}");
            lines.extend(parse_line(&l));
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cargo {} failed: {status}", job.args.join(" ")));
    }
    if !lines.iter().any(|l| matches!(l, Line::Figure(_))) {
        return Err(format!(
            "cargo {} printed no BENCH line",
            job.args.join(" ")
        ));
    }
    Ok(lines)
}

/// The machine, in words: cores available to us and the processor's model name.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown processor".to_string());
    format!("{cores} cores available, {model}")
}

pub fn main(args: &[String]) -> ExitCode {
    let o = match parse_or_exit("bench", USAGE, parse(args)) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let start = Instant::now();
    let mut all = Vec::new();
    let mut failed = Vec::new();
    for job in jobs(o) {
        println!("== xtask bench: {} benchmark", job.name);
        match run_job(&job) {
            Ok(lines) => all.extend(lines),
            Err(e) => {
                eprintln!("== xtask bench: {} benchmark FAILED: {e}", job.name);
                failed.push(job.name);
            }
        }
    }
    println!();
    println!(
        "==== cargo xtask bench{}: {} ({:.0} s) ====",
        if o.quick { " --quick" } else { "" },
        machine(),
        start.elapsed().as_secs_f64()
    );
    print!("{}", table(&all));
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("xtask bench: failed: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::line;

    fn fig(bench: &str, case: &str, metric: &str, m: f64, lo: f64, hi: f64) -> Line {
        Line::Figure(Figure {
            bench: bench.into(),
            case: case.into(),
            metric: metric.into(),
            median: m,
            lo,
            hi,
        })
    }

    #[test]
    fn parses_bench_lines_and_ignores_the_rest() {
        assert_eq!(
            parse_line("BENCH\tring\tflat 64B packet\tx hand-off\t0.3120\t0.2900\t0.3300\n"),
            Some(fig(
                "ring",
                "flat 64B packet",
                "x hand-off",
                0.312,
                0.29,
                0.33
            ))
        );
        assert_eq!(
            parse_line("BENCHNOTE\tdriver\tmedian [p10..p90]"),
            Some(Line::Note("driver".into(), "median [p10..p90]".into()))
        );
        for other in [
            "",
            "ring_throughput: 64 B packet measured in 1.0 s",
            "BENCH\tring\tcase\tmetric\t1\t2",
            "BENCH\tring\tcase\tmetric\tx\t1\t2",
            "BENCH\tring\tcase\tmetric\tNaN\t1\t2",
            "BENCH\tring\tcase\tmetric\t1\t2\t3\textra",
            "  BENCH\tring\tcase\tmetric\t1\t2\t3",
        ] {
            assert_eq!(parse_line(other), None, "{other:?}");
        }
    }

    #[test]
    fn cells_show_the_spread_unless_it_is_nil() {
        let Some(Line::Figure(f)) = parse_line("BENCH\tb\tc\tm\t0.3123\t0.29\t0.331") else {
            panic!()
        };
        assert_eq!(cell(&f), "0.312 [0.290..0.331]");
        let Some(Line::Figure(f)) = parse_line("BENCH\tb\tc\tm\t2\t2\t2") else {
            panic!()
        };
        assert_eq!(cell(&f), "2.00");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1234.5), "1234");
        assert_eq!(num(-0.5), "-0.500");
    }

    #[test]
    fn one_section_per_bench_one_row_per_case_one_column_per_metric() {
        let lines = vec![
            Line::Note("ring".into(), "median [p25..p75]".into()),
            fig("ring", "flat 64B packet", "Mp/s", 5.0, 4.5, 5.5),
            fig("ring", "flat 64B packet", "x hand-off", 0.3, 0.3, 0.3),
            fig("ring", "mapped 4096B batched", "Mp/s", 1.25, 1.0, 1.5),
            fig("driver", "dispatch 1 ch", "ns/event", 50.0, 48.0, 55.0),
            fig("ring", "mapped 4096B batched", "x hand-off", 1.1, 0.9, 1.2),
            fig("driver", "rescind->reuse", "kernel ops/page", 2.0, 2.0, 2.0),
        ];
        let t = table(&lines);
        let expected = "\
== ring
   median [p25..p75]
ring                 |              Mp/s |         x hand-off
-------------------------------------------------------------
flat 64B packet      | 5.00 [4.50..5.50] |              0.300
mapped 4096B batched | 1.25 [1.00..1.50] | 1.10 [0.900..1.20]
== driver
driver         |          ns/event | kernel ops/page
----------------------------------------------------
dispatch 1 ch  | 50.0 [48.0..55.0] |
rescind->reuse |                   |            2.00
";
        assert_eq!(t, expected, "\n{t}");
    }

    #[test]
    fn options_and_jobs() {
        assert_eq!(parse(&line(&[])), Ok(BenchOpts { quick: false }));
        assert_eq!(parse(&line(&["--quick"])), Ok(BenchOpts { quick: true }));
        assert_eq!(
            parse(&line(&["extra"])),
            Err(ArgError::Unexpected("extra".into()))
        );
        let full = jobs(BenchOpts { quick: false });
        assert_eq!(
            full.iter().map(|j| j.name).collect::<Vec<_>>(),
            ["ring", "driver"]
        );
        assert_eq!(full[0].env, [("VMBUS_BENCH_PIN", "1")]);
        assert_eq!(full[1].args.join(" "), "bench -p sim-system --bench driver");
        let quick = jobs(BenchOpts { quick: true });
        assert!(quick[0].env.contains(&("VMBUS_BENCH_QUICK", "1")));
        assert!(quick[1].args.join(" ").contains("-- --warm-up-time"));
    }
}
