//! A 4 KiB page shared with another PD, accessed only through atomic operations.
//!
//! The peer may write the page at any moment, so no Rust reference to its contents ever exists:
//! each access is one atomic operation on a pointer made for it (as `shared-mem` does for rings).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use sel4::mem::{REGION_END, REGION_START};

/// Bytes of a page.
pub const PAGE: usize = 4096;

/// A shared page mapped at a fixed address for the life of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedPage {
    base: usize,
}

impl SharedPage {
    /// The page at `base`: `None` unless page-aligned inside the run-time mapping range.
    ///
    /// The caller names a page that the system description maps into this PD for the whole run
    /// (the SynIC pages, the hypercall input page): that is what makes the accesses below sound.
    pub const fn at(base: usize) -> Option<SharedPage> {
        if base >= REGION_START && base <= REGION_END - PAGE && base.is_multiple_of(PAGE) {
            Some(SharedPage { base })
        } else {
            None
        }
    }

    fn u32_at(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset > PAGE - 4 {
            return None;
        }
        // SAFETY: aligned and inside the page, which stays mapped (see `at`); only atomics touch
        // it in this program, and the reference lives for one operation of the caller.
        Some(unsafe { AtomicU32::from_ptr((self.base + offset) as *mut u32) })
    }

    fn u64_at(&self, offset: usize) -> Option<&AtomicU64> {
        if !offset.is_multiple_of(8) || offset > PAGE - 8 {
            return None;
        }
        // SAFETY: as in `u32_at`.
        Some(unsafe { AtomicU64::from_ptr((self.base + offset) as *mut u64) })
    }

    /// Loads the u32 at `offset` (4-aligned); 0 outside the page.
    pub fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.u32_at(offset).map_or(0, |a| a.load(order))
    }

    /// Stores the u32 at `offset` (4-aligned); ignored outside the page.
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        if let Some(a) = self.u32_at(offset) {
            a.store(value, order);
        }
    }

    /// Compare-and-swap of the u32 at `offset`: true if it held `current` and now holds `new`.
    pub fn cas_u32(&self, offset: usize, current: u32, new: u32) -> bool {
        self.u32_at(offset).is_some_and(|a| {
            a.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    /// Atomically replaces the u32 at `offset` and returns the old value (0 outside the page).
    pub fn swap_u32(&self, offset: usize, value: u32) -> u32 {
        self.u32_at(offset)
            .map_or(0, |a| a.swap(value, Ordering::AcqRel))
    }

    /// Atomically ORs `bits` into the u32 at `offset`.
    pub fn or_u32(&self, offset: usize, bits: u32) {
        if let Some(a) = self.u32_at(offset) {
            a.fetch_or(bits, Ordering::AcqRel);
        }
    }

    /// Copies `buf.len()` bytes from `offset` (both 8-byte multiples) with relaxed 64-bit loads;
    /// false outside the page.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        if !buf.len().is_multiple_of(8) || offset.checked_add(buf.len()).is_none_or(|e| e > PAGE) {
            return false;
        }
        for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
            let Some(a) = self.u64_at(offset + i * 8) else {
                return false;
            };
            chunk.copy_from_slice(&a.load(Ordering::Relaxed).to_le_bytes());
        }
        true
    }

    /// Copies `data` (an 8-byte multiple) to `offset` with relaxed 64-bit stores; false outside
    /// the page.
    pub fn write(&self, offset: usize, data: &[u8]) -> bool {
        if !data.len().is_multiple_of(8) || offset.checked_add(data.len()).is_none_or(|e| e > PAGE)
        {
            return false;
        }
        for (i, chunk) in data.chunks_exact(8).enumerate() {
            let Some(a) = self.u64_at(offset + i * 8) else {
                return false;
            };
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            a.store(u64::from_le_bytes(w), Ordering::Relaxed);
        }
        true
    }

    /// Copies bytes from `offset` with volatile byte loads (any length and alignment); false
    /// outside the page. For guest memory the host reads by frame number.
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> bool {
        if offset.checked_add(buf.len()).is_none_or(|e| e > PAGE) {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the page (checked above), which stays mapped (see `at`); a byte
            // load through a raw pointer, no reference formed.
            *b = unsafe { ((self.base + offset + i) as *const u8).read_volatile() };
        }
        true
    }

    /// Copies `data` to `offset` with volatile byte stores; false outside the page.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> bool {
        if offset.checked_add(data.len()).is_none_or(|e| e > PAGE) {
            return false;
        }
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read_bytes`.
            unsafe { ((self.base + offset + i) as *mut u8).write_volatile(b) };
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_outside_the_mapping_range_or_unaligned_are_refused() {
        assert!(SharedPage::at(REGION_START).is_some());
        assert!(SharedPage::at(REGION_END - PAGE).is_some());
        assert!(SharedPage::at(REGION_END).is_none());
        assert!(SharedPage::at(REGION_START - PAGE).is_none());
        assert!(SharedPage::at(REGION_START + 8).is_none());
    }

    #[test]
    fn accesses_past_the_page_are_refused_without_touching_memory() {
        // The page is not mapped in a host test: any access that got through would crash.
        let p = SharedPage::at(REGION_START).unwrap();
        let mut buf = [0u8; 16];
        assert!(!p.read(PAGE - 8, &mut buf));
        assert!(!p.read(0, &mut buf[..3]), "not a whole number of words");
        assert!(!p.write(usize::MAX - 7, &[0; 8]));
        assert!(!p.read_bytes(PAGE - 1, &mut buf[..2]));
        assert!(!p.write_bytes(usize::MAX, &[1]));
        assert_eq!(p.load_u32(PAGE - 2, Ordering::Relaxed), 0);
        assert_eq!(p.swap_u32(3, 1), 0, "unaligned");
        assert!(!p.cas_u32(PAGE, 0, 1));
    }
}
