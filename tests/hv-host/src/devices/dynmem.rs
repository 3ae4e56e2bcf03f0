//! Dynamic Memory, host side (Hyper-V's and QEMU's hv-balloon behaviour).
//!
//! Every message starts with the 8-byte DM header: type u16, size u16 (the whole message),
//! transaction id u32. The guest opens with DM_VERSION_REQUEST (version: minor u16, major u16;
//! then is_last_attempt in bit 0 of a u32), the host answers DM_VERSION_RESPONSE (is_accepted in
//! bit 0 of a u64); then DM_CAPABILITIES_REPORT (caps u64: balloon bit 0, hot add bit 1;
//! min_page_cnt u64; max_page_number u64) answered by DM_CAPABILITIES_RESPONSE (is_accepted bit
//! 0). Afterwards the guest sends DM_STATUS_REPORT (num_avail, num_committed, page_file_size,
//! zero_free as u64; page_file_writes, io_diff as u32) and the host may send DM_BALLOON_REQUEST
//! (num_pages u32, reserved u32), answered by DM_BALLOON_RESPONSE messages (reserved u32; a u32
//! with more_pages in bit 0 and range_count in bits 1..31; ranges as u64: start page bits 0..39,
//! page count bits 40..63) until one has more_pages 0, and DM_UNBALLOON_REQUEST (a u32 with
//! more_pages in bit 0; range_count u32; ranges), answered by DM_UNBALLOON_RESPONSE (header only).

use core::fmt;

use vmbus_driver::ids::RelId;
use vmbus_driver::ring::RingMem;

use crate::config::DmOptions;
use crate::devices::ic::{put, u16_at, u32_at, u64_at};
use crate::devices::service::{Ctx, Tx};
use crate::devices::trace::{Bent, Service, TraceEvent};
use crate::gpadl::GpadlTable;
use crate::hostile::DM_TRUNCATED_LEN;
use crate::log::{Direction, GuestError};
use crate::memory::GuestMemory;

/// DM header bytes.
pub const HEADER: usize = 8;
/// Message types.
pub const VERSION_REQUEST: u16 = 1;
/// DM_VERSION_RESPONSE.
pub const VERSION_RESPONSE: u16 = 2;
/// DM_CAPABILITIES_REPORT.
pub const CAPABILITIES_REPORT: u16 = 3;
/// DM_CAPABILITIES_RESPONSE.
pub const CAPABILITIES_RESPONSE: u16 = 4;
/// DM_STATUS_REPORT.
pub const STATUS_REPORT: u16 = 5;
/// DM_BALLOON_REQUEST.
pub const BALLOON_REQUEST: u16 = 6;
/// DM_BALLOON_RESPONSE.
pub const BALLOON_RESPONSE: u16 = 7;
/// DM_UNBALLOON_REQUEST.
pub const UNBALLOON_REQUEST: u16 = 8;
/// DM_UNBALLOON_RESPONSE.
pub const UNBALLOON_RESPONSE: u16 = 9;
/// Version 2.0 (Windows 10).
pub const VERSION_2_0: u32 = 0x0002_0000;
/// Version 1.0 (Windows 8).
pub const VERSION_1_0: u32 = 0x0001_0000;
/// Version 0.3 (Windows 7).
pub const VERSION_0_3: u32 = 0x0000_0003;
/// The byte the host writes over every page it holds (with [`DmOptions::scribble`]).
pub const DM_SCRIBBLE: u8 = 0xDB;
/// Ballooned ranges the host can hold.
pub const MAX_RANGES: usize = 256;
/// Ranges one DM_UNBALLOON_REQUEST returns at most.
pub const MAX_UNBALLOON_RANGES: usize = 64;
/// Pages [`crate::Hostile::dm_balloon_before_capabilities`] asks for.
pub const EARLY_BALLOON_PAGES: u32 = 16;
/// The range [`crate::Hostile::dm_unballoon_unknown`] returns: a page no guest has.
pub const UNKNOWN_RANGE: DmRange = DmRange {
    start: (1 << 40) - 16,
    count: 1,
};

