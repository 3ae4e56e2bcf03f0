//! Client requests through the control page, and client faults.

use log::warn;

use crate::control::{
    ChannelHandle, ClientError, OFFERS_PER_RESPONSE, OfferInfo, REQUEST_AREA, REQUEST_OFFSET,
    RESPONSE_AREA, RESPONSE_OFFSET, Request, Response, decode_frame, encode_frame,
};
use crate::hv::Hypervisor;
use crate::ids::ClientId;
use crate::kernel::Kernel;

use super::Driver;
use super::stats::ClientStats;
use super::table::{MAX_OPEN, MAX_RELIDS, Phase, RelidState, TeardownReason};

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
        self.clients.entries[c].stats.requests += 1;
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
            self.clients.entries[c].stats.errors += 1;
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

    /// Acts on one decoded request.
    pub(crate) fn handle_request<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        c: usize,
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
            Request::Close { handle } => self.handle_open_index(c, &handle).map(|idx| {
                self.begin_teardown(hv, k, idx, TeardownReason::ClientClose, now);
                Response::Closed
            }),
            Request::Signal { handle } => self.handle_open_index(c, &handle).and_then(|idx| {
                if self.opens[idx].phase != Phase::Open {
                    return Err(ClientError::NotOpen);
                }
                self.signal_channel(hv, k, idx)
                    .map(|hypercall| Response::Signalled { hypercall })
            }),
        };
        result.unwrap_or_else(Response::Error)
    }

    /// The open-table entry a client's handle names, if the handle is current (R1).
    fn handle_open_index(&self, c: usize, h: &ChannelHandle) -> Result<usize, ClientError> {
        let client = &self.clients.entries[c];
        let slot = usize::from(h.slot);
        if slot >= usize::from(client.max_channels) {
            return Err(ClientError::ChannelGone);
        }
        let idx = client.slots[slot];
        let Some(o) = self.opens.get(usize::from(idx)) else {
            // NO_OPEN or RETIRED.
            return Err(ClientError::ChannelGone);
        };
        if !o.in_use()
            || u32::from(o.relid) != h.relid
            || o.generation != h.generation
            || usize::from(o.client) != c
            || o.phase == Phase::Teardown
        {
            return Err(ClientError::ChannelGone);
        }
        Ok(usize::from(idx))
    }

    /// Offers client `c` may open, from relid `start` on.
    fn list_offers(&self, c: usize, start: u16) -> Response {
        let client = &self.clients.entries[c];
        let mut offers = heapless::Vec::<OfferInfo, OFFERS_PER_RESPONSE>::new();
        let mut next = None;
        for r in usize::from(start).max(1)..MAX_RELIDS {
            let e = &self.relids[r];
            if e.state == RelidState::Free || e.rescinded || !client.allows(&e.class, &e.instance) {
                continue;
            }
            let info = OfferInfo {
                // r < 2048.
                relid: r as u32,
                class: e.class.0,
                instance: e.instance.0,
                sub_channel_index: e.sub_index,
            };
            if offers.push(info).is_err() {
                next = Some(r as u16);
                break;
            }
        }
        Response::Offers { offers, next }
    }

    /// What client `client` did, counted against it; `None` for an unknown client.
    pub fn client_stats(&self, client: ClientId) -> Option<ClientStats> {
        self.clients
            .index(client)
            .map(|c| self.clients.entries[c].stats)
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
        for slot in 0..usize::from(self.clients.entries[c].max_channels) {
            let idx = self.clients.entries[c].slots[slot];
            if usize::from(idx) < MAX_OPEN {
                self.begin_teardown(hv, k, usize::from(idx), TeardownReason::ClientFault, now);
            }
        }
    }
}
