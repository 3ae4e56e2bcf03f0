//! Requests and responses of the client control protocol, encoded with postcard.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{RelId, SlotId};

/// Most offers one `Offers` response carries.
pub const OFFERS_PER_RESPONSE: usize = 8;

/// A client's reference to one of its channels. The driver refuses a handle whose generation is
/// not the channel's current one, so a handle kept across a rescind or close can never reach a
/// later channel that reuses the relid or the slot (R1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelHandle {
    /// The client's channel slot (window slot and status record index).
    pub slot: SlotId,
    /// The channel's relid.
    pub relid: RelId,
    /// The channel's generation when it was opened.
    pub generation: u32,
}

/// One offer as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OfferInfo {
    /// The offer's relid.
    pub relid: RelId,
    /// Device class GUID, wire byte order.
    pub class: [u8; 16],
    /// Instance GUID, wire byte order.
    pub instance: [u8; 16],
    /// 0 for a primary channel, else the sub-channel's index.
    pub sub_channel_index: u16,
}

/// A client's request (written to the request area of its control page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// List the offers this client may open whose relid is at least `start`.
    ListOffers {
        /// First relid to consider (the previous response's `next`, or relid 0).
        start: RelId,
    },
    /// Open the offer `relid` with rings of the given sizes in pages, header page included.
    Open {
        /// The offer's relid.
        relid: RelId,
        /// Guest-to-host ring pages (header + data, at least 2).
        out_ring_pages: u16,
        /// Host-to-guest ring pages (header + data, at least 2).
        in_ring_pages: u16,
    },
    /// Close a channel.
    Close {
        /// The channel.
        handle: ChannelHandle,
    },
    /// Ask the driver to signal the host for a channel (after the ring writer said "signal").
    Signal {
        /// The channel.
        handle: ChannelHandle,
    },
}

/// The driver's response (written to the response area of the client's control page).
// The offers variant is the largest (about 330 bytes); boxing is not available without an
// allocator, and a response lives only briefly on the stack while it is encoded or decoded.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Offers, in ascending relid order.
    Offers {
        /// Up to [`OFFERS_PER_RESPONSE`] offers.
        offers: heapless::Vec<OfferInfo, OFFERS_PER_RESPONSE>,
        /// The `start` for the next page, if more offers may follow.
        next: Option<RelId>,
    },
    /// The open started; the status record of `handle.slot` says when it completes.
    Opening {
        /// The new channel.
        handle: ChannelHandle,
    },
    /// The channel is closed: the client's mappings are gone; the driver finishes the host side.
    Closed,
    /// The signal request was handled.
    Signalled {
        /// Whether the driver issued HvCallSignalEvent (false: the ring did not need a signal).
        hypercall: bool,
    },
    /// The request failed.
    Error(ClientError),
}

/// Why a client request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientError {
    /// The request could not be decoded (or its length was out of range).
    BadRequest,
    /// The bus is not connected (handshake pending, failed or unloading).
    NotConnected,
    /// No offer with that relid exists.
    NoSuchOffer,
    /// The offer's class or instance is not configured for this client, or the sub-channel's
    /// primary is not open by this client.
    NotPermitted,
    /// The offer is already open (or being opened or torn down).
    Busy,
    /// The client has no free channel slot.
    NoFreeSlot,
    /// The ring sizes are below 2 pages each or do not fit the client's window slot.
    BadRingSize,
    /// The driver is out of ring pages or table space.
    NoResources,
    /// The handle is stale: the channel was closed, rescinded or failed.
    ChannelGone,
    /// The channel is not open yet.
    NotOpen,
    /// The hypervisor refused the signal hypercall.
    SignalFailed,
    /// The host could not be told (a post-message hypercall failed).
    HostUnreachable,
    /// The channel's ring header holds indices out of range or misaligned (the host corrupted
    /// it); the driver refuses to act on it.
    RingCorrupt,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadRequest => "malformed request",
            Self::NotConnected => "VMBus is not connected",
            Self::NoSuchOffer => "no such offer",
            Self::NotPermitted => "offer not permitted for this client",
            Self::Busy => "offer already in use",
            Self::NoFreeSlot => "no free channel slot",
            Self::BadRingSize => "ring sizes invalid or too large for the window slot",
            Self::NoResources => "driver out of ring pages or table space",
            Self::ChannelGone => "channel gone (closed, rescinded or failed)",
            Self::RingCorrupt => "ring header corrupt (indices out of range or misaligned)",
            Self::NotOpen => "channel not open yet",
            Self::SignalFailed => "signal hypercall failed",
            Self::HostUnreachable => "message to the host could not be posted",
        })
    }
}
