//! One test per rule of the VMBus ring (docs/protocol.md#ring-buffers), through the public API over
//! the in-memory ring memory. Expected bytes are written from the document's offsets, not by the
//! encoder.

use core::sync::atomic::{AtomicU64, Ordering};

use vmbus_driver::ring::{
    Control, Corruption, FEATURE_PENDING_SEND_SZ, FlatHeader, FlatRingMem, GpaRange, PacketType,
    RingError, RingMem, RingReader, RingWriter, SpaceWait, init_ring,
};

/// A ring's memory owned by the test.
struct Ring {
    header: FlatHeader,
    data: Vec<AtomicU64>,
}

impl Ring {
    fn new(data_size: usize) -> Self {
        Self {
            header: FlatHeader::new(),
            data: (0..data_size / 8).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn mem(&self) -> FlatRingMem<'_> {
        FlatRingMem::new(&self.header, &self.data)
    }
    fn bytes(&self, at: u32, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem().read_data(at, &mut v);
        v
    }
    fn put(&self, at: u32, bytes: &[u8]) {
        self.mem().write_data(at, bytes);
    }
    fn get(&self, w: Control) -> u32 {
        self.mem().load(w, Ordering::SeqCst)
    }
    fn set(&self, w: Control, v: u32) {
        self.mem().store(w, v, Ordering::SeqCst);
    }
}

/// A descriptor built from the docs/protocol.md#packets offsets: type @0, offset8 @2, len8 @4,
/// flags @6, id @8.
fn desc(ty: u16, offset8: u16, len8: u16, flags: u16, id: u64) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&ty.to_le_bytes());
    d.extend_from_slice(&offset8.to_le_bytes());
    d.extend_from_slice(&len8.to_le_bytes());
    d.extend_from_slice(&flags.to_le_bytes());
    d.extend_from_slice(&id.to_le_bytes());
    d
}

fn write_one(ring: &Ring, payload: &[u8]) -> Result<bool, RingError> {
    let mut w = RingWriter::new(ring.mem())?;
    let mut b = w.batch()?;
    b.write_inband(7, false, payload)?;
    Ok(b.commit().signal)
}

/// A ring memory that implements only the required methods, so the provided word accesses
/// (`read_word`, `write_word` through `read_data`/`write_data`) are the ones under test.
struct BytesOnly<'a>(FlatRingMem<'a>);

impl RingMem for BytesOnly<'_> {
    fn data_size(&self) -> u32 {
        self.0.data_size()
    }
    fn load(&self, word: Control, order: Ordering) -> u32 {
        self.0.load(word, order)
    }
    fn store(&self, word: Control, value: u32, order: Ordering) {
        self.0.store(word, value, order);
    }
    fn swap(&self, word: Control, value: u32, order: Ordering) -> u32 {
        self.0.swap(word, value, order)
    }
    fn fence(&self, order: Ordering) {
        self.0.fence(order);
    }
    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        self.0.read_data(offset, buf);
    }
    fn write_data(&self, offset: u32, data: &[u8]) {
        self.0.write_data(offset, data);
    }
}

#[test]
fn word_accesses_put_byte_i_of_the_little_endian_word_at_offset_plus_i() {
    let ring = Ring::new(4096);
    let value = 0x0807_0605_0403_0201_u64;
    let layout: Vec<u8> = (1..=8).collect();
    let other: Vec<u8> = (0x10..0x18).collect();
    let check = |mem: &dyn RingMem, offset: u32| {
        mem.write_word(offset, value);
        assert_eq!(ring.bytes(offset, 8), layout, "write_word at {offset}");
        ring.put(offset, &other);
        assert_eq!(
            mem.read_word(offset),
            u64::from_le_bytes(other.clone().try_into().unwrap()),
            "read_word at {offset}"
        );
    };
    for offset in [0, 8, 4088] {
        check(&ring.mem(), offset);
        check(&BytesOnly(ring.mem()), offset);
    }
}

