//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::AtomicU64;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use sddf::FlatMem;

/// Zeroed words for a region of `bytes` bytes (a fresh mapping is zero, as Microkit maps it).
pub fn words(bytes: usize) -> Vec<AtomicU64> {
    (0..FlatMem::words_for(bytes))
        .map(|_| AtomicU64::new(0))
        .collect()
}

/// An seL4 notification: a latched binary signal a thread can wait on.
#[derive(Default)]
pub struct Notification {
    pending: Mutex<bool>,
    cv: Condvar,
}

impl Notification {
    pub fn signal(&self) {
        *self.pending.lock().unwrap() = true;
        self.cv.notify_one();
    }

    /// Waits for a signal and consumes it; `false` after `timeout` with none.
    pub fn wait(&self, timeout: Duration) -> bool {
        let guard = self.pending.lock().unwrap();
        let (mut guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |pending| !*pending)
            .unwrap();
        let got = *guard;
        *guard = false;
        got
    }
}
