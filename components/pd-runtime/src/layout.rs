//! The layout every PD gets from the root task: CSpace slots, badges and fixed addresses.
//!
//! Microkit fixes its slots the same way (input endpoint, notification caps from slot 10 + channel,
//! endpoint caps from slot 74 + channel); ours adds the driver's VSpace and pool capabilities.

/// Highest channel id: notification badges are single bits below the flag bits of [`badge`].
pub const MAX_CHANNEL: u8 = 23;

/// The notification bit a PD signals itself with ([`crate::notify_self`]), to finish work after
/// a handler that must not block (a fault report is answered first).
pub const SELF_CHANNEL: u8 = MAX_CHANNEL + 1;

/// The page size every address, size and window of the image counts in (`sel4::PAGE_SIZE`).
pub const PAGE: u64 = sel4::PAGE_SIZE as u64;

/// Where the root task maps each PD's IPC buffer (below `sel4::mem::REGION_START`).
pub const IPC_BUFFER: u64 = 0x1000_0000;

/// Size of the IPC buffer: one 4 KiB page.
pub const IPC_BUFFER_SIZE: u64 = PAGE;

/// Where the root task maps each PD's info page (`pd-info`), read-only: right after the IPC
/// buffer, below the run-time mapping range.
pub const INFO_PAGE: u64 = IPC_BUFFER + IPC_BUFFER_SIZE;

/// The start of the run-time mapping range (`sel4::mem::REGION_START`) and its end (4 GiB):
/// everything mapped by the description or at run time (shared regions, pools, windows) lies in
/// `REGION_START..REGION_END`.
pub const REGION_START: u64 = sel4::mem::REGION_START as u64;
/// First address past the run-time mapping range (`sel4::mem::REGION_END`).
pub const REGION_END: u64 = sel4::mem::REGION_END as u64;

/// Where a VMBus client's window may lie, and how large it may be: the rule that
/// `cargo xtask check` (sysdesc) applies to descriptions and the root task to its system table.
///
/// A window holds pages mapped at run time, so it lies in the run-time mapping range
/// `sel4::mem::REGION_START..REGION_END` ([`window::START`]`..`[`window::END`]): below it are
/// the program (linked at 0x400000), its stack, the IPC buffer ([`IPC_BUFFER`]) and the PD info
/// page ([`INFO_PAGE`]); the range ends at 4 GiB because seL4 5.0.0 reports the address of a
/// VM fault in 32 bits, and a fault in a revoked window must be attributed to that window. A
/// window is no larger than the driver's whole ring-page pool: it could never be filled beyond
/// it. Channel ids are bounded by [`MAX_CHANNEL`], which `cargo xtask check` applies as well.
pub mod window {
    use super::{IPC_BUFFER, IPC_BUFFER_SIZE};

    /// First address a window may use ([`super::REGION_START`]).
    pub const START: u64 = super::REGION_START;
    /// First address past the range ([`super::REGION_END`], 4 GiB).
    pub const END: u64 = super::REGION_END;
    /// The page size windows and pools count in.
    pub const PAGE: u64 = super::PAGE;

    /// Why a window cannot be placed where it is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Misplaced {
        /// It starts at address 0.
        AtZero,
        /// It overlaps the IPC buffer.
        OverIpcBuffer,
        /// It starts below [`START`] (over the program, stack or info page).
        BelowStart,
        /// It reaches above [`END`] (4 GiB), or wraps around.
        Above4GiB,
    }

    /// Checks that `vaddr..vaddr + size` lies within [`START`]`..`[`END`]; the error names the
    /// first thing in the way, in the order of [`Misplaced`].
    pub const fn placement(vaddr: u64, size: u64) -> Result<(), Misplaced> {
        let end = match vaddr.checked_add(size) {
            Some(end) => end,
            None => u64::MAX,
        };
        if vaddr == 0 {
            Err(Misplaced::AtZero)
        } else if vaddr < IPC_BUFFER + IPC_BUFFER_SIZE && IPC_BUFFER < end {
            Err(Misplaced::OverIpcBuffer)
        } else if vaddr < START {
            Err(Misplaced::BelowStart)
        } else if end > END {
            Err(Misplaced::Above4GiB)
        } else {
            Ok(())
        }
    }

    /// Whether a window of `size` bytes fits in a pool of `pool_pages` pages.
    pub const fn fits_pool(size: u64, pool_pages: u64) -> bool {
        size <= pool_pages.saturating_mul(PAGE)
    }

    // The IPC buffer lies below the range, so a window in the range never overlaps it.
    const _: () = assert!(IPC_BUFFER + IPC_BUFFER_SIZE <= START && START < END);
    const _: () = assert!(END == 1 << 32);
}

