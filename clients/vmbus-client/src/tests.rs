//! Unit tests over an in-test environment: a scripted driver that decodes the requests the
//! library writes, answers them and maintains status records, and a window of plain memory on
//! which the test plays the host with the ring module's own reader and writer.

extern crate std;

use core::cell::{Cell, RefCell};
use core::sync::atomic::Ordering;
use std::collections::VecDeque;
use std::rc::Rc;
use std::vec;
use std::vec::Vec;

use vmbus_driver::control::{
    self, ChannelHandle, ChannelStatus, OfferInfo, REQUEST_AREA, REQUEST_OFFSET, RESPONSE_AREA,
    RESPONSE_OFFSET, Request, Response, StatusRecord, decode_frame, encode_frame, status_offset,
};
use vmbus_driver::guid::Guid;
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::{RelId, SlotId};
use vmbus_driver::ring::{Control, HEADER_SIZE, RingError, RingMem, RingReader, RingWriter};

use crate::{
    ClientEnv, ClientError, WindowLayout, list_offers, offers_delivered, open, start_open,
    wait_for_offer,
};

const PAGE: usize = PAGE_SIZE;
const CLASS_A: Guid = Guid([0xa; 16]);
const CLASS_B: Guid = Guid([0xb; 16]);

/// The client's window: plain bytes, with a count of accesses.
#[derive(Debug)]
struct Window {
    bytes: RefCell<Vec<u8>>,
    accesses: Cell<u64>,
}

/// One ring of the window.
#[derive(Debug, Clone)]
struct TestMem {
    win: Rc<Window>,
    first: usize,
    pages: usize,
}

impl TestMem {
    fn at(&self, off: usize) -> usize {
        self.win.accesses.set(self.win.accesses.get() + 1);
        self.first * PAGE + off
    }
}

impl RingMem for TestMem {
    fn data_size(&self) -> u32 {
        ((self.pages - 1) * PAGE) as u32
    }
    fn load(&self, word: Control, _: Ordering) -> u32 {
        let at = self.at(word.offset());
        let b = self.win.bytes.borrow();
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    fn store(&self, word: Control, value: u32, _: Ordering) {
        let at = self.at(word.offset());
        self.win.bytes.borrow_mut()[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
    fn swap(&self, word: Control, value: u32, o: Ordering) -> u32 {
        let old = self.load(word, o);
        self.store(word, value, o);
        old
    }
    fn fence(&self, _: Ordering) {}
    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        let at = self.at(HEADER_SIZE + offset as usize);
        buf.copy_from_slice(&self.win.bytes.borrow()[at..at + buf.len()]);
    }
    fn write_data(&self, offset: u32, data: &[u8]) {
        let at = self.at(HEADER_SIZE + offset as usize);
        self.win.bytes.borrow_mut()[at..at + data.len()].copy_from_slice(data);
    }
}

/// What the scripted driver does when the client waits for a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnWait {
    /// Complete a pending open with this state and notify.
    Complete(ChannelStatus),
    /// Nothing ever comes.
    Nothing,
}

/// Something the scripted driver does while the client waits for a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// An offer of the client's classes arrives: counted, then notified.
    Offer(OfferInfo),
    /// A notification about something else (a channel event): the counter stays.
    Other,
}

#[derive(Debug)]
struct TestEnv {
    control: [u8; PAGE_SIZE],
    win: Rc<Window>,
    layout: WindowLayout,
    offers: Vec<OfferInfo>,
    per_page: usize,
    /// Force the `next` cursor of every Offers response (to test a confused driver).
    forced_next: Option<Option<RelId>>,
    /// Answer every request with this response instead.
    forced_response: Option<Response>,
    /// Write this raw length word as the response instead of a frame.
    raw_length: Option<u32>,
    requests: Vec<Request>,
    pending: Option<ChannelHandle>,
    on_wait: OnWait,
    next_generation: u32,
    slot_for_open: SlotId,
    notifications: VecDeque<u64>,
    /// Played one per wait, before `on_wait`.
    arrivals: VecDeque<Arrival>,
    /// An offer that arrives just after the driver answered the next ListOffers, with its
    /// notification taken by nobody (the client must see the counter).
    offer_after_list: Option<OfferInfo>,
    /// Waits for a notification.
    waits: usize,
    /// ListOffers requests still to refuse with `NotConnected`.
    not_connected_lists: usize,
    /// Buffers the scripted driver allocated: (info, ready, freed).
    buffers: Vec<(control::BufferInfo, bool, bool)>,
    /// The host refuses buffer GPADLs.
    refuse_buffers: bool,
}

