//! netvsc and storvsc against the bare channel, like against like (README command, not CI):
//!
//! - **network**: UDP datagrams through netvsc as an sDDF network driver (sDDF TX queue →
//!   netvsc send sections → the host switch's UDP echo → receive buffer → sDDF RX queue) at
//!   64-byte and 1472-byte UDP payloads (106- and 1514-byte frames; 1472 is the largest payload
//!   at the host's MTU of 1500); frames/s and MB/s of frames echoed. Against it, in the same
//!   world: the same number of in-band packets of the frame's size echoed by the host's Echo
//!   device over a plain `vmbus_client` channel (the `heartbeat` client, rings of 16 + 16
//!   pages).
//! - **storage**: 4 KiB reads through storvsc as an sDDF block driver to the host's RAM disk at
//!   queue depth 1 and 32 (as many sDDF requests queued at once), and 1 MiB reads and writes
//!   (four 256 KiB requests, the whole 256 KiB disk each time); IOPS and MB/s. Against it, in
//!   the same world: the same bytes echoed in-band by an Echo device (the `storage` client's
//!   second class, rings of 64 + 64 pages) in packets of 4 KiB (the Echo device's largest).
//!
//! The batching policy, the same for every contender: one frame, one block request or one
//! 4 KiB chunk per packet; an iteration queues a whole batch (8 frames; QD requests; 1 MiB),
//! then steps the world (host, driver, every client program once per step) until every answer
//! came back, taking answers after every step; a bare sender puts on the ring what fits and
//! sends the rest as the host consumes. Each answer is checked (length, and for the network
//! the echoed payload). Criterion reports each benchmark; afterwards the bench prints the
//! medians of criterion's samples and the ratios netvsc / bare and storvsc / bare (protocol
//! overhead as time per batch).
//!
//! Run with `cargo bench -p sim-system --bench vsc`. On a small shared machine the figures are
//! indicative only; the ratios, taken in one run, are the figures to compare.

#[path = "common/samples.rs"]
mod samples;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use hv_host::{DeviceSpec, NetOptions};
use samples::{median, record};
use sddf::net::NetBuffer;
use sddf::{BLK_TRANSFER_SIZE, BlkRequestCode, BlkStatus, QueueMem};
use sim_system::network::{NetQueues, NetvscDriver, NetvscHandle, inet_checksum};
use sim_system::storage::{BlkTestClient, SharedQueues, StorHandle, StorvscDriver};
use sim_system::{ClientRingMem, World, WorldConfig};
use vmbus_client::Channel;
use vmbus_driver::driver::ConnectionState;
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::ClientId;

/// Frames per network batch (netvsc has ten send sections).
const NET_BURST: usize = 8;
/// UDP payloads measured.
const UDP_PAYLOADS: [usize; 2] = [64, 1472];
/// Bytes of a storage block request / bare chunk.
const BLOCK: usize = BLK_TRANSFER_SIZE as usize;
/// Blocks of the host's RAM disk (256 KiB).
const DISK_BLOCKS: u64 = 64;
/// Steps a batch may take before the bench gives up.
const MAX_STEPS: u64 = 10_000;

// ---- the bare channel ----

/// A plain channel to an Echo device, driven between world steps.
struct Bare {
    id: ClientId,
    ch: Channel<ClientRingMem>,
    buf: Vec<u8>,
}

impl Bare {
    /// Opens the (only) offer of `class` for client `id` with rings of `pages` + `pages`.
    fn open(w: &mut World, id: ClientId, class: Guid, pages: u16) -> Self {
        w.run_until(
            |w| w.driver_channels().iter().any(|r| r.class == class),
            400,
        )
        .expect("the echo offer arrives");
        let relid = w
            .driver_channels()
            .iter()
            .find(|r| r.class == class)
            .expect("echo offer")
            .relid;
        let ch = w
            .as_client(id, |ctx| vmbus_client::open(ctx, relid, pages, pages))
            .expect("the bare channel opens");
        Self {
            id,
            ch,
            buf: vec![0; 8192],
        }
    }

