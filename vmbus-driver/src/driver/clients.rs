//! The client table: each client's configuration (id, classes, window slot size) and what it
//! did, counted against it. Its channel slots are in the channel table.

use crate::guid::Guid;
use crate::ids::ClientId;

use super::config::{ClientConfig, ConfigError, MAX_CLASSES, MAX_CLIENTS};
use super::stats::ClientStats;
use crate::control::MAX_SLOTS;

/// A client's index in the client table. Only [`Clients`] makes one, for a configured client,
/// so it always names a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIdx(u8);

impl ClientIdx {
    /// The row.
    pub fn get(self) -> usize {
        usize::from(self.0)
    }

    /// The client's bit in a notification mask.
    pub fn bit(self) -> u32 {
        1 << self.0
    }
}

#[derive(Debug, Clone, Copy)]
struct ClientEntry {
    id: ClientId,
    slot_pages: u32,
    max_channels: u16,
    class_count: u8,
    classes: [Guid; MAX_CLASSES],
    instance: Option<Guid>,
    /// May stop the system.
    power: bool,
    /// Its channels are signalled by hypercall even when monitored.
    low_latency: bool,
    /// Offers of its classes delivered so far (published in its control page).
    offers_delivered: u32,
    stats: ClientStats,
}

impl ClientEntry {
    const EMPTY: ClientEntry = ClientEntry {
        id: ClientId(0),
        slot_pages: 0,
        max_channels: 0,
        class_count: 0,
        classes: [Guid::NIL; MAX_CLASSES],
        instance: None,
        power: false,
        low_latency: false,
        offers_delivered: 0,
        stats: ClientStats::ZERO,
    };
}

/// The client table.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    entries: [ClientEntry; MAX_CLIENTS],
    count: usize,
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
            e.power = c.power;
            e.low_latency = c.low_latency;
        }
        self.count = configs.len();
        Ok(())
    }

    /// Every configured client.
    pub fn all(&self) -> impl Iterator<Item = ClientIdx> + use<> {
        // count <= MAX_CLIENTS (16).
        (0..self.count as u8).map(ClientIdx)
    }

    /// The index of client `id`.
    pub fn index(&self, id: ClientId) -> Option<ClientIdx> {
        let i = self.entries[..self.count].iter().position(|e| e.id == id)?;
        // i < MAX_CLIENTS (16).
        Some(ClientIdx(i as u8))
    }

    /// The clients whose bits are set in `mask` (bits of unconfigured clients are ignored).
    pub fn in_mask(&self, mask: u32) -> impl Iterator<Item = ClientIdx> + use<> {
        self.all().filter(move |c| mask & c.bit() != 0)
    }

    /// Client `c`'s id.
    pub fn id(&self, c: ClientIdx) -> ClientId {
        self.entries[c.get()].id
    }

    /// Pages of each of client `c`'s window slots.
    pub fn slot_pages(&self, c: ClientIdx) -> usize {
        self.entries[c.get()].slot_pages as usize
    }

    /// Client `c`'s channel slots.
    pub fn max_channels(&self, c: ClientIdx) -> u16 {
        self.entries[c.get()].max_channels
    }

    /// Whether client `c` may list and open an offer of `class` / `instance`.
    pub fn allows(&self, c: ClientIdx, class: &Guid, instance: &Guid) -> bool {
        let e = &self.entries[c.get()];
        let classes = e.classes.get(..usize::from(e.class_count)).unwrap_or(&[]);
        classes.contains(class) && e.instance.is_none_or(|i| i == *instance)
    }

    /// Whether client `c` may stop the system.
    pub fn power(&self, c: ClientIdx) -> bool {
        self.entries[c.get()].power
    }

    /// Whether client `c`'s channels are signalled by hypercall even when monitored.
    pub fn low_latency(&self, c: ClientIdx) -> bool {
        self.entries[c.get()].low_latency
    }

    /// Offers of client `c`'s classes delivered so far.
    pub fn offers_delivered(&self, c: ClientIdx) -> u32 {
        self.entries[c.get()].offers_delivered
    }

    /// Counts one more offer delivered to client `c`; the new count (wraps at 2^32).
    pub fn count_offer(&mut self, c: ClientIdx) -> u32 {
        let e = &mut self.entries[c.get()];
        e.offers_delivered = e.offers_delivered.wrapping_add(1);
        e.offers_delivered
    }

    /// What client `c` did.
    pub fn stats(&self, c: ClientIdx) -> ClientStats {
        self.entries[c.get()].stats
    }

    /// What client `c` did, to count more.
    pub fn stats_mut(&mut self, c: ClientIdx) -> &mut ClientStats {
        &mut self.entries[c.get()].stats
    }
}
