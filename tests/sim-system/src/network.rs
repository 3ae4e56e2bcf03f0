//! The network driver of `system.xml` on the simulation: netvsc over a VMBus channel of the
//! `net` client ([`NetvscDriver`]), with sDDF network queues on its other side, and a test
//! client that uses only those queues ([`NetTestClient`]): ARP, ICMP echo and UDP echo against
//! the simulated host's loopback switch.
//!
//! The driver program, step by step (the shape of [`crate::services`]): waits for an offer of
//! the network class, opens it (rings of [`RING_PAGES`] + [`RING_PAGES`] pages, well inside the
//! 2 MiB window slot of the `net` client: 16 MiB window, 8 channels), allocates the receive
//! buffer ([`RECV_PAGES`]) and the send buffer ([`SEND_PAGES`]) with GPADLs of the channel
//! (`Channel::alloc_buffer`, which waits for the driver inside the step), gives their ids to
//! [`netvsc::Netvsc`], and then pumps: packets from the inbound ring (`recv_with_ext`) into
//! netvsc, netvsc's outbox onto the outbound ring, received frames into the sDDF RX queues
//! ([`NetBridge::deliver`]), the client's TX frames out ([`NetBridge::transmit`]). netvsc reaches
//! the receive and send buffers through the client's window (`ClientEnv::window_read` /
//! `window_write`), so a revoked page is a failed copy, never another page's bytes. When the
//! channel goes (rescind), netvsc forgets what was in flight, the link is reported down, a held
//! TX buffer goes back to the client, and the program waits for the device again.
//!
//! Where the simulation differs from the real system:
//! - the sDDF queues and data regions live in ordinary shared test memory ([`SharedRegion`]:
//!   `sddf::FlatMem` over an `Rc<[AtomicU64]>` held by both programs): the simulation has no
//!   shared-region mechanism for client-to-client memory, only the driver's windows;
//! - the sDDF notifications are not modelled: both programs poll their queues at every step;
//! - the test client runs on a PD of the description that has no device of its own (the tests
//!   pick one): the real sDDF client is a PD with no VMBus connection at all.