impl TestEnv {
    fn new() -> Self {
        let layout = WindowLayout {
            pages: 32,
            max_channels: 4,
        };
        Self {
            control: [0; PAGE_SIZE],
            win: Rc::new(Window {
                bytes: RefCell::new(vec![0; layout.pages * PAGE]),
                accesses: Cell::new(0),
            }),
            layout,
            offers: Vec::new(),
            per_page: control::OFFERS_PER_RESPONSE,
            forced_next: None,
            forced_response: None,
            raw_length: None,
            requests: Vec::new(),
            pending: None,
            on_wait: OnWait::Complete(ChannelStatus::Open),
            next_generation: 7,
            slot_for_open: SlotId(1),
            notifications: VecDeque::new(),
            arrivals: VecDeque::new(),
            offer_after_list: None,
            waits: 0,
            not_connected_lists: 0,
            buffers: Vec::new(),
            refuse_buffers: false,
        }
    }

    /// An offer of the client's classes arrives: the driver adds it, then moves the counter.
    fn deliver_offer(&mut self, o: OfferInfo) {
        self.offers.push(o);
        let at = control::OFFERS_DELIVERED_OFFSET;
        let n = u32::from_le_bytes(self.control[at..at + 4].try_into().unwrap()) + 1;
        self.control[at..at + 4].copy_from_slice(&n.to_le_bytes());
    }

    fn lists(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| matches!(r, Request::ListOffers { .. }))
            .count()
    }

    fn set_status(&mut self, slot: SlotId, generation: u32, state: ChannelStatus, events: u32) {
        let rec = StatusRecord {
            generation,
            state,
            event_count: events,
        };
        let at = status_offset(slot);
        self.control[at..at + 16].copy_from_slice(&rec.to_bytes());
    }

    fn respond(&mut self, req: Request) -> Response {
        if let Some(r) = self.forced_response.clone() {
            return r;
        }
        match req {
            Request::ListOffers { .. } if self.not_connected_lists > 0 => {
                self.not_connected_lists -= 1;
                Response::Error(control::ClientError::NotConnected)
            }
            Request::ListOffers { start } => {
                let mut offers = heapless::Vec::new();
                let mut rest = self.offers.iter().filter(|o| o.relid >= start);
                for o in rest.by_ref().take(self.per_page) {
                    offers.push(*o).unwrap();
                }
                let next = rest.next().map(|o| o.relid);
                if let Some(o) = self.offer_after_list.take() {
                    self.deliver_offer(o);
                }
                Response::Offers {
                    offers,
                    next: self.forced_next.unwrap_or(next),
                }
            }
            Request::Open { relid, .. } => {
                if !self.offers.iter().any(|o| o.relid == relid) {
                    return Response::Error(control::ClientError::NoSuchOffer);
                }
                let handle = ChannelHandle {
                    slot: self.slot_for_open,
                    relid,
                    generation: self.next_generation,
                };
                self.set_status(handle.slot, handle.generation, ChannelStatus::Opening, 0);
                self.pending = Some(handle);
                Response::Opening { handle }
            }
            Request::Close { handle } => {
                self.set_status(handle.slot, handle.generation, ChannelStatus::Free, 0);
                Response::Closed
            }
            Request::Signal { .. } => Response::Signalled { hypercall: true },
            Request::Stop { .. } => Response::Stopping,
            Request::BalloonLend { pages } => {
                let mut ranges = heapless::Vec::new();
                if pages > 0 {
                    ranges
                        .push(control::PfnRange {
                            start: 0x1000,
                            count: pages,
                        })
                        .unwrap();
                }
                Response::Lent {
                    ranges,
                    pages,
                    limit: control::LendLimit::None,
                }
            }
            Request::BalloonReclaim { ranges } => Response::Reclaimed {
                pages: ranges.iter().map(|r| r.count).sum(),
                quarantined: 0,
            },
            Request::AllocBuffer {
                handle,
                pages,
                gpadl,
            } => {
                let id = self.buffers.len();
                let info = control::BufferInfo {
                    buffer: control::BufferHandle {
                        id: vmbus_driver::ids::BufferId(id as u16),
                        generation: 40 + id as u32,
                    },
                    // After 4 ring pages of the channel's slot.
                    window_page: (self.layout.slot_base(handle.slot).unwrap() + 4) as u32,
                    pages,
                    gpadl: gpadl.then_some(vmbus_driver::ids::GpadlId(0x900 + id as u32)),
                };
                self.buffers.push((info, !gpadl, false));
                if gpadl {
                    Response::BufferCreating {
                        buffer: info.buffer,
                    }
                } else {
                    Response::Buffer(info)
                }
            }
            Request::BufferStatus { buffer, .. } => match self.buffer(buffer) {
                Some((info, true, false)) => Response::Buffer(info),
                Some((_, false, false)) => Response::BufferCreating { buffer },
                _ => Response::Error(control::ClientError::BufferGone),
            },
            Request::BufferFrames { buffer, start, .. } => match self.buffer(buffer) {
                Some((info, true, false)) if start < info.pages => {
                    let mut frames = heapless::Vec::new();
                    for i in start..info.pages.min(start + control::FRAMES_PER_RESPONSE as u32) {
                        frames.push(0x7000 + u64::from(i) * 2).unwrap();
                    }
                    Response::Frames {
                        start,
                        frames,
                        total: info.pages,
                    }
                }
                Some((_, true, false)) => Response::Error(control::ClientError::BadBufferSize),
                _ => Response::Error(control::ClientError::BufferGone),
            },
            Request::FreeBuffer { buffer, .. } => {
                match self
                    .buffers
                    .iter_mut()
                    .find(|b| b.0.buffer == buffer && !b.2)
                {
                    Some(b) => {
                        b.2 = true;
                        Response::BufferFreed
                    }
                    None => Response::Error(control::ClientError::BufferGone),
                }
            }
            Request::MemoryInfo => Response::Memory(control::MemoryInfo {
                pool_pages: 64,
                free_pages: 60,
                lent_pages: 0,
                lent_by_client: 0,
                reserve_pages: 8,
                quarantined_pages: 0,
            }),
        }
    }

    fn buffer(&self, b: control::BufferHandle) -> Option<(control::BufferInfo, bool, bool)> {
        self.buffers.iter().find(|x| x.0.buffer == b).copied()
    }

    /// The host creates (or refuses) every buffer GPADL awaited.
    fn complete_buffers(&mut self) -> bool {
        let refuse = self.refuse_buffers;
        let mut any = false;
        for b in self.buffers.iter_mut().filter(|b| !b.1 && !b.2) {
            if refuse {
                b.2 = true;
            } else {
                b.1 = true;
            }
            any = true;
        }
        any
    }

    /// The host's view of the channel in `slot` with the given ring sizes.
    fn host_rings(
        &self,
        slot: SlotId,
        out: usize,
        inb: usize,
    ) -> (RingReader<TestMem>, RingWriter<TestMem>) {
        let base = self.layout.slot_base(slot).unwrap();
        let out_mem = TestMem {
            win: self.win.clone(),
            first: base,
            pages: out,
        };
        let in_mem = TestMem {
            win: self.win.clone(),
            first: base + out,
            pages: inb,
        };
        (
            RingReader::new(out_mem).unwrap(),
            RingWriter::new(in_mem).unwrap(),
        )
    }

    fn signals(&self) -> usize {
        self.requests
            .iter()
            .filter(|r| matches!(r, Request::Signal { .. }))
            .count()
    }
}

