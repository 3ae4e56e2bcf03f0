use crate::header::{BODY, FLAG_REQUEST, FLAG_RESPONSE, FLAG_TRANSACTION, IcError};
use crate::header::{IcVersion, MsgType};
use crate::kvp::{
    self, AUTO_KEYS, Event, GuestInfo, KvpError, KvpStore, Op, Outcome, Pool, ValueType,
};
use crate::kvp::{DELETE_BODY, E_FAIL, ENUMERATE_BODY, ERROR_NOT_SUPPORTED, GET_SET_BODY};
use crate::kvp::{IP_INFO_BODY, MAX_BODY, MAX_KEY_SIZE, MAX_MESSAGE, MAX_VALUE_SIZE, S_CONT};
use crate::negotiate;

type Msg = [u8; MAX_MESSAGE];

/// Offsets in a message.
const H: usize = 8; // IC header
const EX: usize = BODY + 4; // exchange value of a GET or SET
const EX_ENUM: usize = BODY + 8; // exchange value of an ENUMERATE
const KEY: usize = 12; // in an exchange value
const VALUE: usize = 12 + MAX_KEY_SIZE;

fn guest() -> GuestInfo<'static> {
    GuestInfo {
        host_name: "sel4-guest.example.org",
        ipv4: "10.0.0.2;",
        ..crate::kvp::SEL4_GUEST
    }
}

/// A host KVP request (transaction 9) with `op`, `pool` and a body of `body_size` bytes.
fn request(op: u8, pool: u8, body_size: usize) -> Msg {
    let mut m = [0u8; MAX_MESSAGE];
    m[0..4].copy_from_slice(&2u32.to_le_bytes());
    m[4..8].copy_from_slice(&1u32.to_le_bytes());
    m[H..H + 2].copy_from_slice(&3u16.to_le_bytes());
    m[H + 4..H + 6].copy_from_slice(&MsgType::KVP.0.to_le_bytes());
    m[H + 6..H + 8].copy_from_slice(&4u16.to_le_bytes());
    m[H + 10..H + 12].copy_from_slice(&(body_size as u16).to_le_bytes());
    m[H + 16] = 9;
    m[H + 17] = FLAG_TRANSACTION | FLAG_REQUEST;
    m[BODY] = op;
    m[BODY + 1] = pool;
    m
}

fn put_u32(m: &mut [u8], at: usize, v: u32) {
    m[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn u32_at(m: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]])
}

/// Writes `s` as UTF-16LE with a terminator at `at`; the bytes, terminator included.
fn utf16(m: &mut [u8], at: usize, s: &str) -> u32 {
    let mut n = 0;
    for u in s.encode_utf16() {
        m[at + n..at + n + 2].copy_from_slice(&u.to_le_bytes());
        n += 2;
    }
    m[at + n..at + n + 2].fill(0);
    (n + 2) as u32
}

/// Writes an exchange value at `ex`: type, `key` and a string `value` (sizes counting the
/// terminators, as the host writes them).
fn pair(m: &mut [u8], ex: usize, key: &str, value: &str) {
    put_u32(m, ex, ValueType::STRING.0);
    let k = utf16(m, ex + KEY, key);
    put_u32(m, ex + 4, k);
    let v = utf16(m, ex + VALUE, value);
    put_u32(m, ex + 8, v);
}

fn set(pool: u8, key: &str, value: &str) -> Msg {
    let mut m = request(Op::SET.0, pool, GET_SET_BODY);
    pair(&mut m, EX, key, value);
    m
}

fn get(pool: u8, key: &str) -> Msg {
    let mut m = request(Op::GET.0, pool, GET_SET_BODY);
    let k = utf16(&mut m, EX + KEY, key);
    put_u32(&mut m, EX + 4, k);
    m
}

fn delete(pool: u8, key: &str) -> Msg {
    let mut m = request(Op::DELETE.0, pool, DELETE_BODY);
    let k = utf16(&mut m, BODY + 8, key);
    put_u32(&mut m, BODY + 4, k);
    m
}