use std::cell::{Cell, Ref, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use log::{info, warn};
use netvsc::sddf_net::{BridgeStats, NetBridge};
use netvsc::vmpkt::RawPacket;
use netvsc::{BufferMem, Config, DeviceInfo, Event, Netvsc, Outbox, PacketKind};
use sddf::net::{NET_BUFFER_SIZE, NetBuffer, NetDataRegion, NetDrainer, NetFiller, NetQueue};
use sddf::{FlatMem, QueueMem};
use vmbus_client::{
    Buffer, Channel, ClientEnv, ClientError, PendingOpen, RelId, list_offers, offers_delivered,
    start_open,
};
use vmbus_driver::control::ClientError as Refusal;
use vmbus_driver::guid;

use crate::program::{ClientCtx, ClientProgram, Flow};
use crate::ringmem::ClientRingMem;

/// Pages of each ring, header page included.
pub const RING_PAGES: u16 = 32;
/// Pages of the receive buffer (256 KiB: the host uses at most 128 sub-allocations of 1728).
pub const RECV_PAGES: u32 = 64;
/// Pages of the send buffer (64 KiB: ten 6144-byte sections).
pub const SEND_PAGES: u32 = 16;
/// Descriptors per sDDF queue.
pub const QUEUE_CAP: u32 = 32;
/// sDDF buffers in each data region (RX and TX).
pub const DATA_BUFFERS: u64 = 32;
/// Steps before the driver program lists again after a failure.
pub const RETRY_STEPS: u64 = 8;
/// Packets taken from the inbound ring per step at most.
const PACKETS_PER_STEP: usize = 64;
/// Messages kept in a state's error list.
const KEPT: usize = 16;

fn keep(list: &mut Vec<String>, msg: String) {
    if list.len() == KEPT {
        list.remove(0);
    }
    list.push(msg);
}

/// A region of shared test memory (an sDDF queue or data region), held by both programs.
#[derive(Debug, Clone)]
pub struct SharedRegion(Rc<[AtomicU64]>);

impl SharedRegion {
    /// A zeroed region of `bytes` bytes (rounded up to whole words).
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

impl QueueMem for SharedRegion {
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

impl BufferMem for SharedRegion {
    fn size(&self) -> usize {
        QueueMem::size(self)
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        QueueMem::read(self, offset, out);
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        QueueMem::write(self, offset, data);
    }
}

/// The sDDF connection between the network driver and its client: an RX pair, a TX pair and
/// their data regions ([`DATA_BUFFERS`] buffers of `NET_BUFFER_SIZE` each).
#[derive(Debug, Clone)]
pub struct NetQueues {
    /// RX free queue (client → driver).
    pub rx_free: SharedRegion,
    /// RX active queue (driver → client).
    pub rx_active: SharedRegion,
    /// TX free queue (driver → client).
    pub tx_free: SharedRegion,
    /// TX active queue (client → driver).
    pub tx_active: SharedRegion,
    /// RX data region.
    pub rx_data: SharedRegion,
    /// TX data region.
    pub tx_data: SharedRegion,
}

impl Default for NetQueues {
    fn default() -> Self {
        Self::new()
    }
}

impl NetQueues {
    /// Fresh, empty queues and regions.
    #[must_use]
    pub fn new() -> Self {
        let q = || SharedRegion::new(sddf::net::layout::region_size(QUEUE_CAP));
        let d = || SharedRegion::new((DATA_BUFFERS * u64::from(NET_BUFFER_SIZE)) as usize);
        Self {
            rx_free: q(),
            rx_active: q(),
            tx_free: q(),
            tx_active: q(),
            rx_data: d(),
            tx_data: d(),
        }
    }

    /// Each data region, as offsets.
    #[must_use]
    pub const fn region() -> NetDataRegion {
        NetDataRegion::offsets(DATA_BUFFERS * NET_BUFFER_SIZE as u64)
    }

    fn pair(free: &SharedRegion, active: &SharedRegion) -> NetQueue<SharedRegion> {
        NetQueue::new(free.clone(), active.clone(), QUEUE_CAP).expect("queue regions fit")
    }

    /// The driver's ends: RX filler, TX drainer.
    #[must_use]
    pub fn driver_ends(&self) -> (NetFiller<SharedRegion>, NetDrainer<SharedRegion>) {
        (
            Self::pair(&self.rx_free, &self.rx_active).filler(Self::region()),
            Self::pair(&self.tx_free, &self.tx_active).drainer(Self::region()),
        )
    }

    /// The client's ends: RX drainer, TX filler.
    #[must_use]
    pub fn client_ends(&self) -> (NetDrainer<SharedRegion>, NetFiller<SharedRegion>) {
        (
            Self::pair(&self.rx_free, &self.rx_active).drainer(Self::region()),
            Self::pair(&self.tx_free, &self.tx_active).filler(Self::region()),
        )
    }
}

/// What the driver program shows.
#[derive(Debug, Clone, Default)]
pub struct NetvscState {
    /// Channels opened.
    pub opens: u64,
    /// Opens that failed.
    pub open_failures: u64,
    /// Channels that went away under the program (rescind).
    pub gone: u64,
    /// The relid open now.
    pub relid: Option<RelId>,
    /// The receive and send buffers of the last channel (kept after it went).
    pub buffers: Option<(Buffer, Buffer)>,
    /// What configuration found, once ready (cleared when the channel goes).
    pub info: Option<DeviceInfo>,
    /// Times the device became ready.
    pub readies: u64,
    /// Whether the link is up now.
    pub link_up: bool,
    /// Link-down reports (indications and rescinds).
    pub link_downs: u64,
    /// Link-up reports.
    pub link_ups: u64,
    /// Frames received from the host.
    pub frames_in: u64,
    /// Frame sends the host completed.
    pub tx_done: u64,
    /// Packets netvsc refused as the host's protocol violations (the receive was completed
    /// with a failure status, the channel kept).
    pub hostile: u64,
    /// Copies into or out of the receive or send buffer that the window refused.
    pub window_faults: u64,
    /// The sDDF bridge's counters.
    pub bridge: BridgeStats,
    /// The last errors, newest last.
    pub errors: Vec<String>,
}

/// A view of a [`NetvscDriver`]'s state that stays with the caller.
#[derive(Debug, Clone)]
pub struct NetvscHandle(Rc<RefCell<NetvscState>>);

impl NetvscHandle {
    /// The state now.
    #[must_use]
    pub fn state(&self) -> Ref<'_, NetvscState> {
        self.0.borrow()
    }

    /// Whether the device is configured and its link up.
    #[must_use]
    pub fn ready(&self) -> bool {
        let s = self.0.borrow();
        s.info.is_some() && s.link_up
    }
}

/// An open channel with its buffers and device.
#[derive(Debug)]
struct Open {
    ch: Channel<ClientRingMem>,
    recv: Buffer,
    send: Buffer,
    dev: Netvsc,
    out: Outbox,
}

#[derive(Debug)]
enum Conn {
    Waiting { listed: Option<u32> },
    Opening(PendingOpen),
    Open(Box<Open>),
}

/// One of the two netvsc buffers, reached through the client's window.
struct Window<'a, 'c, 'w> {
    ctx: &'a RefCell<&'c mut ClientCtx<'w>>,
    page: usize,
    len: usize,
    faults: &'a Cell<u64>,
}

impl BufferMem for Window<'_, '_, '_> {
    fn size(&self) -> usize {
        self.len
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        if !self.ctx.borrow_mut().window_read(self.page, offset, out) {
            out.fill(0);
            self.faults.set(self.faults.get() + 1);
        }
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        if !self.ctx.borrow_mut().window_write(self.page, offset, data) {
            self.faults.set(self.faults.get() + 1);
        }
    }
}

