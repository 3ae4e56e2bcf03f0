//! Reusable client workloads: scripted programs the world runs one step at a time.
//!
//! [`EchoClient`] is the standard traffic program: it opens the first offer of its class with
//! the non-blocking open (so other parts of the world can act between its steps), keeps a few
//! packets in flight to an echo device, checks every echo against what it sent, and when the
//! channel goes away (rescind, teardown) it notes it and looks for the next offer. Its counters
//! are shared through an [`EchoHandle`] so tests can read them while the world owns the program.
//!
//! [`BlkWorkload`] is the block workload of an sDDF block client (`crate::storage`): round after
//! round it writes a pattern of blocks, flushes, reads them back into another part of the data
//! region and verifies every block. Like [`BlkTestClient`], it is driven by its owner between
//! world steps (the sDDF client has no VMBus connection, and the simulation runs programs only on
//! VMBus client PDs; its data region is the storage PD's window buffer).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use vmbus_client::{Channel, ClientError, PendingOpen, list_offers, start_open};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, RelId};
use vmbus_driver::ring::RingError;

use sddf::{BLK_TRANSFER_SIZE, BlkRequestCode, BlkResponse, BlkStatus};

use crate::World;
use crate::layout::PAGE;
use crate::program::{ClientCtx, ClientProgram, Flow};
use crate::ringmem::ClientRingMem;
use crate::storage::{BlkTestClient, DATA_PAGES, SharedQueues, StorHandle};

/// What an [`EchoClient`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Opens started.
    pub opens_started: u64,
    /// Channels that opened.
    pub opens: u64,
    /// Opens that failed (host refusal, timeout, gone before completion).
    pub open_failures: u64,
    /// Packets sent.
    pub sent: u64,
    /// Echoes received that matched what was sent, in order.
    pub echoed: u64,
    /// Echoes that did not match (must stay 0).
    pub mismatches: u64,
    /// Times the open channel went away under the program ([`ClientError::ChannelGone`]).
    pub gone: u64,
    /// Channels the program closed itself.
    pub closed: u64,
    /// Sends refused because the ring was full (retried later).
    pub ring_full: u64,
    /// Other errors (the last one is in [`EchoHandle::last_error`]).
    pub errors: u64,
    /// The relid of the channel open now, if any.
    pub open_relid: Option<RelId>,
}

#[derive(Debug, Default)]
struct Shared {
    stats: EchoStats,
    last_error: Option<ClientError>,
}

/// A view of an [`EchoClient`]'s counters that stays with the test.
#[derive(Debug, Clone, Default)]
pub struct EchoHandle(Rc<RefCell<Shared>>);

impl EchoHandle {
    /// The counters now.
    #[must_use]
    pub fn stats(&self) -> EchoStats {
        self.0.borrow().stats
    }

    /// The last error other than "gone" and "full".
    #[must_use]
    pub fn last_error(&self) -> Option<ClientError> {
        self.0.borrow().last_error
    }
}

enum State {
    Listing,
    Opening(PendingOpen),
    Open(Box<Channel<ClientRingMem>>),
    Finished,
}

/// The echo workload of one client.
pub struct EchoClient {
    class: Guid,
    out_pages: u16,
    in_pages: u16,
    payload_len: usize,
    max_in_flight: usize,
    packets_per_channel: Option<u64>,
    stop_after_channels: Option<u64>,
    state: State,
    expected: VecDeque<Vec<u8>>,
    sent_on_channel: u64,
    seq: u64,
    shared: EchoHandle,
}

impl core::fmt::Debug for EchoClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EchoClient")
            .field("class", &self.class)
            .field("stats", &self.shared.stats())
            .finish_non_exhaustive()
    }
}

impl EchoClient {
    /// Echo traffic on offers of `class`, rings of 4 + 4 pages, 64-byte payloads, up to 4 in
    /// flight, forever.
    #[must_use]
    pub fn new(class: Guid) -> Self {
        Self {
            class,
            out_pages: 4,
            in_pages: 4,
            payload_len: 64,
            max_in_flight: 4,
            packets_per_channel: None,
            stop_after_channels: None,
            state: State::Listing,
            expected: VecDeque::new(),
            sent_on_channel: 0,
            seq: 0,
            shared: EchoHandle::default(),
        }
    }

