//! Per-channel messages: rescind, open/close, retarget, reserved channels and hv_sock connect
//! (docs/protocol.md#message-layouts).

use super::wire::{guid_at, put_guid, put_u16, put_u32, u16_at, u32_at};
use crate::guid::Guid;
use crate::ids::{ConnectionId, GpadlId, RelId, VpIndex};

/// A u32 wire field, plain or wrapped in an id newtype.
pub(crate) trait U32Field: Copy {
    fn from_u32(v: u32) -> Self;
    fn to_u32(self) -> u32;
}

impl U32Field for u32 {
    fn from_u32(v: u32) -> Self {
        v
    }
    fn to_u32(self) -> u32 {
        self
    }
}

macro_rules! u32_field_newtype {
    ($($t:ty),*) => {$(
        impl U32Field for $t {
            fn from_u32(v: u32) -> Self {
                Self(v)
            }
            fn to_u32(self) -> u32 {
                self.0
            }
        }
    )*};
}
u32_field_newtype!(RelId, GpadlId, VpIndex, ConnectionId);

/// Defines a message made only of u32 fields at fixed offsets after the header.
macro_rules! u32_message {
    ($(#[$doc:meta])* $name:ident, $size:literal, { $($(#[$fdoc:meta])* $field:ident: $ty:ty = $off:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty,)*
        }

        impl $name {
            pub(crate) const SIZE: usize = $size;

            pub(crate) fn read(b: &[u8]) -> $name {
                $name { $($field: <$ty as U32Field>::from_u32(u32_at(b, $off)),)* }
            }

            pub(crate) fn write(&self, b: &mut [u8]) {
                $(put_u32(b, $off, U32Field::to_u32(self.$field));)*
            }
        }
    };
}
pub(crate) use u32_message;

u32_message!(
    /// RESCIND_CHANNELOFFER (2, 12 bytes, H→G): the host withdraws a channel.
    RescindChannelOffer, 12, {
        /// Offset 8.
        child_relid: RelId = 8,
    }
);

u32_message!(
    /// OPENCHANNEL_RESULT (6, 20 bytes, H→G).
    OpenChannelResult, 20, {
        /// Offset 8.
        child_relid: RelId = 8,
        /// Offset 12: echoes OPENCHANNEL.openid.
        openid: u32 = 12,
        /// Offset 16: 0 = success; anything else failed (OpenVMM sends NTSTATUS codes).
        status: u32 = 16,
    }
);

u32_message!(
    /// CLOSECHANNEL (7, 12 bytes, G→H). No reply.
    CloseChannel, 12, {
        /// Offset 8.
        child_relid: RelId = 8,
    }
);

u32_message!(
    /// RELID_RELEASED (13, 12 bytes, G→H): the guest is done with a rescinded relid.
    RelIdReleased, 12, {
        /// Offset 8.
        child_relid: RelId = 8,
    }
);

u32_message!(
    /// MODIFYCHANNEL (22, 16 bytes, G→H, 4.1+): move a channel's interrupt to another VP.
    ModifyChannel, 16, {
        /// Offset 8.
        child_relid: RelId = 8,
        /// Offset 12: the new interrupt VP.
        target_vp: VpIndex = 12,
    }
);

u32_message!(
    /// MODIFYCHANNEL_RESPONSE (24, 16 bytes, H→G, 5.3+).
    ModifyChannelResponse, 16, {
        /// Offset 8.
        child_relid: RelId = 8,
        /// Offset 12: 0 = success (NTSTATUS).
        status: u32 = 12,
    }
);

u32_message!(
    /// OPEN_RESERVED_CHANNEL (18, 28 bytes, G→H, 4.0+; OpenVMM only).
    OpenReservedChannel, 28, {
        /// Offset 8: channel id.
        channel_id: RelId = 8,
        /// Offset 12.
        target_vp: VpIndex = 12,
        /// Offset 16.
        target_sint: u32 = 16,
        /// Offset 20: ring buffer GPADL.
        ring_gpadl: GpadlId = 20,
        /// Offset 24: downstream ring page offset.
        downstream_page_offset: u32 = 24,
    }
);

u32_message!(
    /// CLOSE_RESERVED_CHANNEL (19, 20 bytes, G→H, any version; OpenVMM only).
    CloseReservedChannel, 20, {
        /// Offset 8: channel id.
        channel_id: RelId = 8,
        /// Offset 12.
        target_vp: VpIndex = 12,
        /// Offset 16.
        target_sint: u32 = 16,
    }
);

u32_message!(
    /// CLOSE_RESERVED_RESPONSE (20, 12 bytes, H→G, 4.0+; OpenVMM only).
    CloseReservedResponse, 12, {
        /// Offset 8: channel id.
        channel_id: RelId = 8,
    }
);

/// OPENCHANNEL flags (156-byte form offset 154). Open: unknown bits are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct OpenChannelFlags(pub u16);

impl OpenChannelFlags {
    /// Bit 0: deliver the host-to-guest interrupt to the redirected VTL/SINT.
    pub const REDIRECT_INTERRUPT: OpenChannelFlags = OpenChannelFlags(1);
}

