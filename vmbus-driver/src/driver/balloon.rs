//! The Dynamic Memory balloon: pool pages lent to the host and taken back
//! (docs/lifetime.md#ballooned-pages).
//!
//! A lent page follows the lifetime rule like a ring page: before the host gets it, every
//! client mapping of it is revoked (`Kernel::revoke`) and the driver's own mapping is
//! removed (`Kernel::unmap_own`), so nothing in the guest can touch memory the host owns; when
//! the host gives it back, the driver maps it again (`Kernel::map_own`), zeroes it (the host may
//! have written into it) and only then returns it to the pool. A page on which any of these
//! operations fails is kept out of the pool for good, counted by cause, and never reaches the
//! host.
//!
//! The lent pages are a state of the pool ([`LentTable`]): runs of pages with consecutive page
//! ids and frames, each lent through one client. A reclaim is checked whole before anything
//! changes: every frame must be lent to the asking client (not to another, not reclaimed
//! already), the ranges must be non-empty, not overflow and not overlap.
//!
//! A client fault leaves its lent pages lent: the host holds them until it deflates the
//! balloon, and the restarted client (same client id) reclaims them then.

use log::{info, warn};

use crate::control::{
    ClientError, LENT_RANGES_PER_RESPONSE, LendLimit, MemoryInfo, PfnRange,
    RECLAIM_RANGES_PER_REQUEST, Response,
};
use crate::ids::{ClientId, PageId};
use crate::kernel::{Kernel, KernelError};

use super::Driver;
use super::clients::ClientIdx;
use super::pool::Cause;

/// Runs of lent pages the driver can remember (16 bytes each). A run holds up to 65,535 pages
/// with consecutive page ids and frames; only reclaims of parts of runs fragment the table.
pub const MAX_LENT_RUNS: usize = 256;
/// Runs a lend leaves free, so that a reclaim (which may split runs: at most one new run per
/// range) still finds room.
const RECLAIM_MARGIN: usize = RECLAIM_RANGES_PER_REQUEST;
/// The default reserve: this fraction of the pool is never lent.
pub const DEFAULT_RESERVE_DIVISOR: usize = 8;

/// A place in the lent table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    /// Nothing here.
    Empty,
    /// Pages `page .. page + count`, frames `pfn .. pfn + count`, lent to the host through
    /// client `owner`; none of them is mapped anywhere in the guest.
    Lent {
        owner: ClientIdx,
        pfn: u64,
        page: u32,
        count: u16,
    },
}

impl Run {
    /// The run's frames as `(start, end)`, if lent.
    fn frames(&self) -> Option<(u64, u64)> {
        match *self {
            Run::Lent { pfn, count, .. } => Some((pfn, pfn + u64::from(count))),
            Run::Empty => None,
        }
    }
}

/// The pool's lent pages.
#[derive(Debug, Clone)]
pub(crate) struct LentTable {
    runs: [Run; MAX_LENT_RUNS],
    /// Pages lent now.
    pages: usize,
    /// Free pool pages a lend never takes; `None`: the pool's size over
    /// [`DEFAULT_RESERVE_DIVISOR`].
    reserve: Option<u32>,
}

impl LentTable {
    /// Nothing lent, default reserve.
    pub const EMPTY: LentTable = LentTable {
        runs: [Run::Empty; MAX_LENT_RUNS],
        pages: 0,
        reserve: None,
    };

    /// Forgets every lent page (start-up only); the configured reserve stays.
    pub fn reset(&mut self) {
        self.runs = [Run::Empty; MAX_LENT_RUNS];
        self.pages = 0;
    }

    fn free_runs(&self) -> usize {
        self.runs.iter().filter(|r| **r == Run::Empty).count()
    }

    /// Pages lent through client `c`.
    fn pages_of(&self, c: ClientIdx) -> usize {
        self.runs
            .iter()
            .map(|r| match *r {
                Run::Lent { owner, count, .. } if owner == c => usize::from(count),
                _ => 0,
            })
            .sum()
    }

