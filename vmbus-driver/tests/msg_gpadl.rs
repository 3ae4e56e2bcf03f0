//! GPADL construction and host-side reassembly: 1, 26, 27, 54, 55 and the maximum number of PFNs,
//! through the wire (encode → decode) as a host would see them, and every reassembly error.

use vmbus_driver::gpadl::{
    GpadlBuildError, MAX_PFNS, Progress, Reassembler, ReassemblyError, gpadl_messages,
    message_count,
};
use vmbus_driver::ids::{GpadlId, RelId};
use vmbus_driver::msg::{
    ChannelMessage as M, GpadlBody, GpadlHeader, PfnList, RangeWords, decode, encode,
};
use vmbus_driver::version::Version;

const RELID: RelId = RelId(7);
const ID: GpadlId = GpadlId(0xE1E10);

fn pfns(n: usize) -> Vec<u64> {
    (0..n as u64).map(|i| 0x10_0000 + i * 3).collect()
}

/// Sends every message through encode/decode and reassembles on the "host" side.
fn round_trip(n: usize) -> Vec<u64> {
    let list = pfns(n);
    let msgs: Vec<M> = gpadl_messages(RELID, ID, &list).unwrap().collect();
    // Expected message count computed from the document: 26 in the header, 28 per body.
    let expected = if n <= 26 {
        1
    } else {
        1 + (n - 26).div_ceil(28)
    };
    assert_eq!(msgs.len(), expected, "messages for {n} PFNs");
    assert_eq!(message_count(n), expected);

    let mut host: Box<Reassembler<MAX_PFNS>> = Box::default();
    let mut sent = 0usize;
    for (i, m) in msgs.iter().enumerate() {
        let mut buf = [0u8; 240];
        let len = encode(m, &mut buf).unwrap();
        let wire = decode(&buf[..len], Some(Version::WIN10)).unwrap();
        assert_eq!(&wire, m);
        let progress = match wire {
            M::GpadlHeader(h) => {
                assert_eq!(i, 0);
                let carried = n.min(26);
                assert_eq!(len, 28 + 8 * carried, "header length");
                assert_eq!(h.range_buflen as usize, 8 + 8 * n);
                assert_eq!(h.rangecount, 1);
                assert_eq!(h.first_range(), Some(((n * 4096) as u32, 0)));
                sent += carried;
                host.header(&h).unwrap()
            }
            M::GpadlBody(b) => {
                assert!(i > 0);
                let k = (n - sent).min(28);
                assert_eq!(len, 16 + 8 * k, "body length");
                sent += k;
                host.body(&b).unwrap()
            }
            other => panic!("unexpected {other:?}"),
        };
        let last = i + 1 == msgs.len();
        assert_eq!(progress == Progress::Complete, last);
        if !last {
            assert_eq!(
                progress,
                Progress::NeedMore {
                    remaining: n - sent
                }
            );
        }
    }
    let done = host.complete().expect("complete");
    assert_eq!((done.child_relid, done.gpadl), (RELID, ID));
    done.pfns.to_vec()
}

#[test]
fn one_page_fits_in_the_header() {
    assert_eq!(round_trip(1), pfns(1));
}

#[test]
fn twenty_six_pages_fill_the_header_exactly() {
    assert_eq!(round_trip(26), pfns(26));
}

#[test]
fn twenty_seven_pages_need_one_body() {
    assert_eq!(round_trip(27), pfns(27));
}

#[test]
fn fifty_four_pages_fill_one_body_exactly() {
    assert_eq!(round_trip(54), pfns(54));
}

#[test]
fn fifty_five_pages_need_a_second_body() {
    assert_eq!(round_trip(55), pfns(55));
}

#[test]
fn maximum_pfns_is_what_a_u16_range_buflen_allows() {
    // range_buflen = 8 + 8n must fit in a u16: n = 8190 fits (65528), 8191 would need 65536.
    assert_eq!(MAX_PFNS, 8190);
    assert!(8 + 8 * MAX_PFNS <= u16::MAX as usize);
    assert!(8 + 8 * (MAX_PFNS + 1) > u16::MAX as usize);
    assert_eq!(round_trip(MAX_PFNS), pfns(MAX_PFNS));
}