impl ClientEnv for TestEnv {
    type Mem = TestMem;

    fn ppcall_driver(&mut self) {
        let req: Request =
            decode_frame(&self.control[REQUEST_OFFSET..REQUEST_OFFSET + REQUEST_AREA])
                .expect("the library writes a valid request frame");
        self.requests.push(req.clone());
        let resp = self.respond(req);
        let area = &mut self.control[RESPONSE_OFFSET..RESPONSE_OFFSET + RESPONSE_AREA];
        if let Some(len) = self.raw_length {
            area[..4].copy_from_slice(&len.to_le_bytes());
        } else {
            encode_frame(&resp, area).unwrap();
        }
    }

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.control[offset..offset + buf.len()]);
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= REQUEST_AREA,
            "client wrote outside the request area"
        );
        self.control[offset..offset + data.len()].copy_from_slice(data);
    }

    fn wait_notification(&mut self) -> Option<u64> {
        self.waits += 1;
        if let Some(n) = self.notifications.pop_front() {
            return Some(n);
        }
        match self.arrivals.pop_front() {
            Some(Arrival::Offer(o)) => {
                self.deliver_offer(o);
                return Some(1);
            }
            Some(Arrival::Other) => return Some(1),
            None => {}
        }
        if self.on_wait != OnWait::Nothing && self.complete_buffers() {
            return Some(1);
        }
        match (self.on_wait, self.pending.take()) {
            (OnWait::Complete(state), Some(h)) => {
                self.set_status(h.slot, h.generation, state, 0);
                Some(1)
            }
            _ => None,
        }
    }

    fn ring_mem(&mut self, first: usize, pages: usize) -> TestMem {
        TestMem {
            win: self.win.clone(),
            first,
            pages,
        }
    }

    fn window(&self) -> WindowLayout {
        self.layout
    }

    fn window_read(&mut self, window_page: usize, offset: usize, buf: &mut [u8]) -> bool {
        self.win.accesses.set(self.win.accesses.get() + 1);
        let at = window_page * PAGE + offset;
        buf.copy_from_slice(&self.win.bytes.borrow()[at..at + buf.len()]);
        true
    }

    fn window_write(&mut self, window_page: usize, offset: usize, data: &[u8]) -> bool {
        self.win.accesses.set(self.win.accesses.get() + 1);
        let at = window_page * PAGE + offset;
        self.win.bytes.borrow_mut()[at..at + data.len()].copy_from_slice(data);
        true
    }
}

