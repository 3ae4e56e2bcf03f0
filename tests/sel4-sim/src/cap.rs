//! Capabilities: what a CSpace slot holds.

use crate::ids::{FrameId, NtfnId, UntypedId, VSpaceId};
use crate::rights::{CapRights, VmRights};

/// Where a frame capability is mapped: seL4 records this in the capability itself, which is why
/// one frame capability maps at most one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MappedAt {
    /// The address space of the mapping.
    pub vspace: VSpaceId,
    /// Page-aligned virtual address of the mapping.
    pub vaddr: u64,
}

/// A capability, as held in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cap {
    /// Untyped memory that can be retyped into frames and notifications.
    Untyped {
        /// The region.
        id: UntypedId,
    },
    /// A 4 KiB frame.
    Frame {
        /// The frame object.
        id: FrameId,
        /// Rights a mapping made with this capability can have at most.
        rights: VmRights,
        /// The mapping made with this capability, if any.
        mapped: Option<MappedAt>,
    },
    /// A notification.
    Notification {
        /// The notification object.
        id: NtfnId,
        /// Badge OR-ed into the word when signalling through this capability (0: unbadged).
        badge: u64,
        /// `write` allows signalling, `read` allows waiting and polling.
        rights: CapRights,
    },
    /// A VSpace root (x86-64 PML4), used to map frames into that address space.
    VSpace {
        /// The address space.
        id: VSpaceId,
    },
    /// The handler of one interrupt line.
    IrqHandler {
        /// The interrupt number.
        irq: u32,
    },
}

impl Cap {
    /// A short name of the capability's type, for messages.
    #[must_use]
    pub const fn type_name(&self) -> &'static str {
        match self {
            Self::Untyped { .. } => "untyped",
            Self::Frame { .. } => "frame",
            Self::Notification { .. } => "notification",
            Self::VSpace { .. } => "vspace",
            Self::IrqHandler { .. } => "irq handler",
        }
    }
}
