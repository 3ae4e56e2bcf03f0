//! The network queues: a free queue of empty buffers and an active queue of filled ones, each a
//! ring of buffer descriptors in its own shared region, with a `consumer_signalled` flag the
//! consumer clears when it wants a notification.
//!
//! Both sides of a connection hold one end of each queue: the side that fills buffers (a driver's
//! RX, a client's TX) consumes the free queue and produces the active queue ([`NetFiller`]); the
//! side that drains them (a driver's TX, a client's RX) consumes the active queue and produces
//! the free queue ([`NetDrainer`]).

use core::sync::atomic::Ordering;

use crate::error::{ConfigError, EnqueueError, PeerError, QueueId};
use crate::mem::QueueMem;
use crate::ring::{Consumer, Geometry, Producer};

/// Byte layout of `net_queue_t` and `net_buff_desc_t` (sDDF `include/sddf/network/queue.h`).
pub mod layout {
    /// `net_queue.tail` (`u16`): next slot the producer fills; written by the producer only.
    pub const TAIL: usize = 0;
    /// `net_queue.head` (`u16`): next slot the consumer takes; written by the consumer only.
    pub const HEAD: usize = 2;
    /// `net_queue.consumer_signalled` (`u32`): 0 = the consumer asks to be notified; cleared by
    /// the consumer, set to 1 by whichever side takes the pending notification.
    pub const CONSUMER_SIGNALLED: usize = 4;
    /// `net_queue.buffers[]`: the descriptor array (8-aligned, after the 8-byte header).
    pub const BUFFERS: usize = 8;
    /// `net_buff_desc.io_or_offset` (`u64`) within a descriptor.
    pub const DESC_IO_OR_OFFSET: usize = 0;
    /// `net_buff_desc.len` (`u16`) within a descriptor.
    pub const DESC_LEN: usize = 8;
    /// `sizeof(net_buff_desc_t)`: 8 + 2, padded to the `u64`'s alignment.
    pub const DESC_SIZE: usize = 16;

    /// Bytes a queue region needs for `capacity` descriptors.
    pub const fn region_size(capacity: u32) -> usize {
        BUFFERS + capacity as usize * DESC_SIZE
    }
}

/// sDDF's `NET_BUFFER_SIZE`: the size of one packet buffer in a data region.
pub const NET_BUFFER_SIZE: u32 = 2048;

/// A buffer descriptor (`net_buff_desc_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetBuffer {
    /// Offset of the buffer in the data region (client side) or its I/O address (driver side).
    pub io_or_offset: u64,
    /// Bytes of packet data in the buffer (0 in a free buffer).
    pub len: u16,
}

impl NetBuffer {
    /// The descriptor's bytes as the C struct lays them out (padding zero).
    pub fn to_bytes(self) -> [u8; layout::DESC_SIZE] {
        let mut out = [0u8; layout::DESC_SIZE];
        out[layout::DESC_IO_OR_OFFSET..layout::DESC_IO_OR_OFFSET + 8]
            .copy_from_slice(&self.io_or_offset.to_le_bytes());
        out[layout::DESC_LEN..layout::DESC_LEN + 2].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// A descriptor from its bytes (padding ignored).
    pub fn from_bytes(bytes: &[u8; layout::DESC_SIZE]) -> Self {
        let mut io = [0u8; 8];
        io.copy_from_slice(&bytes[layout::DESC_IO_OR_OFFSET..layout::DESC_IO_OR_OFFSET + 8]);
        let len = [bytes[layout::DESC_LEN], bytes[layout::DESC_LEN + 1]];
        Self {
            io_or_offset: u64::from_le_bytes(io),
            len: u16::from_le_bytes(len),
        }
    }
}

/// The packet buffers one end may name: `size` bytes from `base`, cut into buffers of
/// `buffer_size` bytes. A client sees offsets (`base` 0); a driver sees I/O addresses (`base` the
/// region's I/O address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetDataRegion {
    base: u64,
    size: u64,
    buffer_size: u32,
}

