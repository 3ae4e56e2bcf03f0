//! The storage PD on the simulation: storvsc as an sDDF block driver ([`StorvscDriver`]), a
//! step-wise program like the service programs (`crate::services`), and the sDDF block client
//! that talks to it ([`BlkTestClient`]) using only the sDDF queues and the data region.
//!
//! The driver program waits for the SCSI controller's offer, opens it (rings of [`RING_PAGES`] +
//! [`RING_PAGES`] pages, well inside the storage client's 1 MiB window slot: 8 MiB window, 8
//! channels), runs the vstor initialisation (`storvsc::Init`), allocates a data buffer of
//! [`DATA_PAGES`] pages (`alloc_buffer`, no GPADL) and fetches its frame numbers
//! (`buffer_frames`), reads the capacity (READ CAPACITY(16) into the buffer's first page), then
//! serves the sDDF block queues through `storvsc::blk::BlkBridge`: each request becomes SCSI
//! commands whose GPA-direct ranges name the buffer's frames, each completion an sDDF response.
//! When the channel goes away (rescind) every request in flight, and every later one, is
//! answered with `NoDevice`; the program then waits for the device to come back.
//!
//! Where the simulation differs from the seL4 system (each also noted where it is done):
//! - the sDDF request and response queues live in test memory ([`SharedQueues`]: `FlatMem` over
//!   an `Arc<[AtomicU64]>` that both sides hold), since the simulation has no mechanism for a
//!   shared region between two PDs besides the driver's windows;
//! - the sDDF data region IS the driver's window buffer (no copy: sDDF offsets are buffer
//!   offsets, and the bridge names the buffer's frames directly). The block client is another
//!   PD in the real system, with the data region mapped in it; here the test client reaches the
//!   region through the storage PD's own window mapping (`ClientCtx::window_read` /
//!   `window_write` of that PD), which faults once the driver revoked the buffer, as the shared
//!   mapping would be gone;
//! - notifications between the block client and the driver are not modelled: the driver program
//!   polls its request queue at every step.

use std::cell::{Ref, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use log::{info, warn};
use sddf::{
    BlkDataRegion, BlkQueue, BlkRequest, BlkRequester, BlkResponder, BlkResponse, BlkStatus,
    DeviceLimits, EnqueueError, FlatMem, PeerError, QueueMem, RequestFault, StorageInfo,
};
use storvsc::blk::{BlkBridge, Refusal};
use storvsc::msg::{PACKET_MAX, SCSI_CLASS};
use storvsc::{
    Capacity, Command, DataBuffer, INIT_TRANSACTION_ID, Incoming, Init, InitStep, Lun, Negotiated,
    Requests, Submitted,
};
use vmbus_client::{
    Buffer, Channel, ClientError, PendingOpen, list_offers, offers_delivered, start_open,
};
use vmbus_driver::control::ClientError as DriverRefusal;
use vmbus_driver::guid::Guid;
use vmbus_driver::ring::GpaRange;

use crate::World;
use crate::program::{ClientCtx, ClientProgram, Flow};
use crate::ringmem::ClientRingMem;
use vmbus_driver::ids::ClientId;

/// Pages of each ring, header page included (16 KiB).
pub const RING_PAGES: u16 = 4;
/// Pages of the data buffer (the sDDF data region).
pub const DATA_PAGES: u32 = 64;
/// Entries of each sDDF queue.
pub const QUEUE_CAPACITY: u32 = 64;
/// SCSI requests outstanding at most.
pub const QUEUE_DEPTH: usize = 32;
/// Steps before the program lists offers again after a failure.
const RETRY_STEPS: u64 = 8;

/// A shared sDDF queue region in test memory (see the module's notes).
#[derive(Debug, Clone)]
pub struct SharedMem(Arc<[AtomicU64]>);

impl SharedMem {
    /// A zeroed region of `bytes` bytes.
    #[must_use]
    pub fn new(bytes: usize) -> Self {
        Self(
            (0..FlatMem::words_for(bytes))
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }

    fn flat(&self) -> FlatMem<'_> {
        FlatMem::new(&self.0)
    }
}

impl QueueMem for SharedMem {
    fn size(&self) -> usize {
        self.flat().size()
    }
    fn load_u8(&self, offset: usize, order: Ordering) -> u8 {
        self.flat().load_u8(offset, order)
    }
    fn store_u8(&self, offset: usize, value: u8, order: Ordering) {
        self.flat().store_u8(offset, value, order);
    }
    fn load_u16(&self, offset: usize, order: Ordering) -> u16 {
        self.flat().load_u16(offset, order)
    }
    fn store_u16(&self, offset: usize, value: u16, order: Ordering) {
        self.flat().store_u16(offset, value, order);
    }
    fn load_u32(&self, offset: usize, order: Ordering) -> u32 {
        self.flat().load_u32(offset, order)
    }
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) {
        self.flat().store_u32(offset, value, order);
    }
    fn fence(&self, order: Ordering) {
        self.flat().fence(order);
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        self.flat().read(offset, buf);
    }
    fn write(&self, offset: usize, data: &[u8]) {
        self.flat().write(offset, data);
    }
}