/// Packets written and read over a memory with only the provided (byte-copy) word accesses:
/// the ring code's descriptor and trailer words land where the protocol puts them.
#[test]
fn packets_round_trip_over_a_memory_without_word_overrides() {
    let ring = Ring::new(4096);
    let mem = BytesOnly(ring.mem());
    init_ring(&mem, 0);
    let mut w = RingWriter::new(&mem).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(1, false, &[]).unwrap();
    b.write_inband(0x1122_3344, true, &[9; 13]).unwrap();
    b.commit();
    // The first packet: a bare descriptor and its trailer (24 bytes); the second starts at 24.
    assert_eq!(ring.bytes(24, 16), desc(6, 2, 4, 1, 0x1122_3344));
    assert_eq!(ring.bytes(40, 8), [9; 8]);
    assert_eq!(ring.bytes(48, 8), [9, 9, 9, 9, 9, 0, 0, 0], "zero padding");
    assert_eq!(ring.bytes(56, 8), [0, 0, 0, 0, 24, 0, 0, 0], "trailer");
    let mut r = RingReader::new(&mem).unwrap();
    let mut rb = r.batch().unwrap();
    assert_eq!(rb.next_packet().unwrap().unwrap().transaction_id(), 1);
    let p = rb.next_packet().unwrap().unwrap();
    assert_eq!(p.transaction_id(), 0x1122_3344);
    assert!(p.completion_requested());
    let mut back = [0u8; 16];
    p.read_payload(0, &mut back).unwrap();
    assert_eq!(back[..13], [9; 13]);
}

#[test]
fn ring_sizes_that_break_the_index_rules_are_refused() {
    let odd = Ring::new(64);
    let short = FlatRingMem::new(&odd.header, &odd.data[..3]);
    assert_eq!(RingWriter::new(short).err(), Some(RingError::BadSize(24)));
    assert_eq!(RingReader::new(short).err(), Some(RingError::BadSize(24)));
    assert!(RingWriter::new(odd.mem()).is_ok());
}

#[test]
fn init_ring_zeroes_indices_mask_pending_and_sets_features() {
    let r = Ring::new(64);
    for w in Control::ALL {
        r.set(w, 0xdead_beef);
    }
    init_ring(&r.mem(), FEATURE_PENDING_SEND_SZ);
    assert_eq!(r.get(Control::WriteIndex), 0);
    assert_eq!(r.get(Control::ReadIndex), 0);
    assert_eq!(r.get(Control::InterruptMask), 0);
    assert_eq!(r.get(Control::PendingSendSz), 0);
    assert_eq!(r.get(Control::FeatureBits), 1);
}

#[test]
fn inband_packet_matches_protocol_layout_with_padding_and_trailer() {
    let r = Ring::new(256);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(0x1122_3344_5566_7788, true, b"abc").unwrap();
    b.write_inband(9, false, &[0xAA; 8]).unwrap();
    b.commit();
    // Packet 1: descriptor, 3 payload bytes + 5 zero padding, trailer with start offset 0.
    let mut want = desc(6, 2, 3, 1, 0x1122_3344_5566_7788);
    want.extend_from_slice(b"abc\0\0\0\0\0");
    want.extend_from_slice(&[0; 8]);
    // Packet 2 starts at 32: trailer bits 63:32 = 32, bits 31:0 = 0.
    want.extend(desc(6, 2, 3, 0, 9));
    want.extend_from_slice(&[0xAA; 8]);
    want.extend_from_slice(&[0, 0, 0, 0, 32, 0, 0, 0]);
    assert_eq!(r.bytes(0, 64), want);
    assert_eq!(r.get(Control::WriteIndex), 64);
}

#[test]
fn completion_packet_has_type_0xb_and_echoes_the_transaction_id() {
    let r = Ring::new(128);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_completion(0xabcd, &[1, 2, 3, 4, 5, 6, 7, 8, 9])
        .unwrap();
    b.commit();
    let mut want = desc(0xB, 2, 4, 0, 0xabcd);
    want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0]);
    want.extend_from_slice(&[0; 8]);
    assert_eq!(r.bytes(0, 40), want);
}

