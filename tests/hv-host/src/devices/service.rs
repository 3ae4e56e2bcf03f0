//! The integration services and Dynamic Memory over their rings, and the host user's handles on
//! them: [`Host::ic_tick`] (the host has no clock: whoever runs it calls this once per simulated
//! second, the simulation per step, the PD on its timer), [`Host::request_shutdown`],
//! [`Host::balloon`], [`Host::unballoon`], and the read accessors a report shows.
//!
//! One instance of each service: a second device of the same kind takes the state over when its
//! channel opens.

use core::cell::RefCell;
use core::sync::atomic::Ordering;

use vmbus_driver::ids::RelId;
use vmbus_driver::ring::{
    Control, FEATURE_PENDING_SEND_SZ, PacketType, RingError, RingMem, RingReader, RingWriter,
};

use crate::config::DeviceKind;
use crate::devices::DeviceError;
use crate::devices::dynmem::{DM_SCRIBBLE, DmPhase, DmState, Queued};
use crate::devices::echo::Outcome;
use crate::devices::ic::IcPhase;
use crate::devices::icsvc::IcChannel;
use crate::devices::kvp::{KvpEntry, KvpStore};
use crate::devices::timesync::{SimClock, TICK_100NS};
use crate::devices::trace::{Service, TraceEvent};
use crate::gpadl::GpadlTable;
use crate::host::{Host, HostError};
use crate::hostile::Hostile;
use crate::log::{Counters, Direction, ErrorLog, GuestError, TraceLog};
use crate::memory::{GpadlRingMem, GuestMemory};
use crate::offers::{ChannelState, ChannelStats};
use crate::open::RingState;

/// Bytes of the buffer the services build their messages in.
pub const SVC_OUT: usize = 4096;

/// Packets one run reads at most.
const MAX_PACKETS: u32 = 256;

/// What the services run on: their state and the buffer they build messages in.
#[derive(Debug)]
pub(crate) struct Services {
    pub ic: [IcChannel; 4],
    pub kvp: KvpStore,
    pub dm: DmState,
    pub clock: SimClock,
    pub out: [u8; SVC_OUT],
}

impl Services {
    pub const NEW: Self = Self {
        ic: [
            IcChannel::new(Service::Heartbeat),
            IcChannel::new(Service::Shutdown),
            IcChannel::new(Service::TimeSync),
            IcChannel::new(Service::Kvp),
        ],
        kvp: KvpStore::NEW,
        dm: DmState::NEW,
        clock: SimClock::START,
        out: [0; SVC_OUT],
    };
}

fn ic_index(s: Service) -> usize {
    match s {
        Service::Heartbeat => 0,
        Service::Shutdown => 1,
        Service::TimeSync => 2,
        _ => 3,
    }
}

/// The service of an IC or DM device kind.
pub(crate) fn service_of(kind: DeviceKind) -> Option<Service> {
    Some(match kind {
        DeviceKind::Heartbeat => Service::Heartbeat,
        DeviceKind::Shutdown => Service::Shutdown,
        DeviceKind::TimeSync => Service::TimeSync,
        DeviceKind::Kvp => Service::Kvp,
        DeviceKind::DynamicMemory(_) => Service::DynamicMemory,
        _ => return None,
    })
}

/// The host state a service run reports into.
pub(crate) struct Ctx<'a> {
    pub relid: RelId,
    pub trace: &'a mut TraceLog,
    pub errors: &'a mut ErrorLog,
    pub counters: &'a mut Counters,
    pub gpadls: &'a GpadlTable,
    pub hostile: Hostile,
}

impl Ctx<'_> {
    pub fn trace(&mut self, dir: Direction, s: Service, ev: TraceEvent) {
        self.trace.push(dir, self.relid, s, ev);
    }

    pub fn fault(&mut self, s: Service, e: GuestError) {
        self.counters.guest_errors += 1;
        self.errors.push(e);
        self.trace(Direction::Received, s, TraceEvent::Refused(e));
    }
}

/// Sends whole in-band packets on the host-to-guest ring.
pub(crate) struct Tx<'w, M: RingMem> {
    w: &'w mut RingWriter<M>,
    pub signal: bool,
    pub sent: u64,
    pub dropped: u64,
}

