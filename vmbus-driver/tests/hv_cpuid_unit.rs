//! Unit tests: detection on register sets as real hypervisors report them.

use vmbus_driver::hv::cpuid::*;

const LEAF1_WITH_HYPERVISOR: [u32; 4] = [0x0005_06F1, 0x0008_0800, 0xFEDA_3203, 0x0F8B_FBFF];
const LEAF1_BARE_METAL: [u32; 4] = [0x0005_06F1, 0x0008_0800, 0x7EDA_3203, 0x0F8B_FBFF];
/// "Microsoft Hv" split over EBX, ECX, EDX.
const MS_VENDOR: [u32; 3] = [0x7263_694D, 0x666F_736F, 0x7648_2074];

/// A CPUID source from a table; leaves not listed read as zero. Records every leaf asked.
struct FakeCpu {
    leaves: Vec<(u32, [u32; 4])>,
    asked: Vec<u32>,
}

impl FakeCpu {
    fn new(leaves: &[(u32, [u32; 4])]) -> Self {
        Self {
            leaves: leaves.to_vec(),
            asked: Vec::new(),
        }
    }

    fn cpuid(&mut self) -> impl FnMut(u32, u32) -> [u32; 4] + '_ {
        |leaf, _sub| {
            self.asked.push(leaf);
            self.leaves
                .iter()
                .find(|(l, _)| *l == leaf)
                .map(|(_, r)| *r)
                .unwrap_or([0; 4])
        }
    }
}

/// A Windows Server 2022-era Hyper-V host (build 20348) with the flag words a Linux guest on
/// Azure commonly logs: privilege flags low 0x2e7f, high 0x3b8030, hints 0x64e24, misc 0xbed7b2.
fn hyper_v() -> FakeCpu {
    FakeCpu::new(&[
        (1, LEAF1_WITH_HYPERVISOR),
        (
            0x4000_0000,
            [0x4000_000C, MS_VENDOR[0], MS_VENDOR[1], MS_VENDOR[2]],
        ),
        (0x4000_0001, [0x3123_7648, 0, 0, 0]),
        (0x4000_0002, [20348, 0x000A_0000, 0, 0x0300_0A2B]),
        (0x4000_0003, [0x2E7F, 0x003B_8030, 0x2, 0x00BE_D7B2]),
        (0x4000_0004, [0x0006_4E24, 0x0FFF, 0, 0]),
        (0x4000_0005, [0x800, 0x800, 0, 0]),
    ])
}

/// QEMU/KVM with hv-relaxed,hv-vapic,hv-vpindex,hv-synic,hv-time; `ebx` is the privileges high
/// half (0x30 from QEMU 2021 on, 0 before).
fn qemu(ebx: u32) -> FakeCpu {
    FakeCpu::new(&[
        (1, LEAF1_WITH_HYPERVISOR),
        (
            0x4000_0000,
            [0x4000_000A, MS_VENDOR[0], MS_VENDOR[1], MS_VENDOR[2]],
        ),
        (0x4000_0001, [0x3123_7648, 0, 0, 0]),
        (0x4000_0002, [0x3839, 0x000A_0000, 0, 0]),
        (0x4000_0003, [0x0276, ebx, 0, 0]),
        (0x4000_0004, [0x0028, 0x0FFF, 0, 0]),
    ])
}

#[test]
fn hyper_v_is_detected_with_vendor_version_and_privileges() {
    let mut cpu = hyper_v();
    let info = detect(cpu.cpuid()).unwrap();
    assert_eq!(info.max_leaf, 0x4000_000C);
    assert_eq!(&info.vendor, b"Microsoft Hv");
    assert!(info.is_microsoft_vendor());
    assert_eq!(info.version.build, 20348);
    assert_eq!((info.version.major, info.version.minor), (10, 0));
    assert_eq!(info.version.service_branch, 3);
    assert_eq!(info.version.service_number, 0x0A2B);
    assert!(info.privileges_low.contains(PrivilegesLow::SYNIC_MSRS));
    assert!(info.privileges_high.contains(PrivilegesHigh::POST_MESSAGES));
    assert!(info.privileges_high.contains(PrivilegesHigh::SIGNAL_EVENTS));
    assert!(info.features.contains(Features::GUEST_CRASH_MSRS));
}

#[test]
fn hyper_v_passes_the_vmbus_check_without_auto_eoi() {
    let mut cpu = hyper_v();
    let support = check_vmbus(cpu.cpuid()).unwrap();
    assert!(support.warnings.is_empty());
    // hints 0x64e24 has bit 9: AutoEOI deprecated, so Linux leaves AutoEOI clear.
    assert!(
        support
            .info
            .recommendations
            .contains(Recommendations::AUTO_EOI_DEPRECATED)
    );
    assert!(!support.use_auto_eoi);
}

#[test]
fn the_interface_signature_is_checked_before_other_leaves_are_read() {
    let mut cpu = hyper_v();
    detect(cpu.cpuid()).unwrap();
    assert_eq!(&cpu.asked[..3], &[1, 0x4000_0000, 0x4000_0001]);
}

#[test]
fn modern_qemu_passes_cleanly_and_uses_auto_eoi() {
    let mut cpu = qemu(0x30);
    let support = check_vmbus(cpu.cpuid()).unwrap();
    assert!(support.warnings.is_empty(), "{:?}", support.warnings);
    assert!(support.use_auto_eoi);
    assert_eq!(support.info.version.build, 0x3839);
}