fn enumerate(pool: u8, index: u32) -> Msg {
    let mut m = request(Op::ENUMERATE.0, pool, ENUMERATE_BODY);
    put_u32(&mut m, BODY + 4, index);
    m
}

fn done(op: Op, pool: Pool) -> Outcome {
    Outcome::Request(Event::Done(op, pool))
}

fn refused(op: Op, e: KvpError) -> Outcome {
    Outcome::Request(Event::Refused(op, e))
}

fn status(m: &[u8]) -> u32 {
    u32_at(m, H + 12)
}

/// Runs `m` through the service; its status and outcome.
fn run<const N: usize>(m: &mut Msg, store: &mut KvpStore<N>) -> (u32, Outcome) {
    let body = usize::from(u16::from_le_bytes([m[H + 10], m[H + 11]]));
    let (len, outcome) = kvp::answer(m, store, &guest()).unwrap();
    assert_eq!(len, BODY + body, "the answer keeps the body size");
    assert_eq!(m[H + 17], FLAG_TRANSACTION | FLAG_RESPONSE);
    assert_eq!(m[H + 16], 9);
    (status(m), outcome)
}

/// The string in a UTF-16LE field of `size` bytes (terminator included).
fn string_at(m: &[u8], at: usize, size: u32) -> heapless_string::S {
    let mut s = heapless_string::S::default();
    let units = m[at..at + size as usize]
        .chunks_exact(2)
        .map(|u| u16::from_le_bytes([u[0], u[1]]));
    for c in char::decode_utf16(units) {
        s.push(c.unwrap());
    }
    s
}

mod heapless_string {
    /// A small string for test answers (the crate has no allocator).
    pub struct S {
        bytes: [u8; 64],
        len: usize,
    }

    impl Default for S {
        fn default() -> Self {
            S {
                bytes: [0; 64],
                len: 0,
            }
        }
    }

    impl S {
        pub fn push(&mut self, c: char) {
            self.len += c.encode_utf8(&mut self.bytes[self.len..]).len();
        }

        pub fn as_str(&self) -> &str {
            core::str::from_utf8(&self.bytes[..self.len]).unwrap()
        }
    }
}

#[test]
fn negotiation_speaks_the_kvp_versions_linux_speaks() {
    for (offered, want) in [
        ((4u16, 0u16), IcVersion::new(4, 0)),
        ((3, 0), IcVersion::new(3, 0)),
        ((1, 0), IcVersion::new(1, 0)),
    ] {
        let mut m = request(0, 0, 16);
        m[H + 4..H + 6].copy_from_slice(&MsgType::NEGOTIATE.0.to_le_bytes());
        let b = &mut m[BODY..];
        b[0..2].copy_from_slice(&1u16.to_le_bytes());
        b[2..4].copy_from_slice(&1u16.to_le_bytes());
        b[8..10].copy_from_slice(&3u16.to_le_bytes());
        b[12..14].copy_from_slice(&offered.0.to_le_bytes());
        b[14..16].copy_from_slice(&offered.1.to_le_bytes());
        let mut store = KvpStore::<1>::new();
        let (_, outcome) = run(&mut m, &mut store);
        assert_eq!(
            outcome,
            Outcome::Negotiated(negotiate::Outcome::Agreed {
                framework: IcVersion::new(3, 0),
                service: want
            })
        );
    }
    // A service version KVP does not have (5.0).
    let mut m = request(0, 0, 16);
    m[H + 4..H + 6].copy_from_slice(&MsgType::NEGOTIATE.0.to_le_bytes());
    let b = &mut m[BODY..];
    b[0..4].copy_from_slice(&[1, 0, 1, 0]);
    b[8..10].copy_from_slice(&3u16.to_le_bytes());
    b[12..14].copy_from_slice(&5u16.to_le_bytes());
    let (_, outcome) = run(&mut m, &mut KvpStore::<1>::new());
    assert_eq!(
        outcome,
        Outcome::Negotiated(negotiate::Outcome::NoCommonVersion)
    );
}

