//! Ring throughput, compared like with like: a writer thread and a reader thread stream packets
//! through a 256 KiB ring, against a memcpy hand-off and bbqueue moving the same bytes under the
//! same publish policy, then a table of medians and ratios.
//!
//! Run: `cargo bench -p vmbus-driver --bench ring_throughput`, or `cargo xtask bench` for this
//! and the driver benchmark in one table. `cargo test --release --bench ring_throughput` makes
//! one short pass over every cell (the correctness checks only; the figures mean nothing).
//!
//! # What is compared
//!
//! Per payload size (64, 256, 1500, 4096 B) and publish mode:
//!
//! - **per packet**: every contender publishes its index once per packet on both sides (the
//!   ring commits a write batch of one packet and a read batch of one packet; the hand-off
//!   stores head and tail once per packet; bbqueue grants, commits, reads and releases one
//!   packet at a time);
//! - **batched**: the same batch of [`BATCH`] packets for every contender: each side loads the
//!   peer's index once per batch, moves up to `BATCH` packets and publishes once (bbqueue grants
//!   the bytes of `BATCH` packets at once and releases as many).
//!
//! The contenders, two threads each:
//!
//! - `flat`: our ring over `FlatRingMem` (safe code, relaxed `AtomicU64` data words);
//! - `mapped`: our ring over shared-mem's `MappedRing` on heap pages (the driver's memory and
//!   copy primitive on seL4);
//! - `hand-off`: the cross-core limit: `memcpy` of the same bytes into fixed slots of a 256 KiB
//!   area, one head and one tail index, each alone on its own 128-byte line (no false sharing,
//!   and no adjacent-line prefetch pulling in the other index);
//! - `hand-off 1 line`: the same with head and tail on one cache line, as the VMBus ring header
//!   has them (write index at byte 0, read index at byte 4), and `hand-off protocol`: that, plus
//!   the ring protocol's barrier after each publish (a `SeqCst` fence, then loads of the peer's
//!   words on that line: the interrupt mask and read index for the writer, pending_send_sz for
//!   the reader): diagnostics of what the protocol's layout and barriers cost whatever the code,
//!   printed in the bench's own table only;
//! - `bbqueue`: the stream producer/consumer of the widely used SPSC byte queue, fixed-size
//!   packets, no framing.
//!
//! The one-thread cell (CPU cost per packet written and read, less sensitive to a shared machine)
//! batches the same way for the ring and for bbqueue: write a batch, publish, read it, publish.
//!
//! The ring keeps every check it has on hostile data; the reader also checks every transaction
//! id (one compare per packet), so a broken ring cannot produce a figure.
//!
//! # How it is measured
//!
//! Per (size, mode), one warm-up run of every contender, then [`RUNS`] rounds, each running every
//! contender once in a rotated order, so that the load of a shared machine falls on all alike.
//! A run streams a fixed number of packets; its timed region starts when the writer passes a
//! barrier both threads wait at (thread start-up and pinning are outside) and ends when the
//! reader has the last packet. A cell is the median of its runs with the interquartile range
//! `[p25 .. p75]`; a ratio is the median of the per-round ratios (the contenders of one round ran
//! back to back). Signals are counted per 1000 packets per run: `sig->rd` the writer's signals to
//! a reader that re-enabled interrupts before sleeping, `sig->wr` the reader's pending-send-size
//! wake-ups of a blocked writer. The wait policy of every two-thread contender: spin a while, then
//! yield the core.
//!
//! `VMBUS_BENCH_PIN=1` (set by `cargo xtask bench`) pins the writer and reader threads to two
//! distinct cores when more than two cores are available; `VMBUS_BENCH_QUICK=1` makes a short
//! run (3 rounds, a tenth of the packets). After its table the bench prints each figure again as a
//! machine-readable line, `BENCH<TAB>ring<TAB>case<TAB>metric<TAB>median<TAB>p25<TAB>p75`, and
//! what the spread is in a `BENCHNOTE<TAB>ring<TAB>text` line, which `cargo xtask bench` collects.
//!
//! `RING_PROFILE=<name>:<size>[:<packets>[:packet|batched]]` runs one contender once and nothing
//! else (names: `flat`, `mapped`, `handoff`, `handoff_1line`, `handoff_protocol`, `bbqueue`,
//! `flat_1t`, `mapped_1t`, `bbqueue_1t`), for `valgrind --tool=cachegrind` or `perf`; docs/performance.md has the
//! commands and the figures they gave.
#![allow(unsafe_code)] // The memcpy hand-off only (`Slots`): see the SAFETY comments there.

