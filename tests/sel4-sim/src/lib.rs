//! A deterministic model of the seL4 mechanisms the product uses: CSpaces and the capability
//! derivation tree (copy, mint, delete, revoke), untyped memory retyped into 4 KiB frames with
//! real content, VSpaces with page mappings, PD memory accesses that fault observably,
//! notifications with badges, IRQ handlers with acknowledgement, fault delivery, operation
//! counters, and the driver's `Kernel` seam on top.
//!
//! Semantics follow the seL4 reference manual and, where the manual is silent, the seL4 5.0.0
//! source (the kernel this project builds), with one deliberate exception documented at
//! [`SimConfig::sel4_5_0_x86_unmap_only_final`].
//!
//! Where the model knowingly differs from seL4:
//! - no page tables: any aligned user address can take a mapping (seL4 would first need the
//!   covering page table, else `FailedLookup`);
//! - no threads, IPC or protected procedure calls: `wait` returns `None` where a thread would
//!   block, and PDs act only when a test calls on their behalf;
//! - a signal, wait or IRQ binding through an unusable capability returns `InvalidCapability`
//!   (seL4 drops a `Signal` silently and raises a capability fault for a `Wait`);
//! - an IRQ's notification binding holds a reference to the notification but is not a CDT node;
//! - VSpaces live as long as their PD; deleting a VSpace capability never tears one down;
//! - a PD memory access is checked on every page before any byte moves, so a faulting access
//!   changes nothing;
//! - an interrupt raised while its line is masked is latched and delivered at the ack.
//!
//! ```
//! use sel4_sim::{CapRights, Sim, SlotRef, SLOT_VSPACE};
//! let mut sim = Sim::new();
//! let a = sim.create_pd("a", 100);
//! let b = sim.create_pd("b", 90);
//! let frame = sim.create_frames(a, 1).unwrap()[0];
//! sim.map_own(a, frame, 0x10_0000, CapRights::READ_WRITE).unwrap();
//! let copy = sim.copy_to_free(SlotRef::new(a, frame), b, CapRights::READ).unwrap();
//! sim.map(SlotRef::new(b, copy), SlotRef::new(b, SLOT_VSPACE), 0x20_0000, CapRights::READ).unwrap();
//! sim.write_u32(a, 0x10_0010, 7).unwrap();
//! assert_eq!(sim.read_u32(b, 0x20_0010).unwrap(), 7);
//! sim.revoke(SlotRef::new(a, frame)).unwrap();
//! assert!(sim.read_u32(b, 0x20_0010).is_err());
//! ```

mod builder;
mod cap;
mod cdt;
mod cnode;
mod counters;
mod cspace;
mod error;
mod fault;
mod frames;
mod ids;
mod irq;
mod memory;
mod notification;
mod rights;
mod seam;
mod sim;
mod untyped;
mod vspace;

pub use builder::MAX_CHANNEL_ID;
pub use cap::{Cap, MappedAt};
pub use counters::Counters;
pub use error::Error;
pub use fault::{Access, FaultKind, FaultMessage, PdState};
pub use frames::{PAGE_BITS, PAGE_SIZE};
pub use ids::{CapPtr, FrameId, NtfnId, PdId, SlotRef, UntypedId, VSpaceId};
pub use irq::{IrqOutcome, MAX_IRQ};
pub use memory::MemError;
pub use rights::{CapRights, VmRights};
pub use seam::{ClientLink, ClientSetup, DriverSeam, DriverSetup, DriverView, IrqSetup, SimKernel};
pub use sim::{DEFAULT_CSPACE_SLOTS, SLOT_VSPACE, Sim, SimConfig};
pub use untyped::{NOTIFICATION_BITS, ObjectType, RETYPE_FAN_OUT_LIMIT};
pub use vspace::{PageMapping, USER_TOP};