    /// Echoes `count` in-band packets of `len` bytes (8-byte multiples): sends what fits, steps
    /// the world, takes the echoes, until all came back.
    fn echo(&mut self, w: &mut World, payload: &[u8], count: usize) {
        let (mut sent, mut got) = (0usize, 0usize);
        for _ in 0..MAX_STEPS {
            let Self { id, ch, buf } = self;
            w.as_client(*id, |ctx| {
                while sent < count {
                    match ch.send(ctx, payload) {
                        Ok(()) => sent += 1,
                        Err(vmbus_client::ClientError::Ring(_)) => break,
                        Err(e) => panic!("bare send: {e}"),
                    }
                }
                while let Some(r) = ch.recv(ctx, buf).expect("bare receive") {
                    assert_eq!(r.len, payload.len(), "echo length");
                    got += 1;
                }
            });
            if got == count {
                return;
            }
            w.step();
        }
        panic!("bare echo: {got} of {count} after {MAX_STEPS} steps");
    }
}

// ---- network ----

/// A network world: netvsc on the `net` client, an Echo device on the `heartbeat` client.
struct NetRig {
    w: World,
    drv: NetvscHandle,
    queues: NetQueues,
    rx_started: bool,
    tx_owned: Vec<NetBuffer>,
    bare: Bare,
    frames: u64,
}

impl NetRig {
    fn new() -> Self {
        let mut w = World::repository(&WorldConfig::default());
        let queues = NetQueues::new();
        let prog = NetvscDriver::new(&queues);
        let drv = prog.handle();
        let net_id = w.client("net").expect("net client").id;
        w.set_program(net_id, Box::new(prog));
        let hb = w.client("heartbeat").expect("heartbeat client");
        let (hb_id, hb_class) = (hb.id, hb.classes[0]);
        w.host_mut()
            .add_device(DeviceSpec::echo(hb_class, Guid([7; 16])))
            .expect("echo device");
        w.start();
        w.run_until(
            |w| w.driver().connection().state == ConnectionState::Connected,
            200,
        )
        .expect("connects");
        let bare = Bare::open(&mut w, hb_id, hb_class, 16);
        w.host_mut()
            .add_device(DeviceSpec::network())
            .expect("network device");
        let d = drv.clone();
        w.run_until(move |_| d.ready(), 2000).expect("netvsc ready");
        let region = NetQueues::region();
        Self {
            w,
            drv,
            queues,
            rx_started: false,
            tx_owned: (0..region.buffers())
                .filter_map(|i| region.buffer(i))
                .collect(),
            bare,
            frames: 0,
        }
    }

    /// Sends `frames` as one burst on the sDDF TX queue and steps until every echo came back on
    /// RX (each checked against its request's payload).
    fn burst(&mut self, frames: &[Vec<u8>], payload: &[u8]) {
        let (mut rx, mut tx) = self.queues.client_ends();
        if !self.rx_started {
            rx.fill_free(NetQueues::region()).expect("RX free filled");
            self.rx_started = true;
        }
        let mut sent = 0;
        let mut got = 0;
        let mut f = vec![0u8; 2048];
        for _ in 0..MAX_STEPS {
            while let Some(b) = tx.free.dequeue().expect("TX free") {
                self.tx_owned.push(b);
            }
            while sent < frames.len() {
                let Some(b) = self.tx_owned.pop() else { break };
                let frame = &frames[sent];
                QueueMem::write(&self.queues.tx_data, b.io_or_offset as usize, frame);
                tx.active
                    .enqueue(NetBuffer {
                        len: frame.len() as u16,
                        ..b
                    })
                    .expect("TX active");
                sent += 1;
            }
            while let Some(b) = rx.active.dequeue().expect("RX active") {
                let len = usize::from(b.len);
                let f = &mut f[..len];
                QueueMem::read(&self.queues.rx_data, b.io_or_offset as usize, f);
                rx.free.enqueue(NetBuffer { len: 0, ..b }).expect("RX free");
                assert_eq!(len, frames[0].len(), "echoed frame length");
                assert_eq!(&f[len - payload.len()..], payload, "echoed payload");
                got += 1;
            }
            if got == frames.len() {
                self.frames += got as u64;
                return;
            }
            self.w.step();
        }
        panic!(
            "netvsc: {got} of {} echoes after {MAX_STEPS} steps; {:?}",
            frames.len(),
            self.drv.state().errors
        );
    }
}

