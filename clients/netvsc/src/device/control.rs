//! NVSP and RNDIS control: completions, requests, the configuration sequence.

use super::*;

impl Netvsc {
    pub(super) fn on_completion<S: BufferMem + ?Sized>(
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

    pub(super) fn on_control_completion<S: BufferMem + ?Sized>(
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

    pub(super) fn take_req_id(&mut self) -> u32 {
        let id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        id
    }

    /// Sends an RNDIS control message through a send-buffer section.
    pub(super) fn send_control<S: BufferMem + ?Sized>(
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

    pub(super) fn take_request(&mut self, req_id: u32, ty: u32) -> Result<ReqKind, Error> {
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

    pub(super) fn on_control<S: BufferMem + ?Sized>(
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

    pub(super) fn advance<S: BufferMem + ?Sized>(
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
}