/// Most protection domains the root task builds in one image.
pub const MAX_PDS: usize = 16;
/// Most memory regions the root task builds in one image.
pub const MAX_REGIONS: usize = 32;

/// Slots of a PD's root CNode.
///
/// Fixed slots below [`slot::POOL_BASE`]; a driver's pool follows: the original frame capability
/// of page `p` at `POOL_BASE + p`, then [`slot::MAX_MAPPINGS`] slots per page for the copies
/// that grants map into clients ([`slot::copy`]). The CNode is as large as that needs
/// ([`slot::cnode_radix`]).
pub mod slot {
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
    /// The PD's own notification, badged with [`super::SELF_CHANNEL`].
    pub const SELF_NOTIFY: u64 = 7;
    /// The kernel's Hyper-V service capability (`X86HyperV`), in the driver of a system on
    /// Hyper-V only.
    pub const HYPERV: u64 = 8;
    /// Notification capabilities: `NOTIFY_BASE + channel`.
    pub const NOTIFY_BASE: u64 = 10;
    /// Endpoint capabilities for protected calls: `PPCALL_BASE + channel`.
    pub const PPCALL_BASE: u64 = 40;
    /// IRQ handler capabilities: `IRQ_BASE + channel`.
    pub const IRQ_BASE: u64 = 70;
    /// VSpace capabilities of client PDs (`cap_vspace slot="N"` lands at `VSPACE_CAP_BASE + N`).
    pub const VSPACE_CAP_BASE: u64 = 100;
    /// First slot the PD may use freely.
    pub const FREE_BASE: u64 = 128;
    /// Most `cap_vspace` slots: `slot="N"` needs `N` below this.
    pub const MAX_VSPACE_CAPS: u64 = FREE_BASE - VSPACE_CAP_BASE;
    /// First slot after the free range.
    pub const FREE_END: u64 = 256;
    /// Original frame capabilities of the pool: `POOL_BASE + page`.
    pub const POOL_BASE: u64 = 256;
    /// Client mappings one pool page can have at once (one copy each).
    pub const MAX_MAPPINGS: u64 = 2;
    /// Smallest PD CNode (log2 of its slots).
    pub const MIN_RADIX: u8 = 8;

    /// The slot of copy `k` (below [`MAX_MAPPINGS`]) of pool page `page`, in a pool of
    /// `pool_pages` pages.
    pub const fn copy(pool_pages: u64, page: u64, k: u64) -> u64 {
        POOL_BASE + pool_pages + page * MAX_MAPPINGS + k
    }

