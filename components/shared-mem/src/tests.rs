//! Tests of `MappedRing` over heap memory standing in for mapped pages; run under Miri.

extern crate std;

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use super::*;
use vmbus_driver::ring::{FEATURE_PENDING_SEND_SZ, RingError, RingReader, RingWriter, init_ring};

/// Heap memory standing in for a ring's mapped pages: 8-aligned, freed on drop. Only raw
/// pointers derived once from the allocation touch it while a `MappedRing` exists.
struct Pages {
    ptr: NonNull<u64>,
    words: usize,
}

impl Pages {
    fn new(bytes: usize) -> Self {
        let b: Box<[u64]> = vec![0u64; bytes / 8].into_boxed_slice();
        let words = b.len();
        let ptr = NonNull::new(Box::into_raw(b).cast::<u64>()).unwrap();
        Self { ptr, words }
    }
    fn base(&self) -> NonNull<u8> {
        self.ptr.cast()
    }
    /// Reads byte `at` of the pages (through an atomic load of its word, like the ring does).
    fn byte(&self, at: usize) -> u8 {
        assert!(at < self.words * 8);
        // SAFETY: in bounds (checked), 8-aligned, and only accessed atomically.
        let word = unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(at / 8)) };
        word.load(Ordering::SeqCst).to_ne_bytes()[at % 8]
    }
    fn ring(&self) -> MappedRing {
        // SAFETY: the pages outlive every ring the tests build from them and are only accessed
        // atomically.
        unsafe { MappedRing::from_ring_pages(self.base(), self.words * 8) }.unwrap()
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        let slice = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.words);
        // SAFETY: `ptr`/`words` came from `Box::into_raw` of a boxed slice of that length.
        drop(unsafe { Box::from_raw(slice) });
    }
}

#[test]
fn control_words_sit_at_the_header_offsets_of_the_protocol() {
    let pages = Pages::new(HEADER_SIZE + 64);
    let ring = pages.ring();
    let cases = [
        (Control::WriteIndex, 0usize, 0x0102_0304u32),
        (Control::ReadIndex, 4, 0x1112_1314),
        (Control::InterruptMask, 8, 1),
        (Control::PendingSendSz, 12, 0x2122_2324),
        (Control::FeatureBits, 64, 0x3132_3334),
    ];
    for (word, offset, value) in cases {
        ring.store(word, value, Ordering::SeqCst);
        let bytes: Vec<u8> = (0..4).map(|i| pages.byte(offset + i)).collect();
        assert_eq!(bytes, value.to_ne_bytes(), "{word:?} at offset {offset}");
        assert_eq!(ring.swap(word, 5, Ordering::SeqCst), value);
        assert_eq!(ring.load(word, Ordering::SeqCst), 5);
    }
}

#[test]
fn data_bytes_land_right_after_the_header_page_at_any_alignment() {
    let pages = Pages::new(HEADER_SIZE + 64);
    let ring = pages.ring();
    let src: Vec<u8> = (1..=21).collect();
    for offset in [0u32, 3, 8, 13, 43] {
        ring.write_data(offset, &src);
        for (i, b) in src.iter().enumerate() {
            assert_eq!(pages.byte(HEADER_SIZE + offset as usize + i), *b);
        }
        let mut back = vec![0u8; src.len()];
        ring.read_data(offset, &mut back);
        assert_eq!(back, src);
    }
}

/// Guards `MappedRing`'s one-load word access: data byte `offset + i` is byte `i` of the word's
/// little-endian encoding, as `read_data`/`write_data` lay the same bytes out.
#[test]
fn word_accesses_use_the_little_endian_byte_layout_of_the_data_area() {
    let pages = Pages::new(HEADER_SIZE + 64);
    let ring = pages.ring();
    let value = 0x0807_0605_0403_0201_u64;
    for offset in [0u32, 8, 56] {
        ring.write_word(offset, value);
        for i in 0..8 {
            assert_eq!(pages.byte(HEADER_SIZE + offset as usize + i), i as u8 + 1);
        }
        let bytes: [u8; 8] = core::array::from_fn(|i| 0x10 + i as u8);
        ring.write_data(offset, &bytes);
        assert_eq!(ring.read_word(offset), u64::from_le_bytes(bytes));
    }
}

#[test]
#[should_panic(expected = "out of range")]
fn word_access_past_the_ring_panics_instead_of_touching_other_memory() {
    let pages = Pages::new(HEADER_SIZE + 64);
    pages.ring().write_word(64, 0);
}

#[test]
#[should_panic(expected = "out of range")]
fn misaligned_word_access_panics() {
    let pages = Pages::new(HEADER_SIZE + 64);
    let _ = pages.ring().read_word(4);
}

#[test]
#[should_panic(expected = "out of range")]
fn data_access_past_the_ring_panics_instead_of_touching_other_memory() {
    let pages = Pages::new(HEADER_SIZE + 64);
    pages.ring().write_data(60, &[0; 8]);
}

#[test]
fn misaligned_or_badly_sized_pages_are_refused() {
    let pages = Pages::new(HEADER_SIZE + 64);
    // SAFETY: the regions are inside `pages` and only accessed atomically.
    let odd = unsafe { pages.base().add(1) };
    // SAFETY: as above; construction fails before any access.
    let r = unsafe { MappedRing::new(odd, pages.base().add(HEADER_SIZE), 56) };
    assert_eq!(r.err(), Some(MapError::Misaligned));
    // SAFETY: as above.
    let r = unsafe { MappedRing::from_ring_pages(pages.base(), HEADER_SIZE + 20) };
    assert_eq!(r.err(), Some(MapError::BadSize(20)));
    // SAFETY: as above.
    let r = unsafe { MappedRing::from_ring_pages(pages.base(), 100) };
    assert_eq!(r.err(), Some(MapError::BadSize(0)));
}

