//! A guest for the integration services and Dynamic Memory: one device opened over test pages,
//! packets read from and written to its rings.
#![allow(dead_code)]

use super::*;
use hv_host::DeviceSpec;
use vmbus_driver::ring::{RingError, RingReader, RingWriter};

pub struct Svc {
    pub g: Guest,
    pub relid: RelId,
    pub conn: ConnectionId,
    pub tx: RingWriter<GuestRing>,
    pub rx: RingReader<GuestRing>,
}

/// Ring pages each way; the guest memory has `extra` more pages after the rings.
pub const RING_PAGES: usize = 3;

impl Svc {
    pub fn open(spec: DeviceSpec, extra: usize) -> Svc {
        let mut g = Guest::new(HostConfig::hyperv(), 2 * RING_PAGES + extra);
        g.host.add_device(spec).unwrap();
        let offer = g.connect(Version::WIN10_V5_3)[0];
        assert_eq!(
            g.open(offer.child_relid, GpadlId(1), 0, RING_PAGES, RING_PAGES),
            0
        );
        let tx = RingWriter::new(GuestRing {
            mem: g.mem.clone(),
            first: 0,
            pages: RING_PAGES,
        })
        .unwrap();
        let rx = RingReader::new(GuestRing {
            mem: g.mem.clone(),
            first: RING_PAGES,
            pages: RING_PAGES,
        })
        .unwrap();
        Svc {
            relid: offer.child_relid,
            conn: offer.connection_id,
            g,
            tx,
            rx,
        }
    }

    pub fn poll(&mut self) {
        let mut mem = self.g.mem.clone();
        self.g.host.poll(&mut mem);
    }

    /// Every in-band packet the host wrote: (transaction id, payload).
    pub fn recv(&mut self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut b = match self.rx.batch() {
            Ok(b) => b,
            Err(RingError::Empty) => return out,
            Err(e) => panic!("{e}"),
        };
        while let Some(p) = b.next_packet().unwrap() {
            let mut buf = vec![0u8; p.payload_len()];
            p.read_payload(0, &mut buf).unwrap();
            out.push((p.transaction_id(), buf));
        }
        b.commit().unwrap();
        out
    }

    /// Polls and returns the one packet the host sent.
    pub fn one(&mut self) -> (u64, Vec<u8>) {
        self.poll();
        let mut v = self.recv();
        assert_eq!(v.len(), 1, "one packet: {v:?}");
        v.pop().unwrap()
    }

    /// Writes an in-band packet and signals the host, then polls.
    pub fn send(&mut self, tid: u64, payload: &[u8]) {
        let mut b = self.tx.batch().unwrap();
        b.write_inband(tid, false, payload).unwrap();
        b.commit();
        self.g.host.signal_event(self.conn, 0);
        self.poll();
    }

    /// The trace lines since `from`.
    pub fn trace_since(&self, from: u64) -> Vec<String> {
        self.g
            .host
            .trace()
            .since(from)
            .map(|r| r.to_string())
            .collect()
    }
}