/// Why the host refused a DM message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmFault {
    /// Shorter than the DM header.
    Truncated(usize),
    /// The header's size is under its type's minimum or over the packet.
    BadSize {
        /// Type.
        ty: u16,
        /// Header size.
        size: u16,
        /// Packet bytes.
        len: usize,
    },
    /// A type no guest sends.
    UnknownType(u16),
    /// A type the host did not expect now (capabilities before the version, a host-to-guest
    /// type, ...).
    Unexpected(u16),
    /// A ballooned page that is not guest memory.
    NotGuestMemory(u64),
    /// A ballooned page of a ring GPADL.
    RingPage(u64),
    /// A page reported ballooned twice.
    AlreadyBallooned(u64),
    /// The ballooned-range table is full.
    TooManyRanges,
    /// A balloon or unballoon response with no request waiting.
    Unsolicited(u16),
}

impl fmt::Display for DmFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(n) => write!(f, "DM message of {n} bytes, under the 8-byte header"),
            Self::BadSize { ty, size, len } => {
                write!(f, "DM type {ty} says {size} bytes in a {len}-byte packet")
            }
            Self::UnknownType(t) => write!(f, "DM type {t} unknown"),
            Self::Unexpected(t) => write!(f, "DM type {t} not expected now"),
            Self::NotGuestMemory(p) => write!(f, "ballooned page {p:#x} is not guest memory"),
            Self::RingPage(p) => write!(f, "ballooned page {p:#x} is in a ring GPADL"),
            Self::AlreadyBallooned(p) => write!(f, "page {p:#x} ballooned twice"),
            Self::TooManyRanges => f.write_str("ballooned-range table full"),
            Self::Unsolicited(t) => write!(f, "DM type {t} with no request waiting"),
        }
    }
}

/// A page range: first guest frame and page count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DmRange {
    /// First frame.
    pub start: u64,
    /// Pages.
    pub count: u32,
}

impl DmRange {
    fn end(&self) -> u64 {
        self.start + u64::from(self.count)
    }
    fn overlaps(&self, o: &DmRange) -> bool {
        self.start < o.end() && o.start < self.end()
    }
    fn encode(&self) -> u64 {
        (self.start & ((1 << 40) - 1)) | (u64::from(self.count) << 40)
    }
}

/// Where the device stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmPhase {
    /// Not open.
    Closed,
    /// Waiting for an acceptable DM_VERSION_REQUEST.
    Version,
    /// Waiting for DM_CAPABILITIES_REPORT.
    Capabilities,
    /// Running.
    Ready,
}

/// The guest's capabilities report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmCaps {
    /// Balloon.
    pub balloon: bool,
    /// Hot add.
    pub hot_add: bool,
    /// min_page_cnt.
    pub min_pages: u64,
    /// max_page_number.
    pub max_page: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    Balloon(u32),
    Unballoon,
}

/// The Dynamic Memory device's state.
#[derive(Debug, Clone)]
pub struct DmState {
    pub(crate) relid: Option<RelId>,
    pub(crate) phase: DmPhase,
    pub(crate) opts: DmOptions,
    version: Option<u32>,
    caps: Option<DmCaps>,
    status_reports: u64,
    last_status: Option<(u64, u64)>,
    ranges: [DmRange; MAX_RANGES],
    n_ranges: usize,
    pages_held: u64,
    pub(crate) queued: Option<Queued>,
    balloon_pending: Option<u32>,
    balloon_answered: u64,
    pub(crate) unballoon_pending: bool,
    pub(crate) returned: [DmRange; MAX_UNBALLOON_RANGES],
    pub(crate) n_returned: usize,
    rejected_pages: u64,
    trans_id: u32,
}

impl DmState {
    pub(crate) const NEW: Self = Self {
        relid: None,
        phase: DmPhase::Closed,
        opts: DmOptions::ALL,
        version: None,
        caps: None,
        status_reports: 0,
        last_status: None,
        ranges: [DmRange { start: 0, count: 0 }; MAX_RANGES],
        n_ranges: 0,
        pages_held: 0,
        queued: None,
        balloon_pending: None,
        balloon_answered: 0,
        unballoon_pending: false,
        returned: [DmRange { start: 0, count: 0 }; MAX_UNBALLOON_RANGES],
        n_returned: 0,
        rejected_pages: 0,
        trans_id: 0,
    };

