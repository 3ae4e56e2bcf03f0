//! A small `log` backend for the main job: one line per record on stderr, level chosen by
//! `-v` / `-q`.
//!
//! Our own twenty lines rather than `env_logger`: the job needs only a level switch and a
//! plain line format, and this keeps `env_logger`'s dependency tree (regex, anstream, ...) out
//! of the build, so `cargo xtask run` on a fresh machine compiles nothing it does not use.

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Writes every enabled record to stderr as `[LEVEL target] message`.
#[derive(Debug)]
struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let tag = match record.level() {
                Level::Error => "ERROR",
                Level::Warn => "WARN ",
                Level::Info => "INFO ",
                Level::Debug => "DEBUG",
                Level::Trace => "TRACE",
            };
            eprintln!("[{tag} {}] {}", record.target(), record.args());
        }
    }

    fn flush(&self) {}
}

/// The level for a verbosity: 0 is `Info`, each `-v` one more, each `-q` one less.
pub(crate) fn level_for(verbosity: i8) -> LevelFilter {
    match verbosity {
        i8::MIN..=-2 => LevelFilter::Off,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Installs the logger (once per process; later calls only change the level).
pub(crate) fn init(level: LevelFilter) {
    // A second installation (tests run the job several times) is refused; the first stays.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
