//! The hypercall stand-in to the simulated host PD (pd-support's `abi`).
//!
//! Posting a message and signalling an event are protected calls to the host PD (the payload
//! goes through the hypercall input page); the message slot and the event flags are read and
//! cleared in the shared SynIC pages ([`SynicPages`]).

use pd_runtime::config::{HostLink, Synic};
use pd_runtime::{Channel, Message, ppcall};
use pd_support::abi::label;
use pd_support::page::SharedPage;
use vmbus_driver::hv::synic::{HvMessageType, MAX_PAYLOAD, MESSAGE_SLOT_SIZE};
use vmbus_driver::hv::{HvStatus, Hypervisor};
use vmbus_driver::ids::ConnectionId;

use super::SynicPages;

/// The stand-in seam.
#[derive(Debug)]
pub struct StandInHv {
    synic: SynicPages,
    input: SharedPage,
    host: Channel,
    /// Protected calls made to the host (hypercalls and EOMs).
    pub calls: u64,
}

impl StandInHv {
    /// The seam over the driver's SynIC pages and its link to the host; `None` if an address is
    /// unusable.
    pub fn new(synic: Synic, host: HostLink) -> Option<StandInHv> {
        Some(StandInHv {
            synic: SynicPages::at(synic)?,
            input: SharedPage::at(host.hypercall_input)?,
            host: Channel(host.channel),
            calls: 0,
        })
    }

    fn call(&mut self, label: u64, words: &[u64]) -> HvStatus {
        self.calls += 1;
        let reply = ppcall(self.host, Message::new(label, words));
        // The host answers with a 16-bit status; anything wider is not a status.
        HvStatus(u16::try_from(reply.label()).unwrap_or(HvStatus::INVALID_HYPERCALL_INPUT.0))
    }
}

impl Hypervisor for StandInHv {
    fn post_message(
        &mut self,
        connection: ConnectionId,
        message_type: HvMessageType,
        payload: &[u8],
    ) -> HvStatus {
        if payload.len() > MAX_PAYLOAD {
            return HvStatus::INVALID_PARAMETER;
        }
        // The input page takes whole words: pad the copy with zeros.
        let mut block = [0u8; MAX_PAYLOAD];
        block[..payload.len()].copy_from_slice(payload);
        let words = payload.len().div_ceil(8) * 8;
        if !self.input.write(0, &block[..words]) {
            return HvStatus::INVALID_PARAMETER;
        }
        self.call(
            label::POST_MESSAGE,
            &[
                u64::from(connection.0),
                u64::from(message_type.0),
                payload.len() as u64,
            ],
        )
    }

    fn signal_event(&mut self, connection: ConnectionId, flag_number: u16) -> HvStatus {
        self.call(
            label::SIGNAL_EVENT,
            &[u64::from(connection.0), u64::from(flag_number)],
        )
    }

    fn read_message_slot(&mut self, sint: u8) -> [u8; MESSAGE_SLOT_SIZE] {
        self.synic.read_message_slot(sint)
    }

    fn clear_message_slot(&mut self, sint: u8, expected_type: HvMessageType) -> bool {
        self.synic.clear_message_slot(sint, expected_type)
    }

    fn end_of_message(&mut self) {
        let _ = self.call(label::END_OF_MESSAGE, &[]);
    }

    fn take_event_flags(&mut self, sint: u8, word: usize) -> u32 {
        self.synic.take_event_flags(sint, word)
    }
}
