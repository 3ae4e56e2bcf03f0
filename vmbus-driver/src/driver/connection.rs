//! Connection: the INITIATE_CONTACT version walk, REQUESTOFFERS, and UNLOAD
//! (VMBUS-PROTOCOL.md §3.4, §4.2, §4.3, §6.3).

use core::fmt;

use log::{info, warn};

use crate::hv::{HvStatus, Hypervisor, VMBUS_SINT};
use crate::ids::{ConnectionId, VpIndex};
use crate::kernel::Kernel;
use crate::msg::{ChannelMessage, ContactTarget, InitiateContact, VersionResponse};
use crate::version::{FeatureFlags, MESSAGE_CONNECTION_ID, Version};

use super::Driver;
use super::post::{PostError, post};
use super::table::{MAX_RELIDS, RelidState};

/// Oldest version the driver negotiates. Older versions deliver channel interrupts through the
/// legacy interrupt page (flag 0 + a shared bitmap), which this driver does not implement, as
/// mainline Linux no longer does.
pub const MIN_VERSION: Version = Version::WIN8;

/// Largest connection id (bits 23:0).
const CONNECTION_ID_MASK: u32 = 0x00FF_FFFF;

/// Where the connection to the host stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not started, or unloaded.
    Disconnected,
    /// INITIATE_CONTACT sent, waiting for VERSION_RESPONSE.
    Connecting,
    /// Version accepted, REQUESTOFFERS sent, waiting for ALLOFFERS_DELIVERED.
    RequestingOffers,
    /// All initial offers delivered.
    Connected,
    /// Unload in progress: channels being torn down, then UNLOAD and its response.
    Unloading,
    /// No version was accepted, or the host stopped answering the handshake.
    Failed,
}

impl fmt::Display for ConnectionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The connection as seen from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// State.
    pub state: ConnectionState,
    /// The negotiated version (while connected or unloading).
    pub version: Option<Version>,
    /// The version requested by the INITIATE_CONTACT in flight (while connecting).
    pub requested: Option<Version>,
    /// Connection id for messages to the host.
    pub msg_conn_id: ConnectionId,
    /// Versions refused or skipped during the last walk.
    pub versions_refused: u32,
}

/// Connection state kept by the driver.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Conn {
    pub state: ConnectionState,
    /// Index in the try order of the version in flight.
    pub try_index: usize,
    pub requested: Option<Version>,
    pub version: Option<Version>,
    pub msg_conn: ConnectionId,
    pub deadline: u64,
    /// UNLOAD was sent; waiting for UNLOAD_RESPONSE.
    pub unload_sent: bool,
    pub refused: u32,
}

impl Conn {
    pub const fn new() -> Conn {
        Conn {
            state: ConnectionState::Disconnected,
            try_index: 0,
            requested: None,
            version: None,
            msg_conn: MESSAGE_CONNECTION_ID,
            deadline: 0,
            unload_sent: false,
            refused: 0,
        }
    }
}

impl Driver {
    /// The connection state.
    pub fn connection(&self) -> ConnectionInfo {
        ConnectionInfo {
            state: self.conn.state,
            version: self.conn.version,
            requested: self.conn.requested,
            msg_conn_id: self.conn.msg_conn,
            versions_refused: self.conn.refused,
        }
    }

    /// The negotiated version, once a version was accepted.
    pub fn version(&self) -> Option<Version> {
        self.conn.version
    }

    /// Whether clients may open channels (offers are being or have been delivered).
    pub(crate) fn is_connected(&self) -> bool {
        matches!(
            self.conn.state,
            ConnectionState::RequestingOffers | ConnectionState::Connected
        )
    }

    /// The i-th version to try: the known versions from newest down, none above `max_version`
    /// and none below [`MIN_VERSION`].
    fn try_version(&self, i: usize) -> Option<Version> {
        Version::TRY_ORDER_WITH_V6_0
            .iter()
            .copied()
            .filter(|v| *v <= self.max_version && *v >= MIN_VERSION)
            .nth(i)
    }

