//! The `RingMem` seam: access to one ring's header and data pages, which the peer may change at any
//! moment.
//!
//! The ring code never forms a Rust reference into shared memory. Control words of the header page
//! are loaded and stored as atomics with an explicit ordering chosen by the caller (each call site
//! in the ring code names the operation it pairs with); data bytes are copied in and out. The
//! implementation over real mapped pages lives in the `shared-mem` crate; [`FlatRingMem`] here keeps
//! the ring in ordinary atomics for tests and benchmarks.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Byte offset of the data area from the start of the ring's header page
/// (docs/protocol.md#the-ring-header-page): the header is one page.
pub const HEADER_SIZE: usize = crate::hv::PAGE_SIZE;

/// Smallest data area a ring accepts: room for one minimal packet (16-byte descriptor, 8-byte
/// trailer) plus the 8 bytes that keep a ring from ever becoming completely full.
pub const MIN_DATA_SIZE: u32 = 32;

/// Largest data area a ring accepts. Indices are `u32` byte offsets; this bound keeps every sum of
/// an index and a length below `u32::MAX`.
pub const MAX_DATA_SIZE: u32 = 1 << 30;

/// A 32-bit control word of the ring header page (docs/protocol.md#the-ring-header-page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Offset 0: next byte the producer writes; written by the producer.
    WriteIndex,
    /// Offset 4: next byte the consumer reads; written by the consumer.
    ReadIndex,
    /// Offset 8: 1 = "do not signal me when data arrives"; written by the consumer.
    InterruptMask,
    /// Offset 12: bytes the blocked producer waits for (0 = not waiting); written by the producer.
    PendingSendSz,
    /// Offset 64: feature bits; bit 0 = pending_send_sz supported; written by the producer.
    FeatureBits,
}

impl Control {
    /// Byte offset of the word inside the header page.
    pub const fn offset(self) -> usize {
        match self {
            Self::WriteIndex => 0,
            Self::ReadIndex => 4,
            Self::InterruptMask => 8,
            Self::PendingSendSz => 12,
            Self::FeatureBits => 64,
        }
    }

    /// All control words, in header order.
    pub const ALL: [Self; 5] = [
        Self::WriteIndex,
        Self::ReadIndex,
        Self::InterruptMask,
        Self::PendingSendSz,
        Self::FeatureBits,
    ];
}

/// Memory of one ring (one header page and its data area) that the peer may change at any moment.
///
/// Implementations must be sound for any concurrent behaviour of the peer: the ring code relies
/// only on the atomicity of each control-word access and on the fences, never on data bytes staying
/// put between two reads.
pub trait RingMem {
    /// Size of the data area in bytes: a multiple of 8 in `MIN_DATA_SIZE..=MAX_DATA_SIZE`
    /// (the ring constructors check it).
    fn data_size(&self) -> u32;
    /// Atomically loads a control word.
    fn load(&self, word: Control, order: Ordering) -> u32;
    /// Atomically stores a control word.
    fn store(&self, word: Control, value: u32, order: Ordering);
    /// Atomically swaps a control word, returning the old value.
    fn swap(&self, word: Control, value: u32, order: Ordering) -> u32;
    /// A memory fence (never `Relaxed`), for the protocol's barriers (docs/protocol.md#barriers).
    fn fence(&self, order: Ordering);
    /// Copies `buf.len()` bytes out of the data area starting at `offset`.
    ///
    /// The ring code guarantees `offset + buf.len() <= data_size()`; an implementation panics on a
    /// range outside the data area (a bug in the caller, never something peer data can cause).
    fn read_data(&self, offset: u32, buf: &mut [u8]);
    /// Copies `data` into the data area starting at `offset`; same range contract as `read_data`.
    fn write_data(&self, offset: u32, data: &[u8]);
    /// Loads the 8 data bytes at `offset` as one little-endian word (data byte `offset + i` is
    /// byte `i` of `value.to_le_bytes()`): a descriptor's or trailer's word in one access.
    ///
    /// The ring code guarantees an 8-aligned `offset` with `offset + 8 <= data_size()`. The
    /// default goes through [`read_data`](Self::read_data); memories that hold whole words
    /// override it with one atomic load.
    #[inline]
    fn read_word(&self, offset: u32) -> u64 {
        let mut b = [0u8; 8];
        self.read_data(offset, &mut b);
        u64::from_le_bytes(b)
    }
    /// Stores `value` as the 8 data bytes at `offset`, little-endian; the counterpart of
    /// [`read_word`](Self::read_word), with the same contract.
    #[inline]
    fn write_word(&self, offset: u32, value: u64) {
        self.write_data(offset, &value.to_le_bytes());
    }
}