impl NetDataRegion {
    /// A region of `size` bytes at `base` with buffers of `buffer_size` bytes.
    pub const fn new(base: u64, size: u64, buffer_size: u32) -> Result<Self, ConfigError> {
        if buffer_size == 0 || base.checked_add(size).is_none() {
            return Err(ConfigError::BadDataRegion);
        }
        Ok(Self {
            base,
            size,
            buffer_size,
        })
    }

    /// The client's view: offsets into a region of `size` bytes, [`NET_BUFFER_SIZE`] buffers.
    pub const fn offsets(size: u64) -> Self {
        Self {
            base: 0,
            size,
            buffer_size: NET_BUFFER_SIZE,
        }
    }

    /// Whole buffers in the region.
    pub const fn buffers(&self) -> u64 {
        self.size / self.buffer_size as u64
    }

    /// The empty descriptor of buffer `index` (what sDDF's `net_buffers_init` puts in a free
    /// queue), or `None` past the last whole buffer.
    pub const fn buffer(&self, index: u64) -> Option<NetBuffer> {
        if index >= self.buffers() {
            return None;
        }
        Some(NetBuffer {
            io_or_offset: self.base + index * self.buffer_size as u64,
            len: 0,
        })
    }

    /// Whether `buffer` names a whole buffer of the region and its length fits in one buffer.
    pub const fn contains(&self, buffer: NetBuffer) -> bool {
        let Some(rel) = buffer.io_or_offset.checked_sub(self.base) else {
            return false;
        };
        let size = self.buffer_size as u64;
        rel.is_multiple_of(size)
            && rel < self.size
            && self.size - rel >= size
            && buffer.len as u32 <= self.buffer_size
    }
}

/// Which of the pair a queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKind {
    /// The free queue: empty buffers going back to the filler.
    Free,
    /// The active queue: filled buffers going to the drainer.
    Active,
}

impl NetKind {
    const fn id(self) -> QueueId {
        match self {
            Self::Free => QueueId::NetFree,
            Self::Active => QueueId::NetActive,
        }
    }
}

const fn geometry(kind: NetKind, capacity: u32) -> Geometry {
    Geometry {
        queue: kind.id(),
        head: layout::HEAD,
        tail: layout::TAIL,
        wide: false,
        entries: layout::BUFFERS,
        entry_size: layout::DESC_SIZE,
        capacity,
    }
}

/// The producing end of one network queue.
#[derive(Debug)]
pub struct NetProducer<M> {
    ring: Producer<M>,
    region: NetDataRegion,
}

impl<M: QueueMem> NetProducer<M> {
    /// The producing end of the `kind` queue in `mem`, holding `capacity` descriptors (a power of
    /// two up to 32768), naming buffers of `region`. Attaches to the queue's current indices.
    pub fn new(
        kind: NetKind,
        mem: M,
        capacity: u32,
        region: NetDataRegion,
    ) -> Result<Self, ConfigError> {
        let geo = geometry(kind, capacity).check(mem.size())?;
        Ok(Self::from_geometry(mem, geo, region))
    }

