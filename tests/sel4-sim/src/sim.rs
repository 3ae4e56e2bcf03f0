//! The simulated kernel: object arenas, protection domains and their construction.

use std::collections::BTreeMap;

use crate::cap::Cap;
use crate::counters::Counters;
use crate::cspace::{CSpace, Mdb, Slot};
use crate::error::Error;
use crate::fault::{FaultMessage, FaultState};
use crate::frames::FrameObj;
use crate::ids::{CapPtr, PdId, SlotRef, VSpaceId};
use crate::irq::IrqState;
use crate::notification::NtfnObj;
use crate::untyped::UntypedObj;
use crate::vspace::VSpaceObj;

/// Slot of every PD's CSpace that holds the capability to its own VSpace.
pub const SLOT_VSPACE: CapPtr = CapPtr(1);

/// Default number of slots of a PD's CSpace (a 12-bit CNode, as Microkit uses).
pub const DEFAULT_CSPACE_SLOTS: u32 = 4096;

/// Choices that change the model's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimConfig {
    /// Slots per CSpace.
    pub cspace_slots: u32,
    /// Reproduce seL4 5.0.0 on x86: deleting a mapped frame capability removes its mapping only
    /// when it is the *last* capability to the frame (`Mode_finaliseCap` tests `final`). Later
    /// seL4 releases, and the reference manual's description, remove the mapping on every
    /// delete; that is the default (`false`).
    pub sel4_5_0_x86_unmap_only_final: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            cspace_slots: DEFAULT_CSPACE_SLOTS,
            sel4_5_0_x86_unmap_only_final: false,
        }
    }
}

/// A simulated protection domain.
#[derive(Debug)]
pub(crate) struct Pd {
    pub name: String,
    pub priority: u8,
    pub cspace: CSpace,
    pub vspace: VSpaceId,
    pub fault: FaultState,
    /// The PD's own notification (Microkit's event source), created on first use.
    pub notification: Option<CapPtr>,
    /// Microkit channels: for each channel id, the slot of the badged capability that signals
    /// the other end.
    pub channels: BTreeMap<u8, CapPtr>,
}

/// The simulated seL4 kernel: every kernel object, every PD, and the counters.
///
/// All state is in arenas indexed by ids that are never reused, so a stale id names a destroyed
/// object rather than a different one. Nothing is random and nothing runs concurrently: the same
/// calls give the same results.
#[derive(Debug)]
pub struct Sim {
    pub(crate) config: SimConfig,
    pub(crate) pds: Vec<Pd>,
    pub(crate) frames: Vec<Option<FrameObj>>,
    pub(crate) ntfns: Vec<Option<NtfnObj>>,
    pub(crate) vspaces: Vec<VSpaceObj>,
    pub(crate) untypeds: Vec<Option<UntypedObj>>,
    pub(crate) irqs: BTreeMap<u32, IrqState>,
    pub(crate) counters: Counters,
    pub(crate) fault_log: Vec<FaultMessage>,
    /// Next free simulated physical address for new untyped regions.
    pub(crate) next_paddr: u64,
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// An empty system with the default configuration.
    #[must_use]
    pub fn new() -> Self {
        Self::with_config(SimConfig::default())
    }

    /// An empty system with `config`.
    #[must_use]
    pub fn with_config(config: SimConfig) -> Self {
        Self {
            config,
            pds: Vec::new(),
            frames: Vec::new(),
            ntfns: Vec::new(),
            vspaces: Vec::new(),
            untypeds: Vec::new(),
            irqs: BTreeMap::new(),
            counters: Counters::default(),
            fault_log: Vec::new(),
            // Simulated RAM starts at 16 MiB, clear of the legacy low memory.
            next_paddr: 0x100_0000,
        }
    }