fn offer(relid: u32, class: Guid) -> OfferInfo {
    OfferInfo {
        relid: RelId(relid),
        class: class.0,
        instance: [relid as u8; 16],
        sub_channel_index: 0,
    }
}

#[test]
fn list_offers_pages_through_the_driver_and_keeps_only_the_class() {
    let mut env = TestEnv::new();
    env.per_page = 3;
    env.offers = (1..=10)
        .map(|r| offer(r, if r % 3 == 0 { CLASS_B } else { CLASS_A }))
        .collect();
    let a = list_offers(&mut env, Some(CLASS_A)).unwrap();
    let relids: Vec<u32> = a.iter().map(|o| o.relid.0).collect();
    assert_eq!(relids, [1, 2, 4, 5, 7, 8, 10]);
    // 10 offers, 3 per page: four requests, starting at 0, 4, 7, 10.
    let starts: Vec<u32> = env
        .requests
        .iter()
        .map(|r| match r {
            Request::ListOffers { start } => start.0,
            _ => panic!("unexpected request {r:?}"),
        })
        .collect();
    assert_eq!(starts, [0, 4, 7, 10]);
    let all = list_offers(&mut env, None).unwrap();
    assert_eq!(all.len(), 10);
}

#[test]
fn list_offers_stops_on_a_cursor_that_does_not_advance() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(5, CLASS_A)];
    env.forced_next = Some(Some(RelId(0)));
    assert_eq!(
        list_offers(&mut env, None),
        Err(ClientError::UnexpectedResponse)
    );
    assert_eq!(env.requests.len(), 1);
}

#[test]
fn open_waits_for_the_status_record_and_maps_rings_at_the_slot() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 3, 2).unwrap();
    assert_eq!(
        ch.handle(),
        ChannelHandle {
            slot: SlotId(1),
            relid: RelId(9),
            generation: 7
        }
    );
    assert_eq!(
        env.requests[0],
        Request::Open {
            relid: RelId(9),
            out_ring_pages: 3,
            in_ring_pages: 2
        }
    );
    // Slot 1 of a 32-page, 4-slot window starts at page 8: the host finds the packet there.
    ch.send(&mut env, b"ping-pong").unwrap();
    let (mut host_rx, _) = env.host_rings(SlotId(1), 3, 2);
    let mut batch = host_rx.batch().unwrap();
    let p = batch.next_packet().unwrap().unwrap();
    let mut got = [0u8; 16];
    p.read_payload(0, &mut got).unwrap();
    assert_eq!(&got[..9], b"ping-pong");
    assert_eq!(&got[9..], &[0; 7]); // padding to 16
    // Nothing was written into slot 0's pages.
    assert!(env.win.bytes.borrow()[..8 * PAGE].iter().all(|&b| b == 0));
}

#[test]
fn a_failed_open_is_reported_as_open_failed() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    env.on_wait = OnWait::Complete(ChannelStatus::Failed);
    assert_eq!(
        open(&mut env, RelId(9), 2, 2).err(),
        Some(ClientError::OpenFailed)
    );
}

#[test]
fn an_open_rescinded_before_completion_is_channel_gone() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    env.on_wait = OnWait::Complete(ChannelStatus::Gone);
    assert_eq!(
        open(&mut env, RelId(9), 2, 2).err(),
        Some(ClientError::ChannelGone)
    );
}

#[test]
fn an_open_without_completion_is_cancelled() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    env.on_wait = OnWait::Nothing;
    assert_eq!(
        open(&mut env, RelId(9), 2, 2).err(),
        Some(ClientError::NoCompletion)
    );
    assert!(
        matches!(env.requests.last(), Some(Request::Close { handle }) if handle.relid == RelId(9))
    );
}

