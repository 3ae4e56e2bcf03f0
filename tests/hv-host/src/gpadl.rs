//! GPADL bookkeeping: reassembly of GPADL_HEADER + GPADL_BODY through `vmbus_driver::gpadl`'s
//! reassembler, the table of GPADLs with their PFNs in a fixed pool, and teardown.
//!
//! Hyper-V mode follows OpenVMM's server: any fault in a header (unknown relid, id 0 or in use,
//! inconsistent range, no room) is answered GPADL_CREATED with status 0x8000FFFF; a body for an
//! unknown GPADL gets no answer (the relid is not known); a body that overflows the header's PFN
//! count is answered with the failure status. GPADL ids are unique across all channels here (a
//! guest that reuses one on another channel is refused; OpenVMM keys by id and channel). Teardown
//! of a GPADL that an open channel uses as its ring is answered only once the channel is closed
//! (OpenVMM's relay notes the host "may not send the GpadlTorndown message immediately ... if the
//! channel is still open"); teardown for a rescinded channel is answered at once.
//!
//! QEMU mode (docs/protocol.md#qemus-bus-state-machine): a header is silently ignored unless
//! connected, in the exact single-range form, with a new id; the relid is echoed, not checked;
//! status always 0; PFNs a body carries beyond the header's count are ignored; a teardown of an
//! unknown id is ignored, a known one answered at once even while a channel still maps it (QEMU
//! keeps a reference until the close).

use vmbus_driver::gpadl::{Progress, Reassembler};
use vmbus_driver::ids::{GpadlId, RelId};
use vmbus_driver::msg::{ChannelMessage, GpadlBody, GpadlCreated, GpadlHeader, GpadlTorndown};

use crate::config::Mode;
use crate::host::Host;
use crate::log::GuestError;
use crate::offers::ChannelState;

/// GPADLs the host holds at once.
pub const MAX_GPADLS: usize = 4096;
/// PFNs of all GPADLs together.
pub const PFN_POOL: usize = 16384;
/// Largest GPADL in pages (16 MiB); larger ones are refused for lack of resources.
pub const MAX_GPADL_PAGES: usize = 4096;
/// GPADLs whose bodies may be outstanding at once.
pub const IN_FLIGHT: usize = 4;
/// GPADL_CREATED / OPENCHANNEL_RESULT failure status in Hyper-V mode (OpenVMM's value).
pub const STATUS_UNSUCCESSFUL: u32 = 0x8000_FFFF;

const BLOCK: usize = 4;
const BLOCKS: usize = PFN_POOL / BLOCK;

/// What a GPADL table entry is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpadlState {
    /// Unused entry.
    Free,
    /// Created (GPADL_CREATED sent).
    Ready,
    /// Teardown asked while an open channel uses it; GPADL_TORNDOWN follows the close.
    TearingDown,
    /// QEMU: torn down (answered) but still mapped by an open channel until it closes.
    Zombie,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub state: GpadlState,
    pub id: GpadlId,
    pub relid: RelId,
    start: u32,
    pub pages: u32,
    /// The open channel using it as its ring GPADL.
    pub user: Option<RelId>,
}

impl Entry {
    const FREE: Self = Self {
        state: GpadlState::Free,
        id: GpadlId(0),
        relid: RelId(0),
        start: 0,
        pages: 0,
        user: None,
    };
}

#[derive(Debug, Clone)]
struct InFlight {
    active: bool,
    id: GpadlId,
    relid: RelId,
    /// PFNs still expected.
    remaining: usize,
    asm: Reassembler<MAX_GPADL_PAGES>,
}

impl InFlight {
    const IDLE: Self = Self {
        active: false,
        id: GpadlId(0),
        relid: RelId(0),
        remaining: 0,
        asm: Reassembler::new(),
    };
}

/// The GPADL table, its PFN pool and the GPADLs being reassembled.
#[derive(Debug, Clone)]
pub struct GpadlTable {
    entries: [Entry; MAX_GPADLS],
    pool: [u64; PFN_POOL],
    used: [u64; BLOCKS / 64],
    in_flight: [InFlight; IN_FLIGHT],
}

impl Default for GpadlTable {
    fn default() -> Self {
        Self::new()
    }
}