use std::cell::UnsafeCell;
use std::hint::{black_box, spin_loop};
use std::sync::Barrier;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use bbqueue::nicknames::Churrasco;
use shared_mem::HeapRing;
use vmbus_driver::ring::{
    FEATURE_PENDING_SEND_SZ, FlatHeader, FlatRingMem, RingError, RingMem, RingReader, RingWriter,
    SpaceWait, init_ring,
};

/// Data area of the ring, the hand-off area and bbqueue's buffer.
const RING: usize = 256 * 1024;
/// Payload sizes measured.
const SIZES: [usize; 4] = [64, 256, 1500, 4096];
/// Packets per batch in the batched mode, for every contender and size (at 4 KiB a batch is a
/// quarter of the ring, so the two sides still overlap).
const BATCH: usize = 16;
/// Timed rounds per cell (after one warm-up round).
const RUNS: usize = 11;
/// Timed rounds per cell with `VMBUS_BENCH_QUICK=1`.
const QUICK_RUNS: usize = 3;
/// Empty polls (spinning, then yielding) before the ring's reader re-enables interrupts and
/// sleeps, and full polls before its writer sets pending_send_sz and sleeps: the same wait
/// policy on both sides.
const IDLE_POLLS: u32 = 2_000;
/// Space a blocked ring writer asks for: a quarter of the ring, so it is not woken per packet.
const WAKE_SPACE: u32 = (RING / 4) as u32;

/// Publish policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    PerPacket,
    Batched,
}

impl Mode {
    /// Most packets moved per index publish.
    fn batch(self) -> usize {
        match self {
            Self::PerPacket => 1,
            Self::Batched => BATCH,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::PerPacket => "packet",
            Self::Batched => "batched",
        }
    }
}

/// Packets one timed run streams: about 64 MiB of payload, at least 50,000 and at most
/// 1,000,000 packets (a run takes tens of milliseconds); `scale` divides it (quick and test
/// passes).
fn packets_per_run(size: usize, scale: u64) -> u64 {
    ((64 << 20) / size as u64).clamp(50_000, 1_000_000) / scale
}

// ---------------------------------------------------------------------------------------------
// Threads: waiting, pinning, the timed region.

/// The wait policy every two-thread contender uses when it must wait for the other side: spin a
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

/// The cores the writer and the reader run on, when pinned.
#[derive(Debug, Clone, Copy)]
struct Pinning {
    cores: Option<(usize, usize)>,
    why: &'static str,
}

impl Pinning {
    /// Pins when `VMBUS_BENCH_PIN=1` and more than two cores are available: the writer and the
    /// reader on the second and third cores this process may use (the first is left to the main
    /// thread and the system).
    fn decide() -> Self {
        if std::env::var("VMBUS_BENCH_PIN").as_deref() != Ok("1") {
            return Self {
                cores: None,
                why: "VMBUS_BENCH_PIN is not 1",
            };
        }
        let n = thread::available_parallelism().map_or(1, |n| n.get());
        if n <= 2 {
            return Self {
                cores: None,
                why: "two cores or fewer available",
            };
        }
        let allowed = allowed_cpus();
        match allowed.get(1..3) {
            Some(&[w, r]) => {
                let p = Self {
                    cores: Some((w, r)),
                    why: "",
                };
                // Check once that pinning works here at all.
                if pin_current_thread(w) {
                    p
                } else {
                    Self {
                        cores: None,
                        why: "`taskset` could not pin a thread",
                    }
                }
            }
            _ => Self {
                cores: None,
                why: "fewer than three allowed CPUs listed",
            },
        }
    }

    fn describe(&self) -> String {
        match self.cores {
            Some((w, r)) => format!("writer on CPU {w}, reader on CPU {r}"),
            None => format!("not pinned ({})", self.why),
        }
    }
}

/// The CPUs this process may run on (`Cpus_allowed_list` of /proc/self/status, e.g. `0-3,8`).
fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(list) = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
    else {
        return Vec::new();
    };
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

/// Pins the calling thread to `cpu` with util-linux's `taskset` on the thread's own id (read
/// from /proc/thread-self): no `unsafe` and no extra dependency for a benchmark-only need.
fn pin_current_thread(cpu: usize) -> bool {
    let Ok(link) = std::fs::read_link("/proc/thread-self") else {
        return false;
    };
    let Some(tid) = link.file_name().and_then(|t| t.to_str()).map(str::to_owned) else {
        return false;
    };
    std::process::Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string(), &tid])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `writer` and `reader` on two fresh threads (pinned as `pin` says) that start together
