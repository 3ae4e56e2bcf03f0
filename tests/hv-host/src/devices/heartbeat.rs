//! Heartbeat, host side: every [`Host::ic_tick`](crate::Host::ic_tick) a request with the next
//! sequence number; the guest answers it plus one.
//!
//! Body sent: the sequence number (u64), the application state (u32, 0) and 4 reserved bytes,
//! 16 bytes as OpenVMM lays it out. Linux declares 32 reserved bytes after the sequence number
//! (40 in all) but reads only the sequence number, noting that the host may not fill the rest.

use crate::devices::ic::{BODY, IcFault, put, u64_at};
use crate::devices::trace::TraceEvent;

/// Body bytes sent.
pub const BODY_SIZE: usize = 16;

/// The request body for `seq` into `out[BODY..]`; its size.
pub(crate) fn body(out: &mut [u8], seq: u64) -> usize {
    put(out, BODY, &seq.to_le_bytes());
    put(out, BODY + 8, &[0u8; 8]);
    BODY_SIZE
}

/// Checks the answer body for request `seq`: the event to trace, and the fault if it was wrong.
pub(crate) fn answer(body: &[u8], seq: u64) -> Result<(TraceEvent, Option<IcFault>), IcFault> {
    if body.len() < 8 {
        return Err(IcFault::BadBody {
            ty: crate::devices::ic::TYPE_HEARTBEAT,
            size: body.len() as u16,
        });
    }
    let got = u64_at(body, 0);
    let expected = seq.wrapping_add(1);
    let ok = got == expected;
    let fault = (!ok).then_some(IcFault::WrongSequence { expected, got });
    Ok((TraceEvent::HeartbeatAnswer { seq: got, ok }, fault))
}
