//! The RAM disk's SCSI commands: INQUIRY (standard data: direct-access device, vendor "Msft",
//! product "Virtual Disk"; VPD page 0 only), READ CAPACITY (10) and (16), READ and WRITE (10)
//! and (16), SYNCHRONIZE CACHE (10) and (16), TEST UNIT READY, REPORT LUNS (LUN 0). Anything
//! else is CHECK CONDITION with ILLEGAL REQUEST sense, INVALID COMMAND OPERATION CODE; an LBA
//! range past the end is ILLEGAL REQUEST, LOGICAL BLOCK ADDRESS OUT OF RANGE.

use super::buffer::GpaBuf;
use super::event::StorFault;
use super::proto::{DATA_IN, DATA_OUT, SECTOR, ScsiResult, Srb};
use crate::memory::GuestMemory;

/// Sense key ILLEGAL REQUEST.
pub const ILLEGAL_REQUEST: u8 = 0x05;
/// ASC: invalid command operation code.
pub const ASC_INVALID_OPCODE: u8 = 0x20;
/// ASC: logical block address out of range.
pub const ASC_LBA_OUT_OF_RANGE: u8 = 0x21;
/// ASC: invalid field in CDB.
pub const ASC_INVALID_FIELD: u8 = 0x24;

/// Standard INQUIRY data bytes.
pub const INQUIRY_LEN: usize = 36;

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The LBA and block count of a READ or WRITE CDB, and whether it writes.
pub fn rw(cdb: &[u8; 16]) -> Option<(u64, u32, bool)> {
    match cdb[0] {
        0x28 => Some((
            u64::from(be32(&cdb[2..])),
            u32::from(be16(&cdb[7..])),
            false,
        )),
        0x2A => Some((u64::from(be32(&cdb[2..])), u32::from(be16(&cdb[7..])), true)),
        0x88 => Some((be64(&cdb[2..]), be32(&cdb[10..]), false)),
        0x8A => Some((be64(&cdb[2..]), be32(&cdb[10..]), true)),
        _ => None,
    }
}

/// What one command did to the disk, for the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moved {
    /// Sectors read from the disk.
    pub read: u64,
    /// Sectors written to the disk.
    pub written: u64,
}

/// Standard INQUIRY data of the disk.
fn inquiry_data() -> [u8; INQUIRY_LEN] {
    let mut d = [0u8; INQUIRY_LEN];
    // Byte 0: peripheral qualifier 0, device type 0 (direct access). Byte 2: SPC-2 (Hyper-V's
    // disks claim it: Linux's storvsc raises the level itself on Windows 8 hosts). Byte 3:
    // response data format 2. Byte 4: the bytes after it. Byte 7: CmdQue.
    d[2] = 0x04;
    d[3] = 0x02;
    d[4] = (INQUIRY_LEN - 5) as u8;
    d[7] = 0x02;
    d[8..16].copy_from_slice(b"Msft    ");
    d[16..32].copy_from_slice(b"Virtual Disk    ");
    d[32..36].copy_from_slice(b"1.0 ");
    d
}

/// Sends `data` (cut to the allocation length and the buffer) to the guest.
fn give<G: GuestMemory>(mem: &mut G, buf: Option<&GpaBuf>, alloc: u32, data: &[u8]) -> ScsiResult {
    let Some(buf) = buf else {
        return ScsiResult::good(0);
    };
    let n = (data.len() as u32).min(alloc).min(buf.len);
    match buf.write(mem, 0, &data[..n as usize]) {
        Ok(()) => ScsiResult::good(n),
        Err(_) => ScsiResult::invalid(),
    }
}

/// Runs the CDB of `srb` against `disk` (LUN 0), moving data through `buf`.
pub fn execute<G: GuestMemory>(
    disk: &mut [u8],
    srb: &Srb,
    buf: Option<&GpaBuf>,
    mem: &mut G,
    moved: &mut Moved,
) -> Result<ScsiResult, StorFault> {
    let cdb = &srb.cdb;
    let sectors = (disk.len() / SECTOR) as u64;
    let illegal = |asc| ScsiResult::check(ILLEGAL_REQUEST, asc, 0);
    Ok(match cdb[0] {
        0x00 | 0x35 | 0x91 => ScsiResult::good(0),
        0x12 => {
            let alloc = u32::from(be16(&cdb[3..]));
            if cdb[1] & 1 != 0 {
                // VPD: page 0 (the supported pages: only itself).
                if cdb[2] != 0 {
                    illegal(ASC_INVALID_FIELD)
                } else {
                    give(mem, buf, alloc, &[0, 0, 0, 1, 0])
                }
            } else if cdb[2] != 0 {
                illegal(ASC_INVALID_FIELD)
            } else {
                give(mem, buf, alloc, &inquiry_data())
            }
        }
        0x25 => {
            let mut d = [0u8; 8];
            let last = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
            d[..4].copy_from_slice(&last.to_be_bytes());
            d[4..].copy_from_slice(&(SECTOR as u32).to_be_bytes());
            give(mem, buf, 8, &d)
        }
        0x9E if cdb[1] & 0x1F == 0x10 => {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&(sectors - 1).to_be_bytes());
            d[8..12].copy_from_slice(&(SECTOR as u32).to_be_bytes());
            give(mem, buf, be32(&cdb[10..]), &d)
        }
        0xA0 => {
            // LUN list length 8 (one LUN), reserved, LUN 0.
            let mut d = [0u8; 16];
            d[3] = 8;
            give(mem, buf, be32(&cdb[6..]), &d)
        }
        0x28 | 0x2A | 0x88 | 0x8A => {
            let Some((lba, blocks, write)) = rw(cdb) else {
                return Ok(illegal(ASC_INVALID_OPCODE));
            };
            let want = if write { DATA_OUT } else { DATA_IN };
            if blocks > 0 && srb.data_in != want {
                return Err(StorFault::WrongDirection {
                    op: cdb[0],
                    data_in: srb.data_in,
                });
            }
            if lba
                .checked_add(u64::from(blocks))
                .is_none_or(|end| end > sectors)
            {
                return Ok(illegal(ASC_LBA_OUT_OF_RANGE));
            }
            let bytes = u64::from(blocks) * SECTOR as u64;
            if bytes != u64::from(srb.data_len) {
                return Ok(illegal(ASC_INVALID_FIELD));
            }
            let (Some(buf), true) = (buf, blocks > 0) else {
                return Ok(ScsiResult::good(0));
            };
            // lba + blocks <= sectors: in range of the disk.
            let area = &mut disk[lba as usize * SECTOR..][..bytes as usize];
            let r = if write {
                buf.read(mem, 0, area)
            } else {
                buf.write(mem, 0, area)
            };
            if r.is_err() {
                return Ok(ScsiResult::invalid());
            }
            if write {
                moved.written += u64::from(blocks);
            } else {
                moved.read += u64::from(blocks);
            }
            ScsiResult::good(bytes as u32)
        }
        _ => illegal(ASC_INVALID_OPCODE),
    })
}