    /// Ring sizes in pages (header page included).
    #[must_use]
    pub const fn rings(mut self, out_pages: u16, in_pages: u16) -> Self {
        self.out_pages = out_pages;
        self.in_pages = in_pages;
        self
    }

    /// Payload bytes per packet (rounded up to 8, as the ring pads in-band payloads).
    #[must_use]
    pub const fn payload_len(mut self, n: usize) -> Self {
        self.payload_len = n.next_multiple_of(8);
        self
    }

    /// Packets in flight at most.
    #[must_use]
    pub const fn in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n;
        self
    }

    /// Closes each channel after `n` echoed packets and opens the next offer.
    #[must_use]
    pub const fn packets_per_channel(mut self, n: u64) -> Self {
        self.packets_per_channel = Some(n);
        self
    }

    /// Finishes (program done) after `n` channels were closed by the program.
    #[must_use]
    pub const fn stop_after_channels(mut self, n: u64) -> Self {
        self.stop_after_channels = Some(n);
        self
    }

    /// The handle to read the counters with.
    #[must_use]
    pub fn handle(&self) -> EchoHandle {
        self.shared.clone()
    }

    fn stats(&self) -> std::cell::RefMut<'_, EchoStats> {
        std::cell::RefMut::map(self.shared.0.borrow_mut(), |s| &mut s.stats)
    }

    fn error(&self, e: ClientError) {
        let mut s = self.shared.0.borrow_mut();
        s.stats.errors += 1;
        s.last_error = Some(e);
    }

    fn payload(&mut self) -> Vec<u8> {
        self.seq += 1;
        let word = self.seq.to_le_bytes();
        (0..self.payload_len)
            .map(|i| word[i % 8] ^ (i as u8))
            .collect()
    }

    fn lost_channel(&mut self, gone: bool) {
        self.expected.clear();
        self.sent_on_channel = 0;
        let mut s = self.stats();
        if gone {
            s.gone += 1;
        }
        s.open_relid = None;
        drop(s);
        self.state = State::Listing;
    }

    fn step_listing(&mut self, ctx: &mut ClientCtx<'_>) {
        let offers = match list_offers(ctx, Some(self.class)) {
            Ok(o) => o,
            Err(e) => return self.error(e),
        };
        let Some(offer) = offers.iter().find(|o| o.sub_channel_index == 0) else {
            return;
        };
        match start_open(ctx, offer.relid, self.out_pages, self.in_pages) {
            Ok(p) => {
                self.stats().opens_started += 1;
                self.state = State::Opening(p);
            }
            Err(e) => self.error(e),
        }
    }

    fn step_opening(&mut self, ctx: &mut ClientCtx<'_>, p: PendingOpen) {
        match p.poll(ctx) {
            Ok(Some(ch)) => {
                let mut s = self.stats();
                s.opens += 1;
                s.open_relid = Some(ch.relid());
                drop(s);
                self.state = State::Open(Box::new(ch));
            }
            Ok(None) => self.state = State::Opening(p),
            Err(ClientError::OpenFailed | ClientError::ChannelGone) => {
                self.stats().open_failures += 1;
                self.state = State::Listing;
            }
            Err(e) => {
                self.error(e);
                self.state = State::Listing;
            }
        }
    }

    /// Receives and checks echoes, then sends; `Err` when the channel is gone or broken.
    fn traffic(
        &mut self,
        ctx: &mut ClientCtx<'_>,
        ch: &mut Channel<ClientRingMem>,
    ) -> Result<(), ClientError> {
        let mut buf = vec![0u8; self.payload_len.max(8)];
        while let Some(r) = ch.recv(ctx, &mut buf)? {
            let ok = self
                .expected
                .pop_front()
                .is_some_and(|want| want.as_slice() == &buf[..r.len]);
            let mut s = self.stats();
            if ok {
                s.echoed += 1;
            } else {
                s.mismatches += 1;
            }
        }
        let limit = self.packets_per_channel.unwrap_or(u64::MAX);
        while self.expected.len() < self.max_in_flight && self.sent_on_channel < limit {
            let payload = self.payload();
            match ch.send(ctx, &payload) {
                Ok(()) => {
                    self.expected.push_back(payload);
                    self.sent_on_channel += 1;
                    self.stats().sent += 1;
                }
                Err(ClientError::Ring(RingError::Full)) => {
                    self.stats().ring_full += 1;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn step_open(&mut self, ctx: &mut ClientCtx<'_>, mut ch: Box<Channel<ClientRingMem>>) {
        match self.traffic(ctx, &mut ch) {
            Ok(()) => {}
            Err(ClientError::ChannelGone) => return self.lost_channel(true),
            Err(e) => {
                // A broken channel (e.g. corrupt ring): give it back and start over.
                self.error(e);
                let _ = ch.close(ctx);
                return self.lost_channel(false);
            }
        }
        let done_here = self
            .packets_per_channel
            .is_some_and(|n| self.sent_on_channel >= n && self.expected.is_empty());
        if !done_here {
            self.state = State::Open(ch);
            return;
        }
        match ch.close(ctx) {
            Ok(()) => self.stats().closed += 1,
            Err(ClientError::ChannelGone) => self.stats().gone += 1,
            Err(e) => self.error(e),
        }
        self.lost_channel(false);
        if self
            .stop_after_channels
            .is_some_and(|n| self.stats().closed >= n)
        {
            self.state = State::Finished;
        }
    }
}

impl ClientProgram for EchoClient {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        // The notification only says "look at your status records"; this program looks at
        // them every step anyway.
        let _ = ctx.poll_notification();
        match core::mem::replace(&mut self.state, State::Listing) {
            State::Listing => self.step_listing(ctx),
            State::Opening(p) => self.step_opening(ctx, p),
            State::Open(ch) => self.step_open(ctx, ch),
            State::Finished => {
                self.state = State::Finished;
                return Flow::Done;
            }
        }
        if matches!(self.state, State::Finished) {
            Flow::Done
        } else {
            Flow::Continue
        }
    }
}

// ---- the block workload ----

/// Blocks one round of a [`BlkWorkload`] writes and reads back (at most).
pub const BLK_ROUND_BLOCKS: u16 = 8;
/// Steps a [`BlkWorkload`] waits after a failed round before it starts the next.
pub const BLK_RETRY_STEPS: u64 = 8;

const BLOCK: usize = BLK_TRANSFER_SIZE as usize;

/// What a [`BlkWorkload`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkWorkloadStats {
    /// Rounds started.
    pub rounds_started: u64,
    /// Rounds that wrote, flushed, read back and verified their blocks.
    pub rounds: u64,
    /// Blocks the device wrote (writes answered `Ok`).
    pub blocks_written: u64,
    /// Flushes answered `Ok`.
    pub flushes: u64,
    /// Blocks the device read (reads answered `Ok`).
    pub blocks_read: u64,
    /// Blocks read back identical to what was written.
    pub blocks_verified: u64,
    /// Blocks read back different from what was written (must stay 0).
    pub blocks_mismatched: u64,
    /// Requests answered `NoDevice` (the device went away with them in flight, or was absent).
    pub no_device: u64,
    /// Requests answered with another error, or `Ok` for fewer blocks than asked (must stay 0
    /// with an honest host).
    pub failed: u64,
    /// Responses naming no request in flight (must stay 0).
    pub stray: u64,
    /// Requests the request queue refused.
    pub refused: u64,
    /// Copies into or out of the data region that faulted (the driver revoked its buffer).
    pub unreachable: u64,
    /// Rounds abandoned (a request failed or the region became unreachable).
    pub aborted: u64,
}

/// Where a round stands: the request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlkPhase {
    Idle,
    Write(u32),
    Flush(u32),
    Read(u32),
}

