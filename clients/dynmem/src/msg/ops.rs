//! The balloon, unballoon and status messages (layouts in the [module](super) docs).

use super::{
    DecodeError, HEADER_SIZE, Header, MsgType, PageRange, RangeError, body_of, header, u32_at,
};

/// The largest message the guest sends: one 4 KiB page, as Linux's driver does (its balloon
/// responses stop adding ranges at a page). QEMU takes any length the ring carries and checks
/// only that the packet holds `range_count` ranges; the client's 4-page rings (3 data pages)
/// carry a page-sized packet.
pub const MAX_MESSAGE: usize = 4096;

/// Bytes of a range on the wire.
pub const RANGE_SIZE: usize = 8;

/// Bytes of a balloon response before its ranges.
pub const BALLOON_RESPONSE_FIXED: usize = HEADER_SIZE + 8;

/// Ranges in one balloon response of [`MAX_MESSAGE`] bytes (510).
pub const MAX_RESPONSE_RANGES: usize = (MAX_MESSAGE - BALLOON_RESPONSE_FIXED) / RANGE_SIZE;

/// Bytes of a status report (`dm_status`).
pub const STATUS_REPORT_SIZE: usize = HEADER_SIZE + 4 * 8 + 2 * 4;

/// Bytes of an unballoon response (the header alone).
pub const UNBALLOON_RESPONSE_SIZE: usize = HEADER_SIZE;

/// Bytes of a hot-add response.
pub const HOT_ADD_RESPONSE_SIZE: usize = HEADER_SIZE + 8;

/// Why a message could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is shorter than the message.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        got: usize,
    },
    /// A range to report is not valid (its index in the caller's slice).
    BadRange {
        /// Index of the range.
        index: usize,
        /// What is wrong.
        error: RangeError,
    },
    /// A balloon response of no ranges that says more follow: QEMU ends the transaction on an
    /// empty response whatever `more_pages` says, so an empty response must be the last.
    EmptyNotLast,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EncodeError::BufferTooSmall { needed, got } => {
                write!(f, "output buffer of {got} bytes, {needed} needed")
            }
            EncodeError::BadRange { index, error } => write!(f, "range {index}: {error}"),
            EncodeError::EmptyNotLast => {
                write!(f, "an empty balloon response must end the transaction")
            }
        }
    }
}

pub(super) fn room(out: &[u8], needed: usize) -> Result<(), EncodeError> {
    if out.len() < needed {
        return Err(EncodeError::BufferTooSmall {
            needed,
            got: out.len(),
        });
    }
    Ok(())
}

/// A `DM_BALLOON_REQUEST`: the host asks for `num_pages` pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalloonRequest {
    /// Pages asked for.
    pub num_pages: u32,
    /// The reserved word (zero from a conforming host; not checked).
    pub reservedz: u32,
}

impl BalloonRequest {
    /// Decodes a `DM_BALLOON_REQUEST` (body of at least 8 bytes).
    ///
    /// # Errors
    /// [`DecodeError`] for a short packet, a bad size or another type.
    pub fn decode(packet: &[u8]) -> Result<(Header, BalloonRequest), DecodeError> {
        let (h, body) = body_of(packet, MsgType::BALLOON_REQUEST, 8)?;
        Ok((
            h,
            BalloonRequest {
                num_pages: u32_at(body, 0),
                reservedz: u32_at(body, 4),
            },
        ))
    }
}

/// What [`balloon_response`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// Bytes of the message.
    pub len: usize,
    /// Ranges it carries (the first `ranges` of the caller's slice).
    pub ranges: usize,
    /// Its `more_pages` bit.
    pub more_pages: bool,
}

/// Writes a `DM_BALLOON_RESPONSE` into `out` carrying as many of `ranges` as fit (at most
/// [`MAX_RESPONSE_RANGES`], and no more than `out` holds). `more_pages` is set when ranges are
/// left over or `more_after` says another message follows.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`] when `out` cannot hold the 16 fixed bytes (or one range when
/// there are some), [`EncodeError::BadRange`] for an invalid range among those that fit (nothing
/// is promised about `out` then), [`EncodeError::EmptyNotLast`] for no ranges with `more_after`.
pub fn balloon_response(
    out: &mut [u8],
    trans_id: u32,
    ranges: &[PageRange],
    more_after: bool,
) -> Result<Encoded, EncodeError> {
    if ranges.is_empty() && more_after {
        return Err(EncodeError::EmptyNotLast);
    }
    let least = BALLOON_RESPONSE_FIXED + if ranges.is_empty() { 0 } else { RANGE_SIZE };
    room(out, least)?;
    let space = (out.len().min(MAX_MESSAGE) - BALLOON_RESPONSE_FIXED) / RANGE_SIZE;
    let n = ranges.len().min(space);
    for (index, r) in ranges[..n].iter().enumerate() {
        put_range(out, index, r).map_err(|error| EncodeError::BadRange { index, error })?;
    }
    let more_pages = n < ranges.len() || more_after;
    let len = finish_balloon_response(out, trans_id, n, more_pages);
    Ok(Encoded {
        len,
        ranges: n,
        more_pages,
    })
}

/// Writes range `index` of a balloon response (`out` holds it: the caller checked).
pub(crate) fn put_range(out: &mut [u8], index: usize, r: &PageRange) -> Result<(), RangeError> {
    let w = r.to_wire()?;
    let at = BALLOON_RESPONSE_FIXED + index * RANGE_SIZE;
    out[at..at + RANGE_SIZE].copy_from_slice(&w.to_le_bytes());
    Ok(())
}

