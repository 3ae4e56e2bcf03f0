//! SCSI commands the guest sends (the CDB, its direction and data length) and the parsing of what
//! comes back: READ CAPACITY(16) data and sense data. CDB layouts are SPC / SBC's; multi-byte
//! fields in a CDB and in returned data are big-endian.

use crate::msg::{Direction, MAX_CDB_LEN};

/// Operation codes.
pub mod opcode {
    /// TEST UNIT READY.
    pub const TEST_UNIT_READY: u8 = 0x00;
    /// INQUIRY.
    pub const INQUIRY: u8 = 0x12;
    /// READ(16).
    pub const READ_16: u8 = 0x88;
    /// WRITE(16).
    pub const WRITE_16: u8 = 0x8A;
    /// SYNCHRONIZE CACHE(16).
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    /// SERVICE ACTION IN(16) (READ CAPACITY(16) is its service action 0x10).
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
}

/// Service action of READ CAPACITY(16).
pub const READ_CAPACITY_16_ACTION: u8 = 0x10;
/// Bytes of READ CAPACITY(16) parameter data the guest asks for.
pub const READ_CAPACITY_16_LEN: u32 = 32;
/// SCSI status: good.
pub const STATUS_GOOD: u8 = 0x00;
/// SCSI status: check condition (sense data tells why).
pub const STATUS_CHECK_CONDITION: u8 = 0x02;
/// SCSI status: busy.
pub const STATUS_BUSY: u8 = 0x08;
/// SCSI status: reservation conflict.
pub const STATUS_RESERVATION_CONFLICT: u8 = 0x18;
/// SCSI status: task set full.
pub const STATUS_TASK_SET_FULL: u8 = 0x28;

/// A SCSI command: CDB, direction, data length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// The CDB, zero-padded to 16 bytes.
    pub cdb: [u8; MAX_CDB_LEN],
    /// Bytes of the CDB.
    pub cdb_len: u8,
    /// Direction of the data.
    pub direction: Direction,
    /// Bytes of data.
    pub data_len: u32,
}

/// Why a command could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandError {
    /// Blocks times block size does not fit 32 bits.
    TooLong {
        /// Blocks asked for.
        blocks: u32,
        /// Block size.
        block_size: u32,
    },
    /// A block size of zero.
    ZeroBlockSize,
}

impl core::fmt::Display for CommandError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CommandError::TooLong { blocks, block_size } => write!(
                f,
                "{blocks} blocks of {block_size} bytes exceed a 32-bit transfer length"
            ),
            CommandError::ZeroBlockSize => f.write_str("block size of zero"),
        }
    }
}

impl Command {
    fn new(cdb_len: u8, direction: Direction, data_len: u32) -> Command {
        Command {
            cdb: [0; MAX_CDB_LEN],
            cdb_len,
            direction,
            data_len,
        }
    }

    /// TEST UNIT READY (6 bytes, no data).
    #[must_use]
    pub fn test_unit_ready() -> Command {
        Command::new(6, Direction::None, 0)
    }

    /// INQUIRY for the standard data, `alloc` bytes.
    #[must_use]
    pub fn inquiry(alloc: u16) -> Command {
        let mut c = Command::new(6, Direction::In, u32::from(alloc));
        c.cdb[0] = opcode::INQUIRY;
        c.cdb[3..5].copy_from_slice(&alloc.to_be_bytes());
        c
    }

    /// INQUIRY for vital product data page `page`, `alloc` bytes.
    #[must_use]
    pub fn inquiry_vpd(page: u8, alloc: u16) -> Command {
        let mut c = Command::inquiry(alloc);
        c.cdb[1] = 1;
        c.cdb[2] = page;
        c
    }

    /// READ CAPACITY(16), 32 bytes of parameter data.
    #[must_use]
    pub fn read_capacity_16() -> Command {
        let mut c = Command::new(16, Direction::In, READ_CAPACITY_16_LEN);
        c.cdb[0] = opcode::SERVICE_ACTION_IN_16;
        c.cdb[1] = READ_CAPACITY_16_ACTION;
        c.cdb[10..14].copy_from_slice(&READ_CAPACITY_16_LEN.to_be_bytes());
        c
    }

    fn rw16(
        op: u8,
        direction: Direction,
        lba: u64,
        blocks: u32,
        block_size: u32,
    ) -> Result<Command, CommandError> {
        if block_size == 0 {
            return Err(CommandError::ZeroBlockSize);
        }
        let len = blocks
            .checked_mul(block_size)
            .ok_or(CommandError::TooLong { blocks, block_size })?;
        let mut c = Command::new(16, direction, len);
        c.cdb[0] = op;
        c.cdb[2..10].copy_from_slice(&lba.to_be_bytes());
        c.cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
        Ok(c)
    }

    /// READ(16) of `blocks` blocks of `block_size` bytes at `lba`.
    ///
    /// # Errors
    /// [`CommandError`] when the transfer does not fit 32 bits or the block size is zero.
    pub fn read_16(lba: u64, blocks: u32, block_size: u32) -> Result<Command, CommandError> {
        Command::rw16(opcode::READ_16, Direction::In, lba, blocks, block_size)
    }

