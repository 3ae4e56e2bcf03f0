//! The driver PD of the model: the channel table, the one teardown path shared by rescind, client
//! close, client fault, open failure and unload (docs/lifetime.md), what a failed kernel operation
//! leaves behind (a tainted page, quarantined for good), event dispatch, and the deliberately
//! broken variants.

use crate::config::{Config, Variant};
use crate::state::{
    Conn, DrvChan, GuestMsg, Handle, HostGpadl, HostMsg, NONE, PageState, Phase, State, Violation,
};

/// Why a channel is torn down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The host rescinded the offer.
    Rescind,
    /// The owning client closed it.
    Close,
    /// The owning client faulted.
    Fault,
    /// The host refused OPENCHANNEL.
    OpenFailed,
    /// The host opened the channel but granting the ring page to the client failed.
    GrantFailed,
    /// The bus is being unloaded.
    Unload,
    /// The host did not answer GPADL_HEADER or OPENCHANNEL in time.
    Timeout,
}

/// Wait rank given to waits begun by the current step; ranks are made dense after each step.
const NEW_RANK: u8 = u8::MAX - 1;

/// Takes the event flags and delivers each to the channel's owner if the channel is open;
/// events for any other state are dropped (R2).
pub fn deliver_events(s: &mut State) {
    for r in 0..s.host.flags.len() {
        let Some(flag_inc) = s.host.flags[r].take() else {
            continue;
        };
        let ch = s.drv[r];
        if ch.phase != Phase::Open {
            continue; // dropped and counted by the implementation
        }
        // Ground truth, independent of the driver's table: the client holds this incarnation
        // of the channel when it has the ring page mapped and that page carries the GPADL the
        // host made for this incarnation.
        let c = usize::from(ch.client);
        let p = ch.page;
        let holds = p != NONE
            && s.kernel.maps[c] & (1 << p) != 0
            && s.host.gpadls[usize::from(p)]
                == Some(HostGpadl {
                    relid: r as u8,
                    inc: flag_inc,
                });
        if !holds {
            s.violate(Violation::StrayEvent);
        }
    }
}

/// Handles one host message (after taking the event flags first, unless the variant skips it).
pub fn on_message(cfg: &Config, s: &mut State) {
    if cfg.variant != Variant::EventsNotTakenBeforeMessages {
        deliver_events(s);
    }
    let Some(msg) = s.to_driver.pop() else {
        return;
    };
    let after_unload = matches!(s.conn, Conn::UnloadSent | Conn::Unloaded);
    // Ghost: the driver has now seen the host confirm the open, or rescind the relid (once
    // UNLOAD is sent nothing more can be acted on).
    if let HostMsg::OpenResult { relid, ok: true } | HostMsg::Rescind { relid } = msg
        && !after_unload
    {
        s.confirmed |= 1 << relid;
    }
    match msg {
        // Once UNLOAD is sent the host resets everything: offers, rescinds and late open
        // results racing with it need no answer.
        HostMsg::Offer { .. } | HostMsg::Rescind { .. } | HostMsg::OpenResult { .. }
            if after_unload => {}
        HostMsg::Offer { relid, inc } => {
            let ch = &mut s.drv[usize::from(relid)];
            if ch.phase == Phase::Absent {
                *ch = DrvChan {
                    phase: Phase::Offered,
                    inc,
                    ..DrvChan::default()
                };
            }
        }
        HostMsg::Rescind { relid } => on_rescind(cfg, s, relid),
        HostMsg::GpadlCreated { relid, page } => {
            let ch = &mut s.drv[usize::from(relid)];
            if ch.phase == Phase::GpadlPending && ch.page == page {
                ch.phase = Phase::OpenPending;
                ch.wait_rank = NEW_RANK;
                let inc = ch.inc;
                s.send(GuestMsg::OpenChannel { relid, inc, page });
            } else if ch.phase == Phase::Teardown && ch.await_created && ch.page == page {
                // Teardown began before the GPADL was confirmed: now it can be torn down.
                ch.await_created = false;
                ch.wait_rank = NEW_RANK;
                let inc = ch.inc;
                s.send(GuestMsg::GpadlTeardown { relid, inc, page });
            }
        }
        HostMsg::OpenResult { relid, ok } => on_open_result(cfg, s, relid, ok),
        HostMsg::TornDown { page } => {
            let found = (0..s.drv.len()).find(|&r| {
                s.drv[r].phase == Phase::Teardown
                    && !s.drv[r].await_created
                    && !s.drv[r].await_open
                    && s.drv[r].page == page
            });
            if let Some(r) = found {
                complete(cfg, s, r as u8, true);
            } else if s.kernel.pages[usize::from(page)] == PageState::Quarantined {
                // A late confirmation: the host no longer uses the page, so it may be reused
                // (unless a kernel operation on it failed).
                return_to_pool(cfg, s, page);
            }
        }
        HostMsg::UnloadResponse => {
            if s.conn == Conn::UnloadSent {
                s.conn = Conn::Unloaded;
                // The host reset the bus: every offer is gone (all teardowns ended before
                // UNLOAD was sent, so only offered channels remain).
                for ch in s.drv.iter_mut() {
                    if ch.phase == Phase::Offered {
                        *ch = DrvChan::default();
                    }
                }
            }
        }
    }
    finish_step(s);
}

