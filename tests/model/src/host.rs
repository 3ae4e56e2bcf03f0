//! The host side of the model: offers, rescinds, event signals, and how the host answers (or does
//! not answer) each guest message, checking every message as a strict host would.

use crate::config::Config;
use crate::state::{GuestMsg, HostGpadl, HostMsg, HostPhase, State, Violation};

/// How the host treats the message at the head of the driver→host queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reply {
    /// Process it and send the normal answer (if the message has one).
    Answer,
    /// Refuse an OPENCHANNEL (non-zero status).
    Refuse,
    /// Process it but send no answer (allowed for a rescinded relid).
    Silent,
}

/// Whether `(relid, inc)` names an incarnation the host has released (or never offered).
fn released(s: &State, relid: u8, inc: u8) -> bool {
    let ch = &s.host.chans[usize::from(relid)];
    match ch.inc() {
        None => true,
        Some(cur) => inc != cur || ch.phase == HostPhase::Absent,
    }
}

/// Whether `(relid, inc)` is the current, not rescinded offer.
fn offered(s: &State, relid: u8, inc: u8) -> bool {
    let ch = &s.host.chans[usize::from(relid)];
    ch.phase == HostPhase::Offered && ch.inc() == Some(inc)
}

/// The replies the host may choose for the message at the head of the queue.
pub fn replies(cfg: &Config, s: &State, out: &mut Vec<Reply>) {
    let Some(msg) = s.to_host.front() else {
        return;
    };
    out.push(Reply::Answer);
    match msg {
        GuestMsg::GpadlHeader { relid, inc, .. } | GuestMsg::GpadlTeardown { relid, inc, .. }
            if cfg.host_silent_after_rescind && !offered(s, relid, inc) =>
        {
            out.push(Reply::Silent);
        }
        GuestMsg::OpenChannel { relid, inc, .. } => {
            if offered(s, relid, inc) {
                if cfg.host_refuses_open {
                    out.push(Reply::Refuse);
                }
            } else if cfg.host_silent_after_rescind {
                out.push(Reply::Silent);
            }
        }
        _ => {}
    }
}

/// The host takes the message at the head of the driver→host queue and handles it.
pub fn receive(s: &mut State, reply: Reply) {
    let Some(msg) = s.to_host.pop() else {
        return;
    };
    if s.host.unloaded {
        s.violate(Violation::MessageAfterUnload);
        return;
    }
    let answer = reply == Reply::Answer;
    match msg {
        GuestMsg::GpadlHeader { relid, inc, page } => {
            if released(s, relid, inc) {
                s.violate(Violation::NamesReleasedRelid);
            }
            let p = usize::from(page);
            if s.host.gpadls[p].is_some() {
                s.violate(Violation::PageReusedUnderLiveGpadl);
            }
            // The host records the GPADL even when it does not answer: it processes messages
            // in order, so a later GPADL_TEARDOWN finds it.
            s.host.gpadls[p] = Some(HostGpadl { relid, inc });
            s.kernel.dirty[p] = true;
            if answer {
                s.post(HostMsg::GpadlCreated { relid, page });
            }
        }
        GuestMsg::OpenChannel { relid, inc, page } => {
            if released(s, relid, inc) {
                s.violate(Violation::NamesReleasedRelid);
            }
            if s.host.gpadls[usize::from(page)] != Some(HostGpadl { relid, inc }) {
                s.violate(Violation::NamesTornDownGpadl);
            }
            if offered(s, relid, inc) {
                let ok = reply == Reply::Answer;
                s.host.chans[usize::from(relid)].open = ok;
                s.post(HostMsg::OpenResult { relid, ok });
            } else if answer {
                s.post(HostMsg::OpenResult { relid, ok: false });
            }
        }
        GuestMsg::CloseChannel {
            relid,
            inc,
            confirmed,
        } => {
            if released(s, relid, inc) {
                s.violate(Violation::NamesReleasedRelid);
            } else if !confirmed {
                // Sent before the driver knew the open had succeeded: a host whose open is
                // still pending ignores it (OpenVMM's vmbus_server does), and the channel
                // stays open once the open completes.
                s.violate(Violation::CloseUnconfirmed);
            } else {
                s.host.chans[usize::from(relid)].open = false;
            }
        }
        GuestMsg::GpadlTeardown { relid, inc, page } => {
            if released(s, relid, inc) {
                s.violate(Violation::NamesReleasedRelid);
            }
            let p = usize::from(page);
            if s.host.gpadls[p] != Some(HostGpadl { relid, inc }) {
                s.violate(Violation::GpadlTornDownTwice);
            } else {
                if offered(s, relid, inc) && s.host.chans[usize::from(relid)].open {
                    s.violate(Violation::TeardownWhileOpen);
                }
                s.host.gpadls[p] = None;
            }
            if answer {
                s.post(HostMsg::TornDown { page });
            }
        }
        GuestMsg::RelidReleased { relid, inc } => {
            let ch = s.host.chans[usize::from(relid)];
            if ch.phase != HostPhase::Rescinded || ch.inc() != Some(inc) {
                s.violate(Violation::ReleaseWithoutRescind);
                return;
            }
            if s.host
                .gpadls
                .iter()
                .flatten()
                .any(|g| g.relid == relid && g.inc == inc)
            {
                s.violate(Violation::ReleaseWithLiveGpadl);
            }
            s.host.chans[usize::from(relid)].phase = HostPhase::Absent;
        }
        GuestMsg::Unload => {
            // Only a channel the driver knew to be open must be closed first: an open it never
            // saw answered (an unresolved relid) cannot be closed, and UNLOAD resets it.
            if (0..s.host.chans.len()).any(|r| s.host.chans[r].open && s.is_confirmed(r as u8)) {
                s.violate(Violation::UnloadWithOpenChannel);
            }
            // Full reset: the host forgets channels, GPADLs and pending events.
            s.host.unloaded = true;
            for ch in &mut s.host.chans {
                ch.phase = HostPhase::Absent;
                ch.open = false;
            }
            s.host.gpadls = Default::default();
            s.host.flags = Default::default();
            s.post(HostMsg::UnloadResponse);
        }
    }
}

/// The host offers `relid` (first time or again after its release).
pub fn offer(cfg: &Config, s: &mut State, relid: u8) -> bool {
    let ch = &mut s.host.chans[usize::from(relid)];
    if s.host.unloaded || ch.phase != HostPhase::Absent || ch.offers >= cfg.offers_per_relid {
        return false;
    }
    let inc = ch.offers;
    ch.offers += 1;
    ch.phase = HostPhase::Offered;
    ch.open = false;
    s.post(HostMsg::Offer { relid, inc });
    true
}

/// The host rescinds `relid`: it closes its side and stops signalling the channel.
pub fn rescind(s: &mut State, relid: u8) -> bool {
    let ch = &mut s.host.chans[usize::from(relid)];
    if s.host.unloaded || ch.phase != HostPhase::Offered {
        return false;
    }
    ch.phase = HostPhase::Rescinded;
    ch.open = false;
    s.post(HostMsg::Rescind { relid });
    true
}

/// The host signals an open channel: its event flag is set (coalescing with an unread one).
pub fn signal(s: &mut State, relid: u8) -> bool {
    let r = usize::from(relid);
    let ch = s.host.chans[r];
    if s.host.unloaded || ch.phase != HostPhase::Offered || !ch.open || s.host.flags[r].is_some() {
        return false;
    }
    s.host.flags[r] = ch.inc();
    true
}
