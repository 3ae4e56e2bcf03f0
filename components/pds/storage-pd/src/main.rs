//! The storage PD of `system.xml`: storvsc as an sDDF block driver. On one side the SCSI
//! controller's VMBus channel (through the VMBus driver, `client_env`), on the other the sDDF
//! block connection to `blk_client`: the storage-information region, the request and response
//! queues and the data region the requests name by offset (`pd_support::abi::sddf`'s regions).
//! The same driver runs in the simulation (`tests/sim-system/src/storage.rs`'s `StorvscDriver`).
//!
//! What it does:
//! - waits for the SCSI (or IDE) controller's offer: it sleeps on its notification and lists
//!   the offers only when the driver's offers-delivered counter moved (the hot-add
//!   notification); opens it with rings of [`RING_PAGES`] + [`RING_PAGES`] pages and runs the
//!   vstor initialisation (`storvsc::Init`: begin, versions, properties, end);
//! - allocates the channel's data buffer (as many pages as the sDDF data region, no GPADL: the
//!   host is told its frames in every GPA-direct packet) and fetches its frame numbers, sends
//!   INQUIRY (a direct-access device is required) and READ CAPACITY(16) into the buffer's
//!   first page, then publishes the storage information (`ready`, capacity in 4 KiB blocks,
//!   optimal transfer, queue depth) and notifies the client;
//! - serves the request queue through `storvsc::blk::BlkBridge`: READ and WRITE become READ(16)
//!   and WRITE(16) over GPA-direct ranges naming the buffer's frames (split into several
//!   commands above the host's largest transfer), FLUSH becomes SYNCHRONIZE CACHE(16), BARRIER
//!   completes at once; each completed request becomes one response, and the client is
//!   notified after every pass that queued responses (sDDF's block queues have no signal flags:
//!   the serving side notifies after each batch);
//! - a request the sDDF checks refuse (unknown code, outside the data region, past the device)
//!   is answered with `InvalidParam` (`Unspecified` for an unknown code); nothing the host or
//!   the client writes can make it panic;
//! - when the channel goes away (the host's rescind, or the orderly stop closing it) it
//!   withdraws the storage information (`ready` = 0) first, answers every request in flight
//!   and every later one with `NoDevice` (the status the simulation uses for no device),
//!   notifies the client, waits for the device to be offered again, reopens and republishes.
//!
//! # The bounce through the channel's buffer
//!
//! The sDDF data region `blk_data` is a region the system description shares between this PD
//! and the client, while the VMBus data buffer lives in this PD's window: the driver maps it
//! only there (and revokes it on a rescind), so only this PD, never the client, can reach the
//! pages the host reads and writes. The buffer has the data region's size, and sDDF offset X
//! is buffer offset X: the bridge's mapping of offsets to the buffer's frames is unchanged.
//! Before a WRITE is sent its bytes are copied from the data region into the buffer
//! (`Channel::write_buffer`); when every part of a READ has completed, the blocks that
//! succeeded are copied from the buffer into the data region (`Channel::read_buffer`) before
//! the response is queued. Both copies check the channel's status record first and run
//! without a system call in between: the driver revokes the buffer only while it runs, and
//! nothing of higher priority can become runnable while this PD copies (no interrupt reaches
//! these PDs; every wake-up comes from a running PD's system call).
//!
//! # Waiting
//!
//! The PD runs one loop inside `init`: it serves everything there is to serve (the channel,
//! the request queue) until a pass finds nothing to do, then sleeps on its notification. It
//! does so on every wake-up whatever its badge, because the library's own waits
//! (`alloc_buffer`) share the PD's one notification endpoint and may take a notification the
//! client or the driver meant for the loop.
#![no_std]
#![no_main]

