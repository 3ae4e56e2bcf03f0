//! The time synchronisation service (device class 9527e630-d0ae-497b-adce-e80ab0175caf): the host
//! sends its UTC time; the guest keeps a clock from it.
//!
//! Times are in 100 ns units since 1601-01-01 (Windows file time). Service 4.0 sends
//! [`Sample::reference`], the partition's reference counter (100 ns units since the VM started)
//! at the moment the host took the time, so a guest that reads the same counter later can add
//! the time the message spent on its way; before 4.0 there is no reference and the delivery
//! delay (usually well below a millisecond, on a loaded host more) is the clock's error. Flags:
//! 1 (SYNC) asks the guest to set its clock now, 2 (SAMPLE) is a regular sample, 0 a probe.
//! The guest answers each message with status 0.

use crate::header::{self, BODY, IcError, IcVersion, MsgType};

/// Service versions the guest speaks (newest first).
pub const VERSIONS: [IcVersion; 3] = [
    IcVersion::new(4, 0),
    IcVersion::new(3, 0),
    IcVersion::new(1, 0),
];

/// 100 ns units between 1601-01-01 and 1970-01-01.
pub const UNIX_EPOCH_FILETIME: u64 = 116_444_736_000_000_000;

/// What a sample asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A probe (flags 0).
    Probe,
    /// Set the clock now (flag 1).
    Sync,
    /// A regular sample (flag 2).
    Sample,
}

/// One time sample from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The host's UTC time, 100 ns units since 1601.
    pub host_time: u64,
    /// The partition reference counter when the host took the time (service 4.0 on).
    pub reference: Option<u64>,
    /// What it asks for.
    pub kind: Kind,
}

impl Sample {
    /// The host time as nanoseconds since 1970 (`None` for a time before 1970, which no host
    /// sends: a hostile or broken sample).
    pub fn unix_nanos(&self) -> Option<u64> {
        self.host_time
            .checked_sub(UNIX_EPOCH_FILETIME)?
            .checked_mul(100)
    }
}

/// Answers the time request in `msg` in place for service version `service` (the negotiated
/// one); the answer's length and the sample.
pub fn answer(msg: &mut [u8], service: IcVersion) -> Result<(usize, Sample), IcError> {
    let h = header::request(msg)?;
    if h.ty != MsgType::TIMESYNC {
        return Err(IcError::Unexpected(h.ty));
    }
    let with_reference = service >= IcVersion::new(4, 0);
    // 4.0: parent time, reference time, flags, leap flags, stratum, 3 reserved bytes;
    // before: parent time, child time, round-trip time, flags.
    let (needed, flags_at) = if with_reference { (22, 16) } else { (25, 24) };
    if usize::from(h.body_size) < needed {
        return Err(IcError::BadBody {
            ty: h.ty,
            size: h.body_size,
        });
    }
    let b = &msg[BODY..];
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let kind = match b[flags_at] {
        f if f & 1 != 0 => Kind::Sync,
        f if f & 2 != 0 => Kind::Sample,
        _ => Kind::Probe,
    };
    let sample = Sample {
        host_time: word(0),
        reference: with_reference.then(|| word(8)),
        kind,
    };
    let len = header::answer(msg, 0, h.body_size)?;
    Ok((len, sample))
}

/// A clock kept from the host's samples over the guest's own counter of the partition reference
/// time (100 ns units; on Hyper-V the reference TSC page or the reference-count MSR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// (Unix time in ns, counter) at the last sample, once there is one.
    base: Option<(u64, u64)>,
}

impl Clock {
    /// A clock with no sample yet.
    pub const fn new() -> Clock {
        Clock { base: None }
    }

    /// Takes `sample`, received when the counter read `now`. With a reference (4.0) the time
    /// the message travelled is added; without one it is the clock's error. A sample before
    /// 1970 or from the counter's future is ignored (false).
    pub fn update(&mut self, sample: &Sample, now: u64) -> bool {
        let Some(unix) = sample.unix_nanos() else {
            return false;
        };
        let taken_at = sample.reference.unwrap_or(now);
        let Some(travel) = now.checked_sub(taken_at) else {
            return false;
        };
        self.base = Some((unix.saturating_add(travel.saturating_mul(100)), now));
        true
    }

    /// Unix time in nanoseconds when the counter reads `now`; `None` before the first sample.
    pub fn now(&self, now: u64) -> Option<u64> {
        let (unix, at) = self.base?;
        Some(unix.saturating_add(now.saturating_sub(at).saturating_mul(100)))
    }
}
