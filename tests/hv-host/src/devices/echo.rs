//! The ring work of the echo, sink and source devices over `vmbus_driver::ring`, with the host's
//! side of the signalling rules.
//!
//! Echo: each in-band (type 6) or GPA-direct (type 9) packet's payload goes back as an in-band
//! packet with the same transaction id and completion flag; completions (0xB) are consumed. Any
//! other type stops the device (QEMU stops reading the ring,
//! docs/protocol.md#qemus-bus-state-machine). A packet is consumed only when its echo fits: the
//! device first counts what fits (reading descriptors without consuming), then consumes exactly
//! that; when nothing fits it sets pending_send_sz in its ring if the guest advertised feature bit
//! 0, and waits for the guest's signal.

use core::cell::RefCell;
use core::sync::atomic::Ordering;

use vmbus_driver::ring::{
    Control, FEATURE_PENDING_SEND_SZ, PacketType, RingError, RingReader, RingWriter, SpaceWait,
};

use crate::config::DeviceKind;
use crate::memory::{GpadlRingMem, GuestMemError, GuestMemory};
use crate::offers::ChannelStats;
use crate::open::RingState;

/// Batches one run handles at most; a guest that keeps writing cannot hold the host in one device
/// forever (the channel stays marked and continues at the next poll).
const MAX_ROUNDS: u32 = 256;

/// Why a device stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceError {
    Ring(RingError),
    Memory(GuestMemError),
    Unsupported(u16),
}

/// What a device run asks of the host.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    /// Interrupt the guest (the ring rules said so).
    pub signal: bool,
    /// The guest signalled but had written nothing new and was not owed space.
    pub spurious: bool,
    /// The device stopped.
    pub error: Option<DeviceError>,
}

/// One packet of a read pass: what to do with it and how many ring bytes its answer needs.
enum Plan {
    /// Write back this many payload bytes.
    Echo(usize),
    /// Consume only.
    Consume,
    /// Stop the device.
    Stop(u16),
}

