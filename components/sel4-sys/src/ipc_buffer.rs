//! The IPC buffer (`seL4_IPCBuffer`), reached through the `gs` segment, whose base the kernel
//! sets to the thread's IPC buffer.
//!
//! Layout in words: 0 tag, 1..=120 message registers, 121 user data, 122..=124 extra caps or
//! badges, 125 receive CNode, 126 receive index, 127 receive depth.

use crate::{CPtr, Word, consts};

const MSG: usize = 8;
const CAPS: usize = 8 * 122;
const RECEIVE_CNODE: usize = 8 * 125;

/// # Safety
///
/// The IPC buffer is mapped and `gs` points at it; `offset` is inside its 1 KiB.
unsafe fn read(offset: usize) -> Word {
    let v: Word;
    // SAFETY: a load from the thread's own IPC buffer (this function's contract); reading it has
    // no side effect.
    unsafe {
        core::arch::asm!("mov {v}, qword ptr gs:[{o}]", v = out(reg) v, o = in(reg) offset, options(nostack, readonly, preserves_flags))
    };
    v
}

/// # Safety
///
/// As for [`read`].
unsafe fn write(offset: usize, value: Word) {
    // SAFETY: a store into the thread's own IPC buffer (this function's contract), which no Rust
    // reference points into.
    unsafe {
        core::arch::asm!("mov qword ptr gs:[{o}], {v}", v = in(reg) value, o = in(reg) offset, options(nostack, preserves_flags))
    };
}

fn mr_offset(i: usize) -> usize {
    MSG + 8 * i.min(consts::seL4_MsgMaxLength as usize - 1)
}

/// Message register `i` (clamped to the last one).
///
/// # Safety
///
/// The thread's IPC buffer is mapped and `gs` points at it.
pub unsafe fn get_mr(i: usize) -> Word {
    // SAFETY: forwarded from this function's contract.
    unsafe { read(mr_offset(i)) }
}

/// Sets message register `i` (clamped to the last one).
///
/// # Safety
///
/// As for [`get_mr`].
pub unsafe fn set_mr(i: usize, value: Word) {
    // SAFETY: forwarded from this function's contract.
    unsafe { write(mr_offset(i), value) }
}

/// Sets extra capability `i` (0..3) of the next message.
///
/// # Safety
///
/// As for [`get_mr`].
pub unsafe fn set_cap(i: usize, cap: CPtr) {
    // SAFETY: forwarded from this function's contract.
    unsafe { write(CAPS + 8 * i.min(2), cap) }
}

/// Extra capability or badge `i` (0..3) of the last received message.
///
/// # Safety
///
/// As for [`get_mr`].
pub unsafe fn get_badge(i: usize) -> Word {
    // SAFETY: forwarded from this function's contract.
    unsafe { read(CAPS + 8 * i.min(2)) }
}

/// Where a received capability is put: CNode, index and depth (`seL4_SetCapReceivePath`).
///
/// # Safety
///
/// As for [`get_mr`].
pub unsafe fn set_receive_path(cnode: CPtr, index: CPtr, depth: Word) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        write(RECEIVE_CNODE, cnode);
        write(RECEIVE_CNODE + 8, index);
        write(RECEIVE_CNODE + 16, depth);
    }
}