    /// Records page `page` (frame `pfn`) as lent through `owner`, extending run `cur` if it
    /// continues it; returns the run's index, or `None` if the table is full.
    fn record(
        &mut self,
        cur: Option<usize>,
        owner: ClientIdx,
        pfn: u64,
        page: PageId,
    ) -> Option<usize> {
        if let Some(i) = cur
            && let Some(Run::Lent {
                owner: o,
                pfn: p,
                page: first,
                count,
            }) = self.runs.get_mut(i)
            && *o == owner
            && count.checked_add(1).is_some()
            && p.checked_add(u64::from(*count)) == Some(pfn)
            && first.checked_add(u32::from(*count)) == Some(page.0)
        {
            *count += 1;
            self.pages += 1;
            return Some(i);
        }
        let i = self.runs.iter().position(|r| *r == Run::Empty)?;
        self.runs[i] = Run::Lent {
            owner,
            pfn,
            page: page.0,
            count: 1,
        };
        self.pages += 1;
        Some(i)
    }

    /// Whether page (frame `pfn`, id `page`) would extend run `cur` of `owner`.
    fn extends(&self, cur: Option<usize>, owner: ClientIdx, pfn: u64, page: PageId) -> bool {
        matches!(
            cur.and_then(|i| self.runs.get(i)),
            Some(Run::Lent { owner: o, pfn: p, page: first, count })
                if *o == owner
                    && count.checked_add(1).is_some()
                    && p.checked_add(u64::from(*count)) == Some(pfn)
                    && first.checked_add(u32::from(*count)) == Some(page.0)
        )
    }

    /// Checks a reclaim by client `c` of `ranges` without changing anything: the number of
    /// pages it covers.
    fn check_reclaim(&self, c: ClientIdx, ranges: &[PfnRange]) -> Result<u64, ClientError> {
        let mut total = 0u64;
        for (i, r) in ranges.iter().enumerate() {
            let end = r.end().ok_or(ClientError::BadRanges)?;
            total += u64::from(r.count);
            let overlaps = ranges[..i]
                .iter()
                .any(|o| o.start < end && r.start < o.start.saturating_add(u64::from(o.count)));
            if overlaps {
                return Err(ClientError::BadRanges);
            }
        }
        // The ranges do not overlap, nor do the runs: the frames are all lent to `c` exactly
        // when the overlaps with `c`'s runs add up to the request.
        let (mut covered, mut new_runs) = (0u64, 0usize);
        for run in &self.runs {
            let Run::Lent { owner, .. } = *run else {
                continue;
            };
            let Some((start, end)) = run.frames() else {
                continue;
            };
            let (cut, pieces) = cut(start, end, ranges);
            if cut == 0 {
                continue;
            }
            if owner != c {
                return Err(ClientError::NotLent);
            }
            covered += cut;
            new_runs += pieces.len().saturating_sub(1);
        }
        if covered != total {
            return Err(ClientError::NotLent);
        }
        if new_runs > self.free_runs() {
            return Err(ClientError::NoResources);
        }
        Ok(total)
    }
}

/// Remaining pieces of frames `start .. end` once `ranges` are cut out of it (as `(start,
/// end)`), and how many frames were cut. The ranges do not overlap.
fn cut(start: u64, end: u64, ranges: &[PfnRange]) -> (u64, heapless::Vec<(u64, u64), 33>) {
    // Cut intervals clipped to the run, in ascending order (insertion sort of at most 32).
    let mut cuts = heapless::Vec::<(u64, u64), RECLAIM_RANGES_PER_REQUEST>::new();
    for r in ranges {
        let Some(r_end) = r.end() else { continue };
        let (s, e) = (r.start.max(start), r_end.min(end));
        if s < e {
            let at = cuts
                .iter()
                .position(|&(cs, _)| cs > s)
                .unwrap_or(cuts.len());
            // At most RECLAIM_RANGES_PER_REQUEST ranges, so it fits.
            let _ = cuts.insert(at, (s, e));
        }
    }
    let mut pieces = heapless::Vec::new();
    let (mut at, mut total) = (start, 0);
    for &(s, e) in &cuts {
        if s > at {
            let _ = pieces.push((at, s));
        }
        total += e - s;
        at = e;
    }
    if at < end {
        let _ = pieces.push((at, end));
    }
    (total, pieces)
}

