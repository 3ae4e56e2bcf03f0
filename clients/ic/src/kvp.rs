//! The key-value pair exchange service, KVP (device class a9a0f4e7-5a45-4d96-b827-8a841e8c03e6):
//! the host reads facts about the guest (its name, OS, addresses) and reads and writes small
//! key-value pairs in pools the guest keeps for it.
//!
//! Body: a 4-byte KVP header (operation u8, pool u8, 2 pad bytes), then the operation's part:
//!
//! | operation | after the KVP header | body bytes needed |
//! |---|---|---|
//! | 0 GET, 1 SET | an exchange value | [`GET_SET_BODY`] (2576) |
//! | 2 DELETE | key size (u32), 512 key bytes | [`DELETE_BODY`] (520) |
//! | 3 ENUMERATE | index (u32), an exchange value | [`ENUMERATE_BODY`] (2580) |
//! | 4 GET_IP_INFO, 5 SET_IP_INFO | the IP-address block, right after operation and pool | [`IP_INFO_BODY`] (7428) |
//!
//! An exchange value is the value type (u32: 1 string, 4 u32, 8 u64), the key size and the
//! value size in bytes (u32 each), a 512-byte key field and a 2048-byte value field. Keys and
//! string values are UTF-16LE; the sizes the guest writes count the terminating NUL, as Linux's
//! do. The host may send a longer body (the union of all operations, 7430 bytes); the answer
//! keeps the body size the host sent, as every service here does.
//!
//! Pools: 0 external (the host writes, the guest reads), 1 guest (the guest writes, the host
//! reads), 2 auto (the guest's own facts, produced on demand from a [`GuestInfo`]), 3 auto
//! external and 4 auto internal (facts the host pushes, such as its own name). The host
//! enumerates a pool by index from 0 until the guest answers an error.
//!
//! What the guest answers: SET, GET and DELETE act on a bounded [`KvpStore`] (in every pool,
//! the auto pool included, as Linux's daemon does); ENUMERATE reads the store, except in the
//! auto pool, where index `i` is [`AUTO_KEYS`]`[i]` with its value from the [`GuestInfo`]. The
//! IP injection operations (4 and 5) are answered [`ERROR_NOT_SUPPORTED`]. A request the guest
//! cannot do is answered with a failure status ([`KvpError::status`]) and changes nothing; a
//! message too short for its operation is not answered at all ([`IcError::BadBody`]).

use crate::header::{self, BODY, IcError, IcVersion, MsgType};
use crate::negotiate;
use crate::service::Service;

/// Service versions the guest speaks (newest first), as Linux's `hv_kvp.c`: 4.0 (Windows
/// Server 2012, with the IP injection operations), 3.0 (2008 R2), 1.0 (2008).
pub const VERSIONS: [IcVersion; 3] = [
    IcVersion::new(4, 0),
    IcVersion::new(3, 0),
    IcVersion::new(1, 0),
];

/// Bytes of the key field, the NUL terminator included (256 UTF-16 code units).
pub const MAX_KEY_SIZE: usize = 512;
/// Bytes of the value field, the NUL terminator included.
pub const MAX_VALUE_SIZE: usize = 2048;

/// Bytes of the KVP header: operation, pool, 2 pad bytes.
pub const KVP_HEADER: usize = 4;
/// Bytes of an exchange value: type, key size, value size, key field, value field.
pub const EXCHANGE_SIZE: usize = 12 + MAX_KEY_SIZE + MAX_VALUE_SIZE;
/// Body bytes a GET or SET needs.
pub const GET_SET_BODY: usize = KVP_HEADER + EXCHANGE_SIZE;
/// Body bytes an ENUMERATE needs.
pub const ENUMERATE_BODY: usize = KVP_HEADER + 4 + EXCHANGE_SIZE;
/// Body bytes a DELETE needs.
pub const DELETE_BODY: usize = KVP_HEADER + 4 + MAX_KEY_SIZE;
/// Bytes of the IP-address block: adapter id (128 UTF-16 units), address family, DHCP flag,
/// addresses (1024 units), subnets (1024), gateways (512), DNS servers (1024).
pub const IP_ADDR_VALUE: usize = 256 + 2 + 2048 + 2048 + 1024 + 2048;
/// Body bytes GET_IP_INFO and SET_IP_INFO need: operation, pool (no pad), the address block.
pub const IP_INFO_BODY: usize = 2 + IP_ADDR_VALUE;
/// The largest KVP body (the union of every operation's part after the KVP header): a buffer of
/// [`MAX_MESSAGE`] bytes holds any KVP message.
pub const MAX_BODY: usize = KVP_HEADER + IP_ADDR_VALUE;
/// Bytes of the largest KVP message, headers included.
pub const MAX_MESSAGE: usize = BODY + MAX_BODY;