#[test]
fn ring_sizes_that_cannot_fit_the_slot_are_refused_before_asking() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    // 8 pages per slot.
    for (out, inb) in [(1, 2), (2, 1), (5, 4), (0, 0)] {
        assert_eq!(
            start_open(&mut env, RelId(9), out, inb).err(),
            Some(ClientError::BadRingSize),
            "{out}+{inb}"
        );
    }
    assert!(env.requests.is_empty());
    assert!(start_open(&mut env, RelId(9), 4, 4).is_ok());
}

#[test]
fn driver_refusals_keep_their_reason() {
    let mut env = TestEnv::new();
    assert_eq!(
        start_open(&mut env, RelId(3), 2, 2).err(),
        Some(ClientError::Refused(control::ClientError::NoSuchOffer))
    );
    env.forced_response = Some(Response::Error(control::ClientError::NotConnected));
    assert_eq!(
        list_offers(&mut env, None).err(),
        Some(ClientError::Refused(control::ClientError::NotConnected))
    );
    // A response of the wrong kind is not taken for an answer.
    env.forced_response = Some(Response::Closed);
    assert_eq!(
        list_offers(&mut env, None).err(),
        Some(ClientError::UnexpectedResponse)
    );
}

#[test]
fn a_response_length_past_the_area_is_refused() {
    let mut env = TestEnv::new();
    env.raw_length = Some(RESPONSE_AREA as u32);
    assert!(matches!(
        list_offers(&mut env, None),
        Err(ClientError::BadResponse(
            control::FrameError::LengthOutOfRange { .. }
        ))
    ));
}

#[test]
fn send_asks_for_a_signal_only_when_the_ring_writer_says_so() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 2, 2).unwrap();
    ch.send(&mut env, b"one").unwrap();
    assert_eq!(env.signals(), 1, "empty ring, mask clear: signal");
    ch.send(&mut env, b"two").unwrap();
    assert_eq!(
        env.signals(),
        1,
        "host has not read the first packet: no signal"
    );
    // The host drains and masks interrupts while it polls.
    let (mut host_rx, _) = env.host_rings(SlotId(1), 2, 2);
    let batch = host_rx.batch().unwrap();
    let mut batch = batch;
    while batch.next_packet().unwrap().is_some() {}
    batch.commit().unwrap();
    host_rx.disable_interrupts();
    ch.send(&mut env, b"three").unwrap();
    assert_eq!(env.signals(), 1, "host masked interrupts: no signal");
    assert_eq!(ch.counters().sent, 3);
    assert_eq!(ch.counters().signals, 1);
}

#[test]
fn recv_copies_packets_and_keeps_one_that_does_not_fit() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(ch.recv(&mut env, &mut buf).unwrap(), None);
    let (_, mut host_tx) = env.host_rings(SlotId(1), 2, 2);
    let mut batch = host_tx.batch().unwrap();
    batch.write_inband(77, true, &[5u8; 24]).unwrap();
    batch.write_inband(78, false, b"hi").unwrap();
    batch.commit();
    let mut small = [0u8; 16];
    assert_eq!(
        ch.recv(&mut env, &mut small),
        Err(ClientError::BufferTooSmall { needed: 24 })
    );
    let r = ch.recv(&mut env, &mut buf).unwrap().unwrap();
    assert_eq!(
        (r.len, r.transaction_id, r.completion_requested),
        (24, 77, true)
    );
    assert_eq!(&buf[..24], &[5u8; 24]);
    let r = ch.recv(&mut env, &mut buf).unwrap().unwrap();
    assert_eq!((r.len, r.transaction_id), (8, 78));
    assert_eq!(&buf[..2], b"hi");
    assert_eq!(ch.recv(&mut env, &mut buf).unwrap(), None);
    assert_eq!(ch.counters().received, 2);
}

#[test]
fn a_gone_channel_fails_without_touching_its_ring() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let h = ch.handle();
    env.set_status(h.slot, h.generation + 1, ChannelStatus::Gone, 0);
    let before = env.win.accesses.get();
    let mut buf = [0u8; 8];
    assert_eq!(ch.send(&mut env, b"x"), Err(ClientError::ChannelGone));
    assert_eq!(ch.recv(&mut env, &mut buf), Err(ClientError::ChannelGone));
    assert_eq!(ch.take_events(&mut env), Err(ClientError::ChannelGone));
    assert_eq!(
        env.win.accesses.get(),
        before,
        "no ring access after the channel is gone"
    );
    // A record of the same generation marked gone is refused the same way.
    env.set_status(h.slot, h.generation, ChannelStatus::Gone, 0);
    assert_eq!(ch.send(&mut env, b"x"), Err(ClientError::ChannelGone));
    // A driver that says the handle is stale while signalling maps to the same error.
    env.set_status(h.slot, h.generation, ChannelStatus::Open, 0);
    env.forced_response = Some(Response::Error(control::ClientError::ChannelGone));
    assert_eq!(ch.send(&mut env, b"x"), Err(ClientError::ChannelGone));
    assert_eq!(ch.close(&mut env), Err(ClientError::ChannelGone));
}

