//! Buffers of open channels (`AllocBuffer`, `BufferStatus`, `BufferFrames`, `FreeBuffer`):
//! placement in the channel's window slot after its rings, the GPADL with the host, the frames,
//! the lifetime rule on free, close, rescind, client fault and unload (revoke first, GPADL
//! teardown after CLOSECHANNEL and before RELID_RELEASED, pages back only after GPADL_TORNDOWN),
//! stale and foreign handles, and the limits.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{
    BufferHandle, BufferInfo, BufferLimit, ChannelHandle, ClientError, Request, Response,
};
use vmbus_driver::driver::{
    ChannelState, MAX_BUFFER_PAGES, MAX_CHANNEL_BUFFERS, MAX_CLIENT_BUFFERS,
};
use vmbus_driver::ids::{GpadlId, PageId, RelId};
use vmbus_driver::msg::MessageType;

fn world() -> World {
    let mut w = World::new(vec![
        offer(5, NET, 1, 0),
        offer(6, NET, 2, 0),
        offer(9, SCSI, 3, 0),
        offer(7, HEARTBEAT, 4, 0),
    ]);
    w.connect();
    w
}

fn alloc_request(handle: ChannelHandle, pages: u32, gpadl: bool) -> Request {
    Request::AllocBuffer {
        handle,
        pages,
        gpadl,
    }
}

/// Allocates a buffer on A's channel and runs the host until it is granted.
fn alloc(w: &mut World, handle: ChannelHandle, pages: u32, gpadl: bool) -> BufferInfo {
    match w.call(A, alloc_request(handle, pages, gpadl)) {
        Response::Buffer(info) if !gpadl => info,
        Response::BufferCreating { buffer } if gpadl => {
            w.pump();
            match w.call(A, Request::BufferStatus { handle, buffer }) {
                Response::Buffer(info) => info,
                r => panic!("buffer not ready: {r:?}"),
            }
        }
        r => panic!("alloc refused: {r:?}"),
    }
}

fn frames(w: &mut World, handle: ChannelHandle, buffer: BufferHandle, start: u32) -> Response {
    w.call(
        A,
        Request::BufferFrames {
            handle,
            buffer,
            start,
        },
    )
}

/// The buffer's pages, from its frames.
fn pages_of(w: &mut World, handle: ChannelHandle, info: &BufferInfo) -> Vec<PageId> {
    let Response::Frames { frames, .. } = frames(w, handle, info.buffer, 0) else {
        panic!("no frames");
    };
    frames
        .iter()
        .map(|f| w.k.page_of_frame(*f).unwrap())
        .collect()
}

fn index_of(log: &[Ev], pred: impl Fn(&Ev) -> bool) -> usize {
    log.iter().position(pred).expect("event in the log")
}

fn is_post(e: &Ev, t: MessageType) -> bool {
    e.msgtype() == Some(t)
}

/// A GPADL_TEARDOWN post naming `gpadl`.
fn is_teardown_of(e: &Ev, gpadl: GpadlId) -> bool {
    matches!(e, Ev::Post(_, b) if is_post(e, MessageType::GPADL_TEARDOWN) && u32_at(b, 12) == gpadl.0)
}

fn check(w: &World) {
    let v = w.k.lifetime_violations();
    assert!(v.is_empty(), "{v:?}");
    let held = w.k.free_pages_the_host_holds(&w.hv);
    assert!(held.is_empty(), "free pages under a live GPADL: {held:?}");
}

