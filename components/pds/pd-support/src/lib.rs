//! What the VMBus PDs of the image share: the hypercall stand-in's ABI and its SynIC pages,
//! static cells, the PD info page the root task writes (`pd-info`), the cycle counter, and a `log`
//! sink.
//!
//! The driver core (about 300 KiB) and the simulated host (about 720 KiB) do not fit the 64 KiB
//! stack every program gets from `sel4::entry`, so their PDs keep them in a [`cell::StaticCell`]
//! built from a `const` initialiser (`Driver::EMPTY`, `Host::new`). The SynIC pages are ordinary shared frames that
//! the host PD writes and the driver PD reads and clears with atomic operations
//! ([`page::SharedPage`]), exactly as a guest uses the real SIM and SIEF pages.
#![no_std]
#![allow(
    unsafe_code,
    reason = "atomic and volatile access to shared pages at fixed addresses (`page`, `region`), the cycle counter (`cycles`)"
)]

pub mod abi;
pub mod cell;
pub mod cycles;
pub use pd_info as info;
pub mod logger;
pub mod page;
pub mod region;