#[test]
fn events_are_counted_from_the_status_record() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let h = ch.handle();
    assert_eq!(ch.take_events(&mut env), Ok(0));
    env.set_status(h.slot, h.generation, ChannelStatus::Open, 3);
    assert_eq!(ch.take_events(&mut env), Ok(3));
    assert_eq!(ch.take_events(&mut env), Ok(0));
    // The counter wraps without a false burst.
    env.set_status(h.slot, h.generation, ChannelStatus::Open, u32::MAX);
    ch.take_events(&mut env).unwrap();
    env.set_status(h.slot, h.generation, ChannelStatus::Open, 1);
    assert_eq!(ch.take_events(&mut env), Ok(2));
}

#[test]
fn a_host_that_corrupts_the_inbound_ring_gets_an_error_not_a_crash() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let (_, host_tx) = env.host_rings(SlotId(1), 2, 2);
    host_tx
        .mem()
        .store(Control::WriteIndex, 13, Ordering::Relaxed);
    let mut buf = [0u8; 8];
    assert!(matches!(
        ch.recv(&mut env, &mut buf),
        Err(ClientError::Ring(RingError::Corrupt(_)))
    ));
    host_tx
        .mem()
        .store(Control::WriteIndex, 1 << 20, Ordering::Relaxed);
    assert!(matches!(
        ch.recv(&mut env, &mut buf),
        Err(ClientError::Ring(RingError::Corrupt(_)))
    ));
}

#[test]
fn close_sends_the_handle() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let h = ch.handle();
    ch.close(&mut env).unwrap();
    assert_eq!(env.requests.last(), Some(&Request::Close { handle: h }));
    let _ = CLASS_B;
}

#[test]
fn waiting_for_an_offer_sleeps_through_unrelated_notifications_and_lists_again_only_when_one_arrives()
 {
    let mut env = TestEnv::new();
    env.arrivals = VecDeque::from([
        Arrival::Other,
        Arrival::Other,
        Arrival::Offer(offer(5, CLASS_A)),
    ]);
    assert_eq!(wait_for_offer(&mut env, CLASS_A), Ok(RelId(5)));
    // One list before the wait, one after the counter moved; none for the other notifications.
    assert_eq!(env.lists(), 2);
    assert_eq!(env.waits, 3);
    assert_eq!(offers_delivered(&mut env), 1);
}

#[test]
fn waiting_for_an_offer_does_not_lose_one_that_arrives_between_the_list_and_the_wait() {
    let mut env = TestEnv::new();
    // The offer arrives right after the driver answered the (empty) list, and no notification
    // will ever come for it (another wait of the client took it): only the counter tells.
    env.offer_after_list = Some(offer(7, CLASS_A));
    env.on_wait = OnWait::Nothing;
    assert_eq!(wait_for_offer(&mut env, CLASS_A), Ok(RelId(7)));
    assert_eq!(env.waits, 0, "the counter had moved: no wait");
    assert_eq!(env.lists(), 2);
}

#[test]
fn waiting_for_an_offer_of_one_class_keeps_waiting_through_offers_of_another() {
    let mut env = TestEnv::new();
    env.arrivals = VecDeque::from([
        Arrival::Offer(offer(3, CLASS_B)),
        Arrival::Offer(offer(4, CLASS_A)),
    ]);
    assert_eq!(wait_for_offer(&mut env, CLASS_A), Ok(RelId(4)));
    assert_eq!(env.lists(), 3);
}

#[test]
fn waiting_for_an_offer_that_never_comes_ends_when_no_notification_will_come() {
    let mut env = TestEnv::new();
    env.on_wait = OnWait::Nothing;
    assert_eq!(wait_for_offer(&mut env, CLASS_A), Err(ClientError::NoOffer));
    assert_eq!(env.lists(), 1);
}

#[test]
fn waiting_for_an_offer_before_the_driver_is_connected_waits_for_the_counter() {
    let mut env = TestEnv::new();
    env.not_connected_lists = 1;
    env.arrivals = VecDeque::from([Arrival::Offer(offer(2, CLASS_A))]);
    assert_eq!(wait_for_offer(&mut env, CLASS_A), Ok(RelId(2)));
    assert_eq!(env.lists(), 2);
    assert_eq!(env.waits, 1);
}

