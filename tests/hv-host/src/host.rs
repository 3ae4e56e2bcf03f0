//! The host: its state, the guest's hypercall entry points, and the message pump.
//!
//! Guest messages are validated at the hypercall (PostMessage block rules, connection ids), then
//! queued and processed in order. Processing waits while the guest has not taken earlier
//! messages: Hyper-V mode while the SynIC queue has no room, QEMU mode while any message waits for
//! the slot (QEMU processes one message at a time). None of the control path touches guest memory;
//! only [`Host::poll`] does, where the devices run.

use vmbus_driver::hv::{HvMessageType, HvStatus, PostMessageInput, SignalEventInput};
use vmbus_driver::ids::{ConnectionId, GpadlId, RelId};
use vmbus_driver::msg::{self, ChannelMessage, MAX_PAYLOAD, MessageType};
use vmbus_driver::version::Version;

use crate::config::{HostConfig, Mode};
use crate::devices::service::Services;
use crate::fifo::Fifo;
use crate::gpadl::GpadlTable;
use crate::hostile::Hostile;
use crate::log::{Counters, Direction, ErrorLog, GuestError, LogRecord, MessageLog, TraceLog};
use crate::offers::{Channel, DeviceSlot, MAX_DEVICES, RELID_SLOTS};
use crate::synic::{SlotMessage, Synic};

/// Largest configurable inbound queue.
pub const MAX_INBOUND: usize = 64;
/// Host events (offers, rescinds) that may wait for room in the SynIC queue.
pub const OUTBOX: usize = 4608;
/// Largest packet payload a device handles; larger packets are dropped and counted.
pub const SCRATCH: usize = 4096;

/// Why a host action (not a guest message) could not be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// All 2047 relids are in use (or waiting for RELID_RELEASED).
    NoFreeRelid,
    /// The device table is full.
    TooManyDevices,
    /// No such device.
    UnknownDevice(u16),
    /// The relid is not an offered channel.
    UnknownRelid(RelId),
    /// The outgoing queue is full.
    QueueFull,
    /// The channel is not open.
    NotOpen(RelId),
    /// The service has not negotiated yet, or a request of the same kind is in progress.
    NotReady,
}

impl core::fmt::Display for HostError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoFreeRelid => f.write_str("no free relid (1..=2047)"),
            Self::TooManyDevices => f.write_str("device table full"),
            Self::UnknownDevice(d) => write!(f, "no device {d}"),
            Self::UnknownRelid(r) => write!(f, "{r} is not offered"),
            Self::QueueFull => f.write_str("host message queue full"),
            Self::NotOpen(r) => write!(f, "{r} is not open"),
            Self::NotReady => f.write_str("service not ready"),
        }
    }
}

/// The VMBus connection as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// No version negotiated.
    Disconnected,
    /// A version was accepted.
    Connected {
        /// The negotiated version.
        version: Version,
        /// Connection id every later message must be posted on.
        msg_conn: ConnectionId,
        /// INITIATE_CONTACT.target_vcpu (honoured from 3.0).
        target_vcpu: u32,
        /// The legacy interrupt page (< 2.4).
        interrupt_page: Option<u64>,
        /// REQUESTOFFERS was answered on this connection.
        offers_requested: bool,
    },
}

impl Connection {
    /// The negotiated version.
    pub fn version(&self) -> Option<Version> {
        match self {
            Self::Connected { version, .. } => Some(*version),
            Self::Disconnected => None,
        }
    }
}

/// Something the host must still tell the guest, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostEvent {
    Offer(RelId),
    Rescind(RelId),
    AllOffersDelivered,
}

/// A guest message accepted by the hypercall and not yet processed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inbound {
    pub connection: ConnectionId,
    pub len: u8,
    pub bytes: [u8; MAX_PAYLOAD],
}

