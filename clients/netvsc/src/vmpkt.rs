//! Raw VMBus packets: the 16-byte descriptor, the transfer-page header of type 7 packets, and
//! builders for the completion (type 11) and GPA-direct (type 9) packets netvsc sends.
//!
//! `vmbus-client` hands a received packet out in parts (`Channel::recv_with_ext`: type,
//! transaction id, extended descriptor, payload), which make a [`RawPacket`] directly; it sends
//! completions (`Channel::send_completion`) and GPA-direct packets (`Channel::send_gpa_direct`,
//! whose ranges are these [`GpaRange`]s field for field). [`RawPacket::parse`],
//! [`encode_completion`] and [`encode_gpa_direct`] serve callers that move whole packets
//! (a host model, tests).
//!
//! Descriptor: type u16, `offset8` u16 (payload offset in 8-byte units), `len8` u16 (packet
//! length without the ring's trailer, in 8-byte units), flags u16 (bit 0: completion
//! requested), transaction id u64. A transfer-page packet's extended header: transfer page set
//! id u16, sender-owns-set u8, reserved u8, range count u32, then per range byte count u32 and
//! byte offset u32. A GPA-direct packet's: reserved u32, range count u32, then per range byte
//! count u32, byte offset u32 and one u64 frame number per page it spans.

use crate::wire::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};

/// Bytes of the packet descriptor.
pub const DESCRIPTOR_LEN: usize = 16;
/// In-band data.
pub const TYPE_DATA_INBAND: u16 = 6;
/// Data in transfer pages (the receive buffer).
pub const TYPE_DATA_XFER_PAGES: u16 = 7;
/// Data in guest-physical page ranges.
pub const TYPE_DATA_GPA_DIRECT: u16 = 9;
/// Completion.
pub const TYPE_COMPLETION: u16 = 11;
/// Descriptor flag: the sender wants a completion.
pub const FLAG_COMPLETION_REQUESTED: u16 = 1;
/// Bytes of a page.
pub const PAGE_SIZE: u32 = 4096;

/// Why a raw packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketError {
    /// Shorter than the descriptor, or than its `len8` says.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        got: usize,
    },
    /// `offset8` below 2 or above `len8`.
    BadOffset {
        /// `offset8`.
        offset8: u16,
        /// `len8`.
        len8: u16,
    },
    /// A transfer-page header shorter than 8 bytes, or with more ranges than it holds.
    BadRangeCount {
        /// Ranges announced.
        count: u32,
        /// Ranges the header holds.
        room: usize,
    },
    /// The output buffer is too small for the packet being built.
    NoRoom {
        /// Bytes needed.
        needed: usize,
    },
    /// A GPA range that is empty, starts outside its first page, or lists the wrong number
    /// of pages.
    BadGpaRange,
}

impl core::fmt::Display for PacketError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PacketError::Truncated { needed, got } => {
                write!(f, "packet of {got} bytes, {needed} needed")
            }
            PacketError::BadOffset { offset8, len8 } => {
                write!(f, "payload offset8 {offset8} invalid for len8 {len8}")
            }
            PacketError::BadRangeCount { count, room } => {
                write!(f, "{count} transfer ranges announced, room for {room}")
            }
            PacketError::NoRoom { needed } => write!(f, "{needed} bytes needed to build"),
            PacketError::BadGpaRange => f.write_str("malformed GPA range"),
        }
    }
}

/// A packet split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// Packet type.
    pub packet_type: u16,
    /// Descriptor flags.
    pub flags: u16,
    /// Transaction id.
    pub transaction_id: u64,
    /// Extended header bytes between the descriptor and the payload.
    pub ext: &'a [u8],
    /// Payload bytes (with the sender's padding).
    pub payload: &'a [u8],
}

impl<'a> RawPacket<'a> {
    /// Splits `b`, a packet from its descriptor on (bytes after `len8 * 8` are ignored).
    ///
    /// # Errors
    /// [`PacketError::Truncated`], [`PacketError::BadOffset`].
    pub fn parse(b: &'a [u8]) -> Result<RawPacket<'a>, PacketError> {
        if b.len() < DESCRIPTOR_LEN {
            return Err(PacketError::Truncated {
                needed: DESCRIPTOR_LEN,
                got: b.len(),
            });
        }
        let field = |at| u16_at(b, at).unwrap_or(0);
        let (packet_type, offset8, len8, flags) = (field(0), field(2), field(4), field(6));
        if offset8 < 2 || offset8 > len8 {
            return Err(PacketError::BadOffset { offset8, len8 });
        }
        let len = usize::from(len8) * 8;
        if b.len() < len {
            return Err(PacketError::Truncated {
                needed: len,
                got: b.len(),
            });
        }
        let offset = usize::from(offset8) * 8;
        Ok(RawPacket {
            packet_type,
            flags,
            transaction_id: u64_at(b, 8).unwrap_or(0),
            ext: &b[DESCRIPTOR_LEN..offset],
            payload: &b[offset..len],
        })
    }

    /// Whether the sender asked for a completion.
    pub fn completion_requested(&self) -> bool {
        self.flags & FLAG_COMPLETION_REQUESTED != 0
    }
}

/// One transfer-page range: bytes of the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XferRange {
    /// Bytes.
    pub byte_count: u32,
    /// Offset in the receive buffer.
    pub byte_offset: u32,
}

