//! Receive regions: every RNDIS message for the guest waits in a short queue until a
//! sub-allocation of the receive buffer is free, is written there, and is announced with a
//! transfer-page packet. A region stays the guest's until its completion packet names the
//! transaction id it was announced with; a completion naming no outstanding region is a guest
//! error. The hostile switches bend the message or its range as it is written.

use core::cell::RefCell;

use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::GpadlId;
use vmbus_driver::ring::{RingMem, RingWriter, TransferRange, WriteBatch};

use super::{MAX_RX, NetFault, NetState, PENDING_BYTES, Pending, RECV_SUB_ALLOC};
use crate::devices::service::Ctx;
use crate::devices::trace::Service;
use crate::hostile::NET_UNKNOWN_TID;
use crate::log::GuestError;
use crate::memory::{GuestMemError, GuestMemory};

/// Extra length [`Hostile::net_rndis_oversize_length`](crate::Hostile) claims.
pub const OVERSIZE_EXTRA: u32 = 4096;

/// Writes whole packets on the host-to-guest ring and remembers whether to signal.
pub(crate) struct Out<'w, M: RingMem> {
    pub w: &'w mut RingWriter<M>,
    pub signal: bool,
    pub sent: u64,
    pub dropped: u64,
}

impl<M: RingMem> Out<'_, M> {
    fn write(&mut self, f: impl FnOnce(&mut WriteBatch<'_, M>) -> bool) -> bool {
        let Ok(mut b) = self.w.batch() else {
            self.dropped += 1;
            return false;
        };
        if !f(&mut b) {
            self.dropped += 1;
            return false;
        }
        self.signal |= b.commit().signal;
        self.sent += 1;
        true
    }

    /// A completion packet (type 0xB) for `tid`; false (and counted) when it does not fit.
    pub fn completion(&mut self, tid: u64, payload: &[u8]) -> bool {
        self.write(|b| b.write_completion(tid, payload).is_ok())
    }

    /// A transfer-page packet (type 7) asking for a completion.
    pub fn transfer(&mut self, tid: u64, set: u16, range: TransferRange, payload: &[u8]) -> bool {
        self.write(|b| {
            b.write_transfer_pages(tid, true, set, &[range], payload)
                .is_ok()
        })
    }
}

/// Walks `[offset, offset + len)` of a buffer GPADL page by page.
fn each_page(
    pfns: &[u64],
    offset: usize,
    len: usize,
    mut f: impl FnMut(u64, usize, usize, usize) -> Result<(), GuestMemError>,
) -> Result<(), GuestMemError> {
    let mut done = 0;
    while done < len {
        let at = offset + done;
        let n = (PAGE_SIZE - at % PAGE_SIZE).min(len - done);
        let pfn = *pfns
            .get(at / PAGE_SIZE)
            .ok_or(GuestMemError::OutOfPage { offset: at, len: n })?;
        f(pfn, at % PAGE_SIZE, done, n)?;
        done += n;
    }
    Ok(())
}

/// Copies `buf.len()` bytes at `offset` of the buffer over `pfns` out of guest memory.
pub(crate) fn read<G: GuestMemory>(
    mem: &mut G,
    pfns: &[u64],
    offset: usize,
    buf: &mut [u8],
) -> Result<(), GuestMemError> {
    let len = buf.len();
    each_page(pfns, offset, len, |pfn, o, d, n| {
        mem.read(pfn, o, &mut buf[d..d + n])
    })
}

/// Copies `data` to `offset` of the buffer over `pfns`.
pub(crate) fn write<G: GuestMemory>(
    mem: &mut G,
    pfns: &[u64],
    offset: usize,
    data: &[u8],
) -> Result<(), GuestMemError> {
    each_page(pfns, offset, data.len(), |pfn, o, d, n| {
        mem.write(pfn, o, &data[d..d + n])
    })
}

