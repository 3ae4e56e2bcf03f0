//! GPADL messages: GPADL_HEADER, GPADL_BODY, GPADL_CREATED, GPADL_TEARDOWN, GPADL_TORNDOWN
//! (docs/protocol.md#message-layouts), with fixed-capacity PFN storage so that nothing allocates.

use super::channel::{U32Field, u32_message};
use super::wire::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};
use super::{DecodeError, MAX_PAYLOAD, MessageType};
use crate::hv::{PAGE_SIZE_U32, PAGE_SIZE_U64};
use crate::ids::{GpadlId, RelId};

/// Up to `N` u64 values (range-buffer words or PFNs) in a fixed array, with a count.
///
/// Entries past the count are always zero, so derived equality compares only the content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WordList<const N: usize> {
    items: [u64; N],
    len: usize,
}

impl<const N: usize> WordList<N> {
    /// The capacity.
    pub const CAPACITY: usize = N;

    /// An empty list.
    pub const fn new() -> Self {
        WordList {
            items: [0; N],
            len: 0,
        }
    }

    /// A list holding `words`, or `None` if there are more than `N`.
    pub fn from_slice(words: &[u64]) -> Option<Self> {
        let mut l = Self::new();
        l.items.get_mut(..words.len())?.copy_from_slice(words);
        l.len = words.len();
        Some(l)
    }

    /// Appends a value, handing it back when full.
    pub fn push(&mut self, v: u64) -> Result<(), u64> {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = v;
                self.len += 1;
                Ok(())
            }
            None => Err(v),
        }
    }

    /// The values.
    pub fn as_slice(&self) -> &[u64] {
        &self.items[..self.len]
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for WordList<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The range-buffer words a GPADL_HEADER carries: at most (240 − 20) / 8 = 27, i.e. the first
/// range header plus 26 PFNs.
pub type RangeWords = WordList<27>;
/// The PFNs a GPADL_BODY carries: at most (240 − 16) / 8 = 28.
pub type PfnList = WordList<28>;

/// GPADL_HEADER (8, G→H): starts a GPADL. Offsets: 8 child_relid, 12 gpadl, 16 range_buflen,
/// 18 rangecount, 20.. range buffer (range records: byte_count u32, byte_offset u32, PFNs u64…).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpadlHeader {
    /// Offset 8: channel that owns the GPADL.
    pub child_relid: RelId,
    /// Offset 12: guest-chosen id.
    pub gpadl: GpadlId,
    /// Offset 16: bytes of all range records of the whole GPADL.
    pub range_buflen: u16,
    /// Offset 18.
    pub rangecount: u16,
    /// Offset 20..: the leading words of the range buffer this message carries (the first word
    /// is the first range's header: byte_count in bits 31:0, byte_offset in bits 63:32).
    pub range_data: RangeWords,
}

impl GpadlHeader {
    /// Size of the fixed part.
    pub const FIXED_SIZE: usize = 20;
    /// The most PFNs a header can carry for a single range: 26.
    pub const MAX_PFNS: usize = (MAX_PAYLOAD - Self::FIXED_SIZE - 8) / 8;
    pub(crate) const MIN_SIZE: usize = Self::FIXED_SIZE + 8;

    /// The first range's `(byte_count, byte_offset)`, if the message carries its header.
    pub fn first_range(&self) -> Option<(u32, u32)> {
        let w = *self.range_data.as_slice().first()?;
        Some((w as u32, (w >> 32) as u32))
    }

    /// The PFNs of the first range carried here (meaningful when `rangecount == 1`).
    pub fn pfns(&self) -> &[u64] {
        self.range_data.as_slice().get(1..).unwrap_or(&[])
    }

