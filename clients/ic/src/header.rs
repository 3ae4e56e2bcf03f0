//! The pipe and IC headers, and what the guest does with them.

/// A framework or service version: major, minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IcVersion {
    /// Major number.
    pub major: u16,
    /// Minor number.
    pub minor: u16,
}

impl IcVersion {
    /// A version.
    pub const fn new(major: u16, minor: u16) -> IcVersion {
        IcVersion { major, minor }
    }
}

impl core::fmt::Display for IcVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// IC message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgType(pub u16);

impl MsgType {
    /// Version negotiation, the first message on every channel.
    pub const NEGOTIATE: MsgType = MsgType(0);
    /// Heartbeat.
    pub const HEARTBEAT: MsgType = MsgType(1);
    /// Key-value pair exchange.
    pub const KVP: MsgType = MsgType(2);
    /// Shutdown.
    pub const SHUTDOWN: MsgType = MsgType(3);
    /// Time synchronisation.
    pub const TIMESYNC: MsgType = MsgType(4);
}

/// Header flag: part of a transaction.
pub const FLAG_TRANSACTION: u8 = 1;
/// Header flag: a request (host to guest).
pub const FLAG_REQUEST: u8 = 2;
/// Header flag: a response (guest to host).
pub const FLAG_RESPONSE: u8 = 4;

/// Bytes of the pipe header (flags, message count).
pub const PIPE_HEADER: usize = 8;
/// Bytes of the IC header.
pub const IC_HEADER: usize = 20;
/// Offset of the body in a message.
pub const BODY: usize = PIPE_HEADER + IC_HEADER;

/// The IC header as the host wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcHeader {
    /// Framework version of this message.
    pub framework: IcVersion,
    /// Message type.
    pub ty: MsgType,
    /// Service version of this message.
    pub service: IcVersion,
    /// Bytes of the body.
    pub body_size: u16,
    /// Status (the guest's answer: 0 success).
    pub status: u32,
    /// Transaction id, echoed in the answer.
    pub transaction: u8,
    /// Flags.
    pub flags: u8,
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcError {
    /// Shorter than its headers, or than its body size says.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        got: usize,
    },
    /// Not a request from the host (the request flag is missing or the response flag set).
    NotARequest {
        /// The flags.
        flags: u8,
    },
    /// A body too short for its type.
    BadBody {
        /// The type.
        ty: MsgType,
        /// The body size.
        size: u16,
    },
    /// A type this service does not take.
    Unexpected(MsgType),
    /// The answer does not fit the caller's buffer.
    NoRoom,
}

impl core::fmt::Display for IcError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IcError::Truncated { needed, got } => {
                write!(f, "truncated message: {got} bytes, {needed} needed")
            }
            IcError::NotARequest { flags } => write!(f, "not a host request (flags {flags:#x})"),
            IcError::BadBody { ty, size } => {
                write!(f, "message type {} with a {size}-byte body", ty.0)
            }
            IcError::Unexpected(t) => write!(f, "unexpected message type {}", t.0),
            IcError::NoRoom => f.write_str("the answer does not fit"),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn version_at(b: &[u8], at: usize) -> IcVersion {
    IcVersion::new(u16_at(b, at), u16_at(b, at + 2))
}

/// Reads the IC header of `msg` and checks that it is a host request whose body is all there.
pub fn request(msg: &[u8]) -> Result<IcHeader, IcError> {
    if msg.len() < BODY {
        return Err(IcError::Truncated {
            needed: BODY,
            got: msg.len(),
        });
    }
    let h = &msg[PIPE_HEADER..];
    let header = IcHeader {
        framework: version_at(h, 0),
        ty: MsgType(u16_at(h, 4)),
        service: version_at(h, 6),
        body_size: u16_at(h, 10),
        status: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
        transaction: h[16],
        flags: h[17],
    };
    if header.flags & FLAG_REQUEST == 0 || header.flags & FLAG_RESPONSE != 0 {
        return Err(IcError::NotARequest {
            flags: header.flags,
        });
    }
    let needed = BODY + usize::from(header.body_size);
    if msg.len() < needed {
        return Err(IcError::Truncated {
            needed,
            got: msg.len(),
        });
    }
    Ok(header)
}

/// Turns the request in `msg` into its answer in place: the response flag instead of the
/// request flag, `status`, and the body size `body_size` (the caller rewrote the body). The
/// answer's length.
pub fn answer(msg: &mut [u8], status: u32, body_size: u16) -> Result<usize, IcError> {
    let len = BODY + usize::from(body_size);
    if msg.len() < len {
        return Err(IcError::NoRoom);
    }
    let h = &mut msg[PIPE_HEADER..];
    h[10..12].copy_from_slice(&body_size.to_le_bytes());
    h[12..16].copy_from_slice(&status.to_le_bytes());
    h[17] = FLAG_TRANSACTION | FLAG_RESPONSE;
    Ok(len)
}
