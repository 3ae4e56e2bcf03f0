//! NVSP, the network VSP protocol: the messages the guest and host exchange on the channel.
//!
//! Every message starts with a u32 type. The guest sends its messages as in-band packets of
//! [`MESSAGE_SIZE`] bytes (the size of the largest message body plus the type, zero padded, as
//! Linux sends them); the host answers the guest's requests with VMBus completion packets
//! carrying an NVSP message, and sends received data as transfer-page packets whose payload is a
//! `SEND_RNDIS_PKT` message. Hosts pad their messages to 28 bytes (protocols before 6.1) or 40
//! (6.1), so the decoder accepts any length at least as long as the type's fields.
//!
//! | type | message | fields after the type (little-endian) |
//! |---|---|---|
//! | 1 | `INIT` (guest) | min version u32, max version u32 |
//! | 2 | `INIT_COMPLETE` (host) | negotiated version u32 (deprecated), max MDL chain length u32, status u32 |
//! | 100 | `SEND_NDIS_VERSION` (guest) | NDIS major u32, NDIS minor u32 |
//! | 101 | `SEND_RECV_BUF` (guest) | GPADL handle u32, id u16 |
//! | 102 | `SEND_RECV_BUF_COMPLETE` (host) | status u32, section count u32, sections of offset, sub-allocation size, count, end offset (u32 each) |
//! | 103 | `REVOKE_RECV_BUF` (guest) | id u16 |
//! | 104 | `SEND_SEND_BUF` (guest) | GPADL handle u32, id u16 |
//! | 105 | `SEND_SEND_BUF_COMPLETE` (host) | status u32, section size u32 |
//! | 106 | `REVOKE_SEND_BUF` (guest) | id u16 |
//! | 107 | `SEND_RNDIS_PKT` (both) | channel type u32 (0 data, 1 control), section index u32 (`u32::MAX`: none), section bytes u32 |
//! | 108 | `SEND_RNDIS_PKT_COMPLETE` (both) | status u32 |
//! | 125 | `SEND_NDIS_CONFIG` (guest, 2+) | MTU u32, reserved u32, capabilities u64 |
//! | 128 | `SEND_VF_ASSOCIATION` (host, 4+) | allocated u32, serial u32 |
//! | 133 | `SUBCHANNEL` (guest request, host completion, 5+) | request: operation u32 (1 allocate), count u32; completion: status u32, count u32 |
//! | 134 | `SEND_INDIRECTION_TABLE` (host, 5+) | entry count u32, table offset u32 from the message start; the table (u32 channel numbers) follows |

use crate::wire::{put_u16, put_u32, put_u64, u32_at};

/// Bytes of every NVSP message the guest sends: the type and the largest message body (the
/// version 6 union, 36 bytes), zero padded.
pub const MESSAGE_SIZE: usize = 40;

/// The receive buffer's id (the host echoes it as the transfer page set id of every receive).
pub const RECV_BUFFER_ID: u16 = 0xcafe;
/// The send buffer's id.
pub const SEND_BUFFER_ID: u16 = 0;
/// Section index meaning "no send-buffer section": the data travels in GPA ranges.
pub const NO_SECTION: u32 = u32::MAX;
/// `SEND_RNDIS_PKT` channel type of data (`RMC_DATA`).
pub const CHANNEL_DATA: u32 = 0;
/// `SEND_RNDIS_PKT` channel type of control messages (`RMC_CONTROL`).
pub const CHANNEL_CONTROL: u32 = 1;

/// Message types.
pub mod msg_type {
    /// Guest proposes a protocol version.
    pub const INIT: u32 = 1;
    /// Host answers it.
    pub const INIT_COMPLETE: u32 = 2;
    /// Guest tells its NDIS version.
    pub const SEND_NDIS_VERSION: u32 = 100;
    /// Guest hands over the receive buffer.
    pub const SEND_RECV_BUF: u32 = 101;
    /// Host accepts it and describes its sections.
    pub const SEND_RECV_BUF_COMPLETE: u32 = 102;
    /// Guest takes the receive buffer back.
    pub const REVOKE_RECV_BUF: u32 = 103;
    /// Guest hands over the send buffer.
    pub const SEND_SEND_BUF: u32 = 104;
    /// Host accepts it and chooses the section size.
    pub const SEND_SEND_BUF_COMPLETE: u32 = 105;
    /// Guest takes the send buffer back.
    pub const REVOKE_SEND_BUF: u32 = 106;
    /// An RNDIS message follows (send buffer section, GPA ranges or transfer pages).
    pub const SEND_RNDIS_PKT: u32 = 107;
    /// The RNDIS message was consumed.
    pub const SEND_RNDIS_PKT_COMPLETE: u32 = 108;
    /// Guest tells its MTU and capabilities (2+).
    pub const SEND_NDIS_CONFIG: u32 = 125;
    /// Host offers a virtual function (4+).
    pub const SEND_VF_ASSOCIATION: u32 = 128;
    /// Guest switches the data path (4+).
    pub const SWITCH_DATA_PATH: u32 = 129;
    /// Sub-channel allocation (5+).
    pub const SUBCHANNEL: u32 = 133;
    /// Host's send indirection table (5+).
    pub const SEND_INDIRECTION_TABLE: u32 = 134;
}

