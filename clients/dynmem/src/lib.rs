//! The guest side of Hyper-V's Dynamic Memory protocol, the protocol of the VMBus device class
//! `525074dc-8985-46e2-8057-a307dc18a502` (Hyper-V's balloon; QEMU's `hv-balloon`).
//!
//! Every message is one VMBus in-band packet that starts with an 8-byte header: type (u16),
//! size of the whole message including the header (u16), and a transaction id the guest chooses
//! (u32), all little-endian. Start-up: the guest proposes protocol versions, newest first, until
//! the host accepts one (`DM_VERSION_REQUEST` / `DM_VERSION_RESPONSE`), then reports what it can
//! do (`DM_CAPABILITIES_REPORT`) and waits for the host's acceptance
//! (`DM_CAPABILITIES_RESPONSE`); after that it sends status reports and answers balloon requests.
//!
//! [`msg`] encodes and decodes the messages, checking every length and field the host wrote;
//! [`Startup`] is the negotiation as a state machine whose states carry their data. Nothing here
//! touches a ring or a page: the PD program moves the bytes.
#![no_std]

pub mod msg;
mod startup;

pub use startup::{Startup, StartupError, StartupStep};

#[cfg(test)]
mod tests;
