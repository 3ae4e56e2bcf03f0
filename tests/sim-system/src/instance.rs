//! Instantiating a system description on the seL4 model: PDs, regions and their mappings,
//! Microkit channels, interrupts, the driver's pool and clients, control pages, fault handlers.
//!
//! The VMBus wiring (which PD is the driver and which are clients, the pool, windows, control
//! pages, client numbers) comes from the companion file through `sysdesc::config::pd_config`,
//! the same computation that configures the image's PD programs.
//!
//! What the model does with each description element:
//! - `protection_domain`: a simulated PD (name, priority); a nested PD's faults go to its parent,
//!   a VMBus client's to the driver (the driver tears the client's channels down on a fault).
//! - `memory_region` + `map`: 4 KiB frames retyped in a root PD (the system initialiser, which
//!   keeps the originals); each `map` copies them into the PD and maps them with the described
//!   rights. Large-page regions become 4 KiB frames (the model has no large pages); `phys_addr`
//!   is not honoured (the model allocates physical addresses itself).
//! - the driver's `pool_region` (companion): its frames are the driver's pool, retyped into the
//!   driver's CSpace (the driver holds the originals, so revoking one removes every client
//!   mapping) and mapped in the driver where its configuration puts the pool (its map of the
//!   region, or `pool_vaddr`). The host's `map` of that region is not a VSpace mapping: the host
//!   is the hypervisor and sees the frames as guest-physical memory ([`crate::GuestMem`]). A
//!   capability copy into the host would be a descendant of the driver's original and vanish at
//!   the first revoke.
//! - a client's control page (companion `control`): the described region, mapped in the client
//!   and the driver by their `map`s.
//! - `channel`: Microkit channels (badged notification capabilities both ways); `notify="false"`
//!   and `pp` are enforced by [`Instance::notify`] and [`Instance::pp_target`].
//! - `irq`: an IRQ handler bound to the PD's notification with the channel-id bit as badge.
//! - `cspace`/`cap_vspace`: a copy of the named PD's VSpace capability in the described slot.
//! - what the model cannot express (`virtual_machine`, `cap_tcb`, `cap_sc`, `ioport`, prefill) is
//!   refused with [`BuildError::Unsupported`] rather than silently dropped.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sel4_sim::{FrameId, IrqSetup, PdId, SimKernel, SlotRef};
use sysdesc::model::System;
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, PageId};

use crate::error::NotifyError;

/// The simulated kernel with the driver's seam, shared by everything that acts on it (the driver,
/// client ring memories, the host's guest-memory view). Single-threaded: borrow, act, release.
pub type SharedKernel = Rc<RefCell<SimKernel>>;

/// Guest frame number -> (pool page, frame object): the pool as the host addresses it.
pub type PfnMap = BTreeMap<u64, (PageId, FrameId)>;

/// A memory region as instantiated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInstance {
    /// Name from the description.
    pub name: String,
    /// Slots of the original frame capabilities (in the root PD, or in the driver for the pool).
    pub frames: Vec<SlotRef>,
    /// Whether this region is the driver's ring-page pool.
    pub is_pool: bool,
}

/// One end of an instantiated channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndInstance {
    /// The PD at this end.
    pub pd: PdId,
    /// The channel id this PD uses.
    pub id: u8,
    /// This end may make protected calls to the other.
    pub pp: bool,
    /// This end may notify the other.
    pub notify: bool,
}

/// A Microkit channel as instantiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelInstance {
    /// The two ends in description order.
    pub ends: [EndInstance; 2],
}

/// A VMBus client as wired in the simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's number: its position among the description's VMBus clients.
    pub id: ClientId,
    /// PD name.
    pub name: String,
    /// The client PD.
    pub pd: PdId,
    /// First virtual address of the window.
    pub window_base: u64,
    /// Pages in the window.
    pub window_pages: usize,
    /// Most channels open at once.
    pub max_channels: usize,
    /// Device classes served.
    pub classes: Vec<Guid>,
    /// Instance filter shared by all its classes, if any.
    pub instance: Option<Guid>,
    /// May ask the driver to stop the system (`power="true"`).
    pub power: bool,
    /// Signalled by hypercall even when monitored (`low_latency="true"`).
    pub low_latency: bool,
    /// The client's channel id towards the driver.
    pub driver_channel: u8,
    /// The driver's channel id towards this client.
    pub driver_end: u8,
    /// Where the client maps its control page.
    pub control_vaddr: u64,
    /// Where the driver maps this client's control page.
    pub driver_control_vaddr: u64,
    /// The control page frame.
    pub control_frame: FrameId,
}

/// The driver's ring-page pool as the host sees it: frame numbers of the pool pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// Pages in the pool.
    pub pages: u32,
    /// Guest frame number -> (pool page, frame object).
    pub by_pfn: Rc<PfnMap>,
}

