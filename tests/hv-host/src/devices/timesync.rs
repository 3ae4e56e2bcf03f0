//! Time sync, host side: every [`Host::ic_tick`](crate::Host::ic_tick) a sample of the host's
//! time (Windows file time: 100 ns units since 1601-01-01) and, from service 4.0, the partition
//! reference time it was taken at; the first sample after negotiation has flag SYNC, later ones
//! SAMPLE.
//!
//! Layouts: 4.0 (`ictimesync_ref_data`): parent time u64, reference time u64, flags u8, leap
//! flags u8, stratum u8, 3 reserved bytes (22 bytes). Before 4.0 (`ictimesync_data`): parent
//! time u64, child time u64, round-trip time u64, flags u8 (25 bytes).

use crate::devices::ic::{BODY, put};
use crate::devices::trace::{IcVer, TraceEvent};

/// Flag: the guest should set its clock now.
pub const FLAG_SYNC: u8 = 1;
/// Flag: a sample for the guest's drift correction.
pub const FLAG_SAMPLE: u8 = 2;
/// 4.0 body bytes.
pub const BODY_V4: usize = 22;
/// Pre-4.0 body bytes.
pub const BODY_V1: usize = 25;
/// 1601-01-01 to 1970-01-01 in 100 ns units.
pub const UNIX_EPOCH_FILETIME: u64 = 116_444_736_000_000_000;
/// The simulated host's time at reference time 0: 2024-01-01T00:00:00Z as a file time.
pub const DEFAULT_BASE_FILETIME: u64 = UNIX_EPOCH_FILETIME + 1_704_067_200 * 10_000_000;
/// What one [`Host::ic_tick`](crate::Host::ic_tick) advances the clocks by: one second.
pub const TICK_100NS: u64 = 10_000_000;

/// One sample as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSample {
    /// Host time (file time).
    pub host_time: u64,
    /// Partition reference time (100 ns units) it was taken at.
    pub ref_time: u64,
    /// SYNC or SAMPLE.
    pub flags: u8,
    /// Sent in the 4.0 layout (with the reference time).
    pub v4: bool,
}

/// The simulated clocks: a partition reference counter and the host's wall clock over it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SimClock {
    pub ref_time: u64,
    pub base: u64,
}

impl SimClock {
    pub const START: Self = Self {
        ref_time: 0,
        base: DEFAULT_BASE_FILETIME,
    };
}

/// The sample body into `out[BODY..]` for service version `v`; its size and the sample.
pub(crate) fn body(out: &mut [u8], v: IcVer, clock: SimClock, first: bool) -> (usize, TimeSample) {
    let flags = if first { FLAG_SYNC } else { FLAG_SAMPLE };
    let s = TimeSample {
        host_time: clock.base.wrapping_add(clock.ref_time),
        ref_time: clock.ref_time,
        flags,
        v4: v >= IcVer::new(4, 0),
    };
    put(out, BODY, &s.host_time.to_le_bytes());
    if s.v4 {
        put(out, BODY + 8, &s.ref_time.to_le_bytes());
        put(out, BODY + 16, &[flags, 0, 0, 0, 0, 0]);
        (BODY_V4, s)
    } else {
        put(out, BODY + 8, &[0u8; 16]);
        out[BODY + 24] = flags;
        (BODY_V1, s)
    }
}

/// The trace event of a sample.
pub(crate) fn event(s: &TimeSample) -> TraceEvent {
    TraceEvent::TimeSample {
        host_time: s.host_time,
        ref_time: s.v4.then_some(s.ref_time),
        flags: s.flags,
    }
}