/// Offsets in an exchange value.
const EX_TYPE: usize = 0;
const EX_KEY_SIZE: usize = 4;
const EX_VALUE_SIZE: usize = 8;
const EX_KEY: usize = 12;
const EX_VALUE: usize = EX_KEY + MAX_KEY_SIZE;

/// Status: done.
pub const S_OK: u32 = 0;
/// Status: failed (`E_FAIL`).
pub const E_FAIL: u32 = 0x8000_4005;
/// Status: no such item / no more items (`HRESULT_FROM_WIN32(ERROR_NO_MORE_ITEMS)`, Linux's
/// `HV_S_CONT`); the host ends an enumeration on it.
pub const S_CONT: u32 = 0x8007_0103;
/// Status: the operation is not supported (`HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)`).
pub const ERROR_NOT_SUPPORTED: u32 = 0x8007_0032;

/// A KVP operation as the host wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op(pub u8);

impl Op {
    /// Read a value by key.
    pub const GET: Op = Op(0);
    /// Add or replace a value.
    pub const SET: Op = Op(1);
    /// Remove a value.
    pub const DELETE: Op = Op(2);
    /// Read the pair at an index.
    pub const ENUMERATE: Op = Op(3);
    /// Read a network adapter's IP configuration (service 4.0).
    pub const GET_IP_INFO: Op = Op(4);
    /// Set a network adapter's IP configuration (service 4.0, the host's IP injection).
    pub const SET_IP_INFO: Op = Op(5);
}

/// A KVP pool as the host wrote it (0..=4 exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool(pub u8);

impl Pool {
    /// Written by the host, read by the guest.
    pub const EXTERNAL: Pool = Pool(0);
    /// Written by the guest, read by the host.
    pub const GUEST: Pool = Pool(1);
    /// The guest's own facts ([`AUTO_KEYS`]).
    pub const AUTO: Pool = Pool(2);
    /// Facts the host pushes to the guest.
    pub const AUTO_EXTERNAL: Pool = Pool(3);
    /// Facts the host keeps about the guest.
    pub const AUTO_INTERNAL: Pool = Pool(4);
    /// How many pools there are.
    pub const COUNT: u8 = 5;

    /// Whether the pool exists.
    pub fn known(self) -> bool {
        self.0 < Pool::COUNT
    }
}

/// The type of a value as the host wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueType(pub u32);

impl ValueType {
    /// A UTF-16LE string.
    pub const STRING: ValueType = ValueType(1);
    /// A 32-bit number (little endian).
    pub const U32: ValueType = ValueType(4);
    /// A 64-bit number (little endian).
    pub const U64: ValueType = ValueType(8);
}

/// The keys of the auto pool by ENUMERATE index (the order Linux's `hv_kvp_daemon` and the
/// host use).
pub const AUTO_KEYS: [&str; 10] = [
    "FullyQualifiedDomainName",
    "IntegrationServicesVersion",
    "NetworkAddressIPv4",
    "NetworkAddressIPv6",
    "OSBuildNumber",
    "OSName",
    "OSMajorVersion",
    "OSMinorVersion",
    "OSVersion",
    "ProcessorArchitecture",
];

