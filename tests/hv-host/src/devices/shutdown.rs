//! Shutdown, host side: [`Host::request_shutdown`](crate::Host::request_shutdown) sends one
//! request; the guest's status answer is recorded (0 accepted, E_FAIL refused).
//!
//! Body: reason code (u32), timeout in seconds (u32), flags (u32) and a 2048-byte display
//! message (zeros here). Flags as Linux reads them and OpenVMM defines them: bit 0 force,
//! bit 1 restart, bit 2 hibernate (0 shut down, 1 forced, 2 restart, 4 hibernate).

use crate::devices::ic::{BODY, put};

/// Shut down.
pub const SHUTDOWN: u32 = 0;
/// Forced (with shut down or restart).
pub const FORCE: u32 = 1;
/// Restart.
pub const RESTART: u32 = 2;
/// Hibernate (service 3.2).
pub const HIBERNATE: u32 = 4;
/// The reason code sent: SHTDN_REASON_FLAG_PLANNED.
pub const REASON_PLANNED: u32 = 0x8000_0000;
/// The timeout sent, in seconds.
pub const TIMEOUT_SECONDS: u32 = 30;
/// Body bytes: 12 + the display message.
pub const BODY_SIZE: usize = 12 + 2048;

/// The request body into `out[BODY..]`; its size.
pub(crate) fn body(out: &mut [u8], flags: u32) -> usize {
    put(out, BODY, &REASON_PLANNED.to_le_bytes());
    put(out, BODY + 4, &TIMEOUT_SECONDS.to_le_bytes());
    put(out, BODY + 8, &flags.to_le_bytes());
    out[BODY + 12..BODY + BODY_SIZE].fill(0);
    BODY_SIZE
}
