//! Ring throughput: a writer thread and a reader thread stream packets through a 256 KiB ring,
//! against three baselines on the same payloads (plain memcpy, a cross-core hand-off through one
//! atomic index per packet, and bbqueue), then a ratio table.
//!
//! Run: `cargo bench -p vmbus-driver --bench ring_throughput`

use std::collections::BTreeMap;
use std::hint::{black_box, spin_loop};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use bbqueue::nicknames::Churrasco;
use criterion::{BenchmarkId, Criterion, Throughput};
use shared_mem::HeapRing;
use vmbus_driver::ring::{
    FEATURE_PENDING_SEND_SZ, FlatHeader, FlatRingMem, RingError, RingMem, RingReader, RingWriter,
    SpaceWait, init_ring,
};

/// Data area of the ring (the 256 KiB).
const RING: usize = 256 * 1024;
/// Payload sizes measured.
const SIZES: [usize; 4] = [64, 256, 1500, 4096];
/// Most packets in one batch (one index publish) on either side: 64, or fewer so a batch covers
/// at most an eighth of the ring. Larger batches stop the two sides from working in parallel.
fn chunk_packets(total_len: u32) -> u32 {
    (RING as u32 / 8 / total_len).clamp(1, 64)
}
/// Empty polls (spinning, then yielding) before the reader re-enables interrupts and sleeps.
const IDLE_POLLS: u32 = 2_000;
/// Space a blocked writer asks for: a quarter of the ring, so it is not woken for every packet.
const WAKE_SPACE: u32 = (RING / 4) as u32;

/// Totals per (implementation, payload size): packets, time, signals to the reader, signals to
/// the writer.
type Totals = BTreeMap<(&'static str, usize), (u64, Duration, u64, u64)>;
static TOTALS: Mutex<Totals> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, size: usize, packets: u64, t: Duration, to_r: u64, to_w: u64) {
    let mut totals = TOTALS.lock().unwrap();
    let e = totals.entry((name, size)).or_default();
    e.0 += packets;
    e.1 += t;
    e.2 += to_r;
    e.3 += to_w;
}

/// The wait policy every two-thread variant uses when it must wait for the other side: spin a
/// while, then yield the core (the machine may be shared, and a spinning thread would starve the
/// very thread it waits for).
#[derive(Default)]
struct Backoff(u32);

