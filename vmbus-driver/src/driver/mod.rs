//! The VMBus driver core: connection, channel table, open, events, signals and the one teardown
//! state machine of docs/lifetime.md, over the `Hypervisor` and `Kernel` seams.
//!
//! One event loop owns all state (R4): the PD program calls [`Driver::on_interrupt`] for the
//! VMBus interrupt, [`Driver::on_client_call`] for a client's protected call,
//! [`Driver::on_client_fault`] when a client faults and [`Driver::on_tick`] periodically; each
//! call runs to completion. A client allowed to (`ClientConfig::power`) may ask for an orderly
//! stop (`Request::Stop`): every channel is closed through the unload path and
//! [`Driver::stopped`] says when it is over. Every method takes the seams as arguments, so
//! tests and the formal model drive the same code. Memory is fixed, in tables that each own their data and are
//! reached only through their methods: the channel table (an entry per relid, 2048, whose state
//! carries an open channel's data, and each client's slots), the page pool (page lists in an
//! arena with a taint bit per page, and the quarantine), the connection and the client table.
//! The [`Driver`] orchestrates them; nothing allocates and no host or client byte can make the
//! driver panic.
//!
//! # Lifetime of a channel
//!
//! `Offered → GpadlPending → OpenPending → Open`, and from any of the last three `TearingDown`:
//! variants of one enum (`state::ChanState`), each carrying what its state needs. The teardown
//! runs these steps, each at most once, whatever started it (rescind, client close, client
//! fault, failed open, unload, primary teardown):
//! 1. bump the relid's generation (stale handles and replies are refused from now on);
//! 2. tear down the sub-channels first (for a primary), revoke every ring page (the client's
//!    mappings vanish), publish `Gone` (or `Failed`) in the client's status record and notify;
//! 3. wait until the sub-channels are gone; CLOSECHANNEL only for an open the host confirmed:
//!    while OPENCHANNEL_RESULT is outstanding the teardown waits for it (a host ignores a
//!    CLOSECHANNEL mid-open and keeps the GPADL mapped), then CLOSECHANNEL on success and
//!    nothing on failure; a rescinded channel is closed at once. Then GPADL_TEARDOWN if the
//!    host may hold the GPADL, and wait for GPADL_TORNDOWN (if GPADL_CREATED is still awaited,
//!    wait for it first);
//! 4. RELID_RELEASED if the host rescinded the offer;
//! 5. zero the pages and return them to the pool, unless the GPADL teardown (or the open
//!    result) timed out: then the pages stay quarantined (until a late GPADL_TORNDOWN, or the
//!    late open result or a rescind that lets the driver ask for one).
//!
//! A failed kernel operation never leads to reuse: a page whose revoke fails is *tainted* and
//! stays out of the pool for good (never zeroed, returned or granted again, whatever comes
//! later), the client's window slot that held it is retired, and a page whose zeroing or return
//! fails stays out too; each is counted by cause in [`Stats`] and logged once.
//!
//! A second teardown request for a channel already in teardown changes nothing (R3, R8); a
//! rescind arriving during a close only adds step 4 (and, if the close waits for the open
//! result, closes at once). An offer of a device the driver still holds under another relid
//! means that relid's rescind was lost: it is torn down as if rescinded, so no zombie channel
//! holds a client's slot.

mod balloon;
mod buffers;
mod channels;
mod client;
mod clients;
mod config;
mod connection;
mod deadline;
mod dispatch;
mod events;
mod info;
mod lifecycle;
mod monitor;
mod offers;
mod open;
mod pages;
mod pool;
mod post;
mod state;
mod stats;
mod stop;
mod teardown;

pub use balloon::{DEFAULT_RESERVE_DIVISOR, MAX_LENT_RUNS};
pub use buffers::{MAX_BUFFER_PAGES, MAX_BUFFERS, MAX_CHANNEL_BUFFERS, MAX_CLIENT_BUFFERS};
pub use channels::{MAX_CHANNEL_PAGES, MAX_OPEN, MAX_RELIDS};
pub use config::{ClientConfig, ConfigError, DriverConfig, MAX_CLASSES, MAX_CLIENTS};
pub use connection::{ConnectionInfo, ConnectionState, MIN_VERSION};
pub use info::{AbstractChannel, AbstractPhase, ChannelInfo, ChannelState};
pub use open::RetargetError;
pub use pool::MAX_QUARANTINE;
pub use state::TeardownReason;
pub use stats::{ClientStats, Stats};
pub use stop::{StopInfo, StopKind, UnloadEnd};

