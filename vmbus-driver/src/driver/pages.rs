//! Page lists of channels in a fixed arena of small chunks, so that a channel's ring pages need
//! no per-channel array sized for the largest ring (the open table stays small).
//!
//! A page can be marked *tainted*: a kernel operation on it failed after it was shared (its
//! revoke, say), so a client may still reach it. A tainted page is never zeroed, returned or
//! granted again, whatever happens to its list later (a late GPADL_TORNDOWN included).

use crate::ids::PageId;

/// Pages per chunk.
pub(crate) const CHUNK_PAGES: usize = 7;
/// Chunks in the arena: room for 14,336 pages, or one list of up to 7 pages per open channel.
pub(crate) const MAX_CHUNKS: usize = 2048;
const NIL: u16 = u16::MAX;
const NO_PAGE: PageId = PageId(u32::MAX);

#[derive(Debug, Clone, Copy)]
struct Chunk {
    pages: [PageId; CHUNK_PAGES],
    /// Bit `i`: `pages[i]` is tainted.
    tainted: u8,
    next: u16,
}

/// A list of pages in the arena: `len` pages in the chunk chain starting at `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageList {
    head: u16,
    len: u16,
}

impl PageList {
    /// The empty list.
    pub const EMPTY: PageList = PageList { head: NIL, len: 0 };

    /// Number of pages.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

/// The arena. Chunks below `bump` were handed out at least once; freed ones form the free
/// list, so an empty arena needs no initialisation loop and can be a constant.
#[derive(Debug, Clone)]
pub(crate) struct PageArena {
    chunks: [Chunk; MAX_CHUNKS],
    free_head: u16,
    bump: u16,
    free_chunks: usize,
}

impl PageArena {
    /// An arena with every chunk free.
    pub const EMPTY: PageArena = PageArena {
        chunks: [Chunk {
            pages: [NO_PAGE; CHUNK_PAGES],
            tainted: 0,
            next: NIL,
        }; MAX_CHUNKS],
        free_head: NIL,
        bump: 0,
        free_chunks: MAX_CHUNKS,
    };

    /// Frees every chunk, in place.
    pub fn reset(&mut self) {
        for c in self.chunks.iter_mut() {
            c.pages = [NO_PAGE; CHUNK_PAGES];
            c.tainted = 0;
            c.next = NIL;
        }
        self.free_head = NIL;
        self.bump = 0;
        self.free_chunks = MAX_CHUNKS;
    }

    /// Takes one chunk: from the free list, else the next never-used one.
    fn take_chunk(&mut self) -> Option<u16> {
        if self.free_head != NIL {
            let c = self.free_head;
            self.free_head = self.chunks.get(usize::from(c))?.next;
            return Some(c);
        }
        let c = self.bump;
        if usize::from(c) >= MAX_CHUNKS {
            return None;
        }
        self.bump += 1;
        Some(c)
    }

    /// Allocates a list of `count` pages, all set to `fill` until [`PageArena::set`] replaces
    /// them; `None` if the arena lacks chunks or `count` exceeds a u16.
    pub fn alloc(&mut self, count: usize, fill: PageId) -> Option<PageList> {
        let len = u16::try_from(count).ok()?;
        let need = count.div_ceil(CHUNK_PAGES);
        if need > self.free_chunks {
            return None;
        }
        let mut head = NIL;
        for _ in 0..need {
            let c = self.take_chunk()?;
            let chunk = self.chunks.get_mut(usize::from(c))?;
            chunk.pages = [fill; CHUNK_PAGES];
            chunk.tainted = 0;
            chunk.next = head;
            head = c;
        }
        self.free_chunks -= need;
        Some(PageList { head, len })
    }

    /// Gives a list's chunks back to the arena.
    pub fn free(&mut self, list: PageList) {
        let mut c = list.head;
        let mut guard = MAX_CHUNKS;
        while c != NIL && guard > 0 {
            guard -= 1;
            let Some(chunk) = self.chunks.get_mut(usize::from(c)) else {
                break;
            };
            let next = chunk.next;
            chunk.next = self.free_head;
            chunk.pages = [NO_PAGE; CHUNK_PAGES];
            chunk.tainted = 0;
            self.free_head = c;
            self.free_chunks += 1;
            c = next;
        }
    }

    fn chunk_of(&self, list: PageList, index: usize) -> Option<u16> {
        if index >= list.len() {
            return None;
        }
        let mut c = list.head;
        for _ in 0..index / CHUNK_PAGES {
            c = self.chunks.get(usize::from(c))?.next;
        }
        Some(c)
    }

    /// The page at `index`.
    pub fn get(&self, list: PageList, index: usize) -> Option<PageId> {
        let c = self.chunk_of(list, index)?;
        let p = self.chunks.get(usize::from(c))?.pages[index % CHUNK_PAGES];
        (p != NO_PAGE).then_some(p)
    }

    /// Sets the page at `index`.
    pub fn set(&mut self, list: PageList, index: usize, page: PageId) {
        if let Some(c) = self.chunk_of(list, index)
            && let Some(chunk) = self.chunks.get_mut(usize::from(c))
        {
            chunk.pages[index % CHUNK_PAGES] = page;
        }
    }

    /// Calls `fails` for each page of the list in order (one walk of the chain) and marks
    /// tainted (see the module documentation) every page for which it returns true; returns how
    /// many it marked.
    pub fn taint_where(&mut self, list: PageList, mut fails: impl FnMut(PageId) -> bool) -> usize {
        let (mut c, mut left, mut marked) = (list.head, list.len(), 0);
        while left > 0 {
            let Some(chunk) = self.chunks.get_mut(usize::from(c)) else {
                break;
            };
            for (i, p) in chunk.pages.iter().take(left).enumerate() {
                if *p != NO_PAGE && fails(*p) {
                    chunk.tainted |= 1 << i;
                    marked += 1;
                }
            }
            left = left.saturating_sub(CHUNK_PAGES);
            c = chunk.next;
        }
        marked
    }

    /// Tainted pages in the list.
    pub fn tainted(&self, list: PageList) -> usize {
        self.iter_marked(list).filter(|&(_, t)| t).count()
    }

    /// The list's pages in order with their taint (unset entries skipped).
    pub fn iter_marked(&self, list: PageList) -> PageIter<'_> {
        PageIter {
            arena: self,
            chunk: list.head,
            index: 0,
            left: list.len(),
        }
    }
}

/// Iterator over a page list.
#[derive(Debug)]
pub(crate) struct PageIter<'a> {
    arena: &'a PageArena,
    chunk: u16,
    index: usize,
    left: usize,
}

impl Iterator for PageIter<'_> {
    type Item = (PageId, bool);

    fn next(&mut self) -> Option<(PageId, bool)> {
        while self.left > 0 {
            let chunk = self.arena.chunks.get(usize::from(self.chunk))?;
            let p = chunk.pages[self.index];
            let tainted = chunk.tainted & (1 << self.index) != 0;
            self.left -= 1;
            self.index += 1;
            if self.index == CHUNK_PAGES {
                self.index = 0;
                self.chunk = chunk.next;
            }
            if p != NO_PAGE {
                return Some((p, tainted));
            }
        }
        None
    }
}