    fn from_geometry(mem: M, geo: Geometry, region: NetDataRegion) -> Self {
        Self {
            ring: Producer::attach(mem, geo),
            region,
        }
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> u32 {
        self.ring.geo.capacity
    }

    /// Descriptors in the queue (published and not yet consumed).
    pub fn len(&self) -> Result<u32, PeerError> {
        self.ring.len()
    }

    /// Whether the queue holds no descriptor.
    pub fn is_empty(&self) -> Result<bool, PeerError> {
        Ok(self.len()? == 0)
    }

    /// Whether the queue holds `capacity` descriptors.
    pub fn is_full(&self) -> Result<bool, PeerError> {
        Ok(self.len()? == self.capacity())
    }

    /// This end's `tail`.
    pub fn tail(&self) -> u16 {
        self.ring.index() as u16
    }

    /// Writes `buffer` into the next slot and publishes it (release store of `tail`).
    ///
    /// A buffer outside this end's data region is refused (`Invalid`) and nothing is written.
    pub fn enqueue(&mut self, buffer: NetBuffer) -> Result<(), EnqueueError<NetBuffer>> {
        if !self.region.contains(buffer) {
            return Err(EnqueueError::Invalid(buffer));
        }
        if self.ring.push(&buffer.to_bytes())? {
            Ok(())
        } else {
            Err(EnqueueError::Full)
        }
    }

    /// Whether the consumer asked to be notified (`consumer_signalled == 0`).
    ///
    /// A full fence comes first: it orders this side's `tail` store before the flag load, against
    /// the consumer's flag store and its `tail` re-check (see the crate docs).
    pub fn require_signal(&self) -> bool {
        self.ring.mem.fence(Ordering::SeqCst);
        self.ring
            .mem
            .load_u32(layout::CONSUMER_SIGNALLED, Ordering::Acquire)
            == 0
    }

    /// Marks the consumer as signalled (`consumer_signalled = 1`): call it as the notification
    /// is sent.
    pub fn cancel_signal(&self) {
        self.ring
            .mem
            .store_u32(layout::CONSUMER_SIGNALLED, 1, Ordering::Release);
    }

    /// After a batch of enqueues: whether the caller must notify the consumer now. When it must,
    /// the flag is already set back to 1, so the next batch does not notify again until the
    /// consumer asks.
    pub fn take_signal(&self) -> bool {
        if self.require_signal() {
            self.cancel_signal();
            true
        } else {
            false
        }
    }
}

/// The consuming end of one network queue.
#[derive(Debug)]
pub struct NetConsumer<M> {
    ring: Consumer<M>,
    region: NetDataRegion,
}

impl<M: QueueMem> NetConsumer<M> {
    /// The consuming end of the `kind` queue in `mem`, holding `capacity` descriptors (a power of
    /// two up to 32768), accepting buffers of `region` only. Attaches to the current indices.
    pub fn new(
        kind: NetKind,
        mem: M,
        capacity: u32,
        region: NetDataRegion,
    ) -> Result<Self, ConfigError> {
        let geo = geometry(kind, capacity).check(mem.size())?;
        Ok(Self::from_geometry(mem, geo, region))
    }