/// Runs one device over its rings. `pfns` is the ring GPADL (outbound ring first).
pub(crate) fn run<G: GuestMemory>(
    mem: &mut G,
    pfns: &[u64],
    kind: DeviceKind,
    ring: &mut RingState,
    stats: &mut ChannelStats,
    scratch: &mut [u8],
) -> Outcome {
    let mut out = Outcome::default();
    let guest_signal = core::mem::take(&mut ring.guest_signal);
    ring.signalled = false;
    if kind == DeviceKind::Idle {
        return out;
    }
    let k = (ring.downstream as usize).min(pfns.len());
    let (out_pfns, in_pfns) = pfns.split_at(k);
    let cell = RefCell::new(mem);
    if !ring.started {
        // Start from the indices the guest left in the headers (QEMU does), and advertise
        // pending_send_sz support as the producer of the host-to-guest ring.
        let o = GpadlRingMem::new(&cell, out_pfns, None);
        let i = GpadlRingMem::new(&cell, in_pfns, None);
        use vmbus_driver::ring::RingMem;
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
    }
    let o_mem = GpadlRingMem::new(&cell, out_pfns, Some((Control::ReadIndex, ring.out_read)));
    let i_mem = GpadlRingMem::new(&cell, in_pfns, Some((Control::WriteIndex, ring.in_write)));
    let result = work(
        &o_mem,
        &i_mem,
        kind,
        ring,
        stats,
        scratch,
        guest_signal,
        &mut out,
    );
    if let Some(e) = o_mem.fault().or(i_mem.fault()) {
        out.error = Some(DeviceError::Memory(e));
    } else if let Err(e) = result {
        out.error = Some(e);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn work<M: vmbus_driver::ring::RingMem>(
    o_mem: &M,
    i_mem: &M,
    kind: DeviceKind,
    ring: &mut RingState,
    stats: &mut ChannelStats,
    scratch: &mut [u8],
    guest_signal: bool,
    out: &mut Outcome,
) -> Result<(), DeviceError> {
    let mut reader = RingReader::new(o_mem).map_err(DeviceError::Ring)?;
    let mut writer = RingWriter::new(i_mem).map_err(DeviceError::Ring)?;
    // The guest, as producer of the outbound ring, promises to honour our pending_send_sz.
    let guest_honours = reader.producer_features() & FEATURE_PENDING_SEND_SZ != 0;
    let had_data = reader.has_data().map_err(DeviceError::Ring)?;
    if guest_signal && !had_data && !ring.waiting_space {
        stats.spurious_signals += 1;
        out.spurious = true;
    }
    let was_waiting = core::mem::take(&mut ring.waiting_space);
    let result = match kind {
        DeviceKind::Echo => echo(
            &mut reader,
            &mut writer,
            stats,
            scratch,
            guest_honours,
            ring,
            out,
        ),
        DeviceKind::Sink | DeviceKind::Source { .. } => {
            if let DeviceKind::Source { payload_len, .. } = kind {
                produce(
                    &mut writer,
                    stats,
                    scratch,
                    payload_len,
                    guest_honours,
                    ring,
                    out,
                )
                .map_err(DeviceError::Ring)?;
            }
            sink(&mut reader, stats, out)
        }
        _ => Ok(()),
    };
    if was_waiting && !ring.waiting_space {
        // We left pending_send_sz set in an earlier run (a fresh writer does not know): clear it.
        i_mem.store(Control::PendingSendSz, 0, Ordering::Relaxed);
    }
    ring.out_read = reader.read_index();
    ring.in_write = writer.write_index();
    result
}

fn plan<M: vmbus_driver::ring::RingMem>(
    p: &vmbus_driver::ring::PacketView<'_, M>,
    scratch: usize,
) -> Plan {
    match p.packet_type() {
        PacketType::DATA_INBAND | PacketType::DATA_USING_GPA_DIRECT => {
            if p.payload_len() > scratch {
                Plan::Consume
            } else {
                Plan::Echo(p.payload_len())
            }
        }
        PacketType::COMP => Plan::Consume,
        other => Plan::Stop(other.0),
    }
}

fn echo<M: vmbus_driver::ring::RingMem>(
    reader: &mut RingReader<M>,
    writer: &mut RingWriter<M>,
    stats: &mut ChannelStats,
    scratch: &mut [u8],
    guest_honours: bool,
    ring: &mut RingState,
    out: &mut Outcome,
) -> Result<(), DeviceError> {
    for _ in 0..MAX_ROUNDS {
        // Pass 1: how many packets can be answered now (nothing is consumed).
        let mut room = writer.batch().map_err(DeviceError::Ring)?.room() as usize;
        let mut n = 0u32;
        let mut blocked_on = 0usize;
        let mut stop = None;
        {
            let mut rb = match reader.batch() {
                Ok(b) => b,
                Err(RingError::Empty) => return Ok(()),
                Err(e) => return Err(DeviceError::Ring(e)),
            };
            while let Some(p) = rb.next_packet().map_err(DeviceError::Ring)? {
                let need = match plan(&p, scratch.len()) {
                    Plan::Echo(len) => RingWriter::<M>::inband_len(len),
                    Plan::Consume => 0,
                    Plan::Stop(t) => {
                        stop = Some(t);
                        break;
                    }
                };
                if need > room {
                    blocked_on = need;
                    break;
                }
                room -= need;
                n += 1;
            }
        }
        if n == 0 {
            if let Some(t) = stop {
                return Err(DeviceError::Unsupported(t));
            }
            if blocked_on > 0 {
                // u32: need <= ring size.
                let wait = writer
                    .request_space(blocked_on as u32, guest_honours)
                    .map_err(DeviceError::Ring)?;
                if wait != SpaceWait::Ready {
                    // Poll without pending_send_sz support; with it, the guest signals.
                    ring.waiting_space = true;
                    return Ok(());
                }
                continue;
            }
            return Ok(());
        }
        // Pass 2: consume exactly those packets and answer them.
        let mut rb = reader.batch().map_err(DeviceError::Ring)?;
        let mut wb = writer.batch().map_err(DeviceError::Ring)?;
        for _ in 0..n {
            let Some(p) = rb.next_packet().map_err(DeviceError::Ring)? else {
                break;
            };
            stats.packets_in += 1;
            stats.bytes_in += p.payload_len() as u64;
            match plan(&p, scratch.len()) {
                Plan::Echo(len) => {
                    let buf = &mut scratch[..len];
                    p.read_payload(0, buf).map_err(DeviceError::Ring)?;
                    let (tid, cr) = (p.transaction_id(), p.completion_requested());
                    match wb.write_inband(tid, cr, buf) {
                        Ok(()) => {
                            stats.packets_out += 1;
                            stats.bytes_out += len as u64;
                        }
                        // The guest changed the packet between the passes.
                        Err(_) => stats.dropped += 1,
                    }
                }
                Plan::Consume if p.packet_type() != PacketType::COMP => stats.dropped += 1,
                _ => {}
            }
        }
        let wc = wb.commit();
        let rc = rb.commit().map_err(DeviceError::Ring)?;
        out.signal |= wc.signal || rc.signal;
        if let Some(t) = stop {
            return Err(DeviceError::Unsupported(t));
        }
    }
    ring.signalled = true;
    Ok(())
}

fn sink<M: vmbus_driver::ring::RingMem>(
    reader: &mut RingReader<M>,
    stats: &mut ChannelStats,
    out: &mut Outcome,
) -> Result<(), DeviceError> {
    for _ in 0..MAX_ROUNDS {
        let mut rb = match reader.batch() {
            Ok(b) => b,
            Err(RingError::Empty) => return Ok(()),
            Err(e) => return Err(DeviceError::Ring(e)),
        };
        while let Some(p) = rb.next_packet().map_err(DeviceError::Ring)? {
            stats.packets_in += 1;
            stats.bytes_in += p.payload_len() as u64;
        }
        out.signal |= rb.commit().map_err(DeviceError::Ring)?.signal;
    }
    Ok(())
}

/// Writes the source's remaining packets while they fit; payload byte i of packet n is
/// `(n + i) as u8`, transaction id n.
fn produce<M: vmbus_driver::ring::RingMem>(
    writer: &mut RingWriter<M>,
    stats: &mut ChannelStats,
    scratch: &mut [u8],
    payload_len: u16,
    guest_honours: bool,
    ring: &mut RingState,
    out: &mut Outcome,
) -> Result<(), RingError> {
    let len = usize::from(payload_len).min(scratch.len());
    for _ in 0..MAX_ROUNDS {
        if ring.source_left == 0 {
            break;
        }
        let mut wb = writer.batch()?;
        let mut wrote = 0;
        while ring.source_left > 0 {
            let n = stats.packets_out;
            for (i, b) in scratch[..len].iter_mut().enumerate() {
                *b = (n as usize + i) as u8;
            }
            match wb.write_inband(n, false, &scratch[..len]) {
                Ok(()) => {
                    ring.source_left -= 1;
                    stats.packets_out += 1;
                    stats.bytes_out += len as u64;
                    wrote += 1;
                }
                Err(RingError::Full) => break,
                Err(e) => return Err(e),
            }
        }
        out.signal |= wb.commit().signal;
        if ring.source_left > 0 && wrote == 0 {
            let need = RingWriter::<M>::inband_len(len) as u32;
            if writer.request_space(need, guest_honours)? != SpaceWait::Ready {
                ring.waiting_space = true;
                return Ok(());
            }
        }
    }
    Ok(())
}
