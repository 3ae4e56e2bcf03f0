//! Capability access rights and the VM rights a frame capability carries.

/// seL4's `seL4_CapRights`: read, write, grant and grant-reply.
///
/// Rights only ever shrink along a derivation: copy and mint intersect the source's rights with
/// the mask they are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::struct_excessive_bools)] // four independent rights, as in seL4_CapRights
pub struct CapRights {
    /// May read (receive on a notification, read a mapped frame).
    pub read: bool,
    /// May write (signal a notification, write a mapped frame).
    pub write: bool,
    /// May grant capabilities through IPC.
    pub grant: bool,
    /// May grant reply capabilities.
    pub grant_reply: bool,
}

impl CapRights {
    /// All rights (`seL4_AllRights`).
    pub const ALL: Self = Self {
        read: true,
        write: true,
        grant: true,
        grant_reply: true,
    };
    /// Read and write only (`seL4_ReadWrite`).
    pub const READ_WRITE: Self = Self {
        read: true,
        write: true,
        grant: false,
        grant_reply: false,
    };
    /// Read only (`seL4_CanRead`).
    pub const READ: Self = Self {
        read: true,
        write: false,
        grant: false,
        grant_reply: false,
    };
    /// Write only (`seL4_CanWrite`).
    pub const WRITE: Self = Self {
        read: false,
        write: true,
        grant: false,
        grant_reply: false,
    };
    /// No rights (`seL4_NoRights`).
    pub const NONE: Self = Self {
        read: false,
        write: false,
        grant: false,
        grant_reply: false,
    };

    /// The rights present in both `self` and `mask`.
    #[must_use]
    pub const fn intersect(self, mask: Self) -> Self {
        Self {
            read: self.read && mask.read,
            write: self.write && mask.write,
            grant: self.grant && mask.grant,
            grant_reply: self.grant_reply && mask.grant_reply,
        }
    }
}

/// The VM rights of an x86 frame capability or mapping (seL4's `vm_rights_t`).
///
/// x86 has no write-only pages, so seL4 collapses rights without read to `KernelOnly`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VmRights {
    /// No user access at all: every user access faults.
    KernelOnly,
    /// User may read.
    ReadOnly,
    /// User may read and write.
    ReadWrite,
}

impl VmRights {
    /// seL4's `maskVMRights`: the VM rights left after applying a capability-rights mask.
    #[must_use]
    pub const fn mask(self, mask: CapRights) -> Self {
        match (self, mask.read, mask.write) {
            (Self::ReadOnly, true, _) | (Self::ReadWrite, true, false) => Self::ReadOnly,
            (Self::ReadWrite, true, true) => Self::ReadWrite,
            _ => Self::KernelOnly,
        }
    }

    /// Whether a user-level read is allowed.
    #[must_use]
    pub const fn can_read(self) -> bool {
        matches!(self, Self::ReadOnly | Self::ReadWrite)
    }

    /// Whether a user-level write is allowed.
    #[must_use]
    pub const fn can_write(self) -> bool {
        matches!(self, Self::ReadWrite)
    }
}
