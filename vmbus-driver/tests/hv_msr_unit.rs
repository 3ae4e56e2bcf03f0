//! Unit tests: MSR numbers and bit positions from docs/protocol.md#synthetic-msrs.

use proptest::prelude::*;
use vmbus_driver::hv::msr::*;
use vmbus_driver::ids::VpIndex;

#[test]
fn msr_numbers_match_the_table() {
    let table: [(u32, u32); 17] = [
        (GUEST_OS_ID, 0x4000_0000),
        (HYPERCALL, 0x4000_0001),
        (VP_INDEX, 0x4000_0002),
        (RESET, 0x4000_0003),
        (VP_RUNTIME, 0x4000_0010),
        (TIME_REF_COUNT, 0x4000_0020),
        (REFERENCE_TSC, 0x4000_0021),
        (VP_ASSIST_PAGE, 0x4000_0073),
        (SCONTROL, 0x4000_0080),
        (SVERSION, 0x4000_0081),
        (SIEFP, 0x4000_0082),
        (SIMP, 0x4000_0083),
        (EOM, 0x4000_0084),
        (SIRBP, 0x4000_0085),
        (SINT0, 0x4000_0090),
        (SINT15, 0x4000_009F),
        (CRASH_CTL, 0x4000_0105),
    ];
    for (got, want) in table {
        assert_eq!(got, want);
    }
    assert_eq!(EOM_VALUE, 0);
}

#[test]
fn vmbus_sint2_msr_is_0x40000092() {
    assert_eq!(VMBUS_SINT_MSR, 0x4000_0092);
    assert_eq!(sint_msr(2), Some(0x4000_0092));
    assert_eq!(sint_msr(15), Some(0x4000_009F));
    assert_eq!(sint_msr(16), None);
}

#[test]
fn timer_and_crash_msrs_span_their_documented_ranges() {
    assert_eq!(stimer_config_msr(0), Some(0x4000_00B0));
    assert_eq!(stimer_count_msr(0), Some(0x4000_00B1));
    assert_eq!(stimer_count_msr(3), Some(0x4000_00B7));
    assert_eq!(stimer_count_msr(3), Some(STIMER3_COUNT));
    assert_eq!(stimer_config_msr(4), None);
    assert_eq!(crash_param_msr(0), Some(0x4000_0100));
    assert_eq!(crash_param_msr(4), Some(CRASH_P4));
    assert_eq!(crash_param_msr(5), None);
}

#[test]
fn linux_style_guest_os_id_encodes_bit63_type_and_version() {
    // Linux: 0x8100 << 48 | kernel_version << 16.
    let id = GuestOsId::open_source(OS_TYPE_LINUX, 0, 0x0006_0C00, 0).unwrap();
    assert_eq!(id.raw(), 0x8100_0006_0C00_0000);
    assert!(id.is_open_source());
    assert_eq!(id.os_type(), 1);
    assert_eq!(id.version(), 0x0006_0C00);
}

#[test]
fn guest_os_id_fields_land_in_their_bits() {
    let id = GuestOsId::open_source(0x7F, 0xAB, 0x1234_5678, 0x9ABC).unwrap();
    assert_eq!(id.raw(), 0xFFAB_1234_5678_9ABC);
    assert_eq!(
        (id.os_type(), id.os_id(), id.version(), id.build()),
        (0x7F, 0xAB, 0x1234_5678, 0x9ABC)
    );
    assert_eq!(
        GuestOsId::open_source(0x80, 0, 0, 0),
        Err(MsrError::OsTypeTooLarge(0x80))
    );
    let ms = GuestOsId(0x0001_0406_0100_1DB1);
    assert!(!ms.is_open_source());
    assert_eq!(ms.build(), 0x1DB1);
}

#[test]
fn hypercall_msr_enable_and_page_keep_reserved_bits() {
    // Bits 11:1 (reserved or lock) as a hypervisor might return them.
    let read = HypercallMsr(0x0000_0000_0000_0FFE);
    let written = read.with_page_number(0x12345).unwrap().with_enabled(true);
    assert_eq!(written.0, 0x1234_5FFF);
    assert!(written.enabled());
    assert!(written.locked(), "bit 1 was set on read and must survive");
    assert_eq!(written.page_number(), 0x12345);
    assert_eq!(written.with_locked(false).0, 0x1234_5FFD);
    assert_eq!(written.with_enabled(false).0, 0x1234_5FFE);
    assert_eq!(
        HypercallMsr(0).with_page_number(1 << 52),
        Err(MsrError::PageNumberTooLarge(1 << 52))
    );
    assert_eq!(
        HypercallMsr(0).with_page_number(MAX_PAGE_NUMBER).unwrap().0,
        0xFFFF_FFFF_FFFF_F000
    );
}

