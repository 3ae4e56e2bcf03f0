//! storvsc as an sDDF block driver: requests from sDDF's block request queue
//! become SCSI commands, completions become sDDF responses.
//!
//! An sDDF request names `count` blocks of [`BLK_TRANSFER_SIZE`] (4 KiB) at `block_number`, with
//! its data at `io_or_offset` in the data region the driver shares with its client. Here the
//! data region is guest memory whose frame numbers the driver knows (the VMBus driver lends the
//! pages and tells their frames), so a request's data goes to the host as one GPA-direct range
//! over those frames, without a copy. A request larger than the host's largest transfer is
//! split into several SCSI commands; its response goes back once every part has completed, with
//! `success_count` the blocks of the parts that succeeded before the first failure. FLUSH
//! becomes SYNCHRONIZE CACHE(16); BARRIER completes at once, since this driver keeps no request
//! waiting behind another (each part is sent when taken and the host orders nothing either:
//! a client that needs ordering waits for responses, as sDDF's block clients do).

use sddf::blk::{BLK_TRANSFER_SIZE, BlkRequest, BlkRequestCode, BlkResponse, BlkStatus};
use sddf::storage::StorageInfo;

use crate::buffer::{DataBuffer, PAGE_SIZE};
use crate::cdb::{Capacity, Command};
use crate::msg::{Lun, PACKET_MAX};
use crate::requests::{Done, IoError, Requests, SubmitError, Submitted};

/// Most sDDF requests in flight at once (each may be several SCSI commands).
pub const MAX_PENDING: usize = 64;

/// Pages one SCSI command's data can span: its largest transfer plus one for an offset.
const MAX_PART_PAGES: usize = 65;

/// One sDDF request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    /// The client's id, echoed in the response.
    id: u32,
    /// Parts sent and not completed.
    outstanding: u16,
    /// Parts still to send (a split request waiting for queue room).
    unsent: Unsent,
    /// Blocks of the parts that succeeded, counted up to the first failure.
    ok_blocks: u16,
    /// The first failure, if any.
    failed: Option<BlkStatus>,
}

/// The rest of a split transfer, sent when the SCSI queue has room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unsent {
    code: BlkRequestCode,
    io_or_offset: u64,
    block_number: u64,
    count: u16,
}

/// Why a request could not be turned into SCSI commands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Answer the client at once with this response (a bad request, or a BARRIER).
    Respond(BlkResponse),
    /// No room now: take the request again after a completion (it stays in the sDDF queue's
    /// order at the caller).
    Busy,
}

/// The bridge's state: what the device is, and the requests in flight keyed by the SCSI
/// transaction ids of their parts.
#[derive(Debug)]
pub struct BlkBridge {
    lun: Lun,
    /// Device logical block size in bytes (a divisor of 4096).
    block_size: u32,
    /// Device size in sDDF blocks.
    capacity: u64,
    /// Largest transfer of one SCSI command, in sDDF blocks (at least 1).
    part_blocks: u16,
    pending: [Option<Pending>; MAX_PENDING],
    /// (SCSI transaction id, pending slot, blocks of the part) of each part in flight.
    parts: [Option<(u64, u8, u16)>; MAX_PENDING * 4],
}

/// Why a device cannot serve as an sDDF block device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceError {
    /// A logical block size that does not divide sDDF's 4 KiB block (or is 0).
    BlockSize(u32),
    /// A largest transfer below one 4 KiB block.
    MaxTransfer(u32),
}

impl core::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BlockSize(b) => write!(f, "logical block size {b} does not divide 4096"),
            Self::MaxTransfer(m) => {
                write!(f, "largest transfer {m} bytes is below one 4 KiB block")
            }
        }
    }
}

impl BlkBridge {
    /// The bridge for the device at `lun` whose READ CAPACITY(16) said `capacity`, on a host
    /// whose largest transfer is `max_transfer` bytes.
    ///
    /// # Errors
    /// [`DeviceError`] for a device sDDF's 4 KiB blocks cannot address.
    pub fn new(lun: Lun, capacity: &Capacity, max_transfer: u32) -> Result<Self, DeviceError> {
        let bs = capacity.block_size;
        if bs == 0 || !BLK_TRANSFER_SIZE.is_multiple_of(bs) {
            return Err(DeviceError::BlockSize(bs));
        }
        let part = max_transfer / BLK_TRANSFER_SIZE;
        if part == 0 {
            return Err(DeviceError::MaxTransfer(max_transfer));
        }
        let part_pages = (MAX_PART_PAGES - 1) as u32;
        Ok(Self {
            lun,
            block_size: bs,
            capacity: capacity.bytes() / u64::from(BLK_TRANSFER_SIZE),
            part_blocks: u16::try_from(part.min(part_pages)).unwrap_or(u16::MAX),
            pending: [None; MAX_PENDING],
            parts: [None; MAX_PENDING * 4],
        })
    }

