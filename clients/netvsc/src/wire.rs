//! Little-endian field access with bounds checks.

/// The u16 at `at`, or `None` past the end.
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

/// The u32 at `at`, or `None` past the end.
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The u64 at `at`, or `None` past the end.
pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let lo = u32_at(b, at)?;
    let hi = u32_at(b, at.checked_add(4)?)?;
    Some(u64::from(lo) | (u64::from(hi) << 32))
}

/// Writes `v` at `at`; the caller sized `b`.
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `at`; the caller sized `b`.
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `at`; the caller sized `b`.
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
