//! The data buffer of an EXECUTE_SRB: the GPA-direct packet's extended descriptor (reserved u32,
//! range count u32, then per range byte_count u32, byte_offset u32 and one u64 page number per
//! 4 KiB page the range spans), checked against the SRB and guest memory before a byte moves,
//! and the copies between the RAM disk and those guest pages, a page at a time.

use core::cell::RefCell;

use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ring::{PacketType, PacketView, RingMem};

use super::event::StorFault;
use crate::memory::{GuestMemError, GuestMemory};

/// Page numbers one request may name: 1 MiB at any offset.
pub const MAX_PFNS: usize = 257;
/// The largest max transfer the host announces (what [`MAX_PFNS`] covers at any offset).
pub const MAX_TRANSFER_LIMIT: u32 = ((MAX_PFNS - 1) * PAGE_SIZE) as u32;

/// A checked guest buffer: `len` bytes from `offset` in the first of `pfns`.
#[derive(Debug, Clone)]
pub struct GpaBuf {
    /// Offset into the first page.
    pub offset: u32,
    /// Bytes.
    pub len: u32,
    pfns: [u64; MAX_PFNS],
    n: usize,
}

impl GpaBuf {
    /// The page numbers.
    pub fn pfns(&self) -> &[u64] {
        &self.pfns[..self.n]
    }

    /// Walks `[at, at + len)` of the buffer page by page: (pfn, offset in page, done, n).
    fn each(
        &self,
        at: u32,
        len: usize,
        mut f: impl FnMut(u64, usize, usize, usize) -> Result<(), GuestMemError>,
    ) -> Result<(), GuestMemError> {
        let mut done = 0;
        let mut pos = self.offset as usize + at as usize;
        while done < len {
            let page = pos / PAGE_SIZE;
            let in_page = pos % PAGE_SIZE;
            let n = (PAGE_SIZE - in_page).min(len - done);
            let pfn = *self.pfns().get(page).ok_or(GuestMemError::OutOfPage {
                offset: pos,
                len: n,
            })?;
            f(pfn, in_page, done, n)?;
            done += n;
            pos += n;
        }
        Ok(())
    }

    /// Copies `data` into the buffer at byte `at` (the caller keeps `at + data.len() <= len`).
    pub fn write<G: GuestMemory>(
        &self,
        mem: &mut G,
        at: u32,
        data: &[u8],
    ) -> Result<(), GuestMemError> {
        self.each(at, data.len(), |pfn, off, done, n| {
            mem.write(pfn, off, &data[done..done + n])
        })
    }

    /// Copies the buffer's bytes from `at` into `out`.
    pub fn read<G: GuestMemory>(
        &self,
        mem: &mut G,
        at: u32,
        out: &mut [u8],
    ) -> Result<(), GuestMemError> {
        self.each(at, out.len(), |pfn, off, done, n| {
            mem.read(pfn, off, &mut out[done..done + n])
        })
    }
}

/// Reads and checks the buffer of an EXECUTE_SRB packet whose SRB says `data_len` bytes:
/// `None` for an in-band packet without data. `mem` is borrowed only between ring reads.
pub fn parse<M: RingMem, G: GuestMemory>(
    p: &PacketView<'_, M>,
    data_len: u32,
    max_transfer: u32,
    mem: &RefCell<&mut G>,
) -> Result<Option<GpaBuf>, StorFault> {
    match p.packet_type() {
        PacketType::DATA_INBAND if data_len == 0 => return Ok(None),
        PacketType::DATA_INBAND => return Err(StorFault::NoBuffer(data_len)),
        PacketType::DATA_USING_GPA_DIRECT => {}
        t => return Err(StorFault::PacketType(t.0)),
    }
    let mut head = [0u8; 16];
    let bad = StorFault::BadRange {
        byte_count: 0,
        byte_offset: 0,
    };
    if p.ext_len() < 8 || p.read_ext(0, &mut head[..8]).is_err() {
        return Err(bad);
    }
    let count = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if count != 1 {
        return Err(StorFault::RangeCount(count));
    }
    if p.ext_len() < 16 || p.read_ext(8, &mut head[8..]).is_err() {
        return Err(bad);
    }
    let byte_count = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let byte_offset = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
    let bad = StorFault::BadRange {
        byte_count,
        byte_offset,
    };
    if byte_count == 0 || byte_offset as usize >= PAGE_SIZE {
        return Err(bad);
    }
    if byte_count != data_len {
        return Err(StorFault::LengthMismatch {
            range: byte_count,
            srb: data_len,
        });
    }
    let max = max_transfer.min(MAX_TRANSFER_LIMIT);
    if byte_count > max {
        return Err(StorFault::TooLarge {
            len: byte_count,
            max,
        });
    }
    let pages = (byte_offset as usize + byte_count as usize).div_ceil(PAGE_SIZE);
    if pages > MAX_PFNS || p.ext_len() < 16 + 8 * pages {
        return Err(bad);
    }
    let mut buf = GpaBuf {
        offset: byte_offset,
        len: byte_count,
        pfns: [0; MAX_PFNS],
        n: pages,
    };
    for i in 0..pages {
        let mut b = [0u8; 8];
        p.read_ext(16 + 8 * i, &mut b).map_err(|_| bad)?;
        let pfn = u64::from_le_bytes(b);
        // One byte read: the frame exists, or the whole request is refused before any copy.
        if mem.borrow_mut().read(pfn, 0, &mut [0u8; 1]).is_err() {
            return Err(StorFault::NotGuestMemory(pfn));
        }
        buf.pfns[i] = pfn;
    }
    Ok(Some(buf))
}