#[test]
fn a_gpadl_buffer_is_granted_after_its_gpadl_is_created_after_the_rings_of_its_window_slot() {
    let mut w = world();
    let h = w.open_sized(A, 5, 2, 3);
    w.clear_log();
    let Response::BufferCreating { buffer } = w.call(A, alloc_request(h, 8, true)) else {
        panic!("no BufferCreating");
    };
    assert!(
        !w.events().iter().any(|e| matches!(e, Ev::Grant(..))),
        "granted before the host created the GPADL"
    );
    assert_eq!(
        w.call(A, frames_request(h, buffer)),
        Response::Error(ClientError::BufferNotReady)
    );
    w.pump();
    assert!(w.events().contains(&Ev::Notify(A)), "client not told");
    let Response::Buffer(info) = w.call(A, Request::BufferStatus { handle: h, buffer }) else {
        panic!("not ready");
    };
    let base = h.slot.index() * SLOT_PAGES;
    assert_eq!(
        info.window_page as usize,
        base + 5,
        "after the 2+3 ring pages"
    );
    assert_eq!(info.pages, 8);
    let gpadl = info.gpadl.expect("a GPADL");
    let grants: Vec<usize> = w
        .events()
        .iter()
        .filter_map(|e| match e {
            Ev::Grant(_, c, at) if *c == A => Some(*at),
            _ => None,
        })
        .collect();
    assert_eq!(grants, (base + 5..base + 13).collect::<Vec<_>>());
    let Response::Frames {
        start,
        frames,
        total,
    } = frames(&mut w, h, buffer, 0)
    else {
        panic!("no frames");
    };
    assert_eq!((start, total), (0, 8));
    assert_eq!(
        frames.as_slice(),
        w.hv.gpadls[&gpadl.0].as_slice(),
        "the frames the host was given"
    );
    let Response::Frames { frames: tail, .. } = frames_at(&mut w, h, buffer, 6) else {
        panic!("no frames");
    };
    assert_eq!(tail.as_slice(), &frames[6..]);
    assert_eq!(
        frames_at(&mut w, h, buffer, 8),
        Response::Error(ClientError::BadBufferSize)
    );
    // A second buffer goes after the first; one without a GPADL is granted at once.
    let second = alloc(&mut w, h, 4, false);
    assert_eq!(second.window_page as usize, base + 13);
    assert_eq!(second.gpadl, None);
    check(&w);
}

fn frames_request(handle: ChannelHandle, buffer: BufferHandle) -> Request {
    Request::BufferFrames {
        handle,
        buffer,
        start: 0,
    }
}

fn frames_at(w: &mut World, handle: ChannelHandle, buffer: BufferHandle, start: u32) -> Response {
    frames(w, handle, buffer, start)
}

#[test]
fn a_buffers_pages_are_revoked_from_the_client_before_its_gpadl_teardown_is_sent_on_rescind() {
    let mut w = world();
    let h = w.open(A, 5);
    let info = alloc(&mut w, h, 6, true);
    let plain = alloc(&mut w, h, 3, false);
    let gpadl = info.gpadl.unwrap();
    let pages = pages_of(&mut w, h, &info);
    let plain_pages = pages_of(&mut w, h, &plain);
    w.clear_log();
    w.hv.rescind(5);
    w.pump();
    check(&w);
    let log = w.events();
    let buffer_teardown = index_of(&log, |e| is_teardown_of(e, gpadl));
    let close = index_of(&log, |e| is_post(e, MessageType::CLOSECHANNEL));
    let released = index_of(&log, |e| is_post(e, MessageType::RELID_RELEASED));
    for p in pages.iter().chain(&plain_pages) {
        let revoked = index_of(&log, |e| *e == Ev::Revoke(*p));
        assert!(revoked < close, "{p} revoked after CLOSECHANNEL");
        let zeroed = index_of(&log, |e| *e == Ev::Zero(*p));
        assert!(zeroed > released, "{p} zeroed before RELID_RELEASED");
        assert!(log.contains(&Ev::Return(*p)), "{p} not returned");
    }
    assert!(
        close < buffer_teardown,
        "the buffer's GPADL torn down before CLOSECHANNEL"
    );
    assert!(
        buffer_teardown < released,
        "the buffer's GPADL torn down after RELID_RELEASED"
    );
    assert!(!w.hv.gpadls.contains_key(&gpadl.0));
    assert_eq!(w.d.buffer_count(), 0);
    assert_eq!(w.k.pages_out(), 0, "every page back");
    assert_eq!(w.d.stats().buffers_released, 2);
}