/// A UDP datagram from the guest to the switch's echo port carrying `payload`.
fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let o = NetOptions::DEFAULT;
    let guest_ip = sim_system::network::GUEST_IP;
    let ulen = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(usize::from(ulen));
    udp.extend_from_slice(&sim_system::network::UDP_SPORT.to_be_bytes());
    udp.extend_from_slice(&o.udp_echo_port.to_be_bytes());
    udp.extend_from_slice(&ulen.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&guest_ip);
    pseudo[4..8].copy_from_slice(&o.host_ip);
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&ulen.to_be_bytes());
    let c = match inet_checksum(&udp, u32::from(!inet_checksum(&pseudo, 0))) {
        0 => 0xFFFF,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&(20 + ulen).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&guest_ip);
    ip[16..20].copy_from_slice(&o.host_ip);
    let c = inet_checksum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + 20 + udp.len());
    f.extend_from_slice(&o.switch_mac);
    f.extend_from_slice(&o.mac);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

fn bench_network(c: &mut Criterion, rig: &mut NetRig) {
    let mut g = c.benchmark_group("network");
    for &size in &UDP_PAYLOADS {
        let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let frame = udp_frame(&payload);
        let frames = vec![frame.clone(); NET_BURST];
        // The bare packet: the frame's bytes, padded to the ring's 8-byte multiple.
        let mut bare_payload = frame.clone();
        bare_payload.resize(frame.len().next_multiple_of(8), 0);
        g.throughput(Throughput::Bytes((NET_BURST * frame.len()) as u64));
        let net_name = format!("network/netvsc/{size}");
        g.bench_with_input(BenchmarkId::new("netvsc", size), &size, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rig.burst(&frames, &payload);
                }
                let took = start.elapsed();
                record(&net_name, iters, took);
                took
            });
        });
        let bare_name = format!("network/bare/{size}");
        g.bench_with_input(BenchmarkId::new("bare", size), &size, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rig.bare.echo(&mut rig.w, &bare_payload, NET_BURST);
                }
                let took = start.elapsed();
                record(&bare_name, iters, took);
                took
            });
        });
    }
    g.finish();
    let d = rig.drv.state();
    assert_eq!((d.hostile, d.window_faults), (0, 0), "{:?}", d.errors);
    assert_eq!(d.bridge.rx_delivered, rig.frames);
}

// ---- storage ----

/// A storage world: storvsc on the `storage` client's SCSI channel, an Echo device on its
/// second class.
struct StorRig {
    w: World,
    drv: StorHandle,
    client: BlkTestClient,
    bare: Bare,
    next_block: u64,
}

impl StorRig {
    fn new() -> Self {
        let mut w = World::repository(&WorldConfig::default());
        let st = w.client("storage").expect("storage client");
        let (id, echo_class) = (st.id, st.classes[1]);
        w.host_mut()
            .add_device(DeviceSpec::scsi())
            .expect("SCSI device");
        w.host_mut()
            .add_device(DeviceSpec::echo(echo_class, Guid([9; 16])))
            .expect("echo device");
        let queues = SharedQueues::new();
        let prog = StorvscDriver::new(&queues);
        let drv = prog.handle();
        w.set_program(id, Box::new(prog));
        w.start();
        w.run_until(
            |w| w.driver().connection().state == ConnectionState::Connected,
            200,
        )
        .expect("connects");
        let d = drv.clone();
        w.run_until(move |_| d.serving(), 400)
            .expect("storvsc serving");
        let bare = Bare::open(&mut w, id, echo_class, 64);
        let client = BlkTestClient::new(&queues, id);
        Self {
            w,
            drv,
            client,
            bare,
            next_block: 0,
        }
    }

    /// Queues `n` requests of `count` blocks each (data at region offset 0; blocks rotating
    /// over the disk) and steps until all are answered Ok.
    fn batch(&mut self, code: BlkRequestCode, n: usize, count: u16) {
        for _ in 0..n {
            if self.next_block + u64::from(count) > DISK_BLOCKS {
                self.next_block = 0;
            }
            let block = self.next_block;
            self.next_block = (self.next_block + u64::from(count)) % DISK_BLOCKS;
            self.client
                .enqueue(code, 0, block, count)
                .expect("request queued");
        }
        let rs = self.client.wait(&mut self.w, n, MAX_STEPS);
        assert_eq!(rs.len(), n);
        for r in rs {
            assert_eq!(
                (r.status, r.success_count),
                (BlkStatus::Ok, count),
                "{:?}",
                self.drv.state().host_errors
            );
        }
    }
}

