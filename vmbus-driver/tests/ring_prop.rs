//! Property tests: random interleavings of batched writes and reads against a reference model (a
//! queue of packets and a byte count), and arbitrary ring contents fed to the reader.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use vmbus_driver::ring::{
    Control, FlatHeader, FlatRingMem, GpaRange, PacketType, RingError, RingMem, RingReader,
    RingWriter,
};

#[derive(Debug, Clone)]
enum Kind {
    Inband,
    Completion,
    Gpa(u32),
}

#[derive(Debug, Clone)]
enum Op {
    /// Write these packets in one batch; commit unless `drop`.
    Write {
        packets: Vec<(Kind, Vec<u8>)>,
        drop: bool,
    },
    /// Read up to `max` packets in one batch; commit unless `drop`.
    Read { max: usize, drop: bool },
    /// Set the consumer's interrupt mask.
    Mask(bool),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Inband),
        Just(Kind::Completion),
        (1u32..9000).prop_map(Kind::Gpa)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Dropped (uncommitted) batches are rare in practice: one in eight here.
        4 => (
            prop::collection::vec((kind(), prop::collection::vec(any::<u8>(), 0..200)), 1..5),
            prop::bool::weighted(0.125),
        )
            .prop_map(|(packets, drop)| Op::Write { packets, drop }),
        4 => (1usize..6, prop::bool::weighted(0.125)).prop_map(|(max, drop)| Op::Read { max, drop }),
        1 => any::<bool>().prop_map(Op::Mask),
    ]
}

/// Ring bytes a packet of this kind and payload takes, from docs/protocol.md#packets: 16-byte
/// descriptor, GPA extended descriptor (8 + per range 8 + 8 per page), payload padded to 8, 8-byte
/// trailer.
fn total_len(kind: &Kind, payload: usize) -> u32 {
    let ext = match kind {
        Kind::Gpa(count) => 8 + 8 + 8 * (100 + u64::from(*count)).div_ceil(4096) as usize,
        _ => 0,
    };
    (16 + ext + payload.next_multiple_of(8) + 8) as u32
}

