//! Hypercall wire formats: control word, result value, status codes, and the inputs of
//! HvCallPostMessage and HvCallSignalEvent (docs/protocol.md#hypercalls).
//!
//! Both directions are here: the guest encodes, and the simulated host decodes and validates guest
//! input with the same types, so every decoder treats its input as untrusted.

use core::fmt;

use super::synic::{HvMessageType, MAX_PAYLOAD};
use crate::ids::ConnectionId;

/// Call code of HvCallPostMessage (simple call, 256-byte input block, no output).
pub const HVCALL_POST_MESSAGE: u16 = 0x005C;
/// Call code of HvCallSignalEvent (simple call, normally issued in the fast form).
pub const HVCALL_SIGNAL_EVENT: u16 = 0x005D;

/// Bits of a connection id that carry meaning; bits 31:24 are reserved.
pub const CONNECTION_ID_MASK: u32 = 0x00FF_FFFF;

// Control word (RCX) field positions, docs/protocol.md#hypercalls.
const CTL_FAST: u64 = 1 << 16;
const CTL_VARHEAD_SHIFT: u32 = 17;
const CTL_VARHEAD_MAX: u16 = 0x3FF; // 10 bits, 26:17
const CTL_NESTED: u64 = 1 << 31;
const CTL_REP_COUNT_SHIFT: u32 = 32;
const CTL_REP_START_SHIFT: u32 = 48;
const CTL_REP_MAX: u16 = 0xFFF; // 12 bits each
/// Reserved control-word bits: 30:27, 47:44, 63:60.
const CTL_RESERVED: u64 = (0xF << 27) | (0xF << 44) | (0xF << 60);

/// A hypercall status code (bits 15:0 of the result value). Open: any code is representable, and
/// the named constants are those of docs/protocol.md#hypercalls.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HvStatus(pub u16);

impl HvStatus {
    /// The call succeeded.
    pub const SUCCESS: Self = Self(0x0000);
    /// Unknown call code, or (QEMU) PostMessage issued as a fast call.
    pub const INVALID_HYPERCALL_CODE: Self = Self(0x0002);
    /// Reserved bits set, rep count on a simple call, or input the host rejects as malformed.
    pub const INVALID_HYPERCALL_INPUT: Self = Self(0x0003);
    /// Input block not 8-byte aligned or crossing a page.
    pub const INVALID_ALIGNMENT: Self = Self(0x0004);
    /// PostMessage: message type 0 or bit 31 set, or payload over 240 bytes (TLFS).
    pub const INVALID_PARAMETER: Self = Self(0x0005);
    /// The partition lacks the PostMessages or SignalEvents privilege.
    pub const ACCESS_DENIED: Self = Self(0x0006);
    /// Transient lack of memory in the hypervisor; retry.
    pub const INSUFFICIENT_MEMORY: Self = Self(0x000B);
    /// A virtual processor index is out of range.
    pub const INVALID_VP_INDEX: Self = Self(0x000E);
    /// SignalEvent: port gone; KVM: unknown connection id or non-zero flag number.
    pub const INVALID_PORT_ID: Self = Self(0x0011);
    /// Unknown connection; on INITIATE_CONTACT with id 4 it means "host predates protocol 5.0".
    pub const INVALID_CONNECTION_ID: Self = Self(0x0012);
    /// The host's message queue is full; retry with back-off.
    pub const INSUFFICIENT_BUFFERS: Self = Self(0x0013);
    /// The message was not acknowledged.
    pub const NOT_ACKNOWLEDGED: Self = Self(0x0014);
    /// The virtual processor is in a state that does not allow the call.
    pub const INVALID_VP_STATE: Self = Self(0x0015);
    /// Target SynIC, SIM or SIEF disabled, or the SINT is masked.
    pub const INVALID_SYNIC_STATE: Self = Self(0x0018);
    /// No data is available.
    pub const NO_DATA: Self = Self(0x001B);
    /// The hypervisor has no resources for the call.
    pub const NO_RESOURCES: Self = Self(0x001D);

    /// Whether the call succeeded.
    pub const fn is_success(self) -> bool {
        self.0 == Self::SUCCESS.0
    }

    /// Whether the failure is transient and the same call should be retried after a back-off
    /// (INSUFFICIENT_MEMORY and INSUFFICIENT_BUFFERS, as Linux's post-message loop does).
    ///
    /// Linux also retries INVALID_CONNECTION_ID except on INITIATE_CONTACT; that depends on the
    /// message being sent, so the caller decides it.
    pub const fn is_transient_retry(self) -> bool {
        self.0 == Self::INSUFFICIENT_MEMORY.0 || self.0 == Self::INSUFFICIENT_BUFFERS.0
    }

