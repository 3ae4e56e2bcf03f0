//! Driver core: client requests, the open sequence on the wire, grants, status records, and the
//! open's failure paths.

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelStatus, ClientError, REQUEST_OFFSET, Request, Response};
use vmbus_driver::driver::{ChannelState, RetargetError};
use vmbus_driver::ids::{ClientId, PageId, RelId, SlotId, VpIndex};
use vmbus_driver::msg::MessageType;
use vmbus_driver::version::Version;

fn taken_pages(w: &World) -> Vec<PageId> {
    w.log
        .borrow()
        .iter()
        .filter_map(|e| match e {
            Ev::Take(p) => Some(*p),
            _ => None,
        })
        .collect()
}

#[test]
fn open_sequence_posts_gpadl_header_body_and_openchannel_as_specified() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.clear_log();
    // 3 + 30 = 33 pages: 26 PFNs in the header, 7 in one body.
    let resp = w.call(
        A,
        Request::Open {
            relid: RelId(5),
            out_ring_pages: 3,
            in_ring_pages: 30,
        },
    );
    let Response::Opening { handle } = resp else {
        panic!("{resp:?}")
    };
    assert_eq!((handle.slot, handle.relid), (SlotId(0), RelId(5)));
    assert_eq!(w.k.status(A, SlotId(0)).state, ChannelStatus::Opening);
    assert_eq!(w.k.status(A, SlotId(0)).generation, handle.generation);
    w.pump();

    let pages = taken_pages(&w);
    assert_eq!(pages.len(), 33);
    let frames: Vec<u64> = pages.iter().map(|p| frame_of(*p)).collect();
    assert_eq!(
        w.posted_types(),
        [
            MessageType::GPADL_HEADER,
            MessageType::GPADL_BODY,
            MessageType::OPENCHANNEL
        ]
    );
    // GPADL_HEADER, offsets of docs/protocol.md#message-layouts.
    let h = &w.posts_of(MessageType::GPADL_HEADER)[0];
    assert_eq!(h.len(), 28 + 8 * 26);
    assert_eq!(u32_at(h, 8), 5, "child_relid");
    let gpadl = u32_at(h, 12);
    assert_ne!(gpadl, 0);
    assert_eq!(
        u16::from_le_bytes([h[16], h[17]]),
        8 + 8 * 33,
        "range_buflen"
    );
    assert_eq!(u16::from_le_bytes([h[18], h[19]]), 1, "rangecount");
    assert_eq!(u32_at(h, 20), 33 * 4096, "byte_count");
    assert_eq!(u32_at(h, 24), 0, "byte_offset");
    let pfn = |b: &[u8], i: usize, base: usize| {
        u64::from_le_bytes(b[base + 8 * i..base + 8 * i + 8].try_into().unwrap())
    };
    for (i, frame) in frames.iter().enumerate().take(26) {
        assert_eq!(pfn(h, i, 28), *frame, "header PFN {i}");
    }
    // GPADL_BODY.
    let b = &w.posts_of(MessageType::GPADL_BODY)[0];
    assert_eq!(b.len(), 16 + 8 * 7);
    assert_eq!(u32_at(b, 12), gpadl);
    for (i, frame) in frames[26..].iter().enumerate() {
        assert_eq!(pfn(b, i, 16), *frame, "body PFN {i}");
    }
    // OPENCHANNEL.
    let o = &w.posts_of(MessageType::OPENCHANNEL)[0];
    assert_eq!(o.len(), 148);
    assert_eq!(u32_at(o, 8), 5, "child_relid");
    let openid = u32_at(o, 12);
    assert_eq!(u32_at(o, 16), gpadl, "ringbuffer_gpadlhandle");
    assert_eq!(u32_at(o, 20), TARGET_VP, "target_vp");
    assert_eq!(u32_at(o, 24), 3, "downstream_ringbuffer_pageoffset");
    assert!(o[28..148].iter().all(|b| *b == 0), "userdata");
    assert_eq!(
        vmbus_driver::msg::decode(o, None).map(|m| m.msgtype()),
        Ok(MessageType::OPENCHANNEL)
    );
    assert_ne!(openid, 0);

    // The host holds exactly these PFNs.
    assert_eq!(w.hv.gpadls[&gpadl], frames);
    // Ring headers: zero indices, feature bit 0 in the outbound header only.
    let out_hdr = &w.k.pages[pages[0].0 as usize];
    assert_eq!(u32_at(out_hdr, 64), 1);
    assert_eq!(&out_hdr[0..16], &[0u8; 16][..]);
    let in_hdr = &w.k.pages[pages[3].0 as usize];
    assert_eq!(u32_at(in_hdr, 64), 0);
    // Grants after OPENCHANNEL_RESULT, page i at window page slot * SLOT_PAGES + i.
    let grants: Vec<_> = w
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Grant(p, c, wp) => Some((p, c, wp)),
            _ => None,
        })
        .collect();
    let expected: Vec<_> = pages.iter().enumerate().map(|(i, p)| (*p, A, i)).collect();
    assert_eq!(grants, expected);
    assert_eq!(w.k.status(A, SlotId(0)).state, ChannelStatus::Open);
    assert_eq!(w.events().last(), Some(&Ev::Notify(A)));
    let info = w.d.channel(RelId(5)).unwrap();
    assert_eq!(
        (info.state, info.client, info.pages),
        (ChannelState::Open, Some(A), 33)
    );
}

