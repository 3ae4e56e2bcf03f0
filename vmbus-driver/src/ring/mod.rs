//! VMBus ring buffer over shared memory that a hostile peer may change at any moment
//! (docs/protocol.md#ring-buffers).
//!
//! A channel has two rings, each a header page plus data pages: the guest produces into the
//! outbound ring with a [`RingWriter`] and consumes the inbound ring with a [`RingReader`]. Both
//! reach their ring only through the [`RingMem`] seam: control words as atomics, data copied in
//! and out, never a Rust reference into shared memory. Each side keeps its own index in a local
//! variable and only ever stores it; the peer's index is loaded once per batch, checked (in range,
//! 8-aligned) and then only the checked copy is used. Every descriptor is copied out and checked
//! before use. Bad peer data yields [`RingError::Corrupt`], after which the owner marks the channel
//! broken; no peer value can make this code panic, index out of bounds or loop without end (every
//! packet consumes at least 24 bytes of a bounded count).
//!
//! # Signalling model: why no wake-up is lost
//!
//! Two waits exist, each closed by a pair of full (`SeqCst`) fences in the Dekker pattern: each
//! side stores its own word, fences, then loads the other side's word, so at least one of the two
//! sees the other's store.
//!
//! * **Consumer waits for data.** The producer stores `write_index`, fences, loads
//!   `interrupt_mask`, then loads `read_index` and signals only if the mask is clear and
//!   `read_index` equals its previous `write_index` (the ring was empty before the write; Hyper-V
//!   throttles guests that signal otherwise, docs/protocol.md#producer-when-to-signal). Before
//!   sleeping the consumer stores
//!   `interrupt_mask = 0` (after publishing its `read_index`), fences, and re-checks
//!   `write_index` ([`RingReader::enable_interrupts`]). If the producer's fence comes first in the
//!   fence order, the consumer's re-check sees the new packet and keeps draining. Otherwise the
//!   producer sees the clear mask and the consumer's final `read_index`; if that equals the old
//!   `write_index` it signals. If it does not, the consumer had not yet published the consumption
//!   of earlier packets when the producer looked, so its later re-check (after its fence, which is
//!   then ordered after the producer's) sees the new `write_index`. Either way the packet is read.
//!   While the consumer polls it keeps `interrupt_mask = 1` ([`RingReader::disable_interrupts`])
//!   and the producer sends no signal at all.
//! * **Producer waits for space.** If the peer advertised feature bit 0, the blocked producer
//!   stores `pending_send_sz`, fences and re-reads `read_index`
//!   ([`RingWriter::request_space`]); the consumer stores `read_index`, fences and loads
//!   `pending_send_sz`, signalling on the transition from "free <= pending" to "free > pending"
//!   (docs/protocol.md#consumer-when-to-signal step 5, the value masked with `!7`). Either the producer's re-check sees the freed
//!   space, or the consumer sees the request. Only the transition signals, so a consumer that frees
//!   space in many small steps signals once; a producer that stops waiting clears the word.
//!
//! The loom model in `tests/ring_loom.rs` checks both arguments over every interleaving the memory
//! model allows.

mod mem;
mod packet;
mod reader;
mod writer;

use core::fmt;
use core::sync::atomic::Ordering;

pub use mem::{
    Control, FlatHeader, FlatRingMem, HEADER_SIZE, MAX_DATA_SIZE, MIN_DATA_SIZE, RingMem,
};
pub use packet::{
    DESCRIPTOR_LEN, Descriptor, FLAG_COMPLETION_REQUESTED, GpaRange, MAX_PACKET_LEN, PacketType,
    TRAILER_LEN, TransferRange,
};
pub use reader::{PacketView, ReadBatch, ReadOutcome, RingReader};
pub use writer::{CommitOutcome, RingWriter, SpaceWait, WriteBatch};

/// Feature bit 0 of a ring header: the producer sets `pending_send_sz` when blocked and honours
/// the peer's `pending_send_sz` in the opposite ring.
pub const FEATURE_PENDING_SEND_SZ: u32 = 1;

/// What in the peer's ring data was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// An index read from the header is not below the data size.
    IndexOutOfRange(u32),
    /// An index read from the header is not a multiple of 8.
    IndexMisaligned(u32),
    /// Fewer bytes are readable than a descriptor and trailer need.
    Truncated(u32),
    /// A descriptor's `offset8` is below 2 (the payload would overlap the descriptor).
    PayloadOffsetTooSmall(u16),
    /// A descriptor's `len8` is below its `offset8`.
    LengthBelowOffset {
        /// The descriptor's `offset8`.
        offset8: u16,
        /// The descriptor's `len8`.
        len8: u16,
    },
    /// A packet (with its trailer) extends past the peer's write index.
    PastWriteIndex {
        /// Packet length with trailer.
        needed: u32,
        /// Bytes readable.
        available: u32,
    },
    /// A descriptor names a packet type outside 0x1..=0xD.
    UnknownType(u16),
    /// A descriptor sets flag bits other than bit 0.
    ReservedFlags(u16),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IndexOutOfRange(i) => write!(f, "ring index {i} is outside the data area"),
            Self::IndexMisaligned(i) => write!(f, "ring index {i} is not a multiple of 8"),
            Self::Truncated(n) => write!(f, "only {n} readable bytes, too few for a packet"),
            Self::PayloadOffsetTooSmall(o) => write!(f, "payload offset8 {o} is below 2"),
            Self::LengthBelowOffset { offset8, len8 } => {
                write!(f, "packet len8 {len8} is below its offset8 {offset8}")
            }
            Self::PastWriteIndex { needed, available } => write!(
                f,
                "packet of {needed} bytes runs past the write index ({available} readable)"
            ),
            Self::UnknownType(t) => write!(f, "unknown packet type {t:#x}"),
            Self::ReservedFlags(fl) => write!(f, "reserved packet flags set ({fl:#x})"),
        }
    }
}

