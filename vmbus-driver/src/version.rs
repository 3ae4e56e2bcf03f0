//! VMBus protocol versions, the order a guest tries them, and what each one allows.
//!
//! Facts from docs/protocol.md#protocol-versions (Linux `include/linux/hyperv.h`, OpenVMM
//! `vmbus_core/src/protocol.rs`, QEMU `vmbus-proto.h`) and docs/protocol.md#how-vmbus-uses-sint2
//! for the connection ids.

use core::fmt;
use core::ops::{BitAnd, BitOr};

use crate::ids::ConnectionId;

/// A VMBus protocol version as it appears on the wire: `major << 16 | minor`.
///
/// Open: any `u32` a peer sends is representable; [`Version::is_known`] says whether it is one of
/// the versions of docs/protocol.md#version-numbers. Ordering is numeric, which is the protocol's
/// ordering.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32);

impl Version {
    /// Windows Server 2008 (Linux `VERSION_WS2008`, OpenVMM `V1`): 0.13.
    pub const WS2008: Version = Version::new(0, 13);
    /// Windows 7 / Server 2008 R2 (`VERSION_WIN7`): 1.1.
    pub const WIN7: Version = Version::new(1, 1);
    /// Windows 8 / Server 2012 (`VERSION_WIN8`): 2.4.
    pub const WIN8: Version = Version::new(2, 4);
    /// Windows 8.1 / Server 2012 R2 (`VERSION_WIN8_1`): 3.0.
    pub const WIN8_1: Version = Version::new(3, 0);
    /// Windows 10 (`VERSION_WIN10`): 4.0.
    pub const WIN10: Version = Version::new(4, 0);
    /// Windows 10 RS3 (Linux `VERSION_WIN10_V4_1`, OpenVMM `Win10Rs3_0`): 4.1.
    pub const WIN10_V4_1: Version = Version::new(4, 1);
    /// Newer Windows 10 (Linux `VERSION_WIN10_V5`, OpenVMM `Win10Rs3_1`): 5.0.
    pub const WIN10_V5: Version = Version::new(5, 0);
    /// Windows 10 RS4 (`VERSION_WIN10_V5_1`, OpenVMM `Win10Rs4`): 5.1.
    pub const WIN10_V5_1: Version = Version::new(5, 1);
    /// Server 2019 / RS5 (`VERSION_WIN10_V5_2`, OpenVMM `Win10Rs5`): 5.2.
    pub const WIN10_V5_2: Version = Version::new(5, 2);
    /// Server 2022 (`VERSION_WIN10_V5_3`, OpenVMM `Iron`): 5.3.
    pub const WIN10_V5_3: Version = Version::new(5, 3);
    /// Feature-flag protocol (Linux 2025 patches `VERSION_WIN10_V6_0`, OpenVMM `Copper`): 6.0.
    pub const WIN10_V6_0: Version = Version::new(6, 0);

    /// Every version of docs/protocol.md#version-numbers, oldest first.
    pub const ALL: [Version; 11] = [
        Self::WS2008,
        Self::WIN7,
        Self::WIN8,
        Self::WIN8_1,
        Self::WIN10,
        Self::WIN10_V4_1,
        Self::WIN10_V5,
        Self::WIN10_V5_1,
        Self::WIN10_V5_2,
        Self::WIN10_V5_3,
        Self::WIN10_V6_0,
    ];

    /// The guest's default try order, newest first: 5.3 down to 0.13.
    ///
    /// 6.0 is left out of the default on purpose: its response layouts (VersionResponse2/3) and
    /// most of its feature bits are confirmed by OpenVMM only
    /// (docs/protocol.md#weakly-confirmed-facts-and-disagreements, "6.0 beyond its basics"), and a
    /// guest that needs no 6.0 feature gains nothing from it. Use [`Version::TRY_ORDER_WITH_V6_0`]
    /// to offer it first, as the 2025 Linux "Confidential VMBus" series does. 1.1 and 0.13 stay at
    /// the end because old hosts (Server 2008/R2) accept nothing newer; mainline Linux dropped
    /// them.
    pub const TRY_ORDER: [Version; 10] = [
        Self::WIN10_V5_3,
        Self::WIN10_V5_2,
        Self::WIN10_V5_1,
        Self::WIN10_V5,
        Self::WIN10_V4_1,
        Self::WIN10,
        Self::WIN8_1,
        Self::WIN8,
        Self::WIN7,
        Self::WS2008,
    ];

