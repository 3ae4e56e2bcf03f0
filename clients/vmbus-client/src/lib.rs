//! Client-side VMBus channel library for client PDs: list offers, open, send and receive, close.
//!
//! A client PD talks to the driver PD through its control page (postcard-encoded requests and
//! responses, plus a status record per channel slot) and a protected call, and to the host
//! directly through ring pages the driver maps into its window. Everything platform-specific is
//! behind the [`ClientEnv`] seam, so the same code runs on seL4 and in the simulation.
//!
//! ```ignore
//! let offers = vmbus_client::list_offers(&mut env, Some(class))?;
//! let mut ch = vmbus_client::open(&mut env, offers[0].relid, 4, 4)?;
//! ch.send(&mut env, b"ping")?;
//! let mut buf = [0u8; 64];
//! if let Some(pkt) = ch.recv(&mut env, &mut buf)? { /* buf[..pkt.len] */ }
//! ch.close(&mut env)?;
//! ```
//!
//! A client started before its device is offered waits with [`wait_for_offer`], which sleeps on
//! the driver's notification until an offer of its classes arrives (the driver counts them in
//! the control page and notifies the client).
//!
//! A channel can carry buffers beyond its rings ([`Channel::alloc_buffer`]): pages granted into
//! its window slot after the rings, optionally described to the host as a GPADL (netvsc's
//! receive and send buffers), whose frame numbers [`Channel::buffer_frames`] hands out for
//! GPA-direct packets (storvsc). They go with the channel.
//!
//! A channel the host rescinded (or the driver tore down) surfaces as
//! [`ClientError::ChannelGone`] from the next operation, which checks the channel's status
//! record before touching ring memory.
#![no_std]
#![forbid(unsafe_code)]

mod balloon;
mod buffer;
mod channel;
mod client;
mod env;
mod error;
#[cfg(test)]
mod tests;

pub use balloon::{Lent, balloon_lend, balloon_reclaim, memory_info};
pub use buffer::Buffer;
pub use channel::{Channel, ChannelCounters, Received};
pub use client::{
    MAX_LISTED_OFFERS, OfferList, PendingOpen, call, list_offers, offers_delivered, open,
    start_open, status, wait_for_offer,
};
pub use env::{ClientEnv, WindowLayout};
pub use error::ClientError;
pub use vmbus_driver::control::{BufferHandle, BufferLimit, LendLimit, MemoryInfo, PfnRange};
pub use vmbus_driver::control::{ChannelHandle, ChannelStatus, OfferInfo, StatusRecord};
pub use vmbus_driver::ids::{GpadlId, RelId, SlotId};
