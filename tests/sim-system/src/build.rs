//! Building an [`Instance`] from a description, one element kind at a time (see the table in
//! [`crate::instance`]'s documentation for what each element becomes).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use sel4_sim::{
    CapPtr, CapRights, ClientSetup, DriverSetup, IrqSetup, PdId, SLOT_VSPACE, Sim, SimConfig,
    SimKernel, SlotRef,
};
use sysdesc::config::{DriverConfig, pd_config};
use sysdesc::model::{CapKind, System};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, PageId};

use crate::error::{BuildError, BuildStep};
use crate::instance::{
    ChannelInstance, ClientInfo, EndInstance, Instance, PfnMap, PoolInfo, RegionInstance,
    load_repository_system,
};
use crate::layout::{PAGE, VMBUS_IRQ};

fn kernel_err(step: BuildStep, index: usize) -> impl Fn(sel4_sim::Error) -> BuildError {
    move |error| BuildError::Kernel { step, index, error }
}

const fn kernel_fault(step: BuildStep, index: usize, error: sel4_sim::Error) -> BuildError {
    BuildError::Kernel { step, index, error }
}

fn rights_of(p: sysdesc::model::Perms) -> CapRights {
    CapRights {
        read: p.read,
        write: p.write,
        grant: false,
        grant_reply: false,
    }
}

/// Refuses what the model cannot express rather than dropping it silently.
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

/// The construction in progress.
struct Builder<'s> {
    sys: &'s System,
    sim: Sim,
    root: PdId,
    pds: Vec<(String, PdId)>,
    driver_index: usize,
    pool_region: Option<String>,
}