/// The guest's own facts, which the auto pool answers. Strings the PD fills in (from its
/// configuration); an empty one is answered as an empty value. A value longer than the value
/// field is cut at the last whole character that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestInfo<'a> {
    /// The host name, fully qualified (`FullyQualifiedDomainName`).
    pub host_name: &'a str,
    /// The integration services version (`IntegrationServicesVersion`; Linux reports "3.1").
    pub integration_services_version: &'a str,
    /// The IPv4 addresses, each followed by `;` (`NetworkAddressIPv4`), empty when not known.
    pub ipv4: &'a str,
    /// The IPv6 addresses, each followed by `;` (`NetworkAddressIPv6`), empty when not known.
    pub ipv6: &'a str,
    /// The OS build (`OSBuildNumber`), e.g. "5.0.0".
    pub os_build: &'a str,
    /// The OS name (`OSName`), e.g. "seL4".
    pub os_name: &'a str,
    /// The OS major version (`OSMajorVersion`), e.g. "5".
    pub os_major: &'a str,
    /// The OS minor version (`OSMinorVersion`), e.g. "0".
    pub os_minor: &'a str,
    /// The OS version (`OSVersion`), e.g. "5.0.0".
    pub os_version: &'a str,
    /// The processor architecture (`ProcessorArchitecture`), e.g. "x86_64".
    pub processor_architecture: &'a str,
}

impl<'a> GuestInfo<'a> {
    /// The auto pool's pair at ENUMERATE index `index`: key name and value.
    pub fn pair(&self, index: u32) -> Option<(&'static str, &'a str)> {
        let value = match index {
            0 => self.host_name,
            1 => self.integration_services_version,
            2 => self.ipv4,
            3 => self.ipv6,
            4 => self.os_build,
            5 => self.os_name,
            6 => self.os_major,
            7 => self.os_minor,
            8 => self.os_version,
            9 => self.processor_architecture,
            _ => return None,
        };
        Some((AUTO_KEYS[index as usize], value))
    }
}

/// Why a KVP request was not done. All but [`KvpError::Short`] are answered to the host with
/// [`KvpError::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvpError {
    /// A body shorter than its operation's part: not answered.
    Short {
        /// Bytes the operation needs.
        needed: usize,
        /// Bytes of the body.
        got: usize,
    },
    /// An operation number this guest does not know.
    UnknownOp(u8),
    /// A pool number beyond the five pools.
    UnknownPool(u8),
    /// A key size beyond the key field.
    KeyTooLong(u32),
    /// A value size beyond the value field.
    ValueTooLong(u32),
    /// A key size that is not a whole number of UTF-16 code units.
    OddKey(u32),
    /// A string value size that is not a whole number of UTF-16 code units.
    OddValue(u32),
    /// A key with no characters.
    EmptyKey,
    /// A value type other than string, u32 and u64.
    UnknownValueType(u32),
    /// A u32 or u64 value given to [`KvpStore::set`] with another number of bytes.
    NumberSize(u32),
    /// The store holds as many pairs as it can: nothing was replaced.
    StoreFull,
    /// No pair with that key in that pool.
    NotFound,
    /// No pair at that index: the end of the enumeration.
    NoMoreItems(u32),
    /// The IP injection operations, which this guest does not do.
    NotSupported(Op),
}

impl KvpError {
    /// The status the host is answered with: [`S_CONT`] for a key or index that is not there
    /// (as Linux's daemon answers), [`ERROR_NOT_SUPPORTED`] for an operation the guest does
    /// not do, [`E_FAIL`] for a request it refuses.
    pub fn status(self) -> u32 {
        match self {
            KvpError::NotFound | KvpError::NoMoreItems(_) => S_CONT,
            KvpError::UnknownOp(_) | KvpError::NotSupported(_) => ERROR_NOT_SUPPORTED,
            _ => E_FAIL,
        }
    }
}

