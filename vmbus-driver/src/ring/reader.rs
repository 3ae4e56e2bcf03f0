//! The consumer side of a ring (docs/protocol.md#consumer-when-to-signal): validation of the peer's
//! write index and of every descriptor, batched reads in place with one read-index publish,
//! `pending_send_sz` transition signalling and the interrupt mask.

use core::sync::atomic::Ordering;

use super::mem::{Control, RingMem};
use super::packet::{
    DESCRIPTOR_LEN, Descriptor, FLAG_COMPLETION_REQUESTED, PacketType, TRAILER_LEN,
};
use super::{
    Corruption, FEATURE_PENDING_SEND_SZ, RingError, advance, checked_index, checked_size, copy_out,
    distance,
};

/// Result of committing a [`ReadBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Packets consumed.
    pub packets: u32,
    /// Ring bytes freed (packets with trailers).
    pub bytes: u32,
    /// The producer waits for space and this commit freed enough of it: signal it
    /// (docs/protocol.md#consumer-when-to-signal step 5).
    pub signal: bool,
}

/// The consumer side of one ring.
#[derive(Debug)]
pub struct RingReader<M: RingMem> {
    mem: M,
    size: u32,
    /// The read index we published last; never re-read from shared memory.
    read_index: u32,
}

impl<M: RingMem> RingReader<M> {
    /// A reader over `mem`, continuing from the read index found in its header (zero after
    /// [`init_ring`](super::init_ring)).
    pub fn new(mem: M) -> Result<Self, RingError> {
        let size = checked_size(&mem)?;
        // Relaxed: we are the only writer of this word; whoever initialised it handed the ring to
        // us through a synchronising operation.
        let read_index = checked_index(mem.load(Control::ReadIndex, Ordering::Relaxed), size)?;
        Ok(Self {
            mem,
            size,
            read_index,
        })
    }

    /// The ring memory.
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// Data size of the ring in bytes.
    pub fn data_size(&self) -> u32 {
        self.size
    }

    /// The read index published last.
    pub fn read_index(&self) -> u32 {
        self.read_index
    }

    /// The producer's feature bits (bit 0: it sets `pending_send_sz` when blocked and honours
    /// ours in the opposite ring).
    #[inline]
    pub fn producer_features(&self) -> u32 {
        // Relaxed: a plain flag the producer sets once at open; no data depends on it.
        self.mem.load(Control::FeatureBits, Ordering::Relaxed)
    }

    /// Loads the producer's write index once and checks it
    /// (docs/protocol.md#consumer-when-to-signal step 2).
    #[inline]
    fn peer_write_index(&self) -> Result<u32, RingError> {
        // Acquire: pairs with the producer's Release store of write_index in
        // `WriteBatch::commit`, so the packet bytes it covers are visible to our copies.
        checked_index(
            self.mem.load(Control::WriteIndex, Ordering::Acquire),
            self.size,
        )
    }

    /// Whether packets are waiting (loads and checks the write index).
    pub fn has_data(&self) -> Result<bool, RingError> {
        Ok(self.peer_write_index()? != self.read_index)
    }

    /// Asks the producer not to signal while we poll (docs/protocol.md#consumer-when-to-signal step
    /// 1).
    pub fn disable_interrupts(&self) {
        // Relaxed + full barrier below: the producer loads the mask after its own SeqCst fence.
        self.mem.store(Control::InterruptMask, 1, Ordering::Relaxed);
        // Full barrier (docs/protocol.md#consumer-when-to-signal step 1): pairs with the producer's
        // SeqCst fence before its mask load; a signal decided before this point may still arrive,
        // which is harmless.
        self.mem.fence(Ordering::SeqCst);
    }

    /// Re-enables signals before sleeping and re-checks for data
    /// (docs/protocol.md#consumer-when-to-signal step 6). Returns `true` when packets arrived
    /// meanwhile: the caller must keep draining instead of sleeping, or a wake-up is lost.
    pub fn enable_interrupts(&self) -> Result<bool, RingError> {
        // Relaxed: ordered before the re-check by the fence below.
        self.mem.store(Control::InterruptMask, 0, Ordering::Relaxed);
        // Full barrier: pairs with the producer's SeqCst fence between its write_index store and
        // its mask load (docs/protocol.md#producer-when-to-signal step 5): either it sees the clear
        // mask and signals, or this re-check sees its new write_index.
        self.mem.fence(Ordering::SeqCst);
        self.has_data()
    }