#[test]
fn gpa_direct_packet_carries_ranges_in_the_extended_descriptor() {
    let r = Ring::new(256);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let pfns_a = [0x1000u64, 0x1001];
    let pfns_b = [0x2222u64];
    let ranges = [
        GpaRange {
            byte_count: 5000,
            byte_offset: 100,
            pfns: &pfns_a,
        },
        GpaRange {
            byte_count: 16,
            byte_offset: 0,
            pfns: &pfns_b,
        },
    ];
    let mut b = w.batch().unwrap();
    b.write_gpa_direct(5, true, &ranges, &[0x55; 8]).unwrap();
    b.commit();
    // Ext descriptor: reserved u32 @16, range_count u32 @20, ranges from @24:
    // {count, offset, pfn, pfn} = 24 bytes, {count, offset, pfn} = 16 bytes -> payload @64.
    let mut want = desc(9, 8, 9, 1, 5);
    want.extend_from_slice(&0u32.to_le_bytes());
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(&5000u32.to_le_bytes());
    want.extend_from_slice(&100u32.to_le_bytes());
    want.extend_from_slice(&0x1000u64.to_le_bytes());
    want.extend_from_slice(&0x1001u64.to_le_bytes());
    want.extend_from_slice(&16u32.to_le_bytes());
    want.extend_from_slice(&0u32.to_le_bytes());
    want.extend_from_slice(&0x2222u64.to_le_bytes());
    want.extend_from_slice(&[0x55; 8]);
    want.extend_from_slice(&[0; 8]);
    assert_eq!(r.bytes(0, 80), want);
    // The reader sees the same split.
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut batch = rd.batch().unwrap();
    let p = batch.next_packet().unwrap().unwrap();
    assert_eq!(p.packet_type(), PacketType::DATA_USING_GPA_DIRECT);
    assert_eq!((p.ext_len(), p.payload_len()), (48, 8));
    let mut ext = [0u8; 8];
    p.read_ext(0, &mut ext).unwrap();
    assert_eq!(ext, [0, 0, 0, 0, 2, 0, 0, 0]);
}

#[test]
fn malformed_gpa_ranges_are_refused_before_touching_the_ring() {
    let r = Ring::new(256);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    let one = [1u64];
    let bad = [
        vec![],
        vec![GpaRange {
            byte_count: 0,
            byte_offset: 0,
            pfns: &one,
        }],
        vec![GpaRange {
            byte_count: 8,
            byte_offset: 4096,
            pfns: &one,
        }],
        vec![GpaRange {
            byte_count: 4000,
            byte_offset: 100,
            pfns: &one,
        }],
        vec![GpaRange {
            byte_count: 8,
            byte_offset: 0,
            pfns: &[1, 2],
        }],
    ];
    for ranges in &bad {
        assert_eq!(
            b.write_gpa_direct(1, false, ranges, &[]),
            Err(RingError::BadRange)
        );
    }
    assert_eq!(b.packets(), 0);
    assert_eq!(b.commit().packets, 0);
    assert_eq!(r.get(Control::WriteIndex), 0);
}

#[test]
fn ring_never_becomes_completely_full() {
    // 64-byte ring, 24-byte packets: 24 < 64, 24 < 40, then free is 16.
    let r = Ring::new(64);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(1, false, &[]).unwrap();
    // A packet of exactly the free space (40) would make write_index catch up to read_index.
    assert_eq!(b.write_inband(2, false, &[0; 16]), Err(RingError::Full));
    // free - 8 (32 bytes) fits and leaves the 8-byte reserve.
    b.write_inband(2, false, &[0; 8]).unwrap();
    assert_eq!(b.room(), 0);
    assert_eq!(b.write_inband(3, false, &[]), Err(RingError::Full));
    b.commit();
    assert_eq!(r.get(Control::WriteIndex), 56);
    assert_ne!(r.get(Control::WriteIndex), r.get(Control::ReadIndex));
}

#[test]
fn packet_longer_than_size_minus_8_is_too_big_not_full() {
    let r = Ring::new(64);
    let mut w = RingWriter::new(r.mem()).unwrap();
    {
        let mut b = w.batch().unwrap();
        // 16 + 32 + 8 = 56 = size - 8: the largest packet; fits in an empty ring.
        b.write_inband(1, false, &[0; 32]).unwrap();
        // Dropped uncommitted.
    }
    let mut b = w.batch().unwrap();
    assert_eq!(b.write_inband(1, false, &[0; 33]), Err(RingError::TooBig));
    assert_eq!(w.request_space(64, true), Err(RingError::TooBig));
}

#[test]
fn batch_publishes_write_index_once_at_commit_and_drop_discards() {
    let r = Ring::new(256);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    for i in 0..3 {
        b.write_inband(i, false, &[i as u8; 8]).unwrap();
        assert_eq!(r.get(Control::WriteIndex), 0, "published before commit");
    }
    let out = b.commit();
    assert_eq!(out.packets, 3);
    assert_eq!(r.get(Control::WriteIndex), 96);
    {
        let mut b = w.batch().unwrap();
        b.write_inband(9, false, &[]).unwrap();
        // Dropped uncommitted.
    }
    assert_eq!(r.get(Control::WriteIndex), 96);
    assert_eq!(w.write_index(), 96);
}