impl Backoff {
    fn snooze(&mut self) {
        self.0 += 1;
        if self.0 < 1000 {
            spin_loop();
        } else {
            thread::yield_now();
        }
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// A doorbell: a signal bumps a counter; a waiter spins (then yields) until it changes. Models
/// a Hyper-V signal / seL4 notification: a signal sent before the wait is not lost.
#[derive(Default)]
struct Doorbell {
    count: AtomicU64,
}

impl Doorbell {
    fn ring(&self) {
        self.count.fetch_add(1, Ordering::Release);
    }
    fn seen(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }
    fn wait(&self, seen: u64) {
        let mut backoff = Backoff::default();
        while self.count.load(Ordering::Acquire) == seen {
            backoff.snooze();
        }
    }
}

fn words(bytes: usize) -> Vec<std::sync::atomic::AtomicU64> {
    (0..bytes / 8)
        .map(|_| std::sync::atomic::AtomicU64::new(0))
        .collect()
}

/// Our ring over `mem`: each side batches up to `chunk_packets` packets per index publish; the
/// writer blocks through pending_send_sz when full; the reader polls with interrupts masked while
/// it finds data and re-enables them (with the re-check) before it sleeps. Returns the time and
/// the signals sent to the reader and to the writer.
fn stream<M: RingMem + Copy + Send + Sync>(
    mem: M,
    size: usize,
    packets: u64,
) -> (Duration, u64, u64) {
    init_ring(&mem, FEATURE_PENDING_SEND_SZ);
    let to_reader = Doorbell::default();
    let to_writer = Doorbell::default();
    let src = vec![0x5au8; size];
    let total_len = RingWriter::<M>::inband_len(size) as u32;
    let chunk = chunk_packets(total_len);
    let (mut sig_r, mut sig_w) = (0u64, 0u64);
    let start = Instant::now();
    thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut r = RingReader::new(mem).unwrap();
            let mut dst = vec![0u8; size];
            let (mut next, mut signals, mut idle) = (0u64, 0u64, 0u32);
            let mut backoff = Backoff::default();
            r.disable_interrupts();
            while next < packets {
                let seen = to_reader.seen();
                match r.batch() {
                    Ok(mut b) => {
                        let mut taken = 0;
                        while let Some(p) = b.next_packet().unwrap() {
                            assert_eq!(p.transaction_id(), next, "lost or reordered packet");
                            p.read_payload(0, &mut dst).unwrap();
                            next += 1;
                            taken += 1;
                            if taken == chunk {
                                break;
                            }
                        }
                        black_box(&dst);
                        if b.commit().unwrap().signal {
                            signals += 1;
                            to_writer.ring();
                        }
                        idle = 0;
                        backoff.reset();
                    }
                    Err(RingError::Empty) => {
                        idle += 1;
                        if idle < IDLE_POLLS {
                            backoff.snooze();
                            continue;
                        }
                        idle = 0;
                        backoff.reset();
                        if !r.enable_interrupts().unwrap() {
                            to_reader.wait(seen);
                        }
                        r.disable_interrupts();
                    }
                    Err(e) => panic!("reader: {e}"),
                }
            }
            signals
        });
        let mut w = RingWriter::new(mem).unwrap();
        let mut seq = 0u64;
        while seq < packets {
            let mut b = w.batch().unwrap();
            let mut full = false;
            while seq < packets && b.packets() < chunk {
                match b.write_inband(seq, false, &src) {
                    Ok(()) => seq += 1,
                    Err(RingError::Full) => {
                        full = true;
                        break;
                    }
                    Err(e) => panic!("writer: {e}"),
                }
            }
            let written = b.packets();
            if b.commit().signal {
                sig_r += 1;
                to_reader.ring();
            }
            if full && written == 0 {
                let seen = to_writer.seen();
                let want = WAKE_SPACE.max(total_len);
                if w.request_space(want, true).unwrap() == SpaceWait::WaitForSignal {
                    to_writer.wait(seen);
                }
            }
        }
        sig_w = reader.join().unwrap();
    });
    (start.elapsed(), sig_r, sig_w)
}

/// A 256 KiB `HeapRing` with every page touched, so page faults of the fresh (zero-mapped)
/// allocation do not land in the timed region (`words` writes its memory while building it).
fn heap_ring() -> HeapRing {
    let pages = HeapRing::new(RING).unwrap();
    pages.ring().write_data(0, &vec![0; RING]);
    pages
}

/// Our ring over `FlatRingMem` (safe code: relaxed `AtomicU64` data words), two threads.
fn run_ring(size: usize, packets: u64) -> Duration {
    let header = FlatHeader::new();
    let data = words(RING);
    let (t, sig_r, sig_w) = stream(FlatRingMem::new(&header, &data), size, packets);
    record("ring", size, packets, t, sig_r, sig_w);
    t
}

/// Our ring over real pages (`shared_mem::MappedRing` on the heap: the memory and copy
/// primitive the driver uses on seL4), two threads.
fn run_mapped(size: usize, packets: u64) -> Duration {
    let pages = heap_ring();
    let (t, sig_r, sig_w) = stream(pages.ring(), size, packets);
    record("mapped", size, packets, t, sig_r, sig_w);
    t
}

/// Baseline 1: plain memcpy of the same bytes on one core.
fn run_memcpy(size: usize, packets: u64) -> Duration {
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let start = Instant::now();
    for _ in 0..packets {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    }
    let t = start.elapsed();
    record("memcpy", size, packets, t, 0, 0);
    t
}