impl<T: RingMem + ?Sized> RingMem for &T {
    #[inline]
    fn data_size(&self) -> u32 {
        (**self).data_size()
    }
    #[inline]
    fn load(&self, word: Control, order: Ordering) -> u32 {
        (**self).load(word, order)
    }
    #[inline]
    fn store(&self, word: Control, value: u32, order: Ordering) {
        (**self).store(word, value, order);
    }
    #[inline]
    fn swap(&self, word: Control, value: u32, order: Ordering) -> u32 {
        (**self).swap(word, value, order)
    }
    #[inline]
    fn fence(&self, order: Ordering) {
        (**self).fence(order);
    }
    #[inline]
    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        (**self).read_data(offset, buf);
    }
    #[inline]
    fn write_data(&self, offset: u32, data: &[u8]) {
        (**self).write_data(offset, data);
    }
    #[inline]
    fn read_word(&self, offset: u32) -> u64 {
        (**self).read_word(offset)
    }
    #[inline]
    fn write_word(&self, offset: u32, value: u64) {
        (**self).write_word(offset, value);
    }
}

/// The control words of a [`FlatRingMem`]: the fields of the header page the protocol uses.
#[derive(Debug, Default)]
pub struct FlatHeader {
    words: [AtomicU32; 5],
}

impl FlatHeader {
    /// A header with every control word zero.
    pub const fn new() -> Self {
        Self {
            words: [const { AtomicU32::new(0) }; 5],
        }
    }

    #[inline]
    fn word(&self, word: Control) -> &AtomicU32 {
        &self.words[word as usize]
    }
}

/// Ring memory held in ordinary atomics: for tests, benchmarks and simulations.
///
/// The data area is a slice of `AtomicU64` words read and written with relaxed atomics (byte `i` of
/// the data area is byte `i % 8` of word `i / 8` in little-endian order), so the two sides of a
/// ring can live in two threads without `unsafe`; the ring's own fences order them. A `&FlatRingMem`
/// is itself a [`RingMem`], so a writer and a reader can share one.
#[derive(Debug, Clone, Copy)]
pub struct FlatRingMem<'a> {
    header: &'a FlatHeader,
    data: &'a [AtomicU64],
}

impl<'a> FlatRingMem<'a> {
    /// Ring memory over `header` and the data words `data` (data size = `8 * data.len()`).
    ///
    /// The size is checked by the ring constructors, not here, so tests can build rings of any size.
    pub const fn new(header: &'a FlatHeader, data: &'a [AtomicU64]) -> Self {
        Self { header, data }
    }

    #[inline]
    fn word_bytes(&self, index: usize) -> [u8; 8] {
        self.data[index].load(Ordering::Relaxed).to_le_bytes()
    }
}

impl RingMem for FlatRingMem<'_> {
    #[inline]
    fn data_size(&self) -> u32 {
        u32::try_from(self.data.len() * 8).unwrap_or(u32::MAX)
    }

    #[inline]
    fn load(&self, word: Control, order: Ordering) -> u32 {
        self.header.word(word).load(order)
    }

    #[inline]
    fn store(&self, word: Control, value: u32, order: Ordering) {
        self.header.word(word).store(value, order);
    }

    #[inline]
    fn swap(&self, word: Control, value: u32, order: Ordering) -> u32 {
        self.header.word(word).swap(value, order)
    }

    #[inline]
    fn fence(&self, order: Ordering) {
        fence(order);
    }

    #[inline]
    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        let start = offset as usize;
        assert!(
            start <= self.data.len() * 8 && buf.len() <= self.data.len() * 8 - start,
            "ring data read out of range"
        );
        if !start.is_multiple_of(8) {
            return self.read_unaligned(start, buf);
        }
        // The ring code's case: an 8-aligned start. Whole words straight into the buffer, then
        // the first bytes of one more word.
        let (chunks, tail) = buf.as_chunks_mut::<8>();
        let first = start / 8;
        let n = chunks.len();
        load_words(chunks, &self.data[first..first + n]);
        if !tail.is_empty() {
            let bytes = self.word_bytes(first + n);
            let k = tail.len();
            tail.copy_from_slice(&bytes[..k]);
        }
    }

    #[inline]
    fn write_data(&self, offset: u32, data: &[u8]) {
        let start = offset as usize;
        assert!(
            start <= self.data.len() * 8 && data.len() <= self.data.len() * 8 - start,
            "ring data write out of range"
        );
        let (chunks, tail) = data.as_chunks::<8>();
        if !start.is_multiple_of(8) || !tail.is_empty() {
            return self.write_unaligned(start, data);
        }
        // The ring code's case: whole words at an 8-aligned offset.
        let first = start / 8;
        store_words(&self.data[first..first + chunks.len()], chunks);
    }

    #[inline]
    fn read_word(&self, offset: u32) -> u64 {
        // Word `i` holds data bytes `8i..8i + 8` in little-endian order: the word is the value.
        // An unaligned offset is a caller bug; the slice index refuses one past the end.
        debug_assert!(offset.is_multiple_of(8));
        self.data[offset as usize / 8].load(Ordering::Relaxed)
    }

    #[inline]
    fn write_word(&self, offset: u32, value: u64) {
        debug_assert!(offset.is_multiple_of(8));
        self.data[offset as usize / 8].store(value, Ordering::Relaxed);
    }
}

