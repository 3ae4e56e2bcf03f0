//! The request layer: a bounded table of outstanding SCSI requests keyed by the VMBus transaction
//! id, the `EXECUTE_SRB` packets that start them, and the completions that end them.
//!
//! A transaction id is `generation << 32 | (slot + 1)`: never 0 (the id of the host's unsolicited
//! packets) and never [`crate::INIT_TRANSACTION_ID`]; a completion for a slot that is free, or
//! busy with another generation (a late duplicate of a completed request), is refused as a
//! hostile host's, as is one for an id no slot has.

use crate::buffer::{BufferError, DataBuffer, PAGE_SIZE};
use crate::cdb::{Command, STATUS_CHECK_CONDITION, STATUS_GOOD, Sense};
use crate::init::Negotiated;
use crate::msg::{
    self, DecodeError, Direction, Header, Lun, Operation, PACKET_MAX, Srb, SrbReply, Version,
    srb_status,
};

/// Default capacity of the request table.
pub const DEFAULT_CAPACITY: usize = 64;

/// Ring bytes one request may take in the guest's outbound ring: packet descriptor (16), GPA
/// header (8), range header (8), one frame number per page of `max_transfer` plus one for an
/// unaligned start, the 64-byte vstor packet and the 8-byte trailer.
#[must_use]
pub fn ring_bytes_per_request(max_transfer: u32) -> usize {
    let pages = max_transfer.div_ceil(PAGE_SIZE) as usize + 1;
    16 + 8 + 8 + 8 * pages + PACKET_MAX + 8
}

/// Requests that fit at once in an outbound ring of `ring_data_bytes` data bytes when each may
/// move `max_transfer` bytes (what Linux derives its per-channel queue depth from), at least 1.
#[must_use]
pub fn queue_depth_for(ring_data_bytes: u32, max_transfer: u32) -> usize {
    (ring_data_bytes as usize / ring_bytes_per_request(max_transfer)).max(1)
}

/// What a request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    generation: u32,
    opcode: u8,
    direction: Direction,
    data_len: u32,
}

/// A request handed to the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// The VMBus transaction id to send it with (completion requested).
    pub transaction_id: u64,
    /// Bytes of the vstor packet in the output buffer.
    pub len: usize,
    /// Whether it carries a data buffer: send it as a GPA-direct packet (type 9) with the
    /// buffer's range; otherwise in-band (type 6).
    pub gpa_direct: bool,
}

/// Why a request was not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// As many requests outstanding as the queue depth.
    QueueFull,
    /// More data than the host takes in one request.
    TooLarge {
        /// Bytes asked for.
        len: u32,
        /// The host's limit.
        max: u32,
    },
    /// A command that moves data without a buffer, or a buffer for one that moves none.
    BufferMismatch,
    /// A buffer whose length is not the command's data length.
    BufferLength {
        /// The buffer's bytes.
        buffer: u32,
        /// The command's.
        command: u32,
    },
    /// A malformed buffer.
    Buffer(BufferError),
    /// A CDB longer than 16 bytes.
    CdbLength(u8),
}

impl core::fmt::Display for SubmitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SubmitError::QueueFull => f.write_str("queue full"),
            SubmitError::TooLarge { len, max } => {
                write!(f, "transfer of {len} bytes beyond the host's {max}")
            }
            SubmitError::BufferMismatch => {
                f.write_str("data buffer given for no data, or missing for data")
            }
            SubmitError::BufferLength { buffer, command } => {
                write!(f, "buffer of {buffer} bytes for a {command}-byte transfer")
            }
            SubmitError::Buffer(e) => write!(f, "{e}"),
            SubmitError::CdbLength(n) => write!(f, "CDB of {n} bytes, 16 at most"),
        }
    }
}

/// How a request ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoError {
    /// CHECK CONDITION with valid sense data.
    CheckCondition(Sense),
    /// The LUN, target or path does not exist (any more): SRB status `INVALID_LUN`,
    /// `INVALID_TARGET_ID`, `INVALID_PATH_ID`, `NO_DEVICE` or `SELECTION_TIMEOUT`.
    NoDevice {
        /// The SRB status code.
        srb_status: u8,
    },
    /// Aborted, flushed or lost in a bus reset: may be retried.
    Aborted {
        /// The SRB status code.
        srb_status: u8,
    },
    /// The host is busy: retry later.
    Busy,
    /// A SCSI status other than GOOD without usable sense (BUSY, RESERVATION CONFLICT, TASK SET
    /// FULL, or CHECK CONDITION whose sense is missing).
    ScsiStatus {
        /// The SCSI status.
        scsi_status: u8,
        /// The SRB status code.
        srb_status: u8,
    },
    /// Another SRB failure (`ERROR`, `INVALID_REQUEST`, `TIMEOUT`, internal errors, ...).
    Srb {
        /// The SRB status code.
        srb_status: u8,
    },
    /// The channel went away (rescind or close) before the host answered.
    ChannelGone,
}

