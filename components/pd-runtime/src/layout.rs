//! The layout every PD gets from the root task: CSpace slots, badges and fixed addresses.
//!
//! Microkit fixes its slots the same way (input endpoint, notification caps from slot 10 + channel,
//! endpoint caps from slot 74 + channel); ours adds the driver's VSpace and pool capabilities.

/// Highest channel id: notification badges are single bits below the flag bits of [`badge`].
pub const MAX_CHANNEL: u8 = 23;

/// Where the root task maps each PD's IPC buffer (below `sel4::mem::REGION_START`).
pub const IPC_BUFFER: u64 = 0x1000_0000;

/// Slots of a PD's root CNode.
pub mod slot {
    /// log2 of the number of slots.
    pub const RADIX: u8 = 8;
    /// The PD's input endpoint (its notification is bound to its TCB).
    pub const INPUT: u64 = 1;
    /// The PD's own root CNode.
    pub const CNODE: u64 = 2;
    /// The PD's own VSpace.
    pub const VSPACE: u64 = 3;
    /// The PD's own TCB.
    pub const TCB: u64 = 4;
    /// Endpoint the kernel sends this PD's faults to (the root task's, badged with the PD).
    pub const FAULT_EP: u64 = 5;
    /// Endpoint to the root task for reports (badged with the PD).
    pub const MONITOR: u64 = 6;
    /// Notification capabilities: `NOTIFY_BASE + channel`.
    pub const NOTIFY_BASE: u64 = 10;
    /// Endpoint capabilities for protected calls: `PPCALL_BASE + channel`.
    pub const PPCALL_BASE: u64 = 40;
    /// IRQ handler capabilities: `IRQ_BASE + channel`.
    pub const IRQ_BASE: u64 = 70;
    /// VSpace capabilities of client PDs (`cap_vspace`): `VSPACE_CAP_BASE + index`.
    pub const VSPACE_CAP_BASE: u64 = 100;
    /// Original frame capabilities of a pool region: `POOL_BASE + page`.
    pub const POOL_BASE: u64 = 128;
    /// First slot the PD may use freely (copies of pool frames, ...).
    pub const FREE_BASE: u64 = 192;
    /// Number of slots.
    pub const COUNT: u64 = 1 << RADIX;
}

/// Badges on the input endpoint: which kind of message arrived and from which channel or PD.
/// Badges stay below bit 28 (the badge width of seL4 5.0.0's capability data).
pub mod badge {
    /// A protected call; low bits: the channel.
    pub const PPCALL: u64 = 1 << 27;
    /// A fault report from the root task; low bits: the faulting PD.
    pub const FAULT: u64 = 1 << 26;
    /// A report to the root task's monitor endpoint; low bits: the reporting PD.
    pub const MONITOR: u64 = 1 << 25;
    /// Mask of the channel or PD index.
    pub const CHANNEL_MASK: u64 = 0xff;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_ranges_do_not_overlap() {
        let ranges = [
            (slot::NOTIFY_BASE, slot::NOTIFY_BASE + u64::from(MAX_CHANNEL) + 1),
            (slot::PPCALL_BASE, slot::PPCALL_BASE + u64::from(MAX_CHANNEL) + 1),
            (slot::IRQ_BASE, slot::IRQ_BASE + u64::from(MAX_CHANNEL) + 1),
            (slot::VSPACE_CAP_BASE, slot::POOL_BASE),
            (slot::POOL_BASE, slot::FREE_BASE),
            (slot::FREE_BASE, slot::COUNT),
        ];
        assert!(slot::MONITOR < slot::NOTIFY_BASE);
        for w in ranges.windows(2) {
            assert!(w[0].0 < w[0].1 && w[0].1 <= w[1].0, "{w:?}");
        }
    }

    #[test]
    fn notification_bits_never_collide_with_flag_bits() {
        let all_channels: u64 = (0..=MAX_CHANNEL).map(|c| 1u64 << c).sum();
        for flag in [badge::PPCALL, badge::FAULT, badge::MONITOR] {
            assert_eq!(all_channels & flag, 0);
            assert!(flag < 1 << 28);
        }
    }
}
