//! `dm_mem_page_range`: one run of 4 KiB guest pages as the protocol writes it.

/// Bits of the first page number (the AMD64 limit of a physical page number).
pub const START_BITS: u32 = 40;
/// Bits of the page count.
pub const COUNT_BITS: u32 = 24;
/// One past the highest page number a range may reach (`2^40`).
pub const PFN_LIMIT: u64 = 1 << START_BITS;
/// The most pages one range can carry (`2^24 - 1`).
pub const MAX_COUNT: u32 = (1 << COUNT_BITS) - 1;

/// A run of `count` pages from page number `start` (4 KiB pages, guest physical).
///
/// On the wire it is one little-endian u64: bits 0..40 the first page number, bits 40..64 the
/// count. A valid range has `count >= 1`, `count <= MAX_COUNT` and `start + count <= 2^40`
/// ([`PageRange::new`] checks all three; [`PageRange::to_wire`] checks them again, since the
/// fields are public).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PageRange {
    /// First page number.
    pub start: u64,
    /// Pages in the run.
    pub count: u32,
}

/// Why a page range is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeError {
    /// A range of no pages.
    Empty,
    /// More pages than 24 bits hold.
    CountTooLarge(u32),
    /// The run goes past page `2^40 - 1` (or starts there).
    PastPfnLimit {
        /// First page number.
        start: u64,
        /// Pages.
        count: u32,
    },
}

impl core::fmt::Display for RangeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RangeError::Empty => write!(f, "a page range of no pages"),
            RangeError::CountTooLarge(c) => {
                write!(f, "a page range of {c} pages (24 bits hold {MAX_COUNT})")
            }
            RangeError::PastPfnLimit { start, count } => write!(
                f,
                "the page range {start:#x}+{count} goes past the 40-bit page number limit"
            ),
        }
    }
}

impl PageRange {
    /// A checked range.
    ///
    /// # Errors
    /// [`RangeError`] when `count` is 0 or above [`MAX_COUNT`], or the run ends past `2^40`.
    pub const fn new(start: u64, count: u32) -> Result<PageRange, RangeError> {
        if count == 0 {
            return Err(RangeError::Empty);
        }
        if count > MAX_COUNT {
            return Err(RangeError::CountTooLarge(count));
        }
        // The sum is only formed once start is below 2^40, so it cannot overflow.
        if start >= PFN_LIMIT || start + count as u64 > PFN_LIMIT {
            return Err(RangeError::PastPfnLimit { start, count });
        }
        Ok(PageRange { start, count })
    }

    /// One past the last page.
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.count as u64)
    }

    /// Whether the two runs share a page.
    pub const fn overlaps(&self, other: &PageRange) -> bool {
        self.start < other.end() && other.start < self.end()
    }

    /// The wire form (checked).
    ///
    /// # Errors
    /// As [`PageRange::new`].
    pub const fn to_wire(&self) -> Result<u64, RangeError> {
        match PageRange::new(self.start, self.count) {
            Ok(r) => Ok(r.start | (r.count as u64) << START_BITS),
            Err(e) => Err(e),
        }
    }

    /// Reads the wire form; a range of no pages or one past `2^40` is refused.
    ///
    /// # Errors
    /// As [`PageRange::new`].
    pub const fn from_wire(w: u64) -> Result<PageRange, RangeError> {
        PageRange::new(w & (PFN_LIMIT - 1), (w >> START_BITS) as u32)
    }
}