impl core::fmt::Display for IoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IoError::CheckCondition(s) => write!(f, "check condition: {s}"),
            IoError::NoDevice { srb_status } => {
                write!(f, "no such device (SRB status {srb_status:#04x})")
            }
            IoError::Aborted { srb_status } => {
                write!(f, "request aborted (SRB status {srb_status:#04x})")
            }
            IoError::Busy => f.write_str("host busy"),
            IoError::ScsiStatus {
                scsi_status,
                srb_status,
            } => write!(
                f,
                "SCSI status {scsi_status:#04x} (SRB status {srb_status:#04x})"
            ),
            IoError::Srb { srb_status } => write!(f, "SRB status {srb_status:#04x}"),
            IoError::ChannelGone => f.write_str("channel gone before the completion"),
        }
    }
}

/// Bytes a successful request moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes moved.
    pub transferred: u32,
    /// Bytes asked for.
    pub requested: u32,
}

impl Transfer {
    /// Whether fewer bytes moved than asked for.
    #[must_use]
    pub const fn is_short(&self) -> bool {
        self.transferred < self.requested
    }
}

/// A finished request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Its transaction id.
    pub transaction_id: u64,
    /// The command's operation code.
    pub opcode: u8,
    /// What came of it.
    pub result: Result<Transfer, IoError>,
}

/// What the host did wrong (never a panic, never trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// A completion for an id no slot of the table has.
    UnknownId(u64),
    /// A completion for an id whose request is not outstanding (already completed, or a late
    /// duplicate after the slot was reused).
    NotOutstanding(u64),
    /// A completion for an outstanding request that did not decode; the request is ended (the
    /// caller fails it).
    Malformed {
        /// The request's transaction id.
        transaction_id: u64,
        /// What was wrong.
        error: DecodeError,
    },
    /// A completion claiming more bytes than the request asked for; the request is ended.
    TransferBeyondRequest {
        /// The request's transaction id.
        transaction_id: u64,
        /// Bytes the host claimed.
        transferred: u32,
        /// Bytes asked for.
        requested: u32,
    },
    /// An unsolicited packet (id 0) that claims to complete a request.
    CompletionWithoutId,
    /// An unsolicited packet that did not decode.
    Unsolicited(DecodeError),
}

impl HostError {
    /// The outstanding request this error ended, if any (the caller fails it).
    #[must_use]
    pub const fn ended(&self) -> Option<u64> {
        match self {
            HostError::Malformed { transaction_id, .. }
            | HostError::TransferBeyondRequest { transaction_id, .. } => Some(*transaction_id),
            _ => None,
        }
    }
}

impl core::fmt::Display for HostError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            HostError::UnknownId(id) => write!(f, "completion for unknown id {id:#x}"),
            HostError::NotOutstanding(id) => {
                write!(f, "completion for id {id:#x}, which is not outstanding")
            }
            HostError::Malformed {
                transaction_id,
                error,
            } => write!(f, "completion of {transaction_id:#x}: {error}"),
            HostError::TransferBeyondRequest {
                transaction_id,
                transferred,
                requested,
            } => write!(
                f,
                "completion of {transaction_id:#x} claims {transferred} bytes of {requested}"
            ),
            HostError::CompletionWithoutId => f.write_str("completion with transaction id 0"),
            HostError::Unsolicited(e) => write!(f, "unsolicited packet: {e}"),
        }
    }
}

/// A packet from the host, handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// A request finished.
    Done(Done),
    /// LUNs came or went (`ENUMERATE_BUS` or `REMOVE_DEVICE`): rescan the bus.
    Rescan,
    /// An unsolicited packet of another operation, ignored (e.g. `FC_HBA_DATA`).
    Ignored(Operation),
}

/// Counters of the request layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Requests started.
    pub submitted: u64,
    /// Requests completed by the host (successfully or not).
    pub completed: u64,
    /// Requests ended by `fail_all` or `cancel`.
    pub failed_locally: u64,
    /// Short transfers.
    pub short: u64,
    /// Host errors seen.
    pub hostile: u64,
}

