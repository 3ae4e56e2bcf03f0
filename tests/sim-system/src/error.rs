//! Errors of building and driving the simulated system.

use core::fmt;

/// Which part of the instantiation a kernel refusal happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStep {
    /// Retyping a memory region's frames.
    Region,
    /// Mapping a region into a PD.
    Map,
    /// Creating a Microkit channel.
    Channel,
    /// Creating a described interrupt handler.
    Irq,
    /// Placing a `cspace` capability.
    CSpace,
    /// Setting a fault handler.
    FaultHandler,
    /// Building the driver's pool, client links and VMBus interrupt.
    Pool,
    /// Creating and mapping a client's control page.
    ControlPage,
}

/// Why a system description could not be instantiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// The description has no `vmbus_driver` PD.
    NoDriver,
    /// The simulated kernel refused an operation; `index` is the element's position (PD,
    /// region, channel, page or client, depending on `step`).
    Kernel {
        /// What was being built.
        step: BuildStep,
        /// Which element.
        index: usize,
        /// The kernel's refusal.
        error: sel4_sim::Error,
    },
    /// A placement the simulation chooses (pool view, control page) overlaps a described mapping
    /// or window of PD `pd` (description index).
    AddressClash {
        /// PD index in the description.
        pd: usize,
        /// The chosen address.
        vaddr: u64,
    },
    /// The VMBus interrupt cannot be placed: vector or channel ids all taken in PD `pd`.
    IrqClash {
        /// PD index in the description.
        pd: usize,
    },
    /// A device GUID of PD `pd` does not parse as a binary GUID.
    BadGuid {
        /// PD index in the description.
        pd: usize,
    },
    /// Client PD `pd` has no channel to the driver with its `driver_channel` id.
    DriverChannelMissing {
        /// PD index in the description.
        pd: usize,
    },
    /// More clients than a `ClientId` can number.
    TooManyClients,
    /// The description uses something the model does not simulate.
    Unsupported {
        /// PD index in the description (`usize::MAX` for a system-wide element).
        pd: usize,
        /// The element or feature.
        what: &'static str,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDriver => f.write_str("the description has no vmbus_driver protection domain"),
            Self::Kernel { step, index, error } => {
                write!(f, "kernel refused {step:?} (element {index}): {error}")
            }
            Self::AddressClash { pd, vaddr } => write!(
                f,
                "simulation placement at {vaddr:#x} overlaps a mapping of pd #{pd}"
            ),
            Self::IrqClash { pd } => {
                write!(
                    f,
                    "no free vector or channel id for the VMBus interrupt in pd #{pd}"
                )
            }
            Self::BadGuid { pd } => write!(f, "pd #{pd} names a device GUID that does not parse"),
            Self::DriverChannelMissing { pd } => {
                write!(f, "client pd #{pd} has no channel to the driver")
            }
            Self::TooManyClients => f.write_str("more VMBus clients than client ids"),
            Self::Unsupported { pd, what } => {
                write!(
                    f,
                    "pd #{pd} uses {what}, which the simulation does not model"
                )
            }
        }
    }
}

impl std::error::Error for BuildError {}

/// Why a notification between PDs was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyError {
    /// The PD has no channel with that id.
    NoChannel,
    /// The description sets `notify="false"` on this end.
    NotAllowed,
    /// The kernel refused the signal.
    Kernel(sel4_sim::Error),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoChannel => f.write_str("no channel with this id"),
            Self::NotAllowed => f.write_str("this channel end may not notify"),
            Self::Kernel(e) => write!(f, "kernel refused the signal: {e}"),
        }
    }
}

impl std::error::Error for NotifyError {}
