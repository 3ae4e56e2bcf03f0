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
