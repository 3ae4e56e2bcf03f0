//! The one teardown state machine of docs/lifetime.md, shared by rescind, client close, client
//! fault, failed open, unload and primary teardown; GPADL_TORNDOWN; reply timeouts.

use log::{info, warn};

use crate::control::ChannelStatus;
use crate::hv::Hypervisor;
use crate::ids::{GpadlId, RelId};
use crate::kernel::Kernel;
use crate::msg::{ChannelMessage, CloseChannel, GpadlTeardown};

use super::Driver;
use super::channels::{ChannelTable, Slot};
use super::post::post;
use super::state::{ChanState, Close, GpadlHold, Teardown, TeardownReason};

/// How an open's host side stands when its teardown starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Start {
    /// CLOSECHANNEL.
    pub close: Close,
    /// The ring GPADL (`Pending` gets a fresh deadline).
    pub gpadl: GpadlHold,
    /// The pages were (perhaps partly) granted into the client's window.
    pub granted: bool,
}

impl Start {
    /// Nothing sent to open the channel yet, beyond the GPADL as `gpadl` says.
    pub const fn unopened(gpadl: GpadlHold) -> Start {
        Start {
            close: Close::Nothing,
            gpadl,
            granted: false,
        }
    }

    /// OPENCHANNEL sent, its result not yet in: CLOSECHANNEL must wait for it.
    pub const fn awaiting_result() -> Start {
        Start {
            close: Close::AwaitingResult,
            gpadl: GpadlHold::Held,
            granted: false,
        }
    }

    /// The host opened the channel and its pages were (perhaps partly) granted to the client.
    pub const fn granted() -> Start {
        Start {
            close: Close::Owed,
            gpadl: GpadlHold::Held,
            granted: true,
        }
    }
}

