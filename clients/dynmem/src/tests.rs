use crate::msg::*;
use crate::{Startup, StartupError, StartupStep};

const CAPS: Capabilities = Capabilities {
    balloon: true,
    hot_add: false,
    hot_add_alignment: 0,
    hot_remove: false,
    min_pages: 256,
    max_page_number: 0x4_0000,
};

/// A host message of type `ty` with `body`.
fn host(ty: MsgType, body: &[u8]) -> [u8; 64] {
    let mut b = [0u8; 64];
    let size = (HEADER_SIZE + body.len()) as u16;
    b[0..2].copy_from_slice(&ty.0.to_le_bytes());
    b[2..4].copy_from_slice(&size.to_le_bytes());
    b[HEADER_SIZE..HEADER_SIZE + body.len()].copy_from_slice(body);
    b
}

fn version_of(req: &[u8]) -> (u32, u32) {
    let (h, body) = split(req).unwrap();
    assert_eq!(h.ty, MsgType::VERSION_REQUEST);
    assert_eq!(usize::from(h.size), 16);
    (
        u32::from_le_bytes(body[0..4].try_into().unwrap()),
        u32::from_le_bytes(body[4..8].try_into().unwrap()),
    )
}

#[test]
fn the_guest_proposes_versions_newest_first_and_reports_capabilities_after_acceptance() {
    let mut out = [0u8; MAX_GUEST_MESSAGE];
    let (mut s, n) = Startup::begin(&mut out, 1);
    assert_eq!(version_of(&out[..n]), (0x0002_0000, 0));
    // Refused: 1.0 next, then 0.3 marked as the last attempt.
    let refuse = host(MsgType::VERSION_RESPONSE, &[0; 8]);
    let StartupStep::Send(n) = s.on_message(&refuse, &mut out, 2, &CAPS).unwrap() else {
        panic!("no second proposal")
    };
    assert_eq!(version_of(&out[..n]), (0x0001_0000, 0));
    let StartupStep::Send(n) = s.on_message(&refuse, &mut out, 3, &CAPS).unwrap() else {
        panic!("no third proposal")
    };
    assert_eq!(version_of(&out[..n]), (0x0000_0003, 1));
    let accept = host(MsgType::VERSION_RESPONSE, &[1, 0, 0, 0, 0, 0, 0, 0]);
    let StartupStep::Send(n) = s.on_message(&accept, &mut out, 4, &CAPS).unwrap() else {
        panic!("no capabilities report")
    };
    let (h, body) = split(&out[..n]).unwrap();
    assert_eq!(
        (h.ty, h.size, h.trans_id),
        (MsgType::CAPABILITIES_REPORT, 32, 4)
    );
    assert_eq!(body[0], 1, "balloon bit only");
    assert_eq!(u64::from_le_bytes(body[8..16].try_into().unwrap()), 256);
    assert_eq!(
        s,
        Startup::Reporting {
            version: Version::V0_3
        }
    );
    let caps_ok = host(MsgType::CAPABILITIES_RESPONSE, &[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        s.on_message(&caps_ok, &mut out, 5, &CAPS),
        Ok(StartupStep::Ready)
    );
    assert!(matches!(s, Startup::Ready { version: Version::V0_3, host } if host.accepted));
}

#[test]
fn a_host_that_refuses_every_version_ends_the_negotiation() {
    let mut out = [0u8; MAX_GUEST_MESSAGE];
    let (mut s, _) = Startup::begin(&mut out, 1);
    let refuse = host(MsgType::VERSION_RESPONSE, &[0; 8]);
    for _ in 0..2 {
        s.on_message(&refuse, &mut out, 2, &CAPS).unwrap();
    }
    assert_eq!(
        s.on_message(&refuse, &mut out, 2, &CAPS),
        Err(StartupError::NoCommonVersion)
    );
    assert_eq!(s, Startup::Failed(StartupError::NoCommonVersion));
}

#[test]
fn refused_capabilities_stop_the_service() {
    let mut out = [0u8; MAX_GUEST_MESSAGE];
    let (mut s, _) = Startup::begin(&mut out, 1);
    let accept = host(MsgType::VERSION_RESPONSE, &[1; 8]);
    s.on_message(&accept, &mut out, 2, &CAPS).unwrap();
    let refuse = host(MsgType::CAPABILITIES_RESPONSE, &[0; 8]);
    assert_eq!(
        s.on_message(&refuse, &mut out, 3, &CAPS),
        Err(StartupError::CapabilitiesRefused)
    );
}

#[test]
fn hostile_messages_are_refused_without_panicking() {
    let mut out = [0u8; MAX_GUEST_MESSAGE];
    let accept = host(MsgType::VERSION_RESPONSE, &[1; 8]);
    // Truncated below the header; a size field beyond the packet; a size below the header; a
    // body too short for its type; the wrong type at each stage.
    let mut beyond = accept;
    beyond[2..4].copy_from_slice(&200u16.to_le_bytes());
    let mut tiny = accept;
    tiny[2..4].copy_from_slice(&4u16.to_le_bytes());
    let empty_body = host(MsgType::VERSION_RESPONSE, &[]);
    let wrong = host(MsgType::BALLOON_REQUEST, &[0; 8]);
    let cases: [(&[u8], StartupError); 5] = [
        (
            &accept[..5],
            StartupError::Decode(DecodeError::Truncated { needed: 8, got: 5 }),
        ),
        (
            &beyond,
            StartupError::Decode(DecodeError::Truncated {
                needed: 200,
                got: 64,
            }),
        ),
        (
            &tiny,
            StartupError::Decode(DecodeError::BadSize {
                ty: MsgType::VERSION_RESPONSE,
                size: 4,
            }),
        ),
        (
            &empty_body,
            StartupError::Decode(DecodeError::BadSize {
                ty: MsgType::VERSION_RESPONSE,
                size: 8,
            }),
        ),
        (
            &wrong,
            StartupError::Decode(DecodeError::Unexpected(MsgType::BALLOON_REQUEST)),
        ),
    ];
    for (packet, want) in cases {
        let (mut s, _) = Startup::begin(&mut out, 1);
        assert_eq!(s.on_message(packet, &mut out, 2, &CAPS), Err(want));
        assert_eq!(s, Startup::Failed(want));
    }
    // After the negotiation, a negotiation message is out of order.
    let (mut s, _) = Startup::begin(&mut out, 1);
    s.on_message(&accept, &mut out, 2, &CAPS).unwrap();
    let caps_ok = host(MsgType::CAPABILITIES_RESPONSE, &[1; 8]);
    s.on_message(&caps_ok, &mut out, 3, &CAPS).unwrap();
    assert_eq!(
        s.on_message(&accept, &mut out, 4, &CAPS),
        Err(StartupError::OutOfOrder(MsgType::VERSION_RESPONSE))
    );
}

#[test]
fn information_messages_are_ignored_during_the_negotiation() {
    let mut out = [0u8; MAX_GUEST_MESSAGE];
    let (mut s, _) = Startup::begin(&mut out, 1);
    let info = host(MsgType::INFO, &[0; 8]);
    assert_eq!(
        s.on_message(&info, &mut out, 2, &CAPS),
        Ok(StartupStep::Wait)
    );
    assert_eq!(s, Startup::Proposing { index: 0 });
}

#[test]
fn status_reports_carry_the_figures_and_zero_page_file_fields() {
    let mut out = [0xffu8; MAX_GUEST_MESSAGE];
    let n = status_report(
        &mut out,
        9,
        &Status {
            available: 1000,
            committed: 500,
        },
    );
    let (h, body) = split(&out[..n]).unwrap();
    assert_eq!(
        (h.ty, usize::from(h.size), h.trans_id),
        (MsgType::STATUS_REPORT, 48, 9)
    );
    assert_eq!(u64::from_le_bytes(body[0..8].try_into().unwrap()), 1000);
    assert_eq!(u64::from_le_bytes(body[8..16].try_into().unwrap()), 500);
    assert!(body[16..].iter().all(|&b| b == 0));
}

#[test]
fn the_class_is_the_balloon_guid_in_wire_order() {
    // 525074dc-8985-46e2-8057-a307dc18a502: the first three fields little-endian.
    assert_eq!(&CLASS[..4], &0x5250_74dcu32.to_le_bytes());
    assert_eq!(&CLASS[4..6], &0x8985u16.to_le_bytes());
    assert_eq!(&CLASS[6..8], &0x46e2u16.to_le_bytes());
    assert_eq!(
        &CLASS[8..],
        &[0x80, 0x57, 0xa3, 0x07, 0xdc, 0x18, 0xa5, 0x02]
    );
}

#[test]
fn a_balloon_request_is_read_and_can_be_answered_with_no_pages() {
    let mut req = host(MsgType::BALLOON_REQUEST, &[0x10, 0x27, 0, 0, 0, 0, 0, 0]);
    req[4..8].copy_from_slice(&77u32.to_le_bytes());
    let (h, pages) = balloon_request(&req).unwrap();
    assert_eq!((h.trans_id, pages), (77, 10_000));
    let mut out = [0xffu8; MAX_GUEST_MESSAGE];
    let n = balloon_response_none(&mut out, h.trans_id);
    let (h, body) = split(&out[..n]).unwrap();
    assert_eq!(
        (h.ty, usize::from(h.size), h.trans_id),
        (MsgType::BALLOON_RESPONSE, 16, 77)
    );
    assert!(body.iter().all(|&b| b == 0));
    // A request too short for its page count is refused.
    let short = host(MsgType::BALLOON_REQUEST, &[0x10, 0x27]);
    assert!(balloon_request(&short).is_err());
}