/// OPENCHANNEL_RESULT: the open succeeds (the ring page is granted) or fails into the teardown
/// path; a teardown or an unresolved relid that waited for it can now close (if the host
/// opened the channel) and tear the GPADL down.
fn on_open_result(cfg: &Config, s: &mut State, relid: u8, ok: bool) {
    let r = usize::from(relid);
    let ch = s.drv[r];
    match ch.phase {
        Phase::OpenPending if ok => {
            // Grant: copy the page capability and map it into the client's window.
            let (c, p) = (usize::from(ch.client), ch.page);
            if s.kernel.fails(p) {
                teardown(cfg, s, relid, Cause::GrantFailed);
            } else {
                s.kernel.maps[c] |= 1 << p;
                s.kernel.dirty[usize::from(p)] = true;
                s.drv[r].phase = Phase::Open;
            }
        }
        Phase::OpenPending => teardown(cfg, s, relid, Cause::OpenFailed),
        Phase::Teardown if ch.await_open => {
            close_and_tear_down(s, relid, ok);
            let ch = &mut s.drv[r];
            ch.await_open = false;
            ch.wait_rank = NEW_RANK;
        }
        Phase::Offered if ch.unresolved => {
            // The late answer resolves the relid; its pages stay quarantined until the
            // GPADL_TORNDOWN this teardown asks for.
            close_and_tear_down(s, relid, ok);
            let ch = &mut s.drv[r];
            ch.unresolved = false;
            ch.page = NONE;
        }
        _ => {}
    }
}

/// CLOSECHANNEL if the host opened the channel, then GPADL_TEARDOWN of its ring GPADL.
fn close_and_tear_down(s: &mut State, relid: u8, close: bool) {
    let ch = s.drv[usize::from(relid)];
    if close {
        s.send(GuestMsg::CloseChannel {
            relid,
            inc: ch.inc,
            confirmed: false,
        });
    }
    s.send(GuestMsg::GpadlTeardown {
        relid,
        inc: ch.inc,
        page: ch.page,
    });
}

fn on_rescind(cfg: &Config, s: &mut State, relid: u8) {
    let r = usize::from(relid);
    let ch = s.drv[r];
    match ch.phase {
        Phase::Absent => {} // unknown relid: counted as hostile by the implementation
        Phase::Offered => {
            if ch.unresolved {
                // The host closed its side: the unanswered open's GPADL is torn down before
                // the release (its pages stay quarantined until GPADL_TORNDOWN).
                close_and_tear_down(s, relid, true);
            }
            s.send(GuestMsg::RelidReleased { relid, inc: ch.inc });
            s.drv[r] = DrvChan::default();
        }
        Phase::GpadlPending | Phase::OpenPending | Phase::Open => {
            s.drv[r].rescinded = true;
            teardown(cfg, s, relid, Cause::Rescind);
        }
        Phase::Teardown => {
            if cfg.variant == Variant::ReleaseTwice {
                s.send(GuestMsg::RelidReleased { relid, inc: ch.inc });
            }
            s.drv[r].rescinded = true;
            if ch.await_open {
                // After a rescind the host has closed its side: CLOSECHANNEL at once, then
                // the GPADL, without waiting for OPENCHANNEL_RESULT.
                close_and_tear_down(s, relid, true);
                let ch = &mut s.drv[r];
                ch.await_open = false;
                ch.wait_rank = NEW_RANK;
            }
        }
    }
}

