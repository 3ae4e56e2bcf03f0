//! The simulated system: `system.xml` instantiated on the seL4 model, with the VMBus driver, the
//! simulated Hyper-V host and scripted client programs driven by a deterministic scheduler.
//!
//! Layers, bottom up:
//! - [`Instance`]: the description built on `sel4-sim` (PDs, regions, channels, the driver's pool,
//!   windows, control pages, the VMBus interrupt);
//! - the seams over it: the driver's [`DriverKernel`], client ring memory that goes through the
//!   client's VSpace ([`ClientRingMem`]), the host's guest memory by frame number ([`GuestMem`]);
//! - the [`World`]: the scheduler that runs the host (`hv-host`), the driver
//!   (`vmbus_driver::driver::Driver`) and [`ClientProgram`]s step by step; a program's
//!   [`ClientCtx`] is the client library's `ClientEnv` for that PD.
//!
//! Where the simulation differs from the real system (each choice documented where it is made):
//! - the driver's hypercalls are direct calls into the host (`hv_host::GuestPort`), and the
//!   SynIC message slot and event flags are the host's `Synic` state; the described
//!   `synic_message` / `synic_event_flags` regions are instantiated and mapped but not used by
//!   that path;
//! - the host reaches the pool by frame number ([`GuestMem`]) rather than through a mapping;
//! - a protected call runs the driver to completion inside the caller's step; a blocking wait
//!   runs the host and the driver (not the other clients) until a notification arrives;
//! - the driver's pool view, windows and control pages come from the description and its VMBus
//!   companion through `sysdesc::config`, as in the image; only the VMBus interrupt is the
//!   simulation's own ([`layout`]).

mod build;
mod error;
mod guestmem;
mod hooks;
mod instance;
mod kernel;
pub mod layout;
pub mod network;
mod program;
pub mod programs;
mod ringmem;
pub mod services;
pub mod storage;
mod world;

pub use error::{BuildError, BuildStep, NotifyError};
pub use guestmem::GuestMem;
pub use instance::{
    ChannelInstance, ClientInfo, EndInstance, Instance, PfnMap, PoolInfo, RegionInstance,
    SharedKernel, load_repository_system, repository_system_xml,
};
pub use kernel::DriverKernel;
pub use program::{ClientCtx, ClientProgram, Flow};
pub use programs::{EchoClient, EchoHandle, EchoStats};
pub use ringmem::{ClientRingMem, RingFault};
pub use world::{
    FaultRecord, PASSES_PER_STEP, StepLimit, TRACE_CAPACITY, TraceEvent, World, WorldConfig,
};
