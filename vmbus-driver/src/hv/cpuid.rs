//! CPUID detection of Hyper-V and of the privileges VMBus needs (docs/protocol.md#cpuid).
//!
//! The caller supplies the CPUID instruction as `FnMut(leaf, subleaf) -> [eax, ebx, ecx, edx]`, so
//! the logic runs unchanged on the host with recorded register sets.

use core::fmt;

/// Leaf 1: ECX bit 31 says a hypervisor is present.
pub const LEAF_FEATURES: u32 = 0x0000_0001;
/// Highest hypervisor leaf and vendor string.
pub const LEAF_VENDOR: u32 = 0x4000_0000;
/// Interface signature ("Hv#1").
pub const LEAF_INTERFACE: u32 = 0x4000_0001;
/// Hypervisor version.
pub const LEAF_VERSION: u32 = 0x4000_0002;
/// Privileges and features.
pub const LEAF_FEATURES_HV: u32 = 0x4000_0003;
/// Implementation recommendations.
pub const LEAF_RECOMMENDATIONS: u32 = 0x4000_0004;
/// Lowest highest-leaf value Linux accepts (it reads limits at 0x40000005).
pub const LINUX_MIN_MAX_LEAF: u32 = 0x4000_0005;

/// CPUID.1:ECX bit 31.
const HYPERVISOR_PRESENT: u32 = 1 << 31;
/// "Hv#1" in EAX of 0x40000001.
pub const HV1_SIGNATURE: u32 = 0x3123_7648;

