//! Invocations on CNodes, TCBs, untyped memory, IRQ handlers and I/O ports.

use sel4_sys::{CPtr, Error, UserContext, Word, invocation as inv};

use crate::{Endpoint, Frame, IoPort, IrqHandler, Notification, Rights, Tcb, Untyped, VSpace};

/// A CNode as a root for slot addressing: its capability and how many bits of an index it
/// resolves (64 for a thread's own guarded root CNode, the radix for an unguarded child CNode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CNode {
    /// The CNode capability.
    pub cptr: CPtr,
    /// Depth to resolve slot indices with.
    pub depth: u8,
}

impl CNode {
    /// The root CNode of the calling thread, whose guard makes 64-bit indices resolve.
    pub const fn own(cptr: CPtr) -> Self {
        CNode { cptr, depth: 64 }
    }

    /// Copies the capability in `src` (of CNode `from`) to `dst` with `rights`: a CDT child that
    /// `revoke` on the source deletes.
    pub fn copy(self, dst: CPtr, from: CNode, src: CPtr, rights: Rights) -> Result<(), Error> {
        // SAFETY: copying a capability changes no memory Rust uses (crate docs).
        unsafe {
            inv::cnode_copy(
                self.cptr, from.cptr, dst, self.depth, src, from.depth, rights.0,
            )
        }
    }

    /// Like `copy`, with a badge (endpoints, notifications) or guard (CNodes).
    pub fn mint(
        self,
        dst: CPtr,
        from: CNode,
        src: CPtr,
        rights: Rights,
        badge: Word,
    ) -> Result<(), Error> {
        // SAFETY: as for `copy`.
        unsafe {
            inv::cnode_mint(
                self.cptr, from.cptr, dst, self.depth, src, from.depth, rights.0, badge,
            )
        }
    }

    /// Moves a capability (keeping a frame's mapping).
    pub fn move_cap(self, dst: CPtr, from: CNode, src: CPtr) -> Result<(), Error> {
        // SAFETY: as for `copy`.
        unsafe { inv::cnode_move(self.cptr, from.cptr, dst, self.depth, src, from.depth) }
    }

    /// Deletes one capability (unmapping it when it is a mapped frame).
    pub fn delete(self, slot: CPtr) -> Result<(), Error> {
        // SAFETY: crate docs: no capability a PD holds maps memory that Rust references.
        unsafe { inv::cnode_delete(self.cptr, slot, self.depth) }
    }

    /// Deletes every capability derived from the one in `slot`, which stays.
    pub fn revoke(self, slot: CPtr) -> Result<(), Error> {
        // SAFETY: as for `delete`.
        unsafe { inv::cnode_revoke(self.cptr, slot, self.depth) }
    }
}

impl Untyped {
    /// Creates `count` objects of `object_type` (sel4_sys::object) with capabilities in
    /// `dest` from slot `offset` on.
    pub fn retype(
        self,
        object_type: Word,
        size_bits: Word,
        dest: CNode,
        offset: CPtr,
        count: Word,
    ) -> Result<(), Error> {
        // SAFETY: new objects come from memory no Rust code uses (untyped memory).
        unsafe {
            inv::untyped_retype(
                self.0,
                dest.cptr,
                object_type,
                size_bits,
                0,
                0,
                offset,
                count,
            )
        }
    }
}

/// The settings of [`Tcb::configure`].
#[derive(Debug, Clone, Copy)]
pub struct TcbConfig {
    /// Slot, in the thread's own CSpace, of the endpoint its faults are sent to.
    pub fault_ep: CPtr,
    /// Priority (also the maximum controlled priority).
    pub priority: u8,
    /// Root CNode of the thread.
    pub cspace: CPtr,
    /// Guard data for the root CNode (`guard_size << 2`, see [`TcbConfig::guard_for_radix`]).
    pub cspace_data: Word,
    /// Address space.
    pub vspace: VSpace,
    /// IPC buffer address in that space, and its frame.
    pub ipc_buffer: (Word, Frame),
}

