//! Unit tests: slot layout from docs/protocol.md#message-slots, the consume order of
//! docs/protocol.md#consuming-a-message, and event scanning of docs/protocol.md#event-flags, with a
//! recording fake of the seam.

use proptest::prelude::*;
use vmbus_driver::hv::Hypervisor;
use vmbus_driver::hv::hypercall::HvStatus;
use vmbus_driver::hv::synic::*;
use vmbus_driver::ids::{ConnectionId, RelId};

/// Builds a slot from the documented offsets: type at 0, size at 4, flags at 5, origin at 8,
/// payload at 16.
fn slot(ty: u32, size: u8, flags: u8, origin: u64, payload: &[u8]) -> [u8; 256] {
    let mut s = [0u8; 256];
    s[0..4].copy_from_slice(&ty.to_le_bytes());
    s[4] = size;
    s[5] = flags;
    s[8..16].copy_from_slice(&origin.to_le_bytes());
    s[16..16 + payload.len()].copy_from_slice(payload);
    s
}

#[test]
fn constants_match_the_page_layout() {
    assert_eq!(SINT_COUNT, 16);
    assert_eq!(MESSAGE_SLOT_SIZE, 256);
    assert_eq!(VMBUS_SINT, 2);
    assert_eq!(VMBUS_SLOT_OFFSET, 0x200);
    assert_eq!(MESSAGE_HEADER_SIZE + MAX_PAYLOAD, 256);
    assert_eq!(MAX_PAYLOAD, 240);
    assert_eq!(EVENT_BITMAP_BYTES, 256);
    assert_eq!(EVENT_BITMAP_WORDS, 64);
    assert_eq!(HvMessageType::NONE.0, 0);
    assert_eq!(HvMessageType::VMBUS.0, 1);
    assert_eq!(HvMessageType::TIMER_EXPIRED.0, 0x8000_0010);
}

#[test]
fn slot_fields_are_read_from_their_offsets() {
    let s = slot(1, 3, 0x01, 0xFFFF_FFFF_FF12_3456, &[9, 8, 7]);
    let m = parse_message_slot(&s).unwrap().unwrap();
    assert_eq!(m.message_type, HvMessageType::VMBUS);
    assert_eq!(m.payload(), &[9, 8, 7]);
    assert!(m.pending);
    assert_eq!(m.origin, 0xFFFF_FFFF_FF12_3456);
    assert_eq!(m.port_id(), 0x12_3456);
}

#[test]
fn size_and_flags_are_not_swapped() {
    // The rejected LKML patch swapped bytes 4 and 5; size 2 with pending must stay that way.
    let m = parse_message_slot(&slot(1, 2, 1, 0, &[1, 2]))
        .unwrap()
        .unwrap();
    assert_eq!((m.payload_size, m.pending), (2, true));
    let m = parse_message_slot(&slot(1, 1, 0, 0, &[1]))
        .unwrap()
        .unwrap();
    assert_eq!((m.payload_size, m.pending), (1, false));
}

#[test]
fn reserved_flag_bits_do_not_mean_pending() {
    let m = parse_message_slot(&slot(1, 0, 0xFE, 0, &[]))
        .unwrap()
        .unwrap();
    assert!(!m.pending);
    assert!(m.payload().is_empty());
}

#[test]
fn payload_of_240_bytes_is_accepted() {
    let payload = [0x5Au8; 240];
    let m = parse_message_slot(&slot(1, 240, 0, 0, &payload))
        .unwrap()
        .unwrap();
    assert_eq!(m.payload().len(), 240);
    assert_eq!(m.payload(), &payload[..]);
}

#[test]
fn payload_size_over_240_is_rejected() {
    for size in [241u8, 255] {
        let err = parse_message_slot(&slot(1, size, 0, 0, &[])).unwrap_err();
        assert_eq!(
            err,
            SlotError::PayloadTooLarge {
                message_type: HvMessageType::VMBUS,
                size
            }
        );
    }
    let text = std::format!(
        "{}",
        parse_message_slot(&slot(1, 241, 0, 0, &[])).unwrap_err()
    );
    assert!(text.contains("241") && text.contains("240"), "{text}");
}

