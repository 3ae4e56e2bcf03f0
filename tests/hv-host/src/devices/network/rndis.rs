//! RNDIS, host side. Every message starts with type u32 and length u32 (the whole message);
//! several may follow each other in one NVSP message. Requests carry a request id the answer
//! echoes. INITIALIZE (request id, major, minor, max transfer size) is answered INITIALIZE_CMPLT
//! (request id, status, major 1, minor 0, device flags 1 (connectionless), medium 0 (802.3),
//! max packets per message, max transfer size, packet alignment factor as a power of two, and an
//! empty address-family list); QUERY and SET (request id, OID, information buffer length, its
//! offset counted from the request id, a VC handle) are answered QUERY_CMPLT (request id, status,
//! information length, offset 16 from the request id, the information) and SET_CMPLT (request
//! id, status); KEEPALIVE (request id) by KEEPALIVE_CMPLT (request id, status). INDICATE_STATUS
//! (status, buffer length, buffer offset) tells the link state. PACKET (data offset and length
//! counted from byte 8, out-of-band and per-packet-info offsets and lengths, VC handle, reserved)
//! carries one Ethernet frame.

use super::nvsp::{STATUS_INVALID_RNDIS, STATUS_SUCCESS};
use super::{LINK_SPEED, MTU, NetEvent, NetFault, NetState, PENDING_BYTES, rx, switch};
use crate::devices::service::Ctx;
use crate::devices::trace::{Service, TraceEvent};
use crate::log::{Direction, GuestError};

/// RNDIS message types.
pub const PACKET_MSG: u32 = 1;
/// INITIALIZE.
pub const INIT_MSG: u32 = 2;
/// HALT.
pub const HALT_MSG: u32 = 3;
/// QUERY.
pub const QUERY_MSG: u32 = 4;
/// SET.
pub const SET_MSG: u32 = 5;
/// RESET.
pub const RESET_MSG: u32 = 6;
/// INDICATE_STATUS.
pub const INDICATE_STATUS_MSG: u32 = 7;
/// KEEPALIVE.
pub const KEEPALIVE_MSG: u32 = 8;
/// The completion bit of answer types (INITIALIZE_CMPLT = 0x80000002, ...).
pub const CMPLT: u32 = 0x8000_0000;

/// Status: success.
pub const STATUS_OK: u32 = 0;
/// Status: not supported.
pub const STATUS_NOT_SUPPORTED: u32 = 0xC000_00BB;
/// Status: invalid data.
pub const STATUS_INVALID_DATA: u32 = 0xC001_0015;
/// Indication: media connected.
pub const MEDIA_CONNECT: u32 = 0x4001_000B;
/// Indication: media disconnected.
pub const MEDIA_DISCONNECT: u32 = 0x4001_000C;

/// OID_GEN_MAXIMUM_FRAME_SIZE.
pub const OID_MAXIMUM_FRAME_SIZE: u32 = 0x0001_0106;
/// OID_GEN_LINK_SPEED.
pub const OID_LINK_SPEED: u32 = 0x0001_0107;
/// OID_GEN_CURRENT_PACKET_FILTER.
pub const OID_CURRENT_PACKET_FILTER: u32 = 0x0001_010E;
/// OID_GEN_MAXIMUM_TOTAL_SIZE.
pub const OID_MAXIMUM_TOTAL_SIZE: u32 = 0x0001_0111;
/// OID_GEN_MEDIA_CONNECT_STATUS (0 connected, 1 disconnected).
pub const OID_MEDIA_CONNECT_STATUS: u32 = 0x0001_0114;
/// OID_802_3_PERMANENT_ADDRESS.
pub const OID_PERMANENT_ADDRESS: u32 = 0x0101_0101;
/// OID_802_3_CURRENT_ADDRESS.
pub const OID_CURRENT_ADDRESS: u32 = 0x0101_0102;

/// INITIALIZE_CMPLT: packets per message, transfer size, alignment factor (2^3 = 8).
pub const MAX_PACKETS_PER_MESSAGE: u32 = 8;
/// Max transfer size answered.
pub const MAX_TRANSFER_SIZE: u32 = 0x4000;
/// Packet alignment factor answered.
pub const ALIGNMENT_FACTOR: u32 = 3;
/// Size of the PACKET header: type, length and nine u32 fields.
pub const PACKET_HEADER: usize = 44;

fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn put(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

fn refuse(ctx: &mut Ctx<'_>, f: NetFault) {
    let e = GuestError::Net(ctx.relid, f);
    ctx.fault(Service::Network, e);
}

fn trace(ctx: &mut Ctx<'_>, dir: Direction, e: NetEvent) {
    ctx.trace(dir, Service::Network, TraceEvent::Net(e));
}

/// Handles the RNDIS messages in the first `len` bytes of the message buffer; the NVSP status of
/// the completion.
pub(crate) fn handle(net: &mut NetState, len: usize, _control: bool, ctx: &mut Ctx<'_>) -> u32 {
    if net.recv.is_none() {
        refuse(ctx, NetFault::NoReceiveBuffer);
        return STATUS_INVALID_RNDIS;
    }
    let mut at = 0;
    while at < len {
        let avail = len - at;
        let m = &net.buf[at..len];
        let (ty, mlen) = (u32_at(m, 0), u32_at(m, 4));
        if avail < 8 || mlen < 8 || mlen as usize > avail {
            let f = NetFault::RndisLength {
                ty,
                len: mlen,
                avail: avail as u32,
            };
            refuse(ctx, f);
            return STATUS_INVALID_RNDIS;
        }
        let mut msg = [0u8; 64];
        let n = (mlen as usize).min(msg.len());
        msg[..n].copy_from_slice(&m[..n]);
        let ok = match ty {
            PACKET_MSG => packet(net, at, mlen, ctx),
            INIT_MSG | QUERY_MSG | SET_MSG | KEEPALIVE_MSG | HALT_MSG | RESET_MSG => {
                control(net, ty, &msg[..n], ctx);
                true
            }
            _ => {
                refuse(ctx, NetFault::UnexpectedRndis(ty));
                false
            }
        };
        if !ok {
            return STATUS_INVALID_RNDIS;
        }
        at += mlen as usize;
    }
    STATUS_SUCCESS
}

/// One PACKET at `at` of the message buffer: its frame goes to the switch.
fn packet(net: &mut NetState, at: usize, mlen: u32, ctx: &mut Ctx<'_>) -> bool {
    let m = &net.buf[at..at + mlen as usize];
    let (offset, length) = (u32_at(m, 8), u32_at(m, 12));
    let start = 8 + u64::from(offset);
    if (mlen as usize) < PACKET_HEADER || length == 0 || start + u64::from(length) > u64::from(mlen)
    {
        let f = NetFault::RndisDataOffset {
            offset,
            length,
            message: mlen,
        };
        refuse(ctx, f);
        return false;
    }
    let frame = &m[start as usize..(start + u64::from(length)) as usize];
    net.stats.frames_switched += 1;
    let mut answer = [0u8; PENDING_BYTES];
    let Some((n, kind)) = switch::answer(&net.opts, frame, &mut answer[PACKET_HEADER..]) else {
        return true;
    };
    if net.filter == 0 {
        net.stats.rx_filtered += 1;
        return true;
    }
    match kind {
        switch::Answer::Arp => net.stats.arp_answered += 1,
        switch::Answer::Icmp => net.stats.icmp_answered += 1,
        switch::Answer::Udp => net.stats.udp_answered += 1,
    }
    let total = PACKET_HEADER + n;
    // total <= PENDING_BYTES.
    put(&mut answer, 0, PACKET_MSG);
    put(&mut answer, 4, total as u32);
    put(&mut answer, 8, (PACKET_HEADER - 8) as u32);
    put(&mut answer, 12, n as u32);
    rx::queue(net, false, &answer[..total]);
    true
}

/// A control request; its answer is queued for a receive region.
fn control(net: &mut NetState, ty: u32, m: &[u8], ctx: &mut Ctx<'_>) {
    let request = u32_at(m, 8);
    let mut a = [0u8; 64];
    let rxd = Direction::Received;
    let len = match ty {
        INIT_MSG => {
            let (major, minor) = (u32_at(m, 12), u32_at(m, 16));
            trace(
                ctx,
                rxd,
                NetEvent::RndisInit {
                    request,
                    major,
                    minor,
                },
            );
            let fields = [
                request,
                STATUS_OK,
                1,
                0,
                1,
                0,
                MAX_PACKETS_PER_MESSAGE,
                MAX_TRANSFER_SIZE,
                ALIGNMENT_FACTOR,
                0,
                0,
            ];
            for (i, f) in fields.iter().enumerate() {
                put(&mut a, 8 + 4 * i, *f);
            }
            net.rndis_ready = true;
            52
        }
        QUERY_MSG => {
            let oid = u32_at(m, 12);
            let o = &net.opts;
            let connected = u32::from(!net.link_up);
            let mut info = [0u8; 8];
            let info_len = match oid {
                OID_PERMANENT_ADDRESS | OID_CURRENT_ADDRESS => {
                    info[..6].copy_from_slice(&o.mac);
                    6
                }
                OID_MAXIMUM_FRAME_SIZE => word(&mut info, MTU),
                OID_MAXIMUM_TOTAL_SIZE => word(&mut info, MTU + 14),
                OID_LINK_SPEED => word(&mut info, LINK_SPEED),
                OID_MEDIA_CONNECT_STATUS => word(&mut info, connected),
                OID_CURRENT_PACKET_FILTER => word(&mut info, net.filter),
                _ => 0,
            };
            let status = if info_len == 0 {
                STATUS_NOT_SUPPORTED
            } else {
                STATUS_OK
            };
            trace(ctx, rxd, NetEvent::Query { oid, status });
            put(&mut a, 8, request);
            put(&mut a, 12, status);
            put(&mut a, 16, info_len as u32);
            put(&mut a, 20, if info_len == 0 { 0 } else { 16 });
            a[24..24 + info_len].copy_from_slice(&info[..info_len]);
            24 + info_len
        }
        SET_MSG => {
            let (oid, ilen, ioff) = (u32_at(m, 12), u32_at(m, 16), u32_at(m, 20));
            let value_at = 8 + ioff as usize;
            let value = (ilen >= 4).then(|| u32_at(m, value_at));
            let status = match (oid, value) {
                (OID_CURRENT_PACKET_FILTER, Some(v)) if value_at + 4 <= m.len() => {
                    net.filter = v;
                    STATUS_OK
                }
                (OID_CURRENT_PACKET_FILTER, _) => STATUS_INVALID_DATA,
                _ => STATUS_NOT_SUPPORTED,
            };
            let value = value.unwrap_or(0);
            trace(ctx, rxd, NetEvent::Set { oid, value, status });
            put(&mut a, 8, request);
            put(&mut a, 12, status);
            16
        }
        KEEPALIVE_MSG => {
            trace(ctx, rxd, NetEvent::Keepalive { request });
            put(&mut a, 8, request);
            put(&mut a, 12, STATUS_OK);
            16
        }
        RESET_MSG => {
            trace(ctx, rxd, NetEvent::HaltOrReset { ty });
            put(&mut a, 8, STATUS_OK);
            put(&mut a, 12, 0);
            16
        }
        _ => {
            // HALT: no answer.
            trace(ctx, rxd, NetEvent::HaltOrReset { ty });
            net.rndis_ready = false;
            return;
        }
    };
    put(&mut a, 0, ty | CMPLT);
    put(&mut a, 4, len as u32);
    rx::queue(net, true, &a[..len]);
    if ty == INIT_MSG {
        indicate_link(net, ctx);
    }
}

fn word(info: &mut [u8; 8], v: u32) -> usize {
    info[..4].copy_from_slice(&v.to_le_bytes());
    4
}

/// Queues INDICATE_STATUS with the link state (media connect or disconnect).
pub(crate) fn indicate_link(net: &mut NetState, ctx: &mut Ctx<'_>) {
    let status = if net.link_up {
        MEDIA_CONNECT
    } else {
        MEDIA_DISCONNECT
    };
    let mut a = [0u8; 20];
    for (i, f) in [INDICATE_STATUS_MSG, 20, status, 0, 0].iter().enumerate() {
        put(&mut a, 4 * i, *f);
    }
    trace(ctx, Direction::Sent, NetEvent::Indicate { status });
    rx::queue(net, true, &a);
}