    /// log2 of the CNode size a PD with a pool of `pool_pages` pages needs.
    pub const fn cnode_radix(pool_pages: u64) -> u8 {
        let need = POOL_BASE + pool_pages * (1 + MAX_MAPPINGS);
        let mut r = MIN_RADIX;
        while (1u64 << r) < need {
            r += 1;
        }
        r
    }
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

// The layout's invariants, checked when the crate compiles: slot ranges in order and disjoint,
// channel bits (with the self bit) clear of the flag bits, and badges within seL4 5.0.0's 28 bits.
const _: () = {
    let m = MAX_CHANNEL as u64 + 1;
    assert!(slot::MONITOR < slot::SELF_NOTIFY && slot::SELF_NOTIFY < slot::NOTIFY_BASE);
    assert!(slot::NOTIFY_BASE + m <= slot::PPCALL_BASE);
    assert!(slot::PPCALL_BASE + m <= slot::IRQ_BASE);
    assert!(slot::IRQ_BASE + m <= slot::VSPACE_CAP_BASE);
    assert!(slot::VSPACE_CAP_BASE < slot::FREE_BASE && slot::FREE_BASE < slot::FREE_END);
    assert!(slot::FREE_END <= slot::POOL_BASE && slot::POOL_BASE <= 1 << slot::MIN_RADIX);
    // The pool of system.xml (8192 pages) fits a CNode of 2^15 slots.
    assert!(slot::cnode_radix(8192) == 15 && slot::copy(8192, 8191, 1) < 1 << 15);
    // The info page sits between the IPC buffer and the run-time range.
    assert!(INFO_PAGE + PAGE <= REGION_START);
    let channel_bits = (1u64 << (SELF_CHANNEL + 1)) - 1;
    assert!(channel_bits & (badge::PPCALL | badge::FAULT | badge::MONITOR) == 0);
    assert!(badge::PPCALL < 1 << 28 && badge::FAULT < 1 << 28 && badge::MONITOR < 1 << 28);
};

#[cfg(test)]
mod tests {
    extern crate std;

    use super::slot;
    use super::window::{self, Misplaced};

    #[test]
    fn every_copy_slot_is_distinct_and_inside_the_cnode() {
        for pages in [0u64, 1, 2, 7, 64, 1000] {
            let radix = slot::cnode_radix(pages);
            let mut seen = std::collections::BTreeSet::new();
            for page in 0..pages {
                assert!(
                    slot::POOL_BASE + page < slot::copy(pages, 0, 0),
                    "originals below copies"
                );
                for k in 0..slot::MAX_MAPPINGS {
                    let s = slot::copy(pages, page, k);
                    assert!(s < 1 << radix, "pages {pages}: slot {s} outside 2^{radix}");
                    assert!(seen.insert(s), "pages {pages}: slot {s} twice");
                }
            }
        }
    }

    #[test]
    fn radix_grows_only_when_the_pool_needs_it() {
        assert_eq!(slot::cnode_radix(0), slot::MIN_RADIX);
        assert_eq!(slot::cnode_radix(1), 9);
        assert_eq!(slot::cnode_radix(85), 9); // 256 + 255 = 511 slots
        assert_eq!(slot::cnode_radix(86), 10); // 256 + 258 = 514 slots
    }

    #[test]
    fn windows_lie_in_the_run_time_range_below_4_gib() {
        let place = window::placement;
        assert_eq!(place(0, 0x1000), Err(Misplaced::AtZero));
        assert_eq!(place(0x1000_0000, 0x1000), Err(Misplaced::OverIpcBuffer));
        assert_eq!(place(0xfff_f000, 0x2000), Err(Misplaced::OverIpcBuffer));
        assert_eq!(place(0xfff_f000, 0x1000), Err(Misplaced::BelowStart));
        assert_eq!(place(0x40_0000, 0x1000), Err(Misplaced::BelowStart));
        assert_eq!(place(0xffff_f000, 0x2000), Err(Misplaced::Above4GiB));
        assert_eq!(place(1 << 32, 0x1000), Err(Misplaced::Above4GiB));
        assert_eq!(place(u64::MAX - 0xfff, 0x2000), Err(Misplaced::Above4GiB));
        assert_eq!(place(window::START, window::END - window::START), Ok(()));
        assert_eq!(
            place(window::START - 0x1000, 0x2000),
            Err(Misplaced::BelowStart)
        );
    }

    #[test]
    fn a_window_is_no_larger_than_the_pool() {
        assert!(window::fits_pool(0x4000, 4));
        assert!(!window::fits_pool(0x4001, 4));
        assert!(window::fits_pool(u64::MAX, u64::MAX));
    }
}
