//! The Dynamic Memory balloon's lend and reclaim (docs/lifetime.md#ballooned-pages): no page
//! reaches the host while anything in the guest maps it, no page the host had returns to the
//! pool unzeroed, an untrusted client reclaims only what was lent through it, the reserve is
//! never lent, and every kernel operation of lend and reclaim may fail, in three ways, at each
//! position, without breaking any of that.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{
    ClientError, LENT_RANGES_PER_RESPONSE, LendLimit, PfnRange, RECLAIM_RANGES_PER_REQUEST,
    REQUEST_AREA, RESPONSE_AREA, Request, Response, encode_frame,
};
use vmbus_driver::driver::MAX_LENT_RUNS;
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::{ClientId, PageId};

const POOL: usize = 1024;
const MODES: [FailMode; 3] = [FailMode::Refuse, FailMode::Partial, FailMode::Done];

fn world() -> World {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w
}

fn lend(w: &mut World, client: ClientId, pages: u32) -> (Vec<PfnRange>, u32, LendLimit) {
    match w.call(client, Request::BalloonLend { pages }) {
        Response::Lent {
            ranges,
            pages,
            limit,
        } => (ranges.to_vec(), pages, limit),
        other => panic!("lend answered {other:?}"),
    }
}

fn reclaim_request(ranges: &[PfnRange]) -> Request {
    Request::BalloonReclaim {
        ranges: heapless::Vec::from_slice(ranges).unwrap(),
    }
}

fn reclaim(w: &mut World, client: ClientId, ranges: &[PfnRange]) -> Response {
    w.call(client, reclaim_request(ranges))
}

fn frames(ranges: &[PfnRange]) -> Vec<u64> {
    ranges
        .iter()
        .flat_map(|r| r.start..r.start + u64::from(r.count))
        .collect()
}

fn pages_of(w: &World, ranges: &[PfnRange]) -> Vec<PageId> {
    frames(ranges)
        .into_iter()
        .map(|f| w.k.page_of_frame(f).expect("a frame of the pool"))
        .collect()
}

/// The host writes into every page it was lent (straight into the fake's memory, as the host
/// would through its own mapping).
fn host_scribbles(w: &mut World, pages: &[PageId]) {
    for p in pages {
        w.k.pages[p.0 as usize].fill(0xA5);
    }
}

fn assert_unchanged_after_refusal(w: &World, free: usize, lent: usize, what: &str) {
    assert_eq!(w.k.free.len(), free, "{what}: the pool changed");
    assert_eq!(w.d.lent_pages(), lent, "{what}: the lent pages changed");
    assert!(w.k.lifetime_violations().is_empty());
}

#[test]
fn a_lent_page_is_mapped_nowhere_in_the_guest_when_the_host_gets_it() {
    let mut w = world();
    // A channel's pages were granted and revoked before: the pool hands out clean pages, but a
    // lend must not rely on that.
    let h = w.open(A, 5);
    assert_eq!(w.call(A, Request::Close { handle: h }), Response::Closed);
    w.pump();
    let (ranges, pages, limit) = lend(&mut w, A, 40);
    assert_eq!((pages, limit), (40, LendLimit::None));
    let lent = pages_of(&w, &ranges);
    assert_eq!(lent.len(), 40);
    for p in &lent {
        assert!(
            w.k.unreachable(*p),
            "{p} reached the host with a mapping left"
        );
    }
    // Revoke before unmap, both before the response.
    let log = w.log.borrow();
    for p in &lent {
        let revoke = log.iter().rposition(|e| *e == Ev::Revoke(*p)).unwrap();
        let unmap = log.iter().rposition(|e| *e == Ev::UnmapOwn(*p)).unwrap();
        assert!(revoke < unmap, "{p}: unmapped before its revoke");
    }
    drop(log);
    assert_eq!(w.d.lent_pages(), 40);
    assert_eq!(w.d.stats().balloon_pages_lent, 40);
}

