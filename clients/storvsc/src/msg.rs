//! vstor packets: the 12-byte header (operation, flags, status) and the union after it, encoded
//! for the guest's requests and decoded, with every field checked, from the host's packets.
//!
//! Layout (all little-endian, offsets from the start of the VMBus packet's payload):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | operation ([`Operation`]) |
//! | 4 | 4 | flags (bit 0: [`FLAG_REQUEST_COMPLETION`]) |
//! | 8 | 4 | status (an NTSTATUS; 0 is success) |
//! | 12 | .. | the union: protocol version, channel properties, SRB or sub-channel count |
//!
//! The union is as large as its largest member, the SRB: 36 bytes up to protocol 4.2 and 52 bytes
//! from 5.1 on (16 bytes of Windows 8 fields appended), so a packet is [`Version::packet_len`]
//! bytes: 48 or 64. Before a version is agreed the guest sends the 64-byte form.
//!
//! Version (at 12): `major_minor` u16 (major in the high byte), `revision` u16 (zero).
//!
//! Channel properties (at 12, 24 bytes): u32 reserved (the host's own protocol version, path and
//! target on some hosts), `max_channel_count` u16 (sub-channels the host offers), u16 reserved
//! (port), `flags` u32 ([`PROPERTY_MULTI_CHANNEL`]), `max_transfer_bytes` u32, u64 reserved.
//!
//! Sub-channel count (at 12): u16.
//!
//! SRB (at 12): see [`Srb`].

/// The device class of the synthetic SCSI controller, in VMBus wire byte order
/// (`ba6163d9-04a1-4d29-b605-72e2ffb1dc7f`).
pub const SCSI_CLASS: [u8; 16] = [
    0xd9, 0x63, 0x61, 0xba, 0xa1, 0x04, 0x29, 0x4d, 0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc, 0x7f,
];

/// The device class of the accelerated IDE channel, in VMBus wire byte order
/// (`32412632-86cb-44a2-9b5c-50d1417354f5`); it speaks the same protocol for one disk.
pub const IDE_CLASS: [u8; 16] = [
    0x32, 0x26, 0x41, 0x32, 0xcb, 0x86, 0xa2, 0x44, 0x9b, 0x5c, 0x50, 0xd1, 0x41, 0x73, 0x54, 0xf5,
];

/// Bytes of the vstor header (operation, flags, status).
pub const HEADER_LEN: usize = 12;
/// Bytes of the SRB up to protocol 4.2.
pub const SRB_LEN_PRE_WIN8: usize = 36;
/// Bytes of the SRB from protocol 5.1 on (the Windows 8 extension appended).
pub const SRB_LEN_WIN8: usize = 52;
/// Bytes of the largest vstor packet, the 5.1 form: what the guest sends before a version is
/// agreed, and the buffer every encoder here writes into.
pub const PACKET_MAX: usize = HEADER_LEN + SRB_LEN_WIN8;
/// Bytes of the CDB / sense union inside the SRB (16-byte CDB, sense data, padding).
pub const SRB_DATA_LEN: usize = 20;
/// Bytes of sense data the guest asks for from protocol 5.1 on.
pub const SENSE_LEN_WIN8: u8 = 0x14;
/// Bytes of sense data the guest asks for up to protocol 4.2.
pub const SENSE_LEN_PRE_WIN8: u8 = 0x12;
/// Longest CDB the SRB carries.
pub const MAX_CDB_LEN: usize = 16;

/// Packet flag: the host must answer with a completion.
pub const FLAG_REQUEST_COMPLETION: u32 = 1;
/// Channel property flag: the host creates sub-channels on request.
pub const PROPERTY_MULTI_CHANNEL: u32 = 1;

/// A storage protocol version: major in the high byte, minor in the low byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u16);

impl Version {
    /// 2.0 (Windows Server 2008).
    pub const WIN6: Version = Version(0x0200);
    /// 4.2 (Windows 7 / Server 2008 R2).
    pub const WIN7: Version = Version(0x0402);
    /// 5.1 (Windows 8 / Server 2012): the longer SRB, 20-byte sense, sub-channels.
    pub const WIN8: Version = Version(0x0501);
    /// 6.0 (Windows 8.1 / Server 2012 R2).
    pub const WIN8_1: Version = Version(0x0600);
    /// 6.2 (Windows 10 / Server 2016).
    pub const WIN10: Version = Version(0x0602);
    /// The versions the guest proposes, newest first.
    pub const PROPOSALS: [Version; 5] = [
        Version::WIN10,
        Version::WIN8_1,
        Version::WIN8,
        Version::WIN7,
        Version::WIN6,
    ];

