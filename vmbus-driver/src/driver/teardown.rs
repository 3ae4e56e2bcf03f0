//! The one teardown state machine of DESIGN.md §3, shared by rescind, client close, client
//! fault, failed open, unload and primary teardown; GPADL_TORNDOWN; reply timeouts; the
//! quarantine of pages whose GPADL teardown the host never confirmed.

use log::{info, warn};

use crate::control::ChannelStatus;
use crate::hv::Hypervisor;
use crate::ids::{GpadlId, RelId};
use crate::kernel::Kernel;
use crate::msg::{ChannelMessage, CloseChannel, GpadlTeardown};

use super::Driver;
use super::config::{NO_OPEN, RETIRED};
use super::pages::PageList;
use super::post::post;
use super::table::{
    GpadlState, MAX_RELIDS, OpenChan, OpenState, Phase, RelidState, TeardownReason, flags,
};

/// Quarantined GPADLs remembered so a late GPADL_TORNDOWN can still free their pages. Beyond
/// this, pages are quarantined for good (still counted).
pub const MAX_QUARANTINE: usize = 64;

#[derive(Debug, Clone, Copy)]
struct QEntry {
    gpadl: GpadlId,
    pages: PageList,
}

/// Quarantined page lists.
#[derive(Debug, Clone)]
pub(crate) struct Quarantine {
    entries: [Option<QEntry>; MAX_QUARANTINE],
    pages: usize,
}

impl Quarantine {
    pub const fn new() -> Quarantine {
        Quarantine {
            entries: [None; MAX_QUARANTINE],
            pages: 0,
        }
    }

    pub fn contains(&self, gpadl: GpadlId) -> bool {
        self.entries.iter().flatten().any(|e| e.gpadl == gpadl)
    }

    /// Pages in quarantine.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

impl Driver {
    /// Starts the teardown of open-table entry `idx` (steps 1 and 2, then as far as it can go).
    /// A channel already in teardown is left alone (R3, R8).
    pub(crate) fn begin_teardown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        idx: usize,
        reason: TeardownReason,
        now: u64,
    ) {
        let Some(o) = self.opens.get(idx).copied() else {
            return;
        };
        if !o.in_use() || o.phase == Phase::Teardown {
            return;
        }
        self.stats.teardowns += 1;
        let r = usize::from(o.relid);
        info!("teardown of relid:{r} ({reason:?})");
        // Step 1: from now on nothing is matched against the old generation.
        self.relids[r].generation = self.relids[r].generation.wrapping_add(1);
        {
            let o = &mut self.opens[idx];
            o.phase = Phase::Teardown;
            o.reason = reason;
            o.deadline = 0;
            o.flags &= !flags::MODIFY_PENDING;
        }
        if o.gpadl_state == GpadlState::Pending {
            // GPADL_CREATED is still awaited before the GPADL can be torn down.
            self.opens[idx].deadline = self.deadline(now);
        }
        // Sub-channels first (R7).
        if self.relids[r].sub_index == 0 {
            for s in 1..MAX_RELIDS {
                if self.relids[s].state == RelidState::Active && self.is_sub_of(s, r) {
                    let sidx = usize::from(self.relids[s].open);
                    self.begin_teardown(hv, k, sidx, TeardownReason::Primary, now);
                }
            }
        }
        // Step 2: revoke every ring page; the client's mappings are gone when this returns. A
        // page whose revoke failed may still be mapped by the client: it is tainted, never
        // zeroed, returned or granted again.
        let failed = self.arena.taint_where(o.pages, |page| {
            let failed = k.revoke(page).err();
            if let Some(e) = failed {
                warn!("relid:{r}: revoking {page} failed ({e}): quarantined for good");
            }
            failed.is_some()
        });
        self.stats.kernel_errors += failed as u64;
        self.count_quarantine(QuarantineCause::Revoke, failed);
        self.opens[idx].flags |= flags::REVOKED;
        let (c, slot) = (usize::from(o.client), usize::from(o.slot));
        if self.clients.entries[c].slots.get(slot) == Some(&(idx as u16)) {
            let status = if reason == TeardownReason::OpenFailed {
                self.stats.open_failures += 1;
                ChannelStatus::Failed
            } else {
                ChannelStatus::Gone
            };
            self.write_status(k, c, slot, o.generation, status);
            // A slot whose pages may still be mapped there is never used again.
            self.clients.entries[c].slots[slot] = if failed > 0 && o.has(flags::GRANTED) {
                warn!("relid:{r}: window slot {slot} of client {c} retired for good");
                RETIRED
            } else {
                NO_OPEN
            };
            let id = self.clients.entries[c].id;
            self.notify_client(k, id);
        }
        self.advance_teardown(hv, k, idx, now);
    }