#[test]
fn a_set_then_get_round_trips_and_a_second_set_replaces() {
    let mut store = KvpStore::<4>::new();
    let mut m = set(0, "Color", "blue");
    assert_eq!(run(&mut m, &mut store), (0, done(Op::SET, Pool::EXTERNAL)));
    assert_eq!(store.len(), 1);
    let mut m = get(0, "Color");
    // Whatever the host left in the value field is overwritten.
    m[EX + VALUE..EX + VALUE + MAX_VALUE_SIZE].fill(0xcc);
    assert_eq!(run(&mut m, &mut store), (0, done(Op::GET, Pool::EXTERNAL)));
    assert_eq!(u32_at(&m, EX), ValueType::STRING.0);
    assert_eq!(u32_at(&m, EX + 8), 10);
    assert_eq!(string_at(&m, EX + VALUE, 10).as_str(), "blue\0");
    // The value field past the value is zero.
    assert!(
        m[EX + VALUE + 10..EX + VALUE + MAX_VALUE_SIZE]
            .iter()
            .all(|&b| b == 0)
    );
    // A second SET of the key replaces its value; it is still one pair.
    let mut m = set(0, "Color", "green");
    assert_eq!(run(&mut m, &mut store).0, 0);
    assert_eq!(store.len(), 1);
    let mut m = get(0, "Color");
    run(&mut m, &mut store);
    assert_eq!(string_at(&m, EX + VALUE, 12).as_str(), "green\0");
    // The PD reads it by name.
    let v = store.get_str(Pool::EXTERNAL, "Color").unwrap();
    assert!(v.chars().eq("green".chars()));
    assert_eq!(store.get_str(Pool::GUEST, "Color"), None);
}

