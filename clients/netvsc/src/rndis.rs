//! RNDIS messages, carried inside NVSP `SEND_RNDIS_PKT`: in a send-buffer section (guest to
//! host) or a receive-buffer range (host to guest).
//!
//! Every message starts with type u32 and length u32 (the whole message, header included).
//! Offsets inside a body count from the body's start (byte 8 of the message), as Linux's
//! `rndis_filter.c` and FreeBSD's `hn_rndis.c` read them.
//!
//! | type | message | body (u32 each) |
//! |---|---|---|
//! | 1 | `PACKET` | data offset, data length, OOB offset, OOB length, OOB count, per-packet-info offset, per-packet-info length, VC handle, reserved; then info and data |
//! | 2 | `INIT` | request id, major 1, minor 0, max transfer size |
//! | 0x8000_0002 | `INIT_C` | request id, status, major, minor, device flags, medium, max packets per message, max transfer size, packet alignment factor, AF list offset, AF list size |
//! | 4 | `QUERY` | request id, OID, info length, info offset (20), VC handle |
//! | 0x8000_0004 | `QUERY_C` | request id, status, info length, info offset (≥ 16) |
//! | 5 | `SET` | request id, OID, info length, info offset (20), VC handle; then the value |
//! | 0x8000_0005 | `SET_C` | request id, status |
//! | 7 | `INDICATE_STATUS` | status, status buffer length, status buffer offset |
//! | 8 | `KEEPALIVE` | request id |
//! | 0x8000_0008 | `KEEPALIVE_C` | request id, status |

use crate::wire::{put_u32, u32_at};

/// Bytes of the message header (type, length).
pub const HEADER_LEN: usize = 8;
/// Bytes of a `PACKET` body before its info and data.
pub const PACKET_BODY_LEN: usize = 36;
/// Bytes of a `PACKET` message header (message header and body) the guest writes.
pub const PACKET_HEADER_LEN: usize = HEADER_LEN + PACKET_BODY_LEN;
/// Bytes of a `QUERY` message.
pub const QUERY_LEN: usize = 28;
/// Bytes of an `INIT` message.
pub const INIT_LEN: usize = 24;
/// Bytes of a `SET` message before its value.
pub const SET_HEADER_LEN: usize = 28;
/// Bytes of a `KEEPALIVE_C` message.
pub const KEEPALIVE_C_LEN: usize = 16;
/// `max_xfer_size` the guest announces in `INIT` (Linux's value).
pub const MAX_XFER_SIZE: u32 = 0x4000;

/// Message types.
pub mod msg_type {
    /// Data.
    pub const PACKET: u32 = 1;
    /// Initialise.
    pub const INIT: u32 = 2;
    /// Halt.
    pub const HALT: u32 = 3;
    /// Query an OID.
    pub const QUERY: u32 = 4;
    /// Set an OID.
    pub const SET: u32 = 5;
    /// Reset.
    pub const RESET: u32 = 6;
    /// Status indication.
    pub const INDICATE_STATUS: u32 = 7;
    /// Keep-alive.
    pub const KEEPALIVE: u32 = 8;
    /// Bit of a completion.
    pub const COMPLETION: u32 = 0x8000_0000;
    /// `INIT` completion.
    pub const INIT_C: u32 = INIT | COMPLETION;
    /// `QUERY` completion.
    pub const QUERY_C: u32 = QUERY | COMPLETION;
    /// `SET` completion.
    pub const SET_C: u32 = SET | COMPLETION;
    /// `RESET` completion.
    pub const RESET_C: u32 = RESET | COMPLETION;
    /// `KEEPALIVE` completion.
    pub const KEEPALIVE_C: u32 = KEEPALIVE | COMPLETION;
}

/// RNDIS status values.
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// Failure.
    pub const FAILURE: u32 = 0xC000_0001;
    /// Not supported.
    pub const NOT_SUPPORTED: u32 = 0xC000_00BB;
    /// Indication: the medium is connected.
    pub const MEDIA_CONNECT: u32 = 0x4001_000B;
    /// Indication: the medium is disconnected.
    pub const MEDIA_DISCONNECT: u32 = 0x4001_000C;
}

