//! RNDIS messages on their way in: from a send-buffer section (SEND_RNDIS_PACKET with a section
//! index) or from the GPA-direct ranges of a type 9 packet (section index 0xFFFFFFFF). Either
//! way the message is copied into the device's message buffer, handled, and answered with a
//! completion.

use core::cell::RefCell;

use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::GpadlId;
use vmbus_driver::ring::RingMem;

use super::nvsp::{NO_SECTION, SEND_RNDIS_PACKET, STATUS_FAILURE, fault, u32_at};
use super::rx::{self, Out};
use super::{MSG_BUF, NetFault, NetState, SEND_SECTION};
use crate::devices::service::Ctx;
use crate::memory::{GuestMemError, GuestMemory};

/// SEND_RNDIS_PACKET naming a send-buffer section: `(channel type, index, size)`.
pub(crate) fn section_packet<G: GuestMemory, M: RingMem>(
    net: &mut NetState,
    (channel, index, size): (u32, u32, u32),
    tid: u64,
    mem: &RefCell<&mut G>,
    out: &mut Out<'_, M>,
    ctx: &mut Ctx<'_>,
) -> Result<(), GuestMemError> {
    let slot = net.send.and_then(|b| ctx.gpadls.find(GpadlId(b.gpadl)));
    let (Some(len), Some(slot)) = (section(net, index, size), slot) else {
        fault(ctx, NetFault::BadSection { index, size });
        rx::rndis_completion(net, out, ctx, tid, STATUS_FAILURE);
        return Ok(());
    };
    let pfns = ctx.gpadls.pfns(slot);
    let off = (index * SEND_SECTION) as usize;
    rx::read(&mut **mem.borrow_mut(), pfns, off, &mut net.buf[..len])?;
    let status = super::rndis::handle(net, len, channel == 1, ctx);
    rx::rndis_completion(net, out, ctx, tid, status);
    Ok(())
}

/// The bytes a send-buffer section holds, if `index` and `size` are inside the send buffer.
fn section(net: &NetState, index: u32, size: u32) -> Option<usize> {
    let b = net.send?;
    let sections = b.size / SEND_SECTION;
    (index < sections && size > 0 && size <= SEND_SECTION).then_some(size as usize)
}

/// A GPA-direct SEND_RNDIS_PACKET: the RNDIS message is in the ranges of `ext` (reserved u32,
/// range count u32, then per range byte count u32, byte offset u32 and a u64 per page).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gpa_direct<G: GuestMemory, M: RingMem>(
    net: &mut NetState,
    m: &[u8],
    ext: &[u8],
    tid: u64,
    mem: &RefCell<&mut G>,
    out: &mut Out<'_, M>,
    ctx: &mut Ctx<'_>,
) -> Result<(), GuestMemError> {
    let ty = u32_at(m, 0);
    if ty != SEND_RNDIS_PACKET || m.len() < 16 {
        fault(ctx, NetFault::UnknownMessage(ty));
        return Ok(());
    }
    if u32_at(m, 8) != NO_SECTION {
        // A message split between a section and ranges (Linux's partial copy): not served.
        let (index, size) = (u32_at(m, 8), u32_at(m, 12));
        fault(ctx, NetFault::BadSection { index, size });
        rx::rndis_completion(net, out, ctx, tid, STATUS_FAILURE);
        return Ok(());
    }
    if net.version.is_none() {
        fault(ctx, NetFault::NotInitialized(ty));
        return Ok(());
    }
    let channel = u32_at(m, 4);
    let Some(len) = gather(net, ext, mem)? else {
        fault(ctx, NetFault::BadRanges);
        rx::rndis_completion(net, out, ctx, tid, STATUS_FAILURE);
        return Ok(());
    };
    let status = super::rndis::handle(net, len, channel == 1, ctx);
    rx::rndis_completion(net, out, ctx, tid, status);
    Ok(())
}

/// Copies the ranges of `ext` into the message buffer; `None` when they are malformed or longer
/// than [`MSG_BUF`].
fn gather<G: GuestMemory>(
    net: &mut NetState,
    ext: &[u8],
    mem: &RefCell<&mut G>,
) -> Result<Option<usize>, GuestMemError> {
    let count = u32_at(ext, 4) as usize;
    let (mut at, mut total) = (8usize, 0usize);
    if ext.len() < 8 || count == 0 {
        return Ok(None);
    }
    for _ in 0..count {
        let (n, off) = (u32_at(ext, at) as usize, u32_at(ext, at + 4) as usize);
        let pages = (off + n).div_ceil(PAGE_SIZE);
        let end = at + 8 + pages * 8;
        if n == 0 || off >= PAGE_SIZE || end > ext.len() || total + n > MSG_BUF {
            return Ok(None);
        }
        let mut pfns = [0u64; 4];
        if pages > pfns.len() {
            return Ok(None);
        }
        for (i, p) in pfns[..pages].iter_mut().enumerate() {
            let o = at + 8 + 8 * i;
            *p = u64::from(u32_at(ext, o)) | u64::from(u32_at(ext, o + 4)) << 32;
        }
        let dst = &mut net.buf[total..total + n];
        rx::read(&mut **mem.borrow_mut(), &pfns[..pages], off, dst)?;
        total += n;
        at = end;
    }
    Ok(Some(total))
}