    /// The configuration the simulation runs with.
    #[must_use]
    pub const fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Creates a PD with an empty CSpace, an empty VSpace, and the capability to its own VSpace in
    /// [`SLOT_VSPACE`].
    pub fn create_pd(&mut self, name: &str, priority: u8) -> PdId {
        let id = PdId(u32::try_from(self.pds.len()).unwrap_or(u32::MAX));
        let vspace = VSpaceId(u32::try_from(self.vspaces.len()).unwrap_or(u32::MAX));
        self.vspaces.push(VSpaceObj::new(id));
        let mut cspace = CSpace::new(self.config.cspace_slots.max(2));
        cspace.set_cap(SLOT_VSPACE, Some(Cap::VSpace { id: vspace }));
        if let Ok(slot) = cspace.get_mut(SLOT_VSPACE) {
            slot.mdb = Mdb {
                revocable: true,
                first_badged: true,
                ..Mdb::default()
            };
        }
        self.pds.push(Pd {
            name: name.to_owned(),
            priority,
            cspace,
            vspace,
            fault: FaultState::new(),
            notification: None,
            channels: BTreeMap::new(),
        });
        id
    }

    /// The PD's name as given at creation.
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if `pd` does not exist.
    pub fn pd_name(&self, pd: PdId) -> Result<&str, Error> {
        Ok(&self.pd(pd)?.name)
    }

    /// The PD's priority as given at creation.
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if `pd` does not exist.
    pub fn pd_priority(&self, pd: PdId) -> Result<u8, Error> {
        Ok(self.pd(pd)?.priority)
    }

    /// The PD's VSpace.
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if `pd` does not exist.
    pub fn pd_vspace(&self, pd: PdId) -> Result<VSpaceId, Error> {
        Ok(self.pd(pd)?.vspace)
    }

    /// The capability in a slot (`None` if the slot is empty).
    ///
    /// # Errors
    /// [`Error::NoSuchPd`], or [`Error::FailedLookup`] for a slot outside the CSpace.
    pub fn cap(&self, slot: SlotRef) -> Result<Option<Cap>, Error> {
        Ok(self.slot(slot)?.cap)
    }

    /// The CDT parent of the capability in `slot` (`None` for an original or an empty slot).
    ///
    /// # Errors
    /// [`Error::NoSuchPd`], or [`Error::FailedLookup`] for a slot outside the CSpace.
    pub fn cdt_parent(&self, slot: SlotRef) -> Result<Option<SlotRef>, Error> {
        Ok(self.slot(slot)?.mdb.parent)
    }

    /// The lowest empty slot of `pd`'s CSpace (slot 0 excluded).
    ///
    /// # Errors
    /// [`Error::NoSuchPd`], or [`Error::NotEnoughMemory`] when the CSpace is full.
    pub fn free_slot(&self, pd: PdId) -> Result<CapPtr, Error> {
        self.pd(pd)?
            .cspace
            .first_free()
            .ok_or(Error::NotEnoughMemory)
    }

    /// Number of empty slots of `pd`'s CSpace (slot 0 excluded).
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if `pd` does not exist.
    pub fn free_slot_count(&self, pd: PdId) -> Result<usize, Error> {
        Ok(self.pd(pd)?.cspace.free_count())
    }

    /// The operation counters.
    #[must_use]
    pub const fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Sets every counter back to zero (e.g. after building a system, before measuring).
    pub fn reset_counters(&mut self) {
        self.counters = Counters::default();
    }

    pub(crate) fn pd(&self, pd: PdId) -> Result<&Pd, Error> {
        self.pds.get(pd.0 as usize).ok_or(Error::NoSuchPd)
    }

    pub(crate) fn pd_mut(&mut self, pd: PdId) -> Result<&mut Pd, Error> {
        self.pds.get_mut(pd.0 as usize).ok_or(Error::NoSuchPd)
    }

    pub(crate) fn slot(&self, r: SlotRef) -> Result<&Slot, Error> {
        self.pd(r.pd)?.cspace.get(r.slot)
    }

    pub(crate) fn slot_mut(&mut self, r: SlotRef) -> Result<&mut Slot, Error> {
        self.pd_mut(r.pd)?.cspace.get_mut(r.slot)
    }

    /// Stores `cap` in an existing slot, keeping the CSpace's free set in step.
    pub(crate) fn set_cap(&mut self, r: SlotRef, cap: Option<Cap>) {
        if let Ok(pd) = self.pd_mut(r.pd) {
            pd.cspace.set_cap(r.slot, cap);
        }
    }

    /// Counts a refused invocation and passes the error on.
    pub(crate) fn refuse<T>(&mut self, e: Error) -> Result<T, Error> {
        self.counters.errors += 1;
        Err(e)
    }
}