impl core::fmt::Display for KvpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KvpError::Short { needed, got } => {
                write!(f, "KVP body of {got} bytes, {needed} needed")
            }
            KvpError::UnknownOp(op) => write!(f, "unknown KVP operation {op}"),
            KvpError::UnknownPool(p) => write!(f, "unknown KVP pool {p}"),
            KvpError::KeyTooLong(n) => {
                write!(f, "key of {n} bytes, at most {MAX_KEY_SIZE}")
            }
            KvpError::ValueTooLong(n) => {
                write!(f, "value of {n} bytes, at most {MAX_VALUE_SIZE}")
            }
            KvpError::OddKey(n) => write!(f, "key of {n} bytes is not UTF-16"),
            KvpError::OddValue(n) => write!(f, "string value of {n} bytes is not UTF-16"),
            KvpError::EmptyKey => f.write_str("empty key"),
            KvpError::UnknownValueType(t) => write!(f, "unknown value type {t}"),
            KvpError::NumberSize(n) => write!(f, "number value of {n} bytes"),
            KvpError::StoreFull => f.write_str("the KVP store is full"),
            KvpError::NotFound => f.write_str("no such key"),
            KvpError::NoMoreItems(i) => write!(f, "no pair at index {i}"),
            KvpError::NotSupported(op) => write!(f, "KVP operation {} not supported", op.0),
        }
    }
}

/// An exchange value as the host wrote it, its sizes checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange<'a> {
    /// The value type (not checked here: GET and ENUMERATE requests leave it unset).
    pub value_type: ValueType,
    /// The key, UTF-16LE, as many bytes as the key size says.
    pub key: &'a [u8],
    /// The value, as many bytes as the value size says; in a SET of a number, the number's
    /// 4 or 8 bytes from the value field (Linux reads them whatever the value size says).
    pub value: &'a [u8],
}

/// A KVP request, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Read the value of `key`.
    Get {
        /// The pool.
        pool: Pool,
        /// The key, UTF-16LE.
        key: &'a [u8],
    },
    /// Add or replace a pair.
    Set {
        /// The pool.
        pool: Pool,
        /// The pair.
        pair: Exchange<'a>,
    },
    /// Remove the pair of `key`.
    Delete {
        /// The pool.
        pool: Pool,
        /// The key, UTF-16LE.
        key: &'a [u8],
    },
    /// Read the pair at `index`.
    Enumerate {
        /// The pool.
        pool: Pool,
        /// The index.
        index: u32,
    },
    /// An IP injection operation (4 or 5), its size checked.
    IpInfo(Op),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn need(body: &[u8], needed: usize) -> Result<(), KvpError> {
    if body.len() < needed {
        return Err(KvpError::Short {
            needed,
            got: body.len(),
        });
    }
    Ok(())
}

/// Checks a key size the host wrote: within the field, whole UTF-16 code units.
fn key_size(size: u32) -> Result<usize, KvpError> {
    if size as usize > MAX_KEY_SIZE {
        return Err(KvpError::KeyTooLong(size));
    }
    if !size.is_multiple_of(2) {
        return Err(KvpError::OddKey(size));
    }
    Ok(size as usize)
}

/// Reads the exchange value at the start of `ex` (at least [`EXCHANGE_SIZE`] bytes).
fn exchange(ex: &[u8]) -> Result<Exchange<'_>, KvpError> {
    let ksize = key_size(u32_at(ex, EX_KEY_SIZE))?;
    let vsize = u32_at(ex, EX_VALUE_SIZE);
    if vsize as usize > MAX_VALUE_SIZE {
        return Err(KvpError::ValueTooLong(vsize));
    }
    Ok(Exchange {
        value_type: ValueType(u32_at(ex, EX_TYPE)),
        key: &ex[EX_KEY..EX_KEY + ksize],
        value: &ex[EX_VALUE..EX_VALUE + vsize as usize],
    })
}