#[test]
fn second_slot_maps_at_its_own_window_offset() {
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(6, SCSI, 2, 0)]);
    w.connect();
    w.open(A, 5);
    w.clear_log();
    let h = w.open(A, 6);
    assert_eq!(h.slot, SlotId(1));
    let windows: Vec<usize> = w
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Ev::Grant(_, _, wp) => Some(wp),
            _ => None,
        })
        .collect();
    assert_eq!(
        windows,
        [SLOT_PAGES, SLOT_PAGES + 1, SLOT_PAGES + 2, SLOT_PAGES + 3]
    );
}

#[test]
fn refused_gpadl_fails_the_open_and_returns_the_pages() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.gpadl_status = 0xC000_0001;
    w.clear_log();
    let Response::Opening { handle } = w.call(
        A,
        Request::Open {
            relid: RelId(5),
            out_ring_pages: 2,
            in_ring_pages: 2,
        },
    ) else {
        panic!()
    };
    w.pump();
    assert_eq!(w.k.status(A, SlotId(0)).state, ChannelStatus::Failed);
    assert_eq!(w.k.status(A, SlotId(0)).generation, handle.generation);
    // No OPENCHANNEL, nothing to close or tear down: the host holds no GPADL.
    assert_eq!(w.posted_types(), [MessageType::GPADL_HEADER]);
    assert_eq!(w.k.pages_out(), 0);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
    assert_eq!(w.d.stats().open_failures, 1);
    // The offer is free again.
    w.hv.gpadl_status = 0;
    w.open(A, 5);
}

#[test]
fn refused_open_tears_the_gpadl_down_without_closechannel() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect();
    w.hv.open_status = 1;
    w.clear_log();
    w.call(
        A,
        Request::Open {
            relid: RelId(5),
            out_ring_pages: 2,
            in_ring_pages: 2,
        },
    );
    w.pump();
    assert_eq!(w.k.status(A, SlotId(0)).state, ChannelStatus::Failed);
    assert_eq!(
        w.posted_types(),
        [
            MessageType::GPADL_HEADER,
            MessageType::OPENCHANNEL,
            MessageType::GPADL_TEARDOWN
        ]
    );
    assert!(w.hv.gpadls.is_empty());
    assert_eq!(w.k.pages_out(), 0);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
    assert!(!w.events().iter().any(|e| matches!(e, Ev::Grant(..))));
}

