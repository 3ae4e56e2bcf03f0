//! One PD's configuration as plain data, generated from the system description.
//!
//! Each PD program's build script calls `sysdesc::config::build_script`, which reads the system
//! description (and its VMBus companion) named by `SEL4_SYSTEM_DESCRIPTION`, computes the
//! configuration of every PD whose `program_image` is that program (`sysdesc::config::pd_config`,
//! the same function the simulation calls at run time) and writes it to `$OUT_DIR/config.rs` as
//! `pub static CONFIGS: &[PdConfig]`. The program includes that file and takes its own entry with
//! `pd_runtime::own_config` (by the PD index the root task passes at start), so a program run by
//! two PDs of one system gets each its own values. Nothing in a PD restates an address, channel
//! id, PD index, window or device class of the description.
//!
//! Addresses are virtual addresses in the PD that holds the configuration; sizes count 4 KiB
//! pages where the name says `pages`.
#![no_std]

/// A GUID in the byte order of the VMBus wire format (that of `vmbus_driver::guid::Guid`, whose
/// field is public: `Guid(g.0)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

/// The configuration of one protection domain.
#[derive(Debug)]
pub struct PdConfig {
    /// The PD's name in the description.
    pub name: &'static str,
    /// Its index in the description (the root task's numbering: fault reports and restarts name
    /// PDs by it).
    pub index: u16,
    /// The memory regions it maps, in description order.
    pub maps: &'static [Map],
    /// Its channels, in description order.
    pub channels: &'static [Channel],
    /// Its part as a VMBus client.
    pub client: Option<Client>,
    /// Its part as the VMBus driver.
    pub driver: Option<Driver>,
    /// Its part as the simulated Hyper-V host (the hypercall stand-in's other end).
    pub host: Option<Host>,
}

/// A memory region mapped into the PD.
#[derive(Debug)]
pub struct Map {
    /// The region's name.
    pub region: &'static str,
    /// Where the PD sees its first byte.
    pub vaddr: usize,
    /// Its size in bytes.
    pub size: usize,
    /// Mapped writable (else read-only).
    pub writable: bool,
}

/// One end of a Microkit channel: this PD's.
#[derive(Debug)]
pub struct Channel {
    /// The id this PD uses for the channel.
    pub id: u8,
    /// The PD at the other end.
    pub peer: &'static str,
    /// This PD may make protected calls to the peer.
    pub pp: bool,
}

/// A VMBus client's own view of its wiring.
#[derive(Debug)]
pub struct Client {
    /// Its number in the driver's client table (`vmbus_driver::ids::ClientId`).
    pub id: u16,
    /// Its channel to the driver (protected calls and the driver's notifications).
    pub driver_channel: u8,
    /// First address of its window, where the driver maps channel rings.
    pub window_vaddr: usize,
    /// Pages in the window.
    pub window_pages: usize,
    /// Most channels open at once.
    pub max_channels: u32,
    /// Device classes it serves.
    pub classes: &'static [Guid],
    /// Instance filter shared by its classes, if any.
    pub instance: Option<Guid>,
    /// Where it maps its control page (shared with the driver only).
    pub control_vaddr: usize,
}

/// The SynIC message and event-flags pages as one PD maps them.
#[derive(Debug, Clone, Copy)]
pub struct Synic {
    /// The message page (SIMP).
    pub message: usize,
    /// The event-flags page (SIEFP).
    pub event_flags: usize,
}

/// The driver's side of the hypercall stand-in: where the simulated host is reached.
#[derive(Debug, Clone, Copy)]
pub struct HostLink {
    /// The driver's channel to the host: it calls the host on it (the hypercalls) and the host
    /// notifies it on it (the SynIC interrupt).
    pub channel: u8,
    /// Where the driver maps the hypercall input page (the payload of a posted message).
    pub hypercall_input: usize,
}