/// at a barrier; the time is from the writer passing the barrier to the reader returning.
/// Returns it in seconds with the two closures' results.
fn two_threads<W, R, A, B>(pin: Pinning, writer: W, reader: R) -> (f64, A, B)
where
    W: FnOnce() -> A + Send,
    R: FnOnce() -> B + Send,
    A: Send,
    B: Send,
{
    let go = Barrier::new(2);
    thread::scope(|s| {
        let r = s.spawn(|| {
            if let Some((_, cpu)) = pin.cores {
                pin_current_thread(cpu);
            }
            go.wait();
            let out = reader();
            (Instant::now(), out)
        });
        if let Some((cpu, _)) = pin.cores {
            pin_current_thread(cpu);
        }
        go.wait();
        let start = Instant::now();
        let a = writer();
        let (end, b) = r.join().unwrap();
        ((end - start).as_secs_f64(), a, b)
    })
}

// ---------------------------------------------------------------------------------------------
// The ring, two threads.

/// One timed run's outcome: seconds, and the signals to the reader and to the writer.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    secs: f64,
    to_reader: u64,
    to_writer: u64,
}

/// Our ring over `mem`: each side moves up to `batch` packets per index publish. Both sides wait
/// alike: the reader polls with interrupts masked while it finds data and re-enables them (with
/// the re-check) after [`IDLE_POLLS`] empty polls before it sleeps; the writer polls a full ring
/// [`IDLE_POLLS`] times before it sets pending_send_sz (with the re-check) and sleeps.
fn ring_stream<M: RingMem + Copy + Send + Sync>(
    mem: M,
    size: usize,
    packets: u64,
    batch: usize,
    pin: Pinning,
) -> Outcome {
    init_ring(&mem, FEATURE_PENDING_SEND_SZ);
    let to_reader = Doorbell::default();
    let to_writer = Doorbell::default();
    let total_len = RingWriter::<M>::inband_len(size) as u32;
    let batch = batch as u32;
    // Each side's state and buffer are made in its own thread (its stack, its allocation), so no
    // line is shared between the two threads but the ring's own.
    let writer = || {
        let mut w = RingWriter::new(mem).unwrap();
        let src = vec![0x5au8; size];
        let (mut seq, mut signals, mut full_polls) = (0u64, 0u64, 0u32);
        let mut backoff = Backoff::default();
        while seq < packets {
            let mut b = w.batch().unwrap();
            let mut full = false;
            while seq < packets && b.packets() < batch {
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
                signals += 1;
                to_reader.ring();
            }
            if !full || written > 0 {
                full_polls = 0;
                backoff.reset();
            } else if full_polls < IDLE_POLLS {
                full_polls += 1;
                backoff.snooze();
            } else {
                full_polls = 0;
                backoff.reset();
                let seen = to_writer.seen();
                let want = WAKE_SPACE.max(total_len);
                if w.request_space(want, true).unwrap() == SpaceWait::WaitForSignal {
                    to_writer.wait(seen);
                }
            }
        }
        signals
    };
    let reader = || {
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
                        black_box(&dst);
                        next += 1;
                        taken += 1;
                        if taken == batch {
                            break;
                        }
                    }
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
    };
    let (secs, to_reader, to_writer) = two_threads(pin, writer, reader);
    Outcome {
        secs,
        to_reader,
        to_writer,
    }
}

fn words(bytes: usize) -> Vec<AtomicU64> {
    (0..bytes / 8).map(|_| AtomicU64::new(0)).collect()
}

/// A 256 KiB `HeapRing` with every page touched, so page faults of the fresh (zero-mapped)
/// allocation do not land in the timed region (`words` writes its memory while building it).
fn heap_ring() -> HeapRing {
    let pages = HeapRing::new(RING).unwrap();
    pages.ring().write_data(0, &vec![0; RING]);
    pages
}

// ---------------------------------------------------------------------------------------------
// The memcpy hand-off.

/// One 64-byte line of the hand-off area.
#[repr(C, align(64))]
struct Line(UnsafeCell<[u8; 64]>);

/// The hand-off area: fixed slots of plain memory, written with `memcpy` by the writer and read
/// with `memcpy` by the reader.
struct Slots {
    lines: Vec<Line>,
    /// Slot stride in bytes: the payload size rounded up to 8, as the ring packs its packets.
    stride: usize,
    count: u64,
}

