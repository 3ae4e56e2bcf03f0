//! The typed model of a system description: Microkit's elements plus the VMBus wiring of its
//! companion file.
//!
//! Every item keeps the line it came from (`line`), so later stages (validation, the simulated
//! system, the root-task table) can point back at the XML: Microkit items at a line of
//! [`System::file`], the VMBus items ([`VmbusDriver`], [`VmbusHost`], [`VmbusClient`],
//! [`DeviceClass`]) at a line of [`System::vmbus_file`]. Values are already range-checked by the
//! parser; cross-references (region and PD names) are checked by `validate`.

use crate::guid::Guid;

/// The smallest page on x86-64 (`sel4::PAGE_SIZE`, through `pd_runtime::layout`); sizes and
/// addresses in the description are multiples of it.
pub const PAGE_SIZE: u64 = pd_runtime::layout::PAGE;
/// The large page on x86-64 (a `page_size` of a memory region may be this or [`PAGE_SIZE`]).
pub const LARGE_PAGE_SIZE: u64 = 0x20_0000;
/// Highest channel / interrupt id a PD may use: the image's notification badges hold channel
/// ids 0..=23, and the root task refuses larger ones (`pd_runtime::layout::MAX_CHANNEL`, the one
/// definition). Microkit itself would allow up to 62.
pub const MAX_CHANNEL_ID: u8 = pd_runtime::layout::MAX_CHANNEL;
/// Most protection domains the project's root task builds in one image.
pub const ROOT_TASK_MAX_PDS: usize = pd_runtime::layout::MAX_PDS;
/// Most memory regions the project's root task builds in one image.
pub const ROOT_TASK_MAX_REGIONS: usize = pd_runtime::layout::MAX_REGIONS;
/// Highest id of the other Microkit id spaces (I/O ports, child PDs, vCPUs): "at least 0 and
/// less than 63".
pub const MICROKIT_MAX_ID: u8 = 62;
/// Highest PD priority (the Microkit monitor runs at 255).
pub const MAX_PRIORITY: u8 = 254;
/// Microkit's default budget (and so period) in microseconds.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// Microkit's default stack size in bytes.
pub const DEFAULT_STACK_SIZE: u64 = 0x2000;
/// Microkit supports at most this many protection domains.
pub const MAX_PDS: usize = 63;
/// The end of the lower canonical half on x86-64: no user mapping may reach past it.
pub const USER_VADDR_LIMIT: u64 = 0x8000_0000_0000;
/// Pages one VMBus channel needs at least in a client window: two rings (send and receive),
/// each one header page plus at least one data page.
pub const MIN_PAGES_PER_CHANNEL: u64 = 4;

/// A whole system description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// The file name used in diagnostics (as given to the parser).
    pub file: String,
    /// The VMBus companion's file name, when the system has one (its items' lines are its).
    pub vmbus_file: Option<String>,
    /// All protection domains, flattened: a child follows its parent (see [`ProtectionDomain::parent`]).
    pub pds: Vec<ProtectionDomain>,
    /// All memory regions in file order.
    pub regions: Vec<MemoryRegion>,
    /// All channels in file order.
    pub channels: Vec<Channel>,
    /// The `domains` element, if present.
    pub domains: Option<Domains>,
}

/// Scheduling parameters shared by PDs and virtual machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sched {
    /// 0..=254; higher runs first.
    pub priority: u8,
    /// Microseconds of CPU per period.
    pub budget_us: u64,
    /// Replenishment period in microseconds (>= budget).
    pub period_us: u64,
}

/// A `protection_domain` element (top level or nested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionDomain {
    /// Unique name.
    pub name: String,
    /// Line of the element.
    pub line: u32,
    /// Priority, budget and period.
    pub sched: Sched,
    /// Passive: the scheduling context is taken away after `init`.
    pub passive: bool,
    /// Stack size in bytes (page multiple, 4 KiB..=16 MiB).
    pub stack_size: u64,
    /// `smc` (ARM only; always false on x86-64, where `true` is rejected).
    pub smc: bool,
    /// CPU core the PD runs on.
    pub cpu: u8,
    /// Whether the PD may use the FPU (Microkit default: true).
    pub fpu: bool,
    /// Name of the scheduling domain (`domain` attribute), if any.
    pub domain: Option<String>,
    /// The program to load.
    pub program_image: ProgramImage,
    /// Memory-region mappings into this PD.
    pub maps: Vec<Map>,
    /// Interrupts delivered to this PD.
    pub irqs: Vec<Irq>,
    /// I/O port ranges this PD may use.
    pub ioports: Vec<IoPort>,
    /// `setvar` elements (symbol := physical address of a region).
    pub setvars: Vec<SetVar>,
    /// Index in [`System::pds`] of the parent PD, for a nested PD.
    pub parent: Option<usize>,
    /// The id the parent uses for this child (nested PDs only).
    pub child_id: Option<u8>,
    /// `setvar_id` of a nested PD: a symbol in the parent set to [`Self::child_id`].
    pub setvar_id: Option<String>,
    /// The `virtual_machine` child, if any.
    pub virtual_machine: Option<VirtualMachine>,
    /// The `cspace` child: extra capabilities placed in this PD's CSpace.
    pub cspace: Vec<CapEntry>,
    /// VMBus wiring (companion file): present when this PD is the VMBus driver.
    pub vmbus_driver: Option<VmbusDriver>,
    /// VMBus wiring (companion file): present when this PD is the simulated Hyper-V host.
    pub vmbus_host: Option<VmbusHost>,
    /// VMBus wiring (companion file): present when this PD is a VMBus client.
    pub vmbus_client: Option<VmbusClient>,
}

