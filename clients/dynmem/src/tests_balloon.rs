//! Balloon, unballoon, status, hot-add and information messages, and the `Balloon` state
//! machine against a scripted page source.

extern crate std;

use std::vec::Vec;

use crate::msg::*;
use crate::{
    Balloon, BalloonError, BalloonState, MemoryFigures, PageSource, Record, RecordError,
    SourceFault, Span,
};

/// A host message of type `ty` with `body`.
fn host(ty: MsgType, trans_id: u32, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&ty.0.to_le_bytes());
    b.extend_from_slice(&((HEADER_SIZE + body.len()) as u16).to_le_bytes());
    b.extend_from_slice(&trans_id.to_le_bytes());
    b.extend_from_slice(body);
    b
}

fn balloon_req(pages: u32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&pages.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    host(MsgType::BALLOON_REQUEST, 0x55, &body)
}

fn wire(start: u64, count: u32) -> u64 {
    start | u64::from(count) << 40
}

fn unballoon_req(more: bool, count: u32, ranges: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&u32::from(more).to_le_bytes());
    body.extend_from_slice(&count.to_le_bytes());
    for r in ranges {
        body.extend_from_slice(&r.to_le_bytes());
    }
    host(MsgType::UNBALLOON_REQUEST, 0x66, &body)
}

fn range(start: u64, count: u32) -> PageRange {
    PageRange::new(start, count).unwrap()
}

/// Lends its pool's ranges in order (splitting one to fit `max`), at most `per_call` ranges
/// a call; or, when `script` is set, returns those raw ranges once.
#[derive(Default)]
struct Fake {
    pool: Vec<PageRange>,
    per_call: usize,
    script: Option<Vec<PageRange>>,
    fail_lend: bool,
    lend_calls: usize,
    reclaimed: Vec<Vec<PageRange>>,
    short_by: u32,
}

impl Fake {
    fn pool(pool: Vec<PageRange>) -> Fake {
        Fake {
            pool,
            per_call: usize::MAX,
            ..Fake::default()
        }
    }
}

impl PageSource for Fake {
    type Error = &'static str;

    fn lend(&mut self, max: u32, out: &mut [PageRange]) -> Result<usize, &'static str> {
        self.lend_calls += 1;
        if self.fail_lend {
            return Err("no pages today");
        }
        if let Some(s) = self.script.take() {
            out[..s.len()].copy_from_slice(&s);
            return Ok(s.len());
        }
        let mut left = max;
        let mut n = 0;
        while n < out.len().min(self.per_call) && left > 0 && !self.pool.is_empty() {
            let r = self.pool[0];
            if r.count <= left {
                self.pool.remove(0);
                out[n] = r;
                left -= r.count;
            } else {
                out[n] = range(r.start, left);
                self.pool[0] = range(r.start + u64::from(left), r.count - left);
                left = 0;
            }
            n += 1;
        }
        Ok(n)
    }

    fn reclaim(&mut self, ranges: &[PageRange]) -> Result<u32, &'static str> {
        self.reclaimed.push(ranges.to_vec());
        Ok(ranges.iter().map(|r| r.count).sum::<u32>() - self.short_by)
    }
}