/// A repeating write / flush / read-back / verify workload over an sDDF block connection (see
/// the module documentation).
#[derive(Debug)]
pub struct BlkWorkload {
    client: BlkTestClient,
    driver: StorHandle,
    phase: BlkPhase,
    /// The disk block, block count and pattern number of the round.
    round: (u64, u16, u64),
    resume_at: u64,
    stats: BlkWorkloadStats,
}

/// Byte `i` of block `b` of round `n`'s pattern.
fn blk_pattern(n: u64, b: u64, i: usize) -> u8 {
    (n as u8).wrapping_mul(37) ^ (b as u8).wrapping_mul(31) ^ (i as u8) ^ ((i >> 8) as u8) ^ 0x5a
}

impl BlkWorkload {
    /// The workload of the block client of `queues`, served by the storvsc program `driver`
    /// on the storage PD `storage` (whose window buffer is the data region).
    #[must_use]
    pub fn new(queues: &SharedQueues, driver: StorHandle, storage: ClientId) -> Self {
        Self {
            client: BlkTestClient::new(queues, storage),
            driver,
            phase: BlkPhase::Idle,
            round: (0, 0, 0),
            resume_at: 0,
            stats: BlkWorkloadStats::default(),
        }
    }

    /// The counters now.
    #[must_use]
    pub const fn stats(&self) -> BlkWorkloadStats {
        self.stats
    }

