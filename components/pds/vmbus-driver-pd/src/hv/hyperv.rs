//! Hyper-V itself: the kernel's Hyper-V service (the `X86HyperV` capability the root task placed
//! at `pd_runtime::layout::slot::HYPERV`) posts messages, signals events and writes the EOM MSR,
//! since a hypercall or an MSR write needs the CPU's privileged mode; the SynIC frames the
//! kernel enabled at boot are mapped in this PD ([`SynicPages`]).

use pd_runtime::config::Synic;
use pd_runtime::layout::slot;
use sel4::X86HyperV;
use vmbus_driver::hv::synic::{HvMessageType, MAX_PAYLOAD, MESSAGE_SLOT_SIZE};
use vmbus_driver::hv::{HvStatus, Hypervisor};
use vmbus_driver::ids::ConnectionId;

use super::SynicPages;

/// The Hyper-V seam.
#[derive(Debug)]
pub struct HyperVSeam {
    synic: SynicPages,
    service: X86HyperV,
    /// Invocations of the kernel's service (hypercalls and EOMs).
    pub calls: u64,
    /// Invocations the kernel refused (a bad argument: a bug of ours, never the host's doing).
    pub refused: u64,
}

impl HyperVSeam {
    /// The seam over the mapped SynIC frames; `None` if an address is unusable.
    pub fn new(synic: Synic) -> Option<HyperVSeam> {
        Some(HyperVSeam {
            synic: SynicPages::at(synic)?,
            service: X86HyperV(slot::HYPERV),
            calls: 0,
            refused: 0,
        })
    }

    /// The hypercall's status, or INVALID_PARAMETER when the kernel refused the invocation.
    fn status(&mut self, r: Result<u16, sel4::Error>) -> HvStatus {
        self.calls += 1;
        match r {
            Ok(s) => HvStatus(s),
            Err(e) => {
                self.refused += 1;
                log::warn!("the kernel refused a Hyper-V invocation: {e}");
                HvStatus::INVALID_PARAMETER
            }
        }
    }
}

impl Hypervisor for HyperVSeam {
    fn post_message(
        &mut self,
        connection: ConnectionId,
        message_type: HvMessageType,
        payload: &[u8],
    ) -> HvStatus {
        if payload.len() > MAX_PAYLOAD {
            return HvStatus::INVALID_PARAMETER;
        }
        let r = self
            .service
            .post_message(connection.0, message_type.0, payload);
        self.status(r)
    }

    fn signal_event(&mut self, connection: ConnectionId, flag_number: u16) -> HvStatus {
        let r = self.service.signal_event(connection.0, flag_number);
        self.status(r)
    }

    fn read_message_slot(&mut self, sint: u8) -> [u8; MESSAGE_SLOT_SIZE] {
        self.synic.read_message_slot(sint)
    }

    fn clear_message_slot(&mut self, sint: u8, expected_type: HvMessageType) -> bool {
        self.synic.clear_message_slot(sint, expected_type)
    }

    fn end_of_message(&mut self) {
        self.calls += 1;
        if let Err(e) = self.service.end_of_message() {
            self.refused += 1;
            log::warn!("the kernel refused end-of-message: {e}");
        }
    }

    fn take_event_flags(&mut self, sint: u8, word: usize) -> u32 {
        self.synic.take_event_flags(sint, word)
    }
}
