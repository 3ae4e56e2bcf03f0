//! Each PD's configuration, computed from a checked [`System`]: the one place where the
//! description becomes the addresses, channel ids, PD indices, windows and device classes a PD
//! runs with.
//!
//! [`pd_config`] computes it; the image and the simulation both use it:
//! - each PD program's build script calls [`build_script`], which writes [`render`]'s Rust
//!   source (`pub static CONFIGS: &[pd_runtime::config::PdConfig]`, one entry per PD running the
//!   program) to `$OUT_DIR/config.rs`; `cargo xtask gen` prints the same text;
//! - the simulation (`sim-system`) calls [`pd_config`] at run time to wire its simulated PDs.
//!
//! Rules: a client's number (`ClientId`) is its position in the companion; the driver sees its
//! pool at its map of the pool region, else at `pool_vaddr`; the host sees guest memory at its
//! map of the pool region; every other address is the PD's own map of the region named.

use std::fmt::Write as _;

use crate::model::*;

mod build;
pub use build::{DESCRIPTION_ENV, build_script, program_source};

/// One PD's configuration (the owned form of `pd_runtime::config::PdConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdConfig {
    /// The PD's name.
    pub name: String,
    /// Its index in [`System::pds`] (the root task's numbering).
    pub index: usize,
    /// Its program (the package of `components/pds`, from `program_image`).
    pub program: String,
    /// Its maps, in description order.
    pub maps: Vec<MapConfig>,
    /// Its channel ends, in description order.
    pub channels: Vec<ChannelConfig>,
    /// Its part as a VMBus client.
    pub client: Option<ClientConfig>,
    /// Its part as the VMBus driver.
    pub driver: Option<DriverConfig>,
    /// Its part as the simulated host.
    pub host: Option<HostConfig>,
}

/// A map of a region into the PD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapConfig {
    /// The region.
    pub region: String,
    /// Where the PD sees it.
    pub vaddr: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Writable.
    pub writable: bool,
}

/// The PD's end of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The PD's id for it.
    pub id: u8,
    /// The PD at the other end.
    pub peer: String,
    /// This end may make protected calls.
    pub pp: bool,
}

/// A client's own wiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Its number in the driver's table.
    pub id: u16,
    /// Its channel id to the driver.
    pub driver_channel: u8,
    /// First address of its window.
    pub window_vaddr: u64,
    /// Pages in the window.
    pub window_pages: u64,
    /// Most channels open at once.
    pub max_channels: u32,
    /// Device classes, in wire byte order.
    pub classes: Vec<[u8; 16]>,
    /// The instance filter shared by its classes.
    pub instance: Option<[u8; 16]>,
    /// Where it maps its control page.
    pub control_vaddr: u64,
}

/// The SynIC pages as one PD maps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynicConfig {
    /// The message page.
    pub message: u64,
    /// The event-flags page.
    pub event_flags: u64,
}

/// The driver's link to the simulated host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLink {
    /// The driver's channel id to the host.
    pub channel: u8,
    /// Where the driver maps the hypercall input page.
    pub hypercall_input: u64,
}

/// The driver's host: none, the simulated host PD, or Hyper-V itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HvConfig {
    /// No host (a driver that only grants pages to clients).
    None,
    /// The simulated host PD, through the hypercall stand-in and the SynIC regions both map.
    StandIn {
        /// The SynIC pages as the driver maps them.
        synic: SynicConfig,
        /// Its link to the host PD.
        host: HostLink,
    },
    /// Hyper-V, through the kernel's Hyper-V service.
    HyperV {
        /// Where the root task maps the kernel's SynIC frames in the driver.
        synic: SynicConfig,
        /// The driver's channel id of the SINT2 interrupt.
        sint_channel: u8,
    },
}

/// The driver's wiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// Where the driver sees its pool.
    pub pool_vaddr: u64,
    /// Pages in the pool.
    pub pool_pages: u64,
    /// The pool's region, if it is one (index in [`System::regions`]).
    pub pool_region: Option<usize>,
    /// What it talks to as the host.
    pub hypervisor: HvConfig,
    /// The clients in `ClientId` order.
    pub clients: Vec<DriverClient>,
}

/// One client as the driver reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverClient {
    /// Its number (`ClientId`).
    pub id: u16,
    /// Its PD name.
    pub name: String,
    /// Its PD index.
    pub pd_index: usize,
    /// The driver's `cap_vspace` slot for it.
    pub vspace_slot: u64,
    /// The driver's channel id to it.
    pub channel: u8,
    /// The client's channel id to the driver.
    pub client_channel: u8,
    /// First address of its window (in the client).
    pub window_vaddr: u64,
    /// Pages in the window.
    pub window_pages: u64,
    /// Where the driver maps its control page.
    pub control_vaddr: u64,
    /// Where the client maps its control page.
    pub client_control_vaddr: u64,
    /// Device classes, in wire byte order.
    pub classes: Vec<[u8; 16]>,
    /// The instance filter shared by its classes.
    pub instance: Option<[u8; 16]>,
    /// Most channels open at once.
    pub max_channels: u32,
    /// May ask the driver to stop the system (`power="true"`).
    pub power: bool,
    /// Signalled by hypercall even when monitored (`low_latency="true"`).
    pub low_latency: bool,
}