use client_env::{Sel4Env, env_of};
use pd_runtime::config::PdConfig;
use pd_runtime::{Channel as PdChannel, Handler, notify, println};
use pd_support::abi::sddf as regions;
use pd_support::region::SharedRegion;
use sddf::{
    BLK_TRANSFER_SIZE, BlkDataRegion, BlkQueue, BlkRequest, BlkRequestCode, BlkResponder,
    BlkResponse, BlkStatus, DeviceLimits, PeerError, QueueMem, RequestFault, StorageInfoPage,
};
use storvsc::blk::{BlkBridge, MAX_PENDING, Refusal};
use storvsc::msg::{IDE_CLASS, PACKET_MAX, SCSI_CLASS};
use storvsc::{
    Capacity, Command, DataBuffer, Done, INIT_TRANSACTION_ID, Incoming, Init, InitStep, IoError,
    Lun, Negotiated, Requests, Submitted, queue_depth_for,
};
use vmbus_client::{Buffer, ClientEnv, ClientError, PendingOpen, list_offers, offers_delivered};
use vmbus_driver::control::ClientError as Refused;
use vmbus_driver::ring::GpaRange;

// `CONFIGS`: this PD's window, control page, driver channel, device classes, sDDF regions and
// channels, generated from the system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The sDDF client's PD (the peer of this PD's sDDF notification channel).
const CLIENT_PD: &str = "blk_client";
/// Pages of each ring, header page included (16 KiB; the storage client's window slot is
/// 1 MiB: 8 MiB window, 8 channels).
const RING_PAGES: u16 = 4;
/// Most pages of the data buffer (and so of the sDDF data region this PD serves).
const MAX_DATA_PAGES: usize = 256;
/// Most SCSI requests outstanding (less when the outbound ring holds fewer largest requests).
const MAX_QUEUE_DEPTH: usize = 32;
/// Bytes of standard INQUIRY data asked for.
const INQUIRY_LEN: u16 = 36;
/// Bytes each piece of a bounce copy moves through the stack.
const COPY_CHUNK: usize = 1024;
/// Host errors logged one by one; after that only counted.
const LOGGED_HOST_ERRORS: u64 = 8;

/// The channel type of the client environment.
type Ch = vmbus_client::Channel<<Sel4Env as ClientEnv>::Mem>;

/// Where an open channel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The vstor initialisation runs.
    Init,
    /// INQUIRY sent with this transaction id.
    Inquiry(u64),
    /// READ CAPACITY(16) sent with this transaction id.
    Capacity(u64),
    /// Serving the sDDF queues.
    Serving,
    /// Given up on this channel (initialisation or probe failed): requests are answered with
    /// `NoDevice` until the device goes away.
    Failed,
}

/// One open channel and what this PD built on it.
#[derive(Debug)]
struct Conn {
    ch: Ch,
    init: Init,
    stage: Stage,
    negotiated: Option<Negotiated>,
    requests: Option<Requests>,
    bridge: Option<BlkBridge>,
    buffer: Option<Buffer>,
    /// The buffer's frame numbers (its first `data_pages`).
    frames: [u64; MAX_DATA_PAGES],
}

/// One for the whole run (no allocator: the open channel's state is inline).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Link {
    /// No device: waiting for an offer.
    Waiting,
    /// The driver is opening the channel.
    Opening(PendingOpen),
    /// Open.
    Open(Conn),
}

/// The driver program.
struct Storage {
    env: Sel4Env,
    info: StorageInfoPage<SharedRegion>,
    /// The response queue.
    out: Responses,
    data: SharedRegion,
    /// Pages of the data region and of the channel's buffer.
    data_pages: usize,
    client: PdChannel,
    link: Link,
    /// The offers-delivered count when the offers were last listed.
    listed: Option<u32>,
    /// An open failed: list again at the next wake-up.
    retry: bool,
    /// A request taken while the bridge was busy, sent first at the next pass.
    held: Option<BlkRequest>,
    /// READs in flight: (client id, data-region offset), copied out when they complete.
    reads: [Option<(u32, u64)>; MAX_PENDING],
    /// Something happened in this pass: run another before sleeping.
    progress: bool,
    host_errors: u64,
    queue_broken: bool,
}

