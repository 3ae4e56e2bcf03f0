//! The block queues: a request queue the requesting side (a client, or the virtualiser facing a
//! driver) fills and a response queue the serving side (the driver) fills, each a ring in its own
//! shared region. The request queue also carries a `plugged` flag. There is no signal flag:
//! a side that enqueued notifies its peer.

use core::convert::Infallible;
use core::sync::atomic::Ordering;

use crate::error::{ConfigError, EnqueueError, Flag, PeerError, QueueId, RequestFault};
use crate::mem::QueueMem;
use crate::ring::{Consumer, Geometry, Producer};
use crate::storage::StorageInfo;

/// Byte layout of `blk_req_queue_t`, `blk_resp_queue_t`, `blk_req_t` and `blk_resp_t` (sDDF
/// `include/sddf/blk/queue.h`; the two enums are `int`-sized, as GCC and Clang lay them out).
pub mod layout {
    /// `blk_req_queue.head` (`u32`): written by the consumer (the serving side).
    pub const REQ_HEAD: usize = 0;
    /// `blk_req_queue.tail` (`u32`): written by the producer (the requesting side).
    pub const REQ_TAIL: usize = 4;
    /// `blk_req_queue.plugged` (`bool`): written by the requesting side.
    pub const REQ_PLUGGED: usize = 8;
    /// `blk_req_queue.buffers[]`: aligned to the request's 8 bytes.
    pub const REQ_BUFFERS: usize = 16;
    /// `sizeof(blk_req_t)`.
    pub const REQ_SIZE: usize = 32;
    /// `blk_req.code` (`blk_req_code_t`, 4 bytes).
    pub const REQ_CODE: usize = 0;
    /// `blk_req.io_or_offset` (`u64`).
    pub const REQ_IO_OR_OFFSET: usize = 8;
    /// `blk_req.block_number` (`u64`).
    pub const REQ_BLOCK_NUMBER: usize = 16;
    /// `blk_req.count` (`u16`).
    pub const REQ_COUNT: usize = 24;
    /// `blk_req.id` (`u32`).
    pub const REQ_ID: usize = 28;

    /// `blk_resp_queue.head` (`u32`): written by the consumer (the requesting side).
    pub const RESP_HEAD: usize = 0;
    /// `blk_resp_queue.tail` (`u32`): written by the producer (the serving side).
    pub const RESP_TAIL: usize = 4;
    /// `blk_resp_queue.buffers[]`: aligned to the response's 4 bytes.
    pub const RESP_BUFFERS: usize = 8;
    /// `sizeof(blk_resp_t)`.
    pub const RESP_SIZE: usize = 12;
    /// `blk_resp.status` (`blk_resp_status_t`, 4 bytes).
    pub const RESP_STATUS: usize = 0;
    /// `blk_resp.success_count` (`u16`).
    pub const RESP_SUCCESS_COUNT: usize = 4;
    /// `blk_resp.id` (`u32`).
    pub const RESP_ID: usize = 8;

    /// Bytes a request queue region needs for `capacity` requests.
    pub const fn req_region_size(capacity: u32) -> usize {
        REQ_BUFFERS + capacity as usize * REQ_SIZE
    }

    /// Bytes a response queue region needs for `capacity` responses.
    pub const fn resp_region_size(capacity: u32) -> usize {
        RESP_BUFFERS + capacity as usize * RESP_SIZE
    }
}

/// sDDF's `BLK_TRANSFER_SIZE`: the unit of `block_number`, `count`, and the storage capacity.
pub const BLK_TRANSFER_SIZE: u32 = 4096;

/// A request code (`blk_req_code_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum BlkRequestCode {
    /// `BLK_REQ_READ`: read `count` blocks into the buffer.
    Read = 0,
    /// `BLK_REQ_WRITE`: write `count` blocks from the buffer.
    Write = 1,
    /// `BLK_REQ_FLUSH`: make completed writes durable.
    Flush = 2,
    /// `BLK_REQ_BARRIER`: order the requests before it ahead of those after it.
    Barrier = 3,
}

impl BlkRequestCode {
    /// The code for a raw value, `None` when the value names no code.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Read),
            1 => Some(Self::Write),
            2 => Some(Self::Flush),
            3 => Some(Self::Barrier),
            _ => None,
        }
    }

    /// Whether the request moves data (and so uses `io_or_offset`, `block_number` and `count`).
    pub const fn transfers(self) -> bool {
        matches!(self, Self::Read | Self::Write)
    }
}

