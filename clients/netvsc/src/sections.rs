//! The send-buffer section allocator: a fixed bitmap, no allocation.

/// Most send-buffer sections tracked (Linux's default send buffer of 1 MiB holds 170 sections
/// of 6144 bytes; this covers 3 MiB of them).
pub const MAX_SECTIONS: usize = 512;

/// Why a section could not be taken or given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionError {
    /// Every section is in flight.
    Exhausted,
    /// The index is not an allocated section.
    NotAllocated(u32),
}

impl core::fmt::Display for SectionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SectionError::Exhausted => f.write_str("every send-buffer section is in flight"),
            SectionError::NotAllocated(i) => write!(f, "send-buffer section {i} is not in use"),
        }
    }
}

/// Bounded allocator of `count` sections.
#[derive(Debug, Clone)]
pub struct Sections {
    used: [u64; MAX_SECTIONS / 64],
    count: u32,
    in_use: u32,
}

impl Sections {
    /// An allocator of no sections.
    pub const EMPTY: Sections = Sections {
        used: [0; MAX_SECTIONS / 64],
        count: 0,
        in_use: 0,
    };

    /// An allocator of `count` sections (at most [`MAX_SECTIONS`]), all free.
    pub fn new(count: u32) -> Sections {
        Sections {
            count: count.min(MAX_SECTIONS as u32),
            ..Sections::EMPTY
        }
    }

    /// Sections managed.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Sections in flight.
    pub fn in_use(&self) -> u32 {
        self.in_use
    }

    /// Takes the lowest free section.
    ///
    /// # Errors
    /// [`SectionError::Exhausted`].
    pub fn alloc(&mut self) -> Result<u32, SectionError> {
        for (w, word) in self.used.iter_mut().enumerate() {
            let free = !*word;
            if free == 0 {
                continue;
            }
            let i = w as u32 * 64 + free.trailing_zeros();
            if i >= self.count {
                break;
            }
            *word |= 1 << (i % 64);
            self.in_use += 1;
            return Ok(i);
        }
        Err(SectionError::Exhausted)
    }

    /// Whether section `i` is allocated.
    pub fn is_allocated(&self, i: u32) -> bool {
        i < self.count && self.used[i as usize / 64] & (1 << (i % 64)) != 0
    }

    /// Gives section `i` back.
    ///
    /// # Errors
    /// [`SectionError::NotAllocated`].
    pub fn free(&mut self, i: u32) -> Result<(), SectionError> {
        if !self.is_allocated(i) {
            return Err(SectionError::NotAllocated(i));
        }
        self.used[i as usize / 64] &= !(1 << (i % 64));
        self.in_use -= 1;
        Ok(())
    }

    /// Drops every allocation; returns how many were in flight.
    pub fn clear(&mut self) -> u32 {
        let n = self.in_use;
        self.used = [0; MAX_SECTIONS / 64];
        self.in_use = 0;
        n
    }
}
