//! The SynIC state the host writes into: SINT2's message slot with the MessagePending rule, the
//! queue of messages waiting for the slot, and SINT2's 2048 event flags
//! (docs/protocol.md#the-synic-pages).
//!
//! Host side: [`Synic::enqueue`] delivers into a free slot or queues and sets MessagePending;
//! [`Synic::end_of_message`] (the guest's EOM write) retries delivery. Guest side: copy the slot,
//! compare-and-swap its type to NONE, EOM, test-and-clear an event word, take the interrupt.

use vmbus_driver::hv::HvMessageType;
use vmbus_driver::hv::synic::{EVENT_BITMAP_WORDS, MAX_PAYLOAD, MESSAGE_SLOT_SIZE};

use crate::fifo::Fifo;

/// Messages that may wait for the slot. Hyper-V's per-SINT queue is finite too; the host stops
/// taking guest messages that would need a reply while it is full (see `Host::post_message`).
pub const SYNIC_QUEUE: usize = 64;

/// Slot byte 5 bit 0: another message waits; the guest must write EOM after freeing the slot.
const FLAG_MESSAGE_PENDING: u8 = 1;

/// The SynIC's waiting queue is full; the message was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

impl core::fmt::Display for QueueFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SynIC message queue full")
    }
}

/// One message as it will be written into the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMessage {
    /// The HV_MESSAGE type (1 for VMBus).
    pub message_type: HvMessageType,
    /// The size byte written at slot offset 4. Normally the payload length; a hostile host may
    /// write more than 240 (the bytes stay 240).
    pub size: u8,
    /// Payload bytes (the first `min(size, 240)` are meaningful).
    pub payload: [u8; MAX_PAYLOAD],
}

impl SlotMessage {
    /// A VMBus message carrying `bytes` (at most 240; longer input is cut, which callers avoid).
    pub fn vmbus(bytes: &[u8]) -> Self {
        let n = bytes.len().min(MAX_PAYLOAD);
        let mut payload = [0u8; MAX_PAYLOAD];
        payload[..n].copy_from_slice(&bytes[..n]);
        Self {
            message_type: HvMessageType::VMBUS,
            // n <= 240.
            size: n as u8,
            payload,
        }
    }

    const EMPTY: Self = Self {
        message_type: HvMessageType::NONE,
        size: 0,
        payload: [0; MAX_PAYLOAD],
    };
}

/// Counters of the SynIC model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SynicStats {
    /// Messages written into the slot.
    pub delivered: u64,
    /// Times the host found the slot busy and set MessagePending.
    pub pending_set: u64,
    /// EOM writes by the guest.
    pub eoms: u64,
    /// Interrupts raised (message delivery or event flags).
    pub interrupts: u64,
    /// Event flags set (each set of an already-set flag counts too).
    pub flags_set: u64,
}

/// SINT2 of the one VP the simulation models: message slot, waiting queue, event flags.
#[derive(Debug, Clone)]
pub struct Synic {
    slot: [u8; MESSAGE_SLOT_SIZE],
    queue: Fifo<SlotMessage, SYNIC_QUEUE>,
    /// MessagePending was set: nothing is delivered before the guest writes EOM.
    eom_wait: bool,
    flags: [u32; EVENT_BITMAP_WORDS],
    interrupt: bool,
    stats: SynicStats,
}

impl Default for Synic {
    fn default() -> Self {
        Self::new()
    }
}

impl Synic {
    /// An empty slot, no flags, no interrupt.
    pub const fn new() -> Self {
        Self {
            slot: [0; MESSAGE_SLOT_SIZE],
            queue: Fifo::new(SlotMessage::EMPTY),
            eom_wait: false,
            flags: [0; EVENT_BITMAP_WORDS],
            interrupt: false,
            stats: SynicStats {
                delivered: 0,
                pending_set: 0,
                eoms: 0,
                interrupts: 0,
                flags_set: 0,
            },
        }
    }

    fn slot_type(&self) -> HvMessageType {
        HvMessageType(u32::from_le_bytes([
            self.slot[0],
            self.slot[1],
            self.slot[2],
            self.slot[3],
        ]))
    }

    /// Whether the slot holds a message (type != NONE).
    pub fn slot_busy(&self) -> bool {
        self.slot_type() != HvMessageType::NONE
    }

    /// Messages waiting for the slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Free places in the waiting queue.
    pub fn room(&self) -> usize {
        self.queue.room()
    }