/// Queues an RNDIS message for the guest (control answers and indications, or a received frame);
/// false (and counted as dropped) when the queue is full.
pub(crate) fn queue(net: &mut NetState, control: bool, bytes: &[u8]) -> bool {
    if bytes.len() > PENDING_BYTES {
        net.stats.rx_dropped += 1;
        return false;
    }
    let mut p = Pending {
        control,
        // <= PENDING_BYTES.
        len: bytes.len() as u16,
        bytes: [0; PENDING_BYTES],
    };
    p.bytes[..bytes.len()].copy_from_slice(bytes);
    if net.pending.push(p).is_err() {
        net.stats.rx_dropped += 1;
        return false;
    }
    true
}

/// The receive regions the host uses: the first [`MAX_RX`] whole sub-allocations.
fn regions(size: u32) -> usize {
    ((size / RECV_SUB_ALLOC) as usize).min(MAX_RX)
}

/// Delivers waiting messages into free regions, in order, while regions and ring room last.
pub(crate) fn flush<G: GuestMemory, M: RingMem>(
    net: &mut NetState,
    mem: &RefCell<&mut G>,
    out: &mut Out<'_, M>,
    ctx: &mut Ctx<'_>,
) -> Result<(), GuestMemError> {
    let Some(b) = net.recv else { return Ok(()) };
    let Some(slot) = ctx.gpadls.find(GpadlId(b.gpadl)) else {
        return Ok(());
    };
    let pfns = ctx.gpadls.pfns(slot);
    let n = regions(b.size);
    let h = ctx.hostile;
    while let Some(p) = net.pending.front() {
        let Some(i) = net.rx[..n].iter().position(|&t| t == 0) else {
            break;
        };
        let (control, len) = (p.control, usize::from(p.len));
        let mut bytes = p.bytes;
        if h.net_rndis_oversize_length && len >= 8 {
            let claimed = len as u32 + OVERSIZE_EXTRA;
            bytes[4..8].copy_from_slice(&claimed.to_le_bytes());
        }
        if h.net_rndis_bad_data_offset && !control && len >= 16 {
            bytes[8..12].copy_from_slice(&(len as u32).to_le_bytes());
        }
        // i < MAX_RX: the offset fits in u32.
        let offset = i as u32 * RECV_SUB_ALLOC;
        write(
            &mut **mem.borrow_mut(),
            pfns,
            offset as usize,
            &bytes[..len],
        )?;
        let range = TransferRange {
            byte_count: len as u32,
            byte_offset: if h.net_xfer_beyond_buffer {
                b.size
            } else {
                offset
            },
        };
        let tid = net.next_tid;
        let payload = super::nvsp::rndis_packet(control);
        let payload = &payload[..super::nvsp::message_len(net.version)];
        if !out.transfer(tid, b.id, range, payload) {
            break;
        }
        net.next_tid = net.next_tid.wrapping_add(1).max(1);
        net.rx[i] = tid;
        net.pending.pop();
        if !control {
            net.stats.frames_delivered += 1;
        }
    }
    Ok(())
}

/// The guest returned the region announced with `tid`.
pub(crate) fn complete(net: &mut NetState, tid: u64, ctx: &mut Ctx<'_>) {
    match net.rx.iter().position(|&t| t == tid && t != 0) {
        Some(i) => {
            net.rx[i] = 0;
            net.stats.rx_completed += 1;
        }
        None => {
            let e = GuestError::Net(ctx.relid, NetFault::UnknownCompletion(tid));
            ctx.fault(Service::Network, e);
        }
    }
}

/// Writes the completion of a guest RNDIS message, and the hostile stray one after it.
pub(crate) fn rndis_completion<M: RingMem>(
    net: &mut NetState,
    out: &mut Out<'_, M>,
    ctx: &Ctx<'_>,
    tid: u64,
    status: u32,
) {
    let payload = super::nvsp::message(super::nvsp::SEND_RNDIS_PACKET_COMPLETE, &[status]);
    let payload = &payload[..super::nvsp::message_len(net.version)];
    out.completion(tid, payload);
    net.stats.rndis_completions += 1;
    if ctx.hostile.net_unknown_completion {
        out.completion(NET_UNKNOWN_TID, payload);
    }
}