/// A response status (`blk_resp_status_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum BlkStatus {
    /// `BLK_RESP_OK`.
    Ok = 0,
    /// `BLK_RESP_ERR_UNSPEC`: an error of no other kind.
    Unspecified = 1,
    /// `BLK_RESP_ERR_INVALID_PARAM`: the request's parameters are invalid.
    InvalidParam = 2,
    /// `BLK_RESP_ERR_IO`: the device failed the request.
    Io = 3,
    /// `BLK_RESP_ERR_NO_DEVICE`: no device is present.
    NoDevice = 4,
}

impl BlkStatus {
    /// The status for a raw value, `None` when the value names no status.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Ok),
            1 => Some(Self::Unspecified),
            2 => Some(Self::InvalidParam),
            3 => Some(Self::Io),
            4 => Some(Self::NoDevice),
            _ => None,
        }
    }
}

/// A request (`blk_req_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkRequest {
    /// What to do.
    pub code: BlkRequestCode,
    /// Offset of the buffer in the data region (client side) or its I/O address (driver side).
    pub io_or_offset: u64,
    /// First block, in [`BLK_TRANSFER_SIZE`] units.
    pub block_number: u64,
    /// Blocks to transfer.
    pub count: u16,
    /// The requester's id, echoed in the response.
    pub id: u32,
}

impl BlkRequest {
    /// The request's bytes as the C struct lays them out (padding zero).
    pub fn to_bytes(&self) -> [u8; layout::REQ_SIZE] {
        let mut out = [0u8; layout::REQ_SIZE];
        put(
            &mut out,
            layout::REQ_CODE,
            &(self.code as u32).to_le_bytes(),
        );
        put(
            &mut out,
            layout::REQ_IO_OR_OFFSET,
            &self.io_or_offset.to_le_bytes(),
        );
        put(
            &mut out,
            layout::REQ_BLOCK_NUMBER,
            &self.block_number.to_le_bytes(),
        );
        put(&mut out, layout::REQ_COUNT, &self.count.to_le_bytes());
        put(&mut out, layout::REQ_ID, &self.id.to_le_bytes());
        out
    }

    /// A request from its bytes; an unknown code is reported with the request's id.
    pub fn from_bytes(bytes: &[u8; layout::REQ_SIZE]) -> Result<Self, PeerError> {
        let id = u32::from_le_bytes(get(bytes, layout::REQ_ID));
        let raw = u32::from_le_bytes(get(bytes, layout::REQ_CODE));
        let code = BlkRequestCode::from_raw(raw).ok_or(PeerError::BadRequest {
            id,
            fault: RequestFault::UnknownCode(raw),
        })?;
        Ok(Self {
            code,
            io_or_offset: u64::from_le_bytes(get(bytes, layout::REQ_IO_OR_OFFSET)),
            block_number: u64::from_le_bytes(get(bytes, layout::REQ_BLOCK_NUMBER)),
            count: u16::from_le_bytes(get(bytes, layout::REQ_COUNT)),
            id,
        })
    }

    /// Bytes the request transfers (`count` blocks), 0 for FLUSH and BARRIER.
    pub const fn bytes(&self) -> u64 {
        if self.code.transfers() {
            self.count as u64 * BLK_TRANSFER_SIZE as u64
        } else {
            0
        }
    }
}

/// A response (`blk_resp_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkResponse {
    /// The outcome.
    pub status: BlkStatus,
    /// Blocks transferred successfully.
    pub success_count: u16,
    /// The id of the request this answers.
    pub id: u32,
}

impl BlkResponse {
    /// The response's bytes as the C struct lays them out (padding zero).
    pub fn to_bytes(&self) -> [u8; layout::RESP_SIZE] {
        let mut out = [0u8; layout::RESP_SIZE];
        put(
            &mut out,
            layout::RESP_STATUS,
            &(self.status as u32).to_le_bytes(),
        );
        put(
            &mut out,
            layout::RESP_SUCCESS_COUNT,
            &self.success_count.to_le_bytes(),
        );
        put(&mut out, layout::RESP_ID, &self.id.to_le_bytes());
        out
    }

    /// A response from its bytes; an unknown status is reported with the response's id.
    pub fn from_bytes(bytes: &[u8; layout::RESP_SIZE]) -> Result<Self, PeerError> {
        let id = u32::from_le_bytes(get(bytes, layout::RESP_ID));
        let raw = u32::from_le_bytes(get(bytes, layout::RESP_STATUS));
        let status =
            BlkStatus::from_raw(raw).ok_or(PeerError::UnknownStatus { id, status: raw })?;
        Ok(Self {
            status,
            success_count: u16::from_le_bytes(get(bytes, layout::RESP_SUCCESS_COUNT)),
            id,
        })
    }
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    out[at..at + bytes.len()].copy_from_slice(bytes);
}

