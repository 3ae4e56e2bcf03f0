//! The `Hypervisor` seam (docs/architecture.md#the-seams): the few hypervisor operations the driver
//! logic needs.
//!
//! On Hyper-V it is backed by real hypercalls and the per-VP SynIC pages; on the host by the
//! simulated Hyper-V host. The guest-side procedures built on it (`consume_message`,
//! `scan_events`) live in `synic.rs`, so the seam stays small and the protocol order is written
//! once.

use super::hypercall::HvStatus;
use super::synic::HvMessageType;
use crate::ids::ConnectionId;

/// Hypervisor operations of the VP that runs the driver. `sint` is always below 16; the
/// procedures in `synic.rs` check that before calling.
pub trait Hypervisor {
    /// Issues HvCallPostMessage with message type `message_type` and `payload` (at most 240
    /// bytes) to `connection`, and returns the hypercall status. Retrying transient failures is
    /// the caller's policy, not the seam's.
    fn post_message(
        &mut self,
        connection: ConnectionId,
        message_type: HvMessageType,
        payload: &[u8],
    ) -> HvStatus;

    /// Issues HvCallSignalEvent (fast form) on `connection` with `flag_number` (VMBus uses 0),
    /// and returns the hypercall status.
    fn signal_event(&mut self, connection: ConnectionId, flag_number: u16) -> HvStatus;

    /// Copies the 256-byte message slot of `sint` out of this VP's SIM page. The host may rewrite
    /// a slot whose type is NONE at any moment, so the implementation reads the type field first
    /// (with acquire ordering, pairing with the host's publishing store of the type) and the rest
    /// after it; the caller only ever looks at the copy.
    fn read_message_slot(&mut self, sint: u8) -> [u8; 256];

    /// Compare-and-swaps the type field of `sint`'s slot from `expected_type` to NONE, followed by
    /// a full memory barrier, so the store of NONE is visible to the host before the caller reads
    /// the MessagePending flag again. Returns true if the swap happened; false means the type was
    /// no longer `expected_type` and nothing was written.
    fn clear_message_slot(&mut self, sint: u8, expected_type: HvMessageType) -> bool;

    /// Writes the EOM MSR (the value is ignored), asking the hypervisor to deliver the next queued
    /// message into a free slot.
    fn end_of_message(&mut self);

    /// Atomically swaps 32-bit word `word` (0..64) of `sint`'s event-flag bitmap in this VP's
    /// SIEF page with 0 and returns the old bits; the swap is the guest's test-and-clear of every
    /// flag in the word, so a flag the host sets afterwards is seen on the next scan.
    fn take_event_flags(&mut self, sint: u8, word: usize) -> u32;
}
