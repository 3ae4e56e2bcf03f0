//! The `QueueMem` seam: one shared region (a queue or the storage-info page) that the peer may
//! change at any moment.
//!
//! The queue code never forms a Rust reference into shared memory. Indices and flags are loaded
//! and stored as atomics of their exact width with an ordering the caller names; entries are
//! copied in and out as bytes. The seL4 side implements the trait over a mapped region (in the
//! crate that is allowed raw pointers); [`FlatMem`] keeps a region in ordinary atomics for tests
//! and simulations.

use core::sync::atomic::{AtomicU64, Ordering, fence};

/// Memory of one shared region that the peer may change at any moment.
///
/// Offsets are byte offsets from the start of the region. The queue code only ever passes an
/// offset aligned to the access width with the whole access inside [`size`](Self::size) (the
/// queue constructors check the region is large enough for their capacity), so an implementation
/// may panic on anything else: that is a bug in this crate, never something peer data can cause.
/// Implementations must be sound for any concurrent behaviour of the peer; the queue code relies
/// only on the atomicity of each index or flag access and on the orderings it asks for, never on
/// entry bytes staying put between two reads.
pub trait QueueMem {
    /// Size of the region in bytes.
    fn size(&self) -> usize;
    /// Atomically loads the byte at `offset`.
    fn load_u8(&self, offset: usize, order: Ordering) -> u8;
    /// Atomically stores the byte at `offset`.
    fn store_u8(&self, offset: usize, value: u8, order: Ordering);
    /// Atomically loads the 2-aligned `u16` at `offset`.
    fn load_u16(&self, offset: usize, order: Ordering) -> u16;
    /// Atomically stores the 2-aligned `u16` at `offset`.
    fn store_u16(&self, offset: usize, value: u16, order: Ordering);
    /// Atomically loads the 4-aligned `u32` at `offset`.
    fn load_u32(&self, offset: usize, order: Ordering) -> u32;
    /// Atomically stores the 4-aligned `u32` at `offset`.
    fn store_u32(&self, offset: usize, value: u32, order: Ordering);
    /// A memory fence (never `Relaxed`).
    fn fence(&self, order: Ordering);
    /// Copies `buf.len()` bytes out of the region starting at `offset`.
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies `data` into the region starting at `offset`.
    fn write(&self, offset: usize, data: &[u8]);
}

impl<T: QueueMem + ?Sized> QueueMem for &T {
    #[inline]
    fn size(&self) -> usize {
        (**self).size()
    }
    #[inline]
    fn load_u8(&self, offset: usize, order: Ordering) -> u8 {
        (**self).load_u8(offset, order)
    }
    #[inline]
    fn store_u8(&self, offset: usize, value: u8, order: Ordering) {
        (**self).store_u8(offset, value, order);
    }
    #[inline]
    fn load_u16(&self, offset: usize, order: Ordering) -> u16 {
        (**self).load_u16(offset, order)
    }
    #[inline]
    fn store_u16(&self, offset: usize, value: u16, order: Ordering) {
        (**self).store_u16(offset, value, order);
    }
    #[inline]
    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        (**self).load_u32(offset, order)
    }
    #[inline]
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        (**self).store_u32(offset, value, order);
    }
    #[inline]
    fn fence(&self, order: Ordering) {
        (**self).fence(order);
    }
    #[inline]
    fn read(&self, offset: usize, buf: &mut [u8]) {
        (**self).read(offset, buf);
    }
    #[inline]
    fn write(&self, offset: usize, data: &[u8]) {
        (**self).write(offset, data);
    }
}

/// A region held in ordinary atomics: for tests and simulations.
///
/// Byte `i` of the region is byte `i % 8` of word `i / 8` in little-endian order. Every access
/// goes through the word that holds it: a load is a load of the word, a store of less than a
/// whole word is a compare-and-swap loop on the word, so two sides storing different fields of
/// one word (a network queue's `tail` and `head` share its first word) never lose each other's
/// store. Two threads can share one `FlatMem` (it is `Copy`) without `unsafe`.
#[derive(Debug, Clone, Copy)]
pub struct FlatMem<'a> {
    words: &'a [AtomicU64],
}

