//! Identifiers of simulated protection domains, slots and kernel objects.

use core::fmt;

/// A simulated protection domain (a thread with its CSpace and VSpace), in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PdId(pub u32);

/// A slot index in a PD's single-level CSpace (seL4 CPtr with the CNode's full depth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CapPtr(pub u32);

/// A slot of a CSpace, named globally: which PD's CSpace, which slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotRef {
    /// The PD whose CSpace holds the slot.
    pub pd: PdId,
    /// The slot index in that CSpace.
    pub slot: CapPtr,
}

impl SlotRef {
    /// Names slot `slot` of `pd`'s CSpace.
    #[must_use]
    pub const fn new(pd: PdId, slot: CapPtr) -> Self {
        Self { pd, slot }
    }
}

impl From<(PdId, CapPtr)> for SlotRef {
    fn from((pd, slot): (PdId, CapPtr)) -> Self {
        Self { pd, slot }
    }
}

impl fmt::Display for SlotRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pd{}:slot{}", self.pd.0, self.slot.0)
    }
}

/// A 4 KiB frame object (index in the frame arena; never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameId(pub u32);

/// A notification object (index in the notification arena; never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtfnId(pub u32);

/// A VSpace (address space root) object; one per PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VSpaceId(pub u32);

/// An untyped memory region object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UntypedId(pub u32);
