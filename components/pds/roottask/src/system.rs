//! The described system, as `cargo xtask image` generates it (`build/out/system.rs`).

/// A protection domain.
#[derive(Debug)]
pub struct Pd {
    /// Name from the description.
    pub name: &'static str,
    /// The program's ELF image.
    pub elf: &'static [u8],
    /// Scheduling priority (0..=254).
    pub priority: u8,
    /// Index of the PD the root task reports this PD's faults to.
    pub fault_handler: Option<usize>,
    /// `cap_vspace`: (slot offset from `VSPACE_CAP_BASE`, index of the PD whose VSpace).
    pub vspace_caps: &'static [(u64, usize)],
    /// Ranges prepared for run-time grants (paging structures only, nothing mapped).
    pub windows: &'static [Window],
    /// A ring-page pool: original frame capabilities plus a mapping in this PD.
    pub pool: Option<Pool>,
    /// Memory regions mapped at build time.
    pub maps: &'static [Map],
    /// The driver's link to Hyper-V, for a driver that talks to Hyper-V itself.
    pub hyperv: Option<HyperV>,
}

/// What the root task gives the driver of Hyper-V: the kernel's SynIC frames, mapped at
/// `synic_vaddr` (message page) and one page above it (event flags), the Hyper-V service
/// capability at `pd_runtime::layout::slot::HYPERV`, and the SINT2 interrupt on `sint_channel`.
#[derive(Debug, Clone, Copy)]
pub struct HyperV {
    /// Where the message page goes.
    pub synic_vaddr: u64,
    /// The driver's channel id of the interrupt.
    pub sint_channel: u8,
}

/// A window: the client side of run-time grants.
#[derive(Debug)]
pub struct Window {
    /// First address.
    pub vaddr: u64,
    /// Size in 4 KiB pages.
    pub pages: usize,
}

/// A pool of pages owned by one PD as the originals of its grants.
#[derive(Debug)]
pub struct Pool {
    /// Where the PD sees them.
    pub vaddr: u64,
    /// Number of pages.
    pub pages: usize,
    /// The shared region that backs the pool (its first `pages` pages), if any: other PDs that
    /// map the region (the host's view of guest memory) see the same frames.
    pub region: Option<usize>,
}

/// A mapping of a shared memory region.
#[derive(Debug)]
pub struct Map {
    /// Index into [`System::regions`].
    pub region: usize,
    /// Address in the PD.
    pub vaddr: u64,
    /// Writable (else read-only).
    pub writable: bool,
}

/// A shared memory region.
#[derive(Debug)]
pub struct Region {
    /// Name from the description.
    pub name: &'static str,
    /// Size in 4 KiB pages.
    pub pages: usize,
}

/// A channel between two PDs: `(pd index, channel id)` at each end.
#[derive(Debug)]
pub struct Channel {
    /// First end.
    pub a: (usize, u8),
    /// Second end.
    pub b: (usize, u8),
    /// `b` may make protected calls to `a`.
    pub b_calls_a: bool,
}

/// The whole system.
#[derive(Debug)]
pub struct System {
    /// Protection domains.
    pub pds: &'static [Pd],
    /// Shared memory regions.
    pub regions: &'static [Region],
    /// Channels.
    pub channels: &'static [Channel],
}

include!(env!("SEL4_SYSTEM_RS"));
