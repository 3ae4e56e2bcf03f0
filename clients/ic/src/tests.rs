use crate::header::{self, BODY, FLAG_REQUEST, FLAG_RESPONSE, FLAG_TRANSACTION, IcError};
use crate::header::{IcVersion, MsgType};
use crate::heartbeat;
use crate::negotiate::{self, Outcome};
use crate::shutdown::{self, Request};
use crate::timesync::{self, Clock, Kind, UNIX_EPOCH_FILETIME};

/// A host request of type `ty` with `body`, transaction 7.
fn request(ty: MsgType, body: &[u8]) -> [u8; 128] {
    let mut m = [0u8; 128];
    m[0..4].copy_from_slice(&2u32.to_le_bytes());
    m[4..8].copy_from_slice(&1u32.to_le_bytes());
    let h = &mut m[8..];
    h[0..2].copy_from_slice(&3u16.to_le_bytes());
    h[4..6].copy_from_slice(&ty.0.to_le_bytes());
    h[6..8].copy_from_slice(&3u16.to_le_bytes());
    h[10..12].copy_from_slice(&(body.len() as u16).to_le_bytes());
    h[16] = 7;
    h[17] = FLAG_TRANSACTION | FLAG_REQUEST;
    m[BODY..BODY + body.len()].copy_from_slice(body);
    m
}

/// A negotiation body listing `fw` then `svc`.
fn negotiation(fw: &[(u16, u16)], svc: &[(u16, u16)]) -> heapless_body::Body {
    let mut b = heapless_body::Body::default();
    b.push(&(fw.len() as u16).to_le_bytes());
    b.push(&(svc.len() as u16).to_le_bytes());
    b.push(&[0; 4]);
    for (maj, min) in fw.iter().chain(svc) {
        b.push(&maj.to_le_bytes());
        b.push(&min.to_le_bytes());
    }
    b
}

mod heapless_body {
    /// A small byte buffer for test bodies.
    pub struct Body {
        pub bytes: [u8; 64],
        pub len: usize,
    }

    impl Default for Body {
        fn default() -> Self {
            Body {
                bytes: [0; 64],
                len: 0,
            }
        }
    }

    impl Body {
        pub fn push(&mut self, b: &[u8]) {
            self.bytes[self.len..self.len + b.len()].copy_from_slice(b);
            self.len += b.len();
        }

        pub fn as_slice(&self) -> &[u8] {
            &self.bytes[..self.len]
        }
    }
}

fn versions_of(answer: &[u8]) -> (u16, u16, IcVersion, IcVersion) {
    let b = &answer[BODY..];
    let v = |at: usize| {
        IcVersion::new(
            u16::from_le_bytes([b[at], b[at + 1]]),
            u16::from_le_bytes([b[at + 2], b[at + 3]]),
        )
    };
    (
        u16::from_le_bytes([b[0], b[1]]),
        u16::from_le_bytes([b[2], b[3]]),
        v(8),
        v(12),
    )
}

#[test]
fn negotiation_picks_the_highest_framework_and_service_versions_both_speak() {
    // The host offers frameworks 1.0 and 3.0 and heartbeat 1.0, 3.0 and 4.0 (unknown to us).
    let body = negotiation(&[(1, 0), (3, 0)], &[(1, 0), (3, 0), (4, 0)]);
    let mut m = request(MsgType::NEGOTIATE, body.as_slice());
    let (len, outcome) = negotiate::answer(&mut m, &heartbeat::VERSIONS).unwrap();
    assert_eq!(
        outcome,
        Outcome::Agreed {
            framework: IcVersion::new(3, 0),
            service: IcVersion::new(3, 0)
        }
    );
    assert_eq!(len, BODY + body.len);
    assert_eq!(
        versions_of(&m),
        (1, 1, IcVersion::new(3, 0), IcVersion::new(3, 0))
    );
    // The header says response, same transaction, status 0.
    assert_eq!(m[8 + 17], FLAG_TRANSACTION | FLAG_RESPONSE);
    assert_eq!(m[8 + 16], 7);
    assert_eq!(&m[8 + 12..8 + 16], &[0; 4]);
}