#[test]
fn old_qemu_without_post_and_signal_privileges_only_warns() {
    let mut cpu = qemu(0);
    let support = check_vmbus(cpu.cpuid()).unwrap();
    assert!(support.warnings.post_messages_not_advertised);
    assert!(support.warnings.signal_events_not_advertised);
    assert!(!support.warnings.max_leaf_below_linux_minimum);
}

#[test]
fn qemu_with_only_post_messages_warns_about_signal_events() {
    let mut cpu = qemu(0x10);
    let w = check_vmbus(cpu.cpuid()).unwrap().warnings;
    assert!(!w.post_messages_not_advertised);
    assert!(w.signal_events_not_advertised);
}

#[test]
fn kvm_without_hyperv_enlightenments_is_not_hv1() {
    // "KVMKVMKVM\0\0\0"; 0x40000001 EAX holds KVM feature bits.
    let mut cpu = FakeCpu::new(&[
        (1, LEAF1_WITH_HYPERVISOR),
        (
            0x4000_0000,
            [0x4000_0001, 0x4B4D_564B, 0x564B_4D56, 0x0000_004D],
        ),
        (0x4000_0001, [0x0100_7AFB, 0, 0, 0]),
    ]);
    assert_eq!(
        check_vmbus(cpu.cpuid()),
        Err(CpuidError::NotHv1(0x0100_7AFB))
    );
    assert!(
        !cpu.asked.contains(&0x4000_0003),
        "privileges read from a non-Hyper-V leaf"
    );
}

#[test]
fn bare_metal_has_no_hypervisor() {
    let mut cpu = FakeCpu::new(&[(1, LEAF1_BARE_METAL)]);
    assert_eq!(detect(cpu.cpuid()), Err(CpuidError::NoHypervisor));
    assert_eq!(cpu.asked, [1]);
}

#[test]
fn missing_synic_privilege_is_a_hard_error_naming_the_bit() {
    let mut cpu = hyper_v();
    cpu.leaves
        .iter_mut()
        .find(|(l, _)| *l == 0x4000_0003)
        .unwrap()
        .1[0] = 0x2E7B; // bit 2 clear
    let err = check_vmbus(cpu.cpuid()).unwrap_err();
    assert_eq!(err, CpuidError::MissingPrivileges(PrivilegesLow(1 << 2)));
    let text = std::format!("{err}");
    assert!(text.contains("SynIC MSRs (bit 2)"), "{text}");
    assert!(!text.contains("VP_INDEX"), "{text}");
}

#[test]
fn missing_hypercall_and_vp_index_privileges_are_both_reported() {
    let mut cpu = qemu(0x30);
    cpu.leaves
        .iter_mut()
        .find(|(l, _)| *l == 0x4000_0003)
        .unwrap()
        .1[0] = 0x0216; // 5, 6 clear
    assert_eq!(
        check_vmbus(cpu.cpuid()),
        Err(CpuidError::MissingPrivileges(PrivilegesLow(
            (1 << 5) | (1 << 6)
        )))
    );
}

#[test]
fn a_max_leaf_too_low_for_privileges_is_refused() {
    for max in [0x4000_0000, 0x4000_0002] {
        let mut cpu = hyper_v();
        cpu.leaves
            .iter_mut()
            .find(|(l, _)| *l == 0x4000_0000)
            .unwrap()
            .1[0] = max;
        assert_eq!(detect(cpu.cpuid()), Err(CpuidError::MaxLeafTooLow(max)));
    }
}

#[test]
fn recommendations_above_the_max_leaf_are_not_read() {
    let mut cpu = hyper_v();
    cpu.leaves
        .iter_mut()
        .find(|(l, _)| *l == 0x4000_0000)
        .unwrap()
        .1[0] = 0x4000_0003;
    let support = check_vmbus(cpu.cpuid()).unwrap();
    assert!(!cpu.asked.contains(&0x4000_0004));
    assert_eq!(support.info.recommendations, Recommendations(0));
    assert!(support.warnings.max_leaf_below_linux_minimum);
    assert!(support.use_auto_eoi);
}

#[test]
fn privilege_bits_sit_where_the_table_puts_them() {
    assert_eq!(PrivilegesLow::SYNIC_MSRS.0, 1 << 2);
    assert_eq!(PrivilegesLow::HYPERCALL_MSRS.0, 1 << 5);
    assert_eq!(PrivilegesLow::VP_INDEX.0, 1 << 6);
    assert_eq!(PrivilegesHigh::POST_MESSAGES.0, 1 << 4);
    assert_eq!(PrivilegesHigh::SIGNAL_EVENTS.0, 1 << 5);
    assert_eq!(PrivilegesHigh::ISOLATION.0, 1 << 22);
    assert_eq!(Recommendations::AUTO_EOI_DEPRECATED.0, 1 << 9);
    assert_eq!(Features::DIRECT_SYNTHETIC_TIMERS.0, 1 << 19);
    assert_eq!(VMBUS_REQUIRED_PRIVILEGES.0, 0x64);
    assert_eq!(HV1_SIGNATURE.to_le_bytes(), *b"Hv#1");
}
