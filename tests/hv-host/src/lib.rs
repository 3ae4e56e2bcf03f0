//! Simulated Hyper-V host: the host side of VMBus on the real wire format, including hostile behaviour.
//!
//! The core is `no_std` with fixed tables and no allocation, so the same code runs as a PD in the
//! real-kernel image. It speaks through `vmbus_driver::msg::{decode, encode}`, validates guest
//! hypercalls with `vmbus_driver::hv`'s input types, reassembles GPADLs with
//! `vmbus_driver::gpadl`, and runs its devices over `vmbus_driver::ring`.
//!
//! Seams: [`GuestMemory`] (guest pages by frame number, used only by [`Host::poll`]) and the
//! [`Synic`] the host writes into. [`GuestPort`] plugs a driver in directly: it implements
//! `vmbus_driver::hv::Hypervisor` over a host.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod devices;
pub mod fifo;
pub mod gpadl;
pub mod host;
pub mod hostile;
pub mod log;
pub mod memory;
pub mod monitor;
pub mod offers;
pub mod open;
pub mod port;
#[cfg(feature = "std")]
pub mod report;
pub mod synic;
pub mod versions;

pub use config::{DeviceKind, DeviceSpec, DmOptions, HostConfig, Mode, StorageOptions};
pub use devices::RingSide;
pub use devices::dynmem::{DmCaps, DmFault, DmPhase, DmRange, DmState};
pub use devices::ic::{IcFault, IcPhase};
pub use devices::icsvc::{IcChannel, IcStats};
pub use devices::kvp::KvpEntry;
pub use devices::network::{NetEvent, NetFault, NetOptions, NetState, NetStats};
pub use devices::storage::event::{StorBent, StorEvent, StorFault, StorPhase};
pub use devices::storage::{StorChannel, Storage, StorageStats};
pub use devices::timesync::TimeSample;
pub use devices::trace::{IcVer, Service, TraceEvent, TraceRecord};
pub use host::{Connection, Host, HostError};
pub use hostile::Hostile;
pub use log::{Counters, Direction, GuestError, LogRecord, TraceLog};
pub use memory::{GuestMemError, GuestMemory, PageArrayMemory};
pub use offers::{ChannelInfo, ChannelState, ChannelStats, DeviceId};
pub use port::GuestPort;
pub use synic::Synic;