/// Decodes a KVP body (the bytes after the IC header, as many as its body size says), checking
/// every size the host wrote.
pub fn decode(body: &[u8]) -> Result<Request<'_>, KvpError> {
    need(body, KVP_HEADER)?;
    let op = Op(body[0]);
    let pool = Pool(body[1]);
    let needed = match op {
        Op::GET | Op::SET => GET_SET_BODY,
        Op::DELETE => DELETE_BODY,
        Op::ENUMERATE => ENUMERATE_BODY,
        Op::GET_IP_INFO | Op::SET_IP_INFO => IP_INFO_BODY,
        Op(other) => return Err(KvpError::UnknownOp(other)),
    };
    need(body, needed)?;
    if matches!(op, Op::GET_IP_INFO | Op::SET_IP_INFO) {
        return Ok(Request::IpInfo(op));
    }
    if !pool.known() {
        return Err(KvpError::UnknownPool(pool.0));
    }
    Ok(match op {
        Op::GET => Request::Get {
            pool,
            key: exchange(&body[KVP_HEADER..])?.key,
        },
        Op::SET => {
            let mut pair = exchange(&body[KVP_HEADER..])?;
            let field = &body[KVP_HEADER + EX_VALUE..];
            // A number is read from the value field whatever the value size says, as Linux
            // reads it.
            match pair.value_type {
                ValueType::STRING if !pair.value.len().is_multiple_of(2) => {
                    return Err(KvpError::OddValue(pair.value.len() as u32));
                }
                ValueType::U32 => pair.value = &field[..4],
                ValueType::U64 => pair.value = &field[..8],
                _ => {}
            }
            Request::Set { pool, pair }
        }
        Op::DELETE => {
            let size = key_size(u32_at(body, KVP_HEADER))?;
            Request::Delete {
                pool,
                key: &body[KVP_HEADER + 4..KVP_HEADER + 4 + size],
            }
        }
        _ => Request::Enumerate {
            pool,
            index: u32_at(body, KVP_HEADER),
        },
    })
}

/// A key without its trailing NUL code units (the host counts the terminator; a key is the
/// same with or without it).
fn trim_key(key: &[u8]) -> &[u8] {
    let mut len = key.len() & !1;
    while len >= 2 && key[len - 2] == 0 && key[len - 1] == 0 {
        len -= 2;
    }
    &key[..len]
}

/// A stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    /// Its type.
    pub value_type: ValueType,
    /// Its bytes as the host sent them (a string's terminator included when it sent one).
    pub bytes: &'a [u8],
}

impl Value<'_> {
    /// The value as a number, for a u32 or u64 value.
    pub fn number(&self) -> Option<u64> {
        let mut w = [0u8; 8];
        match self.value_type {
            ValueType::U32 => w[..4].copy_from_slice(self.bytes.get(..4)?),
            ValueType::U64 => w.copy_from_slice(self.bytes.get(..8)?),
            _ => return None,
        }
        Some(u64::from_le_bytes(w))
    }

    /// The characters of a string value, up to its terminator (a broken surrogate is
    /// `U+FFFD`); nothing for a number.
    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        let bytes = if self.value_type == ValueType::STRING {
            trim_key(self.bytes)
        } else {
            &[]
        };
        let units = bytes
            .chunks_exact(2)
            .map(|u| u16::from_le_bytes([u[0], u[1]]))
            .take_while(|&u| u != 0);
        char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
    }
}

/// One stored pair.
#[derive(Clone, Copy)]
struct Entry {
    pool: u8,
    value_type: u32,
    key_len: u16,
    value_len: u16,
    key: [u8; MAX_KEY_SIZE],
    value: [u8; MAX_VALUE_SIZE],
}

impl Entry {
    const EMPTY: Entry = Entry {
        pool: 0,
        value_type: 0,
        key_len: 0,
        value_len: 0,
        key: [0; MAX_KEY_SIZE],
        value: [0; MAX_VALUE_SIZE],
    };

    fn key(&self) -> &[u8] {
        &self.key[..usize::from(self.key_len)]
    }

    fn value(&self) -> Value<'_> {
        Value {
            value_type: ValueType(self.value_type),
            bytes: &self.value[..usize::from(self.value_len)],
        }
    }
}

/// The pairs the host SETs, at most `N` in all pools together, each with a key of up to
/// [`MAX_KEY_SIZE`] bytes and a value of up to [`MAX_VALUE_SIZE`] (about 2.6 KiB a pair, so a
/// PD keeps its store in a static). Keys are compared as UTF-16 code units, without their
/// terminator. Nothing is ever evicted: a SET of a new key into a full store is refused.
/// Pairs keep the order they were added in (ENUMERATE's order).
#[derive(Clone)]
pub struct KvpStore<const N: usize> {
    entries: [Entry; N],
    len: usize,
}