/// The request and response queue regions both sides hold.
#[derive(Debug, Clone)]
pub struct SharedQueues {
    req: SharedMem,
    resp: SharedMem,
}

impl SharedQueues {
    /// Fresh regions for [`QUEUE_CAPACITY`] entries.
    #[must_use]
    pub fn new() -> Self {
        Self {
            req: SharedMem::new(sddf::blk::layout::req_region_size(QUEUE_CAPACITY)),
            resp: SharedMem::new(sddf::blk::layout::resp_region_size(QUEUE_CAPACITY)),
        }
    }

    fn queue(&self) -> BlkQueue<SharedMem> {
        BlkQueue::new(self.req.clone(), self.resp.clone(), QUEUE_CAPACITY)
            .expect("the regions fit the capacity")
    }

    /// The data region: offsets into the driver's buffer.
    #[must_use]
    pub fn region() -> BlkDataRegion {
        BlkDataRegion::offsets(u64::from(DATA_PAGES) * 4096)
    }
}

impl Default for SharedQueues {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the driver program stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorPhase {
    /// Waiting for the SCSI offer.
    Waiting,
    /// The driver is opening the channel.
    Opening,
    /// The vstor initialisation is running.
    Initializing,
    /// READ CAPACITY(16) sent.
    Capacity,
    /// Serving the sDDF queues.
    Serving,
    /// Given up on this channel (initialisation or capacity failed); reported in `errors`.
    Failed,
}

/// What the driver program shares with its handle.
#[derive(Debug)]
pub struct StorState {
    /// Where it stands.
    pub phase: StorPhase,
    /// Channels opened.
    pub opens: u64,
    /// Channels that went away under the program.
    pub gone: u64,
    /// What the initialisation agreed.
    pub negotiated: Option<Negotiated>,
    /// What READ CAPACITY(16) said.
    pub capacity: Option<Capacity>,
    /// What the storage-info page would say.
    pub info: Option<StorageInfo>,
    /// The data buffer (the sDDF data region) while the channel is open.
    pub buffer: Option<Buffer>,
    /// Its frame numbers.
    pub frames: Vec<u64>,
    /// sDDF requests taken.
    pub requests_taken: u64,
    /// SCSI commands sent for them (a split request counts each part).
    pub scsi_commands: u64,
    /// sDDF responses given, by status (`BlkStatus as usize`).
    pub responses: [u64; 5],
    /// Host misbehaviour seen (completions refused by `Requests::on_packet`).
    pub host_errors: Vec<String>,
    /// Other errors (initialisation, capacity, channel).
    pub errors: Vec<String>,
}

/// A view of a [`StorvscDriver`]'s state that stays with the caller.
#[derive(Debug, Clone)]
pub struct StorHandle(Rc<RefCell<StorState>>);

impl StorHandle {
    /// The state.
    #[must_use]
    pub fn state(&self) -> Ref<'_, StorState> {
        self.0.borrow()
    }