    /// Whether a request is in flight.
    #[must_use]
    pub fn busy(&self) -> bool {
        self.phase != BlkPhase::Idle
    }

    /// Takes the responses, then starts the next request (or round).
    pub fn step(&mut self, w: &mut World) {
        for r in self.client.responses() {
            self.on_response(w, r);
        }
        if self.phase == BlkPhase::Idle && w.now() >= self.resume_at && self.driver.serving() {
            self.start_round(w);
        }
    }

    fn abort(&mut self, w: &World) {
        self.stats.aborted += 1;
        self.phase = BlkPhase::Idle;
        self.resume_at = w.now() + BLK_RETRY_STEPS;
    }

    fn enqueue(&mut self, w: &World, code: BlkRequestCode, offset: u64) -> Option<u32> {
        let (block, count, _) = self.round;
        let count = if code == BlkRequestCode::Flush {
            0
        } else {
            count
        };
        let block = if code == BlkRequestCode::Flush {
            0
        } else {
            block
        };
        match self.client.enqueue(code, offset, block, count) {
            Ok(id) => Some(id),
            Err(_) => {
                self.stats.refused += 1;
                self.abort(w);
                None
            }
        }
    }

    /// The region offset reads land at: the second half of the region.
    fn read_offset() -> u64 {
        u64::from(DATA_PAGES) * PAGE / 2
    }

    fn start_round(&mut self, w: &mut World) {
        let (buffer, capacity) = {
            let s = self.driver.state();
            (s.buffer, s.info.map_or(0, |i| i.capacity))
        };
        let Some(buffer) = buffer else { return };
        let half = (Self::read_offset() / BLOCK as u64).min(capacity);
        let count = u64::from(BLK_ROUND_BLOCKS).min(half);
        if count == 0 {
            return;
        }
        let n = self.stats.rounds_started;
        let slots = (capacity / count).max(1);
        let block = (n % slots) * count;
        self.round = (block, count as u16, n);
        self.stats.rounds_started += 1;
        let data: Vec<u8> = (0..count)
            .flat_map(|b| (0..BLOCK).map(move |i| blk_pattern(n, block + b, i)))
            .collect();
        if !self.client.write_data(w, &buffer, 0, &data) {
            self.stats.unreachable += 1;
            return self.abort(w);
        }
        if let Some(id) = self.enqueue(w, BlkRequestCode::Write, 0) {
            self.phase = BlkPhase::Write(id);
        }
    }

