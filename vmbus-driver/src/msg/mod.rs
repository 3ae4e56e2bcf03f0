//! VMBus channel messages: typed values, encoding and decoding of untrusted bytes.
//!
//! # Conformance interface
//!
//! The two stable entry points are [`decode`] and [`encode`], reached as
//! `vmbus_driver::msg::{decode, encode}` (deliberately not re-exported at the crate root):
//!
//! * `decode(bytes, version) -> Result<ChannelMessage, DecodeError>` reads one channel message,
//!   8-byte header included, from untrusted bytes (a SynIC message payload). `version` is the
//!   negotiated protocol version, or `None` before negotiation. For VERSION_RESPONSE pass the
//!   version requested by the INITIATE_CONTACT it answers, since the reply's layout depends on it.
//! * `encode(msg, buf) -> Result<usize, EncodeError>` writes exactly the message's wire size (never
//!   more than [`MAX_PAYLOAD`] = 240 bytes) at the start of `buf` and returns that size.
//!
//! Decoding rules (what a receiver needs, following Linux's receive path):
//!
//! * Fewer than 8 bytes: [`DecodeError::HeaderTooShort`]. More than 240: [`DecodeError::TooLong`].
//! * Message type 0 or > 29: [`DecodeError::UnknownType`] (never a panic, never a variant).
//! * With `Some(version)`, a message newer than that version (e.g. MODIFYCHANNEL_RESPONSE before
//!   5.3) is [`DecodeError::NotInVersion`]. INITIATE_CONTACT, VERSION_RESPONSE and
//!   CLOSE_RESERVED_CHANNEL are accepted at any version, as OpenVMM does. With `None` nothing is
//!   gated.
//! * Shorter than the type's minimum size: [`DecodeError::TooShort`] naming the type. Bytes beyond
//!   the struct size are ignored (Linux accepts them; QEMU pads to 8). The header's padding word is
//!   ignored, as Linux does.
//! * Layout choices: INITIATE_CONTACT's third qword is the interrupt page when the requested
//!   version is < 5.0, else msg_sint/msg_vtl/feature flags; its client id (56-byte form) is read when
//!   the requested version is >= 6.0 and 56 bytes are present. VERSION_RESPONSE's 20- and 40-byte
//!   forms, OPENCHANNEL's 156-byte form and TL_CONNECT_REQUEST's silo id (5.2+) are read when the
//!   version allows them and the bytes are present; otherwise the short form is read.
//! * GPADL_HEADER: `rangecount >= 1`; `range_buflen` a multiple of 8 large enough for the range
//!   headers; the first range's `byte_offset < 4096` and `byte_count > 0`; for a single range,
//!   `range_buflen` equal to 8 + 8 × pages spanned. The message carries
//!   `min(len - 20, range_buflen)` bytes of range data, which must be whole u64 words when more
//!   data follows in GPADL_BODY messages. Multi-range headers decode (the protocol allows them);
//!   [`crate::gpadl::Reassembler`] refuses them.
//! * GPADL_BODY: at least one PFN and a whole number of PFNs (at most 28).
//!
//! Encoding writes zero into every padding and reserved byte. `decode(encode(m))` returns `m`
//! for every value `decode` can return, with the same `version`.

mod channel;
mod codec;
mod connect;
mod error;
mod gpadl;
mod offer;
mod wire;

use core::fmt;

pub use channel::{
    CloseChannel, CloseReservedChannel, CloseReservedResponse, ModifyChannel,
    ModifyChannelResponse, OpenChannel, OpenChannelFlags, OpenChannelResult, OpenChannelSignal,
    OpenReservedChannel, RelIdReleased, RescindChannelOffer, TlConnectRequest, TlConnectResult,
};
pub use codec::{decode, encode};
pub use connect::{
    ConnectionState, ContactTarget, InitiateContact, ModifyConnection, ModifyConnectionResponse,
    VersionResponse, VersionResponseExt,
};
pub use error::{DecodeError, EncodeError};
pub use gpadl::{
    GpadlBody, GpadlCreated, GpadlHeader, GpadlTeardown, GpadlTorndown, PfnList, RangeWords,
    WordList,
};
pub use offer::{OfferChannel, OfferFlags};

/// The largest SynIC message payload, and so the largest channel message (header included).
pub const MAX_PAYLOAD: usize = 240;
/// Size of the common channel-message header (msgtype u32, padding u32).
pub const HEADER_SIZE: usize = 8;

/// A channel message type (header offset 0). Open: any u32 is representable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageType(pub u32);

