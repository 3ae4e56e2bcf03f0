//! The client control protocol: the control page shared by the driver and one client, and the
//! postcard-encoded requests and responses exchanged through it.
//!
//! # Control page layout (one 4 KiB page per client, shared by the driver and that client only)
//!
//! | offset | size | area | written by |
//! |--------|------|------|------------|
//! | 0 | 512 | request: u32 LE length, then that many postcard bytes | client |
//! | 512 | 1532 | response: u32 LE length, then that many postcard bytes | driver |
//! | 2044 | 4 | offers delivered: u32 LE, monotonic (wraps at 2^32) | driver |
//! | 2048 | 2048 | status table: one 16-byte [`StatusRecord`] per channel slot | driver |
//!
//! The client writes a request, calls the driver (protected call), and reads the response when
//! the call returns. Status records change asynchronously (an open completes, the host
//! rescinds, an event arrives) and the driver notifies the client after each change. Every
//! field of a record is written only by the driver and only ever stored, never
//! read-modify-written in shared memory: `event_count` is a monotonic counter the driver keeps
//! privately and copies out, so the client detects new events by comparing with the last value
//! it saw.
//!
//! The offers-delivered word counts the offers of the client's classes (and instance filter)
//! that the driver received since it started, at connect and hot-added later; the driver stores
//! it and then notifies the client. A client waiting for a device reads it before listing the
//! offers and blocks only while it has not moved, so an offer that arrives between the list and
//! the wait is never missed (`vmbus_client::wait_for_offer`).

mod proto;

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::hv::PAGE_SIZE;
use crate::ids::SlotId;

pub use proto::{BufferHandle, BufferInfo, BufferLimit, FRAMES_PER_RESPONSE};
pub use proto::{ChannelHandle, ClientError, OFFERS_PER_RESPONSE, OfferInfo, Request, Response};
pub use proto::{
    LENT_RANGES_PER_RESPONSE, LendLimit, MemoryInfo, PfnRange, RECLAIM_RANGES_PER_REQUEST,
};

/// Offset of the request area.
pub const REQUEST_OFFSET: usize = 0;
/// Size of the request area (length word included).
pub const REQUEST_AREA: usize = 512;
/// Offset of the response area.
pub const RESPONSE_OFFSET: usize = 512;
/// Size of the response area (length word included).
pub const RESPONSE_AREA: usize = 1532;
/// Offset of the offers-delivered counter (u32 LE, written by the driver only): the last word
/// before the status table.
pub const OFFERS_DELIVERED_OFFSET: usize = RESPONSE_OFFSET + RESPONSE_AREA;
/// Size of the offers-delivered counter.
pub const OFFERS_DELIVERED_SIZE: usize = 4;
/// Offset of the status table.
pub const STATUS_OFFSET: usize = 2048;
/// Size of one status record.
pub const STATUS_RECORD_SIZE: usize = 16;
/// Most channel slots a client can have (the status table's capacity).
pub const MAX_SLOTS: usize = (PAGE_SIZE - STATUS_OFFSET) / STATUS_RECORD_SIZE;
/// Size of the length word that precedes a request or response.
pub const LENGTH_SIZE: usize = 4;

// The areas tile the page: request, response, offers-delivered word, status table.
const _: () = assert!(REQUEST_OFFSET + REQUEST_AREA == RESPONSE_OFFSET);
const _: () = assert!(OFFERS_DELIVERED_OFFSET + OFFERS_DELIVERED_SIZE == STATUS_OFFSET);

/// Offset of slot `slot`'s status record in the control page.
pub const fn status_offset(slot: SlotId) -> usize {
    STATUS_OFFSET + slot.index() * STATUS_RECORD_SIZE
}

/// The state of a client's channel slot, as published in its status record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChannelStatus {
    /// The slot holds no channel.
    #[default]
    Free = 0,
    /// An open is in progress (GPADL or OPENCHANNEL pending).
    Opening = 1,
    /// The channel is open and its rings are mapped in the window slot.
    Open = 2,
    /// The channel was closed or rescinded; its mappings are gone.
    Gone = 3,
    /// The open failed (host refusal, timeout or resources); nothing is mapped.
    Failed = 4,
}