    fn on_response(&mut self, w: &mut World, r: BlkResponse) {
        let id = match self.phase {
            BlkPhase::Write(id) | BlkPhase::Flush(id) | BlkPhase::Read(id) => id,
            BlkPhase::Idle => 0,
        };
        if self.phase == BlkPhase::Idle || r.id != id {
            self.stats.stray += 1;
            return;
        }
        let (block, count, n) = self.round;
        let wanted = match self.phase {
            BlkPhase::Flush(_) => None,
            _ => Some(count),
        };
        match r.status {
            BlkStatus::Ok if wanted.is_none_or(|c| r.success_count == c) => {}
            BlkStatus::NoDevice => {
                self.stats.no_device += 1;
                return self.abort(w);
            }
            _ => {
                self.stats.failed += 1;
                return self.abort(w);
            }
        }
        let Some(buffer) = self.driver.state().buffer else {
            self.stats.unreachable += 1;
            return self.abort(w);
        };
        match self.phase {
            BlkPhase::Write(_) => {
                self.stats.blocks_written += u64::from(count);
                if let Some(id) = self.enqueue(w, BlkRequestCode::Flush, 0) {
                    self.phase = BlkPhase::Flush(id);
                }
            }
            BlkPhase::Flush(_) => {
                self.stats.flushes += 1;
                // The read lands on zeros: only what the device returns can match.
                let zeros = vec![0u8; usize::from(count) * BLOCK];
                if !self
                    .client
                    .write_data(w, &buffer, Self::read_offset() as usize, &zeros)
                {
                    self.stats.unreachable += 1;
                    return self.abort(w);
                }
                if let Some(id) = self.enqueue(w, BlkRequestCode::Read, Self::read_offset()) {
                    self.phase = BlkPhase::Read(id);
                }
            }
            BlkPhase::Read(_) => {
                self.stats.blocks_read += u64::from(count);
                let mut back = vec![0u8; usize::from(count) * BLOCK];
                if !self
                    .client
                    .read_data(w, &buffer, Self::read_offset() as usize, &mut back)
                {
                    self.stats.unreachable += 1;
                    return self.abort(w);
                }
                for (b, got) in back.chunks(BLOCK).enumerate() {
                    let b = b as u64;
                    if got
                        .iter()
                        .enumerate()
                        .all(|(i, &x)| x == blk_pattern(n, block + b, i))
                    {
                        self.stats.blocks_verified += 1;
                    } else {
                        self.stats.blocks_mismatched += 1;
                    }
                }
                self.stats.rounds += 1;
                self.phase = BlkPhase::Idle;
            }
            BlkPhase::Idle => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use hv_host::DeviceSpec;
    use vmbus_driver::driver::ConnectionState;

    use super::BlkWorkload;
    use crate::storage::{SharedQueues, StorvscDriver};
    use crate::{World, WorldConfig};

    fn boot() -> (World, BlkWorkload) {
        let mut w = World::repository(&WorldConfig::default());
        w.host_mut().add_device(DeviceSpec::scsi()).unwrap();
        let storage = w.client("storage").unwrap().id;
        let queues = SharedQueues::new();
        let prog = StorvscDriver::new(&queues);
        let drv = prog.handle();
        w.set_program(storage, Box::new(prog));
        w.start();
        w.run_until(
            |w| w.driver().connection().state == ConnectionState::Connected,
            200,
        )
        .unwrap();
        (w, BlkWorkload::new(&queues, drv, storage))
    }

    #[test]
    fn the_block_workload_writes_reads_back_and_verifies_round_after_round() {
        let (mut w, mut b) = boot();
        for _ in 0..300 {
            w.step();
            b.step(&mut w);
        }
        let s = b.stats();
        assert!(s.rounds >= 3, "{s:?}");
        assert_eq!(s.blocks_verified, s.rounds * 8, "{s:?}");
        assert!(s.blocks_written >= s.blocks_read && s.blocks_read >= s.blocks_verified);
        assert_eq!(
            (s.blocks_mismatched, s.failed, s.stray, s.no_device),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn a_disk_that_returns_other_bytes_is_a_mismatch() {
        let (mut w, mut b) = boot();
        for _ in 0..300 {
            w.step();
            // The host's disk loses whatever was written.
            w.host_mut().storage_disk_mut().fill(0xA5);
            b.step(&mut w);
        }
        let s = b.stats();
        assert!(s.rounds >= 3, "{s:?}");
        assert_eq!(s.blocks_verified, 0, "{s:?}");
        assert_eq!(s.blocks_mismatched, s.rounds * 8);
    }
}
