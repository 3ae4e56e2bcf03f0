//! EXECUTE_SRB: the request checked against the version's size, its buffer against the SRB and
//! guest memory, the command run against the disk (LUN 0 of path 0, target 0), and the
//! COMPLETE_IO with the statuses, sense and transfer length, bent as the hostile switches say.

use vmbus_driver::ring::{PacketView, RingMem, WriteBatch};

use super::event::{StorBent, StorEvent, StorFault};
use super::proto::*;
use super::{OVERSIZE_SENSE_LEN, Run, buffer, scsi};
use crate::log::Direction;
use crate::memory::GuestMemory;

impl<G: GuestMemory> Run<'_, '_, '_, G> {
    /// Runs one EXECUTE_SRB (`req[..len]`: the packet's payload); how many completions went out.
    pub(super) fn srb<M: RingMem>(
        &mut self,
        p: &PacketView<'_, M>,
        wb: &mut WriteBatch<'_, M>,
        req: &[u8; MAX_PACKET],
        len: usize,
    ) -> u64 {
        self.st.stats.srbs += 1;
        // Phase Ready: a version was agreed.
        let version = self.st.chans[self.idx].version.unwrap_or(VERSION_WIN8);
        let srb = Srb::parse(&req[HEADER..]);
        let r = if len < HEADER + srb_len(version) {
            self.fault(StorFault::Truncated {
                op: OP_EXECUTE_SRB,
                len: len as u16,
            });
            ScsiResult::invalid()
        } else {
            match self.execute(p, &srb) {
                Ok(r) => r,
                Err(f) => {
                    self.fault(f);
                    ScsiResult::invalid()
                }
            }
        };
        if r.srb != SRB_SUCCESS {
            self.st.stats.srb_errors += 1;
        }
        let mut resp = [0u8; MAX_PACKET];
        header(&mut resp, OP_COMPLETE_IO, r.nt_status());
        completion_srb(&mut resp, version, &srb, &r);
        let h = self.ctx.hostile;
        let mut bent = [None; 3];
        if h.stor_short_transfer && r.transferred > 0 {
            let told = r.transferred / 2;
            resp[HEADER + 12..HEADER + 16].copy_from_slice(&told.to_le_bytes());
            bent[0] = Some(StorBent::ShortTransfer {
                told,
                moved: r.transferred,
            });
        }
        if h.stor_bad_srb_length {
            // The other generation's size: plausible, and wrong for this version.
            let wrong = if version >= VERSION_WIN8 {
                SRB_LEN_WIN7
            } else {
                SRB_LEN_WIN8
            } as u16;
            resp[HEADER..HEADER + 2].copy_from_slice(&wrong.to_le_bytes());
            bent[1] = Some(StorBent::SrbLength(wrong));
        }
        if h.stor_oversize_sense {
            resp[HEADER + 9] = OVERSIZE_SENSE_LEN;
            bent[2] = Some(StorBent::SenseLength(OVERSIZE_SENSE_LEN));
        }
        let sent = StorEvent::SrbDone {
            srb: resp[HEADER + 2],
            scsi: resp[HEADER + 3],
            transferred: u32_at(&resp, HEADER + 12),
            sense: r.sense,
        };
        self.trace(Direction::Sent, sent);
        for b in bent.into_iter().flatten() {
            self.trace(Direction::Sent, StorEvent::Bent(b));
        }
        self.send(wb, p.transaction_id(), &resp[..HEADER + srb_len(version)])
    }

    /// Checks the buffer and runs the command.
    fn execute<M: RingMem>(
        &mut self,
        p: &PacketView<'_, M>,
        srb: &Srb,
    ) -> Result<ScsiResult, StorFault> {
        let buf = buffer::parse(p, srb.data_len, self.opts.max_transfer, self.mem)?;
        let mut mem = self.mem.borrow_mut();
        if srb.path != 0 || srb.target != 0 {
            return Ok(ScsiResult::no_lun());
        }
        if srb.lun != 0 {
            return Ok(match srb.cdb[0] {
                // Peripheral qualifier 3, type 0x1F: no device at this LUN.
                0x12 => match &buf {
                    Some(b) if b.write(&mut **mem, 0, &[0x7F]).is_ok() => ScsiResult::good(1),
                    _ => ScsiResult::no_lun(),
                },
                _ => ScsiResult::no_lun(),
            });
        }
        let mut moved = scsi::Moved::default();
        let r = scsi::execute(&mut self.st.disk, srb, buf.as_ref(), &mut **mem, &mut moved);
        self.st.stats.sectors_read += moved.read;
        self.st.stats.sectors_written += moved.written;
        r
    }
}