    /// The TLFS name of a known status code, `None` for any other value.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0000 => "HV_STATUS_SUCCESS",
            0x0002 => "HV_STATUS_INVALID_HYPERCALL_CODE",
            0x0003 => "HV_STATUS_INVALID_HYPERCALL_INPUT",
            0x0004 => "HV_STATUS_INVALID_ALIGNMENT",
            0x0005 => "HV_STATUS_INVALID_PARAMETER",
            0x0006 => "HV_STATUS_ACCESS_DENIED",
            0x000B => "HV_STATUS_INSUFFICIENT_MEMORY",
            0x000E => "HV_STATUS_INVALID_VP_INDEX",
            0x0011 => "HV_STATUS_INVALID_PORT_ID",
            0x0012 => "HV_STATUS_INVALID_CONNECTION_ID",
            0x0013 => "HV_STATUS_INSUFFICIENT_BUFFERS",
            0x0014 => "HV_STATUS_NOT_ACKNOWLEDGED",
            0x0015 => "HV_STATUS_INVALID_VP_STATE",
            0x0018 => "HV_STATUS_INVALID_SYNIC_STATE",
            0x001B => "HV_STATUS_NO_DATA",
            0x001D => "HV_STATUS_NO_RESOURCES",
            _ => return None,
        })
    }
}

impl fmt::Debug for HvStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for HvStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:04x})", self.0),
            None => write!(f, "unknown hypercall status 0x{:04x}", self.0),
        }
    }
}

/// Why a control word could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlError {
    /// The variable header size does not fit its 10 bits.
    VariableHeaderTooLarge(u16),
    /// The rep count does not fit its 12 bits.
    RepCountTooLarge(u16),
    /// The rep start index does not fit its 12 bits.
    RepStartTooLarge(u16),
    /// A decoded word had reserved bits (30:27, 47:44, 63:60) set; the value holds those bits.
    ReservedBitsSet(u64),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VariableHeaderTooLarge(v) => {
                write!(f, "variable header size {v} does not fit 10 bits")
            }
            Self::RepCountTooLarge(v) => write!(f, "rep count {v} does not fit 12 bits"),
            Self::RepStartTooLarge(v) => write!(f, "rep start index {v} does not fit 12 bits"),
            Self::ReservedBitsSet(bits) => {
                write!(f, "reserved control-word bits set: 0x{bits:016x}")
            }
        }
    }
}

impl ControlError {
    /// The status a hypervisor answers to a guest that issued this control word.
    pub const fn status(self) -> HvStatus {
        HvStatus::INVALID_HYPERCALL_INPUT
    }
}

/// The hypercall input value (RCX): which call, and how its input is passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HypercallControl {
    /// Call code (bits 15:0).
    pub code: u16,
    /// Register-based ("fast") input (bit 16).
    pub fast: bool,
    /// Variable header size in 8-byte units (bits 26:17, 10 bits).
    pub variable_header_size: u16,
    /// Send to the L0 hypervisor when nested (bit 31).
    pub nested: bool,
    /// Rep count (bits 43:32, 12 bits); 0 for simple calls.
    pub rep_count: u16,
    /// Rep start index (bits 59:48, 12 bits).
    pub rep_start: u16,
}

impl HypercallControl {
    /// A simple, memory-based call with no reps and no variable header.
    pub const fn simple(code: u16) -> Self {
        Self {
            code,
            fast: false,
            variable_header_size: 0,
            nested: false,
            rep_count: 0,
            rep_start: 0,
        }
    }

    /// A simple call with register-based input.
    pub const fn fast(code: u16) -> Self {
        Self {
            fast: true,
            ..Self::simple(code)
        }
    }

    /// Encodes the control word, refusing fields wider than their bit ranges.
    pub const fn encode(&self) -> Result<u64, ControlError> {
        if self.variable_header_size > CTL_VARHEAD_MAX {
            return Err(ControlError::VariableHeaderTooLarge(
                self.variable_header_size,
            ));
        }
        if self.rep_count > CTL_REP_MAX {
            return Err(ControlError::RepCountTooLarge(self.rep_count));
        }
        if self.rep_start > CTL_REP_MAX {
            return Err(ControlError::RepStartTooLarge(self.rep_start));
        }
        let mut word = self.code as u64;
        if self.fast {
            word |= CTL_FAST;
        }
        word |= (self.variable_header_size as u64) << CTL_VARHEAD_SHIFT;
        if self.nested {
            word |= CTL_NESTED;
        }
        word |= (self.rep_count as u64) << CTL_REP_COUNT_SHIFT;
        word |= (self.rep_start as u64) << CTL_REP_START_SHIFT;
        Ok(word)
    }