/// NVSP status values.
pub mod status {
    /// No status.
    pub const NONE: u32 = 0;
    /// Success.
    pub const SUCCESS: u32 = 1;
    /// Failure.
    pub const FAIL: u32 = 2;
}

/// Capability bits of `SEND_NDIS_CONFIG`.
pub mod capability {
    /// IEEE 802.1Q tagging.
    pub const IEEE8021Q: u64 = 1 << 3;
    /// Teaming (needed for link-speed updates).
    pub const TEAMING: u64 = 1 << 5;
}

/// An NVSP protocol version: major in the high 16 bits, minor in the low 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32);

impl Version {
    /// Version 1 (wire value 2).
    pub const V1: Version = Version(0x0000_0002);
    /// Version 2 (3.2).
    pub const V2: Version = Version(0x0003_0002);
    /// Version 4.
    pub const V4: Version = Version(0x0004_0000);
    /// Version 5 (sub-channels, send indirection table).
    pub const V5: Version = Version(0x0005_0000);
    /// Version 6.
    pub const V6: Version = Version(0x0006_0000);
    /// Version 6.1.
    pub const V61: Version = Version(0x0006_0001);
    /// The versions the guest proposes, newest first, one per `INIT` (min = max).
    pub const PROPOSALS: [Version; 6] = [
        Version::V61,
        Version::V6,
        Version::V5,
        Version::V4,
        Version::V2,
        Version::V1,
    ];

    /// The NDIS version the guest announces under this protocol: 6.1 up to NVSP 4, 6.30 after.
    pub const fn ndis(self) -> (u32, u32) {
        if self.0 <= Version::V4.0 {
            (6, 1)
        } else {
            (6, 30)
        }
    }
}

impl core::fmt::Display for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// A message the guest sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMessage {
    /// `INIT` proposing exactly `version`.
    Init {
        /// The version.
        version: Version,
    },
    /// `SEND_NDIS_CONFIG`.
    NdisConfig {
        /// MTU plus the Ethernet header.
        mtu: u32,
        /// [`capability`] bits.
        capabilities: u64,
    },
    /// `SEND_NDIS_VERSION`.
    NdisVersion {
        /// Major.
        major: u32,
        /// Minor.
        minor: u32,
    },
    /// `SEND_RECV_BUF`.
    RecvBuffer {
        /// GPADL of the buffer.
        gpadl: u32,
        /// Its id ([`RECV_BUFFER_ID`]).
        id: u16,
    },
    /// `SEND_SEND_BUF`.
    SendBuffer {
        /// GPADL of the buffer.
        gpadl: u32,
        /// Its id ([`SEND_BUFFER_ID`]).
        id: u16,
    },
    /// `REVOKE_RECV_BUF`.
    RevokeRecvBuffer {
        /// The id.
        id: u16,
    },
    /// `REVOKE_SEND_BUF`.
    RevokeSendBuffer {
        /// The id.
        id: u16,
    },
    /// `SEND_RNDIS_PKT`.
    RndisPacket {
        /// [`CHANNEL_DATA`] or [`CHANNEL_CONTROL`].
        channel: u32,
        /// Send-buffer section, or [`NO_SECTION`].
        section: u32,
        /// Bytes used in the section (0 without one).
        size: u32,
    },
    /// `SEND_RNDIS_PKT_COMPLETE`, the completion of a receive (8 bytes, as Linux sends it).
    RndisPacketComplete {
        /// [`status`] value.
        status: u32,
    },
    /// `SUBCHANNEL` with operation allocate.
    SubchannelRequest {
        /// Sub-channels wanted.
        count: u32,
    },
}

