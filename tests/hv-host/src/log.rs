//! The host's record of every message received and sent (a fixed ring of records), its counters,
//! and the guest errors it noticed.

use core::fmt;

use vmbus_driver::ids::{ConnectionId, GpadlId, RelId};
use vmbus_driver::msg::{ChannelMessage, DecodeError, MessageType};
use vmbus_driver::ring::RingError;

use crate::devices::dynmem::DmFault;
use crate::devices::ic::IcFault;
use crate::devices::network::NetFault;
use crate::devices::storage::event::StorFault;
use crate::devices::trace::{Service, TraceEvent, TraceRecord};
use crate::memory::GuestMemError;

/// Records kept; older ones are overwritten (the sequence number says how many came before).
pub const LOG_CAPACITY: usize = 1024;
/// Guest errors kept.
pub const ERROR_LOG_CAPACITY: usize = 64;
/// Integration-service and Dynamic Memory trace records kept.
pub const TRACE_CAPACITY: usize = 256;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Posted by the guest and accepted by the hypercall.
    Received,
    /// Queued by the host for the guest's SINT2 slot.
    Sent,
}

/// One message in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRecord {
    /// Position in the whole history (0 = first message ever).
    pub seq: u64,
    /// Direction.
    pub dir: Direction,
    /// The channel-message type in the header (as sent, even if unknown), 0 if under 4 bytes.
    pub msgtype: MessageType,
    /// The connection a received message was posted on (0 for sent messages).
    pub connection: ConnectionId,
    /// The relid the message names, if its type has one.
    pub relid: Option<RelId>,
    /// The GPADL id the message names, if its type has one.
    pub gpadl: Option<GpadlId>,
    /// The status/result field of a reply (GPADL_CREATED, OPENCHANNEL_RESULT, ...), if any.
    pub status: Option<u32>,
    /// Payload bytes.
    pub len: u8,
}

impl LogRecord {
    const EMPTY: Self = Self {
        seq: 0,
        dir: Direction::Sent,
        msgtype: MessageType::INVALID,
        connection: ConnectionId(0),
        relid: None,
        gpadl: None,
        status: None,
        len: 0,
    };

    /// Builds a record from the raw bytes, reading ids from the decoded message when it decodes
    /// and from the header otherwise.
    pub(crate) fn from_bytes(
        dir: Direction,
        connection: ConnectionId,
        bytes: &[u8],
        decoded: Option<&ChannelMessage>,
    ) -> Self {
        let msgtype = MessageType(if bytes.len() >= 4 {
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        } else {
            0
        });
        let (relid, gpadl, status) = decoded.map(ids_of).unwrap_or((None, None, None));
        Self {
            seq: 0,
            dir,
            msgtype,
            connection,
            relid,
            gpadl,
            status,
            len: bytes.len().min(255) as u8,
        }
    }
}

impl fmt::Display for LogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.dir {
            Direction::Received => "guest->host",
            Direction::Sent => "host->guest",
        };
        write!(
            f,
            "#{} {arrow} {} ({} bytes)",
            self.seq, self.msgtype, self.len
        )?;
        if let Some(r) = self.relid {
            write!(f, " {r}")?;
        }
        if let Some(g) = self.gpadl {
            write!(f, " {g}")?;
        }
        if let Some(s) = self.status {
            write!(f, " status={s:#x}")?;
        }
        Ok(())
    }
}