    /// Decodes a control word as a hypervisor would, rejecting reserved bits.
    pub const fn decode(word: u64) -> Result<Self, ControlError> {
        let reserved = word & CTL_RESERVED;
        if reserved != 0 {
            return Err(ControlError::ReservedBitsSet(reserved));
        }
        Ok(Self {
            code: word as u16,
            fast: word & CTL_FAST != 0,
            variable_header_size: ((word >> CTL_VARHEAD_SHIFT) as u16) & CTL_VARHEAD_MAX,
            nested: word & CTL_NESTED != 0,
            rep_count: ((word >> CTL_REP_COUNT_SHIFT) as u16) & CTL_REP_MAX,
            rep_start: ((word >> CTL_REP_START_SHIFT) as u16) & CTL_REP_MAX,
        })
    }
}

/// The hypercall result value (RAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HypercallResult {
    /// Status (bits 15:0).
    pub status: HvStatus,
    /// Reps completed (bits 43:32, 12 bits).
    pub reps_completed: u16,
}

impl HypercallResult {
    /// Decodes RAX; reserved bits are ignored because the guest must not depend on them.
    pub const fn decode(rax: u64) -> Self {
        Self {
            status: HvStatus(rax as u16),
            reps_completed: ((rax >> 32) as u16) & CTL_REP_MAX,
        }
    }

    /// Encodes the result value (used by the simulated host). Reps completed above 12 bits are
    /// truncated to the field width.
    pub const fn encode(&self) -> u64 {
        self.status.0 as u64 | (((self.reps_completed & CTL_REP_MAX) as u64) << 32)
    }
}

/// Why a PostMessage input block is invalid. Each maps to the status a hypervisor returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostMessageError {
    /// The payload size is over 240 bytes.
    PayloadTooLarge(u32),
    /// The message type is 0 (NONE) or has bit 31 set (reserved for the hypervisor).
    InvalidMessageType(HvMessageType),
    /// The connection id has bits 31:24 set.
    ConnectionIdReservedBits(u32),
    /// The reserved field at offset 4 is not zero.
    ReservedNonZero(u32),
    /// The input is shorter than the header plus the stated payload; the value is its length.
    Truncated(usize),
}

impl fmt::Display for PostMessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge(n) => write!(f, "PostMessage payload of {n} bytes exceeds 240"),
            Self::InvalidMessageType(t) => {
                write!(f, "PostMessage message type {t} is 0 or has bit 31 set")
            }
            Self::ConnectionIdReservedBits(id) => {
                write!(f, "PostMessage connection id 0x{id:08x} has bits 31:24 set")
            }
            Self::ReservedNonZero(v) => {
                write!(f, "PostMessage reserved field is 0x{v:08x}, must be 0")
            }
            Self::Truncated(len) => write!(f, "PostMessage input truncated to {len} bytes"),
        }
    }
}

impl PostMessageError {
    /// The status a hypervisor returns for this input (TLFS: INVALID_PARAMETER for the type and
    /// size checks; reserved bits are INVALID_HYPERCALL_INPUT).
    pub const fn status(self) -> HvStatus {
        match self {
            Self::PayloadTooLarge(_) | Self::InvalidMessageType(_) => HvStatus::INVALID_PARAMETER,
            Self::ConnectionIdReservedBits(_) | Self::ReservedNonZero(_) | Self::Truncated(_) => {
                HvStatus::INVALID_HYPERCALL_INPUT
            }
        }
    }
}

/// Size of the HvCallPostMessage input block.
pub const POST_MESSAGE_INPUT_SIZE: usize = 256;
const POST_HEADER: usize = 16;

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(b)
}

/// The input block of HvCallPostMessage (docs/protocol.md#hvcallpostmessage), validated on
/// construction and on decode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PostMessageInput {
    connection: ConnectionId,
    message_type: HvMessageType,
    payload_size: u8,
    payload: [u8; MAX_PAYLOAD],
}

