//! The connection to the host: the INITIATE_CONTACT version walk, REQUESTOFFERS, and UNLOAD
//! (docs/protocol.md#the-handshake, #the-version-walk, #connection-ids, #qemus-version-handshake).

use core::fmt;

use log::{info, warn};

use crate::hv::{HvStatus, Hypervisor, VMBUS_SINT};
use crate::ids::{ConnectionId, VpIndex};
use crate::msg::{ChannelMessage, ContactTarget, InitiateContact, VersionResponse};
use crate::version::{FeatureFlags, MESSAGE_CONNECTION_ID, Version};

use super::deadline::Deadline;
use super::post::{PostError, post, post_unlogged};
use super::stats::Stats;

/// Oldest version the driver negotiates. Older versions deliver channel interrupts through the
/// legacy interrupt page (flag 0 + a shared bitmap), which this driver does not implement, as
/// mainline Linux no longer does.
pub const MIN_VERSION: Version = Version::WIN8;

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

/// What [`Connection::begin_unload`] asks of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnloadStart {
    /// Tear every channel down, then [`Connection::send_unload`].
    TearDown,
    /// Nothing was negotiated: forget the offers now.
    Finish,
    /// Nothing to do (not connected, or already unloading).
    Nothing,
}

/// The connection's state and handshake parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connection {
    max_version: Version,
    state: ConnectionState,
    /// Index in the try order of the version in flight.
    try_index: usize,
    requested: Option<Version>,
    version: Option<Version>,
    msg_conn: ConnectionId,
    deadline: Option<Deadline>,
    /// UNLOAD was sent; waiting for UNLOAD_RESPONSE.
    unload_sent: bool,
    refused: u32,
    /// GPAs of the monitor pages every INITIATE_CONTACT of this walk carries (parent-to-child,
    /// child-to-parent), or (0, 0) for none.
    monitor: (u64, u64),
}

impl Connection {
    /// Disconnected; the walk will start at the newest known version not above `max_version`.
    pub const fn new(max_version: Version) -> Connection {
        Connection {
            max_version,
            state: ConnectionState::Disconnected,
            try_index: 0,
            requested: None,
            version: None,
            msg_conn: MESSAGE_CONNECTION_ID,
            deadline: None,
            unload_sent: false,
            refused: 0,
            monitor: (0, 0),
        }
    }

    /// The connection as seen from outside.
    pub fn info(&self) -> ConnectionInfo {
        ConnectionInfo {
            state: self.state,
            version: self.version,
            requested: self.requested,
            msg_conn_id: self.msg_conn,
            versions_refused: self.refused,
        }
    }

    /// The state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The negotiated version, once a version was accepted.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The version host messages are decoded for: the negotiated one, or during the handshake
    /// the one asked for (the layout of VERSION_RESPONSE depends on it).
    pub fn decode_version(&self) -> Option<Version> {
        self.version.or(self.requested)
    }

    /// Connection id for messages to the host.
    pub fn msg_conn(&self) -> ConnectionId {
        self.msg_conn
    }

    /// Whether clients may open channels (offers are being or have been delivered).
    pub fn is_connected(&self) -> bool {
        matches!(
            self.state,
            ConnectionState::RequestingOffers | ConnectionState::Connected
        )
    }

    /// Whether the walk in progress (or the connection) passed monitor pages.
    pub fn monitored(&self) -> bool {
        self.monitor != (0, 0)
    }

    /// Whether UNLOAD was sent (the host forgets every offer when it handles it).
    pub fn unload_sent(&self) -> bool {
        self.unload_sent
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

    /// Whether [`Connection::start`] would start a walk now (disconnected or failed).
    pub fn can_start(&self) -> bool {
        matches!(
            self.state,
            ConnectionState::Disconnected | ConnectionState::Failed
        )
    }

    /// Starts the handshake: INITIATE_CONTACT for the newest allowed version, answered by
    /// `deadline`, with the monitor page GPAs `monitor` ((0, 0): none) in every attempt of the
    /// walk. Does nothing unless disconnected or failed.
    pub fn start<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        stats: &mut Stats,
        target_vp: VpIndex,
        deadline: Deadline,
        monitor: (u64, u64),
    ) {
        if !matches!(
            self.state,
            ConnectionState::Disconnected | ConnectionState::Failed
        ) {
            warn!("start ignored: connection is {}", self.state);
            return;
        }
        *self = Connection::new(self.max_version);
        self.monitor = monitor;
        self.try_from(hv, stats, 0, target_vp, deadline);
    }

