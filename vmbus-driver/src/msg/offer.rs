//! OFFERCHANNEL (type 1, 196 bytes) and its channel flags (docs/protocol.md#message-layouts).

use core::fmt;

use super::wire::{guid_at, put_guid, put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};
use crate::guid::Guid;
use crate::ids::{ConnectionId, RelId};

/// Offer `chn_flags` (offset 56). Open: unknown bits are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OfferFlags(pub u16);

impl OfferFlags {
    /// 0x0001 ENUMERATE_DEVICE_INTERFACE.
    pub const ENUMERATE_DEVICE_INTERFACE: OfferFlags = OfferFlags(0x0001);
    /// 0x0002: SERVER_SUPPORTS_TRANSFER_PAGES before 6.0, CONFIDENTIAL_RING_BUFFER from 6.0.
    pub const CONFIDENTIAL_RING_BUFFER: OfferFlags = OfferFlags(0x0002);
    /// 0x0004: SERVER_SUPPORTS_GPADLS before 6.0, CONFIDENTIAL_EXTERNAL_MEMORY from 6.0.
    pub const CONFIDENTIAL_EXTERNAL_MEMORY: OfferFlags = OfferFlags(0x0004);
    /// 0x0008 REQUIRE_PINNED_EXTERNAL_MEMORY (6.0 + gpa_pinning; OpenVMM only).
    pub const REQUIRE_PINNED_EXTERNAL_MEMORY: OfferFlags = OfferFlags(0x0008);
    /// 0x0010 NAMED_PIPE_MODE: user_def starts with a pipe_mode u32.
    pub const NAMED_PIPE_MODE: OfferFlags = OfferFlags(0x0010);
    /// 0x0100 LOOPBACK_OFFER.
    pub const LOOPBACK_OFFER: OfferFlags = OfferFlags(0x0100);
    /// 0x0200 PARENT_OFFER.
    pub const PARENT_OFFER: OfferFlags = OfferFlags(0x0200);
    /// 0x0400 REQUEST_MONITORED_NOTIFICATION.
    pub const REQUEST_MONITORED_NOTIFICATION: OfferFlags = OfferFlags(0x0400);
    /// 0x1000 FORCE_NEW_CHANNEL (OpenVMM host ioctl only).
    pub const FORCE_NEW_CHANNEL: OfferFlags = OfferFlags(0x1000);
    /// 0x2000 TLNPI_PROVIDER_OFFER: an hv_sock channel.
    pub const TLNPI_PROVIDER_OFFER: OfferFlags = OfferFlags(0x2000);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: OfferFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl fmt::Debug for OfferFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OfferFlags({:#06x})", self.0)
    }
}

/// OFFERCHANNEL: the host offers a channel (H→G).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfferChannel {
    /// Offset 8: interface (device class) GUID.
    pub if_type: Guid,
    /// Offset 24: instance GUID.
    pub if_instance: Guid,
    /// Offset 40: reserved (historically interrupt latency); kept as sent.
    pub reserved1: u64,
    /// Offset 48: reserved (historically interface revision and server context size).
    pub reserved2: u64,
    /// Offset 56.
    pub chn_flags: OfferFlags,
    /// Offset 58: MMIO space the device needs, in MiB.
    pub mmio_megabytes: u16,
    /// Offset 60: device-specific bytes (pipe offers: pipe_mode u32 then 116 bytes).
    pub user_def: [u8; 120],
    /// Offset 180: 0 for a primary channel (2.4+).
    pub sub_channel_index: u16,
    /// Offset 182: reserved3 (OpenVMM: mmio_megabytes_optional).
    pub mmio_megabytes_optional: u16,
    /// Offset 184.
    pub child_relid: RelId,
    /// Offset 188.
    pub monitor_id: u8,
    /// Offset 189 bit 0 (1.1+); bits 7:1 are reserved and dropped.
    pub monitor_allocated: bool,
    /// Offset 190 bit 0 (1.1+); bits 15:1 are reserved and dropped.
    pub is_dedicated_interrupt: bool,
    /// Offset 192: connection id for HvCallSignalEvent on this channel (1.1+).
    pub connection_id: ConnectionId,
}

impl OfferChannel {
    pub(crate) const SIZE: usize = 196;

    /// Whether this is an hv_sock offer (flag TLNPI_PROVIDER_OFFER).
    pub fn is_hvsock(&self) -> bool {
        self.chn_flags.contains(OfferFlags::TLNPI_PROVIDER_OFFER)
    }

    /// The pipe mode (first u32 of user_def; 0 = byte, 4 = message) when NAMED_PIPE_MODE is set.
    pub fn pipe_mode(&self) -> Option<u32> {
        if self.chn_flags.contains(OfferFlags::NAMED_PIPE_MODE) {
            let u = &self.user_def;
            Some(u32::from_le_bytes([u[0], u[1], u[2], u[3]]))
        } else {
            None
        }
    }

    pub(crate) fn read(b: &[u8]) -> OfferChannel {
        let mut user_def = [0u8; 120];
        user_def.copy_from_slice(&b[60..180]);
        OfferChannel {
            if_type: guid_at(b, 8),
            if_instance: guid_at(b, 24),
            reserved1: u64_at(b, 40),
            reserved2: u64_at(b, 48),
            chn_flags: OfferFlags(u16_at(b, 56)),
            mmio_megabytes: u16_at(b, 58),
            user_def,
            sub_channel_index: u16_at(b, 180),
            mmio_megabytes_optional: u16_at(b, 182),
            child_relid: RelId(u32_at(b, 184)),
            monitor_id: b[188],
            monitor_allocated: b[189] & 1 != 0,
            is_dedicated_interrupt: u16_at(b, 190) & 1 != 0,
            connection_id: ConnectionId(u32_at(b, 192)),
        }
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        put_guid(b, 8, &self.if_type);
        put_guid(b, 24, &self.if_instance);
        put_u64(b, 40, self.reserved1);
        put_u64(b, 48, self.reserved2);
        put_u16(b, 56, self.chn_flags.0);
        put_u16(b, 58, self.mmio_megabytes);
        b[60..180].copy_from_slice(&self.user_def);
        put_u16(b, 180, self.sub_channel_index);
        put_u16(b, 182, self.mmio_megabytes_optional);
        put_u32(b, 184, self.child_relid.0);
        b[188] = self.monitor_id;
        b[189] = u8::from(self.monitor_allocated);
        put_u16(b, 190, u16::from(self.is_dedicated_interrupt));
        put_u32(b, 192, self.connection_id.0);
    }
}
