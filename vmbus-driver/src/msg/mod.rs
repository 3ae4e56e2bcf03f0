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
//! * Message type 0 or not in the message table (today: > 29): [`DecodeError::UnknownType`]
//!   (never a panic, never a variant).
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

use crate::version::Version;
use codec::Body;

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

impl MessageType {
    /// 0: never valid.
    pub const INVALID: MessageType = MessageType(0);
}

/// The message table, written once: each row is a type's number, its protocol name (Linux
/// naming where it has one), its [`ChannelMessage`] variant with the body type it carries (none
/// for a header-only message), and the version that introduced it (`any`: accepted at any
/// version, also before negotiation). The [`MessageType`] constants and names, the
/// [`ChannelMessage`] enum and the codec's type dispatch (decode, encode, sizes, version gate)
/// all follow from it.
macro_rules! message_table {
    (@since any) => { None };
    (@since $v:ident) => { Some(Version::$v) };
    (@min_size) => { HEADER_SIZE };
    (@min_size $body:ty) => { <$body as Body>::MIN_SIZE };
    (@read $variant:ident, $b:ident, $v:ident) => { ChannelMessage::$variant };
    (@read $variant:ident $body:ty, $b:ident, $v:ident) => {
        ChannelMessage::$variant(<$body as Body>::read_body($b, $v)?)
    };
    (@body $variant:ident, $msg:ident, |$m:ident| $e:expr, $none:expr) => { $none };
    (@body $variant:ident $body:ty, $msg:ident, |$m:ident| $e:expr, $none:expr) => {
        match $msg {
            ChannelMessage::$variant($m) => $e,
            _ => $none,
        }
    };
    ($(
        $(#[$doc:meta])*
        $num:literal $name:ident => $variant:ident $(($body:ty))?, since $since:ident;
    )*) => {
        impl MessageType {
            $($(#[$doc])* pub const $name: MessageType = MessageType($num);)*

            /// The protocol name (Linux naming where it has one), or `None` for an unknown type.
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    0 => Some("INVALID"),
                    $($num => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// Whether the type is a message of the table (not 0, not unknown).
            pub const fn is_known(self) -> bool {
                // The rows' numbers are a range today; written per row so a gap stays unknown.
                #[allow(clippy::manual_range_patterns)]
                let known = matches!(self.0, $($num)|*);
                known
            }

            /// The version that introduced the type (docs/protocol.md#message-types, "Min ver");
            /// `None` when it is accepted at any version, also before negotiation, or unknown.
            pub(crate) fn since(self) -> Option<Version> {
                match self.0 {
                    $($num => message_table!(@since $since),)*
                    _ => None,
                }
            }

            /// The smallest valid size of the type, header included (the short form where
            /// there are several).
            pub(crate) fn min_size(self) -> usize {
                match self.0 {
                    $($num => message_table!(@min_size $($body)?),)*
                    _ => HEADER_SIZE,
                }
            }
        }

        /// Every channel message a guest sends or receives, as a typed value.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ChannelMessage {
            $($(#[$doc])* $variant $(($body))?,)*
        }

        impl ChannelMessage {
            /// The message's type.
            pub fn msgtype(&self) -> MessageType {
                match self {
                    $(Self::$variant { .. } => MessageType::$name,)*
                }
            }

            /// The number of bytes [`encode`] writes for this value (header included).
            pub fn wire_len(&self) -> usize {
                match self {
                    $(Self::$variant { .. } => message_table!(
                        @body $variant $($body)?, self, |m| m.body_len(), HEADER_SIZE
                    ),)*
                }
            }

            /// Reads a message of known type `t` from `b` (its length checked against the type's
            /// minimum size).
            pub(crate) fn read_body(
                t: MessageType,
                b: &[u8],
                version: Option<Version>,
            ) -> Result<ChannelMessage, DecodeError> {
                Ok(match t.0 {
                    $($num => message_table!(@read $variant $($body)?, b, version),)*
                    other => return Err(DecodeError::UnknownType(other)),
                })
            }

            /// Writes the body (after the header) into `out`, exactly [`Self::wire_len`] bytes
            /// of zeroes.
            pub(crate) fn write_body(&self, out: &mut [u8]) {
                match self {
                    $(Self::$variant { .. } => message_table!(
                        @body $variant $($body)?, self, |m| m.write_body(out), ()
                    ),)*
                }
            }

            /// The field that does not fit the layout the value's own fields imply, if any.
            pub(crate) fn layout_mismatch(&self) -> Option<&'static str> {
                match self {
                    $(Self::$variant { .. } => message_table!(
                        @body $variant $($body)?, self, |m| m.layout_mismatch(), None
                    ),)*
                }
            }
        }
    };
}

message_table! {
    /// 1: host offers a channel (196 bytes).
    1 OFFERCHANNEL => OfferChannel(OfferChannel), since WS2008;
    /// 2: host withdraws a channel.
    2 RESCIND_CHANNELOFFER => RescindChannelOffer(RescindChannelOffer), since WS2008;
    /// 3: guest asks for all offers.
    3 REQUESTOFFERS => RequestOffers, since WS2008;
    /// 4: host has sent every offer.
    4 ALLOFFERS_DELIVERED => AllOffersDelivered, since WS2008;
    /// 5: guest opens a channel (148 bytes, or 156 with the 6.0 signal parameters).
    5 OPENCHANNEL => OpenChannel(OpenChannel), since WS2008;
    /// 6: host answers OPENCHANNEL.
    6 OPENCHANNEL_RESULT => OpenChannelResult(OpenChannelResult), since WS2008;
    /// 7: guest closes a channel.
    7 CLOSECHANNEL => CloseChannel(CloseChannel), since WS2008;
    /// 8: guest starts a GPADL.
    8 GPADL_HEADER => GpadlHeader(GpadlHeader), since WS2008;
    /// 9: guest continues a GPADL's PFN list.
    9 GPADL_BODY => GpadlBody(GpadlBody), since WS2008;
    /// 10: host confirms a GPADL.
    10 GPADL_CREATED => GpadlCreated(GpadlCreated), since WS2008;
    /// 11: guest tears a GPADL down.
    11 GPADL_TEARDOWN => GpadlTeardown(GpadlTeardown), since WS2008;
    /// 12: host confirms the teardown.
    12 GPADL_TORNDOWN => GpadlTorndown(GpadlTorndown), since WS2008;
    /// 13: guest releases a rescinded relid.
    13 RELID_RELEASED => RelIdReleased(RelIdReleased), since WS2008;
    /// 14: guest requests a protocol version (40 bytes, or 56 with a client id).
    14 INITIATE_CONTACT => InitiateContact(InitiateContact), since any;
    /// 15: host answers INITIATE_CONTACT (16 bytes, or 20/40 in 6.0).
    15 VERSION_RESPONSE => VersionResponse(VersionResponse), since any;
    /// 16: guest disconnects.
    16 UNLOAD => Unload, since WS2008;
    /// 17: host confirms UNLOAD (OpenVMM: UNLOAD_COMPLETE).
    17 UNLOAD_RESPONSE => UnloadResponse, since WIN7;
    /// 18: open a reserved channel (Linux CHANNELMSG_18).
    18 OPEN_RESERVED_CHANNEL => OpenReservedChannel(OpenReservedChannel), since WIN10;
    /// 19: close a reserved channel (Linux CHANNELMSG_19).
    19 CLOSE_RESERVED_CHANNEL => CloseReservedChannel(CloseReservedChannel), since any;
    /// 20: reserved channel closed (Linux CHANNELMSG_20).
    20 CLOSE_RESERVED_RESPONSE => CloseReservedResponse(CloseReservedResponse), since WIN10;
    /// 21: guest asks for an hv_sock connection (40 bytes, or 56 with a silo id).
    21 TL_CONNECT_REQUEST => TlConnectRequest(TlConnectRequest), since WIN10;
    /// 22: guest retargets a channel's interrupt.
    22 MODIFYCHANNEL => ModifyChannel(ModifyChannel), since WIN10_V4_1;
    /// 23: host reports a failed hv_sock connection.
    23 TL_CONNECT_RESULT => TlConnectResult(TlConnectResult), since WIN10_V4_1;
    /// 24: host acknowledges MODIFYCHANNEL (5.3+).
    24 MODIFYCHANNEL_RESPONSE => ModifyChannelResponse(ModifyChannelResponse), since WIN10_V5_3;
    /// 25: guest replaces the monitor pages (6.0 + feature).
    25 MODIFY_CONNECTION => ModifyConnection(ModifyConnection), since WIN10_V6_0;
    /// 26: host answers MODIFY_CONNECTION.
    26 MODIFY_CONNECTION_RESPONSE => ModifyConnectionResponse(ModifyConnectionResponse),
        since WIN10_V6_0;
    /// 27: guest pauses control messages (6.0 + feature).
    27 PAUSE => Pause, since WIN10_V6_0;
    /// 28: host confirms PAUSE.
    28 PAUSE_RESPONSE => PauseResponse, since WIN10_V6_0;
    /// 29: guest resumes control messages.
    29 RESUME => Resume, since WIN10_V6_0;
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