/// An event of netvsc, owned (frames copied out).
enum Ev {
    Ready(DeviceInfo),
    Frame(Vec<u8>),
    LinkUp,
    LinkDown,
    TxDone,
}

/// The netvsc driver program (see the module documentation).
#[derive(Debug)]
pub struct NetvscDriver {
    conn: Conn,
    retry_at: u64,
    rx: NetFiller<SharedRegion>,
    tx: NetDrainer<SharedRegion>,
    rx_data: SharedRegion,
    tx_data: SharedRegion,
    bridge: NetBridge,
    state: Rc<RefCell<NetvscState>>,
    buf: Vec<u8>,
    ext: Vec<u8>,
    scratch: Vec<u8>,
}

impl NetvscDriver {
    /// A driver program serving `queues` (its RX filler and TX drainer ends).
    #[must_use]
    pub fn new(queues: &NetQueues) -> Self {
        let (rx, tx) = queues.driver_ends();
        Self {
            conn: Conn::Waiting { listed: None },
            retry_at: 0,
            rx,
            tx,
            rx_data: queues.rx_data.clone(),
            tx_data: queues.tx_data.clone(),
            bridge: NetBridge::new(),
            state: Rc::default(),
            buf: vec![0; 4096],
            ext: vec![0; 1024],
            scratch: vec![0; 2048],
        }
    }

    /// The handle.
    #[must_use]
    pub fn handle(&self) -> NetvscHandle {
        NetvscHandle(self.state.clone())
    }

    fn error(&self, msg: String) {
        warn!("netvsc: {msg}");
        keep(&mut self.state.borrow_mut().errors, msg);
    }

    fn wait_again(&mut self, ctx: &ClientCtx<'_>, retry: bool) {
        self.conn = Conn::Waiting { listed: None };
        self.retry_at = if retry { ctx.now() + RETRY_STEPS } else { 0 };
        self.state.borrow_mut().relid = None;
    }

    fn list_and_open(&mut self, ctx: &mut ClientCtx<'_>) {
        let offers = match list_offers(ctx, Some(guid::NETWORK)) {
            Ok(o) => o,
            Err(ClientError::Refused(Refusal::NotConnected)) => return,
            Err(e) => {
                self.error(format!("listing offers: {e}"));
                return self.wait_again(ctx, true);
            }
        };
        let Some(offer) = offers.iter().find(|o| o.sub_channel_index == 0) else {
            return;
        };
        match start_open(ctx, offer.relid, RING_PAGES, RING_PAGES) {
            Ok(p) => self.conn = Conn::Opening(p),
            Err(e) => {
                self.state.borrow_mut().open_failures += 1;
                info!("netvsc: open of {}: {e}", offer.relid);
                self.wait_again(ctx, true);
            }
        }
    }