/// Object identifiers.
pub mod oid {
    /// Maximum frame size without the Ethernet header: the MTU (u32).
    pub const GEN_MAXIMUM_FRAME_SIZE: u32 = 0x0001_0106;
    /// Current packet filter (u32 of [`super::filter`] bits).
    pub const GEN_CURRENT_PACKET_FILTER: u32 = 0x0001_010E;
    /// Media connect status (u32: 0 connected, 1 disconnected).
    pub const GEN_MEDIA_CONNECT_STATUS: u32 = 0x0001_0114;
    /// Permanent MAC address (6 bytes).
    pub const P802_3_PERMANENT_ADDRESS: u32 = 0x0101_0101;
    /// Current MAC address (6 bytes).
    pub const P802_3_CURRENT_ADDRESS: u32 = 0x0101_0102;
}

/// Packet filter bits (`NDIS_PACKET_TYPE_*`).
pub mod filter {
    /// Frames to our address.
    pub const DIRECTED: u32 = 0x1;
    /// Multicast frames of the multicast list.
    pub const MULTICAST: u32 = 0x2;
    /// All multicast frames.
    pub const ALL_MULTICAST: u32 = 0x4;
    /// Broadcast frames.
    pub const BROADCAST: u32 = 0x8;
    /// Everything.
    pub const PROMISCUOUS: u32 = 0x20;
}

/// Media connect status value: connected.
pub const MEDIA_STATE_CONNECTED: u32 = 0;

/// Per-packet-info types.
pub mod ppi_type {
    /// Checksum information.
    pub const TCPIP_CHECKSUM: u32 = 0;
    /// 802.1Q tag.
    pub const IEEE_8021Q: u32 = 6;
    /// Hash value.
    pub const HASH_VALUE: u32 = 8;
}

/// Why an RNDIS message from the host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RndisError {
    /// The message's length field is below the header or above the bytes that carry it.
    BadLength {
        /// The length field.
        msg_len: u32,
        /// Bytes available (the receive range).
        avail: usize,
    },
    /// The message is shorter than its type's fields.
    Truncated {
        /// The type.
        msg_type: u32,
        /// Bytes needed.
        needed: usize,
    },
    /// A `PACKET`'s data offset points into its fixed header.
    DataInHeader {
        /// The data offset.
        offset: u32,
    },
    /// An offset and length that leave the message.
    OutOfMessage {
        /// Offset from the body start.
        offset: u32,
        /// Length.
        len: u32,
    },
    /// A per-packet-info entry with a bad size or offset.
    BadPerPacketInfo {
        /// Offset of the entry in the info area.
        at: usize,
    },
}

impl core::fmt::Display for RndisError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RndisError::BadLength { msg_len, avail } => {
                write!(f, "RNDIS length {msg_len} with {avail} bytes available")
            }
            RndisError::Truncated { msg_type, needed } => {
                write!(f, "RNDIS message {msg_type:#x} shorter than {needed} bytes")
            }
            RndisError::DataInHeader { offset } => {
                write!(f, "RNDIS data offset {offset} inside the packet header")
            }
            RndisError::OutOfMessage { offset, len } => {
                write!(
                    f,
                    "RNDIS area at {offset} of {len} bytes leaves the message"
                )
            }
            RndisError::BadPerPacketInfo { at } => {
                write!(f, "bad per-packet info entry at {at}")
            }
        }
    }
}

/// Reads a message header from the first bytes of `avail` bytes and checks its length.
///
/// # Errors
/// [`RndisError::BadLength`].
pub fn header(b: &[u8], avail: usize) -> Result<(u32, u32), RndisError> {
    let (Some(ty), Some(len)) = (u32_at(b, 0), u32_at(b, 4)) else {
        return Err(RndisError::BadLength { msg_len: 0, avail });
    };
    if (len as usize) < HEADER_LEN || len as usize > avail {
        return Err(RndisError::BadLength {
            msg_len: len,
            avail,
        });
    }
    Ok((ty, len))
}

/// Where a `PACKET`'s data and per-packet info lie, in bytes from the message start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketLayout {
    /// Data offset.
    pub data_offset: usize,
    /// Data bytes.
    pub data_len: usize,
    /// Per-packet-info offset (0 with none).
    pub ppi_offset: usize,
    /// Per-packet-info bytes.
    pub ppi_len: usize,
}

