//! The start-up negotiation: versions newest first, then the capabilities.

use crate::msg::{
    self, Capabilities, CapabilitiesResponse, DecodeError, MAX_GUEST_MESSAGE, MsgType, Version,
};

/// Where the negotiation stands; each state carries what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// Waiting for the answer to `Version::PROPOSALS[index]`.
    Proposing {
        /// Index of the version proposed.
        index: usize,
    },
    /// The host accepted `version`; waiting for its answer to the capabilities.
    Reporting {
        /// The version in use.
        version: Version,
    },
    /// Done: the service runs.
    Ready {
        /// The version in use.
        version: Version,
        /// The host's answer to the capabilities.
        host: CapabilitiesResponse,
    },
    /// Given up; the service must stop.
    Failed(StartupError),
}

/// Why the negotiation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupError {
    /// The host's message did not decode.
    Decode(DecodeError),
    /// The host refused every version the guest speaks.
    NoCommonVersion,
    /// The host refused the capabilities.
    CapabilitiesRefused,
    /// A message that has no place in the negotiation (the type).
    OutOfOrder(MsgType),
}

impl core::fmt::Display for StartupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartupError::Decode(e) => write!(f, "{e}"),
            StartupError::NoCommonVersion => {
                write!(f, "the host refused every protocol version (2.0, 1.0, 0.3)")
            }
            StartupError::CapabilitiesRefused => write!(f, "the host refused the capabilities"),
            StartupError::OutOfOrder(t) => {
                write!(f, "message type {} out of order in the negotiation", t.0)
            }
        }
    }
}

/// What to do after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupStep {
    /// Send the first `n` bytes of the output buffer.
    Send(usize),
    /// Nothing to send; the negotiation goes on (an information message, ignored).
    Wait,
    /// The negotiation is done.
    Ready,
}

impl Startup {
    /// Starts: the first version request, in `out`; (state, bytes to send).
    pub fn begin(out: &mut [u8; MAX_GUEST_MESSAGE], trans_id: u32) -> (Startup, usize) {
        let n = Self::propose(out, trans_id, 0);
        (Startup::Proposing { index: 0 }, n)
    }

    fn propose(out: &mut [u8; MAX_GUEST_MESSAGE], trans_id: u32, index: usize) -> usize {
        let last = index + 1 == Version::PROPOSALS.len();
        msg::version_request(out, trans_id, Version::PROPOSALS[index], last)
    }

    /// Takes the host's message `packet`; a reply to send goes to `out`. `caps` is what the guest
    /// reports once a version is accepted. A failure is also the new state.
    pub fn on_message(
        &mut self,
        packet: &[u8],
        out: &mut [u8; MAX_GUEST_MESSAGE],
        trans_id: u32,
        caps: &Capabilities,
    ) -> Result<StartupStep, StartupError> {
        let r = self.step(packet, out, trans_id, caps);
        if let Err(e) = r {
            *self = Startup::Failed(e);
        }
        r
    }

    fn step(
        &mut self,
        packet: &[u8],
        out: &mut [u8; MAX_GUEST_MESSAGE],
        trans_id: u32,
        caps: &Capabilities,
    ) -> Result<StartupStep, StartupError> {
        let (h, _) = msg::split(packet).map_err(StartupError::Decode)?;
        if h.ty == MsgType::INFO {
            return Ok(StartupStep::Wait);
        }
        match *self {
            Startup::Proposing { index } => {
                let (_, accepted) = msg::version_response(packet).map_err(StartupError::Decode)?;
                if accepted {
                    *self = Startup::Reporting {
                        version: Version::PROPOSALS[index],
                    };
                    Ok(StartupStep::Send(msg::capabilities_report(
                        out, trans_id, caps,
                    )))
                } else if index + 1 < Version::PROPOSALS.len() {
                    *self = Startup::Proposing { index: index + 1 };
                    Ok(StartupStep::Send(Self::propose(out, trans_id, index + 1)))
                } else {
                    Err(StartupError::NoCommonVersion)
                }
            }
            Startup::Reporting { version } => {
                let (_, host) = msg::capabilities_response(packet).map_err(StartupError::Decode)?;
                if !host.accepted {
                    return Err(StartupError::CapabilitiesRefused);
                }
                *self = Startup::Ready { version, host };
                Ok(StartupStep::Ready)
            }
            Startup::Ready { .. } | Startup::Failed(_) => Err(StartupError::OutOfOrder(h.ty)),
        }
    }
}
