//! The `net` PD of `system.xml`: netvsc as an sDDF network driver. On one side the network
//! device's VMBus channel (through the VMBus driver: `vmbus-client` over `client_env`), on the
//! other the sDDF network queues shared with `net_client` (RX: this PD fills, TX: it drains).
//!
//! The program (the simulation's `sim_system::network::NetvscDriver`, as a PD):
//! - waits for an offer of the network class: each wake-up looks at the driver's
//!   offers-delivered counter and lists the offers only when it moved (never spins);
//! - opens the offer with rings of [`RING_PAGES`] pages each way, allocates the receive buffer
//!   ([`RECV_PAGES`]) and the send buffer ([`SEND_PAGES`]) with GPADLs of the channel, and starts
//!   NVSP and RNDIS through [`netvsc::Netvsc`];
//! - then, at every wake-up whatever its badge (the library's own waits share this PD's one
//!   notification with `net_client`'s), pumps everything: packets from the inbound ring into
//!   netvsc, netvsc's outbox onto the outbound ring, received frames (read from the receive
//!   buffer with `Channel::read_buffer`) into the client's RX buffers and onto the RX active
//!   queue, and, while the link is up, the client's TX frames from the TX active queue into send
//!   sections (`Channel::write_buffer`) with their buffers back on the TX free queue
//!   ([`NetBridge`]). It notifies `net_client` when it queued something the queues' signal flags
//!   ask to hear about, and once when the link comes up (a notification with nothing new, which
//!   tells the client to resend what the link lost);
//! - while there is no channel or the link is down, it leaves the TX active queue alone: the
//!   client's frames wait there;
//! - when the channel goes (rescind, or the orderly stop's close): netvsc forgets what was in
//!   flight, a TX buffer it held goes back to the client, and the program waits for the device
//!   to be offered again. The old buffers are never touched again: the VMBus driver zeroes and
//!   recycles their pages, and the library's checks answer `ChannelGone`.
//!
//! Nothing the host or the client writes can make it panic: refusals are logged.
#![no_std]
#![no_main]

use core::cell::{Cell, RefCell};

use client_env::{Sel4Env, env_of};
use netvsc::sddf_net::{NetBridge, TxStop};
use netvsc::vmpkt::RawPacket;
use netvsc::{BufferMem, Config, DeviceInfo, Event, Netvsc, Outbox, PacketKind};
use pd_runtime::{Channel as PdChannel, Handler, notify, println};
use pd_support::abi::sddf as names;
use pd_support::cell::StaticCell;
use pd_support::region::SharedRegion;
use sddf::QueueMem;
use sddf::net::{NetDataRegion, NetDrainer, NetFiller, NetQueue};
use shared_mem::MappedRing;
use vmbus_client::{Buffer, Channel, ClientError, list_offers, offers_delivered, open};
use vmbus_driver::control::ClientError as Refusal;
use vmbus_driver::guid;

// `CONFIGS`: this PD's window, control page, driver channel, device class, sDDF regions and its
// channel to `net_client`, generated from the system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Pages of each ring, header page included.
const RING_PAGES: u16 = 32;
/// Pages of the receive buffer (256 KiB).
const RECV_PAGES: u32 = 64;
/// Pages of the send buffer (64 KiB).
const SEND_PAGES: u32 = 16;
/// Packets taken from the inbound ring per pass at most.
const PACKETS_PER_PASS: usize = 64;
/// Passes over ring and queues per wake-up at most (each pass ends when nothing moved).
const PASSES: usize = 16;
/// The peer PD's name in the system description.
const CLIENT: &str = "net_client";

/// The packet, extended-descriptor and frame buffers (static memory, not the stack).
struct Bufs {
    packet: [u8; 4096],
    ext: [u8; 1024],
    scratch: [u8; 2048],
}

static BUFS: StaticCell<Bufs> = StaticCell::new(Bufs {
    packet: [0; 4096],
    ext: [0; 1024],
    scratch: [0; 2048],
});

/// An sDDF data region, as netvsc's `BufferMem`.
struct Data(SharedRegion);

impl BufferMem for Data {
    fn size(&self) -> usize {
        QueueMem::size(&self.0)
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        QueueMem::read(&self.0, offset, out);
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        QueueMem::write(&self.0, offset, data);
    }
}

