//! The engine both queue families share: a single-producer single-consumer ring of fixed-size
//! entries with a free-running head and tail in shared memory, capacity a power of two.
//!
//! Each end keeps its own index locally and only ever stores it; the peer's index is loaded
//! (acquire) and checked against ours before anything is read or written, so a peer that
//! scribbles over either index can neither make this side read outside the ring nor overwrite
//! entries the peer has not consumed yet.

use core::sync::atomic::Ordering;

use crate::error::{ConfigError, PeerError, QueueId};
use crate::mem::QueueMem;

/// Where a queue's fields live and how wide its indices are.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    pub queue: QueueId,
    /// Byte offset of the index the consumer writes.
    pub head: usize,
    /// Byte offset of the index the producer writes.
    pub tail: usize,
    /// `u32` indices (block) rather than `u16` (network).
    pub wide: bool,
    /// Byte offset of entry 0.
    pub entries: usize,
    /// Size of one entry, padding included.
    pub entry_size: usize,
    /// Entries the ring holds: a power of two.
    pub capacity: u32,
}

impl Geometry {
    /// Checks the capacity (a power of two that the index width can count up to) and that a
    /// region of `region` bytes holds the header and `capacity` entries.
    pub fn check(self, region: usize) -> Result<Self, ConfigError> {
        let max = if self.wide { 1u32 << 31 } else { 1u32 << 15 };
        if !self.capacity.is_power_of_two() || self.capacity > max {
            return Err(ConfigError::BadCapacity {
                queue: self.queue,
                capacity: self.capacity,
            });
        }
        let needed = self.capacity as usize * self.entry_size + self.entries;
        if region < needed {
            return Err(ConfigError::RegionTooSmall {
                queue: self.queue,
                needed,
                have: region,
            });
        }
        Ok(self)
    }

    #[inline]
    fn mask(&self) -> u32 {
        if self.wide { u32::MAX } else { 0xffff }
    }

    #[inline]
    fn load_index<M: QueueMem>(&self, mem: &M, offset: usize, order: Ordering) -> u32 {
        if self.wide {
            mem.load_u32(offset, order)
        } else {
            u32::from(mem.load_u16(offset, order))
        }
    }

    #[inline]
    fn store_index<M: QueueMem>(&self, mem: &M, offset: usize, value: u32, order: Ordering) {
        if self.wide {
            mem.store_u32(offset, value, order);
        } else {
            mem.store_u16(offset, value as u16, order);
        }
    }

    /// Byte offset of the entry that free-running index `index` names.
    #[inline]
    fn slot(&self, index: u32) -> usize {
        self.entries + (index & (self.capacity - 1)) as usize * self.entry_size
    }

    /// Entries between `head` and `tail`, checked: a distance beyond the capacity means the peer
    /// moved its index out of range.
    #[inline]
    fn distance(&self, head: u32, tail: u32, ours: u32, theirs: u32) -> Result<u32, PeerError> {
        let len = tail.wrapping_sub(head) & self.mask();
        if len > self.capacity {
            return Err(PeerError::IndexOutOfRange {
                queue: self.queue,
                ours,
                theirs,
                capacity: self.capacity,
            });
        }
        Ok(len)
    }
}

/// The producing end: writes entries at `tail`, owns `tail`.
#[derive(Debug)]
pub(crate) struct Producer<M> {
    pub mem: M,
    pub geo: Geometry,
    tail: u32,
}

impl<M: QueueMem> Producer<M> {
    /// Attaches to the ring's current state (zero in a fresh region).
    pub fn attach(mem: M, geo: Geometry) -> Self {
        let tail = geo.load_index(&mem, geo.tail, Ordering::Relaxed);
        Self { mem, geo, tail }
    }

    /// Entries in the ring. The acquire load of `head` pairs with the consumer's release store:
    /// its reads of the entries it consumed are done before this side reuses their slots.
    pub fn len(&self) -> Result<u32, PeerError> {
        let head = self
            .geo
            .load_index(&self.mem, self.geo.head, Ordering::Acquire);
        self.geo.distance(head, self.tail, self.tail, head)
    }

    /// Writes one entry (exactly `entry_size` bytes) and publishes it: `Ok(false)` when full.
    pub fn push(&mut self, entry: &[u8]) -> Result<bool, PeerError> {
        debug_assert_eq!(entry.len(), self.geo.entry_size);
        if self.len()? == self.geo.capacity {
            return Ok(false);
        }
        self.mem.write(self.geo.slot(self.tail), entry);
        self.tail = self.tail.wrapping_add(1) & self.geo.mask();
        // Release: the entry's bytes are visible before the new tail is.
        self.geo
            .store_index(&self.mem, self.geo.tail, self.tail, Ordering::Release);
        Ok(true)
    }

    /// This side's index.
    pub fn index(&self) -> u32 {
        self.tail
    }
}

/// The consuming end: reads entries at `head`, owns `head`.
#[derive(Debug)]
pub(crate) struct Consumer<M> {
    pub mem: M,
    pub geo: Geometry,
    head: u32,
}

impl<M: QueueMem> Consumer<M> {
    /// Attaches to the ring's current state (zero in a fresh region).
    pub fn attach(mem: M, geo: Geometry) -> Self {
        let head = geo.load_index(&mem, geo.head, Ordering::Relaxed);
        Self { mem, geo, head }
    }

    /// Entries in the ring. The acquire load of `tail` pairs with the producer's release store:
    /// the entries it published are visible before this side reads them.
    pub fn len(&self) -> Result<u32, PeerError> {
        let tail = self
            .geo
            .load_index(&self.mem, self.geo.tail, Ordering::Acquire);
        self.geo.distance(self.head, tail, self.head, tail)
    }

    /// Copies the oldest entry into `buf` (exactly `entry_size` bytes) and hands its slot back:
    /// `Ok(false)` when empty.
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<bool, PeerError> {
        debug_assert_eq!(buf.len(), self.geo.entry_size);
        if self.len()? == 0 {
            return Ok(false);
        }
        self.mem.read(self.geo.slot(self.head), buf);
        self.head = self.head.wrapping_add(1) & self.geo.mask();
        // Release: the copy above is finished before the producer may reuse the slot.
        self.geo
            .store_index(&self.mem, self.geo.head, self.head, Ordering::Release);
        Ok(true)
    }

    /// This side's index.
    pub fn index(&self) -> u32 {
        self.head
    }
}