impl<'a> FlatMem<'a> {
    /// A region over `words` (size = `8 * words.len()` bytes).
    pub const fn new(words: &'a [AtomicU64]) -> Self {
        Self { words }
    }

    /// The number of words a region of `bytes` bytes needs.
    pub const fn words_for(bytes: usize) -> usize {
        bytes.div_ceil(8)
    }

    #[inline]
    fn check(&self, offset: usize, len: usize, align: usize) {
        assert!(
            offset.is_multiple_of(align) && offset <= self.size() && len <= self.size() - offset,
            "flat region access out of range or misaligned"
        );
    }

    #[inline]
    fn load_bits(&self, offset: usize, width: usize, order: Ordering) -> u64 {
        self.check(offset, width, width);
        let word = self.words[offset / 8].load(order);
        let shift = (offset % 8) * 8;
        let mask = if width == 8 {
            u64::MAX
        } else {
            (1u64 << (width * 8)) - 1
        };
        (word >> shift) & mask
    }

    #[inline]
    fn store_bits(&self, offset: usize, width: usize, value: u64, order: Ordering) {
        self.check(offset, width, width);
        assert!(
            !matches!(order, Ordering::Acquire | Ordering::AcqRel),
            "there is no acquire store"
        );
        let word = &self.words[offset / 8];
        if width == 8 {
            word.store(value, order);
            return;
        }
        let shift = (offset % 8) * 8;
        let mask = ((1u64 << (width * 8)) - 1) << shift;
        let fetch = if order == Ordering::SeqCst {
            Ordering::SeqCst
        } else {
            Ordering::Relaxed
        };
        // The closure always returns `Some`, so the update cannot fail.
        let _ = word.fetch_update(order, fetch, |old| {
            Some((old & !mask) | ((value << shift) & mask))
        });
    }
}

impl QueueMem for FlatMem<'_> {
    #[inline]
    fn size(&self) -> usize {
        self.words.len() * 8
    }

    fn load_u8(&self, offset: usize, order: Ordering) -> u8 {
        self.load_bits(offset, 1, order) as u8
    }

    fn store_u8(&self, offset: usize, value: u8, order: Ordering) {
        self.store_bits(offset, 1, u64::from(value), order);
    }

    fn load_u16(&self, offset: usize, order: Ordering) -> u16 {
        self.load_bits(offset, 2, order) as u16
    }

    fn store_u16(&self, offset: usize, value: u16, order: Ordering) {
        self.store_bits(offset, 2, u64::from(value), order);
    }

    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.load_bits(offset, 4, order) as u32
    }

    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        self.store_bits(offset, 4, u64::from(value), order);
    }

    fn fence(&self, order: Ordering) {
        fence(order);
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.check(offset, buf.len(), 1);
        let mut at = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let bytes = self.words[at / 8].load(Ordering::Relaxed).to_le_bytes();
            let start = at % 8;
            let n = rest.len().min(8 - start);
            let (head, tail) = rest.split_at_mut(n);
            head.copy_from_slice(&bytes[start..start + n]);
            rest = tail;
            at += n;
        }
    }

    fn write(&self, offset: usize, data: &[u8]) {
        self.check(offset, data.len(), 1);
        let mut at = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let word = &self.words[at / 8];
            let start = at % 8;
            let n = rest.len().min(8 - start);
            if n == 8 {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&rest[..8]);
                word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
            } else {
                // Part of a word: merge, keeping the bytes around it (they may belong to a field
                // the peer writes).
                let _ = word.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                    let mut bytes = old.to_le_bytes();
                    bytes[start..start + n].copy_from_slice(&rest[..n]);
                    Some(u64::from_le_bytes(bytes))
                });
            }
            rest = &rest[n..];
            at += n;
        }
    }
}