// SAFETY: the writer only writes slot `i % count` while `i - tail < count` (the reader has
// released its previous use: Acquire load of tail pairs with the reader's Release store), and
// the reader only reads slot `i % count` while `i < head` (the writer has filled it: Acquire load
// of head pairs with the writer's Release store). So no slot is accessed by both threads at once.
unsafe impl Sync for Slots {}

impl Slots {
    fn new(size: usize) -> Self {
        let lines: Vec<Line> = (0..RING / 64)
            .map(|_| Line(UnsafeCell::new([0; 64])))
            .collect();
        let stride = size.next_multiple_of(8);
        Self {
            lines,
            stride,
            count: (RING / stride) as u64,
        }
    }

    /// The slot for packet `i`.
    fn slot(&self, i: u64) -> *mut u8 {
        let off = (i % self.count) as usize * self.stride;
        // In bounds: off + stride <= RING = the area's length in bytes.
        UnsafeCell::raw_get(self.lines.as_ptr().cast::<UnsafeCell<u8>>()).wrapping_add(off)
    }

    /// Copies `src` into packet `i`'s slot.
    ///
    /// Only the writer calls this, for a slot the reader has released (see `Sync` above).
    fn put(&self, i: u64, src: &[u8]) {
        assert!(src.len() <= self.stride);
        // SAFETY: the slot lies in the area (`slot`), `src` is at most a stride long and is our
        // own buffer, and no other access to the slot runs now (the index protocol above).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.slot(i), src.len()) };
    }

    /// Copies packet `i`'s slot into `dst`.
    ///
    /// Only the reader calls this, for a slot the writer has published.
    fn get(&self, i: u64, dst: &mut [u8]) {
        assert!(dst.len() <= self.stride);
        // SAFETY: as in `put`, with the roles swapped.
        unsafe { std::ptr::copy_nonoverlapping(self.slot(i), dst.as_mut_ptr(), dst.len()) };
    }
}

/// An index alone on a 128-byte line pair.
#[repr(C, align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

/// Head and tail, each on its own 128-byte line pair.
#[derive(Default)]
struct ApartIndices {
    head: Padded,
    tail: Padded,
}

/// Head and tail on one cache line, as the VMBus ring header keeps its two indices, with the
/// header's other two words there (never set here: the interrupt mask and pending_send_sz).
#[repr(C, align(128))]
#[derive(Default)]
struct SharedLine {
    head: AtomicU64,
    tail: AtomicU64,
    mask: AtomicU64,
    pending: AtomicU64,
}

trait Indices: Default + Sync {
    fn head(&self) -> &AtomicU64;
    fn tail(&self) -> &AtomicU64;
    /// The words the ring protocol's barrier loads after a publish: (the interrupt mask, which
    /// the writer loads; pending_send_sz, which the reader loads).
    fn flags(&self) -> (&AtomicU64, &AtomicU64);
}

impl Indices for ApartIndices {
    fn head(&self) -> &AtomicU64 {
        &self.head.0
    }
    fn tail(&self) -> &AtomicU64 {
        &self.tail.0
    }
    fn flags(&self) -> (&AtomicU64, &AtomicU64) {
        unreachable!("the protocol barrier is measured on the shared line only")
    }
}

impl Indices for SharedLine {
    fn head(&self) -> &AtomicU64 {
        &self.head
    }
    fn tail(&self) -> &AtomicU64 {
        &self.tail
    }
    fn flags(&self) -> (&AtomicU64, &AtomicU64) {
        (&self.mask, &self.pending)
    }
}

