//! The host's SynIC state mirrored into the shared SynIC pages the driver reads.
//!
//! `hv_host::Synic` keeps SINT2's slot, its waiting queue and the event flags inside the host.
//! Here the shared message page's slot is the guest-visible one: a message moves from the host's
//! slot into the shared slot when the guest has freed it (type NONE), payload first and the type
//! last with release ordering; when the shared slot is still busy the host sets MessagePending in
//! it, so the guest's EOM brings the host back. Event flags move by atomic OR. Every move raises
//! the SINT2 "interrupt" (a notification to the driver).

use core::sync::atomic::Ordering;

use hv_host::Host;
use pd_support::page::SharedPage;
use vmbus_driver::hv::synic::{
    EVENT_BITMAP_WORDS, HvMessageType, MESSAGE_SLOT_SIZE, VMBUS_SLOT_OFFSET,
};

/// HV_MESSAGE_FLAGS.MessagePending: bit 0 of the header's flags byte (byte 5),
/// docs/protocol.md#message-slots (TLFS "SynIC message flags").
const FLAG_MESSAGE_PENDING: u8 = 1;

/// The shared pages.
#[derive(Debug)]
pub struct SharedSynic {
    message: SharedPage,
    events: SharedPage,
    /// Messages moved into the shared slot.
    pub delivered: u64,
    /// Times MessagePending was set in the shared slot.
    pub pending_set: u64,
}

impl SharedSynic {
    /// Over the message page and the event-flags page.
    pub fn new(message: SharedPage, events: SharedPage) -> SharedSynic {
        SharedSynic {
            message,
            events,
            delivered: 0,
            pending_set: 0,
        }
    }

    /// Moves what the host has for the guest into the shared pages; true if the guest must be
    /// interrupted.
    pub fn sync(&mut self, host: &mut Host) -> bool {
        let mut raise = false;
        // Bounded: each pass moves one message or stops; the host's queue is finite.
        for _ in 0..MESSAGE_SLOT_SIZE {
            if !host.synic().slot_busy() {
                break;
            }
            let shared_type = self.message.load_u32(VMBUS_SLOT_OFFSET, Ordering::Acquire);
            if shared_type != HvMessageType::NONE.0 {
                // The guest has not consumed the last one: MessagePending (byte 5 of the header,
                // bits 8..16 of the second word), so its EOM comes back here.
                self.message
                    .or_u32(VMBUS_SLOT_OFFSET + 4, u32::from(FLAG_MESSAGE_PENDING) << 8);
                self.pending_set += 1;
                raise = true;
                break;
            }
            let slot = host.synic().read_slot();
            let ty = u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]);
            self.message
                .write(VMBUS_SLOT_OFFSET + 8, &slot[8..MESSAGE_SLOT_SIZE]);
            let word1 = u32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]);
            self.message
                .store_u32(VMBUS_SLOT_OFFSET + 4, word1, Ordering::Relaxed);
            self.message
                .store_u32(VMBUS_SLOT_OFFSET, ty, Ordering::Release);
            host.synic_mut().clear_slot(HvMessageType(ty));
            host.synic_mut().retry();
            self.delivered += 1;
            raise = true;
        }
        for w in 0..EVENT_BITMAP_WORDS {
            let bits = host.synic_mut().take_flags(w);
            if bits != 0 {
                self.events.or_u32(VMBUS_SLOT_OFFSET + w * 4, bits);
                raise = true;
            }
        }
        // The host's own record of the interrupt; ours is `raise`.
        let _ = host.synic_mut().take_interrupt();
        raise
    }
}