    /// Starts reading: loads the producer's write index once, checks it, and returns a batch over
    /// the packets up to it, or [`RingError::Empty`].
    #[inline]
    pub fn batch(&mut self) -> Result<ReadBatch<'_, M>, RingError> {
        let write_index = self.peer_write_index()?;
        let available = distance(self.read_index, write_index, self.size);
        if available == 0 {
            return Err(RingError::Empty);
        }
        Ok(ReadBatch {
            pos: self.read_index,
            available,
            packets: 0,
            failed: None,
            reader: self,
        })
    }
}

/// Packets between our read index and the producer's write index as loaded when the batch began.
/// [`next_packet`](Self::next_packet) consumes them one at a time; [`commit`](Self::commit)
/// publishes the new read index once. Dropping the batch without committing consumes nothing.
#[derive(Debug)]
pub struct ReadBatch<'r, M: RingMem> {
    reader: &'r mut RingReader<M>,
    /// Start of the next packet.
    pos: u32,
    /// Readable bytes from `pos` to the write index.
    available: u32,
    packets: u32,
    /// Set once a descriptor failed validation; the batch yields nothing more.
    failed: Option<Corruption>,
}

impl<M: RingMem> ReadBatch<'_, M> {
    /// Bytes left to read in this batch.
    #[inline]
    pub fn remaining(&self) -> u32 {
        self.available
    }

    /// Copies out, checks and consumes the next packet's descriptor. `Ok(None)` when the batch
    /// is done; `Err(Corrupt)` (also on every later call) when the peer wrote a bad descriptor.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<PacketView<'_, M>>, RingError> {
        if let Some(c) = self.failed {
            return Err(RingError::Corrupt(c));
        }
        if self.available == 0 {
            return Ok(None);
        }
        match self.check_descriptor() {
            Ok((desc, total)) => {
                let start = self.pos;
                self.pos = advance(self.pos, total, self.reader.size);
                self.available -= total;
                self.packets += 1;
                Ok(Some(PacketView {
                    mem: &self.reader.mem,
                    size: self.reader.size,
                    start,
                    desc,
                }))
            }
            Err(c) => {
                self.failed = Some(c);
                Err(RingError::Corrupt(c))
            }
        }
    }

    /// Copies the descriptor at `pos` out of the ring and validates it against the readable
    /// bytes. Returns it with the packet's total length (with trailer).
    #[inline]
    fn check_descriptor(&self) -> Result<(Descriptor, u32), Corruption> {
        if self.available < DESCRIPTOR_LEN + TRAILER_LEN {
            return Err(Corruption::Truncated(self.available));
        }
        // Two word loads: `pos` is 8-aligned (a checked index plus whole packets), so each word
        // lies inside the data area, and only the second may wrap to its start.
        let mem = &self.reader.mem;
        let desc = Descriptor::from_words(
            mem.read_word(self.pos),
            mem.read_word(advance(self.pos, 8, self.reader.size)),
        );
        if !desc.packet_type.is_known() {
            return Err(Corruption::UnknownType(desc.packet_type.0));
        }
        if desc.flags & !FLAG_COMPLETION_REQUESTED != 0 {
            return Err(Corruption::ReservedFlags(desc.flags));
        }
        if desc.offset8 < 2 {
            return Err(Corruption::PayloadOffsetTooSmall(desc.offset8));
        }
        if desc.len8 < desc.offset8 {
            return Err(Corruption::LengthBelowOffset {
                offset8: desc.offset8,
                len8: desc.len8,
            });
        }
        // At most 65535 * 8 + 8: no overflow.
        let total = u32::from(desc.len8) * 8 + TRAILER_LEN;
        if total > self.available {
            return Err(Corruption::PastWriteIndex {
                needed: total,
                available: self.available,
            });
        }
        Ok((desc, total))
    }

    /// Publishes the new read index once (docs/protocol.md#consumer-when-to-signal steps 3 and 4)
    /// and decides whether a producer waiting for space must be signalled (step 5). Packets
    /// consumed before a corrupt descriptor are published too.
    #[inline]
    pub fn commit(self) -> Result<ReadOutcome, RingError> {
        let r = self.reader;
        let old = r.read_index;
        let bytes = distance(old, self.pos, r.size);
        if self.packets == 0 {
            return Ok(ReadOutcome {
                packets: 0,
                bytes: 0,
                signal: false,
            });
        }
        // Release (docs/protocol.md#consumer-when-to-signal steps 3-4): pairs with the producer's
        // Acquire load of read_index in `RingWriter::batch`; every copy out of the consumed packets
        // happens before the producer may overwrite them.
        r.mem.store(Control::ReadIndex, self.pos, Ordering::Release);
        r.read_index = self.pos;
        // Full barrier (docs/protocol.md#consumer-when-to-signal step 5): pairs with the producer's
        // SeqCst fence between its pending_send_sz store and its re-read of read_index
        // (`RingWriter::request_space`).
        r.mem.fence(Ordering::SeqCst);
        let outcome = ReadOutcome {
            packets: self.packets,
            bytes,
            signal: false,
        };
        if r.producer_features() & FEATURE_PENDING_SEND_SZ == 0 {
            return Ok(outcome);
        }
        // Acquire: ordered after the fence; keeps the write_index load below after it (the read
        // barrier of docs/protocol.md#barriers). Masked with !7: some peers write size - 1
        // (docs/protocol.md#consumer-when-to-signal step 5).
        let pending = r.mem.load(Control::PendingSendSz, Ordering::Acquire) & !7;
        if pending == 0 {
            return Ok(outcome);
        }
        let write_index = r.peer_write_index()?;
        let free_before = r.size - distance(old, write_index, r.size);
        let free_after = r.size - distance(self.pos, write_index, r.size);
        Ok(ReadOutcome {
            signal: free_before <= pending && free_after > pending,
            ..outcome
        })
    }
}

