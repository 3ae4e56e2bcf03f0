//! The system calls of seL4 5.0.0 on x86-64 through the `syscall` instruction.
//!
//! ABI (checked by running it, docs/sel4.md#system-calls-and-boot): `rdx` the system-call number,
//! `rdi` the capability (the badge on return), `rsi` the message info, `r10`, `r8`, `r9`, `r15`
//! message registers 0-3; `rcx` and `r11` are clobbered, and the kernel does not preserve `rsp` on
//! this path, so the stub keeps it in `rbx` across the instruction (`rbx` itself is saved on the
//! stack because Rust reserves it).

use crate::{CPtr, MessageInfo, Word};

/// System-call numbers (`libsel4/include/api/syscall.xml`, debug kernel).
pub mod number {
    /// `seL4_SysCall`.
    pub const CALL: i64 = -1;
    /// `seL4_SysReplyRecv`.
    pub const REPLY_RECV: i64 = -2;
    /// `seL4_SysSend`.
    pub const SEND: i64 = -3;
    /// `seL4_SysNBSend`.
    pub const NB_SEND: i64 = -4;
    /// `seL4_SysRecv`.
    pub const RECV: i64 = -5;
    /// `seL4_SysReply`.
    pub const REPLY: i64 = -6;
    /// `seL4_SysYield`.
    pub const YIELD: i64 = -7;
    /// `seL4_SysNBRecv`.
    pub const NB_RECV: i64 = -8;
    /// `seL4_SysDebugPutChar` (debug kernels only).
    pub const DEBUG_PUT_CHAR: i64 = -9;
    /// `seL4_SysDebugHalt` (debug kernels only).
    pub const DEBUG_HALT: i64 = -10;
}

/// What a system call hands back: message info, badge (or capability word), message registers 0-3.
pub type Returned = (MessageInfo, Word, [Word; 4]);

/// One `syscall` with every argument register.
///
/// # Safety
///
/// Only on a seL4 thread; the call's effect (on capabilities, address spaces or the IPC buffer)
/// must not invalidate memory that live Rust references use.
#[inline(always)]
pub unsafe fn raw(sys: i64, cap: Word, info: MessageInfo, mrs: [Word; 4]) -> Returned {
    let (mut badge, mut info_out) = (cap, info.0);
    let [mut m0, mut m1, mut m2, mut m3] = mrs;
    // SAFETY: the instruction enters the seL4 kernel, which returns to the next instruction with
    // only the registers named here changed; rsp is restored from rbx, and rbx from the stack.
    unsafe {
        core::arch::asm!(
            "push rbx",
            "mov rbx, rsp",
            "syscall",
            "mov rsp, rbx",
            "pop rbx",
            in("rdx") sys,
            inout("rdi") badge,
            inout("rsi") info_out,
            inout("r10") m0,
            inout("r8") m1,
            inout("r9") m2,
            inout("r15") m3,
            lateout("rcx") _,
            lateout("r11") _,
            lateout("rax") _,
        );
    }
    (MessageInfo(info_out), badge, [m0, m1, m2, m3])
}

/// `seL4_Call`: send on `cap` and wait for the reply.
///
/// # Safety
///
/// As for [`raw`].
pub unsafe fn call(cap: CPtr, info: MessageInfo, mrs: [Word; 4]) -> Returned {
    // SAFETY: forwarded.
    unsafe { raw(number::CALL, cap, info, mrs) }
}

/// `seL4_Send`: blocking send (signal, for a notification capability).
///
/// # Safety
///
/// As for [`raw`].
pub unsafe fn send(cap: CPtr, info: MessageInfo, mrs: [Word; 4]) {
    // SAFETY: forwarded.
    unsafe { raw(number::SEND, cap, info, mrs) };
}

/// `seL4_NBSend`: send that never blocks.
///
/// # Safety
///
/// As for [`raw`].
pub unsafe fn nb_send(cap: CPtr, info: MessageInfo, mrs: [Word; 4]) {
    // SAFETY: forwarded.
    unsafe { raw(number::NB_SEND, cap, info, mrs) };
}

/// `seL4_Recv`: wait on an endpoint or notification; returns the sender's badge.
///
/// # Safety
///
/// As for [`raw`].
pub unsafe fn recv(cap: CPtr) -> Returned {
    // SAFETY: forwarded.
    unsafe { raw(number::RECV, cap, MessageInfo(0), [0; 4]) }
}

/// `seL4_NBRecv`: poll an endpoint or notification.
///
/// # Safety
///
/// As for [`raw`].
pub unsafe fn nb_recv(cap: CPtr) -> Returned {
    // SAFETY: forwarded.
    unsafe { raw(number::NB_RECV, cap, MessageInfo(0), [0; 4]) }
}

/// `seL4_Reply`: answer the last caller.
///
/// # Safety
///
/// As for [`raw`].
pub unsafe fn reply(info: MessageInfo, mrs: [Word; 4]) {
    // SAFETY: forwarded.
    unsafe { raw(number::REPLY, 0, info, mrs) };
}

/// `seL4_ReplyRecv`: answer the last caller, then wait on `cap`.
///
/// # Safety
///
/// As for [`raw`].
pub unsafe fn reply_recv(cap: CPtr, info: MessageInfo, mrs: [Word; 4]) -> Returned {
    // SAFETY: forwarded.
    unsafe { raw(number::REPLY_RECV, cap, info, mrs) }
}

/// `seL4_Yield`.
pub fn yield_now() {
    // SAFETY: yielding changes no capability or memory.
    unsafe { raw(number::YIELD, 0, MessageInfo(0), [0; 4]) };
}

/// `seL4_DebugPutChar`: one byte to the kernel's serial console (debug kernels).
pub fn debug_put_char(c: u8) {
    // SAFETY: printing changes no capability or memory.
    unsafe {
        raw(
            number::DEBUG_PUT_CHAR,
            Word::from(c),
            MessageInfo(0),
            [0; 4],
        )
    };
}

/// `seL4_DebugHalt`: stop the machine (debug kernels).
pub fn debug_halt() {
    // SAFETY: halting changes no memory that Rust can still observe.
    unsafe { raw(number::DEBUG_HALT, 0, MessageInfo(0), [0; 4]) };
}
