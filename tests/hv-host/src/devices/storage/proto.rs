//! The vstor wire format: the 12-byte packet header (operation, flags, status), the
//! `vmscsi_request` that EXECUTE_SRB carries and COMPLETE_IO returns, the protocol version and
//! channel properties bodies, the status codes, and the readable form of each message for the
//! host's trace.
//!
//! Layout of `vmscsi_request` (packed, little-endian), offsets from its start (the packet's byte
//! 12): length u16 @0, srb_status u8 @2, scsi_status u8 @3, port u8 @4, path_id u8 @5, target_id
//! u8 @6, lun u8 @7, cdb_length u8 @8, sense_info_length u8 @9, data_in u8 @10, reserved u8 @11,
//! data_transfer_length u32 @12, the 20-byte CDB / sense area @16; from protocol 5.1 (Windows 8)
//! on, 16 more bytes @36 (reserve u16, queue_tag u8, queue_action u8, srb_flags u32,
//! time_out_value u32, queue_sort_key u32): 0x24 bytes before 5.1, 0x34 from it.

use core::fmt;

/// The packet header: operation u32, flags u32, status u32.
pub const HEADER: usize = 12;
/// `vmscsi_request` bytes before protocol 5.1 (Windows 7 and older).
pub const SRB_LEN_WIN7: usize = 0x24;
/// `vmscsi_request` bytes from protocol 5.1 on (the Windows 8 extension added).
pub const SRB_LEN_WIN8: usize = 0x34;
/// The largest packet: header and the Windows 8 request.
pub const MAX_PACKET: usize = HEADER + SRB_LEN_WIN8;
/// The sense area of a request.
pub const SENSE_AREA: usize = 0x14;
/// Fixed-format sense data the host returns.
pub const SENSE_LEN: usize = 18;
/// Bytes per sector of the RAM disk.
pub const SECTOR: usize = 512;

/// COMPLETE_IO: the host's answer to every request.
pub const OP_COMPLETE_IO: u32 = 1;
/// REMOVE_DEVICE.
pub const OP_REMOVE_DEVICE: u32 = 2;
/// EXECUTE_SRB: a SCSI request.
pub const OP_EXECUTE_SRB: u32 = 3;
/// RESET_LUN.
pub const OP_RESET_LUN: u32 = 4;
/// RESET_ADAPTER.
pub const OP_RESET_ADAPTER: u32 = 5;
/// RESET_BUS.
pub const OP_RESET_BUS: u32 = 6;
/// BEGIN_INITIALIZATION.
pub const OP_BEGIN_INITIALIZATION: u32 = 7;
/// END_INITIALIZATION.
pub const OP_END_INITIALIZATION: u32 = 8;
/// QUERY_PROTOCOL_VERSION.
pub const OP_QUERY_PROTOCOL_VERSION: u32 = 9;
/// QUERY_PROPERTIES.
pub const OP_QUERY_PROPERTIES: u32 = 10;
/// ENUMERATE_BUS (host to guest).
pub const OP_ENUMERATE_BUS: u32 = 11;
/// FCHBA_DATA.
pub const OP_FCHBA_DATA: u32 = 12;
/// CREATE_SUB_CHANNELS.
pub const OP_CREATE_SUB_CHANNELS: u32 = 13;

/// Protocol 2.0 (Windows Server 2008).
pub const VERSION_WIN6: u16 = 0x0200;
/// Protocol 4.2 (Windows 7).
pub const VERSION_WIN7: u16 = 0x0402;
/// Protocol 5.1 (Windows 8).
pub const VERSION_WIN8: u16 = 0x0501;
/// Protocol 6.0 (Windows 8.1).
pub const VERSION_WIN8_1: u16 = 0x0600;
/// Protocol 6.2 (Windows 10).
pub const VERSION_WIN10: u16 = 0x0602;