/// The driver's host, chosen by the description: which `Hypervisor` seam the driver runs.
#[derive(Debug, Clone, Copy)]
pub enum Hypervisor {
    /// None: a driver that only grants pages to clients.
    None,
    /// The simulated host PD behind the hypercall stand-in (`<host>` in the companion).
    StandIn {
        /// The SynIC pages, regions the driver and the host map.
        synic: Synic,
        /// The driver's link to the host PD.
        host: HostLink,
    },
    /// Hyper-V, through the kernel's Hyper-V service (`<hyperv>` in the companion): the root task
    /// maps the kernel's SynIC frames at `synic`, places the service capability at
    /// `pd_runtime::layout::slot::HYPERV` and the SINT2 interrupt's handler on `sint_channel`.
    HyperV {
        /// Where the kernel's SynIC frames are mapped.
        synic: Synic,
        /// The channel id on which the SINT2 interrupt arrives.
        sint_channel: u8,
    },
}

/// The VMBus driver's wiring.
#[derive(Debug)]
pub struct Driver {
    /// Where the driver sees its ring-page pool.
    pub pool_vaddr: usize,
    /// Pages in the pool (the root task laid out the pool's CSpace slots for this many).
    pub pool_pages: usize,
    /// What the driver talks to as the host.
    pub hypervisor: Hypervisor,
    /// The clients, in the driver's numbering (entry `i` is `ClientId(i)`).
    pub clients: &'static [DriverClient],
}

/// One client as the driver reaches it.
#[derive(Debug)]
pub struct DriverClient {
    /// Its number (`ClientId`).
    pub id: u16,
    /// Its PD's name.
    pub name: &'static str,
    /// Its PD index (fault reports and restarts name PDs by it).
    pub pd_index: u16,
    /// The `cap_vspace` slot of the driver's capability to its VSpace (the capability is at
    /// `pd_runtime::layout::slot::VSPACE_CAP_BASE + vspace_slot`).
    pub vspace_slot: u64,
    /// The driver's channel to it.
    pub channel: u8,
    /// First address of its window, in the client.
    pub window_vaddr: usize,
    /// Pages in the window.
    pub window_pages: usize,
    /// Where the driver maps the client's control page.
    pub control_vaddr: usize,
    /// Device classes it may list and open.
    pub classes: &'static [Guid],
    /// Instance filter shared by its classes, if any.
    pub instance: Option<Guid>,
    /// Most channels open at once.
    pub max_channels: u32,
    /// May ask the driver to stop the system (`power="true"` in the VMBus companion).
    pub power: bool,
    /// Its channels are signalled by hypercall even when the host offered them with a monitor
    /// id (`low_latency="true"` in the VMBus companion).
    pub low_latency: bool,
}

/// The simulated Hyper-V host's wiring (the image's stand-in for the hypervisor).
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// Its channel to the driver (the driver calls it on this channel; it notifies the driver).
    pub driver_channel: u8,
    /// Where it sees guest memory: its map of the driver's pool region.
    pub guest_memory_vaddr: usize,
    /// Pages of guest memory (the pool region's).
    pub guest_memory_pages: usize,
    /// The SynIC pages, as the host maps them.
    pub synic: Synic,
    /// Where it maps the hypercall input page.
    pub hypercall_input: usize,
    /// Every device class the system's clients serve: what the host offers.
    pub client_classes: &'static [Guid],
}

impl PdConfig {
    /// This PD's map of region `name`.
    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.region == name)
    }

    /// This PD's end of the channel with id `id`.
    pub fn channel(&self, id: u8) -> Option<&Channel> {
        self.channels.iter().find(|c| c.id == id)
    }
}

impl Driver {
    /// The client the driver reaches on channel `channel`.
    pub fn client_on_channel(&self, channel: u8) -> Option<&DriverClient> {
        self.clients.iter().find(|c| c.channel == channel)
    }

    /// The client running in PD `pd_index`.
    pub fn client_in_pd(&self, pd_index: u16) -> Option<&DriverClient> {
        self.clients.iter().find(|c| c.pd_index == pd_index)
    }
}

/// The entry of `configs` for the PD with index `index`.
pub fn select(configs: &'static [PdConfig], index: usize) -> Option<&'static PdConfig> {
    configs.iter().find(|c| usize::from(c.index) == index)
}
