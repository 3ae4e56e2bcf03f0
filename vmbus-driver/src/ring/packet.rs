//! Packet framing (docs/protocol.md#packets): descriptor, packet types, GPA-direct ranges.

use core::fmt;

use crate::hv::{PAGE_SIZE_U32, PAGE_SIZE_U64};

/// Length of the fixed packet descriptor.
pub const DESCRIPTOR_LEN: u32 = 16;
/// Length of the trailer (previous write index) that follows every packet.
pub const TRAILER_LEN: u32 = 8;
/// Descriptor flag bit 0: the sender asks for a completion packet.
pub const FLAG_COMPLETION_REQUESTED: u16 = 1;
/// Largest packet length without trailer that the 16-bit `len8` field can describe.
pub const MAX_PACKET_LEN: u32 = u16::MAX as u32 * 8;

/// A VMBus packet type: an open set of 16-bit values, as read from the wire (never a Rust enum
/// built from peer bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PacketType(pub u16);

impl PacketType {
    /// 0x0: invalid; never accepted from a peer.
    pub const INVALID: Self = Self(0x0);
    /// 0x1: synch.
    pub const SYNCH: Self = Self(0x1);
    /// 0x2: add transfer page set.
    pub const ADD_XFER_PAGESET: Self = Self(0x2);
    /// 0x3: remove transfer page set.
    pub const RM_XFER_PAGESET: Self = Self(0x3);
    /// 0x4: establish GPADL.
    pub const ESTABLISH_GPADL: Self = Self(0x4);
    /// 0x5: tear down GPADL.
    pub const TEARDOWN_GPADL: Self = Self(0x5);
    /// 0x6: normal in-band data.
    pub const DATA_INBAND: Self = Self(0x6);
    /// 0x7: data using transfer pages (netvsc receive path).
    pub const DATA_USING_XFER_PAGES: Self = Self(0x7);
    /// 0x8: data using a GPADL.
    pub const DATA_USING_GPADL: Self = Self(0x8);
    /// 0x9: data in external buffers described by guest-physical page ranges.
    pub const DATA_USING_GPA_DIRECT: Self = Self(0x9);
    /// 0xA: cancel request.
    pub const CANCEL_REQUEST: Self = Self(0xA);
    /// 0xB: completion; the transaction id is the request's.
    pub const COMP: Self = Self(0xB);
    /// 0xC: data using an additional packet.
    pub const DATA_USING_ADDITIONAL_PKT: Self = Self(0xC);
    /// 0xD: additional data.
    pub const ADDITIONAL_DATA: Self = Self(0xD);

    /// Whether the type is one of the named types a peer may send (0x1 to 0xD). The ring validates
    /// only framing; the channel decides which of these it handles.
    #[inline]
    pub const fn is_known(self) -> bool {
        self.0 >= Self::SYNCH.0 && self.0 <= Self::ADDITIONAL_DATA.0
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "packet type {:#x}", self.0)
    }
}

/// The 16-byte packet descriptor, decoded from a local copy of the ring bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// Packet type.
    pub packet_type: PacketType,
    /// Payload offset from the packet start, in 8-byte units.
    pub offset8: u16,
    /// Packet length without trailer, in 8-byte units.
    pub len8: u16,
    /// Flags; only bit 0 (completion requested) is defined.
    pub flags: u16,
    /// Transaction id, echoed in the completion.
    pub transaction_id: u64,
}

impl Descriptor {
    /// Encodes the descriptor (little-endian, offsets of docs/protocol.md#packets).
    #[inline]
    pub fn to_bytes(&self) -> [u8; 16] {
        let [head, id] = self.to_words();
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&head.to_le_bytes());
        b[8..].copy_from_slice(&id.to_le_bytes());
        b
    }

    /// Encodes the descriptor as its two little-endian words: type in bits 15:0 of the first,
    /// offset8 in 31:16, len8 in 47:32, flags in 63:48; the transaction id is the second (the
    /// byte offsets of docs/protocol.md#packets).
    #[inline]
    pub fn to_words(&self) -> [u64; 2] {
        let head = u64::from(self.packet_type.0)
            | u64::from(self.offset8) << 16
            | u64::from(self.len8) << 32
            | u64::from(self.flags) << 48;
        [head, self.transaction_id]
    }

    /// Decodes a descriptor from its two little-endian words without validating it.
    #[inline]
    pub fn from_words(head: u64, transaction_id: u64) -> Self {
        // Truncating casts: each field is 16 bits of the first word.
        Self {
            packet_type: PacketType(head as u16),
            offset8: (head >> 16) as u16,
            len8: (head >> 32) as u16,
            flags: (head >> 48) as u16,
            transaction_id,
        }
    }

    /// Decodes a descriptor without validating it.
    #[inline]
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(w)
        };
        Self::from_words(word(0), word(8))
    }
}

/// One range of a transfer-page packet (type 7): `byte_count` bytes at `byte_offset` inside
/// the transfer page set the packet names (netvsc's receive buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferRange {
    /// Bytes in the range.
    pub byte_count: u32,
    /// Offset of the range in the page set.
    pub byte_offset: u32,
}

/// One range of a GPA-direct packet: `byte_count` bytes starting `byte_offset` bytes into the
/// first of `pfns`, the 4 KiB guest page numbers the range spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpaRange<'a> {
    /// Bytes in the range (> 0).
    pub byte_count: u32,
    /// Offset into the first page (< 4096).
    pub byte_offset: u32,
    /// Page numbers, exactly as many as the range spans.
    pub pfns: &'a [u64],
}

impl GpaRange<'_> {
    /// Pages spanned by the range, or `None` when the range is malformed (empty, offset not
    /// inside the first page, or `pfns` of the wrong length).
    pub fn checked_pages(&self) -> Option<u32> {
        if self.byte_count == 0 || self.byte_offset >= PAGE_SIZE_U32 {
            return None;
        }
        let end = u64::from(self.byte_offset) + u64::from(self.byte_count);
        let pages = end.div_ceil(PAGE_SIZE_U64);
        (pages == self.pfns.len() as u64).then_some(pages as u32)
    }

    /// Encoded length of the range: byte_count, byte_offset, then one u64 per page.
    pub fn encoded_len(&self) -> usize {
        8 + 8 * self.pfns.len()
    }
}
