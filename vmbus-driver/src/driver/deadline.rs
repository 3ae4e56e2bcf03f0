//! Deadlines of awaited host replies, in the caller's ticks.

use core::num::NonZeroU64;

/// The tick by which an awaited host reply must arrive. Never tick 0, so an `Option<Deadline>`
/// is one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(NonZeroU64);

impl Deadline {
    /// `timeout` ticks after `now` (saturating; at least tick 1).
    pub fn after(now: u64, timeout: u64) -> Deadline {
        Deadline(NonZeroU64::new(now.saturating_add(timeout)).unwrap_or(NonZeroU64::MIN))
    }

    /// Whether the reply is late at tick `now`.
    pub fn passed(self, now: u64) -> bool {
        now >= self.0.get()
    }
}