/// Baseline 2: the cross-core limit: the same bytes through the same kind of memory (relaxed
/// `AtomicU64` words of a 256 KiB area), one slot per packet, the writer publishing one atomic
/// index per packet and the reader one per packet.
fn run_handoff(size: usize, packets: u64) -> Duration {
    let slot_words = size.div_ceil(8);
    let slots = (RING / 8 / slot_words) as u64;
    let area = words(RING);
    let head = AtomicU64::new(0);
    let tail = AtomicU64::new(0);
    let src = vec![0x5au8; size];
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(|| {
            let mut dst = vec![0u8; size];
            let mut backoff = Backoff::default();
            for i in 0..packets {
                // Acquire pairs with the writer's Release store of head.
                while head.load(Ordering::Acquire) <= i {
                    backoff.snooze();
                }
                backoff.reset();
                let base = (i % slots) as usize * slot_words;
                for (k, chunk) in dst.chunks_mut(8).enumerate() {
                    let v = area[base + k].load(Ordering::Relaxed).to_le_bytes();
                    chunk.copy_from_slice(&v[..chunk.len()]);
                }
                black_box(&dst);
                // Release pairs with the writer's Acquire load of tail.
                tail.store(i + 1, Ordering::Release);
            }
        });
        let mut backoff = Backoff::default();
        for i in 0..packets {
            // Acquire pairs with the reader's Release store of tail.
            while i - tail.load(Ordering::Acquire) >= slots {
                backoff.snooze();
            }
            backoff.reset();
            let base = (i % slots) as usize * slot_words;
            for (k, chunk) in src.chunks(8).enumerate() {
                let mut v = [0u8; 8];
                v[..chunk.len()].copy_from_slice(chunk);
                area[base + k].store(u64::from_le_bytes(v), Ordering::Relaxed);
            }
            head.store(i + 1, Ordering::Release);
        }
    });
    let t = start.elapsed();
    record("handoff", size, packets, t, 0, 0);
    t
}

/// Baseline 2 for the mapped ring: the same hand-off (one slot per packet, one atomic index per
/// packet each way) with the mapped ring's own copy primitive over the same kind of pages.
fn run_handoff_mapped(size: usize, packets: u64) -> Duration {
    let slot = size.next_multiple_of(8);
    let slots = (RING / slot) as u64;
    let pages = heap_ring();
    let area = pages.ring();
    let head = AtomicU64::new(0);
    let tail = AtomicU64::new(0);
    let src = vec![0x5au8; size];
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(|| {
            let mut dst = vec![0u8; size];
            let mut backoff = Backoff::default();
            for i in 0..packets {
                // Acquire pairs with the writer's Release store of head.
                while head.load(Ordering::Acquire) <= i {
                    backoff.snooze();
                }
                backoff.reset();
                area.read_data(((i % slots) as usize * slot) as u32, &mut dst);
                black_box(&dst);
                // Release pairs with the writer's Acquire load of tail.
                tail.store(i + 1, Ordering::Release);
            }
        });
        let mut backoff = Backoff::default();
        for i in 0..packets {
            // Acquire pairs with the reader's Release store of tail.
            while i - tail.load(Ordering::Acquire) >= slots {
                backoff.snooze();
            }
            backoff.reset();
            area.write_data(((i % slots) as usize * slot) as u32, &src);
            head.store(i + 1, Ordering::Release);
        }
    });
    let t = start.elapsed();
    record("handoff_mapped", size, packets, t, 0, 0);
    t
}

/// CPU cost without a second thread: our ring over `mem` written and read by one thread, a
/// batch at a time. Less sensitive than the two-thread runs to a machine shared with other work.
fn one_thread<M: RingMem + Copy>(mem: M, size: usize, packets: u64) -> Duration {
    let mut w = RingWriter::new(mem).unwrap();
    let mut r = RingReader::new(mem).unwrap();
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let chunk = chunk_packets(RingWriter::<M>::inband_len(size) as u32);
    let start = Instant::now();
    let mut seq = 0;
    while seq < packets {
        let mut b = w.batch().unwrap();
        while seq < packets && b.packets() < chunk {
            b.write_inband(seq, false, &src).unwrap();
            seq += 1;
        }
        b.commit();
        let mut rb = r.batch().unwrap();
        while let Some(p) = rb.next_packet().unwrap() {
            p.read_payload(0, &mut dst).unwrap();
            black_box(&dst);
        }
        rb.commit().unwrap();
    }
    start.elapsed()
}

