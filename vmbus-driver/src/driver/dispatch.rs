//! The interrupt path (events first, then messages with the EOM rule, then the interrupt
//! acknowledgement), message routing, hostile-input accounting and timeouts.

use log::{debug, warn};

use crate::hv::{HvMessageType, Hypervisor, SlotError, SynicMessage, VMBUS_SINT};
use crate::hv::{consume_message, scan_events};
use crate::ids::RelId;
use crate::kernel::Kernel;
use crate::msg::{ChannelMessage, decode};

use super::channels::ChannelTable;
use super::{Driver, MESSAGES_PER_PASS};

impl Driver {
    /// Handles the VMBus interrupt: takes and delivers the event flags, consumes every pending
    /// message (copy, clear, EOM if pending, then act on the copy), acknowledges the interrupt.
    ///
    /// Returns true if it stopped at [`MESSAGES_PER_PASS`] messages with more pending; the caller
    /// should call again before waiting for the next interrupt.
    pub fn on_interrupt<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        now: u64,
    ) -> bool {
        self.stats.interrupts += 1;
        self.deliver_events(hv, k);
        let mut more = true;
        let mut handled = 0;
        while handled < MESSAGES_PER_PASS {
            match consume_message(hv, VMBUS_SINT) {
                Ok(None) => {
                    more = false;
                    break;
                }
                Ok(Some(m)) => {
                    handled += 1;
                    self.stats.messages += 1;
                    self.on_synic_message(hv, k, &m, now);
                }
                Err(SlotError::ChangedDuringConsume { .. }) => {
                    // Counted as a pass so a slot that keeps changing cannot hold us forever.
                    handled += 1;
                }
                Err(e) => {
                    handled += 1;
                    self.stats.hostile += 1;
                    self.stats.malformed += 1;
                    warn!("bad SynIC message: {e}");
                }
            }
        }
        if more {
            self.stats.message_bound_hits += 1;
        }
        if let Err(e) = k.ack_irq() {
            self.stats.kernel_errors += 1;
            warn!("ack_irq failed: {e}");
        }
        more
    }

    /// One SynIC message from the VMBus slot.
    fn on_synic_message<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        m: &SynicMessage,
        now: u64,
    ) {
        if m.message_type != HvMessageType::VMBUS {
            self.stats.foreign_messages += 1;
            debug!("ignoring {} in the VMBus slot", m.message_type);
            return;
        }
        let msg = match decode(m.payload(), self.conn.decode_version()) {
            Ok(msg) => msg,
            Err(e) => {
                self.stats.hostile += 1;
                self.stats.malformed += 1;
                warn!("malformed host message: {e}");
                return;
            }
        };
        self.on_message(hv, k, &msg, now);
    }

    /// Acts on one decoded host message as if it had been consumed from the SynIC slot. The PD
    /// uses [`Driver::on_interrupt`]; this entry point lets conformance harnesses (the formal
    /// model's trace replay) drive the core with typed messages.
    pub fn on_message<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        msg: &ChannelMessage,
        now: u64,
    ) {
        match msg {
            ChannelMessage::VersionResponse(r) => self.on_version_response(hv, r, now),
            ChannelMessage::OfferChannel(o) => self.on_offer(hv, k, o, now),
            ChannelMessage::RescindChannelOffer(r) => self.on_rescind(hv, k, r.child_relid, now),
            ChannelMessage::AllOffersDelivered => self.on_all_offers(),
            ChannelMessage::GpadlCreated(g) => self.on_gpadl_created(hv, k, g, now),
            ChannelMessage::OpenChannelResult(r) => self.on_open_result(hv, k, r, now),
            ChannelMessage::GpadlTorndown(t) => self.on_gpadl_torndown(hv, k, t.gpadl, now),
            ChannelMessage::ModifyChannelResponse(r) => self.on_modify_response(r),
            ChannelMessage::UnloadResponse => self.on_unload_response(k),
            other => {
                self.stats.hostile += 1;
                self.stats.unexpected_messages += 1;
                warn!("unexpected host message {}", other.msgtype());
            }
        }
    }

    /// Counts and logs a message that is valid but not expected now.
    pub(crate) fn hostile_unexpected(&mut self, what: &str) {
        self.stats.hostile += 1;
        self.stats.unexpected_messages += 1;
        warn!("{what}");
    }

    /// Counts and logs a relid outside 1..2048; returns whether it is in range.
    pub(crate) fn check_relid(&mut self, relid: RelId, what: &str) -> bool {
        let in_range = ChannelTable::in_range(relid);
        if !in_range {
            self.stats.hostile += 1;
            self.stats.relid_out_of_range += 1;
            warn!("{what} names {relid}, outside 1..2048");
        }
        in_range
    }

    /// Counts and logs a reply that names the wrong relid, openid or GPADL.
    pub(crate) fn mismatched(&mut self, what: &str) {
        self.stats.hostile += 1;
        self.stats.mismatched_replies += 1;
        warn!("{what}");
    }

    /// Timeouts of every awaited host reply. Call periodically with the current tick.
    pub fn on_tick<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        now: u64,
    ) {
        self.connection_tick(k, now);
        for relid in ChannelTable::relids() {
            let deadline = self.channels.state(relid).deadline();
            if deadline.is_some_and(|d| d.passed(now)) {
                self.stats.timeouts += 1;
                self.on_channel_timeout(hv, k, relid, now);
            }
        }
        self.buffer_timeouts(hv, k, now);
        self.check_unload(hv, k, now);
    }

    /// Takes SINT2's event flags and hands each channel's event to its owner.
    fn deliver_events<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
    ) {
        let mut notify = 0u32;
        let scan = scan_events(hv, VMBUS_SINT, |relid| {
            self.deliver_event(k, relid, &mut notify);
        });
        match scan {
            Ok(s) if s.flag0 => self.stats.events_flag0 += 1,
            Ok(_) => {}
            Err(e) => warn!("event scan failed: {e}"),
        }
        self.notify_clients(k, notify);
    }
}
