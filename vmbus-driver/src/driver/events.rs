//! Host events to clients (status record counter + notification) and client signals to the host
//! (only when the outbound ring has unread data and the host did not mask interrupts: the
//! channel's monitor bit when it is monitored, else HvCallSignalEvent).

use log::warn;

use crate::control::{ChannelStatus, ClientError, StatusRecord, status_offset};
use crate::hv::{HvStatus, Hypervisor, PAGE_SIZE};
use crate::ids::{ClientId, RelId, SlotId};
use crate::kernel::Kernel;

use super::Driver;
use super::clients::ClientIdx;
use super::state::ChanState;

/// Offsets in a ring header page (docs/protocol.md#the-ring-header-page).
const WRITE_INDEX: usize = 0;
const READ_INDEX: usize = 4;
const INTERRUPT_MASK: usize = 8;

impl Driver {
    /// One event flag: delivered to the owner of an open channel, else dropped (R2).
    pub(crate) fn deliver_event<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        relid: RelId,
        notify: &mut u32,
    ) {
        if !super::channels::ChannelTable::in_range(relid) {
            return;
        }
        let ChanState::Open { ch, slot, .. } = self.channels.state(relid) else {
            self.stats.events_dropped_stale += 1;
            return;
        };
        let count = self.channels.count_event(ch.client, slot);
        let id = self.clients.id(ch.client);
        if let Err(err) = k.control_write(id, status_offset(slot) + 8, &count.to_le_bytes()) {
            self.stats.kernel_errors += 1;
            warn!("status record of {id} {slot}: {err}");
        }
        self.stats.events_delivered += 1;
        *notify |= ch.client.bit();
    }

    /// Notifies each client whose bit is set once.
    pub(crate) fn notify_clients<K: Kernel + ?Sized>(&mut self, k: &mut K, mask: u32) {
        for c in self.clients.in_mask(mask) {
            let id = self.clients.id(c);
            self.notify_client(k, id);
        }
    }

    pub(crate) fn notify_client<K: Kernel + ?Sized>(&mut self, k: &mut K, id: ClientId) {
        match k.notify(id) {
            Ok(()) => self.stats.notifications += 1,
            Err(e) => {
                self.stats.kernel_errors += 1;
                warn!("notify {id}: {e}");
            }
        }
    }

    /// Writes slot `slot` of client `c`'s status record.
    pub(crate) fn write_status<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        c: ClientIdx,
        slot: SlotId,
        generation: u32,
        state: ChannelStatus,
    ) {
        let rec = StatusRecord {
            generation,
            state,
            event_count: self.channels.events(c, slot),
        };
        let id = self.clients.id(c);
        if let Err(e) = k.control_write(id, status_offset(slot), &rec.to_bytes()) {
            self.stats.kernel_errors += 1;
            warn!("status record of {id} {slot}: {e}");
        }
    }

    /// A client's Signal for open channel `relid`: reads the outbound ring header through the
    /// driver's own mapping and signals the host only if the host has not masked interrupts and
    /// there is unread data. Returns whether the host was signalled (by the hypercall, or for a
    /// monitored channel by its monitor bit).
    pub(crate) fn signal_channel<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
    ) -> Result<bool, ClientError> {
        let ChanState::Open {
            ch,
            slot,
            signalled_at,
            retarget,
        } = self.channels.state(relid)
        else {
            return Err(ClientError::NotOpen);
        };
        let Some(header) = self.pool.get(ch.pages, 0) else {
            return Err(ClientError::ChannelGone);
        };
        let mut h = [0u8; 12];
        if let Err(e) = k.read_page(header, 0, &mut h) {
            self.stats.kernel_errors += 1;
            warn!("reading ring header: {e}");
            return Err(ClientError::NoResources);
        }
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (write, read, mask) = (word(WRITE_INDEX), word(READ_INDEX), word(INTERRUPT_MASK));
        // Indices outside the data area or not 8-aligned mean the ring is broken, and a broken
        // ring never justifies a hypercall. The client writes the write index (its mistake is
        // counted against it), the host writes the read index (host hostility).
        let data_size = (usize::from(ch.out_pages).saturating_sub(1) * PAGE_SIZE) as u64;
        let valid = |i: u32| u64::from(i) < data_size && i.is_multiple_of(8);
        if !valid(write) {
            self.stats.client_corrupt_rings += 1;
            self.clients.stats_mut(ch.client).corrupt_rings += 1;
            warn!(
                "outbound ring of {relid}: the client's write index {write:#x} is corrupt (data size {data_size:#x}); signal refused"
            );
            return Err(ClientError::RingCorrupt);
        }
        if !valid(read) {
            self.stats.corrupt_rings += 1;
            self.stats.hostile += 1;
            warn!(
                "outbound ring of {relid}: the host's read index {read:#x} is corrupt (data size {data_size:#x}); signal refused"
            );
            return Err(ClientError::RingCorrupt);
        }
        // At most one hypercall per change the host can see: a client asking again while
        // neither index moved (a Signal loop) costs no hypercall.
        if mask != 0 || write == read || signalled_at == Some((write, read)) {
            self.stats.signals_suppressed += 1;
            self.clients.stats_mut(ch.client).signals_suppressed += 1;
            return Ok(false);
        }
        let Some(offer) = self.channels.offer_of(relid) else {
            return Err(ClientError::ChannelGone);
        };
        let signalled = ChanState::Open {
            ch: super::state::Opened {
                signals: ch.signals.wrapping_add(1),
                ..ch
            },
            slot,
            signalled_at: Some((write, read)),
            retarget,
        };
        // A monitored channel: its bit in the child-to-parent monitor page, no hypercall
        // (docs/protocol.md#monitor-pages), unless its client asked for low latency. Should the
        // page be unreachable, the hypercall.
        let monitored = self.monitoring() && !self.clients.low_latency(ch.client);
        if let Some(id) = offer.monitor.filter(|_| monitored) {
            match self.set_monitor_bit(k, id) {
                Ok(()) => {
                    self.stats.monitor_signals += 1;
                    self.channels.set_state(relid, signalled);
                    return Ok(true);
                }
                Err(e) => {
                    self.stats.kernel_errors += 1;
                    warn!("monitor bit {id} of {relid}: {e}; signalling by hypercall");
                }
            }
        }
        let conn = offer.connection_id;
        let status = hv.signal_event(conn, 0);
        if status.is_success() {
            self.stats.signals += 1;
            self.channels.set_state(relid, signalled);
            Ok(true)
        } else {
            self.stats.signal_failures += 1;
            warn!("HvCallSignalEvent on {conn}: {status}");
            // The host no longer knows the channel's port: it rescinded the channel and the
            // rescind is on its way. Tell the client what it will see anyway.
            if status == HvStatus::INVALID_CONNECTION_ID || status == HvStatus::INVALID_PORT_ID {
                Err(ClientError::ChannelGone)
            } else {
                Err(ClientError::SignalFailed)
            }
        }
    }
}
