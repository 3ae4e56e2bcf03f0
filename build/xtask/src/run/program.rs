//! The client workload of the main job: each client PD opens every offer it may (a primary
//! first, its sub-channels once the primary is open), keeps echo traffic going on every open
//! channel, checks each echo, and when a channel goes away (rescind, teardown) forgets it and
//! opens whatever is offered next.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use log::{debug, warn};
use sim_system::{ClientCtx, ClientProgram, ClientRingMem, Flow};
use vmbus_client::{Channel, ClientError, PendingOpen, list_offers, start_open};
use vmbus_driver::control::ClientError as Refusal;
use vmbus_driver::ids::RelId;
use vmbus_driver::ring::RingError;

/// Packets kept in flight per channel.
const IN_FLIGHT: usize = 2;
/// Payload bytes per packet.
const PAYLOAD: usize = 64;
/// Steps between two offer listings while nothing changed.
const LIST_EVERY: u64 = 4;
/// Steps a client waits before retrying an offer whose open failed, doubled per failure up to
/// 64 times this: an offer the host keeps refusing (e.g. one whose rescind a hostile host
/// mangled, so the driver still lists it) must not turn into an open per step.
const RETRY_BASE: u64 = 4;

/// What the workload does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Open what is offered and exchange traffic.
    Active,
    /// Close every channel (and cancel pending opens) at the next step, then stay idle.
    CloseAll,
    /// Do nothing.
    Idle,
}

/// A client's counters over the whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Opens the driver accepted.
    pub opens_started: u64,
    /// Channels that opened.
    pub opens: u64,
    /// Opens that failed or were overtaken by a rescind.
    pub open_failures: u64,
    /// Packets sent.
    pub sent: u64,
    /// Echoes that matched, in order.
    pub echoed: u64,
    /// Echoes that did not match (must stay 0).
    pub mismatches: u64,
    /// Channels that went away under the client.
    pub gone: u64,
    /// Channels the client closed.
    pub closed: u64,
    /// Requests the driver refused (slot busy, sub-channel before its primary, ...).
    pub refused: u64,
    /// Other errors (corrupt rings, undecodable responses).
    pub errors: u64,
}

#[derive(Debug)]
struct Shared {
    totals: Totals,
    mode: Mode,
}

/// The run's view of one client's workload.
#[derive(Debug, Clone)]
pub(crate) struct Handle(Rc<RefCell<Shared>>);

impl Handle {
    /// The counters now.
    pub(crate) fn totals(&self) -> Totals {
        self.0.borrow().totals
    }

    /// Changes what the workload does from its next step on.
    pub(crate) fn set_mode(&self, mode: Mode) {
        self.0.borrow_mut().mode = mode;
    }
}

enum Chan {
    Opening(PendingOpen),
    Open {
        ch: Box<Channel<ClientRingMem>>,
        expected: VecDeque<[u8; PAYLOAD]>,
        sub_index: u16,
    },
}

/// The workload of one client PD.
pub(crate) struct BusClient {
    name: String,
    rings: (u16, u16),
    chans: BTreeMap<RelId, (Chan, u16)>,
    shared: Handle,
    seq: u64,
    steps: u64,
    relist: bool,
    /// Per relid: consecutive open failures and the step before which it is not retried.
    backoff: BTreeMap<RelId, (u32, u64)>,
}

impl core::fmt::Debug for BusClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BusClient")
            .field("name", &self.name)
            .field("channels", &self.chans.len())
            .finish_non_exhaustive()
    }
}

impl BusClient {
    /// A workload for client `name` whose window slots hold `slot_pages` pages: rings of a
    /// sixteenth of the slot each, 2 to 16 pages.
    pub(crate) fn new(name: &str, slot_pages: usize) -> (Self, Handle) {
        let ring = (slot_pages / 16).clamp(2, 16) as u16;
        let shared = Handle(Rc::new(RefCell::new(Shared {
            totals: Totals::default(),
            mode: Mode::Active,
        })));
        let me = Self {
            name: name.to_string(),
            rings: (ring, ring),
            chans: BTreeMap::new(),
            shared: shared.clone(),
            seq: 0,
            steps: 0,
            relist: true,
            backoff: BTreeMap::new(),
        };
        (me, shared)
    }

