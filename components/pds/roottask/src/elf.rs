//! Reads the loadable segments of a PD program (ELF64, little endian, x86-64). The image is our
//! own build output, but it is still checked: every offset and size is bounded by the file.

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// Virtual address.
    pub vaddr: u64,
    /// Bytes in memory (the tail past `file_len` is zero).
    pub mem_len: u64,
    /// Offset of the file bytes.
    pub offset: usize,
    /// Bytes in the file.
    pub file_len: usize,
    /// Writable.
    pub writable: bool,
}

/// What is wrong with an ELF image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    /// Not a 64-bit little-endian x86-64 executable.
    NotX86_64Executable,
    /// A header or segment lies outside the file.
    OutOfBounds,
    /// A segment is not page aligned or overlaps the previous one.
    BadLayout,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ElfError::NotX86_64Executable => "not an x86-64 ELF64 executable",
            ElfError::OutOfBounds => "header or segment outside the file",
            ElfError::BadLayout => "segment not page aligned or overlapping",
        })
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    let s = b.get(at..at + 2).ok_or(ElfError::OutOfBounds)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    let s = b.get(at..at + 4).ok_or(ElfError::OutOfBounds)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    let s = b.get(at..at + 8).ok_or(ElfError::OutOfBounds)?;
    let mut a = [0; 8];
    a.copy_from_slice(s);
    Ok(u64::from_le_bytes(a))
}

/// The entry point and the loadable segments (handed to `each`, in file order).
pub fn parse(
    b: &[u8],
    mut each: impl FnMut(Segment) -> Result<(), ElfError>,
) -> Result<u64, ElfError> {
    if b.get(0..4) != Some(b"\x7fELF")
        || b.get(4) != Some(&2)
        || b.get(5) != Some(&1)
        || u16_at(b, 18)? != 62
    {
        return Err(ElfError::NotX86_64Executable);
    }
    let entry = u64_at(b, 24)?;
    let phoff = u64_at(b, 32)? as usize;
    let phentsize = usize::from(u16_at(b, 54)?);
    let phnum = usize::from(u16_at(b, 56)?);
    let mut prev_end = 0u64;
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i.checked_mul(phentsize).ok_or(ElfError::OutOfBounds)?)
            .ok_or(ElfError::OutOfBounds)?;
        if u32_at(b, ph)? != 1 {
            continue; // not PT_LOAD
        }
        let seg = Segment {
            writable: u32_at(b, ph + 4)? & 2 != 0,
            offset: u64_at(b, ph + 8)? as usize,
            vaddr: u64_at(b, ph + 16)?,
            file_len: u64_at(b, ph + 32)? as usize,
            mem_len: u64_at(b, ph + 40)?,
        };
        if seg
            .offset
            .checked_add(seg.file_len)
            .is_none_or(|end| end > b.len())
            || seg.file_len as u64 > seg.mem_len
        {
            return Err(ElfError::OutOfBounds);
        }
        if !seg.vaddr.is_multiple_of(4096)
            || seg.vaddr < prev_end
            || seg.vaddr.checked_add(seg.mem_len).is_none()
        {
            return Err(ElfError::BadLayout);
        }
        prev_end = (seg.vaddr + seg.mem_len).next_multiple_of(4096);
        each(seg)?;
    }
    Ok(entry)
}
