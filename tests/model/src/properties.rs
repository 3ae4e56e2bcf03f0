//! The properties checked in every reachable state: the invariants of
//! docs/lifetime.md#what-is-checked, the protocol checks the host makes on every message, R2, the
//! end condition, and "sometimes" properties that prove the interesting situations are reached at
//! all (no vacuous pass).

use stateright::Property;

use crate::model::LifetimeModel;
use crate::state::{
    Conn, Handle, HostGpadl, HostPhase, MAX_PAGES, PageState, Phase, State, Violation,
};

/// Property names, so tests and reports can refer to them.
pub mod names {
    /// No client holds a capability or mapping of a page in the free pool.
    pub const POOL_UNMAPPED: &str = "a pool page is mapped by no client";
    /// No GPADL the host may use covers a page in the free pool.
    pub const POOL_NO_GPADL: &str = "a pool page is covered by no live GPADL";
    /// Pool pages are zero.
    pub const POOL_ZERO: &str = "a pool page is zero";
    /// A client reaches only pages of channels it opened and still holds.
    pub const CLIENT_REACH: &str = "a client reaches only pages of channels it holds";
    /// GPADL_HEADER never names a page under a live GPADL.
    pub const NO_REUSE: &str = "a page is reused only after revocation and GPADL teardown";
    /// Each GPADL is torn down at most once.
    pub const TEARDOWN_ONCE: &str = "each GPADL is torn down at most once";
    /// RELID_RELEASED only for a rescinded, unreleased relid.
    pub const RELEASE_ONCE: &str = "at most one RELID_RELEASED per rescind";
    /// No message names a released relid.
    pub const NO_RELEASED_RELID: &str = "no message names a released relid";
    /// No message names a torn-down GPADL.
    pub const NO_TORN_GPADL: &str = "no message names a torn-down GPADL";
    /// Events reach only the current holder of the channel (R2).
    pub const NO_STRAY_EVENT: &str = "events reach only the channel's current holder (R2)";
    /// CLOSECHANNEL before GPADL_TEARDOWN.
    pub const CLOSE_BEFORE_TEARDOWN: &str = "a GPADL is torn down only after its channel is closed";
    /// GPADLs torn down before RELID_RELEASED.
    pub const TEARDOWN_BEFORE_RELEASE: &str = "a relid is released only after its GPADLs";
    /// Nothing after UNLOAD; nothing the driver knew to be open is still open at UNLOAD.
    pub const UNLOAD_LAST: &str = "UNLOAD comes last, after every channel is closed";
    /// A current handle names a live channel of that client (R1).
    pub const HANDLES_AGREE: &str = "a current handle names a live channel of its client (R1)";
    /// No page is granted to a second client (or channel) while a capability to it may exist.
    pub const SINGLE_HOLDER: &str =
        "a page is granted to no second client while a capability to it may still exist";
    /// A page whose revoke or zeroing failed is quarantined for good.
    pub const TAINTED_KEPT: &str =
        "a page whose revoke or zeroing failed is never back in the pool or granted again";
    /// CLOSECHANNEL only after the host confirmed the open, or after a rescind.
    pub const CLOSE_CONFIRMED: &str =
        "CLOSECHANNEL is sent only for an open the host confirmed, or after a rescind";
    /// Queue bounds were large enough.
    pub const BOUNDS: &str = "queues stay within the model's bounds";
    /// Every run that ends, ends unloaded and settled: no deadlock.
    pub const NO_DEADLOCK: &str = "every run that ends, ends unloaded and settled (no deadlock)";
}

fn ok(s: &State, v: Violation) -> bool {
    !s.has(v)
}

/// No client maps a pool page.
pub fn pool_unmapped(_: &LifetimeModel, s: &State) -> bool {
    (0..MAX_PAGES).all(|p| {
        s.kernel.pages[p] != PageState::Pool || s.kernel.maps.iter().all(|m| m & (1 << p) == 0)
    })
}

/// No live host GPADL covers a pool page.
pub fn pool_no_gpadl(_: &LifetimeModel, s: &State) -> bool {
    (0..MAX_PAGES).all(|p| s.kernel.pages[p] != PageState::Pool || s.host.gpadls[p].is_none())
}

/// Pool pages were zeroed.
pub fn pool_zero(_: &LifetimeModel, s: &State) -> bool {
    (0..MAX_PAGES).all(|p| s.kernel.pages[p] != PageState::Pool || !s.kernel.dirty[p])
}