impl fmt::Debug for PostMessageInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostMessageInput")
            .field("connection", &self.connection)
            .field("message_type", &self.message_type)
            .field("payload", &self.payload())
            .finish()
    }
}

impl PostMessageInput {
    /// Builds an input block, checking the connection id, the message type and the payload size.
    pub fn new(
        connection: ConnectionId,
        message_type: HvMessageType,
        payload: &[u8],
    ) -> Result<Self, PostMessageError> {
        if !connection.is_valid() {
            return Err(PostMessageError::ConnectionIdReservedBits(connection.0));
        }
        if !message_type.is_guest_postable() {
            return Err(PostMessageError::InvalidMessageType(message_type));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(PostMessageError::PayloadTooLarge(
                u32::try_from(payload.len()).unwrap_or(u32::MAX),
            ));
        }
        let mut buf = [0u8; MAX_PAYLOAD];
        buf[..payload.len()].copy_from_slice(payload);
        Ok(Self {
            connection,
            message_type,
            // Fits: checked against MAX_PAYLOAD (240) above.
            payload_size: payload.len() as u8,
            payload: buf,
        })
    }

    /// The target connection.
    pub const fn connection(&self) -> ConnectionId {
        self.connection
    }

    /// The message type (1 for VMBus).
    pub const fn message_type(&self) -> HvMessageType {
        self.message_type
    }

    /// The payload bytes that are sent.
    pub fn payload(&self) -> &[u8] {
        &self.payload[..usize::from(self.payload_size)]
    }

    /// Encodes the 256-byte block; bytes past the payload are zero.
    pub fn encode(&self) -> [u8; POST_MESSAGE_INPUT_SIZE] {
        let mut out = [0u8; POST_MESSAGE_INPUT_SIZE];
        out[0..4].copy_from_slice(&self.connection.0.to_le_bytes());
        // Offset 4..8 reserved, left zero.
        out[8..12].copy_from_slice(&self.message_type.0.to_le_bytes());
        out[12..16].copy_from_slice(&u32::from(self.payload_size).to_le_bytes());
        out[POST_HEADER..POST_HEADER + usize::from(self.payload_size)]
            .copy_from_slice(self.payload());
        out
    }

    /// Decodes and validates an input block read from guest memory. Only the header and the
    /// stated payload must be present; bytes after the payload are not looked at.
    pub fn decode(bytes: &[u8]) -> Result<Self, PostMessageError> {
        if bytes.len() < POST_HEADER {
            return Err(PostMessageError::Truncated(bytes.len()));
        }
        let connection = read_u32(bytes, 0);
        let reserved = read_u32(bytes, 4);
        let message_type = HvMessageType(read_u32(bytes, 8));
        let payload_size = read_u32(bytes, 12);
        if !ConnectionId(connection).is_valid() {
            return Err(PostMessageError::ConnectionIdReservedBits(connection));
        }
        if reserved != 0 {
            return Err(PostMessageError::ReservedNonZero(reserved));
        }
        if !message_type.is_guest_postable() {
            return Err(PostMessageError::InvalidMessageType(message_type));
        }
        if payload_size > MAX_PAYLOAD as u32 {
            return Err(PostMessageError::PayloadTooLarge(payload_size));
        }
        let end = POST_HEADER + payload_size as usize;
        let payload = bytes
            .get(POST_HEADER..end)
            .ok_or(PostMessageError::Truncated(bytes.len()))?;
        Self::new(ConnectionId(connection), message_type, payload)
    }
}

/// Why a SignalEvent input is invalid, checked as KVM and QEMU do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalEventError {
    /// The connection id has bits 31:24 set.
    ConnectionIdReservedBits(u32),
    /// The reserved bytes 6..8 (bits 63:48 of the fast-call RDX) are not zero.
    ReservedNonZero(u16),
    /// A non-zero flag number; KVM and QEMU support only flag 0 (VMBus always uses 0).
    NonZeroFlagNumber(u16),
    /// The control word is not a fast HvCallSignalEvent; the value is the raw RCX.
    WrongControl(u64),
}

impl fmt::Display for SignalEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectionIdReservedBits(id) => {
                write!(f, "SignalEvent connection id 0x{id:08x} has bits 31:24 set")
            }
            Self::ReservedNonZero(v) => {
                write!(f, "SignalEvent reserved field is 0x{v:04x}, must be 0")
            }
            Self::NonZeroFlagNumber(n) => {
                write!(f, "SignalEvent flag number {n} is not 0")
            }
            Self::WrongControl(rcx) => {
                write!(
                    f,
                    "control word 0x{rcx:016x} is not a fast HvCallSignalEvent"
                )
            }
        }
    }
}