    fn poll_open(&mut self, ctx: &mut ClientCtx<'_>) {
        let Conn::Opening(p) = &self.conn else {
            return;
        };
        match p.poll(ctx) {
            Ok(Some(ch)) => self.opened(ctx, ch),
            Ok(None) => {}
            Err(e) => {
                self.state.borrow_mut().open_failures += 1;
                info!("netvsc: open: {e}");
                self.wait_again(ctx, true);
            }
        }
    }

    /// The channel opened: buffers, then NVSP start-up.
    fn opened(&mut self, ctx: &mut ClientCtx<'_>, ch: Channel<ClientRingMem>) {
        info!("netvsc: opened {}", ch.relid());
        self.state.borrow_mut().opens += 1;
        let bufs = ch
            .alloc_buffer(ctx, RECV_PAGES, true)
            .and_then(|r| Ok((r, ch.alloc_buffer(ctx, SEND_PAGES, true)?)));
        let (recv, send) = match bufs {
            Ok((r, s)) if r.gpadl.is_some() && s.gpadl.is_some() => (r, s),
            Ok(_) | Err(_) => {
                self.error(format!("buffers: {bufs:?}"));
                let _ = ch.close(ctx);
                self.state.borrow_mut().open_failures += 1;
                return self.wait_again(ctx, true);
            }
        };
        let gpadl = |b: &Buffer| b.gpadl.map_or(0, |g| g.0);
        let mut dev = Netvsc::new(Config {
            recv_gpadl: gpadl(&recv),
            recv_len: recv.len() as u32,
            send_gpadl: gpadl(&send),
            send_len: send.len() as u32,
            mtu: 1500,
            packet_filter: Config::DEFAULT_FILTER,
        });
        let mut out = Outbox::new();
        if let Err(e) = dev.start(&mut out) {
            self.error(format!("start: {e}"));
        }
        {
            let mut s = self.state.borrow_mut();
            s.relid = Some(ch.relid());
            s.buffers = Some((recv, send));
        }
        self.conn = Conn::Open(Box::new(Open {
            ch,
            recv,
            send,
            dev,
            out,
        }));
        if let Err(e) = self.flush(ctx) {
            self.on_error(ctx, e);
        }
    }

    /// Sends the outbox.
    fn flush(&mut self, ctx: &mut ClientCtx<'_>) -> Result<(), ClientError> {
        let Conn::Open(o) = &mut self.conn else {
            return Ok(());
        };
        let mut r = Ok(());
        for p in o.out.packets() {
            let sent = match p.kind {
                PacketKind::InBand => {
                    o.ch.send_packet(ctx, p.transaction_id, p.completion_requested, p.payload())
                }
                PacketKind::Completion => o.ch.send_completion(ctx, p.transaction_id, p.payload()),
                // Frames go through send sections only (sDDF buffers fit one).
                PacketKind::GpaDirect => Ok(()),
            };
            if let Err(e) = sent {
                r = Err(e);
                break;
            }
        }
        o.out.clear();
        r
    }

    fn on_error(&mut self, ctx: &mut ClientCtx<'_>, e: ClientError) {
        if e == ClientError::ChannelGone {
            self.gone(ctx);
        } else {
            self.error(format!("channel: {e}"));
        }
    }

    /// The channel went away: netvsc forgets what was in flight, the link is down.
    fn gone(&mut self, ctx: &ClientCtx<'_>) {
        if let Conn::Open(o) = &mut self.conn {
            let mut down = false;
            let report = o.dev.rescind(|e| down |= e == Event::LinkDown);
            info!("netvsc: the channel is gone ({report:?}); waiting for the device again");
            let mut s = self.state.borrow_mut();
            if down || s.link_up {
                s.link_downs += 1;
            }
            s.link_up = false;
            s.info = None;
            s.gone += 1;
        }
        self.bridge.rescind(&mut self.tx);
        self.state.borrow_mut().bridge = self.bridge.stats;
        self.wait_again(ctx, false);
    }

