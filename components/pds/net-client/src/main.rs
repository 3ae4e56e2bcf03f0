//! The `net_client` PD of `system.xml`: an sDDF network test client. It has no VMBus connection
//! at all; it uses only the sDDF network queues it shares with the `net` PD (netvsc as an sDDF
//! network driver) and the notification channel between them. Its frames and their checks are
//! `sddf::frames` (the simulated host's loopback switch: ARP, ICMP echo, UDP echo).
//!
//! The program:
//! - gives every RX buffer to the driver (RX free queue) and keeps every TX buffer;
//! - round 1: an ARP request for the switch, 4 ICMP echo requests and 4 UDP datagrams to the echo
//!   port, one at a time, each answer checked (addresses, checksums, sequence, payload), then
//!   `PASS round 1`;
//! - then streams UDP datagrams, one outstanding at a time (the next when the last one's echo
//!   arrived), so the host sees continuous traffic. The stream pauses after [`STREAM_BURST`]
//!   echoes: the image has no timer and the host answers within the driver's calls, so while
//!   the stream runs this PD, the driver, the VMBus driver and the host are always runnable and
//!   no PD of a lower priority (the block client, the integration services, Dynamic Memory)
//!   would ever run again;
//! - loss rule: a wake-up that brings nothing new (no RX frame, no TX buffer back) is the driver
//!   telling that the link came (back) up. A request outstanding then was lost with the old link:
//!   it is counted once (`request N unanswered (link down)`) and sent again (a duplicate or stale
//!   answer, known by its sequence number, is ignored), and the next round runs once its answer
//!   came; a paused stream starts the next round at once;
//! - round 2 (and any later one): ARP, 4 pings, 4 UDP echoes, `PASS round 2 (after the link came
//!   back)` with the requests lost to the rescind, then the stream again.
//!
//! Signalling follows sDDF: while it runs, the client keeps its consumer flags set (the driver
//! does not notify for what it is about to see anyway); before it sleeps it asks for a
//! notification and looks at its queues once more, with no system call between that look and
//! the wait. On one core, no PD of a higher priority runs while this one runs unless its own
//! notification to the driver wakes one, so a wake-up that finds nothing new was a notification
//! with nothing new (the driver's link-up report), not a late one for something already taken.
//! A notification from before the PD started is dropped at the start for the same reason.
//!
//! A wrong answer or a broken queue is logged as a line starting `net_client: FAIL:` and
//! reported to the root task as a failure, which ends the run with it.
#![no_std]
#![no_main]

use pd_runtime::layout::slot;
use pd_runtime::{Channel, Handler, notify, println};
use pd_support::abi::sddf as names;
use pd_support::region::SharedRegion;
use sddf::QueueMem;
use sddf::frames::{
    MAX_FRAME, arp_request, echo_request, is_arp_reply, is_echo_reply, is_udp_echo, udp_datagram,
};
use sddf::net::{NET_BUFFER_SIZE, NetBuffer, NetDataRegion, NetDrainer, NetFiller, NetQueue};

// `CONFIGS`: this PD's sDDF regions and its channel to `net`, generated from the system
// description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The driver PD's name in the system description.
const DRIVER: &str = "net";
/// Pings and UDP echoes in a round.
const PER_ROUND: u16 = 4;
/// TX buffers the client can hold (at least the data region's).
const MAX_TX: usize = 64;
/// Earlier sequence numbers whose late answers are ignored.
const STALE_WINDOW: u16 = 16;
/// Datagrams a stream sends before it pauses (see the module's notes).
const STREAM_BURST: u64 = 64;

/// A request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// An ARP request for the switch's address.
    Arp,
    /// An ICMP echo request with this sequence number.
    Ping(u16),
    /// A UDP datagram naming this number.
    Udp(u16),
}

/// Where the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Round `n`, step `k`: 0 ARP, 1..=4 pings, 5..=8 UDP.
    Round { n: u8, k: u16 },
    /// Streaming UDP datagrams.
    Stream,
    /// The stream paused (nothing outstanding) until the link comes back.
    Paused,
}

