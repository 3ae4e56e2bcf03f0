//! The integration-services framework, host side: every request is one in-band packet holding
//! an 8-byte pipe header (flags, then the size of what follows), the 20-byte IC header
//! (framework version, message type, service version, body size, status, transaction id,
//! flags, 2 reserved bytes) and the body. The guest answers in place (response flag, status).
//!
//! On open the host sends the negotiation (framework and service versions it offers, oldest
//! first); the guest answers counts 1/1 and the two versions it picked, or counts 0/0. Then each
//! service sends its requests ([`super::icsvc`]) one at a time: a request due while another is
//! unanswered counts the old one as unanswered.

use core::fmt;

use crate::devices::trace::{Bent, IcVer, Service, TraceEvent, VerList};
use crate::hostile::{Hostile, IC_OVERSIZE_BODY, IC_TRUNCATED_LEN, IC_UNKNOWN_TYPE};

/// Pipe header bytes.
pub const PIPE_HEADER: usize = 8;
/// IC header bytes.
pub const IC_HEADER: usize = 20;
/// Offset of the body.
pub const BODY: usize = PIPE_HEADER + IC_HEADER;
/// IC header flag: a transaction (an answer is expected).
pub const FLAG_TRANSACTION: u8 = 1;
/// IC header flag: a request.
pub const FLAG_REQUEST: u8 = 2;
/// IC header flag: a response.
pub const FLAG_RESPONSE: u8 = 4;
/// Message types.
pub const TYPE_NEGOTIATE: u16 = 0;
/// Heartbeat.
pub const TYPE_HEARTBEAT: u16 = 1;
/// KVP exchange.
pub const TYPE_KVP: u16 = 2;
/// Shutdown.
pub const TYPE_SHUTDOWN: u16 = 3;
/// Time sync.
pub const TYPE_TIMESYNC: u16 = 4;

/// Framework versions the host offers (Linux speaks 3.0 and 1.0; OpenVMM offers 1.0 and 3.0).
pub const FRAMEWORK_VERSIONS: [IcVer; 2] = [IcVer::new(1, 0), IcVer::new(3, 0)];
/// Heartbeat versions offered (Linux: 3.0, 1.0).
pub const HEARTBEAT_VERSIONS: [IcVer; 2] = [IcVer::new(1, 0), IcVer::new(3, 0)];
/// Shutdown versions offered (Linux and OpenVMM: 1.0, 3.0, 3.1, 3.2).
pub const SHUTDOWN_VERSIONS: [IcVer; 4] = [
    IcVer::new(1, 0),
    IcVer::new(3, 0),
    IcVer::new(3, 1),
    IcVer::new(3, 2),
];
/// Time sync versions offered (Linux: 4.0, 3.0, 1.0; OpenVMM's host offers 4.0 only).
pub const TIMESYNC_VERSIONS: [IcVer; 3] = [IcVer::new(1, 0), IcVer::new(3, 0), IcVer::new(4, 0)];
/// KVP versions offered (OpenVMM's host: 3.0, 4.0, 5.0; Linux speaks 4.0, 3.0, 1.0).
pub const KVP_VERSIONS: [IcVer; 3] = [IcVer::new(3, 0), IcVer::new(4, 0), IcVer::new(5, 0)];
/// What [`Hostile::ic_foreign_versions`] offers.
pub const FOREIGN_FRAMEWORKS: [IcVer; 1] = [IcVer::new(7, 0)];
/// What [`Hostile::ic_foreign_versions`] offers as service versions.
pub const FOREIGN_SERVICES: [IcVer; 2] = [IcVer::new(7, 0), IcVer::new(7, 1)];

/// The service versions the host offers for `s`.
pub fn service_versions(s: Service) -> &'static [IcVer] {
    match s {
        Service::Heartbeat => &HEARTBEAT_VERSIONS,
        Service::Shutdown => &SHUTDOWN_VERSIONS,
        Service::TimeSync => &TIMESYNC_VERSIONS,
        Service::Kvp => &KVP_VERSIONS,
        _ => &[],
    }
}

/// The message type of `s`'s requests.
pub fn message_type(s: Service) -> u16 {
    match s {
        Service::Heartbeat => TYPE_HEARTBEAT,
        Service::Shutdown => TYPE_SHUTDOWN,
        Service::TimeSync => TYPE_TIMESYNC,
        Service::Kvp => TYPE_KVP,
        _ => u16::MAX,
    }
}

