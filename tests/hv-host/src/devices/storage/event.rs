//! What the storage device tells the trace and the error log: the phase of a channel's
//! initialization, the faults it refuses a request for, and one readable event per message.

use core::fmt;

use super::proto::{Ver, op_name, scsi_name};

/// Where a storage channel's initialization stands (BEGIN_INITIALIZATION, then
/// QUERY_PROTOCOL_VERSION until one is accepted, QUERY_PROPERTIES, END_INITIALIZATION).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorPhase {
    /// Not open.
    Closed,
    /// Waiting for BEGIN_INITIALIZATION.
    Begin,
    /// Waiting for an acceptable QUERY_PROTOCOL_VERSION.
    Version,
    /// Waiting for QUERY_PROPERTIES.
    Properties,
    /// Waiting for END_INITIALIZATION.
    End,
    /// Serving EXECUTE_SRB.
    Ready,
}

/// Why the storage device refused a guest packet (each also answered with an error status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorFault {
    /// Shorter than its operation needs (the header, the version, the SRB of the version).
    Truncated {
        /// Operation (0 when not even the header was there).
        op: u32,
        /// Payload bytes.
        len: u16,
    },
    /// An operation the host does not take from a guest.
    UnknownOperation(u32),
    /// An operation out of the initialization order.
    OutOfOrder {
        /// Operation.
        op: u32,
        /// The phase it came in.
        phase: StorPhase,
    },
    /// A VMBus packet type other than in-band (6) and GPA-direct (9).
    PacketType(u16),
    /// A GPA-direct packet whose range count is not 1.
    RangeCount(u32),
    /// A malformed range: empty, offset outside the first page, or more page numbers than the
    /// extended descriptor holds.
    BadRange {
        /// byte_count.
        byte_count: u32,
        /// byte_offset.
        byte_offset: u32,
    },
    /// The range's byte count differs from the SRB's data_transfer_length.
    LengthMismatch {
        /// Range bytes.
        range: u32,
        /// SRB bytes.
        srb: u32,
    },
    /// More than the max transfer bytes the host announced.
    TooLarge {
        /// Bytes asked for.
        len: u32,
        /// The host's maximum.
        max: u32,
    },
    /// A page of the data buffer is not guest memory.
    NotGuestMemory(u64),
    /// Data to move but no buffer (an in-band EXECUTE_SRB with data_transfer_length > 0).
    NoBuffer(u32),
    /// A READ whose data_in says write, or a WRITE whose data_in says read.
    WrongDirection {
        /// SCSI opcode.
        op: u8,
        /// data_in.
        data_in: u8,
    },
}

impl fmt::Display for StorFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { op, len } => {
                write!(f, "storage {} of {len} bytes is too short", op_name(*op))
            }
            Self::UnknownOperation(op) => write!(f, "storage operation {op} not accepted"),
            Self::OutOfOrder { op, phase } => {
                write!(f, "storage {} out of order (phase {phase:?})", op_name(*op))
            }
            Self::PacketType(t) => write!(f, "storage packet type {t:#x} not accepted"),
            Self::RangeCount(n) => write!(f, "storage GPA-direct packet with {n} ranges"),
            Self::BadRange {
                byte_count,
                byte_offset,
            } => write!(
                f,
                "storage range of {byte_count} bytes at offset {byte_offset} is malformed"
            ),
            Self::LengthMismatch { range, srb } => {
                write!(f, "storage range of {range} bytes for an SRB of {srb}")
            }
            Self::TooLarge { len, max } => {
                write!(f, "storage transfer of {len} bytes over the maximum {max}")
            }
            Self::NotGuestMemory(p) => write!(f, "storage buffer page {p:#x} is not guest memory"),
            Self::NoBuffer(n) => write!(f, "storage SRB of {n} bytes without a buffer"),
            Self::WrongDirection { op, data_in } => {
                write!(f, "storage {} with data_in {data_in}", scsi_name(*op))
            }
        }
    }
}