/// NT status: success.
pub const STATUS_SUCCESS: u32 = 0;
/// NT status: an invalid parameter (a request the host could not take apart).
pub const STATUS_INVALID_PARAMETER: u32 = 0xC000_000D;
/// NT status: an operation the host does not do.
pub const STATUS_INVALID_DEVICE_REQUEST: u32 = 0xC000_0010;
/// NT status: the protocol version is not supported.
pub const STATUS_REVISION_MISMATCH: u32 = 0xC000_0059;
/// NT status: no such device (an SRB for another target or LUN).
pub const STATUS_DEVICE_DOES_NOT_EXIST: u32 = 0xC000_00C0;
/// NT status: the request came out of the initialization order.
pub const STATUS_INVALID_DEVICE_STATE: u32 = 0xC000_0184;
/// NT status: the device failed the request (a SCSI error).
pub const STATUS_IO_DEVICE_ERROR: u32 = 0xC000_0185;

/// SRB status: success.
pub const SRB_SUCCESS: u8 = 0x01;
/// SRB status: the command failed (with sense).
pub const SRB_ERROR: u8 = 0x04;
/// SRB status: the request was malformed.
pub const SRB_INVALID_REQUEST: u8 = 0x06;
/// SRB status: no such LUN.
pub const SRB_INVALID_LUN: u8 = 0x20;
/// SRB status flag: the sense area holds valid sense data.
pub const SRB_AUTOSENSE_VALID: u8 = 0x80;

/// SCSI status GOOD.
pub const SCSI_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const SCSI_CHECK_CONDITION: u8 = 0x02;

/// `data_in`: the guest sends data (a write).
pub const DATA_OUT: u8 = 0;
/// `data_in`: the guest receives data (a read).
pub const DATA_IN: u8 = 1;

/// QUERY_PROPERTIES flag: sub-channels supported.
pub const PROPERTIES_MULTI_CHANNEL: u32 = 0x1;

/// Bytes of `vmscsi_request` at protocol `version`.
pub const fn srb_len(version: u16) -> usize {
    if version >= VERSION_WIN8 {
        SRB_LEN_WIN8
    } else {
        SRB_LEN_WIN7
    }
}

pub(crate) fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The fields of an EXECUTE_SRB request the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Srb {
    /// `length` as the guest wrote it.
    pub length: u16,
    /// Port, path, target, LUN.
    pub port: u8,
    /// Path id.
    pub path: u8,
    /// Target id.
    pub target: u8,
    /// LUN.
    pub lun: u8,
    /// CDB bytes used.
    pub cdb_len: u8,
    /// Sense bytes the guest can take.
    pub sense_len: u8,
    /// Direction ([`DATA_IN`], [`DATA_OUT`], 2 unknown).
    pub data_in: u8,
    /// Bytes of data.
    pub data_len: u32,
    /// The CDB (zero past `cdb_len`).
    pub cdb: [u8; 16],
}

impl Srb {
    /// Decodes the request at the start of `b` (at least [`SRB_LEN_WIN7`] bytes).
    pub fn parse(b: &[u8]) -> Self {
        let cdb_len = b[8];
        let mut cdb = [0u8; 16];
        let n = usize::from(cdb_len).min(16);
        cdb[..n].copy_from_slice(&b[16..16 + n]);
        Self {
            length: u16_at(b, 0),
            port: b[4],
            path: b[5],
            target: b[6],
            lun: b[7],
            cdb_len,
            sense_len: b[9],
            data_in: b[10],
            data_len: u32_at(b, 12),
            cdb,
        }
    }
}

/// A SCSI answer: statuses, bytes moved, sense (key, ASC, ASCQ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiResult {
    /// SRB status (without the autosense flag).
    pub srb: u8,
    /// SCSI status.
    pub scsi: u8,
    /// Bytes moved.
    pub transferred: u32,
    /// Sense key, ASC, ASCQ.
    pub sense: Option<(u8, u8, u8)>,
}

impl ScsiResult {
    /// GOOD with `n` bytes moved.
    pub const fn good(n: u32) -> Self {
        Self {
            srb: SRB_SUCCESS,
            scsi: SCSI_GOOD,
            transferred: n,
            sense: None,
        }
    }

    /// CHECK CONDITION with fixed-format sense.
    pub const fn check(key: u8, asc: u8, ascq: u8) -> Self {
        Self {
            srb: SRB_ERROR,
            scsi: SCSI_CHECK_CONDITION,
            transferred: 0,
            sense: Some((key, asc, ascq)),
        }
    }