    /// Whether the program serves the queues.
    #[must_use]
    pub fn serving(&self) -> bool {
        self.0.borrow().phase == StorPhase::Serving
    }
}

/// The channel-level state of one connection.
#[derive(Debug)]
struct Conn {
    ch: Channel<ClientRingMem>,
    init: Init,
    requests: Option<Requests>,
    bridge: Option<BlkBridge>,
    capacity_tid: u64,
}

#[derive(Debug)]
enum Link {
    Waiting { listed: Option<u32> },
    Opening(PendingOpen),
    Open(Box<Conn>),
    Failed(Box<Conn>),
}

/// storvsc as an sDDF block driver, as a client program of the storage PD.
#[derive(Debug)]
pub struct StorvscDriver {
    link: Link,
    responder: BlkResponder<SharedMem>,
    /// A request taken while the bridge was busy, sent first at the next step.
    held: Option<BlkRequest>,
    retry_at: u64,
    state: Rc<RefCell<StorState>>,
}

impl StorvscDriver {
    /// The program, serving `queues`.
    #[must_use]
    pub fn new(queues: &SharedQueues) -> Self {
        Self {
            link: Link::Waiting { listed: None },
            responder: queues.queue().responder(SharedQueues::region()),
            held: None,
            retry_at: 0,
            state: Rc::new(RefCell::new(StorState {
                phase: StorPhase::Waiting,
                opens: 0,
                gone: 0,
                negotiated: None,
                capacity: None,
                info: None,
                buffer: None,
                frames: Vec::new(),
                requests_taken: 0,
                scsi_commands: 0,
                responses: [0; 5],
                host_errors: Vec::new(),
                errors: Vec::new(),
            })),
        }
    }

    /// The handle.
    #[must_use]
    pub fn handle(&self) -> StorHandle {
        StorHandle(self.state.clone())
    }

    fn set_phase(&self, p: StorPhase) {
        self.state.borrow_mut().phase = p;
    }

    fn error(&self, msg: String) {
        warn!("storvsc: {msg}");
        self.state.borrow_mut().errors.push(msg);
    }

    fn respond(&mut self, r: BlkResponse) {
        self.state.borrow_mut().responses[r.status as usize] += 1;
        if self.responder.enqueue_response(&r).is_err() {
            // The response queue holds as many entries as the request queue: never full
            // unless the client broke it.
            self.error(format!("response {} lost: queue full or broken", r.id));
        }
    }

    /// The channel went away: everything in flight and held answered with `NoDevice`.
    fn gone(&mut self, ctx: &ClientCtx<'_>) {
        let link = core::mem::replace(&mut self.link, Link::Waiting { listed: None });
        if let Link::Open(mut c) | Link::Failed(mut c) = link {
            let mut answers = Vec::new();
            if let Some(b) = c.bridge.as_mut() {
                b.fail_all(|r| answers.push(r));
            }
            if let Some(r) = c.requests.as_mut() {
                r.fail_all(|_| {});
            }
            for r in answers {
                self.respond(r);
            }
        }
        if let Some(req) = self.held.take() {
            self.respond(no_device(req.id));
        }
        info!("storvsc: the channel is gone; waiting for the device again");
        let mut st = self.state.borrow_mut();
        st.gone += 1;
        st.buffer = None;
        st.frames.clear();
        st.phase = StorPhase::Waiting;
        drop(st);
        self.retry_at = ctx.now() + RETRY_STEPS;
    }

