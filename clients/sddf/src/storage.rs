//! The block storage-info page (`blk_storage_info_t`): what the serving side tells the
//! requesting side about the device, published by a `ready` flag.

use core::sync::atomic::Ordering;

use crate::error::{ConfigError, Flag, PeerError, QueueId, StorageFault};
use crate::mem::QueueMem;

/// Byte layout of `blk_storage_info_t` (sDDF `include/sddf/blk/storage_info.h`).
pub mod layout {
    /// `serial_number` (`char[64]`, NUL-terminated).
    pub const SERIAL_NUMBER: usize = 0;
    /// Bytes of `serial_number` (`BLK_MAX_SERIAL_NUMBER + 1`).
    pub const SERIAL_NUMBER_LEN: usize = 64;
    /// `read_only` (`bool`).
    pub const READ_ONLY: usize = 64;
    /// `ready` (`bool`): written last, with release, by the serving side.
    pub const READY: usize = 65;
    /// `sector_size` (`u16`, bytes).
    pub const SECTOR_SIZE: usize = 66;
    /// `block_size` (`u16`, in `BLK_TRANSFER_SIZE` units).
    pub const BLOCK_SIZE: usize = 68;
    /// `queue_depth` (`u16`).
    pub const QUEUE_DEPTH: usize = 70;
    /// `cylinders` (`u16`).
    pub const CYLINDERS: usize = 72;
    /// `heads` (`u16`).
    pub const HEADS: usize = 74;
    /// `blocks` (`u16`).
    pub const BLOCKS: usize = 76;
    /// `capacity` (`u64`, in `BLK_TRANSFER_SIZE` units), after 2 bytes of padding.
    pub const CAPACITY: usize = 80;
    /// `sizeof(blk_storage_info_t)`.
    pub const SIZE: usize = 88;
    /// `BLK_STORAGE_INFO_REGION_SIZE`: the page the struct lives in.
    pub const REGION_SIZE: usize = 0x1000;
}

/// The contents of a storage-info page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageInfo {
    /// The device's serial number, NUL-terminated (at most 63 bytes before the NUL).
    pub serial_number: [u8; layout::SERIAL_NUMBER_LEN],
    /// The device refuses writes.
    pub read_only: bool,
    /// Sector size in bytes: a power of two in 512..=4096.
    pub sector_size: u16,
    /// Optimal transfer size in `BLK_TRANSFER_SIZE` units (at least 1).
    pub block_size: u16,
    /// How many requests the device can have in flight.
    pub queue_depth: u16,
    /// Geometry hint.
    pub cylinders: u16,
    /// Geometry hint.
    pub heads: u16,
    /// Geometry hint.
    pub blocks: u16,
    /// Device size in `BLK_TRANSFER_SIZE` units.
    pub capacity: u64,
}

impl Default for StorageInfo {
    fn default() -> Self {
        Self {
            serial_number: [0; layout::SERIAL_NUMBER_LEN],
            read_only: false,
            sector_size: 512,
            block_size: 1,
            queue_depth: 0,
            cylinders: 0,
            heads: 0,
            blocks: 0,
            capacity: 0,
        }
    }
}

impl StorageInfo {
    /// Sets the serial number, cut to 63 bytes and NUL-terminated.
    pub fn set_serial(&mut self, serial: &[u8]) {
        let n = serial.len().min(layout::SERIAL_NUMBER_LEN - 1);
        self.serial_number = [0; layout::SERIAL_NUMBER_LEN];
        self.serial_number[..n].copy_from_slice(&serial[..n]);
    }

    /// The serial number's bytes before the NUL.
    pub fn serial(&self) -> &[u8] {
        let end = self
            .serial_number
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(layout::SERIAL_NUMBER_LEN);
        &self.serial_number[..end]
    }

    /// Checks the fields a reader relies on.
    pub fn validate(&self) -> Result<(), StorageFault> {
        if !self.serial_number.contains(&0) {
            return Err(StorageFault::SerialNotTerminated);
        }
        if !self.sector_size.is_power_of_two() || !(512..=4096).contains(&self.sector_size) {
            return Err(StorageFault::BadSectorSize(self.sector_size));
        }
        if self.block_size == 0 {
            return Err(StorageFault::ZeroBlockSize);
        }
        Ok(())
    }

