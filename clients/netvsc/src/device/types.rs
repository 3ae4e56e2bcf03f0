//! The device's vocabulary: configuration, errors, the outbox, events and phases.

use crate::nvsp::{GuestMessage, MESSAGE_SIZE, NvspError, Version};
use crate::rndis::{self, RndisError};
use crate::vmpkt::PacketError;

/// Memory shared with the host (the receive or the send buffer), read and written by copies
/// only: the host may change it at any moment, so nothing is interpreted in place.
pub trait BufferMem {
    /// Bytes of the buffer.
    fn size(&self) -> usize;
    /// Copies `out.len()` bytes at `offset` out; the caller keeps them inside [`Self::size`].
    fn read(&self, offset: usize, out: &mut [u8]);
    /// Copies `data` in at `offset`; the caller keeps it inside [`Self::size`].
    fn write(&mut self, offset: usize, data: &[u8]);
}

impl BufferMem for [u8] {
    fn size(&self) -> usize {
        self.len()
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        out.copy_from_slice(&self[offset..offset + out.len()]);
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        self[offset..offset + data.len()].copy_from_slice(data);
    }
}

/// What the PD chose before start: the buffers (their GPADLs already established on the
/// channel) and the link settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// GPADL handle of the receive buffer.
    pub recv_gpadl: u32,
    /// Bytes of the receive buffer.
    pub recv_len: u32,
    /// GPADL handle of the send buffer.
    pub send_gpadl: u32,
    /// Bytes of the send buffer.
    pub send_len: u32,
    /// The guest's MTU (the host's maximum frame size lowers it).
    pub mtu: u32,
    /// Packet filter set at the end of configuration ([`rndis::filter`] bits).
    pub packet_filter: u32,
}

impl Config {
    /// The default filter: directed, multicast and broadcast frames.
    pub const DEFAULT_FILTER: u32 =
        rndis::filter::DIRECTED | rndis::filter::MULTICAST | rndis::filter::BROADCAST;
}

/// How the host divided the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvLayout {
    /// Bytes of each sub-allocation: the longest range one receive may use.
    pub section_size: u32,
    /// Number of sub-allocations.
    pub sections: u32,
}

/// What configuration found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The NVSP version in use.
    pub version: Version,
    /// The permanent MAC address.
    pub mac: [u8; 6],
    /// The MTU: the guest's, lowered to the host's maximum frame size.
    pub mtu: u32,
    /// Whether the link is up.
    pub link_up: bool,
    /// The receive buffer's division.
    pub recv: RecvLayout,
    /// Bytes of each send-buffer section.
    pub send_section_size: u32,
    /// Send-buffer sections.
    pub send_sections: u32,
}

/// Which host answer refused the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `SEND_RECV_BUF_COMPLETE`.
    RecvBuffer,
    /// `SEND_SEND_BUF_COMPLETE`.
    SendBuffer,
    /// RNDIS `INIT_C`.
    RndisInit,
    /// RNDIS `QUERY_C` of the MAC address.
    MacAddress,
    /// RNDIS `SET_C` of the packet filter.
    PacketFilter,
    /// `SUBCHANNEL` completion.
    Subchannels,
}

/// Errors. [`Error::is_hostile`] tells the host's protocol violations from the guest's own
/// conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A malformed VMBus packet.
    Packet(PacketError),
    /// A malformed NVSP message.
    Nvsp(NvspError),
    /// A malformed RNDIS message.
    Rndis(RndisError),
    /// A VMBus packet type netvsc does not take.
    UnexpectedPacketType(u16),
    /// An NVSP message of a type not expected here.
    UnexpectedMessage(u32),
    /// A completion for no transaction in flight.
    UnknownCompletion(u64),
    /// An RNDIS completion for no request in flight.
    UnknownRequest(u32),
    /// An RNDIS completion of another type than its request.
    RequestMismatch(u32),
    /// The host refused every NVSP version.
    AllVersionsRefused,
    /// The host refused a step with this status.
    Refused(Refusal, u32),
    /// The receive buffer's sections do not fit it (or are smaller than a minimal frame).
    BadRecvLayout(RecvLayout),
    /// A send-buffer section size smaller than a minimal frame, or larger than the buffer.
    BadSendSectionSize(u32),
    /// A receive of data before the receive buffer was accepted.
    NoReceiveBuffer,
    /// A transfer page set other than the receive buffer.
    WrongTransferSet(u16),
    /// A receive range outside the receive buffer or longer than a section.
    BadRange {
        /// Offset.
        offset: u32,
        /// Bytes.
        len: u32,
    },
    /// An RNDIS control message longer than [`MAX_CONTROL_IN`].
    OversizeControl(u32),
    /// A sub-channel completion granting more than asked.
    SubchannelCount {
        /// Asked.
        asked: u32,
        /// Granted.
        granted: u32,
    },
    /// A frame longer than the caller's buffer, the MTU, or (for [`Netvsc::send_frame`](super::Netvsc::send_frame)) a
    /// section.
    FrameTooBig(usize),
    /// Every send-buffer section is in flight.
    NoSection,
    /// Every GPA-direct slot is in flight.
    NoGpaSlot,
    /// The outbox is full: send and clear it first.
    OutboxFull,
    /// Not configured yet (or failed).
    NotReady,
    /// The negotiated version has no sub-channels.
    NoSubchannels,
    /// The channel was rescinded.
    Rescinded,
}

