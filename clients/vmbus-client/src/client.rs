//! Requests to the driver over the control page: the call itself, listing offers, opening.

use vmbus_driver::control::{
    ChannelHandle, ChannelStatus, ClientError as Refusal, LENGTH_SIZE, OFFERS_DELIVERED_OFFSET,
    OFFERS_DELIVERED_SIZE, OfferInfo, REQUEST_AREA, REQUEST_OFFSET, RESPONSE_AREA, RESPONSE_OFFSET,
    Request, Response, STATUS_RECORD_SIZE, StatusRecord, decode_frame, encode_frame, frame_len,
    status_offset,
};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{RelId, SlotId};
use vmbus_driver::ring::{RingReader, RingWriter};

use crate::channel::Channel;
use crate::env::ClientEnv;
use crate::error::ClientError;

/// Most offers [`list_offers`] returns.
pub const MAX_LISTED_OFFERS: usize = 64;

/// The offers a client may open.
pub type OfferList = heapless::Vec<OfferInfo, MAX_LISTED_OFFERS>;

/// Writes `request` to the request area, calls the driver and decodes its response.
///
/// # Errors
/// [`ClientError::BadResponse`] if the response frame does not decode.
pub fn call<E: ClientEnv>(env: &mut E, request: &Request) -> Result<Response, ClientError> {
    let mut area = [0u8; REQUEST_AREA];
    // Every request is a few bytes; a failure here would be a bug in the encoder, reported as
    // such rather than sent.
    let n = encode_frame(request, &mut area).map_err(ClientError::BadResponse)?;
    env.control_write(REQUEST_OFFSET, &area[..n]);
    env.ppcall_driver();
    let mut resp = [0u8; RESPONSE_AREA];
    let mut len_word = [0u8; LENGTH_SIZE];
    env.control_read(RESPONSE_OFFSET, &mut len_word);
    let len = frame_len(len_word, RESPONSE_AREA).map_err(ClientError::BadResponse)?;
    resp[..LENGTH_SIZE].copy_from_slice(&len_word);
    // Read the body once into our own buffer and decode only that copy.
    env.control_read(
        RESPONSE_OFFSET + LENGTH_SIZE,
        &mut resp[LENGTH_SIZE..LENGTH_SIZE + len],
    );
    decode_frame::<Response>(&resp[..LENGTH_SIZE + len]).map_err(ClientError::BadResponse)
}

/// Reads the status record of channel slot `slot`.
///
/// # Errors
/// [`ClientError::UnexpectedResponse`] for a slot outside the status table or an unknown state.
pub fn status<E: ClientEnv>(env: &mut E, slot: SlotId) -> Result<StatusRecord, ClientError> {
    if slot.index() >= vmbus_driver::control::MAX_SLOTS {
        return Err(ClientError::UnexpectedResponse);
    }
    let mut b = [0u8; STATUS_RECORD_SIZE];
    env.control_read(status_offset(slot), &mut b);
    StatusRecord::from_bytes(&b).ok_or(ClientError::UnexpectedResponse)
}

/// Lists the offers of `class` (or of every class the client serves, for `None`) that the
/// driver lets this client open, in ascending relid order.
///
/// # Errors
/// The driver's refusal (e.g. `NotConnected`), [`ClientError::TooManyOffers`], or a response
/// that does not fit (including a page cursor that does not advance).
pub fn list_offers<E: ClientEnv>(
    env: &mut E,
    class: Option<Guid>,
) -> Result<OfferList, ClientError> {
    let mut out = OfferList::new();
    let mut start = RelId(0);
    loop {
        let (offers, next) = match call(env, &Request::ListOffers { start })? {
            Response::Offers { offers, next } => (offers, next),
            Response::Error(e) => return Err(e.into()),
            _ => return Err(ClientError::UnexpectedResponse),
        };
        for o in offers {
            if class.is_none_or(|c| c == Guid(o.class)) {
                out.push(o).map_err(|_| ClientError::TooManyOffers)?;
            }
        }
        match next {
            None => return Ok(out),
            // The cursor must advance, or a confused driver would keep us here forever.
            Some(n) if n > start => start = n,
            Some(_) => return Err(ClientError::UnexpectedResponse),
        }
    }
}

/// The driver's count of offers of this client's classes delivered so far (the control page's
/// offers-delivered word): it moves, and the driver notifies the client, each time such an offer
/// arrives, at connect or hot-added later.
pub fn offers_delivered<E: ClientEnv>(env: &mut E) -> u32 {
    let mut b = [0u8; OFFERS_DELIVERED_SIZE];
    env.control_read(OFFERS_DELIVERED_OFFSET, &mut b);
    u32::from_le_bytes(b)
}

/// Waits until the driver lists an offer of `class` and returns the first one's relid (the
/// lowest). Blocks on the driver's notification, and only while no new offer of this client's
/// classes has arrived: the offers-delivered counter is read before the offers are listed, so an
/// offer that arrives between the list and the wait moves the counter and is listed at once
/// instead of waiting for a notification that was already taken. A driver that is not connected
/// yet lists nothing (its offers move the counter when they come).
///
/// # Errors
/// The driver's refusals other than `NotConnected`, a response that does not fit, and
/// [`ClientError::NoOffer`] when the environment reports that no notification will come.
pub fn wait_for_offer<E: ClientEnv>(env: &mut E, class: Guid) -> Result<RelId, ClientError> {
    loop {
        let seen = offers_delivered(env);
        match list_offers(env, Some(class)) {
            Ok(offers) => {
                if let Some(o) = offers.first() {
                    return Ok(o.relid);
                }
            }
            Err(ClientError::Refused(Refusal::NotConnected)) => {}
            Err(e) => return Err(e),
        }
        // Other notifications (a channel's events, a status change) leave the counter alone:
        // wait again.
        while offers_delivered(env) == seen {
            if env.wait_notification().is_none() {
                return Err(ClientError::NoOffer);
            }
        }
    }
}

