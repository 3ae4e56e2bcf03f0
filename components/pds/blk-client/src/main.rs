//! The sDDF block test client of `system.xml`: it reaches its device only through the sDDF block
//! connection to the `storage` PD (storvsc as an sDDF block driver): the storage-information
//! region (read-only here), the request and response queues, and the data region its requests
//! name by offset. It has no VMBus connection at all.
//!
//! What it does, in one loop inside `init` (it sleeps on its notification whenever it waits):
//! - waits until the storage information says `ready`;
//! - round 1: fills 16 blocks of the data region with a pattern that names the round, the disk
//!   block and the byte offset ([`word`]), writes them to disk blocks 0..16 with requests of 1,
//!   4 and 11 blocks, FLUSHes, reads them back into another part of the data region with other
//!   splits (8, 3 and 5 blocks) and compares every byte; prints `PASS round 1`;
//! - streams: reads of 2 blocks (checked against the pattern) and some writes of the same
//!   pattern, [`STREAM_DEPTH`] requests outstanding, so the host sees traffic when it rescinds
//!   the device. The stream pauses after [`STREAM_REQUESTS`] requests: the image has no timer,
//!   and while this client keeps requests going it, the storage PD, the driver and the host
//!   are always runnable, so every PD of a lower priority (the integration services,
//!   Dynamic Memory) would never run;
//! - when responses come back failed while the storage information is withdrawn (`NoDevice`,
//!   the device was rescinded) it prints how many failed, once, and sleeps until the device is
//!   ready again;
//! - round 2 (and any later one): reads the previous round's blocks back (the RAM disk keeps
//!   them) and checks them, then writes, flushes, reads back and checks the new round's
//!   pattern; prints `PASS round 2 (after the device came back)` and streams again.
//!
//! Any wrong data, wrong response or broken queue is printed as a line starting
//! `blk_client: FAIL:`, reported to the root task as a failure (which ends the run with it), and
//! the client stops.
//!
//! Data region layout (blocks of 4 KiB): 0..16 the blocks to write (region block b holds disk
//! block b's pattern), 16..32 where round read-backs land, 32..64 the stream's read slots.
#![no_std]
#![no_main]

use pd_runtime::config::PdConfig;
use pd_runtime::layout::slot;
use pd_runtime::{Channel as PdChannel, Handler, notify, println};
use pd_support::abi::sddf as regions;
use pd_support::region::SharedRegion;
use sddf::{
    BLK_TRANSFER_SIZE, BlkDataRegion, BlkQueue, BlkRequest, BlkRequestCode, BlkRequester,
    BlkResponse, BlkStatus, QueueMem, StorageInfo, StorageInfoPage,
};

// `CONFIGS`: this PD's sDDF regions and its channel to the storage PD, generated from the system
// description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The block driver's PD (the peer of this PD's notification channel).
const STORAGE_PD: &str = "storage";
/// Bytes of an sDDF block.
const BLOCK: u64 = BLK_TRANSFER_SIZE as u64;
/// Disk blocks each round writes and checks (disk blocks 0..16).
const ROUND_BLOCKS: u64 = 16;
/// Region block where the blocks to write are staged (disk block b at `STAGING + b`).
const STAGING: u64 = 0;
/// Region block where a round's read-backs land.
const READBACK: u64 = 16;
/// Region block of the stream's first read slot.
const STREAM: u64 = 32;
/// The stream's read slots, [`SLOT_BLOCKS`] blocks each.
const STREAM_SLOTS: usize = 8;
const SLOT_BLOCKS: u64 = 4;
/// Region blocks the layout needs.
const REGION_BLOCKS: u64 = STREAM + STREAM_SLOTS as u64 * SLOT_BLOCKS;
/// A round's writes: (first disk block, blocks).
const WRITES: [(u64, u16); 3] = [(0, 1), (1, 4), (5, 11)];
/// A round's read-back, split otherwise.
const READS: [(u64, u16); 3] = [(0, 8), (8, 3), (11, 5)];
/// The check of the previous round's blocks, split otherwise again.
const CHECKS: [(u64, u16); 3] = [(0, 5), (5, 8), (13, 3)];
/// Stream requests outstanding at once.
const STREAM_DEPTH: usize = 4;
/// Stream requests before the stream pauses (see the module's notes).
const STREAM_REQUESTS: u64 = 256;
/// Requests outstanding at most (the queue's capacity).
const MAX_OUT: usize = regions::BLK_QUEUE_CAPACITY as usize;

