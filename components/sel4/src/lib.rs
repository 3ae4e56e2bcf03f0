//! Typed seL4 capabilities (frames, notifications, CNodes, VSpaces) over sel4-sys.
//!
//! In the Robigalia style each kind of kernel object has its own capability type ([`Frame`],
//! [`Notification`], [`Endpoint`], [`CNode`], [`VSpace`], [`Tcb`], [`Untyped`], ...), so a frame
//! can only be mapped, a notification only signalled or waited on, and so on. Invocations return
//! [`Error`] (the kernel's error code).
//!
//! Invocations are safe methods: the image's layout keeps memory that Rust owns (program
//! segments, stacks, IPC buffers) out of reach of every capability a PD holds, so a PD can map,
//! unmap, copy or revoke only pages that Rust code reaches through [`mem::Region`]'s volatile
//! accessors, where the worst outcome is a page fault, which the system handles.
//!
//! Also here: the program entry point ([`entry`]), debug printing ([`debug`]).
#![no_std]
// The one layer between typed Rust and the raw system calls: calling sel4-sys's stubs, touching
// mapped pages through raw pointers and defining the entry symbol all need `unsafe`.
#![allow(unsafe_code)]

mod cap;
pub mod debug;
pub mod entry;
mod hyperv;
mod ipc;
pub mod mem;
mod object;
mod vspace;

pub use cap::*;
pub use ipc::{Message, reply};
pub use object::*;
pub use sel4_sys::bootinfo::{BootInfo, SlotRegion, UntypedDesc};
pub use sel4_sys::{
    Error, MessageInfo, UserContext, Word, consts, fault, label, object as object_type, slot,
};
pub use vspace::*;

/// Re-export of the raw layer, for what the typed layer does not cover.
pub use sel4_sys as sys;
