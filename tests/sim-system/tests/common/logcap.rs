//! Captures the `log` records of the current thread, so a test can assert that the driver
//! logged what it counted. Each test runs on its own thread and the driver runs on the test's
//! thread, so per-thread capture keeps parallel tests apart.

use std::cell::RefCell;
use std::sync::Once;

use log::{Level, LevelFilter, Log, Metadata, Record};

thread_local! {
    static RECORDS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

struct Capture;

impl Log for Capture {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= Level::Warn
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            let line = format!("{}", r.args());
            RECORDS.with(|v| v.borrow_mut().push((r.level(), line)));
        }
    }

    fn flush(&self) {}
}

static LOGGER: Capture = Capture;
static INSTALL: Once = Once::new();

/// Installs the capturing logger (once per process) and clears this thread's records.
pub fn install() {
    INSTALL.call_once(|| {
        log::set_logger(&LOGGER).expect("no other logger in this test binary");
        log::set_max_level(LevelFilter::Warn);
    });
    RECORDS.with(|v| v.borrow_mut().clear());
}

/// Takes this thread's warnings and errors recorded since the last call.
pub fn take() -> Vec<String> {
    RECORDS.with(|v| v.borrow_mut().drain(..).map(|(_, s)| s).collect())
}

/// Whether a warning containing `needle` was recorded since the last `take`; consumes them.
pub fn logged(needle: &str) -> bool {
    take().iter().any(|l| l.contains(needle))
}