impl Error {
    /// Whether the host broke the protocol (as opposed to refusing politely or the guest
    /// running out of resources).
    pub fn is_hostile(&self) -> bool {
        matches!(
            self,
            Error::Packet(_)
                | Error::Nvsp(_)
                | Error::Rndis(_)
                | Error::UnexpectedPacketType(_)
                | Error::UnexpectedMessage(_)
                | Error::UnknownCompletion(_)
                | Error::UnknownRequest(_)
                | Error::RequestMismatch(_)
                | Error::BadRecvLayout(_)
                | Error::BadSendSectionSize(_)
                | Error::NoReceiveBuffer
                | Error::WrongTransferSet(_)
                | Error::BadRange { .. }
                | Error::OversizeControl(_)
                | Error::SubchannelCount { .. }
        )
    }
}

impl From<PacketError> for Error {
    fn from(e: PacketError) -> Self {
        Error::Packet(e)
    }
}
impl From<NvspError> for Error {
    fn from(e: NvspError) -> Self {
        Error::Nvsp(e)
    }
}
impl From<RndisError> for Error {
    fn from(e: RndisError) -> Self {
        Error::Rndis(e)
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Packet(e) => write!(f, "{e}"),
            Error::Nvsp(e) => write!(f, "{e}"),
            Error::Rndis(e) => write!(f, "{e}"),
            Error::UnexpectedPacketType(t) => write!(f, "unexpected VMBus packet type {t}"),
            Error::UnexpectedMessage(t) => write!(f, "unexpected NVSP message type {t}"),
            Error::UnknownCompletion(t) => write!(f, "completion for unknown id {t:#x}"),
            Error::UnknownRequest(r) => write!(f, "RNDIS completion for unknown request {r}"),
            Error::RequestMismatch(r) => write!(f, "RNDIS completion type wrong for request {r}"),
            Error::AllVersionsRefused => f.write_str("host refused every NVSP version"),
            Error::Refused(what, s) => write!(f, "host refused {what:?} with status {s:#x}"),
            Error::BadRecvLayout(l) => write!(
                f,
                "receive sections {} x {} do not fit the buffer",
                l.sections, l.section_size
            ),
            Error::BadSendSectionSize(s) => write!(f, "bad send section size {s}"),
            Error::NoReceiveBuffer => f.write_str("receive before the receive buffer"),
            Error::WrongTransferSet(id) => write!(f, "transfer page set {id:#x}"),
            Error::BadRange { offset, len } => {
                write!(f, "receive range at {offset} of {len} bytes is invalid")
            }
            Error::OversizeControl(l) => write!(f, "RNDIS control message of {l} bytes"),
            Error::SubchannelCount { asked, granted } => {
                write!(f, "{granted} sub-channels granted, {asked} asked")
            }
            Error::FrameTooBig(l) => write!(f, "frame of {l} bytes too big"),
            Error::NoSection => f.write_str("no free send-buffer section"),
            Error::NoGpaSlot => f.write_str("no free GPA-direct slot"),
            Error::OutboxFull => f.write_str("outbox full"),
            Error::NotReady => f.write_str("device not ready"),
            Error::NoSubchannels => f.write_str("no sub-channels before NVSP 5"),
            Error::Rescinded => f.write_str("channel rescinded"),
        }
    }
}

/// Smallest frame a section or sub-allocation must hold (Linux's `ETH_MIN_MTU`).
pub const MIN_SECTION: u32 = 68;
/// Longest RNDIS control message taken from the host.
pub const MAX_CONTROL_IN: usize = 256;
/// Ethernet header bytes.
pub const ETH_HEADER: u32 = 14;
/// GPA-direct sends in flight at once.
pub const GPA_SLOTS: usize = 16;
/// Packets an [`Outbox`] holds.
pub const OUTBOX: usize = 8;
/// RNDIS control requests in flight at once.
pub const MAX_REQUESTS: usize = 4;

