//! The producer side of a ring (docs/protocol.md#space-and-the-full-rule,
//! #producer-when-to-signal): packet encoding, the full rule, batched writes with one index
//! publish, the signal decision and `pending_send_sz`.

use core::sync::atomic::Ordering;

use super::mem::{Control, RingMem};
use super::packet::{
    DESCRIPTOR_LEN, Descriptor, FLAG_COMPLETION_REQUESTED, GpaRange, MAX_PACKET_LEN, PacketType,
    TRAILER_LEN, TransferRange,
};
use super::{RingError, advance, checked_index, checked_size, copy_in, distance};

/// Result of [`RingWriter::request_space`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceWait {
    /// The packet fits now; write it.
    Ready,
    /// `pending_send_sz` is set: wait for the consumer's signal, then try again.
    WaitForSignal,
    /// The peer does not honour `pending_send_sz`: poll for space.
    Poll,
}

/// Result of committing a [`WriteBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Packets published.
    pub packets: u32,
    /// The consumer must be signalled: its interrupt mask was clear and the ring was empty
    /// before this batch (docs/protocol.md#producer-when-to-signal steps 5 and 6).
    pub signal: bool,
}

/// The producer side of one ring.
#[derive(Debug)]
pub struct RingWriter<M: RingMem> {
    mem: M,
    size: u32,
    /// The write index we published last; never re-read from shared memory.
    write_index: u32,
    /// Whether we left a non-zero `pending_send_sz` in the header.
    pending_set: bool,
}