impl SignalEventError {
    /// The status KVM answers: INVALID_PORT_ID for a non-zero flag number, INVALID_HYPERCALL_INPUT
    /// for reserved bits or a malformed control word.
    pub const fn status(self) -> HvStatus {
        match self {
            Self::NonZeroFlagNumber(_) => HvStatus::INVALID_PORT_ID,
            Self::ConnectionIdReservedBits(_)
            | Self::ReservedNonZero(_)
            | Self::WrongControl(_) => HvStatus::INVALID_HYPERCALL_INPUT,
        }
    }
}

/// Size of the HvCallSignalEvent input.
pub const SIGNAL_EVENT_INPUT_SIZE: usize = 8;

/// The register values of a fast hypercall with up to 16 bytes of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastRegisters {
    /// Control word.
    pub rcx: u64,
    /// First 8 bytes of input.
    pub rdx: u64,
    /// Second 8 bytes of input (unused by SignalEvent, passed as 0).
    pub r8: u64,
}

/// The input of HvCallSignalEvent (docs/protocol.md#hvcallsignalevent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalEventInput {
    connection: ConnectionId,
    flag_number: u16,
}

impl SignalEventInput {
    /// Builds the input. Any flag number is representable (the TLFS allows one relative to the
    /// port's base flag), but KVM and QEMU reject non-zero ones and VMBus always uses 0.
    pub const fn new(connection: ConnectionId, flag_number: u16) -> Result<Self, SignalEventError> {
        if !connection.is_valid() {
            return Err(SignalEventError::ConnectionIdReservedBits(connection.0));
        }
        Ok(Self {
            connection,
            flag_number,
        })
    }

    /// The target connection.
    pub const fn connection(&self) -> ConnectionId {
        self.connection
    }

    /// The flag number relative to the port's base flag.
    pub const fn flag_number(&self) -> u16 {
        self.flag_number
    }

    /// Encodes the 8-byte memory form.
    pub const fn encode(&self) -> [u8; SIGNAL_EVENT_INPUT_SIZE] {
        self.fast_rdx().to_le_bytes()
    }

    /// The first input register of the fast form: `connection | flag_number << 32`.
    pub const fn fast_rdx(&self) -> u64 {
        self.connection.0 as u64 | ((self.flag_number as u64) << 32)
    }

    /// The registers of the fast call: RCX = 0x1005D, RDX = input, R8 = 0.
    pub const fn fast_registers(&self) -> FastRegisters {
        let rcx = HVCALL_SIGNAL_EVENT as u64 | CTL_FAST;
        FastRegisters {
            rcx,
            rdx: self.fast_rdx(),
            r8: 0,
        }
    }

    /// Decodes the 8-byte memory form, validating as KVM does.
    pub const fn decode(bytes: &[u8; SIGNAL_EVENT_INPUT_SIZE]) -> Result<Self, SignalEventError> {
        Self::from_fast_rdx(u64::from_le_bytes(*bytes))
    }

    /// Decodes the fast-form RDX, validating as KVM does: the flag number (bits 47:32) must be 0,
    /// then bits 63:48 and 31:24 must be 0.
    pub const fn from_fast_rdx(rdx: u64) -> Result<Self, SignalEventError> {
        // KVM checks the flag number first, so a value with both faults reports INVALID_PORT_ID.
        let flag_number = (rdx >> 32) as u16;
        if flag_number != 0 {
            return Err(SignalEventError::NonZeroFlagNumber(flag_number));
        }
        let reserved = (rdx >> 48) as u16;
        if reserved != 0 {
            return Err(SignalEventError::ReservedNonZero(reserved));
        }
        Self::new(ConnectionId(rdx as u32), flag_number)
    }

    /// Decodes a complete fast call: RCX must be a fast, simple HvCallSignalEvent.
    pub const fn from_fast_registers(regs: FastRegisters) -> Result<Self, SignalEventError> {
        match HypercallControl::decode(regs.rcx) {
            Ok(HypercallControl {
                code: HVCALL_SIGNAL_EVENT,
                fast: true,
                variable_header_size: 0,
                rep_count: 0,
                ..
            }) => Self::from_fast_rdx(regs.rdx),
            _ => Err(SignalEventError::WrongControl(regs.rcx)),
        }
    }
}