#[test]
fn completions_and_gpa_direct_packets_reach_the_host_with_their_type_and_ranges() {
    use vmbus_driver::ring::{GpaRange, PacketType};
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 2, 2).unwrap();
    ch.send_completion(&mut env, 41, b"done").unwrap();
    let pfns = [0x1234, 0x1235];
    let range = GpaRange {
        byte_count: 6000,
        byte_offset: 100,
        pfns: &pfns,
    };
    ch.send_gpa_direct(&mut env, 42, true, &[range], b"srb")
        .unwrap();
    // An empty range list is refused before anything is written.
    assert_eq!(
        ch.send_gpa_direct(&mut env, 43, true, &[], b"x"),
        Err(ClientError::Ring(RingError::BadRange))
    );
    let (mut host_rx, _) = env.host_rings(SlotId(1), 2, 2);
    let mut batch = host_rx.batch().unwrap();
    let p = batch.next_packet().unwrap().unwrap();
    assert_eq!(
        (p.packet_type(), p.transaction_id()),
        (PacketType::COMP, 41)
    );
    let mut b = [0u8; 4];
    p.read_payload(0, &mut b).unwrap();
    assert_eq!(&b, b"done");
    let p = batch.next_packet().unwrap().unwrap();
    assert_eq!(
        (
            p.packet_type(),
            p.transaction_id(),
            p.completion_requested()
        ),
        (PacketType::DATA_USING_GPA_DIRECT, 42, true)
    );
    // The extended descriptor: reserved u32, range count u32, then byte count, byte offset and
    // the page numbers of each range.
    let mut ext = [0u8; 32];
    p.read_ext(0, &mut ext).unwrap();
    assert_eq!(u32::from_le_bytes(ext[4..8].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(ext[8..12].try_into().unwrap()), 6000);
    assert_eq!(u32::from_le_bytes(ext[12..16].try_into().unwrap()), 100);
    assert_eq!(u64::from_le_bytes(ext[16..24].try_into().unwrap()), 0x1234);
    assert_eq!(u64::from_le_bytes(ext[24..32].try_into().unwrap()), 0x1235);
    assert!(batch.next_packet().unwrap().is_none());
    assert_eq!(ch.counters().sent, 2);
}

#[test]
fn recv_with_ext_hands_out_the_extended_descriptor_and_keeps_a_packet_it_cannot_hold() {
    use vmbus_driver::ring::{GpaRange, PacketType};
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let (_, mut host_tx) = env.host_rings(SlotId(1), 2, 2);
    let pfns = [7];
    let mut batch = host_tx.batch().unwrap();
    batch
        .write_gpa_direct(
            5,
            false,
            &[GpaRange {
                byte_count: 16,
                byte_offset: 0,
                pfns: &pfns,
            }],
            b"payload!",
        )
        .unwrap();
    batch.commit();
    let mut buf = [0u8; 64];
    let mut small = [0u8; 8];
    assert_eq!(
        ch.recv_with_ext(&mut env, &mut buf, &mut small),
        Err(ClientError::BufferTooSmall { needed: 24 })
    );
    let mut ext = [0u8; 64];
    let r = ch
        .recv_with_ext(&mut env, &mut buf, &mut ext)
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.packet_type, r.transaction_id, r.ext_len, r.len),
        (PacketType::DATA_USING_GPA_DIRECT, 5, 24, 8)
    );
    assert_eq!(u64::from_le_bytes(ext[16..24].try_into().unwrap()), 7);
    assert_eq!(&buf[..8], b"payload!");
}

#[test]
fn a_transfer_page_packet_arrives_with_its_set_id_and_ranges() {
    use vmbus_driver::ring::{PacketType, TransferRange};
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let mut ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let (_, mut host_tx) = env.host_rings(SlotId(1), 2, 2);
    let mut batch = host_tx.batch().unwrap();
    let ranges = [
        TransferRange {
            byte_count: 60,
            byte_offset: 0,
        },
        TransferRange {
            byte_count: 1514,
            byte_offset: 4096,
        },
    ];
    batch
        .write_transfer_pages(11, true, 0xcafe, &ranges, &[1u8; 16])
        .unwrap();
    assert_eq!(
        batch.write_transfer_pages(12, true, 1, &[], b""),
        Err(RingError::BadRange)
    );
    batch.commit();
    let (mut buf, mut ext) = ([0u8; 64], [0u8; 64]);
    let r = ch
        .recv_with_ext(&mut env, &mut buf, &mut ext)
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            r.packet_type,
            r.transaction_id,
            r.completion_requested,
            r.ext_len
        ),
        (PacketType::DATA_USING_XFER_PAGES, 11, true, 24)
    );
    assert_eq!(u16::from_le_bytes([ext[0], ext[1]]), 0xcafe);
    assert_eq!(u32::from_le_bytes(ext[4..8].try_into().unwrap()), 2);
    assert_eq!(u32::from_le_bytes(ext[16..20].try_into().unwrap()), 1514);
    assert_eq!(u32::from_le_bytes(ext[20..24].try_into().unwrap()), 4096);
}

