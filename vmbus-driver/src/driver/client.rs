//! Client requests through the control page, and client faults.

use log::warn;

use crate::control::{
    ChannelHandle, ClientError, OFFERS_PER_RESPONSE, OfferInfo, REQUEST_AREA, REQUEST_OFFSET,
    RESPONSE_AREA, RESPONSE_OFFSET, Request, Response, decode_frame, encode_frame,
};
use crate::hv::Hypervisor;
use crate::ids::{ClientId, RelId};
use crate::kernel::Kernel;

use super::Driver;
use super::channels::{ChannelTable, Slot};
use super::clients::ClientIdx;
use super::state::TeardownReason;
use super::stats::ClientStats;

impl Driver {
    /// Handles client `client`'s protected call: reads the request from its control page, acts,
    /// and writes the response. An unknown client is logged and ignored.
    pub fn on_client_call<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        client: ClientId,
        now: u64,
    ) {
        let Some(c) = self.clients.index(client) else {
            self.stats.kernel_errors += 1;
            warn!("call from unknown {client}");
            return;
        };
        self.stats.client_requests += 1;
        self.clients.stats_mut(c).requests += 1;
        let mut area = [0u8; REQUEST_AREA];
        let response = match k.control_read(client, REQUEST_OFFSET, &mut area) {
            Err(e) => {
                self.stats.kernel_errors += 1;
                warn!("reading {client}'s request: {e}");
                return;
            }
            Ok(()) => match decode_frame::<Request>(&area) {
                Ok(req) => self.handle_request(hv, k, c, req, now),
                Err(e) => {
                    warn!("{client}: bad request: {e}");
                    Response::Error(ClientError::BadRequest)
                }
            },
        };
        if matches!(response, Response::Error(_)) {
            self.stats.client_errors += 1;
            self.clients.stats_mut(c).errors += 1;
        }
        let mut out = [0u8; RESPONSE_AREA];
        match encode_frame(&response, &mut out) {
            Ok(n) => {
                if let Err(e) = k.control_write(client, RESPONSE_OFFSET, &out[..n]) {
                    self.stats.kernel_errors += 1;
                    warn!("writing {client}'s response: {e}");
                }
            }
            Err(e) => warn!("{client}: response not encodable: {e}"),
        }
    }

    /// Acts on one decoded request of client `c`.
    pub(crate) fn handle_request<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        c: ClientIdx,
        req: Request,
        now: u64,
    ) -> Response {
        let result = match req {
            Request::ListOffers { start } => Ok(self.list_offers(c, start)),
            Request::Open {
                relid,
                out_ring_pages,
                in_ring_pages,
            } => self
                .open_channel(hv, k, c, relid, (out_ring_pages, in_ring_pages), now)
                .map(|handle| Response::Opening { handle }),
            Request::Close { handle } => self.handle_channel(c, &handle).map(|relid| {
                self.begin_teardown(hv, k, relid, TeardownReason::ClientClose, now);
                Response::Closed
            }),
            Request::Signal { handle } => self
                .handle_channel(c, &handle)
                .and_then(|relid| self.signal_channel(hv, k, relid))
                .map(|hypercall| Response::Signalled { hypercall }),
            Request::Stop { restart } => self.request_stop(hv, k, c, restart, now),
            Request::BalloonLend { pages } => Ok(self.balloon_lend(k, c, pages)),
            Request::BalloonReclaim { ranges } => self.balloon_reclaim(k, c, &ranges),
            Request::MemoryInfo => Ok(self.memory_info(k, c)),
            Request::AllocBuffer {
                handle,
                pages,
                gpadl,
            } => self.alloc_buffer(hv, k, c, &handle, pages, gpadl, now),
            Request::BufferStatus { handle, buffer } => self.buffer_status(c, &handle, &buffer),
            Request::BufferFrames {
                handle,
                buffer,
                start,
            } => self.buffer_frames(k, c, &handle, &buffer, start),
            Request::FreeBuffer { handle, buffer } => {
                self.free_buffer(hv, k, c, &handle, &buffer, now)
            }
        };
        result.unwrap_or_else(Response::Error)
    }

    /// The channel a client's handle names, if the handle is current (R1): its slot is bound to
    /// the handle's relid, at the handle's generation, opening or open.
    pub(crate) fn handle_channel(
        &self,
        c: ClientIdx,
        h: &ChannelHandle,
    ) -> Result<RelId, ClientError> {
        let Some(Slot::Bound(relid)) = self.channels.slot(c, h.slot) else {
            return Err(ClientError::ChannelGone);
        };
        let bound = self.channels.state(relid).bound();
        if relid != h.relid
            || self.channels.generation(relid) != h.generation
            || bound.is_none_or(|(ch, slot)| ch.client != c || slot != h.slot)
        {
            return Err(ClientError::ChannelGone);
        }
        Ok(relid)
    }

    /// Offers client `c` may open, from relid `start` on.
    fn list_offers(&self, c: ClientIdx, start: RelId) -> Response {
        let mut offers = heapless::Vec::<OfferInfo, OFFERS_PER_RESPONSE>::new();
        let mut next = None;
        for relid in ChannelTable::relids().skip_while(|&r| r < start) {
            let Some(offer) = self.channels.offer_of(relid) else {
                continue;
            };
            if self.channels.state(relid).rescinded()
                || !self.clients.allows(c, &offer.class, &offer.instance)
            {
                continue;
            }
            let info = OfferInfo {
                relid,
                class: offer.class.0,
                instance: offer.instance.0,
                sub_channel_index: offer.sub_index,
            };
            if offers.push(info).is_err() {
                next = Some(relid);
                break;
            }
        }
        Response::Offers { offers, next }
    }

    /// Offers of client `client`'s classes (and instance filter) delivered so far, as published
    /// in its control page; `None` for an unknown client.
    pub fn offers_delivered(&self, client: ClientId) -> Option<u32> {
        self.clients
            .index(client)
            .map(|c| self.clients.offers_delivered(c))
    }

    /// What client `client` did, counted against it; `None` for an unknown client.
    pub fn client_stats(&self, client: ClientId) -> Option<ClientStats> {
        self.clients.index(client).map(|c| self.clients.stats(c))
    }

    /// Client `client` faulted: every channel it holds goes through the teardown path.
    pub fn on_client_fault<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        client: ClientId,
        now: u64,
    ) {
        let Some(c) = self.clients.index(client) else {
            warn!("fault of unknown {client}");
            return;
        };
        self.stats.client_faults += 1;
        warn!("{client} faulted: tearing down its channels");
        for slot in self.channels.slot_ids(c) {
            if let Some(Slot::Bound(relid)) = self.channels.slot(c, slot) {
                self.begin_teardown(hv, k, relid, TeardownReason::ClientFault, now);
            }
        }
    }
}