impl GpadlTable {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            entries: [Entry::FREE; MAX_GPADLS],
            pool: [0; PFN_POOL],
            used: [0; BLOCKS / 64],
            in_flight: [const { InFlight::IDLE }; IN_FLIGHT],
        }
    }

    /// Drops everything (bus reset).
    pub(crate) fn clear(&mut self) {
        self.entries = [Entry::FREE; MAX_GPADLS];
        self.used = [0; BLOCKS / 64];
        for f in &mut self.in_flight {
            f.active = false;
            f.asm.reset();
        }
    }

    pub(crate) fn find(&self, id: GpadlId) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.state != GpadlState::Free && e.id == id)
    }

    pub(crate) fn entry(&self, slot: usize) -> &Entry {
        &self.entries[slot]
    }

    pub(crate) fn entry_mut(&mut self, slot: usize) -> &mut Entry {
        &mut self.entries[slot]
    }

    /// The PFNs of entry `slot`.
    pub(crate) fn pfns(&self, slot: usize) -> &[u64] {
        let e = &self.entries[slot];
        let start = e.start as usize;
        &self.pool[start..start + e.pages as usize]
    }

    fn in_flight(&self, id: GpadlId) -> Option<usize> {
        self.in_flight.iter().position(|f| f.active && f.id == id)
    }

    /// Whether `id` names a GPADL, complete or in progress.
    pub(crate) fn in_use(&self, id: GpadlId) -> bool {
        self.find(id).is_some() || self.in_flight(id).is_some()
    }

    /// Live GPADLs (any state but Free).
    pub fn count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state != GpadlState::Free)
            .count()
    }

    /// PFNs held by live GPADLs.
    pub fn pages_held(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state != GpadlState::Free)
            .map(|e| e.pages as usize)
            .sum()
    }

    fn free_slot(&mut self, slot: usize) {
        let e = self.entries[slot];
        let first = e.start as usize / BLOCK;
        for x in first..first + (e.pages as usize).div_ceil(BLOCK) {
            self.used[x / 64] &= !(1 << (x % 64));
        }
        self.entries[slot] = Entry::FREE;
    }

    /// Removes a GPADL.
    pub(crate) fn remove(&mut self, slot: usize) {
        self.free_slot(slot);
    }

    /// Drops every GPADL (and reassembly) of `relid`; returns how many complete ones there were.
    pub(crate) fn drop_channel(&mut self, relid: RelId) -> usize {
        let mut n = 0;
        for slot in 0..MAX_GPADLS {
            if self.entries[slot].state != GpadlState::Free && self.entries[slot].relid == relid {
                self.free_slot(slot);
                n += 1;
            }
        }
        for f in &mut self.in_flight {
            if f.active && f.relid == relid {
                f.active = false;
                f.asm.reset();
            }
        }
        n
    }
}

impl Host {
    fn gpadl_created(&mut self, relid: RelId, id: GpadlId, status: u32) {
        self.send(ChannelMessage::GpadlCreated(GpadlCreated {
            child_relid: relid,
            gpadl: id,
            creation_status: status,
        }));
        if status == 0 {
            self.counters.gpadls_created += 1;
        }
        if self.hostile.stray_gpadl_created {
            let stray = GpadlId(self.stray_gpadl);
            self.stray_gpadl = self.stray_gpadl.wrapping_add(1);
            self.send(ChannelMessage::GpadlCreated(GpadlCreated {
                child_relid: relid,
                gpadl: stray,
                creation_status: 0,
            }));
        }
    }

    fn gpadl_refused(&mut self, relid: RelId, id: GpadlId, e: GuestError) {
        self.guest_error(e);
        if self.config.mode == Mode::Qemu {
            self.counters.ignored += 1;
        } else {
            self.gpadl_created(relid, id, STATUS_UNSUCCESSFUL);
        }
    }

    /// A GPADL_HEADER that did not decode: Hyper-V still names relid and id (offsets 8 and 12) in
    /// its failure reply when the message is long enough to carry them.
    pub(crate) fn refuse_bad_gpadl_header(&mut self, bytes: &[u8]) {
        if bytes.len() >= 16 {
            let relid = RelId(u32::from_le_bytes([
                bytes[8], bytes[9], bytes[10], bytes[11],
            ]));
            let id = GpadlId(u32::from_le_bytes([
                bytes[12], bytes[13], bytes[14], bytes[15],
            ]));
            self.gpadl_created(relid, id, STATUS_UNSUCCESSFUL);
        }
    }

