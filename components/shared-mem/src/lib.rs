//! Ring memory over real mapped pages: the one place the ring buffer touches raw shared memory.
//!
//! A VMBus ring lives in pages the peer (the host, or a client protection domain) can write at any
//! moment. [`MappedRing`] implements the driver's [`RingMem`] seam over such pages given as raw
//! pointers: this is why the crate opts in to `unsafe` (the workspace denies it everywhere else).
//! The rules it keeps:
//!
//! * Every access is an atomic operation through a raw pointer (`AtomicU32` for the header's control
//!   words, relaxed `AtomicU64` for data words, in native byte order so byte `i` of the data area
//!   is the byte at address `data + i`; partial words are loaded whole, or merged with
//!   `fetch_and`/`fetch_or`, so accesses never mix sizes on one location), created for that one
//!   operation. No `&[u8]` or `&T` to non-atomic data in shared memory ever exists, so a concurrent
//!   peer write is never undefined behaviour and never changes a value the compiler assumed
//!   stable; the ring code copies what it needs and validates the copy.
//! * Every data access is bounds-checked against the data size given at construction, so no value
//!   can make this crate touch memory outside the ring.
//! * The tests run under Miri: `cargo +nightly miri test -p shared-mem`.
#![no_std]
#![allow(unsafe_code)]

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use vmbus_driver::ring::{Control, HEADER_SIZE, MAX_DATA_SIZE, MIN_DATA_SIZE, RingMem};

/// Why ring pages were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// The header or the data area is not 8-byte aligned.
    Misaligned,
    /// The data size is not a multiple of 8 in `MIN_DATA_SIZE..=MAX_DATA_SIZE`.
    BadSize(usize),
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned => f.write_str("ring pages are not 8-byte aligned"),
            Self::BadSize(s) => write!(f, "ring data size {s} is unusable"),
        }
    }
}

/// One ring (header page and data area) in mapped shared memory.
#[derive(Debug)]
pub struct MappedRing {
    header: NonNull<u8>,
    data: NonNull<u8>,
    data_size: u32,
}

// SAFETY: every access through the pointers is atomic, so the memory may be used from several
// threads at once; `new`'s contract keeps the mapping alive for the value's lifetime.
unsafe impl Send for MappedRing {}
// SAFETY: as for Send: `&MappedRing` only ever performs atomic accesses.
unsafe impl Sync for MappedRing {}

impl MappedRing {
    /// Ring memory over a header page at `header` and a data area of `data_size` bytes at `data`.
    ///
    /// # Safety
    ///
    /// For as long as the returned value (or anything it is lent to) lives: `header` must be valid
    /// for atomic reads and writes of `HEADER_SIZE` bytes and `data` of `data_size` bytes; the two
    /// regions must not overlap; and nothing in this program may access them except through
    /// atomic operations (the peer, outside the program, may do as it likes).
    pub unsafe fn new(
        header: NonNull<u8>,
        data: NonNull<u8>,
        data_size: usize,
    ) -> Result<Self, MapError> {
        if header.as_ptr().align_offset(8) != 0 || data.as_ptr().align_offset(8) != 0 {
            return Err(MapError::Misaligned);
        }
        let size = u32::try_from(data_size).map_err(|_| MapError::BadSize(data_size))?;
        if !size.is_multiple_of(8) || !(MIN_DATA_SIZE..=MAX_DATA_SIZE).contains(&size) {
            return Err(MapError::BadSize(data_size));
        }
        Ok(Self {
            header,
            data,
            data_size: size,
        })
    }

