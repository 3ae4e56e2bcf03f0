//! Counters of kernel operations, for benchmarks and for tests that assert costs.

/// How many kernel operations the simulation performed since creation or the last reset.
///
/// Invocations that fail are not counted, except in [`Counters::errors`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successful `CNode_Copy` invocations.
    pub copies: u64,
    /// Successful `CNode_Mint` invocations.
    pub mints: u64,
    /// Successful `CNode_Delete` invocations (including those on empty slots).
    pub deletes: u64,
    /// Successful `CNode_Revoke` invocations.
    pub revokes: u64,
    /// Capabilities deleted by revokes (the cost driver of a revoke).
    pub revoked_caps: u64,
    /// `Untyped_Retype` invocations.
    pub retypes: u64,
    /// Mappings created.
    pub maps: u64,
    /// Mappings removed (by unmap, delete or revoke).
    pub unmaps: u64,
    /// Successful `Page_Unmap` invocations (an unmap the caller asked for, whether or not the
    /// capability was mapped; [`Counters::unmaps`] also counts the mappings a delete or revoke
    /// removed).
    pub unmap_calls: u64,
    /// Notification signals (including those made by interrupts).
    pub signals: u64,
    /// Waits that returned a pending word.
    pub waits: u64,
    /// Waits that found nothing pending (a real thread would block).
    pub waits_blocked: u64,
    /// Polls.
    pub polls: u64,
    /// Interrupts delivered to a handler.
    pub irqs_delivered: u64,
    /// `IRQHandler_Ack` invocations.
    pub irq_acks: u64,
    /// Faults raised by PD memory accesses.
    pub faults: u64,
    /// Successful PD reads through a VSpace.
    pub reads: u64,
    /// Successful PD writes through a VSpace.
    pub writes: u64,
    /// Invocations the kernel refused with an error.
    pub errors: u64,
}
