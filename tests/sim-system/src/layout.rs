//! Where the simulation puts what system.xml does not place: the driver's view of its pool, the
//! control pages, the VMBus interrupt.
//!
//! The description leaves these to the image builder (issue 7); the simulation fixes them here and
//! checks at instantiation that none of them collides with a described mapping or window.

/// Where the driver maps its ring-page pool (the description hands it the pool's frame
/// capabilities unmapped; the driver's `write_page`/`read_page` need a mapping).
pub const DRIVER_POOL_VADDR: u64 = 0x1_0000_0000;

/// Where the driver maps the control page of client `i` (in description order):
/// `DRIVER_CONTROL_VADDR + i * 4096`.
pub const DRIVER_CONTROL_VADDR: u64 = 0xF000_0000;

/// Where every client maps its own control page.
pub const CLIENT_CONTROL_VADDR: u64 = 0x3000_0000;

/// Interrupt number of the VMBus SINT in the simulation (any free x86 vector would do).
pub const VMBUS_IRQ: u32 = 40;

/// Size of a page in the description and in the model.
pub const PAGE: u64 = 4096;

/// Whether `[a, a + a_len)` and `[b, b + b_len)` overlap (lengths in bytes, saturating).
#[must_use]
pub fn overlaps(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}