/// Every page a client maps is the ring page of an open channel that client owns, carrying the
/// GPADL the host made for that channel's current incarnation, or a page whose revoke failed
/// (which [`tainted_kept`] and [`single_holder`] keep away from everyone else).
pub fn client_reach(m: &LifetimeModel, s: &State) -> bool {
    (0..m.cfg.clients).all(|c| {
        (0..MAX_PAGES).all(|p| {
            if s.kernel.maps[c] & (1 << p) == 0 || s.kernel.is_tainted(p as u8) {
                return true;
            }
            let PageState::InUse { relid } = s.kernel.pages[p] else {
                return false;
            };
            let ch = s.drv[usize::from(relid)];
            ch.phase == Phase::Open
                && usize::from(ch.client) == c
                && !s.clients[c].faulted
                && s.host.gpadls[p] == Some(HostGpadl { relid, inc: ch.inc })
        })
    })
}

/// A page some client may still map is mapped by no other client, and is the ring page of no
/// channel but the one that client held.
pub fn single_holder(m: &LifetimeModel, s: &State) -> bool {
    (0..MAX_PAGES).all(|p| {
        let holders: Vec<usize> = (0..m.cfg.clients)
            .filter(|&c| s.kernel.maps[c] & (1 << p) != 0)
            .collect();
        match (holders.as_slice(), s.kernel.pages[p]) {
            ([], _) => true,
            ([c], PageState::InUse { relid }) => {
                usize::from(s.drv[usize::from(relid)].client) == *c
            }
            ([_], _) => true, // pool: `pool_unmapped`; quarantined: nobody else can get it
            _ => false,
        }
    })
}

/// A tainted page is quarantined, or still the ring page of the channel whose teardown found
/// it tainted: never in the pool, never the page of a new open.
pub fn tainted_kept(_: &LifetimeModel, s: &State) -> bool {
    (0..MAX_PAGES).all(|p| {
        if !s.kernel.is_tainted(p as u8) {
            return true;
        }
        match s.kernel.pages[p] {
            PageState::Pool => false,
            PageState::Quarantined => true,
            PageState::InUse { relid } => {
                let ch = s.drv[usize::from(relid)];
                ch.phase == Phase::Teardown && usize::from(ch.page) == p
            }
        }
    })
}

/// Current handles agree with the driver's table.
pub fn handles_agree(m: &LifetimeModel, s: &State) -> bool {
    (0..m.cfg.clients).all(|c| {
        (0..m.cfg.channels).all(|r| {
            s.clients[c].handles[r] != Handle::Current
                || (usize::from(s.drv[r].client) == c && s.drv[r].phase.is_live())
        })
    })
}

/// Nothing is owed: no rescinded relid waits for its release, no message or event is in
/// flight, no channel is half open or half torn down, no unload is half done, and every GPADL
/// the host still has belongs to an open channel or covers a quarantined page (whose teardown
/// was never confirmed).
pub fn settled(s: &State) -> bool {
    let no_owed_release =
        s.host.unloaded || s.host.chans.iter().all(|c| c.phase != HostPhase::Rescinded);
    let idle = s
        .drv
        .iter()
        .all(|c| matches!(c.phase, Phase::Absent | Phase::Offered | Phase::Open));
    let gpadls_in_use = (0..MAX_PAGES).all(|p| match s.host.gpadls[p] {
        None => true,
        Some(g) => {
            let ch = s.drv[usize::from(g.relid)];
            s.kernel.pages[p] == PageState::Quarantined
                || (s.kernel.pages[p] == (PageState::InUse { relid: g.relid })
                    && ch.phase == Phase::Open
                    && ch.inc == g.inc)
        }
    });
    no_owed_release
        && idle
        && gpadls_in_use
        && s.to_driver.is_empty()
        && s.to_host.is_empty()
        && s.host.flags.iter().all(Option::is_none)
        && matches!(s.conn, Conn::Connected | Conn::Unloaded)
}

