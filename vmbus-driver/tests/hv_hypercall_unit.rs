//! Unit tests: golden values written from docs/protocol.md#hypercalls, not from the encoder.

use proptest::prelude::*;
use vmbus_driver::hv::hypercall::*;
use vmbus_driver::hv::synic::HvMessageType;
use vmbus_driver::ids::ConnectionId;

#[test]
fn call_codes_match_the_tlfs() {
    assert_eq!(HVCALL_POST_MESSAGE, 0x5C);
    assert_eq!(HVCALL_SIGNAL_EVENT, 0x5D);
}

#[test]
fn post_message_control_word_is_the_bare_call_code() {
    assert_eq!(
        HypercallControl::simple(HVCALL_POST_MESSAGE).encode(),
        Ok(0x5C)
    );
}

#[test]
fn fast_signal_event_control_word_is_0x1005d() {
    assert_eq!(
        HypercallControl::fast(HVCALL_SIGNAL_EVENT).encode(),
        Ok(0x1005D)
    );
}

#[test]
fn control_word_places_every_field_at_its_documented_bits() {
    // code 15:0, fast 16, varhead 26:17, nested 31, rep count 43:32, rep start 59:48.
    let expected: u64 = 0x0ABC_0FFF_87FF_1234;
    let ctl = HypercallControl {
        code: 0x1234,
        fast: true,
        variable_header_size: 0x3FF,
        nested: true,
        rep_count: 0xFFF,
        rep_start: 0xABC,
    };
    assert_eq!(ctl.encode(), Ok(expected));
    assert_eq!(HypercallControl::decode(expected), Ok(ctl));
}

#[test]
fn control_word_refuses_fields_wider_than_their_bits() {
    let base = HypercallControl::simple(1);
    let wide_head = HypercallControl {
        variable_header_size: 0x400,
        ..base
    };
    assert_eq!(
        wide_head.encode(),
        Err(ControlError::VariableHeaderTooLarge(0x400))
    );
    let wide_count = HypercallControl {
        rep_count: 0x1000,
        ..base
    };
    assert_eq!(
        wide_count.encode(),
        Err(ControlError::RepCountTooLarge(0x1000))
    );
    let wide_start = HypercallControl {
        rep_start: 0x1000,
        ..base
    };
    assert_eq!(
        wide_start.encode(),
        Err(ControlError::RepStartTooLarge(0x1000))
    );
}

#[test]
fn control_word_decode_rejects_each_reserved_range() {
    for bit in [27, 30, 44, 47, 60, 63] {
        let word = 0x5C | (1u64 << bit);
        assert_eq!(
            HypercallControl::decode(word),
            Err(ControlError::ReservedBitsSet(1 << bit)),
            "bit {bit}"
        );
    }
    assert_eq!(
        ControlError::ReservedBitsSet(1).status(),
        HvStatus::INVALID_HYPERCALL_INPUT
    );
}

#[test]
fn result_value_takes_status_and_reps_and_ignores_reserved_bits() {
    let r = HypercallResult::decode(0xF000_0ABC_1234_0013);
    assert_eq!(r.status, HvStatus::INSUFFICIENT_BUFFERS);
    assert_eq!(r.reps_completed, 0xABC);
    let back = HypercallResult {
        status: HvStatus(0x0012),
        reps_completed: 3,
    }
    .encode();
    assert_eq!(back, 0x0000_0003_0000_0012);
}

/// The status table of docs/protocol.md#hypercalls, written out independently of the constants.
const STATUS_TABLE: [(u16, &str); 16] = [
    (0x0000, "SUCCESS"),
    (0x0002, "INVALID_HYPERCALL_CODE"),
    (0x0003, "INVALID_HYPERCALL_INPUT"),
    (0x0004, "INVALID_ALIGNMENT"),
    (0x0005, "INVALID_PARAMETER"),
    (0x0006, "ACCESS_DENIED"),
    (0x000B, "INSUFFICIENT_MEMORY"),
    (0x000E, "INVALID_VP_INDEX"),
    (0x0011, "INVALID_PORT_ID"),
    (0x0012, "INVALID_CONNECTION_ID"),
    (0x0013, "INSUFFICIENT_BUFFERS"),
    (0x0014, "NOT_ACKNOWLEDGED"),
    (0x0015, "INVALID_VP_STATE"),
    (0x0018, "INVALID_SYNIC_STATE"),
    (0x001B, "NO_DATA"),
    (0x001D, "NO_RESOURCES"),
];

#[test]
fn every_documented_status_has_its_name_and_others_have_none() {
    for (value, name) in STATUS_TABLE {
        let got = HvStatus(value).name().unwrap_or("");
        assert_eq!(got.strip_prefix("HV_STATUS_"), Some(name), "0x{value:04x}");
    }
    let named = (0..=u16::MAX)
        .filter(|&v| HvStatus(v).name().is_some())
        .count();
    assert_eq!(named, STATUS_TABLE.len());
    assert_eq!(HvStatus::INVALID_SYNIC_STATE, HvStatus(0x18));
    assert_eq!(HvStatus::NO_RESOURCES, HvStatus(0x1D));
}

