//! Key-value pair exchange, host side: a scripted host. After negotiation it enumerates the
//! auto pool (index 0, 1, .. until the guest answers a failure status), sets [`SET_KEYS`] in
//! the external pool, gets the first back and deletes the second. Every entry the guest reports
//! (enumerate, get) is kept in a bounded table.
//!
//! Body (4 + 2576 bytes for every operation, as OpenVMM sends it): operation u8, pool u8,
//! 2 padding bytes, then GET/SET: a value record; DELETE: key size u32 and the 512-byte key;
//! ENUMERATE: index u32 and a value record. Value record: value type u32 (1 string), key size
//! u32, value size u32 (bytes, with the UTF-16 terminator), key [512], value [2048].

use crate::devices::ic::{BODY, IcFault, put, u32_at};
use crate::devices::trace::TraceEvent;

/// GET.
pub const OP_GET: u8 = 0;
/// SET.
pub const OP_SET: u8 = 1;
/// DELETE.
pub const OP_DELETE: u8 = 2;
/// ENUMERATE.
pub const OP_ENUMERATE: u8 = 3;
/// The external pool (host-written keys).
pub const POOL_EXTERNAL: u8 = 0;
/// The auto pool (guest-generated keys).
pub const POOL_AUTO: u8 = 2;
/// Largest key, bytes.
pub const MAX_KEY: usize = 512;
/// Largest value, bytes.
pub const MAX_VALUE: usize = 2048;
/// Body bytes of every KVP request.
pub const BODY_SIZE: usize = 4 + 4 + 12 + MAX_KEY + MAX_VALUE;
/// Entries kept.
pub const MAX_ENTRIES: usize = 16;
/// Enumeration stops at this index even if the guest keeps answering.
pub const MAX_ENUMERATE: u32 = 64;
/// REG_SZ.
pub const VALUE_STRING: u32 = 1;
/// The keys the script sets in the external pool (key, value).
pub const SET_KEYS: [(&str, &str); 3] = [
    ("HostName", "hv-host-sim"),
    ("VirtualMachineName", "sel4-vmbus-guest"),
    ("PhysicalHostNameFullyQualified", "sim.invalid"),
];

/// One entry the guest reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvpEntry {
    /// Pool it came from.
    pub pool: u8,
    /// Value type.
    pub value_type: u32,
    key_len: u16,
    key: [u8; MAX_KEY],
    value_len: u16,
    value: [u8; MAX_VALUE],
}

impl KvpEntry {
    const EMPTY: Self = Self {
        pool: 0,
        value_type: 0,
        key_len: 0,
        key: [0; MAX_KEY],
        value_len: 0,
        value: [0; MAX_VALUE],
    };

    /// The key as sent (UTF-16LE, with the terminator if the guest sent one).
    pub fn key_utf16(&self) -> &[u8] {
        &self.key[..usize::from(self.key_len)]
    }

    /// The value as sent.
    pub fn value_bytes(&self) -> &[u8] {
        &self.value[..usize::from(self.value_len)]
    }

    /// The key as characters (terminator and invalid units dropped).
    pub fn key_chars(&self) -> impl Iterator<Item = char> + '_ {
        utf16_chars(self.key_utf16())
    }

    /// The value as characters (for string values).
    pub fn value_chars(&self) -> impl Iterator<Item = char> + '_ {
        utf16_chars(self.value_bytes())
    }
}

fn utf16_chars(b: &[u8]) -> impl Iterator<Item = char> + '_ {
    let units = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units).filter_map(Result::ok)
}

/// Where the script is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvpStep {
    /// Enumerate the auto pool at this index.
    Enumerate(u32),
    /// Set key n of [`SET_KEYS`].
    Set(u8),
    /// Get key 0 back.
    Get,
    /// Delete key 1.
    Delete,
    /// Finished.
    Done,
}

/// The script's state and the entries the guest reported.
#[derive(Debug, Clone)]
pub(crate) struct KvpStore {
    pub step: KvpStep,
    pub entries: [KvpEntry; MAX_ENTRIES],
    pub count: usize,
    /// Entries reported that did not fit the table.
    pub dropped: u64,
    /// The status of each SET, GET, DELETE answer, in order (at most 8 kept).
    pub statuses: [(u8, u32); 8],
    pub status_count: usize,
}

impl KvpStore {
    pub const NEW: Self = Self {
        step: KvpStep::Enumerate(0),
        entries: [KvpEntry::EMPTY; MAX_ENTRIES],
        count: 0,
        dropped: 0,
        statuses: [(0, 0); 8],
        status_count: 0,
    };

    /// Starts the script again (a fresh open); the table is kept.
    pub fn restart(&mut self) {
        self.step = KvpStep::Enumerate(0);
    }