#[test]
fn numbers_are_stored_with_their_type() {
    let mut store = KvpStore::<4>::new();
    let mut m = request(Op::SET.0, 1, GET_SET_BODY);
    put_u32(&mut m, EX, ValueType::U32.0);
    let k = utf16(&mut m, EX + KEY, "Count");
    put_u32(&mut m, EX + 4, k);
    // The number is read from the field whatever the value size says (Linux does the same).
    put_u32(&mut m, EX + 8, 0);
    put_u32(&mut m, EX + VALUE, 0xdead_beef);
    assert_eq!(run(&mut m, &mut store).0, 0);
    let mut m = request(Op::SET.0, 1, GET_SET_BODY);
    put_u32(&mut m, EX, ValueType::U64.0);
    let k = utf16(&mut m, EX + KEY, "Big");
    put_u32(&mut m, EX + 4, k);
    put_u32(&mut m, EX + 8, 8);
    m[EX + VALUE..EX + VALUE + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(run(&mut m, &mut store).0, 0);
    assert_eq!(
        store.get_str(Pool::GUEST, "Count").unwrap().number(),
        Some(0xdead_beef)
    );
    let mut m = get(1, "Big");
    run(&mut m, &mut store);
    assert_eq!(u32_at(&m, EX), ValueType::U64.0);
    assert_eq!(u32_at(&m, EX + 8), 8);
    assert_eq!(&m[EX + VALUE..EX + VALUE + 8], &(1u64 << 40).to_le_bytes());
    // A type that is neither string nor number is refused.
    let mut m = set(1, "Odd", "x");
    put_u32(&mut m, EX, 3);
    assert_eq!(
        run(&mut m, &mut store),
        (E_FAIL, refused(Op::SET, KvpError::UnknownValueType(3)))
    );
    assert_eq!(store.len(), 2);
}

#[test]
fn get_and_delete_of_an_absent_key_answer_no_more_items() {
    let mut store = KvpStore::<4>::new();
    let mut m = get(0, "Nothing");
    let before = m;
    assert_eq!(
        run(&mut m, &mut store),
        (S_CONT, refused(Op::GET, KvpError::NotFound))
    );
    // The body is left as it was.
    assert_eq!(&m[BODY..], &before[BODY..]);
    let mut m = delete(0, "Nothing");
    assert_eq!(
        run(&mut m, &mut store),
        (S_CONT, refused(Op::DELETE, KvpError::NotFound))
    );
}

#[test]
fn delete_removes_the_pair_and_the_rest_keep_their_order() {
    let mut store = KvpStore::<4>::new();
    for k in ["A", "B", "C"] {
        assert_eq!(run(&mut set(1, k, k), &mut store).0, 0);
    }
    let mut m = delete(1, "B");
    assert_eq!(run(&mut m, &mut store), (0, done(Op::DELETE, Pool::GUEST)));
    assert_eq!(store.len(), 2);
    assert_eq!(run(&mut get(1, "B"), &mut store).0, S_CONT);
    for (i, want) in ["A", "C"].into_iter().enumerate() {
        let mut m = enumerate(1, i as u32);
        assert_eq!(run(&mut m, &mut store).0, 0);
        assert_eq!(u32_at(&m, EX_ENUM + 4), 4);
        let key = string_at(&m, EX_ENUM + KEY, 4);
        assert_eq!(key.as_str().trim_end_matches('\0'), want);
    }
    assert_eq!(run(&mut enumerate(1, 2), &mut store).0, S_CONT);
}

#[test]
fn each_pool_holds_its_own_pairs_and_enumerates_to_no_more_items() {
    let mut store = KvpStore::<8>::new();
    for pool in [0u8, 1, 3, 4] {
        let key = ["Ext", "Guest", "", "AutoExt", "AutoInt"][usize::from(pool)];
        assert_eq!(run(&mut set(pool, key, "v"), &mut store).0, 0);
    }
    // The same key in two pools is two pairs.
    assert_eq!(run(&mut set(3, "Ext", "w"), &mut store).0, 0);
    assert_eq!(store.len(), 5);
    assert_eq!(run(&mut get(1, "Ext"), &mut store).0, S_CONT);
    let mut m = get(3, "Ext");
    run(&mut m, &mut store);
    assert_eq!(string_at(&m, EX + VALUE, 4).as_str(), "w\0");
    for (pool, keys) in [
        (0u8, &["Ext"][..]),
        (1, &["Guest"][..]),
        (3, &["AutoExt", "Ext"][..]),
        (4, &["AutoInt"][..]),
    ] {
        for (i, want) in keys.iter().enumerate() {
            let mut m = enumerate(pool, i as u32);
            assert_eq!(
                run(&mut m, &mut store),
                (0, done(Op::ENUMERATE, Pool(pool))),
                "pool {pool} index {i}"
            );
            let ksize = u32_at(&m, EX_ENUM + 4);
            assert_eq!(
                ksize as usize,
                want.len() * 2 + 2,
                "the size counts the NUL"
            );
            let key = string_at(&m, EX_ENUM + KEY, ksize);
            assert_eq!(key.as_str().trim_end_matches('\0'), *want);
            assert_eq!(u32_at(&m, EX_ENUM), ValueType::STRING.0);
        }
        let end = keys.len() as u32;
        assert_eq!(
            run(&mut enumerate(pool, end), &mut store),
            (S_CONT, refused(Op::ENUMERATE, KvpError::NoMoreItems(end)))
        );
    }
}

#[test]
fn the_auto_pool_enumerates_the_guests_facts_in_linuxs_order() {
    let mut store = KvpStore::<1>::new();
    let values = [
        "sel4-guest.example.org",
        "3.1",
        "10.0.0.2;",
        "",
        "5.0.0",
        "seL4",
        "5",
        "0",
        "5.0.0",
        "x86_64",
    ];
    for (i, (key, value)) in AUTO_KEYS.iter().zip(values).enumerate() {
        let mut m = enumerate(2, i as u32);
        assert_eq!(
            run(&mut m, &mut store),
            (0, done(Op::ENUMERATE, Pool::AUTO))
        );
        assert_eq!(u32_at(&m, BODY + 4), i as u32, "the index is echoed");
        let ksize = u32_at(&m, EX_ENUM + 4);
        let vsize = u32_at(&m, EX_ENUM + 8);
        assert_eq!(ksize as usize, key.len() * 2 + 2);
        assert_eq!(vsize as usize, value.len() * 2 + 2);
        assert_eq!(
            string_at(&m, EX_ENUM + KEY, ksize - 2).as_str(),
            *key,
            "index {i}"
        );
        assert_eq!(string_at(&m, EX_ENUM + VALUE, vsize - 2).as_str(), value);
    }
    assert_eq!(
        AUTO_KEYS[0..4],
        [
            "FullyQualifiedDomainName",
            "IntegrationServicesVersion",
            "NetworkAddressIPv4",
            "NetworkAddressIPv6"
        ]
    );
    assert_eq!(
        run(&mut enumerate(2, 10), &mut store),
        (S_CONT, refused(Op::ENUMERATE, KvpError::NoMoreItems(10)))
    );
    assert_eq!(run(&mut enumerate(2, u32::MAX), &mut store).0, S_CONT);
}

#[test]
fn the_os_name_answer_is_exactly_these_bytes() {
    let mut m = enumerate(2, 5);
    // Host bytes in the fields are overwritten, not left behind.
    m[EX_ENUM + KEY..EX_ENUM + KEY + MAX_KEY_SIZE].fill(0xaa);
    m[EX_ENUM + VALUE..EX_ENUM + VALUE + MAX_VALUE_SIZE].fill(0xbb);
    let (len, outcome) = kvp::answer(&mut m, &mut KvpStore::<1>::new(), &guest()).unwrap();
    assert_eq!(outcome, done(Op::ENUMERATE, Pool::AUTO));
    assert_eq!(len, BODY + ENUMERATE_BODY);
    let mut want = [0u8; ENUMERATE_BODY];
    want[..12].copy_from_slice(&[3, 2, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0]);
    want[12..20].copy_from_slice(&[14, 0, 0, 0, 10, 0, 0, 0]);
    want[20..34].copy_from_slice(b"O\0S\0N\0a\0m\0e\0\0\0");
    want[20 + MAX_KEY_SIZE..20 + MAX_KEY_SIZE + 10].copy_from_slice(b"s\0e\0L\x004\0\0\0");
    assert_eq!(&m[BODY..BODY + ENUMERATE_BODY], &want[..]);
    // And the IC header: response, transaction 9, status 0.
    assert_eq!(
        &m[H + 10..H + 18],
        &[
            (ENUMERATE_BODY & 0xff) as u8,
            (ENUMERATE_BODY >> 8) as u8,
            0,
            0,
            0,
            0,
            9,
            FLAG_TRANSACTION | FLAG_RESPONSE
        ]
    );
}

#[test]
fn a_guest_value_longer_than_the_field_is_cut_at_a_whole_character() {
    let long = ['é'; 1100];
    let mut text = [0u8; 2200];
    let mut n = 0;
    for c in long {
        n += c.encode_utf8(&mut text[n..]).len();
    }
    let name = core::str::from_utf8(&text[..n]).unwrap();
    let info = GuestInfo {
        os_name: name,
        ..guest()
    };
    let mut m = enumerate(2, 5);
    kvp::answer(&mut m, &mut KvpStore::<1>::new(), &info).unwrap();
    // 1023 characters and the terminator fill the 2048-byte field.
    assert_eq!(u32_at(&m, EX_ENUM + 8) as usize, MAX_VALUE_SIZE);
    assert_eq!(
        &m[EX_ENUM + VALUE + 2044..EX_ENUM + VALUE + 2048],
        &[0xe9, 0, 0, 0]
    );
}

#[test]
fn an_oversize_key_is_refused_and_nothing_is_stored() {
    let mut store = KvpStore::<4>::new();
    for size in [MAX_KEY_SIZE as u32 + 2, u32::MAX - 1] {
        let mut m = set(0, "K", "v");
        put_u32(&mut m, EX + 4, size);
        assert_eq!(
            run(&mut m, &mut store),
            (E_FAIL, refused(Op::SET, KvpError::KeyTooLong(size)))
        );
        let mut m = get(0, "K");
        put_u32(&mut m, EX + 4, size);
        assert_eq!(run(&mut m, &mut store).0, E_FAIL);
        let mut m = delete(0, "K");
        put_u32(&mut m, BODY + 4, size);
        assert_eq!(
            run(&mut m, &mut store),
            (E_FAIL, refused(Op::DELETE, KvpError::KeyTooLong(size)))
        );
    }
    assert!(store.is_empty());
    // A key filling the whole field (256 units, no terminator) is taken.
    let mut m = set(0, "K", "v");
    m[EX + KEY..EX + KEY + MAX_KEY_SIZE].fill(b'k');
    put_u32(&mut m, EX + 4, MAX_KEY_SIZE as u32);
    assert_eq!(run(&mut m, &mut store).0, 0);
    // It enumerates back with the size of the field (no room for a terminator).
    let mut m = enumerate(0, 0);
    run(&mut m, &mut store);
    assert_eq!(u32_at(&m, EX_ENUM + 4) as usize, MAX_KEY_SIZE);
    assert!(
        m[EX_ENUM + KEY..EX_ENUM + KEY + MAX_KEY_SIZE]
            .iter()
            .all(|&b| b == b'k')
    );
}

#[test]
fn an_oversize_value_is_refused_and_nothing_is_stored() {
    let mut store = KvpStore::<4>::new();
    assert_eq!(run(&mut set(0, "K", "old"), &mut store).0, 0);
    let size = MAX_VALUE_SIZE as u32 + 2;
    let mut m = set(0, "K", "v");
    put_u32(&mut m, EX + 8, size);
    assert_eq!(
        run(&mut m, &mut store),
        (E_FAIL, refused(Op::SET, KvpError::ValueTooLong(size)))
    );
    assert!(
        store
            .get_str(Pool::EXTERNAL, "K")
            .unwrap()
            .chars()
            .eq("old".chars())
    );
    // A value filling the field is taken.
    let mut m = set(0, "K", "v");
    m[EX + VALUE..EX + VALUE + MAX_VALUE_SIZE].fill(b'v');
    put_u32(&mut m, EX + 8, MAX_VALUE_SIZE as u32);
    assert_eq!(run(&mut m, &mut store).0, 0);
    assert_eq!(
        store.get_str(Pool::EXTERNAL, "K").unwrap().bytes.len(),
        MAX_VALUE_SIZE
    );
}

#[test]
fn odd_utf16_sizes_and_empty_keys_are_refused() {
    let mut store = KvpStore::<4>::new();
    let mut m = set(0, "Key", "value");
    put_u32(&mut m, EX + 4, 7);
    assert_eq!(
        run(&mut m, &mut store),
        (E_FAIL, refused(Op::SET, KvpError::OddKey(7)))
    );
    let mut m = set(0, "Key", "value");
    put_u32(&mut m, EX + 8, 11);
    assert_eq!(
        kvp::decode(&m[BODY..BODY + GET_SET_BODY]),
        Err(KvpError::OddValue(11))
    );
    assert_eq!(
        run(&mut m, &mut store),
        (E_FAIL, refused(Op::SET, KvpError::OddValue(11)))
    );
    let mut m = delete(0, "Key");
    put_u32(&mut m, BODY + 4, 3);
    assert_eq!(run(&mut m, &mut store).0, E_FAIL);
    // A key of nothing but its terminator.
    let mut m = set(0, "", "value");
    assert_eq!(
        run(&mut m, &mut store),
        (E_FAIL, refused(Op::SET, KvpError::EmptyKey))
    );
    assert!(store.is_empty());
}

#[test]
fn a_full_store_refuses_a_new_key_and_evicts_nothing() {
    let mut store = KvpStore::<2>::new();
    assert_eq!(run(&mut set(0, "A", "1"), &mut store).0, 0);
    assert_eq!(run(&mut set(1, "B", "2"), &mut store).0, 0);
    let mut m = set(0, "C", "3");
    assert_eq!(
        run(&mut m, &mut store),
        (E_FAIL, refused(Op::SET, KvpError::StoreFull))
    );
    assert_eq!(store.len(), 2);
    assert!(store.get_str(Pool::EXTERNAL, "A").is_some());
    assert!(store.get_str(Pool::GUEST, "B").is_some());
    assert!(store.get_str(Pool::EXTERNAL, "C").is_none());
    // Replacing a key already there still works; a delete makes room.
    assert_eq!(run(&mut set(0, "A", "9"), &mut store).0, 0);
    assert_eq!(run(&mut delete(1, "B"), &mut store).0, 0);
    assert_eq!(run(&mut set(0, "C", "3"), &mut store).0, 0);
    assert_eq!(store.len(), store.capacity());
}

#[test]
fn unknown_operations_and_pools_are_refused() {
    let mut store = KvpStore::<2>::new();
    let mut m = request(6, 0, GET_SET_BODY);
    assert_eq!(
        run(&mut m, &mut store),
        (ERROR_NOT_SUPPORTED, refused(Op(6), KvpError::UnknownOp(6)))
    );
    let mut m = request(200, 0, 4);
    assert_eq!(run(&mut m, &mut store).0, ERROR_NOT_SUPPORTED);
    for op in [0u8, 1, 2, 3] {
        let mut m = set(5, "K", "v");
        m[BODY] = op;
        m[H + 10..H + 12].copy_from_slice(&(ENUMERATE_BODY as u16).to_le_bytes());
        assert_eq!(
            run(&mut m, &mut store),
            (E_FAIL, refused(Op(op), KvpError::UnknownPool(5))),
            "op {op}"
        );
    }
    assert!(store.is_empty());
}

#[test]
fn ip_injection_is_answered_not_supported_after_its_size_is_checked() {
    let mut store = KvpStore::<2>::new();
    for op in [Op::GET_IP_INFO, Op::SET_IP_INFO] {
        for size in [IP_INFO_BODY, MAX_BODY] {
            let mut m = request(op.0, 0, size);
            assert_eq!(
                run(&mut m, &mut store),
                (ERROR_NOT_SUPPORTED, refused(op, KvpError::NotSupported(op)))
            );
        }
        let mut m = request(op.0, 0, IP_INFO_BODY - 1);
        assert_eq!(
            kvp::answer(&mut m, &mut store, &guest()),
            Err(IcError::BadBody {
                ty: MsgType::KVP,
                size: IP_INFO_BODY as u16 - 1
            })
        );
    }
}

#[test]
fn a_body_too_short_for_its_operation_is_not_answered() {
    let mut store = KvpStore::<2>::new();
    for (op, needed) in [
        (Op::GET, GET_SET_BODY),
        (Op::SET, GET_SET_BODY),
        (Op::DELETE, DELETE_BODY),
        (Op::ENUMERATE, ENUMERATE_BODY),
    ] {
        let mut m = set(0, "K", "v");
        m[BODY] = op.0;
        m[H + 10..H + 12].copy_from_slice(&(needed as u16 - 1).to_le_bytes());
        let before = m;
        assert_eq!(
            kvp::answer(&mut m, &mut store, &guest()),
            Err(IcError::BadBody {
                ty: MsgType::KVP,
                size: needed as u16 - 1
            }),
            "op {}",
            op.0
        );
        assert_eq!(m, before, "nothing is written");
        assert_eq!(
            kvp::decode(&before[BODY..BODY + needed - 1]),
            Err(KvpError::Short {
                needed,
                got: needed - 1
            })
        );
    }
    // Shorter than the KVP header.
    let mut m = request(0, 0, 3);
    assert!(matches!(
        kvp::answer(&mut m, &mut store, &guest()),
        Err(IcError::BadBody { .. })
    ));
    assert!(store.is_empty());
}

#[test]
fn a_truncated_message_and_other_types_are_errors() {
    let mut store = KvpStore::<2>::new();
    // The body size says more than the packet holds.
    let mut m = set(0, "K", "v");
    assert_eq!(
        kvp::answer(&mut m[..BODY + 100], &mut store, &guest()),
        Err(IcError::Truncated {
            needed: BODY + GET_SET_BODY,
            got: BODY + 100
        })
    );
    assert!(matches!(
        kvp::answer(&mut m[..20], &mut store, &guest()),
        Err(IcError::Truncated { .. })
    ));
    // A response, not a request.
    let mut r = set(0, "K", "v");
    r[H + 17] = FLAG_TRANSACTION | FLAG_RESPONSE;
    assert!(matches!(
        kvp::answer(&mut r, &mut store, &guest()),
        Err(IcError::NotARequest { .. })
    ));
    // A heartbeat on the KVP channel.
    let mut hb = set(0, "K", "v");
    hb[H + 4..H + 6].copy_from_slice(&MsgType::HEARTBEAT.0.to_le_bytes());
    assert_eq!(
        kvp::answer(&mut hb, &mut store, &guest()),
        Err(IcError::Unexpected(MsgType::HEARTBEAT))
    );
    assert!(store.is_empty());
}

#[test]
fn the_store_api_checks_what_the_pd_gives_it() {
    let mut store = KvpStore::<2>::new();
    let key = [b'K', 0, 0, 0];
    assert_eq!(
        store.set(Pool(7), ValueType::STRING, &key, &[]),
        Err(KvpError::UnknownPool(7))
    );
    assert_eq!(
        store.set(Pool::GUEST, ValueType::U32, &key, &[1, 2]),
        Err(KvpError::NumberSize(2))
    );
    assert_eq!(
        store.set(
            Pool::GUEST,
            ValueType::STRING,
            &key,
            &[0; MAX_VALUE_SIZE + 2]
        ),
        Err(KvpError::ValueTooLong(MAX_VALUE_SIZE as u32 + 2))
    );
    assert!(store.is_empty());
    // A key with or without its terminator is the same key.
    store
        .set(Pool::GUEST, ValueType::STRING, &key, &[b'x', 0])
        .unwrap();
    assert!(store.get(Pool::GUEST, &key[..2]).is_some());
    assert_eq!(store.nth(Pool::GUEST, 0).unwrap().0, &key[..2]);
    assert_eq!(store.delete(Pool::EXTERNAL, &key), Err(KvpError::NotFound));
    store.delete(Pool::GUEST, &key).unwrap();
    assert!(store.is_empty());
    // Every refusal says what it was.
    let mut line = heapless_string::S::default();
    for c in "no pair at index 3".chars() {
        line.push(c);
    }
    let mut shown = [0u8; 64];
    let mut w = Writer(&mut shown, 0);
    core::fmt::write(&mut w, format_args!("{}", KvpError::NoMoreItems(3))).unwrap();
    let n = w.1;
    assert_eq!(core::str::from_utf8(&shown[..n]).unwrap(), line.as_str());
}

struct Writer<'a>(&'a mut [u8], usize);