    /// The struct's bytes as C lays them out, `ready` 0 and padding zero.
    pub fn to_bytes(&self) -> [u8; layout::SIZE] {
        let mut out = [0u8; layout::SIZE];
        out[..layout::SERIAL_NUMBER_LEN].copy_from_slice(&self.serial_number);
        out[layout::READ_ONLY] = u8::from(self.read_only);
        for (at, value) in [
            (layout::SECTOR_SIZE, self.sector_size),
            (layout::BLOCK_SIZE, self.block_size),
            (layout::QUEUE_DEPTH, self.queue_depth),
            (layout::CYLINDERS, self.cylinders),
            (layout::HEADS, self.heads),
            (layout::BLOCKS, self.blocks),
        ] {
            out[at..at + 2].copy_from_slice(&value.to_le_bytes());
        }
        out[layout::CAPACITY..layout::CAPACITY + 8].copy_from_slice(&self.capacity.to_le_bytes());
        out
    }

    /// The struct from its bytes (`ready` ignored), every field checked.
    pub fn from_bytes(bytes: &[u8; layout::SIZE]) -> Result<Self, PeerError> {
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let read_only = match bytes[layout::READ_ONLY] {
            0 => false,
            1 => true,
            value => {
                return Err(PeerError::BadFlag {
                    flag: Flag::ReadOnly,
                    value,
                });
            }
        };
        let mut serial_number = [0u8; layout::SERIAL_NUMBER_LEN];
        serial_number.copy_from_slice(&bytes[..layout::SERIAL_NUMBER_LEN]);
        let mut capacity = [0u8; 8];
        capacity.copy_from_slice(&bytes[layout::CAPACITY..layout::CAPACITY + 8]);
        let info = Self {
            serial_number,
            read_only,
            sector_size: u16_at(layout::SECTOR_SIZE),
            block_size: u16_at(layout::BLOCK_SIZE),
            queue_depth: u16_at(layout::QUEUE_DEPTH),
            cylinders: u16_at(layout::CYLINDERS),
            heads: u16_at(layout::HEADS),
            blocks: u16_at(layout::BLOCKS),
            capacity: u64::from_le_bytes(capacity),
        };
        info.validate().map_err(PeerError::BadStorageInfo)?;
        Ok(info)
    }
}

/// A storage-info page in shared memory.
#[derive(Debug, Clone, Copy)]
pub struct StorageInfoPage<M> {
    mem: M,
}

impl<M: QueueMem> StorageInfoPage<M> {
    /// The page in `mem` (at least [`layout::SIZE`] bytes).
    pub fn new(mem: M) -> Result<Self, ConfigError> {
        if mem.size() < layout::SIZE {
            return Err(ConfigError::RegionTooSmall {
                queue: QueueId::StorageInfo,
                needed: layout::SIZE,
                have: mem.size(),
            });
        }
        Ok(Self { mem })
    }

    /// Serving side: writes `info` and then sets `ready` with a release store, so a reader that
    /// sees `ready` (acquire) sees every field. Write it while `ready` is 0 (at start-up, or after
    /// [`withdraw`](Self::withdraw)). `info` is checked first; nothing is written if it is invalid.
    pub fn publish(&self, info: &StorageInfo) -> Result<(), StorageFault> {
        info.validate()?;
        let bytes = info.to_bytes();
        self.mem.write(0, &bytes[..layout::READY]);
        self.mem
            .write(layout::READY + 1, &bytes[layout::READY + 1..]);
        self.mem.store_u8(layout::READY, 1, Ordering::Release);
        Ok(())
    }

    /// Serving side: clears `ready` (the device went away, or its information is about to
    /// change).
    pub fn withdraw(&self) {
        self.mem.store_u8(layout::READY, 0, Ordering::Release);
    }

    /// Requesting side: whether the page is published (acquire load of `ready`).
    pub fn is_ready(&self) -> Result<bool, PeerError> {
        match self.mem.load_u8(layout::READY, Ordering::Acquire) {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(PeerError::BadFlag {
                flag: Flag::Ready,
                value,
            }),
        }
    }

    /// Requesting side: the published contents, checked; `Ok(None)` while not ready.
    pub fn read(&self) -> Result<Option<StorageInfo>, PeerError> {
        if !self.is_ready()? {
            return Ok(None);
        }
        let mut bytes = [0u8; layout::SIZE];
        self.mem.read(0, &mut bytes);
        StorageInfo::from_bytes(&bytes).map(Some)
    }
}