fn main_loop(config: &'static PdConfig) -> ! {
    let mut s = Storage::new(config);
    loop {
        if s.retry {
            s.retry = false;
            s.listed = None;
        }
        loop {
            s.progress = false;
            s.pass();
            if s.out.notify {
                s.out.notify = false;
                notify(s.client);
            }
            if !s.progress {
                break;
            }
        }
        s.env.wait_notification_now();
    }
}

impl Storage {
    fn new(config: &'static PdConfig) -> Storage {
        let region = |name: &str| match SharedRegion::of(config, name) {
            Some(r) => r,
            None => panic!("{}: no writable region {name} mapped", config.name),
        };
        let data = region(regions::BLK_DATA);
        let data_pages = QueueMem::size(&data) / 4096;
        if data_pages == 0 || data_pages > MAX_DATA_PAGES {
            panic!("storage: a data region of {data_pages} pages");
        }
        let Ok(info) = StorageInfoPage::new(region(regions::BLK_STORAGE_INFO)) else {
            panic!("storage: storage information region too small");
        };
        info.withdraw();
        let Ok(queue) = BlkQueue::new(
            region(regions::BLK_REQUEST),
            region(regions::BLK_RESPONSE),
            regions::BLK_QUEUE_CAPACITY,
        ) else {
            panic!("storage: block queue regions too small for their capacity");
        };
        let Some(client) = config.channels.iter().find(|c| c.peer == CLIENT_PD) else {
            panic!("storage: no channel to {CLIENT_PD}");
        };
        let size = (data_pages * 4096) as u64;
        Storage {
            env: env_of(config),
            info,
            out: Responses {
                q: queue.responder(BlkDataRegion::offsets(size)),
                notify: false,
                no_device: 0,
            },
            data,
            data_pages,
            client: PdChannel(client.id),
            link: Link::Waiting,
            listed: None,
            retry: false,
            held: None,
            reads: [None; MAX_PENDING],
            progress: false,
            host_errors: 0,
            queue_broken: false,
        }
    }

    /// One pass over everything: the link, the channel, the request queue.
    fn pass(&mut self) {
        self.advance_link();
        if !self.receive() {
            self.gone();
        }
        self.take_requests();
        // A send that found the channel gone: the status record says so now; answer at once.
        if let Link::Open(c) = &self.link
            && c.ch.check_open(&mut self.env).is_err()
        {
            self.gone();
        }
    }

    fn advance_link(&mut self) {
        match &self.link {
            Link::Waiting => {
                let seen = offers_delivered(&mut self.env);
                if self.listed == Some(seen) {
                    return;
                }
                self.listed = Some(seen);
                let offers = match list_offers(&mut self.env, None) {
                    Ok(o) => o,
                    Err(ClientError::Refused(Refused::NotConnected)) => return,
                    Err(e) => return println!("storage: listing offers: {e}"),
                };
                let primary = |class| {
                    offers
                        .iter()
                        .find(|o| o.class == class && o.sub_channel_index == 0)
                };
                let Some(offer) = primary(SCSI_CLASS).or_else(|| primary(IDE_CLASS)) else {
                    return;
                };
                match vmbus_client::start_open(&mut self.env, offer.relid, RING_PAGES, RING_PAGES) {
                    Ok(p) => {
                        println!("storage: opening {}", offer.relid);
                        self.link = Link::Opening(p);
                        self.progress = true;
                    }
                    Err(e) => {
                        // E.g. the slot of the old channel is still being torn down.
                        println!(
                            "storage: open of {}: {e}; again at the next wake-up",
                            offer.relid
                        );
                        self.retry = true;
                    }
                }
            }
            Link::Opening(p) => match p.poll(&mut self.env) {
                Ok(None) => {}
                Ok(Some(mut ch)) => {
                    let mut out = [0u8; PACKET_MAX];
                    let (init, n) = Init::begin(&mut out);
                    if let Err(e) =
                        ch.send_packet(&mut self.env, INIT_TRANSACTION_ID, true, &out[..n])
                    {
                        println!("storage: BEGIN_INITIALIZATION: {e}");
                    }
                    self.link = Link::Open(Conn {
                        ch,
                        init,
                        stage: Stage::Init,
                        negotiated: None,
                        requests: None,
                        bridge: None,
                        buffer: None,
                        frames: [0; MAX_DATA_PAGES],
                    });
                    self.progress = true;
                }
                Err(e) => {
                    println!("storage: open failed: {e}; waiting for the device");
                    self.link = Link::Waiting;
                    self.retry = true;
                }
            },
            Link::Open(_) => {}
        }
    }