impl GuestMessage {
    /// Encodes the message into `out` and returns its length ([`MESSAGE_SIZE`], or 8 for
    /// `RndisPacketComplete`).
    pub fn encode(&self, out: &mut [u8; MESSAGE_SIZE]) -> usize {
        *out = [0; MESSAGE_SIZE];
        let (ty, len) = match *self {
            GuestMessage::Init { version } => {
                put_u32(out, 4, version.0);
                put_u32(out, 8, version.0);
                (msg_type::INIT, MESSAGE_SIZE)
            }
            GuestMessage::NdisConfig { mtu, capabilities } => {
                put_u32(out, 4, mtu);
                put_u64(out, 12, capabilities);
                (msg_type::SEND_NDIS_CONFIG, MESSAGE_SIZE)
            }
            GuestMessage::NdisVersion { major, minor } => {
                put_u32(out, 4, major);
                put_u32(out, 8, minor);
                (msg_type::SEND_NDIS_VERSION, MESSAGE_SIZE)
            }
            GuestMessage::RecvBuffer { gpadl, id } => {
                put_u32(out, 4, gpadl);
                put_u16(out, 8, id);
                (msg_type::SEND_RECV_BUF, MESSAGE_SIZE)
            }
            GuestMessage::SendBuffer { gpadl, id } => {
                put_u32(out, 4, gpadl);
                put_u16(out, 8, id);
                (msg_type::SEND_SEND_BUF, MESSAGE_SIZE)
            }
            GuestMessage::RevokeRecvBuffer { id } => {
                put_u16(out, 4, id);
                (msg_type::REVOKE_RECV_BUF, MESSAGE_SIZE)
            }
            GuestMessage::RevokeSendBuffer { id } => {
                put_u16(out, 4, id);
                (msg_type::REVOKE_SEND_BUF, MESSAGE_SIZE)
            }
            GuestMessage::RndisPacket {
                channel,
                section,
                size,
            } => {
                put_u32(out, 4, channel);
                put_u32(out, 8, section);
                put_u32(out, 12, size);
                (msg_type::SEND_RNDIS_PKT, MESSAGE_SIZE)
            }
            GuestMessage::RndisPacketComplete { status } => {
                put_u32(out, 4, status);
                (msg_type::SEND_RNDIS_PKT_COMPLETE, 8)
            }
            GuestMessage::SubchannelRequest { count } => {
                put_u32(out, 4, 1);
                put_u32(out, 8, count);
                (msg_type::SUBCHANNEL, MESSAGE_SIZE)
            }
        };
        put_u32(out, 0, ty);
        len
    }
}

/// The first receive-buffer section the host describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvSection {
    /// Offset of the section in the buffer.
    pub offset: u32,
    /// Bytes of each sub-allocation.
    pub sub_alloc_size: u32,
    /// Number of sub-allocations.
    pub num_sub_allocs: u32,
    /// End offset of the section.
    pub end_offset: u32,
}

/// A message the host sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostMessage {
    /// `INIT_COMPLETE`.
    InitComplete {
        /// [`status`] value.
        status: u32,
        /// Longest MDL chain the host takes.
        max_mdl_chain_len: u32,
    },
    /// `SEND_RECV_BUF_COMPLETE`.
    RecvBufferComplete {
        /// [`status`] value.
        status: u32,
        /// Sections the host described.
        num_sections: u32,
        /// The first section (the only one any host sends).
        section: RecvSection,
    },
    /// `SEND_SEND_BUF_COMPLETE`.
    SendBufferComplete {
        /// [`status`] value.
        status: u32,
        /// Bytes of each send-buffer section.
        section_size: u32,
    },
    /// `SEND_RNDIS_PKT` (the payload of a transfer-page packet).
    RndisPacket {
        /// Channel type.
        channel: u32,
        /// Section index.
        section: u32,
        /// Section bytes.
        size: u32,
    },
    /// `SEND_RNDIS_PKT_COMPLETE`.
    RndisPacketComplete {
        /// [`status`] value.
        status: u32,
    },
    /// `SUBCHANNEL` completion.
    SubchannelComplete {
        /// [`status`] value.
        status: u32,
        /// Sub-channels the host allocated.
        count: u32,
    },
    /// `SEND_INDIRECTION_TABLE`.
    IndirectionTable {
        /// Entries.
        count: u32,
        /// Offset of the table from the message start.
        offset: u32,
    },
    /// `SEND_VF_ASSOCIATION`.
    VfAssociation {
        /// 1: a VF is allocated.
        allocated: u32,
        /// Its serial number.
        serial: u32,
    },
    /// Another type, not interpreted here.
    Other {
        /// The type.
        msg_type: u32,
    },
}