    pub(crate) fn gpadl_header(&mut self, h: &GpadlHeader) {
        let qemu = self.config.mode == Mode::Qemu;
        if !qemu
            && !matches!(
                self.channel_state(h.child_relid),
                ChannelState::Offered | ChannelState::Open | ChannelState::Rescinded
            )
        {
            return self.gpadl_refused(
                h.child_relid,
                h.gpadl,
                GuestError::UnknownRelid(h.child_relid),
            );
        }
        if h.gpadl.0 == 0 {
            return self.gpadl_refused(h.child_relid, h.gpadl, GuestError::GpadlIdZero);
        }
        if self.gpadls.in_use(h.gpadl) {
            return self.gpadl_refused(h.child_relid, h.gpadl, GuestError::GpadlIdInUse(h.gpadl));
        }
        let Some(fi) = self.gpadls.in_flight.iter().position(|f| !f.active) else {
            // Out of reassembly slots: a resource refusal, not the guest's fault.
            if qemu {
                self.counters.ignored += 1;
            } else {
                self.gpadl_created(h.child_relid, h.gpadl, STATUS_UNSUCCESSFUL);
            }
            return;
        };
        let f = &mut self.gpadls.in_flight[fi];
        f.asm.reset();
        match f.asm.header(h) {
            Ok(p) => {
                f.active = true;
                f.id = h.gpadl;
                f.relid = h.child_relid;
                match p {
                    Progress::Complete => self.finish_gpadl(fi),
                    Progress::NeedMore { remaining } => f.remaining = remaining,
                }
            }
            Err(_) => {
                f.asm.reset();
                self.gpadl_refused(
                    h.child_relid,
                    h.gpadl,
                    GuestError::GpadlInconsistent(h.gpadl),
                );
            }
        }
    }

    pub(crate) fn gpadl_body(&mut self, b: &GpadlBody) {
        let Some(fi) = self.gpadls.in_flight(b.gpadl) else {
            if self.config.mode == Mode::Qemu {
                self.counters.ignored += 1;
            } else {
                // No reply possible: a body does not name its channel.
                self.guest_error(GuestError::UnknownGpadl(b.gpadl));
            }
            return;
        };
        let f = &mut self.gpadls.in_flight[fi];
        let mut body = *b;
        if self.config.mode == Mode::Qemu && b.pfns.len() > f.remaining {
            // QEMU copies only the PFNs still missing and ignores the rest.
            let keep = b.pfns.as_slice().get(..f.remaining).unwrap_or(&[]);
            body.pfns = vmbus_driver::msg::PfnList::from_slice(keep).unwrap_or_default();
        }
        match f.asm.body(&body) {
            Ok(Progress::Complete) => self.finish_gpadl(fi),
            Ok(Progress::NeedMore { remaining }) => f.remaining = remaining,
            Err(_) => {
                let relid = f.relid;
                f.active = false;
                f.asm.reset();
                self.gpadl_refused(relid, b.gpadl, GuestError::GpadlInconsistent(b.gpadl));
            }
        }
    }

    /// All PFNs arrived: store the GPADL and answer.
    fn finish_gpadl(&mut self, fi: usize) {
        let t = &mut self.gpadls;
        let (id, relid) = (t.in_flight[fi].id, t.in_flight[fi].relid);
        let free_entry = t.entries.iter().position(|e| e.state == GpadlState::Free);
        // Split borrows: the PFNs stay in `in_flight` while `used`, `pool` and `entries` change.
        let slot = match (t.in_flight[fi].asm.complete(), free_entry) {
            (Some(done), Some(slot)) => alloc(&mut t.used, done.pfns.len()).map(|start| {
                let n = done.pfns.len();
                let s = start as usize;
                t.pool[s..s + n].copy_from_slice(done.pfns);
                t.entries[slot] = Entry {
                    state: GpadlState::Ready,
                    id,
                    relid,
                    start,
                    // n <= MAX_GPADL_PAGES.
                    pages: n as u32,
                    user: None,
                };
                slot
            }),
            _ => None,
        };
        let f = &mut t.in_flight[fi];
        f.active = false;
        f.asm.reset();
        let revoked = self.channel_state(relid) == ChannelState::Rescinded;
        match slot {
            Some(s) if revoked && self.config.mode == Mode::HyperV => {
                // OpenVMM: a GPADL completed for a revoked channel is refused and dropped.
                self.gpadls.remove(s);
                self.gpadl_created(relid, id, STATUS_UNSUCCESSFUL);
            }
            Some(_) => self.gpadl_created(relid, id, 0),
            // Table or pool full: a resource refusal (QEMU would have allocated; it has no
            // failure status, so it stays silent here).
            None if self.config.mode == Mode::Qemu => self.counters.ignored += 1,
            None => self.gpadl_created(relid, id, STATUS_UNSUCCESSFUL),
        }
    }

