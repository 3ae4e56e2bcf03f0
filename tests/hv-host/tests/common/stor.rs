//! A storage guest: a SCSI or IDE channel opened over test pages, vstor packets written in-band or
//! GPA-direct, completions read back.
#![allow(dead_code)]

use super::{GuestRing, u32le};
use hv_host::{DeviceSpec, GuestError, HostConfig, StorPhase};
use vmbus_driver::ids::{ConnectionId, GpadlId, RelId};
use vmbus_driver::ring::{GpaRange, RingError, RingReader, RingWriter};
use vmbus_driver::version::Version;

pub const COMPLETE_IO: u32 = 1;
pub const EXECUTE_SRB: u32 = 3;
pub const BEGIN: u32 = 7;
pub const END: u32 = 8;
pub const QUERY_VERSION: u32 = 9;
pub const QUERY_PROPERTIES: u32 = 10;
pub const REVISION_MISMATCH: u32 = 0xC000_0059;
pub const INVALID_DEVICE_STATE: u32 = 0xC000_0184;
pub const IO_DEVICE_ERROR: u32 = 0xC000_0185;
pub const INVALID_PARAMETER: u32 = 0xC000_000D;
pub const READ: u8 = 1;
pub const WRITE: u8 = 0;
pub const NONE: u8 = 2;

pub struct Stor {
    pub g: super::Guest,
    pub relid: RelId,
    pub conn: ConnectionId,
    pub tx: RingWriter<GuestRing>,
    pub rx: RingReader<GuestRing>,
    /// First page after the rings.
    pub data: usize,
}

/// A vstor packet of `len` bytes: operation, flags 1 (completion requested), status 0, `body`.
pub fn pkt(op: u32, body: &[u8], len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[..4].copy_from_slice(&op.to_le_bytes());
    p[4] = 1;
    p[12..12 + body.len()].copy_from_slice(body);
    p
}

/// An EXECUTE_SRB packet (64 bytes, the 5.1+ request) for `cdb`.
pub fn srb(cdb: &[u8], data_in: u8, data_len: u32, lun: u8) -> Vec<u8> {
    let mut b = [0u8; 52];
    b[..2].copy_from_slice(&0x34u16.to_le_bytes());
    b[7] = lun;
    b[8] = cdb.len() as u8;
    b[9] = 0x14;
    b[10] = data_in;
    b[12..16].copy_from_slice(&data_len.to_le_bytes());
    b[16..16 + cdb.len()].copy_from_slice(cdb);
    pkt(EXECUTE_SRB, &b, 64)
}

pub fn rw10(op: u8, lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

pub fn rw16(op: u8, lba: u64, blocks: u32) -> Vec<u8> {
    let mut c = vec![op, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

/// The SRB fields of a completion: (srb status, scsi status, sense length, transfer length).
pub fn fields(c: &[u8]) -> (u8, u8, u8, u32) {
    (c[14], c[15], c[21], u32le(c, 24))
}

impl Stor {
    pub fn open(spec: DeviceSpec, out: usize, inn: usize, extra: usize) -> Stor {
        let mut g = super::Guest::new(HostConfig::hyperv(), out + inn + extra);
        g.host.add_device(spec).unwrap();
        let offer = g.connect(Version::WIN10_V5_3)[0];
        assert_eq!(g.open(offer.child_relid, GpadlId(1), 0, out, inn), 0);
        let ring = |first, pages| GuestRing {
            mem: g.mem.clone(),
            first,
            pages,
        };
        let tx = RingWriter::new(ring(0, out)).unwrap();
        let rx = RingReader::new(ring(out, inn)).unwrap();
        Stor {
            relid: offer.child_relid,
            conn: offer.connection_id,
            g,
            tx,
            rx,
            data: out + inn,
        }
    }

    pub fn scsi(extra: usize) -> Stor {
        Stor::open(DeviceSpec::scsi(), 3, 3, extra)
    }

    pub fn poll(&mut self) {
        let mut mem = self.g.mem.clone();
        self.g.host.poll(&mut mem);
    }

    pub fn signal(&mut self) {
        self.g.host.signal_event(self.conn, 0);
        self.poll();
    }

    pub fn send(&mut self, tid: u64, payload: &[u8]) {
        let mut b = self.tx.batch().unwrap();
        b.write_inband(tid, true, payload).unwrap();
        b.commit();
        self.signal();
    }

    /// Sends `payload` GPA-direct with `len` bytes at `offset` of data pages `first..`.
    pub fn send_gpa(&mut self, tid: u64, payload: &[u8], first: usize, offset: u32, len: u32) {
        let n = (offset as usize + len as usize).div_ceil(4096);
        let pfns: Vec<u64> = (first..first + n).map(|i| self.g.mem.pfn(i)).collect();
        self.send_ranges(tid, payload, offset, len, &pfns);
    }

    pub fn send_ranges(&mut self, tid: u64, payload: &[u8], offset: u32, len: u32, pfns: &[u64]) {
        let r = GpaRange {
            byte_count: len,
            byte_offset: offset,
            pfns,
        };
        let mut b = self.tx.batch().unwrap();
        b.write_gpa_direct(tid, true, &[r], payload).unwrap();
        b.commit();
        self.signal();
    }

    /// Every packet the host wrote: (type, transaction id, payload).
    pub fn recv(&mut self) -> Vec<(u16, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut b = match self.rx.batch() {
            Ok(b) => b,
            Err(RingError::Empty) => return out,
            Err(e) => panic!("{e}"),
        };
        while let Some(p) = b.next_packet().unwrap() {
            let mut buf = vec![0u8; p.payload_len()];
            p.read_payload(0, &mut buf).unwrap();
            out.push((p.packet_type().0, p.transaction_id(), buf));
        }
        b.commit().unwrap();
        out
    }

    /// The one completion the host sent for `tid`.
    pub fn one(&mut self, tid: u64) -> Vec<u8> {
        let mut v = self.recv();
        assert_eq!(v.len(), 1, "one completion: {v:?}");
        let (ty, t, p) = v.pop().unwrap();
        assert_eq!((ty, t), (0xB, tid), "a completion for the request");
        assert_eq!(u32le(&p, 0), COMPLETE_IO);
        p
    }

    /// Sends `p` in-band and returns the completion.
    pub fn call(&mut self, tid: u64, p: &[u8]) -> Vec<u8> {
        self.send(tid, p);
        self.one(tid)
    }

    /// BEGIN, QUERY_PROTOCOL_VERSION `v`, QUERY_PROPERTIES, END; each must succeed.
    pub fn init(&mut self, v: u16) {
        for (op, body) in [
            (BEGIN, vec![]),
            (QUERY_VERSION, v.to_le_bytes().to_vec()),
            (QUERY_PROPERTIES, vec![]),
            (END, vec![]),
        ] {
            let c = self.call(1, &pkt(op, &body, 64));
            assert_eq!(u32le(&c, 8), 0, "operation {op}");
        }
        assert_eq!(self.chan().phase, StorPhase::Ready);
    }

    pub fn chan(&self) -> hv_host::StorChannel {
        self.g.host.storage().channel(self.relid).unwrap()
    }

    pub fn page(&self, i: usize) -> Vec<u8> {
        self.g.mem.0.borrow()[i].to_vec()
    }

    pub fn errors(&self) -> Vec<GuestError> {
        self.g.host.errors().iter().collect()
    }

    pub fn trace(&self) -> Vec<String> {
        let t = self.g.host.trace();
        t.iter().map(|r| r.to_string()).collect()
    }
}