/// `program_image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramImage {
    /// Path of the ELF file.
    pub path: String,
    /// Optional ELF file that carries the symbols (`path_for_symbols`).
    pub path_for_symbols: Option<String>,
    /// Line of the element.
    pub line: u32,
}

/// Access rights of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perms {
    /// `r`
    pub read: bool,
    /// `w`
    pub write: bool,
    /// `x`
    pub execute: bool,
}

impl Perms {
    /// The seL4/Microkit bit encoding: read 1, write 2, execute 4.
    pub fn bits(self) -> u8 {
        u8::from(self.read) | (u8::from(self.write) << 1) | (u8::from(self.execute) << 2)
    }
}

/// A `map` element (in a PD or a virtual machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// Name of the memory region.
    pub mr: String,
    /// Virtual address of the first byte.
    pub vaddr: u64,
    /// Access rights (default `rw`).
    pub perms: Perms,
    /// Cached (default true).
    pub cached: bool,
    /// Symbol set to the mapping's virtual address.
    pub setvar_vaddr: Option<String>,
    /// Symbol set to the region's size.
    pub setvar_size: Option<String>,
    /// Symbol set to the size of the region's prefill data.
    pub setvar_prefill_size: Option<String>,
    /// Line of the element.
    pub line: u32,
}

/// IOAPIC trigger mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Level triggered (Microkit default).
    Level,
    /// Edge triggered.
    Edge,
}

/// IOAPIC polarity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polarity {
    /// Active high (Microkit default).
    High,
    /// Active low.
    Low,
}

/// A PCI address `bus:device.function`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciAddr {
    /// 0..=255
    pub bus: u8,
    /// 0..=31
    pub device: u8,
    /// 0..=7
    pub function: u8,
}

/// The source of an x86-64 interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqSource {
    /// Through an I/O APIC pin.
    Ioapic {
        /// Which I/O APIC (default 0).
        ioapic: u64,
        /// The pin.
        pin: u64,
        /// Trigger mode.
        trigger: Trigger,
        /// Polarity.
        polarity: Polarity,
    },
    /// A message-signalled interrupt of a PCI function.
    Msi {
        /// The PCI function.
        pcidev: PciAddr,
        /// The MSI handle.
        handle: u64,
    },
}

/// An `irq` element (x86-64 forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Irq {
    /// Channel id the interrupt is delivered on (shares the id space with channels).
    pub id: u8,
    /// Kernel interrupt vector (0..=107).
    pub vector: u8,
    /// Where it comes from.
    pub source: IrqSource,
    /// Symbol set to the id.
    pub setvar_id: Option<String>,
    /// Line of the element.
    pub line: u32,
}

/// An `ioport` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoPort {
    /// Id of the port range in this PD.
    pub id: u8,
    /// First port.
    pub addr: u64,
    /// Number of ports.
    pub size: u64,
    /// Symbol set to the id.
    pub setvar_id: Option<String>,
    /// Symbol set to the first port.
    pub setvar_addr: Option<String>,
    /// Line of the element.
    pub line: u32,
}

/// A `setvar` element: the symbol receives the physical address of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetVar {
    /// Symbol in the program image.
    pub symbol: String,
    /// Memory region whose physical address is written.
    pub region_paddr: String,
    /// Line of the element.
    pub line: u32,
}

/// A `vcpu` of a virtual machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vcpu {
    /// Id the parent PD uses for it.
    pub id: u8,
    /// Symbol set to the id.
    pub setvar_id: Option<String>,
    /// CPU core, if pinned.
    pub cpu: Option<u8>,
    /// Line of the element.
    pub line: u32,
}

/// A `virtual_machine` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMachine {
    /// Unique name.
    pub name: String,
    /// Scheduling parameters.
    pub sched: Sched,
    /// Virtual CPUs (at least one).
    pub vcpus: Vec<Vcpu>,
    /// Guest-physical mappings (no `setvar_*`).
    pub maps: Vec<Map>,
    /// Line of the element.
    pub line: u32,
}

