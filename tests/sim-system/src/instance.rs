//! Instantiating a system description on the seL4 model: PDs, regions and their mappings,
//! Microkit channels, interrupts, the driver's pool and clients, control pages, fault handlers.
//!
//! What the model does with each description element:
//! - `protection_domain`: a simulated PD (name, priority); a nested PD's faults go to its parent,
//!   a VMBus client's to the driver (the driver tears the client's channels down on a fault).
//! - `memory_region` + `map`: 4 KiB frames retyped in a root PD (the system initialiser, which
//!   keeps the originals); each `map` copies them into the PD and maps them with the described
//!   rights. Large-page regions become 4 KiB frames (the model has no large pages); `phys_addr`
//!   is not honoured (the model allocates physical addresses itself).
//! - the driver's `pool_region`: its frames are the driver's pool, retyped into the driver's
//!   CSpace (the driver holds the originals, so revoking one removes every client mapping). The
//!   host's `map` of that region is not a VSpace mapping: the host is the hypervisor and sees the
//!   frames as guest-physical memory ([`crate::GuestMem`]). A capability copy into the host would
//!   be a descendant of the driver's original and vanish at the first revoke.
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

use sel4_sim::{
    CapPtr, CapRights, ClientSetup, DriverSetup, FrameId, IrqSetup, PdId, Sim, SimConfig,
    SimKernel, SlotRef,
};
use sysdesc::model::{CapKind, System};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, PageId};

use crate::error::{BuildError, BuildStep, NotifyError};
use crate::layout::{
    CLIENT_CONTROL_VADDR, DRIVER_CONTROL_VADDR, DRIVER_POOL_VADDR, PAGE, VMBUS_IRQ, overlaps,
};

/// The simulated kernel with the driver's seam, shared by everything that acts on it (the driver,
/// client ring memories, the host's guest-memory view). Single-threaded: borrow, act, release.
pub type SharedKernel = Rc<RefCell<SimKernel>>;

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
    pub by_pfn: Rc<BTreeMap<u64, (PageId, FrameId)>>,
}

/// A system description instantiated on the seL4 model.
#[derive(Debug)]
pub struct Instance {
    kernel: SharedKernel,
    root: PdId,
    pds: Vec<(String, PdId)>,
    regions: Vec<RegionInstance>,
    channels: Vec<ChannelInstance>,
    driver: PdId,
    host: Option<PdId>,
    clients: Vec<ClientInfo>,
    pool: PoolInfo,
    irq: IrqSetup,
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

fn kernel_err(step: BuildStep, index: usize) -> impl Fn(sel4_sim::Error) -> BuildError {
    move |error| BuildError::Kernel { step, index, error }
}

fn rights_of(p: sysdesc::model::Perms) -> CapRights {
    CapRights {
        read: p.read,
        write: p.write,
        grant: false,
        grant_reply: false,
    }
}

fn parse_guid(s: &sysdesc::Guid, pd: usize) -> Result<Guid, BuildError> {
    Guid::parse(s.as_str()).map_err(|_| BuildError::BadGuid { pd })
}

/// Checks that `[vaddr, vaddr + len)` of PD `pd` (description index) overlaps none of its
/// described mappings and, for a client, its window.
fn check_free(sys: &System, pd: usize, vaddr: u64, len: u64) -> Result<(), BuildError> {
    let p = &sys.pds[pd];
    for m in &p.maps {
        let size = sys.region(&m.mr).map_or(0, |r| r.size);
        if overlaps(vaddr, len, m.vaddr, size) {
            return Err(BuildError::AddressClash { pd, vaddr });
        }
    }
    if let Some(c) = &p.vmbus_client
        && overlaps(vaddr, len, c.window_vaddr, c.window_size)
    {
        return Err(BuildError::AddressClash { pd, vaddr });
    }
    Ok(())
}

impl Instance {
    /// Instantiates the repository's `system.xml` with the default model configuration.
    ///
    /// # Panics
    /// If the repository's description does not load or instantiate (a broken checkout).
    #[must_use]
    pub fn repository() -> Self {
        let sys = load_repository_system().unwrap_or_else(|e| panic!("system.xml: {e}"));
        Self::build(&sys, SimConfig::default())
            .unwrap_or_else(|e| panic!("system.xml does not instantiate: {e}"))
    }