fn get<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// The data buffers one end may name: `size` bytes from `base` (`base` 0 for a client's offsets,
/// the region's I/O address for a driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkDataRegion {
    base: u64,
    size: u64,
}

impl BlkDataRegion {
    /// A region of `size` bytes at `base`.
    pub const fn new(base: u64, size: u64) -> Result<Self, ConfigError> {
        if base.checked_add(size).is_none() {
            return Err(ConfigError::BadDataRegion);
        }
        Ok(Self { base, size })
    }

    /// The client's view: offsets into a region of `size` bytes.
    pub const fn offsets(size: u64) -> Self {
        Self { base: 0, size }
    }

    /// Whether `bytes` bytes at `io_or_offset` lie inside the region.
    pub const fn contains(&self, io_or_offset: u64, bytes: u64) -> bool {
        match io_or_offset.checked_sub(self.base) {
            Some(rel) => rel <= self.size && self.size - rel >= bytes,
            None => false,
        }
    }
}

/// What the serving side knows about its device, for checking requests against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceLimits {
    /// Device size in [`BLK_TRANSFER_SIZE`] units.
    pub capacity: u64,
    /// Whether writes are refused.
    pub read_only: bool,
}

impl From<&StorageInfo> for DeviceLimits {
    fn from(info: &StorageInfo) -> Self {
        Self {
            capacity: info.capacity,
            read_only: info.read_only,
        }
    }
}

/// Checks a request against a data region and (when known) the device.
pub fn check_request(
    req: &BlkRequest,
    region: &BlkDataRegion,
    device: Option<DeviceLimits>,
) -> Result<(), RequestFault> {
    if !req.code.transfers() {
        return Ok(());
    }
    let end = req
        .block_number
        .checked_add(u64::from(req.count))
        .ok_or(RequestFault::CountOverflow)?;
    if !region.contains(req.io_or_offset, req.bytes()) {
        return Err(RequestFault::OutOfRegion);
    }
    if let Some(device) = device {
        if end > device.capacity {
            return Err(RequestFault::BeyondDevice);
        }
        if device.read_only && req.code == BlkRequestCode::Write {
            return Err(RequestFault::ReadOnly);
        }
    }
    Ok(())
}

const fn req_geometry(capacity: u32) -> Geometry {
    Geometry {
        queue: QueueId::BlkRequest,
        head: layout::REQ_HEAD,
        tail: layout::REQ_TAIL,
        wide: true,
        entries: layout::REQ_BUFFERS,
        entry_size: layout::REQ_SIZE,
        capacity,
    }
}

const fn resp_geometry(capacity: u32) -> Geometry {
    Geometry {
        queue: QueueId::BlkResponse,
        head: layout::RESP_HEAD,
        tail: layout::RESP_TAIL,
        wide: true,
        entries: layout::RESP_BUFFERS,
        entry_size: layout::RESP_SIZE,
        capacity,
    }
}

/// A request/response pair of queue regions with their common capacity (`blk_queue_handle_t`),
/// before a side picks its ends.
#[derive(Debug, Clone, Copy)]
pub struct BlkQueue<M> {
    req: M,
    resp: M,
    req_geo: Geometry,
    resp_geo: Geometry,
}

impl<M: QueueMem> BlkQueue<M> {
    /// The pair over `req` and `resp`, each holding `capacity` entries (a power of two up to
    /// 2^31; the regions are checked to be large enough).
    pub fn new(req: M, resp: M, capacity: u32) -> Result<Self, ConfigError> {
        let req_geo = req_geometry(capacity).check(req.size())?;
        let resp_geo = resp_geometry(capacity).check(resp.size())?;
        Ok(Self {
            req,
            resp,
            req_geo,
            resp_geo,
        })
    }

    /// The capacity of each queue.
    pub fn capacity(&self) -> u32 {
        self.req_geo.capacity
    }

    /// The requesting end (a block client; the virtualiser facing a driver): produces requests,
    /// consumes responses. Its own requests are checked against `region`.
    pub fn requester(self, region: BlkDataRegion) -> BlkRequester<M> {
        BlkRequester {
            req: Producer::attach(self.req, self.req_geo),
            resp: Consumer::attach(self.resp, self.resp_geo),
            region,
        }
    }

    /// The serving end (a block driver; the virtualiser facing a client): consumes requests,
    /// produces responses. Every request is checked against `region`.
    pub fn responder(self, region: BlkDataRegion) -> BlkResponder<M> {
        BlkResponder {
            req: Consumer::attach(self.req, self.req_geo),
            resp: Producer::attach(self.resp, self.resp_geo),
            region,
            device: None,
        }
    }
}