#[test]
fn status_display_names_known_codes_and_shows_unknown_ones_in_hex() {
    extern crate std;
    use std::string::ToString;
    assert_eq!(
        HvStatus(0x13).to_string(),
        "HV_STATUS_INSUFFICIENT_BUFFERS (0x0013)"
    );
    assert_eq!(
        HvStatus(0x00FF).to_string(),
        "unknown hypercall status 0x00ff"
    );
}

#[test]
fn only_insufficient_memory_and_buffers_are_retried() {
    let retried: [u16; 2] = [0x000B, 0x0013];
    for v in 0..=u16::MAX {
        assert_eq!(
            HvStatus(v).is_transient_retry(),
            retried.contains(&v),
            "0x{v:04x}"
        );
        assert_eq!(HvStatus(v).is_success(), v == 0);
    }
}

#[test]
fn post_message_block_has_documented_offsets() {
    let payload = [0xAAu8, 0xBB, 0xCC, 0xDD, 0xEE];
    let input = PostMessageInput::new(ConnectionId(4), HvMessageType(1), &payload).unwrap();
    let bytes = input.encode();
    let mut expected = [0u8; 256];
    expected[0] = 4; // connection id at 0
    expected[8] = 1; // message type at 8 (4..8 reserved)
    expected[12] = 5; // payload size at 12
    expected[16..21].copy_from_slice(&payload); // payload at 16
    assert_eq!(bytes, expected);
    assert_eq!(PostMessageInput::decode(&bytes), Ok(input));
}

fn block(connection: u32, reserved: u32, ty: u32, size: u32) -> [u8; 256] {
    let mut b = [0u8; 256];
    b[0..4].copy_from_slice(&connection.to_le_bytes());
    b[4..8].copy_from_slice(&reserved.to_le_bytes());
    b[8..12].copy_from_slice(&ty.to_le_bytes());
    b[12..16].copy_from_slice(&size.to_le_bytes());
    b
}

#[test]
fn post_message_accepts_a_full_240_byte_payload() {
    let mut b = block(0x00FF_FFFF, 0, 1, 240);
    b[255] = 0x77;
    let m = PostMessageInput::decode(&b).unwrap();
    assert_eq!(m.payload().len(), 240);
    assert_eq!(m.payload()[239], 0x77);
    assert_eq!(m.connection(), ConnectionId(0x00FF_FFFF));
}

#[test]
fn post_message_rejects_payload_over_240_with_invalid_parameter() {
    let e = PostMessageInput::decode(&block(1, 0, 1, 241)).unwrap_err();
    assert_eq!(e, PostMessageError::PayloadTooLarge(241));
    assert_eq!(e.status(), HvStatus::INVALID_PARAMETER);
    let huge = PostMessageInput::decode(&block(1, 0, 1, u32::MAX)).unwrap_err();
    assert_eq!(huge, PostMessageError::PayloadTooLarge(u32::MAX));
    let too_long = [0u8; 241];
    assert_eq!(
        PostMessageInput::new(ConnectionId(1), HvMessageType::VMBUS, &too_long),
        Err(PostMessageError::PayloadTooLarge(241))
    );
}

#[test]
fn post_message_rejects_type_zero_and_hypervisor_types() {
    for ty in [0, 0x8000_0000, 0x8000_0010, u32::MAX] {
        let e = PostMessageInput::decode(&block(1, 0, ty, 0)).unwrap_err();
        assert_eq!(e, PostMessageError::InvalidMessageType(HvMessageType(ty)));
        assert_eq!(e.status(), HvStatus::INVALID_PARAMETER);
    }
    assert!(PostMessageInput::decode(&block(1, 0, 0x7FFF_FFFF, 0)).is_ok());
}

#[test]
fn post_message_rejects_reserved_bits_of_the_connection_id() {
    let e = PostMessageInput::decode(&block(0x0100_0001, 0, 1, 0)).unwrap_err();
    assert_eq!(e, PostMessageError::ConnectionIdReservedBits(0x0100_0001));
    assert_eq!(e.status(), HvStatus::INVALID_HYPERCALL_INPUT);
    assert!(PostMessageInput::new(ConnectionId(0x8000_0004), HvMessageType::VMBUS, &[]).is_err());
}

#[test]
fn post_message_rejects_a_nonzero_reserved_field() {
    let e = PostMessageInput::decode(&block(1, 0x10, 1, 0)).unwrap_err();
    assert_eq!(e, PostMessageError::ReservedNonZero(0x10));
}