/// Checks ring sizes against the window slot before asking the driver.
fn check_sizes<E: ClientEnv>(env: &E, out_pages: u16, in_pages: u16) -> Result<(), ClientError> {
    let slot = env.window().slot_pages();
    let total = usize::from(out_pages) + usize::from(in_pages);
    if out_pages < 2 || in_pages < 2 || total > slot {
        return Err(ClientError::BadRingSize);
    }
    Ok(())
}

/// An open the driver has accepted and not yet completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingOpen {
    handle: ChannelHandle,
    out_pages: u16,
    in_pages: u16,
}

impl PendingOpen {
    /// The handle of the channel being opened.
    #[must_use]
    pub const fn handle(&self) -> ChannelHandle {
        self.handle
    }

    /// Looks at the status record once: `Ok(None)` while the open is in progress, the channel
    /// once it is open.
    ///
    /// # Errors
    /// [`ClientError::OpenFailed`], [`ClientError::ChannelGone`] (rescinded meanwhile, or the
    /// slot now describes another generation), ring errors on a corrupt ring header.
    pub fn poll<E: ClientEnv>(&self, env: &mut E) -> Result<Option<Channel<E::Mem>>, ClientError> {
        let rec = status(env, self.handle.slot)?;
        if rec.generation != self.handle.generation {
            return Err(ClientError::ChannelGone);
        }
        match rec.state {
            ChannelStatus::Opening => Ok(None),
            ChannelStatus::Failed => Err(ClientError::OpenFailed),
            ChannelStatus::Gone | ChannelStatus::Free => Err(ClientError::ChannelGone),
            ChannelStatus::Open => {
                let layout = env.window();
                let base = layout
                    .slot_base(self.handle.slot)
                    .ok_or(ClientError::UnexpectedResponse)?;
                let out = usize::from(self.out_pages);
                let inb = usize::from(self.in_pages);
                let out_mem = env.ring_mem(base, out);
                let in_mem = env.ring_mem(base + out, inb);
                let writer = RingWriter::new(out_mem)?;
                let reader = RingReader::new(in_mem)?;
                Ok(Some(Channel::new(
                    self.handle,
                    writer,
                    reader,
                    rec.event_count,
                )))
            }
        }
    }

    /// Gives the open up: asks the driver to close the channel.
    ///
    /// # Errors
    /// As [`Channel::close`](crate::Channel::close).
    pub fn cancel<E: ClientEnv>(self, env: &mut E) -> Result<(), ClientError> {
        close_handle(env, self.handle)
    }
}

/// Asks the driver to open offer `relid` with rings of `out_pages` (guest to host) and
/// `in_pages` (host to guest) pages, each including its header page, and returns without
/// waiting for the host.
///
/// # Errors
/// [`ClientError::BadRingSize`] before any request; the driver's refusal.
pub fn start_open<E: ClientEnv>(
    env: &mut E,
    relid: RelId,
    out_pages: u16,
    in_pages: u16,
) -> Result<PendingOpen, ClientError> {
    check_sizes(env, out_pages, in_pages)?;
    let req = Request::Open {
        relid,
        out_ring_pages: out_pages,
        in_ring_pages: in_pages,
    };
    match call(env, &req)? {
        Response::Opening { handle } if handle.relid == relid => Ok(PendingOpen {
            handle,
            out_pages,
            in_pages,
        }),
        Response::Error(e) => Err(e.into()),
        _ => Err(ClientError::UnexpectedResponse),
    }
}

/// Opens offer `relid` and waits until the host has answered: the channel, ready for traffic.
///
/// # Errors
/// As [`start_open`] and [`PendingOpen::poll`]; [`ClientError::NoCompletion`] (after cancelling
/// the open) when the environment reports that no notification will come.
pub fn open<E: ClientEnv>(
    env: &mut E,
    relid: RelId,
    out_pages: u16,
    in_pages: u16,
) -> Result<Channel<E::Mem>, ClientError> {
    let pending = start_open(env, relid, out_pages, in_pages)?;
    loop {
        if let Some(ch) = pending.poll(env)? {
            return Ok(ch);
        }
        if env.wait_notification().is_none() {
            // Best effort: the driver may have completed or dropped it meanwhile.
            let _ = pending.cancel(env);
            return Err(ClientError::NoCompletion);
        }
    }
}

/// Sends `Close` for `handle`.
pub(crate) fn close_handle<E: ClientEnv>(
    env: &mut E,
    handle: ChannelHandle,
) -> Result<(), ClientError> {
    match call(env, &Request::Close { handle })? {
        Response::Closed => Ok(()),
        Response::Error(e) => Err(e.into()),
        _ => Err(ClientError::UnexpectedResponse),
    }
}