macro_rules! bit_set {
    ($(#[$doc:meta])* $name:ident { $($(#[$bdoc:meta])* $bit:ident = $n:expr;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name(pub u32);

        impl $name {
            $($(#[$bdoc])* pub const $bit: Self = Self(1 << $n);)*

            /// Whether every bit of `other` is set.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// The bits of `required` that are not set here.
            pub const fn missing(self, required: Self) -> Self {
                Self(required.0 & !self.0)
            }

            /// The union of two sets.
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
        }
    };
}

bit_set!(
    /// Partition privileges, low half (0x40000003 EAX): which MSRs the partition may access.
    PrivilegesLow {
        /// VP runtime MSR.
        VP_RUNTIME = 0;
        /// Partition reference counter (TIME_REF_COUNT).
        TIME_REF_COUNT = 1;
        /// SynIC MSRs (SCONTROL..EOM, SINTx).
        SYNIC_MSRS = 2;
        /// Synthetic timer MSRs.
        SYNTHETIC_TIMER_MSRS = 3;
        /// APIC access MSRs (EOI/ICR/TPR, VP assist).
        APIC_MSRS = 4;
        /// Hypercall MSRs (GUEST_OS_ID, HYPERCALL).
        HYPERCALL_MSRS = 5;
        /// VP_INDEX MSR.
        VP_INDEX = 6;
        /// Reset MSR.
        RESET_MSR = 7;
        /// Stats pages.
        STATS_PAGES = 8;
        /// Reference TSC page.
        REFERENCE_TSC = 9;
        /// Guest idle MSR.
        GUEST_IDLE = 10;
        /// Frequency MSRs.
        FREQUENCY_MSRS = 11;
    }
);

bit_set!(
    /// Partition privileges, high half (0x40000003 EBX): which hypercalls the partition may make.
    PrivilegesHigh {
        /// CreatePartitions.
        CREATE_PARTITIONS = 0;
        /// AccessPartitionId.
        ACCESS_PARTITION_ID = 1;
        /// AccessMemoryPool.
        ACCESS_MEMORY_POOL = 2;
        /// AdjustMessageBuffers.
        ADJUST_MESSAGE_BUFFERS = 3;
        /// PostMessages: HvCallPostMessage allowed.
        POST_MESSAGES = 4;
        /// SignalEvents: HvCallSignalEvent allowed.
        SIGNAL_EVENTS = 5;
        /// CreatePort.
        CREATE_PORT = 6;
        /// ConnectPort.
        CONNECT_PORT = 7;
        /// AccessStats.
        ACCESS_STATS = 8;
        /// Debugging.
        DEBUGGING = 11;
        /// CpuManagement.
        CPU_MANAGEMENT = 12;
        /// EnableExtendedHypercalls.
        ENABLE_EXTENDED_HYPERCALLS = 20;
        /// Isolation.
        ISOLATION = 22;
    }
);

bit_set!(
    /// Features (0x40000003 EDX).
    Features {
        /// MWAIT available.
        MWAIT = 0;
        /// Guest debugging.
        GUEST_DEBUGGING = 1;
        /// Performance monitor.
        PERF_MONITOR = 2;
        /// CPU dynamic partitioning.
        CPU_DYNAMIC_PARTITIONING = 3;
        /// XMM registers for fast hypercall input.
        XMM_FAST_INPUT = 4;
        /// Guest idle.
        GUEST_IDLE = 5;
        /// Frequency MSRs.
        FREQUENCY_MSRS = 8;
        /// Guest crash MSRs.
        GUEST_CRASH_MSRS = 10;
        /// Debug MSRs.
        DEBUG_MSRS = 11;
        /// XMM fast hypercall output.
        XMM_FAST_OUTPUT = 15;
        /// SINT polling mode available (one source only).
        SINT_POLLING = 17;
        /// Hypercall-MSR lock available (one source only).
        HYPERCALL_MSR_LOCK = 18;
        /// Direct synthetic timers.
        DIRECT_SYNTHETIC_TIMERS = 19;
    }
);

bit_set!(
    /// Implementation recommendations (0x40000004 EAX).
    Recommendations {
        /// Address-space switch via hypercall.
        ADDRESS_SPACE_SWITCH = 0;
        /// Local TLB flush via hypercall.
        LOCAL_TLB_FLUSH = 1;
        /// Remote TLB flush via hypercall.
        REMOTE_TLB_FLUSH = 2;
        /// Use the APIC MSRs.
        APIC_MSRS = 3;
        /// Use the reset MSR.
        RESET_MSR = 4;
        /// Relaxed timing.
        RELAXED_TIMING = 5;
        /// AutoEOI is deprecated: leave SINT AutoEOI clear and EOI in the handler.
        AUTO_EOI_DEPRECATED = 9;
        /// Cluster IPI.
        CLUSTER_IPI = 10;
        /// Extended processor masks.
        EX_PROCESSOR_MASKS = 11;
        /// Running nested.
        NESTED = 12;
        /// Enlightened VMCS.
        ENLIGHTENED_VMCS = 14;
    }
);

/// The hypervisor version leaf (0x40000002).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HvVersion {
    /// Build number (EAX).
    pub build: u32,
    /// Major version (EBX 31:16).
    pub major: u16,
    /// Minor version (EBX 15:0).
    pub minor: u16,
    /// Service pack (ECX).
    pub service_pack: u32,
    /// Service branch (EDX 31:24).
    pub service_branch: u8,
    /// Service number (EDX 23:0).
    pub service_number: u32,
}

/// Everything read from the Hyper-V CPUID leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HypervInfo {
    /// Highest hypervisor leaf (0x40000000 EAX).
    pub max_leaf: u32,
    /// Vendor string (EBX, ECX, EDX of 0x40000000), e.g. "Microsoft Hv"; informational only.
    pub vendor: [u8; 12],
    /// Version leaf.
    pub version: HvVersion,
    /// Privileges, low half.
    pub privileges_low: PrivilegesLow,
    /// Privileges, high half.
    pub privileges_high: PrivilegesHigh,
    /// Features.
    pub features: Features,
    /// Recommendations (zero when the leaf is above `max_leaf`).
    pub recommendations: Recommendations,
}

impl HypervInfo {
    /// Whether the vendor string is "Microsoft Hv" (not required: QEMU can change it).
    pub fn is_microsoft_vendor(&self) -> bool {
        &self.vendor == b"Microsoft Hv"
    }
}

/// Why Hyper-V, or what VMBus needs from it, is not available. These are hard errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuidError {
    /// CPUID.1:ECX bit 31 is clear: no hypervisor.
    NoHypervisor,
    /// The highest hypervisor leaf is too low to read the leaves needed; the value is that leaf.
    MaxLeafTooLow(u32),
    /// The interface signature is not "Hv#1" (another hypervisor); the value is EAX.
    NotHv1(u32),
    /// Privileges VMBus cannot work without (SynIC, hypercall, VP_INDEX MSRs) are missing.
    MissingPrivileges(PrivilegesLow),
}

impl fmt::Display for CpuidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHypervisor => f.write_str("no hypervisor (CPUID.1:ECX bit 31 clear)"),
            Self::MaxLeafTooLow(max) => {
                write!(f, "highest hypervisor leaf 0x{max:08x} is below 0x40000003")
            }
            Self::NotHv1(sig) => {
                write!(
                    f,
                    "hypervisor interface 0x{sig:08x} is not Hv#1 (0x31237648)"
                )
            }
            Self::MissingPrivileges(m) => {
                f.write_str("hypervisor lacks privileges VMBus needs:")?;
                if m.contains(PrivilegesLow::SYNIC_MSRS) {
                    f.write_str(" SynIC MSRs (bit 2)")?;
                }
                if m.contains(PrivilegesLow::HYPERCALL_MSRS) {
                    f.write_str(" hypercall MSRs (bit 5)")?;
                }
                if m.contains(PrivilegesLow::VP_INDEX) {
                    f.write_str(" VP_INDEX MSR (bit 6)")?;
                }
                Ok(())
            }
        }
    }
}

