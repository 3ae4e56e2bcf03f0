//! The conformance entry points [`decode`] and [`encode`], and the per-type size and version table.

use super::channel::{
    CloseChannel, CloseReservedChannel, CloseReservedResponse, ModifyChannel,
    ModifyChannelResponse, OpenChannel, OpenChannelResult, OpenReservedChannel, RelIdReleased,
    RescindChannelOffer, TlConnectRequest, TlConnectResult,
};
use super::connect::{
    ConnectionState, InitiateContact, ModifyConnection, ModifyConnectionResponse, VersionResponse,
};
use super::gpadl::{GpadlBody, GpadlCreated, GpadlHeader, GpadlTeardown, GpadlTorndown};
use super::offer::OfferChannel;
use super::{
    ChannelMessage, DecodeError, EncodeError, HEADER_SIZE, MAX_PAYLOAD, MessageHeader, MessageType,
};
use crate::version::Version;

/// The version that introduced a message type (§3.2 "Min ver"); `None` = accepted at any version,
/// also when disconnected (INITIATE_CONTACT, VERSION_RESPONSE, CLOSE_RESERVED_CHANNEL).
fn min_version(t: MessageType) -> Option<Version> {
    match t.0 {
        1..=13 | 16 => Some(Version::WS2008),
        17 => Some(Version::WIN7),
        18 | 20 | 21 => Some(Version::WIN10),
        22 | 23 => Some(Version::WIN10_V4_1),
        24 => Some(Version::WIN10_V5_3),
        25..=29 => Some(Version::WIN10_V6_0),
        _ => None,
    }
}

/// The smallest valid size of a message type, header included (the short form where there are
/// several).
fn min_size(t: MessageType) -> usize {
    match t.0 {
        1 => OfferChannel::SIZE,
        2 => RescindChannelOffer::SIZE,
        5 => OpenChannel::SIZE,
        6 => OpenChannelResult::SIZE,
        7 => CloseChannel::SIZE,
        8 => GpadlHeader::MIN_SIZE,
        9 => GpadlBody::MIN_SIZE,
        10 => GpadlCreated::SIZE,
        11 => GpadlTeardown::SIZE,
        12 => GpadlTorndown::SIZE,
        13 => RelIdReleased::SIZE,
        14 => InitiateContact::SIZE,
        15 => VersionResponse::SIZE,
        18 => OpenReservedChannel::SIZE,
        19 => CloseReservedChannel::SIZE,
        20 => CloseReservedResponse::SIZE,
        21 => TlConnectRequest::SIZE,
        22 => ModifyChannel::SIZE,
        23 => TlConnectResult::SIZE,
        24 => ModifyChannelResponse::SIZE,
        25 => ModifyConnection::SIZE,
        26 => ModifyConnectionResponse::SIZE,
        // 3, 4, 16, 17, 27, 28, 29: header only.
        _ => HEADER_SIZE,
    }
}

/// Decodes one channel message (header included) from untrusted bytes.
///
/// `version` is the negotiated protocol version, or `None` before negotiation; see the module
/// documentation for the exact rules. Never panics, for any input.
pub fn decode(bytes: &[u8], version: Option<Version>) -> Result<ChannelMessage, DecodeError> {
    let header =
        MessageHeader::read(bytes).ok_or(DecodeError::HeaderTooShort { len: bytes.len() })?;
    let t = header.msgtype;
    if t.0 == 0 || t.0 > 29 {
        return Err(DecodeError::UnknownType(t.0));
    }
    let len = bytes.len();
    if len > MAX_PAYLOAD {
        return Err(DecodeError::TooLong { msgtype: t, len });
    }
    if let (Some(v), Some(min)) = (version, min_version(t))
        && v < min
    {
        return Err(DecodeError::NotInVersion {
            msgtype: t,
            version: v,
        });
    }
    let min = min_size(t);
    if len < min {
        return Err(DecodeError::TooShort {
            msgtype: t,
            len,
            min,
        });
    }
    let v6 = version.is_some_and(|v| v.supports_feature_flags());
    let b = bytes;
    Ok(match t.0 {
        1 => ChannelMessage::OfferChannel(OfferChannel::read(b)),
        2 => ChannelMessage::RescindChannelOffer(RescindChannelOffer::read(b)),
        3 => ChannelMessage::RequestOffers,
        4 => ChannelMessage::AllOffersDelivered,
        5 => ChannelMessage::OpenChannel(OpenChannel::read(b, v6 && len >= OpenChannel::SIZE_V6)),
        6 => ChannelMessage::OpenChannelResult(OpenChannelResult::read(b)),
        7 => ChannelMessage::CloseChannel(CloseChannel::read(b)),
        8 => ChannelMessage::GpadlHeader(GpadlHeader::read(b)?),
        9 => ChannelMessage::GpadlBody(GpadlBody::read(b)?),
        10 => ChannelMessage::GpadlCreated(GpadlCreated::read(b)),
        11 => ChannelMessage::GpadlTeardown(GpadlTeardown::read(b)),
        12 => ChannelMessage::GpadlTorndown(GpadlTorndown::read(b)),
        13 => ChannelMessage::RelIdReleased(RelIdReleased::read(b)),
        14 => ChannelMessage::InitiateContact(InitiateContact::read(b)),
        15 => ChannelMessage::VersionResponse(VersionResponse::read(b, v6)),
        16 => ChannelMessage::Unload,
        17 => ChannelMessage::UnloadResponse,
        18 => ChannelMessage::OpenReservedChannel(OpenReservedChannel::read(b)),
        19 => ChannelMessage::CloseReservedChannel(CloseReservedChannel::read(b)),
        20 => ChannelMessage::CloseReservedResponse(CloseReservedResponse::read(b)),
        21 => {
            let silo = version.is_some_and(|v| v.supports_tl_connect_silo_id())
                && len >= TlConnectRequest::SIZE_SILO;
            ChannelMessage::TlConnectRequest(TlConnectRequest::read(b, silo))
        }
        22 => ChannelMessage::ModifyChannel(ModifyChannel::read(b)),
        23 => ChannelMessage::TlConnectResult(TlConnectResult::read(b)),
        24 => ChannelMessage::ModifyChannelResponse(ModifyChannelResponse::read(b)),
        25 => ChannelMessage::ModifyConnection(ModifyConnection::read(b)),
        26 => ChannelMessage::ModifyConnectionResponse(ModifyConnectionResponse {
            connection_state: ConnectionState(b[8]),
        }),
        27 => ChannelMessage::Pause,
        28 => ChannelMessage::PauseResponse,
        // 29 is the only type left after the range check above.
        _ => ChannelMessage::Resume,
    })
}