    /// WRITE(16) of `blocks` blocks of `block_size` bytes at `lba`; `fua` forces them to the
    /// medium before the completion.
    ///
    /// # Errors
    /// As [`Command::read_16`].
    pub fn write_16(
        lba: u64,
        blocks: u32,
        block_size: u32,
        fua: bool,
    ) -> Result<Command, CommandError> {
        let mut c = Command::rw16(opcode::WRITE_16, Direction::Out, lba, blocks, block_size)?;
        if fua {
            c.cdb[1] |= 0x08;
        }
        Ok(c)
    }

    /// SYNCHRONIZE CACHE(16) of `blocks` blocks at `lba` (0 and 0: the whole medium); no data.
    #[must_use]
    pub fn synchronize_cache_16(lba: u64, blocks: u32) -> Command {
        let mut c = Command::new(16, Direction::None, 0);
        c.cdb[0] = opcode::SYNCHRONIZE_CACHE_16;
        c.cdb[2..10].copy_from_slice(&lba.to_be_bytes());
        c.cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
        c
    }

    /// The operation code.
    #[must_use]
    pub const fn opcode(&self) -> u8 {
        self.cdb[0]
    }
}

/// READ CAPACITY(16) parameter data, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Blocks on the medium (the last LBA plus one).
    pub blocks: u64,
    /// Bytes per logical block.
    pub block_size: u32,
    /// Logical blocks per physical block, as a power of two.
    pub physical_exponent: u8,
    /// Thin provisioning (logical block provisioning management) enabled.
    pub thin: bool,
}

/// Why READ CAPACITY(16) data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityError {
    /// Fewer than the 12 bytes that carry the last LBA and the block size.
    Short {
        /// Bytes there.
        got: usize,
    },
    /// A block size of zero.
    ZeroBlockSize,
    /// A last LBA of 2^64 - 1: the block count does not fit 64 bits.
    LbaOverflow,
}

impl core::fmt::Display for CapacityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CapacityError::Short { got } => {
                write!(f, "READ CAPACITY(16) data of {got} bytes, 12 needed")
            }
            CapacityError::ZeroBlockSize => f.write_str("READ CAPACITY(16) block size of zero"),
            CapacityError::LbaOverflow => f.write_str("READ CAPACITY(16) last LBA overflows"),
        }
    }
}

impl Capacity {
    /// Parses the bytes the device returned (`data` holds only what it transferred).
    ///
    /// # Errors
    /// [`CapacityError`].
    pub fn parse(data: &[u8]) -> Result<Capacity, CapacityError> {
        if data.len() < 12 {
            return Err(CapacityError::Short { got: data.len() });
        }
        let mut lba = [0u8; 8];
        lba.copy_from_slice(&data[0..8]);
        let last = u64::from_be_bytes(lba);
        let block_size = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        if block_size == 0 {
            return Err(CapacityError::ZeroBlockSize);
        }
        let blocks = last.checked_add(1).ok_or(CapacityError::LbaOverflow)?;
        Ok(Capacity {
            blocks,
            block_size,
            physical_exponent: data.get(13).map_or(0, |b| b & 0x0f),
            thin: data.get(14).is_some_and(|b| b & 0x80 != 0),
        })
    }

    /// Bytes on the medium (saturating).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.blocks.saturating_mul(u64::from(self.block_size))
    }
}

/// The key facts of sense data: sense key, additional sense code and qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// Sense key (0..15).
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
}

impl Sense {
    /// Sense key: not ready.
    pub const NOT_READY: u8 = 0x2;
    /// Sense key: medium error.
    pub const MEDIUM_ERROR: u8 = 0x3;
    /// Sense key: hardware error.
    pub const HARDWARE_ERROR: u8 = 0x4;
    /// Sense key: illegal request.
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    /// Sense key: unit attention.
    pub const UNIT_ATTENTION: u8 = 0x6;

    /// Parses fixed (0x70, 0x71) or descriptor (0x72, 0x73) format sense data; `None` for
    /// another response code or too few bytes for the key (ASC and ASCQ read as zero when a
    /// fixed-format buffer stops before them).
    #[must_use]
    pub fn parse(data: &[u8]) -> Option<Sense> {
        match data.first()? & 0x7f {
            0x70 | 0x71 => Some(Sense {
                key: data.get(2)? & 0x0f,
                asc: data.get(12).copied().unwrap_or(0),
                ascq: data.get(13).copied().unwrap_or(0),
            }),
            0x72 | 0x73 => Some(Sense {
                key: data.get(1)? & 0x0f,
                asc: data.get(2).copied().unwrap_or(0),
                ascq: data.get(3).copied().unwrap_or(0),
            }),
            _ => None,
        }
    }
}

impl core::fmt::Display for Sense {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "sense key {:#x}, ASC {:#04x}, ASCQ {:#04x}",
            self.key, self.asc, self.ascq
        )
    }
}
