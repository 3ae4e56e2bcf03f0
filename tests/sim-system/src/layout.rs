//! What the simulation fixes that the description does not: the VMBus interrupt.
//!
//! Every address comes from the description and its VMBus companion through
//! `sysdesc::config` (the computation the image's PD programs are built with): the driver's view
//! of its pool, the control pages (described regions), the windows. The page size is the image's
//! (`pd_runtime::layout::PAGE`, through `sysdesc::layout`).

/// Size of a page in the description and in the model.
pub const PAGE: u64 = sysdesc::layout::PAGE;

/// Interrupt number of the VMBus SINT in the simulation (any free x86 vector would do): the
/// image's host is a PD that notifies the driver instead, and on Hyper-V the SINT is the
/// hypervisor's to choose.
pub const VMBUS_IRQ: u32 = 40;