/// The relid, GPADL id and status a message carries.
fn ids_of(m: &ChannelMessage) -> (Option<RelId>, Option<GpadlId>, Option<u32>) {
    use ChannelMessage as M;
    match m {
        M::OfferChannel(o) => (Some(o.child_relid), None, None),
        M::RescindChannelOffer(r) => (Some(r.child_relid), None, None),
        M::OpenChannel(o) => (Some(o.child_relid), Some(o.ring_gpadl), None),
        M::OpenChannelResult(r) => (Some(r.child_relid), None, Some(r.status)),
        M::CloseChannel(c) => (Some(c.child_relid), None, None),
        M::GpadlHeader(h) => (Some(h.child_relid), Some(h.gpadl), None),
        M::GpadlBody(b) => (None, Some(b.gpadl), None),
        M::GpadlCreated(c) => (Some(c.child_relid), Some(c.gpadl), Some(c.creation_status)),
        M::GpadlTeardown(t) => (Some(t.child_relid), Some(t.gpadl), None),
        M::GpadlTorndown(t) => (None, Some(t.gpadl), None),
        M::RelIdReleased(r) => (Some(r.child_relid), None, None),
        M::VersionResponse(v) => (None, None, Some(u32::from(v.version_supported))),
        M::ModifyChannel(m) => (Some(m.child_relid), None, None),
        M::ModifyChannelResponse(m) => (Some(m.child_relid), None, Some(m.status)),
        M::TlConnectResult(t) => (None, None, Some(t.status)),
        _ => (None, None, None),
    }
}

/// A fixed ring of the last [`LOG_CAPACITY`] messages.
#[derive(Debug, Clone)]
pub struct MessageLog {
    records: [LogRecord; LOG_CAPACITY],
    next: u64,
}

impl Default for MessageLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageLog {
    /// An empty log.
    pub const fn new() -> Self {
        Self {
            records: [LogRecord::EMPTY; LOG_CAPACITY],
            next: 0,
        }
    }

    pub(crate) fn push(&mut self, mut r: LogRecord) {
        r.seq = self.next;
        self.records[(self.next % LOG_CAPACITY as u64) as usize] = r;
        self.next += 1;
    }

    /// Messages recorded since the start (including overwritten ones).
    pub fn total(&self) -> u64 {
        self.next
    }

    /// The kept records, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &LogRecord> + '_ {
        let kept = self.next.min(LOG_CAPACITY as u64);
        let first = self.next - kept;
        (first..self.next).map(move |s| &self.records[(s % LOG_CAPACITY as u64) as usize])
    }

    /// Kept records with sequence number `>= seq`, oldest first (a test takes `total()` before an
    /// action and looks at what followed).
    pub fn since(&self, seq: u64) -> impl Iterator<Item = &LogRecord> + '_ {
        self.iter().filter(move |r| r.seq >= seq)
    }
}

