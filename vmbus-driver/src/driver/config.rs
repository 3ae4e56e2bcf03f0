//! Driver configuration and the fixed client table it is copied into.

use core::fmt;

use crate::control::MAX_SLOTS;
use crate::guid::Guid;
use crate::ids::{ClientId, VpIndex};
use crate::version::Version;

use super::stats::ClientStats;

/// Most clients the driver serves.
pub const MAX_CLIENTS: usize = 16;
/// Most device classes one client may be configured for.
pub const MAX_CLASSES: usize = 8;
/// Sentinel for "no open channel" in the slot tables.
pub(crate) const NO_OPEN: u16 = u16::MAX;
/// Sentinel for a slot retired for good: revoking a page granted into it failed, so the client
/// may still map that page there and nothing is ever granted into the slot again.
pub(crate) const RETIRED: u16 = u16::MAX - 1;

/// One client PD as the system description configures it.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig<'a> {
    /// The client's id (as used by the `Kernel` seam).
    pub id: ClientId,
    /// Pages of the client's channel window.
    pub window_pages: usize,
    /// Channel slots; the window is split into this many equal slots.
    pub max_channels: usize,
    /// Device classes the client may list and open.
    pub classes: &'a [Guid],
    /// If set, only offers with this instance GUID.
    pub instance: Option<Guid>,
}

/// The driver's configuration.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig<'a> {
    /// VP that receives VMBus messages and channel interrupts.
    pub target_vp: VpIndex,
    /// Newest protocol version to request; the walk starts at the newest known version not above
    /// it.
    pub max_version: Version,
    /// Ticks to wait for any host reply before giving up on it.
    pub reply_timeout: u64,
    /// The clients.
    pub clients: &'a [ClientConfig<'a>],
}

/// Why a configuration does not fit the driver's fixed tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// More than [`MAX_CLIENTS`] clients.
    TooManyClients(usize),
    /// A client has more than [`MAX_CLASSES`] classes.
    TooManyClasses(ClientId),
    /// A client's `max_channels` is 0 or above the control page's status table.
    BadMaxChannels(ClientId),
    /// A client's window is smaller than 4 pages per slot (two rings of two pages).
    WindowTooSmall(ClientId),
    /// Two clients share an id.
    DuplicateClient(ClientId),
    /// `reply_timeout` is 0.
    ZeroTimeout,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyClients(n) => write!(f, "{n} clients exceed {MAX_CLIENTS}"),
            Self::TooManyClasses(c) => write!(f, "{c} has more than {MAX_CLASSES} classes"),
            Self::BadMaxChannels(c) => {
                write!(f, "{c}: max_channels must be 1..={MAX_SLOTS}")
            }
            Self::WindowTooSmall(c) => write!(f, "{c}: window gives fewer than 4 pages per slot"),
            Self::DuplicateClient(c) => write!(f, "{c} configured twice"),
            Self::ZeroTimeout => f.write_str("reply_timeout must be at least 1 tick"),
        }
    }
}

/// One client's fixed-size state: its configuration and its channel slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientEntry {
    pub id: ClientId,
    pub slot_pages: u32,
    pub max_channels: u16,
    pub class_count: u8,
    pub classes: [Guid; MAX_CLASSES],
    pub instance: Option<Guid>,
    /// Open-table index per slot, [`NO_OPEN`] or [`RETIRED`].
    pub slots: [u16; MAX_SLOTS],
    /// Monotonic event counter per slot (published in the status record).
    pub events: [u32; MAX_SLOTS],
    /// What this client did, counted against it.
    pub stats: ClientStats,
}

impl ClientEntry {
    const EMPTY: ClientEntry = ClientEntry {
        id: ClientId(0),
        slot_pages: 0,
        max_channels: 0,
        class_count: 0,
        classes: [Guid::NIL; MAX_CLASSES],
        instance: None,
        slots: [NO_OPEN; MAX_SLOTS],
        events: [0; MAX_SLOTS],
        stats: ClientStats::ZERO,
    };

    /// Whether the client may list and open an offer of `class` / `instance`.
    pub fn allows(&self, class: &Guid, instance: &Guid) -> bool {
        let classes = self
            .classes
            .get(..usize::from(self.class_count))
            .unwrap_or(&[]);
        classes.contains(class) && self.instance.is_none_or(|i| i == *instance)
    }

    /// A free slot, if any.
    pub fn free_slot(&self) -> Option<usize> {
        self.slots
            .iter()
            .take(usize::from(self.max_channels))
            .position(|&s| s == NO_OPEN)
    }
}

/// The client table.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    pub entries: [ClientEntry; MAX_CLIENTS],
    pub count: usize,
}

impl Clients {
    /// No clients.
    pub const EMPTY: Clients = Clients {
        entries: [ClientEntry::EMPTY; MAX_CLIENTS],
        count: 0,
    };

    /// Checks the client configurations without changing anything.
    pub fn check(configs: &[ClientConfig<'_>]) -> Result<(), ConfigError> {
        if configs.len() > MAX_CLIENTS {
            return Err(ConfigError::TooManyClients(configs.len()));
        }
        for (i, c) in configs.iter().enumerate() {
            if configs[..i].iter().any(|o| o.id == c.id) {
                return Err(ConfigError::DuplicateClient(c.id));
            }
            if c.classes.len() > MAX_CLASSES {
                return Err(ConfigError::TooManyClasses(c.id));
            }
            if c.max_channels == 0 || c.max_channels > MAX_SLOTS {
                return Err(ConfigError::BadMaxChannels(c.id));
            }
            if c.window_pages / c.max_channels < 4 {
                return Err(ConfigError::WindowTooSmall(c.id));
            }
        }
        Ok(())
    }

    /// Replaces the table, in place, with checked configurations.
    pub fn load(&mut self, configs: &[ClientConfig<'_>]) -> Result<(), ConfigError> {
        Clients::check(configs)?;
        for e in self.entries.iter_mut() {
            *e = ClientEntry::EMPTY;
        }
        for (e, c) in self.entries.iter_mut().zip(configs) {
            let slot_pages = c.window_pages / c.max_channels;
            e.id = c.id;
            e.slot_pages = u32::try_from(slot_pages).unwrap_or(u32::MAX);
            // max_channels <= MAX_SLOTS (128) was checked above.
            e.max_channels = c.max_channels as u16;
            e.class_count = c.classes.len() as u8;
            e.classes[..c.classes.len()].copy_from_slice(c.classes);
            e.instance = c.instance;
        }
        self.count = configs.len();
        Ok(())
    }

    /// The index of client `id`.
    pub fn index(&self, id: ClientId) -> Option<usize> {
        self.entries[..self.count].iter().position(|e| e.id == id)
    }
}
