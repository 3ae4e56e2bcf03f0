use super::{Endpoint, Negotiation, Refused, Step};
use crate::header::{BODY, FLAG_REQUEST, FLAG_RESPONSE, FLAG_TRANSACTION, IcError};
use crate::header::{IcVersion, MsgType};
use crate::negotiate::Outcome;
use crate::services::{Heartbeat, TimeSync};
use crate::timesync::UNIX_EPOCH_FILETIME;

/// A host request of type `ty` with `body` (at most 64 bytes).
fn request(ty: MsgType, body: &[u8]) -> [u8; 128] {
    let mut m = [0u8; 128];
    let h = &mut m[8..];
    h[0..2].copy_from_slice(&3u16.to_le_bytes());
    h[4..6].copy_from_slice(&ty.0.to_le_bytes());
    h[6..8].copy_from_slice(&3u16.to_le_bytes());
    h[10..12].copy_from_slice(&(body.len() as u16).to_le_bytes());
    h[17] = FLAG_TRANSACTION | FLAG_REQUEST;
    m[BODY..BODY + body.len()].copy_from_slice(body);
    m
}

/// The negotiation Hyper-V sends a heartbeat channel: frameworks 1.0, 3.0; services 1.0, 3.0.
fn negotiation() -> [u8; 128] {
    let mut body = [0u8; 24];
    body[0..2].copy_from_slice(&2u16.to_le_bytes());
    body[2..4].copy_from_slice(&2u16.to_le_bytes());
    for (i, (maj, min)) in [(1u16, 0u16), (3, 0), (1, 0), (3, 0)].iter().enumerate() {
        body[8 + i * 4..10 + i * 4].copy_from_slice(&maj.to_le_bytes());
        body[10 + i * 4..12 + i * 4].copy_from_slice(&min.to_le_bytes());
    }
    request(MsgType::NEGOTIATE, &body)
}

fn heartbeat(seq: u64) -> [u8; 128] {
    let mut body = [0u8; 40];
    body[..8].copy_from_slice(&seq.to_le_bytes());
    request(MsgType::HEARTBEAT, &body)
}

#[test]
fn a_heartbeat_before_the_negotiation_gets_no_answer() {
    let mut ep = Endpoint::new(Heartbeat::default());
    let mut m = heartbeat(41);
    assert_eq!(ep.on_packet(&mut m), Err(Refused::NotNegotiated));
    // Nothing was answered in place: the request is as the host wrote it.
    assert_eq!(m, heartbeat(41));
    assert_eq!((ep.answered(), ep.refused()), (0, 1));
    assert_eq!(ep.service.last, None);
}

#[test]
fn negotiation_then_heartbeat_answers_sequence_plus_one() {
    let mut ep = Endpoint::new(Heartbeat::default());
    let mut m = negotiation();
    let agreed = Outcome::Agreed {
        framework: IcVersion::new(3, 0),
        service: IcVersion::new(3, 0),
    };
    assert_eq!(
        ep.on_packet(&mut m),
        Ok(Step::Negotiated {
            len: BODY + 24,
            outcome: agreed
        })
    );
    assert_eq!(
        ep.negotiation(),
        Negotiation::Agreed {
            framework: IcVersion::new(3, 0),
            service: IcVersion::new(3, 0)
        }
    );
    let mut m = heartbeat(41);
    assert_eq!(
        ep.on_packet(&mut m),
        Ok(Step::Answered {
            len: BODY + 40,
            event: 42
        })
    );
    assert_eq!(
        u64::from_le_bytes(m[BODY..BODY + 8].try_into().unwrap()),
        42
    );
    assert_eq!(m[8 + 17], FLAG_TRANSACTION | FLAG_RESPONSE);
    assert_eq!(ep.service.last, Some(42));
    assert_eq!((ep.answered(), ep.refused()), (2, 0));
}

#[test]
fn another_services_request_on_the_channel_is_refused() {
    let mut ep = Endpoint::new(Heartbeat::default());
    ep.on_packet(&mut negotiation()).unwrap();
    let mut m = request(MsgType::SHUTDOWN, &[0; 64]);
    assert_eq!(
        ep.on_packet(&mut m),
        Err(Refused::Message(IcError::Unexpected(MsgType::SHUTDOWN)))
    );
    assert_eq!(ep.refused(), 1);
}

#[test]
fn a_failed_negotiation_blocks_service_requests() {
    let mut ep = Endpoint::new(Heartbeat::default());
    // Framework 9.0 only: nothing in common.
    let mut body = [0u8; 16];
    body[0..2].copy_from_slice(&1u16.to_le_bytes());
    body[2..4].copy_from_slice(&1u16.to_le_bytes());
    body[8..10].copy_from_slice(&9u16.to_le_bytes());
    body[12..14].copy_from_slice(&3u16.to_le_bytes());
    let mut m = request(MsgType::NEGOTIATE, &body);
    assert!(matches!(
        ep.on_packet(&mut m),
        Ok(Step::Negotiated {
            outcome: Outcome::NoCommonVersion,
            ..
        })
    ));
    assert_eq!(ep.negotiation(), Negotiation::NoCommonVersion);
    assert_eq!(ep.on_packet(&mut heartbeat(1)), Err(Refused::NotNegotiated));
}