impl Driver {
    /// Sets the balloon's reserve: free pool pages a lend never takes, so that rings can still
    /// open. `None` restores the default, an eighth of the pool. Kept across [`Driver::init`].
    pub fn set_balloon_reserve(&mut self, pages: Option<u32>) {
        self.pool.lent.reserve = pages;
    }

    /// The balloon's reserve for a pool of `pool_pages` pages.
    pub fn balloon_reserve(&self, pool_pages: usize) -> usize {
        match self.pool.lent.reserve {
            Some(n) => n as usize,
            None => pool_pages / DEFAULT_RESERVE_DIVISOR,
        }
    }

    /// Pages lent to the host now.
    pub fn lent_pages(&self) -> usize {
        self.pool.lent.pages
    }

    /// Pages lent to the host through client `client` now; `None` for an unknown client.
    pub fn lent_pages_of(&self, client: ClientId) -> Option<usize> {
        let c = self.clients.index(client)?;
        Some(self.pool.lent.pages_of(c))
    }

    /// `MemoryInfo` for client `c`.
    pub(crate) fn memory_info<K: Kernel + ?Sized>(&self, k: &K, c: ClientIdx) -> Response {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        let pool = k.pool_pages();
        Response::Memory(MemoryInfo {
            pool_pages: n(pool),
            free_pages: n(k.free_pages()),
            lent_pages: n(self.pool.lent.pages),
            lent_by_client: n(self.pool.lent.pages_of(c)),
            reserve_pages: n(self.balloon_reserve(pool)),
            quarantined_pages: n(self.pool.quarantined_pages()),
        })
    }

