//! CSpaces: a fixed number of capability slots per PD, addressed by index.

use std::collections::BTreeSet;

use crate::cap::Cap;
use crate::error::Error;
use crate::ids::{CapPtr, SlotRef};

/// The derivation-tree links of one slot (seL4's `mdb_node_t`, kept as an explicit tree).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Mdb {
    /// The capability this one is derived from (its CDT parent), if any.
    pub parent: Option<SlotRef>,
    /// First of this capability's CDT children.
    pub first_child: Option<SlotRef>,
    /// Next sibling under the same parent.
    pub next_sib: Option<SlotRef>,
    /// Previous sibling under the same parent.
    pub prev_sib: Option<SlotRef>,
    /// seL4's `mdbRevocable`: only revocable capabilities can be CDT parents.
    pub revocable: bool,
    /// seL4's `mdbFirstBadged`: this capability is the original of its badge.
    pub first_badged: bool,
}

/// One CSpace slot: a capability (or none) and its CDT links.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    /// The capability held, `None` for an empty slot (seL4's null capability).
    pub cap: Option<Cap>,
    /// The slot's derivation-tree node.
    pub mdb: Mdb,
}

/// A single-level CNode of fixed size. Slot 0 stays empty by convention (`seL4_CapNull`) and is
/// never handed out by [`CSpace::first_free`].
#[derive(Debug)]
pub(crate) struct CSpace {
    slots: Vec<Slot>,
    /// Empty slots except slot 0, so the lowest free slot is found in O(log n).
    free: BTreeSet<u32>,
}

impl CSpace {
    /// A CSpace of `size` empty slots.
    pub fn new(size: u32) -> Self {
        Self {
            slots: vec![Slot::default(); size as usize],
            free: (1..size).collect(),
        }
    }

    /// Number of slots.
    pub fn len(&self) -> u32 {
        // The constructor takes a u32, so the length fits.
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    /// The slot at `ptr`; an index past the end is a failed lookup, as in seL4.
    pub fn get(&self, ptr: CapPtr) -> Result<&Slot, Error> {
        self.slots.get(ptr.0 as usize).ok_or(Error::FailedLookup)
    }

    /// Mutable slot at `ptr`. Setting `cap` must go through [`CSpace::set_cap`].
    pub fn get_mut(&mut self, ptr: CapPtr) -> Result<&mut Slot, Error> {
        self.slots
            .get_mut(ptr.0 as usize)
            .ok_or(Error::FailedLookup)
    }

    /// Stores `cap` in slot `ptr` (which exists), keeping the free set in step.
    pub fn set_cap(&mut self, ptr: CapPtr, cap: Option<Cap>) {
        if let Some(slot) = self.slots.get_mut(ptr.0 as usize) {
            slot.cap = cap;
            if cap.is_some() {
                self.free.remove(&ptr.0);
            } else if ptr.0 != 0 {
                self.free.insert(ptr.0);
            }
        }
    }

    /// The lowest empty slot other than slot 0.
    pub fn first_free(&self) -> Option<CapPtr> {
        self.free.first().copied().map(CapPtr)
    }

    /// The lowest slot starting a run of `n` empty slots (slot 0 excluded).
    pub fn free_run(&self, n: u32) -> Option<CapPtr> {
        if n == 0 {
            return None;
        }
        let mut start = None;
        let mut len = 0;
        let mut prev = None;
        for &s in &self.free {
            if prev.is_some_and(|p: u32| p + 1 == s) {
                len += 1;
            } else {
                start = Some(s);
                len = 1;
            }
            if len == n {
                return start.map(CapPtr);
            }
            prev = Some(s);
        }
        None
    }

    /// Number of empty slots (slot 0 excluded).
    pub fn free_count(&self) -> usize {
        self.free.len()
    }
}