/// One packet in the ring, read in place: the descriptor is a checked local copy; payload bytes
/// are copied out on demand. The peer may change those bytes at any moment, so copy what you need
/// once and validate the copy.
#[derive(Debug)]
pub struct PacketView<'a, M: RingMem> {
    mem: &'a M,
    size: u32,
    start: u32,
    desc: Descriptor,
}

impl<M: RingMem> PacketView<'_, M> {
    /// The checked descriptor.
    pub fn descriptor(&self) -> &Descriptor {
        &self.desc
    }

    /// Packet type.
    pub fn packet_type(&self) -> PacketType {
        self.desc.packet_type
    }

    /// Transaction id.
    #[inline]
    pub fn transaction_id(&self) -> u64 {
        self.desc.transaction_id
    }

    /// Whether the sender asked for a completion.
    pub fn completion_requested(&self) -> bool {
        self.desc.flags & FLAG_COMPLETION_REQUESTED != 0
    }

    /// Ring offset of the packet's descriptor.
    pub fn start(&self) -> u32 {
        self.start
    }

    /// Payload bytes, including any padding the sender added: `(len8 - offset8) * 8`.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(self.desc.len8 - self.desc.offset8) * 8
    }

    /// Bytes of extended descriptor between the 16-byte descriptor and the payload.
    pub fn ext_len(&self) -> usize {
        usize::from(self.desc.offset8) * 8 - DESCRIPTOR_LEN as usize
    }

    /// Copies payload bytes `at .. at + buf.len()` into `buf`.
    #[inline]
    pub fn read_payload(&self, at: usize, buf: &mut [u8]) -> Result<(), RingError> {
        self.read_at(
            usize::from(self.desc.offset8) * 8,
            self.payload_len(),
            at,
            buf,
        )
    }

    /// Copies extended-descriptor bytes `at .. at + buf.len()` into `buf`.
    pub fn read_ext(&self, at: usize, buf: &mut [u8]) -> Result<(), RingError> {
        self.read_at(DESCRIPTOR_LEN as usize, self.ext_len(), at, buf)
    }

    /// Copies `buf.len()` bytes from `at` inside the region `[base, base + len)` of the packet.
    #[inline]
    fn read_at(&self, base: usize, len: usize, at: usize, buf: &mut [u8]) -> Result<(), RingError> {
        if at > len || buf.len() > len - at {
            return Err(RingError::OutOfPacket);
        }
        if buf.is_empty() {
            return Ok(());
        }
        // base + at < 65535 * 8 < size is not guaranteed for tiny rings, but the packet itself
        // was checked to lie within the readable bytes, so base + at < size.
        let pos = advance(self.start, (base + at) as u32, self.size);
        copy_out(self.mem, self.size, pos, buf);
        Ok(())
    }
}
