//! A request's data buffer as the host sees it: one GPA-direct range (VMBus packet type 9) of
//! `len` bytes starting `offset` bytes into the first of a list of 4 KiB guest page frame numbers.
//!
//! On the wire the range follows the packet descriptor, in the extended descriptor of a
//! `DATA_USING_GPA_DIRECT` packet: u32 reserved (zero), u32 range count (one), then the range:
//! u32 byte count, u32 byte offset, one u64 frame number per page. Hosts take exactly one range for
//! a storage request, at least as long as the SRB's transfer length (OpenVMM refuses anything
//! else; Linux and FreeBSD send one).

use crate::msg::GPA_RANGE_HEADER_LEN;

/// Bytes of a page.
pub const PAGE_SIZE: u32 = 4096;

/// One GPA-direct range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataBuffer<'a> {
    /// Offset into the first page (< 4096).
    pub offset: u32,
    /// Bytes (> 0).
    pub len: u32,
    /// Frame numbers of the pages the range spans, exactly as many as it spans.
    pub pfns: &'a [u64],
}

/// Why a buffer cannot describe a request's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferError {
    /// An offset not inside the first page.
    Offset(u32),
    /// An empty range.
    Empty,
    /// Page frame numbers not matching the pages the range spans.
    PageCount {
        /// Pages spanned.
        spans: u64,
        /// Frame numbers given.
        given: usize,
    },
    /// A frame number beyond what a guest-physical address can hold (52 bits of address).
    Pfn(u64),
    /// The output is too small for the encoded range.
    Output {
        /// Bytes needed.
        needed: usize,
    },
}

impl core::fmt::Display for BufferError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BufferError::Offset(o) => write!(f, "buffer offset {o} not inside the first page"),
            BufferError::Empty => f.write_str("empty buffer"),
            BufferError::PageCount { spans, given } => {
                write!(f, "buffer spans {spans} pages, {given} frame numbers given")
            }
            BufferError::Pfn(p) => write!(f, "frame number {p:#x} beyond 52-bit addresses"),
            BufferError::Output { needed } => {
                write!(f, "{needed} bytes needed to encode the range")
            }
        }
    }
}

/// Highest frame number of a 52-bit guest-physical address.
pub const MAX_PFN: u64 = (1 << 40) - 1;

impl DataBuffer<'_> {
    /// Pages the range spans.
    #[must_use]
    pub fn spans(&self) -> u64 {
        (u64::from(self.offset) + u64::from(self.len)).div_ceil(u64::from(PAGE_SIZE))
    }

    /// Checks the range.
    ///
    /// # Errors
    /// [`BufferError`].
    pub fn check(&self) -> Result<(), BufferError> {
        if self.offset >= PAGE_SIZE {
            return Err(BufferError::Offset(self.offset));
        }
        if self.len == 0 {
            return Err(BufferError::Empty);
        }
        let spans = self.spans();
        if spans != self.pfns.len() as u64 {
            return Err(BufferError::PageCount {
                spans,
                given: self.pfns.len(),
            });
        }
        if let Some(&p) = self.pfns.iter().find(|&&p| p > MAX_PFN) {
            return Err(BufferError::Pfn(p));
        }
        Ok(())
    }

    /// Bytes of the extended descriptor body for this one range.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        8 + GPA_RANGE_HEADER_LEN + 8 * self.pfns.len()
    }

    /// Writes the extended descriptor body of a GPA-direct packet carrying this one range (what
    /// follows the 16-byte packet descriptor, before the in-band vstor packet); its length. For a
    /// channel layer that frames packets itself.
    ///
    /// # Errors
    /// [`BufferError`] when the range is malformed or `out` too small.
    pub fn encode_ext(&self, out: &mut [u8]) -> Result<usize, BufferError> {
        self.check()?;
        let n = self.encoded_len();
        let Some(out) = out.get_mut(..n) else {
            return Err(BufferError::Output { needed: n });
        };
        out[0..4].fill(0);
        out[4..8].copy_from_slice(&1u32.to_le_bytes());
        out[8..12].copy_from_slice(&self.len.to_le_bytes());
        out[12..16].copy_from_slice(&self.offset.to_le_bytes());
        for (dst, pfn) in out[16..].chunks_exact_mut(8).zip(self.pfns) {
            dst.copy_from_slice(&pfn.to_le_bytes());
        }
        Ok(n)
    }
}