impl<M: RingMem> RingWriter<M> {
    /// A writer over `mem`, continuing from the write index found in its header (zero after
    /// [`init_ring`](super::init_ring)).
    pub fn new(mem: M) -> Result<Self, RingError> {
        let size = checked_size(&mem)?;
        // Relaxed: we are the only writer of this word; whoever initialised it handed the ring to
        // us through a synchronising operation.
        let write_index = checked_index(mem.load(Control::WriteIndex, Ordering::Relaxed), size)?;
        Ok(Self {
            mem,
            size,
            write_index,
            pending_set: false,
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

    /// The write index published last.
    pub fn write_index(&self) -> u32 {
        self.write_index
    }

    /// Total ring bytes (descriptor, payload, padding, trailer) of an in-band or completion packet
    /// with `payload_len` payload bytes.
    pub fn inband_len(payload_len: usize) -> usize {
        DESCRIPTOR_LEN as usize + payload_len.next_multiple_of(8) + TRAILER_LEN as usize
    }

    /// Loads the consumer's read index (docs/protocol.md#producer-when-to-signal step 1) and checks
    /// it.
    #[inline]
    fn peer_read_index(&self) -> Result<u32, RingError> {
        // Acquire: pairs with the consumer's Release store of read_index in `ReadBatch::commit`,
        // so its reads of the bytes it freed are done before we overwrite them.
        checked_index(
            self.mem.load(Control::ReadIndex, Ordering::Acquire),
            self.size,
        )
    }

    /// Free bytes given the consumer's read index (`size - used`; a packet of `T` bytes fits
    /// only if `T < free`, docs/protocol.md#space-and-the-full-rule).
    #[inline]
    fn free(&self, read_index: u32) -> u32 {
        self.size - distance(read_index, self.write_index, self.size)
    }

    /// Starts a batch of packets published together by [`WriteBatch::commit`]. Loads and checks
    /// the consumer's read index once; the batch writes into the space free at that moment.
    #[inline]
    pub fn batch(&mut self) -> Result<WriteBatch<'_, M>, RingError> {
        let read_index = self.peer_read_index()?;
        let free = self.free(read_index);
        Ok(WriteBatch {
            start: self.write_index,
            pos: self.write_index,
            free,
            packets: 0,
            writer: self,
        })
    }

    /// Prepares to wait until a packet of `total_len` ring bytes fits
    /// (docs/protocol.md#producer-when-to-signal step 1).
    ///
    /// `peer_honours_pending` is feature bit 0 of the opposite (peer-produced) ring's header. If
    /// it is set, this stores `pending_send_sz` and re-checks the read index after a full barrier,
    /// so a consumer that freed the space meanwhile is never missed. The value is cleared again
    /// by the next packet written, or by [`clear_pending_send_sz`](Self::clear_pending_send_sz).
    pub fn request_space(
        &mut self,
        total_len: u32,
        peer_honours_pending: bool,
    ) -> Result<SpaceWait, RingError> {
        if total_len > self.size - 8 {
            return Err(RingError::TooBig);
        }
        if total_len < self.free(self.peer_read_index()?) {
            self.clear_pending_send_sz();
            return Ok(SpaceWait::Ready);
        }
        if !peer_honours_pending {
            return Ok(SpaceWait::Poll);
        }
        // Rounded up to 8 and at most size - 8 (docs/protocol.md#producer-when-to-signal step 1);
        // total_len <= size - 8 already.
        let pending = total_len.next_multiple_of(8).min(self.size - 8);
        // Relaxed: the fence below orders it before the re-check.
        self.mem
            .store(Control::PendingSendSz, pending, Ordering::Relaxed);
        self.pending_set = true;
        // Full barrier: pairs with the consumer's SeqCst fence between its read_index store and its
        // pending_send_sz load (docs/protocol.md#consumer-when-to-signal step 5). Either it sees
        // our request or we see its index.
        self.mem.fence(Ordering::SeqCst);
        if total_len < self.free(self.peer_read_index()?) {
            self.clear_pending_send_sz();
            return Ok(SpaceWait::Ready);
        }
        Ok(SpaceWait::WaitForSignal)
    }

    /// Clears `pending_send_sz` if this writer set it (docs/protocol.md#producer-when-to-signal
    /// step 7).
    #[inline]
    pub fn clear_pending_send_sz(&mut self) {
        if self.pending_set {
            // Relaxed: a late clear costs at most one spurious signal from the consumer.
            self.mem.store(Control::PendingSendSz, 0, Ordering::Relaxed);
            self.pending_set = false;
        }
    }
}

/// Extended descriptor of a packet being written.
#[derive(Clone, Copy)]
enum Ext<'a> {
    None,
    Gpa(&'a [GpaRange<'a>]),
    /// Transfer page set id and the ranges in it.
    Xfer(u16, &'a [TransferRange]),
}

/// Packets written but not yet published; [`commit`](Self::commit) publishes them with one store
/// of the write index. Dropping a batch without committing discards its packets.
#[derive(Debug)]
pub struct WriteBatch<'w, M: RingMem> {
    writer: &'w mut RingWriter<M>,
    /// Write index before the batch.
    start: u32,
    /// Where the next packet goes.
    pos: u32,
    /// Free bytes left (a packet of `T` bytes fits only if `T < free`).
    free: u32,
    packets: u32,
}