#[test]
fn a_none_slot_is_empty_whatever_else_it_holds() {
    assert_eq!(parse_message_slot(&[0u8; 256]), Ok(None));
    assert_eq!(
        parse_message_slot(&slot(0, 250, 1, 7, &[1, 2, 3])),
        Ok(None)
    );
}

#[test]
fn hypervisor_timer_message_is_parsed_and_recognised() {
    let m = parse_message_slot(&slot(0x8000_0010, 0, 0, 0, &[]))
        .unwrap()
        .unwrap();
    assert!(m.message_type.is_hypervisor_message());
    assert_eq!(m.message_type, HvMessageType::TIMER_EXPIRED);
    assert!(!HvMessageType::VMBUS.is_hypervisor_message());
}

fn collect_words(words: &[u32; 64]) -> (EventScan, Vec<u32>) {
    let mut relids = Vec::new();
    let scan = scan_event_words(words, |r| relids.push(r.0));
    (scan, relids)
}

#[test]
fn flag0_is_reported_apart_and_never_as_a_channel() {
    let mut words = [0u32; 64];
    words[0] = 1;
    let (scan, relids) = collect_words(&words);
    assert!(scan.flag0);
    assert_eq!(scan.channels, 0);
    assert!(relids.is_empty());
}

#[test]
fn flag_2047_is_the_top_bit_of_the_last_word() {
    let mut words = [0u32; 64];
    words[63] = 0x8000_0000;
    let (scan, relids) = collect_words(&words);
    assert_eq!(relids, [2047]);
    assert!(!scan.flag0);
}

#[test]
fn all_bits_set_report_every_relid_in_ascending_order() {
    let (scan, relids) = collect_words(&[u32::MAX; 64]);
    assert!(scan.flag0);
    assert_eq!(scan.channels, 2047);
    assert_eq!(relids, (1..=2047).collect::<Vec<u32>>());
}

#[test]
fn no_bits_set_reports_nothing() {
    let (scan, relids) = collect_words(&[0; 64]);
    assert_eq!(scan, EventScan::default());
    assert!(relids.is_empty());
}

#[test]
fn byte_bitmap_numbers_flags_by_byte_then_bit() {
    let mut bytes = [0u8; 256];
    bytes[1] = 1 << 2; // flag 10
    bytes[4] = 1 << 0; // flag 32
    bytes[255] = 1 << 7; // flag 2047
    let mut relids = Vec::new();
    let scan = scan_event_bytes(&bytes, |r| relids.push(r.0));
    assert_eq!(relids, [10, 32, 2047]);
    assert_eq!(scan.channels, 3);
}

/// One call the driver made through the seam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Read(u8),
    Clear(u8, HvMessageType),
    Eom,
    Take(u8, usize),
}

/// A recording fake of the seam with one SIM page and one SIEF page.
struct FakeHv {
    sim: [[u8; 256]; 16],
    sief: [[u32; 64]; 16],
    calls: Vec<Call>,
    /// Applied to the live slot right after the first read (the host acting between the guest's
    /// copy and its clear).
    after_first_read: Option<fn(&mut [u8; 256])>,
}

impl FakeHv {
    fn with_slot(sint: u8, s: [u8; 256]) -> Self {
        let mut hv = Self {
            sim: [[0; 256]; 16],
            sief: [[0; 64]; 16],
            calls: Vec::new(),
            after_first_read: None,
        };
        hv.sim[usize::from(sint)] = s;
        hv
    }
}

