//! Version negotiation (INITIATE_CONTACT / VERSION_RESPONSE) and UNLOAD, by Hyper-V's rules and
//! by QEMU's (docs/protocol.md#the-handshake, #protocol-versions, #qemus-version-handshake).
//!
//! Both hosts reset the whole bus on every INITIATE_CONTACT before answering (OpenVMM's
//! `request_disconnect`, QEMU's reset).
//!
//! Hyper-V mode (OpenVMM's server): a version is accepted only if it is one of the known versions
//! and inside the configured range; INITIATE_CONTACT for >= 5.0 must arrive on connection 4 and
//! for < 5.0 on connection 1 (a request on the other one is counted as a guest error and refused:
//! the real host's behaviour there is not documented); msg_sint must be 2 and msg_vtl 0 (this
//! host serves SINT2 of VTL0 only, so others are refused). The reply's msg_conn_id is the
//! configured id for >= 5.0 and the version number below (OpenVMM). Monitor pages must be given
//! both or neither; otherwise the version is answered "supported" with connection_state 2
//! (>= 2.4) or refused (older). 6.0 answers the 20-byte form with the supported features.
//!
//! QEMU mode: the range test `0 < v <= 4.0`, 16-byte reply with msg_conn_id 0.

use vmbus_driver::ids::ConnectionId;
use vmbus_driver::msg::{
    ChannelMessage, ConnectionState, ContactTarget, InitiateContact, VersionResponse,
    VersionResponseExt,
};
use vmbus_driver::version::{
    FeatureFlags, MESSAGE_CONNECTION_ID, MESSAGE_CONNECTION_ID_4, Version,
};

use crate::config::Mode;
use crate::host::{Connection, Host};
use crate::log::GuestError;

/// The refusal: version_supported 0, everything else 0, 16 bytes.
const REFUSED: VersionResponse = VersionResponse {
    version_supported: false,
    connection_state: ConnectionState::SUCCESSFUL,
    msg_conn_id: ConnectionId(0),
    ext: VersionResponseExt::None,
};

impl Host {
    /// Whether this host accepts version `v`.
    pub fn accepts_version(&self, v: Version) -> bool {
        match self.config.mode {
            Mode::Qemu => v.0 > 0 && v.0 <= Version::WIN10.0,
            Mode::HyperV => {
                v.is_known() && v >= self.config.min_version && v <= self.config.max_version
            }
        }
    }

    pub(crate) fn initiate_contact(&mut self, conn: ConnectionId, ic: &InitiateContact) {
        self.reset_bus();
        let v = ic.version_requested;
        if self.config.mode == Mode::Qemu {
            let ok = self.accepts_version(v);
            if ok {
                self.conn = Connection::Connected {
                    version: v,
                    msg_conn: MESSAGE_CONNECTION_ID,
                    target_vcpu: ic.target_vcpu.0,
                    interrupt_page: interrupt_page(ic),
                    offers_requested: false,
                };
            }
            self.send(ChannelMessage::VersionResponse(VersionResponse {
                version_supported: ok,
                ..REFUSED
            }));
            return;
        }
        let expected = if v.uses_msg_sint() {
            MESSAGE_CONNECTION_ID_4
        } else {
            MESSAGE_CONNECTION_ID
        };
        if conn != expected {
            self.guest_error(GuestError::WrongConnection {
                msgtype: vmbus_driver::msg::MessageType::INITIATE_CONTACT,
                got: conn,
                expected,
            });
            self.send(ChannelMessage::VersionResponse(REFUSED));
            return;
        }
        let (sint_ok, requested_features) = match ic.target {
            ContactTarget::MessageSint {
                msg_sint,
                msg_vtl,
                feature_flags,
            } => (msg_sint == 2 && msg_vtl == 0, feature_flags),
            ContactTarget::InterruptPage(_) => (true, FeatureFlags::NONE),
        };
        if !self.accepts_version(v) || !sint_ok {
            self.send(ChannelMessage::VersionResponse(REFUSED));
            return;
        }
        let msg_conn = if v.uses_msg_sint() {
            self.config.msg_conn_id
        } else {
            MESSAGE_CONNECTION_ID
        };
        let ext = if v.supports_feature_flags() {
            VersionResponseExt::Features(FeatureFlags(
                self.config.features.0 & requested_features.0,
            ))
        } else {
            VersionResponseExt::None
        };
        let accepted = VersionResponse {
            version_supported: true,
            connection_state: ConnectionState::SUCCESSFUL,
            // OpenVMM: the connection id from 5.0, the version number before.
            msg_conn_id: if v.uses_msg_sint() {
                msg_conn
            } else {
                ConnectionId(v.0)
            },
            ext,
        };
        if (ic.monitor_page1 == 0) != (ic.monitor_page2 == 0) {
            self.guest_error(GuestError::MonitorPagesOneOfTwo);
            // Pre-2.4 hosts cannot report a failure, so they refuse the version instead.
            let reply = if v.has_per_channel_event_flags() {
                VersionResponse {
                    connection_state: ConnectionState::FAILED_UNKNOWN_FAILURE,
                    ..accepted
                }
            } else {
                REFUSED
            };
            self.send(ChannelMessage::VersionResponse(reply));
            return;
        }
        self.conn = Connection::Connected {
            version: v,
            msg_conn,
            target_vcpu: if v.honours_target_vcpu() {
                ic.target_vcpu.0
            } else {
                0
            },
            interrupt_page: interrupt_page(ic),
            offers_requested: false,
        };
        self.take_monitor_pages(ic);
        self.send(ChannelMessage::VersionResponse(accepted));
    }

    /// UNLOAD: reset the bus, then UNLOAD_RESPONSE (both hosts answer at any version and in any
    /// state; QEMU also drops the guest messages still queued).
    pub(crate) fn unload(&mut self) {
        if self.config.mode == Mode::Qemu {
            // QEMU empties its queue of guest messages when it answers UNLOAD.
            self.inbound.clear();
        }
        self.reset_bus();
        self.send(ChannelMessage::UnloadResponse);
    }
}

/// The legacy interrupt page of a < 2.4 connection (hosts ignore it from 2.4 on).
fn interrupt_page(ic: &InitiateContact) -> Option<u64> {
    match ic.target {
        ContactTarget::InterruptPage(gpa)
            if gpa != 0 && !ic.version_requested.has_per_channel_event_flags() =>
        {
            Some(gpa)
        }
        _ => None,
    }
}
