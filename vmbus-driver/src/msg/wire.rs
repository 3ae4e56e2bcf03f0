//! Little-endian field access at fixed offsets of a message buffer.
//!
//! Callers check the buffer length against the layout before reading or writing, so these index
//! directly; an out-of-range offset here is a bug in a layout table, caught by the tests.

use crate::guid::Guid;

pub(crate) fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

pub(crate) fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

pub(crate) fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn guid_at(b: &[u8], o: usize) -> Guid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[o..o + 16]);
    Guid(a)
}

pub(crate) fn put_u16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_guid(b: &mut [u8], o: usize, g: &Guid) {
    b[o..o + 16].copy_from_slice(&g.0);
}