impl<const N: usize> core::fmt::Debug for KvpStore<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KvpStore")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<const N: usize> Default for KvpStore<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> KvpStore<N> {
    /// An empty store.
    pub const fn new() -> Self {
        KvpStore {
            entries: [Entry::EMPTY; N],
            len: 0,
        }
    }

    /// Pairs held, all pools together.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Pairs it can hold.
    pub const fn capacity(&self) -> usize {
        N
    }

    fn position(&self, pool: Pool, key: &[u8]) -> Option<usize> {
        let key = trim_key(key);
        self.entries[..self.len]
            .iter()
            .position(|e| e.pool == pool.0 && e.key() == key)
    }

    /// Adds the pair `key` (UTF-16LE) → `value` to `pool`, or replaces the value of the key
    /// already there. A key or value beyond its field, an odd-sized key or string value, a
    /// number not of 4 (u32) or 8 (u64) bytes, an empty key, an unknown pool or type, or a new
    /// key when the store is full, is refused and nothing changes.
    pub fn set(
        &mut self,
        pool: Pool,
        value_type: ValueType,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), KvpError> {
        if !pool.known() {
            return Err(KvpError::UnknownPool(pool.0));
        }
        let key_bytes = u32::try_from(key.len()).unwrap_or(u32::MAX);
        key_size(key_bytes)?;
        if value.len() > MAX_VALUE_SIZE {
            return Err(KvpError::ValueTooLong(
                u32::try_from(value.len()).unwrap_or(u32::MAX),
            ));
        }
        let value = match value_type {
            ValueType::STRING if !value.len().is_multiple_of(2) => {
                return Err(KvpError::OddValue(value.len() as u32));
            }
            ValueType::STRING => value,
            ValueType::U32 if value.len() != 4 => {
                return Err(KvpError::NumberSize(value.len() as u32));
            }
            ValueType::U64 if value.len() != 8 => {
                return Err(KvpError::NumberSize(value.len() as u32));
            }
            ValueType::U32 | ValueType::U64 => value,
            ValueType(other) => return Err(KvpError::UnknownValueType(other)),
        };
        let key = trim_key(key);
        if key.is_empty() {
            return Err(KvpError::EmptyKey);
        }
        let at = match self.position(pool, key) {
            Some(at) => at,
            None if self.len == N => return Err(KvpError::StoreFull),
            None => {
                self.len += 1;
                let e = &mut self.entries[self.len - 1];
                e.pool = pool.0;
                e.key[..key.len()].copy_from_slice(key);
                e.key_len = key.len() as u16;
                self.len - 1
            }
        };
        let e = &mut self.entries[at];
        e.value_type = value_type.0;
        e.value[..value.len()].copy_from_slice(value);
        e.value_len = value.len() as u16;
        Ok(())
    }

    /// The value of `key` (UTF-16LE, with or without its terminator) in `pool`.
    pub fn get(&self, pool: Pool, key: &[u8]) -> Option<Value<'_>> {
        self.position(pool, key).map(|at| self.entries[at].value())
    }

    /// The value of the key spelled `name` in `pool` (for the PD: e.g. the host's
    /// "PhysicalHostName" in the auto-external pool).
    pub fn get_str(&self, pool: Pool, name: &str) -> Option<Value<'_>> {
        self.entries[..self.len]
            .iter()
            .find(|e| {
                e.pool == pool.0
                    && e.key()
                        .chunks_exact(2)
                        .map(|u| u16::from_le_bytes([u[0], u[1]]))
                        .eq(name.encode_utf16())
            })
            .map(Entry::value)
    }

    /// Removes the pair of `key` from `pool`; the pairs after it move up.
    pub fn delete(&mut self, pool: Pool, key: &[u8]) -> Result<(), KvpError> {
        let at = self.position(pool, key).ok_or(KvpError::NotFound)?;
        self.entries.copy_within(at + 1..self.len, at);
        self.len -= 1;
        self.entries[self.len] = Entry::EMPTY;
        Ok(())
    }

    /// The pair at `index` in `pool` (in the order they were added): key (UTF-16LE, no
    /// terminator) and value.
    pub fn nth(&self, pool: Pool, index: u32) -> Option<(&[u8], Value<'_>)> {
        self.entries[..self.len]
            .iter()
            .filter(|e| e.pool == pool.0)
            .nth(index as usize)
            .map(|e| (e.key(), e.value()))
    }
}