/// The pattern's word at byte `offset` (a multiple of 8) of disk block `block` in round
/// `round`: a tag, the round, the block and the offset.
fn word(round: u8, block: u64, offset: u64) -> u64 {
    0xB10C_u64 << 48 | u64::from(round) << 40 | (block & 0xFFFF) << 24 | offset
}

/// What a read's data must be.
#[derive(Debug, Clone, Copy)]
struct Check {
    round: u8,
    /// First disk block read.
    block: u64,
    /// Region block it landed in.
    region_block: u64,
}

/// A request in flight.
#[derive(Debug, Clone, Copy)]
struct Pending {
    req: BlkRequest,
    check: Option<Check>,
    /// The stream read slot it holds.
    slot: Option<usize>,
}

/// How a batch or a phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// The device went away (failed responses with the storage information withdrawn).
    Gone,
}

/// A failure, already printed.
#[derive(Debug)]
struct Fail;

macro_rules! fail {
    ($($arg:tt)*) => {{
        println!("blk_client: FAIL: {}", format_args!($($arg)*));
        // The run fails here: the root task ends it with the failure (QEMU's exit status).
        pd_runtime::report(pd_support::abi::scenario::REPORT_FAIL, &[]);
        return Err(Fail);
    }};
}

struct Client {
    info: StorageInfoPage<SharedRegion>,
    queue: BlkRequester<SharedRegion>,
    data: SharedRegion,
    storage: PdChannel,
    next_id: u32,
    pending: [Option<Pending>; MAX_OUT],
    slot_busy: [bool; STREAM_SLOTS],
    /// Requests failed since the device went.
    failed: u64,
    /// A failed response said the device went.
    gone: bool,
    /// Stream traffic since the last pause: blocks read, blocks written.
    streamed: (u64, u64),
}

/// Sleeps until the next notification (from the storage PD: responses, or the storage
/// information changed).
fn wait() {
    let _ = sel4::Endpoint(slot::INPUT).recv();
}

impl Client {
    fn new(config: &'static PdConfig) -> Client {
        let region = |name: &str| match SharedRegion::of(config, name) {
            Some(r) => r,
            None => panic!("{}: no writable region {name} mapped", config.name),
        };
        // The storage information is mapped read-only here: only loads touch it.
        let info = config
            .maps
            .iter()
            .find(|m| m.region == regions::BLK_STORAGE_INFO)
            .and_then(|m| SharedRegion::at(m.vaddr, m.size))
            .and_then(|r| StorageInfoPage::new(r).ok());
        let Some(info) = info else {
            panic!("blk_client: no storage information region mapped");
        };
        let data = region(regions::BLK_DATA);
        let Ok(queue) = BlkQueue::new(
            region(regions::BLK_REQUEST),
            region(regions::BLK_RESPONSE),
            regions::BLK_QUEUE_CAPACITY,
        ) else {
            panic!("blk_client: block queue regions too small for their capacity");
        };
        let Some(storage) = config.channels.iter().find(|c| c.peer == STORAGE_PD) else {
            panic!("blk_client: no channel to {STORAGE_PD}");
        };
        let size = QueueMem::size(&data) as u64;
        Client {
            info,
            queue: queue.requester(BlkDataRegion::offsets(size)),
            data,
            storage: PdChannel(storage.id),
            next_id: 1,
            pending: [None; MAX_OUT],
            slot_busy: [false; STREAM_SLOTS],
            failed: 0,
            gone: false,
            streamed: (0, 0),
        }
    }

