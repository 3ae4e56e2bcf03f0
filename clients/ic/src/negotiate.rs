//! Version negotiation, the host's first request on every integration-service channel.
//!
//! Body: framework version count (u16), service version count (u16), 4 reserved bytes, then
//! the versions (major, minor as u16 each), the framework versions first. The guest answers in
//! place with one framework and one service version, the highest of each that both speak, or
//! with both counts 0 when there is none (the host then closes the service).

use crate::header::{self, BODY, IcError, IcVersion, MsgType};

/// Bytes before the version list.
const LIST: usize = 8;

/// Framework versions the guest speaks (newest first): 3.0 (Windows Server 2012 and later) and
/// 1.0 (Windows Server 2008).
pub const FRAMEWORK_VERSIONS: [IcVersion; 2] = [IcVersion::new(3, 0), IcVersion::new(1, 0)];

/// What the negotiation settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both sides speak these.
    Agreed {
        /// The framework version.
        framework: IcVersion,
        /// The service version.
        service: IcVersion,
    },
    /// No common framework or service version: the service cannot run.
    NoCommonVersion,
}

/// The highest of `ours` (newest first) that `theirs` holds.
fn pick(ours: &[IcVersion], theirs: impl Iterator<Item = IcVersion> + Clone) -> Option<IcVersion> {
    ours.iter()
        .copied()
        .find(|v| theirs.clone().any(|t| t == *v))
}

/// Answers the negotiation request in `msg` in place (keeping its length; the versions after
/// the counts the answer gives are left as they were) for a service speaking `services` (newest
/// first); the answer's length and the outcome.
pub fn answer(msg: &mut [u8], services: &[IcVersion]) -> Result<(usize, Outcome), IcError> {
    let h = header::request(msg)?;
    if h.ty != MsgType::NEGOTIATE {
        return Err(IcError::Unexpected(h.ty));
    }
    let body = &msg[BODY..BODY + usize::from(h.body_size)];
    if body.len() < LIST {
        return Err(IcError::BadBody {
            ty: h.ty,
            size: h.body_size,
        });
    }
    let frameworks = usize::from(u16::from_le_bytes([body[0], body[1]]));
    let service_count = usize::from(u16::from_le_bytes([body[2], body[3]]));
    let versions = &body[LIST..];
    if versions.len() < (frameworks + service_count) * 4 {
        return Err(IcError::BadBody {
            ty: h.ty,
            size: h.body_size,
        });
    }
    let at = |i: usize| {
        let v = &versions[i * 4..i * 4 + 4];
        IcVersion::new(
            u16::from_le_bytes([v[0], v[1]]),
            u16::from_le_bytes([v[2], v[3]]),
        )
    };
    let framework = pick(&FRAMEWORK_VERSIONS, (0..frameworks).map(at));
    let service = pick(services, (frameworks..frameworks + service_count).map(at));
    let outcome = match (framework, service) {
        (Some(framework), Some(service)) => Outcome::Agreed { framework, service },
        _ => Outcome::NoCommonVersion,
    };
    // The answer: counts 1/1 and the two versions, or 0/0; it is never longer than the request.
    let out = &mut msg[BODY..];
    let n: u16 = match outcome {
        Outcome::Agreed { framework, service } => {
            for (i, v) in [framework, service].into_iter().enumerate() {
                out[LIST + i * 4..LIST + i * 4 + 2].copy_from_slice(&v.major.to_le_bytes());
                out[LIST + i * 4 + 2..LIST + i * 4 + 4].copy_from_slice(&v.minor.to_le_bytes());
            }
            1
        }
        Outcome::NoCommonVersion => 0,
    };
    out[0..2].copy_from_slice(&n.to_le_bytes());
    out[2..4].copy_from_slice(&n.to_le_bytes());
    // The answer keeps the request's length, as Linux's does: the host reads the counts.
    let len = header::answer(msg, 0, h.body_size)?;
    Ok((len, outcome))
}
