//! Distinct newtypes for the identifiers that cross the wire or the PD boundary.
//!
//! Each is a plain wrapper over the wire integer, so any value the peer sends is representable;
//! validity (range, liveness) is checked where the value is used, not when it is decoded.

use core::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
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
id_newtype!(
    /// A client PD, as numbered by the system description.
    ClientId(u16),
    "client:"
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