/// (more_pages, ranges as wire words) of a balloon response, checking its header.
fn response(bytes: &[u8], trans_id: u32) -> (bool, Vec<u64>) {
    let (h, body) = split(bytes).unwrap();
    assert_eq!(h.ty, MsgType::BALLOON_RESPONSE);
    assert_eq!(h.trans_id, trans_id);
    assert_eq!(usize::from(h.size), bytes.len());
    assert_eq!(&body[0..4], &[0; 4], "reservedz");
    let word = u32::from_le_bytes(body[4..8].try_into().unwrap());
    let count = (word >> 1) as usize;
    assert_eq!(bytes.len(), 16 + 8 * count, "size matches range_count");
    let ranges = body[8..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (word & 1 == 1, ranges)
}

/// Runs a whole balloon answer: every message's bytes.
fn inflate<const N: usize>(b: &mut Balloon<N>, src: &mut Fake, pages: u32) -> Vec<Vec<u8>> {
    let mut out = [0xeeu8; MAX_MESSAGE];
    let mut sent = Vec::new();
    let mut r = b.on_message(&balloon_req(pages), src, &mut out, 100);
    loop {
        assert_eq!(r.error, None);
        sent.push(out[..r.len].to_vec());
        if !r.more {
            break;
        }
        r = b.resume(src, &mut out, 100 + sent.len() as u32);
    }
    sent
}

#[test]
fn page_ranges_are_checked_both_ways() {
    let last = PFN_LIMIT - 1;
    assert_eq!(range(last, 1).to_wire(), Ok(last | 1 << 40));
    assert_eq!(
        PageRange::from_wire(wire(0x12_3456_789a, 0xab_cdef)),
        Ok(range(0x12_3456_789a, 0xab_cdef))
    );
    assert_eq!(range(0, MAX_COUNT).count, 0xff_ffff);
    assert_eq!(PageRange::new(5, 0), Err(RangeError::Empty));
    assert_eq!(
        PageRange::new(0, MAX_COUNT + 1),
        Err(RangeError::CountTooLarge(1 << 24))
    );
    assert_eq!(
        PageRange::new(last, 2),
        Err(RangeError::PastPfnLimit {
            start: last,
            count: 2
        })
    );
    assert!(PageRange::new(u64::MAX, 1).is_err(), "no overflow");
    assert_eq!(PageRange::from_wire(7), Err(RangeError::Empty));
    // Public fields: the encoder checks again.
    let bad = PageRange {
        start: PFN_LIMIT,
        count: 1,
    };
    assert!(bad.to_wire().is_err());
    let mut out = [0u8; 64];
    assert_eq!(
        balloon_response(&mut out, 1, &[range(1, 1), bad], false),
        Err(EncodeError::BadRange {
            index: 1,
            error: RangeError::PastPfnLimit {
                start: PFN_LIMIT,
                count: 1
            }
        })
    );
}

#[test]
fn the_balloon_response_encoder_fills_one_packet_and_flags_the_rest() {
    let ranges: Vec<PageRange> = (0..600).map(|i| range(i * 2, 1)).collect();
    let mut out = [0u8; MAX_MESSAGE];
    let e = balloon_response(&mut out, 9, &ranges, false).unwrap();
    assert_eq!((e.len, e.ranges, e.more_pages), (4096, 510, true));
    let (more, words) = response(&out[..e.len], 9);
    assert!(more);
    assert_eq!(words[509], wire(1018, 1));
    // A smaller buffer holds fewer; the rest flagged.
    let mut small = [0u8; 40];
    let e = balloon_response(&mut small, 9, &ranges[..2], false).unwrap();
    assert_eq!((e.len, e.ranges, e.more_pages), (32, 2, false));
    let e = balloon_response(&mut small, 9, &ranges[..5], false).unwrap();
    assert_eq!((e.ranges, e.more_pages), (3, true));
    // more_after on a last-of-its-message set.
    let e = balloon_response(&mut small, 9, &ranges[..1], true).unwrap();
    assert!(e.more_pages);
    assert_eq!(
        balloon_response(&mut small[..23], 9, &ranges[..1], false),
        Err(EncodeError::BufferTooSmall {
            needed: 24,
            got: 23
        })
    );
    // An empty response ends the transaction (QEMU reads no ranges as the end).
    assert_eq!(
        balloon_response(&mut small, 9, &[], true),
        Err(EncodeError::EmptyNotLast)
    );
    let e = balloon_response(&mut small, 9, &[], false).unwrap();
    assert_eq!(
        &small[..e.len],
        &[7, 0, 16, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn a_balloon_request_is_served_in_full_across_several_messages() {
    // 1200 separate pages: 510 + 510 + 180 ranges.
    let pool: Vec<PageRange> = (0..1200u64).map(|i| range(0x1000 + 3 * i, 1)).collect();
    let mut src = Fake::pool(pool.clone());
    let mut b: Balloon<2048> = Balloon::new();
    let sent = inflate(&mut b, &mut src, 1200);
    assert_eq!(sent.len(), 3);
    let mut all = Vec::new();
    for (i, (bytes, (want_more, want_n))) in sent
        .iter()
        .zip([(true, 510), (true, 510), (false, 180)])
        .enumerate()
    {
        let (more, words) = response(bytes, 100 + i as u32);
        assert_eq!((more, words.len()), (want_more, want_n), "message {i}");
        // Byte for byte: the more_pages bit and count word, then the ranges.
        let word = (want_n as u32) << 1 | u32::from(want_more);
        assert_eq!(&bytes[12..16], &word.to_le_bytes());
        all.extend(words);
    }
    let want: Vec<u64> = pool.iter().map(|r| wire(r.start, r.count)).collect();
    assert_eq!(all, want, "exactly the source's ranges, in order");
    assert_eq!(&sent[0][16..24], &wire(0x1000, 1).to_le_bytes());
    assert_eq!(b.state(), BalloonState::Idle);
    let s = b.stats();
    assert_eq!((s.ballooned_now, s.inflated_total), (1200, 1200));
    assert_eq!(b.ballooned().len(), 1200);
}

#[test]
fn adjacent_loans_are_recorded_as_one_run() {
    let pool: Vec<PageRange> = (0..300u64).map(|i| range(0x4000 + i, 1)).collect();
    let mut src = Fake::pool(pool);
    let mut b: Balloon<4> = Balloon::new();
    let sent = inflate(&mut b, &mut src, 300);
    assert_eq!(sent.len(), 1);
    assert_eq!(response(&sent[0], 100).1.len(), 300);
    assert_eq!(
        b.ballooned(),
        &[Span {
            start: 0x4000,
            end: 0x4000 + 300
        }]
    );
}

#[test]
fn a_dry_source_gets_a_partial_answer() {
    // Runs dry inside the first message: one message, fewer pages, more_pages 0.
    let mut src = Fake::pool(std::vec![range(0x100, 60), range(0x200, 40)]);
    let mut b: Balloon = Balloon::new();
    let sent = inflate(&mut b, &mut src, 300);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        response(&sent[0], 100),
        (false, std::vec![wire(0x100, 60), wire(0x200, 40)])
    );
    assert_eq!(b.stats().ballooned_now, 100);
    // Dry right after a full message: the last message carries no range (as Linux's).
    let pool: Vec<PageRange> = (0..510u64).map(|i| range(2 * i, 1)).collect();
    let mut src = Fake::pool(pool);
    let mut b: Balloon<1024> = Balloon::new();
    let sent = inflate(&mut b, &mut src, 600);
    assert_eq!(sent.len(), 2);
    assert!(response(&sent[0], 100).0);
    assert_eq!(response(&sent[1], 101), (false, Vec::new()));
    assert_eq!(b.stats().ballooned_now, 510);
}

#[test]
fn a_source_that_fails_ends_the_answer_with_what_it_lent() {
    let mut src = Fake::pool(Vec::new());
    src.fail_lend = true;
    let mut b: Balloon = Balloon::new();
    let mut out = [0u8; MAX_MESSAGE];
    let r = b.on_message(&balloon_req(10), &mut src, &mut out, 1);
    assert_eq!(r.error, Some(BalloonError::Lend("no pages today")));
    assert!(!r.more);
    assert_eq!(response(&out[..r.len], 1), (false, Vec::new()));
}

#[test]
fn a_request_for_no_pages_is_answered_without_asking_the_source() {
    let mut src = Fake::pool(std::vec![range(0x100, 60)]);
    let mut b: Balloon = Balloon::new();
    let sent = inflate(&mut b, &mut src, 0);
    assert_eq!(
        sent,
        std::vec![std::vec![
            7u8, 0, 16, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]]
    );
    assert_eq!(src.lend_calls, 0);
}

#[test]
fn ranges_the_source_should_not_have_lent_are_never_reported() {
    let mut b: Balloon = Balloon::new();
    let mut src = Fake::pool(std::vec![range(0x100, 10)]);
    inflate(&mut b, &mut src, 10);
    let cases = [
        // Overlaps a ballooned page.
        (range(0x109, 2), SourceFault::Overlap),
        // More pages than asked for (5).
        (range(0x500, 6), SourceFault::Excess),
        // Empty.
        (
            PageRange {
                start: 0x600,
                count: 0,
            },
            SourceFault::Invalid(RangeError::Empty),
        ),
    ];
    for (bad, fault) in cases {
        src.script = Some(std::vec![bad, range(0x700, 1)]);
        let mut out = [0u8; MAX_MESSAGE];
        let r = b.on_message(&balloon_req(5), &mut src, &mut out, 3);
        assert_eq!(r.error, Some(BalloonError::BadLoan { range: bad, fault }));
        // The good one after it is reported; the bad one is not.
        assert_eq!(
            response(&out[..r.len], 3),
            (false, std::vec![wire(0x700, 1)])
        );
        // Give 0x700 back so the next case starts alike.
        let r = b.on_message(
            &unballoon_req(false, 1, &[wire(0x700, 1)]),
            &mut src,
            &mut out,
            4,
        );
        assert_eq!(r.error, None);
    }
    assert_eq!(b.stats().source_faults, 3);
    assert_eq!(b.stats().ballooned_now, 10);
}

#[test]
fn an_unballoon_of_exactly_the_ballooned_ranges_reclaims_them_and_answers() {
    let mut src = Fake::pool(std::vec![range(0x100, 8), range(0x300, 4), range(0x900, 1)]);
    let mut b: Balloon = Balloon::new();
    inflate(&mut b, &mut src, 13);
    let req = unballoon_req(false, 3, &[wire(0x900, 1), wire(0x100, 8), wire(0x300, 4)]);
    let mut out = [0u8; MAX_MESSAGE];
    let r = b.on_message(&req, &mut src, &mut out, 0x77);
    assert_eq!(r.error, None);
    assert_eq!(&out[..r.len], &[9, 0, 8, 0, 0x77, 0, 0, 0]);
    assert_eq!(
        src.reclaimed,
        std::vec![std::vec![range(0x900, 1), range(0x100, 8), range(0x300, 4)]]
    );
    let s = b.stats();
    assert_eq!((s.ballooned_now, s.deflated_total, s.refused), (0, 13, 0));
    assert!(b.ballooned().is_empty());
}

#[test]
fn an_unballoon_of_a_sub_range_splits_the_record() {
    let mut src = Fake::pool(std::vec![range(0x100, 64)]);
    let mut b: Balloon = Balloon::new();
    inflate(&mut b, &mut src, 64);
    let mut out = [0u8; MAX_MESSAGE];
    // In several requests (QEMU sends one range each, more_pages set until the last).
    let r = b.on_message(
        &unballoon_req(true, 1, &[wire(0x110, 16)]),
        &mut src,
        &mut out,
        1,
    );
    assert_eq!(
        (r.len, r.error),
        (0, None),
        "no answer before the last request"
    );
    assert_eq!(
        b.state(),
        BalloonState::Deflating {
            host_trans_id: 0x66,
            returned: 16
        }
    );
    assert_eq!(
        b.ballooned(),
        &[
            Span {
                start: 0x100,
                end: 0x110
            },
            Span {
                start: 0x120,
                end: 0x140
            }
        ]
    );
    // The last one spans what two separate loans would be: one run in the record.
    let r = b.on_message(
        &unballoon_req(false, 1, &[wire(0x120, 32)]),
        &mut src,
        &mut out,
        2,
    );
    assert_eq!(r.error, None);
    assert_eq!(&out[..r.len], &[9, 0, 8, 0, 2, 0, 0, 0]);
    assert_eq!(b.state(), BalloonState::Idle);
    assert_eq!(
        src.reclaimed,
        std::vec![std::vec![range(0x110, 16)], std::vec![range(0x120, 32)]]
    );
    assert_eq!(b.stats().ballooned_now, 16);
}

#[test]
fn an_unballoon_of_pages_never_ballooned_is_refused_whole() {
    let mut src = Fake::pool(std::vec![range(0x100, 8)]);
    let mut b: Balloon = Balloon::new();
    inflate(&mut b, &mut src, 8);
    let mut out = [0u8; MAX_MESSAGE];
    for (bad, more) in [(range(0x900, 1), false), (range(0x104, 5), true)] {
        // A good range first: not reclaimed either.
        let req = unballoon_req(more, 2, &[wire(0x100, 2), wire(bad.start, bad.count)]);
        let r = b.on_message(&req, &mut src, &mut out, 5);
        assert_eq!(r.error, Some(BalloonError::NotBallooned(bad)));
        // The host's transaction still ends when it says it is the last.
        assert_eq!(r.len, if more { 0 } else { 8 });
    }
    // The same range twice in one request: the second is no longer ballooned.
    let req = unballoon_req(false, 2, &[wire(0x100, 2), wire(0x101, 1)]);
    let r = b.on_message(&req, &mut src, &mut out, 5);
    assert_eq!(r.error, Some(BalloonError::NotBallooned(range(0x101, 1))));
    assert!(src.reclaimed.is_empty(), "reclaim never called");
    assert_eq!(b.stats().refused, 3);
    assert_eq!(b.stats().ballooned_now, 8);
}

#[test]
fn a_split_the_full_record_cannot_hold_is_refused() {
    let mut src = Fake::pool(std::vec![range(0x100, 8), range(0x200, 8)]);
    let mut b: Balloon<2> = Balloon::new();
    inflate(&mut b, &mut src, 16);
    let mut out = [0u8; MAX_MESSAGE];
    let r = b.on_message(
        &unballoon_req(false, 1, &[wire(0x102, 2)]),
        &mut src,
        &mut out,
        5,
    );
    assert_eq!(r.error, Some(BalloonError::RecordFull(range(0x102, 2))));
    assert!(src.reclaimed.is_empty());
    // The record's capacity also bounds a loan: no slot, no more ranges asked for.
    src.pool = std::vec![range(0x300, 1)];
    let calls = src.lend_calls;
    let sent = inflate(&mut b, &mut src, 1);
    assert_eq!(response(&sent[0], 100), (false, Vec::new()));
    assert_eq!(src.lend_calls, calls);
}

#[test]
fn a_short_reclaim_is_reported_and_the_pages_are_no_longer_ballooned() {
    let mut src = Fake::pool(std::vec![range(0x100, 8)]);
    let mut b: Balloon = Balloon::new();
    inflate(&mut b, &mut src, 8);
    src.short_by = 1;
    let mut out = [0u8; MAX_MESSAGE];
    let r = b.on_message(
        &unballoon_req(false, 1, &[wire(0x100, 8)]),
        &mut src,
        &mut out,
        5,
    );
    assert_eq!(
        r.error,
        Some(BalloonError::ReclaimShort { given: 8, taken: 7 })
    );
    assert_eq!(r.len, 8);
    assert_eq!(b.stats().reclaim_failures, 1);
    assert_eq!(b.stats().ballooned_now, 0);
}

#[test]
fn hostile_unballoon_requests_are_refused_before_the_source_sees_them() {
    let mut src = Fake::pool(std::vec![range(0x100, 8)]);
    let mut b: Balloon = Balloon::new();
    inflate(&mut b, &mut src, 8);
    let good = unballoon_req(false, 1, &[wire(0x100, 8)]);
    let mut beyond = good.clone();
    beyond[2..4].copy_from_slice(&200u16.to_le_bytes());
    let mut short_body = good.clone();
    short_body[2..4].copy_from_slice(&12u16.to_le_bytes());
    let last = PFN_LIMIT - 1;
    let cases: [(Vec<u8>, DecodeError); 7] = [
        (
            good[..5].to_vec(),
            DecodeError::Truncated { needed: 8, got: 5 },
        ),
        (
            beyond,
            DecodeError::Truncated {
                needed: 200,
                got: 24,
            },
        ),
        (
            short_body,
            DecodeError::BadSize {
                ty: MsgType::UNBALLOON_REQUEST,
                size: 12,
            },
        ),
        // range_count larger than the packet holds, and one that would overflow a product.
        (
            unballoon_req(false, 2, &[wire(0x100, 8)]),
            DecodeError::RangeCount { count: 2, room: 1 },
        ),
        (
            unballoon_req(false, u32::MAX, &[wire(0x100, 8)]),
            DecodeError::RangeCount {
                count: u32::MAX,
                room: 1,
            },
        ),
        // A range past the 40-bit page limit, and an empty one.
        (
            unballoon_req(false, 1, &[wire(last, 2)]),
            DecodeError::BadRange {
                index: 0,
                error: RangeError::PastPfnLimit {
                    start: last,
                    count: 2,
                },
            },
        ),
        (
            unballoon_req(false, 2, &[wire(0x100, 1), wire(0x101, 0)]),
            DecodeError::BadRange {
                index: 1,
                error: RangeError::Empty,
            },
        ),
    ];
    let mut out = [0u8; MAX_MESSAGE];
    for (packet, want) in cases {
        let r = b.on_message(&packet, &mut src, &mut out, 5);
        assert_eq!((r.len, r.error), (0, Some(BalloonError::Decode(want))));
    }
    assert!(src.reclaimed.is_empty());
    assert_eq!(b.stats().refused, 7);
    assert_eq!(b.stats().ballooned_now, 8);
    // Padding after the ranges (bytes past the header's size) is ignored.
    let mut padded = good.clone();
    padded.extend_from_slice(&[0xff; 8]);
    let (_, req) = UnballoonRequest::decode(&padded).unwrap();
    assert_eq!(
        req.ranges.iter().collect::<Vec<_>>(),
        std::vec![range(0x100, 8)]
    );
}

#[test]
fn hostile_balloon_requests_are_refused() {
    let mut src = Fake::pool(std::vec![range(0x100, 8)]);
    let mut b: Balloon = Balloon::new();
    let mut out = [0u8; MAX_MESSAGE];
    let short = host(MsgType::BALLOON_REQUEST, 1, &[8, 0, 0]);
    let r = b.on_message(&short, &mut src, &mut out, 5);
    assert_eq!(
        r.error,
        Some(BalloonError::Decode(DecodeError::BadSize {
            ty: MsgType::BALLOON_REQUEST,
            size: 11
        }))
    );
    assert_eq!(src.lend_calls, 0);
    let (_, req) = BalloonRequest::decode(&host(
        MsgType::BALLOON_REQUEST,
        1,
        &[1, 2, 0, 0, 9, 0, 0, 0],
    ))
    .unwrap();
    assert_eq!(
        req,
        BalloonRequest {
            num_pages: 0x201,
            reservedz: 9
        }
    );
}

#[test]
fn requests_during_an_unfinished_answer_are_out_of_order() {
    let pool: Vec<PageRange> = (0..600u64).map(|i| range(2 * i, 1)).collect();
    let mut src = Fake::pool(pool);
    let mut b: Balloon<1024> = Balloon::new();
    let mut out = [0u8; MAX_MESSAGE];
    let r = b.on_message(&balloon_req(600), &mut src, &mut out, 1);
    assert!(r.more);
    for packet in [balloon_req(5), unballoon_req(false, 1, &[wire(0, 1)])] {
        let r = b.on_message(&packet, &mut src, &mut out, 2);
        let ty = split(&packet).unwrap().0.ty;
        assert_eq!((r.len, r.error), (0, Some(BalloonError::OutOfOrder(ty))));
    }
    assert!(matches!(
        b.state(),
        BalloonState::Inflating {
            requested: 600,
            remaining: 90,
            ..
        }
    ));
    let r = b.resume(&mut src, &mut out, 3);
    assert_eq!(response(&out[..r.len], 3).1.len(), 90);
    assert_eq!(b.state(), BalloonState::Idle);
    // Idle: resume has nothing to send.
    assert_eq!(b.resume(&mut src, &mut out, 4).len, 0);
}

#[test]
fn status_reports_carry_every_field_and_count_ballooned_pages_as_committed() {
    let mut src = Fake::pool(std::vec![range(0x100, 100)]);
    let mut b: Balloon = Balloon::new();
    inflate(&mut b, &mut src, 100);
    let mut out = [0xffu8; 64];
    let figures = MemoryFigures {
        total_pages: 4000,
        free_pages: 1500,
    };
    let n = b.status_report(&figures, &mut out, 0x0102_0304).unwrap();
    assert_eq!(n, STATUS_REPORT_SIZE);
    let mut want = std::vec![5u8, 0, 48, 0, 4, 3, 2, 1];
    want.extend_from_slice(&1500u64.to_le_bytes());
    want.extend_from_slice(&(2500u64 + 100).to_le_bytes());
    want.extend_from_slice(&[0; 24]);
    assert_eq!(&out[..n], &want[..]);
    // More free than total: clamped, no underflow.
    let odd = b.status(&MemoryFigures {
        total_pages: 10,
        free_pages: 20,
    });
    assert_eq!((odd.num_avail, odd.num_committed), (10, 100));
    // The encoder writes the Windows fields where they are.
    let full = StatusReport {
        num_avail: 1,
        num_committed: 2,
        page_file_size: 3,
        zero_free: 4,
        page_file_writes: 5,
        io_diff: 6,
    };
    full.encode(&mut out, 0).unwrap();
    assert_eq!(out[24], 3);
    assert_eq!(out[32], 4);
    assert_eq!(out[40], 5);
    assert_eq!(out[44], 6);
    assert_eq!(
        full.encode(&mut out[..47], 0),
        Err(EncodeError::BufferTooSmall {
            needed: 48,
            got: 47
        })
    );
}

#[test]
fn hot_add_requests_are_answered_with_no_pages() {
    let mut src = Fake::pool(Vec::new());
    let mut b: Balloon = Balloon::new();
    let mut out = [0u8; MAX_MESSAGE];
    let with_region = [wire(0x10_0000, 0x8000), wire(0x10_0000, 0x8000)];
    let mut body = Vec::new();
    for w in with_region {
        body.extend_from_slice(&w.to_le_bytes());
    }
    let answer = [11u8, 0, 16, 0, 0x21, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
    for packet in [
        host(MsgType::HOT_ADD_REQUEST, 3, &body),
        host(MsgType::HOT_ADD_REQUEST, 3, &body[..8]),
    ] {
        let (_, req) = HotAddRequest::decode(&packet).unwrap();
        assert_eq!(req.range, range(0x10_0000, 0x8000));
        let r = b.on_message(&packet, &mut src, &mut out, 0x21);
        assert_eq!(r.error, Some(BalloonError::HotAddRefused));
        // page_count 0, result 1: Linux's permanent "no hot add" (failure would invite retries).
        assert_eq!(&out[..r.len], &answer);
    }
    assert_eq!(
        HotAddRequest::decode(&host(MsgType::HOT_ADD_REQUEST, 3, &body))
            .unwrap()
            .1
            .region,
        Some(range(0x10_0000, 0x8000))
    );
    // A body between one and two ranges: refused, still answered with no pages.
    let odd = host(MsgType::HOT_ADD_REQUEST, 3, &body[..12]);
    let r = b.on_message(&odd, &mut src, &mut out, 0x21);
    assert_eq!(
        r.error,
        Some(BalloonError::Decode(DecodeError::BadSize {
            ty: MsgType::HOT_ADD_REQUEST,
            size: 20
        }))
    );
    assert_eq!(&out[..r.len], &answer);
    assert_eq!(src.lend_calls, 0);
    assert_eq!(b.stats().refused, 3);
    // The encoder on its own.
    let mut small = [0u8; 16];
    assert_eq!(hot_add_response(&mut small, 2, 7, false), Ok(16));
    assert_eq!(&small, &[11, 0, 16, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
}

fn info(entries: &[(u32, &[u8])], extra_size: u32) -> Vec<u8> {
    let mut blob = Vec::new();
    for (ty, data) in entries {
        blob.extend_from_slice(&ty.to_le_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_le_bytes());
        blob.extend_from_slice(data);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&(blob.len() as u32 + extra_size).to_le_bytes());
    body.extend_from_slice(&blob);
    host(MsgType::INFO, 1, &body)
}

#[test]
fn information_messages_are_read_and_unknown_entries_skipped() {
    let max = 0x4_0000u64.to_le_bytes();
    let packet = info(&[(7, &[1, 2, 3]), (0, &[9; 4]), (0, &max)], 0);
    let (_, entries) = InfoEntries::decode(&packet).unwrap();
    let got: Vec<_> = entries.collect();
    assert_eq!(
        got,
        std::vec![
            Ok(Info::Other {
                ty: 7,
                data: &[1, 2, 3][..]
            }),
            Ok(Info::Other {
                ty: 0,
                data: &[9; 4][..]
            }),
            Ok(Info::MaxPageCount(0x4_0000)),
        ]
    );
    let mut src = Fake::pool(Vec::new());
    let mut b: Balloon = Balloon::new();
    let mut out = [0u8; MAX_MESSAGE];
    let r = b.on_message(&packet, &mut src, &mut out, 1);
    assert_eq!((r.len, r.error), (0, None));
    assert_eq!(b.stats().host_max_pages, Some(0x4_0000));
    // info_size past the body; an entry whose data_size runs past the information.
    assert_eq!(
        InfoEntries::decode(&info(&[(0, &max)], 1)).unwrap_err(),
        DecodeError::InfoSize { size: 17, room: 16 }
    );
    let mut bad = info(&[(3, &[0; 4]), (0, &max)], 0);
    // The second entry's data_size (at body offset 8 + 12 + 4) says 9.
    bad[HEADER_SIZE + 8 + 12 + 4] = 9;
    let (_, entries) = InfoEntries::decode(&bad).unwrap();
    let got: Vec<_> = entries.collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], Err(DecodeError::InfoEntry { at: 12 }));
    // Nothing; then a tail too short for an entry header.
    let empty = info(&[], 0);
    let (_, mut entries) = InfoEntries::decode(&empty).unwrap();
    assert_eq!(entries.next(), None);
    let tail = host(MsgType::INFO, 1, &[0, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4]);
    let (_, entries) = InfoEntries::decode(&tail).unwrap();
    let got: Vec<_> = entries.collect();
    assert_eq!(got, std::vec![Err(DecodeError::InfoEntry { at: 0 })]);
}

#[test]
fn the_record_merges_splits_and_refuses() {
    let mut r: Record<3> = Record::default();
    r.add(&range(10, 5)).unwrap();
    r.add(&range(20, 5)).unwrap();
    // Bridges the gap: one run.
    r.add(&range(15, 5)).unwrap();
    assert_eq!(r.spans(), &[Span { start: 10, end: 25 }]);
    assert_eq!(r.add(&range(24, 2)), Err(RecordError::Overlap));
    assert_eq!(r.add(&range(5, 6)), Err(RecordError::Overlap));
    r.add(&range(0, 2)).unwrap();
    r.add(&range(30, 2)).unwrap();
    assert_eq!(r.add(&range(40, 1)), Err(RecordError::Full));
    // Touching a run needs no slot.
    r.add(&range(32, 1)).unwrap();
    assert!(r.covers(&range(12, 13)));
    assert!(!r.covers(&range(24, 2)));
    assert_eq!(r.remove(&range(12, 2)), Err(RecordError::Full));
    assert_eq!(r.remove(&range(2, 1)), Err(RecordError::NotRecorded));
    r.remove(&range(0, 2)).unwrap();
    r.remove(&range(12, 2)).unwrap();
    assert_eq!(
        r.spans(),
        &[
            Span { start: 10, end: 12 },
            Span { start: 14, end: 25 },
            Span { start: 30, end: 33 }
        ]
    );
    assert_eq!(r.pages(), 2 + 11 + 3);
}

#[test]
fn other_messages_after_start_up_are_ignored() {
    let mut src = Fake::pool(Vec::new());
    let mut b: Balloon = Balloon::new();
    let mut out = [0u8; MAX_MESSAGE];
    let packet = host(MsgType::VERSION_RESPONSE, 1, &[1; 8]);
    let r = b.on_message(&packet, &mut src, &mut out, 1);
    assert_eq!(
        (r.len, r.error),
        (0, Some(BalloonError::Unexpected(MsgType::VERSION_RESPONSE)))
    );
    assert_eq!((b.stats().ignored, b.stats().refused), (1, 0));
}
