//! One integration-service channel, guest side: the negotiation first, then the service's own
//! requests, each answered in place.
//!
//! [`Endpoint`] is what a PD program (or the simulation's client) keeps per channel: it takes
//! every packet the host sends, answers the negotiation with the service's versions, refuses a
//! service request that comes before the negotiation settled (the host always negotiates
//! first), and hands the rest to the service ([`Service::answer`]). Every refusal is counted and
//! returned, never a panic: a host that sends garbage gets no answer to it, and the channel
//! goes on.

use crate::header::{self, IcError, IcVersion, MsgType};
use crate::negotiate::{self, Outcome};

/// What one service does with its requests once the versions are agreed.
pub trait Service {
    /// The service's name, for logs.
    const NAME: &'static str;
    /// The message type of its requests.
    const TYPE: MsgType;
    /// Service versions it speaks, newest first.
    const VERSIONS: &'static [IcVersion];
    /// What an answered request reports to the program (the heartbeat's sequence number, the
    /// shutdown request, the time sample).
    type Event: Copy;

    /// Answers the request in `msg` (whose header says `Self::TYPE`) in place, for the agreed
    /// service version; the answer's length and what it reports.
    fn answer(
        &mut self,
        msg: &mut [u8],
        version: IcVersion,
    ) -> Result<(usize, Self::Event), IcError>;
}

/// Where the channel's negotiation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// The host has not negotiated yet.
    Pending,
    /// Both sides speak these versions.
    Agreed {
        /// The framework version.
        framework: IcVersion,
        /// The service version.
        service: IcVersion,
    },
    /// The last negotiation found no common version: the host is expected to close the
    /// channel; a later negotiation may still agree.
    NoCommonVersion,
}

/// What one packet from the host led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<E> {
    /// The negotiation was answered (send `len` bytes back).
    Negotiated {
        /// Bytes of the answer.
        len: usize,
        /// The outcome.
        outcome: Outcome,
    },
    /// A service request was answered (send `len` bytes back).
    Answered {
        /// Bytes of the answer.
        len: usize,
        /// What the request reported.
        event: E,
    },
}

/// Why a packet got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The packet itself is bad (truncated, not a request, a bad body, a foreign type).
    Message(IcError),
    /// A service request before the versions were agreed.
    NotNegotiated,
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Refused::Message(e) => write!(f, "{e}"),
            Refused::NotNegotiated => f.write_str("a service request before the negotiation"),
        }
    }
}

/// One service channel, guest side.
#[derive(Debug)]
pub struct Endpoint<S> {
    /// The service.
    pub service: S,
    negotiation: Negotiation,
    answered: u64,
    refused: u64,
}

impl<S: Service> Endpoint<S> {
    /// A channel that has not negotiated yet.
    pub const fn new(service: S) -> Endpoint<S> {
        Endpoint {
            service,
            negotiation: Negotiation::Pending,
            answered: 0,
            refused: 0,
        }
    }

    /// Where the negotiation stands.
    pub fn negotiation(&self) -> Negotiation {
        self.negotiation
    }

    /// Requests answered (negotiations included).
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Packets refused.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Takes the packet the host sent (`msg`, which the answer overwrites in place).
    pub fn on_packet(&mut self, msg: &mut [u8]) -> Result<Step<S::Event>, Refused> {
        let step = self.dispatch(msg);
        match step {
            Ok(_) => self.answered += 1,
            Err(_) => self.refused += 1,
        }
        step
    }

    fn dispatch(&mut self, msg: &mut [u8]) -> Result<Step<S::Event>, Refused> {
        let h = header::request(msg).map_err(Refused::Message)?;
        if h.ty == MsgType::NEGOTIATE {
            let (len, outcome) = negotiate::answer(msg, S::VERSIONS).map_err(Refused::Message)?;
            self.negotiation = match outcome {
                Outcome::Agreed { framework, service } => {
                    Negotiation::Agreed { framework, service }
                }
                Outcome::NoCommonVersion => Negotiation::NoCommonVersion,
            };
            return Ok(Step::Negotiated { len, outcome });
        }
        if h.ty != S::TYPE {
            return Err(Refused::Message(IcError::Unexpected(h.ty)));
        }
        let Negotiation::Agreed { service, .. } = self.negotiation else {
            return Err(Refused::NotNegotiated);
        };
        let (len, event) = self
            .service
            .answer(msg, service)
            .map_err(Refused::Message)?;
        Ok(Step::Answered { len, event })
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