/// The simulated Hyper-V (or QEMU) host.
#[derive(Debug)]
pub struct Host {
    pub(crate) config: HostConfig,
    pub(crate) synic: Synic,
    pub(crate) conn: Connection,
    pub(crate) channels: [Channel; RELID_SLOTS],
    pub(crate) devices: [DeviceSlot; MAX_DEVICES],
    pub(crate) gpadls: GpadlTable,
    pub(crate) inbound: Fifo<Inbound, MAX_INBOUND>,
    pub(crate) outbox: Fifo<HostEvent, OUTBOX>,
    pub(crate) hostile: Hostile,
    pub(crate) log: MessageLog,
    pub(crate) errors: ErrorLog,
    pub(crate) counters: Counters,
    /// The guest message type being answered (for the `silence` mode).
    pub(crate) replying_to: Option<MessageType>,
    /// A WS2008 guest signalled connection 2: scan the interrupt page at the next poll.
    pub(crate) legacy_scan: bool,
    /// Next GPADL id used by `stray_gpadl_created`.
    pub(crate) stray_gpadl: u32,
    /// The monitor pages of the connection (docs/protocol.md#monitor-pages).
    pub(crate) monitor: crate::monitor::MonitorState,
    /// Successful opens wait for [`Host::hold_open_results`]`(false)` before their result.
    pub(crate) hold_open_results: bool,
    pub(crate) scratch: [u8; SCRATCH],
    /// Integration services and Dynamic Memory.
    pub(crate) services: Services,
    /// Their message trace.
    pub(crate) trace: TraceLog,
    /// The synthetic network adapter.
    pub(crate) net: crate::devices::network::NetState,
    /// The storage devices and their RAM disk.
    pub(crate) storage: crate::devices::storage::Storage,
}

