//! SynIC message slots and event flags (docs/protocol.md#the-synic-pages): parsing a copied slot,
//! scanning SINT2's event-flag bitmap into relids, and the guest's consume/scan procedures over the
//! seam.

use core::fmt;

use super::seam::Hypervisor;
use crate::ids::RelId;

/// Number of synthetic interrupt sources per VP.
pub const SINT_COUNT: u8 = 16;
/// Size of one message slot in the SIM page (slot n belongs to SINTn).
pub const MESSAGE_SLOT_SIZE: usize = 256;
/// The SINT that VMBus uses for control messages and channel interrupts.
pub const VMBUS_SINT: u8 = 2;
/// Offset of VMBus's slot in the SIM page and of its bitmap in the SIEF page.
pub const VMBUS_SLOT_OFFSET: usize = VMBUS_SINT as usize * MESSAGE_SLOT_SIZE;
/// Size of the slot header (type, size, flags, reserved, origin).
pub const MESSAGE_HEADER_SIZE: usize = 16;
/// Largest payload of a SynIC message or a posted message.
pub const MAX_PAYLOAD: usize = 240;
/// Event flags per SINT (a 256-byte bitmap).
pub const EVENT_FLAGS_PER_SINT: usize = 2048;
/// Size of one SINT's event-flag bitmap in bytes.
pub const EVENT_BITMAP_BYTES: usize = EVENT_FLAGS_PER_SINT / 8;
/// Number of 32-bit words in one SINT's event-flag bitmap.
pub const EVENT_BITMAP_WORDS: usize = EVENT_FLAGS_PER_SINT / 32;

/// Flags byte bit 0: the host has another message queued for this slot and waits for EOM.
const FLAG_MESSAGE_PENDING: u8 = 1 << 0;
/// Bits of the origin field that carry a port id.
const PORT_ID_MASK: u64 = 0x00FF_FFFF;

/// A SynIC message type (slot offset 0, and the PostMessage type). Open: any value is
/// representable. Types with bit 31 set come from the hypervisor itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HvMessageType(pub u32);

impl HvMessageType {
    /// HVMSG_NONE: the slot is empty.
    pub const NONE: Self = Self(0);
    /// A VMBus (guest- or host-posted) message.
    pub const VMBUS: Self = Self(1);
    /// HVMSG_TIMER_EXPIRED from a synthetic timer that shares the SINT.
    pub const TIMER_EXPIRED: Self = Self(0x8000_0010);

    /// Whether the hypervisor itself sent it (bit 31 set).
    pub const fn is_hypervisor_message(self) -> bool {
        self.0 & 0x8000_0000 != 0
    }

    /// Whether a guest may post it with HvCallPostMessage: non-zero with bit 31 clear.
    pub const fn is_guest_postable(self) -> bool {
        self.0 != 0 && !self.is_hypervisor_message()
    }
}

impl fmt::Debug for HvMessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for HvMessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NONE => f.write_str("HVMSG_NONE"),
            Self::VMBUS => f.write_str("VMBus message (1)"),
            Self::TIMER_EXPIRED => f.write_str("HVMSG_TIMER_EXPIRED (0x80000010)"),
            Self(other) => write!(f, "message type 0x{other:08x}"),
        }
    }
}

/// Why a message slot could not be consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotError {
    /// The payload size byte is over 240 (the host wrote a malformed slot).
    PayloadTooLarge {
        /// The type of the malformed message.
        message_type: HvMessageType,
        /// The stated payload size.
        size: u8,
    },
    /// The SINT number is 16 or more.
    InvalidSint(u8),
    /// The slot's type changed between the copy and the clear (another consumer took it, or the
    /// host rewrote a busy slot); nothing was cleared, read the slot again.
    ChangedDuringConsume {
        /// The type that was copied.
        copied: HvMessageType,
    },
}

impl fmt::Display for SlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { message_type, size } => write!(
                f,
                "SynIC message ({message_type}) states a payload of {size} bytes, over 240"
            ),
            Self::InvalidSint(sint) => write!(f, "SINT {sint} does not exist (0..=15)"),
            Self::ChangedDuringConsume { copied } => {
                write!(f, "SynIC slot changed after its {copied} was copied")
            }
        }
    }
}

/// One SynIC message, copied and validated.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SynicMessage {
    /// The message type (never NONE).
    pub message_type: HvMessageType,
    /// Valid payload bytes, at most 240.
    pub payload_size: u8,
    /// MessagePending (flags bit 0): another message is queued behind this one.
    pub pending: bool,
    /// Origin: sender partition id or port id (port id in bits 23:0).
    pub origin: u64,
    /// The payload area; only the first `payload_size` bytes are meaningful.
    pub payload: [u8; MAX_PAYLOAD],
}

impl fmt::Debug for SynicMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SynicMessage")
            .field("message_type", &self.message_type)
            .field("pending", &self.pending)
            .field("origin", &self.origin)
            .field("payload", &self.payload())
            .finish()
    }
}

impl SynicMessage {
    /// The valid payload bytes.
    pub fn payload(&self) -> &[u8] {
        // payload_size <= 240 is checked when parsing; `get` keeps a hand-built value safe too.
        self.payload
            .get(..usize::from(self.payload_size))
            .unwrap_or(&self.payload)
    }

    /// The port id part of the origin (bits 23:0).
    pub const fn port_id(&self) -> u32 {
        (self.origin & PORT_ID_MASK) as u32
    }
}

