//! Dynamic Memory messages: header, types, versions, the start-up bodies, and the balloon,
//! unballoon, status, hot-add and information messages with the [`PageRange`] they carry.
//!
//! Layouts after start-up (all little-endian, after the 8-byte header):
//!
//! | message | body |
//! |---|---|
//! | `DM_BALLOON_REQUEST` (host) | `num_pages` u32, `reservedz` u32 |
//! | `DM_BALLOON_RESPONSE` (guest) | `reservedz` u32, u32 of `more_pages` (bit 0) and `range_count` (bits 1..32), ranges |
//! | `DM_UNBALLOON_REQUEST` (host) | u32 of `more_pages` (bit 0) and `reservedz`, `range_count` u32, ranges |
//! | `DM_UNBALLOON_RESPONSE` (guest) | nothing |
//! | `DM_STATUS_REPORT` (guest) | `num_avail`, `num_committed`, `page_file_size`, `zero_free` u64; `page_file_writes`, `io_diff` u32 |
//! | `DM_MEM_HOT_ADD_REQUEST` (host) | `range`, then optionally `region` (one range each) |
//! | `DM_MEM_HOT_ADD_RESPONSE` (guest) | `page_count` u32, `result` u32 (1 success, 0 failure) |
//! | `DM_INFO_MESSAGE` (host) | `reserved` u32, `info_size` u32, then entries of `type` u32, `data_size` u32, data |
//!
//! A range is a [`PageRange`] (8 bytes).

mod hot_add;
mod ops;
mod range;

pub use hot_add::*;
pub use ops::*;
pub use range::*;

/// The device class of the Dynamic Memory device, in VMBus wire byte order
/// (`525074dc-8985-46e2-8057-a307dc18a502`).
pub const CLASS: [u8; 16] = [
    0xdc, 0x74, 0x50, 0x52, 0x85, 0x89, 0xe2, 0x46, 0x80, 0x57, 0xa3, 0x07, 0xdc, 0x18, 0xa5, 0x02,
];

/// Bytes of the message header.
pub const HEADER_SIZE: usize = 8;

/// A protocol version: major in the high 16 bits, minor in the low 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32);

impl Version {
    /// 0.3 (Windows 7 hosts).
    pub const V0_3: Version = Version(0x0000_0003);
    /// 1.0 (Windows 8 hosts).
    pub const V1_0: Version = Version(0x0001_0000);
    /// 2.0 (Windows 10 hosts; hot remove).
    pub const V2_0: Version = Version(0x0002_0000);
    /// The versions the guest proposes, newest first.
    pub const PROPOSALS: [Version; 3] = [Version::V2_0, Version::V1_0, Version::V0_3];

    /// Major number.
    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// Minor number.
    pub const fn minor(self) -> u16 {
        self.0 as u16
    }
}

impl core::fmt::Display for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

/// Message types (`dm_message_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgType(pub u16);

impl MsgType {
    /// An error report.
    pub const ERROR: MsgType = MsgType(0);
    /// Guest proposes a version.
    pub const VERSION_REQUEST: MsgType = MsgType(1);
    /// Host accepts or refuses it.
    pub const VERSION_RESPONSE: MsgType = MsgType(2);
    /// Guest reports its capabilities.
    pub const CAPABILITIES_REPORT: MsgType = MsgType(3);
    /// Host accepts or refuses them.
    pub const CAPABILITIES_RESPONSE: MsgType = MsgType(4);
    /// Guest reports memory pressure.
    pub const STATUS_REPORT: MsgType = MsgType(5);
    /// Host asks the guest to give pages (inflate).
    pub const BALLOON_REQUEST: MsgType = MsgType(6);
    /// Guest answers with the pages it gave.
    pub const BALLOON_RESPONSE: MsgType = MsgType(7);
    /// Host gives pages back (deflate).
    pub const UNBALLOON_REQUEST: MsgType = MsgType(8);
    /// Guest acknowledges.
    pub const UNBALLOON_RESPONSE: MsgType = MsgType(9);
    /// Host adds memory.
    pub const HOT_ADD_REQUEST: MsgType = MsgType(10);
    /// Guest answers.
    pub const HOT_ADD_RESPONSE: MsgType = MsgType(11);
    /// Host information (1.0).
    pub const INFO: MsgType = MsgType(12);
    /// Host asks for memory back (2.0).
    pub const HOT_REMOVE_REQUEST: MsgType = MsgType(13);
    /// Guest answers (2.0).
    pub const HOT_REMOVE_RESPONSE: MsgType = MsgType(14);
}

