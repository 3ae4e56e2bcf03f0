//! The client control protocol: the control page layout, status records and request/response
//! frames, checked against the layout documented in `vmbus_driver::control`.

use vmbus_driver::control::{
    ChannelHandle, ChannelStatus, ClientError, FrameError, MAX_SLOTS, OFFERS_DELIVERED_OFFSET,
    OFFERS_DELIVERED_SIZE, OfferInfo, REQUEST_AREA, REQUEST_OFFSET, RESPONSE_AREA, RESPONSE_OFFSET,
    Request, Response, STATUS_OFFSET, StatusRecord, decode_frame, encode_frame, status_offset,
};
use vmbus_driver::ids::{RelId, SlotId};

#[test]
fn areas_tile_the_control_page_without_overlap() {
    assert_eq!(REQUEST_OFFSET + REQUEST_AREA, RESPONSE_OFFSET);
    // The offers-delivered word sits between the response area and the status table.
    assert_eq!(RESPONSE_OFFSET + RESPONSE_AREA, OFFERS_DELIVERED_OFFSET);
    assert_eq!(OFFERS_DELIVERED_OFFSET, 2044);
    assert_eq!(
        OFFERS_DELIVERED_OFFSET + OFFERS_DELIVERED_SIZE,
        STATUS_OFFSET
    );
    assert_eq!(
        status_offset(SlotId(MAX_SLOTS as u16)),
        vmbus_driver::hv::PAGE_SIZE
    );
    assert_eq!(MAX_SLOTS, 128);
    assert_eq!(status_offset(SlotId(3)), 2048 + 48);
}

#[test]
fn status_record_layout_is_generation_state_event_count_reserved() {
    let rec = StatusRecord {
        generation: 0x0102_0304,
        state: ChannelStatus::Gone,
        event_count: 0xAABB_CCDD,
    };
    let b = rec.to_bytes();
    assert_eq!(
        b,
        [4, 3, 2, 1, 3, 0, 0, 0, 0xDD, 0xCC, 0xBB, 0xAA, 0, 0, 0, 0]
    );
    assert_eq!(StatusRecord::from_bytes(&b), Some(rec));
    for (v, s) in [
        (0, ChannelStatus::Free),
        (1, ChannelStatus::Opening),
        (2, ChannelStatus::Open),
        (3, ChannelStatus::Gone),
        (4, ChannelStatus::Failed),
    ] {
        assert_eq!(ChannelStatus::from_u32(v), Some(s));
    }
    let mut bad = b;
    bad[4] = 5;
    assert_eq!(StatusRecord::from_bytes(&bad), None);
}

#[test]
fn frames_round_trip_with_a_little_endian_length_word() {
    let handle = ChannelHandle {
        slot: SlotId(3),
        relid: RelId(700),
        generation: 9,
    };
    let requests = [
        Request::ListOffers { start: RelId(17) },
        Request::Open {
            relid: RelId(5),
            out_ring_pages: 2,
            in_ring_pages: 30,
        },
        Request::Close { handle },
        Request::Signal { handle },
    ];
    for req in requests {
        let mut area = [0u8; REQUEST_AREA];
        let n = encode_frame(&req, &mut area).unwrap();
        let len = u32::from_le_bytes(area[..4].try_into().unwrap()) as usize;
        assert_eq!(len + 4, n);
        assert_eq!(decode_frame::<Request>(&area), Ok(req));
    }
    // The largest response fits its area.
    let offer = OfferInfo {
        relid: RelId(u32::MAX),
        class: [0xff; 16],
        instance: [0xff; 16],
        sub_channel_index: u16::MAX,
    };
    let offers = heapless::Vec::from_slice(&[offer; 8]).unwrap();
    let resp = Response::Offers {
        offers,
        next: Some(RelId(u32::MAX)),
    };
    let mut area = [0u8; RESPONSE_AREA];
    encode_frame(&resp, &mut area).unwrap();
    assert_eq!(decode_frame::<Response>(&area), Ok(resp));
    let err = Response::Error(ClientError::ChannelGone);
    encode_frame(&err, &mut area).unwrap();
    assert_eq!(decode_frame::<Response>(&area), Ok(err));
}

#[test]
fn typed_ids_travel_as_their_bare_integers() {
    // A relid or slot costs on the wire what the plain integer did: postcard's varint.
    let mut area = [0u8; REQUEST_AREA];
    let open = Request::Open {
        relid: RelId(5),
        out_ring_pages: 2,
        in_ring_pages: 300,
    };
    let n = encode_frame(&open, &mut area).unwrap();
    assert_eq!(&area[4..n], [1, 5, 2, 0xAC, 0x02]);
    let close = Request::Close {
        handle: ChannelHandle {
            slot: SlotId(3),
            relid: RelId(700),
            generation: 9,
        },
    };
    let n = encode_frame(&close, &mut area).unwrap();
    assert_eq!(&area[4..n], [2, 3, 0xBC, 0x05, 9]);
}

#[test]
fn bad_frames_are_errors_not_panics() {
    let mut area = [0u8; REQUEST_AREA];
    area[..4].copy_from_slice(&(REQUEST_AREA as u32).to_le_bytes());
    assert_eq!(
        decode_frame::<Request>(&area),
        Err(FrameError::LengthOutOfRange {
            len: REQUEST_AREA as u32,
            max: REQUEST_AREA - 4
        })
    );
    // Unknown enum tag.
    area[..5].copy_from_slice(&[1, 0, 0, 0, 9]);
    assert_eq!(decode_frame::<Request>(&area), Err(FrameError::Malformed));
    // Trailing bytes inside the stated length.
    let mut good = [0u8; REQUEST_AREA];
    let n = encode_frame(&Request::ListOffers { start: RelId(1) }, &mut good).unwrap();
    good[..4].copy_from_slice(&((n - 4 + 1) as u32).to_le_bytes());
    assert_eq!(decode_frame::<Request>(&good), Err(FrameError::Malformed));
    // Empty and tiny areas.
    assert_eq!(decode_frame::<Request>(&[]), Err(FrameError::AreaTooSmall));
    assert_eq!(
        encode_frame(&Request::ListOffers { start: RelId(1) }, &mut [0u8; 5]),
        Err(FrameError::TooLarge)
    );
    // Every 2-byte body decodes or fails cleanly.
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let frame = [2, 0, 0, 0, a, b];
            let _ = decode_frame::<Request>(&frame);
        }
    }
}
