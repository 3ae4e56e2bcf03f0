//! The simulated system: `system.xml` instantiated on the seL4 model, with the VMBus driver, the
//! simulated Hyper-V host and scripted client programs driven by a deterministic scheduler.
//!
//! Layers, bottom up:
//! - [`Instance`]: the description built on `sel4-sim` (PDs, regions, channels, the driver's pool,
//!   windows, control pages, the VMBus interrupt);
//! - the seams over it: the driver's [`DriverKernel`], client ring memory that goes through the
//!   client's VSpace ([`ClientRingMem`]), the host's guest memory by frame number ([`GuestMem`]);
//! - the world: the scheduler that runs host, driver and clients step by step.

mod error;
mod guestmem;
mod instance;
mod kernel;
pub mod layout;
mod ringmem;

pub use error::{BuildError, BuildStep, NotifyError};
pub use guestmem::{GuestMem, GuestMemFault};
pub use instance::{
    ChannelInstance, ClientInfo, EndInstance, Instance, PoolInfo, RegionInstance, SharedKernel,
    load_repository_system, repository_system_xml,
};
pub use kernel::DriverKernel;
pub use ringmem::{ClientRingMem, RingFault};