impl Host {
    /// A host with no devices, disconnected. `const`, so a PD can keep it in a static.
    pub const fn new(config: HostConfig) -> Self {
        Self {
            config,
            synic: Synic::new(),
            conn: Connection::Disconnected,
            channels: [Channel::FREE; RELID_SLOTS],
            devices: [DeviceSlot::EMPTY; MAX_DEVICES],
            gpadls: GpadlTable::new(),
            inbound: Fifo::new(Inbound {
                connection: ConnectionId(0),
                len: 0,
                bytes: [0; MAX_PAYLOAD],
            }),
            outbox: Fifo::new(HostEvent::AllOffersDelivered),
            hostile: Hostile::NONE,
            log: MessageLog::new(),
            errors: ErrorLog::new(),
            counters: Counters {
                messages_received: 0,
                messages_sent: 0,
                hypercall_failures: 0,
                guest_errors: 0,
                ignored: 0,
                silenced: 0,
                signals_received: 0,
                monitor_signals: 0,
                packets_of_freed_channels: 0,
                monitor_scans: 0,
                spurious_signals: 0,
                events_sent: 0,
                gpadls_created: 0,
                gpadls_torn_down: 0,
                gpadls_dropped: 0,
                opens: 0,
                closes: 0,
                offers_sent: 0,
                rescinds_sent: 0,
                releases: 0,
                resets: 0,
            },
            replying_to: None,
            legacy_scan: false,
            stray_gpadl: 0xF000_0000,
            monitor: crate::monitor::MonitorState::NONE,
            hold_open_results: false,
            scratch: [0; SCRATCH],
            services: Services::NEW,
            trace: TraceLog::new(),
            net: crate::devices::network::NetState::NEW,
            storage: crate::devices::storage::Storage::NEW,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The SynIC state (slot, queue, flags, interrupt).
    pub fn synic(&self) -> &Synic {
        &self.synic
    }

    /// The SynIC state, for the guest-side operations (copy the slot, clear it, take flags).
    pub fn synic_mut(&mut self) -> &mut Synic {
        &mut self.synic
    }

    /// The connection state.
    pub fn connection(&self) -> Connection {
        self.conn
    }

    /// The message log.
    pub fn log(&self) -> &MessageLog {
        &self.log
    }

    /// The guest errors noticed.
    pub fn errors(&self) -> &ErrorLog {
        &self.errors
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The hostile behaviours in force.
    pub fn hostile(&self) -> Hostile {
        self.hostile
    }

    /// Sets the hostile behaviours (any time; takes effect with the next message or poll).
    pub fn set_hostile(&mut self, h: Hostile) {
        self.hostile = h;
    }

    /// Guest messages accepted but not yet processed.
    pub fn inbound_pending(&self) -> usize {
        self.inbound.len()
    }

    /// Host events (offers, rescinds) waiting for room in the SynIC queue.
    pub fn outbox_pending(&self) -> usize {
        self.outbox.len()
    }

    /// GPADLs the host holds (created, or torn down but still mapped by an open channel).
    pub fn gpadl_count(&self) -> usize {
        self.gpadls.count()
    }

    /// Guest pages covered by the GPADLs the host holds.
    pub fn gpadl_pages(&self) -> usize {
        self.gpadls.pages_held()
    }

    /// The PFNs of GPADL `id`, if the host holds it.
    pub fn gpadl_pfns(&self, id: GpadlId) -> Option<&[u64]> {
        self.gpadls.find(id).map(|s| self.gpadls.pfns(s))
    }

    pub(crate) fn guest_error(&mut self, e: GuestError) {
        self.counters.guest_errors += 1;
        self.errors.push(e);
    }

    pub(crate) fn version(&self) -> Option<Version> {
        self.conn.version()
    }

    // ---- the guest's hypercalls ----

    /// HvCallPostMessage from the guest. Validates the input as the hypervisor does, then accepts
    /// the message (SUCCESS) or refuses it with the status a guest would see.
    pub fn post_message(
        &mut self,
        connection: ConnectionId,
        message_type: HvMessageType,
        payload: &[u8],
    ) -> HvStatus {
        match PostMessageInput::new(connection, message_type, payload) {
            Ok(input) => self.accept(&input),
            Err(e) => {
                self.counters.hypercall_failures += 1;
                e.status()
            }
        }
    }

    /// HvCallPostMessage with the raw 256-byte input block (reserved fields checked too).
    pub fn post_message_block(&mut self, block: &[u8]) -> HvStatus {
        match PostMessageInput::decode(block) {
            Ok(input) => self.accept(&input),
            Err(e) => {
                self.counters.hypercall_failures += 1;
                e.status()
            }
        }
    }

    fn refuse(&mut self, s: HvStatus) -> HvStatus {
        self.counters.hypercall_failures += 1;
        s
    }

    fn accept(&mut self, input: &PostMessageInput) -> HvStatus {
        let conn = input.connection();
        let payload = input.payload();
        match self.config.mode {
            Mode::Qemu => {
                // Only connection 1 is registered (docs/protocol.md#qemus-version-handshake); QEMU
                // checks the type and the VMBus message type before queueing
                // (docs/protocol.md#message-types).
                if conn != vmbus_driver::version::MESSAGE_CONNECTION_ID {
                    return self.refuse(HvStatus::INVALID_CONNECTION_ID);
                }
                // QEMU knows the types up to UNLOAD_RESPONSE.
                let known = MessageType::OFFERCHANNEL.0..=MessageType::UNLOAD_RESPONSE.0;
                let t = msg::MessageHeader::read(payload).map(|h| h.msgtype.0);
                if input.message_type() != HvMessageType::VMBUS
                    || !t.is_some_and(|t| known.contains(&t))
                {
                    return self.refuse(HvStatus::INVALID_HYPERCALL_INPUT);
                }
            }
            Mode::HyperV => {
                let registered = conn == vmbus_driver::version::MESSAGE_CONNECTION_ID
                    || conn == vmbus_driver::version::MESSAGE_CONNECTION_ID_4
                    || matches!(self.conn, Connection::Connected { msg_conn, .. } if msg_conn == conn);
                if !registered {
                    return self.refuse(HvStatus::INVALID_CONNECTION_ID);
                }
            }
        }
        if self.inbound.len() >= self.config.inbound_capacity.min(MAX_INBOUND) {
            return self.refuse(HvStatus::INSUFFICIENT_BUFFERS);
        }
        if input.message_type() != HvMessageType::VMBUS {
            // Delivered to the VMBus port but not a VMBus message: the server drops it.
            self.counters.messages_received += 1;
            self.guest_error(GuestError::NotVmbusMessage(input.message_type().0));
            return HvStatus::SUCCESS;
        }
        let mut bytes = [0u8; MAX_PAYLOAD];
        bytes[..payload.len()].copy_from_slice(payload);
        let decoded = msg::decode(payload, self.version()).ok();
        self.log.push(LogRecord::from_bytes(
            Direction::Received,
            conn,
            payload,
            decoded.as_ref(),
        ));
        self.counters.messages_received += 1;
        // Room was checked above.
        let _ = self.inbound.push(Inbound {
            connection: conn,
            // payload.len() <= 240 (PostMessageInput checked it).
            len: payload.len() as u8,
            bytes,
        });
        self.process();
        HvStatus::SUCCESS
    }

    /// HvCallSignalEvent from the guest (the fast form's connection id and flag number).
    pub fn signal_event(&mut self, connection: ConnectionId, flag_number: u16) -> HvStatus {
        let input = SignalEventInput::new(connection, flag_number)
            .and_then(|i| SignalEventInput::from_fast_rdx(i.fast_rdx()));
        match input {
            Ok(i) => self.signal(i.connection()),
            Err(e) => self.refuse(e.status()),
        }
    }

    /// HvCallSignalEvent with the raw fast-call RDX.
    pub fn signal_event_fast(&mut self, rdx: u64) -> HvStatus {
        match SignalEventInput::from_fast_rdx(rdx) {
            Ok(i) => self.signal(i.connection()),
            Err(e) => self.refuse(e.status()),
        }
    }

    fn signal(&mut self, conn: ConnectionId) -> HvStatus {
        if conn == vmbus_driver::version::EVENT_CONNECTION_ID
            && self.version() == Some(Version::WS2008)
        {
            // WS2008: the relids are in the interrupt page's second half
            // (docs/protocol.md#how-vmbus-uses-sint2).
            self.counters.signals_received += 1;
            self.legacy_scan = true;
            return HvStatus::SUCCESS;
        }
        match self.relid_of_connection(conn) {
            Some(relid) => self.channel_signalled(relid),
            None => self.refuse(HvStatus::INVALID_CONNECTION_ID),
        }
    }

    /// The guest's EOM write: the next waiting message may enter the freed slot, and processing
    /// blocked behind it resumes.
    pub fn end_of_message(&mut self) {
        self.synic.end_of_message();
        self.process();
    }

    // ---- processing ----

    /// Whether the next guest message may be processed now.
    fn can_process(&self) -> bool {
        if !self.outbox.is_empty() {
            return false;
        }
        match self.config.mode {
            // Room for a reply and a hostile duplicate.
            Mode::HyperV => self.synic.room() >= 2,
            // One message at a time: nothing may wait for the slot.
            Mode::Qemu => self.synic.queued() == 0,
        }
    }

    /// Moves host events into the SynIC queue and processes guest messages while allowed. Called
    /// by every entry point; the system simulation may call it too.
    pub fn process(&mut self) {
        loop {
            self.synic.retry();
            self.pump();
            if self.inbound.is_empty() || !self.can_process() {
                return;
            }
            if let Some(m) = self.inbound.pop() {
                let len = usize::from(m.len);
                self.handle(m.connection, &m.bytes[..len]);
            }
        }
    }

    /// Sends waiting host events while the SynIC queue has room (QEMU: one at a time).
    fn pump(&mut self) {
        loop {
            let room = match self.config.mode {
                Mode::HyperV => self.synic.room() >= 2,
                Mode::Qemu => self.synic.queued() == 0,
            };
            if !room {
                return;
            }
            let Some(ev) = self.outbox.pop() else { return };
            match ev {
                HostEvent::Offer(relid) => self.send_offer(relid),
                HostEvent::Rescind(relid) => {
                    self.counters.rescinds_sent += 1;
                    self.send(ChannelMessage::RescindChannelOffer(
                        msg::RescindChannelOffer { child_relid: relid },
                    ));
                }
                HostEvent::AllOffersDelivered => {
                    self.send(ChannelMessage::AllOffersDelivered);
                }
            }
        }
    }

    /// Encodes `m`, applies the hostile transformations, logs it and queues it for the slot.
    /// Returns false if it was withheld or the queue was full.
    pub(crate) fn send(&mut self, mut m: ChannelMessage) -> bool {
        if let Some(t) = self.replying_to
            && self.hostile.silences(t)
        {
            self.counters.silenced += 1;
            return false;
        }
        self.hostile.alter(&mut m);
        let mut buf = [0u8; MAX_PAYLOAD];
        let Ok(mut len) = msg::encode(&m, &mut buf) else {
            return false;
        };
        if self.config.mode == Mode::Qemu {
            // QEMU rounds the payload up to 8 bytes, zero-filled
            // (docs/protocol.md#channel-messages).
            len = len.next_multiple_of(8).min(MAX_PAYLOAD);
        }
        let (len, size) = self.hostile.mangle(m.msgtype(), &mut buf, len);
        self.queue_bytes(&buf[..len], size, Some(&m))
    }

    /// Queues raw bytes with slot size byte `size`; logs them.
    pub(crate) fn queue_bytes(
        &mut self,
        bytes: &[u8],
        size: u8,
        m: Option<&ChannelMessage>,
    ) -> bool {
        let mut sm = SlotMessage::vmbus(bytes);
        sm.size = size;
        if self.synic.enqueue(sm).is_err() {
            return false;
        }
        self.log.push(LogRecord::from_bytes(
            Direction::Sent,
            ConnectionId(0),
            bytes,
            m,
        ));
        self.counters.messages_sent += 1;
        true
    }

    /// Handles one guest message.
    fn handle(&mut self, conn: ConnectionId, bytes: &[u8]) {
        let t = msg::MessageHeader::read(bytes)
            .map(|h| h.msgtype)
            .unwrap_or(MessageType::INVALID);
        self.replying_to = Some(t);
        self.dispatch(conn, t, bytes);
        self.replying_to = None;
    }

    fn dispatch(&mut self, conn: ConnectionId, t: MessageType, bytes: &[u8]) {
        let qemu = self.config.mode == Mode::Qemu;
        let m = match msg::decode(bytes, self.version()) {
            Ok(m) => m,
            Err(e) => {
                if qemu {
                    self.counters.ignored += 1;
                } else {
                    self.guest_error(GuestError::Decode(e));
                    if t == MessageType::GPADL_HEADER {
                        self.refuse_bad_gpadl_header(bytes);
                    }
                }
                return;
            }
        };
        match m {
            ChannelMessage::InitiateContact(ic) => return self.initiate_contact(conn, &ic),
            ChannelMessage::Unload => return self.unload(),
            _ => {}
        }
        let Connection::Connected { msg_conn, .. } = self.conn else {
            if qemu {
                self.counters.ignored += 1;
            } else {
                self.guest_error(GuestError::NotConnected(t));
            }
            return;
        };
        if conn != msg_conn {
            self.guest_error(GuestError::WrongConnection {
                msgtype: t,
                got: conn,
                expected: msg_conn,
            });
            return;
        }
        match m {
            ChannelMessage::RequestOffers => self.request_offers(),
            ChannelMessage::GpadlHeader(h) => self.gpadl_header(&h),
            ChannelMessage::GpadlBody(b) => self.gpadl_body(&b),
            ChannelMessage::GpadlTeardown(td) => self.gpadl_teardown(td.child_relid, td.gpadl),
            ChannelMessage::OpenChannel(o) => self.open_channel(&o),
            ChannelMessage::CloseChannel(c) => self.close_channel(c.child_relid),
            ChannelMessage::RelIdReleased(r) => self.relid_released(r.child_relid),
            ChannelMessage::ModifyChannel(mc) if !qemu => {
                self.modify_channel(mc.child_relid, mc.target_vp.0);
            }
            ChannelMessage::TlConnectRequest(tl) if !qemu => {
                // No hv_sock services: refuse as OpenVMM does (STATUS_CONNECTION_REFUSED, only
                // from 4.1 on; before that the guest gets nothing).
                if self.version().is_some_and(|v| v.supports_modifychannel()) {
                    self.send(ChannelMessage::TlConnectResult(msg::TlConnectResult {
                        endpoint_id: tl.guest_endpoint_id,
                        service_id: tl.host_service_id,
                        status: 0xC000_0236,
                    }));
                }
            }
            _ if qemu => self.counters.ignored += 1,
            other => self.guest_error(GuestError::UnexpectedMessage(other.msgtype())),
        }
    }

    /// Resets the bus as INITIATE_CONTACT and UNLOAD do: every channel closed, every GPADL and
    /// incomplete GPADL dropped, rescinded relids freed (the guest's references are gone), offers
    /// to be sent again after the next REQUESTOFFERS.
    pub(crate) fn reset_bus(&mut self) {
        self.counters.resets += 1;
        self.conn = Connection::Disconnected;
        self.outbox.clear();
        self.gpadls.clear();
        self.legacy_scan = false;
        self.monitor = crate::monitor::MonitorState::NONE;
        for relid in 1..RELID_SLOTS as u32 {
            self.reset_channel(RelId(relid));
        }
    }

    /// Sends GPADL_CREATED for a GPADL id with no GPADL behind it (the hostile action).
    pub fn inject_gpadl_created(&mut self, relid: RelId, gpadl: GpadlId, status: u32) -> bool {
        self.send(ChannelMessage::GpadlCreated(msg::GpadlCreated {
            child_relid: relid,
            gpadl,
            creation_status: status,
        }))
    }

    /// Sends RESCIND_CHANNELOFFER for any relid, offered or not (the hostile action "rescind of an
    /// unknown relid"). The host's own state does not change.
    pub fn inject_rescind(&mut self, relid: RelId) -> bool {
        self.send(ChannelMessage::RescindChannelOffer(
            msg::RescindChannelOffer { child_relid: relid },
        ))
    }

    /// Sends arbitrary bytes as a VMBus message with slot size byte `size` (malformed and
    /// truncated messages of any shape). `bytes` longer than 240 are cut.
    pub fn inject_raw(&mut self, bytes: &[u8], size: u8) -> bool {
        let n = bytes.len().min(MAX_PAYLOAD);
        self.queue_bytes(&bytes[..n], size, None)
    }

    /// Sets event flags `flags` (values >= 2048 ignored) and raises the interrupt: an event flood.
    pub fn flood_events(&mut self, flags: impl IntoIterator<Item = u32>) {
        for f in flags {
            self.synic.set_flag(f);
        }
    }
}
