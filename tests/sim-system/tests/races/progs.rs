//! The client side of the raced sequences: a scripted program that opens one offer, does a few
//! echo round trips and closes it, one small action per step, recording what it got.

use std::cell::RefCell;
use std::rc::Rc;

use sim_system::{ClientCtx, ClientRingMem, Flow};
use vmbus_client::{Channel, ClientError, PendingOpen, list_offers, start_open};
use vmbus_driver::control::ChannelHandle;
use vmbus_driver::ids::RelId;

/// What a [`Script`] did.
#[derive(Debug, Default)]
pub struct Record {
    /// Handles the driver gave it (the open's handle).
    pub handles: Vec<ChannelHandle>,
    /// The open completed.
    pub opened: bool,
    /// Echoes received intact.
    pub echoes: u32,
    /// Echoes that did not match what was sent.
    pub mismatches: u32,
    /// Host events seen on the channel.
    pub events: u32,
    /// It closed the channel itself.
    pub closed: bool,
    /// How it ended, if it ended with an error.
    pub error: Option<ClientError>,
    /// It finished.
    pub done: bool,
}

/// Shared view of a [`Script`]'s record.
pub type Shared = Rc<RefCell<Record>>;

enum St {
    Start,
    Opening(PendingOpen),
    Open(Box<Channel<ClientRingMem>>),
    Finished,
}

/// Wait for the offer of `relid`, open it, do `round_trips` echo round trips (one packet in flight), then close.
pub struct Script {
    relid: RelId,
    round_trips: u32,
    /// Close at the end (otherwise keep the channel open and idle).
    close: bool,
    st: St,
    sent: u32,
    rec: Shared,
}

impl Script {
    /// A script over `relid`.
    pub fn new(relid: RelId, round_trips: u32, close: bool) -> (Self, Shared) {
        let rec = Shared::default();
        (
            Self {
                relid,
                round_trips,
                close,
                st: St::Start,
                sent: 0,
                rec: rec.clone(),
            },
            rec,
        )
    }

    fn payload(n: u32) -> [u8; 32] {
        let mut p = [0u8; 32];
        for (i, b) in p.iter_mut().enumerate() {
            *b = (n as u8).wrapping_mul(31) ^ (i as u8);
        }
        p
    }

    fn act(&mut self, ctx: &mut ClientCtx<'_>) -> Result<St, ClientError> {
        match std::mem::replace(&mut self.st, St::Finished) {
            St::Start => {
                // Wait for the offer (a hot-added one may not have reached the driver yet).
                let offers = list_offers(ctx, None)?;
                if !offers.iter().any(|o| o.relid == self.relid) {
                    return Ok(St::Start);
                }
                let p = start_open(ctx, self.relid, 4, 4)?;
                self.rec.borrow_mut().handles.push(p.handle());
                Ok(St::Opening(p))
            }
            St::Opening(p) => match p.poll(ctx)? {
                Some(ch) => {
                    self.rec.borrow_mut().opened = true;
                    Ok(St::Open(Box::new(ch)))
                }
                None => Ok(St::Opening(p)),
            },
            St::Open(mut ch) => {
                let ev = ch.take_events(ctx)?;
                self.rec.borrow_mut().events += ev;
                let mut buf = [0u8; 64];
                if let Some(r) = ch.recv(ctx, &mut buf)? {
                    let mut rec = self.rec.borrow_mut();
                    if buf[..r.len] == Self::payload(self.sent)[..] {
                        rec.echoes += 1;
                    } else {
                        rec.mismatches += 1;
                    }
                }
                let echoes = self.rec.borrow().echoes;
                if echoes < self.round_trips && self.sent == echoes {
                    self.sent += 1;
                    ch.send(ctx, &Self::payload(self.sent))?;
                } else if echoes >= self.round_trips && self.close {
                    ch.close(ctx)?;
                    self.rec.borrow_mut().closed = true;
                    return Ok(St::Finished);
                }
                Ok(St::Open(ch))
            }
            St::Finished => Ok(St::Finished),
        }
    }

    /// One step as a world program.
    pub fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        if matches!(self.st, St::Finished) {
            self.rec.borrow_mut().done = true;
            return Flow::Done;
        }
        match self.act(ctx) {
            Ok(St::Finished) => {
                self.rec.borrow_mut().done = true;
                Flow::Done
            }
            Ok(st) => {
                self.st = st;
                Flow::Continue
            }
            Err(e) => {
                let mut rec = self.rec.borrow_mut();
                rec.error = Some(e);
                rec.done = true;
                Flow::Done
            }
        }
    }
}

impl sim_system::ClientProgram for Script {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        Script::step(self, ctx)
    }
}
