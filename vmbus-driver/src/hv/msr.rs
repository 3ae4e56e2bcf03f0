//! Synthetic MSR numbers and typed field layouts (docs/protocol.md#synthetic-msrs).
//!
//! Every layout type wraps the raw 64-bit value and changes only its own fields, so a
//! read-modify-write keeps the reserved bits the hypervisor returned, as the TLFS requires.

use core::fmt;

use crate::ids::VpIndex;

/// HV_X64_MSR_GUEST_OS_ID: guest OS identity, partition-wide.
pub const GUEST_OS_ID: u32 = 0x4000_0000;
/// HV_X64_MSR_HYPERCALL: hypercall page enable and GPA, partition-wide.
pub const HYPERCALL: u32 = 0x4000_0001;
/// HV_X64_MSR_VP_INDEX: this VP's index, read-only.
pub const VP_INDEX: u32 = 0x4000_0002;
/// HV_X64_MSR_RESET: partition reset.
pub const RESET: u32 = 0x4000_0003;
/// HV_X64_MSR_VP_RUNTIME: this VP's run time.
pub const VP_RUNTIME: u32 = 0x4000_0010;
/// HV_X64_MSR_TIME_REF_COUNT: partition reference counter.
pub const TIME_REF_COUNT: u32 = 0x4000_0020;
/// HV_X64_MSR_REFERENCE_TSC: reference TSC page.
pub const REFERENCE_TSC: u32 = 0x4000_0021;
/// HV_X64_MSR_VP_ASSIST_PAGE: VP assist page.
pub const VP_ASSIST_PAGE: u32 = 0x4000_0073;
/// HV_X64_MSR_SCONTROL: SynIC enable.
pub const SCONTROL: u32 = 0x4000_0080;
/// HV_X64_MSR_SVERSION: SynIC version, read-only (expected 1).
pub const SVERSION: u32 = 0x4000_0081;
/// HV_X64_MSR_SIEFP: event flags page.
pub const SIEFP: u32 = 0x4000_0082;
/// HV_X64_MSR_SIMP: message page.
pub const SIMP: u32 = 0x4000_0083;
/// HV_X64_MSR_EOM: end of message, write-only.
pub const EOM: u32 = 0x4000_0084;
/// HV_X64_MSR_SIRBP (one source only, see
/// docs/protocol.md#weakly-confirmed-facts-and-disagreements).
pub const SIRBP: u32 = 0x4000_0085;
/// HV_X64_MSR_SINT0; SINTn is `SINT0 + n`.
pub const SINT0: u32 = 0x4000_0090;
/// HV_X64_MSR_SINT15, the last SINT.
pub const SINT15: u32 = 0x4000_009F;
/// HV_X64_MSR_SINT2, the SINT that VMBus uses.
pub const VMBUS_SINT_MSR: u32 = SINT0 + super::synic::VMBUS_SINT as u32;
/// HV_X64_MSR_STIMER0_CONFIG; timer n has CONFIG at `+2n` and COUNT at `+2n+1`.
pub const STIMER0_CONFIG: u32 = 0x4000_00B0;
/// HV_X64_MSR_STIMER3_COUNT, the last synthetic timer MSR.
pub const STIMER3_COUNT: u32 = 0x4000_00B7;
/// HV_X64_MSR_CRASH_P0; P0..P4 are consecutive.
pub const CRASH_P0: u32 = 0x4000_0100;
/// HV_X64_MSR_CRASH_P4.
pub const CRASH_P4: u32 = 0x4000_0104;
/// HV_X64_MSR_CRASH_CTL.
pub const CRASH_CTL: u32 = 0x4000_0105;

/// The value written to EOM; the hypervisor ignores it (Linux writes 0).
pub const EOM_VALUE: u64 = 0;

/// The MSR number of SINT `n`, or `None` for `n >= 16`.
pub const fn sint_msr(n: u8) -> Option<u32> {
    if n < super::synic::SINT_COUNT {
        Some(SINT0 + n as u32)
    } else {
        None
    }
}

/// The CONFIG MSR of synthetic timer `n`, or `None` for `n >= 4`.
pub const fn stimer_config_msr(n: u8) -> Option<u32> {
    if n < 4 {
        Some(STIMER0_CONFIG + 2 * n as u32)
    } else {
        None
    }
}

/// The COUNT MSR of synthetic timer `n`, or `None` for `n >= 4`.
pub const fn stimer_count_msr(n: u8) -> Option<u32> {
    if n < 4 {
        Some(STIMER0_CONFIG + 2 * n as u32 + 1)
    } else {
        None
    }
}

/// The CRASH_Pn MSR, or `None` for `n >= 5`.
pub const fn crash_param_msr(n: u8) -> Option<u32> {
    if n < 5 {
        Some(CRASH_P0 + n as u32)
    } else {
        None
    }
}