impl Builder<'_> {
    fn pd_of(&self, name: &str, step: BuildStep, index: usize) -> Result<PdId, BuildError> {
        self.pds
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
            .ok_or(kernel_fault(step, index, sel4_sim::Error::NoSuchPd))
    }

    fn driver(&self) -> PdId {
        self.pds[self.driver_index].1
    }

    /// Regions other than the pool: frames retyped in the root PD.
    fn regions(&mut self) -> Result<Vec<RegionInstance>, BuildError> {
        let mut regions = Vec::with_capacity(self.sys.regions.len());
        for (i, r) in self.sys.regions.iter().enumerate() {
            let is_pool = self.pool_region.as_deref() == Some(r.name.as_str());
            let frames = if is_pool {
                Vec::new() // filled in once the driver's seam has retyped the pool
            } else {
                let n = u32::try_from(r.size / PAGE)
                    .map_err(|_| kernel_fault(BuildStep::Region, i, sel4_sim::Error::RangeError))?;
                self.sim
                    .create_frames(self.root, n)
                    .map_err(kernel_err(BuildStep::Region, i))?
                    .into_iter()
                    .map(|c| SlotRef::new(self.root, c))
                    .collect()
            };
            regions.push(RegionInstance {
                name: r.name.clone(),
                frames,
                is_pool,
            });
        }
        Ok(regions)
    }

    /// Mappings; returns the PD that maps the pool as guest memory (the host), if any.
    fn maps(&mut self, regions: &[RegionInstance]) -> Result<Option<PdId>, BuildError> {
        let mut host = None;
        for (pi, p) in self.sys.pds.iter().enumerate() {
            let pd = self.pds[pi].1;
            for (mi, m) in p.maps.iter().enumerate() {
                let ri = self.sys.region_index(&m.mr).ok_or(kernel_fault(
                    BuildStep::Map,
                    mi,
                    sel4_sim::Error::InvalidArgument,
                ))?;
                if regions[ri].is_pool {
                    if pi != self.driver_index {
                        host = Some(pd);
                    }
                    continue;
                }
                self.sim
                    .map_region(&regions[ri].frames, pd, m.vaddr, rights_of(m.perms))
                    .map_err(kernel_err(BuildStep::Map, pi))?;
            }
        }
        Ok(host)
    }

    fn channels(&mut self) -> Result<Vec<ChannelInstance>, BuildError> {
        let mut channels = Vec::with_capacity(self.sys.channels.len());
        for (ci, c) in self.sys.channels.iter().enumerate() {
            let end = |k: usize| -> Result<EndInstance, BuildError> {
                let e = &c.ends[k];
                Ok(EndInstance {
                    pd: self.pd_of(&e.pd, BuildStep::Channel, ci)?,
                    id: e.id,
                    pp: e.pp,
                    notify: e.notify,
                })
            };
            let ends = [end(0)?, end(1)?];
            self.sim
                .create_channel(ends[0].pd, ends[0].id, ends[1].pd, ends[1].id)
                .map_err(kernel_err(BuildStep::Channel, ci))?;
            channels.push(ChannelInstance { ends });
        }
        Ok(channels)
    }

    /// Described interrupts: bound to the PD's notification with the id bit as badge.
    fn irqs(&mut self) -> Result<(), BuildError> {
        for (pi, p) in self.sys.pds.iter().enumerate() {
            let pd = self.pds[pi].1;
            for irq in &p.irqs {
                if u32::from(irq.vector) == VMBUS_IRQ {
                    return Err(BuildError::IrqClash { pd: pi });
                }
                let step = kernel_err(BuildStep::Irq, pi);
                let sim = &mut self.sim;
                let handler = sim
                    .create_irq_handler(pd, u32::from(irq.vector))
                    .map_err(&step)?;
                let ntfn = sim.pd_notification(pd).map_err(&step)?;
                let badged = sim
                    .mint_to_free(SlotRef::new(pd, ntfn), pd, CapRights::WRITE, 1 << irq.id)
                    .map_err(&step)?;
                sim.irq_set_notification(SlotRef::new(pd, handler), SlotRef::new(pd, badged))
                    .map_err(&step)?;
            }
        }
        Ok(())
    }

    /// `cap_vspace` entries, in their described slots.
    fn cspaces(&mut self) -> Result<(), BuildError> {
        for (pi, p) in self.sys.pds.iter().enumerate() {
            for e in &p.cspace {
                let target = self.pd_of(&e.pd, BuildStep::CSpace, pi)?;
                let slot = u32::try_from(e.slot).map_err(|_| {
                    kernel_fault(BuildStep::CSpace, pi, sel4_sim::Error::RangeError)
                })?;
                self.sim
                    .copy(
                        SlotRef::new(target, SLOT_VSPACE),
                        SlotRef::new(self.pds[pi].1, CapPtr(slot)),
                        CapRights::ALL,
                    )
                    .map_err(kernel_err(BuildStep::CSpace, pi))?;
            }
        }
        Ok(())
    }

    /// Nested PDs report faults to their parent, VMBus clients to the driver.
    fn fault_handlers(&mut self) -> Result<(), BuildError> {
        let driver = self.driver();
        for (pi, p) in self.sys.pds.iter().enumerate() {
            let handler = match (p.parent, &p.vmbus_client) {
                (Some(parent), _) => Some(self.pds[parent].1),
                (None, Some(_)) => Some(driver),
                (None, None) => None,
            };
            self.sim
                .set_fault_handler(self.pds[pi].1, handler)
                .map_err(kernel_err(BuildStep::FaultHandler, pi))?;
        }
        Ok(())
    }

    /// The VMBus clients in `ClientId` order, from the driver's configuration (the one the
    /// image's driver program is built with); their control pages are the described control
    /// regions, already mapped in the client and the driver.
    fn clients(
        &self,
        config: &DriverConfig,
        regions: &[RegionInstance],
    ) -> Result<Vec<ClientInfo>, BuildError> {
        let mut infos = Vec::new();
        for c in &config.clients {
            let pi = c.pd_index;
            let control = self.sys.pds[pi]
                .vmbus_client
                .as_ref()
                .and_then(|cl| regions.iter().find(|r| r.name == cl.control))
                .and_then(|r| r.frames.first().copied())
                .ok_or(kernel_fault(
                    BuildStep::ControlPage,
                    pi,
                    sel4_sim::Error::FailedLookup,
                ))?;
            let control_frame = self
                .sim
                .frame_of(control)
                .map_err(kernel_err(BuildStep::ControlPage, pi))?;
            infos.push(ClientInfo {
                id: ClientId(c.id),
                name: c.name.clone(),
                pd: self.pds[pi].1,
                window_base: c.window_vaddr,
                window_pages: usize::try_from(c.window_pages).unwrap_or(usize::MAX),
                max_channels: c.max_channels as usize,
                classes: c.classes.iter().map(|&b| Guid(b)).collect(),
                instance: c.instance.map(Guid),
                power: c.power,
                low_latency: c.low_latency,
                driver_channel: c.client_channel,
                driver_end: c.channel,
                control_vaddr: c.client_control_vaddr,
                driver_control_vaddr: c.control_vaddr,
                control_frame,
            });
        }
        Ok(infos)
    }

    /// The VMBus interrupt signals the driver with the highest channel id it does not use.
    fn vmbus_irq(&self) -> Result<IrqSetup, BuildError> {
        let d = &self.sys.pds[self.driver_index];
        let used: Vec<u8> = self
            .sys
            .channels_of(&d.name)
            .map(|(mine, _)| mine.id)
            .chain(d.irqs.iter().map(|i| i.id))
            .collect();
        let id = (0..=sel4_sim::MAX_CHANNEL_ID)
            .rev()
            .find(|i| !used.contains(i))
            .ok_or(BuildError::IrqClash {
                pd: self.driver_index,
            })?;
        Ok(IrqSetup {
            irq: VMBUS_IRQ,
            badge: 1 << id,
        })
    }
}