use crate::ids::VpIndex;
use crate::version::Version;

use buffers::BufferTable;
use channels::ChannelTable;
use clients::Clients;
use connection::Connection;
use deadline::Deadline;
use monitor::MonitorPages;
use pool::PagePool;

/// Transient post-message failures retried before the post counts as failed.
pub const POST_RETRIES: u32 = 64;
/// SynIC messages handled per `on_interrupt` call before it returns to let the loop breathe.
pub const MESSAGES_PER_PASS: usize = 256;

/// The driver core. About 300 KiB; keep it in a static or a large enough stack.
#[derive(Debug, Clone)]
pub struct Driver {
    target_vp: VpIndex,
    reply_timeout: u64,
    clients: Clients,
    conn: Connection,
    channels: ChannelTable,
    pool: PagePool,
    buffers: BufferTable,
    /// The monitor pages passed at connect, if any.
    monitor: MonitorPages,
    stats: Stats,
    /// The orderly stop a client asked for, if any.
    stop: Option<StopInfo>,
}

impl Driver {
    /// A driver with no configuration, as a constant: place it in a static and call
    /// [`Driver::init`] there, so the 300 KiB never pass through a small PD stack. Every entry
    /// point of an uninitialised driver is harmless (no clients, disconnected), but `start`
    /// should follow `init`.
    pub const EMPTY: Driver = Driver {
        target_vp: VpIndex(0),
        reply_timeout: 1,
        clients: Clients::EMPTY,
        conn: Connection::new(Version::WIN10_V5_3),
        channels: ChannelTable::EMPTY,
        pool: PagePool::EMPTY,
        buffers: BufferTable::EMPTY,
        monitor: MonitorPages::NONE,
        stats: Stats::ZERO,
        stop: None,
    };

    /// Builds a driver for `config`.
    ///
    /// # Panics
    /// If the configuration does not fit the fixed tables (see [`Driver::try_new`]); this is a
    /// system-description error found at start-up, never caused by peer data.
    pub fn new(config: &DriverConfig<'_>) -> Driver {
        match Driver::try_new(config) {
            Ok(d) => d,
            // ok: configuration from the system description, checked at start-up, never peer data.
            Err(e) => panic!("invalid driver configuration: {e}"), // ok: documented panic
        }
    }

    /// Builds a driver for `config`, or says why the configuration does not fit.
    pub fn try_new(config: &DriverConfig<'_>) -> Result<Driver, ConfigError> {
        let mut d = Driver::EMPTY;
        d.init(config)?;
        Ok(d)
    }

    /// Resets the driver in place to the fresh state for `config` (nothing connected, no
    /// offers, counters zero). On error nothing changes. Any channel state is forgotten without
    /// a teardown, so call it only at start-up or after an unload.
    pub fn init(&mut self, config: &DriverConfig<'_>) -> Result<(), ConfigError> {
        if config.reply_timeout == 0 {
            return Err(ConfigError::ZeroTimeout);
        }
        self.clients.load(config.clients)?;
        self.target_vp = config.target_vp;
        self.reply_timeout = config.reply_timeout;
        self.conn = Connection::new(config.max_version);
        self.channels.reset(&self.clients);
        self.pool.reset();
        self.buffers.reset();
        // Monitor pages held from before are forgotten, never returned: the host may hold them.
        self.monitor = MonitorPages::NONE;
        self.stats = Stats::ZERO;
        self.stop = None;
        Ok(())
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Channels opened, opening or being torn down.
    pub fn open_count(&self) -> usize {
        self.channels.opened_count()
    }

    /// Pages held in quarantine now.
    pub fn quarantined_pages(&self) -> usize {
        self.pool.quarantined_pages()
    }

    /// The deadline for a reply awaited from now.
    fn deadline(&self, now: u64) -> Deadline {
        Deadline::after(now, self.reply_timeout)
    }
}
