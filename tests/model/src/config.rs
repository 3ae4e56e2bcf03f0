//! Bounds of a model instance and the deliberately broken driver variants.

use core::fmt;

use crate::state::{MAX_CHANNELS, MAX_CLIENTS, MAX_PAGES};

/// Most kernel failures a configuration may inject per run.
pub const MAX_KERNEL_FAILURES: u8 = 3;

/// A driver behaviour: the correct one, or one with a known bug the checker must catch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The lifetime rule of docs/lifetime.md.
    Correct,
    /// Zeroes and returns the ring page to the pool when GPADL_TORNDOWN arrives, and only then
    /// revokes the client's capability ("revoke after teardown instead of before").
    RevokeAfterTeardown,
    /// Sends RELID_RELEASED when the rescind arrives during a client-initiated teardown, and again
    /// when that teardown completes ("release twice").
    ReleaseTwice,
    /// Returns the page to the pool as soon as the client is revoked, without waiting for
    /// GPADL_TORNDOWN ("reuse before teardown").
    ReuseBeforeTorndown,
    /// Takes the event flags only when an interrupt carries no message, so a flag set before a
    /// rescind can outlive the release and reach the relid's next owner (R2).
    EventsNotTakenBeforeMessages,
    /// Zeroes and returns a page to the pool at the end of its teardown although its revoke
    /// failed, so the client that held it may still map a pool page ("reuse after a failed
    /// revoke").
    ReuseAfterFailedRevoke,
    /// Sends CLOSECHANNEL (then GPADL_TEARDOWN) as soon as a teardown starts, even while
    /// OPENCHANNEL_RESULT is still awaited ("close before the open result").
    CloseBeforeOpenResult,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Self; 7] = [
        Self::Correct,
        Self::RevokeAfterTeardown,
        Self::ReleaseTwice,
        Self::ReuseBeforeTorndown,
        Self::EventsNotTakenBeforeMessages,
        Self::ReuseAfterFailedRevoke,
        Self::CloseBeforeOpenResult,
    ];
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Correct => "correct",
            Self::RevokeAfterTeardown => "revoke-after-teardown",
            Self::ReleaseTwice => "release-twice",
            Self::ReuseBeforeTorndown => "reuse-before-torndown",
            Self::EventsNotTakenBeforeMessages => "events-not-taken-before-messages",
            Self::ReuseAfterFailedRevoke => "reuse-after-failed-revoke",
            Self::CloseBeforeOpenResult => "close-before-open-result",
        })
    }
}

/// Why a configuration is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Channels outside 1..=MAX_CHANNELS.
    Channels(usize),
    /// Clients outside 1..=MAX_CLIENTS.
    Clients(usize),
    /// Pages outside 1..=MAX_PAGES.
    Pages(usize),
    /// Offers per relid outside 1..=8.
    Offers(u8),
    /// Kernel failures per run outside 0..=MAX_KERNEL_FAILURES.
    KernelFailures(u8),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channels(n) => write!(f, "{n} channels: must be 1..={MAX_CHANNELS}"),
            Self::Clients(n) => write!(f, "{n} clients: must be 1..={MAX_CLIENTS}"),
            Self::Pages(n) => write!(f, "{n} pages: must be 1..={MAX_PAGES}"),
            Self::Offers(n) => write!(f, "{n} offers per relid: must be 1..=8"),
            Self::KernelFailures(n) => {
                write!(f, "{n} kernel failures: must be 0..={MAX_KERNEL_FAILURES}")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// The bounds and the host's freedoms for one model instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Relids the host may offer.
    pub channels: usize,
    /// Client PDs.
    pub clients: usize,
    /// Pages in the driver's ring-page pool (one page per open channel in the model).
    pub pages: usize,
    /// How many times the host may offer each relid (re-offer after release).
    pub offers_per_relid: u8,
    /// After a rescind the host may leave GPADL_HEADER, OPENCHANNEL and GPADL_TEARDOWN unanswered.
    pub host_silent_after_rescind: bool,
    /// The host may refuse an OPENCHANNEL.
    pub host_refuses_open: bool,
    /// The driver times out host replies (GPADL_CREATED, OPENCHANNEL_RESULT, GPADL_TORNDOWN):
    /// a late open fails, an unanswered teardown leaves its pages quarantined.
    pub reply_timeouts: bool,
    /// How many kernel operations (grant, revoke, zero of a ring page) may fail in one run.
    pub kernel_failures: u8,
    /// The driver may unload the bus.
    pub unload: bool,
    /// Explore one representative per renumbering of the clients (off for conformance traces,
    /// which must keep client numbers stable).
    pub symmetry: bool,
    /// Which driver.
    pub variant: Variant,
}

impl Default for Config {
    /// The largest configuration: 2 channels, 2 clients, 2 pages, every freedom on, one
    /// kernel failure per run.
    fn default() -> Self {
        Self {
            channels: 2,
            clients: 2,
            pages: 2,
            offers_per_relid: 2,
            host_silent_after_rescind: true,
            host_refuses_open: true,
            reply_timeouts: true,
            kernel_failures: 1,
            unload: true,
            symmetry: true,
            variant: Variant::Correct,
        }
    }
}

impl Config {
    /// Checks the bounds against the fixed capacities of [`crate::state::State`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_CHANNELS).contains(&self.channels) {
            return Err(ConfigError::Channels(self.channels));
        }
        if !(1..=MAX_CLIENTS).contains(&self.clients) {
            return Err(ConfigError::Clients(self.clients));
        }
        if !(1..=MAX_PAGES).contains(&self.pages) {
            return Err(ConfigError::Pages(self.pages));
        }
        if !(1..=8).contains(&self.offers_per_relid) {
            return Err(ConfigError::Offers(self.offers_per_relid));
        }
        if self.kernel_failures > MAX_KERNEL_FAILURES {
            return Err(ConfigError::KernelFailures(self.kernel_failures));
        }
        Ok(())
    }
}