/// The requesting end of a block connection.
#[derive(Debug)]
pub struct BlkRequester<M> {
    req: Producer<M>,
    resp: Consumer<M>,
    region: BlkDataRegion,
}

impl<M: QueueMem> BlkRequester<M> {
    /// Requests published and not yet taken by the serving side.
    pub fn requests_len(&self) -> Result<u32, PeerError> {
        self.req.len()
    }

    /// Whether the request queue is full.
    pub fn is_request_full(&self) -> Result<bool, PeerError> {
        Ok(self.req.len()? == self.req.geo.capacity)
    }

    /// Responses waiting.
    pub fn responses_len(&self) -> Result<u32, PeerError> {
        self.resp.len()
    }

    /// Whether no response is waiting.
    pub fn is_response_empty(&self) -> Result<bool, PeerError> {
        Ok(self.resp.len()? == 0)
    }

    /// Checks `req` against the data region, writes it and publishes it (release store of the
    /// request queue's `tail`). Notify the serving side after a batch.
    pub fn enqueue_request(&mut self, req: &BlkRequest) -> Result<(), EnqueueError<RequestFault>> {
        check_request(req, &self.region, None).map_err(EnqueueError::Invalid)?;
        if self.req.push(&req.to_bytes())? {
            Ok(())
        } else {
            Err(EnqueueError::Full)
        }
    }

    /// Takes the oldest response: `Ok(None)` when empty; an unknown status is consumed and
    /// reported as [`PeerError::UnknownStatus`] with the id it carried.
    pub fn dequeue_response(&mut self) -> Result<Option<BlkResponse>, PeerError> {
        let mut bytes = [0u8; layout::RESP_SIZE];
        if !self.resp.pop(&mut bytes)? {
            return Ok(None);
        }
        BlkResponse::from_bytes(&bytes).map(Some)
    }

    /// Sets the request queue's `plugged` flag: the serving side should leave requests queued.
    pub fn set_plugged(&self, plugged: bool) {
        self.req
            .mem
            .store_u8(layout::REQ_PLUGGED, u8::from(plugged), Ordering::Release);
    }
}

/// The serving end of a block connection.
#[derive(Debug)]
pub struct BlkResponder<M> {
    req: Consumer<M>,
    resp: Producer<M>,
    region: BlkDataRegion,
    device: Option<DeviceLimits>,
}

impl<M: QueueMem> BlkResponder<M> {
    /// Checks requests against the device too (capacity, read-only) from now on.
    pub fn set_device(&mut self, device: DeviceLimits) {
        self.device = Some(device);
    }

    /// Requests waiting.
    pub fn requests_len(&self) -> Result<u32, PeerError> {
        self.req.len()
    }

    /// Whether no request is waiting.
    pub fn is_request_empty(&self) -> Result<bool, PeerError> {
        Ok(self.req.len()? == 0)
    }

    /// Responses published and not yet taken.
    pub fn responses_len(&self) -> Result<u32, PeerError> {
        self.resp.len()
    }

    /// Whether the response queue is full.
    pub fn is_response_full(&self) -> Result<bool, PeerError> {
        Ok(self.resp.len()? == self.resp.geo.capacity)
    }

    /// Takes the oldest request and checks it: `Ok(None)` when empty. A request with an unknown
    /// code, a count that overflows, a transfer outside the data region or past the device is
    /// consumed and reported as [`PeerError::BadRequest`] with its id, so the caller can answer
    /// it with an error status.
    pub fn dequeue_request(&mut self) -> Result<Option<BlkRequest>, PeerError> {
        let mut bytes = [0u8; layout::REQ_SIZE];
        if !self.req.pop(&mut bytes)? {
            return Ok(None);
        }
        let req = BlkRequest::from_bytes(&bytes)?;
        check_request(&req, &self.region, self.device)
            .map_err(|fault| PeerError::BadRequest { id: req.id, fault })?;
        Ok(Some(req))
    }

    /// Writes a response and publishes it (release store of the response queue's `tail`). Notify
    /// the requesting side after a batch.
    pub fn enqueue_response(&mut self, resp: &BlkResponse) -> Result<(), EnqueueError<Infallible>> {
        if self.resp.push(&resp.to_bytes())? {
            Ok(())
        } else {
            Err(EnqueueError::Full)
        }
    }

    /// Whether the requesting side plugged the request queue.
    pub fn is_plugged(&self) -> Result<bool, PeerError> {
        match self.req.mem.load_u8(layout::REQ_PLUGGED, Ordering::Acquire) {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(PeerError::BadFlag {
                flag: Flag::Plugged,
                value,
            }),
        }
    }
}
