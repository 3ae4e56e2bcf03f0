//! The kernel's Hyper-V service (`X86HyperV`, added by the project's kernel patch) as methods of
//! its capability type: the three operations of the `Hypervisor` seam that need the CPU's
//! privileged mode. The raw invocations are sel4-sys's (`sel4_sys::hyperv`).

use sel4_sys::Error;
use sel4_sys::hyperv as raw;

use crate::X86HyperV;

impl X86HyperV {
    /// HvCallPostMessage of `payload` (at most `sel4_sys::hyperv::MAX_POST_PAYLOAD` bytes) with
    /// type `message_type` to `connection`; the hypercall's status, or the kernel's refusal.
    pub fn post_message(
        self,
        connection: u32,
        message_type: u32,
        payload: &[u8],
    ) -> Result<u16, Error> {
        // SAFETY: every thread of the image has its IPC buffer set up; the hypercall reads a
        // kernel-owned page, so no memory that Rust references point to changes.
        unsafe { raw::x86_hyperv_post_message(self.0, connection, message_type, payload) }
    }

    /// HvCallSignalEvent (fast form) on `connection` with `flag`; the hypercall's status.
    pub fn signal_event(self, connection: u32, flag: u16) -> Result<u16, Error> {
        // SAFETY: as for `post_message`; the fast hypercall touches no memory.
        unsafe { raw::x86_hyperv_signal_event(self.0, connection, flag) }
    }

    /// Writes the EOM MSR: the hypervisor may deliver the next queued message.
    pub fn end_of_message(self) -> Result<(), Error> {
        // SAFETY: as for `post_message`; an MSR write touches no memory of ours.
        unsafe { raw::x86_hyperv_end_of_message(self.0) }
    }
}
