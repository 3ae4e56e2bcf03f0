//! Errors of kernel invocations, mirroring seL4's `seL4_Error` codes.

use core::fmt;

/// Why the simulated kernel refused an invocation.
///
/// The first variants mirror `seL4_Error` of seL4 5.0 (`libsel4/include/sel4/errors.h`) and are
/// returned exactly where seL4 returns them; [`Error::NoSuchPd`] is a model-level error (a test
/// named a protection domain the simulation never created), which has no seL4 counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// `seL4_InvalidArgument`: an argument is out of range (e.g. a mapping above the user top).
    InvalidArgument,
    /// `seL4_InvalidCapability`: the capability is of the wrong type, lacks a right, or (for a
    /// frame) is already mapped.
    InvalidCapability,
    /// `seL4_IllegalOperation`: the operation is not allowed on this capability (e.g. minting a
    /// badge onto an already badged notification capability).
    IllegalOperation,
    /// `seL4_RangeError`: a count or slot range is out of bounds (e.g. retype past the CNode end).
    RangeError,
    /// `seL4_AlignmentError`: a virtual address is not page aligned.
    AlignmentError,
    /// `seL4_FailedLookup`: a slot index outside the CSpace, or a source slot that is empty.
    FailedLookup,
    /// `seL4_DeleteFirst`: the destination slot (or virtual page) is occupied.
    DeleteFirst,
    /// `seL4_RevokeFirst`: the object still has derived capabilities (untyped derivation, an IRQ
    /// that already has a handler).
    RevokeFirst,
    /// `seL4_NotEnoughMemory`: the untyped region has no room for the requested objects.
    NotEnoughMemory,
    /// Model-level: no protection domain with this id exists in the simulation.
    NoSuchPd,
}

impl Error {
    /// The numeric `seL4_Error` value (seL4 5.0 numbering); `NoSuchPd` maps to
    /// `seL4_InvalidArgument`'s 1 since the real kernel would see a bad argument.
    #[must_use]
    pub const fn code(self) -> u32 {
        match self {
            Self::InvalidArgument | Self::NoSuchPd => 1,
            Self::InvalidCapability => 2,
            Self::IllegalOperation => 3,
            Self::RangeError => 4,
            Self::AlignmentError => 5,
            Self::FailedLookup => 6,
            Self::DeleteFirst => 8,
            Self::RevokeFirst => 9,
            Self::NotEnoughMemory => 10,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::InvalidArgument => "invalid argument",
            Self::InvalidCapability => {
                "invalid capability (wrong type, missing right or already mapped)"
            }
            Self::IllegalOperation => "illegal operation on this capability",
            Self::RangeError => "argument out of range",
            Self::AlignmentError => "address not aligned",
            Self::FailedLookup => "capability lookup failed (slot out of range or empty)",
            Self::DeleteFirst => "destination occupied: delete first",
            Self::RevokeFirst => "object has derived capabilities: revoke first",
            Self::NotEnoughMemory => "not enough memory in the untyped region",
            Self::NoSuchPd => "no such protection domain",
        };
        write!(f, "{text} (seL4 error {})", self.code())
    }
}

impl std::error::Error for Error {}