    fn advance_link(&mut self, ctx: &mut ClientCtx<'_>) {
        match &self.link {
            Link::Waiting { listed } => {
                let seen = offers_delivered(ctx);
                if *listed == Some(seen) || ctx.now() < self.retry_at {
                    return;
                }
                self.link = Link::Waiting { listed: Some(seen) };
                let offers = match list_offers(ctx, Some(Guid(SCSI_CLASS))) {
                    Ok(o) => o,
                    Err(ClientError::Refused(DriverRefusal::NotConnected)) => return,
                    Err(e) => return self.error(format!("listing offers: {e}")),
                };
                let Some(offer) = offers.iter().find(|o| o.sub_channel_index == 0) else {
                    return;
                };
                match start_open(ctx, offer.relid, RING_PAGES, RING_PAGES) {
                    Ok(p) => {
                        self.link = Link::Opening(p);
                        self.set_phase(StorPhase::Opening);
                    }
                    Err(e) => {
                        // E.g. the slot is still being torn down after a rescind.
                        info!("storvsc: open of {}: {e}", offer.relid);
                        self.retry_at = ctx.now() + RETRY_STEPS;
                        self.link = Link::Waiting { listed: None };
                    }
                }
            }
            Link::Opening(p) => match p.poll(ctx) {
                Ok(None) => {}
                Ok(Some(mut ch)) => {
                    info!("storvsc: opened {}", ch.relid());
                    let mut out = [0u8; PACKET_MAX];
                    let (init, n) = Init::begin(&mut out);
                    if let Err(e) = ch.send_packet(ctx, INIT_TRANSACTION_ID, true, &out[..n]) {
                        self.error(format!("BEGIN_INITIALIZATION: {e}"));
                    }
                    self.state.borrow_mut().opens += 1;
                    self.set_phase(StorPhase::Initializing);
                    self.link = Link::Open(Box::new(Conn {
                        ch,
                        init,
                        requests: None,
                        bridge: None,
                        capacity_tid: 0,
                    }));
                }
                Err(e) => {
                    info!("storvsc: open failed: {e}");
                    self.retry_at = ctx.now() + RETRY_STEPS;
                    self.link = Link::Waiting { listed: None };
                    self.set_phase(StorPhase::Waiting);
                }
            },
            Link::Open(_) | Link::Failed(_) => {}
        }
    }

    /// Takes what the host sent; false when the channel is gone.
    fn receive(&mut self, ctx: &mut ClientCtx<'_>) -> bool {
        let mut buf = [0u8; PACKET_MAX + 64];
        loop {
            let Link::Open(c) = &mut self.link else {
                return true;
            };
            let rx = match c.ch.recv(ctx, &mut buf) {
                Ok(Some(rx)) => rx,
                Ok(None) => return true,
                Err(ClientError::ChannelGone) => return false,
                Err(e) => {
                    self.error(format!("receive: {e}"));
                    return true;
                }
            };
            let packet = &buf[..rx.len];
            if c.requests.is_none() {
                self.on_init_packet(ctx, rx.transaction_id, packet);
            } else {
                self.on_completion(ctx, rx.transaction_id, packet);
            }
        }
    }

    fn on_init_packet(&mut self, ctx: &mut ClientCtx<'_>, tid: u64, packet: &[u8]) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let mut out = [0u8; PACKET_MAX];
        match c.init.on_packet(tid, packet, &mut out) {
            Ok(InitStep::Wait) => {}
            Ok(InitStep::Stale(tid)) => self.state.borrow_mut().host_errors.push(format!(
                "initialisation: a second completion of step {tid:#x}, ignored"
            )),
            Ok(InitStep::Send(n)) => {
                let id = c.init.transaction_id();
                if let Err(e) = c.ch.send_packet(ctx, id, true, &out[..n]) {
                    self.error(format!("initialisation: {e}"));
                }
            }
            Ok(InitStep::Ready(neg)) => self.ready(ctx, neg),
            Err(e) => {
                self.error(format!("initialisation: {e}"));
                self.fail();
            }
        }
    }

    fn fail(&mut self) {
        if let Link::Open(c) = core::mem::replace(&mut self.link, Link::Waiting { listed: None }) {
            self.link = Link::Failed(c);
        }
        self.set_phase(StorPhase::Failed);
    }

