//! The PD info page: what the root task tells a PD about its mappings of shared regions.
//!
//! The simulated host reaches guest memory by frame number, as a hypervisor does. Its mapping of
//! the pool region is made by the root task from the region's own frame capabilities (copies
//! that the driver's grants never derive from, so the driver's revocations cannot touch it); the
//! frame numbers behind that mapping are known only to the root task, which writes them here, in
//! runs of consecutive frames, before the PD starts. The page is mapped read-only at [`VADDR`]
//! and never changes.
//!
//! Layout (little-endian u64 words): [`MAGIC`], the number of runs, then per run its virtual
//! address, first frame number and page count.
#![no_std]
#![allow(
    unsafe_code,
    reason = "volatile loads from the info page the root task maps at `VADDR`"
)]

/// Where the root task maps the info page in every PD (next to the IPC buffer, below the
/// run-time mapping range): `pd_runtime::layout::INFO_PAGE`.
pub const VADDR: usize = pd_runtime::layout::INFO_PAGE as usize;
/// Word 0 of a written info page.
pub const MAGIC: u64 = 0x5044_494e_464f_0001;
/// Words per run.
pub const RUN_WORDS: usize = 3;
/// Most runs one page holds.
pub const MAX_RUNS: usize = (512 - 2) / RUN_WORDS;

/// Consecutive frames mapped at consecutive addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Virtual address of the first page.
    pub vaddr: u64,
    /// Frame number of the first page.
    pub pfn: u64,
    /// Pages in the run.
    pub pages: u64,
}

impl Run {
    /// The address of frame `pfn` if this run holds it.
    pub fn translate(&self, pfn: u64) -> Option<u64> {
        let i = pfn.checked_sub(self.pfn)?;
        if i >= self.pages {
            return None;
        }
        self.vaddr.checked_add(i.checked_mul(4096)?)
    }
}

/// Encodes runs into the words of an info page (the root task's side); false if they do not fit.
pub fn encode(runs: &[Run], page: &mut [u64; 512]) -> bool {
    if runs.len() > MAX_RUNS {
        return false;
    }
    page.fill(0);
    page[0] = MAGIC;
    page[1] = runs.len() as u64;
    for (i, r) in runs.iter().enumerate() {
        let w = 2 + i * RUN_WORDS;
        page[w] = r.vaddr;
        page[w + 1] = r.pfn;
        page[w + 2] = r.pages;
    }
    true
}

/// This PD's info page, as read once at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    runs: [Run; MAX_RUNS],
    count: usize,
}

impl Info {
    /// Decodes an info page's words; `None` without the magic word or with a bad count.
    pub fn decode(page: &[u64; 512]) -> Option<Info> {
        let count = usize::try_from(page[1]).ok()?;
        if page[0] != MAGIC || count > MAX_RUNS {
            return None;
        }
        let mut runs = [Run {
            vaddr: 0,
            pfn: 0,
            pages: 0,
        }; MAX_RUNS];
        for (i, r) in runs.iter_mut().enumerate().take(count) {
            let w = 2 + i * RUN_WORDS;
            *r = Run {
                vaddr: page[w],
                pfn: page[w + 1],
                pages: page[w + 2],
            };
        }
        Some(Info { runs, count })
    }

    /// Reads this PD's info page.
    #[cfg(target_os = "none")]
    pub fn read() -> Option<Info> {
        let mut page = [0u64; 512];
        for (i, w) in page.iter_mut().enumerate() {
            // SAFETY: the root task maps the info page read-only at VADDR in every PD before it
            // starts and never unmaps it; aligned u64 reads inside that one page.
            *w = unsafe { ((VADDR + i * 8) as *const u64).read_volatile() };
        }
        Info::decode(&page)
    }

    /// The runs.
    pub fn runs(&self) -> &[Run] {
        &self.runs[..self.count]
    }

    /// The address of frame `pfn` if it is mapped inside `[start, end)`.
    pub fn translate(&self, pfn: u64, start: u64, end: u64) -> Option<u64> {
        self.runs()
            .iter()
            .filter_map(|r| r.translate(pfn))
            .find(|&v| v >= start && v.checked_add(4096).is_some_and(|e| e <= end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(vaddr: u64, pfn: u64, pages: u64) -> Run {
        Run { vaddr, pfn, pages }
    }

    #[test]
    fn runs_survive_the_page_and_translate_only_inside_the_asked_range() {
        let runs = [run(0x8000_0000, 0x104, 3), run(0x8000_3000, 0x900, 2)];
        let mut page = [0u64; 512];
        assert!(encode(&runs, &mut page));
        // Word layout as documented: magic, count, then vaddr, pfn, pages per run.
        assert_eq!(&page[..5], &[MAGIC, 2, 0x8000_0000, 0x104, 3]);
        let info = Info::decode(&page).unwrap();
        assert_eq!(info.runs(), &runs);
        let (lo, hi) = (0x8000_0000, 0x8000_5000);
        assert_eq!(info.translate(0x104, lo, hi), Some(0x8000_0000));
        assert_eq!(info.translate(0x106, lo, hi), Some(0x8000_2000));
        assert_eq!(
            info.translate(0x107, lo, hi),
            None,
            "one past the first run"
        );
        assert_eq!(info.translate(0x901, lo, hi), Some(0x8000_4000));
        assert_eq!(
            info.translate(0x901, lo, 0x8000_4000),
            None,
            "outside the range"
        );
        assert_eq!(info.translate(0x103, lo, hi), None);
    }

    #[test]
    fn a_page_without_magic_or_with_too_many_runs_is_refused() {
        let mut page = [0u64; 512];
        assert!(Info::decode(&page).is_none());
        page[0] = MAGIC;
        page[1] = MAX_RUNS as u64 + 1;
        assert!(Info::decode(&page).is_none());
        let many = [run(0, 0, 1); MAX_RUNS + 1];
        assert!(!encode(&many, &mut page));
        assert!(encode(&many[..MAX_RUNS], &mut page));
    }

    #[test]
    fn a_run_near_the_top_of_the_address_space_does_not_wrap() {
        let r = run(u64::MAX - 0xfff, 5, 1);
        assert_eq!(r.translate(5), Some(u64::MAX - 0xfff));
        assert_eq!(r.translate(4), None);
        assert_eq!(r.translate(6), None);
    }
}