    /// Instantiates `sys` on a fresh simulated kernel configured by `config`.
    ///
    /// # Errors
    /// [`BuildError`] naming the element that could not be built.
    pub fn build(sys: &System, config: SimConfig) -> Result<Self, BuildError> {
        let driver_index = sys
            .pds
            .iter()
            .position(|p| p.vmbus_driver.is_some())
            .ok_or(BuildError::NoDriver)?;
        let driver_desc = sys.pds[driver_index]
            .vmbus_driver
            .as_ref()
            .ok_or(BuildError::NoDriver)?;
        let pool_region = driver_desc.pool_region.clone();
        Self::refuse_unsupported(sys)?;

        let mut sim = Sim::with_config(config);
        // The system initialiser: holds the originals of every described region's frames.
        let root = sim.create_pd("<root>", 255);
        let pds: Vec<(String, PdId)> = sys
            .pds
            .iter()
            .map(|p| (p.name.clone(), sim.create_pd(&p.name, p.sched.priority)))
            .collect();
        let pd_of = |name: &str| pds.iter().find(|(n, _)| n == name).map(|&(_, id)| id);
        let driver = pds[driver_index].1;

        // Regions other than the pool: frames in the root PD.
        let mut regions = Vec::with_capacity(sys.regions.len());
        for (i, r) in sys.regions.iter().enumerate() {
            let is_pool = pool_region.as_deref() == Some(r.name.as_str());
            let frames = if is_pool {
                Vec::new() // filled in once the driver's seam has retyped the pool
            } else {
                let n = u32::try_from(r.size / PAGE).map_err(|_| BuildError::Kernel {
                    step: BuildStep::Region,
                    index: i,
                    error: sel4_sim::Error::RangeError,
                })?;
                sim.create_frames(root, n)
                    .map_err(kernel_err(BuildStep::Region, i))?
                    .into_iter()
                    .map(|c| SlotRef::new(root, c))
                    .collect()
            };
            regions.push(RegionInstance {
                name: r.name.clone(),
                frames,
                is_pool,
            });
        }

        // Mappings (the pool's host mapping is the hypervisor's physical view, see the module doc).
        let mut host = None;
        for (pi, p) in sys.pds.iter().enumerate() {
            let pd = pds[pi].1;
            for (mi, m) in p.maps.iter().enumerate() {
                let Some(ri) = sys.region_index(&m.mr) else {
                    return Err(BuildError::Kernel {
                        step: BuildStep::Map,
                        index: mi,
                        error: sel4_sim::Error::InvalidArgument,
                    });
                };
                if regions[ri].is_pool {
                    if pi != driver_index {
                        host = Some(pd);
                    }
                    continue;
                }
                sim.map_region(&regions[ri].frames, pd, m.vaddr, rights_of(m.perms))
                    .map_err(kernel_err(BuildStep::Map, pi))?;
            }
        }

        // Channels.
        let mut channels = Vec::with_capacity(sys.channels.len());
        for (ci, c) in sys.channels.iter().enumerate() {
            let mut ends = [EndInstance {
                pd: root,
                id: 0,
                pp: false,
                notify: false,
            }; 2];
            for (k, e) in c.ends.iter().enumerate() {
                ends[k] = EndInstance {
                    pd: pd_of(&e.pd).ok_or(BuildError::Kernel {
                        step: BuildStep::Channel,
                        index: ci,
                        error: sel4_sim::Error::NoSuchPd,
                    })?,
                    id: e.id,
                    pp: e.pp,
                    notify: e.notify,
                };
            }
            sim.create_channel(ends[0].pd, ends[0].id, ends[1].pd, ends[1].id)
                .map_err(kernel_err(BuildStep::Channel, ci))?;
            channels.push(ChannelInstance { ends });
        }

        // Described interrupts: bound to the PD's notification with the id bit as badge.
        for (pi, p) in sys.pds.iter().enumerate() {
            let pd = pds[pi].1;
            for irq in &p.irqs {
                if u32::from(irq.vector) == VMBUS_IRQ {
                    return Err(BuildError::IrqClash { pd: pi });
                }
                let step = kernel_err(BuildStep::Irq, pi);
                let handler = sim.create_irq_handler(pd, u32::from(irq.vector)).map_err(&step)?;
                let ntfn = sim.pd_notification(pd).map_err(&step)?;
                let badged = sim
                    .mint_to_free(SlotRef::new(pd, ntfn), pd, CapRights::WRITE, 1 << irq.id)
                    .map_err(&step)?;
                sim.irq_set_notification(SlotRef::new(pd, handler), SlotRef::new(pd, badged))
                    .map_err(&step)?;
            }
        }

        // Extra capabilities (only cap_vspace reaches here).
        for (pi, p) in sys.pds.iter().enumerate() {
            for e in &p.cspace {
                let target = pd_of(&e.pd).ok_or(BuildError::Kernel {
                    step: BuildStep::CSpace,
                    index: pi,
                    error: sel4_sim::Error::NoSuchPd,
                })?;
                let slot = u32::try_from(e.slot).map_err(|_| BuildError::Kernel {
                    step: BuildStep::CSpace,
                    index: pi,
                    error: sel4_sim::Error::RangeError,
                })?;
                sim.copy(
                    SlotRef::new(target, sel4_sim::SLOT_VSPACE),
                    SlotRef::new(pds[pi].1, CapPtr(slot)),
                    CapRights::ALL,
                )
                .map_err(kernel_err(BuildStep::CSpace, pi))?;
            }
        }

        // Fault handlers: nested PDs report to their parent, clients to the driver.
        for (pi, p) in sys.pds.iter().enumerate() {
            let handler = match (p.parent, &p.vmbus_client) {
                (Some(parent), _) => Some(pds[parent].1),
                (None, Some(_)) => Some(driver),
                (None, None) => None,
            };
            sim.set_fault_handler(pds[pi].1, handler)
                .map_err(kernel_err(BuildStep::FaultHandler, pi))?;
        }

        // VMBus clients.
        let mut infos = Vec::new();
        for (pi, p) in sys.pds.iter().enumerate() {
            let Some(c) = &p.vmbus_client else { continue };
            let (mine, theirs) = sys
                .driver_channel_of(&p.name)
                .ok_or(BuildError::DriverChannelMissing { pd: pi })?;
            let classes = c
                .devices
                .iter()
                .map(|d| parse_guid(&d.class, pi))
                .collect::<Result<Vec<_>, _>>()?;
            let instances = c
                .devices
                .iter()
                .map(|d| d.instance.as_ref().map(|g| parse_guid(g, pi)).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            let instance = instances.first().copied().flatten();
            if instances.iter().any(|i| *i != instance) {
                return Err(BuildError::Unsupported {
                    pd: pi,
                    what: "different instance filters for one client's classes",
                });
            }
            let index = infos.len();
            let id = ClientId(u16::try_from(index).map_err(|_| BuildError::TooManyClients)?);
            check_free(sys, pi, CLIENT_CONTROL_VADDR, PAGE)?;
            infos.push(ClientInfo {
                id,
                name: p.name.clone(),
                pd: pds[pi].1,
                window_base: c.window_vaddr,
                window_pages: usize::try_from(c.window_size / PAGE).unwrap_or(usize::MAX),
                max_channels: c.max_channels as usize,
                classes,
                instance,
                driver_channel: mine.id,
                driver_end: theirs.id,
                control_vaddr: CLIENT_CONTROL_VADDR,
                driver_control_vaddr: DRIVER_CONTROL_VADDR + index as u64 * PAGE,
                control_frame: FrameId(u32::MAX),
            });
        }

        // The driver's own placements must not collide with what it maps by description.
        let pool_pages = u32::try_from(driver_desc.pool_pages).map_err(|_| BuildError::Kernel {
            step: BuildStep::Pool,
            index: driver_index,
            error: sel4_sim::Error::RangeError,
        })?;
        check_free(
            sys,
            driver_index,
            DRIVER_POOL_VADDR,
            u64::from(pool_pages) * PAGE,
        )?;
        check_free(
            sys,
            driver_index,
            DRIVER_CONTROL_VADDR,
            infos.len() as u64 * PAGE,
        )?;

        // The VMBus interrupt signals the driver with the highest channel id it does not use.
        let used: Vec<u8> = sys
            .channels_of(&sys.pds[driver_index].name)
            .map(|(mine, _)| mine.id)
            .chain(sys.pds[driver_index].irqs.iter().map(|i| i.id))
            .collect();
        let irq_id = (0..=sel4_sim::MAX_CHANNEL_ID)
            .rev()
            .find(|i| !used.contains(i))
            .ok_or(BuildError::IrqClash { pd: driver_index })?;
        let irq = IrqSetup {
            irq: VMBUS_IRQ,
            badge: 1 << irq_id,
        };
        let setup = DriverSetup {
            driver,
            pool_pages,
            pool_base: DRIVER_POOL_VADDR,
            clients: infos
                .iter()
                .map(|c| ClientSetup {
                    id: c.id,
                    pd: c.pd,
                    window_base: c.window_base,
                    window_pages: c.window_pages,
                    badge: 1 << c.driver_channel,
                })
                .collect(),
            irq: Some(irq),
        };
        let mut kernel =
            SimKernel::new(sim, &setup).map_err(kernel_err(BuildStep::Pool, driver_index))?;

        // The pool's frames, by guest frame number, for the host's view.
        let mut by_pfn = BTreeMap::new();
        let mut pool_frames = Vec::with_capacity(pool_pages as usize);
        for i in 0..pool_pages {
            let page = PageId(i);
            let err = BuildError::Kernel {
                step: BuildStep::Pool,
                index: i as usize,
                error: sel4_sim::Error::FailedLookup,
            };
            let cap = kernel.seam.original_cap(page).ok_or(err)?;
            let slot = SlotRef::new(driver, cap);
            let frame = kernel.sim.frame_of(slot).map_err(|_| err)?;
            let pfn = kernel
                .seam
                .page_frame(&kernel.sim, page)
                .map_err(|_| err)?;
            by_pfn.insert(pfn, (page, frame));
            pool_frames.push(slot);
        }
        if let Some(r) = regions.iter_mut().find(|r| r.is_pool) {
            r.frames = pool_frames;
        }

        // Control pages: one frame per client, mapped in the driver and in that client only.
        for (i, c) in infos.iter_mut().enumerate() {
            let step = kernel_err(BuildStep::ControlPage, i);
            let sim = &mut kernel.sim;
            let frame = sim.create_frames(root, 1).map_err(&step)?[0];
            let slot = SlotRef::new(root, frame);
            sim.map_region(&[slot], driver, c.driver_control_vaddr, CapRights::READ_WRITE)
                .map_err(&step)?;
            sim.map_region(&[slot], c.pd, c.control_vaddr, CapRights::READ_WRITE)
                .map_err(&step)?;
            c.control_frame = sim.frame_of(slot).map_err(&step)?;
        }
        // Building is not what tests measure.
        kernel.sim.reset_counters();

        Ok(Self {
            kernel: Rc::new(RefCell::new(kernel)),
            root,
            pds,
            regions,
            channels,
            driver,
            host,
            clients: infos,
            pool: PoolInfo {
                pages: pool_pages,
                by_pfn: Rc::new(by_pfn),
            },
            irq,
        })
    }

    fn refuse_unsupported(sys: &System) -> Result<(), BuildError> {
        for (pi, p) in sys.pds.iter().enumerate() {
            let what = if p.virtual_machine.is_some() {
                Some("virtual_machine")
            } else if !p.ioports.is_empty() {
                Some("ioport")
            } else if p.cspace.iter().any(|c| c.kind != CapKind::Vspace) {
                Some("cap_tcb / cap_sc")
            } else {
                None
            };
            if let Some(what) = what {
                return Err(BuildError::Unsupported { pd: pi, what });
            }
        }
        if sys
            .regions
            .iter()
            .any(|r| r.prefill_path.is_some() || r.prefill_bootinfo.is_some())
        {
            return Err(BuildError::Unsupported {
                pd: usize::MAX,
                what: "prefilled memory region",
            });
        }
        Ok(())
    }

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
