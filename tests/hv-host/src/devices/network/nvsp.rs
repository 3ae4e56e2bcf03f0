//! NVSP over the channel's rings: the device run, the NVSP control messages, and the RNDIS
//! messages' way in (send-buffer sections and GPA-direct ranges).
//!
//! Values, and where the public sources disagree:
//! - Versions: Linux tries 6.1, 6, 5, 4, 2, 1 sending min = max; OpenVMM accepts exactly those
//!   six and looks at the first field only. Here the newest known version inside the offered
//!   range (and inside [`NetOptions`]'s limits) is taken, so both behaviours are served.
//! - INIT_COMPLETE's first field: Linux calls it the negotiated version, OpenVMM "deprecated".
//!   The host writes the version on success and 0xFFFFFFFF on refusal; the maximum MDL chain
//!   length it writes (34) is informational and unchecked by both guests.
//! - Sub-allocation size: Linux documents Hyper-V's 1728 (NETVSC_RECV_SECTION_SIZE); OpenVMM
//!   answers 256 + MTU + 36 (1806). The host answers 1728.
//! - Message padding: OpenVMM sends NVSP messages of 28 bytes (0x1c) before 6.1 and 40 (0x28)
//!   from 6.1; the host does the same.

use core::cell::RefCell;
use core::sync::atomic::Ordering;

use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::GpadlId;
use vmbus_driver::ring::{
    Control, FEATURE_PENDING_SEND_SZ, PacketType, RingError, RingMem, RingReader, RingWriter,
};

use super::rx::{self, Out};
use super::tx;
use super::{Buffer, NVSP_VERSIONS, NetEvent, NetFault, NetOptions, NetState};
use super::{RECV_SUB_ALLOC, SEND_SECTION};
use crate::devices::DeviceError;
use crate::devices::echo::Outcome;
use crate::devices::service::Ctx;
use crate::devices::trace::{Service, TraceEvent};
use crate::log::{Direction, GuestError};
use crate::memory::{GpadlRingMem, GuestMemory};
use crate::offers::ChannelStats;
use crate::open::RingState;

/// NVSP message types.
pub const INIT: u32 = 1;
/// INIT_COMPLETE.
pub const INIT_COMPLETE: u32 = 2;
/// SEND_NDIS_VERSION.
pub const SEND_NDIS_VERSION: u32 = 100;
/// SEND_RECEIVE_BUFFER.
pub const SEND_RECEIVE_BUFFER: u32 = 101;
/// SEND_RECEIVE_BUFFER_COMPLETE.
pub const SEND_RECEIVE_BUFFER_COMPLETE: u32 = 102;
/// REVOKE_RECEIVE_BUFFER.
pub const REVOKE_RECEIVE_BUFFER: u32 = 103;
/// SEND_SEND_BUFFER.
pub const SEND_SEND_BUFFER: u32 = 104;
/// SEND_SEND_BUFFER_COMPLETE.
pub const SEND_SEND_BUFFER_COMPLETE: u32 = 105;
/// REVOKE_SEND_BUFFER.
pub const REVOKE_SEND_BUFFER: u32 = 106;
/// SEND_RNDIS_PACKET.
pub const SEND_RNDIS_PACKET: u32 = 107;
/// SEND_RNDIS_PACKET_COMPLETE.
pub const SEND_RNDIS_PACKET_COMPLETE: u32 = 108;
/// SEND_NDIS_CONFIG (NVSP 2).
pub const SEND_NDIS_CONFIG: u32 = 125;
/// SWITCH_DATA_PATH (NVSP 4).
pub const SWITCH_DATA_PATH: u32 = 129;
/// SUB_CHANNEL (NVSP 5).
pub const SUB_CHANNEL: u32 = 133;
/// Status: success.
pub const STATUS_SUCCESS: u32 = 1;
/// Status: failure.
pub const STATUS_FAILURE: u32 = 2;
/// Status: invalid RNDIS packet.
pub const STATUS_INVALID_RNDIS: u32 = 5;
/// Section index meaning "not in the send buffer".
pub const NO_SECTION: u32 = 0xFFFF_FFFF;
/// Maximum MDL chain length written in INIT_COMPLETE.
pub const MAX_MDL_CHAIN: u32 = 34;

