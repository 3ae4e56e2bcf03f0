//! Read-only views of the channel table: [`ChannelInfo`] for the main job and tests, and
//! [`AbstractChannel`] for the formal model's conformance harness.

use crate::guid::Guid;
use crate::ids::{ClientId, RelId, VpIndex};

use super::Driver;
use super::channels::ChannelTable;
use super::state::{ChanState, GpadlHold, TeardownReason};

/// A channel's state as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// Offered; no client holds it.
    Offered,
    /// Opening: GPADL_CREATED awaited.
    GpadlPending,
    /// Opening: OPENCHANNEL_RESULT awaited.
    OpenPending,
    /// Open.
    Open,
    /// Being torn down, for this reason.
    TearingDown(TeardownReason),
}

/// One row of the channel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The relid.
    pub relid: RelId,
    /// Device class.
    pub class: Guid,
    /// Instance.
    pub instance: Guid,
    /// 0 for a primary channel.
    pub sub_channel_index: u16,
    /// State.
    pub state: ChannelState,
    /// The host rescinded it (RELID_RELEASED pending the teardown).
    pub rescinded: bool,
    /// The client holding it.
    pub client: Option<ClientId>,
    /// Ring pages held (both rings).
    pub pages: usize,
    /// The relid's generation.
    pub generation: u32,
    /// Host events delivered to the client's slot (monotonic over the slot's life).
    pub events: u32,
    /// Signals given for the channel (hypercalls and monitor bits).
    pub signals: u32,
    /// The VP the host interrupts for the channel (after any confirmed MODIFYCHANNEL); `None`
    /// when no client holds it.
    pub target_vp: Option<VpIndex>,
    /// An OPENCHANNEL the host never answered: no client may open the relid until the late
    /// result or a rescind resolves it (its pages are quarantined meanwhile).
    pub open_unresolved: bool,
}

/// The driver's state of one relid in the formal model's terms (tests/model `Phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AbstractPhase {
    /// Offered, no client.
    Offered,
    /// GPADL_HEADER sent for a client's open.
    GpadlPending,
    /// GPADL created, OPENCHANNEL sent.
    OpenPending,
    /// Open: the client has the ring pages mapped.
    Open,
    /// Revoked; CLOSECHANNEL / GPADL_TEARDOWN sent or pending, waiting for the host.
    Teardown,
}

/// The abstraction of one relid that the conformance harness compares with the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbstractChannel {
    /// Phase.
    pub phase: AbstractPhase,
    /// The client holding the channel (in teardown: the client that held it).
    pub owner: Option<ClientId>,
    /// The host may hold the ring GPADL (described and not confirmed torn down; includes a
    /// GPADL whose teardown is still unanswered).
    pub gpadl_alive: bool,
    /// The ring pages are granted to the client and not revoked.
    pub pages_granted: bool,
    /// The host rescinded it and RELID_RELEASED is still owed.
    pub rescinded: bool,
}

impl Driver {
    /// The channel table, in relid order.
    pub fn channels(&self) -> impl Iterator<Item = ChannelInfo> + '_ {
        ChannelTable::relids().filter_map(move |r| self.channel(r))
    }

    /// One row of the channel table.
    pub fn channel(&self, relid: RelId) -> Option<ChannelInfo> {
        let offer = self.channels.offer_of(relid)?;
        let state = self.channels.state(relid);
        let opened = state.opened();
        Some(ChannelInfo {
            relid,
            class: offer.class,
            instance: offer.instance,
            sub_channel_index: offer.sub_index,
            state: match state {
                ChanState::Free | ChanState::Offered | ChanState::OpenUnresolved { .. } => {
                    ChannelState::Offered
                }
                ChanState::GpadlPending { .. } => ChannelState::GpadlPending,
                ChanState::OpenPending { .. } => ChannelState::OpenPending,
                ChanState::Open { .. } => ChannelState::Open,
                ChanState::TearingDown { td, .. } => ChannelState::TearingDown(td.reason),
            },
            rescinded: state.rescinded(),
            client: opened.map(|ch| self.clients.id(ch.client)),
            pages: opened.map_or(0, |ch| ch.pages.len()),
            generation: self.channels.generation(relid),
            events: state
                .bound()
                .map_or(0, |(ch, slot)| self.channels.events(ch.client, slot)),
            signals: opened.map_or(0, |ch| ch.signals),
            target_vp: opened.map(|ch| ch.target_vp),
            open_unresolved: matches!(state, ChanState::OpenUnresolved { .. }),
        })
    }

    /// The abstract state of `relid` for the formal model's conformance harness; `None` when the
    /// driver knows no offer for it (the model's `Absent`).
    ///
    /// The mapping: a relid with no client is `Offered`; an opened channel maps its state
    /// one-to-one (`GpadlPending`, `OpenPending`, `Open`, `TearingDown` to `Teardown`); `owner`
    /// is the client that opened it; `gpadl_alive` is true from the first GPADL message posted
    /// until GPADL_TORNDOWN (or a creation refusal), and stays true for quarantined pages;
    /// `pages_granted` is true from the grant until the revoke of teardown step 2.
    pub fn abstract_channel(&self, relid: RelId) -> Option<AbstractChannel> {
        self.channels.offer_of(relid)?;
        let state = self.channels.state(relid);
        let phase = match state {
            ChanState::Free | ChanState::Offered | ChanState::OpenUnresolved { .. } => {
                AbstractPhase::Offered
            }
            ChanState::GpadlPending { .. } => AbstractPhase::GpadlPending,
            ChanState::OpenPending { .. } => AbstractPhase::OpenPending,
            ChanState::Open { .. } => AbstractPhase::Open,
            ChanState::TearingDown { .. } => AbstractPhase::Teardown,
        };
        let gpadl_alive = match state {
            ChanState::GpadlPending { .. }
            | ChanState::OpenPending { .. }
            | ChanState::Open { .. } => true,
            ChanState::TearingDown { td, .. } => matches!(
                td.gpadl,
                GpadlHold::Pending
                    | GpadlHold::Held
                    | GpadlHold::TeardownSent
                    | GpadlHold::Quarantined
            ),
            ChanState::Free | ChanState::Offered | ChanState::OpenUnresolved { .. } => false,
        };
        Some(AbstractChannel {
            phase,
            owner: state.opened().map(|ch| self.clients.id(ch.client)),
            gpadl_alive,
            pages_granted: matches!(state, ChanState::Open { .. }),
            rescinded: state.rescinded(),
        })
    }
}