    /// [`Version::TRY_ORDER`] with 6.0 tried first.
    pub const TRY_ORDER_WITH_V6_0: [Version; 11] = {
        let mut order = [Self::WIN10_V6_0; 11];
        let mut i = 0;
        while i < Self::TRY_ORDER.len() {
            order[i + 1] = Self::TRY_ORDER[i];
            i += 1;
        }
        order
    };

    /// Builds `major << 16 | minor`.
    pub const fn new(major: u16, minor: u16) -> Version {
        Version(((major as u32) << 16) | minor as u32)
    }

    /// The major number (bits 31:16).
    pub const fn major(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The minor number (bits 15:0).
    pub const fn minor(self) -> u16 {
        self.0 as u16
    }

    /// Whether this is one of the versions of docs/protocol.md#version-numbers.
    pub fn is_known(self) -> bool {
        Self::ALL.contains(&self)
    }

    /// The connection id to post INITIATE_CONTACT requesting this version on
    /// (docs/protocol.md#connection-ids): 4 from 5.0 on, 1 before. After a >= 5.0 handshake use
    /// VERSION_RESPONSE.msg_conn_id instead.
    pub const fn initiate_contact_connection_id(self) -> ConnectionId {
        if self.0 >= Self::WIN10_V5.0 {
            MESSAGE_CONNECTION_ID_4
        } else {
            MESSAGE_CONNECTION_ID
        }
    }

    /// INITIATE_CONTACT's third qword is msg_sint/msg_vtl (and from 6.0 feature flags) rather than
    /// the legacy interrupt page (>= 5.0), and VERSION_RESPONSE.msg_conn_id is meaningful.
    pub const fn uses_msg_sint(self) -> bool {
        self.0 >= Self::WIN10_V5.0
    }

    /// Offers carry monitor_allocated, is_dedicated_interrupt and a per-channel connection id
    /// (>= 1.1). Before that the guest signals on connection 2 ([`EVENT_CONNECTION_ID`]).
    pub const fn has_per_channel_connection_id(self) -> bool {
        self.0 >= Self::WIN7.0
    }

    /// Host-to-guest channel interrupts use a per-channel SIEF flag (bit = relid) instead of the
    /// legacy interrupt page (>= 2.4); OPENCHANNEL.target_vp is honoured; sub-channels exist.
    pub const fn has_per_channel_event_flags(self) -> bool {
        self.0 >= Self::WIN8.0
    }

    /// INITIATE_CONTACT.target_vcpu is honoured (>= 3.0); send 0 before.
    pub const fn honours_target_vcpu(self) -> bool {
        self.0 >= Self::WIN8_1.0
    }

    /// UNLOAD_RESPONSE exists (>= 1.1, OpenVMM).
    pub const fn has_unload_response(self) -> bool {
        self.0 >= Self::WIN7.0
    }

    /// Whether a guest should send UNLOAD at this version. Linux sends it only from 3.0; OpenVMM
    /// and QEMU accept it at any version
    /// (docs/protocol.md#weakly-confirmed-facts-and-disagreements, "UNLOAD's minimum version"), so
    /// this follows the conservative Linux rule.
    pub const fn should_unload(self) -> bool {
        self.0 >= Self::WIN8_1.0
    }

    /// hv_sock TL_CONNECT_REQUEST and reserved channels, messages 18-21 (>= 4.0, OpenVMM).
    pub const fn supports_tl_connect(self) -> bool {
        self.0 >= Self::WIN10.0
    }

    /// TL_CONNECT_REQUEST carries a silo id (56-byte form, >= 5.2, OpenVMM).
    pub const fn supports_tl_connect_silo_id(self) -> bool {
        self.0 >= Self::WIN10_V5_2.0
    }

    /// MODIFYCHANNEL (retarget a channel's interrupt) exists (>= 4.1).
    pub const fn supports_modifychannel(self) -> bool {
        self.0 >= Self::WIN10_V4_1.0
    }

    /// The host acknowledges MODIFYCHANNEL with MODIFYCHANNEL_RESPONSE (>= 5.3).
    pub const fn supports_modifychannel_response(self) -> bool {
        self.0 >= Self::WIN10_V5_3.0
    }

    /// INITIATE_CONTACT.msg_vtl is honoured (>= 5.1, OpenVMM only).
    pub const fn honours_msg_vtl(self) -> bool {
        self.0 >= Self::WIN10_V5_1.0
    }

    /// Feature-flag negotiation (INITIATE_CONTACT offset 20, VERSION_RESPONSE2) exists (>= 6.0).
    pub const fn supports_feature_flags(self) -> bool {
        self.0 >= Self::WIN10_V6_0.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major(), self.minor())
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({}.{})", self.major(), self.minor())
    }
}

