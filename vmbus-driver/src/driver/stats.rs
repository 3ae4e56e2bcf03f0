//! Counters of everything the driver did, refused or dropped.

/// Driver counters. All are monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Interrupts handled (`on_interrupt` calls).
    pub interrupts: u64,
    /// SynIC messages consumed.
    pub messages: u64,
    /// Host events delivered to the owning client.
    pub events_delivered: u64,
    /// Host events for a relid with no open channel (or a channel being torn down): dropped.
    pub events_dropped_stale: u64,
    /// Event flag 0 seen (never a channel).
    pub events_flag0: u64,
    /// Client notifications sent.
    pub notifications: u64,
    /// Hostile or invalid host input of any kind (the sum of the detailed counters below).
    pub hostile: u64,
    /// Malformed, truncated or undecodable messages (and bad SynIC slots).
    pub malformed: u64,
    /// Messages naming relid 0 or a relid of 2048 and above.
    pub relid_out_of_range: u64,
    /// Offers for a relid already in use.
    pub duplicate_offers: u64,
    /// Rescinds of a relid with no offer (or one already rescinded).
    pub unknown_rescinds: u64,
    /// GPADL_CREATED / GPADL_TORNDOWN for a GPADL the driver is not waiting for.
    pub unknown_gpadl: u64,
    /// Replies naming the wrong relid, openid or GPADL, or arriving when none is awaited.
    pub mismatched_replies: u64,
    /// Host messages of a type a host never sends (or not valid in the current state).
    pub unexpected_messages: u64,
    /// Non-VMBus SynIC messages (e.g. timer) in the VMBus slot.
    pub foreign_messages: u64,
    /// Ring headers whose host-written index was out of range or misaligned when the driver
    /// read them (host hostility).
    pub corrupt_rings: u64,
    /// Ring headers whose client-written index was out of range or misaligned: counted against
    /// the client (see [`super::ClientStats`]), not as host hostility.
    pub client_corrupt_rings: u64,
    /// Host replies that did not come in time.
    pub timeouts: u64,
    /// Pages kept out of the pool, whatever the cause (the sum of the `quarantine_*` causes).
    pub quarantined_pages: u64,
    /// ... because the host never confirmed their GPADL's teardown (or never answered the
    /// open, so the driver could not ask for it): a late GPADL_TORNDOWN may still free them.
    pub quarantine_unconfirmed: u64,
    /// ... for good, because revoking them failed: a client may still map them.
    pub quarantine_revoke_failed: u64,
    /// ... for good, because zeroing them failed: they may hold a client's data.
    pub quarantine_zero_failed: u64,
    /// ... for good, because the kernel refused to take them back into the pool.
    pub quarantine_return_failed: u64,
    /// ... for good, because removing the driver's own mapping of a page to lend it failed.
    pub quarantine_unmap_failed: u64,
    /// ... for good, because mapping a reclaimed balloon page back into the driver failed.
    pub quarantine_remap_failed: u64,
    /// Quarantined pages released by a late GPADL_TORNDOWN.
    pub quarantine_released_pages: u64,
    /// Post-message retries after a transient failure.
    pub post_retries: u64,
    /// Post-message calls that failed for good.
    pub post_failures: u64,
    /// Offers received.
    pub offers: u64,
    /// Rescinds received.
    pub rescinds: u64,
    /// Channels opened (OPENCHANNEL_RESULT success).
    pub opens: u64,
    /// Opens that failed (host refusal, timeout, post failure, resources).
    pub open_failures: u64,
    /// Teardowns started.
    pub teardowns: u64,
    /// Teardowns completed.
    pub teardowns_completed: u64,
    /// RELID_RELEASED messages sent.
    pub relids_released: u64,
    /// Pages taken from the pool.
    pub pages_taken: u64,
    /// Pages zeroed and returned to the pool.
    pub pages_returned: u64,
    /// HvCallSignalEvent issued for clients: guest-to-host signals that cost a hypercall.
    pub signals: u64,
    /// Guest-to-host signals given by setting the channel's bit in the child-to-parent monitor
    /// page (no hypercall; docs/protocol.md#monitor-pages). `signals + monitor_signals` is every
    /// signal the driver gave.
    pub monitor_signals: u64,
    /// Offers with monitor_allocated set and a monitor id of 128 or above (the monitor page has
    /// 128 bits): hostile; such a channel is signalled with the hypercall.
    pub bad_monitor_ids: u64,
    /// Connections started with monitor pages (both pages taken and passed in INITIATE_CONTACT).
    pub monitor_connects: u64,
    /// Client signal requests that the ring did not justify (no hypercall): nothing unread, the
    /// host masked interrupts, or nothing the host can see changed since the last signal.
    pub signals_suppressed: u64,
    /// Signal hypercalls that failed.
    pub signal_failures: u64,
    /// Client requests handled.
    pub client_requests: u64,
    /// Client requests refused (any `ClientError`).
    pub client_errors: u64,
    /// Client faults handled.
    pub client_faults: u64,
    /// Kernel-seam operations that failed (driver-side resource or setup problems).
    pub kernel_errors: u64,
    /// MODIFYCHANNEL messages sent.
    pub retargets: u64,
    /// Interrupt passes stopped at the per-pass message bound (more messages pending).
    pub message_bound_hits: u64,
    /// Offers of a device (class, instance, sub-channel index) the driver still held under
    /// another relid: the host must have rescinded the old relid and the rescind was lost, so
    /// the old one is torn down as if rescinded.
    pub implied_rescinds: u64,
    /// OPENCHANNEL_RESULTs that never came, even during a teardown: the pages stay
    /// quarantined and the relid cannot be opened again until the host answers or rescinds.
    pub unresolved_opens: u64,
    /// Pages lent to the host for the balloon (`BalloonLend`).
    pub balloon_pages_lent: u64,
    /// Lent pages the host gave back (`BalloonReclaim`), whether they went back to the pool or
    /// a kernel operation on them failed.
    pub balloon_pages_reclaimed: u64,
    /// Balloon reclaims refused (a frame not lent to the client, bad ranges, no table space).
    pub balloon_reclaims_refused: u64,
    /// Buffers granted to clients (`AllocBuffer`, their GPADL created if asked for).
    pub buffers_allocated: u64,
    /// Buffers whose pages went back to the pool or into quarantine at their channel's end.
    pub buffers_released: u64,
}