    /// Takes one packet from the inbound ring into netvsc. Whether one was there.
    fn receive_one(&mut self, ctx: &mut ClientCtx<'_>) -> Result<bool, ClientError> {
        let Conn::Open(o) = &mut self.conn else {
            return Ok(false);
        };
        let Some(r) = o.ch.recv_with_ext(ctx, &mut self.buf, &mut self.ext)? else {
            return Ok(false);
        };
        let p = RawPacket {
            packet_type: r.packet_type.0,
            flags: u16::from(r.completion_requested),
            transaction_id: r.transaction_id,
            ext: &self.ext[..r.ext_len],
            payload: &self.buf[..r.len],
        };
        let faults = Cell::new(0);
        let mut evs = Vec::new();
        let result = {
            let cell = RefCell::new(&mut *ctx);
            let recv = Window {
                ctx: &cell,
                page: o.recv.window_page,
                len: o.recv.len(),
                faults: &faults,
            };
            let mut send = Window {
                ctx: &cell,
                page: o.send.window_page,
                len: o.send.len(),
                faults: &faults,
            };
            o.dev
                .on_parts(p, &recv, &mut send, &mut self.scratch, &mut o.out, |e| {
                    evs.push(match e {
                        Event::Ready(i) => Ev::Ready(i),
                        Event::Frame(f) => Ev::Frame(f.to_vec()),
                        Event::LinkUp => Ev::LinkUp,
                        Event::LinkDown => Ev::LinkDown,
                        Event::TxDone(_) => Ev::TxDone,
                        Event::Subchannels(_) | Event::FilterSet(_) => return,
                    });
                })
        };
        {
            let mut s = self.state.borrow_mut();
            s.window_faults += faults.get();
            if let Err(e) = result {
                if e.is_hostile() {
                    s.hostile += 1;
                }
                drop(s);
                self.error(format!("packet refused: {e}"));
            }
        }
        for e in evs {
            self.on_event(e);
        }
        self.flush(ctx)?;
        Ok(true)
    }

    fn on_event(&mut self, e: Ev) {
        let mut s = self.state.borrow_mut();
        match e {
            Ev::Ready(i) => {
                info!("netvsc: ready: {i:?}");
                s.info = Some(i);
                s.link_up = i.link_up;
                s.readies += 1;
            }
            Ev::LinkUp => {
                s.link_up = true;
                s.link_ups += 1;
            }
            Ev::LinkDown => {
                s.link_up = false;
                s.link_downs += 1;
            }
            Ev::TxDone => s.tx_done += 1,
            Ev::Frame(f) => {
                s.frames_in += 1;
                drop(s);
                if let Err(e) = self.bridge.deliver(&mut self.rx, &mut self.rx_data, &f) {
                    self.error(format!("client RX queues: {e}"));
                }
            }
        }
    }

    /// Sends the client's queued frames.
    fn transmit(&mut self, ctx: &mut ClientCtx<'_>) -> Result<(), ClientError> {
        let Conn::Open(o) = &mut self.conn else {
            return Ok(());
        };
        if self.state.borrow().info.is_none() {
            return Ok(());
        }
        let faults = Cell::new(0);
        let r = {
            let cell = RefCell::new(&mut *ctx);
            let mut send = Window {
                ctx: &cell,
                page: o.send.window_page,
                len: o.send.len(),
                faults: &faults,
            };
            self.bridge.transmit(
                &mut self.tx,
                &self.tx_data,
                &mut o.dev,
                &mut send,
                &mut o.out,
            )
        };
        self.state.borrow_mut().window_faults += faults.get();
        if let Err(e) = r {
            self.error(format!("client TX queues: {e}"));
        }
        self.flush(ctx)
    }

    fn pump(&mut self, ctx: &mut ClientCtx<'_>) {
        for _ in 0..PACKETS_PER_STEP {
            match self.receive_one(ctx) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return self.on_error(ctx, e),
            }
        }
        if let Err(e) = self.transmit(ctx) {
            return self.on_error(ctx, e);
        }
        // Completions freed sections: frames held for a busy device go now.
        for _ in 0..PACKETS_PER_STEP {
            match self.receive_one(ctx) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return self.on_error(ctx, e),
            }
        }
        if let Err(e) = self.transmit(ctx) {
            self.on_error(ctx, e);
        }
    }
}