#[test]
fn lend_then_reclaim_zeroes_every_page_and_restores_the_pool() {
    let mut w = world();
    w.k.contiguous_frames = true;
    let free = w.k.free.len();
    let (ranges, pages, _) = lend(&mut w, A, 100);
    assert_eq!(pages, 100);
    assert_eq!(ranges.len(), 1, "consecutive frames come back as one range");
    let lent = pages_of(&w, &ranges);
    host_scribbles(&mut w, &lent);
    assert_eq!(w.k.free.len(), free - 100);
    assert_eq!(
        reclaim(&mut w, A, &ranges),
        Response::Reclaimed {
            pages: 100,
            quarantined: 0
        }
    );
    assert_eq!(w.k.free.len(), free, "every page is back in the pool");
    for p in &lent {
        assert!(
            w.k.pages[p.0 as usize].iter().all(|b| *b == 0),
            "{p} unzeroed"
        );
        assert!(!w.k.unmapped.contains(p), "{p} not mapped back");
    }
    assert!(w.k.lifetime_violations().is_empty());
    assert_eq!(w.d.lent_pages(), 0);
    assert_eq!(w.d.stats().balloon_pages_reclaimed, 100);
    assert_eq!(w.d.quarantined_pages(), 0);
    // The pages serve channels again.
    w.open(A, 5);
}

#[test]
fn a_partial_reclaim_returns_exactly_its_frames_and_keeps_the_rest_lent() {
    let mut w = world();
    w.k.contiguous_frames = true;
    let (ranges, _, _) = lend(&mut w, A, 50);
    let r = ranges[0];
    // The middle of the run, then both ends.
    let middle = PfnRange {
        start: r.start + 10,
        count: 5,
    };
    assert!(matches!(
        reclaim(&mut w, A, &[middle]),
        Response::Reclaimed { pages: 5, .. }
    ));
    assert_eq!(w.d.lent_pages(), 45);
    assert_eq!(
        reclaim(&mut w, A, &[middle]),
        Response::Error(ClientError::NotLent),
        "reclaimed twice"
    );
    let rest = [
        PfnRange {
            start: r.start,
            count: 10,
        },
        PfnRange {
            start: r.start + 15,
            count: 35,
        },
    ];
    assert!(matches!(
        reclaim(&mut w, A, &rest),
        Response::Reclaimed { pages: 45, .. }
    ));
    assert_eq!(w.d.lent_pages(), 0);
    assert_eq!(w.k.free.len(), POOL);
    assert!(w.k.lifetime_violations().is_empty());
}

#[test]
fn a_client_cannot_reclaim_a_frame_lent_through_another_client() {
    let mut w = world();
    let (a_ranges, _, _) = lend(&mut w, A, 3);
    let (b_ranges, _, _) = lend(&mut w, B, 3);
    let (free, lent) = (w.k.free.len(), w.d.lent_pages());
    // B's frame alone, and mixed with B's own: refused whole.
    assert_eq!(
        reclaim(&mut w, B, &a_ranges[..1]),
        Response::Error(ClientError::NotLent)
    );
    let mixed = [b_ranges[0], a_ranges[0]];
    assert_eq!(
        reclaim(&mut w, B, &mixed),
        Response::Error(ClientError::NotLent)
    );
    assert_unchanged_after_refusal(&w, free, lent, "foreign frame");
    assert_eq!(w.d.lent_pages_of(A), Some(3));
    assert_eq!(w.d.lent_pages_of(B), Some(3));
    assert_eq!(w.d.stats().balloon_reclaims_refused, 2);
}

#[test]
fn a_client_cannot_reclaim_a_frame_that_was_never_lent() {
    let mut w = world();
    let h = w.open(A, 5);
    let (ranges, _, _) = lend(&mut w, A, 2);
    let (free, lent) = (w.k.free.len(), w.d.lent_pages());
    // A free pool page, a channel's ring page, a frame outside the pool, and a lent run
    // stretched one frame too far.
    let free_page = *w.k.free.last().unwrap();
    let ring_page = *w.k.granted.keys().next().unwrap();
    let stretched = PfnRange {
        start: ranges[0].start,
        count: ranges[0].count + 1,
    };
    for bad in [
        PfnRange {
            start: w.k.frame(free_page),
            count: 1,
        },
        PfnRange {
            start: w.k.frame(ring_page),
            count: 1,
        },
        PfnRange { start: 7, count: 1 },
        stretched,
    ] {
        assert_eq!(
            reclaim(&mut w, A, &[bad]),
            Response::Error(ClientError::NotLent),
            "{bad:?}"
        );
        assert_unchanged_after_refusal(&w, free, lent, "never lent");
    }
    // The channel is untouched.
    assert!(matches!(
        w.call(A, Request::Signal { handle: h }),
        Response::Signalled { .. }
    ));
}