#[test]
fn a_buffers_pages_are_not_reused_before_its_gpadl_torndown() {
    let mut w = world();
    let h = w.open(A, 5);
    let info = alloc(&mut w, h, 5, true);
    let gpadl = info.gpadl.unwrap();
    let pages = pages_of(&mut w, h, &info);
    w.hv.silent_gpadls.insert(gpadl.0);
    w.call(A, Request::Close { handle: h });
    w.pump();
    check(&w);
    // The ring's GPADL is gone, the buffer's teardown is unanswered: the channel waits, and
    // the buffer's pages stay out of the pool.
    assert_eq!(
        w.d.channel(RelId(5)).unwrap().state,
        ChannelState::TearingDown(vmbus_driver::driver::TeardownReason::ClientClose)
    );
    for p in &pages {
        assert!(!w.k.free.contains(p), "{p} back before GPADL_TORNDOWN");
    }
    // Another client's open cannot get them either.
    let hb = w.open(B, 7);
    let _ = hb;
    check(&w);
    w.hv.torndown(gpadl.0);
    w.pump();
    check(&w);
    for p in &pages {
        assert!(w.k.free.contains(p), "{p} not back after GPADL_TORNDOWN");
    }
    assert!(w.d.channel(RelId(5)).unwrap().client.is_none());
}

#[test]
fn a_buffer_gpadl_teardown_the_host_never_confirms_keeps_its_pages_quarantined_until_it_does() {
    let mut w = world();
    let h = w.open(A, 5);
    let info = alloc(&mut w, h, 5, true);
    let gpadl = info.gpadl.unwrap();
    let pages = pages_of(&mut w, h, &info);
    w.hv.silent_gpadls.insert(gpadl.0);
    w.hv.rescind(5);
    w.pump();
    w.tick(TIMEOUT + 1);
    w.pump();
    check(&w);
    // The teardown ended (RELID_RELEASED sent), the pages did not go back.
    assert!(w.d.channel(RelId(5)).is_none());
    assert_eq!(w.d.quarantined_pages(), 5);
    for p in &pages {
        assert!(!w.k.free.contains(p), "{p} reused without GPADL_TORNDOWN");
    }
    w.hv.torndown(gpadl.0);
    w.pump();
    assert_eq!(w.d.quarantined_pages(), 0);
    for p in &pages {
        assert!(
            w.k.free.contains(p),
            "{p} not released by the late GPADL_TORNDOWN"
        );
    }
    check(&w);
}

#[test]
fn a_buffer_gpadl_still_being_created_at_a_rescind_is_torn_down_after_its_creation() {
    let mut w = world();
    let h = w.open(A, 5);
    w.hv.silent.insert(MessageType::GPADL_CREATED.0);
    let Response::BufferCreating { buffer } = w.call(A, alloc_request(h, 4, true)) else {
        panic!("no BufferCreating");
    };
    w.pump();
    w.clear_log();
    w.hv.rescind(5);
    w.pump();
    // Waiting for GPADL_CREATED before the GPADL can be torn down: no RELID_RELEASED yet.
    assert!(
        !w.posted_types().contains(&MessageType::RELID_RELEASED),
        "relid released with a buffer GPADL outstanding"
    );
    w.tick(TIMEOUT + 1);
    w.pump();
    let types = w.posted_types();
    let teardowns = types
        .iter()
        .filter(|t| **t == MessageType::GPADL_TEARDOWN)
        .count();
    assert_eq!(teardowns, 2, "the ring's and the buffer's: {types:?}");
    assert_eq!(types.last(), Some(&MessageType::RELID_RELEASED));
    assert_eq!(w.k.pages_out(), 0);
    let _ = buffer;
    check(&w);
}

#[test]
fn a_freed_buffer_leaves_the_window_at_once_and_its_pages_stay_with_the_channel_until_it_closes() {
    let mut w = world();
    let h = w.open(A, 5);
    let info = alloc(&mut w, h, 4, true);
    let pages = pages_of(&mut w, h, &info);
    w.clear_log();
    assert_eq!(
        w.call(
            A,
            Request::FreeBuffer {
                handle: h,
                buffer: info.buffer
            }
        ),
        Response::BufferFreed
    );
    let log = w.events();
    for p in &pages {
        assert!(
            log.contains(&Ev::Revoke(*p)),
            "{p} still mapped after the free"
        );
    }
    w.pump();
    assert!(!w.hv.gpadls.contains_key(&info.gpadl.unwrap().0));
    for p in &pages {
        assert!(
            !w.k.free.contains(p),
            "{p} reused while the channel is open"
        );
    }
    // The window region is free again for a new buffer.
    let again = alloc(&mut w, h, 4, false);
    assert_eq!(again.window_page, info.window_page);
    w.call(A, Request::Close { handle: h });
    w.pump();
    for p in &pages {
        assert!(w.k.free.contains(p), "{p} not back after the close");
    }
    check(&w);
}

