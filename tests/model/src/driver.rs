//! The driver PD of the model: the channel table, the one teardown path shared by rescind, client
//! close, client fault, open failure and unload (DESIGN.md §3), event dispatch, and the
//! deliberately broken variants.

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
    match msg {
        // Once UNLOAD is sent the host resets everything: offers and rescinds racing with it
        // need no answer.
        HostMsg::Offer { .. } | HostMsg::Rescind { .. } if after_unload => {}
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
        HostMsg::OpenResult { relid, ok } => {
            let ch = s.drv[usize::from(relid)];
            if ch.phase == Phase::OpenPending {
                if ok {
                    // Grant: copy the page capability and map it into the client's window.
                    let (c, p) = (usize::from(ch.client), ch.page);
                    s.kernel.maps[c] |= 1 << p;
                    s.kernel.dirty[usize::from(p)] = true;
                    s.drv[usize::from(relid)].phase = Phase::Open;
                } else {
                    teardown(cfg, s, relid, Cause::OpenFailed);
                }
            }
        }
        HostMsg::TornDown { page } => {
            let found = (0..s.drv.len()).find(|&r| {
                s.drv[r].phase == Phase::Teardown
                    && !s.drv[r].await_created
                    && s.drv[r].page == page
            });
            if let Some(r) = found {
                complete(cfg, s, r as u8, true);
            } else if s.kernel.pages[usize::from(page)] == PageState::Quarantined {
                // A late confirmation: the host no longer uses the page, so it may be reused.
                return_to_pool(s, page);
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

fn on_rescind(cfg: &Config, s: &mut State, relid: u8) {
    let r = usize::from(relid);
    let ch = s.drv[r];
    match ch.phase {
        Phase::Absent => {} // unknown relid: counted as hostile by the implementation
        Phase::Offered => {
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
        }
    }
}

/// Steps 1-3 of the lifetime rule for a live channel: bump the generation, revoke the client's
/// capabilities, CLOSECHANNEL if an open was requested, GPADL_TEARDOWN, and wait.
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
        return_to_pool(s, p);
    }
    // 3. Close (an OPENCHANNEL was sent and not refused), then tear the GPADL down.
    if matches!(ch.phase, Phase::OpenPending | Phase::Open) && cause != Cause::OpenFailed {
        s.send(GuestMsg::CloseChannel { relid, inc: ch.inc });
    }
    // Wait for GPADL_CREATED first, unless its wait just timed out (then the host may hold the
    // GPADL without having said so: tear it down anyway).
    let await_created = ch.phase == Phase::GpadlPending && cause != Cause::Timeout;
    if !await_created {
        s.send(GuestMsg::GpadlTeardown {
            relid,
            inc: ch.inc,
            page: p,
        });
    }
    let ch = &mut s.drv[r];
    ch.phase = Phase::Teardown;
    ch.await_created = await_created;
    // The teardown's wait starts now (also a wait for GPADL_CREATED: its timer is rearmed).
    ch.wait_rank = NEW_RANK;
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
            return_to_pool(s, p);
        } else {
            s.kernel.pages[usize::from(p)] = PageState::Quarantined;
        }
    }
}

fn revoke(s: &mut State, page: u8) {
    for m in s.kernel.maps.iter_mut() {
        *m &= !(1 << page);
    }
}

fn return_to_pool(s: &mut State, page: u8) {
    let p = usize::from(page);
    s.kernel.dirty[p] = false; // zeroed
    s.kernel.pages[p] = PageState::Pool;
}

/// The oldest waits for a host reply time out (a slow host and a silent one look the same).
/// An open whose GPADL_CREATED or OPENCHANNEL_RESULT is late fails into the teardown path,
/// treating the GPADL as possibly created. During teardown, a wait for GPADL_CREATED ends in
/// GPADL_TEARDOWN anyway (the host may hold the GPADL without having confirmed it, so releasing
/// the relid now would leave a live GPADL behind) and a new wait; a wait for GPADL_TORNDOWN ends
/// the teardown with the pages quarantined, never reused.
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
    if s.conn != Conn::Connected || ch.phase != Phase::Offered {
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
