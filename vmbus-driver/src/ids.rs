//! Distinct newtypes for the identifiers that cross the wire or the PD boundary.
//!
//! Each is a plain wrapper over the wire integer, so any value the peer sends is representable;
//! validity (range, liveness) is checked where the value is used, not when it is decoded. The
//! same type carries an id from the host's message through the driver's tables and the client
//! control protocol (serialised as the bare integer) to the client's handle.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::hv::CONNECTION_ID_MASK;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

id_newtype!(
    /// A channel's relid (`child_relid` on the wire), chosen by the host. 0 is never a channel.
    RelId(u32),
    "relid:"
);
id_newtype!(
    /// A GPADL id, chosen by the guest, non-zero and unique while the GPADL exists.
    GpadlId(u32),
    "gpadl:"
);
id_newtype!(
    /// A Hyper-V connection id (bits 23:0 meaningful) for HvCallPostMessage or HvCallSignalEvent.
    ConnectionId(u32),
    "conn:"
);
impl ConnectionId {
    /// Whether only the meaningful bits 23:0 are set ([`CONNECTION_ID_MASK`]).
    pub const fn is_valid(self) -> bool {
        self.0 & !CONNECTION_ID_MASK == 0
    }
}

id_newtype!(
    /// A client PD, as numbered by the system description.
    ClientId(u16),
    "client:"
);
id_newtype!(
    /// One of a client's channel slots: its window slot (the ring pages' place in the client's
    /// window) and its status record in the control page.
    SlotId(u16),
    "slot:"
);

impl SlotId {
    /// The slot as an index (window slot, status record).
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

id_newtype!(
    /// An entry of the driver's buffer table: a buffer of pool pages a client allocated for one
    /// of its channels (granted into its window, optionally described to the host as a GPADL).
    BufferId(u16),
    "buffer:"
);

id_newtype!(
    /// A page of the driver's ring-page pool (an index, not an address).
    PageId(u32),
    "page:"
);
id_newtype!(
    /// A virtual processor index as read from HV_X64_MSR_VP_INDEX.
    VpIndex(u32),
    "vp:"
);