/// Counters kept per client, so one client's mistakes are visible as its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests the client made.
    pub requests: u64,
    /// Requests refused.
    pub errors: u64,
    /// Signal requests refused because the client's own ring index was corrupt.
    pub corrupt_rings: u64,
    /// Signal requests that needed no hypercall.
    pub signals_suppressed: u64,
}

impl ClientStats {
    /// All counters zero.
    pub const ZERO: ClientStats = ClientStats {
        requests: 0,
        errors: 0,
        corrupt_rings: 0,
        signals_suppressed: 0,
    };
}

impl Stats {
    /// All counters zero (a constant, for [`super::Driver::EMPTY`]).
    pub const ZERO: Stats = Stats {
        interrupts: 0,
        messages: 0,
        events_delivered: 0,
        events_dropped_stale: 0,
        events_flag0: 0,
        notifications: 0,
        hostile: 0,
        malformed: 0,
        relid_out_of_range: 0,
        duplicate_offers: 0,
        unknown_rescinds: 0,
        unknown_gpadl: 0,
        mismatched_replies: 0,
        unexpected_messages: 0,
        corrupt_rings: 0,
        client_corrupt_rings: 0,
        foreign_messages: 0,
        timeouts: 0,
        quarantined_pages: 0,
        quarantine_unconfirmed: 0,
        quarantine_revoke_failed: 0,
        quarantine_zero_failed: 0,
        quarantine_return_failed: 0,
        quarantine_unmap_failed: 0,
        quarantine_remap_failed: 0,
        quarantine_released_pages: 0,
        post_retries: 0,
        post_failures: 0,
        offers: 0,
        rescinds: 0,
        opens: 0,
        open_failures: 0,
        teardowns: 0,
        teardowns_completed: 0,
        relids_released: 0,
        pages_taken: 0,
        pages_returned: 0,
        signals: 0,
        monitor_signals: 0,
        bad_monitor_ids: 0,
        monitor_connects: 0,
        signals_suppressed: 0,
        signal_failures: 0,
        client_requests: 0,
        client_errors: 0,
        client_faults: 0,
        kernel_errors: 0,
        retargets: 0,
        message_bound_hits: 0,
        implied_rescinds: 0,
        unresolved_opens: 0,
        balloon_pages_lent: 0,
        balloon_pages_reclaimed: 0,
        balloon_reclaims_refused: 0,
        buffers_allocated: 0,
        buffers_released: 0,
    };
}