    /// Major number.
    #[must_use]
    pub const fn major(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// Minor number.
    #[must_use]
    pub const fn minor(self) -> u8 {
        self.0 as u8
    }

    /// Whether this version has the Windows 8 SRB fields (5.1 and later).
    #[must_use]
    pub const fn has_win8_srb(self) -> bool {
        self.0 >= Version::WIN8.0
    }

    /// Bytes of the SRB in this version.
    #[must_use]
    pub const fn srb_len(self) -> usize {
        if self.has_win8_srb() {
            SRB_LEN_WIN8
        } else {
            SRB_LEN_PRE_WIN8
        }
    }

    /// Bytes of a whole vstor packet in this version (48 or 64).
    #[must_use]
    pub const fn packet_len(self) -> usize {
        HEADER_LEN + self.srb_len()
    }

    /// Sense bytes the guest asks for in this version.
    #[must_use]
    pub const fn sense_len(self) -> u8 {
        if self.has_win8_srb() {
            SENSE_LEN_WIN8
        } else {
            SENSE_LEN_PRE_WIN8
        }
    }

    /// Whether the host may offer sub-channels in this version (5.1 and later).
    #[must_use]
    pub const fn allows_sub_channels(self) -> bool {
        self.has_win8_srb()
    }
}

impl core::fmt::Display for Version {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

/// A vstor operation: an open set of 32-bit values as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation(pub u32);

impl Operation {
    /// Host: the completion of a guest request.
    pub const COMPLETE_IO: Operation = Operation(1);
    /// Host: a device went away (the guest rescans).
    pub const REMOVE_DEVICE: Operation = Operation(2);
    /// Guest: run a SCSI request block.
    pub const EXECUTE_SRB: Operation = Operation(3);
    /// Guest: reset a LUN.
    pub const RESET_LUN: Operation = Operation(4);
    /// Guest: reset the adapter.
    pub const RESET_ADAPTER: Operation = Operation(5);
    /// Guest: reset the bus.
    pub const RESET_BUS: Operation = Operation(6);
    /// Guest: start the initialisation exchange.
    pub const BEGIN_INITIALIZATION: Operation = Operation(7);
    /// Guest: end it.
    pub const END_INITIALIZATION: Operation = Operation(8);
    /// Guest: propose a protocol version.
    pub const QUERY_PROTOCOL_VERSION: Operation = Operation(9);
    /// Guest: ask for the channel properties.
    pub const QUERY_PROPERTIES: Operation = Operation(10);
    /// Host: the set of LUNs changed (the guest rescans).
    pub const ENUMERATE_BUS: Operation = Operation(11);
    /// Guest asks / host tells the Fibre Channel world-wide names (synthetic FC only).
    pub const FC_HBA_DATA: Operation = Operation(12);
    /// Guest: ask the host to offer sub-channels.
    pub const CREATE_SUB_CHANNELS: Operation = Operation(13);
}

/// NTSTATUS values the host puts in the header's status.
pub mod status {
    /// Success.
    pub const SUCCESS: u32 = 0;
    /// The proposed protocol version is not supported (the answer to a refused version).
    pub const REVISION_MISMATCH: u32 = 0xC000_0059;
    /// A request out of order in the initialisation exchange.
    pub const INVALID_DEVICE_STATE: u32 = 0xC000_0184;
    /// A bad parameter (e.g. more sub-channels than the host offers).
    pub const INVALID_PARAMETER: u32 = 0xC000_000D;
}

/// Why bytes from the host were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the packet needs.
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes there.
        got: usize,
    },
    /// Not the operation expected here.
    Operation {
        /// Expected.
        expected: Operation,
        /// Found.
        got: Operation,
    },
    /// An SRB whose `length` field is neither this version's SRB size nor the 5.1 size.
    SrbLength {
        /// What the host wrote.
        length: u16,
        /// This version's SRB size.
        expected: usize,
    },
    /// A sense length beyond the bytes the SRB holds.
    SenseLength {
        /// What the host wrote.
        length: u8,
        /// Bytes the SRB holds.
        max: usize,
    },
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::Truncated { needed, got } => {
                write!(f, "truncated vstor packet: {got} bytes, {needed} needed")
            }
            DecodeError::Operation { expected, got } => {
                write!(
                    f,
                    "vstor operation {} where {} was expected",
                    got.0, expected.0
                )
            }
            DecodeError::SrbLength { length, expected } => {
                write!(f, "SRB length field {length}, {expected} expected")
            }
            DecodeError::SenseLength { length, max } => {
                write!(
                    f,
                    "sense length {length} beyond the {max} bytes an SRB holds"
                )
            }
        }
    }
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The vstor header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Operation.
    pub operation: Operation,
    /// Flags.
    pub flags: u32,
    /// Status (NTSTATUS).
    pub status: u32,
}