impl ChannelStatus {
    /// Decodes a status word; `None` for a value the driver never writes.
    pub const fn from_u32(v: u32) -> Option<ChannelStatus> {
        Some(match v {
            0 => Self::Free,
            1 => Self::Opening,
            2 => Self::Open,
            3 => Self::Gone,
            4 => Self::Failed,
            _ => return None,
        })
    }
}

/// One slot's status record: `generation u32, state u32, event_count u32, reserved u32`, all
/// little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusRecord {
    /// The generation of the channel the record describes (the handle's generation).
    pub generation: u32,
    /// The slot's state.
    pub state: ChannelStatus,
    /// Host events delivered for this slot, monotonic over the slot's life (wraps at 2^32).
    pub event_count: u32,
}

impl StatusRecord {
    /// The record's 16 wire bytes.
    pub fn to_bytes(&self) -> [u8; STATUS_RECORD_SIZE] {
        let mut b = [0u8; STATUS_RECORD_SIZE];
        b[0..4].copy_from_slice(&self.generation.to_le_bytes());
        b[4..8].copy_from_slice(&(self.state as u32).to_le_bytes());
        b[8..12].copy_from_slice(&self.event_count.to_le_bytes());
        b
    }

    /// Reads a record; `None` if the state word is not a known state.
    pub fn from_bytes(b: &[u8; STATUS_RECORD_SIZE]) -> Option<StatusRecord> {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(StatusRecord {
            generation: word(0),
            state: ChannelStatus::from_u32(word(4))?,
            event_count: word(8),
        })
    }
}

/// Why a request or response frame could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The length word is larger than the area allows.
    LengthOutOfRange {
        /// The stated length.
        len: u32,
        /// The most the area can hold.
        max: usize,
    },
    /// The area is smaller than the length word.
    AreaTooSmall,
    /// The value does not fit the area.
    TooLarge,
    /// The bytes are not a valid postcard encoding of the expected type.
    Malformed,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthOutOfRange { len, max } => {
                write!(f, "frame length {len} exceeds the area's {max} bytes")
            }
            Self::AreaTooSmall => f.write_str("area smaller than the length word"),
            Self::TooLarge => f.write_str("value does not fit the area"),
            Self::Malformed => f.write_str("frame is not a valid postcard encoding"),
        }
    }
}

/// Encodes `value` as a frame (u32 LE length, then postcard bytes) at the start of `area` and
/// returns the number of bytes written.
pub fn encode_frame<T: Serialize>(value: &T, area: &mut [u8]) -> Result<usize, FrameError> {
    let (len_word, body) = area
        .split_first_chunk_mut::<LENGTH_SIZE>()
        .ok_or(FrameError::AreaTooSmall)?;
    let used = postcard::to_slice(value, body)
        .map_err(|_| FrameError::TooLarge)?
        .len();
    // `used` is at most the area size, far below u32::MAX.
    *len_word = (used as u32).to_le_bytes();
    Ok(LENGTH_SIZE + used)
}

/// The body length stated by a frame's length word, checked against the area size.
pub fn frame_len(len_word: [u8; LENGTH_SIZE], area_size: usize) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(len_word);
    let max = area_size.saturating_sub(LENGTH_SIZE);
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(FrameError::LengthOutOfRange { len, max }),
    }
}

/// Decodes a frame from `area` (length word first). Trailing bytes after the stated length are
/// ignored; bytes inside it that postcard does not consume are an error.
pub fn decode_frame<'de, T: Deserialize<'de>>(area: &'de [u8]) -> Result<T, FrameError> {
    let (len_word, body) = area
        .split_first_chunk::<LENGTH_SIZE>()
        .ok_or(FrameError::AreaTooSmall)?;
    let n = frame_len(*len_word, area.len())?;
    let bytes = body.get(..n).ok_or(FrameError::Malformed)?;
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((v, [])) => Ok(v),
        _ => Err(FrameError::Malformed),
    }
}
