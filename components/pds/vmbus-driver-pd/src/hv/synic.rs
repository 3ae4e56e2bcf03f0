//! The SynIC message and event-flags pages as the driver maps them, read and cleared with the
//! rules a guest follows on Hyper-V's SIM and SIEF pages: a copy of the slot after an acquiring
//! read of its type, a compare-and-swap of the type to NONE, a swap of each flag word with 0.
//! The simulated host PD writes the same pages with the same rules, so both seams share this.

use core::sync::atomic::Ordering;

use pd_runtime::config::Synic;
use pd_support::page::SharedPage;
use vmbus_driver::hv::synic::{
    EVENT_BITMAP_WORDS, HvMessageType, MESSAGE_SLOT_SIZE, VMBUS_SINT, VMBUS_SLOT_OFFSET,
};

/// The two pages.
#[derive(Debug)]
pub struct SynicPages {
    message: SharedPage,
    events: SharedPage,
}

impl SynicPages {
    /// The pages at the configured addresses; `None` if an address is unusable.
    pub fn at(synic: Synic) -> Option<SynicPages> {
        Some(SynicPages {
            message: SharedPage::at(synic.message)?,
            events: SharedPage::at(synic.event_flags)?,
        })
    }

    /// A copy of `sint`'s message slot (zeros for a SINT other than VMBus's).
    pub fn read_message_slot(&self, sint: u8) -> [u8; MESSAGE_SLOT_SIZE] {
        let mut slot = [0u8; MESSAGE_SLOT_SIZE];
        if sint == VMBUS_SINT {
            // The type word first, with acquire: the host writes it last, with release.
            let ty = self.message.load_u32(VMBUS_SLOT_OFFSET, Ordering::Acquire);
            self.message.read(VMBUS_SLOT_OFFSET, &mut slot);
            slot[..4].copy_from_slice(&ty.to_le_bytes());
        }
        slot
    }

    /// Frees `sint`'s slot if its type is still `expected_type`.
    pub fn clear_message_slot(&self, sint: u8, expected_type: HvMessageType) -> bool {
        sint == VMBUS_SINT && self.message.cas_u32(VMBUS_SLOT_OFFSET, expected_type.0, 0)
    }

    /// Takes and clears word `word` of `sint`'s event flags.
    pub fn take_event_flags(&self, sint: u8, word: usize) -> u32 {
        if sint != VMBUS_SINT || word >= EVENT_BITMAP_WORDS {
            return 0;
        }
        self.events.swap_u32(VMBUS_SLOT_OFFSET + word * 4, 0)
    }
}
