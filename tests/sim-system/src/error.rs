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
    /// The description has no VMBus driver (its companion names none).
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
    /// The VMBus interrupt cannot be placed: vector or channel ids all taken in PD `pd`.
    IrqClash {
        /// PD index in the description.
        pd: usize,
    },
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
            Self::NoDriver => {
                f.write_str("the description has no VMBus driver (no driver in its companion)")
            }
            Self::Kernel { step, index, error } => {
                write!(f, "kernel refused {step:?} (element {index}): {error}")
            }
            Self::IrqClash { pd } => {
                write!(
                    f,
                    "no free vector or channel id for the VMBus interrupt in pd #{pd}"
                )
            }
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
