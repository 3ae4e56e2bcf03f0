//! Hyper-V layer: hypercalls, synthetic MSRs, CPUID, SynIC message slots and event flags.
//!
//! Wire formats are in [`hypercall`], [`msr`], [`cpuid`] and [`synic`]; the [`Hypervisor`] seam
//! in [`seam`] is what the driver logic calls, and [`consume_message`] / [`scan_events`] are the
//! guest-side SynIC procedures written once over it. [`monitor`] is the monitor page's layout.

/// The Hyper-V page size (4 KiB): the unit of PFNs and GPADL ranges, and the size of every page
/// the driver handles (ring pages, pool pages, the SynIC pages, a client's control page).
pub const PAGE_SIZE: usize = 4096;
/// [`PAGE_SIZE`] for byte counts and guest physical addresses.
pub const PAGE_SIZE_U64: u64 = PAGE_SIZE as u64;
/// [`PAGE_SIZE`] for 32-bit wire fields (GPA range byte counts and offsets).
pub const PAGE_SIZE_U32: u32 = PAGE_SIZE as u32;

pub mod cpuid;
pub mod hypercall;
pub mod monitor;
pub mod msr;
pub mod seam;
pub mod synic;

pub use cpuid::{CpuidError, CpuidWarnings, HypervInfo, VmbusSupport, check_vmbus, detect};
pub use hypercall::{
    CONNECTION_ID_MASK, HVCALL_POST_MESSAGE, HVCALL_SIGNAL_EVENT, HvStatus, HypercallControl,
    HypercallResult, PostMessageError, PostMessageInput, SignalEventError, SignalEventInput,
};
pub use msr::{GuestOsId, HypercallMsr, MsrError, Scontrol, Sint, SynicPageMsr};
pub use seam::Hypervisor;
pub use synic::{
    EventScan, HvMessageType, SlotError, SynicMessage, VMBUS_SINT, consume_message,
    parse_message_slot, scan_event_bytes, scan_event_words, scan_events,
};