#[test]
fn requests_are_checked_before_anything_is_taken() {
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(6, HEARTBEAT, 2, 0)]);
    let open = |relid: u32, o, i| Request::Open {
        relid: RelId(relid),
        out_ring_pages: o,
        in_ring_pages: i,
    };
    // Not connected yet.
    assert_eq!(
        w.call(A, open(5, 2, 2)),
        Response::Error(ClientError::NotConnected)
    );
    w.connect();
    // Offers of classes the client may not open look exactly like no offer.
    assert_eq!(
        w.call(B, open(5, 2, 2)),
        Response::Error(ClientError::NoSuchOffer)
    );
    assert_eq!(
        w.call(A, open(6, 2, 2)),
        Response::Error(ClientError::NoSuchOffer)
    );
    for relid in [0, 7, 2048, u32::MAX] {
        assert_eq!(
            w.call(A, open(relid, 2, 2)),
            Response::Error(ClientError::NoSuchOffer)
        );
    }
    assert_eq!(
        w.call(A, open(5, 1, 2)),
        Response::Error(ClientError::BadRingSize)
    );
    assert_eq!(
        w.call(A, open(5, 2, 1)),
        Response::Error(ClientError::BadRingSize)
    );
    let too_big = (SLOT_PAGES - 1) as u16;
    assert_eq!(
        w.call(A, open(5, 2, too_big)),
        Response::Error(ClientError::BadRingSize)
    );
    assert_eq!(w.k.pages_out(), 0);
    // Exactly the slot is fine.
    let h = w.open_sized(A, 5, 2, (SLOT_PAGES - 2) as u16);
    assert_eq!(w.call(A, open(5, 2, 2)), Response::Error(ClientError::Busy));
    // A malformed request.
    let page = w.k.control.get_mut(&A).unwrap();
    page[REQUEST_OFFSET..REQUEST_OFFSET + 8].copy_from_slice(&[3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    w.d.on_client_call(&mut w.hv, &mut w.k, A, w.now);
    let resp: Response = vmbus_driver::control::decode_frame(
        &w.k.control[&A][vmbus_driver::control::RESPONSE_OFFSET..2048],
    )
    .unwrap();
    assert_eq!(resp, Response::Error(ClientError::BadRequest));
    // A length beyond the request area.
    let page = w.k.control.get_mut(&A).unwrap();
    page[REQUEST_OFFSET..REQUEST_OFFSET + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    w.d.on_client_call(&mut w.hv, &mut w.k, A, w.now);
    // The channel is untouched by all of this.
    assert_eq!(w.k.status(A, h.slot).state, ChannelStatus::Open);
    // An unknown client is ignored.
    w.d.on_client_call(&mut w.hv, &mut w.k, ClientId(99), w.now);
}

#[test]
fn slots_and_pool_exhaustion_are_refused_cleanly() {
    let offers = (1..=6).map(|r| offer(r, NET, r as u8, 0)).collect();
    let mut w = World::new(offers);
    w.connect();
    for r in 1..=4 {
        w.open(A, r);
    }
    let open = |relid: u32| Request::Open {
        relid: RelId(relid),
        out_ring_pages: 2,
        in_ring_pages: 2,
    };
    assert_eq!(w.call(A, open(5)), Response::Error(ClientError::NoFreeSlot));
    // Pool exhaustion halfway through taking pages: what was taken goes back.
    let mut w = World::new(vec![offer(1, NET, 1, 0)]);
    w.connect();
    w.k.free.truncate(3);
    assert_eq!(
        w.call(A, open(1)),
        Response::Error(ClientError::NoResources)
    );
    assert_eq!(w.k.free.len(), 3);
    assert!(w.k.violations.is_empty(), "{:?}", w.k.violations);
    assert!(w.posts_of(MessageType::GPADL_HEADER).is_empty());
}

#[test]
fn list_offers_filters_by_class_and_pages_by_eight() {
    let mut offers: Vec<_> = (1..=10).map(|r| offer(r * 10, NET, r as u8, 0)).collect();
    offers.push(offer(15, HEARTBEAT, 1, 0));
    let mut w = World::new(offers);
    w.connect();
    let Response::Offers { offers, next } = w.call(A, Request::ListOffers { start: RelId(0) })
    else {
        panic!()
    };
    let relids: Vec<u32> = offers.iter().map(|o| o.relid.0).collect();
    assert_eq!(relids, [10, 20, 30, 40, 50, 60, 70, 80]);
    assert_eq!(offers[0].class, NET.0);
    assert_eq!(offers[0].instance, [1; 16]);
    assert_eq!(next, Some(RelId(90)));
    let Response::Offers { offers, next } = w.call(A, Request::ListOffers { start: RelId(90) })
    else {
        panic!()
    };
    assert_eq!(
        offers.iter().map(|o| o.relid.0).collect::<Vec<_>>(),
        [90, 100]
    );
    assert_eq!(next, None);
    let Response::Offers { offers, .. } = w.call(B, Request::ListOffers { start: RelId(0) }) else {
        panic!()
    };
    assert_eq!(offers.iter().map(|o| o.relid.0).collect::<Vec<_>>(), [15]);
}

#[test]
fn sub_channel_opens_only_for_the_owner_of_its_open_primary() {
    let mut w = World::new(vec![
        offer(1, NET, 7, 0),
        offer(2, NET, 7, 1),
        offer(3, NET, 8, 1),
    ]);
    w.connect();
    let open = |relid: u32| Request::Open {
        relid: RelId(relid),
        out_ring_pages: 2,
        in_ring_pages: 2,
    };
    assert_eq!(
        w.call(A, open(2)),
        Response::Error(ClientError::NotPermitted)
    );
    w.open(A, 1);
    w.open(A, 2);
    // A sub-channel whose primary was never offered.
    assert_eq!(
        w.call(A, open(3)),
        Response::Error(ClientError::NotPermitted)
    );
}

#[test]
fn retarget_sends_modifychannel_and_waits_for_the_5_3_response() {
    let mut w = World::new(vec![offer(4, NET, 1, 0)]);
    w.connect();
    assert_eq!(
        w.d.retarget(&mut w.hv, RelId(4), VpIndex(1), w.now),
        Err(RetargetError::NotOpen)
    );
    w.open(A, 4);
    w.clear_log();
    w.d.retarget(&mut w.hv, RelId(4), VpIndex(9), w.now)
        .unwrap();
    let m = &w.posts_of(MessageType::MODIFYCHANNEL)[0];
    assert_eq!((m.len(), u32_at(m, 8), u32_at(m, 12)), (16, 4, 9));
    // Until the response arrives a second one is refused.
    assert_eq!(
        w.d.retarget(&mut w.hv, RelId(4), VpIndex(2), w.now),
        Err(RetargetError::Pending)
    );
    assert_eq!(
        w.d.channel(RelId(4)).unwrap().target_vp,
        Some(VpIndex(TARGET_VP))
    );
    w.pump();
    assert_eq!(w.d.channel(RelId(4)).unwrap().target_vp, Some(VpIndex(9)));
    w.d.retarget(&mut w.hv, RelId(4), VpIndex(2), w.now)
        .unwrap();
    // A host that never answers: the timeout clears the pending state.
    w.hv.silent.insert(MessageType::MODIFYCHANNEL_RESPONSE.0);
    w.pump();
    w.d.retarget(&mut w.hv, RelId(4), VpIndex(3), w.now)
        .unwrap();
    w.pump();
    w.tick(TIMEOUT);
    assert_eq!(w.d.stats().timeouts, 1);
    w.d.retarget(&mut w.hv, RelId(4), VpIndex(5), w.now)
        .unwrap();
    // The channel is still open, its interrupts on the last VP the host confirmed.
    assert_eq!(w.d.channel(RelId(4)).unwrap().state, ChannelState::Open);
    assert_eq!(w.d.channel(RelId(4)).unwrap().target_vp, Some(VpIndex(2)));

    // 4.1 to 5.2: no response, the VP is recorded at once.
    let mut w = World::with_max(vec![offer(4, NET, 1, 0)], Version::WIN10_V4_1);
    w.connect();
    w.open(A, 4);
    w.d.retarget(&mut w.hv, RelId(4), VpIndex(7), w.now)
        .unwrap();
    assert_eq!(w.d.channel(RelId(4)).unwrap().target_vp, Some(VpIndex(7)));

    // Before 4.1 there is no MODIFYCHANNEL.
    let mut w = World::with_max(vec![offer(4, NET, 1, 0)], Version::WIN10);
    w.connect();
    w.open(A, 4);
    assert_eq!(
        w.d.retarget(&mut w.hv, RelId(4), VpIndex(1), w.now),
        Err(RetargetError::NotSupported)
    );
}

#[test]
fn instance_filter_limits_a_client_to_one_device() {
    use std::cell::RefCell;
    use std::rc::Rc;
    use vmbus_driver::driver::{ClientConfig, Driver, DriverConfig};
    use vmbus_driver::guid::Guid;

    let classes = [NET];
    let clients = [ClientConfig {
        id: A,
        window_pages: 16,
        max_channels: 2,
        classes: &classes,
        instance: Some(Guid([2; 16])),
        power: false,
        low_latency: false,
    }];
    let cfg = DriverConfig {
        target_vp: VpIndex(0),
        max_version: Version::WIN10_V5_3,
        reply_timeout: 10,
        clients: &clients,
    };
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut w = World {
        hv: FakeHv::new(log.clone()),
        k: FakeKernel::new(log.clone(), 16, &[A]),
        d: Box::new(Driver::new(&cfg)),
        log,
        now: 1,
    };
    w.hv.offers = vec![offer(1, NET, 1, 0), offer(2, NET, 2, 0)];
    w.connect();
    let Response::Offers { offers, next } = w.call(A, Request::ListOffers { start: RelId(0) })
    else {
        panic!()
    };
    assert_eq!(offers.iter().map(|o| o.relid.0).collect::<Vec<_>>(), [2]);
    assert_eq!(next, None);
    let open = |relid: u32| Request::Open {
        relid: RelId(relid),
        out_ring_pages: 2,
        in_ring_pages: 2,
    };
    assert_eq!(
        w.call(A, open(1)),
        Response::Error(ClientError::NoSuchOffer)
    );
    w.open(A, 2);
}

#[test]
fn a_client_cannot_probe_offers_of_other_classes() {
    // A holds relid 5 (net); B serves heartbeat only. Whatever state relid 5 is in (offered,
    // opened by A, rescinded), B's open of it answers exactly what an absent relid answers.
    let mut w = World::new(vec![offer(5, NET, 1, 0), offer(6, HEARTBEAT, 2, 0)]);
    w.connect();
    let open = |relid: u32| Request::Open {
        relid: RelId(relid),
        out_ring_pages: 2,
        in_ring_pages: 2,
    };
    let absent = w.call(B, open(7));
    assert_eq!(absent, Response::Error(ClientError::NoSuchOffer));
    assert_eq!(w.call(B, open(5)), absent, "offered to another class");
    w.open(A, 5);
    assert_eq!(w.call(B, open(5)), absent, "busy with another client");
    w.hv.rescind(5);
    w.pump();
    assert_eq!(w.call(B, open(5)), absent, "rescinded");
}