impl Header {
    /// Decodes the header of `packet`.
    ///
    /// # Errors
    /// [`DecodeError::Truncated`] below 12 bytes.
    pub fn decode(packet: &[u8]) -> Result<Header, DecodeError> {
        need(packet, HEADER_LEN)?;
        Ok(Header {
            operation: Operation(u32_at(packet, 0)),
            flags: u32_at(packet, 4),
            status: u32_at(packet, 8),
        })
    }
}

fn need(packet: &[u8], needed: usize) -> Result<(), DecodeError> {
    if packet.len() < needed {
        return Err(DecodeError::Truncated {
            needed,
            got: packet.len(),
        });
    }
    Ok(())
}

/// Decodes a completion (`COMPLETE_IO`) whose union must hold at least `body` bytes.
///
/// # Errors
/// [`DecodeError::Truncated`], [`DecodeError::Operation`].
pub fn completion(packet: &[u8], body: usize) -> Result<Header, DecodeError> {
    let h = Header::decode(packet)?;
    if h.operation != Operation::COMPLETE_IO {
        return Err(DecodeError::Operation {
            expected: Operation::COMPLETE_IO,
            got: h.operation,
        });
    }
    need(packet, HEADER_LEN + body)?;
    Ok(h)
}

/// Writes a header with the completion flag and zeroes the rest of `out`; the 64-byte packet's
/// length (callers shorten it for pre-5.1 SRBs).
fn request(out: &mut [u8; PACKET_MAX], operation: Operation) -> usize {
    out.fill(0);
    out[0..4].copy_from_slice(&operation.0.to_le_bytes());
    out[4..8].copy_from_slice(&FLAG_REQUEST_COMPLETION.to_le_bytes());
    PACKET_MAX
}

/// `BEGIN_INITIALIZATION`, `QUERY_PROPERTIES` or `END_INITIALIZATION` (no body); the length.
pub fn simple_request(out: &mut [u8; PACKET_MAX], operation: Operation) -> usize {
    request(out, operation)
}

/// `QUERY_PROTOCOL_VERSION` proposing `version` (revision zero); the length.
pub fn version_request(out: &mut [u8; PACKET_MAX], version: Version) -> usize {
    let n = request(out, Operation::QUERY_PROTOCOL_VERSION);
    out[12..14].copy_from_slice(&version.0.to_le_bytes());
    n
}

/// `CREATE_SUB_CHANNELS` asking for `count` sub-channels; the length.
pub fn sub_channel_request(out: &mut [u8; PACKET_MAX], count: u16) -> usize {
    let n = request(out, Operation::CREATE_SUB_CHANNELS);
    out[12..14].copy_from_slice(&count.to_le_bytes());
    n
}

/// The channel properties the host answers `QUERY_PROPERTIES` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelProperties {
    /// Sub-channels the host can offer besides the primary.
    pub max_channel_count: u16,
    /// Flags ([`PROPERTY_MULTI_CHANNEL`]).
    pub flags: u32,
    /// Largest transfer of one request, in bytes, as the host wrote it.
    pub max_transfer_bytes: u32,
}

/// Bytes of the channel properties.
pub const PROPERTIES_LEN: usize = 24;

impl ChannelProperties {
    /// Decodes the completion of `QUERY_PROPERTIES`. The reserved words are not checked (hosts
    /// put their own protocol version, path and target there).
    ///
    /// # Errors
    /// As [`completion`].
    pub fn decode(packet: &[u8]) -> Result<(Header, ChannelProperties), DecodeError> {
        let h = completion(packet, PROPERTIES_LEN)?;
        Ok((
            h,
            ChannelProperties {
                max_channel_count: u16_at(packet, 16),
                flags: u32_at(packet, 20),
                max_transfer_bytes: u32_at(packet, 24),
            },
        ))
    }
}