#[test]
fn writer_signals_only_when_ring_was_empty_before_the_write() {
    let r = Ring::new(256);
    assert_eq!(
        write_one(&r, &[1; 8]),
        Ok(true),
        "empty -> non-empty must signal"
    );
    assert_eq!(
        write_one(&r, &[2; 8]),
        Ok(false),
        "ring not empty: Hyper-V throttles this"
    );
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    while b.next_packet().unwrap().is_some() {}
    b.commit().unwrap();
    assert_eq!(
        write_one(&r, &[3; 8]),
        Ok(true),
        "drained ring is empty again"
    );
}

#[test]
fn writer_does_not_signal_while_consumer_masks_interrupts() {
    let r = Ring::new(256);
    let rd = RingReader::new(r.mem()).unwrap();
    rd.disable_interrupts();
    assert_eq!(r.get(Control::InterruptMask), 1);
    assert_eq!(write_one(&r, &[1; 8]), Ok(false));
}

#[test]
fn empty_commit_neither_publishes_nor_signals() {
    let r = Ring::new(256);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let out = w.batch().unwrap().commit();
    assert!(!out.signal);
    assert_eq!(out.packets, 0);
}

#[test]
fn blocked_writer_sets_pending_send_sz_only_if_peer_has_feature_bit() {
    let r = Ring::new(128);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(1, false, &[0; 64]).unwrap(); // 88 bytes, free 40
    b.commit();
    // Without the peer's feature bit: poll, leave pending_send_sz alone.
    assert_eq!(w.request_space(42, false), Ok(SpaceWait::Poll));
    assert_eq!(r.get(Control::PendingSendSz), 0);
    // With it: pending_send_sz rounded up to 8, wait for a signal.
    assert_eq!(w.request_space(42, true), Ok(SpaceWait::WaitForSignal));
    assert_eq!(r.get(Control::PendingSendSz), 48);
    // A packet that fits needs no wait.
    assert_eq!(w.request_space(32, true), Ok(SpaceWait::Ready));
    assert_eq!(
        r.get(Control::PendingSendSz),
        0,
        "cleared once the wait is over"
    );
}

#[test]
fn pending_send_sz_is_cleared_by_the_next_write_after_space_frees() {
    let r = Ring::new(128);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(1, false, &[0; 64]).unwrap();
    b.commit();
    assert_eq!(w.request_space(88, true), Ok(SpaceWait::WaitForSignal));
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut rb = rd.batch().unwrap();
    rb.next_packet().unwrap().unwrap();
    rb.commit().unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(2, false, &[0; 64]).unwrap();
    b.commit();
    assert_eq!(r.get(Control::PendingSendSz), 0);
}

#[test]
fn reader_rejects_write_index_outside_the_ring_or_misaligned() {
    let r = Ring::new(64);
    let mut rd = RingReader::new(r.mem()).unwrap();
    r.set(Control::WriteIndex, 64);
    assert_eq!(
        rd.batch().err(),
        Some(RingError::Corrupt(Corruption::IndexOutOfRange(64)))
    );
    r.set(Control::WriteIndex, 12);
    assert_eq!(
        rd.batch().err(),
        Some(RingError::Corrupt(Corruption::IndexMisaligned(12)))
    );
    assert_eq!(
        rd.enable_interrupts(),
        Err(RingError::Corrupt(Corruption::IndexMisaligned(12)))
    );
}

#[test]
fn writer_rejects_read_index_outside_the_ring_or_misaligned() {
    let r = Ring::new(64);
    let mut w = RingWriter::new(r.mem()).unwrap();
    r.set(Control::ReadIndex, 0xffff_fff8);
    assert_eq!(
        w.batch().err(),
        Some(RingError::Corrupt(Corruption::IndexOutOfRange(0xffff_fff8)))
    );
    r.set(Control::ReadIndex, 4);
    assert_eq!(
        w.request_space(24, true),
        Err(RingError::Corrupt(Corruption::IndexMisaligned(4)))
    );
}