/// The hand-off: the writer loads tail once per batch, copies up to `batch` packets into free
/// slots and publishes head once; the reader loads head once per batch, copies up to `batch`
/// packets out and publishes tail once. With `BARRIER`, each publish is followed by the ring
/// protocol's barrier: a `SeqCst` fence, then the writer loads the mask and tail (as
/// `WriteBatch::commit` loads the interrupt mask and read index), the reader loads pending
/// (as `ReadBatch::commit` loads pending_send_sz).
fn handoff<I: Indices, const BARRIER: bool>(
    size: usize,
    packets: u64,
    batch: usize,
    pin: Pinning,
) -> Outcome {
    let slots = Slots::new(size);
    let idx = I::default();
    let batch = batch as u64;
    // Each side's buffer is allocated in its own thread, as in `ring_stream`.
    let writer = || {
        let src = vec![0x5au8; size];
        let mut i = 0u64;
        let mut backoff = Backoff::default();
        while i < packets {
            // Acquire pairs with the reader's Release store of tail.
            let free = slots.count - (i - idx.tail().load(Ordering::Acquire));
            if free == 0 {
                backoff.snooze();
                continue;
            }
            backoff.reset();
            let n = free.min(batch).min(packets - i);
            for k in i..i + n {
                slots.put(k, &src);
            }
            i += n;
            idx.head().store(i, Ordering::Release);
            if BARRIER {
                std::sync::atomic::fence(Ordering::SeqCst);
                black_box(idx.flags().0.load(Ordering::Acquire));
                black_box(idx.tail().load(Ordering::Acquire));
            }
        }
    };
    let reader = || {
        let mut dst = vec![0u8; size];
        let mut i = 0u64;
        let mut backoff = Backoff::default();
        while i < packets {
            // Acquire pairs with the writer's Release store of head.
            let ready = idx.head().load(Ordering::Acquire) - i;
            if ready == 0 {
                backoff.snooze();
                continue;
            }
            backoff.reset();
            let n = ready.min(batch);
            for k in i..i + n {
                slots.get(k, &mut dst);
                black_box(&dst);
            }
            i += n;
            idx.tail().store(i, Ordering::Release);
            if BARRIER {
                std::sync::atomic::fence(Ordering::SeqCst);
                black_box(idx.flags().1.load(Ordering::Acquire));
            }
        }
    };
    let (secs, (), ()) = two_threads(pin, writer, reader);
    Outcome {
        secs,
        ..Outcome::default()
    }
}

// ---------------------------------------------------------------------------------------------
// bbqueue.

/// bbqueue's buffer for every run (runs never overlap, and each drains what it wrote).
static BBQ: Churrasco<RING> = Churrasco::new();

/// bbqueue, two threads: the writer grants the bytes of up to `batch` packets, copies them in and
/// commits; the reader reads, copies out up to `batch` packets and releases their bytes.
fn bbqueue(size: usize, packets: u64, batch: usize, pin: Pinning) -> Outcome {
    let prod = BBQ.stream_producer();
    let cons = BBQ.stream_consumer();
    let batch = batch as u64;
    // Each side's buffer is allocated in its own thread, as in `ring_stream`.
    let writer = || {
        let src = vec![0x5au8; size];
        let mut sent = 0u64;
        let mut backoff = Backoff::default();
        while sent < packets {
            let n = batch.min(packets - sent);
            let bytes = n as usize * size;
            match prod.grant_exact(bytes) {
                Ok(mut g) => {
                    for p in g.chunks_exact_mut(size) {
                        p.copy_from_slice(&src);
                    }
                    g.commit(bytes);
                    sent += n;
                    backoff.reset();
                }
                Err(_) => backoff.snooze(),
            }
        }
    };
    let reader = || {
        let mut dst = vec![0u8; size];
        let mut got = 0u64;
        let mut backoff = Backoff::default();
        while got < packets {
            match cons.read() {
                Ok(g) => {
                    let n = (g.len() / size).min(batch as usize);
                    for p in g.chunks_exact(size).take(n) {
                        dst.copy_from_slice(p);
                        black_box(&dst);
                    }
                    g.release(n * size);
                    got += n as u64;
                    backoff.reset();
                }
                Err(_) => backoff.snooze(),
            }
        }
    };
    let (secs, (), ()) = two_threads(pin, writer, reader);
    Outcome {
        secs,
        ..Outcome::default()
    }
}

// ---------------------------------------------------------------------------------------------
// One thread: CPU cost per packet.