    /// The channel.
    pub fn relid(&self) -> Option<RelId> {
        self.relid
    }
    /// Where it stands.
    pub fn phase(&self) -> DmPhase {
        self.phase
    }
    /// The version accepted.
    pub fn version(&self) -> Option<u32> {
        self.version
    }
    /// The capabilities reported.
    pub fn capabilities(&self) -> Option<DmCaps> {
        self.caps
    }
    /// Status reports received.
    pub fn status_reports(&self) -> u64 {
        self.status_reports
    }
    /// The last status report's (num_avail, num_committed).
    pub fn last_status(&self) -> Option<(u64, u64)> {
        self.last_status
    }
    /// Pages the host holds (ballooned and not returned).
    pub fn pages_held(&self) -> u64 {
        self.pages_held
    }
    /// The ballooned ranges held.
    pub fn ranges(&self) -> &[DmRange] {
        &self.ranges[..self.n_ranges]
    }
    /// Pages asked for by the balloon request in progress, if one is.
    pub fn balloon_pending(&self) -> Option<u32> {
        self.balloon_pending
    }
    /// Pages the guest reported for the balloon request in progress or last finished.
    pub fn balloon_answered(&self) -> u64 {
        self.balloon_answered
    }
    /// An unballoon request waits for its response.
    pub fn unballoon_pending(&self) -> bool {
        self.unballoon_pending
    }
    /// The ranges the last unballoon request returned.
    pub fn returned(&self) -> &[DmRange] {
        &self.returned[..self.n_returned]
    }
    /// Pages the guest reported that the host refused (not guest memory, ring pages, twice).
    pub fn rejected_pages(&self) -> u64 {
        self.rejected_pages
    }

    /// A fresh open: the protocol starts again, but the pages the host took stay the host's
    /// (a rescind or a closed channel gives no memory back; only an unballoon does), so a later
    /// unballoon can still return them.
    pub(crate) fn open(&mut self, relid: RelId, opts: DmOptions) {
        let (ranges, n_ranges, pages_held) = (self.ranges, self.n_ranges, self.pages_held);
        *self = Self::NEW;
        self.relid = Some(relid);
        self.opts = opts;
        self.phase = DmPhase::Version;
        self.ranges = ranges;
        self.n_ranges = n_ranges;
        self.pages_held = pages_held;
    }

    fn accepts(&self, v: u32) -> bool {
        match v {
            VERSION_2_0 => self.opts.accept_2_0,
            VERSION_1_0 => self.opts.accept_1_0,
            VERSION_0_3 => self.opts.accept_0_3,
            _ => false,
        }
    }

    fn next_trans(&mut self) -> u32 {
        self.trans_id = self.trans_id.wrapping_add(1);
        self.trans_id
    }

    /// Takes up to `pages` pages off the end of the held ranges into the returned list.
    pub(crate) fn take_for_unballoon(&mut self, pages: u64) -> u64 {
        self.n_returned = 0;
        let mut left = pages;
        while left > 0 && self.n_ranges > 0 && self.n_returned < MAX_UNBALLOON_RANGES {
            let r = &mut self.ranges[self.n_ranges - 1];
            let n = u64::from(r.count).min(left);
            // n <= r.count.
            let taken = DmRange {
                start: r.end() - n,
                count: n as u32,
            };
            r.count -= n as u32;
            if r.count == 0 {
                self.n_ranges -= 1;
            }
            self.returned[self.n_returned] = taken;
            self.n_returned += 1;
            self.pages_held -= n;
            left -= n;
        }
        pages - left
    }

    fn send<M: RingMem>(&self, out: &mut [u8], len: usize, tx: &mut Tx<'_, M>, ctx: &mut Ctx<'_>) {
        let mut len = len;
        let h = ctx.hostile;
        if h.dm_oversize {
            put(out, 2, &((len + 64) as u16).to_le_bytes());
            ctx.trace(
                Direction::Sent,
                Service::DynamicMemory,
                TraceEvent::Bent(Bent::Oversize((len + 64) as u16)),
            );
        }
        if h.dm_truncate {
            len = DM_TRUNCATED_LEN;
            ctx.trace(
                Direction::Sent,
                Service::DynamicMemory,
                TraceEvent::Bent(Bent::Truncated(len as u16)),
            );
        }
        tx.send(0, &out[..len]);
    }

    fn header(out: &mut [u8], ty: u16, size: usize, trans: u32) {
        put(out, 0, &ty.to_le_bytes());
        put(out, 2, &(size as u16).to_le_bytes());
        put(out, 4, &trans.to_le_bytes());
    }