impl<M: RingMem> Tx<'_, M> {
    /// Writes one packet; false (and counted) when it does not fit.
    pub fn send(&mut self, tid: u64, bytes: &[u8]) -> bool {
        let Ok(mut b) = self.w.batch() else {
            self.dropped += 1;
            return false;
        };
        if b.write_inband(tid, false, bytes).is_err() {
            self.dropped += 1;
            return false;
        }
        self.signal |= b.commit().signal;
        self.sent += 1;
        true
    }
}

/// Runs the service of `kind` on channel `relid` over its rings.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run<G: GuestMemory>(
    mem: &mut G,
    pfns: &[u64],
    kind: DeviceKind,
    ring: &mut RingState,
    stats: &mut ChannelStats,
    svc: &mut Services,
    scratch: &mut [u8],
    ctx: &mut Ctx<'_>,
) -> Outcome {
    let mut out = Outcome::default();
    ring.guest_signal = false;
    ring.signalled = false;
    let Some(service) = service_of(kind) else {
        return out;
    };
    let k = (ring.downstream as usize).min(pfns.len());
    let (out_pfns, in_pfns) = pfns.split_at(k);
    let cell = RefCell::new(mem);
    let fresh = !ring.started;
    if fresh {
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
    }
    let o_mem = GpadlRingMem::new(&cell, out_pfns, Some((Control::ReadIndex, ring.out_read)));
    let i_mem = GpadlRingMem::new(&cell, in_pfns, Some((Control::WriteIndex, ring.in_write)));
    let result = (|| -> Result<(), DeviceError> {
        let mut reader = RingReader::new(&o_mem).map_err(DeviceError::Ring)?;
        let mut writer = RingWriter::new(&i_mem).map_err(DeviceError::Ring)?;
        let Services {
            ic,
            kvp,
            dm,
            clock,
            out: buf,
        } = svc;
        let ch = &mut ic[ic_index(service)];
        let mut tx = Tx {
            w: &mut writer,
            signal: false,
            sent: 0,
            dropped: 0,
        };
        if fresh {
            match kind {
                DeviceKind::DynamicMemory(opts) => dm.open(ctx.relid, opts),
                _ => {
                    if service == Service::Kvp {
                        kvp.restart();
                    }
                    ch.open(ctx.relid, buf, &mut tx, ctx);
                }
            }
        }
        let mut stop = None;
        let mut n = 0;
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
                match p.packet_type() {
                    PacketType::DATA_INBAND => {
                        let len = p.payload_len().min(scratch.len());
                        let b = &mut scratch[..len];
                        p.read_payload(0, b).map_err(DeviceError::Ring)?;
                        let tid = p.transaction_id();
                        if service == Service::DynamicMemory {
                            dm.on_packet(b, buf, &mut tx, ctx, &cell);
                        } else {
                            ch.on_packet(b, tid, kvp, ctx);
                        }
                    }
                    PacketType::COMP => {}
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
        if service == Service::DynamicMemory {
            dm.poll(buf, &mut tx, ctx);
        } else {
            ch.poll(buf, *clock, kvp, &mut tx, ctx);
        }
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

impl Host {
    fn mark(&mut self, relid: Option<RelId>) -> Result<RelId, HostError> {
        let relid = relid.ok_or(HostError::NotReady)?;
        match self.slot_mut(relid) {
            Some(c) if c.state == ChannelState::Open => {
                c.ring.signalled = true;
                Ok(relid)
            }
            _ => Err(HostError::NotOpen(relid)),
        }
    }

    /// One simulated second: the reference counter and the host clock advance by 10^7 (100 ns
    /// units), and heartbeat and time sync send their next request at the next poll.
    pub fn ic_tick(&mut self) {
        self.services.clock.ref_time += TICK_100NS;
        for s in [Service::Heartbeat, Service::TimeSync] {
            let ch = &mut self.services.ic[ic_index(s)];
            if ch.phase == IcPhase::Ready {
                ch.due = true;
                let relid = ch.relid;
                let _ = self.mark(relid);
            }
        }
    }

    /// Sets the host's time (file time: 100 ns units since 1601) at the current reference time.
    pub fn set_host_time(&mut self, filetime: u64) {
        let c = &mut self.services.clock;
        c.base = filetime.wrapping_sub(c.ref_time);
    }

    /// The simulated partition reference counter (100 ns units).
    pub fn reference_time(&self) -> u64 {
        self.services.clock.ref_time
    }

    /// Asks the guest to shut down (`flags`: 0 shut down, 1 force, 2 restart, 4 hibernate); sent
    /// at the next poll once the shutdown service has negotiated.
    pub fn request_shutdown(&mut self, flags: u32) -> Result<(), HostError> {
        let ch = &mut self.services.ic[ic_index(Service::Shutdown)];
        ch.shutdown_flags = Some(flags);
        ch.due = ch.phase == IcPhase::Ready;
        let relid = ch.relid;
        self.mark(relid).map(|_| ())
    }

    /// The state of integration service `s` (`Service::DynamicMemory` has none: see
    /// [`Host::dm`]).
    pub fn ic(&self, s: Service) -> &IcChannel {
        &self.services.ic[ic_index(s)]
    }

    /// The KVP entries the guest reported, in order.
    pub fn kvp_entries(&self) -> &[KvpEntry] {
        let k = &self.services.kvp;
        &k.entries[..k.count]
    }

    /// The KVP script's position.
    pub fn kvp_step(&self) -> crate::devices::kvp::KvpStep {
        self.services.kvp.step
    }

    /// The (operation, status) of each KVP SET, GET and DELETE answer, in order.
    pub fn kvp_statuses(&self) -> &[(u8, u32)] {
        let k = &self.services.kvp;
        &k.statuses[..k.status_count]
    }

    /// The Dynamic Memory device's state.
    pub fn dm(&self) -> &DmState {
        &self.services.dm
    }

    /// The integration-service and Dynamic Memory trace.
    pub fn trace(&self) -> &TraceLog {
        &self.trace
    }

    /// Sends DM_BALLOON_REQUEST for `pages` at the next poll (after the capabilities, with no
    /// balloon request in progress).
    pub fn balloon(&mut self, pages: u32) -> Result<(), HostError> {
        let dm = &mut self.services.dm;
        if dm.phase != DmPhase::Ready || dm.balloon_pending().is_some() || dm.queued.is_some() {
            return Err(HostError::NotReady);
        }
        dm.queued = Some(Queued::Balloon(pages));
        let relid = dm.relid;
        self.mark(relid).map(|_| ())
    }

    /// Returns up to `pages` held pages (the most recent first) with one DM_UNBALLOON_REQUEST at
    /// the next poll; how many it returns. With [`Hostile::dm_unballoon_unknown`] it returns a
    /// range it never held instead.
    pub fn unballoon(&mut self, pages: u64) -> Result<u64, HostError> {
        let hostile = self.hostile.dm_unballoon_unknown;
        let dm = &mut self.services.dm;
        if dm.phase != DmPhase::Ready || dm.unballoon_pending || dm.queued.is_some() {
            return Err(HostError::NotReady);
        }
        let n = if hostile {
            dm.returned[0] = crate::devices::dynmem::UNKNOWN_RANGE;
            dm.n_returned = 1;
            1
        } else {
            dm.take_for_unballoon(pages)
        };
        dm.queued = Some(Queued::Unballoon);
        let relid = dm.relid;
        self.mark(relid)?;
        Ok(n)
    }

    /// Pages among those the last unballoon returned whose first 8 bytes still hold the host's
    /// scribble: a guest reusing them has not zeroed them.
    pub fn dm_scribbled_pages<G: GuestMemory>(&self, mem: &mut G) -> u64 {
        let mut n = 0;
        for r in self.services.dm.returned() {
            for p in r.start..r.start + u64::from(r.count) {
                let mut b = [0u8; 8];
                if mem.read(p, 0, &mut b).is_ok() && b == [DM_SCRIBBLE; 8] {
                    n += 1;
                }
            }
        }
        n
    }
}