    /// Initialised: the data buffer, its frames, READ CAPACITY(16) into its first page.
    fn ready(&mut self, ctx: &mut ClientCtx<'_>, neg: Negotiated) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        info!(
            "storvsc: protocol {:?}, {} bytes per request",
            neg.version, neg.max_transfer_bytes
        );
        self.state.borrow_mut().negotiated = Some(neg);
        let buffer = match c.ch.alloc_buffer(ctx, DATA_PAGES, false) {
            Ok(b) => b,
            Err(e) => {
                self.error(format!("data buffer: {e}"));
                return self.fail();
            }
        };
        let mut frames = vec![0u64; buffer.pages];
        match c.ch.buffer_frames(ctx, &buffer, 0, &mut frames) {
            Ok(n) if n == buffer.pages => {}
            Ok(n) => {
                self.error(format!("{n} frames of {} pages", buffer.pages));
                return self.fail();
            }
            Err(e) => {
                self.error(format!("buffer frames: {e}"));
                return self.fail();
            }
        }
        let mut requests = Requests::new(&neg, QUEUE_DEPTH);
        let mut out = [0u8; PACKET_MAX];
        let cmd = Command::read_capacity_16();
        let pfns = [frames[0]];
        let data = DataBuffer {
            offset: 0,
            len: cmd.data_len,
            pfns: &pfns,
        };
        let sent = requests
            .submit(Lun::default(), &cmd, Some(&data), &mut out)
            .expect("READ CAPACITY(16) fits an empty queue");
        let r = send_part(&mut c.ch, ctx, &sent, Some(&data), &out[..sent.len]);
        c.capacity_tid = sent.transaction_id;
        c.requests = Some(requests);
        let mut st = self.state.borrow_mut();
        st.buffer = Some(buffer);
        st.frames = frames;
        st.phase = StorPhase::Capacity;
        drop(st);
        if let Err(e) = r {
            self.error(format!("READ CAPACITY(16): {e}"));
        }
    }

    fn on_completion(&mut self, ctx: &mut ClientCtx<'_>, tid: u64, packet: &[u8]) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let requests = c.requests.as_mut().expect("initialised");
        let done = match requests.on_packet(tid, packet) {
            Ok(Incoming::Done(d)) => d,
            Ok(_) => return,
            Err(e) => {
                let ended = e.ended();
                warn!("storvsc: host error: {e}");
                self.state.borrow_mut().host_errors.push(e.to_string());
                // A completion that ended a request without decoding: fail that request.
                let Some(tid) = ended else { return };
                storvsc::Done {
                    transaction_id: tid,
                    opcode: 0,
                    result: Err(storvsc::IoError::Srb { srb_status: 0 }),
                }
            }
        };
        if c.bridge.is_none() {
            if done.transaction_id != c.capacity_tid {
                return;
            }
            return self.on_capacity(ctx, &done);
        }
        let st = &self.state;
        let frames = st.borrow().frames.clone();
        let frame = |page: u64| frames.get(usize::try_from(page).ok()?).copied();
        let mut out = [0u8; PACKET_MAX];
        let ch = &mut c.ch;
        let mut send = |s: &Submitted, d: Option<&DataBuffer<'_>>, p: &[u8]| {
            st.borrow_mut().scsi_commands += 1;
            send_part(ch, ctx, s, d, p).is_ok()
        };
        let bridge = c.bridge.as_mut().expect("serving");
        if let Some(r) = bridge.complete(&done, requests, &frame, &mut out, &mut send) {
            self.respond(r);
        }
    }

    fn on_capacity(&mut self, ctx: &mut ClientCtx<'_>, done: &storvsc::Done) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let t = match done.result {
            Ok(t) => t,
            Err(e) => {
                self.error(format!("READ CAPACITY(16): {e}"));
                return self.fail();
            }
        };
        let buffer = self.state.borrow().buffer.expect("allocated");
        let mut data = vec![0u8; t.transferred.min(32) as usize];
        if let Err(e) = c.ch.read_buffer(ctx, &buffer, 0, &mut data) {
            self.error(format!("capacity data: {e}"));
            return self.fail();
        }
        let cap = match Capacity::parse(&data) {
            Ok(cap) => cap,
            Err(e) => {
                self.error(format!("capacity: {e}"));
                return self.fail();
            }
        };
        let neg = self.state.borrow().negotiated.expect("initialised");
        let bridge = match BlkBridge::new(Lun::default(), &cap, neg.max_transfer_bytes) {
            Ok(b) => b,
            Err(e) => {
                self.error(format!("device: {e}"));
                return self.fail();
            }
        };
        let info = bridge.storage_info(QUEUE_DEPTH as u16);
        info!(
            "storvsc: {} blocks of {} bytes: {} sDDF blocks, {} per command",
            cap.blocks, cap.block_size, info.capacity, info.block_size
        );
        self.responder.set_device(DeviceLimits::from(&info));
        c.bridge = Some(bridge);
        let mut st = self.state.borrow_mut();
        st.capacity = Some(cap);
        st.info = Some(info);
        st.phase = StorPhase::Serving;
    }

    /// Takes the client's requests: through the bridge while serving, `NoDevice` otherwise.
    fn take_requests(&mut self, ctx: &mut ClientCtx<'_>) {
        loop {
            let req = match self.held.take() {
                Some(r) => r,
                None => match self.responder.dequeue_request() {
                    Ok(Some(r)) => {
                        self.state.borrow_mut().requests_taken += 1;
                        r
                    }
                    Ok(None) => return,
                    Err(PeerError::BadRequest { id, fault }) => {
                        self.state.borrow_mut().requests_taken += 1;
                        let status = match fault {
                            RequestFault::UnknownCode(_) => BlkStatus::Unspecified,
                            _ => BlkStatus::InvalidParam,
                        };
                        info!("storvsc: request {id} refused: {fault:?}");
                        self.respond(BlkResponse {
                            status,
                            success_count: 0,
                            id,
                        });
                        continue;
                    }
                    Err(e) => {
                        self.error(format!("request queue: {e:?}"));
                        return;
                    }
                },
            };
            let Link::Open(c) = &mut self.link else {
                self.respond(no_device(req.id));
                continue;
            };
            let (Some(bridge), Some(requests)) = (c.bridge.as_mut(), c.requests.as_mut()) else {
                // Not ready yet: keep it for when the device is.
                self.held = Some(req);
                return;
            };
            let st = &self.state;
            let frames = st.borrow().frames.clone();
            let frame = |page: u64| frames.get(usize::try_from(page).ok()?).copied();
            let mut out = [0u8; PACKET_MAX];
            let ch = &mut c.ch;
            let mut send = |s: &Submitted, d: Option<&DataBuffer<'_>>, p: &[u8]| {
                st.borrow_mut().scsi_commands += 1;
                send_part(ch, ctx, s, d, p).is_ok()
            };
            match bridge.take(&req, requests, &frame, &mut out, &mut send) {
                Ok(()) => {}
                Err(Refusal::Respond(r)) => self.respond(r),
                Err(Refusal::Busy) => {
                    self.held = Some(req);
                    return;
                }
            }
        }
    }
}