/// VMBUS_MESSAGE_CONNECTION_ID: control messages for protocol < 5.0
/// (docs/protocol.md#how-vmbus-uses-sint2).
pub const MESSAGE_CONNECTION_ID: ConnectionId = ConnectionId(1);
/// VMBUS_EVENT_CONNECTION_ID: the shared guest-to-host event of protocol 0.13
/// (docs/protocol.md#how-vmbus-uses-sint2).
pub const EVENT_CONNECTION_ID: ConnectionId = ConnectionId(2);
/// VMBUS_MONITOR_CONNECTION_ID (docs/protocol.md#how-vmbus-uses-sint2).
pub const MONITOR_CONNECTION_ID: ConnectionId = ConnectionId(3);
/// VMBUS_MESSAGE_CONNECTION_ID_4: INITIATE_CONTACT for protocol >= 5.0
/// (docs/protocol.md#how-vmbus-uses-sint2, #connection-ids).
pub const MESSAGE_CONNECTION_ID_4: ConnectionId = ConnectionId(4);
/// OpenVMM's redirect message connection, used only by the OpenHCL paravisor client
/// (docs/protocol.md#how-vmbus-uses-sint2, OpenVMM only) - not for ordinary guests.
pub const MESSAGE_REDIRECT_CONNECTION_ID: ConnectionId = ConnectionId(0x0080_0074);

/// Protocol 6.0 feature flags (docs/protocol.md#protocol-60-feature-flags): INITIATE_CONTACT offset
/// 20, VERSION_RESPONSE2 offset 16.
///
/// Open: unknown bits are kept. The host answers with the subset it supports; a guest that needs
/// none should send 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeatureFlags(pub u32);

impl FeatureFlags {
    /// No features.
    pub const NONE: FeatureFlags = FeatureFlags(0);
    /// 0x01: the guest chooses the signal connection id and event flag in OPENCHANNEL (156-byte
    /// form).
    pub const GUEST_SPECIFIED_SIGNAL_PARAMETERS: FeatureFlags = FeatureFlags(0x01);
    /// 0x02: OPENCHANNEL flags bit 0 (redirect_interrupt) is honoured.
    pub const CHANNEL_INTERRUPT_REDIRECTION: FeatureFlags = FeatureFlags(0x02);
    /// 0x04: MODIFY_CONNECTION / MODIFY_CONNECTION_RESPONSE (messages 25/26).
    pub const MODIFY_CONNECTION: FeatureFlags = FeatureFlags(0x04);
    /// 0x08: INITIATE_CONTACT carries a client-id GUID (56-byte form).
    pub const CLIENT_ID: FeatureFlags = FeatureFlags(0x08);
    /// 0x10: confidential channels (offer flags 0x2/0x4 take their 6.0 meaning).
    pub const CONFIDENTIAL_CHANNELS: FeatureFlags = FeatureFlags(0x10);
    /// 0x20: PAUSE / PAUSE_RESPONSE / RESUME (messages 27-29).
    pub const PAUSE_RESUME: FeatureFlags = FeatureFlags(0x20);
    /// 0x40: the server provides the monitor pages (VERSION_RESPONSE3, 40 bytes).
    pub const SERVER_SPECIFIED_MONITOR_PAGES: FeatureFlags = FeatureFlags(0x40);
    /// 0x80: offers may require pinned external memory (offer flag 0x8).
    pub const GPA_PINNING: FeatureFlags = FeatureFlags(0x80);

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: FeatureFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl BitOr for FeatureFlags {
    type Output = FeatureFlags;
    fn bitor(self, rhs: FeatureFlags) -> FeatureFlags {
        FeatureFlags(self.0 | rhs.0)
    }
}

impl BitAnd for FeatureFlags {
    type Output = FeatureFlags;
    fn bitand(self, rhs: FeatureFlags) -> FeatureFlags {
        FeatureFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for FeatureFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeatureFlags({:#x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_protocol_table() {
        // docs/protocol.md#version-numbers lists the hex values; checked here independently of
        // `new`.
        let expected: [u32; 11] = [
            0x0000_000D,
            0x0001_0001,
            0x0002_0004,
            0x0003_0000,
            0x0004_0000,
            0x0004_0001,
            0x0005_0000,
            0x0005_0001,
            0x0005_0002,
            0x0005_0003,
            0x0006_0000,
        ];
        for (v, e) in Version::ALL.iter().zip(expected) {
            assert_eq!(v.0, e);
        }
    }
}
