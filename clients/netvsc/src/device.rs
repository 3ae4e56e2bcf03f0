//! The netvsc device: NVSP initialisation, RNDIS configuration, receive and transmit, rescind.

use crate::nvsp::{
    self, GuestMessage, HostMessage, INDIRECTION_ENTRIES, MESSAGE_SIZE, NvspError, Version,
};
use crate::rndis::{self, Control, Request, RndisError};
use crate::sections::{SectionError, Sections};
use crate::vmpkt::{self, PacketError, RawPacket, XferPages};

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
    /// A frame longer than the caller's buffer, the MTU, or (for [`Netvsc::send_frame`]) a
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

const TID_CONTROL: u64 = 0x8000_0000_0000_0000;
const TID_INIT: u64 = TID_CONTROL | 1;
const TID_RECV_BUF: u64 = TID_CONTROL | 2;
const TID_SEND_BUF: u64 = TID_CONTROL | 3;
const TID_SUBCHANNEL: u64 = TID_CONTROL | 4;
const TID_SECTION: u64 = 0x4000_0000_0000_0000;
const TID_GPA: u64 = 0x2000_0000_0000_0000;
const TID_TAGS: u64 = 0xF000_0000_0000_0000;

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
    fn new(kind: PacketKind, tid: u64, completion_requested: bool, m: GuestMessage) -> Packet {
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
enum ReqKind {
    Init,
    Query(u32),
    Set(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    req_id: u32,
    kind: ReqKind,
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

/// A GPA-direct send prepared by [`Netvsc::send_frame_gpa`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpaSend {
    /// The RNDIS `PACKET` header: place it in guest memory right before the frame's bytes
    /// are described (its own range, or the first bytes of the first range).
    pub header: [u8; rndis::PACKET_HEADER_LEN],
    /// The NVSP `SEND_RNDIS_PKT` (no section) to send as a GPA-direct packet whose ranges
    /// cover the header then the frame.
    pub packet: Packet,
}

/// The guest side of one netvsc channel.
#[derive(Debug, Clone)]
pub struct Netvsc {
    config: Config,
    phase: Phase,
    version: Option<Version>,
    recv: Option<RecvLayout>,
    send_section_size: u32,
    sections: Sections,
    control_sections: [Option<u32>; MAX_REQUESTS + 1],
    gpa: [bool; GPA_SLOTS],
    requests: [Option<Pending>; MAX_REQUESTS],
    next_req_id: u32,
    mac: [u8; 6],
    mtu: u32,
    link_up: bool,
    subchannels_asked: Option<u32>,
    subchannels: u32,
    indirection: Option<[u32; INDIRECTION_ENTRIES]>,
}

impl Netvsc {
    /// A device for `config`, not started.
    pub fn new(config: Config) -> Netvsc {
        Netvsc {
            config,
            phase: Phase::Idle,
            version: None,
            recv: None,
            send_section_size: 0,
            sections: Sections::EMPTY,
            control_sections: [None; MAX_REQUESTS + 1],
            gpa: [false; GPA_SLOTS],
            requests: [None; MAX_REQUESTS],
            next_req_id: 1,
            mac: [0; 6],
            mtu: config.mtu,
            link_up: false,
            subchannels_asked: None,
            subchannels: 0,
            indirection: None,
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The configuration result, once ready.
    pub fn info(&self) -> Option<DeviceInfo> {
        if self.phase != Phase::Ready {
            return None;
        }
        Some(DeviceInfo {
            version: self.version?,
            mac: self.mac,
            mtu: self.mtu,
            link_up: self.link_up,
            recv: self.recv?,
            send_section_size: self.send_section_size,
            send_sections: self.sections.count(),
        })
    }

    /// Whether the link is up.
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Send-buffer sections in flight.
    pub fn sections_in_use(&self) -> u32 {
        self.sections.in_use()
    }

    /// Sub-channels the host allocated.
    pub fn subchannels(&self) -> u32 {
        self.subchannels
    }

    /// The host's send indirection table, once sent.
    pub fn indirection_table(&self) -> Option<[u32; INDIRECTION_ENTRIES]> {
        self.indirection
    }

    /// Starts initialisation: `INIT` with the newest version.
    ///
    /// # Errors
    /// [`Error::NotReady`] when already started; [`Error::OutboxFull`].
    pub fn start(&mut self, out: &mut Outbox) -> Result<(), Error> {
        if self.phase != Phase::Idle {
            return Err(Error::NotReady);
        }
        self.propose(0, out)
    }

    fn propose(&mut self, index: usize, out: &mut Outbox) -> Result<(), Error> {
        let version = Version::PROPOSALS[index];
        out.push(Packet::new(
            PacketKind::InBand,
            TID_INIT,
            true,
            GuestMessage::Init { version },
        ))?;
        self.phase = Phase::Version { index };
        Ok(())
    }

    fn fail(&mut self, e: Error) -> Error {
        self.phase = Phase::Failed(e);
        e
    }

    /// Takes one packet from the channel, whole (descriptor, extended header, payload).
    /// Replies go to `out`; frames, link changes and completions to `events`. A receive
    /// always leaves its completion in `out`, with status failure when any range was bad;
    /// the first bad range's error is returned after the good ranges' frames were handed out.
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::is_hostile`] ones are the host's fault.
    pub fn on_packet<R, S, F>(
        &mut self,
        raw: &[u8],
        recv_buf: &R,
        send_buf: &mut S,
        scratch: &mut [u8],
        out: &mut Outbox,
        events: F,
    ) -> Result<(), Error>
    where
        R: BufferMem + ?Sized,
        S: BufferMem + ?Sized,
        F: FnMut(Event<'_>),
    {
        let p = RawPacket::parse(raw)?;
        self.on_parts(p, recv_buf, send_buf, scratch, out, events)
    }

    /// As [`Netvsc::on_packet`], for a packet already split into its parts: what
    /// `vmbus_client::Channel::recv_with_ext` returns (its `packet_type.0`, transaction id,
    /// completion flag, `ext[..ext_len]` and `buf[..len]`).
    ///
    /// # Errors
    /// As [`Netvsc::on_packet`].
    pub fn on_parts<R, S, F>(
        &mut self,
        p: RawPacket<'_>,
        recv_buf: &R,
        send_buf: &mut S,
        scratch: &mut [u8],
        out: &mut Outbox,
        mut events: F,
    ) -> Result<(), Error>
    where
        R: BufferMem + ?Sized,
        S: BufferMem + ?Sized,
        F: FnMut(Event<'_>),
    {
        if self.phase == Phase::Rescinded {
            return Err(Error::Rescinded);
        }
        match p.packet_type {
            vmpkt::TYPE_COMPLETION => self.on_completion(&p, send_buf, out, &mut events),
            vmpkt::TYPE_DATA_XFER_PAGES => {
                self.on_receive(&p, recv_buf, send_buf, scratch, out, &mut events)
            }
            vmpkt::TYPE_DATA_INBAND => {
                match HostMessage::decode(p.payload)? {
                    HostMessage::IndirectionTable { .. } => {
                        let v = self.version.unwrap_or(Version::V1);
                        self.indirection = nvsp::indirection_table(p.payload, v);
                    }
                    HostMessage::VfAssociation { .. } => {}
                    HostMessage::Other { msg_type } => {
                        return Err(Error::UnexpectedMessage(msg_type));
                    }
                    other => return Err(Error::UnexpectedMessage(msg_type_of(&other))),
                }
                Ok(())
            }
            t => Err(Error::UnexpectedPacketType(t)),
        }
    }

    fn on_completion<S: BufferMem + ?Sized>(
        &mut self,
        p: &RawPacket<'_>,
        send_buf: &mut S,
        out: &mut Outbox,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error> {
        let tid = p.transaction_id;
        let unknown = Error::UnknownCompletion(tid);
        match tid & TID_TAGS {
            TID_SECTION => {
                let index = (tid & !TID_TAGS) as u32;
                if tid & !TID_TAGS > u64::from(u32::MAX) || !self.sections.is_allocated(index) {
                    return Err(unknown);
                }
                let HostMessage::RndisPacketComplete { .. } = HostMessage::decode(p.payload)?
                else {
                    return Err(Error::UnexpectedMessage(message_type(p.payload)));
                };
                self.sections.free(index).map_err(|_| unknown)?;
                let control = self
                    .control_sections
                    .iter_mut()
                    .find(|c| **c == Some(index));
                match control {
                    Some(c) => *c = None,
                    None => events(Event::TxDone(tid)),
                }
                Ok(())
            }
            TID_GPA => {
                let slot = (tid & !TID_TAGS) as usize;
                if tid & !TID_TAGS >= GPA_SLOTS as u64 || !self.gpa[slot] {
                    return Err(unknown);
                }
                let HostMessage::RndisPacketComplete { .. } = HostMessage::decode(p.payload)?
                else {
                    return Err(Error::UnexpectedMessage(message_type(p.payload)));
                };
                self.gpa[slot] = false;
                events(Event::TxDone(tid));
                Ok(())
            }
            TID_CONTROL => self.on_control_completion(tid, p.payload, send_buf, out, events),
            _ => Err(unknown),
        }
    }

    fn on_control_completion<S: BufferMem + ?Sized>(
        &mut self,
        tid: u64,
        payload: &[u8],
        send_buf: &mut S,
        out: &mut Outbox,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error> {
        let m = HostMessage::decode(payload)?;
        match (self.phase, tid, m) {
            (Phase::Version { index }, TID_INIT, HostMessage::InitComplete { status, .. }) => {
                if status != nvsp::status::SUCCESS {
                    if index + 1 < Version::PROPOSALS.len() {
                        return self.propose(index + 1, out);
                    }
                    return Err(self.fail(Error::AllVersionsRefused));
                }
                let version = Version::PROPOSALS[index];
                self.version = Some(version);
                if version >= Version::V2 {
                    out.push(Packet::new(
                        PacketKind::InBand,
                        0,
                        false,
                        GuestMessage::NdisConfig {
                            mtu: self.config.mtu + ETH_HEADER,
                            capabilities: nvsp::capability::IEEE8021Q,
                        },
                    ))?;
                }
                let (major, minor) = version.ndis();
                out.push(Packet::new(
                    PacketKind::InBand,
                    0,
                    false,
                    GuestMessage::NdisVersion { major, minor },
                ))?;
                out.push(Packet::new(
                    PacketKind::InBand,
                    TID_RECV_BUF,
                    true,
                    GuestMessage::RecvBuffer {
                        gpadl: self.config.recv_gpadl,
                        id: nvsp::RECV_BUFFER_ID,
                    },
                ))?;
                self.phase = Phase::RecvBuffer { version };
                Ok(())
            }
            (
                Phase::RecvBuffer { version },
                TID_RECV_BUF,
                HostMessage::RecvBufferComplete {
                    status,
                    num_sections,
                    section,
                },
            ) => {
                if status != nvsp::status::SUCCESS {
                    return Err(self.fail(Error::Refused(Refusal::RecvBuffer, status)));
                }
                let recv = RecvLayout {
                    section_size: section.sub_alloc_size,
                    sections: section.num_sub_allocs,
                };
                let total = u64::from(recv.section_size) * u64::from(recv.sections);
                if num_sections != 1
                    || section.offset != 0
                    || recv.section_size < MIN_SECTION
                    || total > u64::from(self.config.recv_len)
                {
                    return Err(self.fail(Error::BadRecvLayout(recv)));
                }
                self.recv = Some(recv);
                out.push(Packet::new(
                    PacketKind::InBand,
                    TID_SEND_BUF,
                    true,
                    GuestMessage::SendBuffer {
                        gpadl: self.config.send_gpadl,
                        id: nvsp::SEND_BUFFER_ID,
                    },
                ))?;
                self.phase = Phase::SendBuffer { version, recv };
                Ok(())
            }
            (
                Phase::SendBuffer { .. },
                TID_SEND_BUF,
                HostMessage::SendBufferComplete {
                    status,
                    section_size,
                },
            ) => {
                if status != nvsp::status::SUCCESS {
                    return Err(self.fail(Error::Refused(Refusal::SendBuffer, status)));
                }
                if section_size < MIN_SECTION
                    || (section_size as usize) < rndis::MAX_CONTROL_OUT
                    || section_size > self.config.send_len
                {
                    return Err(self.fail(Error::BadSendSectionSize(section_size)));
                }
                self.send_section_size = section_size;
                self.sections = Sections::new(self.config.send_len / section_size);
                self.phase = Phase::Rndis(RndisStep::Init);
                let req_id = self.take_req_id();
                self.send_control(
                    Request::Init { req_id },
                    ReqKind::Init,
                    req_id,
                    send_buf,
                    out,
                )
            }
            (Phase::Ready, TID_SUBCHANNEL, HostMessage::SubchannelComplete { status, count })
                if self.subchannels_asked.is_some() =>
            {
                let asked = self.subchannels_asked.take().unwrap_or(0);
                if status != nvsp::status::SUCCESS {
                    return Err(Error::Refused(Refusal::Subchannels, status));
                }
                if count > asked {
                    return Err(Error::SubchannelCount {
                        asked,
                        granted: count,
                    });
                }
                self.subchannels = count;
                events(Event::Subchannels(count));
                Ok(())
            }
            _ => Err(Error::UnknownCompletion(tid)),
        }
    }

    fn take_req_id(&mut self) -> u32 {
        let id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        id
    }

    /// Sends an RNDIS control message through a send-buffer section.
    fn send_control<S: BufferMem + ?Sized>(
        &mut self,
        req: Request<'_>,
        kind: ReqKind,
        req_id: u32,
        send_buf: &mut S,
        out: &mut Outbox,
    ) -> Result<(), Error> {
        let track = !matches!(req, Request::KeepAliveComplete { .. });
        let slot = self.requests.iter().position(Option::is_none);
        let ctl = self.control_sections.iter().position(Option::is_none);
        let (Some(slot), Some(ctl)) = (slot, ctl) else {
            return Err(Error::NoSection);
        };
        let mut msg = [0u8; rndis::MAX_CONTROL_OUT];
        let len = req.encode(&mut msg).ok_or(Error::FrameTooBig(0))?;
        let index = self.sections.alloc().map_err(|_| Error::NoSection)?;
        let at = index as usize * self.send_section_size as usize;
        if at + len > send_buf.size() {
            let _ = self.sections.free(index);
            return Err(Error::FrameTooBig(len));
        }
        send_buf.write(at, &msg[..len]);
        let pushed = out.push(Packet::new(
            PacketKind::InBand,
            TID_SECTION | u64::from(index),
            true,
            GuestMessage::RndisPacket {
                channel: nvsp::CHANNEL_CONTROL,
                section: index,
                size: len as u32,
            },
        ));
        if let Err(e) = pushed {
            let _ = self.sections.free(index);
            return Err(e);
        }
        self.control_sections[ctl] = Some(index);
        if track {
            self.requests[slot] = Some(Pending { req_id, kind });
        }
        Ok(())
    }

    fn on_receive<R, S>(
        &mut self,
        p: &RawPacket<'_>,
        recv_buf: &R,
        send_buf: &mut S,
        scratch: &mut [u8],
        out: &mut Outbox,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error>
    where
        R: BufferMem + ?Sized,
        S: BufferMem + ?Sized,
    {
        let mut first: Option<Error> = None;
        match self.check_receive(p) {
            Ok((xfer, recv)) => {
                for r in xfer.ranges() {
                    if let Err(e) =
                        self.receive_range(r, recv, recv_buf, send_buf, scratch, out, events)
                    {
                        first.get_or_insert(e);
                    }
                }
            }
            Err(e) => first = Some(e),
        }
        let status = if first.is_some() {
            nvsp::status::FAIL
        } else {
            nvsp::status::SUCCESS
        };
        out.push(Packet::new(
            PacketKind::Completion,
            p.transaction_id,
            false,
            GuestMessage::RndisPacketComplete { status },
        ))?;
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn check_receive<'a>(&self, p: &RawPacket<'a>) -> Result<(XferPages<'a>, RecvLayout), Error> {
        let recv = self.recv.ok_or(Error::NoReceiveBuffer)?;
        match HostMessage::decode(p.payload)? {
            HostMessage::RndisPacket { .. } => {}
            other => return Err(Error::UnexpectedMessage(msg_type_of(&other))),
        }
        let xfer = XferPages::parse(p.ext)?;
        if xfer.set_id != nvsp::RECV_BUFFER_ID {
            return Err(Error::WrongTransferSet(xfer.set_id));
        }
        Ok((xfer, recv))
    }

    #[allow(clippy::too_many_arguments)]
    fn receive_range<R, S>(
        &mut self,
        r: vmpkt::XferRange,
        recv: RecvLayout,
        recv_buf: &R,
        send_buf: &mut S,
        scratch: &mut [u8],
        out: &mut Outbox,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error>
    where
        R: BufferMem + ?Sized,
        S: BufferMem + ?Sized,
    {
        let (offset, len) = (r.byte_offset as usize, r.byte_count as usize);
        let bad = Error::BadRange {
            offset: r.byte_offset,
            len: r.byte_count,
        };
        let size = recv_buf.size().min(self.config.recv_len as usize);
        if offset > size || len > size - offset || r.byte_count > recv.section_size {
            return Err(bad);
        }
        let mut head = [0u8; rndis::PACKET_HEADER_LEN];
        if len < rndis::HEADER_LEN {
            return Err(RndisError::BadLength {
                msg_len: 0,
                avail: len,
            }
            .into());
        }
        recv_buf.read(offset, &mut head[..rndis::HEADER_LEN]);
        let (ty, msg_len) = rndis::header(&head, len)?;
        if ty == rndis::msg_type::PACKET {
            if (msg_len as usize) < rndis::PACKET_HEADER_LEN {
                return Err(RndisError::Truncated {
                    msg_type: ty,
                    needed: rndis::PACKET_HEADER_LEN,
                }
                .into());
            }
            recv_buf.read(offset, &mut head);
            let layout = rndis::packet_layout(&head, msg_len)?;
            if layout.data_len > scratch.len() {
                return Err(Error::FrameTooBig(layout.data_len));
            }
            let frame = &mut scratch[..layout.data_len];
            recv_buf.read(offset + layout.data_offset, frame);
            events(Event::Frame(frame));
            return Ok(());
        }
        if msg_len as usize > MAX_CONTROL_IN {
            return Err(Error::OversizeControl(msg_len));
        }
        let mut msg = [0u8; MAX_CONTROL_IN];
        let msg = &mut msg[..msg_len as usize];
        recv_buf.read(offset, msg);
        self.on_control(msg, send_buf, out, events)
    }

    fn take_request(&mut self, req_id: u32, ty: u32) -> Result<ReqKind, Error> {
        let slot = self
            .requests
            .iter_mut()
            .find(|p| p.is_some_and(|p| p.req_id == req_id))
            .ok_or(Error::UnknownRequest(req_id))?;
        let kind = slot.map(|p| p.kind).ok_or(Error::UnknownRequest(req_id))?;
        let matches = matches!(
            (kind, ty),
            (ReqKind::Init, rndis::msg_type::INIT_C)
                | (ReqKind::Query(_), rndis::msg_type::QUERY_C)
                | (ReqKind::Set(_), rndis::msg_type::SET_C)
        );
        if !matches {
            return Err(Error::RequestMismatch(req_id));
        }
        *slot = None;
        Ok(kind)
    }

    fn on_control<S: BufferMem + ?Sized>(
        &mut self,
        msg: &[u8],
        send_buf: &mut S,
        out: &mut Outbox,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error> {
        let c = Control::decode(msg)?;
        let (kind, status, info) = match c {
            Control::InitComplete { req_id, status, .. } => (
                self.take_request(req_id, rndis::msg_type::INIT_C)?,
                status,
                &[][..],
            ),
            Control::QueryComplete {
                req_id,
                status,
                info,
            } => (
                self.take_request(req_id, rndis::msg_type::QUERY_C)?,
                status,
                info,
            ),
            Control::SetComplete { req_id, status } => (
                self.take_request(req_id, rndis::msg_type::SET_C)?,
                status,
                &[][..],
            ),
            Control::Indicate { status } => {
                let up = match status {
                    rndis::status::MEDIA_CONNECT => true,
                    rndis::status::MEDIA_DISCONNECT => false,
                    _ => return Ok(()),
                };
                let changed = up != self.link_up;
                self.link_up = up;
                if changed && self.phase == Phase::Ready {
                    events(if up { Event::LinkUp } else { Event::LinkDown });
                }
                return Ok(());
            }
            Control::KeepAlive { req_id } => {
                return self.send_control(
                    Request::KeepAliveComplete { req_id },
                    ReqKind::Init,
                    req_id,
                    send_buf,
                    out,
                );
            }
            Control::KeepAliveComplete { .. } | Control::Other { .. } => return Ok(()),
        };
        self.advance(kind, status, info, send_buf, out, events)
    }

    fn advance<S: BufferMem + ?Sized>(
        &mut self,
        kind: ReqKind,
        status: u32,
        info: &[u8],
        send_buf: &mut S,
        out: &mut Outbox,
        events: &mut dyn FnMut(Event<'_>),
    ) -> Result<(), Error> {
        use rndis::oid;
        let ok = status == rndis::status::SUCCESS;
        let u32_info = || {
            ok.then(|| info.get(..4))
                .flatten()
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let next = match (self.phase, kind) {
            (Phase::Rndis(RndisStep::Init), ReqKind::Init) => {
                if !ok {
                    return Err(self.fail(Error::Refused(Refusal::RndisInit, status)));
                }
                (RndisStep::Mac, oid::P802_3_PERMANENT_ADDRESS)
            }
            (Phase::Rndis(RndisStep::Mac), ReqKind::Query(oid::P802_3_PERMANENT_ADDRESS)) => {
                let Some(mac) = ok.then(|| info.get(..6)).flatten() else {
                    return Err(self.fail(Error::Refused(Refusal::MacAddress, status)));
                };
                self.mac.copy_from_slice(mac);
                (RndisStep::Mtu, oid::GEN_MAXIMUM_FRAME_SIZE)
            }
            (Phase::Rndis(RndisStep::Mtu), ReqKind::Query(oid::GEN_MAXIMUM_FRAME_SIZE)) => {
                // Like Linux: a host that does not answer leaves the guest's MTU.
                if let Some(host) = u32_info() {
                    self.mtu = self.config.mtu.min(host).max(MIN_SECTION);
                }
                (RndisStep::Link, oid::GEN_MEDIA_CONNECT_STATUS)
            }
            (Phase::Rndis(RndisStep::Link), ReqKind::Query(oid::GEN_MEDIA_CONNECT_STATUS)) => {
                // An unanswered query leaves the link down until an indication says otherwise.
                self.link_up = u32_info() == Some(rndis::MEDIA_STATE_CONNECTED);
                let req_id = self.take_req_id();
                let value = self.config.packet_filter.to_le_bytes();
                self.send_control(
                    Request::Set {
                        req_id,
                        oid: oid::GEN_CURRENT_PACKET_FILTER,
                        value: &value,
                    },
                    ReqKind::Set(oid::GEN_CURRENT_PACKET_FILTER),
                    req_id,
                    send_buf,
                    out,
                )?;
                self.phase = Phase::Rndis(RndisStep::Filter);
                return Ok(());
            }
            (Phase::Rndis(RndisStep::Filter), ReqKind::Set(oid::GEN_CURRENT_PACKET_FILTER)) => {
                if !ok {
                    return Err(self.fail(Error::Refused(Refusal::PacketFilter, status)));
                }
                self.phase = Phase::Ready;
                if let Some(info) = self.info() {
                    events(Event::Ready(info));
                }
                events(if self.link_up {
                    Event::LinkUp
                } else {
                    Event::LinkDown
                });
                return Ok(());
            }
            (Phase::Ready, ReqKind::Set(oid::GEN_CURRENT_PACKET_FILTER)) => {
                events(Event::FilterSet(status));
                return Ok(());
            }
            _ => return Err(Error::RequestMismatch(0)),
        };
        let (step, oid) = next;
        let req_id = self.take_req_id();
        self.send_control(
            Request::Query { req_id, oid },
            ReqKind::Query(oid),
            req_id,
            send_buf,
            out,
        )?;
        self.phase = Phase::Rndis(step);
        Ok(())
    }

    /// Changes the packet filter once ready; [`Event::FilterSet`] reports the answer.
    ///
    /// # Errors
    /// [`Error::NotReady`], [`Error::NoSection`], [`Error::OutboxFull`].
    pub fn set_packet_filter<S: BufferMem + ?Sized>(
        &mut self,
        filter: u32,
        send_buf: &mut S,
        out: &mut Outbox,
    ) -> Result<(), Error> {
        self.ready()?;
        let req_id = self.take_req_id();
        let value = filter.to_le_bytes();
        let oid = rndis::oid::GEN_CURRENT_PACKET_FILTER;
        self.send_control(
            Request::Set {
                req_id,
                oid,
                value: &value,
            },
            ReqKind::Set(oid),
            req_id,
            send_buf,
            out,
        )
    }

    fn ready(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Ready => Ok(()),
            Phase::Rescinded => Err(Error::Rescinded),
            _ => Err(Error::NotReady),
        }
    }

    fn check_frame(&self, len: usize) -> Result<(), Error> {
        if len > (self.mtu + ETH_HEADER) as usize {
            return Err(Error::FrameTooBig(len));
        }
        Ok(())
    }

    /// Copies `frame` behind an RNDIS `PACKET` header into a free send-buffer section and
    /// queues `SEND_RNDIS_PKT` naming it; returns the transaction id [`Event::TxDone`] will
    /// report. The section is free again when the host completes the send.
    ///
    /// # Errors
    /// [`Error::NotReady`]/[`Error::Rescinded`]; [`Error::FrameTooBig`] for a frame above the
    /// MTU or one that, with its header, exceeds a section (send it with
    /// [`Netvsc::send_frame_gpa`]); [`Error::NoSection`] when all are in flight;
    /// [`Error::OutboxFull`].
    pub fn send_frame<S: BufferMem + ?Sized>(
        &mut self,
        frame: &[u8],
        send_buf: &mut S,
        out: &mut Outbox,
    ) -> Result<u64, Error> {
        self.ready()?;
        self.check_frame(frame.len())?;
        let total = rndis::PACKET_HEADER_LEN + frame.len();
        if total > self.send_section_size as usize {
            return Err(Error::FrameTooBig(frame.len()));
        }
        let index = self.sections.alloc().map_err(|e| match e {
            SectionError::Exhausted | SectionError::NotAllocated(_) => Error::NoSection,
        })?;
        let at = index as usize * self.send_section_size as usize;
        if at + total > send_buf.size() {
            let _ = self.sections.free(index);
            return Err(Error::FrameTooBig(frame.len()));
        }
        let mut head = [0u8; rndis::PACKET_HEADER_LEN];
        rndis::encode_packet_header(frame.len() as u32, &mut head);
        send_buf.write(at, &head);
        send_buf.write(at + head.len(), frame);
        let tid = TID_SECTION | u64::from(index);
        let pushed = out.push(Packet::new(
            PacketKind::InBand,
            tid,
            true,
            GuestMessage::RndisPacket {
                channel: nvsp::CHANNEL_DATA,
                section: index,
                size: total as u32,
            },
        ));
        if let Err(e) = pushed {
            let _ = self.sections.free(index);
            return Err(e);
        }
        Ok(tid)
    }

    /// Prepares a GPA-direct send of a frame of `frame_len` bytes that stays in the caller's
    /// pages (frames larger than a section): the RNDIS header to place before it, and the
    /// NVSP packet to send with ranges covering header then frame.
    ///
    /// # Errors
    /// [`Error::NotReady`]/[`Error::Rescinded`], [`Error::FrameTooBig`] above the MTU,
    /// [`Error::NoGpaSlot`], [`Error::OutboxFull`] never (nothing is queued).
    pub fn send_frame_gpa(&mut self, frame_len: usize) -> Result<GpaSend, Error> {
        self.ready()?;
        self.check_frame(frame_len)?;
        let slot = self.gpa.iter().position(|b| !b).ok_or(Error::NoGpaSlot)?;
        self.gpa[slot] = true;
        let mut header = [0u8; rndis::PACKET_HEADER_LEN];
        rndis::encode_packet_header(frame_len as u32, &mut header);
        Ok(GpaSend {
            header,
            packet: Packet::new(
                PacketKind::GpaDirect,
                TID_GPA | slot as u64,
                true,
                GuestMessage::RndisPacket {
                    channel: nvsp::CHANNEL_DATA,
                    section: nvsp::NO_SECTION,
                    size: 0,
                },
            ),
        })
    }

    /// Asks the host for `count` sub-channels (NVSP 5 and later, once ready);
    /// [`Event::Subchannels`] reports how many it allocated. Opening them is the VMBus
    /// layer's work (their offers arrive as sub-channels of this one).
    ///
    /// # Errors
    /// [`Error::NotReady`], [`Error::NoSubchannels`], [`Error::OutboxFull`].
    pub fn request_subchannels(&mut self, count: u32, out: &mut Outbox) -> Result<(), Error> {
        self.ready()?;
        if self.version.is_none_or(|v| v < Version::V5) {
            return Err(Error::NoSubchannels);
        }
        if self.subchannels_asked.is_some() {
            return Err(Error::NotReady);
        }
        out.push(Packet::new(
            PacketKind::InBand,
            TID_SUBCHANNEL,
            true,
            GuestMessage::SubchannelRequest { count },
        ))?;
        self.subchannels_asked = Some(count);
        Ok(())
    }

    /// The host rescinded the channel: the link goes down for the users, every section,
    /// GPA send and request in flight is forgotten (no completion will come), and the
    /// device takes nothing more. The caller must have the receive and send buffers'
    /// mappings revoked and their GPADLs torn down before it reuses their pages.
    pub fn rescind(&mut self, mut events: impl FnMut(Event<'_>)) -> RescindReport {
        if self.phase == Phase::Rescinded {
            return RescindReport::default();
        }
        if self.link_up {
            events(Event::LinkDown);
        }
        let report = RescindReport {
            sections: self.sections.clear(),
            gpa_sends: self.gpa.iter().filter(|b| **b).count() as u32,
            requests: self.requests.iter().flatten().count() as u32,
        };
        self.link_up = false;
        self.gpa = [false; GPA_SLOTS];
        self.requests = [None; MAX_REQUESTS];
        self.control_sections = [None; MAX_REQUESTS + 1];
        self.recv = None;
        self.subchannels_asked = None;
        self.phase = Phase::Rescinded;
        report
    }
}

fn message_type(b: &[u8]) -> u32 {
    crate::wire::u32_at(b, 0).unwrap_or(0)
}

fn msg_type_of(m: &HostMessage) -> u32 {
    use nvsp::msg_type as t;
    match m {
        HostMessage::InitComplete { .. } => t::INIT_COMPLETE,
        HostMessage::RecvBufferComplete { .. } => t::SEND_RECV_BUF_COMPLETE,
        HostMessage::SendBufferComplete { .. } => t::SEND_SEND_BUF_COMPLETE,
        HostMessage::RndisPacket { .. } => t::SEND_RNDIS_PKT,
        HostMessage::RndisPacketComplete { .. } => t::SEND_RNDIS_PKT_COMPLETE,
        HostMessage::SubchannelComplete { .. } => t::SUBCHANNEL,
        HostMessage::IndirectionTable { .. } => t::SEND_INDIRECTION_TABLE,
        HostMessage::VfAssociation { .. } => t::SEND_VF_ASSOCIATION,
        HostMessage::Other { msg_type } => *msg_type,
    }
}
