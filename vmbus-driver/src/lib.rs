//! Portable `no_std` core of the seL4 VMBus driver: Hyper-V and VMBus wire formats, ring buffer,
//! channel lifetime.
#![no_std]
#![forbid(unsafe_code)]

pub mod control;
pub mod driver;
pub mod gpadl;
pub mod guid;
pub mod hv;
pub mod ids;
pub mod kernel;
pub mod msg;
pub mod ring;
pub mod version;