    /// Ring memory over `ring_size` contiguous bytes at `base`: the header page, then the data
    /// pages (one ring of a channel's GPADL as a protection domain maps it, VMBUS-PROTOCOL.md §5.1).
    ///
    /// # Safety
    ///
    /// As for [`new`](Self::new), for the `ring_size` bytes at `base`.
    pub unsafe fn from_ring_pages(base: NonNull<u8>, ring_size: usize) -> Result<Self, MapError> {
        let data_size = ring_size
            .checked_sub(HEADER_SIZE)
            .ok_or(MapError::BadSize(0))?;
        // SAFETY: the caller promises `ring_size` (> HEADER_SIZE, checked above) valid bytes at
        // `base`, so `base + HEADER_SIZE` is inside (or one past) that allocation.
        let data = unsafe { base.add(HEADER_SIZE) };
        // SAFETY: the two regions are the caller's `ring_size` bytes split at HEADER_SIZE, so they
        // do not overlap and inherit the caller's promise.
        unsafe { Self::new(base, data, data_size) }
    }

    fn control(&self, word: Control) -> &AtomicU32 {
        // SAFETY: `word.offset()` is one of 0, 4, 8, 12, 64: 4-aligned (the header is 8-aligned)
        // and inside the HEADER_SIZE bytes that `new`'s contract keeps valid, and only atomics
        // touch them. The reference lives for one atomic operation of the caller.
        unsafe { AtomicU32::from_ptr(self.header.as_ptr().add(word.offset()).cast::<u32>()) }
    }

    fn data_word(&self, index: usize) -> &AtomicU64 {
        debug_assert!(index < self.data_size as usize / 8);
        // SAFETY: callers check `index * 8 + 8 <= data_size`; the data area is 8-aligned, valid and
        // only accessed atomically (`new`'s contract).
        unsafe { AtomicU64::from_ptr(self.data.as_ptr().add(index * 8).cast::<u64>()) }
    }

    fn check_range(&self, offset: u32, len: usize) -> usize {
        let start = offset as usize;
        assert!(
            start <= self.data_size as usize && len <= self.data_size as usize - start,
            "ring data access out of range"
        );
        start
    }
}

impl RingMem for MappedRing {
    fn data_size(&self) -> u32 {
        self.data_size
    }

    fn load(&self, word: Control, order: Ordering) -> u32 {
        self.control(word).load(order)
    }

    fn store(&self, word: Control, value: u32, order: Ordering) {
        self.control(word).store(value, order);
    }

    fn swap(&self, word: Control, value: u32, order: Ordering) -> u32 {
        self.control(word).swap(value, order)
    }

    fn fence(&self, order: Ordering) {
        fence(order);
    }

    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        let start = self.check_range(offset, buf.len());
        // Word by word: a whole word straight into the buffer, a partial word (unaligned start or
        // end) loaded whole and the wanted bytes taken out.
        let mut pos = start;
        let mut done = 0;
        while done < buf.len() {
            let skip = pos % 8;
            let n = (8 - skip).min(buf.len() - done);
            let word = self
                .data_word(pos / 8)
                .load(Ordering::Relaxed)
                .to_ne_bytes();
            buf[done..done + n].copy_from_slice(&word[skip..skip + n]);
            done += n;
            pos += n;
        }
    }

    fn write_data(&self, offset: u32, data: &[u8]) {
        let start = self.check_range(offset, data.len());
        let mut pos = start;
        let mut done = 0;
        while done < data.len() {
            let skip = pos % 8;
            let n = (8 - skip).min(data.len() - done);
            let word = self.data_word(pos / 8);
            let mut bytes = [0u8; 8];
            bytes[skip..skip + n].copy_from_slice(&data[done..done + n]);
            if n == 8 {
                word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
            } else {
                // Partial word: clear our bytes, then set them, leaving the others as they are
                // (two atomic operations, no retry loop a busy peer could keep failing).
                let mut mask = [0u8; 8];
                mask[skip..skip + n].fill(0xff);
                word.fetch_and(!u64::from_ne_bytes(mask), Ordering::Relaxed);
                word.fetch_or(u64::from_ne_bytes(bytes), Ordering::Relaxed);
            }
            done += n;
            pos += n;
        }
    }
}

#[cfg(test)]
mod tests;