/// Why an MSR field value cannot be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrError {
    /// A SINT vector below 16 (the hypervisor answers #GP).
    VectorOutOfRange(u8),
    /// A page number does not fit bits 63:12.
    PageNumberTooLarge(u64),
    /// An open-source OS type does not fit its 7 bits.
    OsTypeTooLarge(u8),
    /// The VP_INDEX MSR returned a value above 32 bits.
    VpIndexTooLarge(u64),
}

impl fmt::Display for MsrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VectorOutOfRange(v) => write!(f, "SINT vector {v} is below 16"),
            Self::PageNumberTooLarge(p) => write!(f, "page number 0x{p:x} does not fit 52 bits"),
            Self::OsTypeTooLarge(t) => write!(f, "guest OS type {t} does not fit 7 bits"),
            Self::VpIndexTooLarge(v) => write!(f, "VP_INDEX value 0x{v:x} exceeds 32 bits"),
        }
    }
}

const fn set_bit(raw: u64, bit: u32, on: bool) -> u64 {
    if on {
        raw | (1 << bit)
    } else {
        raw & !(1 << bit)
    }
}

/// Largest page number that fits bits 63:12.
pub const MAX_PAGE_NUMBER: u64 = (1 << 52) - 1;
const PAGE_SHIFT: u32 = 12;

const fn with_page(raw: u64, pfn: u64) -> Result<u64, MsrError> {
    if pfn > MAX_PAGE_NUMBER {
        return Err(MsrError::PageNumberTooLarge(pfn));
    }
    Ok((raw & 0xFFF) | (pfn << PAGE_SHIFT))
}

/// GUEST_OS_ID open-source OS type: undefined.
pub const OS_TYPE_UNDEFINED: u8 = 0;
/// GUEST_OS_ID open-source OS type: Linux.
pub const OS_TYPE_LINUX: u8 = 1;
/// GUEST_OS_ID open-source OS type: FreeBSD.
pub const OS_TYPE_FREEBSD: u8 = 2;
/// GUEST_OS_ID open-source OS type: Xen.
pub const OS_TYPE_XEN: u8 = 3;
/// GUEST_OS_ID open-source OS type: illumos.
pub const OS_TYPE_ILLUMOS: u8 = 4;

/// The GUEST_OS_ID value. The hypervisor does not interpret it, but it must be non-zero before the
/// hypercall page is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestOsId(pub u64);

impl GuestOsId {
    const OPEN_SOURCE: u64 = 1 << 63;

    /// Builds the open-source encoding: bit 63 set, OS type in 62:56, OS id in 55:48, version in
    /// 47:16, build in 15:0.
    pub const fn open_source(
        os_type: u8,
        os_id: u8,
        version: u32,
        build: u16,
    ) -> Result<Self, MsrError> {
        if os_type > 0x7F {
            return Err(MsrError::OsTypeTooLarge(os_type));
        }
        Ok(Self(
            Self::OPEN_SOURCE
                | ((os_type as u64) << 56)
                | ((os_id as u64) << 48)
                | ((version as u64) << 16)
                | build as u64,
        ))
    }

    /// The raw MSR value.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Whether bit 63 (open-source encoding) is set.
    pub const fn is_open_source(self) -> bool {
        self.0 & Self::OPEN_SOURCE != 0
    }

    /// Open-source OS type (bits 62:56).
    pub const fn os_type(self) -> u8 {
        ((self.0 >> 56) & 0x7F) as u8
    }

    /// Open-source OS id (bits 55:48).
    pub const fn os_id(self) -> u8 {
        (self.0 >> 48) as u8
    }

    /// Open-source OS version (bits 47:16).
    pub const fn version(self) -> u32 {
        (self.0 >> 16) as u32
    }

    /// Build number (bits 15:0, both encodings).
    pub const fn build(self) -> u16 {
        self.0 as u16
    }
}

/// The fields every page-overlay MSR has: enable (bit 0) and the page number (bits 63:12).
macro_rules! page_overlay_msr {
    ($t:ty, $page:literal) => {
        impl $t {
            #[doc = concat!("Whether the ", $page, " is enabled.")]
            pub const fn enabled(self) -> bool {
                self.0 & 1 != 0
            }

            /// Sets or clears enable, keeping every other bit.
            pub const fn with_enabled(self, on: bool) -> Self {
                Self(set_bit(self.0, 0, on))
            }

            #[doc = concat!("Guest physical page number of the ", $page, ".")]
            pub const fn page_number(self) -> u64 {
                self.0 >> PAGE_SHIFT
            }

            /// Replaces the page number, keeping bits 11:0.
            pub const fn with_page_number(self, pfn: u64) -> Result<Self, MsrError> {
                match with_page(self.0, pfn) {
                    Ok(raw) => Ok(Self(raw)),
                    Err(e) => Err(e),
                }
            }
        }
    };
}

