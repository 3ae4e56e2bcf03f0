//! The channel table keyed by relid and the smaller table of channels a client opened.
//!
//! The relid table has one compact entry per possible relid (2048, the SINT2 event-flag count),
//! so a lookup from an event flag or a host message is one bounds-checked index. Entries of
//! opened channels point into the open table, whose entries hold the GPADL, the page list and
//! the teardown progress.

use crate::guid::Guid;
use crate::ids::{ConnectionId, GpadlId, VpIndex};

use super::pages::PageList;

/// Relids the table covers: 1..2048 (0 is never a channel; the event bitmap has 2048 flags).
pub const MAX_RELIDS: usize = 2048;
/// Channels that can be open (or opening, or being torn down) at once: every relid.
pub const MAX_OPEN: usize = MAX_RELIDS - 1;
/// Most pages (both rings) of one channel.
pub const MAX_CHANNEL_PAGES: usize = 256;

/// Offer state of a relid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelidState {
    /// No offer.
    Free,
    /// Offered, no client has it.
    Offered,
    /// A client opened it (or the open or the teardown is in progress): `open` is valid.
    Active,
}

/// One relid. 56 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelidEntry {
    pub class: Guid,
    pub instance: Guid,
    /// Offer's connection id for HvCallSignalEvent.
    pub connection_id: ConnectionId,
    /// Bumped on each new offer and at the start of each teardown (DESIGN.md §3 step 1).
    pub generation: u32,
    pub sub_index: u16,
    /// Open-table index when `state == Active`.
    pub open: u16,
    pub state: RelidState,
    /// The host rescinded the offer; RELID_RELEASED is still owed.
    pub rescinded: bool,
    /// An OPENCHANNEL for this relid was never answered, even during its teardown: its ring
    /// GPADL (also the openid) is in quarantine, the host may still open the channel, and no
    /// client may open the relid until the late OPENCHANNEL_RESULT or a rescind resolves it.
    pub unresolved_open: Option<GpadlId>,
}

impl RelidEntry {
    pub const EMPTY: RelidEntry = RelidEntry {
        class: Guid::NIL,
        instance: Guid::NIL,
        connection_id: ConnectionId(0),
        generation: 0,
        sub_index: 0,
        open: 0,
        state: RelidState::Free,
        rescinded: false,
        unresolved_open: None,
    };
}

/// Where an opened channel is in its life (DESIGN.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// GPADL_HEADER (and bodies) sent, waiting for GPADL_CREATED.
    GpadlPending,
    /// OPENCHANNEL sent, waiting for OPENCHANNEL_RESULT.
    OpenPending,
    /// Open; pages granted to the client.
    Open,
    /// Teardown started (revoked); closing and GPADL teardown in progress.
    Teardown,
}

/// What the host holds of the channel's ring GPADL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GpadlState {
    /// Never described to the host (or the header post failed).
    None,
    /// Described; GPADL_CREATED not yet received.
    Pending,
    /// The host may hold it: created, or unknown after a lost reply or a failed body post.
    Created,
    /// GPADL_TEARDOWN sent; waiting for GPADL_TORNDOWN.
    TeardownSent,
    /// The host does not hold it (creation refused or teardown confirmed).
    Gone,
    /// The teardown was never confirmed: the pages are never reused.
    Quarantined,
}

/// Whether OPENCHANNEL was sent and what came of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenState {
    /// Not sent.
    NotSent,
    /// Sent, no result yet (the host may open it).
    Sent,
    /// The host refused it: nothing to close.
    Refused,
    /// The host opened it.
    Opened,
}

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

/// Flag bits of [`OpenChan::flags`].
pub(crate) mod flags {
    /// The client capabilities were revoked (teardown step 2 done).
    pub const REVOKED: u8 = 1 << 0;
    /// CLOSECHANNEL was sent.
    pub const CLOSE_SENT: u8 = 1 << 1;
    /// The pages were granted into the client window.
    pub const GRANTED: u8 = 1 << 2;
    /// MODIFYCHANNEL sent, MODIFYCHANNEL_RESPONSE awaited (`deadline` is its timeout).
    pub const MODIFY_PENDING: u8 = 1 << 3;
    /// OPENCHANNEL_RESULT never came during the teardown: no CLOSECHANNEL, no GPADL_TEARDOWN,
    /// the pages are quarantined and the relid is left unresolved.
    pub const OPEN_UNRESOLVED: u8 = 1 << 4;
}

/// A channel a client opened. 56 bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OpenChan {
    /// 0 = the entry is unused.
    pub relid: u16,
    /// Owning client index in the client table.
    pub client: u8,
    /// Window / status slot of the client; meaningful until the teardown frees it.
    pub slot: u8,
    /// The handle's generation.
    pub generation: u32,
    pub phase: Phase,
    pub gpadl_state: GpadlState,
    pub open_state: OpenState,
    pub flags: u8,
    /// The ring GPADL; also used as OPENCHANNEL's openid.
    pub gpadl: GpadlId,
    pub pages: PageList,
    /// Pages of the outbound ring (the inbound ring starts at this page).
    pub out_pages: u16,
    pub reason: TeardownReason,
    /// Tick by which the awaited host reply must arrive; 0 = nothing awaited.
    pub deadline: u64,
    pub target_vp: VpIndex,
    /// VP requested by a pending MODIFYCHANNEL.
    pub pending_vp: VpIndex,
    /// Signal hypercalls issued for the channel.
    pub signals: u32,
    /// The outbound ring's (write, read) indices at the last signal hypercall: a client asking
    /// again while neither moved gets no second hypercall.
    pub signalled_at: Option<(u32, u32)>,
}

impl OpenChan {
    pub const EMPTY: OpenChan = OpenChan {
        relid: 0,
        client: 0,
        slot: 0,
        generation: 0,
        phase: Phase::GpadlPending,
        gpadl_state: GpadlState::None,
        open_state: OpenState::NotSent,
        flags: 0,
        gpadl: GpadlId(0),
        pages: PageList::EMPTY,
        out_pages: 0,
        reason: TeardownReason::OpenFailed,
        deadline: 0,
        target_vp: VpIndex(0),
        pending_vp: VpIndex(0),
        signals: 0,
        signalled_at: None,
    };

    pub fn in_use(&self) -> bool {
        self.relid != 0
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Bits of a GPADL id that hold the open-table index + 1 (so the id is never 0 and a reply's
/// GPADL finds its channel in O(1)); the bits above count allocations.
pub(crate) const GPADL_INDEX_BITS: u32 = 11;

/// The open-table index a GPADL id names, if it could be one of ours.
pub(crate) fn gpadl_index(id: GpadlId) -> Option<usize> {
    let low = (id.0 & ((1 << GPADL_INDEX_BITS) - 1)) as usize;
    low.checked_sub(1).filter(|&i| i < MAX_OPEN)
}

/// The GPADL id for open-table index `index` and allocation count `seq`.
pub(crate) fn gpadl_id(index: usize, seq: u32) -> GpadlId {
    // index < MAX_OPEN = 2047, so index + 1 fits the 11 index bits.
    GpadlId((seq << GPADL_INDEX_BITS) | (index as u32 + 1))
}
