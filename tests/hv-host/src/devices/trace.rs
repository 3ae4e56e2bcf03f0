//! The readable trace of every integration-service and Dynamic Memory message the host sends and
//! receives: one [`TraceRecord`] per message, kept in the host's [`TraceLog`](crate::log::TraceLog)
//! and shown one per line ("ic heartbeat: negotiate framework 3.0 service 3.0 agreed").

use core::fmt;

use vmbus_driver::ids::RelId;

use crate::devices::network::NetEvent;
use crate::devices::storage::event::StorEvent;
use crate::log::{Direction, GuestError};

/// Which service a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Heartbeat IC.
    Heartbeat,
    /// Shutdown IC.
    Shutdown,
    /// Time synchronisation IC.
    TimeSync,
    /// Key-value pair IC.
    Kvp,
    /// Dynamic Memory.
    DynamicMemory,
    /// The synthetic network adapter (NVSP and RNDIS control messages).
    Network,
    /// Storage (vstor messages of a SCSI or IDE channel).
    Storage,
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Heartbeat => "ic heartbeat",
            Self::Shutdown => "ic shutdown",
            Self::TimeSync => "ic timesync",
            Self::Kvp => "ic kvp",
            Self::DynamicMemory => "dm",
            Self::Network => "netvsp",
            Self::Storage => "storvsp",
        })
    }
}

/// An integration-service version (major.minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct IcVer {
    /// Major.
    pub major: u16,
    /// Minor.
    pub minor: u16,
}

impl IcVer {
    /// `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl fmt::Display for IcVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Up to four versions (a negotiation offer's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerList {
    n: u8,
    v: [IcVer; 4],
}

impl VerList {
    /// No versions.
    pub const EMPTY: Self = Self {
        n: 0,
        v: [IcVer::new(0, 0); 4],
    };

    /// The list of `vs` (at most four kept).
    pub fn of(vs: &[IcVer]) -> Self {
        let mut l = Self::default();
        for (i, v) in vs.iter().take(4).enumerate() {
            l.v[i] = *v;
            l.n += 1;
        }
        l
    }

    /// The versions.
    pub fn as_slice(&self) -> &[IcVer] {
        &self.v[..usize::from(self.n)]
    }
}

impl fmt::Display for VerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

/// How a hostile switch bent an outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bent {
    /// Cut to this many bytes.
    Truncated(u16),
    /// Body size field larger than the packet.
    Oversize(u16),
    /// Message type replaced by this one.
    Type(u16),
    /// The response flag set on a request.
    ResponseFlag,
}