/// Writes the header and fixed words of a balloon response of `n` ranges (at most
/// [`MAX_RESPONSE_RANGES`], already in `out`); its length.
pub(crate) fn finish_balloon_response(
    out: &mut [u8],
    trans_id: u32,
    n: usize,
    more_pages: bool,
) -> usize {
    out[8..12].fill(0);
    // n <= 510, so the count fits the 31 bits.
    let word = (n as u32) << 1 | u32::from(more_pages);
    out[12..16].copy_from_slice(&word.to_le_bytes());
    header(out, MsgType::BALLOON_RESPONSE, 8 + n * RANGE_SIZE, trans_id)
}

/// The ranges of a host message, each checked when the message was decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranges<'a> {
    bytes: &'a [u8],
}

impl<'a> Ranges<'a> {
    /// Checks `count` ranges at the start of `bytes`.
    fn check(bytes: &'a [u8], count: u32) -> Result<Ranges<'a>, DecodeError> {
        let room = bytes.len() / RANGE_SIZE;
        if u64::from(count) > room as u64 {
            return Err(DecodeError::RangeCount { count, room });
        }
        let bytes = &bytes[..count as usize * RANGE_SIZE];
        for (i, c) in bytes.chunks_exact(RANGE_SIZE).enumerate() {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            PageRange::from_wire(w).map_err(|error| DecodeError::BadRange {
                index: i as u32,
                error,
            })?;
        }
        Ok(Ranges { bytes })
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        self.bytes.len() / RANGE_SIZE
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Pages in all the ranges.
    pub fn pages(&self) -> u64 {
        self.iter().map(|r| u64::from(r.count)).sum()
    }

    /// The ranges.
    pub fn iter(&self) -> impl Iterator<Item = PageRange> + 'a {
        self.bytes.chunks_exact(RANGE_SIZE).filter_map(|c| {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            // Checked in `check`: never None.
            PageRange::from_wire(w).ok()
        })
    }
}

/// A `DM_UNBALLOON_REQUEST`: the host gives pages back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnballoonRequest<'a> {
    /// Another request of the same transaction follows (answer only after the last).
    pub more_pages: bool,
    /// The pages given back: every range non-empty and below `2^40`.
    pub ranges: Ranges<'a>,
}

impl<'a> UnballoonRequest<'a> {
    /// Decodes a `DM_UNBALLOON_REQUEST`: `range_count` is checked against the header's size,
    /// and every range is checked ([`PageRange::from_wire`]). Bytes after the ranges are
    /// ignored.
    ///
    /// # Errors
    /// [`DecodeError`]: short packet, bad size, other type, [`DecodeError::RangeCount`],
    /// [`DecodeError::BadRange`].
    pub fn decode(packet: &'a [u8]) -> Result<(Header, UnballoonRequest<'a>), DecodeError> {
        let (h, body) = body_of(packet, MsgType::UNBALLOON_REQUEST, 8)?;
        let more_pages = u32_at(body, 0) & 1 != 0;
        let ranges = Ranges::check(&body[8..], u32_at(body, 4))?;
        Ok((h, UnballoonRequest { more_pages, ranges }))
    }
}

/// Writes a `DM_UNBALLOON_RESPONSE` (the header alone); its length.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`].
pub fn unballoon_response(out: &mut [u8], trans_id: u32) -> Result<usize, EncodeError> {
    room(out, UNBALLOON_RESPONSE_SIZE)?;
    Ok(header(out, MsgType::UNBALLOON_RESPONSE, 0, trans_id))
}

/// Every field of a `DM_STATUS_REPORT`, in 4 KiB pages. The host's pressure algorithm uses
/// `num_committed` (Linux's description); QEMU reads `num_avail` and `num_committed` (for its
/// status events). The page-file fields are Windows figures: Linux sends zero in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusReport {
    /// Available memory.
    pub num_avail: u64,
    /// Committed memory.
    pub num_committed: u64,
    /// Size of all page files.
    pub page_file_size: u64,
    /// Zeroed and free pages.
    pub zero_free: u64,
    /// Pages written to the page file.
    pub page_file_writes: u32,
    /// File-cache page faults minus page reads.
    pub io_diff: u32,
}

impl From<super::Status> for StatusReport {
    fn from(s: super::Status) -> StatusReport {
        StatusReport {
            num_avail: s.available,
            num_committed: s.committed,
            ..StatusReport::default()
        }
    }
}

impl StatusReport {
    /// Writes the report ([`STATUS_REPORT_SIZE`] bytes); its length.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`].
    pub fn encode(&self, out: &mut [u8], trans_id: u32) -> Result<usize, EncodeError> {
        room(out, STATUS_REPORT_SIZE)?;
        out[8..16].copy_from_slice(&self.num_avail.to_le_bytes());
        out[16..24].copy_from_slice(&self.num_committed.to_le_bytes());
        out[24..32].copy_from_slice(&self.page_file_size.to_le_bytes());
        out[32..40].copy_from_slice(&self.zero_free.to_le_bytes());
        out[40..44].copy_from_slice(&self.page_file_writes.to_le_bytes());
        out[44..48].copy_from_slice(&self.io_diff.to_le_bytes());
        Ok(header(
            out,
            MsgType::STATUS_REPORT,
            STATUS_REPORT_SIZE - HEADER_SIZE,
            trans_id,
        ))
    }
}
