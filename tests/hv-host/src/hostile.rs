//! Hostile behaviour, settable at any moment: what the host does wrong, and the byte-level
//! transformations that make its messages wrong in the way each mode claims.

use vmbus_driver::ids::{ConnectionId, GpadlId, RelId};
use vmbus_driver::msg::{ChannelMessage, ConnectionState, MessageType};

/// First relid past the 2048 event flags: what "out of range" offers and replies use.
pub const OUT_OF_RANGE_RELID_BASE: u32 = 2048;
/// The header type written by [`Hostile::unknown_type`] (beyond the table's 29).
pub const UNKNOWN_MSGTYPE: u32 = 0x7F;
/// `bad_monitor_ids`: the monitor id offered is this plus the channel's real one.
pub const BAD_MONITOR_ID_BASE: u8 = 128;
/// The slot size byte written by [`Hostile::oversize_slot`] (over the 240 limit).
pub const OVERSIZE_SLOT_SIZE: u8 = 0xF8;

/// The set of hostile behaviours. Everything off is an honest host.
///
/// The message transformations (`unknown_type`, `oversize_slot`, `truncate`, `wrong_fields`,
/// `out_of_range_relids`) apply to the host-to-guest message types in `targets` (bit n = type n;
/// 0 means every type).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hostile {
    /// Outgoing messages carry header type [`UNKNOWN_MSGTYPE`].
    pub unknown_type: bool,
    /// The slot's size byte says [`OVERSIZE_SLOT_SIZE`] (malformed at the SynIC level).
    pub oversize_slot: bool,
    /// Outgoing messages are cut to half their type's size (header kept), below every minimum.
    pub truncate: bool,
    /// Echoed fields are wrong: OPENCHANNEL_RESULT.openid + 1, GPADL_CREATED / GPADL_TORNDOWN
    /// gpadl + 1, VERSION_RESPONSE connection_state 0x7F and msg_conn_id 0xFFFFFFFF, offers with
    /// connection-id bits 31:24 set, MODIFYCHANNEL_RESPONSE relid + 1.
    pub wrong_fields: bool,
    /// Offers, rescinds and replies name relid [`OUT_OF_RANGE_RELID_BASE`] + relid.
    pub out_of_range_relids: bool,
    /// Every offer is sent twice.
    pub duplicate_offers: bool,
    /// Guest message types (bit n = type n) that get no reply at all.
    pub silence: u32,
    /// After every GPADL_CREATED a second one for a GPADL id the guest never created.
    pub stray_gpadl_created: bool,
    /// Every poll sets all 2047 channel event flags.
    pub event_flood: bool,
    /// Offers carry monitor_allocated with a monitor id of 128 or above (the page has 128
    /// bits), as [`BAD_MONITOR_ID_BASE`] + the id it would have had.
    pub bad_monitor_ids: bool,
    /// Every poll writes an out-of-range write index into each open channel's host-to-guest ring
    /// header and an out-of-range read index into its guest-to-host ring header.
    pub corrupt_ring_indices: bool,
    /// Host-to-guest message types the transformations apply to (0 = all).
    pub targets: u32,
    /// IC negotiation offers only versions no guest speaks (framework 7.0, service 7.0 / 7.1).
    pub ic_foreign_versions: bool,
    /// IC requests are cut to [`IC_TRUNCATED_LEN`] bytes, shorter than the pipe and IC headers.
    pub ic_truncate: bool,
    /// IC requests' body size field says [`IC_OVERSIZE_BODY`], more than the packet holds.
    pub ic_oversize_body: bool,
    /// IC requests carry message type [`IC_UNKNOWN_TYPE`].
    pub ic_unknown_type: bool,
    /// IC requests carry another service's message type (heartbeat requests say SHUTDOWN,
    /// every other service's say HEARTBEAT): a shutdown message on the heartbeat channel.
    pub ic_wrong_service: bool,
    /// IC requests carry the response flag instead of the request flag.
    pub ic_response_flag: bool,
    /// Dynamic Memory messages are cut to [`DM_TRUNCATED_LEN`] bytes, shorter than the DM header.
    pub dm_truncate: bool,
    /// Dynamic Memory messages' header size says 64 bytes more than the packet holds.
    pub dm_oversize: bool,
    /// A DM_BALLOON_REQUEST right after the version is accepted, before the capabilities.
    pub dm_balloon_before_capabilities: bool,
    /// [`Host::unballoon`](crate::Host::unballoon) returns a range the host never ballooned.
    pub dm_unballoon_unknown: bool,
    /// Network: transfer-page ranges start at the end of the receive buffer (beyond it).
    pub net_xfer_beyond_buffer: bool,
    /// Network: RNDIS messages to the guest say 4096 bytes more than their range holds.
    pub net_rndis_oversize_length: bool,
    /// Network: RNDIS packets to the guest have a data offset past the message's end.
    pub net_rndis_bad_data_offset: bool,
    /// Network: every RNDIS completion is followed by one for a transaction id the guest never
    /// used ([`NET_UNKNOWN_TID`]).
    pub net_unknown_completion: bool,
    /// Network: the receive buffer completion's section runs one page past the buffer.
    pub net_bad_sections: bool,
    /// Storage: SRB completions' `vmscsi_request` length says the other generation's size
    /// (0x24 at 5.1 and later, 0x34 before).
    pub stor_bad_srb_length: bool,
    /// Storage: completions carry the request's transaction id with
    /// [`UNKNOWN_TID_BIT`](crate::devices::storage::UNKNOWN_TID_BIT) flipped.
    pub stor_unknown_tid: bool,
    /// Storage: every completion is sent twice.
    pub stor_duplicate: bool,
    /// Storage: SRB completions' sense_info_length says
    /// [`OVERSIZE_SENSE_LEN`](crate::devices::storage::OVERSIZE_SENSE_LEN), more than the 20-byte
    /// sense area.
    pub stor_oversize_sense: bool,
    /// Storage: successful SRB completions report half the bytes moved.
    pub stor_short_transfer: bool,
}