/// What one traced message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceEvent {
    /// IC negotiate request with the versions offered.
    NegotiateOffer {
        /// Framework versions.
        frameworks: VerList,
        /// Service versions.
        services: VerList,
    },
    /// The guest agreed on these versions.
    NegotiateAgreed {
        /// Framework.
        framework: IcVer,
        /// Service.
        service: IcVer,
    },
    /// The guest answered with no common version (counts 0).
    NegotiateNoCommon,
    /// Heartbeat request.
    Heartbeat {
        /// Sequence number sent.
        seq: u64,
    },
    /// Heartbeat answer.
    HeartbeatAnswer {
        /// Sequence number answered.
        seq: u64,
        /// It was the request's plus one.
        ok: bool,
    },
    /// Shutdown request.
    Shutdown {
        /// Flags.
        flags: u32,
    },
    /// Time sample.
    TimeSample {
        /// Host time (100 ns since 1601).
        host_time: u64,
        /// Reference time (4.0 layout only).
        ref_time: Option<u64>,
        /// Flags (SYNC 1, SAMPLE 2).
        flags: u8,
    },
    /// KVP request.
    Kvp {
        /// Operation (GET 0, SET 1, DELETE 2, ENUMERATE 3).
        op: u8,
        /// Pool.
        pool: u8,
        /// Enumeration index (ENUMERATE) or key number.
        index: u32,
    },
    /// An IC answer with this status (services without a richer record).
    Answer {
        /// Status.
        status: u32,
    },
    /// The guest's message was refused.
    Refused(GuestError),
    /// A hostile switch bent the message just sent.
    Bent(Bent),
    /// A request went unanswered before the next one was due.
    Unanswered,
    /// DM_VERSION_REQUEST and the host's answer.
    DmVersion {
        /// Version (major << 16 | minor).
        version: u32,
        /// is_last_attempt.
        last: bool,
        /// The host accepted it.
        accepted: bool,
    },
    /// DM_CAPABILITIES_REPORT.
    DmCapabilities {
        /// Balloon capability.
        balloon: bool,
        /// Hot-add capability.
        hot_add: bool,
        /// min_page_cnt.
        min_pages: u64,
        /// max_page_number.
        max_page: u64,
    },
    /// DM_CAPABILITIES_RESPONSE.
    DmCapabilitiesResponse {
        /// is_accepted.
        accepted: bool,
    },
    /// DM_STATUS_REPORT.
    DmStatus {
        /// num_avail.
        avail: u64,
        /// num_committed.
        committed: u64,
    },
    /// DM_BALLOON_REQUEST.
    DmBalloon {
        /// Pages asked for.
        pages: u32,
    },
    /// DM_BALLOON_RESPONSE.
    DmBalloonResponse {
        /// Ranges.
        ranges: u32,
        /// Pages in them.
        pages: u64,
        /// more_pages.
        more: bool,
    },
    /// DM_UNBALLOON_REQUEST.
    DmUnballoon {
        /// Ranges.
        ranges: u32,
        /// Pages in them.
        pages: u64,
    },
    /// DM_UNBALLOON_RESPONSE.
    DmUnballoonResponse,
    /// An NVSP or RNDIS control message.
    Net(NetEvent),
    /// A vstor message.
    Storage(StorEvent),
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NegotiateOffer {
                frameworks,
                services,
            } => write!(
                f,
                "negotiate offer framework {frameworks} service {services}"
            ),
            Self::NegotiateAgreed { framework, service } => {
                write!(
                    f,
                    "negotiate framework {framework} service {service} agreed"
                )
            }
            Self::NegotiateNoCommon => f.write_str("negotiate: no common version"),
            Self::Heartbeat { seq } => write!(f, "heartbeat seq {seq}"),
            Self::HeartbeatAnswer { seq, ok } => {
                write!(
                    f,
                    "heartbeat answer seq {seq} {}",
                    if *ok { "ok" } else { "WRONG" }
                )
            }
            Self::Shutdown { flags } => write!(f, "shutdown request flags {flags:#x}"),
            Self::TimeSample {
                host_time,
                ref_time,
                flags,
            } => {
                write!(f, "time sample host {host_time} flags {flags:#x}")?;
                match ref_time {
                    Some(r) => write!(f, " ref {r} (4.0 layout)"),
                    None => f.write_str(" (pre-4.0 layout)"),
                }
            }
            Self::Kvp { op, pool, index } => {
                let name = match op {
                    0 => "GET",
                    1 => "SET",
                    2 => "DELETE",
                    3 => "ENUMERATE",
                    _ => "?",
                };
                write!(f, "kvp {name} pool {pool} #{index}")
            }
            Self::Answer { status } => write!(f, "answer status {status:#x}"),
            Self::Refused(e) => write!(f, "refused: {e}"),
            Self::Bent(b) => match b {
                Bent::Truncated(n) => write!(f, "(hostile) cut to {n} bytes"),
                Bent::Oversize(n) => write!(f, "(hostile) body size says {n}"),
                Bent::Type(t) => write!(f, "(hostile) message type {t}"),
                Bent::ResponseFlag => f.write_str("(hostile) response flag on a request"),
            },
            Self::Unanswered => f.write_str("request unanswered"),
            Self::DmVersion {
                version,
                last,
                accepted,
            } => write!(
                f,
                "VERSION_REQUEST {}.{}{} {}",
                version >> 16,
                version & 0xFFFF,
                if *last { " (last attempt)" } else { "" },
                if *accepted { "accepted" } else { "refused" }
            ),
            Self::DmCapabilities {
                balloon,
                hot_add,
                min_pages,
                max_page,
            } => write!(
                f,
                "CAPABILITIES_REPORT balloon={balloon} hot_add={hot_add} min_page_cnt={min_pages} max_page_number={max_page:#x}"
            ),
            Self::DmCapabilitiesResponse { accepted } => {
                write!(f, "CAPABILITIES_RESPONSE accepted={accepted}")
            }
            Self::DmStatus { avail, committed } => {
                write!(
                    f,
                    "STATUS_REPORT num_avail={avail} num_committed={committed}"
                )
            }
            Self::DmBalloon { pages } => write!(f, "BALLOON_REQUEST {pages} pages"),
            Self::DmBalloonResponse {
                ranges,
                pages,
                more,
            } => write!(
                f,
                "BALLOON_RESPONSE {ranges} ranges, {pages} pages, more_pages={}",
                u8::from(*more)
            ),
            Self::DmUnballoon { ranges, pages } => {
                write!(f, "UNBALLOON_REQUEST {ranges} ranges, {pages} pages")
            }
            Self::DmUnballoonResponse => f.write_str("UNBALLOON_RESPONSE"),
            Self::Net(e) => write!(f, "{e}"),
            Self::Storage(e) => write!(f, "{e}"),
        }
    }
}

/// One traced message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRecord {
    /// Position in the whole trace.
    pub seq: u64,
    /// Direction.
    pub dir: Direction,
    /// The channel.
    pub relid: RelId,
    /// The service.
    pub service: Service,
    /// What it was.
    pub event: TraceEvent,
}

impl TraceRecord {
    pub(crate) const EMPTY: Self = Self {
        seq: 0,
        dir: Direction::Sent,
        relid: RelId(0),
        service: Service::Heartbeat,
        event: TraceEvent::Unanswered,
    };
}

impl fmt::Display for TraceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.dir {
            Direction::Received => "guest->host",
            Direction::Sent => "host->guest",
        };
        write!(f, "{arrow} {}: {}", self.service, self.event)
    }
}
