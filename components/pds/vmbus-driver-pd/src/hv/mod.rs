//! The driver's `Hypervisor` seam in the image, chosen by the system description
//! (`pd_runtime::config::Hypervisor`): the hypercall stand-in to the simulated host PD
//! ([`StandInHv`]) or Hyper-V itself through the kernel's Hyper-V service ([`HyperVSeam`]).
//!
//! Both read and clear the SynIC message slot and event flags in mapped pages with the same
//! atomic rules ([`SynicPages`]); they differ in how a message is posted, an event signalled and
//! the end of a message announced.

mod hyperv;
mod standin;
mod synic;

pub use hyperv::HyperVSeam;
pub use standin::StandInHv;
pub use synic::SynicPages;

use vmbus_driver::hv::synic::{HvMessageType, MESSAGE_SLOT_SIZE};
use vmbus_driver::hv::{HvStatus, Hypervisor};
use vmbus_driver::ids::ConnectionId;

/// The seam the description chose.
#[derive(Debug)]
pub enum Seam {
    /// The simulated host PD.
    StandIn(StandInHv),
    /// Hyper-V.
    HyperV(HyperVSeam),
}

impl Seam {
    /// Hypervisor operations made so far (protected calls to the host, or kernel invocations).
    pub fn calls(&self) -> u64 {
        match self {
            Seam::StandIn(s) => s.calls,
            Seam::HyperV(s) => s.calls,
        }
    }
}

/// Forwards each seam method to the chosen implementation.
macro_rules! forward {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Seam::StandIn($s) => $e,
            Seam::HyperV($s) => $e,
        }
    };
}

impl Hypervisor for Seam {
    fn post_message(&mut self, c: ConnectionId, t: HvMessageType, payload: &[u8]) -> HvStatus {
        forward!(self, s => s.post_message(c, t, payload))
    }

    fn signal_event(&mut self, c: ConnectionId, flag_number: u16) -> HvStatus {
        forward!(self, s => s.signal_event(c, flag_number))
    }

    fn read_message_slot(&mut self, sint: u8) -> [u8; MESSAGE_SLOT_SIZE] {
        forward!(self, s => s.read_message_slot(sint))
    }

    fn clear_message_slot(&mut self, sint: u8, expected_type: HvMessageType) -> bool {
        forward!(self, s => s.clear_message_slot(sint, expected_type))
    }

    fn end_of_message(&mut self) {
        forward!(self, s => s.end_of_message())
    }

    fn take_event_flags(&mut self, sint: u8, word: usize) -> u32 {
        forward!(self, s => s.take_event_flags(sint, word))
    }
}
