//! A memory region shared with another PD for the whole run (an sDDF queue or data region),
//! accessed only through atomic and volatile operations: [`SharedRegion`] implements sDDF's
//! `QueueMem` seam, so `sddf`'s queues run over it unchanged.
//!
//! The peer may write the region at any moment, so no Rust reference to its contents ever
//! exists: each access is one operation on a pointer made for it, checked against the region's
//! bounds first. An access outside the region does nothing (loads give 0).

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, Ordering, fence};

use sddf::QueueMem;
use sel4::mem::{REGION_END, REGION_START};

use crate::page::PAGE;

/// A region mapped at a fixed address for the life of the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedRegion {
    base: usize,
    size: usize,
}

impl SharedRegion {
    /// The region of `size` bytes at `base`: `None` unless page-aligned, non-empty and inside
    /// the run-time mapping range.
    ///
    /// The caller names a region that the system description maps into this PD for the whole
    /// run (its generated configuration's `maps`): that is what makes the accesses below sound.
    pub const fn at(base: usize, size: usize) -> Option<SharedRegion> {
        if base < REGION_START || !base.is_multiple_of(PAGE) || size == 0 {
            return None;
        }
        match base.checked_add(size) {
            Some(end) if end <= REGION_END => Some(SharedRegion { base, size }),
            _ => None,
        }
    }

    /// The region the configuration `config` maps from region `name`, writable.
    pub fn of(config: &pd_config::PdConfig, name: &str) -> Option<SharedRegion> {
        let m = config
            .maps
            .iter()
            .find(|m| m.region == name && m.writable)?;
        SharedRegion::at(m.vaddr, m.size)
    }

    /// The address of byte `offset` when `len` bytes from there lie inside the region and
    /// `offset` is a multiple of `align`.
    fn addr(&self, offset: usize, len: usize, align: usize) -> Option<usize> {
        if !offset.is_multiple_of(align) || offset.checked_add(len)? > self.size {
            return None;
        }
        Some(self.base + offset)
    }
}

impl QueueMem for SharedRegion {
    fn size(&self) -> usize {
        self.size
    }

    fn load_u8(&self, offset: usize, order: Ordering) -> u8 {
        self.addr(offset, 1, 1).map_or(0, |a| {
            // SAFETY: inside the region (checked), which stays mapped (see `at`); only atomic or
            // volatile accesses touch it, and the reference lives for this one load.
            unsafe { AtomicU8::from_ptr(a as *mut u8) }.load(order)
        })
    }

    fn store_u8(&self, offset: usize, value: u8, order: Ordering) {
        if let Some(a) = self.addr(offset, 1, 1) {
            // SAFETY: as in `load_u8`.
            unsafe { AtomicU8::from_ptr(a as *mut u8) }.store(value, order);
        }
    }

    fn load_u16(&self, offset: usize, order: Ordering) -> u16 {
        self.addr(offset, 2, 2).map_or(0, |a| {
            // SAFETY: aligned and inside the region; as in `load_u8`.
            unsafe { AtomicU16::from_ptr(a as *mut u16) }.load(order)
        })
    }

    fn store_u16(&self, offset: usize, value: u16, order: Ordering) {
        if let Some(a) = self.addr(offset, 2, 2) {
            // SAFETY: aligned and inside the region; as in `load_u8`.
            unsafe { AtomicU16::from_ptr(a as *mut u16) }.store(value, order);
        }
    }

    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.addr(offset, 4, 4).map_or(0, |a| {
            // SAFETY: aligned and inside the region; as in `load_u8`.
            unsafe { AtomicU32::from_ptr(a as *mut u32) }.load(order)
        })
    }

    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        if let Some(a) = self.addr(offset, 4, 4) {
            // SAFETY: aligned and inside the region; as in `load_u8`.
            unsafe { AtomicU32::from_ptr(a as *mut u32) }.store(value, order);
        }
    }

    fn fence(&self, order: Ordering) {
        if order != Ordering::Relaxed {
            fence(order);
        }
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        let Some(a) = self.addr(offset, buf.len(), 1) else {
            buf.fill(0);
            return;
        };
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the region (checked for the whole copy); a volatile byte load
            // through a raw pointer, no reference formed.
            *b = unsafe { ((a + i) as *const u8).read_volatile() };
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        let Some(a) = self.addr(offset, data.len(), 1) else {
            return;
        };
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read`.
            unsafe { ((a + i) as *mut u8).write_volatile(b) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_outside_the_mapping_range_unaligned_or_empty_are_refused() {
        assert!(SharedRegion::at(REGION_START, PAGE).is_some());
        assert!(SharedRegion::at(REGION_END - PAGE, PAGE).is_some());
        assert!(SharedRegion::at(REGION_END - PAGE, 2 * PAGE).is_none());
        assert!(SharedRegion::at(REGION_START - PAGE, PAGE).is_none());
        assert!(SharedRegion::at(REGION_START + 8, PAGE).is_none());
        assert!(SharedRegion::at(REGION_START, 0).is_none());
        assert!(SharedRegion::at(usize::MAX & !(PAGE - 1), PAGE).is_none());
    }

    #[test]
    fn accesses_past_the_region_are_refused_without_touching_memory() {
        // The region is not mapped in a host test: any access that got through would crash.
        let r = SharedRegion::at(REGION_START, 3 * PAGE).unwrap();
        assert_eq!(QueueMem::size(&r), 3 * PAGE);
        assert_eq!(r.load_u32(3 * PAGE - 2, Ordering::Relaxed), 0);
        assert_eq!(r.load_u16(usize::MAX, Ordering::Relaxed), 0);
        assert_eq!(r.load_u32(3, Ordering::Relaxed), 0, "unaligned");
        r.store_u8(3 * PAGE, 1, Ordering::Relaxed);
        let mut buf = [7u8; 16];
        r.read(3 * PAGE - 8, &mut buf);
        assert_eq!(buf, [0; 16], "a refused read gives zeros");
        r.write(usize::MAX - 3, &[1; 8]);
    }
}