/// How a hostile switch bent a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorBent {
    /// The SRB's length field says this.
    SrbLength(u16),
    /// Sent for this transaction id instead of the request's.
    UnknownTid(u64),
    /// Sent twice.
    Duplicate,
    /// sense_info_length says this.
    SenseLength(u8),
    /// data_transfer_length says `told`, `moved` bytes were moved.
    ShortTransfer {
        /// Reported.
        told: u32,
        /// Moved.
        moved: u32,
    },
}

/// One storage message, readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorEvent {
    /// A request without more to say (BEGIN_INITIALIZATION, QUERY_PROPERTIES, ...).
    Request(u32),
    /// QUERY_PROTOCOL_VERSION.
    QueryVersion(u16),
    /// EXECUTE_SRB.
    Srb {
        /// CDB byte 0.
        cdb0: u8,
        /// LUN.
        lun: u8,
        /// LBA and blocks of a READ or WRITE.
        lba: Option<(u64, u32)>,
        /// data_transfer_length.
        data_len: u32,
    },
    /// COMPLETE_IO answering `op` with `status`.
    Done {
        /// The request's operation.
        op: u32,
        /// Packet status.
        status: u32,
    },
    /// COMPLETE_IO answering QUERY_PROTOCOL_VERSION.
    Version {
        /// The version.
        version: u16,
        /// Accepted.
        accepted: bool,
    },
    /// COMPLETE_IO answering QUERY_PROPERTIES.
    Properties {
        /// max_transfer_bytes.
        max_transfer: u32,
        /// max_channel_cnt.
        channels: u16,
        /// flags.
        flags: u32,
    },
    /// COMPLETE_IO answering EXECUTE_SRB.
    SrbDone {
        /// SRB status as sent.
        srb: u8,
        /// SCSI status.
        scsi: u8,
        /// data_transfer_length as sent.
        transferred: u32,
        /// Sense key, ASC, ASCQ.
        sense: Option<(u8, u8, u8)>,
    },
    /// A hostile switch bent the completion just sent.
    Bent(StorBent),
}

impl fmt::Display for StorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(op) => f.write_str(op_name(*op)),
            Self::QueryVersion(v) => write!(f, "QUERY_PROTOCOL_VERSION {}", Ver(*v)),
            Self::Srb {
                cdb0,
                lun,
                lba,
                data_len,
            } => {
                write!(f, "EXECUTE_SRB {} lun {lun}", scsi_name(*cdb0))?;
                if scsi_name(*cdb0) == "SCSI" {
                    write!(f, " opcode {cdb0:#04x}")?;
                }
                if let Some((lba, blocks)) = lba {
                    write!(f, " lba {lba} blocks {blocks}")?;
                }
                write!(f, ", {data_len} bytes")
            }
            Self::Done { op, status } => {
                write!(f, "COMPLETE_IO {} status {status:#x}", op_name(*op))
            }
            Self::Version { version, accepted } => write!(
                f,
                "COMPLETE_IO version {} {}",
                Ver(*version),
                if *accepted { "accepted" } else { "refused" }
            ),
            Self::Properties {
                max_transfer,
                channels,
                flags,
            } => write!(
                f,
                "COMPLETE_IO properties max_transfer_bytes={max_transfer} max_channel_cnt={channels} flags={flags:#x}"
            ),
            Self::SrbDone {
                srb,
                scsi,
                transferred,
                sense,
            } => {
                write!(
                    f,
                    "COMPLETE_IO srb {srb:#04x} scsi {scsi:#04x} {transferred} bytes"
                )?;
                if let Some((k, a, q)) = sense {
                    write!(f, " sense {k:#04x}/{a:#04x}/{q:#04x}")?;
                }
                Ok(())
            }
            Self::Bent(b) => match b {
                StorBent::SrbLength(n) => write!(f, "(hostile) SRB length says {n}"),
                StorBent::UnknownTid(t) => write!(f, "(hostile) sent for transaction {t:#x}"),
                StorBent::Duplicate => f.write_str("(hostile) completion sent twice"),
                StorBent::SenseLength(n) => write!(f, "(hostile) sense length says {n}"),
                StorBent::ShortTransfer { told, moved } => {
                    write!(f, "(hostile) {told} bytes reported, {moved} moved")
                }
            },
        }
    }
}