    /// Sends the request the host user queued, if any.
    pub(crate) fn poll<M: RingMem>(
        &mut self,
        out: &mut [u8],
        tx: &mut Tx<'_, M>,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(q) = self.queued.take() else { return };
        let trans = self.next_trans();
        let svc = Service::DynamicMemory;
        match q {
            Queued::Balloon(pages) => {
                Self::header(out, BALLOON_REQUEST, 16, trans);
                put(out, 8, &pages.to_le_bytes());
                put(out, 12, &0u32.to_le_bytes());
                self.balloon_pending = Some(pages);
                self.balloon_answered = 0;
                ctx.trace(Direction::Sent, svc, TraceEvent::DmBalloon { pages });
                self.send(out, 16, tx, ctx);
            }
            Queued::Unballoon => {
                let n = self.n_returned;
                let size = 16 + 8 * n;
                Self::header(out, UNBALLOON_REQUEST, size, trans);
                put(out, 8, &0u32.to_le_bytes());
                put(out, 12, &(n as u32).to_le_bytes());
                let mut pages = 0;
                for (i, r) in self.returned[..n].iter().enumerate() {
                    put(out, 16 + 8 * i, &r.encode().to_le_bytes());
                    pages += u64::from(r.count);
                }
                self.unballoon_pending = true;
                let ev = TraceEvent::DmUnballoon {
                    ranges: n as u32,
                    pages,
                };
                ctx.trace(Direction::Sent, svc, ev);
                self.send(out, size, tx, ctx);
            }
        }
    }

    fn refuse(&mut self, ctx: &mut Ctx<'_>, f: DmFault) {
        let e = GuestError::Dm(ctx.relid, f);
        ctx.fault(Service::DynamicMemory, e);
    }

    /// One in-band packet from the guest.
    pub(crate) fn on_packet<M: RingMem, G: GuestMemory>(
        &mut self,
        b: &[u8],
        out: &mut [u8],
        tx: &mut Tx<'_, M>,
        ctx: &mut Ctx<'_>,
        mem: &core::cell::RefCell<&mut G>,
    ) {
        if b.len() < HEADER {
            return self.refuse(ctx, DmFault::Truncated(b.len()));
        }
        let (ty, size, trans) = (u16_at(b, 0), u16_at(b, 2), u32_at(b, 4));
        let min = match ty {
            VERSION_REQUEST => 16,
            CAPABILITIES_REPORT => 32,
            STATUS_REPORT => 48,
            BALLOON_RESPONSE => 16,
            UNBALLOON_RESPONSE => 8,
            VERSION_RESPONSE | CAPABILITIES_RESPONSE | BALLOON_REQUEST | UNBALLOON_REQUEST => {
                return self.refuse(ctx, DmFault::Unexpected(ty));
            }
            _ => return self.refuse(ctx, DmFault::UnknownType(ty)),
        };
        if usize::from(size) < min || usize::from(size) > b.len() {
            let f = DmFault::BadSize {
                ty,
                size,
                len: b.len(),
            };
            return self.refuse(ctx, f);
        }
        let m = &b[..usize::from(size)];
        let svc = Service::DynamicMemory;
        match ty {
            VERSION_REQUEST if self.phase == DmPhase::Version => {
                let v = u32_at(m, 8);
                let last = u32_at(m, 12) & 1 != 0;
                let accepted = self.accepts(v);
                ctx.trace(
                    Direction::Received,
                    svc,
                    TraceEvent::DmVersion {
                        version: v,
                        last,
                        accepted,
                    },
                );
                Self::header(out, VERSION_RESPONSE, 16, trans);
                put(out, 8, &u64::from(accepted).to_le_bytes());
                self.send(out, 16, tx, ctx);
                if accepted {
                    self.version = Some(v);
                    self.phase = DmPhase::Capabilities;
                    if ctx.hostile.dm_balloon_before_capabilities {
                        self.queued = Some(Queued::Balloon(EARLY_BALLOON_PAGES));
                        self.poll(out, tx, ctx);
                    }
                }
            }
            CAPABILITIES_REPORT if self.phase == DmPhase::Capabilities => {
                let c = u64_at(m, 8);
                let caps = DmCaps {
                    balloon: c & 1 != 0,
                    hot_add: c & 2 != 0,
                    min_pages: u64_at(m, 16),
                    max_page: u64_at(m, 24),
                };
                self.caps = Some(caps);
                ctx.trace(
                    Direction::Received,
                    svc,
                    TraceEvent::DmCapabilities {
                        balloon: caps.balloon,
                        hot_add: caps.hot_add,
                        min_pages: caps.min_pages,
                        max_page: caps.max_page,
                    },
                );
                Self::header(out, CAPABILITIES_RESPONSE, 16, trans);
                put(out, 8, &1u64.to_le_bytes());
                ctx.trace(
                    Direction::Sent,
                    svc,
                    TraceEvent::DmCapabilitiesResponse { accepted: true },
                );
                self.send(out, 16, tx, ctx);
                self.phase = DmPhase::Ready;
            }
            STATUS_REPORT if self.phase == DmPhase::Ready => {
                let (avail, committed) = (u64_at(m, 8), u64_at(m, 16));
                self.status_reports += 1;
                self.last_status = Some((avail, committed));
                ctx.trace(
                    Direction::Received,
                    svc,
                    TraceEvent::DmStatus { avail, committed },
                );
            }
            // The ring memory borrows the cell per access: hold it only while no packet is sent.
            BALLOON_RESPONSE => self.balloon_response(m, ctx, &mut **mem.borrow_mut()),
            UNBALLOON_RESPONSE => {
                ctx.trace(Direction::Received, svc, TraceEvent::DmUnballoonResponse);
                if !core::mem::take(&mut self.unballoon_pending) {
                    self.refuse(ctx, DmFault::Unsolicited(ty));
                }
            }
            _ => self.refuse(ctx, DmFault::Unexpected(ty)),
        }
    }

