//! Fuzz target: arbitrary ring contents and header words fed to the ring reader (and to the
//! writer, which reads the peer's read index). Nothing the peer writes may panic, index out of
//! bounds or loop without end; bad data must come back as `RingError::Corrupt`.
//!
//! Run from the repository root: `cargo +nightly-2026-05-20 fuzz run --fuzz-dir tests/fuzz
//! ring_reader`.
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use vmbus_driver::ring::{
    Control, FlatHeader, FlatRingMem, RingError, RingMem, RingReader, RingWriter,
};

/// Input: 5 little-endian u32 header words (write_index, read_index, interrupt_mask,
/// pending_send_sz, feature_bits), then the data area (rounded down to whole words).
fn run(input: &[u8]) {
    if input.len() < 20 {
        return;
    }
    let (head, body) = input.split_at(20);
    let words = body.len() / 8;
    let header = FlatHeader::new();
    let data: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
    let mem = FlatRingMem::new(&header, &data);
    mem.write_data(0, &body[..words * 8]);
    for (i, word) in Control::ALL.iter().enumerate() {
        let v = u32::from_le_bytes(head[i * 4..i * 4 + 4].try_into().unwrap());
        mem.store(*word, v, Ordering::Relaxed);
    }

    if let Ok(mut reader) = RingReader::new(mem) {
        let size = reader.data_size();
        let _ = reader.has_data();
        match reader.batch() {
            Ok(mut batch) => {
                let mut packets = 0u32;
                loop {
                    match batch.next_packet() {
                        Ok(Some(p)) => {
                            packets += 1;
                            // Every packet takes at least 24 bytes: no endless iteration.
                            assert!(packets <= size / 24);
                            let mut ext = vec![0u8; p.ext_len()];
                            p.read_ext(0, &mut ext).unwrap();
                            let mut payload = vec![0u8; p.payload_len()];
                            p.read_payload(0, &mut payload).unwrap();
                            assert_eq!(
                                p.read_payload(p.payload_len(), &mut [0]),
                                Err(RingError::OutOfPacket)
                            );
                        }
                        Ok(None) => break,
                        Err(RingError::Corrupt(_)) => {
                            // Sticky: the batch never resumes after corruption.
                            assert!(matches!(batch.next_packet(), Err(RingError::Corrupt(_))));
                            break;
                        }
                        Err(e) => panic!("unexpected reader error {e}"),
                    }
                }
                let _ = batch.commit();
            }
            Err(RingError::Empty | RingError::Corrupt(_)) => {}
            Err(e) => panic!("unexpected batch error {e}"),
        }
        let _ = reader.enable_interrupts();
    }

    // The writer trusts nothing it reads either (the peer's read index).
    if let Ok(mut writer) = RingWriter::new(mem) {
        if let Ok(mut batch) = writer.batch() {
            let payload = &body[..body.len().min(64)];
            while batch.write_inband(1, true, payload).is_ok() {}
            let _ = batch.commit();
        }
        let _ = writer.request_space(32, true);
    }
}

fuzz_target!(|data: &[u8]| run(data));