impl FlatRingMem<'_> {
    /// `read_data` from an offset that is not 8-aligned (never used by the ring code itself).
    #[cold]
    fn read_unaligned(&self, start: usize, buf: &mut [u8]) {
        let mut word = start / 8;
        let mut rest = buf;
        let head = start % 8;
        if head != 0 {
            // Unaligned start: take the tail of the first word.
            let bytes = self.word_bytes(word);
            let n = rest.len().min(8 - head);
            let (first, tail) = rest.split_at_mut(n);
            first.copy_from_slice(&bytes[head..head + n]);
            rest = tail;
            word += 1;
        }
        let (chunks, tail) = rest.as_chunks_mut::<8>();
        let n = chunks.len();
        load_words(chunks, &self.data[word..word + n]);
        if !tail.is_empty() {
            let bytes = self.word_bytes(word + n);
            let k = tail.len();
            tail.copy_from_slice(&bytes[..k]);
        }
    }

    /// `write_data` of a partial word at either end (never used by the ring code itself).
    #[cold]
    fn write_unaligned(&self, start: usize, data: &[u8]) {
        let mut word = start / 8;
        let mut rest = data;
        let head = start % 8;
        if head != 0 {
            // Unaligned start: merge into the first word. The other bytes of that word are in the
            // writer's own free space, so rewriting them with their current value loses nothing.
            let mut bytes = self.word_bytes(word);
            let n = rest.len().min(8 - head);
            bytes[head..head + n].copy_from_slice(&rest[..n]);
            self.data[word].store(u64::from_le_bytes(bytes), Ordering::Relaxed);
            rest = &rest[n..];
            word += 1;
        }
        let (chunks, tail) = rest.as_chunks::<8>();
        let n = chunks.len();
        store_words(&self.data[word..word + n], chunks);
        if !tail.is_empty() {
            let mut bytes = self.word_bytes(word + n);
            bytes[..tail.len()].copy_from_slice(tail);
            self.data[word + n].store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
    }
}

/// Copies `src.len()` data words (relaxed loads) into `dst`, which has the same length.
///
/// Four words per step: relaxed atomics are never merged into wider accesses, so the unrolled
/// body is what keeps the loop at about one load and one store per word rather than paying the
/// loop overhead on every word.
#[inline(always)]
fn load_words(dst: &mut [[u8; 8]], src: &[AtomicU64]) {
    let (d4, d1) = dst.as_chunks_mut::<4>();
    let (s4, s1) = src.as_chunks::<4>();
    for (d, s) in d4.iter_mut().zip(s4) {
        d[0] = s[0].load(Ordering::Relaxed).to_le_bytes();
        d[1] = s[1].load(Ordering::Relaxed).to_le_bytes();
        d[2] = s[2].load(Ordering::Relaxed).to_le_bytes();
        d[3] = s[3].load(Ordering::Relaxed).to_le_bytes();
    }
    for (d, s) in d1.iter_mut().zip(s1) {
        *d = s.load(Ordering::Relaxed).to_le_bytes();
    }
}

/// Stores `src` into `dst.len()` data words (relaxed stores); the lengths are equal.
#[inline(always)]
fn store_words(dst: &[AtomicU64], src: &[[u8; 8]]) {
    let (d4, d1) = dst.as_chunks::<4>();
    let (s4, s1) = src.as_chunks::<4>();
    for (d, s) in d4.iter().zip(s4) {
        d[0].store(u64::from_le_bytes(s[0]), Ordering::Relaxed);
        d[1].store(u64::from_le_bytes(s[1]), Ordering::Relaxed);
        d[2].store(u64::from_le_bytes(s[2]), Ordering::Relaxed);
        d[3].store(u64::from_le_bytes(s[3]), Ordering::Relaxed);
    }
    for (d, s) in d1.iter().zip(s1) {
        d.store(u64::from_le_bytes(*s), Ordering::Relaxed);
    }
}