#[test]
fn empty_and_oversized_pfn_lists_are_refused() {
    assert_eq!(
        gpadl_messages(RELID, ID, &[]).unwrap_err(),
        GpadlBuildError::Empty
    );
    let big = pfns(MAX_PFNS + 1);
    assert_eq!(
        gpadl_messages(RELID, ID, &big).unwrap_err(),
        GpadlBuildError::TooManyPfns {
            count: MAX_PFNS + 1,
            max: MAX_PFNS
        }
    );
}

fn header(n: usize, carried: usize) -> GpadlHeader {
    let mut words = vec![(n as u64) * 4096];
    words.extend(pfns(carried));
    GpadlHeader {
        child_relid: RELID,
        gpadl: ID,
        range_buflen: (8 + 8 * n) as u16,
        rangecount: 1,
        range_data: RangeWords::from_slice(&words).unwrap(),
    }
}

fn body(gpadl: GpadlId, k: usize) -> GpadlBody {
    GpadlBody {
        msgnumber: 0,
        gpadl,
        pfns: PfnList::from_slice(&pfns(k)).unwrap(),
    }
}

#[test]
fn body_before_any_header_is_refused() {
    let mut r = Reassembler::<64>::new();
    assert_eq!(
        r.body(&body(ID, 1)),
        Err(ReassemblyError::BodyWithoutHeader { gpadl: ID })
    );
}

#[test]
fn body_for_another_gpadl_is_refused_and_the_current_one_continues() {
    let mut r = Reassembler::<64>::new();
    assert_eq!(
        r.header(&header(30, 26)),
        Ok(Progress::NeedMore { remaining: 4 })
    );
    let other = GpadlId(99);
    assert_eq!(
        r.body(&body(other, 4)),
        Err(ReassemblyError::UnknownGpadl {
            expected: ID,
            got: other
        })
    );
    assert_eq!(r.body(&body(ID, 4)), Ok(Progress::Complete));
}

#[test]
fn body_carrying_more_pfns_than_announced_overflows_and_abandons() {
    let mut r = Reassembler::<64>::new();
    r.header(&header(30, 26)).unwrap();
    assert_eq!(
        r.body(&body(ID, 5)),
        Err(ReassemblyError::Overflow { gpadl: ID })
    );
    assert!(r.complete().is_none());
    assert_eq!(
        r.body(&body(ID, 4)),
        Err(ReassemblyError::BodyWithoutHeader { gpadl: ID })
    );
}

#[test]
fn gpadl_larger_than_capacity_is_refused() {
    let mut r = Reassembler::<16>::new();
    assert_eq!(
        r.header(&header(17, 17)),
        Err(ReassemblyError::TooManyPfns {
            count: 17,
            capacity: 16
        })
    );
}

#[test]
fn multi_range_and_unaligned_ranges_are_refused() {
    let mut r = Reassembler::<64>::new();
    let mut h = header(2, 2);
    h.rangecount = 2;
    h.range_buflen += 8;
    assert_eq!(
        r.header(&h),
        Err(ReassemblyError::MultiRange { rangecount: 2 })
    );
    // byte_offset 16 into the first page.
    let mut h = header(1, 1);
    h.range_data = RangeWords::from_slice(&[4096 | (16u64 << 32), 5]).unwrap();
    assert_eq!(r.header(&h), Err(ReassemblyError::RangeInvalid));
    // byte_count not a whole number of pages.
    let mut h = header(1, 1);
    h.range_data = RangeWords::from_slice(&[4000, 5]).unwrap();
    assert_eq!(r.header(&h), Err(ReassemblyError::RangeInvalid));
    // range_buflen disagreeing with byte_count.
    let mut h = header(2, 2);
    h.range_buflen = 16;
    assert_eq!(r.header(&h), Err(ReassemblyError::RangeInvalid));
}

#[test]
fn second_header_while_one_is_in_progress_is_refused() {
    let mut r = Reassembler::<64>::new();
    r.header(&header(30, 26)).unwrap();
    let mut h2 = header(1, 1);
    h2.gpadl = GpadlId(5);
    assert_eq!(
        r.header(&h2),
        Err(ReassemblyError::HeaderWhileBusy {
            current: ID,
            got: GpadlId(5)
        })
    );
    r.reset();
    assert_eq!(r.header(&h2), Ok(Progress::Complete));
    assert_eq!(r.complete().unwrap().pfns, &pfns(1)[..]);
}
