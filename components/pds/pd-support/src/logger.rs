//! A `log` sink on the kernel console, so the driver core's and host's warnings show in the
//! serial log with the PD's name.

use log::{Level, Log, Metadata, Record};

/// Prints records at or above its level, prefixed with the PD's name.
#[derive(Debug)]
pub struct ConsoleLog {
    /// The PD's name.
    pub name: &'static str,
    /// Most verbose level printed.
    pub level: Level,
}

impl Log for ConsoleLog {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            sel4::println!("{}: [{}] {}", self.name, r.level(), r.args());
        }
    }

    fn flush(&self) {}
}

/// Installs `sink` as the logger (once per program; later calls are ignored).
pub fn install(sink: &'static ConsoleLog) {
    if log::set_logger(sink).is_ok() {
        log::set_max_level(sink.level.to_level_filter());
    }
}