impl Hypervisor for FakeHv {
    fn post_message(&mut self, _: ConnectionId, _: HvMessageType, _: &[u8]) -> HvStatus {
        HvStatus::SUCCESS
    }
    fn signal_event(&mut self, _: ConnectionId, _: u16) -> HvStatus {
        HvStatus::SUCCESS
    }
    fn read_message_slot(&mut self, sint: u8) -> [u8; 256] {
        self.calls.push(Call::Read(sint));
        let copy = self.sim[usize::from(sint)];
        if let Some(host) = self.after_first_read.take() {
            host(&mut self.sim[usize::from(sint)]);
        }
        copy
    }
    fn clear_message_slot(&mut self, sint: u8, expected: HvMessageType) -> bool {
        self.calls.push(Call::Clear(sint, expected));
        let s = &mut self.sim[usize::from(sint)];
        if s[0..4] == expected.0.to_le_bytes() {
            s[0..4].fill(0);
            true
        } else {
            false
        }
    }
    fn end_of_message(&mut self) {
        self.calls.push(Call::Eom);
    }
    fn take_event_flags(&mut self, sint: u8, word: usize) -> u32 {
        self.calls.push(Call::Take(sint, word));
        core::mem::take(&mut self.sief[usize::from(sint)][word])
    }
}

#[test]
fn pending_message_is_cleared_then_eomd_then_returned() {
    let mut hv = FakeHv::with_slot(2, slot(1, 4, 1, 0, &[1, 2, 3, 4]));
    let m = consume_message(&mut hv, 2).unwrap().unwrap();
    assert_eq!(m.payload(), &[1, 2, 3, 4]);
    assert_eq!(
        hv.calls,
        [
            Call::Read(2),
            Call::Clear(2, HvMessageType::VMBUS),
            Call::Read(2),
            Call::Eom
        ]
    );
    assert_eq!(hv.sim[2][0..4], [0; 4], "slot not freed");
}

#[test]
fn no_eom_when_nothing_is_pending() {
    let mut hv = FakeHv::with_slot(2, slot(1, 1, 0, 0, &[7]));
    assert!(consume_message(&mut hv, 2).unwrap().is_some());
    assert!(!hv.calls.contains(&Call::Eom));
    assert_eq!(hv.calls[1], Call::Clear(2, HvMessageType::VMBUS));
}

#[test]
fn host_setting_pending_after_the_copy_still_gets_its_eom() {
    let mut hv = FakeHv::with_slot(2, slot(1, 1, 0, 0, &[7]));
    hv.after_first_read = Some(|s| s[5] |= 1);
    assert!(consume_message(&mut hv, 2).unwrap().is_some());
    assert_eq!(
        hv.calls.last(),
        Some(&Call::Eom),
        "host would wait for EOM forever"
    );
}

#[test]
fn empty_slot_is_left_alone() {
    let mut hv = FakeHv::with_slot(2, [0; 256]);
    assert_eq!(consume_message(&mut hv, 2), Ok(None));
    assert_eq!(hv.calls, [Call::Read(2)]);
}

#[test]
fn malformed_slot_is_still_freed_so_the_bus_never_stalls() {
    let mut hv = FakeHv::with_slot(2, slot(1, 241, 1, 0, &[]));
    let err = consume_message(&mut hv, 2).unwrap_err();
    assert_eq!(
        err,
        SlotError::PayloadTooLarge {
            message_type: HvMessageType::VMBUS,
            size: 241
        }
    );
    assert_eq!(
        hv.calls,
        [
            Call::Read(2),
            Call::Clear(2, HvMessageType::VMBUS),
            Call::Read(2),
            Call::Eom
        ]
    );
    assert_eq!(hv.sim[2][0..4], [0; 4]);
}

#[test]
fn slot_changed_before_clear_is_neither_cleared_nor_eomd() {
    let mut hv = FakeHv::with_slot(2, slot(1, 1, 1, 0, &[7]));
    hv.after_first_read = Some(|s| s[0] = 5);
    let err = consume_message(&mut hv, 2).unwrap_err();
    assert_eq!(
        err,
        SlotError::ChangedDuringConsume {
            copied: HvMessageType::VMBUS
        }
    );
    assert!(!hv.calls.contains(&Call::Eom));
    assert_eq!(hv.sim[2][0], 5, "someone else's message was wiped");
}