/// Transaction id of the completions [`Hostile::net_unknown_completion`] adds.
pub const NET_UNKNOWN_TID: u64 = 0xDEAD_0000_BEEF_0001;

/// Length of an IC request under [`Hostile::ic_truncate`].
pub const IC_TRUNCATED_LEN: usize = 16;
/// Body size field under [`Hostile::ic_oversize_body`].
pub const IC_OVERSIZE_BODY: u16 = 0xFFF0;
/// IC message type under [`Hostile::ic_unknown_type`].
pub const IC_UNKNOWN_TYPE: u16 = 0x7F;
/// Length of a DM message under [`Hostile::dm_truncate`].
pub const DM_TRUNCATED_LEN: usize = 4;

impl Hostile {
    /// Nothing hostile.
    pub const NONE: Self = Self {
        unknown_type: false,
        oversize_slot: false,
        truncate: false,
        wrong_fields: false,
        out_of_range_relids: false,
        duplicate_offers: false,
        silence: 0,
        stray_gpadl_created: false,
        event_flood: false,
        bad_monitor_ids: false,
        corrupt_ring_indices: false,
        targets: 0,
        ic_foreign_versions: false,
        ic_truncate: false,
        ic_oversize_body: false,
        ic_unknown_type: false,
        ic_wrong_service: false,
        ic_response_flag: false,
        dm_truncate: false,
        dm_oversize: false,
        dm_balloon_before_capabilities: false,
        dm_unballoon_unknown: false,
        net_xfer_beyond_buffer: false,
        net_rndis_oversize_length: false,
        net_rndis_bad_data_offset: false,
        net_unknown_completion: false,
        net_bad_sections: false,
        stor_bad_srb_length: false,
        stor_unknown_tid: false,
        stor_duplicate: false,
        stor_oversize_sense: false,
        stor_short_transfer: false,
    };

    /// Whether any behaviour is on.
    pub fn any(&self) -> bool {
        *self != Self::NONE
    }

    /// The bit of message type `t` in a type mask (types >= 32 have none).
    pub const fn bit(t: MessageType) -> u32 {
        if t.0 < 32 { 1 << t.0 } else { 0 }
    }

    /// Whether replies to guest message type `t` are withheld.
    pub fn silences(&self, t: MessageType) -> bool {
        self.silence & Self::bit(t) != 0
    }

    fn targets(&self, t: MessageType) -> bool {
        self.targets == 0 || self.targets & Self::bit(t) != 0
    }

    /// Applies the field-level transformations to a message about to be encoded.
    pub(crate) fn alter(&self, msg: &mut ChannelMessage) {
        if !self.targets(msg.msgtype()) {
            return;
        }
        let far = |r: RelId| RelId(OUT_OF_RANGE_RELID_BASE.wrapping_add(r.0));
        use ChannelMessage as M;
        if self.out_of_range_relids {
            match msg {
                M::OfferChannel(o) => o.child_relid = far(o.child_relid),
                M::RescindChannelOffer(r) => r.child_relid = far(r.child_relid),
                M::OpenChannelResult(r) => r.child_relid = far(r.child_relid),
                M::GpadlCreated(c) => c.child_relid = far(c.child_relid),
                M::ModifyChannelResponse(m) => m.child_relid = far(m.child_relid),
                _ => {}
            }
        }
        if self.wrong_fields {
            match msg {
                M::OpenChannelResult(r) => r.openid = r.openid.wrapping_add(1),
                M::GpadlCreated(c) => c.gpadl = GpadlId(c.gpadl.0.wrapping_add(1)),
                M::GpadlTorndown(t) => t.gpadl = GpadlId(t.gpadl.0.wrapping_add(1)),
                M::VersionResponse(v) => {
                    v.connection_state = ConnectionState(0x7F);
                    v.msg_conn_id = ConnectionId(u32::MAX);
                }
                M::OfferChannel(o) => {
                    o.connection_id = ConnectionId(o.connection_id.0 | 0xFF00_0000)
                }
                M::ModifyChannelResponse(m) => {
                    m.child_relid = RelId(m.child_relid.0.wrapping_add(1));
                }
                _ => {}
            }
        }
    }

    /// Applies the byte-level transformations to an encoded message of type `t`; returns the
    /// length to send and the slot size byte.
    pub(crate) fn mangle(&self, t: MessageType, bytes: &mut [u8], len: usize) -> (usize, u8) {
        let mut len = len;
        if self.targets(t) {
            if self.unknown_type && bytes.len() >= 4 {
                bytes[..4].copy_from_slice(&UNKNOWN_MSGTYPE.to_le_bytes());
            }
            if self.truncate {
                // Half the message, never less than the 8-byte header: under every type's
                // minimum size except the header-only types, which lose their header too.
                len = if len > 8 { (len / 2).max(8) } else { 4 };
            }
        }
        // len <= 240.
        let size = if self.oversize_slot && self.targets(t) {
            OVERSIZE_SLOT_SIZE
        } else {
            len as u8
        };
        (len, size)
    }
}
