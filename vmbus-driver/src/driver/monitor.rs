//! Monitored notification (docs/protocol.md#monitor-pages): the two monitor pages the driver
//! passes in INITIATE_CONTACT, and the guest-to-host signal through the child-to-parent page.
//!
//! Life of the pages (docs/lifetime.md#monitor-pages): [`Driver::start_monitored`] takes two
//! pool pages and zeroes them; every INITIATE_CONTACT of the version walk carries the same two,
//! and so does a later start (after a failed walk, an unanswered UNLOAD or one never sent),
//! because the host may still hold them. They are zeroed and returned to the pool only once the
//! host answered UNLOAD (it forgot them then); a page whose zeroing or return fails stays out
//! of the pool for good, counted by cause like any other. They are never granted to a client.

use log::{info, warn};

use crate::hv::monitor::{pending_bit, pending_offset};
use crate::hv::{Hypervisor, PAGE_SIZE_U64};
use crate::ids::PageId;
use crate::kernel::{Kernel, KernelError};

use super::Driver;
use super::pool::Cause;

pub(crate) use crate::hv::monitor::MONITOR_IDS;

/// The monitor pages the driver holds: parent-to-child, then child-to-parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MonitorPages {
    pages: Option<[PageId; 2]>,
}

impl MonitorPages {
    /// None held.
    pub const NONE: MonitorPages = MonitorPages { pages: None };
}

impl Driver {
    /// Starts the handshake as [`Driver::start`] does, with monitor pages: takes two pool pages
    /// (or keeps the two it holds from an earlier start), zeroes new ones and passes their GPAs
    /// as monitor_page1 (parent to child) and monitor_page2 (child to parent) in every
    /// INITIATE_CONTACT of the walk. Channels offered with a monitor id below 128 are then
    /// signalled by setting their bit in the child-to-parent page, with no hypercall. If the
    /// pages cannot be had, the walk starts without them (every signal a hypercall).
    pub fn start_monitored<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        now: u64,
    ) {
        if !self.conn.can_start() {
            warn!("start ignored: connection is {}", self.conn.state());
            return;
        }
        let gpas = self.monitor_gpas(k);
        let deadline = self.deadline(now);
        self.conn
            .start(hv, &mut self.stats, self.target_vp, deadline, gpas);
    }

    /// The monitor pages held now (parent-to-child, child-to-parent).
    pub fn monitor_pages(&self) -> Option<[PageId; 2]> {
        self.monitor.pages
    }

    /// Pool pages held for the connection rather than for a channel: the two monitor pages
    /// while held, else none.
    pub fn connection_pages(&self) -> usize {
        self.monitor.pages.map_or(0, |p| p.len())
    }

    /// The GPAs to pass, taking the pages if none are held; (0, 0) if they cannot be had.
    fn monitor_gpas<K: Kernel + ?Sized>(&mut self, k: &mut K) -> (u64, u64) {
        if self.monitor.pages.is_none() {
            self.monitor.pages = self.take_monitor_pages(k);
        }
        let Some([p1, p2]) = self.monitor.pages else {
            return (0, 0);
        };
        match (k.page_frame(p1), k.page_frame(p2)) {
            (Ok(f1), Ok(f2)) => {
                self.stats.monitor_connects += 1;
                info!("monitor pages {p1} (frame {f1:#x}) and {p2} (frame {f2:#x})");
                (f1 * PAGE_SIZE_U64, f2 * PAGE_SIZE_U64)
            }
            (Err(e), _) | (_, Err(e)) => {
                // Kept: an earlier connection may have passed them to the host.
                self.stats.kernel_errors += 1;
                warn!("monitor page frame: {e}; connecting without monitor pages");
                (0, 0)
            }
        }
    }

    /// Takes two pool pages and zeroes them. On any failure nothing is held: a page the host
    /// never saw goes back to the pool if it could be zeroed, and stays out for good if not.
    fn take_monitor_pages<K: Kernel + ?Sized>(&mut self, k: &mut K) -> Option<[PageId; 2]> {
        let mut taken = [None, None];
        for t in &mut taken {
            match k.take_page() {
                Ok(p) => {
                    self.stats.pages_taken += 1;
                    *t = Some(p);
                }
                Err(e) => {
                    self.stats.kernel_errors += 1;
                    warn!("no monitor page ({e}): connecting without monitor pages");
                    break;
                }
            }
        }
        let zeroed = taken.map(|t| t.map(|p| (p, k.zero_page(p))));
        if let [Some((a, Ok(()))), Some((b, Ok(())))] = zeroed {
            return Some([a, b]);
        }
        for (p, z) in zeroed.into_iter().flatten() {
            match z {
                Ok(()) => {
                    if k.return_page(p).is_ok() {
                        self.stats.pages_returned += 1;
                    } else {
                        warn!("returning {p} failed: quarantined for good");
                        self.pool.keep_out(Cause::Return, &mut self.stats);
                    }
                }
                Err(e) => {
                    warn!("zeroing monitor page {p} failed ({e}): quarantined for good");
                    self.pool.keep_out(Cause::Zero, &mut self.stats);
                }
            }
        }
        None
    }

    /// The host answered UNLOAD and forgot the monitor pages: zero them and return them (a
    /// failure keeps the page out of the pool for good).
    pub(crate) fn release_monitor_pages<K: Kernel + ?Sized>(&mut self, k: &mut K) {
        let Some(pages) = self.monitor.pages.take() else {
            return;
        };
        for p in pages {
            self.pool.zero_and_return_page(k, p, &mut self.stats);
        }
    }

    /// Whether channels with a monitor id are signalled through the monitor page: the
    /// connection was started with the pages the driver holds.
    pub(crate) fn monitoring(&self) -> bool {
        self.monitor.pages.is_some() && self.conn.monitored()
    }

    /// Sets monitor id `id`'s pending bit in the child-to-parent page, atomically.
    pub(crate) fn set_monitor_bit<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        id: u8,
    ) -> Result<(), KernelError> {
        let [_, child_to_parent] = self.monitor.pages.ok_or(KernelError::NoSuchPage)?;
        k.or_page_u32(child_to_parent, pending_offset(id), pending_bit(id))
    }
}