/// [`one_thread`] over `FlatRingMem`.
fn run_ring_1t(size: usize, packets: u64) -> Duration {
    let header = FlatHeader::new();
    let data = words(RING);
    let t = one_thread(FlatRingMem::new(&header, &data), size, packets);
    record("ring_1t", size, packets, t, 0, 0);
    t
}

/// [`one_thread`] over `MappedRing` heap pages.
fn run_mapped_1t(size: usize, packets: u64) -> Duration {
    let pages = heap_ring();
    let t = one_thread(pages.ring(), size, packets);
    record("mapped_1t", size, packets, t, 0, 0);
    t
}

/// bbqueue's CPU cost on one thread: grant, copy in, commit, read, copy out, release.
static BBQ_1T: Churrasco<RING> = Churrasco::new();

fn run_bbqueue_1t(size: usize, packets: u64) -> Duration {
    let prod = BBQ_1T.framed_producer();
    let cons = BBQ_1T.framed_consumer();
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let len = u16::try_from(size).unwrap();
    let start = Instant::now();
    for _ in 0..packets {
        let mut g = prod.grant(len).unwrap();
        g[..size].copy_from_slice(&src);
        g.commit(len);
        let g = cons.read().unwrap();
        dst.copy_from_slice(&g[..size]);
        black_box(&dst);
        g.release();
    }
    let t = start.elapsed();
    record("bbqueue_1t", size, packets, t, 0, 0);
    t
}

/// Baseline 3: bbqueue (framed producer/consumer, one frame per packet) over 256 KiB.
static BBQ: Churrasco<RING> = Churrasco::new();

fn run_bbqueue(size: usize, packets: u64) -> Duration {
    let prod = BBQ.framed_producer();
    let cons = BBQ.framed_consumer();
    let src = vec![0x5au8; size];
    let len = u16::try_from(size).unwrap();
    let start = Instant::now();
    thread::scope(|s| {
        s.spawn(|| {
            let mut dst = vec![0u8; size];
            let mut got = 0;
            let mut backoff = Backoff::default();
            while got < packets {
                match cons.read() {
                    Ok(g) => {
                        dst.copy_from_slice(&g[..size]);
                        black_box(&dst);
                        g.release();
                        got += 1;
                        backoff.reset();
                    }
                    Err(_) => backoff.snooze(),
                }
            }
        });
        let mut sent = 0;
        let mut backoff = Backoff::default();
        while sent < packets {
            match prod.grant(len) {
                Ok(mut g) => {
                    g[..size].copy_from_slice(&src);
                    g.commit(len);
                    sent += 1;
                    backoff.reset();
                }
                Err(_) => backoff.snooze(),
            }
        }
    });
    let t = start.elapsed();
    record("bbqueue", size, packets, t, 0, 0);
    t
}

/// One measured implementation: streams `packets` packets of `size` bytes, returns the time.
type Run = fn(usize, u64) -> Duration;

fn bench(c: &mut Criterion) {
    for size in SIZES {
        let mut g = c.benchmark_group(format!("ring_{size}B"));
        g.throughput(Throughput::Bytes(size as u64));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_millis(1500));
        let runs: [(&str, Run); 9] = [
            ("ring", run_ring),
            ("mapped", run_mapped),
            ("ring_1t", run_ring_1t),
            ("mapped_1t", run_mapped_1t),
            ("bbqueue_1t", run_bbqueue_1t),
            ("memcpy", run_memcpy),
            ("handoff", run_handoff),
            ("handoff_mapped", run_handoff_mapped),
            ("bbqueue", run_bbqueue),
        ];
        for (name, run) in runs {
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, &size| {
                b.iter_custom(|iters| run(size, iters));
            });
        }
        g.finish();
    }
}

fn rate(t: &Totals, name: &'static str, size: usize) -> f64 {
    let (p, d, _, _) = t.get(&(name, size)).copied().unwrap_or_default();
    p as f64 / d.as_secs_f64().max(1e-12)
}