    /// Starts the handshake: INITIATE_CONTACT for the newest allowed version. Does nothing unless
    /// disconnected or failed.
    pub fn start<H: Hypervisor + ?Sized>(&mut self, hv: &mut H, now: u64) {
        if !matches!(
            self.conn.state,
            ConnectionState::Disconnected | ConnectionState::Failed
        ) {
            warn!("start ignored: connection is {}", self.conn.state);
            return;
        }
        self.conn = Conn::new();
        self.try_from(hv, 0, now);
    }

    /// Posts INITIATE_CONTACT for the versions from try index `i` on until one post succeeds.
    fn try_from<H: Hypervisor + ?Sized>(&mut self, hv: &mut H, mut i: usize, now: u64) {
        while let Some(v) = self.try_version(i) {
            let msg = ChannelMessage::InitiateContact(InitiateContact {
                version_requested: v,
                target_vcpu: if v.honours_target_vcpu() {
                    self.target_vp
                } else {
                    VpIndex(0)
                },
                target: if v.uses_msg_sint() {
                    ContactTarget::MessageSint {
                        msg_sint: VMBUS_SINT,
                        msg_vtl: 0,
                        feature_flags: FeatureFlags::NONE,
                    }
                } else {
                    // Hosts ignore the interrupt page from 2.4 on, the oldest version we ask for.
                    ContactTarget::InterruptPage(0)
                },
                monitor_page1: 0,
                monitor_page2: 0,
                client_id: None,
            });
            let conn = v.initiate_contact_connection_id();
            match post(hv, &mut self.stats, conn, &msg) {
                Ok(()) => {
                    info!("INITIATE_CONTACT {v} on {conn}");
                    self.conn.state = ConnectionState::Connecting;
                    self.conn.try_index = i;
                    self.conn.requested = Some(v);
                    self.conn.deadline = self.deadline(now);
                    return;
                }
                Err(PostError::Status(s)) if s == HvStatus::INVALID_CONNECTION_ID => {
                    // §4.3/§6.3: a host that predates 5.0 has no connection 4.
                    info!("{v}: {conn} unknown to the host, trying an older version");
                }
                Err(e) => {
                    warn!("{v}: INITIATE_CONTACT not posted ({e:?}), trying an older version")
                }
            }
            self.conn.refused += 1;
            i += 1;
        }
        warn!("no VMBus version accepted");
        self.conn.state = ConnectionState::Failed;
        self.conn.requested = None;
        self.conn.deadline = 0;
    }

