//! Page lists of channels in a fixed arena of small chunks, so that a channel's ring pages need
//! no per-channel array sized for the largest ring (the channel table stays small).
//!
//! A page can be marked *tainted*: a kernel operation on it failed after it was shared (its
//! revoke, say), so a client may still reach it. A tainted page is never zeroed, returned or
//! granted again, whatever happens to its list later (a late GPADL_TORNDOWN included).

use core::num::NonZeroU16;

use crate::ids::PageId;

/// Pages per chunk.
pub(crate) const CHUNK_PAGES: usize = 7;
/// Chunks in the arena: room for 14,336 pages, or one list of up to 7 pages per channel.
pub(crate) const MAX_CHUNKS: usize = 2048;

/// A chunk's index in the arena, stored plus one so that `Option<ChunkIdx>` is two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkIdx(NonZeroU16);

impl ChunkIdx {
    fn new(i: usize) -> Option<ChunkIdx> {
        let stored = u16::try_from(i.checked_add(1)?).ok()?;
        NonZeroU16::new(stored).map(ChunkIdx)
    }

    fn get(self) -> usize {
        usize::from(self.0.get()) - 1
    }
}

#[derive(Debug, Clone, Copy)]
struct Chunk {
    pages: [PageId; CHUNK_PAGES],
    /// Bit `i`: `pages[i]` is set.
    present: u8,
    /// Bit `i`: `pages[i]` is tainted.
    tainted: u8,
    next: Option<ChunkIdx>,
}

impl Chunk {
    const FREE: Chunk = Chunk {
        pages: [PageId(0); CHUNK_PAGES],
        present: 0,
        tainted: 0,
        next: None,
    };
}

/// A list of pages in the arena: `len` page places in the chunk chain starting at `head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageList {
    head: Option<ChunkIdx>,
    len: u16,
}

impl PageList {
    /// Number of page places (set or not).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }
}

/// The arena. Chunks below `bump` were handed out at least once; freed ones form the free
/// list, so an empty arena needs no initialisation loop and can be a constant.
#[derive(Debug, Clone)]
pub(crate) struct PageArena {
    chunks: [Chunk; MAX_CHUNKS],
    free_head: Option<ChunkIdx>,
    bump: usize,
    free_chunks: usize,
}

impl PageArena {
    /// An arena with every chunk free.
    pub const EMPTY: PageArena = PageArena {
        chunks: [Chunk::FREE; MAX_CHUNKS],
        free_head: None,
        bump: 0,
        free_chunks: MAX_CHUNKS,
    };

    /// Frees every chunk, in place.
    pub fn reset(&mut self) {
        for c in self.chunks.iter_mut() {
            *c = Chunk::FREE;
        }
        self.free_head = None;
        self.bump = 0;
        self.free_chunks = MAX_CHUNKS;
    }

    fn chunk(&self, c: ChunkIdx) -> Option<&Chunk> {
        self.chunks.get(c.get())
    }

    fn chunk_mut(&mut self, c: ChunkIdx) -> Option<&mut Chunk> {
        self.chunks.get_mut(c.get())
    }

    /// Takes one chunk: from the free list, else the next never-used one.
    fn take_chunk(&mut self) -> Option<ChunkIdx> {
        if let Some(c) = self.free_head {
            self.free_head = self.chunk(c)?.next;
            return Some(c);
        }
        if self.bump >= MAX_CHUNKS {
            return None;
        }
        let c = ChunkIdx::new(self.bump)?;
        self.bump += 1;
        Some(c)
    }

    /// Allocates a list of `count` page places, none set until [`PageArena::set`] sets them;
    /// `None` if the arena lacks chunks or `count` exceeds a u16.
    pub fn alloc(&mut self, count: usize) -> Option<PageList> {
        let len = u16::try_from(count).ok()?;
        let need = count.div_ceil(CHUNK_PAGES);
        if need > self.free_chunks {
            return None;
        }
        let mut head = None;
        for _ in 0..need {
            let c = self.take_chunk()?;
            *self.chunk_mut(c)? = Chunk {
                next: head,
                ..Chunk::FREE
            };
            head = Some(c);
        }
        self.free_chunks -= need;
        Some(PageList { head, len })
    }

    /// Gives a list's chunks back to the arena.
    pub fn free(&mut self, list: PageList) {
        let mut c = list.head;
        let mut guard = MAX_CHUNKS;
        while let Some(i) = c
            && guard > 0
        {
            guard -= 1;
            let free_head = self.free_head;
            let Some(chunk) = self.chunk_mut(i) else {
                break;
            };
            c = chunk.next;
            *chunk = Chunk {
                next: free_head,
                ..Chunk::FREE
            };
            self.free_head = Some(i);
            self.free_chunks += 1;
        }
    }

    fn chunk_of(&self, list: PageList, index: usize) -> Option<ChunkIdx> {
        if index >= list.len() {
            return None;
        }
        let mut c = list.head?;
        for _ in 0..index / CHUNK_PAGES {
            c = self.chunk(c)?.next?;
        }
        Some(c)
    }

    /// The page at `index`, if set.
    pub fn get(&self, list: PageList, index: usize) -> Option<PageId> {
        let chunk = self.chunk(self.chunk_of(list, index)?)?;
        let i = index % CHUNK_PAGES;
        (chunk.present & (1 << i) != 0).then_some(chunk.pages[i])
    }

    /// Sets the page at `index`.
    pub fn set(&mut self, list: PageList, index: usize, page: PageId) {
        if let Some(c) = self.chunk_of(list, index)
            && let Some(chunk) = self.chunk_mut(c)
        {
            let i = index % CHUNK_PAGES;
            chunk.pages[i] = page;
            chunk.present |= 1 << i;
        }
    }

    /// Calls `fails` for each set page of the list in order (one walk of the chain) and marks
    /// tainted (see the module documentation) every page for which it returns true; returns how
    /// many it marked.
    pub fn taint_where(&mut self, list: PageList, mut fails: impl FnMut(PageId) -> bool) -> usize {
        let (mut c, mut left, mut marked) = (list.head, list.len(), 0);
        while left > 0
            && let Some(ci) = c
        {
            let Some(chunk) = self.chunk_mut(ci) else {
                break;
            };
            for (i, p) in chunk.pages.iter().enumerate().take(left) {
                if chunk.present & (1 << i) != 0 && fails(*p) {
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

    /// The list's set pages in order with their taint.
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
    chunk: Option<ChunkIdx>,
    index: usize,
    left: usize,
}

impl Iterator for PageIter<'_> {
    type Item = (PageId, bool);

    fn next(&mut self) -> Option<(PageId, bool)> {
        while self.left > 0 {
            let chunk = self.arena.chunk(self.chunk?)?;
            let bit = 1 << self.index;
            let page = chunk.pages[self.index];
            self.left -= 1;
            self.index += 1;
            if self.index == CHUNK_PAGES {
                self.index = 0;
                self.chunk = chunk.next;
            }
            if chunk.present & bit != 0 {
                return Some((page, chunk.tainted & bit != 0));
            }
        }
        None
    }
}
