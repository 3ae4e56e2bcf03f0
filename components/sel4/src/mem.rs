//! Volatile access to pages mapped at run time (shared rings, granted windows, scratch pages).
//!
//! Such pages are never Rust objects: they appear, change and vanish under the program (a peer
//! writes them, a revoke unmaps them). The image reserves the virtual range
//! [`REGION_START`, `REGION_END`) for them in every address space: program segments, stacks and
//! IPC buffers lie below it. The range lies below 4 GiB because seL4 5.0.0 reports the address
//! of a VM fault in 32 bits on x86-64 (`handleVMFault` stores it in a `uint32_t`), and a fault
//! in a revoked window must be attributable to that window. A [`Region`] can only be made inside that range, and it is accessed
//! only through volatile reads and writes, so no Rust reference ever points at it; an access to a
//! page that is not mapped is a page fault for the system to handle, not undefined behaviour.

/// First address of the run-time mapping range.
pub const REGION_START: usize = 0x2000_0000;
/// First address after it.
pub const REGION_END: usize = 0x1_0000_0000;

/// A byte range of the run-time mapping range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    base: usize,
    len: usize,
}

impl Region {
    /// The range `[base, base + len)`, if it lies inside the run-time mapping range and is
    /// 8-byte aligned.
    pub fn new(base: usize, len: usize) -> Option<Region> {
        let end = base.checked_add(len)?;
        (base >= REGION_START && end <= REGION_END && base.is_multiple_of(8))
            .then_some(Region { base, len })
    }

    /// Start address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn ptr(&self, offset: usize, size: usize) -> Option<*mut u8> {
        (offset.checked_add(size)? <= self.len).then(|| (self.base + offset) as *mut u8)
    }

    /// Reads the 64-bit word at `offset` (8-byte aligned), or `None` outside the region.
    pub fn read_u64(&self, offset: usize) -> Option<u64> {
        let p = self.ptr(offset, 8).filter(|_| offset.is_multiple_of(8))?;
        // SAFETY: inside the reserved range (module docs), aligned, no reference formed; an
        // unmapped page faults and is handled by the system.
        Some(unsafe { p.cast::<u64>().read_volatile() })
    }

    /// Writes the 64-bit word at `offset` (8-byte aligned); false outside the region.
    pub fn write_u64(&self, offset: usize, value: u64) -> bool {
        let Some(p) = self.ptr(offset, 8).filter(|_| offset.is_multiple_of(8)) else {
            return false;
        };
        // SAFETY: as in `read_u64`.
        unsafe { p.cast::<u64>().write_volatile(value) };
        true
    }

    /// Copies bytes in (at `offset`); false if they do not fit.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> bool {
        let Some(p) = self.ptr(offset, data.len()) else {
            return false;
        };
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read_u64`; i < data.len() keeps the pointer inside the region.
            unsafe { p.add(i).write_volatile(b) };
        }
        true
    }

    /// Copies bytes out (from `offset`); false if the range leaves the region.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) -> bool {
        let Some(p) = self.ptr(offset, out.len()) else {
            return false;
        };
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: as in `write_bytes`.
            *b = unsafe { p.add(i).read_volatile() };
        }
        true
    }

    /// Zeroes the whole region.
    pub fn zero(&self) {
        for off in (0..self.len / 8).map(|i| i * 8) {
            self.write_u64(off, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_outside_the_reserved_range_are_refused() {
        assert!(Region::new(0x40_0000, 4096).is_none());
        assert!(Region::new(REGION_END - 4096, 8192).is_none());
        assert!(Region::new(usize::MAX - 8, 64).is_none());
        assert!(Region::new(REGION_START + 1, 8).is_none());
        assert!(Region::new(REGION_START, 4096).is_some());
    }

    #[test]
    fn accesses_past_the_end_are_refused_without_touching_memory() {
        let r = Region::new(REGION_START, 16).unwrap();
        assert_eq!(r.read_u64(16), None);
        assert_eq!(r.read_u64(9), None);
        assert!(!r.write_u64(usize::MAX - 3, 1));
        assert!(!r.write_bytes(10, &[0; 7]));
        let mut buf = [0; 17];
        assert!(!r.read_bytes(0, &mut buf));
    }
}