/// Direction of an SRB's data, the `data_in` byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Guest to device (0).
    Out,
    /// Device to guest (1).
    In,
    /// No data (2).
    None,
}

impl Direction {
    /// The `data_in` byte.
    #[must_use]
    pub const fn data_in(self) -> u8 {
        match self {
            Direction::Out => 0,
            Direction::In => 1,
            Direction::None => 2,
        }
    }

    /// The SRB flag for this direction.
    #[must_use]
    pub const fn srb_flag(self) -> u32 {
        match self {
            Direction::Out => SRB_FLAGS_DATA_OUT,
            Direction::In => SRB_FLAGS_DATA_IN,
            Direction::None => 0,
        }
    }
}

/// SRB flag: synchronous transfers disabled (always set by the guest).
pub const SRB_FLAGS_DISABLE_SYNCH_TRANSFER: u32 = 0x08;
/// SRB flag: data moves device to guest.
pub const SRB_FLAGS_DATA_IN: u32 = 0x40;
/// SRB flag: data moves guest to device.
pub const SRB_FLAGS_DATA_OUT: u32 = 0x80;
/// Seconds the host may take for a request (the Windows 8 `time_out_value`).
pub const SRB_TIMEOUT_SECONDS: u32 = 60;

/// Where a request goes: the SCSI address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lun {
    /// Port (the guest's own adapter number; hosts ignore it).
    pub port: u8,
    /// Path (bus) id.
    pub path: u8,
    /// Target id.
    pub target: u8,
    /// Logical unit.
    pub lun: u8,
}

/// A SCSI request block as the guest sends it. Layout from offset 12 of the packet:
///
/// | srb offset | size | field |
/// |---|---|---|
/// | 0 | 2 | `length` (36 or 52: the SRB's size in this version) |
/// | 2 | 1 | `srb_status` (host) |
/// | 3 | 1 | `scsi_status` (host) |
/// | 4 | 4 | port, path, target, lun |
/// | 8 | 1 | `cdb_length` |
/// | 9 | 1 | `sense_info_length` (guest: bytes it takes; host: bytes it wrote) |
/// | 10 | 1 | `data_in` ([`Direction`]) |
/// | 11 | 1 | reserved |
/// | 12 | 4 | `data_transfer_length` |
/// | 16 | 20 | CDB (guest) or sense data (host), padded |
/// | 36 | 2 | reserved (5.1) |
/// | 38 | 1 | `queue_tag` (5.1) |
/// | 39 | 1 | `queue_action` (5.1) |
/// | 40 | 4 | `srb_flags` (5.1) |
/// | 44 | 4 | `time_out_value` (5.1) |
/// | 48 | 4 | `queue_sort_key` (5.1) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Srb {
    /// The address.
    pub lun: Lun,
    /// The CDB (first `cdb_len` bytes used).
    pub cdb: [u8; MAX_CDB_LEN],
    /// Bytes of the CDB.
    pub cdb_len: u8,
    /// Direction of the data.
    pub direction: Direction,
    /// Bytes of data.
    pub data_len: u32,
}

/// Encodes `EXECUTE_SRB` for `srb` in `version`; the packet's length (48 or 64).
pub fn srb_request(out: &mut [u8; PACKET_MAX], version: Version, srb: &Srb) -> usize {
    request(out, Operation::EXECUTE_SRB);
    let s = &mut out[HEADER_LEN..];
    // srb_len is 36 or 52: fits u16.
    s[0..2].copy_from_slice(&(version.srb_len() as u16).to_le_bytes());
    s[4] = srb.lun.port;
    s[5] = srb.lun.path;
    s[6] = srb.lun.target;
    s[7] = srb.lun.lun;
    s[8] = srb.cdb_len;
    s[9] = version.sense_len();
    s[10] = srb.direction.data_in();
    s[12..16].copy_from_slice(&srb.data_len.to_le_bytes());
    s[16..32].copy_from_slice(&srb.cdb);
    if version.has_win8_srb() {
        let flags = SRB_FLAGS_DISABLE_SYNCH_TRANSFER | srb.direction.srb_flag();
        s[40..44].copy_from_slice(&flags.to_le_bytes());
        s[44..48].copy_from_slice(&SRB_TIMEOUT_SECONDS.to_le_bytes());
    }
    version.packet_len()
}