/// The receive or the send buffer, reached through the channel's checked copies: once the
/// channel is gone nothing reaches its pages (a failed copy reads zeros and is counted).
struct Window<'a> {
    env: &'a RefCell<&'a mut Sel4Env>,
    ch: &'a Channel<MappedRing>,
    buf: Buffer,
    faults: &'a Cell<u32>,
}

impl BufferMem for Window<'_> {
    fn size(&self) -> usize {
        self.buf.len()
    }
    fn read(&self, offset: usize, out: &mut [u8]) {
        let mut env = self.env.borrow_mut();
        if self
            .ch
            .read_buffer(&mut **env, &self.buf, offset, out)
            .is_err()
        {
            out.fill(0);
            self.faults.set(self.faults.get() + 1);
        }
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        let mut env = self.env.borrow_mut();
        if self
            .ch
            .write_buffer(&mut **env, &self.buf, offset, data)
            .is_err()
        {
            self.faults.set(self.faults.get() + 1);
        }
    }
}

/// An open channel with its buffers and device.
struct Open {
    ch: Channel<MappedRing>,
    recv: Buffer,
    send: Buffer,
    dev: Netvsc,
    out: Outbox,
    /// Whether the link is up (configured and connected) as last reported.
    up: bool,
}

/// The driver program.
struct Driver {
    env: Sel4Env,
    client: PdChannel,
    rx: NetFiller<SharedRegion>,
    tx: NetDrainer<SharedRegion>,
    rx_data: Data,
    tx_data: Data,
    bridge: NetBridge,
    bufs: &'static mut Bufs,
    open: Option<Open>,
    /// The offers-delivered counter when the offers were last listed.
    listed: Option<u32>,
    /// Notify the client at the end of this wake-up.
    notify: bool,
    /// Channels opened.
    opens: u32,
}

/// What one packet did.
#[derive(Default)]
struct Seen {
    ready: Option<DeviceInfo>,
    up: bool,
    down: bool,
}