/// The kind of capability a `cspace` entry places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapKind {
    /// `cap_tcb`: another PD's thread control block.
    Tcb,
    /// `cap_sc`: another PD's scheduling context.
    Sc,
    /// `cap_vspace`: another PD's address space (the driver maps ring pages into clients with it).
    Vspace,
}

/// An entry of a `cspace` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapEntry {
    /// What capability.
    pub kind: CapKind,
    /// The PD whose object it names.
    pub pd: String,
    /// Destination slot (slot 0 is reserved by Microkit).
    pub slot: u64,
    /// Line of the element.
    pub line: u32,
}

/// A `memory_region` element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryRegion {
    /// Unique name.
    pub name: String,
    /// Size in bytes (a multiple of `page_size`).
    pub size: u64,
    /// Page size: [`PAGE_SIZE`] or [`LARGE_PAGE_SIZE`].
    pub page_size: u64,
    /// Fixed physical address, if any.
    pub phys_addr: Option<u64>,
    /// File whose bytes fill the region at boot.
    pub prefill_path: Option<String>,
    /// Boot-information kind that fills the region (`prefill_bootinfo`).
    pub prefill_bootinfo: Option<String>,
    /// Line of the element.
    pub line: u32,
}

/// One `end` of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEnd {
    /// PD at this end.
    pub pd: String,
    /// Id this PD uses for the channel (0..=62).
    pub id: u8,
    /// This end may make protected calls to the other (which must have higher priority).
    pub pp: bool,
    /// This end may notify the other (default true).
    pub notify: bool,
    /// Symbol set to the id.
    pub setvar_id: Option<String>,
    /// Line of the element.
    pub line: u32,
}

/// A `channel` element: exactly two ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The two ends in file order.
    pub ends: [ChannelEnd; 2],
    /// Line of the element.
    pub line: u32,
}

/// A declared scheduling domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Name PDs refer to.
    pub name: String,
    /// Explicit kernel domain id, if given.
    pub id: Option<u8>,
    /// Line of the element.
    pub line: u32,
}

/// How long a schedule entry lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// Microseconds (`"N us"`).
    Us(u64),
    /// Kernel timer ticks (`"N ticks"`, or the `length` of the legacy `domain` entry).
    Ticks(u64),
}

/// An entry of the domain schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleEntry {
    /// Run `domain` for `duration`.
    Run {
        /// Domain name.
        domain: String,
        /// How long.
        duration: Duration,
        /// Line of the element.
        line: u32,
    },
    /// `schedule_end_marker`: the schedule wraps here.
    EndMarker {
        /// Line of the element.
        line: u32,
    },
}

/// The `domains` element: domain declarations and the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domains {
    /// Declared domains (legacy `domain name length` entries declare theirs implicitly).
    pub domains: Vec<Domain>,
    /// The schedule in order.
    pub schedule: Vec<ScheduleEntry>,
    /// `start_index` of `domain_schedule` (default 0).
    pub start_index: u64,
    /// `index_shift` of `domain_schedule`.
    pub index_shift: Option<u64>,
    /// Line of the element.
    pub line: u32,
}

/// Companion `driver`: marks the PD that owns VMBus and its ring-page pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmbusDriver {
    /// Pages in the pool from which channel ring buffers are granted to clients.
    pub pool_pages: u64,
    /// The memory region whose 4 KiB frames form the pool, if the pool is a named region (the
    /// root task hands the driver the region's frame capabilities, mapped where the driver maps
    /// the region).
    pub pool_region: Option<String>,
    /// Where the driver sees a pool it does not map by description (a pool of fresh frames, or
    /// of a region other PDs map); `None` when the driver maps `pool_region`.
    pub pool_vaddr: Option<u64>,
    /// The region holding the SynIC message page (SIMP), if the driver has one.
    pub synic_message: Option<String>,
    /// The region holding the SynIC event-flags page (SIEFP), if the driver has one.
    pub synic_event_flags: Option<String>,
    /// Hyper-V itself as the host (companion `hyperv`), instead of a simulated host PD.
    pub hyperv: Option<VmbusHyperV>,
    /// Line of the element (in the companion).
    pub line: u32,
}

/// Companion `hyperv`: the driver talks to Hyper-V itself through the kernel's Hyper-V service
/// (the patched kernel finds Hyper-V at boot and hands the root task the SynIC frames, the SINT2
/// interrupt and the hypercall capability, which the root task gives to the driver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmbusHyperV {
    /// The driver's channel id on which the SINT2 interrupt arrives (acknowledged with
    /// `irq_ack` on that id).
    pub sint_channel: u8,
    /// Where the driver sees the SynIC message page; the event-flags page follows one page later.
    pub synic_vaddr: u64,
    /// Line of the element (in the companion).
    pub line: u32,
}