#[test]
fn a_double_reclaim_is_refused_and_changes_nothing() {
    let mut w = world();
    let (ranges, _, _) = lend(&mut w, A, 4);
    assert!(matches!(
        reclaim(&mut w, A, &ranges[..2]),
        Response::Reclaimed { pages: 2, .. }
    ));
    let (free, lent) = (w.k.free.len(), w.d.lent_pages());
    // Again, and again inside one request together with a frame still lent.
    assert_eq!(
        reclaim(&mut w, A, &ranges[..1]),
        Response::Error(ClientError::NotLent)
    );
    assert_eq!(
        reclaim(&mut w, A, &[ranges[2], ranges[0]]),
        Response::Error(ClientError::NotLent)
    );
    assert_eq!(
        reclaim(&mut w, A, &[ranges[2], ranges[2]]),
        Response::Error(ClientError::BadRanges),
        "the same frame twice in one request"
    );
    assert_unchanged_after_refusal(&w, free, lent, "double reclaim");
}

#[test]
fn empty_overflowing_or_overlapping_ranges_are_refused_whole() {
    let mut w = world();
    w.k.contiguous_frames = true;
    let (ranges, _, _) = lend(&mut w, A, 8);
    let r = ranges[0];
    let (free, lent) = (w.k.free.len(), w.d.lent_pages());
    for bad in [
        vec![
            r,
            PfnRange {
                start: r.start,
                count: 0,
            },
        ],
        vec![PfnRange {
            start: u64::MAX - 1,
            count: 4,
        }],
        vec![
            PfnRange {
                start: r.start,
                count: 4,
            },
            PfnRange {
                start: r.start + 3,
                count: 5,
            },
        ],
    ] {
        assert_eq!(
            reclaim(&mut w, A, &bad),
            Response::Error(ClientError::BadRanges),
            "{bad:?}"
        );
        assert_unchanged_after_refusal(&w, free, lent, "bad ranges");
    }
}

#[test]
fn lending_never_takes_the_reserve_so_rings_can_still_open() {
    let mut w = world();
    w.k.contiguous_frames = true;
    let (_, pages, limit) = lend(&mut w, A, POOL as u32);
    assert_eq!(limit, LendLimit::Reserve);
    assert_eq!(w.k.free.len(), POOL / 8, "the default reserve is an eighth");
    assert_eq!(pages as usize, POOL - POOL / 8);
    let (_, more, limit) = lend(&mut w, B, 1);
    assert_eq!((more, limit), (0, LendLimit::Reserve));
    w.open(A, 5);
    let Response::Memory(info) = w.call(A, Request::MemoryInfo) else {
        panic!("no memory info")
    };
    assert_eq!(info.pool_pages as usize, POOL);
    assert_eq!(info.reserve_pages as usize, POOL / 8);
    assert_eq!(info.lent_pages, pages);
    assert_eq!(info.lent_by_client, pages);
    assert_eq!(info.free_pages as usize, w.k.free.len());

    // A configured reserve.
    let mut w = world();
    w.k.contiguous_frames = true;
    w.d.set_balloon_reserve(Some(1000));
    let (_, pages, limit) = lend(&mut w, A, 100);
    assert_eq!((pages, limit), (24, LendLimit::Reserve));
    assert_eq!(w.k.free.len(), 1000);
}

#[test]
fn a_client_fault_leaves_its_lent_pages_with_the_host_until_it_reclaims_them() {
    let mut w = world();
    let (ranges, pages, _) = lend(&mut w, A, 10);
    let lent = pages_of(&w, &ranges);
    w.d.on_client_fault(&mut w.hv, &mut w.k, A, w.now);
    assert_eq!(w.d.lent_pages_of(A), Some(pages as usize));
    for p in &lent {
        assert!(w.k.unreachable(*p), "{p} came back while the host has it");
    }
    // The restarted client (same id) takes them back.
    assert!(matches!(
        reclaim(&mut w, A, &ranges),
        Response::Reclaimed { pages: 10, .. }
    ));
    assert_eq!(w.k.free.len(), POOL);
}

