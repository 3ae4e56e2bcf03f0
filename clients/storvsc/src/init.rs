//! The initialisation exchange on the primary channel: `BEGIN_INITIALIZATION`, then
//! `QUERY_PROTOCOL_VERSION` for each version newest first until the host accepts one (status 0),
//! `QUERY_PROPERTIES`, `END_INITIALIZATION`. Each request is an in-band packet with a completion
//! requested and its step's own transaction id ([`Init::transaction_id`]: [`INIT_TRANSACTION_ID`]
//! for the first, one less for each step after it); each answer is a `COMPLETE_IO` completion
//! with that id. A completion with an earlier step's id (a host that completed a request twice)
//! is ignored ([`InitStep::Stale`]) rather than taken as the answer to the request in flight, as
//! it would be if every step used one id (Linux's storvsc uses one request for every step). A refused version is answered with a non-zero status (OpenVMM:
//! `REVISION_MISMATCH`); any other operation than `COMPLETE_IO`, or a non-zero status for the
//! other steps, ends the exchange.

use crate::buffer::PAGE_SIZE;
use crate::msg::{
    self, ChannelProperties, DecodeError, Operation, PACKET_MAX, PROPERTY_MULTI_CHANNEL, Version,
};

/// The transaction id of the first initialisation request and of the sub-channel request; the
/// later initialisation steps count down from it ([`Init::transaction_id`]). Never a request
/// table id (`generation << 32 | slot + 1`, slot below 2^16), never the host's unsolicited 0.
pub const INIT_TRANSACTION_ID: u64 = u64::MAX;

/// Steps of the exchange with a request of their own: BEGIN, each proposal, properties, END.
const STEPS: u64 = Version::PROPOSALS.len() as u64 + 3;

/// What the exchange agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version.
    pub version: Version,
    /// The properties as the host wrote them.
    pub properties: ChannelProperties,
    /// Largest transfer of one request: the host's figure rounded down to whole pages.
    pub max_transfer_bytes: u32,
    /// Sub-channels the host offers (0 when it cannot create any: no multi-channel flag, or a
    /// version before 5.1).
    pub sub_channels_offered: u16,
}

/// Where the exchange stands; each state carries what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// Waiting for the answer to `BEGIN_INITIALIZATION`.
    Begin,
    /// Waiting for the answer to `Version::PROPOSALS[index]`.
    Proposing {
        /// Index of the version proposed.
        index: usize,
    },
    /// The host accepted `version`; waiting for the properties.
    Properties {
        /// The version in use.
        version: Version,
    },
    /// Waiting for the answer to `END_INITIALIZATION`.
    Ending(Negotiated),
    /// Done: requests may be sent.
    Ready(Negotiated),
    /// Given up; the channel is unusable.
    Failed(InitError),
}

/// Why the exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitError {
    /// The host's packet did not decode (short, or not `COMPLETE_IO`).
    Decode(DecodeError),
    /// The host answered `operation` with a non-zero status.
    Refused {
        /// The request refused.
        operation: Operation,
        /// The status (NTSTATUS).
        status: u32,
    },
    /// The host refused every version the guest speaks.
    NoCommonVersion,
    /// A completion with an id no step of the exchange used.
    Transaction(u64),
    /// Properties allowing less than one page per request.
    NoTransfer {
        /// The host's figure.
        max_transfer_bytes: u32,
    },
    /// A completion after the exchange ended.
    OutOfOrder,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Decode(e) => write!(f, "{e}"),
            InitError::Refused { operation, status } => write!(
                f,
                "the host refused vstor operation {} with status {status:#010x}",
                operation.0
            ),
            InitError::NoCommonVersion => f.write_str(
                "the host refused every storage protocol version (6.2, 6.0, 5.1, 4.2, 2.0)",
            ),
            InitError::Transaction(id) => {
                write!(f, "completion with id {id:#x} during initialisation")
            }
            InitError::NoTransfer { max_transfer_bytes } => write!(
                f,
                "maximum transfer of {max_transfer_bytes} bytes is less than a page"
            ),
            InitError::OutOfOrder => f.write_str("completion after initialisation ended"),
        }
    }
}

/// What to do after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitStep {
    /// Send the first `n` bytes of the output buffer, in-band, completion requested, with the
    /// new state's [`Init::transaction_id`].
    Send(usize),
    /// Nothing to send (an unsolicited packet, ignored).
    Wait,
    /// A completion with an earlier step's id (this id): the host completed a request twice.
    /// Ignored, nothing to send; the caller counts it as the host's error.
    Stale(u64),
    /// The exchange is done.
    Ready(Negotiated),
}

impl Init {
    /// Starts: `BEGIN_INITIALIZATION` in `out`; (state, bytes to send).
    pub fn begin(out: &mut [u8; PACKET_MAX]) -> (Init, usize) {
        (
            Init::Begin,
            msg::simple_request(out, Operation::BEGIN_INITIALIZATION),
        )
    }