#[test]
fn consume_touches_only_the_named_sint() {
    let mut hv = FakeHv::with_slot(3, slot(1, 0, 0, 0, &[]));
    hv.sim[2] = slot(1, 0, 0, 0, &[]);
    consume_message(&mut hv, 3).unwrap().unwrap();
    assert_eq!(hv.sim[2][0], 1);
    assert!(
        hv.calls
            .iter()
            .all(|c| matches!(c, Call::Read(3) | Call::Clear(3, _)))
    );
}

#[test]
fn out_of_range_sint_makes_no_seam_call() {
    let mut hv = FakeHv::with_slot(2, slot(1, 0, 0, 0, &[]));
    assert_eq!(
        consume_message(&mut hv, 16),
        Err(SlotError::InvalidSint(16))
    );
    assert!(matches!(
        scan_events(&mut hv, 200, |_| {}),
        Err(SlotError::InvalidSint(200))
    ));
    assert!(hv.calls.is_empty());
}

#[test]
fn scan_events_takes_every_word_once_and_clears_it() {
    let mut hv = FakeHv::with_slot(2, [0; 256]);
    hv.sief[2][0] = 0b1011; // flag 0, relids 1 and 3
    hv.sief[2][40] = 1 << 5; // relid 1285
    hv.sief[1][0] = 1 << 4; // another SINT: must not be reported
    let mut relids = Vec::new();
    let scan = scan_events(&mut hv, 2, |r| relids.push(r)).unwrap();
    assert_eq!(relids, [RelId(1), RelId(3), RelId(1285)]);
    assert!(scan.flag0);
    assert_eq!(scan.channels, 3);
    assert_eq!(hv.sief[2], [0; 64]);
    assert_eq!(hv.sief[1][0], 1 << 4);
    let takes: Vec<usize> = hv
        .calls
        .iter()
        .filter_map(|c| match c {
            Call::Take(2, w) => Some(*w),
            _ => None,
        })
        .collect();
    assert_eq!(takes, (0..64).collect::<Vec<usize>>());
}

proptest! {
    #[test]
    fn parsing_arbitrary_slots_never_panics_nor_exceeds_240(bytes in proptest::collection::vec(any::<u8>(), 256)) {
        let mut s = [0u8; 256];
        s.copy_from_slice(&bytes);
        match parse_message_slot(&s) {
            Ok(Some(m)) => {
                prop_assert!(m.payload().len() <= 240);
                prop_assert_eq!(m.payload(), &s[16..16 + usize::from(s[4])]);
            }
            Ok(None) => prop_assert_eq!(&s[0..4], &[0u8; 4]),
            Err(SlotError::PayloadTooLarge { size, .. }) => prop_assert!(size > 240),
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn consuming_any_nonempty_slot_frees_it(bytes in proptest::collection::vec(any::<u8>(), 256)) {
        let mut s = [0u8; 256];
        s.copy_from_slice(&bytes);
        let mut hv = FakeHv::with_slot(2, s);
        let _ = consume_message(&mut hv, 2);
        prop_assert_eq!(&hv.sim[2][0..4], &[0u8; 4]);
        prop_assert_eq!(hv.calls.contains(&Call::Eom), s[0..4] != [0; 4] && s[5] & 1 == 1);
    }

    #[test]
    fn scan_reports_exactly_the_set_flags(bytes in proptest::collection::vec(any::<u8>(), 256)) {
        let mut b = [0u8; 256];
        b.copy_from_slice(&bytes);
        let mut relids = Vec::new();
        let scan = scan_event_bytes(&b, |r| relids.push(r.0));
        let expected: Vec<u32> = (1..2048u32).filter(|f| b[(f / 8) as usize] >> (f % 8) & 1 == 1).collect();
        prop_assert_eq!(relids, expected);
        prop_assert_eq!(scan.flag0, b[0] & 1 == 1);
    }
}
