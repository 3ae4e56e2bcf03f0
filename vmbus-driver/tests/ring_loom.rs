//! Loom model of one writer and one reader: no packet is lost or torn and no wake-up is lost under
//! the signalling rules (docs/protocol.md#producer-when-to-signal, #consumer-when-to-signal). A
//! lost wake-up shows as a deadlock (both sides waiting on their doorbell), which loom reports as a
//! failure.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p vmbus-driver --test ring_loom --release`
#![allow(unexpected_cfgs)] // `loom` is set by RUSTFLAGS only; the workspace lints do not list it.
#![cfg(loom)]

use core::sync::atomic::Ordering;

use loom::sync::atomic::{AtomicU32, AtomicU64, fence};
use loom::sync::{Arc, Notify};
use vmbus_driver::ring::{
    Control, FEATURE_PENDING_SEND_SZ, RingError, RingMem, RingReader, RingWriter, SpaceWait,
};

/// Ring memory in loom atomics: every control word and every 8-byte data word is a loom atomic,
/// so loom explores the orderings the ring code asks for. Accesses are whole words: the ring
/// code only uses 8-aligned offsets and lengths with the payloads below.
struct LoomMem {
    header: [AtomicU32; 5],
    data: Vec<AtomicU64>,
}

impl LoomMem {
    fn new(words: usize, features: u32) -> Self {
        let header = [0, 0, 0, 0, features].map(AtomicU32::new);
        Self {
            header,
            data: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn word(&self, w: Control) -> &AtomicU32 {
        &self.header[Control::ALL.iter().position(|c| *c == w).unwrap()]
    }
}

impl RingMem for LoomMem {
    fn data_size(&self) -> u32 {
        (self.data.len() * 8) as u32
    }
    fn load(&self, w: Control, order: Ordering) -> u32 {
        self.word(w).load(order)
    }
    fn store(&self, w: Control, value: u32, order: Ordering) {
        self.word(w).store(value, order);
    }
    fn swap(&self, w: Control, value: u32, order: Ordering) -> u32 {
        self.word(w).swap(value, order)
    }
    fn fence(&self, order: Ordering) {
        fence(order);
    }
    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        assert!(
            offset.is_multiple_of(8) && buf.len().is_multiple_of(8),
            "model uses whole words"
        );
        for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
            let v = self.data[offset as usize / 8 + i].load(Ordering::Relaxed);
            chunk.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn write_data(&self, offset: u32, data: &[u8]) {
        assert!(
            offset.is_multiple_of(8) && data.len().is_multiple_of(8),
            "model uses whole words"
        );
        for (i, chunk) in data.chunks_exact(8).enumerate() {
            let v = u64::from_le_bytes(chunk.try_into().unwrap());
            self.data[offset as usize / 8 + i].store(v, Ordering::Relaxed);
        }
    }
}

/// Runs the model: a 64-byte ring (one 32-byte packet fits at a time, so the writer must block
/// and be woken through pending_send_sz), `packets` packets carrying their sequence number.
/// `poll` makes the reader mask interrupts while it drains.
fn model(packets: u64, poll: bool) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(move || {
        let mem = Arc::new(LoomMem::new(8, FEATURE_PENDING_SEND_SZ));
        // The two doorbells: a Hyper-V signal (or seL4 notification) sets a pending bit that a
        // later wait consumes, which is what Notify models.
        let to_reader = Arc::new(Notify::new());
        let to_writer = Arc::new(Notify::new());

        let writer = {
            let (mem, to_reader, to_writer) = (mem.clone(), to_reader.clone(), to_writer.clone());
            loom::thread::spawn(move || {
                let mut w = RingWriter::new(&*mem).unwrap();
                for seq in 0..packets {
                    loop {
                        let mut b = w.batch().unwrap();
                        match b.write_inband(seq, false, &seq.to_le_bytes()) {
                            Ok(()) => {
                                if b.commit().signal {
                                    to_reader.notify();
                                }
                                break;
                            }
                            Err(RingError::Full) => match w.request_space(32, true).unwrap() {
                                SpaceWait::Ready => {}
                                SpaceWait::WaitForSignal => to_writer.wait(),
                                SpaceWait::Poll => unreachable!("peer has feature bit 0"),
                            },
                            Err(e) => panic!("write failed: {e}"),
                        }
                    }
                }
            })
        };

        let mut r = RingReader::new(&*mem).unwrap();
        let mut next = 0u64;
        while next < packets {
            if poll {
                r.disable_interrupts();
            }
            match r.batch() {
                Ok(mut b) => {
                    while let Some(p) = b.next_packet().unwrap() {
                        let mut buf = [0u8; 8];
                        p.read_payload(0, &mut buf).unwrap();
                        assert_eq!(p.transaction_id(), next, "packet lost or reordered");
                        assert_eq!(u64::from_le_bytes(buf), next, "torn or stale payload");
                        next += 1;
                    }
                    if b.commit().unwrap().signal {
                        to_writer.notify();
                    }
                }
                Err(RingError::Empty) => {}
                Err(e) => panic!("read failed: {e}"),
            }
            if next == packets {
                break;
            }
            // docs/protocol.md#consumer-when-to-signal step 6: re-enable, re-check, and only then
            // sleep.
            if !r.enable_interrupts().unwrap() {
                to_reader.wait();
            }
        }
        writer.join().unwrap();
    });
}

#[test]
fn writer_blocked_on_full_ring_is_woken_and_no_packet_is_lost() {
    model(3, false);
}

#[test]
fn polling_reader_that_masks_interrupts_still_misses_no_wakeup() {
    model(3, true);
}
