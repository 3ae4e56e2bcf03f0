//! Storage, host side (storvsp): the vstor protocol over a SCSI or IDE channel with a RAM disk
//! behind it.
//!
//! Every guest packet is a vstor packet (operation u32, flags u32, status u32, then a body) sent
//! in-band (type 6) or, when the SRB moves data, GPA-direct (type 9: the extended descriptor names
//! the guest pages, [`buffer`]). Every one is answered by a completion packet (type 0xB) with the
//! request's transaction id: operation COMPLETE_IO, an NT status, and the body. The guest opens
//! with BEGIN_INITIALIZATION, then QUERY_PROTOCOL_VERSION until the host accepts one (a refusal is
//! status REVISION_MISMATCH with the version echoed), QUERY_PROPERTIES (max transfer bytes, max
//! channel count, flags) and END_INITIALIZATION; then EXECUTE_SRB runs SCSI commands against the
//! disk ([`scsi`]). A request out of that order is answered INVALID_DEVICE_STATE.
//!
//! Completion sizes follow OpenVMM's storvsp: before a version is agreed the answer is as long as
//! the request (48 to 64 bytes); afterwards it is the header plus the version's `vmscsi_request`
//! (0x24 bytes before 5.1, 0x34 from it), and an EXECUTE_SRB shorter than that is refused.
//!
//! One disk, shared by every storage device, kept across close and reopen; each open channel
//! (up to [`MAX_STORAGE_CHANNELS`]) has its own protocol state.

pub mod buffer;
pub mod event;
pub mod proto;
mod request;
pub mod scsi;
mod srb;

use core::cell::RefCell;
use core::sync::atomic::Ordering;

use vmbus_driver::ids::RelId;
use vmbus_driver::ring::{
    Control, FEATURE_PENDING_SEND_SZ, RingError, RingMem, RingReader, RingWriter, SpaceWait,
};

use self::event::StorPhase;
use self::proto::*;
use crate::config::StorageOptions;
use crate::devices::DeviceError;
use crate::devices::echo::Outcome;
use crate::devices::service::Ctx;
use crate::host::Host;
use crate::memory::{GpadlRingMem, GuestMemory};
use crate::offers::ChannelStats;
use crate::open::RingState;

/// Sectors of the RAM disk.
pub const DISK_SECTORS: usize = 512;
/// Bytes of the RAM disk (256 KiB).
pub const DISK_BYTES: usize = DISK_SECTORS * SECTOR;
/// Storage channels with their own protocol state at once.
pub const MAX_STORAGE_CHANNELS: usize = 4;
/// What [`Hostile::stor_unknown_tid`](crate::Hostile::stor_unknown_tid) XORs into a
/// completion's transaction id.
pub const UNKNOWN_TID_BIT: u64 = 1 << 62;
/// What [`Hostile::stor_oversize_sense`](crate::Hostile::stor_oversize_sense) writes into
/// sense_info_length (the sense area holds 20).
pub const OVERSIZE_SENSE_LEN: u8 = 0xFF;
/// Ring bytes two of the largest completions take (room for a hostile duplicate).
const NEED: u32 = 2 * (16 + MAX_PACKET as u32 + 8);
/// Read rounds one run does at most.
const MAX_ROUNDS: u32 = 64;

/// The storage device's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// vstor packets taken from the rings.
    pub requests: u64,
    /// Completions written (hostile duplicates included).
    pub completions: u64,
    /// EXECUTE_SRB requests.
    pub srbs: u64,
    /// Of those, answered with an SRB status other than success.
    pub srb_errors: u64,
    /// Requests refused as guest errors (each also in the error log).
    pub refused: u64,
    /// Sectors the guest read from the disk.
    pub sectors_read: u64,
    /// Sectors the guest wrote to the disk.
    pub sectors_written: u64,
    /// Requests waiting in a guest-to-host ring at the end of the last run because the
    /// host-to-guest ring had no room for their completions.
    pub outstanding: u64,
}

/// One storage channel's protocol state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorChannel {
    /// The channel.
    pub relid: Option<RelId>,
    /// Its initialization phase.
    pub phase: StorPhase,
    /// The version agreed.
    pub version: Option<u16>,
}

impl StorChannel {
    const CLOSED: Self = Self {
        relid: None,
        phase: StorPhase::Closed,
        version: None,
    };
}

/// The storage devices' state: protocol state per channel and the RAM disk.
#[derive(Debug, Clone)]
pub struct Storage {
    chans: [StorChannel; MAX_STORAGE_CHANNELS],
    stats: StorageStats,
    disk: [u8; DISK_BYTES],
}

impl Storage {
    pub(crate) const NEW: Self = Self {
        chans: [StorChannel::CLOSED; MAX_STORAGE_CHANNELS],
        stats: StorageStats {
            requests: 0,
            completions: 0,
            srbs: 0,
            srb_errors: 0,
            refused: 0,
            sectors_read: 0,
            sectors_written: 0,
            outstanding: 0,
        },
        disk: [0; DISK_BYTES],
    };

    /// The disk's bytes.
    pub fn disk(&self) -> &[u8] {
        &self.disk
    }

    /// Counters.
    pub fn stats(&self) -> StorageStats {
        self.stats
    }

    /// The protocol state of channel `relid`, if it was opened as a storage channel.
    pub fn channel(&self, relid: RelId) -> Option<StorChannel> {
        self.chans.iter().copied().find(|c| c.relid == Some(relid))
    }