/// Why the host refused an IC answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcFault {
    /// Shorter than the pipe and IC headers.
    Truncated(usize),
    /// The response flag is missing.
    NotAResponse(u8),
    /// No request is waiting for an answer.
    Unsolicited,
    /// The packet's transaction id is not the request's.
    WrongTransaction {
        /// The request's.
        expected: u64,
        /// The answer's.
        got: u64,
    },
    /// The IC header's message type is not the request's.
    WrongType {
        /// The request's.
        expected: u16,
        /// The answer's.
        got: u16,
    },
    /// The body size says more than the packet holds.
    BodyOversize {
        /// The body size field.
        body: u16,
        /// Bytes after the headers.
        room: usize,
    },
    /// A body too short for its type.
    BadBody {
        /// Message type.
        ty: u16,
        /// Body size.
        size: u16,
    },
    /// Negotiation counts other than 1/1 or 0/0.
    BadNegotiation {
        /// Framework count.
        frameworks: u16,
        /// Service count.
        services: u16,
    },
    /// The guest picked a version the host did not offer.
    VersionNotOffered {
        /// Framework picked.
        framework: IcVer,
        /// Service version picked.
        service: IcVer,
    },
    /// The heartbeat answer was not the request's sequence number plus one.
    WrongSequence {
        /// Expected.
        expected: u64,
        /// Got.
        got: u64,
    },
    /// A KVP key or value size over the protocol's 512 / 2048 bytes.
    KvpSize {
        /// key_size.
        key: u32,
        /// value_size.
        value: u32,
    },
    /// A packet other than in-band data or a completion.
    PacketType(u16),
}

impl fmt::Display for IcFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(n) => write!(f, "IC answer of {n} bytes, under the 28-byte headers"),
            Self::NotAResponse(fl) => write!(f, "IC answer without the response flag ({fl:#x})"),
            Self::Unsolicited => f.write_str("IC answer with no request waiting"),
            Self::WrongTransaction { expected, got } => {
                write!(f, "IC answer for transaction {got}, expected {expected}")
            }
            Self::WrongType { expected, got } => {
                write!(f, "IC answer of type {got}, expected {expected}")
            }
            Self::BodyOversize { body, room } => {
                write!(f, "IC body size {body} but {room} bytes follow the headers")
            }
            Self::BadBody { ty, size } => write!(f, "IC type {ty} with a {size}-byte body"),
            Self::BadNegotiation {
                frameworks,
                services,
            } => write!(
                f,
                "IC negotiation answer with counts {frameworks}/{services}"
            ),
            Self::VersionNotOffered { framework, service } => write!(
                f,
                "IC negotiation picked framework {framework} service {service}, not offered"
            ),
            Self::WrongSequence { expected, got } => {
                write!(f, "heartbeat answered {got}, expected {expected}")
            }
            Self::KvpSize { key, value } => {
                write!(f, "KVP key_size {key} / value_size {value} over 512 / 2048")
            }
            Self::PacketType(t) => write!(f, "IC packet type {t:#x}"),
        }
    }
}

/// Where an integration service stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcPhase {
    /// Not open.
    Closed,
    /// Negotiation sent, not answered.
    Negotiating,
    /// Versions agreed; requests flow.
    Ready,
    /// The guest answered that it speaks none of the versions offered.
    NoCommonVersion,
    /// The guest's negotiation answer was refused.
    Failed,
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

/// Writes the pipe and IC headers of a request with a `body`-byte body (already in
/// `out[BODY..]`); returns the message length.
pub(crate) fn frame(
    out: &mut [u8],
    ty: u16,
    framework: IcVer,
    service: IcVer,
    body: usize,
    ic_tid: u8,
) -> usize {
    // body <= 4096 - 28.
    put(out, 0, &0u32.to_le_bytes());
    put(out, 4, &((IC_HEADER + body) as u32).to_le_bytes());
    let h = PIPE_HEADER;
    put(out, h, &framework.major.to_le_bytes());
    put(out, h + 2, &framework.minor.to_le_bytes());
    put(out, h + 4, &ty.to_le_bytes());
    put(out, h + 6, &service.major.to_le_bytes());
    put(out, h + 8, &service.minor.to_le_bytes());
    put(out, h + 10, &(body as u16).to_le_bytes());
    put(out, h + 12, &0u32.to_le_bytes());
    out[h + 16] = ic_tid;
    out[h + 17] = FLAG_TRANSACTION | FLAG_REQUEST;
    out[h + 18] = 0;
    out[h + 19] = 0;
    BODY + body
}