#[test]
fn an_old_host_gets_the_old_versions() {
    let body = negotiation(&[(1, 0)], &[(1, 0)]);
    let mut m = request(MsgType::NEGOTIATE, body.as_slice());
    let (_, outcome) = negotiate::answer(&mut m, &heartbeat::VERSIONS).unwrap();
    assert_eq!(
        outcome,
        Outcome::Agreed {
            framework: IcVersion::new(1, 0),
            service: IcVersion::new(1, 0)
        }
    );
}

#[test]
fn no_common_version_answers_zero_counts() {
    let body = negotiation(&[(3, 0)], &[(9, 9)]);
    let mut m = request(MsgType::NEGOTIATE, body.as_slice());
    let (_, outcome) = negotiate::answer(&mut m, &heartbeat::VERSIONS).unwrap();
    assert_eq!(outcome, Outcome::NoCommonVersion);
    let (fw, svc, _, _) = versions_of(&m);
    assert_eq!((fw, svc), (0, 0));
}

#[test]
fn hostile_negotiations_are_refused() {
    // Counts that promise more versions than the body holds.
    let mut body = negotiation(&[(3, 0)], &[(3, 0)]);
    body.bytes[0] = 200;
    let mut m = request(MsgType::NEGOTIATE, body.as_slice());
    assert!(matches!(
        negotiate::answer(&mut m, &heartbeat::VERSIONS),
        Err(IcError::BadBody { .. })
    ));
    // A body size beyond the message.
    let mut m = request(
        MsgType::NEGOTIATE,
        negotiation(&[(3, 0)], &[(3, 0)]).as_slice(),
    );
    m[8 + 10..8 + 12].copy_from_slice(&500u16.to_le_bytes());
    assert_eq!(
        negotiate::answer(&mut m, &heartbeat::VERSIONS),
        Err(IcError::Truncated {
            needed: BODY + 500,
            got: 128
        })
    );
    // Shorter than the headers; a response instead of a request; another type.
    let m = request(MsgType::NEGOTIATE, &[]);
    assert!(matches!(
        header::request(&m[..20]),
        Err(IcError::Truncated {
            needed: 28,
            got: 20
        })
    ));
    let mut resp = request(MsgType::NEGOTIATE, &[0; 8]);
    resp[8 + 17] = FLAG_TRANSACTION | FLAG_RESPONSE;
    assert!(matches!(
        negotiate::answer(&mut resp, &heartbeat::VERSIONS),
        Err(IcError::NotARequest { .. })
    ));
    let mut hb = request(MsgType::HEARTBEAT, &[0; 40]);
    assert_eq!(
        negotiate::answer(&mut hb, &heartbeat::VERSIONS),
        Err(IcError::Unexpected(MsgType::HEARTBEAT))
    );
}

