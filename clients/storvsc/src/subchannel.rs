//! Sub-channels: after the exchange, a host that offers them (multi-channel flag, version 5.1 or
//! later) creates up to `max_channel_count` extra channels of the same device when the guest sends
//! `CREATE_SUB_CHANNELS` with a count (a u16 at offset 12) on the primary channel. The host
//! answers with a `COMPLETE_IO` completion (status 0, or e.g. `INVALID_PARAMETER` for too many),
//! then offers the sub-channels over VMBus; the guest opens each and sends requests on it without
//! another exchange. Completions come back on the channel the request went out on, so each
//! channel keeps its own [`crate::Requests`] table.
//!
//! [`SubChannels`] is the bookkeeping: how many to ask for, the host's answer, how many were
//! opened, and which channel a request takes. Opening the offers is the VMBus client's work.

use crate::init::{INIT_TRANSACTION_ID, Negotiated};
use crate::msg::{self, DecodeError, PACKET_MAX};

/// Where the sub-channels stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubChannels {
    /// The host offers none.
    Unsupported,
    /// None asked for yet; the host offers `offered`.
    Idle {
        /// Sub-channels the host offers.
        offered: u16,
    },
    /// `CREATE_SUB_CHANNELS` for `count` sent, no answer yet.
    Requested {
        /// Sub-channels asked for.
        count: u16,
    },
    /// The host agreed to `count`; `opened` of them are open.
    Granted {
        /// Sub-channels the host creates.
        count: u16,
        /// Sub-channels opened so far.
        opened: u16,
    },
    /// The host refused (its status).
    Refused(u32),
}

/// A sub-channel step that makes no sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubChannelError {
    /// Not in a state that allows it.
    State,
    /// A completion with another id than the initialisation id.
    Transaction(u64),
    /// The completion did not decode.
    Decode(DecodeError),
    /// More sub-channels opened than the host created.
    TooMany,
}

impl core::fmt::Display for SubChannelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SubChannelError::State => f.write_str("sub-channel step out of order"),
            SubChannelError::Transaction(id) => {
                write!(f, "sub-channel completion with id {id:#x}")
            }
            SubChannelError::Decode(e) => write!(f, "sub-channel completion: {e}"),
            SubChannelError::TooMany => f.write_str("more sub-channels opened than granted"),
        }
    }
}

impl SubChannels {
    /// The bookkeeping after the exchange.
    #[must_use]
    pub const fn new(negotiated: &Negotiated) -> SubChannels {
        if negotiated.sub_channels_offered == 0 {
            SubChannels::Unsupported
        } else {
            SubChannels::Idle {
                offered: negotiated.sub_channels_offered,
            }
        }
    }

    /// Asks for `wanted` sub-channels (at most what the host offers; Linux asks for one per CPU
    /// beyond the first): `CREATE_SUB_CHANNELS` goes to `out`, to be sent in-band with a
    /// completion request and [`INIT_TRANSACTION_ID`]; its length, or `None` when there is
    /// nothing to ask (no offer, or `wanted` of 0).
    ///
    /// # Errors
    /// [`SubChannelError::State`] unless idle or unsupported.
    pub fn request(
        &mut self,
        wanted: u16,
        out: &mut [u8; PACKET_MAX],
    ) -> Result<Option<usize>, SubChannelError> {
        match *self {
            SubChannels::Unsupported => Ok(None),
            SubChannels::Idle { offered } => {
                let count = wanted.min(offered);
                if count == 0 {
                    return Ok(None);
                }
                *self = SubChannels::Requested { count };
                Ok(Some(msg::sub_channel_request(out, count)))
            }
            _ => Err(SubChannelError::State),
        }
    }

    /// Takes the host's answer; the sub-channels it will offer (0 when it refused).
    ///
    /// # Errors
    /// [`SubChannelError`]; the state stays.
    pub fn on_completion(
        &mut self,
        transaction_id: u64,
        packet: &[u8],
    ) -> Result<u16, SubChannelError> {
        let SubChannels::Requested { count } = *self else {
            return Err(SubChannelError::State);
        };
        if transaction_id != INIT_TRANSACTION_ID {
            return Err(SubChannelError::Transaction(transaction_id));
        }
        let h = msg::completion(packet, 0).map_err(SubChannelError::Decode)?;
        if h.status == msg::status::SUCCESS {
            *self = SubChannels::Granted { count, opened: 0 };
            Ok(count)
        } else {
            *self = SubChannels::Refused(h.status);
            Ok(0)
        }
    }

    /// Records that one more sub-channel was opened; the number open.
    ///
    /// # Errors
    /// [`SubChannelError::TooMany`] beyond the granted count, [`SubChannelError::State`] before
    /// a grant.
    pub fn on_opened(&mut self) -> Result<u16, SubChannelError> {
        match self {
            SubChannels::Granted { count, opened } if *opened < *count => {
                *opened += 1;
                Ok(*opened)
            }
            SubChannels::Granted { .. } => Err(SubChannelError::TooMany),
            _ => Err(SubChannelError::State),
        }
    }

    /// Channels usable for requests: the primary plus the open sub-channels.
    #[must_use]
    pub const fn channels(&self) -> u16 {
        match self {
            SubChannels::Granted { opened, .. } => 1 + *opened,
            _ => 1,
        }
    }

    /// The channel for the `n`th request, round robin: 0 is the primary, `k` the `k`th
    /// sub-channel opened.
    #[must_use]
    pub const fn channel_for(&self, n: u64) -> u16 {
        (n % self.channels() as u64) as u16
    }
}
