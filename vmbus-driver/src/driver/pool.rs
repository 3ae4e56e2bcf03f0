//! The ring-page pool's bookkeeping: the page lists of channels (in the arena, with taint), the
//! quarantine of pages kept out of the pool, and the kernel operations that take pages back
//! (revoke, zero, return), each counted by cause when it fails.

use log::{info, warn};

use crate::ids::{GpadlId, PageId, RelId};
use crate::kernel::Kernel;

use super::balloon::LentTable;
use super::pages::{PageArena, PageList};
use super::stats::Stats;

/// Quarantined GPADLs remembered so a late GPADL_TORNDOWN can still free their pages. Beyond
/// this, pages are quarantined for good (still counted).
pub const MAX_QUARANTINE: usize = 64;

/// A page list whose GPADL the host may still hold.
#[derive(Debug, Clone, Copy)]
struct Quarantined {
    gpadl: GpadlId,
    pages: PageList,
}

/// Why pages are kept out of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The host never confirmed their GPADL's teardown: a late GPADL_TORNDOWN may free them.
    Unconfirmed,
    /// Revoking the page failed: a client may still map it.
    Revoke,
    /// Zeroing the page failed: it may hold a client's data.
    Zero,
    /// The kernel refused to take the page back.
    Return,
    /// Removing the driver's own mapping of a page to lend it failed: the driver (or a stale
    /// translation) may still reach it, so it is never lent; and it is never returned.
    Unmap,
    /// Mapping a reclaimed page back into the driver failed: it cannot be zeroed.
    Remap,
}

/// The pool's bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct PagePool {
    arena: PageArena,
    quarantine: [Option<Quarantined>; MAX_QUARANTINE],
    /// Pages kept out of the pool now, whatever the cause.
    quarantined: usize,
    /// Pages lent to the host for the balloon, with the client each was lent through.
    pub(crate) lent: LentTable,
}

impl PagePool {
    /// Nothing allocated, nothing quarantined.
    pub const EMPTY: PagePool = PagePool {
        arena: PageArena::EMPTY,
        quarantine: [None; MAX_QUARANTINE],
        quarantined: 0,
        lent: LentTable::EMPTY,
    };

    /// Forgets everything, in place.
    pub fn reset(&mut self) {
        self.arena.reset();
        self.quarantine = [None; MAX_QUARANTINE];
        self.quarantined = 0;
        self.lent.reset();
    }

    /// Pages kept out of the pool now.
    pub fn quarantined_pages(&self) -> usize {
        self.quarantined
    }

    /// Whether a quarantined list is remembered under `gpadl`.
    pub fn in_quarantine(&self, gpadl: GpadlId) -> bool {
        self.quarantine.iter().flatten().any(|q| q.gpadl == gpadl)
    }

    /// A list of `count` page places, none set yet.
    pub fn alloc(&mut self, count: usize) -> Option<PageList> {
        self.arena.alloc(count)
    }

    /// Sets the page at `index` of `list`.
    pub fn set(&mut self, list: PageList, index: usize, page: PageId) {
        self.arena.set(list, index, page);
    }

    /// The page at `index` of `list`, if set.
    pub fn get(&self, list: PageList, index: usize) -> Option<PageId> {
        self.arena.get(list, index)
    }

    /// Tainted pages of `list`.
    pub fn tainted(&self, list: PageList) -> usize {
        self.arena.tainted(list)
    }