    fn totals(&self) -> std::cell::RefMut<'_, Totals> {
        std::cell::RefMut::map(self.shared.0.borrow_mut(), |s| &mut s.totals)
    }

    fn payload(&mut self, relid: RelId) -> [u8; PAYLOAD] {
        self.seq += 1;
        let word = (self.seq ^ (u64::from(relid.0) << 40)).to_le_bytes();
        core::array::from_fn(|i| word[i % 8] ^ (i as u8))
    }

    fn close_all(&mut self, ctx: &mut ClientCtx<'_>) {
        for (relid, (chan, _)) in core::mem::take(&mut self.chans) {
            let r = match chan {
                Chan::Opening(p) => p.cancel(ctx),
                Chan::Open { ch, .. } => ch.close(ctx),
            };
            match r {
                Ok(()) => self.totals().closed += 1,
                Err(ClientError::ChannelGone) => self.totals().gone += 1,
                Err(e) => {
                    self.totals().errors += 1;
                    warn!("{}: closing {relid}: {e}", self.name);
                }
            }
        }
    }

    /// Lists the offers and starts opening the ones not held yet.
    fn open_offers(&mut self, ctx: &mut ClientCtx<'_>) {
        let offers = match list_offers(ctx, None) {
            Ok(o) => o,
            Err(ClientError::Refused(Refusal::NotConnected)) => return,
            Err(e) => {
                self.totals().errors += 1;
                warn!("{}: listing offers: {e}", self.name);
                return;
            }
        };
        self.relist = false;
        for o in offers.iter() {
            if self.chans.contains_key(&o.relid)
                || self
                    .backoff
                    .get(&o.relid)
                    .is_some_and(|&(_, until)| self.steps < until)
            {
                continue;
            }
            if o.sub_channel_index != 0 {
                // A sub-channel opens only once a primary of the same instance is open here.
                let primary_open = offers.iter().any(|p| {
                    p.sub_channel_index == 0
                        && p.instance == o.instance
                        && p.class == o.class
                        && matches!(self.chans.get(&p.relid), Some((Chan::Open { .. }, _)))
                });
                if !primary_open {
                    self.relist = true;
                    continue;
                }
            }
            match start_open(ctx, o.relid, self.rings.0, self.rings.1) {
                Ok(p) => {
                    self.totals().opens_started += 1;
                    self.chans
                        .insert(o.relid, (Chan::Opening(p), o.sub_channel_index));
                }
                Err(ClientError::Refused(e)) => {
                    self.totals().refused += 1;
                    debug!("{}: open of {} refused: {e}", self.name, o.relid);
                }
                Err(e) => {
                    self.totals().errors += 1;
                    warn!("{}: open of {}: {e}", self.name, o.relid);
                }
            }
        }
    }

    /// Receives and checks echoes, then tops the in-flight packets up.
    fn traffic(
        &mut self,
        ctx: &mut ClientCtx<'_>,
        relid: RelId,
        ch: &mut Channel<ClientRingMem>,
        expected: &mut VecDeque<[u8; PAYLOAD]>,
    ) -> Result<(), ClientError> {
        let mut buf = [0u8; PAYLOAD];
        while let Some(r) = ch.recv(ctx, &mut buf)? {
            let ok = expected
                .pop_front()
                .is_some_and(|want| r.len == PAYLOAD && want == buf);
            let mut t = self.totals();
            if ok {
                t.echoed += 1;
            } else {
                t.mismatches += 1;
            }
        }
        while expected.len() < IN_FLIGHT {
            let p = self.payload(relid);
            match ch.send(ctx, &p) {
                Ok(()) => {
                    expected.push_back(p);
                    self.totals().sent += 1;
                }
                Err(ClientError::Ring(RingError::Full)) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Notes a failed open of `relid`: it is retried after a delay that doubles per failure.
    fn failed(&mut self, relid: RelId) {
        let n = self.backoff.get(&relid).map_or(0, |&(n, _)| n) + 1;
        let delay = RETRY_BASE << n.min(6);
        self.backoff.insert(relid, (n, self.steps + delay));
        self.relist = true;
    }

    /// One step of every channel held.
    fn run_channels(&mut self, ctx: &mut ClientCtx<'_>) {
        let relids: Vec<RelId> = self.chans.keys().copied().collect();
        for relid in relids {
            let Some((chan, sub)) = self.chans.remove(&relid) else {
                continue;
            };
            let next = match chan {
                Chan::Opening(p) => match p.poll(ctx) {
                    Ok(Some(ch)) => {
                        self.totals().opens += 1;
                        self.backoff.remove(&relid);
                        // Its sub-channels may open now.
                        self.relist |= sub == 0;
                        Some(Chan::Open {
                            ch: Box::new(ch),
                            expected: VecDeque::new(),
                            sub_index: sub,
                        })
                    }
                    Ok(None) => Some(Chan::Opening(p)),
                    Err(ClientError::OpenFailed | ClientError::ChannelGone) => {
                        self.totals().open_failures += 1;
                        self.failed(relid);
                        None
                    }
                    Err(e) => {
                        self.totals().errors += 1;
                        warn!("{}: open of {relid}: {e}", self.name);
                        self.failed(relid);
                        None
                    }
                },
                Chan::Open {
                    mut ch,
                    mut expected,
                    sub_index,
                } => match self.traffic(ctx, relid, &mut ch, &mut expected) {
                    Ok(()) => Some(Chan::Open {
                        ch,
                        expected,
                        sub_index,
                    }),
                    Err(ClientError::ChannelGone) => {
                        self.totals().gone += 1;
                        self.relist = true;
                        None
                    }
                    Err(e) => {
                        // A broken channel (e.g. a corrupt ring): give it back.
                        self.totals().errors += 1;
                        warn!("{}: {relid}: {e}; closing it", self.name);
                        if ch.close(ctx).is_ok() {
                            self.totals().closed += 1;
                        }
                        self.relist = true;
                        None
                    }
                },
            };
            if let Some(c) = next {
                self.chans.insert(relid, (c, sub));
            }
        }
    }
}

impl ClientProgram for BusClient {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        self.steps += 1;
        // A notification means "look at the status records"; the channels are looked at every
        // step anyway, and a new offer shows up in the next listing.
        if ctx.poll_notification().is_some() {
            self.relist = true;
        }
        let mode = self.shared.0.borrow().mode;
        match mode {
            Mode::Idle => return Flow::Continue,
            Mode::CloseAll => {
                self.close_all(ctx);
                self.shared.set_mode(Mode::Idle);
                return Flow::Continue;
            }
            Mode::Active => {}
        }
        self.run_channels(ctx);
        if self.relist || self.steps.is_multiple_of(LIST_EVERY) {
            self.open_offers(ctx);
        }
        Flow::Continue
    }
}