macro_rules! message_types {
    ($($(#[$doc:meta])* $name:ident = $val:literal,)*) => {
        impl MessageType {
            $($(#[$doc])* pub const $name: MessageType = MessageType($val);)*

            /// The protocol name (Linux naming where it has one), or `None` for an unknown type.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($val => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

message_types! {
    /// 0: never valid.
    INVALID = 0,
    /// 1: host offers a channel.
    OFFERCHANNEL = 1,
    /// 2: host withdraws a channel.
    RESCIND_CHANNELOFFER = 2,
    /// 3: guest asks for all offers.
    REQUESTOFFERS = 3,
    /// 4: host has sent every offer.
    ALLOFFERS_DELIVERED = 4,
    /// 5: guest opens a channel.
    OPENCHANNEL = 5,
    /// 6: host answers OPENCHANNEL.
    OPENCHANNEL_RESULT = 6,
    /// 7: guest closes a channel.
    CLOSECHANNEL = 7,
    /// 8: guest starts a GPADL.
    GPADL_HEADER = 8,
    /// 9: guest continues a GPADL's PFN list.
    GPADL_BODY = 9,
    /// 10: host confirms a GPADL.
    GPADL_CREATED = 10,
    /// 11: guest tears a GPADL down.
    GPADL_TEARDOWN = 11,
    /// 12: host confirms the teardown.
    GPADL_TORNDOWN = 12,
    /// 13: guest releases a rescinded relid.
    RELID_RELEASED = 13,
    /// 14: guest requests a protocol version.
    INITIATE_CONTACT = 14,
    /// 15: host answers INITIATE_CONTACT.
    VERSION_RESPONSE = 15,
    /// 16: guest disconnects.
    UNLOAD = 16,
    /// 17: host confirms UNLOAD (OpenVMM: UNLOAD_COMPLETE).
    UNLOAD_RESPONSE = 17,
    /// 18: open a reserved channel (Linux CHANNELMSG_18).
    OPEN_RESERVED_CHANNEL = 18,
    /// 19: close a reserved channel (Linux CHANNELMSG_19).
    CLOSE_RESERVED_CHANNEL = 19,
    /// 20: reserved channel closed (Linux CHANNELMSG_20).
    CLOSE_RESERVED_RESPONSE = 20,
    /// 21: guest asks for an hv_sock connection.
    TL_CONNECT_REQUEST = 21,
    /// 22: guest retargets a channel's interrupt.
    MODIFYCHANNEL = 22,
    /// 23: host reports a failed hv_sock connection.
    TL_CONNECT_RESULT = 23,
    /// 24: host acknowledges MODIFYCHANNEL (5.3+).
    MODIFYCHANNEL_RESPONSE = 24,
    /// 25: guest replaces the monitor pages (6.0 + feature).
    MODIFY_CONNECTION = 25,
    /// 26: host answers MODIFY_CONNECTION.
    MODIFY_CONNECTION_RESPONSE = 26,
    /// 27: guest pauses control messages (6.0 + feature).
    PAUSE = 27,
    /// 28: host confirms PAUSE.
    PAUSE_RESPONSE = 28,
    /// 29: guest resumes control messages.
    RESUME = 29,
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown message type {}", self.0),
        }
    }
}

impl fmt::Debug for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageType({}={})", self.0, self.name().unwrap_or("?"))
    }
}

/// The 8-byte common header: message type and a padding word (0 when sent, ignored when read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageHeader {
    /// Offset 0.
    pub msgtype: MessageType,
    /// Offset 4; zero on the wire when we send.
    pub padding: u32,
}

impl MessageHeader {
    /// Reads the header from the first 8 bytes, or `None` if there are fewer.
    pub fn read(bytes: &[u8]) -> Option<MessageHeader> {
        let h = bytes.get(..HEADER_SIZE)?;
        Some(MessageHeader {
            msgtype: MessageType(u32::from_le_bytes([h[0], h[1], h[2], h[3]])),
            padding: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        })
    }
}

/// Every channel message a guest sends or receives, as a typed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelMessage {
    /// 1.
    OfferChannel(OfferChannel),
    /// 2.
    RescindChannelOffer(RescindChannelOffer),
    /// 3.
    RequestOffers,
    /// 4.
    AllOffersDelivered,
    /// 5 (148 bytes, or 156 with the 6.0 signal parameters).
    OpenChannel(OpenChannel),
    /// 6.
    OpenChannelResult(OpenChannelResult),
    /// 7.
    CloseChannel(CloseChannel),
    /// 8.
    GpadlHeader(GpadlHeader),
    /// 9.
    GpadlBody(GpadlBody),
    /// 10.
    GpadlCreated(GpadlCreated),
    /// 11.
    GpadlTeardown(GpadlTeardown),
    /// 12.
    GpadlTorndown(GpadlTorndown),
    /// 13.
    RelIdReleased(RelIdReleased),
    /// 14 (40 bytes, or 56 with a client id).
    InitiateContact(InitiateContact),
    /// 15 (16 bytes, or 20/40 in 6.0).
    VersionResponse(VersionResponse),
    /// 16.
    Unload,
    /// 17.
    UnloadResponse,
    /// 18.
    OpenReservedChannel(OpenReservedChannel),
    /// 19.
    CloseReservedChannel(CloseReservedChannel),
    /// 20.
    CloseReservedResponse(CloseReservedResponse),
    /// 21 (40 bytes, or 56 with a silo id).
    TlConnectRequest(TlConnectRequest),
    /// 22.
    ModifyChannel(ModifyChannel),
    /// 23.
    TlConnectResult(TlConnectResult),
    /// 24.
    ModifyChannelResponse(ModifyChannelResponse),
    /// 25.
    ModifyConnection(ModifyConnection),
    /// 26.
    ModifyConnectionResponse(ModifyConnectionResponse),
    /// 27.
    Pause,
    /// 28.
    PauseResponse,
    /// 29.
    Resume,
}

impl ChannelMessage {
    /// The message's type.
    pub fn msgtype(&self) -> MessageType {
        codec::msgtype_of(self)
    }

    /// The number of bytes [`encode`] writes for this value (header included).
    pub fn wire_len(&self) -> usize {
        codec::wire_len(self)
    }
}