fn no_device(id: u32) -> BlkResponse {
    BlkResponse {
        status: BlkStatus::NoDevice,
        success_count: 0,
        id,
    }
}

/// Sends one SCSI command: GPA-direct with the buffer's range when it moves data.
fn send_part(
    ch: &mut Channel<ClientRingMem>,
    ctx: &mut ClientCtx<'_>,
    s: &Submitted,
    data: Option<&DataBuffer<'_>>,
    packet: &[u8],
) -> Result<(), ClientError> {
    match data {
        Some(d) if s.gpa_direct => {
            let range = GpaRange {
                byte_count: d.len,
                byte_offset: d.offset,
                pfns: d.pfns,
            };
            ch.send_gpa_direct(ctx, s.transaction_id, true, &[range], packet)
        }
        _ => ch.send_packet(ctx, s.transaction_id, true, packet),
    }
}

impl ClientProgram for StorvscDriver {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        self.advance_link(ctx);
        if !self.receive(ctx) {
            self.gone(ctx);
        }
        // A failed channel stays until the device goes away (its status record says so).
        if let Link::Failed(c) = &self.link
            && c.ch.check_open(ctx).is_err()
        {
            self.gone(ctx);
        }
        self.take_requests(ctx);
        // A send that found the channel gone: the next receive says so; check now so that the
        // answers go out in this step.
        if let Link::Open(c) = &self.link
            && c.ch.check_open(ctx).is_err()
        {
            self.gone(ctx);
        }
        Flow::Continue
    }
}