/// Steps 1-3 of the lifetime rule for a live channel: bump the generation, revoke the client's
/// capabilities, CLOSECHANNEL if the host confirmed the open (or rescinded the relid),
/// GPADL_TEARDOWN, and wait. While OPENCHANNEL_RESULT is awaited (and no rescind), neither is
/// sent: the teardown waits for the result first.
pub fn teardown(cfg: &Config, s: &mut State, relid: u8, cause: Cause) {
    let r = usize::from(relid);
    let ch = s.drv[r];
    debug_assert!(ch.phase.is_live());
    // 1. Generation bump: every handle naming the channel is stale from now on.
    for client in s.clients.iter_mut() {
        if client.handles[r] == Handle::Current {
            client.handles[r] = Handle::Stale;
        }
    }
    let p = ch.page;
    // 2. Revoke: every capability derived from the ring page, and every mapping, is deleted.
    if cfg.variant != Variant::RevokeAfterTeardown {
        revoke(s, p);
    }
    if cfg.variant == Variant::ReuseBeforeTorndown {
        return_to_pool(cfg, s, p);
    }
    // 3. Close what the host opened, then tear the GPADL down.
    let unanswered_open =
        ch.phase == Phase::OpenPending && !matches!(cause, Cause::OpenFailed | Cause::GrantFailed);
    let close = ch.phase == Phase::Open
        || cause == Cause::GrantFailed
        || (unanswered_open
            && (cause == Cause::Rescind || cfg.variant == Variant::CloseBeforeOpenResult));
    if close {
        s.send(GuestMsg::CloseChannel {
            relid,
            inc: ch.inc,
            confirmed: false,
        });
    }
    let await_open = unanswered_open && !close;
    // Wait for GPADL_CREATED first, unless its wait just timed out (then the host may hold the
    // GPADL without having said so: tear it down anyway).
    let await_created = ch.phase == Phase::GpadlPending && cause != Cause::Timeout;
    if !await_created && !await_open {
        s.send(GuestMsg::GpadlTeardown {
            relid,
            inc: ch.inc,
            page: p,
        });
    }
    let ch = &mut s.drv[r];
    ch.phase = Phase::Teardown;
    ch.await_created = await_created;
    ch.await_open = await_open;
    // The teardown's wait starts now (also a wait for GPADL_CREATED: its timer is rearmed).
    ch.wait_rank = NEW_RANK;
    if await_open && cause == Cause::Timeout {
        // OPENCHANNEL_RESULT is what timed out: there is nothing left to wait for.
        unresolve(s, relid);
    }
}

/// The wait for OPENCHANNEL_RESULT timed out. Nothing may be sent about the open (no
/// CLOSECHANNEL for an open the host never confirmed, no GPADL_TEARDOWN under a channel it may
/// have opened): the pages are quarantined, the channel's entry is freed and the relid stays
/// unopenable until the late result or a rescind.
fn unresolve(s: &mut State, relid: u8) {
    let r = usize::from(relid);
    let ch = s.drv[r];
    debug_assert!(!ch.rescinded, "a rescind ends the wait for the open result");
    let p = ch.page;
    if s.kernel.pages[usize::from(p)] == (PageState::InUse { relid }) {
        s.kernel.pages[usize::from(p)] = PageState::Quarantined;
    }
    s.drv[r] = DrvChan {
        phase: Phase::Offered,
        inc: ch.inc,
        page: p,
        unresolved: true,
        ..DrvChan::default()
    };
}

/// Steps 4-5: RELID_RELEASED if rescinded, then zero the page and return it to the pool when the
/// teardown was confirmed, or quarantine it when the wait timed out.
fn complete(cfg: &Config, s: &mut State, relid: u8, confirmed: bool) {
    let r = usize::from(relid);
    let ch = s.drv[r];
    if ch.rescinded {
        s.send(GuestMsg::RelidReleased { relid, inc: ch.inc });
        s.drv[r] = DrvChan::default();
    } else {
        s.drv[r] = DrvChan {
            phase: Phase::Offered,
            inc: ch.inc,
            ..DrvChan::default()
        };
    }
    let p = ch.page;
    if cfg.variant == Variant::RevokeAfterTeardown {
        revoke(s, p);
    }
    // Touch the page only if it is still this channel's (the reuse variant gave it away).
    if s.kernel.pages[usize::from(p)] == (PageState::InUse { relid }) {
        if confirmed {
            return_to_pool(cfg, s, p);
        } else {
            s.kernel.pages[usize::from(p)] = PageState::Quarantined;
        }
    }
}

/// Revokes the page's capabilities. If the kernel fails, the client may keep its capability and
/// mapping: the page is tainted, quarantined for good.
fn revoke(s: &mut State, page: u8) {
    if s.kernel.fails(page) {
        s.kernel.tainted |= 1 << page;
        return;
    }
    for m in s.kernel.maps.iter_mut() {
        *m &= !(1 << page);
    }
}

/// Zeroes the page and returns it to the pool; a tainted page, or one whose zeroing fails, is
/// quarantined for good instead.
fn return_to_pool(cfg: &Config, s: &mut State, page: u8) {
    let p = usize::from(page);
    if s.kernel.is_tainted(page) && cfg.variant != Variant::ReuseAfterFailedRevoke {
        s.kernel.pages[p] = PageState::Quarantined;
        return;
    }
    if s.kernel.fails(page) {
        s.kernel.tainted |= 1 << page;
        s.kernel.pages[p] = PageState::Quarantined;
        return;
    }
    s.kernel.dirty[p] = false; // zeroed
    s.kernel.pages[p] = PageState::Pool;
}