impl TcbConfig {
    /// Guard data that makes a CNode of `radix` bits resolve a full 64-bit index (guard 0 of
    /// size 64 - radix; `cnode_capdata`: guard size at bit 2, guard at bit 8).
    pub const fn guard_for_radix(radix: u8) -> Word {
        ((64 - radix as Word) & 0x3f) << 2
    }
}

impl Tcb {
    /// Sets fault endpoint, priority, CSpace, VSpace and IPC buffer.
    pub fn configure(self, c: &TcbConfig) -> Result<(), Error> {
        let prio = Word::from(c.priority) | Word::from(c.priority) << 8;
        // SAFETY: configuring another thread changes no memory of the caller.
        unsafe {
            inv::tcb_configure(
                self.0,
                c.cspace,
                c.vspace.0,
                c.ipc_buffer.1.0,
                c.fault_ep,
                prio,
                c.cspace_data,
                0,
                c.ipc_buffer.0,
            )
        }
    }

    /// Sets the initial registers (instruction pointer, stack, first argument...).
    pub fn write_registers(self, regs: &UserContext) -> Result<(), Error> {
        // SAFETY: used on threads other than the caller (documented contract of the root task).
        unsafe { inv::tcb_write_registers(self.0, false, 0, 19, regs) }
    }

    /// Binds a notification, so signals arrive while the thread waits on an endpoint.
    pub fn bind_notification(self, n: Notification) -> Result<(), Error> {
        // SAFETY: no memory effect.
        unsafe { inv::tcb_bind_notification(self.0, n.0) }
    }

    /// Starts (or restarts) the thread.
    pub fn resume(self) -> Result<(), Error> {
        // SAFETY: no memory effect on the caller.
        unsafe { inv::tcb_resume(self.0) }
    }

    /// Stops the thread.
    pub fn suspend(self) -> Result<(), Error> {
        // SAFETY: no memory effect on the caller.
        unsafe { inv::tcb_suspend(self.0) }
    }
}

impl Notification {
    /// Signals: ORs the capability's badge into the notification word.
    pub fn signal(self) {
        // SAFETY: a send on a notification changes no memory.
        unsafe { sel4_sys::syscall::send(self.0, sel4_sys::MessageInfo(0), [0; 4]) }
    }

    /// Waits until the word is non-zero, returns and clears it.
    pub fn wait(self) -> Word {
        // SAFETY: a receive on a notification changes no memory.
        unsafe { sel4_sys::syscall::recv(self.0).1 }
    }

    /// Returns and clears the word without blocking (0: nothing pending).
    pub fn poll(self) -> Word {
        // SAFETY: as for `wait`.
        unsafe { sel4_sys::syscall::nb_recv(self.0).1 }
    }
}

impl IrqHandler {
    /// Acknowledges the interrupt so the kernel delivers the next one.
    pub fn ack(self) -> Result<(), Error> {
        // SAFETY: no memory effect.
        unsafe { inv::irq_handler_ack(self.0) }
    }

    /// Routes the interrupt to a notification.
    pub fn set_notification(self, n: Notification) -> Result<(), Error> {
        // SAFETY: no memory effect.
        unsafe { inv::irq_handler_set_notification(self.0, n.0) }
    }
}

impl IoPort {
    /// Writes one byte to an I/O port.
    pub fn out8(self, port: u16, value: u8) -> Result<(), Error> {
        // SAFETY: the port range is the holder's by capability; no Rust memory is affected.
        unsafe { inv::x86_io_port_out8(self.0, Word::from(port), Word::from(value)) }
    }
}

impl Endpoint {
    /// The endpoint as a typed value, for [`crate::Message`] operations.
    pub const fn of(cptr: CPtr) -> Self {
        Endpoint(cptr)
    }
}
