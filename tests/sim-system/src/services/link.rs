//! One service channel's connection, step by step: wait for an offer of the class, open it,
//! hold it, and start over when it goes away.

use std::cell::Cell;
use std::rc::Rc;

use log::{debug, info, warn};
use vmbus_client::{
    Channel, ClientError, PendingOpen, RelId, list_offers, offers_delivered, start_open,
};
use vmbus_driver::control::ClientError as Refusal;
use vmbus_driver::guid::Guid;

use super::{RETRY_STEPS, RING_PAGES};
use crate::program::ClientCtx;
use crate::ringmem::ClientRingMem;

/// Connection counters of one service program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Opens the driver accepted.
    pub opens_started: u64,
    /// Channels that opened.
    pub opens: u64,
    /// Opens that failed or were overtaken by a rescind.
    pub open_failures: u64,
    /// Channels that went away under the program (rescind, teardown).
    pub gone: u64,
    /// Channels the program closed (a [`Pause`], a broken ring).
    pub closed: u64,
    /// Other client-library errors.
    pub errors: u64,
    /// The relid open now.
    pub open_relid: Option<RelId>,
}

/// Asks a program to close its channel and stay away until resumed.
#[derive(Debug, Clone, Default)]
pub struct Pause(Rc<Cell<bool>>);

impl Pause {
    /// Closes the channel at the program's next step (and cancels a pending open); nothing is
    /// opened until [`Pause::resume`].
    pub fn pause(&self) {
        self.0.set(true);
    }

    /// Lets the program wait for its offer and open again.
    pub fn resume(&self) {
        self.0.set(false);
    }

    /// Whether paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.0.get()
    }
}

/// Where the connection stands.
#[derive(Debug)]
pub(crate) enum State {
    /// Waiting for an offer; `listed`: the offers-delivered count at the last listing.
    Waiting { listed: Option<u32> },
    /// The driver is opening this.
    Opening(PendingOpen),
    /// Open.
    Open(Box<Channel<ClientRingMem>>),
}

/// A service channel's connection.
#[derive(Debug)]
pub(crate) struct Link {
    pub name: &'static str,
    class: Guid,
    pub state: State,
    /// No listing before this tick (after a failure).
    retry_at: u64,
}

impl Link {
    pub(crate) fn new(name: &'static str, class: Guid) -> Self {
        Self {
            name,
            class,
            state: State::Waiting { listed: None },
            retry_at: 0,
        }
    }

    /// The class served.
    pub(crate) fn class(&self) -> Guid {
        self.class
    }

    /// Back to waiting, listing again at once (`retry`: only after [`RETRY_STEPS`]).
    pub(crate) fn reset(&mut self, ctx: &ClientCtx<'_>, retry: bool, stats: &mut LinkStats) {
        stats.open_relid = None;
        self.state = State::Waiting { listed: None };
        self.retry_at = if retry { ctx.now() + RETRY_STEPS } else { 0 };
    }

    /// The channel went away under the program.
    pub(crate) fn gone(&mut self, ctx: &ClientCtx<'_>, stats: &mut LinkStats) {
        info!(
            "{}: the channel is gone (rescinded or torn down); waiting for the device again",
            self.name
        );
        stats.gone += 1;
        self.reset(ctx, false, stats);
    }

    /// Closes the channel (or cancels the open) and waits again (`retry`: after a pause).
    pub(crate) fn close(&mut self, ctx: &mut ClientCtx<'_>, retry: bool, stats: &mut LinkStats) {
        let r = match core::mem::replace(&mut self.state, State::Waiting { listed: None }) {
            State::Waiting { .. } => return self.reset(ctx, retry, stats),
            State::Opening(p) => p.cancel(ctx),
            State::Open(ch) => ch.close(ctx),
        };
        match r {
            Ok(()) => stats.closed += 1,
            Err(ClientError::ChannelGone) => stats.gone += 1,
            Err(e) => {
                stats.errors += 1;
                warn!("{}: close: {e}", self.name);
            }
        }
        self.reset(ctx, retry, stats);
    }

    /// Moves the connection on: lists the offers when a new one arrived (or a retry is due),
    /// starts an open, polls an open in progress. True when the channel opened in this call.
    pub(crate) fn advance(&mut self, ctx: &mut ClientCtx<'_>, stats: &mut LinkStats) -> bool {
        match &self.state {
            State::Open(_) => false,
            State::Waiting { listed } => {
                let seen = offers_delivered(ctx);
                if *listed == Some(seen) || ctx.now() < self.retry_at {
                    return false;
                }
                self.state = State::Waiting { listed: Some(seen) };
                self.list_and_open(ctx, stats);
                // An open may complete at once (the host answers within the call).
                matches!(self.state, State::Opening(_)) && self.poll_open(ctx, stats)
            }
            State::Opening(_) => self.poll_open(ctx, stats),
        }
    }

    fn list_and_open(&mut self, ctx: &mut ClientCtx<'_>, stats: &mut LinkStats) {
        let offers = match list_offers(ctx, Some(self.class)) {
            Ok(o) => o,
            // Not connected yet: the offers move the counter when they come.
            Err(ClientError::Refused(Refusal::NotConnected)) => return,
            Err(e) => {
                stats.errors += 1;
                warn!("{}: listing offers: {e}", self.name);
                return self.reset(ctx, true, stats);
            }
        };
        let Some(offer) = offers.iter().find(|o| o.sub_channel_index == 0) else {
            return;
        };
        match start_open(ctx, offer.relid, RING_PAGES, RING_PAGES) {
            Ok(p) => {
                stats.opens_started += 1;
                self.state = State::Opening(p);
            }
            Err(e) => {
                // E.g. the slot is still being torn down after a rescind: try again shortly.
                debug!("{}: open of {}: {e}", self.name, offer.relid);
                stats.open_failures += 1;
                self.reset(ctx, true, stats);
            }
        }
    }

    fn poll_open(&mut self, ctx: &mut ClientCtx<'_>, stats: &mut LinkStats) -> bool {
        let State::Opening(p) = &self.state else {
            return false;
        };
        match p.poll(ctx) {
            Ok(Some(ch)) => {
                info!("{}: opened {}", self.name, ch.relid());
                stats.opens += 1;
                stats.open_relid = Some(ch.relid());
                self.state = State::Open(Box::new(ch));
                true
            }
            Ok(None) => false,
            Err(ClientError::OpenFailed | ClientError::ChannelGone) => {
                stats.open_failures += 1;
                self.reset(ctx, true, stats);
                false
            }
            Err(e) => {
                stats.errors += 1;
                warn!("{}: open: {e}", self.name);
                self.reset(ctx, true, stats);
                false
            }
        }
    }
}