/// The oldest waits for a host reply time out (a slow host and a silent one look the same).
/// An open whose GPADL_CREATED is late fails into the teardown path, treating the GPADL as
/// possibly created; an open whose OPENCHANNEL_RESULT is late, or a teardown waiting for it,
/// leaves the relid unresolved with its pages quarantined. During teardown, a wait for
/// GPADL_CREATED ends in GPADL_TEARDOWN anyway (the host may hold the GPADL without having
/// confirmed it, so releasing the relid now would leave a live GPADL behind) and a new wait; a
/// wait for GPADL_TORNDOWN ends the teardown with the pages quarantined, never reused.
pub fn on_timeout(cfg: &Config, s: &mut State) {
    let expired: Vec<u8> = (0..s.drv.len())
        .filter(|&r| s.drv[r].phase.is_waiting() && s.drv[r].wait_rank == 0)
        .map(|r| r as u8)
        .collect();
    for relid in expired {
        let ch = s.drv[usize::from(relid)];
        if ch.phase.is_live() {
            teardown(cfg, s, relid, Cause::Timeout);
        } else if ch.await_created {
            s.send(GuestMsg::GpadlTeardown {
                relid,
                inc: ch.inc,
                page: ch.page,
            });
            let ch = &mut s.drv[usize::from(relid)];
            ch.await_created = false;
            ch.wait_rank = NEW_RANK;
        } else if ch.await_open {
            unresolve(s, relid);
        } else {
            complete(cfg, s, relid, false);
        }
    }
    finish_step(s);
}

/// A client asks to open `relid`. Refused (nothing changes) unless the offer is free, the bus is
/// connected and the pool has a page.
pub fn on_open(cfg: &Config, s: &mut State, client: u8, relid: u8) {
    let r = usize::from(relid);
    let ch = s.drv[r];
    if s.conn != Conn::Connected || ch.phase != Phase::Offered || ch.unresolved {
        return;
    }
    // Lowest free page of the configured pool.
    let Some(p) = s.kernel.pages[..cfg.pages]
        .iter()
        .position(|p| *p == PageState::Pool)
    else {
        return; // pool empty
    };
    s.kernel.pages[p] = PageState::InUse { relid };
    s.send(GuestMsg::GpadlHeader {
        relid,
        inc: ch.inc,
        page: p as u8,
    });
    s.drv[r] = DrvChan {
        phase: Phase::GpadlPending,
        client,
        page: p as u8,
        wait_rank: NEW_RANK,
        ..ch
    };
    s.clients[usize::from(client)].handles[r] = Handle::Current;
    finish_step(s);
}

/// A client closes its handle to `relid`; a stale handle is refused.
pub fn on_close(cfg: &Config, s: &mut State, client: u8, relid: u8) {
    let r = usize::from(relid);
    let handle = s.clients[usize::from(client)].handles[r];
    s.clients[usize::from(client)].handles[r] = Handle::None;
    if handle == Handle::Current && s.drv[r].client == client && s.drv[r].phase.is_live() {
        teardown(cfg, s, relid, Cause::Close);
    }
    finish_step(s);
}

/// A client faults: all its channels go through the teardown path.
pub fn on_fault(cfg: &Config, s: &mut State, client: u8) {
    let c = usize::from(client);
    s.clients[c].faulted = true;
    s.clients[c].handles = Default::default();
    for r in 0..s.drv.len() {
        if s.drv[r].client == client && s.drv[r].phase.is_live() {
            teardown(cfg, s, r as u8, Cause::Fault);
        }
    }
    finish_step(s);
}

/// The bus is unloaded: every live channel is torn down, then UNLOAD is sent.
pub fn on_unload(cfg: &Config, s: &mut State) {
    s.conn = Conn::Unloading;
    for r in 0..s.drv.len() {
        if s.drv[r].phase.is_live() {
            teardown(cfg, s, r as u8, Cause::Unload);
        }
    }
    finish_step(s);
}

/// End of every driver step: UNLOAD once unloading and every channel is idle; dense wait ranks.
pub fn finish_step(s: &mut State) {
    if s.conn == Conn::Unloading && s.drv.iter().all(|c| c.phase.is_idle()) {
        s.send(GuestMsg::Unload);
        s.conn = Conn::UnloadSent;
    }
    let mut ranks: Vec<u8> = s
        .drv
        .iter()
        .filter(|c| c.phase.is_waiting())
        .map(|c| c.wait_rank)
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    for ch in s.drv.iter_mut() {
        if !ch.phase.is_waiting() {
            ch.wait_rank = 0;
            continue;
        }
        ch.wait_rank = ranks.iter().position(|&r| r == ch.wait_rank).unwrap_or(0) as u8;
    }
}