/// Checks a `PACKET` message whose first [`PACKET_HEADER_LEN`] bytes are `h` and whose length
/// field is `msg_len`: data after the fixed header and inside the message, per-packet info
/// likewise.
///
/// # Errors
/// [`RndisError::Truncated`], [`RndisError::DataInHeader`], [`RndisError::OutOfMessage`].
pub fn packet_layout(h: &[u8], msg_len: u32) -> Result<PacketLayout, RndisError> {
    if (msg_len as usize) < PACKET_HEADER_LEN || h.len() < PACKET_HEADER_LEN {
        return Err(RndisError::Truncated {
            msg_type: msg_type::PACKET,
            needed: PACKET_HEADER_LEN,
        });
    }
    let f = |at| u32_at(h, at).unwrap_or(0);
    let (data_offset, data_len, ppi_offset, ppi_len) = (f(8), f(12), f(28), f(32));
    let body = msg_len - HEADER_LEN as u32;
    if (data_offset as usize) < PACKET_BODY_LEN {
        return Err(RndisError::DataInHeader {
            offset: data_offset,
        });
    }
    within(data_offset, data_len, body)?;
    if ppi_len != 0 {
        if (ppi_offset as usize) < PACKET_BODY_LEN {
            return Err(RndisError::OutOfMessage {
                offset: ppi_offset,
                len: ppi_len,
            });
        }
        within(ppi_offset, ppi_len, body)?;
    }
    Ok(PacketLayout {
        data_offset: HEADER_LEN + data_offset as usize,
        data_len: data_len as usize,
        ppi_offset: if ppi_len == 0 {
            0
        } else {
            HEADER_LEN + ppi_offset as usize
        },
        ppi_len: ppi_len as usize,
    })
}

fn within(offset: u32, len: u32, body: u32) -> Result<(), RndisError> {
    if offset > body || len > body - offset {
        return Err(RndisError::OutOfMessage { offset, len });
    }
    Ok(())
}

/// One per-packet-info entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ppi<'a> {
    /// Its type (bits 0..31).
    pub ty: u32,
    /// Whether it is an internal type (bit 31).
    pub internal: bool,
    /// Its data.
    pub data: &'a [u8],
}

/// Walks the per-packet-info entries of `info`: size u32 (whole entry), type u32, data offset
/// u32 (from the entry start), each entry within the area and its data within the entry.
///
/// # Errors
/// [`RndisError::BadPerPacketInfo`] at the first bad entry.
pub fn ppi_walk<'a>(info: &'a [u8], mut each: impl FnMut(Ppi<'a>)) -> Result<(), RndisError> {
    let mut at = 0;
    while at < info.len() {
        let e = &info[at..];
        let bad = RndisError::BadPerPacketInfo { at };
        let (Some(size), Some(ty), Some(off)) = (u32_at(e, 0), u32_at(e, 4), u32_at(e, 8)) else {
            return Err(bad);
        };
        let (size, off) = (size as usize, off as usize);
        if size < 12 || size > e.len() || off < 12 || off > size {
            return Err(bad);
        }
        each(Ppi {
            ty: ty & 0x7fff_ffff,
            internal: ty & 0x8000_0000 != 0,
            data: &e[off..size],
        });
        at += size;
    }
    Ok(())
}

/// Writes a `PACKET` header for `data_len` bytes of data without per-packet info into `out`
/// (data offset 36: the frame follows the header); returns [`PACKET_HEADER_LEN`].
pub fn encode_packet_header(data_len: u32, out: &mut [u8; PACKET_HEADER_LEN]) -> usize {
    *out = [0; PACKET_HEADER_LEN];
    put_u32(out, 0, msg_type::PACKET);
    put_u32(out, 4, PACKET_HEADER_LEN as u32 + data_len);
    put_u32(out, 8, PACKET_BODY_LEN as u32);
    put_u32(out, 12, data_len);
    PACKET_HEADER_LEN
}

/// Longest control message the guest sends ([`SET_HEADER_LEN`] and a value of up to 36 bytes).
pub const MAX_CONTROL_OUT: usize = 64;

/// A control message the guest sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `INIT` (version 1.0, [`MAX_XFER_SIZE`]).
    Init {
        /// Request id.
        req_id: u32,
    },
    /// `QUERY` of `oid` with no input.
    Query {
        /// Request id.
        req_id: u32,
        /// The OID.
        oid: u32,
    },
    /// `SET` of `oid` to `value`.
    Set {
        /// Request id.
        req_id: u32,
        /// The OID.
        oid: u32,
        /// The value (at most 36 bytes).
        value: &'a [u8],
    },
    /// `KEEPALIVE_C` answering the host's keep-alive.
    KeepAliveComplete {
        /// The host's request id.
        req_id: u32,
    },
}