    fn ready(&self) -> bool {
        self.info.is_ready() == Ok(true)
    }

    /// Sleeps until the storage information is published; what it says.
    fn wait_ready(&mut self) -> Result<StorageInfo, Fail> {
        loop {
            match self.info.read() {
                Ok(Some(info)) => return Ok(info),
                Ok(None) => {}
                Err(e) => fail!("storage information: {e:?}"),
            }
            // Responses to requests of the old device may still come: none is expected (all
            // were answered before the information was withdrawn), but take them.
            self.drain()?;
            wait();
        }
    }

    fn outstanding(&self) -> usize {
        self.pending.iter().flatten().count()
    }

    /// Queues a request for `count` disk blocks from `block` with data at region block
    /// `region_block`.
    fn submit(
        &mut self,
        code: BlkRequestCode,
        region_block: u64,
        block: u64,
        count: u16,
        check: Option<Check>,
        slot: Option<usize>,
    ) -> Result<(), Fail> {
        let req = BlkRequest {
            code,
            io_or_offset: region_block * BLOCK,
            block_number: block,
            count,
            id: self.next_id,
        };
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let Some(free) = self.pending.iter_mut().find(|p| p.is_none()) else {
            fail!("more than {MAX_OUT} requests outstanding");
        };
        if let Err(e) = self.queue.enqueue_request(&req) {
            fail!("request queue refused {code:?} of {count} blocks at {block}: {e:?}");
        }
        *free = Some(Pending { req, check, slot });
        if let Some(s) = slot {
            self.slot_busy[s] = true;
        }
        Ok(())
    }

    /// Takes every response waiting; how many.
    fn drain(&mut self) -> Result<usize, Fail> {
        let mut n = 0;
        loop {
            match self.queue.dequeue_response() {
                Ok(Some(r)) => {
                    self.on_response(&r)?;
                    n += 1;
                }
                Ok(None) => return Ok(n),
                Err(e) => fail!("response queue: {e:?}"),
            }
        }
    }

    fn on_response(&mut self, r: &BlkResponse) -> Result<(), Fail> {
        let Some(entry) = self
            .pending
            .iter_mut()
            .find(|p| p.is_some_and(|p| p.req.id == r.id))
        else {
            fail!("a response for request {} that is not outstanding", r.id);
        };
        let Some(p) = entry.take() else {
            fail!("a response for request {} that is not outstanding", r.id);
        };
        if let Some(s) = p.slot {
            self.slot_busy[s] = false;
        }
        let req = p.req;
        match r.status {
            BlkStatus::Ok => {
                let blocks = if req.code.transfers() { req.count } else { 0 };
                if req.code.transfers() && r.success_count != blocks {
                    fail!(
                        "{:?} of {} blocks at {} succeeded with {} blocks",
                        req.code,
                        req.count,
                        req.block_number,
                        r.success_count
                    );
                }
                match req.code {
                    BlkRequestCode::Read => self.streamed.0 += u64::from(req.count),
                    BlkRequestCode::Write => self.streamed.1 += u64::from(req.count),
                    _ => {}
                }
                match p.check {
                    Some(c) => self.verify(c, req.count),
                    None => Ok(()),
                }
            }
            status if status == BlkStatus::NoDevice || !self.ready() => {
                self.failed += 1;
                self.gone = true;
                Ok(())
            }
            status => fail!(
                "{:?} of {} blocks at {} (request {}): {status:?} with the device ready",
                req.code,
                req.count,
                req.block_number,
                req.id
            ),
        }
    }