/// Every property, in a fixed order.
pub fn all() -> Vec<Property<LifetimeModel>> {
    use names::*;
    vec![
        Property::always(POOL_UNMAPPED, pool_unmapped),
        Property::always(POOL_NO_GPADL, pool_no_gpadl),
        Property::always(POOL_ZERO, pool_zero),
        Property::always(CLIENT_REACH, client_reach),
        Property::always(SINGLE_HOLDER, single_holder),
        Property::always(TAINTED_KEPT, tainted_kept),
        Property::always(CLOSE_CONFIRMED, |_, s: &State| {
            ok(s, Violation::CloseUnconfirmed)
        }),
        Property::always(NO_REUSE, |_, s: &State| {
            ok(s, Violation::PageReusedUnderLiveGpadl)
        }),
        Property::always(TEARDOWN_ONCE, |_, s: &State| {
            ok(s, Violation::GpadlTornDownTwice)
        }),
        Property::always(RELEASE_ONCE, |_, s: &State| {
            ok(s, Violation::ReleaseWithoutRescind)
        }),
        Property::always(NO_RELEASED_RELID, |_, s: &State| {
            ok(s, Violation::NamesReleasedRelid)
        }),
        Property::always(NO_TORN_GPADL, |_, s: &State| {
            ok(s, Violation::NamesTornDownGpadl)
        }),
        Property::always(NO_STRAY_EVENT, |_, s: &State| ok(s, Violation::StrayEvent)),
        Property::always(CLOSE_BEFORE_TEARDOWN, |_, s: &State| {
            ok(s, Violation::TeardownWhileOpen)
        }),
        Property::always(TEARDOWN_BEFORE_RELEASE, |_, s: &State| {
            ok(s, Violation::ReleaseWithLiveGpadl)
        }),
        Property::always(UNLOAD_LAST, |_, s: &State| {
            ok(s, Violation::MessageAfterUnload) && ok(s, Violation::UnloadWithOpenChannel)
        }),
        Property::always(HANDLES_AGREE, handles_agree),
        Property::always(BOUNDS, |_, s: &State| ok(s, Violation::QueueOverflow)),
        // stateright flags a path that ends (no successor) without the condition ever holding on
        // it; an end state is absorbing, so this is exactly "no deadlock".
        Property::eventually(NO_DEADLOCK, |m: &LifetimeModel, s: &State| {
            s.violations != 0
                || ((m.is_final(s) || (!m.cfg.unload && settled(s) && m.successors(s).is_empty()))
                    && settled(s))
        }),
        // Coverage: each must be reached, or the model is not exercising the lifetime rule.
        Property::sometimes("sometimes: a channel is open", |_, s: &State| {
            s.drv.iter().any(|c| c.phase == Phase::Open)
        }),
        Property::sometimes("sometimes: both clients hold a channel", |_, s: &State| {
            s.kernel.maps[0] != 0 && s.kernel.maps[1] != 0
        }),
        Property::sometimes("sometimes: a rescind interrupts an open", |_, s: &State| {
            s.drv
                .iter()
                .any(|c| c.phase == Phase::Teardown && c.rescinded)
                && s.to_host
                    .iter()
                    .all(|m| !matches!(m, crate::state::GuestMsg::CloseChannel { .. }))
        }),
        Property::sometimes(
            "sometimes: a re-offered relid is open again",
            |_, s: &State| s.drv.iter().any(|c| c.phase == Phase::Open && c.inc > 0),
        ),
        Property::sometimes("sometimes: a page is quarantined", |_, s: &State| {
            s.kernel.pages.contains(&PageState::Quarantined)
        }),
        Property::sometimes(
            "sometimes: the pool is empty while a relid is free",
            |m: &LifetimeModel, s: &State| {
                s.kernel.pages[..m.cfg.pages]
                    .iter()
                    .all(|p| *p != PageState::Pool)
                    && s.drv.iter().any(|c| c.phase == Phase::Offered)
            },
        ),
        Property::sometimes("sometimes: the bus is unloaded", |_, s: &State| {
            s.conn == Conn::Unloaded
        }),
        Property::sometimes(
            "sometimes: a client keeps a page whose revoke failed",
            |_, s: &State| {
                (0..MAX_PAGES as u8).any(|p| {
                    s.kernel.is_tainted(p) && s.kernel.maps.iter().any(|m| m & (1 << p) != 0)
                })
            },
        ),
        Property::sometimes(
            "sometimes: a teardown waits for the open result",
            |_, s: &State| {
                s.drv
                    .iter()
                    .any(|c| c.phase == Phase::Teardown && c.await_open)
            },
        ),
        Property::sometimes("sometimes: a relid is left unresolved", |_, s: &State| {
            s.drv.iter().any(|c| c.unresolved)
        }),
    ]
}