impl<M: RingMem> WriteBatch<'_, M> {
    /// Packets written so far in this batch.
    #[inline]
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Largest total packet length (with trailer) that still fits in this batch.
    #[inline]
    pub fn room(&self) -> u32 {
        self.free.saturating_sub(8)
    }

    /// Writes an in-band data packet (type 6).
    #[inline]
    pub fn write_inband(
        &mut self,
        transaction_id: u64,
        completion_requested: bool,
        payload: &[u8],
    ) -> Result<(), RingError> {
        self.write(
            PacketType::DATA_INBAND,
            completion_requested,
            transaction_id,
            Ext::None,
            payload,
        )
    }

    /// Writes a completion packet (type 0xB) answering the request `transaction_id`.
    #[inline]
    pub fn write_completion(
        &mut self,
        transaction_id: u64,
        payload: &[u8],
    ) -> Result<(), RingError> {
        self.write(PacketType::COMP, false, transaction_id, Ext::None, payload)
    }

    /// Writes a GPA-direct packet (type 9): the extended descriptor lists `ranges` of external
    /// buffers, followed by the in-band `payload`.
    pub fn write_gpa_direct(
        &mut self,
        transaction_id: u64,
        completion_requested: bool,
        ranges: &[GpaRange<'_>],
        payload: &[u8],
    ) -> Result<(), RingError> {
        if ranges.is_empty() || ranges.iter().any(|r| r.checked_pages().is_none()) {
            return Err(RingError::BadRange);
        }
        self.write(
            PacketType::DATA_USING_GPA_DIRECT,
            completion_requested,
            transaction_id,
            Ext::Gpa(ranges),
            payload,
        )
    }

    /// Writes a transfer-page packet (type 7): the extended descriptor names transfer page set
    /// `set_id` and `ranges` in it, followed by the in-band `payload` (a host's netvsc receive:
    /// the frames are in the guest's receive buffer, the ranges say where).
    pub fn write_transfer_pages(
        &mut self,
        transaction_id: u64,
        completion_requested: bool,
        set_id: u16,
        ranges: &[TransferRange],
        payload: &[u8],
    ) -> Result<(), RingError> {
        if ranges.is_empty() {
            return Err(RingError::BadRange);
        }
        self.write(
            PacketType::DATA_USING_XFER_PAGES,
            completion_requested,
            transaction_id,
            Ext::Xfer(set_id, ranges),
            payload,
        )
    }

    /// Copies bytes in at the cursor, wrapping, and moves the cursor.
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let w = &*self.writer;
        copy_in(&w.mem, w.size, self.pos, bytes);
        // bytes.len() < size: the caller checked the packet fits.
        self.pos = advance(self.pos, bytes.len() as u32, w.size);
    }

    fn write(
        &mut self,
        packet_type: PacketType,
        completion_requested: bool,
        transaction_id: u64,
        ext: Ext<'_>,
        payload: &[u8],
    ) -> Result<(), RingError> {
        let (ext_len, range_count) = match ext {
            Ext::None => (0usize, 0usize),
            Ext::Gpa(ranges) => (
                8 + ranges.iter().map(GpaRange::encoded_len).sum::<usize>(),
                ranges.len(),
            ),
            Ext::Xfer(_, ranges) => (8 + ranges.len() * 8, ranges.len()),
        };
        let offset = DESCRIPTOR_LEN as usize + ext_len;
        let len = offset + payload.len().next_multiple_of(8);
        let size = self.writer.size;
        if len > MAX_PACKET_LEN as usize
            || range_count > u32::MAX as usize
            || len + (TRAILER_LEN as usize) > (size - 8) as usize
        {
            return Err(RingError::TooBig);
        }
        // Both fit in u32 and u16 units: len <= MAX_PACKET_LEN.
        let total = len as u32 + TRAILER_LEN;
        if total >= self.free {
            return Err(RingError::Full);
        }
        let start = self.pos;
        let desc = Descriptor {
            packet_type,
            offset8: (offset / 8) as u16,
            len8: (len / 8) as u16,
            flags: if completion_requested {
                FLAG_COMPLETION_REQUESTED
            } else {
                0
            },
            transaction_id,
        };
        // Trailer: bits 63:32 = where this packet starts (docs/protocol.md#packets).
        let trailer = u64::from(start) << 32;
        // Whole words straight from the payload; the last partial word with its zero padding.
        let whole = payload.len() & !7;
        if let Ext::None = ext
            && total <= size - start
        {
            // Fast path (no extended descriptor, no wrap): the descriptor's two words, the
            // payload's whole words in one copy, its last partial word with the zero padding in
            // one word, the trailer in one word.
            let mem = &self.writer.mem;
            let [head, id] = desc.to_words();
            mem.write_word(start, head);
            mem.write_word(start + 8, id);
            let body = start + DESCRIPTOR_LEN;
            if whole > 0 {
                mem.write_data(body, &payload[..whole]);
            }
            // whole <= len < total <= size - start: no overflow.
            let mut end = body + whole as u32;
            if whole < payload.len() {
                let mut last = [0u8; 8];
                last[..payload.len() - whole].copy_from_slice(&payload[whole..]);
                mem.write_word(end, u64::from_le_bytes(last));
                end += 8;
            }
            mem.write_word(end, trailer);
            self.pos = advance(start, total, size);
        } else {
            self.put(&desc.to_bytes());
            if let Ext::Xfer(set_id, ranges) = ext {
                // Set id u16, sender-owns-set u8, reserved u8, range count u32, then each
                // range's byte count and byte offset (u32 each).
                let mut head = [0u8; 8];
                head[..2].copy_from_slice(&set_id.to_le_bytes());
                head[4..].copy_from_slice(&(range_count as u32).to_le_bytes());
                self.put(&head);
                for r in ranges {
                    let mut rh = [0u8; 8];
                    rh[..4].copy_from_slice(&r.byte_count.to_le_bytes());
                    rh[4..].copy_from_slice(&r.byte_offset.to_le_bytes());
                    self.put(&rh);
                }
            }
            if let Ext::Gpa(ranges) = ext {
                let mut head = [0u8; 8];
                head[4..].copy_from_slice(&(range_count as u32).to_le_bytes());
                self.put(&head);
                for r in ranges {
                    let mut rh = [0u8; 8];
                    rh[..4].copy_from_slice(&r.byte_count.to_le_bytes());
                    rh[4..].copy_from_slice(&r.byte_offset.to_le_bytes());
                    self.put(&rh);
                    for pfn in r.pfns {
                        self.put(&pfn.to_le_bytes());
                    }
                }
            }
            self.put(&payload[..whole]);
            if whole < payload.len() {
                let mut last = [0u8; 8];
                last[..payload.len() - whole].copy_from_slice(&payload[whole..]);
                self.put(&last);
            }
            self.put(&trailer.to_le_bytes());
        }
        self.wrote(total)
    }

    /// Books a packet of `total` ring bytes written at the old cursor.
    #[inline]
    fn wrote(&mut self, total: u32) -> Result<(), RingError> {
        self.free -= total;
        self.packets += 1;
        self.writer.clear_pending_send_sz();
        Ok(())
    }

    /// Publishes the batch with one store of the write index and decides whether to signal the
    /// consumer (docs/protocol.md#producer-when-to-signal steps 3 to 6). An empty batch publishes
    /// nothing and never signals.
    #[inline]
    pub fn commit(self) -> CommitOutcome {
        if self.packets == 0 {
            return CommitOutcome {
                packets: 0,
                signal: false,
            };
        }
        let w = self.writer;
        // Release (docs/protocol.md#producer-when-to-signal step 3): pairs with the consumer's
        // Acquire load of write_index in `RingReader::batch`, so the packet bytes are visible
        // before the index that covers them.
        w.mem
            .store(Control::WriteIndex, self.pos, Ordering::Release);
        w.write_index = self.pos;
        // Full barrier (docs/protocol.md#producer-when-to-signal step 5): pairs with the consumer's
        // SeqCst fence after it clears interrupt_mask (`RingReader::enable_interrupts`): either its
        // re-check of write_index sees our store above, or we see its cleared mask and its final
        // read_index below.
        w.mem.fence(Ordering::SeqCst);
        // Acquire: ordered after the store by the fence above; its acquire keeps the read_index
        // load below after it (the read barrier of docs/protocol.md#producer-when-to-signal step
        // 6).
        let masked = w.mem.load(Control::InterruptMask, Ordering::Acquire) != 0;
        // Acquire: pairs with the consumer's Release store of read_index. Any value that is not our old index, valid or
        // not, means "not empty before": no signal.
        let read_index = w.mem.load(Control::ReadIndex, Ordering::Acquire);
        CommitOutcome {
            packets: self.packets,
            signal: !masked && read_index == self.start,
        }
    }
}