    /// `BalloonLend`: lends up to `want` free pool pages through client `c`, never going below
    /// the reserve. Each page is revoked and unmapped from the driver before its frame goes in
    /// the response; the first failure stops the lend (that page is kept out for good).
    pub(crate) fn balloon_lend<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        c: ClientIdx,
        want: u32,
    ) -> Response {
        let reserve = self.balloon_reserve(k.pool_pages());
        let target = (want as usize).min(k.free_pages().saturating_sub(reserve));
        let mut limit = if target < want as usize {
            LendLimit::Reserve
        } else {
            LendLimit::None
        };
        let mut ranges = heapless::Vec::<PfnRange, LENT_RANGES_PER_RESPONSE>::new();
        let (mut pages, mut cur) = (0u32, None);
        while (pages as usize) < target {
            let page = match k.take_page() {
                Ok(p) => p,
                Err(KernelError::PoolEmpty) => {
                    limit = LendLimit::Reserve;
                    break;
                }
                Err(e) => {
                    self.stats.kernel_errors += 1;
                    warn!("balloon: taking a page failed ({e})");
                    limit = LendLimit::KernelError;
                    break;
                }
            };
            self.stats.pages_taken += 1;
            let pfn = match k.page_frame(page) {
                Ok(f) => f,
                Err(e) => {
                    self.stats.kernel_errors += 1;
                    warn!("balloon: frame of {page} failed ({e})");
                    self.pool.zero_and_return_page(k, page, &mut self.stats);
                    limit = LendLimit::KernelError;
                    break;
                }
            };
            let extends_range = ranges.last().is_some_and(|r| {
                r.count < u32::MAX && r.start.checked_add(u64::from(r.count)) == Some(pfn)
            });
            let held_back = if !extends_range && ranges.is_full() {
                Some(LendLimit::ResponseFull)
            } else if !self.pool.lent.extends(cur, c, pfn, page)
                && self.pool.lent.free_runs() <= RECLAIM_MARGIN
            {
                Some(LendLimit::TableFull)
            } else {
                None
            };
            if let Some(why) = held_back {
                // Untouched: still mapped by the driver only.
                self.pool.zero_and_return_page(k, page, &mut self.stats);
                limit = why;
                break;
            }
            // Nothing in the guest may reach the page once the host has it: every derived
            // capability and client mapping, then the driver's own mapping.
            if let Err(e) = k.revoke(page) {
                warn!("balloon: revoking {page} failed ({e}): quarantined for good");
                self.pool.keep_out(Cause::Revoke, &mut self.stats);
                limit = LendLimit::KernelError;
                break;
            }
            if let Err(e) = k.unmap_own(page) {
                warn!("balloon: unmapping {page} failed ({e}): quarantined for good");
                self.pool.keep_out(Cause::Unmap, &mut self.stats);
                limit = LendLimit::KernelError;
                break;
            }
            // Room was checked above: `extends` or a free run beyond the margin.
            cur = self.pool.lent.record(cur, c, pfn, page);
            if extends_range && let Some(r) = ranges.last_mut() {
                r.count += 1;
            } else {
                let _ = ranges.push(PfnRange {
                    start: pfn,
                    count: 1,
                });
            }
            pages += 1;
        }
        self.stats.balloon_pages_lent += u64::from(pages);
        if pages > 0 {
            info!(
                "balloon: lent {pages} pages through {} ({limit:?})",
                self.clients.id(c)
            );
        }
        Response::Lent {
            ranges,
            pages,
            limit,
        }
    }

    /// `BalloonReclaim`: takes back the frames of `ranges`, all lent through client `c`
    /// (checked whole first: otherwise nothing changes). Each page is mapped into the driver
    /// again, zeroed and returned to the pool; a page on which one of these fails is kept out
    /// for good.
    pub(crate) fn balloon_reclaim<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        c: ClientIdx,
        ranges: &[PfnRange],
    ) -> Result<Response, ClientError> {
        let total = match self.pool.lent.check_reclaim(c, ranges) {
            Ok(t) => t,
            Err(e) => {
                self.stats.balloon_reclaims_refused += 1;
                warn!("balloon: reclaim by {} refused: {e}", self.clients.id(c));
                return Err(e);
            }
        };
        let mut quarantined = 0u32;
        for i in 0..MAX_LENT_RUNS {
            let Run::Lent {
                owner,
                pfn,
                page,
                count,
            } = self.pool.lent.runs[i]
            else {
                continue;
            };
            let end = pfn + u64::from(count);
            let (cut_frames, pieces) = cut(pfn, end, ranges);
            if cut_frames == 0 {
                continue;
            }
            // Take the reclaimed frames: everything of the run outside the pieces.
            let mut at = pfn;
            for &(s, e) in pieces.iter().chain(core::iter::once(&(end, end))) {
                for f in at..s {
                    // f - pfn < count <= u16::MAX.
                    let p = PageId(page + (f - pfn) as u32);
                    if !self.reclaim_page(k, p) {
                        quarantined += 1;
                    }
                }
                at = e;
            }
            // The pieces stay lent: the first in place, the others in free places (counted
            // by the check).
            self.pool.lent.runs[i] = Run::Empty;
            for &(s, e) in &pieces {
                let run = Run::Lent {
                    owner,
                    pfn: s,
                    page: page + (s - pfn) as u32,
                    count: (e - s) as u16,
                };
                if let Some(slot) = self.pool.lent.runs.iter_mut().find(|r| **r == Run::Empty) {
                    *slot = run;
                }
            }
        }
        self.pool.lent.pages -= total as usize;
        self.stats.balloon_pages_reclaimed += total;
        info!(
            "balloon: {total} pages reclaimed through {} ({quarantined} quarantined)",
            self.clients.id(c)
        );
        Ok(Response::Reclaimed {
            // total <= pages lent <= the pool.
            pages: total as u32,
            quarantined,
        })
    }

    /// Maps a reclaimed page into the driver again, zeroes it and returns it to the pool; false
    /// if a step failed (the page is kept out for good).
    fn reclaim_page<K: Kernel + ?Sized>(&mut self, k: &mut K, page: PageId) -> bool {
        if let Err(e) = k.map_own(page) {
            warn!("balloon: mapping {page} back failed ({e}): quarantined for good");
            self.pool.keep_out(Cause::Remap, &mut self.stats);
            return false;
        }
        self.pool.zero_and_return_page(k, page, &mut self.stats)
    }
}