/// Why a ring operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The ring has no packet to read.
    Empty,
    /// The packet does not fit in the free space now; it may later.
    Full,
    /// The packet can never fit: longer than the data size less 8, or than `len8` can describe.
    TooBig,
    /// A GPA-direct packet had no range, or a range that is empty, starts outside its first page
    /// or lists the wrong number of pages.
    BadRange,
    /// The ring memory's data size is not a multiple of 8 in `MIN_DATA_SIZE..=MAX_DATA_SIZE`.
    BadSize(u32),
    /// A read asked for bytes past the end of a packet's payload or extended descriptor.
    OutOfPacket,
    /// The peer wrote something invalid into the ring; the channel must be treated as broken.
    Corrupt(Corruption),
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("ring is empty"),
            Self::Full => f.write_str("not enough free space in the ring"),
            Self::TooBig => f.write_str("packet can never fit in this ring"),
            Self::BadRange => f.write_str("malformed GPA-direct page range"),
            Self::BadSize(s) => write!(f, "ring data size {s} is unusable"),
            Self::OutOfPacket => f.write_str("read past the end of the packet"),
            Self::Corrupt(c) => write!(f, "peer corrupted the ring: {c}"),
        }
    }
}

/// Resets a ring header before the channel is opened (docs/protocol.md#the-ring-header-page): both
/// indices, the interrupt mask and `pending_send_sz` zero, `feature_bits` as given (the guest sets
/// [`FEATURE_PENDING_SEND_SZ`]).
pub fn init_ring<M: RingMem>(mem: &M, feature_bits: u32) {
    // Relaxed: the peer does not look at the ring before OPENCHANNEL, whose message send orders
    // these stores before anything the host does.
    mem.store(Control::WriteIndex, 0, Ordering::Relaxed);
    mem.store(Control::ReadIndex, 0, Ordering::Relaxed);
    mem.store(Control::InterruptMask, 0, Ordering::Relaxed);
    mem.store(Control::PendingSendSz, 0, Ordering::Relaxed);
    mem.store(Control::FeatureBits, feature_bits, Ordering::Relaxed);
}

/// Checks that a ring memory's data size is usable.
#[inline]
fn checked_size<M: RingMem>(mem: &M) -> Result<u32, RingError> {
    let size = mem.data_size();
    if !size.is_multiple_of(8) || !(MIN_DATA_SIZE..=MAX_DATA_SIZE).contains(&size) {
        return Err(RingError::BadSize(size));
    }
    Ok(size)
}

/// Checks an index loaded from the header: below `size` and 8-aligned
/// (docs/protocol.md#ring-placement-in-the-gpadl).
#[inline]
fn checked_index(index: u32, size: u32) -> Result<u32, RingError> {
    if index >= size {
        Err(RingError::Corrupt(Corruption::IndexOutOfRange(index)))
    } else if !index.is_multiple_of(8) {
        Err(RingError::Corrupt(Corruption::IndexMisaligned(index)))
    } else {
        Ok(index)
    }
}

/// Bytes between `from` and `to` going forward around a ring of `size` (both below `size`).
#[inline]
fn distance(from: u32, to: u32, size: u32) -> u32 {
    if to >= from {
        to - from
    } else {
        size - from + to
    }
}

/// `pos + n` around a ring of `size` (`pos < size`, `n <= size`).
#[inline]
fn advance(pos: u32, n: u32, size: u32) -> u32 {
    let rest = size - pos;
    if n < rest { pos + n } else { n - rest }
}

/// Copies ring bytes starting at `pos` into `buf`, wrapping at the end of the data area.
/// `pos < size` and `buf.len() <= size`.
#[inline]
fn copy_out<M: RingMem>(mem: &M, size: u32, pos: u32, buf: &mut [u8]) {
    let first = (size - pos) as usize;
    if buf.len() <= first {
        mem.read_data(pos, buf);
    } else {
        let (a, b) = buf.split_at_mut(first);
        mem.read_data(pos, a);
        mem.read_data(0, b);
    }
}

/// Copies `data` into the ring starting at `pos`, wrapping; same contract as [`copy_out`].
#[inline]
fn copy_in<M: RingMem>(mem: &M, size: u32, pos: u32, data: &[u8]) {
    let first = (size - pos) as usize;
    if data.len() <= first {
        mem.write_data(pos, data);
    } else {
        let (a, b) = data.split_at(first);
        mem.write_data(pos, a);
        mem.write_data(0, b);
    }
}