/// Why a host NVSP message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NvspError {
    /// Shorter than the type's fields.
    Truncated {
        /// The message type (0 when even the type is missing).
        msg_type: u32,
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        got: usize,
    },
}

impl core::fmt::Display for NvspError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NvspError::Truncated {
                msg_type,
                needed,
                got,
            } => write!(
                f,
                "NVSP message type {msg_type}: {got} bytes, {needed} needed"
            ),
        }
    }
}

impl HostMessage {
    /// Decodes a host message, checking that every field the type has is there.
    ///
    /// # Errors
    /// [`NvspError::Truncated`].
    pub fn decode(b: &[u8]) -> Result<HostMessage, NvspError> {
        let Some(ty) = u32_at(b, 0) else {
            return Err(NvspError::Truncated {
                msg_type: 0,
                needed: 4,
                got: b.len(),
            });
        };
        let needed = match ty {
            msg_type::INIT_COMPLETE => 16,
            msg_type::SEND_RECV_BUF_COMPLETE => 28,
            msg_type::SEND_SEND_BUF_COMPLETE => 12,
            msg_type::SEND_RNDIS_PKT => 16,
            msg_type::SEND_RNDIS_PKT_COMPLETE => 8,
            msg_type::SUBCHANNEL => 12,
            msg_type::SEND_INDIRECTION_TABLE => 12,
            msg_type::SEND_VF_ASSOCIATION => 12,
            _ => 4,
        };
        if b.len() < needed {
            return Err(NvspError::Truncated {
                msg_type: ty,
                needed,
                got: b.len(),
            });
        }
        // Every field below lies within `needed` bytes.
        let f = |at| u32_at(b, at).unwrap_or(0);
        Ok(match ty {
            msg_type::INIT_COMPLETE => HostMessage::InitComplete {
                max_mdl_chain_len: f(8),
                status: f(12),
            },
            msg_type::SEND_RECV_BUF_COMPLETE => HostMessage::RecvBufferComplete {
                status: f(4),
                num_sections: f(8),
                section: RecvSection {
                    offset: f(12),
                    sub_alloc_size: f(16),
                    num_sub_allocs: f(20),
                    end_offset: f(24),
                },
            },
            msg_type::SEND_SEND_BUF_COMPLETE => HostMessage::SendBufferComplete {
                status: f(4),
                section_size: f(8),
            },
            msg_type::SEND_RNDIS_PKT => HostMessage::RndisPacket {
                channel: f(4),
                section: f(8),
                size: f(12),
            },
            msg_type::SEND_RNDIS_PKT_COMPLETE => HostMessage::RndisPacketComplete { status: f(4) },
            msg_type::SUBCHANNEL => HostMessage::SubchannelComplete {
                status: f(4),
                count: f(8),
            },
            msg_type::SEND_INDIRECTION_TABLE => HostMessage::IndirectionTable {
                count: f(4),
                offset: f(8),
            },
            msg_type::SEND_VF_ASSOCIATION => HostMessage::VfAssociation {
                allocated: f(4),
                serial: f(8),
            },
            other => HostMessage::Other { msg_type: other },
        })
    }
}

/// Entries of the send indirection table.
pub const INDIRECTION_ENTRIES: usize = 16;

/// Reads the send indirection table out of a `SEND_INDIRECTION_TABLE` message `b`. Hosts up to
/// protocol 6 may write a wrong offset; like Linux, the table is then taken right after the
/// 40-byte message when it fits there.
///
/// # Errors
/// `None` when the count is not [`INDIRECTION_ENTRIES`] or the table does not lie inside `b`.
pub fn indirection_table(b: &[u8], version: Version) -> Option<[u32; INDIRECTION_ENTRIES]> {
    let HostMessage::IndirectionTable { count, offset } = HostMessage::decode(b).ok()? else {
        return None;
    };
    if count as usize != INDIRECTION_ENTRIES {
        return None;
    }
    let table_len = INDIRECTION_ENTRIES * 4;
    let offset = if version <= Version::V6 && b.len() >= MESSAGE_SIZE + table_len {
        MESSAGE_SIZE
    } else {
        offset as usize
    };
    let table = b.get(offset..offset.checked_add(table_len)?)?;
    let mut out = [0u32; INDIRECTION_ENTRIES];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u32_at(table, i * 4)?;
    }
    Some(out)
}