/// The message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub ty: MsgType,
    /// Bytes of the whole message, header included.
    pub size: u16,
    /// Transaction id.
    pub trans_id: u32,
}

/// Why a message from the host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the header, or than the header's size says.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        got: usize,
    },
    /// The header's size is smaller than the header or than this type's body.
    BadSize {
        /// The type.
        ty: MsgType,
        /// The size the header gave.
        size: u16,
    },
    /// Not the type expected here.
    Unexpected(MsgType),
    /// A range count larger than the ranges the message's size holds.
    RangeCount {
        /// The count the host wrote.
        count: u32,
        /// Ranges the message holds.
        room: usize,
    },
    /// A range of the message is not valid (empty, or past the 40-bit page limit).
    BadRange {
        /// Its index in the message.
        index: u32,
        /// What is wrong.
        error: RangeError,
    },
    /// An information message whose `info_size` is larger than its body.
    InfoSize {
        /// The size the host wrote.
        size: u32,
        /// Bytes there.
        room: usize,
    },
    /// An information entry that runs past the information bytes (its offset in them).
    InfoEntry {
        /// Offset of the entry.
        at: usize,
    },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Truncated { needed, got } => {
                write!(f, "truncated message: {got} bytes, {needed} needed")
            }
            DecodeError::BadSize { ty, size } => {
                write!(f, "message type {} with a bad size field {size}", ty.0)
            }
            DecodeError::Unexpected(t) => write!(f, "unexpected message type {}", t.0),
            DecodeError::RangeCount { count, room } => {
                write!(f, "{count} ranges announced, room for {room}")
            }
            DecodeError::BadRange { index, error } => write!(f, "range {index}: {error}"),
            DecodeError::InfoSize { size, room } => {
                write!(f, "information of {size} bytes announced, {room} there")
            }
            DecodeError::InfoEntry { at } => {
                write!(
                    f,
                    "information entry at byte {at} runs past the information"
                )
            }
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits `packet` into its header and the message's body (`size - 8` bytes; bytes beyond the
/// header's size are padding of the VMBus packet and ignored).
pub fn split(packet: &[u8]) -> Result<(Header, &[u8]), DecodeError> {
    if packet.len() < HEADER_SIZE {
        return Err(DecodeError::Truncated {
            needed: HEADER_SIZE,
            got: packet.len(),
        });
    }
    let h = Header {
        ty: MsgType(u16_at(packet, 0)),
        size: u16_at(packet, 2),
        trans_id: u32_at(packet, 4),
    };
    let size = usize::from(h.size);
    if size < HEADER_SIZE {
        return Err(DecodeError::BadSize {
            ty: h.ty,
            size: h.size,
        });
    }
    if packet.len() < size {
        return Err(DecodeError::Truncated {
            needed: size,
            got: packet.len(),
        });
    }
    Ok((h, &packet[HEADER_SIZE..size]))
}

/// The body of type `ty` in `packet`, at least `min` bytes long.
fn body_of(packet: &[u8], ty: MsgType, min: usize) -> Result<(Header, &[u8]), DecodeError> {
    let (h, body) = split(packet)?;
    if h.ty != ty {
        return Err(DecodeError::Unexpected(h.ty));
    }
    if body.len() < min {
        return Err(DecodeError::BadSize {
            ty: h.ty,
            size: h.size,
        });
    }
    Ok((h, body))
}

/// Writes a header for a message of `body` bytes into `out[..8]`; the message's length.
fn header(out: &mut [u8], ty: MsgType, body: usize, trans_id: u32) -> usize {
    let size = HEADER_SIZE + body;
    out[0..2].copy_from_slice(&ty.0.to_le_bytes());
    out[2..4].copy_from_slice(&(size as u16).to_le_bytes());
    out[4..8].copy_from_slice(&trans_id.to_le_bytes());
    size
}

/// Bytes of the largest message the guest sends here (the status report).
pub const MAX_GUEST_MESSAGE: usize = HEADER_SIZE + 40;