    /// Decodes and checks the fields (length already checked against `MIN_SIZE`).
    pub(crate) fn read(b: &[u8]) -> Result<GpadlHeader, DecodeError> {
        let bad = |field| DecodeError::BadField {
            msgtype: MessageType::GPADL_HEADER,
            field,
        };
        let range_buflen = u16_at(b, 16);
        let rangecount = u16_at(b, 18);
        if rangecount == 0 {
            return Err(bad("rangecount"));
        }
        let buflen = usize::from(range_buflen);
        if !buflen.is_multiple_of(8) || buflen < 8 * usize::from(rangecount) {
            return Err(bad("range_buflen"));
        }
        let avail = b.len() - Self::FIXED_SIZE;
        let carried = if buflen <= avail {
            // The whole range buffer is here; bytes past it are trailing padding.
            buflen
        } else if !avail.is_multiple_of(8) {
            // More follows in bodies, so the part here must be whole words.
            return Err(DecodeError::BadLength {
                msgtype: MessageType::GPADL_HEADER,
                len: b.len(),
            });
        } else {
            avail
        };
        let mut range_data = RangeWords::new();
        for i in 0..carried / 8 {
            // carried <= 220, so at most 27 words: push cannot fail.
            if range_data
                .push(u64_at(b, Self::FIXED_SIZE + 8 * i))
                .is_err()
            {
                return Err(bad("range_buflen"));
            }
        }
        let h = GpadlHeader {
            child_relid: RelId(u32_at(b, 8)),
            gpadl: GpadlId(u32_at(b, 12)),
            range_buflen,
            rangecount,
            range_data,
        };
        let (byte_count, byte_offset) = h.first_range().ok_or(bad("range_buflen"))?;
        if byte_offset >= PAGE_SIZE_U32 {
            return Err(bad("byte_offset"));
        }
        if byte_count == 0 {
            return Err(bad("byte_count"));
        }
        let pages = (u64::from(byte_offset) + u64::from(byte_count)).div_ceil(PAGE_SIZE_U64);
        let first_len = 8 + 8 * pages;
        // Every other range needs at least its 8-byte header.
        let room = buflen as u64 - 8 * (u64::from(rangecount) - 1);
        if (rangecount == 1 && first_len != room) || first_len > room {
            return Err(bad("range_buflen"));
        }
        Ok(h)
    }

    pub(crate) fn wire_len(&self) -> usize {
        Self::FIXED_SIZE + 8 * self.range_data.len()
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        put_u32(b, 8, self.child_relid.0);
        put_u32(b, 12, self.gpadl.0);
        put_u16(b, 16, self.range_buflen);
        put_u16(b, 18, self.rangecount);
        for (i, w) in self.range_data.as_slice().iter().enumerate() {
            put_u64(b, Self::FIXED_SIZE + 8 * i, *w);
        }
    }
}

/// GPADL_BODY (9, G→H): more PFNs of a GPADL. Offsets: 8 msgnumber, 12 gpadl, 16.. PFNs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpadlBody {
    /// Offset 8: Linux sends 0, OpenVMM treats it as reserved, QEMU ignores it.
    pub msgnumber: u32,
    /// Offset 12.
    pub gpadl: GpadlId,
    /// Offset 16..: 1 to 28 PFNs (the continuation of the range buffer).
    pub pfns: PfnList,
}

impl GpadlBody {
    /// Size of the fixed part.
    pub const FIXED_SIZE: usize = 16;
    /// The most PFNs a body can carry: 28.
    pub const MAX_PFNS: usize = (MAX_PAYLOAD - Self::FIXED_SIZE) / 8;
    pub(crate) const MIN_SIZE: usize = Self::FIXED_SIZE + 8;

    pub(crate) fn read(b: &[u8]) -> Result<GpadlBody, DecodeError> {
        let data = b.len() - Self::FIXED_SIZE;
        if !data.is_multiple_of(8) {
            return Err(DecodeError::BadLength {
                msgtype: MessageType::GPADL_BODY,
                len: b.len(),
            });
        }
        let mut pfns = PfnList::new();
        for i in 0..data / 8 {
            // len <= 240 was checked, so at most 28 PFNs.
            if pfns.push(u64_at(b, Self::FIXED_SIZE + 8 * i)).is_err() {
                return Err(DecodeError::TooLong {
                    msgtype: MessageType::GPADL_BODY,
                    len: b.len(),
                });
            }
        }
        Ok(GpadlBody {
            msgnumber: u32_at(b, 8),
            gpadl: GpadlId(u32_at(b, 12)),
            pfns,
        })
    }

    pub(crate) fn wire_len(&self) -> usize {
        Self::FIXED_SIZE + 8 * self.pfns.len()
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        put_u32(b, 8, self.msgnumber);
        put_u32(b, 12, self.gpadl.0);
        for (i, p) in self.pfns.as_slice().iter().enumerate() {
            put_u64(b, Self::FIXED_SIZE + 8 * i, *p);
        }
    }
}

u32_message!(
    /// GPADL_CREATED (10, 20 bytes, H→G): sent once all PFNs arrived.
    GpadlCreated, 20, {
        /// Offset 8.
        child_relid: RelId = 8,
        /// Offset 12.
        gpadl: GpadlId = 12,
        /// Offset 16: 0 = success (OpenVMM: 0x8000FFFF on error).
        creation_status: u32 = 16,
    }
);

u32_message!(
    /// GPADL_TEARDOWN (11, 16 bytes, G→H).
    GpadlTeardown, 16, {
        /// Offset 8.
        child_relid: RelId = 8,
        /// Offset 12.
        gpadl: GpadlId = 12,
    }
);

u32_message!(
    /// GPADL_TORNDOWN (12, 12 bytes, H→G): the GPADL's memory may now be freed.
    GpadlTorndown, 12, {
        /// Offset 8.
        gpadl: GpadlId = 8,
    }
);