    /// What the storage-info page should say (capacity in 4 KiB blocks, sector size, the
    /// optimal transfer, the queue depth).
    pub fn storage_info(&self, queue_depth: u16) -> StorageInfo {
        StorageInfo {
            read_only: false,
            sector_size: u16::try_from(self.block_size).unwrap_or(4096),
            block_size: self.part_blocks,
            queue_depth,
            capacity: self.capacity,
            ..StorageInfo::default()
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.iter().flatten().count()
    }

    /// Takes the client's request `req`: sends its first part (or all of it) through
    /// `requests`, with `frame(page)` giving the guest frame number of data-region page `page`
    /// and `send` sending each part's packet (with its range when it has data). A request that
    /// is bad, or a BARRIER, is answered at once ([`Refusal::Respond`]).
    ///
    /// # Errors
    /// [`Refusal`].
    pub fn take<const N: usize>(
        &mut self,
        req: &BlkRequest,
        requests: &mut Requests<N>,
        frame: &impl Fn(u64) -> Option<u64>,
        out: &mut [u8; PACKET_MAX],
        send: &mut impl FnMut(&Submitted, Option<&DataBuffer<'_>>, &[u8]) -> bool,
    ) -> Result<(), Refusal> {
        let respond = |status| {
            Refusal::Respond(BlkResponse {
                status,
                success_count: 0,
                id: req.id,
            })
        };
        if req.code == BlkRequestCode::Barrier {
            return Err(respond(BlkStatus::Ok));
        }
        if req.code.transfers() {
            let end = req.block_number.checked_add(u64::from(req.count));
            if req.count == 0 || end.is_none_or(|e| e > self.capacity) {
                return Err(respond(BlkStatus::InvalidParam));
            }
        }
        let Some(slot) = self.pending.iter().position(Option::is_none) else {
            return Err(Refusal::Busy);
        };
        self.pending[slot] = Some(Pending {
            id: req.id,
            outstanding: 0,
            unsent: Unsent {
                code: req.code,
                io_or_offset: req.io_or_offset,
                block_number: req.block_number,
                count: if req.code.transfers() { req.count } else { 1 },
            },
            ok_blocks: 0,
            failed: None,
        });
        self.pump(slot, requests, frame, out, send);
        match self.pending[slot] {
            Some(p) if p.outstanding == 0 && p.failed.is_some() => {
                self.pending[slot] = None;
                Err(respond(p.failed.unwrap_or(BlkStatus::Unspecified)))
            }
            _ => Ok(()),
        }
    }

    /// Sends what the SCSI queue has room for of slot `slot`'s remaining parts.
    fn pump<const N: usize>(
        &mut self,
        slot: usize,
        requests: &mut Requests<N>,
        frame: &impl Fn(u64) -> Option<u64>,
        out: &mut [u8; PACKET_MAX],
        send: &mut impl FnMut(&Submitted, Option<&DataBuffer<'_>>, &[u8]) -> bool,
    ) {
        loop {
            let Some(mut p) = self.pending[slot] else {
                return;
            };
            if p.unsent.count == 0 || p.failed.is_some() {
                return;
            }
            let Some(part_slot) = self.parts.iter().position(Option::is_none) else {
                return;
            };
            let u = p.unsent;
            let blocks = if u.code.transfers() {
                u.count.min(self.part_blocks)
            } else {
                u.count
            };
            match self.send_part(u, blocks, requests, frame, out, send) {
                Ok(tid) => {
                    self.parts[part_slot] = Some((tid, slot as u8, blocks));
                    p.outstanding += 1;
                    let bytes = u64::from(blocks) * u64::from(BLK_TRANSFER_SIZE);
                    p.unsent = Unsent {
                        io_or_offset: u.io_or_offset.wrapping_add(bytes),
                        block_number: u.block_number.wrapping_add(u64::from(blocks)),
                        count: u.count - blocks,
                        ..u
                    };
                }
                Err(None) => return, // the SCSI queue is full: more after a completion
                Err(Some(status)) => p.failed = Some(status),
            }
            self.pending[slot] = Some(p);
        }
    }

    /// One SCSI command for `blocks` sDDF blocks of `u`; its transaction id, or the status to
    /// fail the request with (`None`: no room now).
    fn send_part<const N: usize>(
        &self,
        u: Unsent,
        blocks: u16,
        requests: &mut Requests<N>,
        frame: &impl Fn(u64) -> Option<u64>,
        out: &mut [u8; PACKET_MAX],
        send: &mut impl FnMut(&Submitted, Option<&DataBuffer<'_>>, &[u8]) -> bool,
    ) -> Result<u64, Option<BlkStatus>> {
        let per = BLK_TRANSFER_SIZE / self.block_size;
        let lba = u.block_number * u64::from(per);
        let sectors = u32::from(blocks) * per;
        let command = match u.code {
            BlkRequestCode::Read => Command::read_16(lba, sectors, self.block_size),
            BlkRequestCode::Write => Command::write_16(lba, sectors, self.block_size, false),
            BlkRequestCode::Flush | BlkRequestCode::Barrier => {
                Ok(Command::synchronize_cache_16(0, 0))
            }
        }
        .map_err(|_| Some(BlkStatus::InvalidParam))?;
        let mut pfns = [0u64; MAX_PART_PAGES];
        let buffer = if u.code.transfers() {
            let len = u32::from(blocks) * BLK_TRANSFER_SIZE;
            let offset = (u.io_or_offset % u64::from(PAGE_SIZE)) as u32;
            let first = u.io_or_offset / u64::from(PAGE_SIZE);
            let pages = (offset + len).div_ceil(PAGE_SIZE) as usize;
            for (i, pfn) in pfns.iter_mut().take(pages).enumerate() {
                // A page outside the data region: the client named memory it does not share.
                *pfn = frame(first + i as u64).ok_or(Some(BlkStatus::InvalidParam))?;
            }
            Some((offset, len, pages))
        } else {
            None
        };
        let data = buffer.map(|(offset, len, pages)| DataBuffer {
            offset,
            len,
            pfns: &pfns[..pages],
        });
        let submitted = match requests.submit(self.lun, &command, data.as_ref(), out) {
            Ok(s) => s,
            Err(SubmitError::QueueFull) => return Err(None),
            Err(_) => return Err(Some(BlkStatus::InvalidParam)),
        };
        if !send(&submitted, data.as_ref(), &out[..submitted.len]) {
            let _ = requests.cancel(submitted.transaction_id);
            return Err(Some(BlkStatus::Io));
        }
        Ok(submitted.transaction_id)
    }

    /// A SCSI command finished (from [`Requests::on_packet`] or [`Requests::fail_all`]): the
    /// sDDF response when it was its request's last part. Parts still unsent are sent now
    /// (room has just been made).
    pub fn complete<const N: usize>(
        &mut self,
        done: &Done,
        requests: &mut Requests<N>,
        frame: &impl Fn(u64) -> Option<u64>,
        out: &mut [u8; PACKET_MAX],
        send: &mut impl FnMut(&Submitted, Option<&DataBuffer<'_>>, &[u8]) -> bool,
    ) -> Option<BlkResponse> {
        let i = self
            .parts
            .iter()
            .position(|p| p.is_some_and(|(tid, _, _)| tid == done.transaction_id))?;
        let (_, slot, blocks) = self.parts[i].take()?;
        let slot = usize::from(slot);
        let mut p = self.pending[slot]?;
        p.outstanding -= 1;
        match done.result {
            Ok(t) if !t.is_short() && p.failed.is_none() => p.ok_blocks += blocks,
            Ok(_) => p.failed = p.failed.or(Some(BlkStatus::Io)),
            Err(e) => p.failed = p.failed.or(Some(status_of(&e))),
        }
        self.pending[slot] = Some(p);
        self.pump(slot, requests, frame, out, send);
        let p = self.pending[slot]?;
        if p.outstanding > 0 || (p.unsent.count > 0 && p.failed.is_none()) {
            return None;
        }
        self.pending[slot] = None;
        Some(BlkResponse {
            status: p.failed.unwrap_or(BlkStatus::Ok),
            success_count: p.ok_blocks,
            id: p.id,
        })
    }

    /// The device went away (rescind): every request in flight is answered with
    /// `NoDevice`, through `respond`.
    pub fn fail_all(&mut self, mut respond: impl FnMut(BlkResponse)) {
        for p in self.pending.iter_mut().filter_map(Option::take) {
            respond(BlkResponse {
                status: BlkStatus::NoDevice,
                success_count: p.ok_blocks,
                id: p.id,
            });
        }
        self.parts = [None; MAX_PENDING * 4];
    }
}

/// The sDDF status of a SCSI failure.
fn status_of(e: &IoError) -> BlkStatus {
    match e {
        IoError::NoDevice { .. } | IoError::ChannelGone => BlkStatus::NoDevice,
        IoError::CheckCondition(s) if s.key == crate::cdb::Sense::ILLEGAL_REQUEST => {
            BlkStatus::InvalidParam
        }
        _ => BlkStatus::Io,
    }
}

#[cfg(test)]
#[path = "blk_tests.rs"]
mod tests;