fn packet_type(kind: &Kind) -> PacketType {
    match kind {
        Kind::Inband => PacketType::DATA_INBAND,
        Kind::Completion => PacketType::COMP,
        Kind::Gpa(_) => PacketType::DATA_USING_GPA_DIRECT,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn interleaved_batches_match_a_queue_model(
        words in 8usize..160,
        start_word in 0usize..160,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let size = (words * 8) as u32;
        let header = FlatHeader::new();
        let data: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        let mem = FlatRingMem::new(&header, &data);
        // Start somewhere inside the ring so packets wrap.
        let start = ((start_word % words) * 8) as u32;
        mem.store(Control::WriteIndex, start, Ordering::Relaxed);
        mem.store(Control::ReadIndex, start, Ordering::Relaxed);
        let mut writer = RingWriter::new(mem).unwrap();
        let mut reader = RingReader::new(mem).unwrap();
        let mut model: VecDeque<(PacketType, u64, Vec<u8>, u32)> = VecDeque::new();
        let mut used: u32 = 0;
        let mut masked = false;
        let mut next_id = 0u64;
        let pfns: Vec<u64> = (0..4).collect();

        for op in ops {
            match op {
                Op::Write { packets, drop } => {
                    let empty_before = model.is_empty();
                    let mut pending = Vec::new();
                    let mut batch_used = 0;
                    let mut b = writer.batch().unwrap();
                    for (kind, payload) in packets {
                        let t = total_len(&kind, payload.len());
                        next_id += 1;
                        let res = match &kind {
                            Kind::Inband => b.write_inband(next_id, false, &payload),
                            Kind::Completion => b.write_completion(next_id, &payload),
                            Kind::Gpa(count) => {
                                let pages = (100 + *count).div_ceil(4096) as usize;
                                let range = GpaRange { byte_count: *count, byte_offset: 100, pfns: &pfns[..pages] };
                                b.write_gpa_direct(next_id, true, &[range], &payload)
                            }
                        };
                        // The full rule from docs/protocol.md#space-and-the-full-rule, computed
                        // from the model's byte count.
                        let expect = if t > size - 8 {
                            Err(RingError::TooBig)
                        } else if t >= size - used - batch_used {
                            Err(RingError::Full)
                        } else {
                            Ok(())
                        };
                        prop_assert_eq!(res, expect);
                        if res.is_ok() {
                            batch_used += t;
                            let mut padded = payload.clone();
                            padded.resize(payload.len().next_multiple_of(8), 0);
                            pending.push((packet_type(&kind), next_id, padded, t));
                        }
                    }
                    if drop {
                        continue;
                    }
                    let out = b.commit();
                    prop_assert_eq!(out.packets as usize, pending.len());
                    prop_assert_eq!(out.signal, !pending.is_empty() && empty_before && !masked);
                    used += batch_used;
                    model.extend(pending);
                }
                Op::Read { max, drop } => {
                    let mut b = match reader.batch() {
                        Err(RingError::Empty) => {
                            prop_assert!(model.is_empty());
                            continue;
                        }
                        other => other.unwrap(),
                    };
                    let mut got = Vec::new();
                    while got.len() < max {
                        let Some(p) = b.next_packet().unwrap() else { break };
                        let mut ext = vec![0u8; p.ext_len()];
                        p.read_ext(0, &mut ext).unwrap();
                        let mut payload = vec![0u8; p.payload_len()];
                        p.read_payload(0, &mut payload).unwrap();
                        got.push((p.packet_type(), p.transaction_id(), payload));
                    }
                    for (i, (ty, id, payload)) in got.iter().enumerate() {
                        let want = &model[i];
                        prop_assert_eq!((ty, id, payload), (&want.0, &want.1, &want.2));
                    }
                    if drop {
                        continue;
                    }
                    let out = b.commit().unwrap();
                    prop_assert_eq!(out.packets as usize, got.len());
                    for _ in 0..got.len() {
                        used -= model.pop_front().unwrap().3;
                    }
                    prop_assert!(!out.signal, "no pending_send_sz was set");
                }
                Op::Mask(m) => {
                    if m { reader.disable_interrupts() } else {
                        prop_assert_eq!(reader.enable_interrupts(), Ok(!model.is_empty()));
                    }
                    masked = m;
                }
            }
            prop_assert_eq!(mem.load(Control::WriteIndex, Ordering::Relaxed), writer.write_index());
            prop_assert_eq!(
                (writer.write_index() + size - reader.read_index()) % size,
                used,
                "ring bytes in use disagree with the model"
            );
        }
    }

    #[test]
    fn arbitrary_ring_contents_never_panic_or_loop(
        bytes in prop::collection::vec(any::<u8>(), 32..512),
        write_index in any::<u32>(),
        read_index in any::<u32>(),
        pending in any::<u32>(),
        features in any::<u32>(),
    ) {
        let words = bytes.len() / 8;
        let size = (words * 8) as u32;
        let header = FlatHeader::new();
        let data: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
        let mem = FlatRingMem::new(&header, &data);
        mem.write_data(0, &bytes[..words * 8]);
        // Half the time use a valid index, so descriptors get exercised.
        let fix = |v: u32| if v & 1 == 0 { ((v >> 1) % size) & !7 } else { v >> 1 };
        mem.store(Control::ReadIndex, fix(read_index), Ordering::Relaxed);
        mem.store(Control::WriteIndex, fix(write_index), Ordering::Relaxed);
        mem.store(Control::PendingSendSz, pending, Ordering::Relaxed);
        mem.store(Control::FeatureBits, features, Ordering::Relaxed);
        let Ok(mut reader) = RingReader::new(mem) else { return Ok(()) };
        let Ok(mut b) = reader.batch() else { return Ok(()) };
        let mut count = 0u32;
        loop {
            match b.next_packet() {
                Ok(Some(p)) => {
                    let mut buf = vec![0u8; p.payload_len()];
                    p.read_payload(0, &mut buf).unwrap();
                    count += 1;
                    prop_assert!(count <= size / 24, "more packets than could fit");
                }
                Ok(None) | Err(RingError::Corrupt(_)) => break,
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
        let _ = b.commit();
    }
}