    /// Posts INITIATE_CONTACT for the versions from try index `i` on until one post succeeds.
    fn try_from<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        stats: &mut Stats,
        mut i: usize,
        target_vp: VpIndex,
        deadline: Deadline,
    ) {
        while let Some(v) = self.try_version(i) {
            let msg = ChannelMessage::InitiateContact(InitiateContact {
                version_requested: v,
                target_vcpu: if v.honours_target_vcpu() {
                    target_vp
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
                monitor_page1: self.monitor.0,
                monitor_page2: self.monitor.1,
                client_id: None,
            });
            let conn = v.initiate_contact_connection_id();
            // A refusal while walking down the versions is expected (an older host), not a
            // warning; the end of the walk with no version accepted is.
            match post_unlogged(hv, stats, conn, &msg) {
                Ok(()) => {
                    info!("INITIATE_CONTACT {v} on {conn}");
                    self.state = ConnectionState::Connecting;
                    self.try_index = i;
                    self.requested = Some(v);
                    self.deadline = Some(deadline);
                    return;
                }
                Err(PostError::Status(s)) if s == HvStatus::INVALID_CONNECTION_ID => {
                    // docs/protocol.md#connection-ids, #qemus-version-handshake: a host that
                    // predates 5.0 has no connection 4.
                    info!("{v}: {conn} unknown to the host, trying an older version");
                }
                Err(e) => {
                    warn!("{v}: INITIATE_CONTACT not posted ({e:?}), trying an older version")
                }
            }
            self.refused += 1;
            i += 1;
        }
        warn!("no VMBus version accepted");
        self.state = ConnectionState::Failed;
        self.requested = None;
        self.deadline = None;
    }

    /// VERSION_RESPONSE; on acceptance REQUESTOFFERS, answered by `deadline`. False if no
    /// VERSION_RESPONSE was awaited.
    pub fn on_version_response<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        stats: &mut Stats,
        r: &VersionResponse,
        target_vp: VpIndex,
        deadline: Deadline,
    ) -> bool {
        let (ConnectionState::Connecting, Some(v)) = (self.state, self.requested) else {
            return false;
        };
        let next = self.try_index + 1;
        if !r.is_success(v) {
            // Expected while walking down from the newest version.
            info!("host refused {v} (state {})", r.connection_state.0);
            self.refused += 1;
            self.try_from(hv, stats, next, target_vp, deadline);
            return true;
        }
        let msg_conn = if v.uses_msg_sint() {
            let id = r.msg_conn_id;
            if id.0 == 0 || !id.is_valid() {
                stats.hostile += 1;
                stats.malformed += 1;
                warn!(
                    "host accepted {v} with invalid msg_conn_id {:#x}; trying older",
                    id.0
                );
                self.refused += 1;
                self.try_from(hv, stats, next, target_vp, deadline);
                return true;
            }
            id
        } else {
            MESSAGE_CONNECTION_ID
        };
        info!("VMBus {v} accepted, messages on {msg_conn}");
        self.version = Some(v);
        self.requested = None;
        self.msg_conn = msg_conn;
        match post(hv, stats, msg_conn, &ChannelMessage::RequestOffers) {
            Ok(()) => {
                self.state = ConnectionState::RequestingOffers;
                self.deadline = Some(deadline);
            }
            Err(_) => {
                warn!("REQUESTOFFERS not posted; connection failed");
                self.state = ConnectionState::Failed;
                self.deadline = None;
            }
        }
        true
    }

    /// ALLOFFERS_DELIVERED. False if it was not awaited.
    pub fn on_all_offers(&mut self) -> bool {
        if self.state != ConnectionState::RequestingOffers {
            return false;
        }
        info!("all offers delivered");
        self.state = ConnectionState::Connected;
        self.deadline = None;
        true
    }

    /// Starts bus unload.
    pub fn begin_unload(&mut self) -> UnloadStart {
        match self.state {
            ConnectionState::RequestingOffers | ConnectionState::Connected => {
                self.state = ConnectionState::Unloading;
                self.deadline = None;
                UnloadStart::TearDown
            }
            // Nothing was negotiated; a late VERSION_RESPONSE is ignored as unexpected.
            ConnectionState::Connecting => UnloadStart::Finish,
            ConnectionState::Unloading
            | ConnectionState::Disconnected
            | ConnectionState::Failed => UnloadStart::Nothing,
        }
    }

    /// Whether the unload waits for the channels' teardowns before UNLOAD.
    pub fn awaits_teardowns(&self) -> bool {
        self.state == ConnectionState::Unloading && !self.unload_sent
    }

    /// Sends UNLOAD (once every teardown finished), answered by `deadline`. False if the unload
    /// is over instead: the version has no UNLOAD, or the post failed.
    pub fn send_unload<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        stats: &mut Stats,
        deadline: Deadline,
    ) -> bool {
        if !self.version.is_some_and(|v| v.should_unload()) {
            return false;
        }
        if post(hv, stats, self.msg_conn, &ChannelMessage::Unload).is_err() {
            return false;
        }
        self.unload_sent = true;
        self.deadline = Some(deadline);
        true
    }

    /// UNLOAD_RESPONSE. False if it was not awaited.
    pub fn on_unload_response(&mut self) -> bool {
        let awaited = self.state == ConnectionState::Unloading && self.unload_sent;
        if awaited {
            info!("unload complete");
        }
        awaited
    }

    /// The unload is over: disconnected.
    pub fn finish_unload(&mut self) {
        self.state = ConnectionState::Disconnected;
        self.version = None;
        self.requested = None;
        self.unload_sent = false;
        self.deadline = None;
    }

    /// Connection-level timeouts at tick `now`. Returns true if the unload timed out, so the
    /// driver finishes it.
    pub fn tick(&mut self, now: u64, stats: &mut Stats) -> bool {
        if !self.deadline.is_some_and(|d| d.passed(now)) {
            return false;
        }
        stats.timeouts += 1;
        self.deadline = None;
        match self.state {
            ConnectionState::Connecting => {
                // A late reply could not be told apart from the answer to a next attempt (the
                // response names no version), so the walk stops here, as Linux's does.
                warn!("no VERSION_RESPONSE in time; connection failed");
                self.state = ConnectionState::Failed;
                self.requested = None;
                false
            }
            ConnectionState::RequestingOffers => {
                warn!("no ALLOFFERS_DELIVERED in time; continuing with the offers received");
                self.state = ConnectionState::Connected;
                false
            }
            ConnectionState::Unloading => {
                warn!("no UNLOAD_RESPONSE in time; disconnected anyway");
                true
            }
            _ => false,
        }
    }
}