/// Something the guest did that a host refuses or ignores, recorded with what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestError {
    /// The message did not decode.
    Decode(DecodeError),
    /// A message other than INITIATE_CONTACT or UNLOAD before a successful handshake.
    NotConnected(MessageType),
    /// Posted on a connection other than the one the protocol requires.
    WrongConnection {
        /// The message type.
        msgtype: MessageType,
        /// The connection it came on.
        got: ConnectionId,
        /// The connection it must come on.
        expected: ConnectionId,
    },
    /// The HV message type was not 1 (VMBus).
    NotVmbusMessage(u32),
    /// A host-to-guest or unimplemented message type from the guest.
    UnexpectedMessage(MessageType),
    /// REQUESTOFFERS a second time on this connection.
    OffersAlreadySent,
    /// A relid that is not an offered channel.
    UnknownRelid(RelId),
    /// RELID_RELEASED for a relid already released.
    DuplicateRelease(RelId),
    /// RELID_RELEASED for a channel that was not rescinded.
    ReleaseNotRescinded(RelId),
    /// GPADL id 0.
    GpadlIdZero,
    /// A GPADL id already in use.
    GpadlIdInUse(GpadlId),
    /// A GPADL_BODY or GPADL_TEARDOWN for a GPADL that does not exist.
    UnknownGpadl(GpadlId),
    /// GPADL messages inconsistent with the header (PFN count, lengths).
    GpadlInconsistent(GpadlId),
    /// GPADL_TEARDOWN for a GPADL that is incomplete or already being torn down.
    GpadlBadState(GpadlId),
    /// OPENCHANNEL for a channel that is open.
    ChannelAlreadyOpen(RelId),
    /// CLOSECHANNEL / MODIFYCHANNEL for a channel that is not open.
    ChannelNotOpen(RelId),
    /// RELID_RELEASED for an open channel.
    ReleaseWhileOpen(RelId),
    /// CLOSECHANNEL for a channel whose open the host has not answered yet (OpenVMM's
    /// `vmbus_server` rejects it: no reply, the open goes on).
    CloseWhileOpening(RelId),
    /// The guest's ring was corrupt (index or descriptor).
    Ring(RelId, RingError),
    /// A GPADL page is not guest memory.
    Memory(RelId, GuestMemError),
    /// A packet type the device does not accept; the device stopped reading the ring.
    UnsupportedPacket(RelId, u16),
    /// An integration-service answer the host refused.
    Ic(RelId, IcFault),
    /// A Dynamic Memory message the host refused.
    Dm(RelId, DmFault),
    /// A network (NVSP / RNDIS) message or completion the host refused.
    Net(RelId, NetFault),
    /// A storage (vstor) request the host refused.
    Storage(RelId, StorFault),
    /// INITIATE_CONTACT gave one monitor page without the other.
    MonitorPagesOneOfTwo,
    /// A monitor page GPA that is not page-aligned, not guest memory, or the same page twice.
    BadMonitorPage(u64),
    /// A pending bit set in the child-to-parent monitor page for a monitor id no open channel
    /// has.
    UnknownMonitorBit(u8),
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MonitorPagesOneOfTwo => f.write_str("one monitor page without the other"),
            Self::BadMonitorPage(gpa) => write!(f, "monitor page {gpa:#x} unusable"),
            Self::UnknownMonitorBit(id) => write!(f, "monitor bit {id} names no open channel"),
            Self::Decode(e) => write!(f, "undecodable message: {e}"),
            Self::NotConnected(t) => write!(f, "{t} before the version handshake"),
            Self::WrongConnection {
                msgtype,
                got,
                expected,
            } => write!(f, "{msgtype} posted on {got}, must be {expected}"),
            Self::NotVmbusMessage(t) => write!(f, "HV message type {t} is not VMBus (1)"),
            Self::UnexpectedMessage(t) => write!(f, "{t} is not a guest-to-host message here"),
            Self::OffersAlreadySent => f.write_str("REQUESTOFFERS repeated on one connection"),
            Self::UnknownRelid(r) => write!(f, "{r} is not an offered channel"),
            Self::DuplicateRelease(r) => write!(f, "{r} released twice"),
            Self::ReleaseNotRescinded(r) => write!(f, "{r} released but never rescinded"),
            Self::GpadlIdZero => f.write_str("GPADL id 0"),
            Self::GpadlIdInUse(g) => write!(f, "{g} already in use"),
            Self::UnknownGpadl(g) => write!(f, "{g} does not exist"),
            Self::GpadlInconsistent(g) => write!(f, "{g}: PFN count or lengths inconsistent"),
            Self::GpadlBadState(g) => write!(f, "{g} is incomplete or already tearing down"),
            Self::ChannelAlreadyOpen(r) => write!(f, "{r} is already open"),
            Self::ChannelNotOpen(r) => write!(f, "{r} is not open"),
            Self::ReleaseWhileOpen(r) => write!(f, "{r} released while open"),
            Self::CloseWhileOpening(r) => {
                write!(f, "{r} closed before its OPENCHANNEL_RESULT")
            }
            Self::Ring(r, e) => write!(f, "{r}: {e}"),
            Self::Memory(r, e) => write!(f, "{r}: {e}"),
            Self::UnsupportedPacket(r, t) => write!(f, "{r}: packet type {t:#x} not accepted"),
            Self::Ic(r, e) => write!(f, "{r}: {e}"),
            Self::Dm(r, e) => write!(f, "{r}: {e}"),
            Self::Net(r, e) => write!(f, "{r}: {e}"),
            Self::Storage(r, e) => write!(f, "{r}: {e}"),
        }
    }
}