/// The simulated host's wiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Its channel id to the driver.
    pub driver_channel: u8,
    /// Where it sees guest memory (its map of the pool region).
    pub guest_memory_vaddr: u64,
    /// Pages of guest memory.
    pub guest_memory_pages: u64,
    /// The SynIC pages as it maps them.
    pub synic: SynicConfig,
    /// Where it maps the hypercall input page.
    pub hypercall_input: u64,
    /// Every device class the system's clients serve, in wire byte order, each once, in the
    /// order the companion lists them: what the simulated host offers.
    pub client_classes: Vec<[u8; 16]>,
}

/// The program a `program_image` path names: its file name without `.elf` (the package of
/// `components/pds` that builds it).
pub fn program_name(image: &str) -> &str {
    let file = image.rsplit(['/', '\\']).next().unwrap_or(image);
    file.strip_suffix(".elf").unwrap_or(file)
}

/// Where `pd` maps `region`, if it does.
fn vaddr_of(sys: &System, pd: &str, region: &str) -> Option<u64> {
    sys.map_of(pd, region).map(|m| m.vaddr)
}

/// The configuration of PD `pd` of the checked system `sys`; `None` if there is no such PD.
///
/// `sys` must have passed validation: a name the wiring relies on that does not resolve gives
/// address 0 rather than an error.
pub fn pd_config(sys: &System, pd: &str) -> Option<PdConfig> {
    let index = sys.pd_index(pd)?;
    let p = &sys.pds[index];
    let maps = p
        .maps
        .iter()
        .map(|m| MapConfig {
            region: m.mr.clone(),
            vaddr: m.vaddr,
            size: sys.region(&m.mr).map_or(0, |r| r.size),
            writable: m.perms.write,
        })
        .collect();
    let channels = sys
        .channels_of(pd)
        .map(|(mine, other)| ChannelConfig {
            id: mine.id,
            peer: other.pd.clone(),
            pp: mine.pp,
        })
        .collect();
    let clients = driver_clients(sys);
    let client = clients
        .iter()
        .find(|c| c.name == p.name)
        .map(|c| ClientConfig {
            id: c.id,
            driver_channel: c.client_channel,
            window_vaddr: c.window_vaddr,
            window_pages: c.window_pages,
            max_channels: c.max_channels,
            classes: c.classes.clone(),
            instance: c.instance,
            control_vaddr: c.client_control_vaddr,
        });
    let driver = p
        .vmbus_driver
        .as_ref()
        .map(|d| driver_config(sys, p, d, clients));
    let host = p.vmbus_host.as_ref().and_then(|h| host_config(sys, p, h));
    Some(PdConfig {
        name: p.name.clone(),
        index,
        program: program_name(&p.program_image.path).to_string(),
        maps,
        channels,
        client,
        driver,
        host,
    })
}

/// The configurations of the PDs that run `program`, in description order.
pub fn program_configs(sys: &System, program: &str) -> Vec<PdConfig> {
    sys.pds
        .iter()
        .filter(|p| program_name(&p.program_image.path) == program)
        .filter_map(|p| pd_config(sys, &p.name))
        .collect()
}

/// The clients in `ClientId` order, as the driver reaches them.
fn driver_clients(sys: &System) -> Vec<DriverClient> {
    let Some(driver) = sys.vmbus_driver() else {
        return Vec::new();
    };
    sys.vmbus_clients()
        .enumerate()
        .map(|(i, (p, c))| {
            let ends = sys.driver_channel_of(&p.name);
            DriverClient {
                id: u16::try_from(i).unwrap_or(u16::MAX),
                name: p.name.clone(),
                pd_index: sys.pd_index(&p.name).unwrap_or(usize::MAX),
                vspace_slot: driver
                    .cspace
                    .iter()
                    .find(|cap| cap.kind == CapKind::Vspace && cap.pd == p.name)
                    .map_or(0, |cap| cap.slot),
                channel: ends.map_or(0, |(_, d)| d.id),
                client_channel: c.driver_channel,
                window_vaddr: c.window_vaddr,
                window_pages: c.window_size / PAGE_SIZE,
                control_vaddr: vaddr_of(sys, &driver.name, &c.control).unwrap_or(0),
                client_control_vaddr: vaddr_of(sys, &p.name, &c.control).unwrap_or(0),
                classes: c.devices.iter().map(|d| d.class.bytes()).collect(),
                instance: c
                    .devices
                    .first()
                    .and_then(|d| d.instance.as_ref())
                    .map(|g| g.bytes()),
                max_channels: c.max_channels,
                power: c.power,
                low_latency: c.low_latency,
            }
        })
        .collect()
}

