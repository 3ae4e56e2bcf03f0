//! The abstract state: what an implementation and the model can both be reduced to, and the
//! model's reduction. The conformance harness compares the two after every step.
//!
//! Deliberately left out: ghost fields (incarnations, violations), the host's private state
//! (the harness plays the host from the model), and page identities (an implementation may
//! use several pages per ring and pick them in any order; only counts are compared).

use crate::model::LifetimeModel;
use crate::state::{GuestMsg, Handle, PageState, Phase, State};

/// The driver's view of one relid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AbstractChan {
    /// Phase; `Absent` when the driver knows no offer.
    pub phase: Phase,
    /// The client that holds (or, during teardown, held) the channel.
    pub owner: Option<u8>,
    /// The ring pages are granted to the owner and not (yet) revoked by a teardown. A page
    /// whose revoke failed is no longer granted, but stays counted in
    /// [`AbstractState::mapped`]: the client may still map it.
    pub granted: bool,
    /// RELID_RELEASED is owed.
    pub rescinded: bool,
}

/// A message to the host, reduced to its kind and relid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbstractMsg {
    /// GPADL_HEADER (with its bodies).
    GpadlHeader(u8),
    /// OPENCHANNEL.
    OpenChannel(u8),
    /// CLOSECHANNEL.
    CloseChannel(u8),
    /// GPADL_TEARDOWN.
    GpadlTeardown(u8),
    /// RELID_RELEASED.
    RelidReleased(u8),
    /// UNLOAD.
    Unload,
}

/// Everything compared between the model and an implementation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AbstractState {
    /// Per relid of the configuration.
    pub chans: Vec<AbstractChan>,
    /// Messages posted to the host and not yet taken by it, oldest first.
    pub to_host: Vec<AbstractMsg>,
    /// Per client of the configuration: channels' worth of pages mapped in its window.
    pub mapped: Vec<usize>,
    /// Per client and relid: the client's handle.
    pub handles: Vec<Vec<Handle>>,
    /// Channels' worth of pages in the free pool.
    pub pool: usize,
    /// Channels' worth of pages quarantined: out of the pool and held by no channel (until a
    /// late GPADL_TORNDOWN, or for good after a failed kernel operation).
    pub quarantined: usize,
    /// Per relid: an event flag is set and not yet taken by the driver.
    pub flags: Vec<bool>,
    /// The bus is unloaded (UNLOAD_RESPONSE handled).
    pub unloaded: bool,
}

/// Reduces a guest message.
pub fn abstract_msg(m: GuestMsg) -> AbstractMsg {
    match m {
        GuestMsg::GpadlHeader { relid, .. } => AbstractMsg::GpadlHeader(relid),
        GuestMsg::OpenChannel { relid, .. } => AbstractMsg::OpenChannel(relid),
        GuestMsg::CloseChannel { relid, .. } => AbstractMsg::CloseChannel(relid),
        GuestMsg::GpadlTeardown { relid, .. } => AbstractMsg::GpadlTeardown(relid),
        GuestMsg::RelidReleased { relid, .. } => AbstractMsg::RelidReleased(relid),
        GuestMsg::Unload => AbstractMsg::Unload,
    }
}

/// The model's abstract state.
pub fn abstract_model(m: &LifetimeModel, s: &State) -> AbstractState {
    let cfg = &m.cfg;
    let chans = (0..cfg.channels)
        .map(|r| {
            let ch = s.drv[r];
            AbstractChan {
                phase: ch.phase,
                owner: (ch.phase != Phase::Absent && ch.phase != Phase::Offered)
                    .then_some(ch.client),
                granted: ch.phase.is_live()
                    && ch.page != crate::state::NONE
                    && ch.client != crate::state::NONE
                    && s.kernel.maps[usize::from(ch.client)] & (1 << ch.page) != 0,
                rescinded: ch.rescinded,
            }
        })
        .collect();
    let count = |want: PageState| {
        s.kernel.pages[..cfg.pages]
            .iter()
            .filter(|p| **p == want)
            .count()
    };
    AbstractState {
        chans,
        to_host: s.to_host.iter().map(abstract_msg).collect(),
        mapped: (0..cfg.clients)
            .map(|c| s.kernel.maps[c].count_ones() as usize)
            .collect(),
        handles: (0..cfg.clients)
            .map(|c| s.clients[c].handles[..cfg.channels].to_vec())
            .collect(),
        pool: count(PageState::Pool),
        quarantined: count(PageState::Quarantined),
        flags: s.host.flags[..cfg.channels]
            .iter()
            .map(Option::is_some)
            .collect(),
        unloaded: s.conn == crate::state::Conn::Unloaded,
    }
}