#[test]
fn a_lend_stops_at_a_full_response_and_gives_the_extra_page_back() {
    let mut w = world();
    // Frames three apart: one range per page.
    let (ranges, pages, limit) = lend(&mut w, A, 200);
    assert_eq!(limit, LendLimit::ResponseFull);
    assert_eq!(ranges.len(), LENT_RANGES_PER_RESPONSE);
    assert_eq!(pages as usize, LENT_RANGES_PER_RESPONSE);
    assert_eq!(w.k.free.len(), POOL - LENT_RANGES_PER_RESPONSE);
    assert!(w.k.lifetime_violations().is_empty());
}

#[test]
fn a_full_table_of_lent_runs_stops_lending_but_every_reclaim_still_fits() {
    let mut w = world();
    w.d.set_balloon_reserve(Some(0));
    // Frames three apart: a run per page; keep lending until the table stops it.
    let mut all = Vec::new();
    loop {
        let (ranges, _, limit) = lend(&mut w, A, 65);
        all.extend(ranges);
        if limit == LendLimit::TableFull {
            break;
        }
        assert_eq!(limit, LendLimit::ResponseFull);
    }
    assert_eq!(all.len(), MAX_LENT_RUNS - RECLAIM_RANGES_PER_REQUEST);
    for chunk in all.chunks(RECLAIM_RANGES_PER_REQUEST) {
        assert!(matches!(
            reclaim(&mut w, A, chunk),
            Response::Reclaimed { .. }
        ));
    }
    assert_eq!(w.k.free.len(), POOL);
}

#[test]
fn the_largest_balloon_request_and_response_fit_their_areas() {
    let worst = PfnRange {
        start: u64::MAX - u64::from(u32::MAX),
        count: u32::MAX,
    };
    let req = Request::BalloonReclaim {
        ranges: heapless::Vec::from_slice(&[worst; RECLAIM_RANGES_PER_REQUEST]).unwrap(),
    };
    encode_frame(&req, &mut [0u8; REQUEST_AREA]).expect("request fits");
    let resp = Response::Lent {
        ranges: heapless::Vec::from_slice(&[worst; LENT_RANGES_PER_RESPONSE]).unwrap(),
        pages: u32::MAX,
        limit: LendLimit::KernelError,
    };
    encode_frame(&resp, &mut [0u8; RESPONSE_AREA]).expect("response fits");
}

/// Every page is accounted for: free, lent, in a channel, or quarantined (unless the injected
/// failure itself hid a take or return from the driver).
fn check_accounting(w: &World, ctx: &str) {
    let hidden = w.k.injected.borrow().iter().any(|(_, op)| {
        matches!(*op, "take_page" | "return_page")
            && w.k.fail.is_some_and(|p| p.mode != FailMode::Refuse)
    });
    if hidden {
        return;
    }
    let held: usize = w.d.channels().map(|c| c.pages).sum();
    assert_eq!(
        w.k.pages_out(),
        held + w.d.lent_pages() + w.d.quarantined_pages(),
        "{ctx}: pages out of the pool are not all accounted for"
    );
}