/// Writes `s` as UTF-16LE with a NUL terminator into `field` (zeroing the rest), cut at the
/// last whole character that leaves room for the terminator; the bytes written, terminator
/// included.
fn put_str(field: &mut [u8], s: &str) -> usize {
    field.fill(0);
    let mut at = 0;
    let mut units = [0u16; 2];
    for c in s.chars() {
        let u = c.encode_utf16(&mut units);
        if at + u.len() * 2 + 2 > field.len() {
            break;
        }
        for unit in u.iter() {
            field[at..at + 2].copy_from_slice(&unit.to_le_bytes());
            at += 2;
        }
    }
    at + 2
}

/// Writes raw bytes into `field`, zeroing the rest.
fn put_bytes(field: &mut [u8], bytes: &[u8]) {
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes a stored value into the exchange value `ex`.
fn put_value(ex: &mut [u8], value: Value<'_>) {
    put_u32(ex, EX_TYPE, value.value_type.0);
    put_u32(ex, EX_VALUE_SIZE, value.bytes.len() as u32);
    put_bytes(&mut ex[EX_VALUE..EX_VALUE + MAX_VALUE_SIZE], value.bytes);
}

/// What the guest did with a KVP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The request was done (status 0).
    Done(Op, Pool),
    /// The request was answered with the error's status; nothing changed.
    Refused(Op, KvpError),
}

/// What the guest did with a message on the KVP channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A version negotiation, answered.
    Negotiated(negotiate::Outcome),
    /// A KVP request, answered.
    Request(Event),
}

/// Does the request in `body` against `store` and `guest`, rewriting the body into its answer.
fn exchange_in_place<const N: usize>(
    body: &mut [u8],
    store: &mut KvpStore<N>,
    guest: &GuestInfo<'_>,
) -> Result<Pool, KvpError> {
    match decode(body)? {
        Request::IpInfo(op) => Err(KvpError::NotSupported(op)),
        Request::Set { pool, pair } => {
            store.set(pool, pair.value_type, pair.key, pair.value)?;
            Ok(pool)
        }
        Request::Delete { pool, key } => {
            store.delete(pool, key)?;
            Ok(pool)
        }
        Request::Get { pool, key } => {
            let at = store.position(pool, key).ok_or(KvpError::NotFound)?;
            put_value(&mut body[KVP_HEADER..], store.entries[at].value());
            Ok(pool)
        }
        Request::Enumerate { pool, index } => {
            let ex = &mut body[KVP_HEADER + 4..];
            if pool == Pool::AUTO {
                let (key, value) = guest.pair(index).ok_or(KvpError::NoMoreItems(index))?;
                let ksize = put_str(&mut ex[EX_KEY..EX_KEY + MAX_KEY_SIZE], key);
                let vsize = put_str(&mut ex[EX_VALUE..EX_VALUE + MAX_VALUE_SIZE], value);
                put_u32(ex, EX_TYPE, ValueType::STRING.0);
                put_u32(ex, EX_KEY_SIZE, ksize as u32);
                put_u32(ex, EX_VALUE_SIZE, vsize as u32);
            } else {
                let (key, value) = store.nth(pool, index).ok_or(KvpError::NoMoreItems(index))?;
                // The key goes back with its terminator when the field has room for it.
                put_bytes(&mut ex[EX_KEY..EX_KEY + MAX_KEY_SIZE], key);
                let ksize = (key.len() + 2).min(MAX_KEY_SIZE);
                put_u32(ex, EX_KEY_SIZE, ksize as u32);
                put_value(ex, value);
            }
            Ok(pool)
        }
    }
}