/// Our ring over `mem` written and read by one thread: a batch of up to `batch` packets written
/// and published, then read and published.
fn ring_one_thread<M: RingMem + Copy>(mem: M, size: usize, packets: u64, batch: usize) -> f64 {
    init_ring(&mem, FEATURE_PENDING_SEND_SZ);
    let mut w = RingWriter::new(mem).unwrap();
    let mut r = RingReader::new(mem).unwrap();
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let batch = batch as u32;
    let start = Instant::now();
    let mut seq = 0;
    while seq < packets {
        let mut b = w.batch().unwrap();
        while seq < packets && b.packets() < batch {
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
    start.elapsed().as_secs_f64()
}

/// bbqueue on one thread, batched the same way: grant the bytes of up to `batch` packets, copy
/// in, commit; read, copy out, release.
fn bbqueue_one_thread(size: usize, packets: u64, batch: usize) -> f64 {
    let prod = BBQ.stream_producer();
    let cons = BBQ.stream_consumer();
    let src = vec![0x5au8; size];
    let mut dst = vec![0u8; size];
    let batch = batch as u64;
    let start = Instant::now();
    let mut sent = 0;
    while sent < packets {
        let n = batch.min(packets - sent);
        let bytes = n as usize * size;
        let mut g = prod.grant_exact(bytes).unwrap();
        for p in g.chunks_exact_mut(size) {
            p.copy_from_slice(&src);
        }
        g.commit(bytes);
        let g = cons.read().unwrap();
        assert_eq!(g.len(), bytes, "bbqueue: one read per batch");
        for p in g.chunks_exact(size) {
            dst.copy_from_slice(p);
            black_box(&dst);
        }
        g.release(bytes);
        sent += n;
    }
    start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// The contenders and the measurement.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Flat,
    Mapped,
    Handoff,
    Handoff1Line,
    HandoffProtocol,
    Bbqueue,
    Flat1t,
    Mapped1t,
    Bbqueue1t,
}

impl Contender {
    const ALL: [Self; 9] = [
        Self::Flat,
        Self::Mapped,
        Self::Handoff,
        Self::Handoff1Line,
        Self::HandoffProtocol,
        Self::Bbqueue,
        Self::Flat1t,
        Self::Mapped1t,
        Self::Bbqueue1t,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::Flat => "flat",
            Self::Mapped => "mapped",
            Self::Handoff => "handoff",
            Self::Handoff1Line => "handoff_1line",
            Self::HandoffProtocol => "handoff_protocol",
            Self::Bbqueue => "bbqueue",
            Self::Flat1t => "flat_1t",
            Self::Mapped1t => "mapped_1t",
            Self::Bbqueue1t => "bbqueue_1t",
        }
    }

    fn run(self, size: usize, packets: u64, mode: Mode, pin: Pinning) -> Outcome {
        let batch = mode.batch();
        let secs_only = |secs| Outcome {
            secs,
            ..Outcome::default()
        };
        match self {
            Self::Flat => {
                let header = FlatHeader::new();
                let data = words(RING);
                ring_stream(FlatRingMem::new(&header, &data), size, packets, batch, pin)
            }
            Self::Mapped => {
                let pages = heap_ring();
                ring_stream(pages.ring(), size, packets, batch, pin)
            }
            Self::Handoff => handoff::<ApartIndices, false>(size, packets, batch, pin),
            Self::Handoff1Line => handoff::<SharedLine, false>(size, packets, batch, pin),
            Self::HandoffProtocol => handoff::<SharedLine, true>(size, packets, batch, pin),
            Self::Bbqueue => bbqueue(size, packets, batch, pin),
            Self::Flat1t => {
                let header = FlatHeader::new();
                let data = words(RING);
                secs_only(ring_one_thread(
                    FlatRingMem::new(&header, &data),
                    size,
                    packets,
                    batch,
                ))
            }
            Self::Mapped1t => {
                let pages = heap_ring();
                secs_only(ring_one_thread(pages.ring(), size, packets, batch))
            }
            Self::Bbqueue1t => secs_only(bbqueue_one_thread(size, packets, batch)),
        }
    }
}

/// The runs of one cell (size, mode): per contender, one outcome per round.
struct Cell {
    size: usize,
    mode: Mode,
    packets: u64,
    runs: Vec<[Outcome; Contender::ALL.len()]>,
}

impl Cell {
    fn measure(size: usize, mode: Mode, packets: u64, rounds: usize, pin: Pinning) -> Self {
        let n = Contender::ALL.len();
        if rounds > 1 {
            // Warm-up: every contender once, not recorded.
            for c in Contender::ALL {
                c.run(size, packets, mode, pin);
            }
        }
        let mut runs = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let mut out = [Outcome::default(); Contender::ALL.len()];
            for j in 0..n {
                let i = (round + j) % n;
                out[i] = Contender::ALL[i].run(size, packets, mode, pin);
            }
            runs.push(out);
        }
        Self {
            size,
            mode,
            packets,
            runs,
        }
    }

    /// Per-round values of `f`.
    fn per_round(&self, f: impl Fn(&[Outcome; Contender::ALL.len()]) -> f64) -> Vec<f64> {
        self.runs.iter().map(f).collect()
    }

    fn of(c: Contender) -> usize {
        Contender::ALL.iter().position(|&x| x == c).unwrap()
    }

    /// Million packets per second of `c`, per round.
    fn mpps(&self, c: Contender) -> Vec<f64> {
        let p = self.packets as f64;
        self.per_round(|o| p / o[Self::of(c)].secs / 1e6)
    }

    /// Nanoseconds per packet of `c`, per round.
    fn ns(&self, c: Contender) -> Vec<f64> {
        let p = self.packets as f64;
        self.per_round(|o| o[Self::of(c)].secs * 1e9 / p)
    }

    /// Packets/s of `a` over packets/s of `b`, per round.
    fn ratio(&self, a: Contender, b: Contender) -> Vec<f64> {
        self.per_round(|o| o[Self::of(b)].secs / o[Self::of(a)].secs)
    }

    /// Signals to the reader and to the writer per 1000 packets, per round.
    fn signals(&self, c: Contender) -> (Vec<f64>, Vec<f64>) {
        let k = 1000.0 / self.packets as f64;
        (
            self.per_round(|o| o[Self::of(c)].to_reader as f64 * k),
            self.per_round(|o| o[Self::of(c)].to_writer as f64 * k),
        )
    }
}