/// The host's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Guest messages accepted by the hypercall.
    pub messages_received: u64,
    /// Messages queued for the guest.
    pub messages_sent: u64,
    /// PostMessage / SignalEvent calls refused with a failure status.
    pub hypercall_failures: u64,
    /// Guest protocol errors (each also in the error log).
    pub guest_errors: u64,
    /// Messages ignored without a reply, as QEMU does (unknown ids, malformed GPADL headers, ...)
    /// or as Hyper-V does for a rescinded channel.
    pub ignored: u64,
    /// Replies withheld by the `silence` hostile mode.
    pub silenced: u64,
    /// SignalEvent calls accepted.
    pub signals_received: u64,
    /// Guest signals taken from the pending bits of the child-to-parent monitor page (no
    /// hypercall), for an open channel.
    pub monitor_signals: u64,
    /// Packets taken from the rings of channels freed since (their per-channel counts are gone;
    /// [`Host::packets_received`](crate::Host::packets_received) adds the live ones).
    pub packets_of_freed_channels: u64,
    /// Monitor page scans (polls that read the pending words).
    pub monitor_scans: u64,
    /// SignalEvent calls for a channel that had no unread data (against
    /// docs/protocol.md#producer-when-to-signal's rule) or was not open.
    pub spurious_signals: u64,
    /// Event flags the host set for the guest (channel interrupts).
    pub events_sent: u64,
    /// GPADLs created / torn down.
    pub gpadls_created: u64,
    /// GPADLs torn down with GPADL_TORNDOWN.
    pub gpadls_torn_down: u64,
    /// GPADLs dropped without teardown when their rescinded channel was released.
    pub gpadls_dropped: u64,
    /// Channels opened.
    pub opens: u64,
    /// Channels closed by the guest.
    pub closes: u64,
    /// Offers sent (each offer message).
    pub offers_sent: u64,
    /// Rescinds sent.
    pub rescinds_sent: u64,
    /// RELID_RELEASED accepted.
    pub releases: u64,
    /// Bus resets (INITIATE_CONTACT, UNLOAD).
    pub resets: u64,
}

/// The last [`ERROR_LOG_CAPACITY`] guest errors.
#[derive(Debug, Clone)]
pub struct ErrorLog {
    errors: [Option<GuestError>; ERROR_LOG_CAPACITY],
    next: usize,
}

impl Default for ErrorLog {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorLog {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            errors: [None; ERROR_LOG_CAPACITY],
            next: 0,
        }
    }

    pub(crate) fn push(&mut self, e: GuestError) {
        self.errors[self.next % ERROR_LOG_CAPACITY] = Some(e);
        self.next += 1;
    }

    /// Errors recorded since the start.
    pub fn total(&self) -> usize {
        self.next
    }

    /// The kept errors, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = GuestError> + '_ {
        let kept = self.next.min(ERROR_LOG_CAPACITY);
        (self.next - kept..self.next).filter_map(move |i| self.errors[i % ERROR_LOG_CAPACITY])
    }

    /// The most recent error.
    pub fn last(&self) -> Option<GuestError> {
        self.next
            .checked_sub(1)
            .and_then(|i| self.errors[i % ERROR_LOG_CAPACITY])
    }
}

/// The last [`TRACE_CAPACITY`] integration-service and Dynamic Memory messages, readable.
#[derive(Debug, Clone)]
pub struct TraceLog {
    records: [TraceRecord; TRACE_CAPACITY],
    next: u64,
}

impl Default for TraceLog {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceLog {
    /// Empty.
    pub const fn new() -> Self {
        Self {
            records: [TraceRecord::EMPTY; TRACE_CAPACITY],
            next: 0,
        }
    }

    pub(crate) fn push(
        &mut self,
        dir: Direction,
        relid: RelId,
        service: Service,
        event: TraceEvent,
    ) {
        let r = TraceRecord {
            seq: self.next,
            dir,
            relid,
            service,
            event,
        };
        self.records[(self.next % TRACE_CAPACITY as u64) as usize] = r;
        self.next += 1;
    }

    /// Records since the start (including overwritten ones).
    pub fn total(&self) -> u64 {
        self.next
    }

    /// The kept records, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &TraceRecord> + '_ {
        let kept = self.next.min(TRACE_CAPACITY as u64);
        (self.next - kept..self.next)
            .map(move |s| &self.records[(s % TRACE_CAPACITY as u64) as usize])
    }

    /// Kept records with sequence number `>= seq`.
    pub fn since(&self, seq: u64) -> impl Iterator<Item = &TraceRecord> + '_ {
        self.iter().filter(move |r| r.seq >= seq)
    }
}