impl core::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0[self.1..self.1 + s.len()].copy_from_slice(s.as_bytes());
        self.1 += s.len();
        Ok(())
    }
}

#[test]
fn the_service_runs_on_an_endpoint_after_the_negotiation() {
    use crate::service::{Endpoint, Refused, Step};
    let mut ep = Endpoint::new(kvp::Kvp::<2>::new(guest()));
    // A request before the negotiation gets no answer.
    let mut m = set(0, "K", "v");
    assert_eq!(ep.on_packet(&mut m), Err(Refused::NotNegotiated));
    let mut n = request(0, 0, 16);
    n[H + 4..H + 6].copy_from_slice(&MsgType::NEGOTIATE.0.to_le_bytes());
    n[BODY..BODY + 4].copy_from_slice(&[1, 0, 1, 0]);
    n[BODY + 8..BODY + 10].copy_from_slice(&3u16.to_le_bytes());
    n[BODY + 12..BODY + 14].copy_from_slice(&4u16.to_le_bytes());
    assert!(matches!(
        ep.on_packet(&mut n),
        Ok(Step::Negotiated {
            outcome: negotiate::Outcome::Agreed { .. },
            ..
        })
    ));
    let mut m = set(0, "K", "v");
    assert_eq!(
        ep.on_packet(&mut m),
        Ok(Step::Answered {
            len: BODY + GET_SET_BODY,
            event: Event::Done(Op::SET, Pool::EXTERNAL)
        })
    );
    let mut m = enumerate(2, 42);
    assert_eq!(
        ep.on_packet(&mut m),
        Ok(Step::Answered {
            len: BODY + ENUMERATE_BODY,
            event: Event::Refused(Op::ENUMERATE, KvpError::NoMoreItems(42))
        })
    );
    assert_eq!(status(&m), S_CONT);
    assert_eq!(ep.service.refused, 1);
    assert!(ep.service.store.get_str(Pool::EXTERNAL, "K").is_some());
}