/// The HYPERCALL MSR: enable (bit 0), locked (bit 1, newer TLFS), page number (63:12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HypercallMsr(pub u64);

page_overlay_msr!(HypercallMsr, "hypercall page");

impl HypercallMsr {
    /// Whether the MSR is locked (write-once lock).
    pub const fn locked(self) -> bool {
        self.0 & 2 != 0
    }

    /// Sets or clears the lock bit, keeping every other bit.
    pub const fn with_locked(self, on: bool) -> Self {
        Self(set_bit(self.0, 1, on))
    }
}

/// The SCONTROL MSR: SynIC enable (bit 0); bits 63:1 reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scontrol(pub u64);

impl Scontrol {
    /// Whether the SynIC is enabled.
    pub const fn enabled(self) -> bool {
        self.0 & 1 != 0
    }

    /// Sets or clears enable, keeping the reserved bits.
    pub const fn with_enabled(self, on: bool) -> Self {
        Self(set_bit(self.0, 0, on))
    }
}

/// The SIMP or SIEFP MSR (same format): enable (bit 0), page number (63:12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SynicPageMsr(pub u64);

page_overlay_msr!(SynicPageMsr, "SIM or SIEF page");

/// A SINTx MSR: vector (7:0), masked (16), AutoEOI (17), polling (18), AsIntercept (19),
/// proxy (20); other bits reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sint(pub u64);

impl Default for Sint {
    fn default() -> Self {
        Self::RESET
    }
}

impl Sint {
    /// The reset value: masked, vector 0.
    pub const RESET: Self = Self(0x0000_0000_0001_0000);
    /// Smallest vector the hypervisor accepts.
    pub const MIN_VECTOR: u8 = 16;

    const MASKED: u32 = 16;
    const AUTO_EOI: u32 = 17;
    const POLLING: u32 = 18;
    const AS_INTERCEPT: u32 = 19;
    const PROXY: u32 = 20;

    /// The interrupt vector.
    pub const fn vector(self) -> u8 {
        self.0 as u8
    }

    /// Replaces the vector, refusing vectors below 16 (a #GP on real hardware).
    pub const fn with_vector(self, vector: u8) -> Result<Self, MsrError> {
        if vector < Self::MIN_VECTOR {
            return Err(MsrError::VectorOutOfRange(vector));
        }
        Ok(Self((self.0 & !0xFF) | vector as u64))
    }

    /// Whether the SINT is masked.
    pub const fn masked(self) -> bool {
        self.0 & (1 << Self::MASKED) != 0
    }

    /// Sets or clears masked, keeping every other bit.
    pub const fn with_masked(self, on: bool) -> Self {
        Self(set_bit(self.0, Self::MASKED, on))
    }

    /// Whether the hypervisor performs the APIC EOI on delivery.
    pub const fn auto_eoi(self) -> bool {
        self.0 & (1 << Self::AUTO_EOI) != 0
    }

    /// Sets or clears AutoEOI, keeping every other bit.
    pub const fn with_auto_eoi(self, on: bool) -> Self {
        Self(set_bit(self.0, Self::AUTO_EOI, on))
    }

    /// Whether polling mode is set.
    pub const fn polling(self) -> bool {
        self.0 & (1 << Self::POLLING) != 0
    }

    /// Sets or clears polling, keeping every other bit.
    pub const fn with_polling(self, on: bool) -> Self {
        Self(set_bit(self.0, Self::POLLING, on))
    }

    /// Whether AsIntercept is set (reserved in OpenVMM).
    pub const fn as_intercept(self) -> bool {
        self.0 & (1 << Self::AS_INTERCEPT) != 0
    }

    /// Sets or clears AsIntercept, keeping every other bit.
    pub const fn with_as_intercept(self, on: bool) -> Self {
        Self(set_bit(self.0, Self::AS_INTERCEPT, on))
    }

    /// Whether proxy is set.
    pub const fn proxy(self) -> bool {
        self.0 & (1 << Self::PROXY) != 0
    }

    /// Sets or clears proxy, keeping every other bit.
    pub const fn with_proxy(self, on: bool) -> Self {
        Self(set_bit(self.0, Self::PROXY, on))
    }
}

/// Decodes the value read from VP_INDEX; an index above 32 bits is refused, not truncated.
pub const fn vp_index_from_msr(raw: u64) -> Result<VpIndex, MsrError> {
    if raw > u32::MAX as u64 {
        return Err(MsrError::VpIndexTooLarge(raw));
    }
    Ok(VpIndex(raw as u32))
}
