//! [`GuestPort`]: the guest's view of the host as `vmbus_driver::hv::Hypervisor`, so a driver can
//! be plugged in directly.

use vmbus_driver::hv::synic::{EVENT_BITMAP_WORDS, MESSAGE_SLOT_SIZE, VMBUS_SINT};
use vmbus_driver::hv::{HvMessageType, HvStatus, Hypervisor};
use vmbus_driver::ids::ConnectionId;

use crate::host::Host;

/// The hypercalls and SynIC pages of the one simulated VP, over a host. Only SINT2 exists: other
/// SINTs read as an empty slot with no flags.
#[derive(Debug)]
pub struct GuestPort<'a> {
    host: &'a mut Host,
}

impl<'a> GuestPort<'a> {
    /// The guest's port into `host`.
    pub fn new(host: &'a mut Host) -> Self {
        Self { host }
    }

    /// The host behind the port.
    pub fn host(&mut self) -> &mut Host {
        self.host
    }
}

impl Hypervisor for GuestPort<'_> {
    fn post_message(
        &mut self,
        connection: ConnectionId,
        message_type: HvMessageType,
        payload: &[u8],
    ) -> HvStatus {
        self.host.post_message(connection, message_type, payload)
    }

    fn signal_event(&mut self, connection: ConnectionId, flag_number: u16) -> HvStatus {
        self.host.signal_event(connection, flag_number)
    }

    fn read_message_slot(&mut self, sint: u8) -> [u8; MESSAGE_SLOT_SIZE] {
        if sint == VMBUS_SINT {
            self.host.synic().read_slot()
        } else {
            [0; MESSAGE_SLOT_SIZE]
        }
    }

    fn clear_message_slot(&mut self, sint: u8, expected_type: HvMessageType) -> bool {
        sint == VMBUS_SINT && self.host.synic_mut().clear_slot(expected_type)
    }

    fn end_of_message(&mut self) {
        self.host.end_of_message();
    }

    fn take_event_flags(&mut self, sint: u8, word: usize) -> u32 {
        if sint == VMBUS_SINT && word < EVENT_BITMAP_WORDS {
            self.host.synic_mut().take_flags(word)
        } else {
            0
        }
    }
}
