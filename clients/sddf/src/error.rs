//! Errors: a bad configuration (ours), a full queue, a value the caller passed that the queue
//! refuses, and a peer that broke the protocol.

use core::fmt;

/// Which shared queue or page an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueId {
    /// A network free queue (empty buffers).
    NetFree,
    /// A network active queue (filled buffers).
    NetActive,
    /// A block request queue.
    BlkRequest,
    /// A block response queue.
    BlkResponse,
    /// A block storage-info page.
    StorageInfo,
}

/// A queue handle cannot be built: the configuration, not the peer, is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The capacity is zero, not a power of two, or too large for the queue's index width.
    BadCapacity {
        /// The queue.
        queue: QueueId,
        /// The capacity asked for.
        capacity: u32,
    },
    /// The shared region is too small for the queue's header and `capacity` entries.
    RegionTooSmall {
        /// The queue.
        queue: QueueId,
        /// Bytes the layout needs.
        needed: usize,
        /// Bytes the region has.
        have: usize,
    },
    /// A data region whose end overflows, or a network buffer size of zero.
    BadDataRegion,
}

/// Something the peer wrote into shared memory breaks the protocol: a misbehaving (or hostile)
/// peer. Never caused by this side; never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerError {
    /// The peer's index is more than `capacity` entries away from ours (modulo the index width):
    /// the peer moved it out of range. Nothing was consumed or produced.
    IndexOutOfRange {
        /// The queue.
        queue: QueueId,
        /// This side's index.
        ours: u32,
        /// The index the peer wrote.
        theirs: u32,
        /// The queue's capacity.
        capacity: u32,
    },
    /// A network buffer descriptor outside the data region: an address or offset outside it, not
    /// on a buffer boundary, or a length beyond one buffer. The descriptor was consumed (the
    /// queue moves on); the values are the peer's, for the log.
    BadBuffer {
        /// The queue it came from.
        queue: QueueId,
        /// `io_or_offset` as written.
        io_or_offset: u64,
        /// `len` as written.
        len: u16,
    },
    /// A block request the responder cannot carry out. It was consumed; `id` is the peer's, so the
    /// driver end can answer it with an error status ([`crate::BlkStatus::InvalidParam`] for
    /// everything but an unknown code, which it may answer with
    /// [`crate::BlkStatus::Unspecified`]).
    BadRequest {
        /// The request's id.
        id: u32,
        /// What is wrong with it.
        fault: RequestFault,
    },
    /// A block response with a status code this version does not define. It was consumed.
    UnknownStatus {
        /// The response's id.
        id: u32,
        /// The status word as written.
        status: u32,
    },
    /// A boolean byte holding something other than 0 or 1.
    BadFlag {
        /// The flag.
        flag: Flag,
        /// The byte as written.
        value: u8,
    },
    /// A storage-info page marked ready whose contents are not valid.
    BadStorageInfo(StorageFault),
}

/// A boolean field of shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `blk_req_queue.plugged`.
    Plugged,
    /// `blk_storage_info.ready`.
    Ready,
    /// `blk_storage_info.read_only`.
    ReadOnly,
}

/// What is wrong with a block request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFault {
    /// The request code is none of READ, WRITE, FLUSH, BARRIER (the value as written).
    UnknownCode(u32),
    /// `block_number + count` overflows a `u64`.
    CountOverflow,
    /// The transfer (`count` blocks of [`crate::BLK_TRANSFER_SIZE`] bytes at `io_or_offset`) does
    /// not lie inside the data region.
    OutOfRegion,
    /// The transfer runs past the end of the device (`block_number + count > capacity`).
    BeyondDevice,
    /// A WRITE to a device marked read-only.
    ReadOnly,
}

/// What is wrong with a storage-info page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// The serial number has no terminating NUL in its 64 bytes.
    SerialNotTerminated,
    /// The sector size is not a power of two in 512..=4096.
    BadSectorSize(u16),
    /// The block size (in transfer units) is zero.
    ZeroBlockSize,
}

/// Why an enqueue did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueError<I> {
    /// The queue holds `capacity` entries; try again after the peer consumed some.
    Full,
    /// The caller's entry is not valid for this queue (the reason); nothing was written.
    Invalid(I),
    /// The peer broke the protocol; nothing was written.
    Peer(PeerError),
}

impl<I> From<PeerError> for EnqueueError<I> {
    fn from(err: PeerError) -> Self {
        Self::Peer(err)
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NetFree => "net free queue",
            Self::NetActive => "net active queue",
            Self::BlkRequest => "blk request queue",
            Self::BlkResponse => "blk response queue",
            Self::StorageInfo => "blk storage info",
        })
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCapacity { queue, capacity } => {
                write!(
                    f,
                    "{queue}: capacity {capacity} is not a valid power of two"
                )
            }
            Self::RegionTooSmall {
                queue,
                needed,
                have,
            } => write!(f, "{queue}: region of {have} bytes, layout needs {needed}"),
            Self::BadDataRegion => f.write_str("data region overflows or has zero-sized buffers"),
        }
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IndexOutOfRange {
                queue,
                ours,
                theirs,
                capacity,
            } => write!(
                f,
                "{queue}: peer index {theirs} out of range (ours {ours}, capacity {capacity})"
            ),
            Self::BadBuffer {
                queue,
                io_or_offset,
                len,
            } => write!(
                f,
                "{queue}: buffer {io_or_offset:#x} len {len} outside the data region"
            ),
            Self::BadRequest { id, fault } => write!(f, "blk request {id}: {fault:?}"),
            Self::UnknownStatus { id, status } => {
                write!(f, "blk response {id}: unknown status {status}")
            }
            Self::BadFlag { flag, value } => write!(f, "{flag:?} flag holds {value}"),
            Self::BadStorageInfo(fault) => write!(f, "storage info: {fault:?}"),
        }
    }
}

impl core::error::Error for ConfigError {}
impl core::error::Error for PeerError {}