/// Writes raw packet bytes at 0 and sets the write index to `len`, then reads one packet.
fn read_raw(bytes: &[u8], write_index: u32) -> Result<Option<(u16, usize)>, RingError> {
    let r = Ring::new(256);
    r.put(0, bytes);
    r.set(Control::WriteIndex, write_index);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch()?;
    let got = b
        .next_packet()?
        .map(|p| (p.packet_type().0, p.payload_len()));
    Ok(got)
}

fn raw_packet(ty: u16, offset8: u16, len8: u16, flags: u16) -> Vec<u8> {
    let mut v = desc(ty, offset8, len8, flags, 0);
    v.resize(128, 0);
    v
}

#[test]
fn reader_accepts_a_well_formed_packet() {
    assert_eq!(read_raw(&raw_packet(6, 2, 3, 1), 32), Ok(Some((6, 8))));
}

#[test]
fn reader_rejects_payload_offset_inside_the_descriptor() {
    assert_eq!(
        read_raw(&raw_packet(6, 1, 3, 0), 32),
        Err(RingError::Corrupt(Corruption::PayloadOffsetTooSmall(1)))
    );
}

#[test]
fn reader_rejects_length_below_payload_offset() {
    assert_eq!(
        read_raw(&raw_packet(6, 4, 3, 0), 32),
        Err(RingError::Corrupt(Corruption::LengthBelowOffset {
            offset8: 4,
            len8: 3
        }))
    );
}

#[test]
fn reader_rejects_packet_running_past_the_write_index() {
    // len8 3 -> 24 + 8 trailer = 32 bytes, but only 24 readable.
    assert_eq!(
        read_raw(&raw_packet(6, 2, 3, 0), 24),
        Err(RingError::Corrupt(Corruption::PastWriteIndex {
            needed: 32,
            available: 24
        }))
    );
    // A huge len8 must not wrap around the ring either.
    assert_eq!(
        read_raw(&raw_packet(6, 2, 0xffff, 0), 64),
        Err(RingError::Corrupt(Corruption::PastWriteIndex {
            needed: 0xffff * 8 + 8,
            available: 64
        }))
    );
}

#[test]
fn reader_rejects_unknown_packet_types() {
    for ty in [0u16, 0xE, 0xffff] {
        assert_eq!(
            read_raw(&raw_packet(ty, 2, 2, 0), 24),
            Err(RingError::Corrupt(Corruption::UnknownType(ty)))
        );
    }
    for ty in [1u16, 7, 9, 0xB, 0xD] {
        assert_eq!(read_raw(&raw_packet(ty, 2, 2, 0), 24), Ok(Some((ty, 0))));
    }
}

#[test]
fn reader_rejects_flags_other_than_completion_requested() {
    assert_eq!(
        read_raw(&raw_packet(6, 2, 2, 2), 24),
        Err(RingError::Corrupt(Corruption::ReservedFlags(2)))
    );
}

#[test]
fn reader_rejects_fewer_readable_bytes_than_a_minimal_packet() {
    assert_eq!(
        read_raw(&raw_packet(6, 2, 2, 0), 16),
        Err(RingError::Corrupt(Corruption::Truncated(16)))
    );
}

#[test]
fn corrupt_descriptor_stops_the_batch_and_stays_reported() {
    let r = Ring::new(256);
    write_one(&r, &[1; 8]).unwrap();
    // A bad descriptor right after the good packet, covered by a bigger write index.
    r.put(32, &desc(6, 0, 3, 0, 0));
    r.set(Control::WriteIndex, 64);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    assert!(b.next_packet().unwrap().is_some());
    let err = Err(RingError::Corrupt(Corruption::PayloadOffsetTooSmall(0)));
    assert_eq!(b.next_packet().map(|p| p.is_some()), err);
    assert_eq!(b.next_packet().map(|p| p.is_some()), err);
    // The good packet is still consumed.
    assert_eq!(b.commit().unwrap().packets, 1);
    assert_eq!(r.get(Control::ReadIndex), 32);
}