/// Packets one run reads at most.
const MAX_PACKETS: u32 = 256;
/// Largest NVSP message read (the rest of a longer payload is ignored).
const NVSP_MAX: usize = 64;
/// Largest extended descriptor read (a GPA-direct list of 32 one-page ranges).
const EXT_MAX: usize = 8 + 32 * 16;

/// An NVSP message of `ty` with `fields` (40 zero-padded bytes; send [`message_len`] of them).
pub(crate) fn message(ty: u32, fields: &[u32]) -> [u8; 40] {
    let mut m = [0u8; 40];
    m[..4].copy_from_slice(&ty.to_le_bytes());
    for (i, f) in fields.iter().take(9).enumerate() {
        m[4 + 4 * i..8 + 4 * i].copy_from_slice(&f.to_le_bytes());
    }
    m
}

/// The payload length of messages at `version`: 28 bytes before 6.1, 40 from 6.1.
pub(crate) fn message_len(version: Option<u32>) -> usize {
    if version.is_some_and(|v| v >= super::NVSP_V61) {
        40
    } else {
        28
    }
}

/// The SEND_RNDIS_PACKET payload of a transfer-page packet.
pub(crate) fn rndis_packet(control: bool) -> [u8; 40] {
    message(SEND_RNDIS_PACKET, &[u32::from(control), NO_SECTION, 0])
}

pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    b.get(o..o + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn fault(ctx: &mut Ctx<'_>, f: NetFault) {
    let e = GuestError::Net(ctx.relid, f);
    ctx.fault(Service::Network, e);
}

fn trace(ctx: &mut Ctx<'_>, dir: Direction, e: NetEvent) {
    ctx.trace(dir, Service::Network, TraceEvent::Net(e));
}

/// Runs the network device on its rings.
pub(crate) fn run<G: GuestMemory>(
    mem: &mut G,
    pfns: &[u64],
    opts: NetOptions,
    ring: &mut RingState,
    stats: &mut ChannelStats,
    net: &mut NetState,
    ctx: &mut Ctx<'_>,
) -> Outcome {
    let mut out = Outcome::default();
    ring.guest_signal = false;
    ring.signalled = false;
    let k = (ring.downstream as usize).min(pfns.len());
    let (out_pfns, in_pfns) = pfns.split_at(k);
    let cell = RefCell::new(mem);
    if !ring.started {
        let o = GpadlRingMem::new(&cell, out_pfns, None);
        let i = GpadlRingMem::new(&cell, in_pfns, None);
        ring.out_read = o.load(Control::ReadIndex, Ordering::Acquire);
        ring.in_write = i.load(Control::WriteIndex, Ordering::Acquire);
        let f = i.load(Control::FeatureBits, Ordering::Relaxed);
        i.store(
            Control::FeatureBits,
            f | FEATURE_PENDING_SEND_SZ,
            Ordering::Relaxed,
        );
        if let Some(e) = o.fault().or(i.fault()) {
            out.error = Some(DeviceError::Memory(e));
            return out;
        }
        ring.started = true;
        net.open(ctx.relid, opts);
    }
    let o_mem = GpadlRingMem::new(&cell, out_pfns, Some((Control::ReadIndex, ring.out_read)));
    let i_mem = GpadlRingMem::new(&cell, in_pfns, Some((Control::WriteIndex, ring.in_write)));
    let result = (|| -> Result<(), DeviceError> {
        let mut reader = RingReader::new(&o_mem).map_err(DeviceError::Ring)?;
        let mut writer = RingWriter::new(&i_mem).map_err(DeviceError::Ring)?;
        let mut tx = Out {
            w: &mut writer,
            signal: false,
            sent: 0,
            dropped: 0,
        };
        let mut stop = None;
        let mut n = 0;
        let mut nvsp = [0u8; NVSP_MAX];
        let mut ext = [0u8; EXT_MAX];
        'read: while n < MAX_PACKETS {
            let mut rb = match reader.batch() {
                Ok(b) => b,
                Err(RingError::Empty) => break,
                Err(e) => return Err(DeviceError::Ring(e)),
            };
            while let Some(p) = rb.next_packet().map_err(DeviceError::Ring)? {
                n += 1;
                stats.packets_in += 1;
                stats.bytes_in += p.payload_len() as u64;
                let (ty, tid, want) = (
                    p.packet_type(),
                    p.transaction_id(),
                    p.completion_requested(),
                );
                let len = p.payload_len().min(NVSP_MAX);
                p.read_payload(0, &mut nvsp[..len])
                    .map_err(DeviceError::Ring)?;
                let ext_len = p.ext_len();
                if ty == PacketType::DATA_USING_GPA_DIRECT && ext_len <= EXT_MAX {
                    p.read_ext(0, &mut ext[..ext_len])
                        .map_err(DeviceError::Ring)?;
                }
                let msg = &nvsp[..len];
                match ty {
                    PacketType::DATA_INBAND => inband(net, msg, tid, want, &cell, &mut tx, ctx)
                        .map_err(DeviceError::Memory)?,
                    PacketType::DATA_USING_GPA_DIRECT => {
                        let ranges = ext.get(..ext_len).unwrap_or(&[]);
                        tx::gpa_direct(net, msg, ranges, tid, &cell, &mut tx, ctx)
                            .map_err(DeviceError::Memory)?;
                    }
                    PacketType::COMP => rx::complete(net, tid, ctx),
                    other => {
                        stop = Some(other.0);
                        break;
                    }
                }
                if n >= MAX_PACKETS {
                    break;
                }
            }
            out.signal |= rb.commit().map_err(DeviceError::Ring)?.signal;
            if stop.is_some() {
                break 'read;
            }
        }
        rx::flush(net, &cell, &mut tx, ctx).map_err(DeviceError::Memory)?;
        out.signal |= tx.signal;
        stats.packets_out += tx.sent;
        stats.dropped += tx.dropped;
        ring.out_read = reader.read_index();
        ring.in_write = writer.write_index();
        match stop {
            Some(t) => Err(DeviceError::Unsupported(t)),
            None => Ok(()),
        }
    })();
    if let Some(e) = o_mem.fault().or(i_mem.fault()) {
        out.error = Some(DeviceError::Memory(e));
    } else if let Err(e) = result {
        out.error = Some(e);
    }
    out
}

