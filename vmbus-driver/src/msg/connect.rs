//! Connection-level messages: INITIATE_CONTACT, VERSION_RESPONSE and the 6.0 MODIFY_CONNECTION
//! pair (docs/protocol.md#message-layouts, #protocol-versions).

use super::wire::{guid_at, put_guid, put_u32, put_u64, u32_at, u64_at};
use crate::guid::Guid;
use crate::ids::{ConnectionId, VpIndex};
use crate::version::{FeatureFlags, Version};

/// VERSION_RESPONSE.connection_state / MODIFY_CONNECTION_RESPONSE.connection_state (OpenVMM).
/// Open: any u8 is representable; only 0 means success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConnectionState(pub u8);

impl ConnectionState {
    /// 0: connected.
    pub const SUCCESSFUL: ConnectionState = ConnectionState(0);
    /// 1: failed, low resources.
    pub const FAILED_LOW_RESOURCES: ConnectionState = ConnectionState(1);
    /// 2: failed, unknown reason.
    pub const FAILED_UNKNOWN_FAILURE: ConnectionState = ConnectionState(2);
}

/// INITIATE_CONTACT's third qword (offset 16), whose meaning depends on the requested version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactTarget {
    /// Requested version < 5.0: GPA of the legacy interrupt page.
    InterruptPage(u64),
    /// Requested version >= 5.0.
    MessageSint {
        /// Offset 16: SINT for host messages (2).
        msg_sint: u8,
        /// Offset 17: VTL of the receiving guest (0 for normal guests).
        msg_vtl: u8,
        /// Offset 20: requested 6.0 feature flags; 0 before 6.0.
        feature_flags: FeatureFlags,
    },
}

/// INITIATE_CONTACT (14, G→H): 40 bytes, or 56 with the 6.0 client id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitiateContact {
    /// Offset 8. Also selects this message's layout.
    pub version_requested: Version,
    /// Offset 12: VP that receives VMBus messages (honoured from 3.0; send 0 before).
    pub target_vcpu: VpIndex,
    /// Offset 16..23.
    pub target: ContactTarget,
    /// Offset 24: parent-to-child monitor page GPA.
    pub monitor_page1: u64,
    /// Offset 32: child-to-parent monitor page GPA.
    pub monitor_page2: u64,
    /// Offset 40: client id (6.0 with feature CLIENT_ID).
    pub client_id: Option<Guid>,
}

impl InitiateContact {
    pub(crate) const SIZE: usize = 40;
    pub(crate) const SIZE_CLIENT_ID: usize = 56;

    pub(crate) fn read(b: &[u8]) -> InitiateContact {
        let version_requested = Version(u32_at(b, 8));
        let target = if version_requested.uses_msg_sint() {
            ContactTarget::MessageSint {
                msg_sint: b[16],
                msg_vtl: b[17],
                feature_flags: FeatureFlags(u32_at(b, 20)),
            }
        } else {
            ContactTarget::InterruptPage(u64_at(b, 16))
        };
        let client_id = (version_requested.supports_feature_flags()
            && b.len() >= Self::SIZE_CLIENT_ID)
            .then(|| guid_at(b, 40));
        InitiateContact {
            version_requested,
            target_vcpu: VpIndex(u32_at(b, 12)),
            target,
            monitor_page1: u64_at(b, 24),
            monitor_page2: u64_at(b, 32),
            client_id,
        }
    }

    /// Whether the fields fit the layout `version_requested` implies; the field name if not.
    pub(crate) fn layout_mismatch(&self) -> Option<&'static str> {
        let v = self.version_requested;
        match self.target {
            ContactTarget::InterruptPage(_) if v.uses_msg_sint() => return Some("interrupt_page"),
            ContactTarget::MessageSint { .. } if !v.uses_msg_sint() => return Some("msg_sint"),
            _ => {}
        }
        if self.client_id.is_some() && !v.supports_feature_flags() {
            return Some("client_id");
        }
        None
    }

    pub(crate) fn wire_len(&self) -> usize {
        if self.client_id.is_some() {
            Self::SIZE_CLIENT_ID
        } else {
            Self::SIZE
        }
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        put_u32(b, 8, self.version_requested.0);
        put_u32(b, 12, self.target_vcpu.0);
        match self.target {
            ContactTarget::InterruptPage(gpa) => put_u64(b, 16, gpa),
            ContactTarget::MessageSint {
                msg_sint,
                msg_vtl,
                feature_flags,
            } => {
                b[16] = msg_sint;
                b[17] = msg_vtl;
                b[18] = 0;
                b[19] = 0;
                put_u32(b, 20, feature_flags.0);
            }
        }
        put_u64(b, 24, self.monitor_page1);
        put_u64(b, 32, self.monitor_page2);
        if let Some(id) = &self.client_id {
            put_guid(b, 40, id);
        }
    }
}

/// The 6.0 extensions of VERSION_RESPONSE (OpenVMM VersionResponse2/3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionResponseExt {
    /// 16-byte form (every version; also a 6.0 host's answer to a refused version).
    None,
    /// 20-byte form: offset 16 supported_features.
    Features(FeatureFlags),
    /// 40-byte form (feature SERVER_SPECIFIED_MONITOR_PAGES set): offset 16 supported_features,
    /// 20 padding, 24 and 32 the server's monitor page GPAs.
    MonitorPages {
        /// Offset 16; contains SERVER_SPECIFIED_MONITOR_PAGES.
        features: FeatureFlags,
        /// Offset 24: parent-to-child monitor page GPA.
        parent_to_child: u64,
        /// Offset 32: child-to-parent monitor page GPA.
        child_to_parent: u64,
    },
}

