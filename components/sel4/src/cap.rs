//! Capability types: one type per kind of kernel object, all plain capability pointers.

use sel4_sys::CPtr;

macro_rules! cap_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub CPtr);

        impl $name {
            /// The capability pointer (its address in the holder's CSpace).
            pub const fn cptr(self) -> CPtr {
                self.0
            }
        }
    };
}

cap_type!(
    /// A 4 KiB frame.
    Frame
);
cap_type!(
    /// A notification: a word of signal bits.
    Notification
);
cap_type!(
    /// An endpoint: synchronous messages and protected calls.
    Endpoint
);
cap_type!(
    /// A thread control block.
    Tcb
);
cap_type!(
    /// Untyped memory, retyped into kernel objects.
    Untyped
);
cap_type!(
    /// An x86-64 address space root (PML4).
    VSpace
);
cap_type!(
    /// A page table (maps 2 MiB in 4 KiB pages).
    PageTable
);
cap_type!(
    /// A page directory (maps 1 GiB).
    PageDirectory
);
cap_type!(
    /// A page-directory-pointer table (maps 512 GiB).
    Pdpt
);
cap_type!(
    /// An ASID pool, to which VSpaces are assigned before use.
    AsidPool
);
cap_type!(
    /// The handler of one interrupt.
    IrqHandler
);
cap_type!(
    /// A range of x86 I/O ports.
    IoPort
);

/// Access rights of a derived capability or a mapping (`seL4_CapRights`: write bit 0, read
/// bit 1, grant bit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights(pub u64);

impl Rights {
    /// Read only.
    pub const READ: Rights = Rights(0b010);
    /// Read and write.
    pub const READ_WRITE: Rights = Rights(0b011);
    /// Everything, including grant.
    pub const ALL: Rights = Rights(0b111);
}
cap_type!(
    /// The kernel's Hyper-V service (our kernel patch): posts messages, signals events and ends
    /// messages for the holder, the VMBus driver.
    X86HyperV
);