/// The newest known version inside `min..=max` and the options' limits.
fn choose(opts: &NetOptions, min: u32, max: u32) -> Option<u32> {
    let max = max.max(min);
    NVSP_VERSIONS
        .iter()
        .copied()
        .find(|&v| (min..=max).contains(&v) && (opts.min_version..=opts.max_version).contains(&v))
}

/// Resolves a buffer GPADL of this channel: its size in bytes.
fn buffer_size(ctx: &Ctx<'_>, gpadl: u32) -> Option<u32> {
    let slot = ctx.gpadls.find(GpadlId(gpadl))?;
    let e = ctx.gpadls.entry(slot);
    (e.relid == ctx.relid && e.user.is_none()).then(|| e.pages * PAGE_SIZE as u32)
}

/// One in-band NVSP message.
#[allow(clippy::too_many_arguments)]
fn inband<G: GuestMemory, M: RingMem>(
    net: &mut NetState,
    m: &[u8],
    tid: u64,
    want: bool,
    mem: &RefCell<&mut G>,
    out: &mut Out<'_, M>,
    ctx: &mut Ctx<'_>,
) -> Result<(), crate::memory::GuestMemError> {
    let ty = u32_at(m, 0);
    let need = match ty {
        INIT | SEND_NDIS_VERSION | SEND_NDIS_CONFIG => 12,
        SEND_RECEIVE_BUFFER | SEND_SEND_BUFFER => 10,
        SEND_RNDIS_PACKET => 16,
        _ => 4,
    };
    if m.len() < need {
        fault(ctx, NetFault::Truncated { ty, len: m.len() });
        return Ok(());
    }
    if ty != INIT && net.version.is_none() {
        fault(ctx, NetFault::NotInitialized(ty));
        return Ok(());
    }
    let v = net.version;
    let rx = Direction::Received;
    match ty {
        INIT => {
            let (min, max) = (u32_at(m, 4), u32_at(m, 8));
            let accepted = choose(&net.opts, min, max);
            trace(ctx, rx, NetEvent::Init { min, max, accepted });
            let status = if accepted.is_some() {
                STATUS_SUCCESS
            } else {
                STATUS_FAILURE
            };
            if accepted.is_some() {
                net.version = accepted;
            }
            let negotiated = accepted.unwrap_or(NO_SECTION);
            let r = message(INIT_COMPLETE, &[negotiated, MAX_MDL_CHAIN, status]);
            out.completion(tid, &r[..message_len(accepted)]);
        }
        SEND_NDIS_VERSION => {
            let (major, minor) = (u32_at(m, 4), u32_at(m, 8));
            net.ndis = Some((major, minor));
            trace(ctx, rx, NetEvent::NdisVersion { major, minor });
        }
        SEND_NDIS_CONFIG => trace(ctx, rx, NetEvent::NdisConfig { mtu: u32_at(m, 4) }),
        SEND_RECEIVE_BUFFER => {
            let gpadl = u32_at(m, 4);
            let id = u16::from_le_bytes([m[8], m[9]]);
            let size = buffer_size(ctx, gpadl).filter(|&s| s >= RECV_SUB_ALLOC);
            let count = size.map_or(0, |s| s / RECV_SUB_ALLOC);
            trace(
                ctx,
                rx,
                NetEvent::ReceiveBuffer {
                    gpadl,
                    size: size.unwrap_or(0),
                    sections: count,
                },
            );
            let r = match size {
                Some(s) => {
                    net.recv = Some(Buffer { gpadl, id, size: s });
                    net.rx = [0; super::MAX_RX];
                    let (mut end, mut num) = (count * RECV_SUB_ALLOC, count);
                    if ctx.hostile.net_bad_sections {
                        end = s + PAGE_SIZE as u32;
                        num = end.div_ceil(RECV_SUB_ALLOC);
                    }
                    message(
                        SEND_RECEIVE_BUFFER_COMPLETE,
                        &[STATUS_SUCCESS, 1, 0, RECV_SUB_ALLOC, num, end],
                    )
                }
                None => {
                    fault(ctx, NetFault::BadBuffer(gpadl));
                    message(SEND_RECEIVE_BUFFER_COMPLETE, &[STATUS_FAILURE, 0])
                }
            };
            out.completion(tid, &r[..message_len(v)]);
        }
        SEND_SEND_BUFFER => {
            let gpadl = u32_at(m, 4);
            let id = u16::from_le_bytes([m[8], m[9]]);
            let size = buffer_size(ctx, gpadl).filter(|&s| s >= SEND_SECTION);
            trace(
                ctx,
                rx,
                NetEvent::SendBuffer {
                    gpadl,
                    size: size.unwrap_or(0),
                },
            );
            let fields = match size {
                Some(s) => {
                    net.send = Some(Buffer { gpadl, id, size: s });
                    [STATUS_SUCCESS, SEND_SECTION]
                }
                None => {
                    fault(ctx, NetFault::BadBuffer(gpadl));
                    [STATUS_FAILURE, 0]
                }
            };
            let r = message(SEND_SEND_BUFFER_COMPLETE, &fields);
            out.completion(tid, &r[..message_len(v)]);
        }
        REVOKE_RECEIVE_BUFFER | REVOKE_SEND_BUFFER => {
            let receive = ty == REVOKE_RECEIVE_BUFFER;
            trace(ctx, rx, NetEvent::Revoke { receive });
            if receive {
                net.recv = None;
            } else {
                net.send = None;
            }
        }
        SEND_RNDIS_PACKET => {
            let (channel, index, size) = (u32_at(m, 4), u32_at(m, 8), u32_at(m, 12));
            tx::section_packet(net, (channel, index, size), tid, mem, out, ctx)?;
        }
        SWITCH_DATA_PATH | SUB_CHANNEL => {
            trace(ctx, rx, NetEvent::Other(ty));
            if want {
                let status = if ty == SUB_CHANNEL {
                    STATUS_FAILURE
                } else {
                    STATUS_SUCCESS
                };
                let r = message(ty, &[status, 0]);
                out.completion(tid, &r[..message_len(v)]);
            }
        }
        _ => fault(ctx, NetFault::UnknownMessage(ty)),
    }
    Ok(())
}