impl ClientProgram for NetvscDriver {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        match &self.conn {
            Conn::Waiting { listed } => {
                let seen = offers_delivered(ctx);
                if *listed != Some(seen) && ctx.now() >= self.retry_at {
                    self.conn = Conn::Waiting { listed: Some(seen) };
                    self.list_and_open(ctx);
                    self.poll_open(ctx);
                }
            }
            Conn::Opening(_) => self.poll_open(ctx),
            Conn::Open(_) => self.pump(ctx),
        }
        self.state.borrow_mut().bridge = self.bridge.stats;
        Flow::Continue
    }
}

// ---- the test client: sDDF queues only ----

// The test client's frames and addresses (shared with the image's `net_client` PD).
pub use sddf::frames::{
    GUEST_IP, ICMP_ID, MAX_FRAME, UDP_SPORT, arp_request, echo_request, inet_checksum,
    is_arp_reply, is_echo_reply, is_udp_echo, udp_datagram,
};
/// Steps the test client waits for an answer before it sends the next request.
pub const ANSWER_STEPS: u64 = 40;

/// What the test client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// An ARP request for the switch's address.
    Arp,
    /// An ICMP echo request with this sequence number.
    Ping(u16),
    /// A UDP datagram to the echo port, its payload naming this number.
    Udp(u16),
}

/// What the test client saw.
#[derive(Debug, Clone, Default)]
pub struct NetTestState {
    /// Requests sent (frames queued on TX).
    pub sent: u64,
    /// ARP replies naming the switch's MAC for its address.
    pub arp_replies: u64,
    /// Echo replies with the request's id, sequence and payload.
    pub echo_replies: u64,
    /// UDP datagrams echoed with the request's payload.
    pub udp_echoes: u64,
    /// Frames received that answer nothing asked (or answer it wrongly).
    pub unexpected: u64,
    /// Requests that got no answer within [`ANSWER_STEPS`].
    pub unanswered: u64,
    /// Frames received.
    pub frames: u64,
    /// Queue errors.
    pub errors: Vec<String>,
}

/// A view of a [`NetTestClient`]'s state.
#[derive(Debug, Clone)]
pub struct NetTestHandle(Rc<RefCell<NetTestState>>);

impl NetTestHandle {
    /// The state now.
    #[must_use]
    pub fn state(&self) -> Ref<'_, NetTestState> {
        self.0.borrow()
    }
}

/// A network client that uses only the sDDF queues: it sends `script`'s requests one at a time
/// (the next when the last was answered or [`ANSWER_STEPS`] passed), over and over when
/// `repeat`, and checks every answer.
#[derive(Debug)]
pub struct NetTestClient {
    rx: NetDrainer<SharedRegion>,
    tx: NetFiller<SharedRegion>,
    rx_data: SharedRegion,
    tx_data: SharedRegion,
    /// TX buffers the client holds (not on a queue).
    tx_owned: Vec<NetBuffer>,
    started: bool,
    script: Vec<Request>,
    repeat: bool,
    next: usize,
    rounds: u16,
    waiting: Option<(Request, u64)>,
    state: Rc<RefCell<NetTestState>>,
}

impl NetTestClient {
    /// A client on `queues`' client ends.
    #[must_use]
    pub fn new(queues: &NetQueues, script: Vec<Request>, repeat: bool) -> Self {
        let (rx, tx) = queues.client_ends();
        let region = NetQueues::region();
        Self {
            rx,
            tx,
            rx_data: queues.rx_data.clone(),
            tx_data: queues.tx_data.clone(),
            tx_owned: (0..region.buffers())
                .filter_map(|i| region.buffer(i))
                .collect(),
            started: false,
            script,
            repeat,
            next: 0,
            rounds: 0,
            waiting: None,
            state: Rc::default(),
        }
    }

    /// The handle.
    #[must_use]
    pub fn handle(&self) -> NetTestHandle {
        NetTestHandle(self.state.clone())
    }