/// Parses a copied message slot. `Ok(None)` is an empty slot (type NONE, whatever the rest
/// holds). Reserved flag bits and the reserved field are ignored, as the hypervisor may use them
/// later; a payload size over 240 is an error.
pub fn parse_message_slot(
    slot: &[u8; MESSAGE_SLOT_SIZE],
) -> Result<Option<SynicMessage>, SlotError> {
    let message_type = HvMessageType(u32::from_le_bytes([slot[0], slot[1], slot[2], slot[3]]));
    if message_type == HvMessageType::NONE {
        return Ok(None);
    }
    let size = slot[4];
    if usize::from(size) > MAX_PAYLOAD {
        return Err(SlotError::PayloadTooLarge { message_type, size });
    }
    let mut origin = [0u8; 8];
    origin.copy_from_slice(&slot[8..16]);
    let mut payload = [0u8; MAX_PAYLOAD];
    let len = usize::from(size);
    payload[..len].copy_from_slice(&slot[MESSAGE_HEADER_SIZE..MESSAGE_HEADER_SIZE + len]);
    Ok(Some(SynicMessage {
        message_type,
        payload_size: size,
        pending: slot[5] & FLAG_MESSAGE_PENDING != 0,
        origin: u64::from_le_bytes(origin),
        payload,
    }))
}

/// What an event-flag scan found besides the channels it reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventScan {
    /// Flag 0 was set: before WIN8 it means "check the legacy interrupt page"; it is never a
    /// channel.
    pub flag0: bool,
    /// How many channel relids were reported.
    pub channels: u32,
}

/// Reports the relids of the set bits of bitmap word `word` (flag f = bit f%32 of word f/32),
/// in ascending order, and records flag 0.
fn report_word(word: usize, mut bits: u32, scan: &mut EventScan, f: &mut impl FnMut(RelId)) {
    while bits != 0 {
        let bit = bits.trailing_zeros();
        bits &= bits - 1;
        // word < 64 and bit < 32, so the flag number is below 2048.
        let flag = (word as u32) * 32 + bit;
        if flag == 0 {
            scan.flag0 = true;
        } else {
            scan.channels += 1;
            f(RelId(flag));
        }
    }
}

/// Scans a copy of one SINT's bitmap given as 64 little-endian-numbered words.
pub fn scan_event_words(words: &[u32; EVENT_BITMAP_WORDS], mut f: impl FnMut(RelId)) -> EventScan {
    let mut scan = EventScan::default();
    for (i, &bits) in words.iter().enumerate() {
        report_word(i, bits, &mut scan, &mut f);
    }
    scan
}

/// Scans a copy of one SINT's bitmap given as bytes (flag f = bit f%8 of byte f/8).
pub fn scan_event_bytes(bytes: &[u8; EVENT_BITMAP_BYTES], f: impl FnMut(RelId)) -> EventScan {
    let mut words = [0u32; EVENT_BITMAP_WORDS];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    scan_event_words(&words, f)
}

/// Consumes the message in `sint`'s slot, in the order of docs/protocol.md#consuming-a-message:
/// copy the slot; compare-and-swap its type to NONE (with a full barrier, in the seam); write
/// EOM if MessagePending was set; then parse the copy.
///
/// A malformed slot is still cleared and acknowledged, so a bad message never stalls the bus,
/// and the parse error is returned. The APIC EOI (step 5, only when the SINT is not AutoEOI) is
/// the caller's, through the kernel seam.
///
/// The pending flag is taken from the copy and re-read from the slot after the barrier: the
/// host may set it between the copy and the clear, and missing it would leave the host waiting
/// for an EOM forever. A surplus EOM only makes the hypervisor re-check its queue.
pub fn consume_message<H: Hypervisor + ?Sized>(
    hv: &mut H,
    sint: u8,
) -> Result<Option<SynicMessage>, SlotError> {
    if sint >= SINT_COUNT {
        return Err(SlotError::InvalidSint(sint));
    }
    let copy = hv.read_message_slot(sint);
    let copied_type = HvMessageType(u32::from_le_bytes([copy[0], copy[1], copy[2], copy[3]]));
    if copied_type == HvMessageType::NONE {
        return Ok(None);
    }
    if !hv.clear_message_slot(sint, copied_type) {
        return Err(SlotError::ChangedDuringConsume {
            copied: copied_type,
        });
    }
    // The seam's barrier orders the store of NONE before this read of the flags byte, pairing
    // with the host's "slot busy: set MessagePending" check.
    let pending_now = hv.read_message_slot(sint)[5] & FLAG_MESSAGE_PENDING != 0;
    if copy[5] & FLAG_MESSAGE_PENDING != 0 || pending_now {
        hv.end_of_message();
    }
    parse_message_slot(&copy)
}

/// Scans `sint`'s event flags: takes (test-and-clears) each of the 64 words through the seam and
/// reports the relids of set flags in ascending order. Flag 0 is reported in the result only.
pub fn scan_events<H: Hypervisor + ?Sized>(
    hv: &mut H,
    sint: u8,
    mut f: impl FnMut(RelId),
) -> Result<EventScan, SlotError> {
    if sint >= SINT_COUNT {
        return Err(SlotError::InvalidSint(sint));
    }
    let mut scan = EventScan::default();
    for word in 0..EVENT_BITMAP_WORDS {
        let bits = hv.take_event_flags(sint, word);
        report_word(word, bits, &mut scan, &mut f);
    }
    Ok(scan)
}