#[test]
fn scontrol_enable_keeps_reserved_bits() {
    let s = Scontrol(0xF0F0_0000_0000_0A00).with_enabled(true);
    assert_eq!(s.0, 0xF0F0_0000_0000_0A01);
    assert!(s.enabled());
    assert_eq!(s.with_enabled(false).0, 0xF0F0_0000_0000_0A00);
}

#[test]
fn simp_and_siefp_share_enable_and_page_fields() {
    let m = SynicPageMsr(0x0000_0000_0000_0AA0)
        .with_page_number(0xFEE)
        .unwrap()
        .with_enabled(true);
    assert_eq!(m.0, 0x00FE_EAA1);
    assert_eq!(m.page_number(), 0xFEE);
    assert!(m.enabled());
}

#[test]
fn sint_reset_value_is_masked_vector_zero() {
    assert_eq!(Sint::RESET.0, 0x10000);
    assert_eq!(Sint::default(), Sint::RESET);
    assert!(Sint::RESET.masked());
    assert_eq!(Sint::RESET.vector(), 0);
}

#[test]
fn sint_vector_below_16_is_refused() {
    for v in 0..16u8 {
        assert_eq!(
            Sint::RESET.with_vector(v),
            Err(MsrError::VectorOutOfRange(v))
        );
    }
    assert_eq!(Sint::RESET.with_vector(16).unwrap().vector(), 16);
    assert_eq!(Sint::RESET.with_vector(255).unwrap().vector(), 255);
}

#[test]
fn sint_flags_sit_at_bits_16_to_20() {
    let base = Sint(0);
    assert_eq!(base.with_masked(true).0, 1 << 16);
    assert_eq!(base.with_auto_eoi(true).0, 1 << 17);
    assert_eq!(base.with_polling(true).0, 1 << 18);
    assert_eq!(base.with_as_intercept(true).0, 1 << 19);
    assert_eq!(base.with_proxy(true).0, 1 << 20);
    let all = Sint(0x1F_0000);
    assert!(all.masked() && all.auto_eoi() && all.polling() && all.as_intercept() && all.proxy());
}

#[test]
fn vmbus_sint_setup_unmasks_and_keeps_reserved_bits() {
    // Reserved bits 15:8 and 63:21 as read back; docs/protocol.md#enable-sequence step 7 is a
    // read-modify-write.
    let read = Sint(0xABC0_0000_0001_5500);
    let w = read
        .with_vector(0x42)
        .unwrap()
        .with_auto_eoi(true)
        .with_masked(false);
    assert_eq!(w.0, 0xABC0_0000_0002_5542);
}

#[test]
fn vp_index_read_value_is_refused_above_32_bits() {
    assert_eq!(vp_index_from_msr(7), Ok(VpIndex(7)));
    assert_eq!(vp_index_from_msr(0xFFFF_FFFF), Ok(VpIndex(u32::MAX)));
    assert_eq!(
        vp_index_from_msr(1 << 32),
        Err(MsrError::VpIndexTooLarge(1 << 32))
    );
}

proptest! {
    #[test]
    fn sint_setters_change_only_their_bit(raw in any::<u64>(), on in any::<bool>(), which in 0usize..5) {
        let s = Sint(raw);
        let (bit, got) = match which {
            0 => (16, s.with_masked(on)),
            1 => (17, s.with_auto_eoi(on)),
            2 => (18, s.with_polling(on)),
            3 => (19, s.with_as_intercept(on)),
            _ => (20, s.with_proxy(on)),
        };
        prop_assert_eq!(got.0 & !(1u64 << bit), raw & !(1u64 << bit));
        prop_assert_eq!(got.0 & (1u64 << bit) != 0, on);
    }

    #[test]
    fn page_setters_keep_low_12_bits(raw in any::<u64>(), pfn in 0u64..=MAX_PAGE_NUMBER) {
        let h = HypercallMsr(raw).with_page_number(pfn).unwrap();
        prop_assert_eq!(h.0 & 0xFFF, raw & 0xFFF);
        prop_assert_eq!(h.page_number(), pfn);
        let p = SynicPageMsr(raw).with_page_number(pfn).unwrap();
        prop_assert_eq!(p.0 & 0xFFF, raw & 0xFFF);
        prop_assert_eq!(p.page_number(), pfn);
    }
}