#[test]
fn post_message_rejects_input_shorter_than_its_payload() {
    let b = block(1, 0, 1, 8);
    assert_eq!(
        PostMessageInput::decode(&b[..15]),
        Err(PostMessageError::Truncated(15))
    );
    assert_eq!(
        PostMessageInput::decode(&b[..23]),
        Err(PostMessageError::Truncated(23))
    );
    assert!(PostMessageInput::decode(&b[..24]).is_ok());
}

#[test]
fn signal_event_input_has_documented_layout() {
    let input = SignalEventInput::new(ConnectionId(0x0012_3456), 0).unwrap();
    assert_eq!(input.encode(), [0x56, 0x34, 0x12, 0, 0, 0, 0, 0]);
    let flagged = SignalEventInput::new(ConnectionId(0x20), 7).unwrap();
    assert_eq!(flagged.encode(), [0x20, 0, 0, 0, 7, 0, 0, 0]);
}

#[test]
fn signal_event_fast_registers_are_0x1005d_and_id_with_flag_at_bit_32() {
    let regs = SignalEventInput::new(ConnectionId(0x0012_3456), 0)
        .unwrap()
        .fast_registers();
    assert_eq!(
        regs,
        FastRegisters {
            rcx: 0x1005D,
            rdx: 0x0012_3456,
            r8: 0
        }
    );
    let flagged = SignalEventInput::new(ConnectionId(5), 1).unwrap();
    assert_eq!(flagged.fast_rdx(), 0x0000_0001_0000_0005);
    assert_eq!(
        SignalEventInput::from_fast_registers(regs),
        SignalEventInput::new(ConnectionId(0x0012_3456), 0)
    );
}

#[test]
fn signal_event_rejects_like_kvm() {
    let flag = SignalEventInput::from_fast_rdx(0x0000_0001_0000_0005).unwrap_err();
    assert_eq!(flag, SignalEventError::NonZeroFlagNumber(1));
    assert_eq!(flag.status(), HvStatus::INVALID_PORT_ID);
    let high = SignalEventInput::from_fast_rdx(0x0100_0005).unwrap_err();
    assert_eq!(
        high,
        SignalEventError::ConnectionIdReservedBits(0x0100_0005)
    );
    assert_eq!(high.status(), HvStatus::INVALID_HYPERCALL_INPUT);
    let reserved = SignalEventInput::decode(&[5, 0, 0, 0, 0, 0, 1, 0]).unwrap_err();
    assert_eq!(reserved, SignalEventError::ReservedNonZero(1));
    // KVM looks at the flag number before the reserved bits.
    assert_eq!(
        SignalEventInput::from_fast_rdx(0x0100_0001_0100_0005),
        Err(SignalEventError::NonZeroFlagNumber(1))
    );
    assert!(SignalEventInput::new(ConnectionId(0x0100_0000), 0).is_err());
}

#[test]
fn signal_event_fast_call_with_wrong_control_word_is_refused() {
    for rcx in [
        0x5D,
        0x1005C,
        0x1005D | (1 << 32),
        0x1005D | (1 << 17),
        0x1005D | (1 << 63),
    ] {
        let regs = FastRegisters { rcx, rdx: 2, r8: 0 };
        assert_eq!(
            SignalEventInput::from_fast_registers(regs),
            Err(SignalEventError::WrongControl(rcx)),
            "rcx 0x{rcx:x}"
        );
    }
}

proptest! {
    #[test]
    fn post_message_round_trips(
        conn in 0u32..=0x00FF_FFFF,
        ty in 1u32..=0x7FFF_FFFF,
        payload in proptest::collection::vec(any::<u8>(), 0..=240),
    ) {
        let m = PostMessageInput::new(ConnectionId(conn), HvMessageType(ty), &payload).unwrap();
        let bytes = m.encode();
        let back = PostMessageInput::decode(&bytes).unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(back.payload(), &payload[..]);
        prop_assert!(bytes[16 + payload.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn post_message_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(m) = PostMessageInput::decode(&bytes) {
            prop_assert!(m.payload().len() <= 240);
            prop_assert!(m.message_type().is_guest_postable());
        }
    }

    #[test]
    fn control_word_round_trips(
        code in any::<u16>(), fast in any::<bool>(), head in 0u16..=0x3FF,
        nested in any::<bool>(), count in 0u16..=0xFFF, start in 0u16..=0xFFF,
    ) {
        let ctl = HypercallControl {
            code, fast, variable_header_size: head, nested, rep_count: count, rep_start: start,
        };
        prop_assert_eq!(HypercallControl::decode(ctl.encode().unwrap()), Ok(ctl));
    }

    #[test]
    fn signal_event_fast_round_trips(conn in 0u32..=0x00FF_FFFF) {
        let s = SignalEventInput::new(ConnectionId(conn), 0).unwrap();
        prop_assert_eq!(SignalEventInput::from_fast_registers(s.fast_registers()), Ok(s));
        prop_assert_eq!(SignalEventInput::decode(&s.encode()), Ok(s));
    }
}