#[test]
fn reader_consumes_several_packets_with_one_read_index_publish() {
    let r = Ring::new(256);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    for i in 0..4u8 {
        b.write_inband(u64::from(i), false, &[i; 12]).unwrap();
    }
    b.commit();
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    let mut seen = Vec::new();
    while let Some(p) = b.next_packet().unwrap() {
        let mut buf = [0u8; 16];
        p.read_payload(0, &mut buf).unwrap();
        seen.push((p.transaction_id(), buf));
        assert_eq!(r.get(Control::ReadIndex), 0, "published before commit");
    }
    let out = b.commit().unwrap();
    assert_eq!((out.packets, out.bytes), (4, 160));
    assert_eq!(r.get(Control::ReadIndex), 160);
    for (i, (id, buf)) in seen.into_iter().enumerate() {
        let mut want = [0u8; 16];
        want[..12].fill(i as u8);
        assert_eq!((id, buf), (i as u64, want));
    }
    assert_eq!(rd.batch().err(), Some(RingError::Empty));
}

#[test]
fn packet_and_descriptor_split_across_the_wrap_read_back_intact() {
    let r = Ring::new(64);
    // Start both indices at 56: the descriptor is split 8 | 8 at the end of the data area.
    r.set(Control::WriteIndex, 56);
    r.set(Control::ReadIndex, 56);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(0x0102_0304_0506_0708, false, b"wrapping!")
        .unwrap();
    assert_eq!(b.commit().packets, 1);
    // 16 + 16 + 8 = 40 bytes from 56: ends at 32 after the wrap.
    assert_eq!(r.get(Control::WriteIndex), 32);
    // Trailer lands at 56 + 32 - 64 = 24 and names the start offset 56.
    assert_eq!(r.bytes(24, 8), [0, 0, 0, 0, 56, 0, 0, 0]);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    let p = b.next_packet().unwrap().unwrap();
    assert_eq!(p.transaction_id(), 0x0102_0304_0506_0708);
    let mut buf = [0u8; 9];
    p.read_payload(0, &mut buf).unwrap();
    assert_eq!(&buf, b"wrapping!");
}

#[test]
fn trailer_contents_are_never_trusted() {
    let r = Ring::new(256);
    write_one(&r, &[1; 8]).unwrap();
    r.put(24, &[0xff; 8]); // QEMU leaves old bytes in the trailer.
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    assert!(b.next_packet().unwrap().is_some());
    assert!(b.next_packet().unwrap().is_none());
}

#[test]
fn payload_reads_past_the_packet_are_refused() {
    let r = Ring::new(256);
    write_one(&r, &[1; 8]).unwrap();
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    let p = b.next_packet().unwrap().unwrap();
    let mut buf = [0u8; 9];
    assert_eq!(p.read_payload(0, &mut buf), Err(RingError::OutOfPacket));
    assert_eq!(p.read_payload(9, &mut []), Err(RingError::OutOfPacket));
    assert_eq!(p.read_payload(8, &mut []), Ok(()));
    assert_eq!(p.read_ext(0, &mut [0u8; 1]), Err(RingError::OutOfPacket));
}

/// Fills a 128-byte ring with two 56-byte packets (free 16), the producer waiting for `pending`.
fn blocked_ring(features: u32, pending: u32) -> Ring {
    let r = Ring::new(128);
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(1, false, &[0; 32]).unwrap();
    b.write_inband(2, false, &[0; 32]).unwrap();
    b.commit();
    r.set(Control::FeatureBits, features);
    r.set(Control::PendingSendSz, pending);
    r
}

#[test]
fn reader_signals_blocked_writer_only_on_the_free_space_transition() {
    // Free 16; waiting for 56 bytes: the first packet read frees 56 (free 72 > 56): transition.
    let r = blocked_ring(FEATURE_PENDING_SEND_SZ, 56);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    b.next_packet().unwrap().unwrap();
    assert!(b.commit().unwrap().signal);
    // Already above the threshold: no second signal.
    let mut b = rd.batch().unwrap();
    b.next_packet().unwrap().unwrap();
    assert!(!b.commit().unwrap().signal);
}

#[test]
fn reader_does_not_signal_when_freed_space_is_still_not_enough() {
    // Waiting for 72: freeing 56 gives free 72, not > 72.
    let r = blocked_ring(FEATURE_PENDING_SEND_SZ, 72);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    b.next_packet().unwrap().unwrap();
    assert!(!b.commit().unwrap().signal);
    let mut b = rd.batch().unwrap();
    b.next_packet().unwrap().unwrap();
    assert!(b.commit().unwrap().signal, "free 128 > 72 now");
}

#[test]
fn reader_ignores_pending_send_sz_without_the_producer_feature_bit() {
    let r = blocked_ring(0, 56);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    b.next_packet().unwrap().unwrap();
    assert!(!b.commit().unwrap().signal);
}