    fn from_geometry(mem: M, geo: Geometry, region: NetDataRegion) -> Self {
        Self {
            ring: Consumer::attach(mem, geo),
            region,
        }
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> u32 {
        self.ring.geo.capacity
    }

    /// Descriptors waiting.
    pub fn len(&self) -> Result<u32, PeerError> {
        self.ring.len()
    }

    /// Whether no descriptor is waiting.
    pub fn is_empty(&self) -> Result<bool, PeerError> {
        Ok(self.len()? == 0)
    }

    /// This end's `head`.
    pub fn head(&self) -> u16 {
        self.ring.index() as u16
    }

    /// Takes the oldest descriptor (acquire load of `tail`, release store of `head`).
    ///
    /// `Ok(None)` when empty. A descriptor outside the data region is consumed all the same and
    /// reported as [`PeerError::BadBuffer`] (it names no buffer this side may touch, so there is
    /// nothing to hand back).
    pub fn dequeue(&mut self) -> Result<Option<NetBuffer>, PeerError> {
        let mut bytes = [0u8; layout::DESC_SIZE];
        if !self.ring.pop(&mut bytes)? {
            return Ok(None);
        }
        let buffer = NetBuffer::from_bytes(&bytes);
        if !self.region.contains(buffer) {
            return Err(PeerError::BadBuffer {
                queue: self.ring.geo.queue,
                io_or_offset: buffer.io_or_offset,
                len: buffer.len,
            });
        }
        Ok(Some(buffer))
    }

    /// Asks the producer for a notification on its next enqueue (`consumer_signalled = 0`),
    /// followed by a full fence that orders the flag store before this side's next look at
    /// `tail`.
    pub fn request_signal(&self) {
        self.ring
            .mem
            .store_u32(layout::CONSUMER_SIGNALLED, 0, Ordering::Release);
        self.ring.mem.fence(Ordering::SeqCst);
    }

    /// Withdraws the request (`consumer_signalled = 1`): this side will look again by itself.
    pub fn cancel_signal(&self) {
        self.ring
            .mem
            .store_u32(layout::CONSUMER_SIGNALLED, 1, Ordering::Release);
    }

    /// Ends a batch the sDDF way: asks for a signal, then looks once more. `Ok(true)` when
    /// descriptors arrived meanwhile: the request is withdrawn again and the caller must keep
    /// processing; `Ok(false)`: the queue is empty and the producer will notify.
    pub fn finish_batch(&self) -> Result<bool, PeerError> {
        self.request_signal();
        if self.is_empty()? {
            Ok(false)
        } else {
            self.cancel_signal();
            Ok(true)
        }
    }
}

/// A free/active pair of queue regions with their common capacity (`net_queue_handle_t`), before
/// a side picks its ends.
#[derive(Debug, Clone, Copy)]
pub struct NetQueue<M> {
    free: M,
    active: M,
    free_geo: Geometry,
    active_geo: Geometry,
}

impl<M: QueueMem> NetQueue<M> {
    /// The pair over `free` and `active`, each holding `capacity` descriptors (a power of two up
    /// to 32768; the regions are checked to be large enough).
    pub fn new(free: M, active: M, capacity: u32) -> Result<Self, ConfigError> {
        let free_geo = geometry(NetKind::Free, capacity).check(free.size())?;
        let active_geo = geometry(NetKind::Active, capacity).check(active.size())?;
        Ok(Self {
            free,
            active,
            free_geo,
            active_geo,
        })
    }

    /// The capacity of each queue.
    pub fn capacity(&self) -> u32 {
        self.free_geo.capacity
    }

    /// The filling side (a driver's RX, a client's TX): takes from free, gives to active.
    pub fn filler(self, region: NetDataRegion) -> NetFiller<M> {
        NetFiller {
            free: NetConsumer::from_geometry(self.free, self.free_geo, region),
            active: NetProducer::from_geometry(self.active, self.active_geo, region),
        }
    }

    /// The draining side (a driver's TX, a client's RX): takes from active, gives to free.
    pub fn drainer(self, region: NetDataRegion) -> NetDrainer<M> {
        NetDrainer {
            active: NetConsumer::from_geometry(self.active, self.active_geo, region),
            free: NetProducer::from_geometry(self.free, self.free_geo, region),
        }
    }
}

/// The filling side of a pair: a driver's RX (empty buffers in, received packets out) or a
/// client's TX (empty buffers in, packets to send out).
#[derive(Debug)]
pub struct NetFiller<M> {
    /// Empty buffers to fill.
    pub free: NetConsumer<M>,
    /// Filled buffers handed over.
    pub active: NetProducer<M>,
}

/// The draining side of a pair: a driver's TX (packets to send in, sent buffers back) or a
/// client's RX (received packets in, consumed buffers back).
#[derive(Debug)]
pub struct NetDrainer<M> {
    /// Filled buffers to drain.
    pub active: NetConsumer<M>,
    /// Drained buffers handed back.
    pub free: NetProducer<M>,
}

impl<M: QueueMem> NetDrainer<M> {
    /// Puts the first buffers of `region` into the free queue until it is full or the region runs
    /// out (sDDF's `net_buffers_init`, done by the owner of the free queue's tail at start-up).
    /// Returns the number enqueued.
    pub fn fill_free(&mut self, region: NetDataRegion) -> Result<u32, EnqueueError<NetBuffer>> {
        let mut n = 0u32;
        while let Some(buffer) = region.buffer(u64::from(n)) {
            match self.free.enqueue(buffer) {
                Ok(()) => n += 1,
                Err(EnqueueError::Full) => break,
                Err(err) => return Err(err),
            }
        }
        Ok(n)
    }
}
