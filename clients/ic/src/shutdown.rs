//! The shutdown service (device class 0e0b6031-5213-4934-818b-38d90ced39db): the host asks the
//! guest to shut down or restart; the guest accepts (status 0) and then stops in order, or
//! refuses (`E_FAIL`).
//!
//! Body: reason code (u32), timeout in seconds (u32), flags (u32), a 2048-byte display message.
//! Flags: 0 shut down, 2 restart (service 3.1 on), 4 hibernate (3.2 on); bit 0 set means "by
//! force". The guest here shuts down and restarts; it cannot hibernate.

use crate::header::{self, BODY, IcError, IcVersion, MsgType};

/// Service versions the guest speaks (newest first): 3.2 (hibernate, which it refuses), 3.1
/// (restart), 3.0, 1.0.
pub const VERSIONS: [IcVersion; 4] = [
    IcVersion::new(3, 2),
    IcVersion::new(3, 1),
    IcVersion::new(3, 0),
    IcVersion::new(1, 0),
];

/// Bytes of the body: three words and the display message.
pub const BODY_SIZE: usize = 12 + 2048;

/// The status of a refusal (`E_FAIL`).
pub const E_FAIL: u32 = 0x8000_4005;

/// What the host asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Stop the system.
    Shutdown {
        /// Without waiting for anything (flag bit 0).
        forced: bool,
    },
    /// Stop and start again.
    Restart {
        /// Without waiting for anything (flag bit 0).
        forced: bool,
    },
    /// Hibernate: refused.
    Hibernate,
    /// Flags this guest does not know: refused.
    Unknown(u32),
}

impl Request {
    /// Whether the guest does it (and so answers status 0).
    pub fn accepted(self) -> bool {
        matches!(self, Request::Shutdown { .. } | Request::Restart { .. })
    }
}

/// Answers the shutdown request in `msg` in place; the answer's length and the request. The
/// caller stops the system after sending an accepted answer.
pub fn answer(msg: &mut [u8]) -> Result<(usize, Request), IcError> {
    let h = header::request(msg)?;
    if h.ty != MsgType::SHUTDOWN {
        return Err(IcError::Unexpected(h.ty));
    }
    if usize::from(h.body_size) < BODY_SIZE {
        return Err(IcError::BadBody {
            ty: h.ty,
            size: h.body_size,
        });
    }
    let b = &msg[BODY..];
    let flags = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    let forced = flags & 1 != 0;
    let request = match flags & !1 {
        0 => Request::Shutdown { forced },
        2 => Request::Restart { forced },
        4 => Request::Hibernate,
        _ => Request::Unknown(flags),
    };
    let status = if request.accepted() { 0 } else { E_FAIL };
    let len = header::answer(msg, status, h.body_size)?;
    Ok((len, request))
}