/// The 6.0 OPENCHANNEL extension (offsets 148..155), sent only when
/// guest_specified_signal_parameters or channel_interrupt_redirection was negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenChannelSignal {
    /// Offset 148: guest-chosen signal connection id.
    pub connection_id: ConnectionId,
    /// Offset 152: guest-chosen event flag.
    pub event_flag: u16,
    /// Offset 154.
    pub flags: OpenChannelFlags,
}

/// OPENCHANNEL (5, G→H): 148 bytes, or 156 with [`OpenChannelSignal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenChannel {
    /// Offset 8.
    pub child_relid: RelId,
    /// Offset 12: any value; echoed in OPENCHANNEL_RESULT.
    pub openid: u32,
    /// Offset 16: GPADL covering both rings.
    pub ring_gpadl: GpadlId,
    /// Offset 20: VP for host-to-guest interrupts (honoured from 2.4; 0 before).
    pub target_vp: VpIndex,
    /// Offset 24: page index in the GPADL where the host-to-guest ring starts.
    pub downstream_ring_page_offset: u32,
    /// Offset 28: device-specific user data.
    pub userdata: [u8; 120],
    /// Offsets 148..155, 6.0 form only.
    pub signal: Option<OpenChannelSignal>,
}

impl OpenChannel {
    pub(crate) const SIZE: usize = 148;
    pub(crate) const SIZE_V6: usize = 156;

    pub(crate) fn read(b: &[u8], with_signal: bool) -> OpenChannel {
        let mut userdata = [0u8; 120];
        userdata.copy_from_slice(&b[28..148]);
        OpenChannel {
            child_relid: RelId(u32_at(b, 8)),
            openid: u32_at(b, 12),
            ring_gpadl: GpadlId(u32_at(b, 16)),
            target_vp: VpIndex(u32_at(b, 20)),
            downstream_ring_page_offset: u32_at(b, 24),
            userdata,
            signal: with_signal.then(|| OpenChannelSignal {
                connection_id: ConnectionId(u32_at(b, 148)),
                event_flag: u16_at(b, 152),
                flags: OpenChannelFlags(u16_at(b, 154)),
            }),
        }
    }

    pub(crate) fn wire_len(&self) -> usize {
        if self.signal.is_some() {
            Self::SIZE_V6
        } else {
            Self::SIZE
        }
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        put_u32(b, 8, self.child_relid.0);
        put_u32(b, 12, self.openid);
        put_u32(b, 16, self.ring_gpadl.0);
        put_u32(b, 20, self.target_vp.0);
        put_u32(b, 24, self.downstream_ring_page_offset);
        b[28..148].copy_from_slice(&self.userdata);
        if let Some(s) = &self.signal {
            put_u32(b, 148, s.connection_id.0);
            put_u16(b, 152, s.event_flag);
            put_u16(b, 154, s.flags.0);
        }
    }
}

/// TL_CONNECT_REQUEST (21, G→H, 4.0+): 40 bytes, or 56 with a silo id (5.2+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlConnectRequest {
    /// Offset 8: the guest's endpoint id.
    pub guest_endpoint_id: Guid,
    /// Offset 24: the host service id.
    pub host_service_id: Guid,
    /// Offset 40 (5.2+ form only).
    pub silo_id: Option<Guid>,
}

impl TlConnectRequest {
    pub(crate) const SIZE: usize = 40;
    pub(crate) const SIZE_SILO: usize = 56;

    pub(crate) fn read(b: &[u8], with_silo: bool) -> TlConnectRequest {
        TlConnectRequest {
            guest_endpoint_id: guid_at(b, 8),
            host_service_id: guid_at(b, 24),
            silo_id: with_silo.then(|| guid_at(b, 40)),
        }
    }

    pub(crate) fn wire_len(&self) -> usize {
        if self.silo_id.is_some() {
            Self::SIZE_SILO
        } else {
            Self::SIZE
        }
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        put_guid(b, 8, &self.guest_endpoint_id);
        put_guid(b, 24, &self.host_service_id);
        if let Some(s) = &self.silo_id {
            put_guid(b, 40, s);
        }
    }
}

/// TL_CONNECT_RESULT (23, 44 bytes, H→G, 4.1+; layout OpenVMM only): a failed hv_sock connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlConnectResult {
    /// Offset 8.
    pub endpoint_id: Guid,
    /// Offset 24.
    pub service_id: Guid,
    /// Offset 40: NTSTATUS (OpenVMM: 0xC0000236 STATUS_CONNECTION_REFUSED).
    pub status: u32,
}

impl TlConnectResult {
    pub(crate) const SIZE: usize = 44;

    pub(crate) fn read(b: &[u8]) -> TlConnectResult {
        TlConnectResult {
            endpoint_id: guid_at(b, 8),
            service_id: guid_at(b, 24),
            status: u32_at(b, 40),
        }
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        put_guid(b, 8, &self.endpoint_id);
        put_guid(b, 24, &self.service_id);
        put_u32(b, 40, self.status);
    }
}
