//! Driver configuration, as the system description gives it.

use core::fmt;

use crate::control::MAX_SLOTS;
use crate::guid::Guid;
use crate::ids::{ClientId, VpIndex};
use crate::version::Version;

/// Most clients the driver serves.
pub const MAX_CLIENTS: usize = 16;
/// Most device classes one client may be configured for.
pub const MAX_CLASSES: usize = 8;

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
    /// Whether the client may stop the system (`Request::Stop`: the shutdown integration
    /// service answering the host's shut-down or restart request).
    pub power: bool,
    /// Whether the driver signals the host for this client's channels by hypercall even when
    /// the host offered them with a monitor id (Linux's low-latency channels,
    /// docs/protocol.md#monitor-pages): the host sees each signal at once rather than at its next
    /// scan of the monitor page, at the price of one hypercall per signal.
    pub low_latency: bool,
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