/// The extended header of a transfer-page packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XferPages<'a> {
    /// Transfer page set id (the receive buffer's id).
    pub set_id: u16,
    count: u32,
    ranges: &'a [u8],
}

impl<'a> XferPages<'a> {
    /// Parses the extended header `ext` of a transfer-page packet.
    ///
    /// # Errors
    /// [`PacketError::BadRangeCount`] when the header is short or announces more ranges than
    /// it holds.
    pub fn parse(ext: &'a [u8]) -> Result<XferPages<'a>, PacketError> {
        let (Some(set_id), Some(count)) = (u16_at(ext, 0), u32_at(ext, 4)) else {
            return Err(PacketError::BadRangeCount { count: 0, room: 0 });
        };
        let room = (ext.len() - 8) / 8;
        if count as usize > room {
            return Err(PacketError::BadRangeCount { count, room });
        }
        Ok(XferPages {
            set_id,
            count,
            ranges: &ext[8..8 + count as usize * 8],
        })
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The ranges.
    pub fn ranges(&self) -> impl Iterator<Item = XferRange> + 'a {
        self.ranges.chunks_exact(8).map(|c| XferRange {
            byte_count: u32_at(c, 0).unwrap_or(0),
            byte_offset: u32_at(c, 4).unwrap_or(0),
        })
    }
}

/// A range of guest-physical pages for a GPA-direct packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpaRange<'a> {
    /// Bytes (> 0).
    pub byte_count: u32,
    /// Offset in the first page (< 4096).
    pub byte_offset: u32,
    /// Frame numbers, one per page the range spans.
    pub pfns: &'a [u64],
}

impl GpaRange<'_> {
    fn valid(&self) -> bool {
        if self.byte_count == 0 || self.byte_offset >= PAGE_SIZE {
            return false;
        }
        let end = u64::from(self.byte_offset) + u64::from(self.byte_count);
        end.div_ceil(u64::from(PAGE_SIZE)) == self.pfns.len() as u64
    }
}

fn descriptor(out: &mut [u8], ty: u16, offset: usize, len: usize, flags: u16, tid: u64) {
    put_u16(out, 0, ty);
    put_u16(out, 2, (offset / 8) as u16);
    put_u16(out, 4, (len / 8) as u16);
    put_u16(out, 6, flags);
    put_u64(out, 8, tid);
}

fn finish(
    out: &mut [u8],
    ty: u16,
    offset: usize,
    flags: u16,
    tid: u64,
    payload: &[u8],
) -> Result<usize, PacketError> {
    let len = offset + payload.len().next_multiple_of(8);
    if len / 8 > usize::from(u16::MAX) {
        return Err(PacketError::NoRoom { needed: len });
    }
    let Some(dst) = out.get_mut(..len) else {
        return Err(PacketError::NoRoom { needed: len });
    };
    dst[offset..offset + payload.len()].copy_from_slice(payload);
    dst[offset + payload.len()..].fill(0);
    descriptor(dst, ty, offset, len, flags, tid);
    Ok(len)
}

/// Builds a completion packet (type 11) for `transaction_id` carrying `payload` into `out`;
/// returns its length.
///
/// # Errors
/// [`PacketError::NoRoom`].
pub fn encode_completion(
    transaction_id: u64,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, PacketError> {
    finish(
        out,
        TYPE_COMPLETION,
        DESCRIPTOR_LEN,
        0,
        transaction_id,
        payload,
    )
}

/// Builds a GPA-direct packet (type 9) with a completion request, describing `ranges`,
/// followed by `payload`; returns its length.
///
/// # Errors
/// [`PacketError::BadGpaRange`], [`PacketError::NoRoom`].
pub fn encode_gpa_direct(
    transaction_id: u64,
    ranges: &[GpaRange<'_>],
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, PacketError> {
    if ranges.is_empty() || !ranges.iter().all(GpaRange::valid) {
        return Err(PacketError::BadGpaRange);
    }
    let ext: usize = 8 + ranges.iter().map(|r| 8 + 8 * r.pfns.len()).sum::<usize>();
    let offset = DESCRIPTOR_LEN + ext;
    if out.len() < offset {
        return Err(PacketError::NoRoom { needed: offset });
    }
    put_u32(out, 16, 0);
    put_u32(out, 20, ranges.len() as u32);
    let mut at = 24;
    for r in ranges {
        put_u32(out, at, r.byte_count);
        put_u32(out, at + 4, r.byte_offset);
        at += 8;
        for &pfn in r.pfns {
            put_u64(out, at, pfn);
            at += 8;
        }
    }
    finish(
        out,
        TYPE_DATA_GPA_DIRECT,
        offset,
        FLAG_COMPLETION_REQUESTED,
        transaction_id,
        payload,
    )
}
