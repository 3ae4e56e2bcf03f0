//! Errors of channel-message decoding and encoding.

use core::fmt;

use super::MessageType;
use crate::version::Version;

/// Why untrusted bytes are not a valid channel message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer than the 8 header bytes.
    HeaderTooShort {
        /// Bytes given.
        len: usize,
    },
    /// More than the 240-byte SynIC payload limit.
    TooLong {
        /// The type in the header.
        msgtype: MessageType,
        /// Bytes given.
        len: usize,
    },
    /// Message type 0 or beyond the table (> 29).
    UnknownType(u32),
    /// The message does not exist at the negotiated version.
    NotInVersion {
        /// The type in the header.
        msgtype: MessageType,
        /// The negotiated version given to `decode`.
        version: Version,
    },
    /// Shorter than the type's minimum size for this version.
    TooShort {
        /// The type in the header.
        msgtype: MessageType,
        /// Bytes given.
        len: usize,
        /// Minimum size (header included).
        min: usize,
    },
    /// A length that does not split into whole u64 entries.
    BadLength {
        /// The type in the header.
        msgtype: MessageType,
        /// Bytes given.
        len: usize,
    },
    /// A field whose value is inconsistent or out of range.
    BadField {
        /// The type in the header.
        msgtype: MessageType,
        /// The field's protocol name.
        field: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::HeaderTooShort { len } => {
                write!(f, "channel message of {len} bytes has no 8-byte header")
            }
            DecodeError::TooLong { msgtype, len } => {
                write!(
                    f,
                    "{msgtype}: {len} bytes exceed the 240-byte SynIC payload"
                )
            }
            DecodeError::UnknownType(t) => write!(f, "unknown channel message type {t}"),
            DecodeError::NotInVersion { msgtype, version } => {
                write!(f, "{msgtype} does not exist in protocol {version}")
            }
            DecodeError::TooShort { msgtype, len, min } => {
                write!(f, "{msgtype}: {len} bytes, at least {min} needed")
            }
            DecodeError::BadLength { msgtype, len } => {
                write!(
                    f,
                    "{msgtype}: length {len} is not a whole number of entries"
                )
            }
            DecodeError::BadField { msgtype, field } => {
                write!(f, "{msgtype}: invalid {field}")
            }
        }
    }
}

/// Why a typed message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is smaller than the message.
    BufferTooSmall {
        /// The message's type.
        msgtype: MessageType,
        /// Bytes the message needs.
        needed: usize,
        /// Bytes the buffer has.
        have: usize,
    },
    /// A field set that the message's layout cannot carry (e.g. an interrupt page in an
    /// INITIATE_CONTACT requesting >= 5.0, or a client id below 6.0).
    LayoutMismatch {
        /// The message's type.
        msgtype: MessageType,
        /// The field that does not fit the layout.
        field: &'static str,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall {
                msgtype,
                needed,
                have,
            } => write!(f, "{msgtype}: needs {needed} bytes, buffer has {have}"),
            EncodeError::LayoutMismatch { msgtype, field } => {
                write!(
                    f,
                    "{msgtype}: {field} does not fit the layout of this version"
                )
            }
        }
    }
}
