//! Read-only views of the channel table: [`ChannelInfo`] for the main job and tests, and
//! [`AbstractChannel`] for the formal model's conformance harness.

use crate::guid::Guid;
use crate::ids::{ClientId, RelId, VpIndex};

use super::Driver;
use super::table::{GpadlState, MAX_RELIDS, Phase, RelidState, TeardownReason, flags};

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
    /// Signal hypercalls issued for the client.
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
        (1..MAX_RELIDS).filter_map(move |r| self.channel(RelId(r as u32)))
    }

    /// One row of the channel table.
    pub fn channel(&self, relid: RelId) -> Option<ChannelInfo> {
        let r = Driver::entry_index(relid)?;
        let e = &self.relids[r];
        let mut info = ChannelInfo {
            relid,
            class: e.class,
            instance: e.instance,
            sub_channel_index: e.sub_index,
            state: ChannelState::Offered,
            rescinded: e.rescinded,
            client: None,
            pages: 0,
            generation: e.generation,
            events: 0,
            signals: 0,
            target_vp: None,
            open_unresolved: e.unresolved_open.is_some(),
        };
        match e.state {
            RelidState::Free => return None,
            RelidState::Offered => {}
            RelidState::Active => {
                let o = &self.opens[usize::from(e.open)];
                let client = &self.clients.entries[usize::from(o.client)];
                info.state = match o.phase {
                    Phase::GpadlPending => ChannelState::GpadlPending,
                    Phase::OpenPending => ChannelState::OpenPending,
                    Phase::Open => ChannelState::Open,
                    Phase::Teardown => ChannelState::TearingDown(o.reason),
                };
                info.client = Some(client.id);
                info.pages = o.pages.len();
                info.signals = o.signals;
                info.target_vp = Some(o.target_vp);
                if o.phase != Phase::Teardown {
                    info.events = client.events.get(usize::from(o.slot)).copied().unwrap_or(0);
                }
            }
        }
        Some(info)
    }

    /// The abstract state of `relid` for the formal model's conformance harness; `None` when the
    /// driver knows no offer for it (the model's `Absent`).
    ///
    /// The mapping: a relid with no client is `Offered`; an opened channel maps its phase
    /// one-to-one (`GpadlPending`, `OpenPending`, `Open`, `Teardown`); `owner` is the client of
    /// the open entry; `gpadl_alive` is true from the first GPADL message posted until
    /// GPADL_TORNDOWN (or a creation refusal), and stays true for quarantined pages;
    /// `pages_granted` is true from the grant until the revoke of teardown step 2.
    pub fn abstract_channel(&self, relid: RelId) -> Option<AbstractChannel> {
        let r = Driver::entry_index(relid)?;
        let e = &self.relids[r];
        match e.state {
            RelidState::Free => None,
            RelidState::Offered => Some(AbstractChannel {
                phase: AbstractPhase::Offered,
                owner: None,
                gpadl_alive: false,
                pages_granted: false,
                rescinded: e.rescinded,
            }),
            RelidState::Active => {
                let o = &self.opens[usize::from(e.open)];
                Some(AbstractChannel {
                    phase: match o.phase {
                        Phase::GpadlPending => AbstractPhase::GpadlPending,
                        Phase::OpenPending => AbstractPhase::OpenPending,
                        Phase::Open => AbstractPhase::Open,
                        Phase::Teardown => AbstractPhase::Teardown,
                    },
                    owner: Some(self.clients.entries[usize::from(o.client)].id),
                    gpadl_alive: matches!(
                        o.gpadl_state,
                        GpadlState::Pending
                            | GpadlState::Created
                            | GpadlState::TeardownSent
                            | GpadlState::Quarantined
                    ),
                    pages_granted: o.has(flags::GRANTED) && !o.has(flags::REVOKED),
                    rescinded: e.rescinded,
                })
            }
        }
    }
}