/// The pool's frames by guest frame number, and their original capabilities.
fn pool_frames(
    kernel: &SimKernel,
    driver: PdId,
    pages: u32,
) -> Result<(PfnMap, Vec<SlotRef>), BuildError> {
    let mut by_pfn = BTreeMap::new();
    let mut slots = Vec::with_capacity(pages as usize);
    for i in 0..pages {
        let page = PageId(i);
        let err = kernel_fault(BuildStep::Pool, i as usize, sel4_sim::Error::FailedLookup);
        let cap = kernel.seam.original_cap(page).ok_or(err)?;
        let slot = SlotRef::new(driver, cap);
        let frame = kernel.sim.frame_of(slot).map_err(|_| err)?;
        let pfn = kernel.seam.page_frame(&kernel.sim, page).map_err(|_| err)?;
        by_pfn.insert(pfn, (page, frame));
        slots.push(slot);
    }
    Ok((by_pfn, slots))
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

    /// Instantiates `sys` on a fresh simulated kernel configured by `config` (with
    /// `cspace_slots` raised, if needed, to hold the driver's pool twice over).
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
        refuse_unsupported(sys)?;
        // The driver's wiring, computed as for the image's driver program.
        let driver_config = pd_config(sys, &sys.pds[driver_index].name)
            .and_then(|c| c.driver)
            .ok_or(BuildError::NoDriver)?;
        let pool_pages = u32::try_from(driver_desc.pool_pages).map_err(|_| {
            kernel_fault(BuildStep::Pool, driver_index, sel4_sim::Error::RangeError)
        })?;

        // The driver's CSpace holds an original per pool page plus a copy per granted page; the
        // model gives every PD the same CNode size, so raise it to fit (a real image sizes the
        // driver's CNode for its pool).
        let needed = u64::from(pool_pages)
            .saturating_mul(2)
            .saturating_add(1024)
            .next_power_of_two();
        let config = SimConfig {
            cspace_slots: config
                .cspace_slots
                .max(u32::try_from(needed).unwrap_or(u32::MAX)),
            ..config
        };
        let mut sim = Sim::with_config(config);
        // The system initialiser: holds the originals of every described region's frames.
        let root = sim.create_pd("<root>", 255);
        let pds = sys
            .pds
            .iter()
            .map(|p| (p.name.clone(), sim.create_pd(&p.name, p.sched.priority)))
            .collect();
        let mut b = Builder {
            sys,
            sim,
            root,
            pds,
            driver_index,
            pool_region: driver_desc.pool_region.clone(),
        };
        // Described slots first: the maps, channels and interrupts below take free slots.
        b.cspaces()?;
        let mut regions = b.regions()?;
        let host = b.maps(&regions)?;
        let channels = b.channels()?;
        b.irqs()?;
        b.fault_handlers()?;
        let clients = b.clients(&driver_config, &regions)?;
        let irq = b.vmbus_irq()?;
        let driver = b.driver();
        let setup = DriverSetup {
            driver,
            pool_pages,
            pool_base: driver_config.pool_vaddr,
            clients: clients
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
        let Builder { sim, pds, .. } = b;
        let mut kernel =
            SimKernel::new(sim, &setup).map_err(kernel_err(BuildStep::Pool, driver_index))?;
        let (by_pfn, pool_slots) = pool_frames(&kernel, driver, pool_pages)?;
        if let Some(r) = regions.iter_mut().find(|r| r.is_pool) {
            r.frames = pool_slots;
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
            clients,
            pool: PoolInfo {
                pages: pool_pages,
                by_pfn: Rc::new(by_pfn),
            },
            irq,
        })
    }
}