impl Driver {
    /// Waits for the offer and opens it, when the offers-delivered counter moved.
    fn try_open(&mut self) {
        let seen = offers_delivered(&mut self.env);
        if self.listed == Some(seen) {
            return;
        }
        self.listed = Some(seen);
        let offers = match list_offers(&mut self.env, Some(guid::NETWORK)) {
            Ok(o) => o,
            Err(ClientError::Refused(Refusal::NotConnected)) => return,
            Err(e) => {
                println!("net: listing offers: {e}");
                return;
            }
        };
        let Some(offer) = offers.iter().find(|o| o.sub_channel_index == 0) else {
            return;
        };
        let relid = offer.relid;
        let ch = match open(&mut self.env, relid, RING_PAGES, RING_PAGES) {
            Ok(ch) => ch,
            Err(e) => {
                println!("net: open of {relid}: {e}; waiting for the next offer");
                return;
            }
        };
        let bufs = ch
            .alloc_buffer(&mut self.env, RECV_PAGES, true)
            .and_then(|r| Ok((r, ch.alloc_buffer(&mut self.env, SEND_PAGES, true)?)));
        let (recv, send) = match bufs {
            Ok((r, s)) if r.gpadl.is_some() && s.gpadl.is_some() => (r, s),
            Ok(_) | Err(_) => {
                match bufs {
                    Err(e) => println!("net: buffers of {relid}: {e}; closing it"),
                    Ok(_) => println!("net: buffers of {relid} without GPADLs; closing it"),
                }
                if let Err(e) = ch.close(&mut self.env) {
                    println!("net: close of {relid}: {e}");
                }
                return;
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
            println!("net: NVSP start: {e}");
        }
        self.opens += 1;
        println!(
            "net: opened {relid} (open {}): rings {RING_PAGES}+{RING_PAGES} pages, receive buffer {} pages, send buffer {} pages; starting NVSP",
            self.opens, recv.pages, send.pages
        );
        self.open = Some(Open {
            ch,
            recv,
            send,
            dev,
            out,
            up: false,
        });
        if let Err(e) = self.flush() {
            self.on_error(e);
        }
    }

    /// Sends netvsc's outbox.
    fn flush(&mut self) -> Result<(), ClientError> {
        let Some(o) = self.open.as_mut() else {
            return Ok(());
        };
        let mut r = Ok(());
        for p in o.out.packets() {
            let sent = match p.kind {
                PacketKind::InBand => o.ch.send_packet(
                    &mut self.env,
                    p.transaction_id,
                    p.completion_requested,
                    p.payload(),
                ),
                PacketKind::Completion => {
                    o.ch.send_completion(&mut self.env, p.transaction_id, p.payload())
                }
                // Frames go through send sections only (an sDDF buffer fits one).
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

    fn on_error(&mut self, e: ClientError) {
        if e == ClientError::ChannelGone {
            self.gone();
        } else {
            println!("net: channel: {e}");
        }
    }

    /// The channel went away (rescind or close): netvsc forgets what was in flight, the link is
    /// down, a held TX buffer goes back to the client.
    fn gone(&mut self) {
        let Some(mut o) = self.open.take() else {
            return;
        };
        let report = o.dev.rescind(|_| {});
        let before = self.tx.free.tail();
        self.bridge.rescind(&mut self.tx);
        let returned = self.tx.free.tail().wrapping_sub(before);
        println!(
            "net: link down (channel rescinded): {returned} TX buffers returned ({} sections, {} requests in flight forgotten); waiting for the device again",
            report.sections, report.requests
        );
        if returned != 0 && self.tx.free.require_signal() {
            self.tx.free.cancel_signal();
            self.notify = true;
        }
    }

    /// Takes one packet from the inbound ring into netvsc. Whether one was there.
    fn receive_one(&mut self) -> Result<bool, ClientError> {
        let Some(o) = self.open.as_mut() else {
            return Ok(false);
        };
        let Bufs {
            packet,
            ext,
            scratch,
        } = &mut *self.bufs;
        let Some(r) = o.ch.recv_with_ext(&mut self.env, packet, ext)? else {
            return Ok(false);
        };
        let p = RawPacket {
            packet_type: r.packet_type.0,
            flags: u16::from(r.completion_requested),
            transaction_id: r.transaction_id,
            ext: &ext[..r.ext_len],
            payload: &packet[..r.len],
        };
        let faults = Cell::new(0);
        let mut seen = Seen::default();
        let mut rx_problem = None;
        let result = {
            let env = RefCell::new(&mut self.env);
            let recv = Window {
                env: &env,
                ch: &o.ch,
                buf: o.recv,
                faults: &faults,
            };
            let mut send = Window {
                env: &env,
                ch: &o.ch,
                buf: o.send,
                faults: &faults,
            };
            let (rx, rx_data, bridge, notify) = (
                &mut self.rx,
                &mut self.rx_data,
                &mut self.bridge,
                &mut self.notify,
            );
            o.dev
                .on_parts(p, &recv, &mut send, scratch, &mut o.out, |e| match e {
                    Event::Ready(i) => seen.ready = Some(i),
                    Event::LinkUp => seen.up = true,
                    Event::LinkDown => seen.down = true,
                    Event::Frame(f) => match bridge.deliver(rx, rx_data, f) {
                        Ok(true) => *notify = true,
                        Ok(false) => {}
                        Err(e) => rx_problem = Some(e),
                    },
                    Event::TxDone(_) | Event::Subchannels(_) | Event::FilterSet(_) => {}
                })
        };
        if let Err(e) = result {
            println!("net: packet refused: {e}");
        }
        if let Some(e) = rx_problem {
            println!("net: client RX queues: {e}; frame dropped");
        }
        if faults.get() != 0 {
            println!(
                "net: {} buffer copies refused by the channel's checks",
                faults.get()
            );
        }
        if let Some(i) = seen.ready {
            let m = i.mac;
            println!(
                "net: configured: NVSP {}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, MTU {}, {} receive sections of {} bytes, {} send sections of {} bytes",
                i.version,
                m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[5],
                i.mtu,
                i.recv.sections,
                i.recv.section_size,
                i.send_sections,
                i.send_section_size
            );
        }
        let link = o.dev.info().is_some_and(|i| i.link_up);
        if link && !o.up {
            o.up = true;
            if let Some(i) = o.dev.info() {
                let m = i.mac;
                println!(
                    "net: link up, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, MTU {}",
                    m[0], m[1], m[2], m[3], m[4], m[5], i.mtu
                );
            }
            // The client hears that the link came (back): it resends what went unanswered.
            self.notify = true;
        } else if !link && o.up {
            o.up = false;
            println!("net: link down (the host reported it)");
        }
        let _ = seen.down;
        self.flush()?;
        Ok(true)
    }

    /// Sends the client's queued frames while the link is up. Whether anything moved.
    fn transmit(&mut self) -> Result<bool, ClientError> {
        let Some(o) = self.open.as_mut() else {
            return Ok(false);
        };
        if !o.up {
            return Ok(false);
        }
        let faults = Cell::new(0);
        let sent_before = self.bridge.stats.tx_sent + self.bridge.stats.tx_refused;
        let r = {
            let env = RefCell::new(&mut self.env);
            let mut send = Window {
                env: &env,
                ch: &o.ch,
                buf: o.send,
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
        let moved = self.bridge.stats.tx_sent + self.bridge.stats.tx_refused != sent_before;
        if faults.get() != 0 {
            println!(
                "net: {} send-buffer copies refused by the channel's checks",
                faults.get()
            );
        }
        match r {
            Ok((stop, signal)) => {
                if signal {
                    self.tx.free.cancel_signal();
                    self.notify = true;
                }
                if stop == TxStop::Drained {
                    // Ask the client for a notification with its next frame; a frame that
                    // arrived meanwhile is taken in the next pass.
                    match self.tx.active.finish_batch() {
                        Ok(more) => {
                            self.flush()?;
                            return Ok(moved || more);
                        }
                        Err(e) => println!("net: client TX queues: {e}"),
                    }
                }
            }
            Err(e) => println!("net: client TX queues: {e}"),
        }
        self.flush()?;
        Ok(moved)
    }

    /// One pass: inbound packets, then the client's frames. Whether anything moved.
    fn pass(&mut self) -> Result<bool, ClientError> {
        let mut moved = false;
        for _ in 0..PACKETS_PER_PASS {
            if !self.receive_one()? {
                break;
            }
            moved = true;
        }
        moved |= self.transmit()?;
        Ok(moved)
    }

    /// Everything this wake-up may have brought.
    fn pump(&mut self) {
        if self.open.is_none() {
            self.try_open();
        }
        for _ in 0..PASSES {
            if self.open.is_none() {
                break;
            }
            match self.pass() {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => self.on_error(e),
            }
        }
        if self.notify {
            self.notify = false;
            notify(self.client);
        }
    }
}

struct Idle;

impl Handler for Idle {
    fn notified(&mut self, _: PdChannel) {}
}

fn region(config: &pd_runtime::config::PdConfig, name: &str) -> SharedRegion {
    match SharedRegion::of(config, name) {
        Some(r) => r,
        None => panic!("net: region {name} is not mapped writable"),
    }
}

fn init() -> Idle {
    let config = pd_runtime::own_config(CONFIGS);
    let Some(client) = config.channels.iter().find(|c| c.peer == CLIENT) else {
        panic!("net: no channel to {CLIENT}");
    };
    let rx_data = region(config, names::NET_RX_DATA);
    let tx_data = region(config, names::NET_TX_DATA);
    let pair = |free, active, data: &SharedRegion| {
        let q = NetQueue::new(
            region(config, free),
            region(config, active),
            names::NET_QUEUE_CAPACITY,
        );
        match q {
            Ok(q) => (q, NetDataRegion::offsets(QueueMem::size(data) as u64)),
            Err(e) => panic!("net: queues {free}/{active}: {e}"),
        }
    };
    let (rxq, rxr) = pair(names::NET_RX_FREE, names::NET_RX_ACTIVE, &rx_data);
    let (txq, txr) = pair(names::NET_TX_FREE, names::NET_TX_ACTIVE, &tx_data);
    let Some(bufs) = BUFS.take() else {
        panic!("net: buffers taken twice");
    };
    let mut d = Driver {
        env: env_of(config),
        client: PdChannel(client.id),
        rx: rxq.filler(rxr),
        tx: txq.drainer(txr),
        rx_data: Data(rx_data),
        tx_data: Data(tx_data),
        bridge: NetBridge::new(),
        bufs,
        open: None,
        listed: None,
        notify: false,
        opens: 0,
    };
    println!(
        "net: sDDF network driver: {} RX and {} TX buffers of 2048 bytes, queues of {}; waiting for the network device",
        rxr.buffers(),
        txr.buffers(),
        names::NET_QUEUE_CAPACITY
    );
    loop {
        d.pump();
        d.env.wait_notification_now();
    }
}

pd_runtime::protection_domain!(init);