/// Answers the KVP request in `msg` (the whole packet: pipe header, IC header, body) in place;
/// the answer's length and what was done. A request the guest cannot do is answered with a
/// failure status ([`Event::Refused`]); a message that is not a whole KVP request, or whose
/// body is too short for its operation, is an error and gets no answer.
pub fn answer_request<const N: usize>(
    msg: &mut [u8],
    store: &mut KvpStore<N>,
    guest: &GuestInfo<'_>,
) -> Result<(usize, Event), IcError> {
    let h = header::request(msg)?;
    if h.ty != MsgType::KVP {
        return Err(IcError::Unexpected(h.ty));
    }
    let body = &mut msg[BODY..BODY + usize::from(h.body_size)];
    let op = Op(body.first().copied().unwrap_or(0));
    let (status, event) = match exchange_in_place(body, store, guest) {
        Ok(pool) => (S_OK, Event::Done(op, pool)),
        Err(KvpError::Short { .. }) => {
            return Err(IcError::BadBody {
                ty: h.ty,
                size: h.body_size,
            });
        }
        Err(e) => (e.status(), Event::Refused(op, e)),
    };
    let len = header::answer(msg, status, h.body_size)?;
    Ok((len, event))
}

/// Answers the KVP or version negotiation request in `msg` in place (the negotiation with
/// [`VERSIONS`], a KVP request as [`answer_request`] does); the answer's length and what was
/// done.
pub fn answer<const N: usize>(
    msg: &mut [u8],
    store: &mut KvpStore<N>,
    guest: &GuestInfo<'_>,
) -> Result<(usize, Outcome), IcError> {
    let h = header::request(msg)?;
    if h.ty == MsgType::NEGOTIATE {
        let (len, outcome) = negotiate::answer(msg, &VERSIONS)?;
        return Ok((len, Outcome::Negotiated(outcome)));
    }
    let (len, event) = answer_request(msg, store, guest)?;
    Ok((len, Outcome::Request(event)))
}

/// The KVP service for an [`Endpoint`](crate::service::Endpoint): its store of at most `N`
/// pairs and the guest's facts. A PD keeps it in a static ([`Kvp::new`] is `const`).
#[derive(Debug, Clone)]
pub struct Kvp<'a, const N: usize> {
    /// The pairs the host set.
    pub store: KvpStore<N>,
    /// The guest's facts, for the auto pool.
    pub guest: GuestInfo<'a>,
    /// Requests answered with a failure status.
    pub refused: u64,
}

impl<'a, const N: usize> Kvp<'a, N> {
    /// The service with an empty store.
    pub const fn new(guest: GuestInfo<'a>) -> Self {
        Kvp {
            store: KvpStore::new(),
            guest,
            refused: 0,
        }
    }
}

impl<const N: usize> Service for Kvp<'_, N> {
    const NAME: &'static str = "kvp";
    const TYPE: MsgType = MsgType::KVP;
    const VERSIONS: &'static [IcVersion] = &VERSIONS;
    type Event = Event;

    fn answer(&mut self, msg: &mut [u8], _: IcVersion) -> Result<(usize, Event), IcError> {
        let (len, event) = answer_request(msg, &mut self.store, &self.guest)?;
        if let Event::Refused(..) = event {
            self.refused += 1;
        }
        Ok((len, event))
    }
}

/// This project's guest as the auto pool describes it: seL4 5.0.0 on x86-64, host name
/// `sel4-vmbus`, no addresses (the system has no network stack). The KVP PD of `system.xml` and
/// the simulation's KVP client answer with it.
pub const SEL4_GUEST: GuestInfo<'static> = GuestInfo {
    host_name: "sel4-vmbus",
    integration_services_version: "3.1",
    ipv4: "",
    ipv6: "",
    os_build: "5.0.0",
    os_name: "seL4",
    os_major: "5",
    os_minor: "0",
    os_version: "5.0.0",
    processor_architecture: "x86_64",
};
