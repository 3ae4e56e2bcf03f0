//! The state of one relid (docs/lifetime.md): one enum whose variants carry what that state needs,
//! so "opening", "open", "being torn down" or "left with an unanswered open" is a variant, never
//! an inference from flags, and a combination the lifetime rule forbids cannot be written.
//!
//! ```text
//! Free ─offer─▶ Offered ─open─▶ GpadlPending ─▶ OpenPending ─▶ Open
//!                ▲  ▲                 └──────────────┴────────────┴─▶ TearingDown
//!                │  └──────────────── teardown ends ◀────────────────────┤
//!                └─ late result ── OpenUnresolved ◀─ ends, result unknown ┤
//! Free ◀─ RELID_RELEASED ◀────────────── ends, host rescinded ◀───────────┘
//! ```

use crate::ids::{GpadlId, SlotId, VpIndex};

use super::clients::ClientIdx;
use super::deadline::Deadline;
use super::pages::PageList;

/// Why a teardown started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeardownReason {
    /// The host rescinded the offer.
    Rescind,
    /// The client closed the channel.
    ClientClose,
    /// The client faulted.
    ClientFault,
    /// The open failed (host refusal, timeout, post failure or resources).
    OpenFailed,
    /// Bus unload.
    Unload,
    /// The primary channel is being torn down.
    Primary,
}

/// What every channel a client opened holds, from the open until its teardown ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opened {
    /// The client that opened it.
    pub client: ClientIdx,
    /// The ring GPADL; also OPENCHANNEL's openid.
    pub gpadl: GpadlId,
    /// Both rings' pages.
    pub pages: PageList,
    /// Pages of the outbound ring (the inbound ring starts at this page).
    pub out_pages: u16,
    /// The VP the host interrupts for the channel.
    pub target_vp: VpIndex,
    /// Signals given for the channel (hypercalls and monitor bits).
    pub signals: u32,
    /// Revoking a buffer's pages failed: the client may still map them in the channel's window
    /// slot, so no buffer is allocated on the channel again and the slot is retired at its
    /// teardown.
    pub window_tainted: bool,
}

/// A MODIFYCHANNEL whose MODIFYCHANNEL_RESPONSE is awaited (5.3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retarget {
    /// The VP asked for.
    pub vp: VpIndex,
    /// When to give up waiting.
    pub deadline: Deadline,
}

/// Where CLOSECHANNEL stands during a teardown (teardown step 3a).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// OPENCHANNEL was never sent, or the host refused it: nothing to close.
    Nothing,
    /// OPENCHANNEL_RESULT is outstanding and a host ignores a CLOSECHANNEL mid-open, so the
    /// teardown waits for it (its deadline is armed once the sub-channels are gone).
    AwaitingResult,
    /// The host opened the channel: CLOSECHANNEL is owed.
    Owed,
    /// CLOSECHANNEL went out while OPENCHANNEL_RESULT was outstanding (the host rescinded the
    /// channel and closes it itself); the late result is still accepted, once.
    SentBeforeResult,
    /// CLOSECHANNEL was sent.
    Sent,
}

/// What the host may hold of the ring GPADL during a teardown (teardown step 3b).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GpadlHold {
    /// Never described to the host (or the header post failed).
    None,
    /// Described; GPADL_CREATED must come before the GPADL can be torn down.
    Pending,
    /// The host may hold it: created, or unknown after a lost reply or a failed body post.
    Held,
    /// GPADL_TEARDOWN sent; GPADL_TORNDOWN awaited.
    TeardownSent,
    /// The host does not hold it (creation refused, or teardown confirmed).
    Gone,
    /// The host may hold it and never confirmed its teardown: the pages are quarantined.
    Quarantined,
}

