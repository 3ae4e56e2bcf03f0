//! Reusable client workloads: scripted programs the world runs one step at a time.
//!
//! [`EchoClient`] is the standard traffic program: it opens the first offer of its class with
//! the non-blocking open (so other parts of the world can act between its steps), keeps a few
//! packets in flight to an echo device, checks every echo against what it sent, and when the
//! channel goes away (rescind, teardown) it notes it and looks for the next offer. Its counters
//! are shared through an [`EchoHandle`] so tests can read them while the world owns the program.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use vmbus_client::{Channel, ClientError, PendingOpen, list_offers, start_open};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::RelId;
use vmbus_driver::ring::RingError;

use crate::program::{ClientCtx, ClientProgram, Flow};
use crate::ringmem::ClientRingMem;

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
