//! Offers and rescinds, at start-up and at any later time (hot add and remove).

use log::{debug, info, warn};

use crate::control::OFFERS_DELIVERED_OFFSET;
use crate::hv::Hypervisor;
use crate::ids::RelId;
use crate::kernel::Kernel;
use crate::msg::{ChannelMessage, OfferChannel, RelIdReleased};

use super::channels::Offer;
use super::post::post;
use super::state::ChanState;
use super::{ConnectionState, Driver, TeardownReason};

impl Driver {
    /// OFFERCHANNEL.
    pub(crate) fn on_offer<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        o: &OfferChannel,
        now: u64,
    ) {
        let relid = o.child_relid;
        if self.conn.unload_sent() {
            // An offer that crossed our UNLOAD: the host forgets it when it handles UNLOAD.
            info!("offer of {relid} crossed UNLOAD: ignored");
            return;
        }
        // A hot add while the channels are being torn down for unload is legitimate: the entry
        // stays offered until UNLOAD_RESPONSE frees the table.
        if !self.is_connected() && self.conn.state() != ConnectionState::Unloading {
            self.hostile_unexpected("OFFERCHANNEL while not connected");
            return;
        }
        if !self.check_relid(relid, "OFFERCHANNEL") {
            return;
        }
        if !o.connection_id.is_valid() {
            self.stats.hostile += 1;
            self.stats.malformed += 1;
            warn!("offer {relid} has invalid {}", o.connection_id);
            return;
        }
        if self.channels.state(relid) != ChanState::Free {
            self.stats.hostile += 1;
            self.stats.duplicate_offers += 1;
            warn!("duplicate offer of {relid} ignored");
            return;
        }
        // The monitor page holds 128 bits (4 trigger groups of 32): a larger id names no bit,
        // so the channel is signalled with the hypercall, which every host accepts.
        let monitor = match (o.monitor_allocated, o.monitor_id) {
            (true, id) if usize::from(id) < super::monitor::MONITOR_IDS => Some(id),
            (true, id) => {
                self.stats.hostile += 1;
                self.stats.bad_monitor_ids += 1;
                warn!("offer {relid} has monitor id {id}, outside 0..128: signalled by hypercall");
                None
            }
            (false, _) => None,
        };
        let offer = Offer {
            class: o.if_type,
            instance: o.if_instance,
            connection_id: o.connection_id,
            sub_index: o.sub_channel_index,
            monitor,
        };
        // A host offers a device (class, instance, sub-channel index) under one relid at a
        // time: if the driver still holds it under another, the host rescinded that relid and
        // the rescind never arrived intact. Without this the old relid would stay a zombie,
        // "open" with no traffic, holding its client's slot against the new offer.
        if let Some(old) = self.channels.live_device(&offer, relid) {
            self.stats.implied_rescinds += 1;
            warn!(
                "{relid} offers the device of {old} again: its rescind was lost; tearing {old} down"
            );
            self.rescind_entry(hv, k, old, now);
        }
        self.channels.offer(relid, offer);
        self.stats.offers += 1;
        debug!(
            "offer {relid} class {:?} sub {}",
            o.if_type, o.sub_channel_index
        );
        self.announce_offer(k, &offer);
    }

    /// Tells every client that may open `offer` that it arrived: its offers-delivered counter
    /// moves (stored in its control page), then it is notified. A client waiting for its device
    /// reads the counter before it lists the offers, so this wakes it exactly when it has
    /// something new to list, and a client of other classes hears nothing.
    fn announce_offer<K: Kernel + ?Sized>(&mut self, k: &mut K, offer: &Offer) {
        for c in self.clients.all() {
            if !self.clients.allows(c, &offer.class, &offer.instance) {
                continue;
            }
            let count = self.clients.count_offer(c);
            let id = self.clients.id(c);
            if let Err(e) = k.control_write(id, OFFERS_DELIVERED_OFFSET, &count.to_le_bytes()) {
                self.stats.kernel_errors += 1;
                warn!("offers-delivered counter of {id}: {e}");
            }
            self.notify_client(k, id);
        }
    }

    /// RESCIND_CHANNELOFFER.
    pub(crate) fn on_rescind<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        now: u64,
    ) {
        if !self.check_relid(relid, "RESCIND_CHANNELOFFER") {
            return;
        }
        if self.conn.unload_sent() {
            // The rescind crossed our UNLOAD: the host forgets every relid when it handles
            // UNLOAD, so a RELID_RELEASED now would name a relid it no longer holds (the formal
            // model's "no message after UNLOAD" rule). UNLOAD_RESPONSE frees the whole table.
            info!("rescind of {relid} crossed UNLOAD: ignored");
            return;
        }
        let state = self.channels.state(relid);
        if state == ChanState::Free || state.rescinded() {
            self.stats.hostile += 1;
            self.stats.unknown_rescinds += 1;
            warn!("rescind of unknown or already rescinded {relid} ignored");
            return;
        }
        self.stats.rescinds += 1;
        info!("rescind of {relid}");
        self.rescind_entry(hv, k, relid, now);
    }

    /// The rescind of live `relid`, received or implied.
    fn rescind_entry<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        now: u64,
    ) {
        match self.channels.state(relid) {
            ChanState::Free => {}
            ChanState::Offered | ChanState::OpenUnresolved { .. } => {
                // The host is tearing the channel down itself: close it and tear down the GPADL
                // an unanswered open left behind; its GPADL_TORNDOWN frees the quarantined
                // pages.
                self.resolve_open(hv, relid, true);
                // Nobody uses it: step 1 and step 4 only.
                self.channels.bump_generation(relid);
                self.release_relid(hv, relid);
            }
            ChanState::TearingDown { ch, mut td } => {
                // The running teardown sends RELID_RELEASED at its end, and if it was waiting
                // for OPENCHANNEL_RESULT it closes the channel now.
                td.rescinded = true;
                self.channels
                    .set_state(relid, ChanState::TearingDown { ch, td });
                self.advance_teardown(hv, k, relid, now);
            }
            ChanState::GpadlPending { .. }
            | ChanState::OpenPending { .. }
            | ChanState::Open { .. } => {
                self.begin_teardown(hv, k, relid, TeardownReason::Rescind, now);
            }
        }
    }

    /// RELID_RELEASED for a rescinded relid, then the entry is free for a new offer.
    pub(crate) fn release_relid<H: Hypervisor + ?Sized>(&mut self, hv: &mut H, relid: RelId) {
        let msg = ChannelMessage::RelIdReleased(RelIdReleased { child_relid: relid });
        if post(hv, &mut self.stats, self.conn.msg_conn(), &msg).is_ok() {
            self.stats.relids_released += 1;
        }
        self.channels.release(relid);
    }
}
