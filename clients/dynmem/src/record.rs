//! The pages the guest has ballooned out: a sorted list of disjoint runs in a fixed array,
//! adjacent runs merged, so that an unballoon request can be checked against it.

use crate::msg::PageRange;

/// A run of pages `[start, end)`; `end` may reach `2^40`, and a run may hold more pages than one
/// wire range (24 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First page.
    pub start: u64,
    /// One past the last page.
    pub end: u64,
}

impl Span {
    fn of(r: &PageRange) -> Span {
        Span {
            start: r.start,
            end: r.end(),
        }
    }

    /// Pages in the run.
    pub fn pages(&self) -> u64 {
        self.end - self.start
    }
}

/// Why the record refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The run shares pages with one already recorded (adding).
    Overlap,
    /// Some page of the run is not recorded (removing).
    NotRecorded,
    /// The change needs another slot and every one is taken.
    Full,
}

/// At most `N` disjoint, non-adjacent runs, sorted by start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<const N: usize> {
    spans: [Span; N],
    len: usize,
}

impl<const N: usize> Default for Record<N> {
    fn default() -> Self {
        Record {
            spans: [Span::default(); N],
            len: 0,
        }
    }
}

impl<const N: usize> Record<N> {
    /// The runs, sorted.
    pub fn spans(&self) -> &[Span] {
        &self.spans[..self.len]
    }

    /// Slots not in use (each new run, in the worst case, takes one).
    pub fn free_slots(&self) -> usize {
        N - self.len
    }

    /// Pages recorded.
    pub fn pages(&self) -> u64 {
        self.spans().iter().map(Span::pages).sum()
    }

    /// Index of the first run that ends after `page` (the one that may hold it).
    fn first_ending_after(&self, page: u64) -> usize {
        self.spans().partition_point(|s| s.end <= page)
    }

    fn insert_at(&mut self, i: usize, s: Span) {
        self.spans.copy_within(i..self.len, i + 1);
        self.spans[i] = s;
        self.len += 1;
    }

    fn remove_at(&mut self, i: usize) {
        self.spans.copy_within(i + 1..self.len, i);
        self.len -= 1;
    }

    /// Records `r`, merged with the runs it touches.
    ///
    /// # Errors
    /// [`RecordError::Overlap`] when a page of `r` is already recorded, [`RecordError::Full`]
    /// when `r` touches no run and no slot is free. Nothing changes then.
    pub fn add(&mut self, r: &PageRange) -> Result<(), RecordError> {
        let s = Span::of(r);
        // The first run that ends at or after s.start: the only one that may touch s on the left.
        let i = self.spans().partition_point(|x| x.end < s.start);
        let joins_left = i < self.len && self.spans[i].end == s.start;
        let next = if joins_left { i + 1 } else { i };
        if next < self.len && self.spans[next].start < s.end {
            return Err(RecordError::Overlap);
        }
        let joins_right = next < self.len && self.spans[next].start == s.end;
        match (joins_left, joins_right) {
            (true, true) => {
                self.spans[i].end = self.spans[next].end;
                self.remove_at(next);
            }
            (true, false) => self.spans[i].end = s.end,
            (false, true) => self.spans[next].start = s.start,
            (false, false) => {
                if self.len == N {
                    return Err(RecordError::Full);
                }
                self.insert_at(i, s);
            }
        }
        Ok(())
    }

    /// Whether every page of `r` is recorded.
    pub fn covers(&self, r: &PageRange) -> bool {
        let s = Span::of(r);
        let i = self.first_ending_after(s.start);
        i < self.len && self.spans[i].start <= s.start && s.end <= self.spans[i].end
    }

    /// Forgets `r`, splitting the run that holds it when `r` is inside.
    ///
    /// # Errors
    /// [`RecordError::NotRecorded`] when a page of `r` is not recorded, [`RecordError::Full`]
    /// when a split needs a slot and none is free. Nothing changes then.
    pub fn remove(&mut self, r: &PageRange) -> Result<(), RecordError> {
        if !self.covers(r) {
            return Err(RecordError::NotRecorded);
        }
        let s = Span::of(r);
        let i = self.first_ending_after(s.start);
        let held = self.spans[i];
        match (held.start == s.start, held.end == s.end) {
            (true, true) => self.remove_at(i),
            (true, false) => self.spans[i].start = s.end,
            (false, true) => self.spans[i].end = s.start,
            (false, false) => {
                if self.len == N {
                    return Err(RecordError::Full);
                }
                self.spans[i].end = s.start;
                self.insert_at(
                    i + 1,
                    Span {
                        start: s.end,
                        end: held.end,
                    },
                );
            }
        }
        Ok(())
    }
}