impl Driver {
    /// Starts the teardown of `relid` (steps 1 and 2, then as far as it can go) if a client has
    /// it opening or open. A channel in teardown, or one no client holds, is left alone (R3,
    /// R8).
    pub(crate) fn begin_teardown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        reason: TeardownReason,
        now: u64,
    ) {
        let start = match self.channels.state(relid) {
            // GPADL_CREATED is still awaited before the GPADL can be torn down.
            ChanState::GpadlPending { .. } => Start::unopened(GpadlHold::Pending),
            ChanState::OpenPending { .. } => Start::awaiting_result(),
            ChanState::Open { .. } => Start::granted(),
            _ => return,
        };
        self.start_teardown(hv, k, relid, reason, start, now);
    }

    /// [`Driver::begin_teardown`] from an explicit host-side state, for an open that failed
    /// part way (a post or a grant failed, a reply timed out).
    pub(crate) fn start_teardown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        reason: TeardownReason,
        start: Start,
        now: u64,
    ) {
        let Some((ch, slot)) = self.channels.state(relid).bound() else {
            return;
        };
        self.stats.teardowns += 1;
        info!("teardown of {relid} ({reason:?})");
        // Step 1: from now on nothing is matched against the old generation.
        let generation = self.channels.generation(relid);
        self.channels.bump_generation(relid);
        // Sub-channels first (R7). The primary keeps its state meanwhile: a sub-channel whose
        // teardown ends here does not advance the primary's, which has not revoked yet.
        let mut from = RelId(1);
        while let Some(s) = self.channels.next_sub(relid, from) {
            self.begin_teardown(hv, k, s, TeardownReason::Primary, now);
            from = RelId(s.0 + 1);
        }
        let td = Teardown {
            reason,
            rescinded: reason == TeardownReason::Rescind,
            close: start.close,
            gpadl: start.gpadl,
            // GPADL_CREATED is awaited before the GPADL can be torn down.
            deadline: (start.gpadl == GpadlHold::Pending).then(|| self.deadline(now)),
        };
        self.channels
            .set_state(relid, ChanState::TearingDown { ch, td });
        // Step 2: revoke every ring page and every page of the channel's buffers; the client's
        // mappings are gone when this returns.
        let failed = self.pool.revoke(k, ch.pages, relid, &mut self.stats)
            + self.revoke_channel_buffers(k, relid);
        let tainted = self
            .channels
            .state(relid)
            .opened()
            .is_some_and(|o| o.window_tainted);
        let c = ch.client;
        if self.channels.slot(c, slot) == Some(Slot::Bound(relid)) {
            let status = if reason == TeardownReason::OpenFailed {
                self.stats.open_failures += 1;
                ChannelStatus::Failed
            } else {
                ChannelStatus::Gone
            };
            self.write_status(k, c, slot, generation, status);
            // A slot whose pages may still be mapped there is never used again.
            let retire = (failed > 0 && start.granted) || tainted;
            if retire {
                let id = self.clients.id(c);
                warn!("{relid}: window {slot} of {id} retired for good");
            }
            self.channels.release_slot(c, slot, relid, retire);
            let id = self.clients.id(c);
            self.notify_client(k, id);
        }
        self.advance_teardown(hv, k, relid, now);
    }

    /// Runs the teardown steps of `relid` that can run now (step 3 on), each once.
    pub(crate) fn advance_teardown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        now: u64,
    ) {
        let ChanState::TearingDown { ch, mut td } = self.channels.state(relid) else {
            return;
        };
        // Wait for the sub-channels' teardowns (R7).
        if self.channels.has_opened_subs(relid) {
            return;
        }
        // Step 3a: CLOSECHANNEL only for an open the host confirmed. While OPENCHANNEL_RESULT
        // is outstanding a host may ignore a CLOSECHANNEL and keep the channel (and the GPADL)
        // open, so the teardown waits for the result (its deadline is the reply timeout). A
        // rescinded channel is closed at once: the host is tearing it down itself.
        match td.close {
            Close::AwaitingResult if !td.rescinded => {
                if td.deadline.is_none() {
                    td.deadline = Some(self.deadline(now));
                    self.channels
                        .set_state(relid, ChanState::TearingDown { ch, td });
                }
                return;
            }
            Close::AwaitingResult => {
                self.post_close(hv, relid);
                td.close = Close::SentBeforeResult;
                td.deadline = None;
            }
            Close::Owed => {
                self.post_close(hv, relid);
                td.close = Close::Sent;
                td.deadline = None;
            }
            Close::Nothing | Close::SentBeforeResult | Close::Sent => {}
        }
        // Step 3b: the ring GPADL.
        let mut waiting = false;
        match td.gpadl {
            GpadlHold::Pending | GpadlHold::TeardownSent => waiting = true,
            GpadlHold::Held => {
                let msg = ChannelMessage::GpadlTeardown(GpadlTeardown {
                    child_relid: relid,
                    gpadl: ch.gpadl,
                });
                if post(hv, &mut self.stats, self.conn.msg_conn(), &msg).is_ok() {
                    td.gpadl = GpadlHold::TeardownSent;
                    td.deadline = Some(self.deadline(now));
                    waiting = true;
                } else {
                    // The host may still hold the GPADL and was not told: never reuse the pages.
                    td.gpadl = GpadlHold::Quarantined;
                }
            }
            GpadlHold::None | GpadlHold::Gone | GpadlHold::Quarantined => {}
        }
        self.channels
            .set_state(relid, ChanState::TearingDown { ch, td });
        // Step 3c: the buffers' GPADLs, after CLOSECHANNEL and before RELID_RELEASED; the
        // teardown ends only when the host let go of every one.
        if !self.advance_channel_buffers(hv, relid, now) || waiting {
            return;
        }
        self.finish_teardown(hv, k, relid, now);
    }

    /// CLOSECHANNEL. A lost one is counted by `post`; the GPADL teardown still follows.
    pub(crate) fn post_close<H: Hypervisor + ?Sized>(&mut self, hv: &mut H, relid: RelId) {
        let msg = ChannelMessage::CloseChannel(CloseChannel { child_relid: relid });
        let _ = post(hv, &mut self.stats, self.conn.msg_conn(), &msg);
    }

    /// Steps 4 and 5, then the relid is offered again (or free, if rescinded).
    fn finish_teardown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        now: u64,
    ) {
        let ChanState::TearingDown { ch, td } = self.channels.state(relid) else {
            return;
        };
        let Some(offer) = self.channels.offer_of(relid) else {
            return;
        };
        // Step 4. A teardown that ends still awaiting the open result gave up on it
        // (`give_up_open`): the relid stays blocked until the host answers.
        if td.rescinded {
            self.release_relid(hv, relid);
        } else if td.close == Close::AwaitingResult {
            self.channels
                .set_state(relid, ChanState::OpenUnresolved { gpadl: ch.gpadl });
        } else {
            self.channels.set_state(relid, ChanState::Offered);
        }
        // Step 5, the buffers' pages too.
        if td.gpadl == GpadlHold::Quarantined {
            self.pool.quarantine(ch.gpadl, ch.pages, &mut self.stats);
        } else {
            self.pool.zero_and_return(k, ch.pages, &mut self.stats);
        }
        let ring_quarantine = (td.gpadl == GpadlHold::Quarantined).then_some(ch.gpadl);
        self.finish_channel_buffers(k, relid, ring_quarantine);
        self.stats.teardowns_completed += 1;
        // A primary may be waiting for this sub-channel: every primary of the device, since an
        // implied rescind can leave an old primary in teardown beside a new offer of it.
        if offer.sub_index != 0 {
            for p in ChannelTable::relids() {
                let primary_of_device = self.channels.offer_of(p).is_some_and(|po| {
                    po.sub_index == 0 && po.class == offer.class && po.instance == offer.instance
                });
                if primary_of_device {
                    self.advance_teardown(hv, k, p, now);
                }
            }
        }
        self.check_unload(hv, k, now);
    }

    /// GPADL_TORNDOWN.
    pub(crate) fn on_gpadl_torndown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        gpadl: GpadlId,
        now: u64,
    ) {
        if let Some(relid) = self.channels.by_gpadl(gpadl) {
            match self.channels.state(relid) {
                ChanState::TearingDown { ch, mut td } if td.gpadl == GpadlHold::TeardownSent => {
                    td.gpadl = GpadlHold::Gone;
                    td.deadline = None;
                    self.channels
                        .set_state(relid, ChanState::TearingDown { ch, td });
                    self.advance_teardown(hv, k, relid, now);
                }
                _ => self.mismatched("GPADL_TORNDOWN for a GPADL not being torn down"),
            }
            return;
        }
        if self.on_buffer_gpadl_torndown(hv, k, gpadl, now) {
            return;
        }
        // A quarantined ring GPADL may keep its channel's buffer pages beside its own.
        let mut released = false;
        while self.pool.release(k, gpadl, &mut self.stats) {
            released = true;
        }
        if released {
            return;
        }
        self.stats.hostile += 1;
        self.stats.unknown_gpadl += 1;
        warn!("GPADL_TORNDOWN for unknown {gpadl}");
    }

    /// The host reply awaited by `relid` did not come in time.
    pub(crate) fn on_channel_timeout<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        now: u64,
    ) {
        let failed = TeardownReason::OpenFailed;
        match self.channels.state(relid) {
            ChanState::Open {
                ch,
                slot,
                signalled_at,
                retarget: Some(_),
            } => {
                warn!("{relid}: no MODIFYCHANNEL_RESPONSE");
                let state = ChanState::Open {
                    ch,
                    slot,
                    signalled_at,
                    retarget: None,
                };
                self.channels.set_state(relid, state);
            }
            ChanState::GpadlPending { .. } => {
                warn!("{relid}: open timed out");
                // The host may have created the GPADL without telling us.
                self.start_teardown(hv, k, relid, failed, Start::unopened(GpadlHold::Held), now);
            }
            ChanState::OpenPending { .. } => {
                warn!("{relid}: open timed out");
                self.start_teardown(hv, k, relid, failed, Start::awaiting_result(), now);
                // The result did not come in time: waiting longer would not change that.
                self.give_up_open(hv, k, relid, now);
            }
            ChanState::TearingDown { ch, mut td } => match (td.close, td.gpadl) {
                (Close::AwaitingResult, _) => self.give_up_open(hv, k, relid, now),
                (_, GpadlHold::Pending) => {
                    warn!("{relid}: no GPADL_CREATED during teardown");
                    td.gpadl = GpadlHold::Held;
                    td.deadline = None;
                    self.channels
                        .set_state(relid, ChanState::TearingDown { ch, td });
                    self.advance_teardown(hv, k, relid, now);
                }
                (_, GpadlHold::TeardownSent) => {
                    warn!("{relid}: no GPADL_TORNDOWN; pages quarantined");
                    td.gpadl = GpadlHold::Quarantined;
                    td.deadline = None;
                    self.channels
                        .set_state(relid, ChanState::TearingDown { ch, td });
                    self.advance_teardown(hv, k, relid, now);
                }
                _ => {
                    td.deadline = None;
                    self.channels
                        .set_state(relid, ChanState::TearingDown { ch, td });
                }
            },
            _ => {}
        }
    }

    /// OPENCHANNEL_RESULT never came for `relid` in teardown: the host may open the channel at
    /// any time and map the ring GPADL, so no CLOSECHANNEL (a host ignores it mid-open) and no
    /// GPADL_TEARDOWN; the pages stay quarantined under the GPADL and the relid is left
    /// unresolved until the late result or a rescind. The teardown ends here.
    fn give_up_open<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        now: u64,
    ) {
        let ChanState::TearingDown { ch, mut td } = self.channels.state(relid) else {
            return;
        };
        if td.close != Close::AwaitingResult {
            return;
        }
        warn!("{relid}: no OPENCHANNEL_RESULT; no CLOSECHANNEL, pages quarantined");
        td.gpadl = GpadlHold::Quarantined;
        td.deadline = None;
        self.channels
            .set_state(relid, ChanState::TearingDown { ch, td });
        self.stats.unresolved_opens += 1;
        self.finish_teardown(hv, k, relid, now);
    }
}