impl Request<'_> {
    /// Encodes into `out`; returns the length, or `None` for a value too long.
    pub fn encode(&self, out: &mut [u8; MAX_CONTROL_OUT]) -> Option<usize> {
        *out = [0; MAX_CONTROL_OUT];
        let (ty, len) = match *self {
            Request::Init { req_id } => {
                put_u32(out, 8, req_id);
                put_u32(out, 12, 1);
                put_u32(out, 16, 0);
                put_u32(out, 20, MAX_XFER_SIZE);
                (msg_type::INIT, INIT_LEN)
            }
            Request::Query { req_id, oid } => {
                put_u32(out, 8, req_id);
                put_u32(out, 12, oid);
                put_u32(out, 16, 0);
                put_u32(out, 20, 20);
                (msg_type::QUERY, QUERY_LEN)
            }
            Request::Set { req_id, oid, value } => {
                let len = SET_HEADER_LEN + value.len();
                if len > MAX_CONTROL_OUT {
                    return None;
                }
                put_u32(out, 8, req_id);
                put_u32(out, 12, oid);
                put_u32(out, 16, value.len() as u32);
                put_u32(out, 20, 20);
                out[SET_HEADER_LEN..len].copy_from_slice(value);
                (msg_type::SET, len)
            }
            Request::KeepAliveComplete { req_id } => {
                put_u32(out, 8, req_id);
                put_u32(out, 12, status::SUCCESS);
                (msg_type::KEEPALIVE_C, KEEPALIVE_C_LEN)
            }
        };
        put_u32(out, 0, ty);
        put_u32(out, 4, len as u32);
        Some(len)
    }
}

/// A control message from the host (anything but `PACKET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control<'a> {
    /// `INIT_C`.
    InitComplete {
        /// Request id.
        req_id: u32,
        /// Status.
        status: u32,
        /// Packets per message the host takes.
        max_packets: u32,
        /// log2 of the alignment of packets in one message.
        align_factor: u32,
    },
    /// `QUERY_C`.
    QueryComplete {
        /// Request id.
        req_id: u32,
        /// Status.
        status: u32,
        /// The information returned.
        info: &'a [u8],
    },
    /// `SET_C`.
    SetComplete {
        /// Request id.
        req_id: u32,
        /// Status.
        status: u32,
    },
    /// `INDICATE_STATUS`.
    Indicate {
        /// The status indicated.
        status: u32,
    },
    /// `KEEPALIVE` from the host.
    KeepAlive {
        /// Its request id.
        req_id: u32,
    },
    /// `KEEPALIVE_C`.
    KeepAliveComplete {
        /// Request id.
        req_id: u32,
    },
    /// Another type.
    Other {
        /// The type.
        msg_type: u32,
    },
}

impl<'a> Control<'a> {
    /// Decodes the control message `m` (exactly its length field's bytes).
    ///
    /// # Errors
    /// [`RndisError`] for short messages or areas outside the message.
    pub fn decode(m: &'a [u8]) -> Result<Control<'a>, RndisError> {
        let (ty, len) = header(m, m.len())?;
        let m = &m[..len as usize];
        let needed = match ty {
            msg_type::INIT_C => 52,
            msg_type::QUERY_C => 24,
            msg_type::SET_C | msg_type::KEEPALIVE_C => 16,
            msg_type::INDICATE_STATUS => 20,
            msg_type::KEEPALIVE => 12,
            _ => HEADER_LEN,
        };
        if m.len() < needed {
            return Err(RndisError::Truncated {
                msg_type: ty,
                needed,
            });
        }
        let f = |at| u32_at(m, at).unwrap_or(0);
        Ok(match ty {
            msg_type::INIT_C => Control::InitComplete {
                req_id: f(8),
                status: f(12),
                max_packets: f(32),
                align_factor: f(40),
            },
            msg_type::QUERY_C => {
                let (info_len, info_off) = (f(16), f(20));
                let body = len - HEADER_LEN as u32;
                let info = if info_len == 0 {
                    &m[..0]
                } else {
                    if info_off < 16 {
                        return Err(RndisError::OutOfMessage {
                            offset: info_off,
                            len: info_len,
                        });
                    }
                    within(info_off, info_len, body)?;
                    let start = HEADER_LEN + info_off as usize;
                    &m[start..start + info_len as usize]
                };
                Control::QueryComplete {
                    req_id: f(8),
                    status: f(12),
                    info,
                }
            }
            msg_type::SET_C => Control::SetComplete {
                req_id: f(8),
                status: f(12),
            },
            msg_type::INDICATE_STATUS => Control::Indicate { status: f(8) },
            msg_type::KEEPALIVE => Control::KeepAlive { req_id: f(8) },
            msg_type::KEEPALIVE_C => Control::KeepAliveComplete { req_id: f(8) },
            other => Control::Other { msg_type: other },
        })
    }
}