struct Client {
    driver: Channel,
    rx: NetDrainer<SharedRegion>,
    tx: NetFiller<SharedRegion>,
    rx_data: SharedRegion,
    tx_data: SharedRegion,
    tx_owned: [NetBuffer; MAX_TX],
    n_owned: usize,
    phase: Phase,
    /// The last round started.
    round: u8,
    /// The request sent and not answered yet.
    outstanding: Option<Request>,
    /// The next sequence number.
    seq: u16,
    /// Whether the outstanding request was counted lost already.
    counted: bool,
    /// A loss happened and the next round has not started yet.
    after_loss: bool,
    /// Requests lost to link outages since the last round.
    lost: u64,
    /// Requests sent (resends included).
    sent: u64,
    /// Answers taken.
    answers: u64,
    /// Stale or duplicate answers ignored.
    stale: u64,
    /// Stream echoes since the stream (re)started.
    streamed: u64,
    failed: bool,
    /// Notify the driver at the end of this pass.
    kick: bool,
}

impl Client {
    fn fail(&mut self, what: core::fmt::Arguments<'_>) {
        println!("net_client: FAIL: {what}");
        if !self.failed {
            // The run fails here: the root task ends it with the failure (QEMU's exit status).
            pd_runtime::report(pd_support::abi::scenario::REPORT_FAIL, &[]);
        }
        self.failed = true;
    }

    /// Takes back every TX buffer the driver returned. How many.
    fn reclaim_tx(&mut self) -> u32 {
        let mut n = 0;
        loop {
            match self.tx.free.dequeue() {
                Ok(Some(b)) => {
                    if self.n_owned == MAX_TX {
                        self.fail(format_args!("more TX buffers came back than exist"));
                        return n;
                    }
                    self.tx_owned[self.n_owned] = b;
                    self.n_owned += 1;
                    n += 1;
                }
                Ok(None) => return n,
                Err(e) => {
                    self.fail(format_args!("TX free queue: {e}"));
                    return n;
                }
            }
        }
    }

    /// Queues `frame` for sending. Whether it went on the TX active queue.
    fn send_frame(&mut self, frame: &[u8]) -> bool {
        if self.n_owned == 0 {
            // Every buffer is with the driver: the request goes when one comes back.
            return false;
        }
        self.n_owned -= 1;
        let b = self.tx_owned[self.n_owned];
        QueueMem::write(&self.tx_data, b.io_or_offset as usize, frame);
        match self.tx.active.enqueue(NetBuffer {
            len: frame.len() as u16,
            ..b
        }) {
            Ok(()) => {
                self.sent += 1;
                if self.tx.active.take_signal() {
                    self.kick = true;
                }
                true
            }
            Err(e) => {
                self.tx_owned[self.n_owned] = b;
                self.n_owned += 1;
                self.fail(format_args!("TX active queue: {e:?}"));
                false
            }
        }
    }

    /// Sends `r` (again, for a resend). Whether it went.
    fn send(&mut self, r: Request) -> bool {
        let mut f = [0u8; MAX_FRAME];
        let len = match r {
            Request::Arp => arp_request(&mut f),
            Request::Ping(s) => echo_request(s, &mut f),
            Request::Udp(n) => udp_datagram(n, &mut f),
        };
        if !self.send_frame(&f[..len]) {
            return false;
        }
        if self.outstanding != Some(r) {
            self.counted = false;
        }
        self.outstanding = Some(r);
        true
    }

    /// The request of this phase, with a fresh sequence number.
    fn next_request(&mut self) -> Request {
        let k = match self.phase {
            Phase::Round { k, .. } => k,
            Phase::Stream | Phase::Paused => PER_ROUND + 1,
        };
        if k == 0 {
            return Request::Arp;
        }
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        if k <= PER_ROUND {
            Request::Ping(s)
        } else {
            Request::Udp(s)
        }
    }

    /// Whether `f` is a late answer to an earlier request.
    fn is_stale(&self, f: &[u8]) -> bool {
        if is_arp_reply(f) {
            return true;
        }
        (1..=STALE_WINDOW).any(|d| {
            let s = self.seq.wrapping_sub(d);
            is_echo_reply(f, s) || is_udp_echo(f, s)
        })
    }