fn synic_of(sys: &System, pd: &str, d: &VmbusDriver) -> Option<SynicConfig> {
    Some(SynicConfig {
        message: vaddr_of(sys, pd, d.synic_message.as_ref()?)?,
        event_flags: vaddr_of(sys, pd, d.synic_event_flags.as_ref()?)?,
    })
}

fn driver_config(
    sys: &System,
    p: &ProtectionDomain,
    d: &VmbusDriver,
    clients: Vec<DriverClient>,
) -> DriverConfig {
    let mapped = d
        .pool_region
        .as_ref()
        .and_then(|r| vaddr_of(sys, &p.name, r));
    let host = sys.vmbus_host().and_then(|h| {
        let link = h.vmbus_host.as_ref()?;
        let (_, mine) = sys
            .channels_of(&h.name)
            .find(|(theirs, other)| theirs.id == link.driver_channel && other.pd == p.name)?;
        Some(HostLink {
            channel: mine.id,
            hypercall_input: vaddr_of(sys, &p.name, &link.hypercall_input)?,
        })
    });
    let hypervisor = match (&d.hyperv, synic_of(sys, &p.name, d), host) {
        (Some(h), _, _) => HvConfig::HyperV {
            synic: SynicConfig {
                message: h.synic_vaddr,
                event_flags: h.synic_vaddr + PAGE_SIZE,
            },
            sint_channel: h.sint_channel,
        },
        (None, Some(synic), Some(host)) => HvConfig::StandIn { synic, host },
        _ => HvConfig::None,
    };
    DriverConfig {
        pool_vaddr: mapped.or(d.pool_vaddr).unwrap_or(0),
        pool_pages: d.pool_pages,
        pool_region: d.pool_region.as_ref().and_then(|r| sys.region_index(r)),
        hypervisor,
        clients,
    }
}

fn host_config(sys: &System, p: &ProtectionDomain, h: &VmbusHost) -> Option<HostConfig> {
    let driver = sys.vmbus_driver()?;
    let d = driver.vmbus_driver.as_ref()?;
    let pool = d.pool_region.as_ref()?;
    Some(HostConfig {
        driver_channel: h.driver_channel,
        guest_memory_vaddr: vaddr_of(sys, &p.name, pool)?,
        guest_memory_pages: sys.region(pool)?.size / PAGE_SIZE,
        synic: synic_of(sys, &p.name, d)?,
        hypercall_input: vaddr_of(sys, &p.name, &h.hypercall_input)?,
        client_classes: client_classes(sys),
    })
}

/// Every class the system's clients serve, each once.
fn client_classes(sys: &System) -> Vec<[u8; 16]> {
    let mut out: Vec<[u8; 16]> = Vec::new();
    for (_, c) in sys.vmbus_clients() {
        for d in &c.devices {
            let b = d.class.bytes();
            if !out.contains(&b) {
                out.push(b);
            }
        }
    }
    out
}

/// The path of the generated configuration types, as the generated source names them.
const TYPES: &str = "::pd_runtime::config";

fn guid(b: &[u8; 16]) -> String {
    let bytes: Vec<String> = b.iter().map(|x| format!("{x:#04x}")).collect();
    format!("{TYPES}::Guid([{}])", bytes.join(", "))
}

fn guids(list: &[[u8; 16]]) -> String {
    let items: Vec<String> = list.iter().map(guid).collect();
    format!("&[{}]", items.join(", "))
}

fn opt_guid(g: Option<&[u8; 16]>) -> String {
    g.map_or("None".to_string(), |g| format!("Some({})", guid(g)))
}

fn synic(s: &SynicConfig) -> String {
    format!(
        "{TYPES}::Synic {{ message: {:#x}, event_flags: {:#x} }}",
        s.message, s.event_flags
    )
}