/// The negotiation body into `out[BODY..]`; returns its size and the lists offered.
pub(crate) fn negotiate_body(out: &mut [u8], s: Service, h: &Hostile) -> (usize, VerList, VerList) {
    let (fw, sv): (&[IcVer], &[IcVer]) = if h.ic_foreign_versions {
        (&FOREIGN_FRAMEWORKS, &FOREIGN_SERVICES)
    } else {
        (&FRAMEWORK_VERSIONS, service_versions(s))
    };
    let b = BODY;
    // At most 4 + 4 versions.
    put(out, b, &(fw.len() as u16).to_le_bytes());
    put(out, b + 2, &(sv.len() as u16).to_le_bytes());
    put(out, b + 4, &0u32.to_le_bytes());
    for (i, v) in fw.iter().chain(sv.iter()).enumerate() {
        put(out, b + 8 + 4 * i, &v.major.to_le_bytes());
        put(out, b + 10 + 4 * i, &v.minor.to_le_bytes());
    }
    (
        8 + 4 * (fw.len() + sv.len()),
        VerList::of(fw),
        VerList::of(sv),
    )
}

/// Applies the hostile IC switches to a framed request of `len` bytes and type `ty`, for
/// service `s`; returns the length to send, the type it now carries and how it was bent.
pub(crate) fn bend(
    out: &mut [u8],
    len: usize,
    s: Service,
    h: &Hostile,
) -> (usize, u16, Option<Bent>) {
    let h8 = PIPE_HEADER;
    let mut ty = u16_at(out, h8 + 4);
    let mut bent = None;
    if h.ic_unknown_type {
        ty = IC_UNKNOWN_TYPE;
        bent = Some(Bent::Type(ty));
    } else if h.ic_wrong_service && ty != TYPE_NEGOTIATE {
        ty = if s == Service::Heartbeat {
            TYPE_SHUTDOWN
        } else {
            TYPE_HEARTBEAT
        };
        bent = Some(Bent::Type(ty));
    }
    put(out, h8 + 4, &ty.to_le_bytes());
    if h.ic_response_flag {
        out[h8 + 17] = FLAG_TRANSACTION | FLAG_RESPONSE;
        bent = Some(Bent::ResponseFlag);
    }
    if h.ic_oversize_body {
        put(out, h8 + 10, &IC_OVERSIZE_BODY.to_le_bytes());
        bent = Some(Bent::Oversize(IC_OVERSIZE_BODY));
    }
    let mut len = len;
    if h.ic_truncate {
        len = IC_TRUNCATED_LEN;
        bent = Some(Bent::Truncated(IC_TRUNCATED_LEN as u16));
    }
    (len, ty, bent)
}

/// The answer's IC header, checked against the framing rules (not against the request).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Answer {
    pub ty: u16,
    pub body: u16,
    pub status: u32,
}

/// Reads and checks an answer's headers.
pub(crate) fn parse_answer(b: &[u8]) -> Result<Answer, IcFault> {
    if b.len() < BODY {
        return Err(IcFault::Truncated(b.len()));
    }
    let h = PIPE_HEADER;
    let flags = b[h + 17];
    if flags & FLAG_RESPONSE == 0 {
        return Err(IcFault::NotAResponse(flags));
    }
    let a = Answer {
        ty: u16_at(b, h + 4),
        body: u16_at(b, h + 10),
        status: u32_at(b, h + 12),
    };
    let room = b.len() - BODY;
    if usize::from(a.body) > room {
        return Err(IcFault::BodyOversize { body: a.body, room });
    }
    Ok(a)
}

/// The negotiation answer's outcome.
pub(crate) fn negotiate_answer(
    body: &[u8],
    offered: (&VerList, &VerList),
) -> Result<TraceEvent, IcFault> {
    let size = body.len() as u16;
    if body.len() < 4 {
        return Err(IcFault::BadBody {
            ty: TYPE_NEGOTIATE,
            size,
        });
    }
    let (fw_n, sv_n) = (u16_at(body, 0), u16_at(body, 2));
    if fw_n == 0 || sv_n == 0 {
        return Ok(TraceEvent::NegotiateNoCommon);
    }
    if (fw_n, sv_n) != (1, 1) {
        return Err(IcFault::BadNegotiation {
            frameworks: fw_n,
            services: sv_n,
        });
    }
    if body.len() < 16 {
        return Err(IcFault::BadBody {
            ty: TYPE_NEGOTIATE,
            size,
        });
    }
    let framework = IcVer::new(u16_at(body, 8), u16_at(body, 10));
    let service = IcVer::new(u16_at(body, 12), u16_at(body, 14));
    if !offered.0.as_slice().contains(&framework) || !offered.1.as_slice().contains(&service) {
        return Err(IcFault::VersionNotOffered { framework, service });
    }
    Ok(TraceEvent::NegotiateAgreed { framework, service })
}
