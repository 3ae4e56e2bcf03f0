//! The library's error type.

use core::fmt;

use vmbus_driver::control::{self, FrameError};
use vmbus_driver::ring::RingError;

/// Why a client operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// The channel was closed, rescinded or torn down after a fault: its rings are gone. Every
    /// later operation on it fails the same way; open a new channel.
    ChannelGone,
    /// The driver refused the request for another reason.
    Refused(control::ClientError),
    /// The open completed with a failure (host refusal, timeout or driver resources).
    OpenFailed,
    /// No completion arrived for an open: the wait for the driver's notification returned
    /// nothing. The open was cancelled.
    NoCompletion,
    /// A ring operation failed: full, too big, or (`Corrupt`) the host wrote invalid ring data.
    Ring(RingError),
    /// The receive buffer is smaller than the packet's payload, which stays in the ring.
    BufferTooSmall {
        /// Payload bytes of the packet.
        needed: usize,
    },
    /// The driver's response could not be decoded.
    BadResponse(FrameError),
    /// The driver answered with a response that does not fit the request, or a status record
    /// that makes no sense.
    UnexpectedResponse,
    /// The requested ring sizes are unusable (below two pages each, or too large for the window
    /// slot), checked before asking the driver.
    BadRingSize,
    /// More offers than the list can hold.
    TooManyOffers,
    /// No offer of the class came: the wait for the driver's notification returned nothing.
    NoOffer,
    /// A buffer's creation failed: the host refused its GPADL, or never answered.
    BufferFailed,
    /// A buffer access past the buffer's end.
    OutOfBuffer,
    /// The environment gives no access to window pages (map the buffer's window page instead).
    NoWindowAccess,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ChannelGone => f.write_str("channel gone (closed, rescinded or torn down)"),
            Self::Refused(e) => write!(f, "driver refused the request: {e}"),
            Self::OpenFailed => f.write_str("the open failed"),
            Self::NoCompletion => f.write_str("no completion arrived for the open"),
            Self::Ring(e) => write!(f, "ring: {e}"),
            Self::BufferTooSmall { needed } => {
                write!(f, "receive buffer too small for a {needed}-byte payload")
            }
            Self::BadResponse(e) => write!(f, "undecodable driver response: {e}"),
            Self::UnexpectedResponse => f.write_str("driver response does not fit the request"),
            Self::BadRingSize => f.write_str("ring sizes unusable for the window slot"),
            Self::TooManyOffers => f.write_str("more offers than the list holds"),
            Self::NoOffer => f.write_str("no offer of the class arrived"),
            Self::BufferFailed => f.write_str("the buffer could not be created"),
            Self::OutOfBuffer => f.write_str("access past the buffer's end"),
            Self::NoWindowAccess => f.write_str("no access to window pages here"),
        }
    }
}

impl From<control::ClientError> for ClientError {
    fn from(e: control::ClientError) -> Self {
        match e {
            control::ClientError::ChannelGone => Self::ChannelGone,
            other => Self::Refused(other),
        }
    }
}

impl From<RingError> for ClientError {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}