/// An sDDF block client that uses only the queues and the data region (see the module's notes
/// for how it reaches the region), driven by the test between world steps.
#[derive(Debug)]
pub struct BlkTestClient {
    requester: BlkRequester<SharedMem>,
    storage: ClientId,
    next_id: u32,
}

impl BlkTestClient {
    /// The client of `queues`, whose data region is the buffer of the storage PD `storage`.
    #[must_use]
    pub fn new(queues: &SharedQueues, storage: ClientId) -> Self {
        Self {
            requester: queues.queue().requester(SharedQueues::region()),
            storage,
            next_id: 1,
        }
    }

    /// Queues `code` for `count` blocks at `block` with data at `offset` of the region; its id.
    ///
    /// # Errors
    /// The queue's refusal.
    pub fn enqueue(
        &mut self,
        code: sddf::BlkRequestCode,
        offset: u64,
        block: u64,
        count: u16,
    ) -> Result<u32, EnqueueError<RequestFault>> {
        let id = self.next_id;
        self.next_id += 1;
        self.requester.enqueue_request(&BlkRequest {
            code,
            io_or_offset: offset,
            block_number: block,
            count,
            id,
        })?;
        Ok(id)
    }

    /// Takes every response waiting.
    ///
    /// # Panics
    /// If the driver broke the response queue.
    pub fn responses(&mut self) -> Vec<BlkResponse> {
        let mut out = Vec::new();
        while let Some(r) = self
            .requester
            .dequeue_response()
            .expect("a sound response queue")
        {
            out.push(r);
        }
        out
    }

    /// Steps `w` until `n` responses came (at most `max_steps` steps); the responses.
    ///
    /// # Panics
    /// When they do not come.
    pub fn wait(&mut self, w: &mut World, n: usize, max_steps: u64) -> Vec<BlkResponse> {
        let mut got = self.responses();
        for _ in 0..max_steps {
            if got.len() >= n {
                break;
            }
            w.step();
            got.extend(self.responses());
        }
        assert!(
            got.len() >= n,
            "{} responses of {n} after {max_steps} steps",
            got.len()
        );
        got
    }

    /// Writes `data` at `offset` of the data region; false when the region is unreachable.
    pub fn write_data(&self, w: &mut World, buffer: &Buffer, offset: usize, data: &[u8]) -> bool {
        let page = buffer.window_page + offset / 4096;
        w.as_client(self.storage, |ctx| {
            vmbus_client::ClientEnv::window_write(ctx, page, offset % 4096, data)
        })
    }

    /// Reads `buf.len()` bytes at `offset` of the data region; false when unreachable.
    pub fn read_data(&self, w: &mut World, buffer: &Buffer, offset: usize, buf: &mut [u8]) -> bool {
        let page = buffer.window_page + offset / 4096;
        w.as_client(self.storage, |ctx| {
            vmbus_client::ClientEnv::window_read(ctx, page, offset % 4096, buf)
        })
    }
}