    /// Compares `count` blocks at `c.region_block` with round `c.round`'s pattern.
    fn verify(&self, c: Check, count: u16) -> Result<(), Fail> {
        let mut piece = [0u8; 256];
        for b in 0..u64::from(count) {
            let block = c.block + b;
            let base = (c.region_block + b) * BLOCK;
            for at in (0..BLOCK).step_by(piece.len()) {
                self.data.read((base + at) as usize, &mut piece);
                for (i, got) in piece.chunks_exact(8).enumerate() {
                    let offset = at + i as u64 * 8;
                    let want = word(c.round, block, offset);
                    let mut w = [0u8; 8];
                    w.copy_from_slice(got);
                    let got = u64::from_le_bytes(w);
                    if got != want {
                        fail!(
                            "disk block {block} byte {offset}: read {got:#018x}, round {}'s pattern is {want:#018x}",
                            c.round
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Fills region blocks `STAGING + b` with round `round`'s pattern of disk block b.
    fn stage(&self, round: u8) {
        let mut piece = [0u8; 256];
        for block in 0..ROUND_BLOCKS {
            let base = (STAGING + block) * BLOCK;
            for at in (0..BLOCK).step_by(piece.len()) {
                for (i, w) in piece.chunks_exact_mut(8).enumerate() {
                    w.copy_from_slice(&word(round, block, at + i as u64 * 8).to_le_bytes());
                }
                self.data.write((base + at) as usize, &piece);
            }
        }
    }

    /// Zeroes `blocks` region blocks from `first` (so a read that moved nothing is caught).
    fn clear(&self, first: u64, blocks: u64) {
        let zero = [0u8; 256];
        for at in (first * BLOCK..(first + blocks) * BLOCK).step_by(zero.len()) {
            self.data.write(at as usize, &zero);
        }
    }

    /// Waits until every outstanding request is answered.
    fn settle(&mut self) -> Result<Outcome, Fail> {
        loop {
            self.drain()?;
            if self.outstanding() == 0 {
                break;
            }
            wait();
        }
        Ok(if self.gone {
            Outcome::Gone
        } else {
            Outcome::Done
        })
    }

    /// Sends `parts` ((disk block, blocks)) as `code` requests (READs checked against round
    /// `check`'s pattern, landing from region block `region`) and waits for all answers.
    fn batch(
        &mut self,
        code: BlkRequestCode,
        parts: &[(u64, u16)],
        region: u64,
        check: Option<u8>,
    ) -> Result<Outcome, Fail> {
        for &(block, count) in parts {
            let c = check.map(|round| Check {
                round,
                block,
                region_block: region + block,
            });
            self.submit(code, region + block, block, count, c, None)?;
        }
        notify(self.storage);
        self.settle()
    }

    /// One round: the previous round's blocks checked (`last`: the round whose pattern the
    /// disk holds, if known), this round's written, flushed, read back and checked.
    fn round(&mut self, round: u8, last: &mut Option<u8>) -> Result<Outcome, Fail> {
        if let Some(prev) = *last {
            self.clear(READBACK, ROUND_BLOCKS);
            if self.batch(BlkRequestCode::Read, &CHECKS, READBACK, Some(prev))? == Outcome::Gone {
                return Ok(Outcome::Gone);
            }
        }
        self.stage(round);
        // From here until the flush the disk holds a mix of patterns.
        *last = None;
        if self.batch(BlkRequestCode::Write, &WRITES, STAGING, None)? == Outcome::Gone {
            return Ok(Outcome::Gone);
        }
        if self.batch(BlkRequestCode::Flush, &[(0, 0)], 0, None)? == Outcome::Gone {
            return Ok(Outcome::Gone);
        }
        *last = Some(round);
        self.clear(READBACK, ROUND_BLOCKS);
        // The read-back lands at READBACK + block.
        if self.batch(BlkRequestCode::Read, &READS, READBACK, Some(round))? == Outcome::Gone {
            return Ok(Outcome::Gone);
        }
        Ok(Outcome::Done)
    }

    /// Streams checked reads and writes of round `round`'s pattern until
    /// [`STREAM_REQUESTS`], then sleeps until the device goes.
    fn stream(&mut self, round: u8) -> Result<(), Fail> {
        self.streamed = (0, 0);
        let mut issued = 0u64;
        loop {
            let mut sent = false;
            while !self.gone && issued < STREAM_REQUESTS && self.outstanding() < STREAM_DEPTH {
                if issued % 4 == 3 {
                    // Rewrite 2 blocks with the pattern they already hold.
                    let block = (issued * 5) % (ROUND_BLOCKS - 1);
                    self.submit(BlkRequestCode::Write, STAGING + block, block, 2, None, None)?;
                } else {
                    let Some(s) = self.slot_busy.iter().position(|b| !b) else {
                        break;
                    };
                    let block = (issued * 3) % (ROUND_BLOCKS - 1);
                    let region_block = STREAM + s as u64 * SLOT_BLOCKS;
                    let check = Check {
                        round,
                        block,
                        region_block,
                    };
                    self.clear(region_block, 2);
                    self.submit(
                        BlkRequestCode::Read,
                        region_block,
                        block,
                        2,
                        Some(check),
                        Some(s),
                    )?;
                }
                issued += 1;
                sent = true;
            }
            if sent {
                notify(self.storage);
            }
            self.drain()?;
            if self.outstanding() == 0 && (self.gone || issued >= STREAM_REQUESTS) {
                break;
            }
            wait();
        }
        if self.gone {
            return Ok(());
        }
        println!(
            "blk_client: stream paused after {issued} requests ({} blocks read and checked, {} written); it leaves the lower priorities the CPU",
            self.streamed.0, self.streamed.1
        );
        while self.ready() {
            self.drain()?;
            wait();
        }
        Ok(())
    }
}

fn run(c: &mut Client) -> Result<(), Fail> {
    let size = QueueMem::size(&c.data) as u64;
    if size < REGION_BLOCKS * BLOCK {
        fail!("a data region of {size} bytes, {REGION_BLOCKS} blocks needed");
    }
    let mut round: u8 = 1;
    // The round whose pattern disk blocks 0..16 hold, when known.
    let mut last: Option<u8> = None;
    // Requests failed when the device last went.
    let mut failed_before: u64 = 0;
    loop {
        let info = c.wait_ready()?;
        if info.capacity < ROUND_BLOCKS || info.read_only {
            fail!(
                "a device of {} blocks{}: 16 writable blocks needed",
                info.capacity,
                if info.read_only { ", read-only" } else { "" }
            );
        }
        let checked = last;
        if c.round(round, &mut last)? == Outcome::Done {
            match (round, checked) {
                (1, _) => println!(
                    "blk_client: PASS round 1: 16 blocks written, flushed, read back and verified"
                ),
                (r, Some(prev)) => println!(
                    "blk_client: PASS round {r} (after the device came back): round {prev}'s data intact, 16 blocks written and verified; {failed_before} requests failed during the rescind"
                ),
                (r, None) => println!(
                    "blk_client: PASS round {r} (after the device came back): no earlier round's data complete on disk to check, 16 blocks written and verified; {failed_before} requests failed during the rescind"
                ),
            }
            c.stream(round)?;
            round = round.saturating_add(1);
        }
        // The device went (during the round or the stream, or while the stream paused).
        c.settle()?;
        println!(
            "blk_client: {} requests failed with I/O errors (device gone); waiting for the device",
            c.failed
        );
        failed_before = c.failed;
        c.failed = 0;
        c.gone = false;
    }
}

/// Never built: `init` runs the client for ever.
struct Stopped;

impl Handler for Stopped {
    fn notified(&mut self, _: PdChannel) {}
}

fn init() -> Stopped {
    let mut c = Client::new(pd_runtime::own_config(CONFIGS));
    // `run` returns only after a failure (printed): sleep for ever.
    let _ = run(&mut c);
    loop {
        wait();
    }
}

pd_runtime::protection_domain!(init);