#[test]
fn a_failed_kernel_operation_never_gives_the_host_a_mapped_page_or_the_pool_a_dirty_one() {
    let mut covered = std::collections::BTreeSet::new();
    for reclaiming in [false, true] {
        for mode in MODES {
            for at in 0.. {
                let mut w = world();
                w.k.contiguous_frames = true;
                let mut lent_before = Vec::new();
                if reclaiming {
                    let (ranges, _, _) = lend(&mut w, A, 6);
                    lent_before = pages_of(&w, &ranges);
                    host_scribbles(&mut w, &lent_before);
                    w.k.arm(FailPlan { at, mode });
                    let answer = w.try_call(A, reclaim_request(&ranges));
                    if let Some(Response::Reclaimed { pages, .. }) = answer {
                        assert_eq!(pages, 6);
                    }
                } else {
                    w.k.arm(FailPlan { at, mode });
                    if let Some(Response::Lent { ranges, pages, .. }) =
                        w.try_call(A, Request::BalloonLend { pages: 6 })
                    {
                        let lent = pages_of(&w, &ranges);
                        assert_eq!(lent.len(), pages as usize);
                        for p in &lent {
                            assert!(
                                w.k.unreachable(*p),
                                "lend, {mode:?} at {at}: {p} reached the host mapped"
                            );
                        }
                    }
                }
                let ctx = format!("reclaim {reclaiming}, {mode:?} at {at}");
                let v = w.k.lifetime_violations();
                assert!(v.is_empty(), "{ctx}: {v:?}");
                check_accounting(&w, &ctx);
                // Whatever page went back to the pool is zero.
                for p in &lent_before {
                    if w.k.free.contains(p) {
                        assert!(
                            w.k.pages[p.0 as usize].iter().all(|b| *b == 0),
                            "{ctx}: {p}"
                        );
                    }
                }
                let injected = w.k.injected.borrow().clone();
                if injected.is_empty() {
                    break;
                }
                for (_, op) in injected {
                    covered.insert((reclaiming, op));
                }
            }
        }
    }
    for want in [
        (false, "take_page"),
        (false, "page_frame"),
        (false, "revoke"),
        (false, "unmap_own"),
        (true, "map_own"),
        (true, "zero_page"),
        (true, "return_page"),
    ] {
        assert!(covered.contains(&want), "never failed: {want:?}");
    }
}

#[test]
fn a_page_whose_unmap_or_remap_failed_is_quarantined_for_good() {
    // Lend: the unmap of the first page fails.
    let mut w = world();
    // control_read is operation 0; take, frame, revoke, unmap follow.
    w.k.arm(FailPlan {
        at: 4,
        mode: FailMode::Partial,
    });
    let (ranges, pages, limit) = lend(&mut w, A, 5);
    assert_eq!(w.k.injected.borrow()[0].1, "unmap_own");
    assert_eq!((pages, limit), (0, LendLimit::KernelError));
    assert!(ranges.is_empty());
    assert_eq!(w.d.stats().quarantine_unmap_failed, 1);
    assert_eq!(w.d.quarantined_pages(), 1);
    assert_eq!(w.k.free.len(), POOL - 1);

    // Reclaim: the remap of the first page fails; the rest come back.
    let mut w = world();
    let (ranges, _, _) = lend(&mut w, A, 3);
    w.k.arm(FailPlan {
        at: 1,
        mode: FailMode::Refuse,
    });
    assert_eq!(
        reclaim(&mut w, A, &ranges),
        Response::Reclaimed {
            pages: 3,
            quarantined: 1
        }
    );
    assert_eq!(w.k.injected.borrow()[0].1, "map_own");
    assert_eq!(w.d.stats().quarantine_remap_failed, 1);
    assert_eq!(w.k.free.len(), POOL - 1);
    assert_eq!(w.d.lent_pages(), 0);
    assert!(w.k.lifetime_violations().is_empty());
}

#[test]
fn a_lend_needs_no_driver_access_to_a_lent_page_and_a_reclaim_maps_before_zeroing() {
    let mut w = world();
    let (ranges, _, _) = lend(&mut w, A, 3);
    let lent = pages_of(&w, &ranges);
    // Traffic and a reclaim afterwards: the fake refuses and records every access to a page
    // whose driver mapping is removed.
    w.open(A, 5);
    reclaim(&mut w, A, &ranges);
    assert!(w.k.lifetime_violations().is_empty());
    let log = w.log.borrow();
    for p in &lent {
        let map = log.iter().rposition(|e| *e == Ev::MapOwn(*p)).unwrap();
        let zero = log.iter().rposition(|e| *e == Ev::Zero(*p)).unwrap();
        let ret = log.iter().rposition(|e| *e == Ev::Return(*p)).unwrap();
        assert!(
            map < zero && zero < ret,
            "{p}: map, zero, return out of order"
        );
    }
    assert_eq!(PAGE_SIZE, 4096);
}
