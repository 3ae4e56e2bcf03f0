//! A ring over heap pages (feature `heap`): real memory behind a [`MappedRing`] for benchmarks and
//! host-side tests, where no mapped pages exist.

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec;
use core::ptr::NonNull;

use super::{MapError, MappedRing};
use vmbus_driver::ring::HEADER_SIZE;

/// A header page and `data_size` data bytes on the heap, zeroed, reached only through the
/// [`MappedRing`] it owns; freed on drop.
#[derive(Debug)]
pub struct HeapRing {
    ring: MappedRing,
    /// Length of the allocation in `u64` words.
    words: usize,
}

impl HeapRing {
    /// Allocates a ring with a data area of `data_size` bytes (a multiple of 8 in
    /// `MIN_DATA_SIZE..=MAX_DATA_SIZE`).
    pub fn new(data_size: usize) -> Result<Self, MapError> {
        let bytes = data_size
            .checked_add(HEADER_SIZE)
            .ok_or(MapError::BadSize(data_size))?;
        if !bytes.is_multiple_of(8) {
            return Err(MapError::BadSize(data_size));
        }
        let words = bytes / 8;
        let raw = Box::into_raw(vec![0u64; words].into_boxed_slice()).cast::<u64>();
        // Never null: it comes from a Box. Checked instead of assumed so no `unsafe` is needed.
        let base = NonNull::new(raw).ok_or(MapError::Misaligned)?.cast::<u8>();
        // SAFETY: the allocation is `bytes` long, 8-aligned, lives until `drop` (after the ring,
        // which is only lent out by reference), and from here on only the ring's atomic accesses
        // and bulk copies touch it.
        match unsafe { MappedRing::from_ring_pages(base, bytes) } {
            Ok(ring) => Ok(Self { ring, words }),
            Err(e) => {
                // SAFETY: just allocated with `words` words; the failed constructor kept nothing.
                unsafe { free(raw, words) };
                Err(e)
            }
        }
    }

    /// The ring memory (`&MappedRing` is itself a `RingMem`).
    pub fn ring(&self) -> &MappedRing {
        &self.ring
    }
}

impl Drop for HeapRing {
    fn drop(&mut self) {
        // SAFETY: `new` allocated `words` words at the header pointer; the ring was only lent
        // by reference, so nothing uses it once we are dropped.
        unsafe { free(self.ring.header.as_ptr().cast::<u64>(), self.words) };
    }
}

/// Frees an allocation made by [`HeapRing::new`].
///
/// # Safety
///
/// `ptr`/`words` came from `Box::into_raw` of a boxed `u64` slice of that length, and nothing
/// uses the memory any more.
unsafe fn free(ptr: *mut u64, words: usize) {
    let slice = core::ptr::slice_from_raw_parts_mut(ptr, words);
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(slice) });
}
