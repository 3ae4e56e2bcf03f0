//! The whole system as const arrays, for the root task that builds the system at boot.
//!
//! PDs and regions are referred to by index into `PDS` / `REGIONS`, which keeps every entry
//! `Copy` and the root task free of string lookups. Not included: virtual machines, setvars
//! (symbol patching happens when the image is built) and the domain schedule (a kernel build
//! setting on seL4 5.0).

use std::fmt::Write as _;

use super::{HEADER, rust_str};
use crate::model::*;

const TYPES: &str = r#"
/// A protection domain.
#[derive(Debug, Clone, Copy)]
pub struct Pd {
    /// Name.
    pub name: &'static str,
    /// Priority 0..=254.
    pub priority: u8,
    /// Budget in microseconds.
    pub budget_us: u64,
    /// Period in microseconds.
    pub period_us: u64,
    /// Scheduling context removed after init.
    pub passive: bool,
    /// Stack size in bytes.
    pub stack_size: u64,
    /// CPU core.
    pub cpu: u8,
    /// FPU enabled.
    pub fpu: bool,
    /// Program image file name.
    pub program_image: &'static str,
    /// Parent PD index and the id it uses for this child, for nested PDs.
    pub parent: Option<(u16, u8)>,
}

/// A memory region.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    /// Name.
    pub name: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Page size in bytes.
    pub page_size: u64,
    /// Fixed physical address, if any.
    pub phys_addr: Option<u64>,
}

/// A region mapped into a PD.
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    /// PD index.
    pub pd: u16,
    /// Region index.
    pub region: u16,
    /// Virtual address.
    pub vaddr: u64,
    /// Rights: read 1, write 2, execute 4.
    pub perms: u8,
    /// Cached.
    pub cached: bool,
}

/// One end of a channel.
#[derive(Debug, Clone, Copy)]
pub struct End {
    /// PD index.
    pub pd: u16,
    /// Channel id in that PD.
    pub id: u8,
    /// May make protected calls to the other end.
    pub pp: bool,
    /// May notify the other end.
    pub notify: bool,
}

/// A channel between two PDs.
#[derive(Debug, Clone, Copy)]
pub struct Channel {
    /// First end.
    pub a: End,
    /// Second end.
    pub b: End,
}

/// Where an interrupt comes from.
#[derive(Debug, Clone, Copy)]
pub enum IrqSource {
    /// I/O APIC pin.
    Ioapic {
        /// I/O APIC number.
        ioapic: u64,
        /// Pin.
        pin: u64,
        /// Level (true) or edge (false) triggered.
        level: bool,
        /// Active low (true) or high (false).
        active_low: bool,
    },
    /// PCI MSI.
    Msi {
        /// PCI bus.
        bus: u8,
        /// PCI device.
        device: u8,
        /// PCI function.
        function: u8,
        /// MSI handle.
        handle: u64,
    },
}

/// An interrupt delivered to a PD.
#[derive(Debug, Clone, Copy)]
pub struct Irq {
    /// PD index.
    pub pd: u16,
    /// Channel id in that PD.
    pub id: u8,
    /// Kernel vector.
    pub vector: u8,
    /// Source.
    pub source: IrqSource,
}

/// An I/O port range of a PD.
#[derive(Debug, Clone, Copy)]
pub struct IoPort {
    /// PD index.
    pub pd: u16,
    /// Id in that PD.
    pub id: u8,
    /// First port.
    pub addr: u16,
    /// Number of ports.
    pub size: u32,
}

/// What object a capability placed by `cspace` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapKind {
    /// Thread control block.
    Tcb,
    /// Scheduling context.
    Sc,
    /// Address space (VSpace root).
    Vspace,
}

/// A capability to another PD's object, placed in a PD's CSpace.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    /// PD index of the holder.
    pub pd: u16,
    /// Object kind.
    pub kind: CapKind,
    /// Destination slot.
    pub slot: u64,
    /// PD index of the object's owner.
    pub target: u16,
}

