//! The data path: receives through transfer-page ranges, frame sends, sub-channel requests.

use super::*;

impl Netvsc {
    pub(super) fn on_receive<R, S>(
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

    pub(super) fn check_receive<'a>(
        &self,
        p: &RawPacket<'a>,
    ) -> Result<(XferPages<'a>, RecvLayout), Error> {
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
    pub(super) fn receive_range<R, S>(
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

    pub(super) fn ready(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Ready => Ok(()),
            Phase::Rescinded => Err(Error::Rescinded),
            _ => Err(Error::NotReady),
        }
    }

    pub(super) fn check_frame(&self, len: usize) -> Result<(), Error> {
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
}