#[test]
fn a_time_sample_sets_the_clock_and_a_sample_before_1970_is_ignored() {
    let mut ep = Endpoint::new(TimeSync::default());
    let mut n = negotiation();
    // Offer time sync 4.0 in place of the second service version.
    n[BODY + 20..BODY + 22].copy_from_slice(&4u16.to_le_bytes());
    ep.on_packet(&mut n).unwrap();
    let sample = |host_time: u64, reference: u64| {
        let mut body = [0u8; 40];
        body[0..8].copy_from_slice(&host_time.to_le_bytes());
        body[8..16].copy_from_slice(&reference.to_le_bytes());
        body[16] = 2; // SAMPLE, 4.0 layout
        request(MsgType::TIMESYNC, &body)
    };
    ep.service.now = Some(1_000);
    let t = UNIX_EPOCH_FILETIME + 10_000_000; // 1970 + 1 s
    assert!(matches!(
        ep.on_packet(&mut sample(t, 900)),
        Ok(Step::Answered {
            event: (_, true),
            ..
        })
    ));
    // 100 counter units (10 us) travelled: the clock adds them.
    assert_eq!(ep.service.clock.now(1_000), Some(1_000_010_000));
    ep.service.now = Some(2_000);
    assert!(matches!(
        ep.on_packet(&mut sample(5, 2_000)),
        Ok(Step::Answered {
            event: (_, false),
            ..
        })
    ));
    assert_eq!(ep.service.ignored, 1);
    // The clock kept the good sample.
    assert_eq!(ep.service.clock.now(1_000), Some(1_000_010_000));
}

/// A deterministic stream of pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A host packet with a plausible header (so the services' own checks are reached) and random
/// type, versions, sizes, flags and body.
fn hostile_packet(rng: &mut Rng, buf: &mut [u8; 8192]) -> usize {
    for b in buf.iter_mut() {
        *b = rng.next() as u8;
    }
    let len = (rng.next() % 8192) as usize;
    if len >= BODY && !rng.next().is_multiple_of(4) {
        // A known type (0..=4) and the request flag most of the time; a body size near the
        // packet's length.
        buf[8 + 4..8 + 6].copy_from_slice(&((rng.next() % 5) as u16).to_le_bytes());
        let body = (len - BODY) as u64 + rng.next() % 16;
        buf[8 + 10..8 + 12].copy_from_slice(&(body.saturating_sub(8) as u16).to_le_bytes());
        buf[8 + 17] = FLAG_TRANSACTION | FLAG_REQUEST;
        if rng.next().is_multiple_of(3) {
            // A negotiation with small counts, so that some agree.
            buf[8 + 4] = 0;
            buf[BODY..BODY + 4].copy_from_slice(&[2, 0, 2, 0]);
            buf[BODY + 8..BODY + 24]
                .copy_from_slice(&[1, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0]);
        }
    }
    len
}

/// Feeds `packet`; whether a service request (not a negotiation) was answered.
fn feed<S: crate::service::Service>(ep: &mut Endpoint<S>, packet: &[u8]) -> bool {
    let mut copy = [0u8; 8192];
    let copy = &mut copy[..packet.len()];
    copy.copy_from_slice(packet);
    let before = ep.negotiation();
    match ep.on_packet(copy) {
        Ok(Step::Negotiated { len, .. }) => {
            assert!(len <= packet.len());
            false
        }
        Ok(Step::Answered { len, .. }) => {
            assert!(len <= packet.len());
            assert!(matches!(before, Negotiation::Agreed { .. }));
            true
        }
        Err(_) => false,
    }
}

#[test]
fn hostile_packets_never_panic_any_service_nor_answer_before_a_negotiation() {
    use crate::kvp::{Kvp, SEL4_GUEST};
    use crate::services::Shutdown;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut heartbeat = Endpoint::new(Heartbeat::default());
    let mut shutdown = Endpoint::new(Shutdown::default());
    let mut timesync = Endpoint::new(TimeSync::default());
    let mut kvp = Endpoint::new(Kvp::<2>::new(SEL4_GUEST));
    let mut buf = [0u8; 8192];
    let mut served = [0u32; 4];
    for _ in 0..3000 {
        let len = hostile_packet(&mut rng, &mut buf);
        let packet = &buf[..len];
        served[0] += u32::from(feed(&mut heartbeat, packet));
        served[1] += u32::from(feed(&mut shutdown, packet));
        served[2] += u32::from(feed(&mut timesync, packet));
        served[3] += u32::from(feed(&mut kvp, packet));
    }
    // The stream reached every service's own code, not only the header checks.
    assert!(served.iter().all(|&n| n > 0), "{served:?}");
}