#[test]
fn reader_masks_low_bits_of_pending_send_sz() {
    // A peer writing size-1 style values: 63 & !7 = 56, same as 56.
    let r = blocked_ring(FEATURE_PENDING_SEND_SZ, 63);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    b.next_packet().unwrap().unwrap();
    assert!(b.commit().unwrap().signal);
    // 7 & !7 = 0: not waiting.
    let r = blocked_ring(FEATURE_PENDING_SEND_SZ, 7);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    b.next_packet().unwrap().unwrap();
    assert!(!b.commit().unwrap().signal);
}

#[test]
fn enable_interrupts_reports_data_that_arrived_while_masked() {
    let r = Ring::new(256);
    let rd = RingReader::new(r.mem()).unwrap();
    rd.disable_interrupts();
    assert_eq!(write_one(&r, &[1; 8]), Ok(false));
    assert_eq!(
        rd.enable_interrupts(),
        Ok(true),
        "sleeping now would lose the packet"
    );
    assert_eq!(r.get(Control::InterruptMask), 0);
    let r2 = Ring::new(256);
    let rd2 = RingReader::new(r2.mem()).unwrap();
    assert_eq!(rd2.enable_interrupts(), Ok(false));
}

#[test]
fn producer_features_are_read_from_the_ring_header() {
    let r = Ring::new(64);
    init_ring(&r.mem(), FEATURE_PENDING_SEND_SZ);
    assert_eq!(RingReader::new(r.mem()).unwrap().producer_features(), 1);
}

#[test]
fn errors_display_what_was_wrong() {
    let e = RingError::Corrupt(Corruption::IndexMisaligned(12));
    assert_eq!(
        e.to_string(),
        "peer corrupted the ring: ring index 12 is not a multiple of 8"
    );
    assert_eq!(
        RingError::Full.to_string(),
        "not enough free space in the ring"
    );
}

#[test]
fn flat_ring_mem_copies_bytes_at_any_alignment_without_touching_neighbours() {
    let r = Ring::new(64);
    r.put(0, &[0xEE; 64]);
    let src: Vec<u8> = (1..=19).collect();
    for offset in [0u32, 1, 7, 8, 13, 45] {
        r.put(offset, &src);
        assert_eq!(r.bytes(offset, src.len()), src);
        if offset > 0 {
            assert_eq!(r.bytes(offset - 1, 1), [0xEE], "byte before {offset}");
        }
        let end = offset + src.len() as u32;
        if end < 64 {
            assert_eq!(r.bytes(end, 1), [0xEE], "byte after {offset}");
        }
        r.put(0, &[0xEE; 64]);
    }
    assert_eq!(r.bytes(0, 64), vec![0xEE; 64]);
}

/// Guards the writer's copy fast paths (a small packet assembled on the stack, a larger one in
/// three copies) against a wrong offset, lost padding or a trailer in the wrong place, including
/// a packet that ends exactly at the end of the data area (the cursor must wrap to 0).
#[test]
fn fast_path_packets_ending_at_the_ring_end_keep_the_protocol_layout() {
    // Sizes on both sides of the stack-assembly limit (104 payload bytes: 128 with framing).
    for payload_len in [0usize, 5, 64, 104, 105, 200, 1500] {
        let total = 16 + payload_len.next_multiple_of(8) + 8;
        // 128 bytes of room before the packet, which ends exactly at the end of the data area.
        let ring = Ring::new(total + 128);
        let data_size = ring.data.len() * 8;
        let at = data_size - total;
        init_ring(&ring.mem(), 0);
        ring.set(Control::WriteIndex, at as u32);
        ring.set(Control::ReadIndex, at as u32);
        let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8 + 1).collect();
        // Poison the area so padding must really be written as zeros.
        ring.put(at as u32, &vec![0xee; total]);
        let mut w = RingWriter::new(ring.mem()).unwrap();
        let mut b = w.batch().unwrap();
        b.write_inband(0x1122_3344_5566_7788, true, &payload)
            .unwrap();
        b.commit();
        assert_eq!(
            w.write_index(),
            0,
            "cursor wraps to 0 at the end ({payload_len} B)"
        );
        let len8 = ((total - 8) / 8) as u16;
        let mut expected = desc(6, 2, len8, 1, 0x1122_3344_5566_7788);
        expected.extend_from_slice(&payload);
        expected.resize(16 + payload_len.next_multiple_of(8), 0);
        // Trailer: bits 63:32 hold the packet's start offset (docs/protocol.md#packets).
        expected.extend_from_slice(&((at as u64) << 32).to_le_bytes());
        assert_eq!(ring.bytes(at as u32, total), expected, "{payload_len} B");
        let mut r = RingReader::new(ring.mem()).unwrap();
        let mut rb = r.batch().unwrap();
        let p = rb.next_packet().unwrap().unwrap();
        let mut back = vec![0u8; payload_len];
        p.read_payload(0, &mut back).unwrap();
        assert_eq!(back, payload);
        assert!(rb.next_packet().unwrap().is_none());
    }
}