/// The outstanding requests of one channel, at most `N` (the table) and at most the queue depth.
#[derive(Debug)]
pub struct Requests<const N: usize = DEFAULT_CAPACITY> {
    version: Version,
    max_transfer: u32,
    depth: usize,
    slots: [Option<Pending>; N],
    outstanding: usize,
    generation: u32,
    stats: RequestStats,
}

impl<const N: usize> Requests<N> {
    /// A table for the negotiated protocol, allowing `depth` outstanding requests (clamped to
    /// 1..=N; see [`queue_depth_for`]).
    #[must_use]
    pub fn new(negotiated: &Negotiated, depth: usize) -> Self {
        Self {
            version: negotiated.version,
            max_transfer: negotiated.max_transfer_bytes,
            depth: depth.clamp(1, N.max(1)),
            slots: [None; N],
            outstanding: 0,
            generation: 0,
            stats: RequestStats::default(),
        }
    }

    /// The queue depth.
    #[must_use]
    pub const fn depth(&self) -> usize {
        self.depth
    }

    /// Requests outstanding.
    #[must_use]
    pub const fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Counters.
    #[must_use]
    pub const fn stats(&self) -> RequestStats {
        self.stats
    }

    /// Largest transfer of one request.
    #[must_use]
    pub const fn max_transfer(&self) -> u32 {
        self.max_transfer
    }

    /// Starts `command` to `lun` with its data in `buffer`: the `EXECUTE_SRB` packet goes to
    /// `out`. Send it with the returned transaction id and a completion request, as a GPA-direct
    /// packet carrying `buffer`'s range when there is one. If the send fails, [`Requests::cancel`]
    /// the id.
    ///
    /// # Errors
    /// [`SubmitError`]; nothing is recorded then.
    pub fn submit(
        &mut self,
        lun: Lun,
        command: &Command,
        buffer: Option<&DataBuffer<'_>>,
        out: &mut [u8; PACKET_MAX],
    ) -> Result<Submitted, SubmitError> {
        if usize::from(command.cdb_len) > msg::MAX_CDB_LEN {
            return Err(SubmitError::CdbLength(command.cdb_len));
        }
        if command.data_len > self.max_transfer {
            return Err(SubmitError::TooLarge {
                len: command.data_len,
                max: self.max_transfer,
            });
        }
        let moves = command.direction != Direction::None && command.data_len > 0;
        match (moves, buffer) {
            (true, Some(b)) => {
                b.check().map_err(SubmitError::Buffer)?;
                if b.len != command.data_len {
                    return Err(SubmitError::BufferLength {
                        buffer: b.len,
                        command: command.data_len,
                    });
                }
            }
            (false, None) => {}
            _ => return Err(SubmitError::BufferMismatch),
        }
        if self.outstanding >= self.depth {
            return Err(SubmitError::QueueFull);
        }
        let Some(slot) = self.slots[..self.depth].iter().position(Option::is_none) else {
            return Err(SubmitError::QueueFull);
        };
        self.generation = self.generation.wrapping_add(1);
        let pending = Pending {
            generation: self.generation,
            opcode: command.opcode(),
            direction: command.direction,
            data_len: if moves { command.data_len } else { 0 },
        };
        let srb = Srb {
            lun,
            cdb: command.cdb,
            cdb_len: command.cdb_len,
            direction: command.direction,
            data_len: pending.data_len,
        };
        let len = msg::srb_request(out, self.version, &srb);
        self.slots[slot] = Some(pending);
        self.outstanding += 1;
        self.stats.submitted += 1;
        Ok(Submitted {
            transaction_id: (u64::from(pending.generation) << 32) | (slot as u64 + 1),
            len,
            gpa_direct: moves,
        })
    }

    /// The slot of `id` if it names an outstanding request.
    fn find(&self, id: u64) -> Result<usize, HostError> {
        let low = (id & 0xffff_ffff) as usize;
        if low == 0 || low > self.depth {
            return Err(HostError::UnknownId(id));
        }
        let slot = low - 1;
        match self.slots[slot] {
            Some(p) if u64::from(p.generation) == id >> 32 => Ok(slot),
            _ => Err(HostError::NotOutstanding(id)),
        }
    }

