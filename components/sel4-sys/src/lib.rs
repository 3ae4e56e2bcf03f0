//! Raw seL4 5.0.0 system calls for x86-64, with invocation labels, stubs and constants generated
//! from the kernel's interface XML by our own generator.
//!
//! Layout: [`syscall`] holds the `syscall`-instruction wrappers (the ABI of seL4 5.0.0 on x86-64),
//! [`ipc_buffer`] the message registers beyond the fourth and the capability slots of a message,
//! [`bootinfo`] the root task's boot information, and `generated.rs` (written by `cargo xtask
//! image` from `libsel4/**/interfaces/*.xml` and libsel4's headers, evaluated against this image's
//! kernel configuration; never edited by hand) the labels ([`label`]), object types ([`object`]),
//! initial slots ([`slot`]), fault labels ([`fault`]), the [`Error`] enum and one stub per method
//! ([`invocation`]).
//!
//! Everything compiles on any x86-64 target so that host builds and tests see it; executing a
//! system call only makes sense on a seL4 thread.
#![no_std]
// This crate is the system-call boundary: it must execute `syscall` and access the IPC buffer
// through the `gs` segment, neither of which can be expressed without `unsafe`.
#![allow(unsafe_code)]

pub mod bootinfo;
#[allow(non_upper_case_globals, non_snake_case, missing_docs)]
mod generated;
pub mod ipc_buffer;
mod msginfo;
pub mod syscall;

pub use generated::*;
pub use msginfo::MessageInfo;

/// A machine word.
pub type Word = u64;
/// A capability pointer: an address in the caller's CSpace.
pub type CPtr = u64;

/// Number of message registers passed in CPU registers (`r10`, `r8`, `r9`, `r15`).
pub const REGISTER_MRS: usize = 4;

/// Performs an invocation: `caps` become the message's extra capabilities, `words` its message
/// registers, and the call blocks for the kernel's reply. The reply's first message words are
/// stored back into the IPC buffer so [`reply_words`] reads every word the same way.
///
/// # Safety
///
/// The calling thread's IPC buffer is mapped and `gs` points at it (true of every seL4 thread
/// whose TCB has an IPC buffer), and the invocation's effect does not invalidate memory that live
/// Rust references use.
pub unsafe fn invoke(service: CPtr, label: Word, caps: &[CPtr], words: &[Word]) -> MessageInfo {
    let len = words.len().min(consts::seL4_MsgMaxLength as usize);
    let ncaps = caps.len().min(3);
    for (i, &cap) in caps.iter().take(ncaps).enumerate() {
        // SAFETY: forwarded from this function's contract (IPC buffer mapped, gs set).
        unsafe { ipc_buffer::set_cap(i, cap) };
    }
    let mut regs = [0; REGISTER_MRS];
    for (i, &w) in words.iter().take(len).enumerate() {
        if i < REGISTER_MRS {
            regs[i] = w;
        } else {
            // SAFETY: as above; i < seL4_MsgMaxLength.
            unsafe { ipc_buffer::set_mr(i, w) };
        }
    }
    let info = MessageInfo::new(label, 0, ncaps as Word, len as Word);
    // SAFETY: a Call on the invoked capability; effects are covered by this function's contract.
    let (reply, _badge, out) = unsafe { syscall::call(service, info, regs) };
    for (i, &w) in out.iter().enumerate() {
        // SAFETY: as above.
        unsafe { ipc_buffer::set_mr(i, w) };
    }
    reply
}

/// The first `N` message words of the last reply, as [`invoke`] left them in the IPC buffer.
///
/// # Safety
///
/// As for [`invoke`]: the IPC buffer is mapped and `gs` points at it.
pub unsafe fn reply_words<const N: usize>() -> [Word; N] {
    // SAFETY: forwarded from this function's contract.
    core::array::from_fn(|i| unsafe { ipc_buffer::get_mr(i) })
}