/// A VMBus client's window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// PD index of the client.
    pub pd: u16,
    /// First virtual address.
    pub vaddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Most channels open at once.
    pub max_channels: u32,
    /// The client's channel id to the driver.
    pub driver_channel: u8,
}

/// A device class a VMBus client serves.
#[derive(Debug, Clone, Copy)]
pub struct DeviceClass {
    /// PD index of the client.
    pub pd: u16,
    /// Class GUID.
    pub class: &'static str,
    /// Optional instance GUID filter.
    pub instance: Option<&'static str>,
}
"#;

fn idx(i: Option<usize>) -> usize {
    // The description is validated before generation, so names resolve; u16::MAX marks a
    // dangling reference should an unvalidated model be passed.
    i.unwrap_or(u16::MAX as usize)
}

fn array(out: &mut String, doc: &str, name: &str, ty: &str, rows: &[String]) {
    let _ = writeln!(out, "\n/// {doc}\npub const {name}: &[{ty}] = &[");
    for r in rows {
        let _ = writeln!(out, "    {r},");
    }
    out.push_str("];\n");
}

/// The whole system as Rust source: type definitions and `const` arrays `PDS`, `REGIONS`,
/// `MAPPINGS`, `CHANNELS`, `IRQS`, `IOPORTS`, `CAPS`, `WINDOWS`, `DEVICE_CLASSES`, plus
/// `VMBUS_DRIVER` (PD index) and `VMBUS_POOL_PAGES`.
pub fn generate_system_table(sys: &System) -> String {
    let mut out = String::from(HEADER);
    let _ = writeln!(
        out,
        "//! Generated table of the system described by `{}`.",
        sys.file
    );
    out.push_str(TYPES);

    let pds: Vec<String> = sys
        .pds
        .iter()
        .map(|p| {
            let parent = match (p.parent, p.child_id) {
                (Some(i), Some(id)) => format!("Some(({i}, {id}))"),
                _ => "None".to_string(),
            };
            format!(
                "Pd {{ name: {}, priority: {}, budget_us: {}, period_us: {}, passive: {}, stack_size: {:#x}, cpu: {}, fpu: {}, program_image: {}, parent: {parent} }}",
                rust_str(&p.name),
                p.sched.priority,
                p.sched.budget_us,
                p.sched.period_us,
                p.passive,
                p.stack_size,
                p.cpu,
                p.fpu,
                rust_str(&p.program_image.path)
            )
        })
        .collect();
    array(
        &mut out,
        "Protection domains (index = PD index).",
        "PDS",
        "Pd",
        &pds,
    );

    let regions: Vec<String> = sys
        .regions
        .iter()
        .map(|r| {
            format!(
                "Region {{ name: {}, size: {:#x}, page_size: {:#x}, phys_addr: {} }}",
                rust_str(&r.name),
                r.size,
                r.page_size,
                r.phys_addr
                    .map_or("None".to_string(), |a| format!("Some({a:#x})"))
            )
        })
        .collect();
    array(
        &mut out,
        "Memory regions (index = region index).",
        "REGIONS",
        "Region",
        &regions,
    );

    let mut maps = Vec::new();
    let mut irqs = Vec::new();
    let mut ports = Vec::new();
    let mut caps = Vec::new();
    let mut windows = Vec::new();
    let mut classes = Vec::new();
    for (i, p) in sys.pds.iter().enumerate() {
        for m in &p.maps {
            maps.push(format!(
                "Mapping {{ pd: {i}, region: {}, vaddr: {:#x}, perms: {}, cached: {} }}",
                idx(sys.region_index(&m.mr)),
                m.vaddr,
                m.perms.bits(),
                m.cached
            ));
        }
        for q in &p.irqs {
            let source = match q.source {
                IrqSource::Ioapic {
                    ioapic,
                    pin,
                    trigger,
                    polarity,
                } => format!(
                    "IrqSource::Ioapic {{ ioapic: {ioapic}, pin: {pin}, level: {}, active_low: {} }}",
                    trigger == Trigger::Level,
                    polarity == Polarity::Low
                ),
                IrqSource::Msi { pcidev, handle } => format!(
                    "IrqSource::Msi {{ bus: {}, device: {}, function: {}, handle: {handle} }}",
                    pcidev.bus, pcidev.device, pcidev.function
                ),
            };
            irqs.push(format!(
                "Irq {{ pd: {i}, id: {}, vector: {}, source: {source} }}",
                q.id, q.vector
            ));
        }
        for io in &p.ioports {
            ports.push(format!(
                "IoPort {{ pd: {i}, id: {}, addr: {:#x}, size: {} }}",
                io.id, io.addr, io.size
            ));
        }
        for c in &p.cspace {
            let kind = match c.kind {
                CapKind::Tcb => "Tcb",
                CapKind::Sc => "Sc",
                CapKind::Vspace => "Vspace",
            };
            caps.push(format!(
                "Cap {{ pd: {i}, kind: CapKind::{kind}, slot: {}, target: {} }}",
                c.slot,
                idx(sys.pd_index(&c.pd))
            ));
        }
        if let Some(w) = &p.vmbus_client {
            windows.push(format!(
                "Window {{ pd: {i}, vaddr: {:#x}, size: {:#x}, max_channels: {}, driver_channel: {} }}",
                w.window_vaddr, w.window_size, w.max_channels, w.driver_channel
            ));
            for d in &w.devices {
                classes.push(format!(
                    "DeviceClass {{ pd: {i}, class: {}, instance: {} }}",
                    rust_str(d.class.as_str()),
                    d.instance.as_ref().map_or("None".to_string(), |g| format!(
                        "Some({})",
                        rust_str(g.as_str())
                    ))
                ));
            }
        }
    }
    array(
        &mut out,
        "Mappings of regions into PDs.",
        "MAPPINGS",
        "Mapping",
        &maps,
    );

    let channels: Vec<String> = sys
        .channels
        .iter()
        .map(|c| {
            let end = |e: &ChannelEnd| {
                format!(
                    "End {{ pd: {}, id: {}, pp: {}, notify: {} }}",
                    idx(sys.pd_index(&e.pd)),
                    e.id,
                    e.pp,
                    e.notify
                )
            };
            format!(
                "Channel {{ a: {}, b: {} }}",
                end(&c.ends[0]),
                end(&c.ends[1])
            )
        })
        .collect();
    array(&mut out, "Channels.", "CHANNELS", "Channel", &channels);
    array(&mut out, "Interrupts.", "IRQS", "Irq", &irqs);
    array(&mut out, "I/O port ranges.", "IOPORTS", "IoPort", &ports);
    array(
        &mut out,
        "Capabilities placed by `cspace` elements.",
        "CAPS",
        "Cap",
        &caps,
    );
    array(
        &mut out,
        "VMBus client windows.",
        "WINDOWS",
        "Window",
        &windows,
    );
    array(
        &mut out,
        "Device classes served by VMBus clients.",
        "DEVICE_CLASSES",
        "DeviceClass",
        &classes,
    );
    let driver = sys.pds.iter().position(|p| p.vmbus_driver.is_some());
    let _ = writeln!(
        out,
        "\n/// PD index of the VMBus driver.\npub const VMBUS_DRIVER: Option<u16> = {};",
        driver.map_or("None".to_string(), |i| format!("Some({i})"))
    );
    let pool = sys
        .vmbus_driver()
        .and_then(|p| p.vmbus_driver.as_ref())
        .map_or(0, |d| d.pool_pages);
    let _ = writeln!(
        out,
        "/// Pages in the VMBus ring-page pool.\npub const VMBUS_POOL_PAGES: u64 = {pool};"
    );
    let pool_region = sys
        .vmbus_driver()
        .and_then(|p| p.vmbus_driver.as_ref())
        .and_then(|d| d.pool_region.as_ref())
        .and_then(|n| sys.region_index(n));
    let _ = writeln!(
        out,
        "/// Region index of the pool's frames, when the pool is a named region.\npub const VMBUS_POOL_REGION: Option<u16> = {};",
        pool_region.map_or("None".to_string(), |i| format!("Some({i})"))
    );
    out
}
