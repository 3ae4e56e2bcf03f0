//! Monitored notification, the host's side (docs/protocol.md#monitor-pages).
//!
//! INITIATE_CONTACT's two monitor pages (GPAs; both or neither) are remembered for the
//! connection and forgotten at every bus reset. At each [`Host::poll`] the host
//! - checks once that both frames are guest memory (else a guest error, and no monitoring);
//! - after any change of the offered channels, writes what it publishes into both pages: for
//!   each monitored channel, `parameter[group][bit]` = the offer's connection id and flag number
//!   0, and `latency[group][bit]` = [`HostConfig::monitor_latency`], and in `trigger_state` the
//!   enable bit of every group that has a monitored channel (entries of other ids are zeroed);
//! - swaps each trigger group's pending word of the child-to-parent page with 0 and treats each
//!   bit it took as a signal of the channel with that monitor id, as a SignalEvent would be
//!   (a bit no open channel owns is a guest error).
//!
//! Real Hyper-V watches the page with its own timing (the latency); this host looks at every
//! poll, which is when its devices run anyway. OpenVMM instead intercepts the guest's writes to
//! the page and keeps nothing in it.
//!
//! [`HostConfig::monitor_latency`]: crate::HostConfig::monitor_latency

use core::sync::atomic::Ordering;

use vmbus_driver::hv::PAGE_SIZE_U64;
use vmbus_driver::hv::monitor::{
    MONITOR_IDS, TRIGGER_GROUPS, TRIGGER_STATE, latency_offset, parameter_offset, pending_offset,
};
use vmbus_driver::ids::RelId;
use vmbus_driver::msg::InitiateContact;

use crate::host::Host;
use crate::log::GuestError;
use crate::memory::GuestMemory;
use crate::offers::{ChannelState, NO_MONITOR};

/// The connection's monitor pages as the host keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MonitorState {
    /// Frame numbers of the parent-to-child and child-to-parent pages.
    pages: Option<(u64, u64)>,
    /// Both frames were found in guest memory.
    checked: bool,
    /// The published parameters must be written again.
    dirty: bool,
}

impl MonitorState {
    pub const NONE: Self = Self {
        pages: None,
        checked: false,
        dirty: false,
    };
}

impl Host {
    /// The monitor pages of the connection (frame numbers: parent-to-child, child-to-parent),
    /// once accepted.
    pub fn monitor_pages(&self) -> Option<(u64, u64)> {
        self.monitor.pages
    }

    /// Takes INITIATE_CONTACT's monitor pages for an accepted connection (the one-of-two case
    /// was refused before). A GPA that is not page-aligned, or the same page twice, is a guest
    /// error and the connection runs without monitoring.
    pub(crate) fn take_monitor_pages(&mut self, ic: &InitiateContact) {
        self.monitor = MonitorState::NONE;
        let (g1, g2) = (ic.monitor_page1, ic.monitor_page2);
        if g1 == 0 && g2 == 0 {
            return;
        }
        for g in [g1, g2] {
            if !g.is_multiple_of(PAGE_SIZE_U64) {
                return self.guest_error(GuestError::BadMonitorPage(g));
            }
        }
        if g1 == g2 {
            return self.guest_error(GuestError::BadMonitorPage(g2));
        }
        self.monitor = MonitorState {
            pages: Some((g1 / PAGE_SIZE_U64, g2 / PAGE_SIZE_U64)),
            checked: false,
            dirty: true,
        };
    }

    /// The offered channels changed: publish their parameters again at the next poll.
    pub(crate) fn monitor_changed(&mut self) {
        self.monitor.dirty = true;
    }

    /// One poll's monitor work (see the module documentation).
    pub(crate) fn poll_monitor<G: GuestMemory>(&mut self, mem: &mut G) {
        let Some((p1, p2)) = self.monitor.pages else {
            return;
        };
        if !self.monitor.checked {
            for pfn in [p1, p2] {
                if mem.read(pfn, 0, &mut [0u8; 4]).is_err() {
                    self.monitor = MonitorState::NONE;
                    return self.guest_error(GuestError::BadMonitorPage(pfn * PAGE_SIZE_U64));
                }
            }
            self.monitor.checked = true;
        }
        if core::mem::take(&mut self.monitor.dirty) {
            self.publish_monitor(mem, p1, p2);
        }
        self.counters.monitor_scans += 1;
        for g in 0..TRIGGER_GROUPS {
            // g < 4: the group's first id fits a u8.
            let first = (g * 32) as u8;
            let Ok(mut bits) = mem.swap_u32(p2, pending_offset(first), 0, Ordering::AcqRel) else {
                return;
            };
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                // bit < 32.
                self.monitor_signal(first + bit as u8);
            }
        }
    }

    /// Writes every monitored channel's parameter and latency into both pages, and the group
    /// enable bits.
    fn publish_monitor<G: GuestMemory>(&mut self, mem: &mut G, p1: u64, p2: u64) {
        let mut enabled = 0u32;
        for id in 0..MONITOR_IDS {
            // id < 128.
            let id = id as u8;
            let relid = self.monitored_relid(id).filter(|r| {
                matches!(
                    self.channel_state(*r),
                    ChannelState::Offered | ChannelState::Open
                )
            });
            let (param, latency) = match relid {
                Some(r) => {
                    enabled |= 1 << (id / 32);
                    let mut p = [0u8; 8];
                    // Connection id, then flag number 0 and the reserved u16.
                    p[..4].copy_from_slice(&self.connection_id_of(r).0.to_le_bytes());
                    (p, self.config.monitor_latency)
                }
                None => ([0u8; 8], 0),
            };
            for pfn in [p1, p2] {
                let _ = mem.write(pfn, parameter_offset(id), &param);
                let _ = mem.write(pfn, latency_offset(id), &latency.to_le_bytes());
            }
        }
        for pfn in [p1, p2] {
            let _ = mem.store_u32(pfn, TRIGGER_STATE, enabled, Ordering::Release);
        }
    }

    /// The relid whose monitor id is `id` (ids are given as relid - 1).
    fn monitored_relid(&self, id: u8) -> Option<RelId> {
        let relid = RelId(u32::from(id) + 1);
        self.slot(relid)
            .filter(|c| c.monitor_id == id && c.monitor_id != NO_MONITOR)
            .map(|_| relid)
    }

    /// A pending bit taken from the child-to-parent page.
    fn monitor_signal(&mut self, id: u8) {
        let Some(relid) = self.monitored_relid(id) else {
            return self.guest_error(GuestError::UnknownMonitorBit(id));
        };
        let Some(c) = self.slot_mut(relid) else {
            return;
        };
        if c.state != ChannelState::Open || c.ring.result_pending.is_some() {
            // A signal racing the channel's close or rescind, as a SignalEvent on a closed
            // port would be: spurious, not the guest's error.
            c.stats.spurious_signals += 1;
            self.counters.spurious_signals += 1;
            return;
        }
        c.stats.monitor_signals += 1;
        c.ring.signalled = true;
        c.ring.guest_signal = true;
        self.counters.monitor_signals += 1;
    }
}
