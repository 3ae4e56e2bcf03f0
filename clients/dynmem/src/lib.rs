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
//! [`Startup`] is the negotiation as a state machine whose states carry their data; [`Balloon`]
//! serves the host's requests after it. Nothing here touches a ring or a page: the PD program
//! moves the bytes, and a [`PageSource`] it implements moves the pages.
//!
//! # After start-up: [`Balloon`]
//!
//! The PD keeps one `Balloon`, one [`PageSource`] (the pages come from the VMBus driver, which
//! revokes every mapping of a page before it lends it) and a buffer of [`msg::MAX_MESSAGE`]
//! bytes (one page, the largest message the guest sends), and hands it every host message:
//!
//! ```
//! use dynmem::msg::{MAX_MESSAGE, PageRange};
//! use dynmem::{Balloon, MemoryFigures, PageSource};
//!
//! /// Lends pages from a run of free pages (a PD asks the VMBus driver instead).
//! struct Pool { next: u64, left: u32 }
//! impl PageSource for Pool {
//!     type Error = &'static str;
//!     fn lend(&mut self, max: u32, out: &mut [PageRange]) -> Result<usize, Self::Error> {
//!         let n = max.min(self.left).min(16);
//!         if n == 0 || out.is_empty() { return Ok(0); }
//!         out[0] = PageRange::new(self.next, n).map_err(|_| "range")?;
//!         self.next += u64::from(n);
//!         self.left -= n;
//!         Ok(1)
//!     }
//!     fn reclaim(&mut self, ranges: &[PageRange]) -> Result<u32, Self::Error> {
//!         Ok(ranges.iter().map(|r| r.count).sum())
//!     }
//! }
//!
//! let mut balloon: Balloon = Balloon::new();
//! let mut pool = Pool { next: 0x1000, left: 64 };
//! let mut out = [0u8; MAX_MESSAGE];
//! let mut trans_id = 10;
//! // DM_BALLOON_REQUEST for 40 pages (type 6, size 16, trans_id 7).
//! let packet = [6, 0, 16, 0, 7, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0];
//! let mut reply = balloon.on_message(&packet, &mut pool, &mut out, trans_id);
//! loop {
//!     if let Some(e) = &reply.error { /* log e */ }
//!     if reply.len > 0 { /* send out[..reply.len] on the channel */ }
//!     if !reply.more { break; }
//!     trans_id += 1;
//!     reply = balloon.resume(&mut pool, &mut out, trans_id);
//! }
//! assert_eq!(balloon.stats().ballooned_now, 40);
//! // Once a second, unless the host suppressed reports:
//! let figures = MemoryFigures { total_pages: 4096, free_pages: 1000 };
//! let n = balloon.status_report(&figures, &mut out, trans_id + 1).unwrap();
//! assert_eq!(n, 48);
//! ```
//!
//! Hot add is not offered (the client reports `hot_add: false`); a hot-add request is answered
//! with no pages (see [`Balloon::on_message`]).
#![no_std]

mod balloon;
#[cfg(feature = "driver")]
pub mod driver_pages;
pub mod msg;
mod record;
mod startup;

pub use balloon::{
    Balloon, BalloonError, BalloonState, BalloonStats, DEFAULT_RECORD, MemoryFigures, PageSource,
    Reply, SourceFault,
};
pub use record::{Record, RecordError, Span};
pub use startup::{Startup, StartupError, StartupStep};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_balloon;