/// Companion `host`: the PD that stands in for the Hyper-V host (the image's hypercall
/// stand-in: the driver's hypercalls are protected calls to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmbusHost {
    /// The host-side id of its channel to the driver (`pp` on the driver's end).
    pub driver_channel: u8,
    /// The region holding the hypercall input page (written by the driver, read by the host).
    pub hypercall_input: String,
    /// Line of the element (in the companion).
    pub line: u32,
}

/// Companion `device`: one device class a client serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClass {
    /// Interface (class) GUID of the offers this client takes.
    pub class: Guid,
    /// Only offers with this instance GUID (none: any instance).
    pub instance: Option<Guid>,
    /// Line of the element (in the companion).
    pub line: u32,
}

/// Companion `client`: a PD that opens VMBus channels through the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmbusClient {
    /// The client-side id of the Microkit channel to the driver PD.
    pub driver_channel: u8,
    /// First virtual address of the window the driver maps channel rings into.
    pub window_vaddr: u64,
    /// Size of the window in bytes.
    pub window_size: u64,
    /// Most channels the client may hold open at once.
    pub max_channels: u32,
    /// The one-page region both the client and the driver map as the client's control page.
    pub control: String,
    /// The device classes it serves (at least one).
    pub devices: Vec<DeviceClass>,
    /// Whether it may ask the driver to stop the system (`power="true"`: the shutdown
    /// integration service); default false.
    pub power: bool,
    /// Whether the driver signals the host for its channels by hypercall even when they are
    /// offered with a monitor id (`low_latency="true"`); default false.
    pub low_latency: bool,
    /// Line of the element (in the companion).
    pub line: u32,
}

impl VmbusClient {
    /// One past the last byte of the window (saturating, the validator rejects overflow).
    pub fn window_end(&self) -> u64 {
        self.window_vaddr.saturating_add(self.window_size)
    }
}

impl System {
    /// The PD with this name.
    pub fn pd(&self, name: &str) -> Option<&ProtectionDomain> {
        self.pds.iter().find(|p| p.name == name)
    }

    /// Index of the PD with this name in [`System::pds`].
    pub fn pd_index(&self, name: &str) -> Option<usize> {
        self.pds.iter().position(|p| p.name == name)
    }

    /// The memory region with this name.
    pub fn region(&self, name: &str) -> Option<&MemoryRegion> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Index of the region with this name in [`System::regions`].
    pub fn region_index(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r.name == name)
    }

    /// The VMBus driver PD (the first, if the description wrongly has several).
    pub fn vmbus_driver(&self) -> Option<&ProtectionDomain> {
        self.pds.iter().find(|p| p.vmbus_driver.is_some())
    }

    /// The simulated host PD, if the system has one.
    pub fn vmbus_host(&self) -> Option<&ProtectionDomain> {
        self.pds.iter().find(|p| p.vmbus_host.is_some())
    }

    /// The VMBus client PDs in the companion's order (their position is their `ClientId`).
    pub fn vmbus_clients(&self) -> impl Iterator<Item = (&ProtectionDomain, &VmbusClient)> {
        let mut clients: Vec<_> = self
            .pds
            .iter()
            .filter_map(|p| p.vmbus_client.as_ref().map(|c| (p, c)))
            .collect();
        clients.sort_by_key(|(_, c)| c.line);
        clients.into_iter()
    }

    /// The map of region `region` in PD `pd`, if it maps it.
    pub fn map_of(&self, pd: &str, region: &str) -> Option<&Map> {
        self.pd(pd)?.maps.iter().find(|m| m.mr == region)
    }

    /// The channels with an end at `pd`, as (this PD's end, the other end).
    pub fn channels_of<'a>(
        &'a self,
        pd: &'a str,
    ) -> impl Iterator<Item = (&'a ChannelEnd, &'a ChannelEnd)> + 'a {
        self.channels.iter().flat_map(move |c| {
            let [a, b] = &c.ends;
            let mut v = Vec::new();
            if a.pd == pd {
                v.push((a, b));
            }
            if b.pd == pd {
                v.push((b, a));
            }
            v
        })
    }

    /// The channel between `client` and the driver that `client` names as its driver channel:
    /// (client end, driver end).
    pub fn driver_channel_of<'a>(
        &'a self,
        client: &'a str,
    ) -> Option<(&'a ChannelEnd, &'a ChannelEnd)> {
        let c = self.pd(client)?.vmbus_client.as_ref()?;
        let driver = self.vmbus_driver()?;
        self.channels_of(client)
            .find(|(mine, other)| mine.id == c.driver_channel && other.pd == driver.name)
    }
}
