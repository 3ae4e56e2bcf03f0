//! The heartbeat service (device class 57164f39-9115-4e78-ab55-382f3bd5422d): the host sends a
//! sequence number and the guest, to show it is alive, answers with that number plus one.
//!
//! Body: the sequence number (u64) and 32 reserved bytes.

use crate::header::{self, BODY, IcError, IcVersion, MsgType};

/// Service versions the guest speaks (newest first).
pub const VERSIONS: [IcVersion; 2] = [IcVersion::new(3, 0), IcVersion::new(1, 0)];

/// Bytes of the heartbeat body the guest reads: the sequence number.
const SEQ: usize = 8;

/// Answers the heartbeat request in `msg` in place; the answer's length and the sequence number
/// it carries (the host's plus one, wrapping).
pub fn answer(msg: &mut [u8]) -> Result<(usize, u64), IcError> {
    let h = header::request(msg)?;
    if h.ty != MsgType::HEARTBEAT {
        return Err(IcError::Unexpected(h.ty));
    }
    if usize::from(h.body_size) < SEQ {
        return Err(IcError::BadBody {
            ty: h.ty,
            size: h.body_size,
        });
    }
    let mut seq = [0u8; SEQ];
    seq.copy_from_slice(&msg[BODY..BODY + SEQ]);
    let next = u64::from_le_bytes(seq).wrapping_add(1);
    msg[BODY..BODY + SEQ].copy_from_slice(&next.to_le_bytes());
    let len = header::answer(msg, 0, h.body_size)?;
    Ok((len, next))
}
