//! Offers and rescinds, at start-up and at any later time (hot add and remove), and the
//! primary/sub-channel relation.

use log::{debug, info, warn};

use crate::hv::Hypervisor;
use crate::ids::RelId;
use crate::kernel::Kernel;
use crate::msg::{ChannelMessage, OfferChannel, RelIdReleased};

use super::TeardownReason;
use super::post::post;
use super::table::{MAX_RELIDS, RelidEntry, RelidState};
use super::{ConnectionState, Driver};

/// Largest connection id (bits 23:0).
const CONNECTION_ID_MASK: u32 = 0x00FF_FFFF;

impl Driver {
    /// OFFERCHANNEL.
    pub(crate) fn on_offer<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        o: &OfferChannel,
        now: u64,
    ) {
        if self.conn.unload_sent {
            // An offer that crossed our UNLOAD: the host forgets it when it handles UNLOAD.
            info!("offer of {} crossed UNLOAD: ignored", o.child_relid);
            return;
        }
        // A hot add while the channels are being torn down for unload is legitimate: the entry
        // stays offered until UNLOAD_RESPONSE frees the table.
        if !self.is_connected() && self.conn.state != ConnectionState::Unloading {
            self.hostile_unexpected("OFFERCHANNEL while not connected");
            return;
        }
        let Some(r) = self.checked_relid(o.child_relid, "OFFERCHANNEL") else {
            return;
        };
        if o.connection_id.0 & !CONNECTION_ID_MASK != 0 {
            self.stats.hostile += 1;
            self.stats.malformed += 1;
            warn!("offer {} has invalid {}", o.child_relid, o.connection_id);
            return;
        }
        if self.relids[r].state != RelidState::Free {
            self.stats.hostile += 1;
            self.stats.duplicate_offers += 1;
            warn!("duplicate offer of {} ignored", o.child_relid);
            return;
        }
        // A host offers a device (class, instance, sub-channel index) under one relid at a
        // time: if the driver still holds it under another, the host rescinded that relid and
        // the rescind never arrived intact. Without this the old relid would stay a zombie,
        // "open" with no traffic, holding its client's slot against the new offer.
        if let Some(old) = (1..MAX_RELIDS).find(|&q| {
            let e = &self.relids[q];
            q != r
                && e.state != RelidState::Free
                && !e.rescinded
                && e.class == o.if_type
                && e.instance == o.if_instance
                && e.sub_index == o.sub_channel_index
        }) {
            self.stats.implied_rescinds += 1;
            warn!(
                "{} offers the device of relid:{old} again: its rescind was lost; tearing relid:{old} down",
                o.child_relid
            );
            self.rescind_entry(hv, k, old, now);
        }
        let e = &mut self.relids[r];
        *e = RelidEntry {
            class: o.if_type,
            instance: o.if_instance,
            connection_id: o.connection_id,
            generation: e.generation.wrapping_add(1),
            sub_index: o.sub_channel_index,
            open: 0,
            state: RelidState::Offered,
            rescinded: false,
            unresolved_open: None,
        };
        self.stats.offers += 1;
        debug!(
            "offer {} class {:?} sub {}",
            o.child_relid, o.if_type, o.sub_channel_index
        );
    }

    /// RESCIND_CHANNELOFFER.
    pub(crate) fn on_rescind<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        now: u64,
    ) {
        let Some(r) = self.checked_relid(relid, "RESCIND_CHANNELOFFER") else {
            return;
        };
        if self.conn.unload_sent {
            // The rescind crossed our UNLOAD: the host forgets every relid when it handles
            // UNLOAD, so a RELID_RELEASED now would name a relid it no longer holds (the formal
            // model's "no message after UNLOAD" rule). UNLOAD_RESPONSE frees the whole table.
            info!("rescind of {relid} crossed UNLOAD: ignored");
            return;
        }
        let e = self.relids[r];
        if e.state == RelidState::Free || e.rescinded {
            self.stats.hostile += 1;
            self.stats.unknown_rescinds += 1;
            warn!("rescind of unknown or already rescinded {relid} ignored");
            return;
        }
        self.stats.rescinds += 1;
        info!("rescind of {relid}");
        self.rescind_entry(hv, k, r, now);
    }

    /// The rescind of live entry `r`, received or implied.
    fn rescind_entry<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        r: usize,
        now: u64,
    ) {
        let e = self.relids[r];
        self.relids[r].rescinded = true;
        if e.unresolved_open.is_some() {
            // The host is tearing the channel down itself: close it and tear down the GPADL the
            // unanswered open left behind (today's order for a rescind); its GPADL_TORNDOWN
            // frees the quarantined pages.
            self.resolve_open(hv, r, true);
        }
        match e.state {
            RelidState::Offered => {
                // Nobody uses it: step 1 and step 4 only.
                self.relids[r].generation = e.generation.wrapping_add(1);
                self.release_relid(hv, r);
            }
            RelidState::Active => {
                // Already in teardown: the running teardown sends RELID_RELEASED at its end, and
                // if it was waiting for OPENCHANNEL_RESULT it closes the channel now.
                let idx = usize::from(e.open);
                self.begin_teardown(hv, k, idx, TeardownReason::Rescind, now);
                self.advance_teardown(hv, k, idx, now);
            }
            RelidState::Free => {}
        }
    }

    /// RELID_RELEASED for a rescinded relid, then the entry is free for a new offer.
    pub(crate) fn release_relid<H: Hypervisor + ?Sized>(&mut self, hv: &mut H, r: usize) {
        // r < MAX_RELIDS (2048), so it fits a u32.
        let msg = ChannelMessage::RelIdReleased(RelIdReleased {
            child_relid: RelId(r as u32),
        });
        if post(hv, &mut self.stats, self.conn.msg_conn, &msg).is_ok() {
            self.stats.relids_released += 1;
        }
        let e = &mut self.relids[r];
        e.state = RelidState::Free;
        e.rescinded = false;
    }

    /// The primary of sub-channel entry `r` (same class and instance, index 0), if offered.
    pub(crate) fn primary_of(&self, r: usize) -> Option<usize> {
        let e = self.relids.get(r)?;
        if e.sub_index == 0 {
            return None;
        }
        (1..MAX_RELIDS).find(|&p| {
            let pe = &self.relids[p];
            pe.state != RelidState::Free
                && pe.sub_index == 0
                && pe.class == e.class
                && pe.instance == e.instance
        })
    }

    /// Whether entry `s` is a sub-channel of primary entry `p`.
    pub(crate) fn is_sub_of(&self, s: usize, p: usize) -> bool {
        let (se, pe) = (&self.relids[s], &self.relids[p]);
        s != p
            && se.state != RelidState::Free
            && pe.sub_index == 0
            && se.sub_index != 0
            && se.class == pe.class
            && se.instance == pe.instance
    }
}