fn print_table() {
    let t = TOTALS.lock().unwrap();
    println!();
    println!("ring_throughput: mean over every criterion sample (256 KiB ring), two threads");
    println!(
        "ring = our ring over FlatRingMem (AtomicU64 words, safe code); mapped = our ring over \
         shared-mem's MappedRing (heap pages, the driver's copy primitive)."
    );
    println!(
        "{:>6} {:>6} | {:>11} {:>9} {:>7} {:>7} | {:>11} {:>11} {:>11} | {:>7} {:>7} {:>7}",
        "memory",
        "size",
        "pkt/s",
        "MB/s",
        "sig->rd",
        "sig->wr",
        "memcpy p/s",
        "handoff p/s",
        "bbqueue p/s",
        "x mcpy",
        "x hand",
        "x bbq"
    );
    for (name, handoff) in [("ring", "handoff"), ("mapped", "handoff_mapped")] {
        for size in SIZES {
            let ours = rate(&t, name, size);
            let (p, _, to_r, to_w) = t.get(&(name, size)).copied().unwrap_or_default();
            let per_k = |n: u64| n as f64 * 1000.0 / (p.max(1) as f64);
            let (m, h, b) = (
                rate(&t, "memcpy", size),
                rate(&t, handoff, size),
                rate(&t, "bbqueue", size),
            );
            println!(
                "{:>6} {:>6} | {:>11.0} {:>9.1} {:>7.3} {:>7.3} | {:>11.0} {:>11.0} {:>11.0} | {:>7.3} {:>7.3} {:>7.3}",
                name,
                size,
                ours,
                ours * size as f64 / 1e6,
                per_k(to_r),
                per_k(to_w),
                m,
                h,
                b,
                ours / m,
                ours / h,
                ours / b
            );
        }
    }
    println!("handoff: relaxed AtomicU64 words for `ring`, MappedRing's copies for `mapped`.");
    println!();
    println!(
        "one thread (CPU cost per packet written and read; less sensitive to a shared machine):"
    );
    println!(
        "{:>6} | {:>12} {:>12} {:>12} | {:>8} {:>8}",
        "size", "ring ns/pkt", "mapped ns", "bbqueue ns", "ring x", "mapped x"
    );
    for size in SIZES {
        let (ours, mapped, theirs) = (
            rate(&t, "ring_1t", size),
            rate(&t, "mapped_1t", size),
            rate(&t, "bbqueue_1t", size),
        );
        println!(
            "{:>6} | {:>12.1} {:>12.1} {:>12.1} | {:>8.3} {:>8.3}",
            size,
            1e9 / ours,
            1e9 / mapped,
            1e9 / theirs,
            ours / theirs,
            mapped / theirs
        );
    }
    println!("sig->rd / sig->wr: signals per 1000 packets to the reader / to the blocked writer.");
    println!(
        "Ratios are packets/s against bbqueue measured in this run (x bbq, ring x, mapped x)."
    );
    println!("Targets: x bbq >= 1.0 at every size; x hand >= 0.7 at 4096; sig->rd <= 1.");
}

/// Profiling hook: `RING_PROFILE=<name>:<size>[:<packets>]` runs just that one measurement (no
/// criterion; names as in the criterion ids), for `valgrind --tool=callgrind` or `perf`.
fn profile(spec: &str) {
    let mut it = spec.split(':');
    let name = it.next().unwrap_or_default();
    let size: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let packets: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let t = match name {
        "ring_1t" => run_ring_1t(size, packets),
        "mapped_1t" => run_mapped_1t(size, packets),
        "ring" => run_ring(size, packets),
        "mapped" => run_mapped(size, packets),
        "handoff" => run_handoff(size, packets),
        "handoff_mapped" => run_handoff_mapped(size, packets),
        "bbqueue" => run_bbqueue(size, packets),
        "bbqueue_1t" => run_bbqueue_1t(size, packets),
        other => panic!("unknown profile target {other}"),
    };
    println!(
        "{name} {size} B: {:.1} ns/pkt",
        t.as_nanos() as f64 / packets as f64
    );
}

fn main() {
    if let Ok(spec) = std::env::var("RING_PROFILE") {
        profile(&spec);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    print_table();
}