#[test]
fn ring_writer_and_reader_work_over_mapped_pages() {
    let pages = Pages::new(HEADER_SIZE + 128);
    let ring = pages.ring();
    init_ring(&ring, FEATURE_PENDING_SEND_SZ);
    let mut w = RingWriter::new(&ring).unwrap();
    let mut r = RingReader::new(&ring).unwrap();
    for round in 0..6u8 {
        let mut b = w.batch().unwrap();
        b.write_inband(u64::from(round), false, &[round; 13])
            .unwrap();
        b.write_completion(u64::from(round) + 100, &[]).unwrap();
        assert_eq!(b.write_inband(0, false, &[0; 64]), Err(RingError::Full));
        b.commit();
        let mut rb = r.batch().unwrap();
        let p = rb.next_packet().unwrap().unwrap();
        let mut buf = [0u8; 16];
        p.read_payload(0, &mut buf).unwrap();
        assert_eq!(buf[..13], [round; 13]);
        assert_eq!(buf[13..], [0; 3]);
        let p = rb.next_packet().unwrap().unwrap();
        assert_eq!(p.transaction_id(), u64::from(round) + 100);
        rb.commit().unwrap();
    }
}

#[test]
fn two_threads_stream_packets_through_mapped_pages() {
    const PACKETS: u64 = 40;
    let pages = Pages::new(HEADER_SIZE + 96);
    let ring = pages.ring();
    init_ring(&ring, 0);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut r = RingReader::new(&ring).unwrap();
            let mut next = 0;
            while next < PACKETS {
                let Ok(mut b) = r.batch() else {
                    std::thread::yield_now();
                    continue;
                };
                while let Some(p) = b.next_packet().unwrap() {
                    let mut buf = [0u8; 8];
                    p.read_payload(0, &mut buf).unwrap();
                    assert_eq!(u64::from_ne_bytes(buf), next);
                    next += 1;
                }
                b.commit().unwrap();
            }
        });
        let mut w = RingWriter::new(&ring).unwrap();
        let mut seq = 0;
        // A reader that failed frees no more space: stop, and let the scope report its panic
        // instead of waiting for space for ever.
        while seq < PACKETS && !reader.is_finished() {
            let mut b = w.batch().unwrap();
            while b.write_inband(seq, false, &seq.to_ne_bytes()).is_ok() {
                seq += 1;
                if seq == PACKETS {
                    break;
                }
            }
            if b.commit().packets == 0 {
                std::thread::yield_now();
            }
        }
    });
}

#[cfg(feature = "heap")]
#[test]
fn heap_ring_carries_packets_and_refuses_bad_sizes() {
    assert_eq!(crate::HeapRing::new(20).err(), Some(MapError::BadSize(20)));
    let heap = crate::HeapRing::new(4096).unwrap();
    let ring = heap.ring();
    assert_eq!(ring.data_size(), 4096);
    init_ring(ring, 0);
    let mut w = RingWriter::new(ring).unwrap();
    let mut r = RingReader::new(ring).unwrap();
    // Payloads on both sides of the word/bulk copy threshold, with and without a partial word.
    for (seq, len) in [5usize, 64, 127, 128, 1500, 3000].into_iter().enumerate() {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + seq) as u8).collect();
        let mut b = w.batch().unwrap();
        b.write_inband(seq as u64, false, &payload).unwrap();
        b.commit();
        let mut rb = r.batch().unwrap();
        let p = rb.next_packet().unwrap().unwrap();
        assert_eq!(p.transaction_id(), seq as u64);
        assert_eq!(p.payload_len(), len.next_multiple_of(8));
        let mut back = vec![0xffu8; p.payload_len()];
        p.read_payload(0, &mut back).unwrap();
        assert_eq!(back[..len], payload[..]);
        assert!(back[len..].iter().all(|&b| b == 0), "padding is zero");
        rb.commit().unwrap();
    }
}

/// Guards both copy primitives (word copies, and the x86-64 bulk copy: its string move from
/// 1 KiB, and below that its loop with 64/16/8/1-byte steps) against a wrong length, a shifted byte or a write past either end of the range.
#[test]
fn copies_of_every_step_size_are_byte_exact_and_stay_in_range() {
    let pages = Pages::new(HEADER_SIZE + 1280);
    let ring = pages.ring();
    for len in [
        1usize, 7, 8, 15, 16, 24, 63, 64, 65, 88, 200, 1000, 1023, 1024, 1025, 1200,
    ] {
        for offset in [0u32, 1, 8, 13, 64] {
            ring.write_data(0, &[0xaa; 1280]);
            let src: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8 | 1).collect();
            ring.write_data(offset, &src);
            let at = HEADER_SIZE + offset as usize;
            for (i, b) in src.iter().enumerate() {
                assert_eq!(pages.byte(at + i), *b, "len {len} offset {offset} byte {i}");
            }
            if offset > 0 {
                assert_eq!(
                    pages.byte(at - 1),
                    0xaa,
                    "byte before, len {len} offset {offset}"
                );
            }
            assert_eq!(
                pages.byte(at + len),
                0xaa,
                "byte after, len {len} offset {offset}"
            );
            let mut back = vec![0u8; len];
            ring.read_data(offset, &mut back);
            assert_eq!(back, src, "read back, len {len} offset {offset}");
        }
    }
}