    pub(crate) fn gpadl_teardown(&mut self, relid: RelId, id: GpadlId) {
        let qemu = self.config.mode == Mode::Qemu;
        if qemu {
            let Some(slot) = self.gpadls.find(id) else {
                self.counters.ignored += 1;
                return;
            };
            if self.gpadls.entry(slot).state != GpadlState::Ready {
                self.counters.ignored += 1;
                return;
            }
            if self.gpadls.entry(slot).user.is_some() {
                self.gpadls.entry_mut(slot).state = GpadlState::Zombie;
            } else {
                self.gpadls.remove(slot);
            }
            self.torn_down(id);
            return;
        }
        if self.channel_state(relid) == ChannelState::Free {
            return self.guest_error(GuestError::UnknownRelid(relid));
        }
        let Some(slot) = self
            .gpadls
            .find(id)
            .filter(|&s| self.gpadls.entry(s).relid == relid)
        else {
            let e = if self.gpadls.in_use(id) {
                GuestError::GpadlBadState(id)
            } else {
                GuestError::UnknownGpadl(id)
            };
            return self.guest_error(e);
        };
        if self.gpadls.entry(slot).state != GpadlState::Ready {
            return self.guest_error(GuestError::GpadlBadState(id));
        }
        if self.gpadls.entry(slot).user.is_some() {
            self.gpadls.entry_mut(slot).state = GpadlState::TearingDown;
            return;
        }
        self.gpadls.remove(slot);
        self.torn_down(id);
    }

    fn torn_down(&mut self, id: GpadlId) {
        self.counters.gpadls_torn_down += 1;
        self.send(ChannelMessage::GpadlTorndown(GpadlTorndown { gpadl: id }));
    }

    /// The channel `relid` stopped using its ring GPADL: a teardown that waited for it completes.
    pub(crate) fn finish_deferred_teardowns(&mut self, relid: RelId) {
        for slot in 0..MAX_GPADLS {
            let e = *self.gpadls.entry(slot);
            if e.user != Some(relid) {
                continue;
            }
            self.gpadls.entry_mut(slot).user = None;
            match e.state {
                GpadlState::TearingDown => {
                    self.gpadls.remove(slot);
                    self.torn_down(e.id);
                }
                GpadlState::Zombie => self.gpadls.remove(slot),
                _ => {}
            }
        }
    }
}

/// First-fit allocation of `pages` PFN slots in whole blocks; returns the first slot.
fn alloc(used: &mut [u64; BLOCKS / 64], pages: usize) -> Option<u32> {
    let need = pages.div_ceil(BLOCK).max(1);
    let mut run = 0;
    for b in 0..BLOCKS {
        if used[b / 64] & (1 << (b % 64)) != 0 {
            run = 0;
            continue;
        }
        run += 1;
        if run == need {
            let first = b + 1 - need;
            for x in first..=b {
                used[x / 64] |= 1 << (x % 64);
            }
            return u32::try_from(first * BLOCK).ok();
        }
    }
    None
}

impl GpadlTable {
    /// The first PFN in `start..end` that a live GPADL (complete or being torn down) covers.
    pub(crate) fn first_pfn_in(&self, start: u64, end: u64) -> Option<u64> {
        (0..MAX_GPADLS)
            .filter(|&s| self.entries[s].state != GpadlState::Free)
            .flat_map(|s| self.pfns(s).iter().copied())
            .find(|p| (start..end).contains(p))
    }
}
