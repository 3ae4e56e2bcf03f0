//! Ring memory over real mapped pages: the one place the ring buffer touches raw shared memory.
//!
//! A VMBus ring lives in pages the peer (the host, or a client protection domain) can write at any
//! moment. [`MappedRing`] implements the driver's [`RingMem`] seam over such pages given as raw
//! pointers: this is why the crate opts in to `unsafe` (the workspace denies it everywhere else).
//! The rules it keeps:
//!
//! * No `&[u8]` or `&T` to non-atomic data in shared memory ever exists, so a concurrent peer
//!   write never changes a value the compiler assumed stable; the ring code copies what it needs
//!   once and validates the copy. Control words of the header are `AtomicU32` operations through
//!   a raw pointer, created for that one operation.
//! * Data is copied by one of three primitives: relaxed `AtomicU64` word loads and stores (native
//!   byte order, so byte `i` of the data area is the byte at address `data + i`; partial words
//!   are loaded whole, or merged with `fetch_and`/`fetch_or`, never a retry loop), and on x86-64
//!   for copies of 1 KiB or more, one `rep movsb` (`string_copy`), and with SSE2, for shorter
//!   long or unaligned copies, a 16-byte-move copy loop (`bulk_copy`), both in `asm!` blocks,
//!   which move a 4 KiB payload at memcpy speed where word-sized atomics cannot (see
//!   `bulk_copy` for why a racing peer can only produce bytes that validation then sees). Miri
//!   cannot run inline assembly, so under Miri (and on other targets) the word copies serve
//!   every access.
//! * Every data access is bounds-checked against the data size given at construction, so no value
//!   can make this crate touch memory outside the ring.
//! * The tests run under Miri: `cargo +nightly-2026-05-20 miri test -p shared-mem --features heap`
//!   (the nightly `cargo xtask test` pins).
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
    /// atomic operations or this crate's bulk copies, which act as relaxed atomic byte copies
    /// (the peer, outside the program, may do as it likes).
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
    /// pages (one ring of a channel's GPADL as a protection domain maps it,
    /// docs/protocol.md#ring-placement-in-the-gpadl).
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

    #[inline]
    fn control(&self, word: Control) -> &AtomicU32 {
        // SAFETY: `word.offset()` is one of 0, 4, 8, 12, 64: 4-aligned (the header is 8-aligned)
        // and inside the HEADER_SIZE bytes that `new`'s contract keeps valid, and only atomics
        // touch them. The reference lives for one atomic operation of the caller.
        unsafe { AtomicU32::from_ptr(self.header.as_ptr().add(word.offset()).cast::<u32>()) }
    }

    #[inline]
    fn data_word(&self, index: usize) -> &AtomicU64 {
        debug_assert!(index < self.data_size as usize / 8);
        // SAFETY: callers check `index * 8 + 8 <= data_size`; the data area is 8-aligned, valid and
        // only accessed atomically (`new`'s contract).
        unsafe { AtomicU64::from_ptr(self.data.as_ptr().add(index * 8).cast::<u64>()) }
    }

    /// The index of the data word at `offset`, which must be 8-aligned with the word inside the
    /// data area (a caller bug otherwise, never something peer data can cause: panics).
    #[inline]
    fn word_index(&self, offset: u32) -> usize {
        assert!(
            offset.is_multiple_of(8) && offset < self.data_size,
            "ring data word access out of range"
        );
        offset as usize / 8
    }

    #[inline]
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
    #[inline]
    fn data_size(&self) -> u32 {
        self.data_size
    }

    #[inline]
    fn load(&self, word: Control, order: Ordering) -> u32 {
        self.control(word).load(order)
    }

    #[inline]
    fn store(&self, word: Control, value: u32, order: Ordering) {
        self.control(word).store(value, order);
    }

    #[inline]
    fn swap(&self, word: Control, value: u32, order: Ordering) -> u32 {
        self.control(word).swap(value, order)
    }

    #[inline]
    fn fence(&self, order: Ordering) {
        fence(order);
    }

    #[inline]
    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        let start = self.check_range(offset, buf.len());
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if buf.len() >= STRING_COPY_MIN {
            // SAFETY: as for `bulk_copy` below.
            unsafe { string_copy(buf.as_mut_ptr(), self.data.as_ptr().add(start), buf.len()) };
            return;
        }
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(miri)))]
        if use_bulk_copy(start, buf.len()) {
            // SAFETY: `check_range` put `start .. start + buf.len()` inside the data area, which
            // `new`'s contract keeps valid; `buf` is our own exclusive buffer and cannot overlap
            // the shared pages (the contract forbids any reference into them).
            unsafe { bulk_copy(buf.as_mut_ptr(), self.data.as_ptr().add(start), buf.len()) };
            return;
        }
        self.read_words(start, buf);
    }

    #[inline]
    fn write_data(&self, offset: u32, data: &[u8]) {
        let start = self.check_range(offset, data.len());
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        if data.len() >= STRING_COPY_MIN {
            // SAFETY: as for `bulk_copy` below.
            unsafe { string_copy(self.data.as_ptr().add(start), data.as_ptr(), data.len()) };
            return;
        }
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(miri)))]
        if use_bulk_copy(start, data.len()) {
            // SAFETY: as in `read_data`, with the roles of the two regions swapped.
            unsafe { bulk_copy(self.data.as_ptr().add(start), data.as_ptr(), data.len()) };
            return;
        }
        self.write_words(start, data);
    }

    #[inline]
    fn read_word(&self, offset: u32) -> u64 {
        let index = self.word_index(offset);
        // Native order in memory, little-endian by contract: a no-op on x86.
        u64::from_le(self.data_word(index).load(Ordering::Relaxed))
    }

    #[inline]
    fn write_word(&self, offset: u32, value: u64) {
        let index = self.word_index(offset);
        self.data_word(index)
            .store(value.to_le(), Ordering::Relaxed);
    }
}