#[test]
fn a_client_cannot_reach_another_clients_buffer_or_a_freed_one() {
    let mut w = world();
    let h = w.open(A, 5);
    let info = alloc(&mut w, h, 2, false);
    let hb = w.open(B, 7);
    // B with its own channel and A's buffer handle.
    assert_eq!(
        w.call(
            B,
            Request::BufferFrames {
                handle: hb,
                buffer: info.buffer,
                start: 0
            }
        ),
        Response::Error(ClientError::BufferGone)
    );
    assert_eq!(
        w.call(
            B,
            Request::FreeBuffer {
                handle: hb,
                buffer: info.buffer
            }
        ),
        Response::Error(ClientError::BufferGone)
    );
    // B with A's channel handle.
    assert_eq!(
        w.call(B, frames_request(h, info.buffer)),
        Response::Error(ClientError::ChannelGone)
    );
    // A's buffer on A's other channel.
    let h6 = w.open(A, 6);
    assert_eq!(
        w.call(A, frames_request(h6, info.buffer)),
        Response::Error(ClientError::BufferGone)
    );
    // Freed: the handle is stale, even once the entry holds a new buffer.
    w.call(
        A,
        Request::FreeBuffer {
            handle: h,
            buffer: info.buffer,
        },
    );
    assert_eq!(
        w.call(A, frames_request(h, info.buffer)),
        Response::Error(ClientError::BufferGone)
    );
    w.call(A, Request::Close { handle: h });
    w.pump();
    let h2 = w.open(A, 5);
    let fresh = alloc(&mut w, h2, 2, false);
    assert_eq!(fresh.buffer.id, info.buffer.id, "the entry is reused");
    assert_ne!(fresh.buffer.generation, info.buffer.generation);
    assert_eq!(
        w.call(A, frames_request(h2, info.buffer)),
        Response::Error(ClientError::BufferGone)
    );
    assert!(matches!(
        w.call(A, frames_request(h2, fresh.buffer)),
        Response::Frames { .. }
    ));
    // The closed channel's handle with the new buffer.
    assert_eq!(
        w.call(A, frames_request(h, fresh.buffer)),
        Response::Error(ClientError::ChannelGone)
    );
    check(&w);
}

#[test]
fn buffer_limits_and_sizes_are_refused_with_the_limit_named() {
    let mut w = world();
    let h = w.open(A, 5);
    for pages in [0, MAX_BUFFER_PAGES as u32 + 1] {
        assert_eq!(
            w.call(A, alloc_request(h, pages, false)),
            Response::Error(ClientError::BadBufferSize)
        );
    }
    // The slot holds SLOT_PAGES - 4 buffer pages after the 2+2 ring pages.
    let room = (SLOT_PAGES - 4) as u32;
    assert_eq!(
        w.call(A, alloc_request(h, room + 1, false)),
        Response::Error(ClientError::WindowFull)
    );
    alloc(&mut w, h, room - 3, false);
    for _ in 1..MAX_CHANNEL_BUFFERS {
        alloc(&mut w, h, 1, false);
    }
    assert_eq!(
        w.call(A, alloc_request(h, 1, false)),
        Response::Error(ClientError::BufferLimit(BufferLimit::Channel))
    );
    let h6 = w.open(A, 6);
    assert_eq!(
        w.call(A, alloc_request(h6, room + 1, false)),
        Response::Error(ClientError::WindowFull)
    );
    for _ in 0..MAX_CHANNEL_BUFFERS {
        alloc(&mut w, h6, 1, false);
    }
    let h9 = w.open(A, 9);
    let left = MAX_CLIENT_BUFFERS - 2 * MAX_CHANNEL_BUFFERS;
    for _ in 0..left {
        alloc(&mut w, h9, 1, false);
    }
    assert_eq!(
        w.call(A, alloc_request(h9, 1, false)),
        Response::Error(ClientError::BufferLimit(BufferLimit::Client))
    );
    check(&w);
}