/// A storage case: name, request code, requests per batch, blocks per request.
struct StorCase {
    name: &'static str,
    code: BlkRequestCode,
    requests: usize,
    blocks: u16,
}

impl StorCase {
    fn bytes(&self) -> usize {
        self.requests * usize::from(self.blocks) * BLOCK
    }
}

const STOR_CASES: [StorCase; 4] = [
    StorCase {
        name: "read4k_qd1",
        code: BlkRequestCode::Read,
        requests: 1,
        blocks: 1,
    },
    StorCase {
        name: "read4k_qd32",
        code: BlkRequestCode::Read,
        requests: 32,
        blocks: 1,
    },
    StorCase {
        name: "read1m",
        code: BlkRequestCode::Read,
        requests: 4,
        blocks: DISK_BLOCKS as u16,
    },
    StorCase {
        name: "write1m",
        code: BlkRequestCode::Write,
        requests: 4,
        blocks: DISK_BLOCKS as u16,
    },
];

fn bench_storage(c: &mut Criterion, rig: &mut StorRig) {
    let mut g = c.benchmark_group("storage");
    let chunk: Vec<u8> = (0..BLOCK).map(|i| (i * 13 + 1) as u8).collect();
    for case in &STOR_CASES {
        g.throughput(Throughput::Bytes(case.bytes() as u64));
        let name = format!("storage/storvsc/{}", case.name);
        g.bench_function(BenchmarkId::new("storvsc", case.name), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rig.batch(case.code, case.requests, case.blocks);
                }
                let took = start.elapsed();
                record(&name, iters, took);
                took
            });
        });
        let name = format!("storage/bare/{}", case.name);
        let chunks = case.bytes() / BLOCK;
        g.bench_function(BenchmarkId::new("bare", case.name), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rig.bare.echo(&mut rig.w, &chunk, chunks);
                }
                let took = start.elapsed();
                record(&name, iters, took);
                took
            });
        });
    }
    g.finish();
    assert!(rig.drv.state().host_errors.is_empty());
}

// ---- the summary ----

fn report() {
    println!(
        "\n==== netvsc / storvsc against the bare channel (medians of criterion's samples) ===="
    );
    println!("(indicative only on a small shared machine; ratios from one run)");
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>12} {:>8}",
        "case", "vsc/s", "vsc MB/s", "bare/s", "bare MB/s", "ratio"
    );
    let row = |label: &str, vsc: &str, bare: &str, units: usize, bytes: usize| {
        let (Some(v), Some(b)) = (median(vsc), median(bare)) else {
            return;
        };
        let per_s = |ns: f64| units as f64 * 1e9 / ns;
        let mb_s = |ns: f64| bytes as f64 * 1e3 / ns;
        println!(
            "{label:<24} {:>12.0} {:>12.2} {:>12.0} {:>12.2} {:>8.2}",
            per_s(v),
            mb_s(v),
            per_s(b),
            mb_s(b),
            v / b
        );
    };
    for &size in &UDP_PAYLOADS {
        let frame = udp_frame(&vec![0; size]).len();
        row(
            &format!("net UDP {size} B (frames)"),
            &format!("network/netvsc/{size}"),
            &format!("network/bare/{size}"),
            NET_BURST,
            NET_BURST * frame,
        );
    }
    for case in &STOR_CASES {
        row(
            &format!("blk {} (requests)", case.name),
            &format!("storage/storvsc/{}", case.name),
            &format!("storage/bare/{}", case.name),
            case.requests,
            case.bytes(),
        );
    }
    println!(
        "ratio = vsc time / bare time per batch (network: {NET_BURST} frames; storage: QD \
         requests or 1 MiB); MB/s = 10^6 bytes/s of frames or block data"
    );
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut net = NetRig::new();
    bench_network(&mut c, &mut net);
    drop(net);
    let mut stor = StorRig::new();
    bench_storage(&mut c, &mut stor);
    c.final_summary();
    if std::env::args().any(|a| a == "--bench") {
        report();
    }
}
