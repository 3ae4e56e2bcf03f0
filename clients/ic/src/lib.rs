//! The guest side of Hyper-V's integration services (heartbeat, shutdown, time sync, KVP): the
//! framework every one of them shares, and the services built on it.
//!
//! Every integration-service message is one VMBus in-band packet: an 8-byte pipe header (flags,
//! message count), then the 20-byte IC header ([`header::IcHeader`]: framework version, message
//! type, service version, body size, status, transaction id, flags), then the body. The host
//! always asks and the guest answers in place: the reply is the request with the response flag
//! set and its body rewritten. The first request on every channel is a version negotiation
//! ([`negotiate`]): the host lists the framework and service versions it speaks, and the guest
//! picks the highest of each that it speaks too.
//!
//! The services: [`heartbeat`], [`shutdown`], [`timesync`] and [`kvp`] (key-value pair
//! exchange: the guest's own facts for the host, such as its name, OS and addresses, from a
//! [`kvp::GuestInfo`] the PD fills in, and a bounded [`kvp::KvpStore`] of the pairs the host
//! sets, gets, deletes and enumerates per pool; the host's IP injection is answered "not
//! supported"). [`service::Endpoint`] runs any of them on a channel.
//!
//! Nothing here touches a ring: the PD programs move the bytes. Every length and field the host
//! wrote is checked before use; a bad message is an error, never a panic.
#![no_std]

pub mod counter;
pub mod header;
pub mod heartbeat;
pub mod kvp;
pub mod negotiate;
pub mod service;
pub mod services;
pub mod shutdown;
pub mod timesync;

#[cfg(test)]
mod kvp_tests;
#[cfg(test)]
mod tests;
