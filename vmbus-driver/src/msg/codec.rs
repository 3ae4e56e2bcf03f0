//! The conformance entry points [`decode`] and [`encode`], and the [`Body`] of each message type
//! that the message table (`message_table!` in the module root) dispatches to.

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
use super::{ChannelMessage, DecodeError, EncodeError, MAX_PAYLOAD, MessageHeader};
use crate::version::Version;

/// How one message type's bytes are read, sized and written (header included in every slice).
pub(crate) trait Body: Sized {
    /// The smallest valid size, header included (the short form where there are several).
    const MIN_SIZE: usize;

    /// Reads the message from `b`, at least [`Body::MIN_SIZE`] bytes of untrusted data;
    /// `version` as given to [`decode`] chooses among a type's forms.
    fn read_body(b: &[u8], version: Option<Version>) -> Result<Self, DecodeError>;

    /// Writes the fields into `b` (its [`Body::body_len`] bytes, zeroed, header already set).
    fn write_body(&self, b: &mut [u8]);

    /// The encoded size of this value, header included.
    fn body_len(&self) -> usize {
        Self::MIN_SIZE
    }

    /// The field that does not fit the layout the value's own fields imply, if any.
    fn layout_mismatch(&self) -> Option<&'static str> {
        None
    }
}

/// Bodies of one fixed layout, read and written by the type's own `read` / `write`.
macro_rules! fixed_body {
    ($($t:ty),* $(,)?) => {$(
        impl Body for $t {
            const MIN_SIZE: usize = <$t>::SIZE;

            fn read_body(b: &[u8], _: Option<Version>) -> Result<Self, DecodeError> {
                Ok(<$t>::read(b))
            }

            fn write_body(&self, b: &mut [u8]) {
                self.write(b);
            }
        }
    )*};
}

fixed_body!(
    OfferChannel,
    RescindChannelOffer,
    OpenChannelResult,
    CloseChannel,
    GpadlCreated,
    GpadlTeardown,
    GpadlTorndown,
    RelIdReleased,
    OpenReservedChannel,
    CloseReservedChannel,
    CloseReservedResponse,
    ModifyChannel,
    TlConnectResult,
    ModifyChannelResponse,
    ModifyConnection,
);

/// Whether `version` has the 6.0 forms (OPENCHANNEL's signal parameters, VERSION_RESPONSE's
/// features).
fn v6(version: Option<Version>) -> bool {
    version.is_some_and(|v| v.supports_feature_flags())
}

impl Body for OpenChannel {
    const MIN_SIZE: usize = Self::SIZE;

    fn read_body(b: &[u8], version: Option<Version>) -> Result<Self, DecodeError> {
        Ok(Self::read(b, v6(version) && b.len() >= Self::SIZE_V6))
    }

    fn write_body(&self, b: &mut [u8]) {
        self.write(b);
    }

    fn body_len(&self) -> usize {
        self.wire_len()
    }
}

/// Bodies whose length follows their content (a PFN array), read by the type's own checked
/// `read`.
macro_rules! sized_body {
    ($($t:ty),* $(,)?) => {$(
        impl Body for $t {
            const MIN_SIZE: usize = <$t>::MIN_SIZE;

            fn read_body(b: &[u8], _: Option<Version>) -> Result<Self, DecodeError> {
                <$t>::read(b)
            }

            fn write_body(&self, b: &mut [u8]) {
                self.write(b);
            }

            fn body_len(&self) -> usize {
                self.wire_len()
            }
        }
    )*};
}

sized_body!(GpadlHeader, GpadlBody);

impl Body for InitiateContact {
    const MIN_SIZE: usize = Self::SIZE;

    fn read_body(b: &[u8], _: Option<Version>) -> Result<Self, DecodeError> {
        Ok(Self::read(b))
    }

    fn write_body(&self, b: &mut [u8]) {
        self.write(b);
    }

    fn body_len(&self) -> usize {
        self.wire_len()
    }

    fn layout_mismatch(&self) -> Option<&'static str> {
        InitiateContact::layout_mismatch(self)
    }
}

impl Body for VersionResponse {
    const MIN_SIZE: usize = Self::SIZE;

    fn read_body(b: &[u8], version: Option<Version>) -> Result<Self, DecodeError> {
        Ok(Self::read(b, v6(version)))
    }

    fn write_body(&self, b: &mut [u8]) {
        self.write(b);
    }

    fn body_len(&self) -> usize {
        self.wire_len()
    }

    fn layout_mismatch(&self) -> Option<&'static str> {
        VersionResponse::layout_mismatch(self)
    }
}

impl Body for TlConnectRequest {
    const MIN_SIZE: usize = Self::SIZE;

    fn read_body(b: &[u8], version: Option<Version>) -> Result<Self, DecodeError> {
        let silo =
            version.is_some_and(|v| v.supports_tl_connect_silo_id()) && b.len() >= Self::SIZE_SILO;
        Ok(Self::read(b, silo))
    }

    fn write_body(&self, b: &mut [u8]) {
        self.write(b);
    }

    fn body_len(&self) -> usize {
        self.wire_len()
    }
}

impl Body for ModifyConnectionResponse {
    const MIN_SIZE: usize = Self::SIZE;

    fn read_body(b: &[u8], _: Option<Version>) -> Result<Self, DecodeError> {
        Ok(Self {
            connection_state: ConnectionState(b[8]),
        })
    }

    fn write_body(&self, b: &mut [u8]) {
        b[8] = self.connection_state.0;
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
    if !t.is_known() {
        return Err(DecodeError::UnknownType(t.0));
    }
    let len = bytes.len();
    if len > MAX_PAYLOAD {
        return Err(DecodeError::TooLong { msgtype: t, len });
    }
    if let (Some(v), Some(min)) = (version, t.since())
        && v < min
    {
        return Err(DecodeError::NotInVersion {
            msgtype: t,
            version: v,
        });
    }
    let min = t.min_size();
    if len < min {
        return Err(DecodeError::TooShort {
            msgtype: t,
            len,
            min,
        });
    }
    ChannelMessage::read_body(t, bytes, version)
}

/// Encodes `msg` (header included) at the start of `buf` and returns the number of bytes written:
/// exactly the message's wire size, at most 240.
pub fn encode(msg: &ChannelMessage, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let t = msg.msgtype();
    if let Some(field) = msg.layout_mismatch() {
        return Err(EncodeError::LayoutMismatch { msgtype: t, field });
    }
    let n = msg.wire_len();
    let have = buf.len();
    let out = buf.get_mut(..n).ok_or(EncodeError::BufferTooSmall {
        msgtype: t,
        needed: n,
        have,
    })?;
    out.fill(0);
    out[..4].copy_from_slice(&t.0.to_le_bytes());
    msg.write_body(out);
    Ok(n)
}