// Reader rules a mutation run of `ring/reader.rs` (`cargo xtask mutants`) found no test for.

#[test]
fn a_reader_reports_the_data_size_of_its_ring() {
    for size in [64usize, 128, 4096] {
        let r = Ring::new(size);
        init_ring(&r.mem(), 0);
        assert_eq!(RingReader::new(r.mem()).unwrap().data_size(), size as u32);
    }
}

/// Writes packets with these transaction ids, completion flags and payload lengths, each in
/// its own batch.
fn write_packets(r: &Ring, packets: &[(u64, bool, usize)]) {
    let mut w = RingWriter::new(r.mem()).unwrap();
    for &(id, completion, len) in packets {
        let mut b = w.batch().unwrap();
        b.write_inband(id, completion, &vec![id as u8; len])
            .unwrap();
        b.commit();
    }
}

#[test]
fn each_packet_says_where_it_starts_and_whether_a_completion_was_requested() {
    let r = Ring::new(256);
    init_ring(&r.mem(), 0);
    // 16-byte descriptor + payload rounded up to 8 + 8-byte trailer.
    write_packets(&r, &[(1, false, 8), (2, true, 16), (3, false, 1)]);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    let mut seen = Vec::new();
    let mut left = vec![b.remaining()];
    while let Some(p) = b.next_packet().unwrap() {
        seen.push((p.transaction_id(), p.start(), p.completion_requested()));
        left.push(b.remaining());
    }
    assert_eq!(seen, [(1, 0, false), (2, 32, true), (3, 72, false)]);
    assert_eq!(
        left,
        [104, 72, 32, 0],
        "bytes left in the batch after each packet"
    );
    b.commit().unwrap();
    assert_eq!(r.get(Control::ReadIndex), 104);
    assert_eq!(rd.read_index(), 104);
}

#[test]
fn a_packet_without_payload_alone_in_the_ring_is_read() {
    // Descriptor and trailer only: 24 bytes, exactly the readable bytes of the batch.
    let r = Ring::new(128);
    init_ring(&r.mem(), 0);
    write_packets(&r, &[(9, false, 0)]);
    assert_eq!(r.get(Control::WriteIndex), 24);
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    let p = b.next_packet().unwrap().expect("the empty packet");
    assert_eq!((p.transaction_id(), p.payload_len()), (9, 0));
    assert!(b.next_packet().unwrap().is_none());
    let out = b.commit().unwrap();
    assert_eq!((out.packets, out.bytes), (1, 24));
}

#[test]
fn a_payload_read_at_an_offset_returns_the_bytes_at_that_offset() {
    let r = Ring::new(256);
    init_ring(&r.mem(), 0);
    let payload: Vec<u8> = (0..24).collect();
    let mut w = RingWriter::new(r.mem()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(1, false, &payload).unwrap();
    b.commit();
    let mut rd = RingReader::new(r.mem()).unwrap();
    let mut b = rd.batch().unwrap();
    let p = b.next_packet().unwrap().unwrap();
    for at in [0usize, 1, 5, 8, 20] {
        let mut buf = [0u8; 4];
        p.read_payload(at, &mut buf).unwrap();
        assert_eq!(buf.to_vec(), payload[at..at + 4], "payload bytes from {at}");
    }
    // Past the end of the payload, whatever the offset.
    assert_eq!(p.read_payload(20, &mut [0; 5]), Err(RingError::OutOfPacket));
    assert_eq!(p.read_payload(21, &mut [0; 4]), Err(RingError::OutOfPacket));
    assert_eq!(p.read_payload(24, &mut [0; 1]), Err(RingError::OutOfPacket));
    assert_eq!(p.read_payload(24, &mut []), Ok(()));
}