#[test]
fn a_gpadl_buffer_is_waited_for_and_its_frames_are_fetched_across_responses() {
    let mut env = TestEnv::new();
    env.layout = WindowLayout {
        pages: 4 * 400,
        max_channels: 4,
    };
    env.win = Rc::new(Window {
        bytes: RefCell::new(vec![0; env.layout.pages * PAGE]),
        accesses: Cell::new(0),
    });
    env.offers = vec![offer(9, CLASS_A)];
    let ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let buf = ch.alloc_buffer(&mut env, 300, true).unwrap();
    assert_eq!(buf.window_page, 400 + 4, "slot 1, after the rings");
    assert_eq!(buf.pages, 300);
    assert_eq!(buf.gpadl, Some(crate::GpadlId(0x900)));
    assert!(
        env.requests
            .iter()
            .any(|r| matches!(r, Request::BufferStatus { .. })),
        "the library waited for the status"
    );
    let mut frames = [0u64; 400];
    let n = ch.buffer_frames(&mut env, &buf, 10, &mut frames).unwrap();
    assert_eq!(n, 290, "to the buffer's end");
    for (i, f) in frames[..n].iter().enumerate() {
        assert_eq!(*f, 0x7000 + (10 + i as u64) * 2);
    }
    let asked: Vec<u32> = env
        .requests
        .iter()
        .filter_map(|r| match r {
            Request::BufferFrames { start, .. } => Some(*start),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [10, 138, 266]);
    ch.free_buffer(&mut env, buf).unwrap();
    assert_eq!(
        ch.buffer_frames(&mut env, &buf, 0, &mut frames),
        Err(ClientError::Refused(control::ClientError::BufferGone))
    );
}

#[test]
fn buffer_memory_is_reached_through_the_window_until_the_channel_is_gone() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let ch = open(&mut env, RelId(9), 2, 2).unwrap();
    let buf = ch.alloc_buffer(&mut env, 2, false).unwrap();
    assert_eq!(buf.gpadl, None);
    ch.write_buffer(&mut env, &buf, PAGE - 2, b"span").unwrap();
    let at = buf.window_page * PAGE + PAGE - 2;
    assert_eq!(&env.win.bytes.borrow()[at..at + 4], b"span");
    let mut back = [0u8; 4];
    ch.read_buffer(&mut env, &buf, PAGE - 2, &mut back).unwrap();
    assert_eq!(&back, b"span");
    assert_eq!(
        ch.write_buffer(&mut env, &buf, 2 * PAGE - 1, b"xy"),
        Err(ClientError::OutOfBuffer)
    );
    // Rescinded: the buffer went with the channel, and the window is not touched.
    let h = ch.handle();
    env.set_status(h.slot, h.generation, ChannelStatus::Gone, 0);
    let before = env.win.accesses.get();
    assert_eq!(
        ch.read_buffer(&mut env, &buf, 0, &mut back),
        Err(ClientError::ChannelGone)
    );
    assert_eq!(
        ch.alloc_buffer(&mut env, 1, false),
        Err(ClientError::ChannelGone)
    );
    assert_eq!(env.win.accesses.get(), before);
}

#[test]
fn a_buffer_the_host_refuses_fails_and_one_never_answered_is_freed() {
    let mut env = TestEnv::new();
    env.offers = vec![offer(9, CLASS_A)];
    let ch = open(&mut env, RelId(9), 2, 2).unwrap();
    env.refuse_buffers = true;
    assert_eq!(
        ch.alloc_buffer(&mut env, 4, true),
        Err(ClientError::BufferFailed)
    );
    env.refuse_buffers = false;
    env.on_wait = OnWait::Nothing;
    assert_eq!(
        ch.alloc_buffer(&mut env, 4, true),
        Err(ClientError::NoCompletion)
    );
    assert!(matches!(
        env.requests.last(),
        Some(Request::FreeBuffer { .. })
    ));
    env.forced_response = Some(Response::Error(control::ClientError::BufferLimit(
        control::BufferLimit::Channel,
    )));
    assert_eq!(
        ch.alloc_buffer(&mut env, 1, false),
        Err(ClientError::Refused(control::ClientError::BufferLimit(
            control::BufferLimit::Channel
        )))
    );
}