/// `DM_VERSION_REQUEST`: propose `version`; `last` says no older one follows.
pub fn version_request(
    out: &mut [u8; MAX_GUEST_MESSAGE],
    trans_id: u32,
    version: Version,
    last: bool,
) -> usize {
    out[8..12].copy_from_slice(&version.0.to_le_bytes());
    out[12..16].copy_from_slice(&u32::from(last).to_le_bytes());
    header(out, MsgType::VERSION_REQUEST, 8, trans_id)
}

/// `DM_VERSION_RESPONSE`: whether the host accepted the version (bit 0 of the body).
pub fn version_response(packet: &[u8]) -> Result<(Header, bool), DecodeError> {
    let (h, body) = body_of(packet, MsgType::VERSION_RESPONSE, 1)?;
    Ok((h, body[0] & 1 == 1))
}

/// What the guest can do (`dm_caps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// It inflates and deflates the balloon.
    pub balloon: bool,
    /// It takes hot-added memory.
    pub hot_add: bool,
    /// log2 of the hot-add alignment in MiB.
    pub hot_add_alignment: u8,
    /// It gives memory back on hot-remove requests (2.0).
    pub hot_remove: bool,
    /// Fewest pages the guest needs.
    pub min_pages: u64,
    /// Highest page number the guest can use.
    pub max_page_number: u64,
}

impl Capabilities {
    fn bits(&self) -> u64 {
        u64::from(self.balloon)
            | u64::from(self.hot_add) << 1
            | u64::from(self.hot_add_alignment & 0xf) << 2
            | u64::from(self.hot_remove) << 6
    }
}

/// `DM_CAPABILITIES_REPORT`.
pub fn capabilities_report(
    out: &mut [u8; MAX_GUEST_MESSAGE],
    trans_id: u32,
    caps: &Capabilities,
) -> usize {
    out[8..16].copy_from_slice(&caps.bits().to_le_bytes());
    out[16..24].copy_from_slice(&caps.min_pages.to_le_bytes());
    out[24..32].copy_from_slice(&caps.max_page_number.to_le_bytes());
    header(out, MsgType::CAPABILITIES_REPORT, 24, trans_id)
}

/// The host's answer to the capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilitiesResponse {
    /// Accepted (else the guest must stop the service).
    pub accepted: bool,
    /// The host may send hot-remove requests.
    pub hot_remove: bool,
    /// The host wants no status reports.
    pub suppress_pressure_reports: bool,
}

/// `DM_CAPABILITIES_RESPONSE`.
pub fn capabilities_response(packet: &[u8]) -> Result<(Header, CapabilitiesResponse), DecodeError> {
    let (h, body) = body_of(packet, MsgType::CAPABILITIES_RESPONSE, 1)?;
    let b = body[0];
    Ok((
        h,
        CapabilitiesResponse {
            accepted: b & 1 != 0,
            hot_remove: b & 2 != 0,
            suppress_pressure_reports: b & 4 != 0,
        },
    ))
}

/// Memory figures of a status report, in pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Status {
    /// Available.
    pub available: u64,
    /// Committed (the figure the host's pressure algorithm uses).
    pub committed: u64,
}

/// `DM_STATUS_REPORT` (no page file: its fields are zero). [`StatusReport`] writes every field.
pub fn status_report(out: &mut [u8; MAX_GUEST_MESSAGE], trans_id: u32, s: &Status) -> usize {
    // The buffer holds the 48 bytes: never the error.
    StatusReport::from(*s).encode(out, trans_id).unwrap_or(0)
}

/// The pages a `DM_BALLOON_REQUEST` asks for ([`BalloonRequest::decode`] also gives the
/// reserved word).
pub fn balloon_request(packet: &[u8]) -> Result<(Header, u32), DecodeError> {
    let (h, body) = body_of(packet, MsgType::BALLOON_REQUEST, 8)?;
    Ok((h, u32_at(body, 0)))
}

/// `DM_BALLOON_RESPONSE` that gives no pages and ends the transaction (a guest that cannot
/// spare memory now).
pub fn balloon_response_none(out: &mut [u8; MAX_GUEST_MESSAGE], trans_id: u32) -> usize {
    // reservedz (u32), then more_pages:1 and range_count:31 (u32): all zero.
    out[8..16].fill(0);
    header(out, MsgType::BALLOON_RESPONSE, 8, trans_id)
}