    /// The transaction id of the request this state awaits the answer to: the id to send the
    /// request [`InitStep::Send`] asks for with (the first, from [`Init::begin`], is
    /// [`INIT_TRANSACTION_ID`]).
    #[must_use]
    pub const fn transaction_id(&self) -> u64 {
        INIT_TRANSACTION_ID - self.step_number()
    }

    /// The step's number: 0 for BEGIN, then one per proposal, properties, END.
    const fn step_number(&self) -> u64 {
        let proposals = Version::PROPOSALS.len() as u64;
        match self {
            Init::Begin => 0,
            Init::Proposing { index } => 1 + *index as u64,
            Init::Properties { .. } => 1 + proposals,
            Init::Ending(_) => 2 + proposals,
            Init::Ready(_) | Init::Failed(_) => STEPS,
        }
    }

    /// The agreed parameters once ready.
    #[must_use]
    pub const fn negotiated(&self) -> Option<Negotiated> {
        match self {
            Init::Ready(n) => Some(*n),
            _ => None,
        }
    }

    /// Takes the host's packet (`transaction_id` is the VMBus packet's); the next request goes to
    /// `out`. A failure is also the new state.
    ///
    /// # Errors
    /// [`InitError`].
    pub fn on_packet(
        &mut self,
        transaction_id: u64,
        packet: &[u8],
        out: &mut [u8; PACKET_MAX],
    ) -> Result<InitStep, InitError> {
        if transaction_id == 0 && !matches!(self, Init::Ready(_) | Init::Failed(_)) {
            // The host's notifications (a bus rescan) mean nothing before the bus is up.
            return Ok(InitStep::Wait);
        }
        let r = self.step(transaction_id, packet, out);
        if let Err(e) = r {
            *self = Init::Failed(e);
        }
        r
    }

    fn step(
        &mut self,
        transaction_id: u64,
        packet: &[u8],
        out: &mut [u8; PACKET_MAX],
    ) -> Result<InitStep, InitError> {
        if matches!(self, Init::Ready(_) | Init::Failed(_)) {
            return Err(InitError::OutOfOrder);
        }
        if transaction_id != self.transaction_id() {
            let step = INIT_TRANSACTION_ID.wrapping_sub(transaction_id);
            return if step < self.step_number() {
                Ok(InitStep::Stale(transaction_id))
            } else {
                Err(InitError::Transaction(transaction_id))
            };
        }
        match *self {
            Init::Begin => {
                ok(packet, Operation::BEGIN_INITIALIZATION)?;
                *self = Init::Proposing { index: 0 };
                Ok(InitStep::Send(msg::version_request(
                    out,
                    Version::PROPOSALS[0],
                )))
            }
            Init::Proposing { index } => {
                let h = msg::completion(packet, 0).map_err(InitError::Decode)?;
                if h.status == msg::status::SUCCESS {
                    *self = Init::Properties {
                        version: Version::PROPOSALS[index],
                    };
                    Ok(InitStep::Send(msg::simple_request(
                        out,
                        Operation::QUERY_PROPERTIES,
                    )))
                } else if index + 1 < Version::PROPOSALS.len() {
                    *self = Init::Proposing { index: index + 1 };
                    Ok(InitStep::Send(msg::version_request(
                        out,
                        Version::PROPOSALS[index + 1],
                    )))
                } else {
                    Err(InitError::NoCommonVersion)
                }
            }
            Init::Properties { version } => {
                let (h, properties) =
                    ChannelProperties::decode(packet).map_err(InitError::Decode)?;
                if h.status != msg::status::SUCCESS {
                    return Err(InitError::Refused {
                        operation: Operation::QUERY_PROPERTIES,
                        status: h.status,
                    });
                }
                let max_transfer_bytes = properties.max_transfer_bytes & !(PAGE_SIZE - 1);
                if max_transfer_bytes == 0 {
                    return Err(InitError::NoTransfer {
                        max_transfer_bytes: properties.max_transfer_bytes,
                    });
                }
                let multi =
                    properties.flags & PROPERTY_MULTI_CHANNEL != 0 && version.allows_sub_channels();
                *self = Init::Ending(Negotiated {
                    version,
                    properties,
                    max_transfer_bytes,
                    sub_channels_offered: if multi {
                        properties.max_channel_count
                    } else {
                        0
                    },
                });
                Ok(InitStep::Send(msg::simple_request(
                    out,
                    Operation::END_INITIALIZATION,
                )))
            }
            Init::Ending(n) => {
                ok(packet, Operation::END_INITIALIZATION)?;
                *self = Init::Ready(n);
                Ok(InitStep::Ready(n))
            }
            Init::Ready(_) | Init::Failed(_) => Err(InitError::OutOfOrder),
        }
    }
}

/// Checks a bodiless completion with status 0 answering `operation`.
fn ok(packet: &[u8], operation: Operation) -> Result<(), InitError> {
    let h = msg::completion(packet, 0).map_err(InitError::Decode)?;
    if h.status != msg::status::SUCCESS {
        return Err(InitError::Refused {
            operation,
            status: h.status,
        });
    }
    Ok(())
}
