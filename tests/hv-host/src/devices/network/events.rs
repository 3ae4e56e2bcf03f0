//! What the network device refuses ([`NetFault`]) and what its trace records ([`NetEvent`]).

use core::fmt;

/// Why the host refused something the guest sent on the network channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetFault {
    /// An NVSP message shorter than its type needs.
    Truncated {
        /// NVSP type.
        ty: u32,
        /// Bytes.
        len: usize,
    },
    /// An NVSP type the host does not handle.
    UnknownMessage(u32),
    /// An NVSP message before a successful INIT.
    NotInitialized(u32),
    /// A buffer GPADL the host does not hold for this channel, or too small.
    BadBuffer(u32),
    /// A send-buffer section index or size outside the send buffer (or no send buffer).
    BadSection {
        /// Index.
        index: u32,
        /// Size.
        size: u32,
    },
    /// GPA-direct ranges that are malformed, too many, or larger than a send section.
    BadRanges,
    /// An RNDIS message before the receive buffer was given.
    NoReceiveBuffer,
    /// An RNDIS message length under 8 bytes or past the data carried.
    RndisLength {
        /// RNDIS type.
        ty: u32,
        /// Its length field.
        len: u32,
        /// Bytes available.
        avail: u32,
    },
    /// An RNDIS packet whose data offset and length leave the message.
    RndisDataOffset {
        /// data_offset.
        offset: u32,
        /// data_length.
        length: u32,
        /// message_length.
        message: u32,
    },
    /// An RNDIS type the host does not accept from a guest.
    UnexpectedRndis(u32),
    /// A completion for a transaction id the host has outstanding for no receive region.
    UnknownCompletion(u64),
}

impl fmt::Display for NetFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { ty, len } => write!(f, "NVSP type {ty} in {len} bytes"),
            Self::UnknownMessage(t) => write!(f, "NVSP type {t} not handled"),
            Self::NotInitialized(t) => write!(f, "NVSP type {t} before INIT"),
            Self::BadBuffer(g) => write!(f, "buffer GPADL {g:#x} unknown or too small"),
            Self::BadSection { index, size } => {
                write!(
                    f,
                    "send section {index:#x} size {size} outside the send buffer"
                )
            }
            Self::BadRanges => f.write_str("GPA-direct ranges malformed or too large"),
            Self::NoReceiveBuffer => f.write_str("RNDIS message before the receive buffer"),
            Self::RndisLength { ty, len, avail } => {
                write!(f, "RNDIS type {ty:#x} length {len} with {avail} bytes")
            }
            Self::RndisDataOffset {
                offset,
                length,
                message,
            } => write!(
                f,
                "RNDIS packet data offset {offset} length {length} in a {message}-byte message"
            ),
            Self::UnexpectedRndis(t) => write!(f, "RNDIS type {t:#x} not accepted from a guest"),
            Self::UnknownCompletion(t) => write!(f, "completion for unknown transaction {t:#x}"),
        }
    }
}

/// One traced NVSP or RNDIS control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetEvent {
    /// NVSP INIT and the version chosen (`None`: refused).
    Init {
        /// Oldest version offered.
        min: u32,
        /// Newest version offered.
        max: u32,
        /// The version accepted.
        accepted: Option<u32>,
    },
    /// SEND_NDIS_VERSION.
    NdisVersion {
        /// Major.
        major: u32,
        /// Minor.
        minor: u32,
    },
    /// SEND_NDIS_CONFIG.
    NdisConfig {
        /// MTU.
        mtu: u32,
    },
    /// SEND_RECEIVE_BUFFER and its answer.
    ReceiveBuffer {
        /// GPADL id.
        gpadl: u32,
        /// Bytes (0: refused).
        size: u32,
        /// Sub-allocations answered.
        sections: u32,
    },
    /// SEND_SEND_BUFFER and its answer.
    SendBuffer {
        /// GPADL id.
        gpadl: u32,
        /// Bytes (0: refused).
        size: u32,
    },
    /// REVOKE_RECEIVE_BUFFER / REVOKE_SEND_BUFFER.
    Revoke {
        /// The receive buffer (else the send buffer).
        receive: bool,
    },
    /// Another NVSP message (SWITCH_DATA_PATH, SUB_CHANNEL, ...) by type.
    Other(u32),
    /// RNDIS INITIALIZE.
    RndisInit {
        /// Request id.
        request: u32,
        /// Major version.
        major: u32,
        /// Minor version.
        minor: u32,
    },
    /// RNDIS QUERY and the answer's status.
    Query {
        /// OID.
        oid: u32,
        /// Status.
        status: u32,
    },
    /// RNDIS SET and the answer's status.
    Set {
        /// OID.
        oid: u32,
        /// First u32 of the value.
        value: u32,
        /// Status.
        status: u32,
    },
    /// RNDIS INDICATE_STATUS sent.
    Indicate {
        /// Status (0x4001000B connect, 0x4001000C disconnect).
        status: u32,
    },
    /// RNDIS KEEPALIVE.
    Keepalive {
        /// Request id.
        request: u32,
    },
    /// RNDIS HALT or RESET.
    HaltOrReset {
        /// RNDIS type.
        ty: u32,
    },
}

impl fmt::Display for NetEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = |v: u32| ((v >> 16), v & 0xFFFF);
        match *self {
            Self::Init { min, max, accepted } => {
                write!(f, "NVSP INIT {min:#x}..{max:#x} ")?;
                match accepted {
                    Some(a) => write!(f, "accepted {}.{}", v(a).0, v(a).1),
                    None => f.write_str("refused"),
                }
            }
            Self::NdisVersion { major, minor } => write!(f, "NVSP NDIS version {major}.{minor}"),
            Self::NdisConfig { mtu } => write!(f, "NVSP NDIS config mtu {mtu}"),
            Self::ReceiveBuffer {
                gpadl,
                size,
                sections,
            } => write!(
                f,
                "NVSP receive buffer gpadl {gpadl:#x} {size} bytes, {sections} sub-allocations"
            ),
            Self::SendBuffer { gpadl, size } => {
                write!(f, "NVSP send buffer gpadl {gpadl:#x} {size} bytes")
            }
            Self::Revoke { receive } => {
                let which = if receive { "receive" } else { "send" };
                write!(f, "NVSP revoke {which} buffer")
            }
            Self::Other(t) => write!(f, "NVSP type {t}"),
            Self::RndisInit {
                request,
                major,
                minor,
            } => write!(f, "RNDIS INITIALIZE #{request} {major}.{minor}"),
            Self::Query { oid, status } => write!(f, "RNDIS QUERY {oid:#010x} status {status:#x}"),
            Self::Set { oid, value, status } => {
                write!(f, "RNDIS SET {oid:#010x} = {value:#x} status {status:#x}")
            }
            Self::Indicate { status } => write!(f, "RNDIS INDICATE_STATUS {status:#010x}"),
            Self::Keepalive { request } => write!(f, "RNDIS KEEPALIVE #{request}"),
            Self::HaltOrReset { ty } => write!(f, "RNDIS type {ty} (halt/reset)"),
        }
    }
}