/// Reads the Hyper-V leaves. Fails only if there is no Hyper-V interface to read; privileges are
/// judged by [`check_vmbus`].
pub fn detect(mut cpuid: impl FnMut(u32, u32) -> [u32; 4]) -> Result<HypervInfo, CpuidError> {
    if cpuid(LEAF_FEATURES, 0)[2] & HYPERVISOR_PRESENT == 0 {
        return Err(CpuidError::NoHypervisor);
    }
    let [max_leaf, b, c, d] = cpuid(LEAF_VENDOR, 0);
    if max_leaf < LEAF_INTERFACE {
        return Err(CpuidError::MaxLeafTooLow(max_leaf));
    }
    // The signature must match before any other Hyper-V leaf means anything.
    let signature = cpuid(LEAF_INTERFACE, 0)[0];
    if signature != HV1_SIGNATURE {
        return Err(CpuidError::NotHv1(signature));
    }
    if max_leaf < LEAF_FEATURES_HV {
        return Err(CpuidError::MaxLeafTooLow(max_leaf));
    }
    let mut vendor = [0u8; 12];
    vendor[0..4].copy_from_slice(&b.to_le_bytes());
    vendor[4..8].copy_from_slice(&c.to_le_bytes());
    vendor[8..12].copy_from_slice(&d.to_le_bytes());
    let [va, vb, vc, vd] = cpuid(LEAF_VERSION, 0);
    let version = HvVersion {
        build: va,
        major: (vb >> 16) as u16,
        minor: vb as u16,
        service_pack: vc,
        service_branch: (vd >> 24) as u8,
        service_number: vd & 0x00FF_FFFF,
    };
    let [pa, pb, _, pd] = cpuid(LEAF_FEATURES_HV, 0);
    let recommendations = if max_leaf >= LEAF_RECOMMENDATIONS {
        Recommendations(cpuid(LEAF_RECOMMENDATIONS, 0)[0])
    } else {
        Recommendations(0)
    };
    Ok(HypervInfo {
        max_leaf,
        vendor,
        version,
        privileges_low: PrivilegesLow(pa),
        privileges_high: PrivilegesHigh(pb),
        features: Features(pd),
        recommendations,
    })
}

/// Conditions that let VMBus run but deserve a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuidWarnings {
    /// EBX bit 4 (PostMessages) is clear: old QEMU does not advertise it although the hypercall
    /// works.
    pub post_messages_not_advertised: bool,
    /// EBX bit 5 (SignalEvents) is clear, likewise.
    pub signal_events_not_advertised: bool,
    /// The highest leaf is below 0x40000005, which Linux refuses.
    pub max_leaf_below_linux_minimum: bool,
}

impl CpuidWarnings {
    /// Whether there is nothing to warn about.
    pub const fn is_empty(&self) -> bool {
        !self.post_messages_not_advertised
            && !self.signal_events_not_advertised
            && !self.max_leaf_below_linux_minimum
    }
}

/// What VMBus may rely on, after the hard checks passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmbusSupport {
    /// The leaves read.
    pub info: HypervInfo,
    /// Soft problems.
    pub warnings: CpuidWarnings,
    /// Whether to set AutoEOI in SINT2: Linux sets it unless AutoEOI is deprecated.
    pub use_auto_eoi: bool,
}

/// The MSR privileges VMBus cannot work without.
pub const VMBUS_REQUIRED_PRIVILEGES: PrivilegesLow = PrivilegesLow(
    PrivilegesLow::SYNIC_MSRS.0 | PrivilegesLow::HYPERCALL_MSRS.0 | PrivilegesLow::VP_INDEX.0,
);

/// Detects Hyper-V and checks what VMBus needs: hard errors for no hypervisor, not "Hv#1", or
/// missing SynIC / hypercall / VP_INDEX MSR privileges; warnings for unadvertised PostMessages or
/// SignalEvents (old QEMU) and a low highest leaf.
pub fn check_vmbus(cpuid: impl FnMut(u32, u32) -> [u32; 4]) -> Result<VmbusSupport, CpuidError> {
    let info = detect(cpuid)?;
    let missing = info.privileges_low.missing(VMBUS_REQUIRED_PRIVILEGES);
    if !missing.is_empty() {
        return Err(CpuidError::MissingPrivileges(missing));
    }
    let warnings = CpuidWarnings {
        post_messages_not_advertised: !info.privileges_high.contains(PrivilegesHigh::POST_MESSAGES),
        signal_events_not_advertised: !info.privileges_high.contains(PrivilegesHigh::SIGNAL_EVENTS),
        max_leaf_below_linux_minimum: info.max_leaf < LINUX_MIN_MAX_LEAF,
    };
    let use_auto_eoi = !info
        .recommendations
        .contains(Recommendations::AUTO_EOI_DEPRECATED);
    Ok(VmbusSupport {
        info,
        warnings,
        use_auto_eoi,
    })
}