    /// A received frame.
    fn on_frame(&mut self, f: &[u8]) {
        let answered = match self.outstanding {
            Some(Request::Arp) => is_arp_reply(f),
            Some(Request::Ping(s)) => is_echo_reply(f, s),
            Some(Request::Udp(n)) => is_udp_echo(f, n),
            None => false,
        };
        if !answered {
            if self.is_stale(f) {
                self.stale += 1;
            } else {
                let head = &f[..f.len().min(16)];
                let waiting = self.outstanding;
                self.fail(format_args!(
                    "a {}-byte frame answers nothing asked (waiting for {waiting:?}); first bytes {head:02x?}",
                    f.len(),
                ));
            }
            return;
        }
        self.answers += 1;
        self.outstanding = None;
        self.advance();
    }

    /// The outstanding request was answered: the next step.
    fn advance(&mut self) {
        match self.phase {
            Phase::Round { n, k } if k == 2 * PER_ROUND => {
                if n == 1 {
                    println!(
                        "net_client: PASS round 1: ARP answered, {PER_ROUND} pings, {PER_ROUND} UDP echoes"
                    );
                } else {
                    println!(
                        "net_client: PASS round {n} (after the link came back): ARP answered, {PER_ROUND} pings, {PER_ROUND} UDP echoes; {} requests lost to the rescind",
                        self.lost
                    );
                }
                self.lost = 0;
                self.streamed = 0;
                self.phase = Phase::Stream;
            }
            Phase::Round { n, k } => self.phase = Phase::Round { n, k: k + 1 },
            Phase::Stream if self.after_loss => {
                // Traffic resumed after the loss: the next round.
                self.next_round();
            }
            Phase::Stream => {
                self.streamed += 1;
                if self.streamed == STREAM_BURST {
                    println!(
                        "net_client: stream paused after {STREAM_BURST} UDP echoes ({} requests sent, {} stale answers ignored): the lower priorities get the CPU; the stream goes on after the link comes back",
                        self.sent, self.stale
                    );
                    self.phase = Phase::Paused;
                }
            }
            Phase::Paused => {}
        }
    }

    /// Starts the round after the current one.
    fn next_round(&mut self) {
        self.after_loss = false;
        self.round = self.round.saturating_add(1);
        println!(
            "net_client: traffic resumed after the link came back; round {}: ARP, {PER_ROUND} pings, {PER_ROUND} UDP echoes",
            self.round
        );
        self.phase = Phase::Round {
            n: self.round,
            k: 0,
        };
    }

    /// Drains the RX active queue (each buffer back on the RX free queue at once). How many
    /// frames.
    fn receive(&mut self) -> u32 {
        let mut n = 0;
        let mut returned = false;
        loop {
            let b = match self.rx.active.dequeue() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    self.fail(format_args!("RX active queue: {e}"));
                    break;
                }
            };
            n += 1;
            let len = usize::from(b.len).min(NET_BUFFER_SIZE as usize);
            let mut f = [0u8; NET_BUFFER_SIZE as usize];
            QueueMem::read(&self.rx_data, b.io_or_offset as usize, &mut f[..len]);
            match self.rx.free.enqueue(NetBuffer { len: 0, ..b }) {
                Ok(()) => returned = true,
                Err(e) => self.fail(format_args!("RX free queue: {e:?}")),
            }
            self.on_frame(&f[..len]);
        }
        if returned && self.rx.free.take_signal() {
            self.kick = true;
        }
        n
    }

    /// One wake-up's work: `woke` when it follows a notification.
    fn run(&mut self, woke: bool) {
        // Awake: the driver need not notify for what this pass will see.
        self.rx.active.cancel_signal();
        self.tx.free.cancel_signal();
        let mut first = true;
        loop {
            let frames = self.receive();
            let buffers = self.reclaim_tx();
            if first && woke && frames == 0 && buffers == 0 {
                self.on_quiet_wakeup();
            }
            first = false;
            if self.outstanding.is_none() && !self.failed && self.phase != Phase::Paused {
                let r = self.next_request();
                if !self.send(r) {
                    // No TX buffer free: it goes when one comes back.
                    self.seq = self.seq.wrapping_sub(u16::from(r != Request::Arp));
                }
            }
            if self.kick {
                self.kick = false;
                notify(self.driver);
            }
            // Before sleeping: ask for notifications, then look once more.
            let rx_more = self.rx.active.finish_batch();
            let tx_more = self.tx.free.finish_batch();
            match (rx_more, tx_more) {
                (Ok(false), Ok(false)) => return,
                (Ok(_), Ok(_)) => {
                    self.rx.active.cancel_signal();
                    self.tx.free.cancel_signal();
                }
                (Err(e), _) | (_, Err(e)) => {
                    self.fail(format_args!("queue: {e}"));
                    return;
                }
            }
        }
    }

    /// A notification that brought nothing: the driver says the link came (back) up. An
    /// outstanding request was lost with the old link: it is counted and sent again, and the
    /// next round follows its answer. A paused stream: the next round starts now.
    fn on_quiet_wakeup(&mut self) {
        let Some(r) = self.outstanding else {
            if self.phase == Phase::Paused {
                println!("net_client: the driver reports the link up again");
                self.next_round();
            }
            return;
        };
        if !self.counted {
            self.counted = true;
            self.lost += 1;
            let n = match r {
                Request::Arp => 0,
                Request::Ping(s) | Request::Udp(s) => s,
            };
            println!(
                "net_client: request {n} ({r:?}) unanswered (link down); waiting for the driver"
            );
            // Lost while streaming after a round: the next round runs once traffic resumes.
            if self.phase == Phase::Stream {
                self.after_loss = true;
            }
        }
        println!("net_client: the driver reports the link up: sending {r:?} again");
        self.send(r);
    }
}

