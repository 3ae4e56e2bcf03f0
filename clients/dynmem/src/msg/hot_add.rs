//! The host's hot-add requests with the guest's answer, and the host's information messages.

use super::ops::{EncodeError, room};
use super::{
    DecodeError, HOT_ADD_RESPONSE_SIZE, Header, MsgType, PageRange, RANGE_SIZE, body_of, header,
    u32_at,
};

/// A `DM_MEM_HOT_ADD_REQUEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HotAddRequest {
    /// The pages to add.
    pub range: PageRange,
    /// The region to add them in, when the host names one (a body of 16 bytes or more; QEMU
    /// always does, with the region equal to the range).
    pub region: Option<PageRange>,
}

impl HotAddRequest {
    /// Decodes a `DM_MEM_HOT_ADD_REQUEST`: a body of 8 bytes (range) or at least 16 (range and
    /// region); both ranges checked.
    ///
    /// # Errors
    /// [`DecodeError`]: short packet, a body of 1 to 7 or 9 to 15 bytes, other type,
    /// [`DecodeError::BadRange`] (index 0 the range, 1 the region).
    pub fn decode(packet: &[u8]) -> Result<(Header, HotAddRequest), DecodeError> {
        let (h, body) = body_of(packet, MsgType::HOT_ADD_REQUEST, RANGE_SIZE)?;
        let read = |i: usize| {
            let c = &body[i * RANGE_SIZE..(i + 1) * RANGE_SIZE];
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            PageRange::from_wire(w).map_err(|error| DecodeError::BadRange {
                index: i as u32,
                error,
            })
        };
        let region = match body.len() {
            RANGE_SIZE => None,
            n if n >= 2 * RANGE_SIZE => Some(read(1)?),
            _ => {
                return Err(DecodeError::BadSize {
                    ty: h.ty,
                    size: h.size,
                });
            }
        };
        Ok((
            h,
            HotAddRequest {
                range: read(0)?,
                region,
            },
        ))
    }
}

/// Writes a `DM_MEM_HOT_ADD_RESPONSE`; its length. `result` 1 is success, 0 failure. Linux's
/// reading of the pair: pages added: success; no pages and success: a permanent failure (the
/// host stops hot-adding); no pages and failure: a transient one (the host may retry). QEMU
/// stops hot-adding into the rest of its range on either kind of shortfall.
///
/// # Errors
/// [`EncodeError::BufferTooSmall`].
pub fn hot_add_response(
    out: &mut [u8],
    trans_id: u32,
    page_count: u32,
    success: bool,
) -> Result<usize, EncodeError> {
    room(out, HOT_ADD_RESPONSE_SIZE)?;
    out[8..12].copy_from_slice(&page_count.to_le_bytes());
    out[12..16].copy_from_slice(&u32::from(success).to_le_bytes());
    Ok(header(out, MsgType::HOT_ADD_RESPONSE, 8, trans_id))
}

/// The information type that carries the most pages the guest may reach (`u64`).
pub const INFO_TYPE_MAX_PAGE_CNT: u32 = 0;

/// One entry of an information message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Info<'a> {
    /// The most pages Dynamic Memory may give the guest (type 0 with 8 bytes of data).
    MaxPageCount(u64),
    /// Any other type, or type 0 with another data size (Linux ignores those too).
    Other {
        /// The type.
        ty: u32,
        /// Its data.
        data: &'a [u8],
    },
}

/// The entries of a `DM_INFO_MESSAGE`: an iterator that stops at the end of the `info_size`
/// bytes, or with one `Err` at an entry that claims more bytes than are left.
#[derive(Debug, Clone)]
pub struct InfoEntries<'a> {
    rest: &'a [u8],
    /// Where `rest` starts in the info blob.
    at: usize,
}

impl<'a> InfoEntries<'a> {
    /// Decodes a `DM_INFO_MESSAGE`: `info_size` is checked against the header's size; entries
    /// are checked as they are read.
    ///
    /// # Errors
    /// [`DecodeError`]: short packet, bad size, other type, [`DecodeError::InfoSize`].
    pub fn decode(packet: &'a [u8]) -> Result<(Header, InfoEntries<'a>), DecodeError> {
        let (h, body) = body_of(packet, MsgType::INFO, 8)?;
        let size = u32_at(body, 4);
        let blob = &body[8..];
        if u64::from(size) > blob.len() as u64 {
            return Err(DecodeError::InfoSize {
                size,
                room: blob.len(),
            });
        }
        Ok((
            h,
            InfoEntries {
                rest: &blob[..size as usize],
                at: 0,
            },
        ))
    }
}

impl<'a> Iterator for InfoEntries<'a> {
    type Item = Result<Info<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let fail = |rest: &mut &'a [u8], at| {
            *rest = &[];
            Some(Err(DecodeError::InfoEntry { at }))
        };
        if self.rest.len() < 8 {
            return fail(&mut self.rest, self.at);
        }
        let ty = u32_at(self.rest, 0);
        let n = u32_at(self.rest, 4) as usize;
        if n > self.rest.len() - 8 {
            return fail(&mut self.rest, self.at);
        }
        let data = &self.rest[8..8 + n];
        self.rest = &self.rest[8 + n..];
        self.at += 8 + n;
        Some(Ok(match (ty, data.len()) {
            (INFO_TYPE_MAX_PAGE_CNT, 8) => Info::MaxPageCount(u64::from_le_bytes([
                data[0], data[1], data[2], data[3], data[4], data[5], data[6], data[7],
            ])),
            _ => Info::Other { ty, data },
        }))
    }
}