/// Rust source for `configs` (the PDs running one program): a `pub static CONFIGS`, one
/// `pd_runtime::config::PdConfig` per PD, from the description `sys`. The text depends only on
/// its input (and the descriptions' file names, not their paths), so the same description always
/// gives the same bytes.
pub fn render(sys: &System, configs: &[PdConfig]) -> String {
    let mut s = String::new();
    // File names only: the text is the same whichever path the description was read by.
    let name = |f: &str| f.rsplit(['/', '\\']).next().unwrap_or(f).to_string();
    let from = match &sys.vmbus_file {
        Some(v) => format!("`{}` and `{}`", name(&sys.file), name(v)),
        None => format!("`{}`", name(&sys.file)),
    };
    let _ = writeln!(
        s,
        "// Generated by sysdesc (build/sysdesc/src/config.rs) from {from}: do not edit.\n"
    );
    let _ = writeln!(
        s,
        "/// The configuration of each PD that runs this program, from {from}."
    );
    let _ = writeln!(s, "pub static CONFIGS: &[{TYPES}::PdConfig] = &[");
    for c in configs {
        let _ = writeln!(s, "    {TYPES}::PdConfig {{");
        let _ = writeln!(s, "        name: {:?},", c.name);
        let _ = writeln!(s, "        index: {},", c.index);
        let _ = writeln!(s, "        maps: &[");
        for m in &c.maps {
            let _ = writeln!(
                s,
                "            {TYPES}::Map {{ region: {:?}, vaddr: {:#x}, size: {:#x}, writable: {} }},",
                m.region, m.vaddr, m.size, m.writable
            );
        }
        let _ = writeln!(s, "        ],");
        let _ = writeln!(s, "        channels: &[");
        for ch in &c.channels {
            let _ = writeln!(
                s,
                "            {TYPES}::Channel {{ id: {}, peer: {:?}, pp: {} }},",
                ch.id, ch.peer, ch.pp
            );
        }
        let _ = writeln!(s, "        ],");
        match &c.client {
            None => {
                let _ = writeln!(s, "        client: None,");
            }
            Some(cl) => {
                let _ = writeln!(
                    s,
                    "        client: Some({TYPES}::Client {{ id: {}, driver_channel: {}, window_vaddr: {:#x}, window_pages: {}, max_channels: {}, classes: {}, instance: {}, control_vaddr: {:#x} }}),",
                    cl.id,
                    cl.driver_channel,
                    cl.window_vaddr,
                    cl.window_pages,
                    cl.max_channels,
                    guids(&cl.classes),
                    opt_guid(cl.instance.as_ref()),
                    cl.control_vaddr
                );
            }
        }
        match &c.driver {
            None => {
                let _ = writeln!(s, "        driver: None,");
            }
            Some(d) => {
                let _ = writeln!(s, "        driver: Some({TYPES}::Driver {{");
                let _ = writeln!(s, "            pool_vaddr: {:#x},", d.pool_vaddr);
                let _ = writeln!(s, "            pool_pages: {},", d.pool_pages);
                let hv = match d.hypervisor {
                    HvConfig::None => format!("{TYPES}::Hypervisor::None"),
                    HvConfig::StandIn { synic: sy, host: h } => format!(
                        "{TYPES}::Hypervisor::StandIn {{ synic: {}, host: {TYPES}::HostLink {{ channel: {}, hypercall_input: {:#x} }} }}",
                        synic(&sy),
                        h.channel,
                        h.hypercall_input
                    ),
                    HvConfig::HyperV {
                        synic: sy,
                        sint_channel,
                    } => format!(
                        "{TYPES}::Hypervisor::HyperV {{ synic: {}, sint_channel: {sint_channel} }}",
                        synic(&sy)
                    ),
                };
                let _ = writeln!(s, "            hypervisor: {hv},");
                let _ = writeln!(s, "            clients: &[");
                for cl in &d.clients {
                    let _ = writeln!(
                        s,
                        "                {TYPES}::DriverClient {{ id: {}, name: {:?}, pd_index: {}, vspace_slot: {}, channel: {}, window_vaddr: {:#x}, window_pages: {}, control_vaddr: {:#x}, classes: {}, instance: {}, max_channels: {}, power: {}, low_latency: {} }},",
                        cl.id,
                        cl.name,
                        cl.pd_index,
                        cl.vspace_slot,
                        cl.channel,
                        cl.window_vaddr,
                        cl.window_pages,
                        cl.control_vaddr,
                        guids(&cl.classes),
                        opt_guid(cl.instance.as_ref()),
                        cl.max_channels,
                        cl.power,
                        cl.low_latency
                    );
                }
                let _ = writeln!(s, "            ],");
                let _ = writeln!(s, "        }}),");
            }
        }
        match &c.host {
            None => {
                let _ = writeln!(s, "        host: None,");
            }
            Some(h) => {
                let _ = writeln!(
                    s,
                    "        host: Some({TYPES}::Host {{ driver_channel: {}, guest_memory_vaddr: {:#x}, guest_memory_pages: {}, synic: {}, hypercall_input: {:#x}, client_classes: {} }}),",
                    h.driver_channel,
                    h.guest_memory_vaddr,
                    h.guest_memory_pages,
                    synic(&h.synic),
                    h.hypercall_input,
                    guids(&h.client_classes)
                );
            }
        }
        let _ = writeln!(s, "    }},");
    }
    let _ = writeln!(s, "];");
    s
}