    /// Whether the host set MessagePending and waits for EOM.
    pub fn waiting_for_eom(&self) -> bool {
        self.eom_wait
    }

    /// Counters.
    pub fn stats(&self) -> SynicStats {
        self.stats
    }

    /// Host: sends a message; it goes into the slot now or waits in the queue.
    pub fn enqueue(&mut self, msg: SlotMessage) -> Result<(), QueueFull> {
        self.queue.push(msg).map_err(|_| QueueFull)?;
        self.try_deliver();
        Ok(())
    }

    /// Delivers the front message if the slot is free and no EOM is awaited; otherwise marks the
    /// busy slot MessagePending, as the hypervisor does when it finds SINT2's slot occupied.
    fn try_deliver(&mut self) {
        if self.queue.is_empty() || self.eom_wait {
            return;
        }
        if self.slot_busy() {
            self.slot[5] |= FLAG_MESSAGE_PENDING;
            self.eom_wait = true;
            self.stats.pending_set += 1;
            return;
        }
        let Some(m) = self.queue.pop() else { return };
        let mut slot = [0u8; MESSAGE_SLOT_SIZE];
        slot[4] = m.size;
        // Origin (8..16) stays 0: the parent partition's port for VMBus.
        slot[16..].copy_from_slice(&m.payload);
        // The type goes in last: the guest treats a non-NONE type as "the rest is valid".
        slot[0..4].copy_from_slice(&m.message_type.0.to_le_bytes());
        self.slot = slot;
        self.stats.delivered += 1;
        self.raise();
        if !self.queue.is_empty() {
            // The hypervisor retries at once and finds its own message there.
            self.slot[5] |= FLAG_MESSAGE_PENDING;
            self.eom_wait = true;
            self.stats.pending_set += 1;
        }
    }

    /// Guest: the EOM MSR write. Lets the host deliver the next waiting message into a freed slot
    /// (or set MessagePending again if the slot is still busy).
    pub fn end_of_message(&mut self) {
        self.stats.eoms += 1;
        self.eom_wait = false;
        self.try_deliver();
    }

    /// Host: a chance to deliver without an EOM (when no MessagePending was set, a freed slot is
    /// filled at the next delivery attempt).
    pub fn retry(&mut self) {
        self.try_deliver();
    }

    /// Guest: copies the slot.
    pub fn read_slot(&self) -> [u8; MESSAGE_SLOT_SIZE] {
        self.slot
    }

    /// Guest: compare-and-swap of the type field from `expected` to NONE. Only the type is
    /// written, as on real hardware; the stale payload stays.
    pub fn clear_slot(&mut self, expected: HvMessageType) -> bool {
        if self.slot_type() != expected {
            return false;
        }
        self.slot[0..4].copy_from_slice(&HvMessageType::NONE.0.to_le_bytes());
        true
    }

    /// Host: sets event flag `flag` (0..2048) and raises the interrupt. Out-of-range flags are
    /// ignored (the callers pass relids below 2048).
    pub fn set_flag(&mut self, flag: u32) {
        let (w, b) = ((flag / 32) as usize, flag % 32);
        if let Some(word) = self.flags.get_mut(w) {
            *word |= 1 << b;
            self.stats.flags_set += 1;
            self.raise();
        }
    }

    /// Guest: test-and-clear of event word `word` (0..64); 0 for any other index.
    pub fn take_flags(&mut self, word: usize) -> u32 {
        self.flags
            .get_mut(word)
            .map(|w| core::mem::replace(w, 0))
            .unwrap_or(0)
    }

    /// The event bitmap as it is now (for assertions).
    pub fn flags(&self) -> &[u32; EVENT_BITMAP_WORDS] {
        &self.flags
    }

    /// Whether an interrupt is pending for the guest.
    pub fn interrupt_pending(&self) -> bool {
        self.interrupt
    }

    /// Guest (or the system simulation): takes the pending interrupt, returning whether there was
    /// one.
    pub fn take_interrupt(&mut self) -> bool {
        core::mem::replace(&mut self.interrupt, false)
    }

    /// Host: raises SINT2's interrupt.
    pub fn raise(&mut self) {
        self.interrupt = true;
        self.stats.interrupts += 1;
    }

    /// Drops queued messages and flags (a full reset of the simulated VP, not a VMBus reset).
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}