#[test]
fn buffers_need_an_open_channel_and_a_current_handle() {
    let mut w = world();
    w.hv.silent.insert(MessageType::OPENCHANNEL_RESULT.0);
    let pending = w.start_open(A, 5);
    w.pump();
    assert_eq!(
        w.call(A, alloc_request(pending, 1, false)),
        Response::Error(ClientError::NotOpen)
    );
    w.hv.silent.clear();
    let h = w.open(A, 6);
    w.call(A, Request::Close { handle: h });
    w.pump();
    assert_eq!(
        w.call(A, alloc_request(h, 1, false)),
        Response::Error(ClientError::ChannelGone)
    );
    assert_eq!(w.d.buffer_count(), 0);
}

#[test]
fn a_buffer_gpadl_the_host_refuses_gives_its_pages_back_and_the_channel_stays_open() {
    let mut w = world();
    let h = w.open(A, 5);
    w.hv.gpadl_status = 0xC000_0001;
    let Response::BufferCreating { buffer } = w.call(A, alloc_request(h, 3, true)) else {
        panic!("no BufferCreating");
    };
    w.pump();
    assert_eq!(
        w.call(A, Request::BufferStatus { handle: h, buffer }),
        Response::Error(ClientError::BufferGone)
    );
    assert_eq!(w.d.buffer_count(), 0);
    assert_eq!(w.k.pages_out(), 4, "only the rings are out");
    assert_eq!(w.d.channel(RelId(5)).unwrap().state, ChannelState::Open);
    check(&w);
}

#[test]
fn a_client_fault_and_an_unload_tear_buffers_down_with_their_channels() {
    for unload in [false, true] {
        let mut w = world();
        let h = w.open(A, 5);
        let info = alloc(&mut w, h, 4, true);
        alloc(&mut w, h, 2, false);
        w.clear_log();
        if unload {
            w.d.unload(&mut w.hv, &mut w.k, w.now);
        } else {
            w.d.on_client_fault(&mut w.hv, &mut w.k, A, w.now);
        }
        w.pump();
        check(&w);
        let log = w.events();
        let teardown = index_of(&log, |e| is_teardown_of(e, info.gpadl.unwrap()));
        let first_revoke = index_of(&log, |e| matches!(e, Ev::Revoke(_)));
        assert!(first_revoke < teardown);
        if unload {
            let unload_at = index_of(&log, |e| is_post(e, MessageType::UNLOAD));
            assert!(
                teardown < unload_at,
                "UNLOAD before the buffer's GPADL teardown"
            );
        }
        assert_eq!(w.d.buffer_count(), 0);
        assert_eq!(w.k.pages_out(), 0);
    }
}

#[test]
fn frames_of_a_full_buffer_fit_the_response_area() {
    use vmbus_driver::control::{FRAMES_PER_RESPONSE, RESPONSE_AREA, encode_frame};
    let mut frames = heapless::Vec::new();
    for _ in 0..FRAMES_PER_RESPONSE {
        frames.push(u64::MAX).unwrap();
    }
    let r = Response::Frames {
        start: u32::MAX,
        frames,
        total: u32::MAX,
    };
    let mut area = [0u8; RESPONSE_AREA];
    assert!(encode_frame(&r, &mut area).is_ok());
    let req = Request::BufferFrames {
        handle: ChannelHandle {
            slot: vmbus_driver::ids::SlotId(u16::MAX),
            relid: RelId(u32::MAX),
            generation: u32::MAX,
        },
        buffer: BufferHandle {
            id: vmbus_driver::ids::BufferId(u16::MAX),
            generation: u32::MAX,
        },
        start: u32::MAX,
    };
    let mut area = [0u8; vmbus_driver::control::REQUEST_AREA];
    assert!(encode_frame(&req, &mut area).is_ok());
}