    fn balloon_response<G: GuestMemory>(&mut self, m: &[u8], ctx: &mut Ctx<'_>, mem: &mut G) {
        let w = u32_at(m, 12);
        let (more, count) = (w & 1 != 0, (w >> 1) as usize);
        let fits = (m.len() - 16) / 8;
        let n = count.min(fits);
        let mut pages = 0u64;
        for i in 0..n {
            pages += u64_at(m, 16 + 8 * i) >> 40;
        }
        let ev = TraceEvent::DmBalloonResponse {
            ranges: count as u32,
            pages,
            more,
        };
        ctx.trace(Direction::Received, Service::DynamicMemory, ev);
        if count > fits {
            let f = DmFault::BadSize {
                ty: BALLOON_RESPONSE,
                size: m.len() as u16,
                len: m.len(),
            };
            self.refuse(ctx, f);
        }
        if self.balloon_pending.is_none() {
            return self.refuse(ctx, DmFault::Unsolicited(BALLOON_RESPONSE));
        }
        for i in 0..n {
            let raw = u64_at(m, 16 + 8 * i);
            let r = DmRange {
                start: raw & ((1 << 40) - 1),
                count: (raw >> 40) as u32,
            };
            if let Err(f) = self.check(&r, ctx.gpadls, mem) {
                self.rejected_pages += u64::from(r.count);
                self.refuse(ctx, f);
                continue;
            }
            if self.n_ranges == MAX_RANGES {
                self.rejected_pages += u64::from(r.count);
                self.refuse(ctx, DmFault::TooManyRanges);
                continue;
            }
            self.ranges[self.n_ranges] = r;
            self.n_ranges += 1;
            self.pages_held += u64::from(r.count);
            self.balloon_answered += u64::from(r.count);
            if self.opts.scribble {
                for p in r.start..r.end() {
                    for at in (0..vmbus_driver::hv::PAGE_SIZE).step_by(256) {
                        let _ = mem.write(p, at, &[DM_SCRIBBLE; 256]);
                    }
                }
            }
        }
        if !more {
            self.balloon_pending = None;
        }
    }

    /// Whether the host may take `r`: guest memory, no ring page, not held already.
    fn check<G: GuestMemory>(
        &self,
        r: &DmRange,
        gpadls: &GpadlTable,
        mem: &mut G,
    ) -> Result<(), DmFault> {
        for held in self.ranges() {
            if held.overlaps(r) {
                return Err(DmFault::AlreadyBallooned(held.start.max(r.start)));
            }
        }
        if let Some(p) = gpadls.first_pfn_in(r.start, r.end()) {
            return Err(DmFault::RingPage(p));
        }
        let mut b = [0u8; 1];
        for p in r.start..r.end() {
            if mem.read(p, 0, &mut b).is_err() {
                return Err(DmFault::NotGuestMemory(p));
            }
        }
        Ok(())
    }
}