/// A system description instantiated on the seL4 model.
#[derive(Debug)]
pub struct Instance {
    pub(crate) kernel: SharedKernel,
    pub(crate) root: PdId,
    pub(crate) pds: Vec<(String, PdId)>,
    pub(crate) regions: Vec<RegionInstance>,
    pub(crate) channels: Vec<ChannelInstance>,
    pub(crate) driver: PdId,
    pub(crate) host: Option<PdId>,
    pub(crate) clients: Vec<ClientInfo>,
    pub(crate) pool: PoolInfo,
    pub(crate) irq: IrqSetup,
}

/// Path of the repository's `system.xml`, found from this crate's manifest directory.
#[must_use]
pub fn repository_system_xml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../system.xml")
}

/// Loads and validates the repository's `system.xml`.
///
/// # Errors
/// The description's diagnostics, rendered one per line.
pub fn load_repository_system() -> Result<System, String> {
    sysdesc::load(&repository_system_xml()).map_err(|diags| {
        diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

impl Instance {
    /// The shared simulated kernel.
    #[must_use]
    pub fn kernel(&self) -> &SharedKernel {
        &self.kernel
    }

    /// The root PD (the system initialiser; not part of the description).
    #[must_use]
    pub const fn root(&self) -> PdId {
        self.root
    }

    /// The described PDs in description order, with their simulated ids.
    #[must_use]
    pub fn pds(&self) -> &[(String, PdId)] {
        &self.pds
    }

    /// The simulated PD of the described PD `name`.
    #[must_use]
    pub fn pd(&self, name: &str) -> Option<PdId> {
        self.pds.iter().find(|(n, _)| n == name).map(|&(_, id)| id)
    }

    /// The described name of `pd`.
    #[must_use]
    pub fn pd_name(&self, pd: PdId) -> Option<&str> {
        self.pds
            .iter()
            .find(|&&(_, id)| id == pd)
            .map(|(n, _)| n.as_str())
    }

    /// The instantiated regions in description order.
    #[must_use]
    pub fn regions(&self) -> &[RegionInstance] {
        &self.regions
    }

    /// The instantiated region `name`.
    #[must_use]
    pub fn region(&self, name: &str) -> Option<&RegionInstance> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// The instantiated channels in description order.
    #[must_use]
    pub fn channels(&self) -> &[ChannelInstance] {
        &self.channels
    }

    /// The driver PD.
    #[must_use]
    pub const fn driver(&self) -> PdId {
        self.driver
    }

    /// The PD that maps the pool as guest memory (the simulated host), if described.
    #[must_use]
    pub const fn host(&self) -> Option<PdId> {
        self.host
    }

    /// The VMBus clients in description order (index = `ClientId`).
    #[must_use]
    pub fn clients(&self) -> &[ClientInfo] {
        &self.clients
    }

    /// Client `id`.
    #[must_use]
    pub fn client(&self, id: ClientId) -> Option<&ClientInfo> {
        self.clients.get(usize::from(id.0))
    }

    /// The client running in `pd`.
    #[must_use]
    pub fn client_by_pd(&self, pd: PdId) -> Option<&ClientInfo> {
        self.clients.iter().find(|c| c.pd == pd)
    }

    /// The client named `name`.
    #[must_use]
    pub fn client_by_name(&self, name: &str) -> Option<&ClientInfo> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// The pool as the host sees it.
    #[must_use]
    pub const fn pool(&self) -> &PoolInfo {
        &self.pool
    }

    /// The host's view of guest memory (the pool frames by frame number).
    #[must_use]
    pub fn guest_mem(&self) -> crate::GuestMem {
        crate::GuestMem::new(self.kernel.clone(), self.pool.by_pfn.clone())
    }

    /// The VMBus interrupt (number and the badge it signals the driver with).
    #[must_use]
    pub const fn vmbus_irq(&self) -> IrqSetup {
        self.irq
    }

    /// The end of channel `ch` at `pd` and the other end.
    #[must_use]
    pub fn channel_end(&self, pd: PdId, ch: u8) -> Option<(EndInstance, EndInstance)> {
        self.channels.iter().find_map(|c| {
            let [a, b] = c.ends;
            if a.pd == pd && a.id == ch {
                Some((a, b))
            } else if b.pd == pd && b.id == ch {
                Some((b, a))
            } else {
                None
            }
        })
    }

    /// `microkit_notify(ch)` from `pd`, refused where the description forbids it.
    ///
    /// # Errors
    /// [`NotifyError::NoChannel`], [`NotifyError::NotAllowed`], or the kernel's refusal.
    pub fn notify(&self, pd: PdId, ch: u8) -> Result<(), NotifyError> {
        let (mine, _) = self.channel_end(pd, ch).ok_or(NotifyError::NoChannel)?;
        if !mine.notify {
            return Err(NotifyError::NotAllowed);
        }
        self.kernel
            .borrow_mut()
            .sim
            .notify_channel(pd, ch)
            .map_err(NotifyError::Kernel)
    }

    /// The PD that a protected call from `pd` on channel `ch` reaches, if that end has `pp`.
    #[must_use]
    pub fn pp_target(&self, pd: PdId, ch: u8) -> Option<PdId> {
        self.channel_end(pd, ch)
            .and_then(|(mine, other)| mine.pp.then_some(other.pd))
    }
}
