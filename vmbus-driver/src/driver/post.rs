//! Posting channel messages to the host with the bounded retry of transient failures.

use log::warn;

use crate::hv::{HvMessageType, HvStatus, Hypervisor};
use crate::ids::ConnectionId;
use crate::msg::{ChannelMessage, MAX_PAYLOAD, encode};

use super::POST_RETRIES;
use super::stats::Stats;

/// Why a post failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostError {
    /// The hypercall returned a non-transient status (or kept failing transiently).
    Status(HvStatus),
    /// The message could not be encoded (a driver bug: our own values never mismatch).
    Encode,
}

/// Encodes `msg` and posts it to `connection`, retrying INSUFFICIENT_MEMORY and
/// INSUFFICIENT_BUFFERS up to [`POST_RETRIES`] times (the host's queue drains as it works;
/// the event loop has nothing else to wait for while a control message is refused). A failure
/// is counted and logged as a warning.
pub(crate) fn post<H: Hypervisor + ?Sized>(
    hv: &mut H,
    stats: &mut Stats,
    connection: ConnectionId,
    msg: &ChannelMessage,
) -> Result<(), PostError> {
    let result = post_unlogged(hv, stats, connection, msg);
    if let Err(PostError::Status(status)) = result {
        warn!("posting {} to {connection} failed: {status}", msg.msgtype());
    }
    result
}

/// [`post`] for a post whose failure may be expected (the version walk's INITIATE_CONTACT on a
/// connection an older host does not have): counted, but logging is left to the caller.
pub(crate) fn post_unlogged<H: Hypervisor + ?Sized>(
    hv: &mut H,
    stats: &mut Stats,
    connection: ConnectionId,
    msg: &ChannelMessage,
) -> Result<(), PostError> {
    let mut buf = [0u8; MAX_PAYLOAD];
    let Ok(n) = encode(msg, &mut buf) else {
        warn!("cannot encode {}", msg.msgtype());
        stats.post_failures += 1;
        return Err(PostError::Encode);
    };
    let mut attempts = 0;
    loop {
        let status = hv.post_message(connection, HvMessageType::VMBUS, &buf[..n]);
        if status.is_success() {
            return Ok(());
        }
        if status.is_transient_retry() && attempts < POST_RETRIES {
            attempts += 1;
            stats.post_retries += 1;
            continue;
        }
        stats.post_failures += 1;
        return Err(PostError::Status(status));
    }
}