    /// Takes what the host sent; false when the channel is gone.
    fn receive(&mut self) -> bool {
        let mut buf = [0u8; PACKET_MAX + 64];
        loop {
            let Link::Open(c) = &mut self.link else {
                return true;
            };
            if c.stage == Stage::Failed {
                // Nothing more is read from a given-up channel (the pass's status check sees
                // it go).
                return true;
            }
            let rx = match c.ch.recv(&mut self.env, &mut buf) {
                Ok(Some(rx)) => rx,
                Ok(None) => return true,
                Err(ClientError::ChannelGone) => return false,
                Err(e) => {
                    // A corrupt ring: the host broke the channel. Stop using it; the device
                    // comes back through a rescind and a new offer.
                    println!("storage: receive: {e}; channel given up");
                    self.fail_channel();
                    return true;
                }
            };
            self.progress = true;
            let Some(packet) = buf.get(..rx.len) else {
                return true;
            };
            if c.stage == Stage::Init {
                self.on_init_packet(rx.transaction_id, packet);
            } else {
                self.on_completion(rx.transaction_id, packet);
            }
        }
    }

    fn on_init_packet(&mut self, tid: u64, packet: &[u8]) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let mut out = [0u8; PACKET_MAX];
        match c.init.on_packet(tid, packet, &mut out) {
            Ok(InitStep::Wait) => {}
            Ok(InitStep::Stale(tid)) => {
                println!(
                    "storage: host error: a second completion of initialisation step {tid:#x}, ignored"
                );
            }
            Ok(InitStep::Send(n)) => {
                let id = c.init.transaction_id();
                if let Err(e) = c.ch.send_packet(&mut self.env, id, true, &out[..n]) {
                    println!("storage: initialisation: {e}");
                }
            }
            Ok(InitStep::Ready(neg)) => self.initialised(neg),
            Err(e) => {
                println!("storage: initialisation failed: {e}");
                self.fail_channel();
            }
        }
    }

    /// The channel is unusable (initialisation or probe failed, corrupt ring): requests are
    /// answered with `NoDevice` until it goes away.
    fn fail_channel(&mut self) {
        if let Link::Open(c) = &mut self.link {
            let was_serving = c.stage == Stage::Serving;
            c.stage = Stage::Failed;
            if was_serving {
                let n = self.fail_in_flight();
                println!("storage: channel failed: {n} requests failed");
            }
        }
    }

    /// Initialised: the data buffer, its frames, INQUIRY into its first page.
    fn initialised(&mut self, neg: Negotiated) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let data_pages = self.data_pages;
        let buffer = match c.ch.alloc_buffer(&mut self.env, data_pages as u32, false) {
            Ok(b) if b.pages == data_pages => b,
            Ok(b) => {
                println!(
                    "storage: a data buffer of {} pages, {data_pages} asked",
                    b.pages
                );
                return self.fail_channel();
            }
            Err(e) => {
                println!("storage: data buffer: {e}");
                return self.fail_channel();
            }
        };
        match c
            .ch
            .buffer_frames(&mut self.env, &buffer, 0, &mut c.frames[..data_pages])
        {
            Ok(n) if n == data_pages => {}
            Ok(n) => {
                println!("storage: {n} frames of {data_pages} pages");
                return self.fail_channel();
            }
            Err(e) => {
                println!("storage: buffer frames: {e}");
                return self.fail_channel();
            }
        }
        let ring_data = u32::from(RING_PAGES - 1) * 4096;
        let depth = queue_depth_for(ring_data, neg.max_transfer_bytes).min(MAX_QUEUE_DEPTH);
        c.negotiated = Some(neg);
        c.requests = Some(Requests::new(&neg, depth));
        c.buffer = Some(buffer);
        println!(
            "storage: protocol {:?}, {} bytes per request, {depth} requests at once",
            neg.version, neg.max_transfer_bytes
        );
        match probe(c, &mut self.env, &Command::inquiry(INQUIRY_LEN)) {
            Some(tid) => c.stage = Stage::Inquiry(tid),
            None => self.fail_channel(),
        }
    }

    fn on_completion(&mut self, tid: u64, packet: &[u8]) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let Some(requests) = c.requests.as_mut() else {
            return;
        };
        let done = match requests.on_packet(tid, packet) {
            Ok(Incoming::Done(d)) => d,
            Ok(_) => return,
            Err(e) => {
                self.host_errors += 1;
                if self.host_errors <= LOGGED_HOST_ERRORS {
                    println!("storage: host error: {e}");
                }
                // A completion that ended a request without decoding: fail that request.
                let Some(tid) = e.ended() else { return };
                Done {
                    transaction_id: tid,
                    opcode: 0,
                    result: Err(IoError::Srb { srb_status: 0 }),
                }
            }
        };
        match c.stage {
            Stage::Inquiry(t) if t == done.transaction_id => self.on_inquiry(&done),
            Stage::Capacity(t) if t == done.transaction_id => self.on_capacity(&done),
            Stage::Serving => self.on_io_done(&done),
            _ => {}
        }
    }

    fn on_inquiry(&mut self, done: &Done) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let mut data = [0u8; INQUIRY_LEN as usize];
        let got = match done.result {
            Ok(t) => (t.transferred as usize).min(data.len()),
            Err(e) => {
                println!("storage: INQUIRY: {e}");
                return self.fail_channel();
            }
        };
        if let (Some(buffer), true) = (c.buffer, got >= 1)
            && c.ch
                .read_buffer(&mut self.env, &buffer, 0, &mut data[..got])
                .is_ok()
        {
            // Peripheral qualifier 0, device type 0: a direct-access block device.
            if data[0] != 0 {
                println!(
                    "storage: INQUIRY: peripheral {:#04x} is not a direct-access device",
                    data[0]
                );
                return self.fail_channel();
            }
            let text = |r: core::ops::Range<usize>| {
                data.get(r)
                    .and_then(|b| core::str::from_utf8(b).ok())
                    .map_or("?", str::trim_end)
            };
            println!(
                "storage: INQUIRY: direct-access device \"{}\" \"{}\"",
                text(8..16),
                text(16..32)
            );
        } else {
            println!("storage: INQUIRY: {got} bytes of data, unreadable");
            return self.fail_channel();
        }
        match probe(c, &mut self.env, &Command::read_capacity_16()) {
            Some(tid) => c.stage = Stage::Capacity(tid),
            None => self.fail_channel(),
        }
    }

    fn on_capacity(&mut self, done: &Done) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let (Some(buffer), Some(neg), Some(requests)) = (c.buffer, c.negotiated, &c.requests)
        else {
            return;
        };
        let t = match done.result {
            Ok(t) => t,
            Err(e) => {
                println!("storage: READ CAPACITY(16): {e}");
                return self.fail_channel();
            }
        };
        let mut data = [0u8; 32];
        let got = (t.transferred as usize).min(data.len());
        if let Err(e) =
            c.ch.read_buffer(&mut self.env, &buffer, 0, &mut data[..got])
        {
            println!("storage: capacity data: {e}");
            return self.fail_channel();
        }
        let cap = match Capacity::parse(&data[..got]) {
            Ok(cap) => cap,
            Err(e) => {
                println!("storage: capacity: {e}");
                return self.fail_channel();
            }
        };
        let bridge = match BlkBridge::new(Lun::default(), &cap, neg.max_transfer_bytes) {
            Ok(b) => b,
            Err(e) => {
                println!("storage: device: {e}");
                return self.fail_channel();
            }
        };
        let depth = u16::try_from(requests.depth()).unwrap_or(u16::MAX);
        let info = bridge.storage_info(depth);
        if let Err(e) = self.info.publish(&info) {
            println!("storage: storage information refused: {e:?}");
            return self.fail_channel();
        }
        self.out.q.set_device(DeviceLimits::from(&info));
        c.bridge = Some(bridge);
        c.stage = Stage::Serving;
        self.out.notify = true;
        if self.out.no_device > 0 {
            println!(
                "storage: {} requests were refused while there was no device",
                self.out.no_device
            );
            self.out.no_device = 0;
        }
        println!(
            "storage: device of {} sectors of {} bytes on {}",
            cap.blocks,
            cap.block_size,
            c.ch.relid()
        );
        println!(
            "storage: ready: {} blocks of {} bytes, queue depth {depth}",
            info.capacity, BLK_TRANSFER_SIZE
        );
    }

    /// A SCSI command of a client request finished: the response once its last part did, with
    /// a READ's blocks copied into the data region first.
    fn on_io_done(&mut self, done: &Done) {
        let Link::Open(c) = &mut self.link else {
            return;
        };
        let Conn {
            ch,
            requests: Some(requests),
            bridge: Some(bridge),
            buffer: Some(buffer),
            frames,
            ..
        } = c
        else {
            return;
        };
        let env = &mut self.env;
        let frames = &frames[..self.data_pages];
        let frame = |page: u64| frames.get(usize::try_from(page).ok()?).copied();
        let mut out = [0u8; PACKET_MAX];
        let response = {
            let mut send = |s: &Submitted, d: Option<&DataBuffer<'_>>, p: &[u8]| {
                send_part(ch, env, s, d, p).is_ok()
            };
            bridge.complete(done, requests, &frame, &mut out, &mut send)
        };
        let Some(mut r) = response else {
            return;
        };
        if let Some(slot) = self
            .reads
            .iter_mut()
            .find(|e| e.is_some_and(|(id, _)| id == r.id))
            && let Some((_, offset)) = slot.take()
            && r.success_count > 0
        {
            let bytes = u64::from(r.success_count) * u64::from(BLK_TRANSFER_SIZE);
            if bounce(Bounce::Out, ch, env, buffer, &self.data, offset, bytes).is_err() {
                r.success_count = 0;
                r.status = BlkStatus::NoDevice;
            }
        }
        if r.status != BlkStatus::Ok && ch.check_open(env).is_err() {
            r.status = BlkStatus::NoDevice;
        }
        self.out.send(r);
    }

    /// Takes the client's requests: through the bridge while serving, `NoDevice` without a
    /// device; left queued while a channel is being set up.
    fn take_requests(&mut self) {
        loop {
            if let Link::Open(c) = &self.link
                && matches!(
                    c.stage,
                    Stage::Init | Stage::Inquiry(_) | Stage::Capacity(_)
                )
            {
                return;
            }
            let req = match self.held.take() {
                Some(r) => r,
                None => {
                    if self.out.q.is_plugged() == Ok(true) {
                        return;
                    }
                    match self.out.q.dequeue_request() {
                        Ok(Some(r)) => r,
                        Ok(None) => return,
                        Err(PeerError::BadRequest { id, fault }) => {
                            let status = match fault {
                                RequestFault::UnknownCode(_) => BlkStatus::Unspecified,
                                _ => BlkStatus::InvalidParam,
                            };
                            println!("storage: request {id} refused: {fault:?}");
                            self.progress = true;
                            self.out.send(BlkResponse {
                                status,
                                success_count: 0,
                                id,
                            });
                            continue;
                        }
                        Err(e) => {
                            if !self.queue_broken {
                                self.queue_broken = true;
                                println!("storage: request queue broken by the client: {e:?}");
                            }
                            return;
                        }
                    }
                }
            };
            self.progress = true;
            if !self.take(req) {
                return;
            }
        }
    }

    /// Takes one request; false when the bridge is busy (the request is held).
    fn take(&mut self, req: BlkRequest) -> bool {
        let serving = matches!(&self.link, Link::Open(c) if c.stage == Stage::Serving);
        let Link::Open(c) = &mut self.link else {
            self.out.send(no_device(req.id));
            return true;
        };
        let Conn {
            ch,
            requests: Some(requests),
            bridge: Some(bridge),
            buffer: Some(buffer),
            frames,
            ..
        } = c
        else {
            self.out.send(no_device(req.id));
            return true;
        };
        if !serving {
            self.out.send(no_device(req.id));
            return true;
        }
        let env = &mut self.env;
        if req.code == BlkRequestCode::Write
            && let Err(e) = bounce(
                Bounce::In,
                ch,
                env,
                buffer,
                &self.data,
                req.io_or_offset,
                req.bytes(),
            )
        {
            let status = if e == ClientError::ChannelGone {
                BlkStatus::NoDevice
            } else {
                BlkStatus::Io
            };
            let r = BlkResponse {
                status,
                success_count: 0,
                id: req.id,
            };
            self.out.send(r);
            return true;
        }
        let frames = &frames[..self.data_pages];
        let frame = |page: u64| frames.get(usize::try_from(page).ok()?).copied();
        let mut out = [0u8; PACKET_MAX];
        let taken = {
            let mut send = |s: &Submitted, d: Option<&DataBuffer<'_>>, p: &[u8]| {
                send_part(ch, env, s, d, p).is_ok()
            };
            bridge.take(&req, requests, &frame, &mut out, &mut send)
        };
        match taken {
            Ok(()) => {
                if req.code == BlkRequestCode::Read
                    && let Some(slot) = self.reads.iter_mut().find(|e| e.is_none())
                {
                    *slot = Some((req.id, req.io_or_offset));
                }
                true
            }
            Err(Refusal::Respond(mut r)) => {
                if r.status != BlkStatus::Ok && ch.check_open(env).is_err() {
                    r.status = BlkStatus::NoDevice;
                }
                self.out.send(r);
                true
            }
            Err(Refusal::Busy) => {
                self.held = Some(req);
                false
            }
        }
    }

    /// Answers every request in flight (and the one held) with `NoDevice`; how many.
    fn fail_in_flight(&mut self) -> u64 {
        let mut n = 0;
        if let Link::Open(c) = &mut self.link {
            if let Some(b) = c.bridge.as_mut() {
                let out = &mut self.out;
                b.fail_all(|r| {
                    n += 1;
                    out.send(r);
                });
            }
            if let Some(r) = c.requests.as_mut() {
                r.fail_all(|_| {});
            }
        }
        if let Some(req) = self.held.take() {
            n += 1;
            self.out.send(no_device(req.id));
        }
        self.reads = [None; MAX_PENDING];
        n
    }

    /// The channel went away (rescind, or the orderly stop closing it).
    fn gone(&mut self) {
        self.progress = true;
        // Withdrawn first: a client that sees the failed responses sees no device.
        self.info.withdraw();
        self.out.notify = true;
        let served = matches!(&self.link, Link::Open(c) if c.stage == Stage::Serving);
        self.fail_in_flight();
        // Those in flight, and those whose send found the channel gone.
        let n = self.out.no_device;
        self.out.no_device = 0;
        let relid = match &self.link {
            Link::Open(c) => Some(c.ch.relid()),
            _ => None,
        };
        self.link = Link::Waiting;
        self.listed = None;
        if served {
            println!("storage: device gone (channel rescinded): {n} requests failed");
        } else if let Some(relid) = relid {
            println!("storage: {relid} gone before it served; {n} requests failed");
        }
        println!("storage: waiting for the device again");
    }
}