    fn record(&mut self, pool: u8, value: &[u8]) -> Result<(), IcFault> {
        let (vt, ks, vs) = (u32_at(value, 0), u32_at(value, 4), u32_at(value, 8));
        if ks as usize > MAX_KEY || vs as usize > MAX_VALUE {
            return Err(IcFault::KvpSize { key: ks, value: vs });
        }
        let Some(e) = self.entries.get_mut(self.count) else {
            self.dropped += 1;
            return Ok(());
        };
        *e = KvpEntry::EMPTY;
        e.pool = pool;
        e.value_type = vt;
        // ks <= 512, vs <= 2048.
        e.key_len = ks as u16;
        e.key[..ks as usize].copy_from_slice(&value[12..12 + ks as usize]);
        e.value_len = vs as u16;
        let v = 12 + MAX_KEY;
        e.value[..vs as usize].copy_from_slice(&value[v..v + vs as usize]);
        self.count += 1;
        Ok(())
    }
}

fn put_utf16(out: &mut [u8], at: usize, s: &str) -> u32 {
    let mut n = 0;
    for u in s.encode_utf16().chain(core::iter::once(0)) {
        put(out, at + n, &u.to_le_bytes());
        n += 2;
    }
    n as u32
}

/// The request of `step` into `out[BODY..]`: its body size and trace event; None when done.
pub(crate) fn body(out: &mut [u8], step: KvpStep) -> Option<(usize, TraceEvent)> {
    let (op, pool, index) = match step {
        KvpStep::Enumerate(i) => (OP_ENUMERATE, POOL_AUTO, i),
        KvpStep::Set(k) => (OP_SET, POOL_EXTERNAL, u32::from(k)),
        KvpStep::Get => (OP_GET, POOL_EXTERNAL, 0),
        KvpStep::Delete => (OP_DELETE, POOL_EXTERNAL, 1),
        KvpStep::Done => return None,
    };
    out[BODY..BODY + BODY_SIZE].fill(0);
    out[BODY] = op;
    out[BODY + 1] = pool;
    let b = BODY + 4;
    let key = SET_KEYS[(index as usize).min(SET_KEYS.len() - 1)];
    match op {
        OP_ENUMERATE => put(out, b, &index.to_le_bytes()),
        OP_DELETE => {
            let n = put_utf16(out, b + 4, key.0);
            put(out, b, &n.to_le_bytes());
        }
        _ => {
            put(out, b, &VALUE_STRING.to_le_bytes());
            let n = put_utf16(out, b + 12, key.0);
            put(out, b + 4, &n.to_le_bytes());
            if op == OP_SET {
                let v = put_utf16(out, b + 12 + MAX_KEY, key.1);
                put(out, b + 8, &v.to_le_bytes());
            }
        }
    }
    Some((BODY_SIZE, TraceEvent::Kvp { op, pool, index }))
}

/// Handles the answer (status, body) to `step`: records what it reports and moves the script.
pub(crate) fn answer(
    store: &mut KvpStore,
    step: KvpStep,
    status: u32,
    body: &[u8],
) -> Result<(), IcFault> {
    let bad = |size: usize| IcFault::BadBody {
        ty: crate::devices::ic::TYPE_KVP,
        size: size as u16,
    };
    store.step = match step {
        KvpStep::Enumerate(i) if status == 0 && i + 1 < MAX_ENUMERATE => KvpStep::Enumerate(i + 1),
        KvpStep::Enumerate(_) => KvpStep::Set(0),
        KvpStep::Set(k) if usize::from(k) + 1 < SET_KEYS.len() => KvpStep::Set(k + 1),
        KvpStep::Set(_) => KvpStep::Get,
        KvpStep::Get => KvpStep::Delete,
        KvpStep::Delete | KvpStep::Done => KvpStep::Done,
    };
    if !matches!(step, KvpStep::Enumerate(_)) && store.status_count < store.statuses.len() {
        let op = match step {
            KvpStep::Set(_) => OP_SET,
            KvpStep::Get => OP_GET,
            _ => OP_DELETE,
        };
        store.statuses[store.status_count] = (op, status);
        store.status_count += 1;
    }
    if status != 0 {
        return Ok(());
    }
    let value_at = match step {
        KvpStep::Enumerate(_) => 8,
        KvpStep::Get => 4,
        _ => return Ok(()),
    };
    let need = value_at + 12 + MAX_KEY;
    if body.len() < need {
        return Err(bad(body.len()));
    }
    let value = &body[value_at..];
    let vs = u32_at(value, 8) as usize;
    if body.len() < need + vs.min(MAX_VALUE) {
        return Err(bad(body.len()));
    }
    let pool = if value_at == 8 {
        POOL_AUTO
    } else {
        POOL_EXTERNAL
    };
    store.record(pool, value)
}