/// The host's SRB in a completion, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrbReply {
    /// The header's status (NTSTATUS; hosts derive it from the SRB status).
    pub nt_status: u32,
    /// SRB status byte (flags in the two high bits).
    pub srb_status: u8,
    /// SCSI status byte.
    pub scsi_status: u8,
    /// Bytes the host moved.
    pub data_transfer_length: u32,
    /// Bytes of sense data the host wrote (at most [`SRB_DATA_LEN`]).
    pub sense_len: u8,
    /// Sense data (first `sense_len` bytes valid).
    pub sense: [u8; SRB_DATA_LEN],
}

impl SrbReply {
    /// Decodes the completion of `EXECUTE_SRB` in `version`: the packet holds the version's
    /// whole SRB, whose `length` is that SRB's size (or the 5.1 size, which OpenVMM's host writes
    /// whatever the version), and whose sense length fits the SRB.
    ///
    /// # Errors
    /// [`DecodeError`].
    pub fn decode(packet: &[u8], version: Version) -> Result<SrbReply, DecodeError> {
        let h = completion(packet, version.srb_len())?;
        let s = &packet[HEADER_LEN..];
        let length = u16_at(s, 0);
        if usize::from(length) != version.srb_len() && usize::from(length) != SRB_LEN_WIN8 {
            return Err(DecodeError::SrbLength {
                length,
                expected: version.srb_len(),
            });
        }
        let sense_len = s[9];
        if usize::from(sense_len) > SRB_DATA_LEN {
            return Err(DecodeError::SenseLength {
                length: sense_len,
                max: SRB_DATA_LEN,
            });
        }
        let mut sense = [0u8; SRB_DATA_LEN];
        sense.copy_from_slice(&s[16..16 + SRB_DATA_LEN]);
        Ok(SrbReply {
            nt_status: h.status,
            srb_status: s[2],
            scsi_status: s[3],
            data_transfer_length: u32_at(s, 12),
            sense_len,
            sense,
        })
    }

    /// The valid sense bytes.
    #[must_use]
    pub fn sense(&self) -> &[u8] {
        &self.sense[..usize::from(self.sense_len)]
    }
}

/// SRB status codes (the low six bits of `srb_status`) and flags (the two high bits).
pub mod srb_status {
    /// Still pending (never in a completion).
    pub const PENDING: u8 = 0x00;
    /// Success.
    pub const SUCCESS: u8 = 0x01;
    /// Aborted.
    pub const ABORTED: u8 = 0x02;
    /// Error (look at the SCSI status and sense).
    pub const ERROR: u8 = 0x04;
    /// Busy.
    pub const BUSY: u8 = 0x05;
    /// Invalid request.
    pub const INVALID_REQUEST: u8 = 0x06;
    /// No such path.
    pub const INVALID_PATH_ID: u8 = 0x07;
    /// No device.
    pub const NO_DEVICE: u8 = 0x08;
    /// Timed out.
    pub const TIMEOUT: u8 = 0x09;
    /// Selection timed out (no device there).
    pub const SELECTION_TIMEOUT: u8 = 0x0A;
    /// Command timed out.
    pub const COMMAND_TIMEOUT: u8 = 0x0B;
    /// Bus reset.
    pub const BUS_RESET: u8 = 0x0E;
    /// Data overrun or underrun: `data_transfer_length` is what moved.
    pub const DATA_OVERRUN: u8 = 0x12;
    /// Request flushed.
    pub const REQUEST_FLUSHED: u8 = 0x16;
    /// No such LUN (it went away).
    pub const INVALID_LUN: u8 = 0x20;
    /// No such target.
    pub const INVALID_TARGET_ID: u8 = 0x21;
    /// Internal error of the host.
    pub const INTERNAL_ERROR: u8 = 0x30;
    /// Flag: the queue is frozen.
    pub const QUEUE_FROZEN: u8 = 0x40;
    /// Flag: the sense data is valid.
    pub const AUTOSENSE_VALID: u8 = 0x80;

    /// The code without the flags.
    #[must_use]
    pub const fn code(status: u8) -> u8 {
        status & !(QUEUE_FROZEN | AUTOSENSE_VALID)
    }
}

/// Bytes of one GPA-direct range header (byte count, byte offset) before its page numbers.
pub const GPA_RANGE_HEADER_LEN: usize = 8;