/// Encodes `msg` (header included) at the start of `buf` and returns the number of bytes written:
/// exactly the message's wire size, at most 240.
pub fn encode(msg: &ChannelMessage, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let t = msgtype_of(msg);
    let mismatch = match msg {
        ChannelMessage::InitiateContact(m) => m.layout_mismatch(),
        ChannelMessage::VersionResponse(m) => m.layout_mismatch(),
        _ => None,
    };
    if let Some(field) = mismatch {
        return Err(EncodeError::LayoutMismatch { msgtype: t, field });
    }
    let n = wire_len(msg);
    let have = buf.len();
    let out = buf.get_mut(..n).ok_or(EncodeError::BufferTooSmall {
        msgtype: t,
        needed: n,
        have,
    })?;
    out.fill(0);
    out[..4].copy_from_slice(&t.0.to_le_bytes());
    match msg {
        ChannelMessage::OfferChannel(m) => m.write(out),
        ChannelMessage::RescindChannelOffer(m) => m.write(out),
        ChannelMessage::OpenChannel(m) => m.write(out),
        ChannelMessage::OpenChannelResult(m) => m.write(out),
        ChannelMessage::CloseChannel(m) => m.write(out),
        ChannelMessage::GpadlHeader(m) => m.write(out),
        ChannelMessage::GpadlBody(m) => m.write(out),
        ChannelMessage::GpadlCreated(m) => m.write(out),
        ChannelMessage::GpadlTeardown(m) => m.write(out),
        ChannelMessage::GpadlTorndown(m) => m.write(out),
        ChannelMessage::RelIdReleased(m) => m.write(out),
        ChannelMessage::InitiateContact(m) => m.write(out),
        ChannelMessage::VersionResponse(m) => m.write(out),
        ChannelMessage::OpenReservedChannel(m) => m.write(out),
        ChannelMessage::CloseReservedChannel(m) => m.write(out),
        ChannelMessage::CloseReservedResponse(m) => m.write(out),
        ChannelMessage::TlConnectRequest(m) => m.write(out),
        ChannelMessage::ModifyChannel(m) => m.write(out),
        ChannelMessage::TlConnectResult(m) => m.write(out),
        ChannelMessage::ModifyChannelResponse(m) => m.write(out),
        ChannelMessage::ModifyConnection(m) => m.write(out),
        ChannelMessage::ModifyConnectionResponse(m) => out[8] = m.connection_state.0,
        ChannelMessage::RequestOffers
        | ChannelMessage::AllOffersDelivered
        | ChannelMessage::Unload
        | ChannelMessage::UnloadResponse
        | ChannelMessage::Pause
        | ChannelMessage::PauseResponse
        | ChannelMessage::Resume => {}
    }
    Ok(n)
}

pub(crate) fn msgtype_of(msg: &ChannelMessage) -> MessageType {
    use ChannelMessage as M;
    MessageType(match msg {
        M::OfferChannel(_) => 1,
        M::RescindChannelOffer(_) => 2,
        M::RequestOffers => 3,
        M::AllOffersDelivered => 4,
        M::OpenChannel(_) => 5,
        M::OpenChannelResult(_) => 6,
        M::CloseChannel(_) => 7,
        M::GpadlHeader(_) => 8,
        M::GpadlBody(_) => 9,
        M::GpadlCreated(_) => 10,
        M::GpadlTeardown(_) => 11,
        M::GpadlTorndown(_) => 12,
        M::RelIdReleased(_) => 13,
        M::InitiateContact(_) => 14,
        M::VersionResponse(_) => 15,
        M::Unload => 16,
        M::UnloadResponse => 17,
        M::OpenReservedChannel(_) => 18,
        M::CloseReservedChannel(_) => 19,
        M::CloseReservedResponse(_) => 20,
        M::TlConnectRequest(_) => 21,
        M::ModifyChannel(_) => 22,
        M::TlConnectResult(_) => 23,
        M::ModifyChannelResponse(_) => 24,
        M::ModifyConnection(_) => 25,
        M::ModifyConnectionResponse(_) => 26,
        M::Pause => 27,
        M::PauseResponse => 28,
        M::Resume => 29,
    })
}

pub(crate) fn wire_len(msg: &ChannelMessage) -> usize {
    match msg {
        ChannelMessage::OpenChannel(m) => m.wire_len(),
        ChannelMessage::GpadlHeader(m) => m.wire_len(),
        ChannelMessage::GpadlBody(m) => m.wire_len(),
        ChannelMessage::InitiateContact(m) => m.wire_len(),
        ChannelMessage::VersionResponse(m) => m.wire_len(),
        ChannelMessage::TlConnectRequest(m) => m.wire_len(),
        other => min_size(msgtype_of(other)),
    }
}