struct Idle;

impl Handler for Idle {
    fn notified(&mut self, _: Channel) {}
}

fn region(config: &pd_runtime::config::PdConfig, name: &str) -> SharedRegion {
    match SharedRegion::of(config, name) {
        Some(r) => r,
        None => panic!("net_client: region {name} is not mapped writable"),
    }
}

fn init() -> Idle {
    let config = pd_runtime::own_config(CONFIGS);
    let Some(driver) = config.channels.iter().find(|c| c.peer == DRIVER) else {
        panic!("net_client: no channel to {DRIVER}");
    };
    let rx_data = region(config, names::NET_RX_DATA);
    let tx_data = region(config, names::NET_TX_DATA);
    let rxr = NetDataRegion::offsets(QueueMem::size(&rx_data) as u64);
    let txr = NetDataRegion::offsets(QueueMem::size(&tx_data) as u64);
    let queue = |free, active| match NetQueue::new(
        region(config, free),
        region(config, active),
        names::NET_QUEUE_CAPACITY,
    ) {
        Ok(q) => q,
        Err(e) => panic!("net_client: queues {free}/{active}: {e}"),
    };
    let mut c = Client {
        driver: Channel(driver.id),
        rx: queue(names::NET_RX_FREE, names::NET_RX_ACTIVE).drainer(rxr),
        tx: queue(names::NET_TX_FREE, names::NET_TX_ACTIVE).filler(txr),
        rx_data,
        tx_data,
        tx_owned: [NetBuffer::default(); MAX_TX],
        n_owned: 0,
        phase: Phase::Round { n: 1, k: 0 },
        round: 1,
        outstanding: None,
        seq: 1,
        counted: false,
        after_loss: false,
        lost: 0,
        sent: 0,
        answers: 0,
        stale: 0,
        streamed: 0,
        failed: false,
        kick: false,
    };
    // The client owns its TX buffers and hands every RX buffer to the driver (sDDF's
    // net_buffers_init).
    for i in 0..txr.buffers().min(MAX_TX as u64) {
        if let Some(b) = txr.buffer(i) {
            c.tx_owned[c.n_owned] = b;
            c.n_owned += 1;
        }
    }
    match c.rx.fill_free(rxr) {
        Ok(n) => println!(
            "net_client: sDDF network client: {n} RX buffers given to the driver, {} TX buffers; round 1: ARP, {PER_ROUND} pings, {PER_ROUND} UDP echoes",
            c.n_owned
        ),
        Err(e) => c.fail(format_args!("RX free queue at start: {e:?}")),
    }
    if c.rx.free.take_signal() {
        c.kick = true;
    }
    // A notification from before this PD started tells nothing it will not see in the queues:
    // drop it, so that every later wake-up that finds nothing new is a link-up report.
    let _ = sel4::Notification(slot::INPUT).poll();
    c.run(false);
    loop {
        let _ = sel4::Endpoint(slot::INPUT).recv();
        c.run(true);
    }
}

pd_runtime::protection_domain!(init);