/// VERSION_RESPONSE (15, H→G): 16 bytes, or 20/40 in 6.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionResponse {
    /// Offset 8: non-zero = requested version accepted (kept as a bool).
    pub version_supported: bool,
    /// Offset 9: 0 success (OpenVMM; Linux does not check it, QEMU sends 0).
    pub connection_state: ConnectionState,
    /// Offset 12: connection id for all later messages (>= 5.0). Below 5.0 OpenVMM echoes the
    /// version here; ignore it then.
    pub msg_conn_id: ConnectionId,
    /// 6.0 forms.
    pub ext: VersionResponseExt,
}

impl VersionResponse {
    pub(crate) const SIZE: usize = 16;
    pub(crate) const SIZE_V2: usize = 20;
    pub(crate) const SIZE_V3: usize = 40;

    /// Whether the host accepted `requested` (the version of the INITIATE_CONTACT this answers):
    /// version_supported, and connection_state == 0 from 2.4 on. Below 2.4 connection_state may be
    /// uninitialised host memory and is not consulted (Microsoft's MsvmPkg-derived VMBus header).
    pub fn is_success(&self, requested: Version) -> bool {
        self.version_supported
            && (!requested.has_per_channel_event_flags()
                || self.connection_state == ConnectionState::SUCCESSFUL)
    }

    /// The host's supported 6.0 features (none in the 16-byte form).
    pub fn supported_features(&self) -> FeatureFlags {
        match self.ext {
            VersionResponseExt::None => FeatureFlags::NONE,
            VersionResponseExt::Features(f)
            | VersionResponseExt::MonitorPages { features: f, .. } => f,
        }
    }

    pub(crate) fn read(b: &[u8], v6: bool) -> VersionResponse {
        let ext = if v6 && b.len() >= Self::SIZE_V2 {
            let features = FeatureFlags(u32_at(b, 16));
            if b.len() >= Self::SIZE_V3
                && features.contains(FeatureFlags::SERVER_SPECIFIED_MONITOR_PAGES)
            {
                VersionResponseExt::MonitorPages {
                    features,
                    parent_to_child: u64_at(b, 24),
                    child_to_parent: u64_at(b, 32),
                }
            } else {
                VersionResponseExt::Features(features)
            }
        } else {
            VersionResponseExt::None
        };
        VersionResponse {
            version_supported: b[8] != 0,
            connection_state: ConnectionState(b[9]),
            msg_conn_id: ConnectionId(u32_at(b, 12)),
            ext,
        }
    }

    pub(crate) fn layout_mismatch(&self) -> Option<&'static str> {
        match self.ext {
            VersionResponseExt::MonitorPages { features, .. }
                if !features.contains(FeatureFlags::SERVER_SPECIFIED_MONITOR_PAGES) =>
            {
                Some("monitor pages without SERVER_SPECIFIED_MONITOR_PAGES")
            }
            _ => None,
        }
    }

    pub(crate) fn wire_len(&self) -> usize {
        match self.ext {
            VersionResponseExt::None => Self::SIZE,
            VersionResponseExt::Features(_) => Self::SIZE_V2,
            VersionResponseExt::MonitorPages { .. } => Self::SIZE_V3,
        }
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        b[8] = u8::from(self.version_supported);
        b[9] = self.connection_state.0;
        b[10] = 0;
        b[11] = 0;
        put_u32(b, 12, self.msg_conn_id.0);
        match self.ext {
            VersionResponseExt::None => {}
            VersionResponseExt::Features(f) => put_u32(b, 16, f.0),
            VersionResponseExt::MonitorPages {
                features,
                parent_to_child,
                child_to_parent,
            } => {
                put_u32(b, 16, features.0);
                put_u32(b, 20, 0);
                put_u64(b, 24, parent_to_child);
                put_u64(b, 32, child_to_parent);
            }
        }
    }
}

/// MODIFY_CONNECTION (25, 24 bytes, G→H, 6.0 + modify_connection; OpenVMM only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModifyConnection {
    /// Offset 8: parent-to-child monitor page GPA.
    pub parent_to_child_monitor_page: u64,
    /// Offset 16: child-to-parent monitor page GPA.
    pub child_to_parent_monitor_page: u64,
}

impl ModifyConnection {
    pub(crate) const SIZE: usize = 24;

    pub(crate) fn read(b: &[u8]) -> ModifyConnection {
        ModifyConnection {
            parent_to_child_monitor_page: u64_at(b, 8),
            child_to_parent_monitor_page: u64_at(b, 16),
        }
    }

    pub(crate) fn write(&self, b: &mut [u8]) {
        put_u64(b, 8, self.parent_to_child_monitor_page);
        put_u64(b, 16, self.child_to_parent_monitor_page);
    }
}

/// MODIFY_CONNECTION_RESPONSE (26, 9 bytes, H→G; OpenVMM only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModifyConnectionResponse {
    /// Offset 8.
    pub connection_state: ConnectionState,
}

impl ModifyConnectionResponse {
    pub(crate) const SIZE: usize = 9;
}