    /// Ends the request `transaction_id` without a completion (its send failed).
    ///
    /// # Errors
    /// [`HostError::UnknownId`] or [`HostError::NotOutstanding`] for an id that is not
    /// outstanding.
    pub fn cancel(&mut self, transaction_id: u64) -> Result<(), HostError> {
        let slot = self.find(transaction_id)?;
        self.slots[slot] = None;
        self.outstanding -= 1;
        self.stats.failed_locally += 1;
        Ok(())
    }

    /// Handles a packet from the host: `transaction_id` is the VMBus packet's, `packet` its
    /// payload (a completion packet for a request, an in-band packet with id 0 for the host's
    /// notifications).
    ///
    /// # Errors
    /// [`HostError`]: the packet is dropped; when [`HostError::ended`] names a request, that
    /// request is over and the caller fails it.
    pub fn on_packet(&mut self, transaction_id: u64, packet: &[u8]) -> Result<Incoming, HostError> {
        let r = if transaction_id == 0 {
            Self::unsolicited(packet)
        } else {
            self.complete(transaction_id, packet).map(Incoming::Done)
        };
        if r.is_err() {
            self.stats.hostile += 1;
        }
        r
    }

    fn unsolicited(packet: &[u8]) -> Result<Incoming, HostError> {
        let h = Header::decode(packet).map_err(HostError::Unsolicited)?;
        match h.operation {
            Operation::ENUMERATE_BUS | Operation::REMOVE_DEVICE => Ok(Incoming::Rescan),
            Operation::COMPLETE_IO => Err(HostError::CompletionWithoutId),
            other => Ok(Incoming::Ignored(other)),
        }
    }

    fn complete(&mut self, id: u64, packet: &[u8]) -> Result<Done, HostError> {
        let slot = self.find(id)?;
        let Some(p) = self.slots[slot].take() else {
            return Err(HostError::NotOutstanding(id));
        };
        self.outstanding -= 1;
        self.stats.completed += 1;
        let reply =
            SrbReply::decode(packet, self.version).map_err(|error| HostError::Malformed {
                transaction_id: id,
                error,
            })?;
        if reply.data_transfer_length > p.data_len {
            return Err(HostError::TransferBeyondRequest {
                transaction_id: id,
                transferred: reply.data_transfer_length,
                requested: p.data_len,
            });
        }
        let result = outcome(&reply).map(|transferred| Transfer {
            transferred,
            requested: p.data_len,
        });
        if result.is_ok_and(|t| t.is_short()) {
            self.stats.short += 1;
        }
        Ok(Done {
            transaction_id: id,
            opcode: p.opcode,
            result,
        })
    }

    /// Ends every outstanding request with [`IoError::ChannelGone`] (the channel was rescinded
    /// or closed), handing each to `each`; how many there were.
    pub fn fail_all(&mut self, mut each: impl FnMut(Done)) -> usize {
        let mut n = 0;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(p) = s.take() {
                n += 1;
                each(Done {
                    transaction_id: (u64::from(p.generation) << 32) | (i as u64 + 1),
                    opcode: p.opcode,
                    result: Err(IoError::ChannelGone),
                });
            }
        }
        self.outstanding = 0;
        self.stats.failed_locally += n as u64;
        n
    }
}

/// The result of a decoded SRB: bytes moved, or the error.
fn outcome(r: &SrbReply) -> Result<u32, IoError> {
    let code = srb_status::code(r.srb_status);
    if r.scsi_status == STATUS_CHECK_CONDITION
        && r.srb_status & srb_status::AUTOSENSE_VALID != 0
        && let Some(s) = Sense::parse(r.sense())
    {
        return Err(IoError::CheckCondition(s));
    }
    match code {
        srb_status::SUCCESS | srb_status::DATA_OVERRUN if r.scsi_status == STATUS_GOOD => {
            Ok(r.data_transfer_length)
        }
        srb_status::INVALID_LUN
        | srb_status::INVALID_TARGET_ID
        | srb_status::INVALID_PATH_ID
        | srb_status::NO_DEVICE
        | srb_status::SELECTION_TIMEOUT => Err(IoError::NoDevice { srb_status: code }),
        srb_status::ABORTED | srb_status::REQUEST_FLUSHED | srb_status::BUS_RESET => {
            Err(IoError::Aborted { srb_status: code })
        }
        srb_status::BUSY => Err(IoError::Busy),
        _ if r.scsi_status != STATUS_GOOD => Err(IoError::ScsiStatus {
            scsi_status: r.scsi_status,
            srb_status: code,
        }),
        _ => Err(IoError::Srb { srb_status: code }),
    }
}