    /// The list's set pages, in order.
    pub fn pages(&self, list: PageList) -> impl Iterator<Item = PageId> + '_ {
        self.arena.iter_marked(list).map(|(page, _)| page)
    }

    /// Teardown step 2: revokes every page of `list` (channel `relid`'s); when this returns the
    /// client's mappings are gone. A page whose revoke failed may still be mapped by the client:
    /// it is tainted, never zeroed, returned or granted again. Returns how many failed.
    pub fn revoke<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        list: PageList,
        relid: RelId,
        stats: &mut Stats,
    ) -> usize {
        let failed = self.arena.taint_where(list, |page| {
            let failed = k.revoke(page).err();
            if let Some(e) = failed {
                warn!("{relid}: revoking {page} failed ({e}): quarantined for good");
            }
            failed.is_some()
        });
        stats.kernel_errors += failed as u64;
        self.count(Cause::Revoke, failed, stats);
        failed
    }

    /// Zeroes every page of `list` and returns it to the pool, then frees the list. Tainted
    /// pages (already counted in quarantine) are left alone; a page whose zeroing or return
    /// fails stays out of the pool for good.
    pub fn zero_and_return<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        list: PageList,
        stats: &mut Stats,
    ) {
        let (mut returned, mut zero_failed, mut return_failed) = (0, 0, 0);
        for (page, tainted) in self.arena.iter_marked(list) {
            if tainted {
                continue;
            }
            if let Err(e) = k.zero_page(page) {
                zero_failed += 1;
                warn!("zeroing {page} failed ({e}): quarantined for good");
            } else if let Err(e) = k.return_page(page) {
                return_failed += 1;
                warn!("returning {page} failed ({e}): quarantined for good");
            } else {
                returned += 1;
            }
        }
        self.arena.free(list);
        stats.pages_returned += returned;
        stats.kernel_errors += (zero_failed + return_failed) as u64;
        self.count(Cause::Zero, zero_failed, stats);
        self.count(Cause::Return, return_failed, stats);
    }

    /// Keeps `list`, whose GPADL the host may still hold; a late GPADL_TORNDOWN
    /// ([`PagePool::release`]) frees the pages that are not tainted (those are counted already).
    pub fn quarantine(&mut self, gpadl: GpadlId, list: PageList, stats: &mut Stats) {
        let n = list.len() - self.arena.tainted(list);
        self.count(Cause::Unconfirmed, n, stats);
        warn!("{n} pages of {gpadl} quarantined until the host confirms the GPADL's teardown");
        if let Some(q) = self.quarantine.iter_mut().find(|q| q.is_none()) {
            *q = Some(Quarantined { gpadl, pages: list });
        }
        // Otherwise the list stays allocated in the arena for good: never reused.
    }

    /// A late GPADL_TORNDOWN for `gpadl`: zeroes and returns its quarantined pages. False if no
    /// list is quarantined under `gpadl`.
    pub fn release<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        gpadl: GpadlId,
        stats: &mut Stats,
    ) -> bool {
        let q = self
            .quarantine
            .iter_mut()
            .find(|q| q.is_some_and(|q| q.gpadl == gpadl))
            .and_then(Option::take);
        let Some(q) = q else {
            return false;
        };
        let n = q.pages.len() - self.arena.tainted(q.pages);
        info!("late GPADL_TORNDOWN for {gpadl}: {n} quarantined pages released");
        self.quarantined -= n;
        stats.quarantine_released_pages += n as u64;
        self.zero_and_return(k, q.pages, stats);
        true
    }

    /// Zeroes one page the driver maps and returns it to the pool; true if it went back. A
    /// failure keeps it out for good, counted by cause.
    pub fn zero_and_return_page<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        page: PageId,
        stats: &mut Stats,
    ) -> bool {
        let failed = if let Err(e) = k.zero_page(page) {
            warn!("zeroing {page} failed ({e}): quarantined for good");
            Cause::Zero
        } else if let Err(e) = k.return_page(page) {
            warn!("returning {page} failed ({e}): quarantined for good");
            Cause::Return
        } else {
            stats.pages_returned += 1;
            return true;
        };
        self.keep_out(failed, stats);
        false
    }

    /// Keeps one page out of the pool for good after a kernel operation on it failed.
    pub fn keep_out(&mut self, cause: Cause, stats: &mut Stats) {
        stats.kernel_errors += 1;
        self.count(cause, 1, stats);
    }

    /// Counts `n` pages kept out of the pool, by cause.
    fn count(&mut self, cause: Cause, n: usize, stats: &mut Stats) {
        let n64 = n as u64;
        stats.quarantined_pages += n64;
        self.quarantined += n;
        *match cause {
            Cause::Unconfirmed => &mut stats.quarantine_unconfirmed,
            Cause::Revoke => &mut stats.quarantine_revoke_failed,
            Cause::Zero => &mut stats.quarantine_zero_failed,
            Cause::Return => &mut stats.quarantine_return_failed,
            Cause::Unmap => &mut stats.quarantine_unmap_failed,
            Cause::Remap => &mut stats.quarantine_remap_failed,
        } += n64;
    }
}