/// Median and interquartile range `(median, p25, p75)` of `v` (the quartiles rounded outwards,
/// so three runs give their minimum and maximum).
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |p: f64| (s.len() - 1) as f64 * p;
    (
        s[(s.len() - 1) / 2].midpoint(s[s.len() / 2]),
        s[at(0.25).floor() as usize],
        s[at(0.75).ceil() as usize],
    )
}

/// `median [p25 .. p75]` with `prec` decimals.
fn show(v: &[f64], prec: usize) -> String {
    let (m, lo, hi) = stats(v);
    format!("{m:.prec$} [{lo:.prec$}..{hi:.prec$}]")
}

/// One row of the ring's figures, for the table and the `BENCH` lines.
struct Row {
    case: String,
    figures: Vec<(&'static str, Vec<f64>)>,
}

fn rows(cells: &[Cell]) -> Vec<Row> {
    let mut rows = Vec::new();
    for cell in cells {
        for (memory, two, one) in [
            ("flat", Contender::Flat, Contender::Flat1t),
            ("mapped", Contender::Mapped, Contender::Mapped1t),
        ] {
            let (sig_rd, sig_wr) = cell.signals(two);
            rows.push(Row {
                case: format!("{memory} {}B {}", cell.size, cell.mode.name()),
                figures: vec![
                    ("ring Mp/s", cell.mpps(two)),
                    ("hand-off Mp/s", cell.mpps(Contender::Handoff)),
                    ("bbqueue Mp/s", cell.mpps(Contender::Bbqueue)),
                    ("x hand-off", cell.ratio(two, Contender::Handoff)),
                    ("x bbqueue", cell.ratio(two, Contender::Bbqueue)),
                    ("sig->rd/1k", sig_rd),
                    ("sig->wr/1k", sig_wr),
                    // CPU cost ratio: ring ns over bbqueue ns (lower is better).
                    ("1t cost x bbq", cell.ratio(Contender::Bbqueue1t, one)),
                ],
            });
        }
    }
    rows
}

fn print_table(cells: &[Cell], pin: Pinning, rounds: usize) {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!(
        "ring_throughput: 256 KiB ring; {rounds} timed rounds per cell after one warm-up round; \
         median [p25..p75]; {cores} cores available, threads {}",
        pin.describe()
    );
    println!(
        "modes: packet = one index publish per packet on each side, for every contender; \
         batched = {BATCH} packets per publish, for every contender"
    );
    println!(
        "{:<20} | {:>20} {:>20} {:>20} | {:>20} {:>20} | {:>18} {:>18} | {:>20}",
        "memory size mode",
        "ring Mp/s",
        "hand-off Mp/s",
        "bbqueue Mp/s",
        "ring x hand-off",
        "ring x bbqueue",
        "sig->rd /1k pkt",
        "sig->wr /1k pkt",
        "1t cost ring/bbq"
    );
    for row in rows(cells) {
        let f = |i: usize, prec| show(&row.figures[i].1, prec);
        println!(
            "{:<20} | {:>20} {:>20} {:>20} | {:>20} {:>20} | {:>18} {:>18} | {:>20}",
            row.case,
            f(0, 2),
            f(1, 2),
            f(2, 2),
            f(3, 3),
            f(4, 3),
            f(5, 2),
            f(6, 2),
            f(7, 3),
        );
    }
    println!();
    println!(
        "diagnostics: the hand-off with head and tail on one cache line (as the ring header has \
         them; `1-line`), and also with the ring's barrier after each publish (`protocol`); \
         one-thread ns per packet"
    );
    println!(
        "{:<14} | {:>20} {:>20} {:>20} | {:>20} {:>20} | {:>18} {:>18} {:>18}",
        "size mode",
        "1-line x hand-off",
        "protocol x hand-off",
        "protocol Mp/s",
        "flat x protocol",
        "mapped x protocol",
        "1t flat ns",
        "1t mapped ns",
        "1t bbqueue ns"
    );
    for cell in cells {
        println!(
            "{:<14} | {:>20} {:>20} {:>20} | {:>20} {:>20} | {:>18} {:>18} {:>18}",
            format!("{}B {}", cell.size, cell.mode.name()),
            show(&cell.ratio(Contender::Handoff1Line, Contender::Handoff), 3),
            show(
                &cell.ratio(Contender::HandoffProtocol, Contender::Handoff),
                3
            ),
            show(&cell.mpps(Contender::HandoffProtocol), 2),
            show(&cell.ratio(Contender::Flat, Contender::HandoffProtocol), 3),
            show(
                &cell.ratio(Contender::Mapped, Contender::HandoffProtocol),
                3
            ),
            show(&cell.ns(Contender::Flat1t), 1),
            show(&cell.ns(Contender::Mapped1t), 1),
            show(&cell.ns(Contender::Bbqueue1t), 1),
        );
    }
    println!();
    println!(
        "Targets (per-packet mode): x hand-off >= 0.35 at 64 and 256 B, >= 1.0 at 4096 B; \
         sig->wr <= 0.5 at every size on both memories; 1t cost ring/bbq <= 1.5."
    );
    // Machine-readable: every figure of the main table, for `cargo xtask bench`.
    println!(
        "BENCHNOTE\tring\tmedian [p25..p75] of {rounds} timed rounds (ratios: of the per-round \
         ratios); packet = one publish per packet, batched = {BATCH} per publish, every contender; \
         threads {}",
        pin.describe()
    );
    for row in rows(cells) {
        for (metric, v) in &row.figures {
            let (m, lo, hi) = stats(v);
            println!(
                "BENCH\tring\t{}\t{metric}\t{m:.4}\t{lo:.4}\t{hi:.4}",
                row.case
            );
        }
    }
}

/// `RING_PROFILE=<name>:<size>[:<packets>[:packet|batched]]`: one contender, one run.
fn profile(spec: &str) {
    let mut it = spec.split(':');
    let name = it.next().unwrap_or_default();
    let size: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let packets: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let mode = match it.next() {
        Some("batched") => Mode::Batched,
        _ => Mode::PerPacket,
    };
    let c = Contender::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("unknown profile target {name}"));
    let o = c.run(size, packets, mode, Pinning::decide());
    println!(
        "{name} {size} B {}: {:.1} ns/pkt, {} signals to the reader, {} to the writer",
        mode.name(),
        o.secs * 1e9 / packets as f64,
        o.to_reader,
        o.to_writer
    );
}

fn main() {
    if let Ok(spec) = std::env::var("RING_PROFILE") {
        profile(&spec);
        return;
    }
    // `cargo bench` passes `--bench`; without it (`cargo test --bench`) one short pass checks
    // that every contender runs and delivers every packet.
    let bench = std::env::args().any(|a| a == "--bench");
    let quick = std::env::var("VMBUS_BENCH_QUICK").as_deref() == Ok("1");
    let (rounds, scale) = match (bench, quick) {
        (false, _) => (1, 50),
        (true, true) => (QUICK_RUNS, 10),
        (true, false) => (RUNS, 1),
    };
    let pin = Pinning::decide();
    let mut cells = Vec::new();
    for mode in [Mode::PerPacket, Mode::Batched] {
        for size in SIZES {
            let started = Instant::now();
            let cell = Cell::measure(size, mode, packets_per_run(size, scale), rounds, pin);
            eprintln!(
                "ring_throughput: {size} B {} measured in {:.1} s",
                mode.name(),
                started.elapsed().as_secs_f64()
            );
            cells.push(cell);
        }
    }
    print_table(&cells, pin, rounds);
}