/// Starts a probe command (INQUIRY, READ CAPACITY(16)) into the buffer's first page; its
/// transaction id.
fn probe(c: &mut Conn, env: &mut Sel4Env, cmd: &Command) -> Option<u64> {
    let requests = c.requests.as_mut()?;
    let pfns = [c.frames[0]];
    let data = DataBuffer {
        offset: 0,
        len: cmd.data_len,
        pfns: &pfns,
    };
    let mut out = [0u8; PACKET_MAX];
    let sent = match requests.submit(Lun::default(), cmd, Some(&data), &mut out) {
        Ok(s) => s,
        Err(e) => {
            println!("storage: probe {:#04x}: {e:?}", cmd.opcode());
            return None;
        }
    };
    if let Err(e) = send_part(&mut c.ch, env, &sent, Some(&data), &out[..sent.len]) {
        println!("storage: probe {:#04x}: {e}", cmd.opcode());
        let _ = requests.cancel(sent.transaction_id);
        return None;
    }
    Some(sent.transaction_id)
}

fn no_device(id: u32) -> BlkResponse {
    BlkResponse {
        status: BlkStatus::NoDevice,
        success_count: 0,
        id,
    }
}

/// The serving end's response side.
struct Responses {
    q: BlkResponder<SharedRegion>,
    /// Responses queued since the client was last notified (or the storage information
    /// changed).
    notify: bool,
    /// `NoDevice` responses since the last report (logged when the device goes, and when it is
    /// ready again).
    no_device: u64,
}