impl MappedRing {
    /// `read_data` by relaxed atomic word loads: short copies, and every copy where no bulk
    /// copy exists (other architectures, Miri).
    #[inline]
    fn read_words(&self, start: usize, buf: &mut [u8]) {
        if start.is_multiple_of(8) {
            // The ring code's case: 8-aligned. Whole words, unrolled by four (atomics are never
            // merged into wider accesses, so the loop overhead would otherwise be per word).
            let (chunks, tail) = buf.as_chunks_mut::<8>();
            let first = start / 8;
            let n = chunks.len();
            let (c4, c1) = chunks.as_chunks_mut::<4>();
            for (k, c) in c4.iter_mut().enumerate() {
                let w = first + 4 * k;
                c[0] = self.data_word(w).load(Ordering::Relaxed).to_ne_bytes();
                c[1] = self.data_word(w + 1).load(Ordering::Relaxed).to_ne_bytes();
                c[2] = self.data_word(w + 2).load(Ordering::Relaxed).to_ne_bytes();
                c[3] = self.data_word(w + 3).load(Ordering::Relaxed).to_ne_bytes();
            }
            let done = first + 4 * c4.len();
            for (k, c) in c1.iter_mut().enumerate() {
                *c = self
                    .data_word(done + k)
                    .load(Ordering::Relaxed)
                    .to_ne_bytes();
            }
            if !tail.is_empty() {
                let word = self
                    .data_word(first + n)
                    .load(Ordering::Relaxed)
                    .to_ne_bytes();
                let k = tail.len();
                tail.copy_from_slice(&word[..k]);
            }
            return;
        }
        // Word by word: a partial word (unaligned start or end) loaded whole and the wanted
        // bytes taken out.
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

    /// `write_data` by relaxed atomic word stores; the counterpart of [`read_words`](Self::read_words).
    #[inline]
    fn write_words(&self, start: usize, data: &[u8]) {
        let (chunks, tail) = data.as_chunks::<8>();
        if start.is_multiple_of(8) && tail.is_empty() {
            let first = start / 8;
            let (c4, c1) = chunks.as_chunks::<4>();
            for (k, c) in c4.iter().enumerate() {
                let w = first + 4 * k;
                self.data_word(w)
                    .store(u64::from_ne_bytes(c[0]), Ordering::Relaxed);
                self.data_word(w + 1)
                    .store(u64::from_ne_bytes(c[1]), Ordering::Relaxed);
                self.data_word(w + 2)
                    .store(u64::from_ne_bytes(c[2]), Ordering::Relaxed);
                self.data_word(w + 3)
                    .store(u64::from_ne_bytes(c[3]), Ordering::Relaxed);
            }
            let done = first + 4 * c4.len();
            for (k, c) in c1.iter().enumerate() {
                self.data_word(done + k)
                    .store(u64::from_ne_bytes(*c), Ordering::Relaxed);
            }
            return;
        }
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

/// Whether this target has the bulk copy: x86-64 with SSE2 (every x86-64 Linux target; not the
/// kernel-style `x86_64-unknown-none`, which turns SSE off), outside Miri (which cannot run inline
/// assembly). Elsewhere the word copies serve every access.
macro_rules! bulk_copy_cfg {
    ($($item:item)*) => {
        $(#[cfg(all(target_arch = "x86_64", target_feature = "sse2", not(miri)))] $item)*
    };
}

bulk_copy_cfg! {
    /// Aligned whole-word copies shorter than this go word by word (descriptors, trailers, small
    /// payloads): a few word moves beat the set-up of the bulk loop.
    const BULK_MIN: usize = 64;

    /// Whether a copy of `len` bytes at data offset `start` uses [`bulk_copy`]: long ones, and
    /// the ones with a partial word (which word copies must merge).
    #[inline]
    fn use_bulk_copy(start: usize, len: usize) -> bool {
        len >= BULK_MIN || !start.is_multiple_of(8) || !len.is_multiple_of(8)
    }

    /// Copies `len` bytes from `src` to `dst` in an `asm!` block: 64 bytes per step through four
    /// 16-byte SSE registers, then 16, then 8 bytes per step, then single bytes. One of the two
    /// regions is the shared ring, the other our own buffer. Word-sized atomics move 8 bytes per
    /// store; this moves 16.
    ///
    /// Why this is sound although the peer may write the shared bytes during the copy: the block
    /// is opaque to the compiler, so there is no Rust-level assumption about the shared bytes
    /// (that they stay put, or are read once) for a racing peer to break. What it does is plain
    /// loads and stores, each byte of which the processor reads or writes indivisibly: the effect
    /// of a sequence of relaxed atomic byte copies (a 16-byte move may tear between its bytes,
    /// which such a sequence may too). A peer racing the copy can therefore only make us read a
    /// mix of old and new bytes (arbitrary but initialised `u8`s in our own buffer, which the ring
    /// code copies once and then validates) or overwrite what we wrote in the area it must not
    /// touch yet (which only garbles its own packets). Ordering: the block is a compiler memory
    /// barrier (no `nomem`/`readonly` option), and its loads and stores are ordinary x86 accesses
    /// (no non-temporal moves, no string operations), so x86's ordering keeps them before the
    /// Release store of the index that publishes (writer) or frees (reader) them, exactly like
    /// the word copies they replace, and after an earlier Acquire load.
    ///
    /// # Safety
    ///
    /// `src` valid for reads and `dst` for writes of `len` bytes; the regions do not overlap.
    #[inline]
    unsafe fn bulk_copy(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller provides valid, non-overlapping regions of `len` bytes; the block
        // touches exactly `src .. src + len` and `dst .. dst + len` and declares every register
        // it changes (flags included: no `preserves_flags`).
        unsafe {
            core::arch::asm!(
                "cmp rcx, 64",
                "jb 3f",
                "2:",
                "movdqu {a}, xmmword ptr [rsi]",
                "movdqu {b}, xmmword ptr [rsi + 16]",
                "movdqu {c}, xmmword ptr [rsi + 32]",
                "movdqu {d}, xmmword ptr [rsi + 48]",
                "movdqu xmmword ptr [rdi], {a}",
                "movdqu xmmword ptr [rdi + 16], {b}",
                "movdqu xmmword ptr [rdi + 32], {c}",
                "movdqu xmmword ptr [rdi + 48], {d}",
                "add rsi, 64",
                "add rdi, 64",
                "sub rcx, 64",
                "cmp rcx, 64",
                "jae 2b",
                "3:",
                "cmp rcx, 16",
                "jb 4f",
                "movdqu {a}, xmmword ptr [rsi]",
                "movdqu xmmword ptr [rdi], {a}",
                "add rsi, 16",
                "add rdi, 16",
                "sub rcx, 16",
                "jmp 3b",
                "4:",
                "cmp rcx, 8",
                "jb 5f",
                "mov {w}, qword ptr [rsi]",
                "mov qword ptr [rdi], {w}",
                "add rsi, 8",
                "add rdi, 8",
                "sub rcx, 8",
                "5:",
                "test rcx, rcx",
                "jz 7f",
                "6:",
                "mov {wb}, byte ptr [rsi]",
                "mov byte ptr [rdi], {wb}",
                "inc rsi",
                "inc rdi",
                "dec rcx",
                "jnz 6b",
                "7:",
                inout("rcx") len => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                w = out(reg) _,
                wb = out(reg_byte) _,
                a = out(xmm_reg) _,
                b = out(xmm_reg) _,
                c = out(xmm_reg) _,
                d = out(xmm_reg) _,
                options(nostack),
            );
        }
    }
}

/// Whether this target has the string copy: any x86-64 (the string move needs no SSE, so the
/// image's `x86_64-unknown-none` programs have it too), outside Miri.
macro_rules! string_copy_cfg {
    ($($item:item)*) => {
        $(#[cfg(all(target_arch = "x86_64", not(miri)))] $item)*
    };
}

string_copy_cfg! {
    /// Copies of at least this many bytes go by [`string_copy`]: on processors with fast string
    /// moves (ERMS, FSRM) one `rep movsb` moves whole lines at a time, where the SSE loop needs a
    /// step per 16 bytes and word copies one per 8; below it the string move's start-up costs
    /// more than it saves (docs/performance.md: a 256-byte packet 1.4x slower by string move, a
    /// 4 KiB one 25% faster).
    const STRING_COPY_MIN: usize = 1024;

    /// Copies `len` bytes from `src` to `dst` with one `rep movsb`. One of the two regions is the
    /// shared ring, the other our own buffer.
    ///
    /// Sound with a racing peer for the reasons given at [`bulk_copy`]: the block is opaque to
    /// the compiler and a compiler memory barrier, and each byte is read or written indivisibly,
    /// so a race yields only arbitrary initialised bytes that validation then sees. Ordering: x86
    /// may perform the stores *within* one fast string move out of order among themselves, but
    /// never after a store that follows the instruction (Intel SDM vol. 3, "Fast-String
    /// Operation and Out-of-Order Stores"); the Release store of the index that publishes
    /// (writer) or frees (reader) the bytes is such a later, separate store, and loads are not
    /// reordered with later stores. The direction flag is clear on entry, as the ABI guarantees,
    /// so the move runs upwards through exactly `len` bytes.
    ///
    /// # Safety
    ///
    /// `src` valid for reads and `dst` for writes of `len` bytes; the regions do not overlap.
    #[inline]
    unsafe fn string_copy(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller provides valid, non-overlapping regions of `len` bytes; `rep movsb`
        // touches exactly `src .. src + len` and `dst .. dst + len`, and the three registers it
        // changes are declared.
        unsafe {
            core::arch::asm!(
                "rep movsb",
                inout("rcx") len => _,
                inout("rsi") src => _,
                inout("rdi") dst => _,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(feature = "heap")]
mod heap;
#[cfg(feature = "heap")]
pub use heap::HeapRing;

#[cfg(test)]
mod tests;