    /// A request the host refused before SCSI (a bad buffer description).
    pub const fn invalid() -> Self {
        Self {
            srb: SRB_INVALID_REQUEST,
            scsi: SCSI_GOOD,
            transferred: 0,
            sense: None,
        }
    }

    /// No such LUN.
    pub const fn no_lun() -> Self {
        Self {
            srb: SRB_INVALID_LUN,
            scsi: SCSI_GOOD,
            transferred: 0,
            sense: None,
        }
    }

    /// The packet status that goes with the SRB status.
    pub const fn nt_status(&self) -> u32 {
        match self.srb {
            SRB_SUCCESS => STATUS_SUCCESS,
            SRB_INVALID_LUN => STATUS_DEVICE_DOES_NOT_EXIST,
            SRB_INVALID_REQUEST => STATUS_INVALID_PARAMETER,
            _ => STATUS_IO_DEVICE_ERROR,
        }
    }
}

/// Writes the packet header into `out[..12]`.
pub fn header(out: &mut [u8], operation: u32, status: u32) {
    out[..4].copy_from_slice(&operation.to_le_bytes());
    out[4..8].fill(0);
    out[8..12].copy_from_slice(&status.to_le_bytes());
}

/// Writes the COMPLETE_IO request body for `srb` answered with `r` at protocol `version` into
/// `out[12..]` (the caller zeroed it).
pub fn completion_srb(out: &mut [u8], version: u16, srb: &Srb, r: &ScsiResult) {
    let b = &mut out[HEADER..];
    // srb_len <= 0x34.
    b[..2].copy_from_slice(&(srb_len(version) as u16).to_le_bytes());
    b[2] = r.srb
        | if r.sense.is_some() {
            SRB_AUTOSENSE_VALID
        } else {
            0
        };
    b[3] = r.scsi;
    b[4] = srb.port;
    b[5] = srb.path;
    b[6] = srb.target;
    b[7] = srb.lun;
    b[8] = srb.cdb_len;
    b[10] = srb.data_in;
    b[12..16].copy_from_slice(&r.transferred.to_le_bytes());
    if let Some((key, asc, ascq)) = r.sense {
        b[9] = SENSE_LEN as u8;
        let s = &mut b[16..16 + SENSE_LEN];
        s[0] = 0x70;
        s[2] = key;
        s[7] = (SENSE_LEN - 8) as u8;
        s[12] = asc;
        s[13] = ascq;
    }
}

/// `major.minor` of a vstor version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ver(pub u16);

impl fmt::Display for Ver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 >> 8, self.0 & 0xFF)
    }
}

/// The name of a vstor operation.
pub fn op_name(op: u32) -> &'static str {
    match op {
        OP_COMPLETE_IO => "COMPLETE_IO",
        OP_REMOVE_DEVICE => "REMOVE_DEVICE",
        OP_EXECUTE_SRB => "EXECUTE_SRB",
        OP_RESET_LUN => "RESET_LUN",
        OP_RESET_ADAPTER => "RESET_ADAPTER",
        OP_RESET_BUS => "RESET_BUS",
        OP_BEGIN_INITIALIZATION => "BEGIN_INITIALIZATION",
        OP_END_INITIALIZATION => "END_INITIALIZATION",
        OP_QUERY_PROTOCOL_VERSION => "QUERY_PROTOCOL_VERSION",
        OP_QUERY_PROPERTIES => "QUERY_PROPERTIES",
        OP_ENUMERATE_BUS => "ENUMERATE_BUS",
        OP_FCHBA_DATA => "FCHBA_DATA",
        OP_CREATE_SUB_CHANNELS => "CREATE_SUB_CHANNELS",
        _ => "operation ?",
    }
}

/// The name of a SCSI opcode the disk knows.
pub fn scsi_name(op: u8) -> &'static str {
    match op {
        0x00 => "TEST UNIT READY",
        0x12 => "INQUIRY",
        0x25 => "READ CAPACITY(10)",
        0x9E => "READ CAPACITY(16)",
        0x28 => "READ(10)",
        0x88 => "READ(16)",
        0x2A => "WRITE(10)",
        0x8A => "WRITE(16)",
        0x35 => "SYNCHRONIZE CACHE(10)",
        0x91 => "SYNCHRONIZE CACHE(16)",
        0xA0 => "REPORT LUNS",
        _ => "SCSI",
    }
}
