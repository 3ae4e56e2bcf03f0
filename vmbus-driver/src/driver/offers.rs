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
    pub(crate) fn on_offer(&mut self, o: &OfferChannel) {
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
        let e = &mut self.relids[r];
        if e.state != RelidState::Free {
            self.stats.hostile += 1;
            self.stats.duplicate_offers += 1;
            warn!("duplicate offer of {} ignored", o.child_relid);
            return;
        }
        *e = RelidEntry {
            class: o.if_type,
            instance: o.if_instance,
            connection_id: o.connection_id,
            generation: e.generation.wrapping_add(1),
            sub_index: o.sub_channel_index,
            open: 0,
            state: RelidState::Offered,
            rescinded: false,
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
        self.relids[r].rescinded = true;
        info!("rescind of {relid}");
        match e.state {
            RelidState::Offered => {
                // Nobody uses it: step 1 and step 4 only.
                self.relids[r].generation = e.generation.wrapping_add(1);
                self.release_relid(hv, r);
            }
            RelidState::Active => {
                // Already in teardown: the running teardown sends RELID_RELEASED at its end.
                self.begin_teardown(hv, k, usize::from(e.open), TeardownReason::Rescind, now);
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