impl Responses {
    fn send(&mut self, r: BlkResponse) {
        self.notify = true;
        if r.status == BlkStatus::NoDevice {
            self.no_device += 1;
        }
        // The response queue holds as many entries as the request queue, so it is never full
        // unless the client broke it (stopped taking responses): the response is lost then.
        if self.q.enqueue_response(&r).is_err() {
            println!(
                "storage: response {} lost: response queue full or broken",
                r.id
            );
        }
    }
}

/// Sends one SCSI command: GPA-direct with the buffer's range when it moves data.
fn send_part(
    ch: &mut Ch,
    env: &mut Sel4Env,
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
            ch.send_gpa_direct(env, s.transaction_id, true, &[range], packet)
        }
        _ => ch.send_packet(env, s.transaction_id, true, packet),
    }
}

/// Which way a bounce copy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bounce {
    /// sDDF data region -> channel buffer (before a WRITE is sent).
    In,
    /// Channel buffer -> sDDF data region (after a READ completed).
    Out,
}

/// Copies `len` bytes at `offset` between the sDDF data region and the channel's buffer (the
/// same offset in both), `dir` as it says, in chunks through the stack.
fn bounce(
    dir: Bounce,
    ch: &Ch,
    env: &mut Sel4Env,
    buffer: &Buffer,
    data: &SharedRegion,
    offset: u64,
    len: u64,
) -> Result<(), ClientError> {
    let (Ok(offset), Ok(len)) = (usize::try_from(offset), usize::try_from(len)) else {
        return Err(ClientError::OutOfBuffer);
    };
    let mut chunk = [0u8; COPY_CHUNK];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(COPY_CHUNK);
        let piece = &mut chunk[..n];
        match dir {
            Bounce::In => {
                data.read(offset + at, piece);
                ch.write_buffer(env, buffer, offset + at, piece)?;
            }
            Bounce::Out => {
                ch.read_buffer(env, buffer, offset + at, piece)?;
                data.write(offset + at, piece);
            }
        }
        at += n;
    }
    Ok(())
}

/// Never built: `init` runs the driver's loop for ever.
struct Serving;

impl Handler for Serving {
    fn notified(&mut self, _: PdChannel) {}
}

fn init() -> Serving {
    main_loop(pd_runtime::own_config(CONFIGS))
}

pd_runtime::protection_domain!(init);