/// A teardown past steps 1 and 2: the generation moved on, the pages are revoked and the
/// client's slot is released; the host side (steps 3 to 5) is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Teardown {
    /// What started it.
    pub reason: TeardownReason,
    /// The host rescinded the offer: RELID_RELEASED is owed at the end (step 4).
    pub rescinded: bool,
    /// CLOSECHANNEL.
    pub close: Close,
    /// The ring GPADL.
    pub gpadl: GpadlHold,
    /// When to give up on the host reply awaited now: OPENCHANNEL_RESULT (`close` awaits it),
    /// GPADL_CREATED (`gpadl` pending) or GPADL_TORNDOWN (`gpadl` torn down). A teardown awaits
    /// at most one (OPENCHANNEL follows GPADL_CREATED, GPADL_TEARDOWN follows the close), so one
    /// deadline serves; `None` while nothing is awaited or the wait is not armed yet.
    pub deadline: Option<Deadline>,
}

/// The state of one relid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChanState {
    /// No offer.
    Free,
    /// Offered; no client holds it.
    Offered,
    /// Offered, but an OPENCHANNEL for it was never answered, even during its teardown: the host
    /// may still open it and map the ring GPADL (also the openid), whose pages are quarantined.
    /// No client may open the relid until the late OPENCHANNEL_RESULT or a rescind resolves it.
    OpenUnresolved {
        /// The unanswered open's ring GPADL.
        gpadl: GpadlId,
    },
    /// A client's open: GPADL_HEADER (and bodies) sent, GPADL_CREATED awaited.
    GpadlPending {
        /// The channel.
        ch: Opened,
        /// The client's slot (status record, window slot).
        slot: SlotId,
        /// When to give up waiting.
        deadline: Deadline,
    },
    /// OPENCHANNEL sent, OPENCHANNEL_RESULT awaited.
    OpenPending {
        /// The channel.
        ch: Opened,
        /// The client's slot.
        slot: SlotId,
        /// When to give up waiting.
        deadline: Deadline,
    },
    /// Open: the ring pages are granted into the client's window slot.
    Open {
        /// The channel.
        ch: Opened,
        /// The client's slot.
        slot: SlotId,
        /// The outbound ring's (write, read) indices at the last signal hypercall: a client
        /// asking again while neither moved gets no second hypercall.
        signalled_at: Option<(u32, u32)>,
        /// A MODIFYCHANNEL awaiting its response.
        retarget: Option<Retarget>,
    },
    /// Being torn down.
    TearingDown {
        /// The channel (its client is the one that held it).
        ch: Opened,
        /// Progress.
        td: Teardown,
    },
}

impl ChanState {
    /// The channel, to change, if a client opened it.
    pub fn opened_mut(&mut self) -> Option<&mut Opened> {
        match self {
            Self::GpadlPending { ch, .. }
            | Self::OpenPending { ch, .. }
            | Self::Open { ch, .. }
            | Self::TearingDown { ch, .. } => Some(ch),
            Self::Free | Self::Offered | Self::OpenUnresolved { .. } => None,
        }
    }

    /// The channel, if a client opened it (opening, open or being torn down).
    pub fn opened(&self) -> Option<&Opened> {
        match self {
            Self::GpadlPending { ch, .. }
            | Self::OpenPending { ch, .. }
            | Self::Open { ch, .. }
            | Self::TearingDown { ch, .. } => Some(ch),
            Self::Free | Self::Offered | Self::OpenUnresolved { .. } => None,
        }
    }

    /// The channel and its client slot while the slot is bound to it (opening or open).
    pub fn bound(&self) -> Option<(Opened, SlotId)> {
        match *self {
            Self::GpadlPending { ch, slot, .. }
            | Self::OpenPending { ch, slot, .. }
            | Self::Open { ch, slot, .. } => Some((ch, slot)),
            _ => None,
        }
    }

    /// Whether the host rescinded the offer (only a teardown outlives a rescind).
    pub fn rescinded(&self) -> bool {
        matches!(self, Self::TearingDown { td, .. } if td.rescinded)
    }

    /// The deadline of the host reply this state awaits, if any.
    pub fn deadline(&self) -> Option<Deadline> {
        match *self {
            Self::GpadlPending { deadline, .. } | Self::OpenPending { deadline, .. } => {
                Some(deadline)
            }
            Self::Open { retarget, .. } => retarget.map(|r| r.deadline),
            Self::TearingDown { td, .. } => td.deadline,
            Self::Free | Self::Offered | Self::OpenUnresolved { .. } => None,
        }
    }
}