pub(super) const TID_CONTROL: u64 = 0x8000_0000_0000_0000;
pub(super) const TID_INIT: u64 = TID_CONTROL | 1;
pub(super) const TID_RECV_BUF: u64 = TID_CONTROL | 2;
pub(super) const TID_SEND_BUF: u64 = TID_CONTROL | 3;
pub(super) const TID_SUBCHANNEL: u64 = TID_CONTROL | 4;
pub(super) const TID_SECTION: u64 = 0x4000_0000_0000_0000;
pub(super) const TID_GPA: u64 = 0x2000_0000_0000_0000;
pub(super) const TID_TAGS: u64 = 0xF000_0000_0000_0000;

/// How a [`Packet`] goes on the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// In-band data (type 6): `Channel::send_packet`.
    InBand,
    /// Completion (type 11) of the host's transaction.
    Completion,
    /// GPA-direct (type 9): the caller adds the page ranges ([`GpaSend`]).
    GpaDirect,
}

/// A packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// How it goes.
    pub kind: PacketKind,
    /// Its transaction id.
    pub transaction_id: u64,
    /// Whether a completion is requested.
    pub completion_requested: bool,
    len: usize,
    bytes: [u8; MESSAGE_SIZE],
}

impl Packet {
    pub(super) fn new(
        kind: PacketKind,
        tid: u64,
        completion_requested: bool,
        m: GuestMessage,
    ) -> Packet {
        let mut bytes = [0; MESSAGE_SIZE];
        let len = m.encode(&mut bytes);
        Packet {
            kind,
            transaction_id: tid,
            completion_requested,
            len,
            bytes,
        }
    }

    /// The NVSP message.
    pub fn payload(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Packets waiting to be sent, in order.
#[derive(Debug, Clone)]
pub struct Outbox {
    items: [Option<Packet>; OUTBOX],
    n: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    /// Empty.
    pub const fn new() -> Outbox {
        Outbox {
            items: [None; OUTBOX],
            n: 0,
        }
    }

    /// The packets, oldest first.
    pub fn packets(&self) -> impl Iterator<Item = &Packet> {
        self.items[..self.n].iter().flatten()
    }

    /// Number of packets.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Forgets the packets (after sending them).
    pub fn clear(&mut self) {
        *self = Outbox::new();
    }

    pub(crate) fn push(&mut self, p: Packet) -> Result<(), Error> {
        let slot = self.items.get_mut(self.n).ok_or(Error::OutboxFull)?;
        *slot = Some(p);
        self.n += 1;
        Ok(())
    }
}

/// What the device reports to its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// Configuration finished.
    Ready(DeviceInfo),
    /// A received Ethernet frame.
    Frame(&'a [u8]),
    /// The link came up.
    LinkUp,
    /// The link went down.
    LinkDown,
    /// A frame send completed (its transaction id); its section or pages are free.
    TxDone(u64),
    /// The host allocated this many sub-channels.
    Subchannels(u32),
    /// A packet-filter change finished with this RNDIS status.
    FilterSet(u32),
}

/// The phase of the device; variants carry what the phase needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started.
    Idle,
    /// `INIT` for [`Version::PROPOSALS`]`[index]` awaits its completion.
    Version {
        /// Index of the proposal.
        index: usize,
    },
    /// `SEND_RECV_BUF` awaits its completion.
    RecvBuffer {
        /// The version agreed.
        version: Version,
    },
    /// `SEND_SEND_BUF` awaits its completion.
    SendBuffer {
        /// The version agreed.
        version: Version,
        /// The receive buffer's division.
        recv: RecvLayout,
    },
    /// RNDIS configuration; one request in flight.
    Rndis(RndisStep),
    /// Configured: data flows.
    Ready,
    /// Stopped by this error.
    Failed(Error),
    /// The channel was rescinded.
    Rescinded,
}

/// The RNDIS configuration steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RndisStep {
    /// `INIT`.
    Init,
    /// `QUERY` of the permanent address.
    Mac,
    /// `QUERY` of the maximum frame size.
    Mtu,
    /// `QUERY` of the media connect status.
    Link,
    /// `SET` of the packet filter.
    Filter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReqKind {
    Init,
    Query(u32),
    Set(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    pub(super) req_id: u32,
    pub(super) kind: ReqKind,
}

/// What a rescind dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RescindReport {
    /// Send-buffer sections that were in flight.
    pub sections: u32,
    /// GPA-direct sends that were in flight.
    pub gpa_sends: u32,
    /// RNDIS requests that were in flight.
    pub requests: u32,
}

/// A GPA-direct send prepared by [`Netvsc::send_frame_gpa`](super::Netvsc::send_frame_gpa).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpaSend {
    /// The RNDIS `PACKET` header: place it in guest memory right before the frame's bytes
    /// are described (its own range, or the first bytes of the first range).
    pub header: [u8; rndis::PACKET_HEADER_LEN],
    /// The NVSP `SEND_RNDIS_PKT` (no section) to send as a GPA-direct packet whose ranges
    /// cover the header then the frame.
    pub packet: Packet,
}