    /// A fresh open of `relid`: its slot (or a closed one, or the first) starts over.
    fn open(&mut self, relid: RelId) -> usize {
        let i = self
            .chans
            .iter()
            .position(|c| c.relid == Some(relid))
            .or_else(|| self.chans.iter().position(|c| c.relid.is_none()))
            .unwrap_or(0);
        self.chans[i] = StorChannel {
            relid: Some(relid),
            phase: StorPhase::Begin,
            version: None,
        };
        i
    }
}

impl Host {
    /// The storage devices' state: the disk, the counters, each channel's protocol state.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The disk's bytes, writable (a test fills it before the guest reads).
    pub fn storage_disk_mut(&mut self) -> &mut [u8] {
        &mut self.storage.disk
    }
}

/// What one run works with besides the rings.
struct Run<'a, 'c, 'm, G: GuestMemory> {
    st: &'a mut Storage,
    idx: usize,
    opts: StorageOptions,
    ctx: &'a mut Ctx<'c>,
    mem: &'a RefCell<&'m mut G>,
}

/// Runs the storage device on one channel over its rings (`pfns`: the ring GPADL).
pub(crate) fn run<G: GuestMemory>(
    mem: &mut G,
    pfns: &[u64],
    opts: StorageOptions,
    ring: &mut RingState,
    stats: &mut ChannelStats,
    st: &mut Storage,
    ctx: &mut Ctx<'_>,
) -> Outcome {
    let mut out = Outcome::default();
    let guest_signal = core::mem::take(&mut ring.guest_signal);
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
        st.open(ctx.relid);
    }
    let idx = st.open_index(ctx.relid);
    let o_mem = GpadlRingMem::new(&cell, out_pfns, Some((Control::ReadIndex, ring.out_read)));
    let i_mem = GpadlRingMem::new(&cell, in_pfns, Some((Control::WriteIndex, ring.in_write)));
    let result = (|| -> Result<(), DeviceError> {
        let mut reader = RingReader::new(&o_mem).map_err(DeviceError::Ring)?;
        let mut writer = RingWriter::new(&i_mem).map_err(DeviceError::Ring)?;
        let honours = reader.producer_features() & FEATURE_PENDING_SEND_SZ != 0;
        let had_data = reader.has_data().map_err(DeviceError::Ring)?;
        if guest_signal && !had_data && !ring.waiting_space {
            stats.spurious_signals += 1;
            out.spurious = true;
        }
        let was_waiting = core::mem::take(&mut ring.waiting_space);
        let mut run = Run {
            st,
            idx,
            opts,
            ctx,
            mem: &cell,
        };
        let r = serve(
            &mut run,
            &mut reader,
            &mut writer,
            honours,
            ring,
            stats,
            &mut out,
        );
        if was_waiting && !ring.waiting_space {
            i_mem.store(Control::PendingSendSz, 0, Ordering::Relaxed);
        }
        ring.out_read = reader.read_index();
        ring.in_write = writer.write_index();
        r
    })();
    if let Some(e) = o_mem.fault().or(i_mem.fault()) {
        out.error = Some(DeviceError::Memory(e));
    } else if let Err(e) = result {
        out.error = Some(e);
    }
    out
}

impl Storage {
    fn open_index(&mut self, relid: RelId) -> usize {
        match self.chans.iter().position(|c| c.relid == Some(relid)) {
            Some(i) => i,
            None => self.open(relid),
        }
    }
}

/// Answers packets while their completions fit; waits for room otherwise.
fn serve<M: RingMem, G: GuestMemory>(
    run: &mut Run<'_, '_, '_, G>,
    reader: &mut RingReader<M>,
    writer: &mut RingWriter<M>,
    honours: bool,
    ring: &mut RingState,
    stats: &mut ChannelStats,
    out: &mut Outcome,
) -> Result<(), DeviceError> {
    for _ in 0..MAX_ROUNDS {
        let mut rb = match reader.batch() {
            Ok(b) => b,
            Err(RingError::Empty) => {
                run.st.stats.outstanding = 0;
                return Ok(());
            }
            Err(e) => return Err(DeviceError::Ring(e)),
        };
        let mut wb = writer.batch().map_err(DeviceError::Ring)?;
        let (mut n, mut blocked) = (0u32, false);
        loop {
            if wb.room() < NEED {
                blocked = true;
                break;
            }
            let Some(p) = rb.next_packet().map_err(DeviceError::Ring)? else {
                break;
            };
            n += 1;
            stats.packets_in += 1;
            stats.bytes_in += p.payload_len() as u64;
            let sent = run.packet(&p, &mut wb).map_err(DeviceError::Ring)?;
            stats.packets_out += sent;
        }
        out.signal |= wb.commit().signal;
        out.signal |= rb.commit().map_err(DeviceError::Ring)?.signal;
        if blocked {
            let mut waiting = 0;
            if let Ok(mut rb) = reader.batch() {
                while let Ok(Some(_)) = rb.next_packet() {
                    waiting += 1;
                }
            }
            run.st.stats.outstanding = waiting;
            if writer
                .request_space(NEED, honours)
                .map_err(DeviceError::Ring)?
                != SpaceWait::Ready
            {
                ring.waiting_space = true;
                return Ok(());
            }
        } else if n == 0 {
            return Ok(());
        }
    }
    ring.signalled = true;
    Ok(())
}