    fn error(&self, msg: String) {
        keep(&mut self.state.borrow_mut().errors, msg);
    }

    fn send(&mut self, frame: &[u8]) -> bool {
        loop {
            match self.tx.free.dequeue() {
                Ok(Some(b)) => self.tx_owned.push(b),
                Ok(None) => break,
                Err(e) => {
                    self.error(format!("TX free: {e}"));
                    break;
                }
            }
        }
        let Some(b) = self.tx_owned.pop() else {
            return false;
        };
        QueueMem::write(&self.tx_data, b.io_or_offset as usize, frame);
        let filled = NetBuffer {
            len: frame.len() as u16,
            ..b
        };
        match self.tx.active.enqueue(filled) {
            Ok(()) => {
                self.state.borrow_mut().sent += 1;
                true
            }
            Err(e) => {
                self.error(format!("TX active: {e:?}"));
                self.tx_owned.push(b);
                false
            }
        }
    }

    fn receive(&mut self) {
        loop {
            let b = match self.rx.active.dequeue() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => return self.error(format!("RX active: {e}")),
            };
            let mut f = vec![0u8; usize::from(b.len)];
            QueueMem::read(&self.rx_data, b.io_or_offset as usize, &mut f);
            if let Err(e) = self.rx.free.enqueue(NetBuffer { len: 0, ..b }) {
                self.error(format!("RX free: {e:?}"));
            }
            self.check(&f);
        }
    }

    fn check(&mut self, f: &[u8]) {
        let mut s = self.state.borrow_mut();
        s.frames += 1;
        let answered = match self.waiting.map(|w| w.0) {
            Some(Request::Arp) if is_arp_reply(f) => {
                s.arp_replies += 1;
                true
            }
            Some(Request::Ping(seq)) if is_echo_reply(f, seq) => {
                s.echo_replies += 1;
                true
            }
            Some(Request::Udp(n)) if is_udp_echo(f, n) => {
                s.udp_echoes += 1;
                true
            }
            _ => {
                s.unexpected += 1;
                false
            }
        };
        if answered {
            self.waiting = None;
        }
    }
}

impl ClientProgram for NetTestClient {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        if !self.started {
            // sDDF's net_buffers_init: every RX buffer goes on the free queue.
            if let Err(e) = self.rx.fill_free(NetQueues::region()) {
                self.error(format!("RX fill: {e:?}"));
            }
            self.started = true;
        }
        self.receive();
        if let Some((_, at)) = self.waiting {
            if ctx.now() < at + ANSWER_STEPS {
                return Flow::Continue;
            }
            self.state.borrow_mut().unanswered += 1;
            self.waiting = None;
        }
        if self.next == self.script.len() {
            if !self.repeat || self.script.is_empty() {
                return Flow::Continue;
            }
            self.next = 0;
            self.rounds = self.rounds.wrapping_add(1);
        }
        let r = match self.script[self.next] {
            Request::Ping(n) => Request::Ping(n.wrapping_add(self.rounds.wrapping_mul(256))),
            Request::Udp(n) => Request::Udp(n.wrapping_add(self.rounds.wrapping_mul(256))),
            Request::Arp => Request::Arp,
        };
        let mut frame = [0u8; MAX_FRAME];
        let len = match r {
            Request::Arp => arp_request(&mut frame),
            Request::Ping(seq) => echo_request(seq, &mut frame),
            Request::Udp(n) => udp_datagram(n, &mut frame),
        };
        if self.send(&frame[..len]) {
            self.next += 1;
            self.waiting = Some((r, ctx.now()));
        }
        Flow::Continue
    }
}

// ---- frames ----

#[cfg(test)]
mod tests {
    /// The frames module's addresses are the host switch's defaults.
    #[test]
    fn frames_speak_to_the_default_switch() {
        let o = hv_host::NetOptions::DEFAULT;
        assert_eq!(sddf::frames::GUEST_MAC, o.mac);
        assert_eq!(sddf::frames::SWITCH_MAC, o.switch_mac);
        assert_eq!(sddf::frames::SWITCH_IP, o.host_ip);
        assert_eq!(sddf::frames::ECHO_PORT, o.udp_echo_port);
    }
}