    /// VERSION_RESPONSE.
    pub(crate) fn on_version_response<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        r: &VersionResponse,
        now: u64,
    ) {
        let (ConnectionState::Connecting, Some(v)) = (self.conn.state, self.conn.requested) else {
            self.hostile_unexpected("VERSION_RESPONSE outside the handshake");
            return;
        };
        let next = self.conn.try_index + 1;
        if !r.is_success(v) {
            info!("host refused {v} (state {})", r.connection_state.0);
            self.conn.refused += 1;
            self.try_from(hv, next, now);
            return;
        }
        let msg_conn = if v.uses_msg_sint() {
            let id = r.msg_conn_id.0;
            if id == 0 || id & !CONNECTION_ID_MASK != 0 {
                self.stats.hostile += 1;
                self.stats.malformed += 1;
                warn!("host accepted {v} with invalid msg_conn_id {id:#x}; trying older");
                self.conn.refused += 1;
                self.try_from(hv, next, now);
                return;
            }
            r.msg_conn_id
        } else {
            MESSAGE_CONNECTION_ID
        };
        info!("VMBus {v} accepted, messages on {msg_conn}");
        self.conn.version = Some(v);
        self.conn.requested = None;
        self.conn.msg_conn = msg_conn;
        match post(
            hv,
            &mut self.stats,
            msg_conn,
            &ChannelMessage::RequestOffers,
        ) {
            Ok(()) => {
                self.conn.state = ConnectionState::RequestingOffers;
                self.conn.deadline = self.deadline(now);
            }
            Err(_) => {
                warn!("REQUESTOFFERS not posted; connection failed");
                self.conn.state = ConnectionState::Failed;
                self.conn.deadline = 0;
            }
        }
    }

    /// ALLOFFERS_DELIVERED.
    pub(crate) fn on_all_offers(&mut self) {
        if self.conn.state == ConnectionState::RequestingOffers {
            info!("all offers delivered");
            self.conn.state = ConnectionState::Connected;
            self.conn.deadline = 0;
        } else {
            self.hostile_unexpected("ALLOFFERS_DELIVERED outside REQUESTOFFERS");
        }
    }

    /// Starts bus unload: every channel goes through the teardown path, then UNLOAD is sent and
    /// UNLOAD_RESPONSE awaited ([`Driver::on_tick`] bounds the wait).
    pub fn unload<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        now: u64,
    ) {
        match self.conn.state {
            ConnectionState::RequestingOffers | ConnectionState::Connected => {}
            ConnectionState::Unloading => return,
            ConnectionState::Connecting => {
                // Nothing was negotiated; a late VERSION_RESPONSE is ignored as unexpected.
                self.finish_unload();
                return;
            }
            ConnectionState::Disconnected | ConnectionState::Failed => return,
        }
        info!("unloading: tearing down {} channels", self.opens_in_use);
        self.conn.state = ConnectionState::Unloading;
        self.conn.deadline = 0;
        for r in 1..MAX_RELIDS {
            if self.relids[r].state == RelidState::Active {
                let idx = usize::from(self.relids[r].open);
                self.begin_teardown(hv, k, idx, super::TeardownReason::Unload, now);
            }
        }
        self.check_unload(hv, now);
    }

    /// Sends UNLOAD once every teardown finished.
    pub(crate) fn check_unload<H: Hypervisor + ?Sized>(&mut self, hv: &mut H, now: u64) {
        if self.conn.state != ConnectionState::Unloading
            || self.conn.unload_sent
            || self.opens_in_use != 0
        {
            return;
        }
        let should = self.conn.version.is_some_and(|v| v.should_unload());
        if !should {
            self.finish_unload();
            return;
        }
        match post(
            hv,
            &mut self.stats,
            self.conn.msg_conn,
            &ChannelMessage::Unload,
        ) {
            Ok(()) => {
                self.conn.unload_sent = true;
                self.conn.deadline = self.deadline(now);
            }
            Err(_) => self.finish_unload(),
        }
    }

    /// UNLOAD_RESPONSE.
    pub(crate) fn on_unload_response(&mut self) {
        if self.conn.state == ConnectionState::Unloading && self.conn.unload_sent {
            info!("unload complete");
            self.finish_unload();
        } else {
            self.hostile_unexpected("UNLOAD_RESPONSE without UNLOAD");
        }
    }

    /// The host forgot every offer: clear the table (generations move on).
    fn finish_unload(&mut self) {
        for e in self.relids.iter_mut() {
            if e.state != RelidState::Free {
                e.state = RelidState::Free;
                e.rescinded = false;
                e.generation = e.generation.wrapping_add(1);
            }
        }
        self.conn.state = ConnectionState::Disconnected;
        self.conn.version = None;
        self.conn.requested = None;
        self.conn.unload_sent = false;
        self.conn.deadline = 0;
    }

    /// Connection-level timeouts.
    pub(crate) fn connection_tick(&mut self, now: u64) {
        if self.conn.deadline == 0 || now < self.conn.deadline {
            return;
        }
        self.stats.timeouts += 1;
        self.conn.deadline = 0;
        match self.conn.state {
            ConnectionState::Connecting => {
                // A late reply could not be told apart from the answer to a next attempt (the
                // response names no version), so the walk stops here, as Linux's does.
                warn!("no VERSION_RESPONSE in time; connection failed");
                self.conn.state = ConnectionState::Failed;
                self.conn.requested = None;
            }
            ConnectionState::RequestingOffers => {
                warn!("no ALLOFFERS_DELIVERED in time; continuing with the offers received");
                self.conn.state = ConnectionState::Connected;
            }
            ConnectionState::Unloading => {
                warn!("no UNLOAD_RESPONSE in time; disconnected anyway");
                self.finish_unload();
            }
            _ => {}
        }
    }
}
