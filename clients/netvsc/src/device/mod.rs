//! The netvsc device: NVSP initialisation, RNDIS configuration, receive and transmit, rescind.

mod control;
mod data;
mod types;

use crate::nvsp::{self, GuestMessage, HostMessage, INDIRECTION_ENTRIES, Version};
use crate::rndis::{self, Control, Request, RndisError};
use crate::sections::{SectionError, Sections};
use crate::vmpkt::{self, RawPacket, XferPages};

pub use types::*;
use types::{
    Pending, ReqKind, TID_CONTROL, TID_GPA, TID_INIT, TID_RECV_BUF, TID_SECTION, TID_SEND_BUF,
    TID_SUBCHANNEL, TID_TAGS,
};

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
