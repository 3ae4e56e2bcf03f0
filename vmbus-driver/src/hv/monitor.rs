//! The monitor page (docs/protocol.md#monitor-pages): the 4 KiB page through which a guest
//! signals monitored channels without a hypercall, and through which the host publishes each
//! monitored channel's parameters and latency.
//!
//! Layout, checked against Linux's `struct hv_monitor_page` (`drivers/hv/hyperv_vmbus.h` before
//! it moved to `include/hyperv/hvgdk_mini.h`) and OpenVMM's `hvdef::HvMonitorPage`:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0x000 | 4 | trigger_state: bits 3:0 enable trigger groups 0..3 |
//! | 0x004 | 4 | reserved |
//! | 0x008 | 4 × 8 | trigger_group\[g\]: pending u32, then armed u32 |
//! | 0x028 | 24 | reserved |
//! | 0x040 | 4 × 32 × 4 | next_check_time\[g\]\[b\]: i32 |
//! | 0x240 | 4 × 32 × 2 | latency\[g\]\[b\]: u16 |
//! | 0x340 | 256 | reserved |
//! | 0x440 | 4 × 32 × 8 | parameter\[g\]\[b\]: connection id u32, flag number u16, reserved u16 |
//! | 0x840 | 1984 | reserved |
//!
//! Monitor id `m` (0..128) is bit `m % 32` of group `m / 32`.

/// Monitor ids a page holds: 4 trigger groups of 32 bits.
pub const MONITOR_IDS: usize = 128;
/// Trigger groups in a page.
pub const TRIGGER_GROUPS: usize = 4;
/// Offset of `trigger_state`.
pub const TRIGGER_STATE: usize = 0x000;
/// Offset of `trigger_group[0].pending`; group `g`'s pending word is at `+ 8 * g`, its armed
/// word 4 bytes after it.
pub const TRIGGER_GROUP: usize = 0x008;
/// Bytes per trigger group (pending, armed).
pub const TRIGGER_GROUP_SIZE: usize = 8;
/// Offset of `next_check_time[0][0]` (i32 each).
pub const NEXT_CHECK_TIME: usize = 0x040;
/// Offset of `latency[0][0]` (u16 each).
pub const LATENCY: usize = 0x240;
/// Offset of `parameter[0][0]` (8 bytes each: connection id u32, flag number u16, reserved).
pub const PARAMETER: usize = 0x440;
/// Bytes per parameter entry.
pub const PARAMETER_SIZE: usize = 8;

/// Offset of the pending word of monitor id `id`'s trigger group (`id` below 128).
pub const fn pending_offset(id: u8) -> usize {
    TRIGGER_GROUP + TRIGGER_GROUP_SIZE * (id as usize / 32)
}

/// Monitor id `id`'s bit in its group's pending word.
pub const fn pending_bit(id: u8) -> u32 {
    1 << (id % 32)
}

/// Offset of monitor id `id`'s latency entry (u16).
pub const fn latency_offset(id: u8) -> usize {
    LATENCY + 2 * id as usize
}

/// Offset of monitor id `id`'s parameter entry.
pub const fn parameter_offset(id: u8) -> usize {
    PARAMETER + PARAMETER_SIZE * id as usize
}
