//! The service client programs of `system.xml` on the simulation: heartbeat, shutdown, time
//! sync, KVP ([`IcClient`] over `ic::service::Endpoint`) and Dynamic Memory ([`DynMemClient`]
//! over `dynmem::{Startup, Balloon}`), doing what the seL4 PD programs of `components/pds`
//! (`ic-service`, `heartbeat-pd`, `shutdown-pd`, `timesync-pd`, `kvp-pd`, `dynmem-service`) do,
//! written as step-wise programs: a step waits for nothing, it handles what is in the ring and
//! returns [`Flow::Continue`](crate::Flow::Continue).
//!
//! Each program: waits for an offer of its class (the driver's offers-delivered word, read
//! before listing, as `vmbus_client::wait_for_offer` does), opens it (rings of
//! [`RING_PAGES`] + [`RING_PAGES`] pages, as the PDs), answers through its protocol state, and
//! when the channel goes away (rescind, teardown) waits for the next offer and reconnects. What a
//! report shows is shared through a handle ([`IcHandle`], [`DynMemHandle`]) that stays with the
//! caller while the world owns the program.
//!
//! Where the simulation's programs differ from the PDs (each also noted where it is done):
//! - a channel whose ring is broken (a host that corrupted its indices) is closed and opened
//!   again after a short pause; the PD keeps it and fails each receive;
//! - a Dynamic Memory negotiation message the client cannot take is refused and the negotiation
//!   goes on (a DM_BALLOON_REQUEST before the capabilities is answered with no pages, as the
//!   host expects); the PD ends the channel there;
//! - a [`Pause`] lets the caller have the program close its channel and later reopen it (the
//!   main job's "clients close and reopen" phase).

mod dynmem;
mod ic;
mod link;

pub use dynmem::{CAPS, DynMemClient, DynMemHandle, DynMemState};
pub use ic::{
    GUEST_INFO, IcClient, IcHandle, IcService, IcState, KVP_STORE, KvpExtra, KvpPair,
    ShutdownExtra, TimeSyncExtra,
};
pub use link::{LinkStats, Pause};

/// Pages of each ring, header page included (the PDs' `RING_PAGES`).
pub const RING_PAGES: u16 = 4;

/// The largest packet the inbound ring can hold (its data area).
pub const MAX_PACKET: usize = (RING_PAGES as usize - 1) * 4096;

/// Steps before a program tries again after an open failed or a broken channel was closed.
pub const RETRY_STEPS: u64 = 8;

/// Messages of errors and refusals a handle keeps (the last ones).
pub const KEPT_MESSAGES: usize = 16;

/// Appends `msg` to `list`, keeping the last [`KEPT_MESSAGES`].
pub(crate) fn keep(list: &mut Vec<String>, msg: String) {
    if list.len() == KEPT_MESSAGES {
        list.remove(0);
    }
    list.push(msg);
}