    /// Runs the teardown steps of entry `idx` that can run now (step 3 on), each once.
    pub(crate) fn advance_teardown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        idx: usize,
        now: u64,
    ) {
        let o = self.opens[idx];
        // Not before step 2: a sub-channel finishing inside the primary's `begin_teardown`
        // calls back here before the primary's own pages are revoked. (REVOKED is set only in
        // `begin_teardown`, with phase Teardown, and a freed entry has no flags: it also means
        // "in use and in teardown".)
        if !o.has(flags::REVOKED) {
            return;
        }
        let r = usize::from(o.relid);
        let relid = RelId(u32::from(o.relid));
        // Wait for the sub-channels' teardowns (R7).
        if self.relids[r].sub_index == 0
            && (1..MAX_RELIDS)
                .any(|s| self.relids[s].state == RelidState::Active && self.is_sub_of(s, r))
        {
            return;
        }
        // Step 3a: CLOSECHANNEL only for an open the host confirmed. While OPENCHANNEL_RESULT
        // is outstanding a host may ignore a CLOSECHANNEL and keep the channel (and the GPADL)
        // open, so the teardown waits for the result (its deadline is the reply timeout). A
        // rescinded channel is closed at once: the host is tearing it down itself.
        let rescinded = self.relids[r].rescinded;
        if o.open_state == OpenState::Sent && !rescinded && !o.has(flags::CLOSE_SENT) {
            if o.deadline == 0 {
                self.opens[idx].deadline = self.deadline(now);
            }
            return;
        }
        let confirmed =
            o.open_state == OpenState::Opened || (o.open_state == OpenState::Sent && rescinded);
        if confirmed && !o.has(flags::CLOSE_SENT) {
            let msg = ChannelMessage::CloseChannel(CloseChannel { child_relid: relid });
            // A lost CLOSECHANNEL is counted by `post`; the GPADL teardown still follows.
            let _ = post(hv, &mut self.stats, self.conn.msg_conn, &msg);
            self.opens[idx].flags |= flags::CLOSE_SENT;
            self.opens[idx].deadline = 0;
        }
        // Step 3b: the GPADL.
        match o.gpadl_state {
            GpadlState::Pending | GpadlState::TeardownSent => return,
            GpadlState::Created => {
                let msg = ChannelMessage::GpadlTeardown(GpadlTeardown {
                    child_relid: relid,
                    gpadl: o.gpadl,
                });
                if post(hv, &mut self.stats, self.conn.msg_conn, &msg).is_ok() {
                    self.opens[idx].gpadl_state = GpadlState::TeardownSent;
                    self.opens[idx].deadline = self.deadline(now);
                    return;
                }
                // The host may still hold the GPADL and was not told: never reuse the pages.
                self.opens[idx].gpadl_state = GpadlState::Quarantined;
            }
            GpadlState::None | GpadlState::Gone | GpadlState::Quarantined => {}
        }
        self.finish_teardown(hv, k, idx, now);
    }

    /// Steps 4 and 5, then the entry is free.
    fn finish_teardown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        idx: usize,
        now: u64,
    ) {
        let o = self.opens[idx];
        let r = usize::from(o.relid);
        // Step 4.
        if self.relids[r].rescinded {
            self.release_relid(hv, r);
        } else {
            self.relids[r].state = RelidState::Offered;
            if o.has(flags::OPEN_UNRESOLVED) {
                self.relids[r].unresolved_open = Some(o.gpadl);
            }
        }
        // Step 5.
        if o.gpadl_state == GpadlState::Quarantined {
            self.quarantine_pages(o.gpadl, o.pages);
        } else {
            self.zero_and_return(k, o.pages);
        }
        self.opens[idx] = OpenChan::EMPTY;
        self.opens_in_use -= 1;
        self.stats.teardowns_completed += 1;
        // A primary may be waiting for this sub-channel: every primary of the device, since an
        // implied rescind can leave an old primary in teardown beside a new offer of it.
        if self.relids[r].sub_index != 0 {
            for p in 1..MAX_RELIDS {
                let pe = &self.relids[p];
                if pe.state == RelidState::Active
                    && pe.sub_index == 0
                    && pe.class == self.relids[r].class
                    && pe.instance == self.relids[r].instance
                {
                    let pidx = usize::from(pe.open);
                    self.advance_teardown(hv, k, pidx, now);
                }
            }
        }
        self.check_unload(hv, now);
    }

    /// Zeroes every page of `list` and returns it to the pool, then frees the list. Tainted
    /// pages (already counted in quarantine) are left alone; a page whose zeroing or return
    /// fails stays out of the pool for good.
    pub(crate) fn zero_and_return<K: Kernel + ?Sized>(&mut self, k: &mut K, list: PageList) {
        let (mut returned, mut zero_failed, mut return_failed) = (0, 0, 0);
        for (page, tainted) in self.arena.iter_marked(list) {
            if tainted {
                continue;
            }
            if let Err(e) = k.zero_page(page) {
                zero_failed += 1;
                warn!("zeroing {page} failed ({e}): quarantined for good");
            } else if let Err(e) = k.return_page(page) {
                return_failed += 1;
                warn!("returning {page} failed ({e}): quarantined for good");
            } else {
                returned += 1;
            }
        }
        self.arena.free(list);
        self.stats.pages_returned += returned;
        self.stats.kernel_errors += (zero_failed + return_failed) as u64;
        self.count_quarantine(QuarantineCause::Zero, zero_failed);
        self.count_quarantine(QuarantineCause::Return, return_failed);
    }

    /// Counts `n` pages kept out of the pool, by cause.
    fn count_quarantine(&mut self, cause: QuarantineCause, n: usize) {
        let n64 = n as u64;
        self.stats.quarantined_pages += n64;
        self.quarantine.pages += n;
        *match cause {
            QuarantineCause::Unconfirmed => &mut self.stats.quarantine_unconfirmed,
            QuarantineCause::Revoke => &mut self.stats.quarantine_revoke_failed,
            QuarantineCause::Zero => &mut self.stats.quarantine_zero_failed,
            QuarantineCause::Return => &mut self.stats.quarantine_return_failed,
        } += n64;
    }

    /// Keeps a list whose GPADL the host may still hold; a late GPADL_TORNDOWN frees the pages
    /// that are not tainted (those are counted already).
    fn quarantine_pages(&mut self, gpadl: GpadlId, list: PageList) {
        let n = list.len() - self.arena.tainted(list);
        self.count_quarantine(QuarantineCause::Unconfirmed, n);
        warn!("{n} pages of {gpadl} quarantined until the host confirms the GPADL's teardown");
        if let Some(slot) = self.quarantine.entries.iter_mut().find(|e| e.is_none()) {
            *slot = Some(QEntry { gpadl, pages: list });
        }
        // Otherwise the list stays allocated in the arena for good: never reused.
    }

    /// GPADL_TORNDOWN.
    pub(crate) fn on_gpadl_torndown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        gpadl: GpadlId,
        now: u64,
    ) {
        if let Some(idx) = self.open_by_gpadl(gpadl) {
            if self.opens[idx].gpadl_state != GpadlState::TeardownSent {
                self.mismatched("GPADL_TORNDOWN for a GPADL not being torn down");
                return;
            }
            self.opens[idx].gpadl_state = GpadlState::Gone;
            self.opens[idx].deadline = 0;
            self.advance_teardown(hv, k, idx, now);
            return;
        }
        let q = self
            .quarantine
            .entries
            .iter()
            .position(|e| e.is_some_and(|e| e.gpadl == gpadl));
        if let Some(q) = q
            && let Some(e) = self.quarantine.entries[q].take()
        {
            let n = e.pages.len() - self.arena.tainted(e.pages);
            info!("late GPADL_TORNDOWN for {gpadl}: {n} quarantined pages released");
            self.quarantine.pages -= n;
            self.stats.quarantine_released_pages += n as u64;
            self.zero_and_return(k, e.pages);
            return;
        }
        self.stats.hostile += 1;
        self.stats.unknown_gpadl += 1;
        warn!("GPADL_TORNDOWN for unknown {gpadl}");
    }

    /// A host reply awaited by entry `idx` did not come in time.
    pub(crate) fn on_channel_timeout<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        idx: usize,
        now: u64,
    ) {
        let o = self.opens[idx];
        self.opens[idx].deadline = 0;
        let relid = o.relid;
        match (o.phase, o.gpadl_state) {
            (Phase::Open, _) => {
                warn!("relid:{relid}: no MODIFYCHANNEL_RESPONSE");
                self.opens[idx].flags &= !flags::MODIFY_PENDING;
            }
            (Phase::GpadlPending, _) | (Phase::OpenPending, _) => {
                warn!("relid:{relid}: open timed out");
                if o.gpadl_state == GpadlState::Pending {
                    // The host may have created it without telling us.
                    self.opens[idx].gpadl_state = GpadlState::Created;
                }
                self.begin_teardown(hv, k, idx, TeardownReason::OpenFailed, now);
                // Still waiting for the result (unless `begin_teardown` finished and freed the
                // entry, whose open state is then NotSent).
                if self.opens[idx].open_state == OpenState::Sent {
                    // The result did not come in time: waiting longer would not change that.
                    self.give_up_open(hv, k, idx, now);
                }
            }
            (Phase::Teardown, _)
                if o.open_state == OpenState::Sent && !o.has(flags::CLOSE_SENT) =>
            {
                self.give_up_open(hv, k, idx, now);
            }
            (Phase::Teardown, GpadlState::Pending) => {
                warn!("relid:{relid}: no GPADL_CREATED during teardown");
                self.opens[idx].gpadl_state = GpadlState::Created;
                self.advance_teardown(hv, k, idx, now);
            }
            (Phase::Teardown, GpadlState::TeardownSent) => {
                warn!("relid:{relid}: no GPADL_TORNDOWN; pages quarantined");
                self.opens[idx].gpadl_state = GpadlState::Quarantined;
                self.advance_teardown(hv, k, idx, now);
            }
            (Phase::Teardown, _) => {}
        }
    }

    /// OPENCHANNEL_RESULT never came for entry `idx` in teardown: the host may open the channel
    /// at any time and map the ring GPADL, so no CLOSECHANNEL (a host ignores it mid-open) and
    /// no GPADL_TEARDOWN; the pages stay quarantined under the GPADL and the relid is left
    /// unresolved until the late result or a rescind. The teardown ends here.
    fn give_up_open<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        idx: usize,
        now: u64,
    ) {
        let o = &mut self.opens[idx];
        // In use, in teardown and revoked (see `advance_teardown`).
        if !o.has(flags::REVOKED) {
            return;
        }
        warn!(
            "relid:{}: no OPENCHANNEL_RESULT; no CLOSECHANNEL, pages quarantined",
            o.relid
        );
        o.deadline = 0;
        o.flags |= flags::OPEN_UNRESOLVED;
        o.gpadl_state = GpadlState::Quarantined;
        self.stats.unresolved_opens += 1;
        self.finish_teardown(hv, k, idx, now);
    }
}

/// Why pages are kept out of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuarantineCause {
    /// The host never confirmed their GPADL's teardown: a late GPADL_TORNDOWN may free them.
    Unconfirmed,
    /// Revoking the page failed: a client may still map it.
    Revoke,
    /// Zeroing the page failed: it may hold a client's data.
    Zero,
    /// The kernel refused to take the page back.
    Return,
}
