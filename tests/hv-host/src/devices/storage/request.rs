//! The vstor requests other than EXECUTE_SRB: the initialization sequence (BEGIN_INITIALIZATION,
//! QUERY_PROTOCOL_VERSION, QUERY_PROPERTIES, END_INITIALIZATION) in its order, the resets, and
//! the completions every request gets (sent twice or for another transaction id as the hostile
//! switches say), each traced.

use vmbus_driver::ring::{PacketType, PacketView, RingError, RingMem, WriteBatch};

use super::event::{StorBent, StorEvent, StorFault, StorPhase};
use super::proto::*;
use super::{Run, UNKNOWN_TID_BIT, buffer, scsi};
use crate::devices::trace::{Service, TraceEvent};
use crate::log::{Direction, GuestError};
use crate::memory::GuestMemory;

impl<G: GuestMemory> Run<'_, '_, '_, G> {
    pub(super) fn trace(&mut self, dir: Direction, ev: StorEvent) {
        self.ctx
            .trace(dir, Service::Storage, TraceEvent::Storage(ev));
    }

    pub(super) fn fault(&mut self, f: StorFault) {
        self.st.stats.refused += 1;
        let e = GuestError::Storage(self.ctx.relid, f);
        self.ctx.fault(Service::Storage, e);
    }

    /// Writes a completion (twice, or for another transaction id, as the hostile switches say);
    /// how many packets went out.
    pub(super) fn send<M: RingMem>(
        &mut self,
        wb: &mut WriteBatch<'_, M>,
        tid: u64,
        bytes: &[u8],
    ) -> u64 {
        let h = self.ctx.hostile;
        let tid = if h.stor_unknown_tid {
            self.trace(
                Direction::Sent,
                StorEvent::Bent(StorBent::UnknownTid(tid ^ UNKNOWN_TID_BIT)),
            );
            tid ^ UNKNOWN_TID_BIT
        } else {
            tid
        };
        let copies = if h.stor_duplicate { 2 } else { 1 };
        if h.stor_duplicate {
            self.trace(Direction::Sent, StorEvent::Bent(StorBent::Duplicate));
        }
        let mut sent = 0;
        for _ in 0..copies {
            // Room for two was checked before the request was taken.
            if wb.write_completion(tid, bytes).is_ok() {
                sent += 1;
            }
        }
        self.st.stats.completions += sent;
        sent
    }

    /// The answer length before a version is agreed: as long as the request, 48 to 64 bytes.
    fn reply_len(&self, request_len: usize) -> usize {
        match self.st.chans[self.idx].version {
            Some(v) => HEADER + srb_len(v),
            None => request_len.clamp(HEADER + SRB_LEN_WIN7, MAX_PACKET),
        }
    }

    /// Handles one guest packet; how many completions went out.
    pub(super) fn packet<M: RingMem>(
        &mut self,
        p: &PacketView<'_, M>,
        wb: &mut WriteBatch<'_, M>,
    ) -> Result<u64, RingError> {
        self.st.stats.requests += 1;
        let (tid, ty) = (p.transaction_id(), p.packet_type());
        if ty != PacketType::DATA_INBAND && ty != PacketType::DATA_USING_GPA_DIRECT {
            // A completion or a packet type storvsp never takes: nothing to answer.
            self.fault(StorFault::PacketType(ty.0));
            return Ok(0);
        }
        let mut req = [0u8; MAX_PACKET];
        let len = p.payload_len().min(MAX_PACKET);
        p.read_payload(0, &mut req[..len])?;
        let mut resp = [0u8; MAX_PACKET];
        let rlen = self.reply_len(p.payload_len());
        if len < HEADER {
            self.fault(StorFault::Truncated {
                op: 0,
                len: len as u16,
            });
            header(&mut resp, OP_COMPLETE_IO, STATUS_INVALID_PARAMETER);
            return Ok(self.send(wb, tid, &resp[..rlen]));
        }
        let op = u32_at(&req, 0);
        let ch = self.st.chans[self.idx];
        let in_order = matches!(
            (op, ch.phase),
            (OP_BEGIN_INITIALIZATION, StorPhase::Begin)
                | (OP_QUERY_PROTOCOL_VERSION, StorPhase::Version)
                | (OP_QUERY_PROPERTIES, StorPhase::Properties)
                | (OP_END_INITIALIZATION, StorPhase::End)
                | (
                    OP_EXECUTE_SRB | OP_RESET_LUN | OP_RESET_ADAPTER | OP_RESET_BUS,
                    StorPhase::Ready
                )
        );
        let ev = match op {
            OP_QUERY_PROTOCOL_VERSION if len >= HEADER + 4 => {
                StorEvent::QueryVersion(u16_at(&req, HEADER))
            }
            OP_EXECUTE_SRB => {
                let srb = Srb::parse(&req[HEADER..]);
                StorEvent::Srb {
                    cdb0: srb.cdb[0],
                    lun: srb.lun,
                    lba: scsi::rw(&srb.cdb).map(|(l, b, _)| (l, b)),
                    data_len: srb.data_len,
                }
            }
            _ => StorEvent::Request(op),
        };
        self.trace(Direction::Received, ev);
        let known = matches!(
            op,
            OP_EXECUTE_SRB..=OP_QUERY_PROPERTIES | OP_CREATE_SUB_CHANNELS
        );
        if !known {
            self.fault(StorFault::UnknownOperation(op));
            return Ok(self.answer(wb, tid, op, STATUS_INVALID_DEVICE_REQUEST, &mut resp, rlen));
        }
        if !in_order {
            self.fault(StorFault::OutOfOrder {
                op,
                phase: ch.phase,
            });
            return Ok(self.answer(wb, tid, op, STATUS_INVALID_DEVICE_STATE, &mut resp, rlen));
        }
        let c = &mut self.st.chans[self.idx];
        match op {
            OP_BEGIN_INITIALIZATION => c.phase = StorPhase::Version,
            OP_QUERY_PROTOCOL_VERSION => {
                if len < HEADER + 4 {
                    self.fault(StorFault::Truncated {
                        op,
                        len: len as u16,
                    });
                    return Ok(self.answer(wb, tid, op, STATUS_INVALID_PARAMETER, &mut resp, rlen));
                }
                let v = u16_at(&req, HEADER);
                let accepted = self.opts.accepts(v);
                if accepted {
                    c.version = Some(v);
                    c.phase = StorPhase::Properties;
                }
                let status = if accepted {
                    STATUS_SUCCESS
                } else {
                    STATUS_REVISION_MISMATCH
                };
                header(&mut resp, OP_COMPLETE_IO, status);
                resp[HEADER..HEADER + 2].copy_from_slice(&v.to_le_bytes());
                self.trace(
                    Direction::Sent,
                    StorEvent::Version {
                        version: v,
                        accepted,
                    },
                );
                return Ok(self.send(wb, tid, &resp[..rlen]));
            }
            OP_QUERY_PROPERTIES => {
                c.phase = StorPhase::End;
                let multi = self.opts.sub_channels > 0 && c.version >= Some(VERSION_WIN8);
                let (channels, flags) = if multi {
                    (self.opts.sub_channels, PROPERTIES_MULTI_CHANNEL)
                } else {
                    (0, 0)
                };
                let max_transfer = self.opts.max_transfer.min(buffer::MAX_TRANSFER_LIMIT);
                header(&mut resp, OP_COMPLETE_IO, STATUS_SUCCESS);
                let b = &mut resp[HEADER..];
                b[4..6].copy_from_slice(&channels.to_le_bytes());
                b[8..12].copy_from_slice(&flags.to_le_bytes());
                b[12..16].copy_from_slice(&max_transfer.to_le_bytes());
                let ev = StorEvent::Properties {
                    max_transfer,
                    channels,
                    flags,
                };
                self.trace(Direction::Sent, ev);
                return Ok(self.send(wb, tid, &resp[..rlen]));
            }
            OP_END_INITIALIZATION => c.phase = StorPhase::Ready,
            OP_EXECUTE_SRB => return Ok(self.srb(p, wb, &req, len)),
            _ => {}
        }
        Ok(self.answer(wb, tid, op, STATUS_SUCCESS, &mut resp, rlen))
    }

    /// A completion with no body.
    fn answer<M: RingMem>(
        &mut self,
        wb: &mut WriteBatch<'_, M>,
        tid: u64,
        op: u32,
        status: u32,
        resp: &mut [u8; MAX_PACKET],
        rlen: usize,
    ) -> u64 {
        header(resp, OP_COMPLETE_IO, status);
        self.trace(Direction::Sent, StorEvent::Done { op, status });
        self.send(wb, tid, &resp[..rlen])
    }
}