#[test]
fn heartbeat_answers_the_sequence_number_plus_one() {
    let mut body = [0u8; 40];
    body[..8].copy_from_slice(&41u64.to_le_bytes());
    let mut m = request(MsgType::HEARTBEAT, &body);
    let (len, seq) = heartbeat::answer(&mut m).unwrap();
    assert_eq!((len, seq), (BODY + 40, 42));
    assert_eq!(&m[BODY..BODY + 8], &42u64.to_le_bytes());
    assert_eq!(m[8 + 17], FLAG_TRANSACTION | FLAG_RESPONSE);
    // The counter wraps rather than overflowing.
    let mut body = [0u8; 40];
    body[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut m = request(MsgType::HEARTBEAT, &body);
    assert_eq!(heartbeat::answer(&mut m).unwrap().1, 0);
    // A body too short for the sequence number.
    let mut m = request(MsgType::HEARTBEAT, &[0; 4]);
    assert!(matches!(
        heartbeat::answer(&mut m),
        Err(IcError::BadBody { .. })
    ));
}

/// A shutdown request with `flags`.
fn shutdown_request(flags: u32) -> [u8; 2200] {
    let mut m = [0u8; 2200];
    let small = request(MsgType::SHUTDOWN, &[]);
    m[..BODY].copy_from_slice(&small[..BODY]);
    m[8 + 10..8 + 12].copy_from_slice(&(shutdown::BODY_SIZE as u16).to_le_bytes());
    m[BODY + 8..BODY + 12].copy_from_slice(&flags.to_le_bytes());
    m
}

fn status_of(m: &[u8]) -> u32 {
    u32::from_le_bytes([m[8 + 12], m[8 + 13], m[8 + 14], m[8 + 15]])
}

#[test]
fn shutdown_and_restart_are_accepted_and_hibernate_is_refused() {
    for (flags, want, status) in [
        (0, Request::Shutdown { forced: false }, 0),
        (1, Request::Shutdown { forced: true }, 0),
        (2, Request::Restart { forced: false }, 0),
        (3, Request::Restart { forced: true }, 0),
        (4, Request::Hibernate, shutdown::E_FAIL),
        (5, Request::Hibernate, shutdown::E_FAIL),
        (8, Request::Unknown(8), shutdown::E_FAIL),
    ] {
        let mut m = shutdown_request(flags);
        let (len, got) = shutdown::answer(&mut m).unwrap();
        assert_eq!(got, want, "flags {flags}");
        assert_eq!(status_of(&m), status, "flags {flags}");
        assert_eq!(len, BODY + shutdown::BODY_SIZE);
        assert_eq!(m[8 + 17], FLAG_TRANSACTION | FLAG_RESPONSE);
    }
}

#[test]
fn a_shutdown_request_too_short_for_its_body_is_refused() {
    let mut m = shutdown_request(0);
    m[8 + 10..8 + 12].copy_from_slice(&12u16.to_le_bytes());
    assert!(matches!(
        shutdown::answer(&mut m),
        Err(IcError::BadBody { .. })
    ));
    // And one whose body is not all there.
    let mut m = shutdown_request(0);
    assert!(matches!(
        shutdown::answer(&mut m[..100]),
        Err(IcError::Truncated { .. })
    ));
}

/// 2026-01-01T00:00:00Z as a file time.
const NEW_YEAR: u64 = UNIX_EPOCH_FILETIME + 1_767_225_600 * 10_000_000;

#[test]
fn a_4_0_sample_carries_its_reference_and_the_clock_adds_the_travel_time() {
    let mut body = [0u8; 22];
    body[..8].copy_from_slice(&NEW_YEAR.to_le_bytes());
    body[8..16].copy_from_slice(&1_000u64.to_le_bytes());
    body[16] = 1;
    let mut m = request(MsgType::TIMESYNC, &body);
    let (len, s) = timesync::answer(&mut m, IcVersion::new(4, 0)).unwrap();
    assert_eq!(len, BODY + 22);
    assert_eq!((s.reference, s.kind), (Some(1_000), Kind::Sync));
    assert_eq!(s.unix_nanos(), Some(1_767_225_600 * 1_000_000_000));
    let mut clock = Clock::default();
    assert_eq!(clock.now(5_000), None);
    // Received 500 counts (50 us) after the host took it; read 1 s later.
    assert!(clock.update(&s, 1_500));
    assert_eq!(
        clock.now(1_500 + 10_000_000),
        Some(1_767_225_600 * 1_000_000_000 + 50_000 + 1_000_000_000)
    );
}

#[test]
fn an_old_sample_has_no_reference_and_hostile_times_are_ignored() {
    let mut body = [0u8; 25];
    body[..8].copy_from_slice(&NEW_YEAR.to_le_bytes());
    body[24] = 2;
    let mut m = request(MsgType::TIMESYNC, &body);
    let (_, s) = timesync::answer(&mut m, IcVersion::new(3, 0)).unwrap();
    assert_eq!((s.reference, s.kind), (None, Kind::Sample));
    // A time before 1970, or a reference from the counter's future, leaves the clock alone.
    let mut clock = Clock::default();
    let mut early = s;
    early.host_time = 5;
    assert!(!clock.update(&early, 10));
    let mut future = s;
    future.reference = Some(100);
    assert!(!clock.update(&future, 10));
    assert_eq!(clock.now(10), None);
    // A 4.0 body too short for its fields.
    let mut m = request(MsgType::TIMESYNC, &[0; 16]);
    assert!(matches!(
        timesync::answer(&mut m, IcVersion::new(4, 0)),
        Err(IcError::BadBody { .. })
    ));
}
