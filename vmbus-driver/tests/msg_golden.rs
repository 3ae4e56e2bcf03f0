//! Golden byte vectors for every channel-message layout, written by hand from the offset tables of
//! docs/protocol.md#message-layouts (not from the encoder): each test checks encode == golden and
//! decode(golden) == value.

use vmbus_driver::guid::{self, Guid};
use vmbus_driver::ids::{ConnectionId, GpadlId, RelId, VpIndex};
use vmbus_driver::msg::{
    ChannelMessage as M, CloseChannel, CloseReservedChannel, CloseReservedResponse,
    ConnectionState, ContactTarget, DecodeError, GpadlBody, GpadlCreated, GpadlHeader,
    GpadlTeardown, GpadlTorndown, InitiateContact, MessageType, ModifyChannel,
    ModifyChannelResponse, ModifyConnection, ModifyConnectionResponse, OfferChannel, OfferFlags,
    OpenChannel, OpenChannelFlags, OpenChannelResult, OpenChannelSignal, OpenReservedChannel,
    PfnList, RangeWords, RelIdReleased, RescindChannelOffer, TlConnectRequest, TlConnectResult,
    VersionResponse, VersionResponseExt, decode, encode,
};
use vmbus_driver::version::{FeatureFlags, Version};

/// A golden buffer: zeroes with little-endian values placed at document offsets.
struct G(Vec<u8>);

impl G {
    fn new(len: usize, msgtype: u32) -> G {
        let mut g = G(vec![0; len]);
        g.u32(0, msgtype);
        g
    }
    fn u8(&mut self, o: usize, v: u8) -> &mut G {
        self.0[o] = v;
        self
    }
    fn u16(&mut self, o: usize, v: u16) -> &mut G {
        self.0[o..o + 2].copy_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, o: usize, v: u32) -> &mut G {
        self.0[o..o + 4].copy_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, o: usize, v: u64) -> &mut G {
        self.0[o..o + 8].copy_from_slice(&v.to_le_bytes());
        self
    }
    fn raw(&mut self, o: usize, v: &[u8]) -> &mut G {
        self.0[o..o + v.len()].copy_from_slice(v);
        self
    }
}

/// Wire bytes of 525074dc-8985-46e2-8057-a307dc18a502 as given in
/// docs/protocol.md#well-known-device-classes.
const DM_WIRE: [u8; 16] = [
    0xdc, 0x74, 0x50, 0x52, 0x85, 0x89, 0xe2, 0x46, 0x80, 0x57, 0xa3, 0x07, 0xdc, 0x18, 0xa5, 0x02,
];
/// Wire bytes of f8615163-df3e-46c5-913f-f2d2f965ed0e (network), swapped by hand.
const NET_WIRE: [u8; 16] = [
    0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e,
];
const ID_A: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

fn check(msg: M, golden: &G, version: Option<Version>) {
    let mut buf = [0xA5u8; 240];
    let n = encode(&msg, &mut buf).expect("encode");
    assert_eq!(&buf[..n], &golden.0[..], "encode of {msg:?}");
    assert_eq!(decode(&golden.0, version), Ok(msg), "decode");
    assert_eq!(msg.wire_len(), golden.0.len());
    // A buffer one byte short is refused, naming the type.
    let mut small = vec![0u8; n - 1];
    assert!(matches!(
        encode(&msg, &mut small),
        Err(vmbus_driver::msg::EncodeError::BufferTooSmall { needed, .. }) if needed == n
    ));
}

fn user_pattern() -> [u8; 120] {
    core::array::from_fn(|i| i as u8 ^ 0x5a)
}

#[test]
fn offerchannel_is_196_bytes_with_every_field_at_its_offset() {
    let ud = user_pattern();
    let mut g = G::new(196, 1);
    g.raw(8, &NET_WIRE)
        .raw(24, &DM_WIRE)
        .u64(40, 0x1122_3344_5566_7788)
        .u64(48, 0x99aa_bbcc_ddee_ff00)
        .u16(56, 0x2010)
        .u16(58, 64)
        .raw(60, &ud)
        .u16(180, 3)
        .u16(182, 7)
        .u32(184, 0x42)
        .u8(188, 9)
        .u8(189, 1)
        .u16(190, 1)
        .u32(192, 0x10042);
    let offer = OfferChannel {
        if_type: guid::NETWORK,
        if_instance: guid::DYNAMIC_MEMORY,
        reserved1: 0x1122_3344_5566_7788,
        reserved2: 0x99aa_bbcc_ddee_ff00,
        chn_flags: OfferFlags(0x2010),
        mmio_megabytes: 64,
        user_def: ud,
        sub_channel_index: 3,
        mmio_megabytes_optional: 7,
        child_relid: RelId(0x42),
        monitor_id: 9,
        monitor_allocated: true,
        is_dedicated_interrupt: true,
        connection_id: ConnectionId(0x10042),
    };
    assert!(offer.is_hvsock());
    assert_eq!(
        offer.pipe_mode(),
        Some(u32::from_le_bytes([ud[0], ud[1], ud[2], ud[3]]))
    );
    check(M::OfferChannel(offer), &g, None);
    check(M::OfferChannel(offer), &g, Some(Version::WIN10_V5_3));
}

#[test]
fn offer_reserved_bits_beside_monitor_and_dedicated_flags_are_ignored() {
    let mut g = G::new(196, 1);
    g.u8(189, 0xfe).u16(190, 0xfffe);
    let Ok(M::OfferChannel(o)) = decode(&g.0, None) else {
        panic!("offer")
    };
    assert!(!o.monitor_allocated && !o.is_dedicated_interrupt);
}

#[test]
fn rescind_is_12_bytes() {
    let mut g = G::new(12, 2);
    g.u32(8, 77);
    check(
        M::RescindChannelOffer(RescindChannelOffer {
            child_relid: RelId(77),
        }),
        &g,
        None,
    );
}

#[test]
fn header_only_messages_are_8_bytes() {
    for (t, m, v) in [
        (3, M::RequestOffers, Version::WIN8),
        (4, M::AllOffersDelivered, Version::WIN8),
        (16, M::Unload, Version::WIN8),
        (17, M::UnloadResponse, Version::WIN8),
        (27, M::Pause, Version::WIN10_V6_0),
        (28, M::PauseResponse, Version::WIN10_V6_0),
        (29, M::Resume, Version::WIN10_V6_0),
    ] {
        check(m, &G::new(8, t), Some(v));
    }
}

fn open_golden(len: usize) -> G {
    let mut g = G::new(len, 5);
    g.u32(8, 5)
        .u32(12, 0xabcd)
        .u32(16, 0x1001)
        .u32(20, 3)
        .u32(24, 17)
        .raw(28, &user_pattern());
    g
}

fn open_value() -> OpenChannel {
    OpenChannel {
        child_relid: RelId(5),
        openid: 0xabcd,
        ring_gpadl: GpadlId(0x1001),
        target_vp: VpIndex(3),
        downstream_ring_page_offset: 17,
        userdata: user_pattern(),
        signal: None,
    }
}

#[test]
fn openchannel_is_148_bytes() {
    check(M::OpenChannel(open_value()), &open_golden(148), None);
    // At 6.0 the short form is still what 148 bytes mean.
    check(
        M::OpenChannel(open_value()),
        &open_golden(148),
        Some(Version::WIN10_V6_0),
    );
}

#[test]
fn openchannel_6_0_form_is_156_bytes() {
    let mut g = open_golden(156);
    g.u32(148, 0x2_0005).u16(152, 5).u16(154, 1);
    let mut v = open_value();
    v.signal = Some(OpenChannelSignal {
        connection_id: ConnectionId(0x2_0005),
        event_flag: 5,
        flags: OpenChannelFlags::REDIRECT_INTERRUPT,
    });
    check(M::OpenChannel(v), &g, Some(Version::WIN10_V6_0));
    // Before 6.0 the extra 8 bytes are trailing bytes, ignored.
    assert_eq!(
        decode(&g.0, Some(Version::WIN10_V5_3)),
        Ok(M::OpenChannel(open_value()))
    );
}

#[test]
fn openchannel_result_is_20_bytes() {
    let mut g = G::new(20, 6);
    g.u32(8, 5).u32(12, 0xabcd).u32(16, 0xC000_0001);
    let m = OpenChannelResult {
        child_relid: RelId(5),
        openid: 0xabcd,
        status: 0xC000_0001,
    };
    check(M::OpenChannelResult(m), &g, None);
}

#[test]
fn closechannel_is_12_bytes() {
    let mut g = G::new(12, 7);
    g.u32(8, 9);
    check(
        M::CloseChannel(CloseChannel {
            child_relid: RelId(9),
        }),
        &g,
        None,
    );
}

#[test]
fn gpadl_header_of_one_page_is_36_bytes() {
    let mut g = G::new(36, 8);
    // relid 4, gpadl 0xE1E10, buflen 16, rangecount 1, byte_count 4096, byte_offset 0, pfn.
    g.u32(8, 4)
        .u32(12, 0xE1E10)
        .u16(16, 16)
        .u16(18, 1)
        .u32(20, 4096)
        .u32(24, 0)
        .u64(28, 0x12345);
    let h = GpadlHeader {
        child_relid: RelId(4),
        gpadl: GpadlId(0xE1E10),
        range_buflen: 16,
        rangecount: 1,
        range_data: RangeWords::from_slice(&[4096, 0x12345]).unwrap(),
    };
    assert_eq!(h.first_range(), Some((4096, 0)));
    assert_eq!(h.pfns(), &[0x12345]);
    check(M::GpadlHeader(h), &g, None);
}

#[test]
fn gpadl_header_with_26_pfns_is_236_bytes_and_announces_the_rest() {
    // 40 pages: 26 here, 14 in a body. range_buflen = 8 + 8*40 = 328.
    let mut g = G::new(236, 8);
    g.u32(8, 4)
        .u32(12, 7)
        .u16(16, 328)
        .u16(18, 1)
        .u32(20, 40 * 4096)
        .u32(24, 0);
    let mut words = vec![40 * 4096u64];
    for i in 0..26u64 {
        g.u64(28 + 8 * i as usize, 0x1000 + i);
        words.push(0x1000 + i);
    }
    let h = GpadlHeader {
        child_relid: RelId(4),
        gpadl: GpadlId(7),
        range_buflen: 328,
        rangecount: 1,
        range_data: RangeWords::from_slice(&words).unwrap(),
    };
    check(M::GpadlHeader(h), &g, None);
}

#[test]
fn gpadl_body_is_16_plus_8_per_pfn() {
    for k in [1usize, 14, 28] {
        let mut g = G::new(16 + 8 * k, 9);
        g.u32(8, 0).u32(12, 7);
        let pfns: Vec<u64> = (0..k as u64).map(|i| 0xF_0000_0000 + i).collect();
        for (i, p) in pfns.iter().enumerate() {
            g.u64(16 + 8 * i, *p);
        }
        let b = GpadlBody {
            msgnumber: 0,
            gpadl: GpadlId(7),
            pfns: PfnList::from_slice(&pfns).unwrap(),
        };
        check(M::GpadlBody(b), &g, None);
    }
}

#[test]
fn gpadl_created_teardown_torndown_relid_released() {
    let mut g = G::new(20, 10);
    g.u32(8, 4).u32(12, 7).u32(16, 0x8000_FFFF);
    check(
        M::GpadlCreated(GpadlCreated {
            child_relid: RelId(4),
            gpadl: GpadlId(7),
            creation_status: 0x8000_FFFF,
        }),
        &g,
        None,
    );
    let mut g = G::new(16, 11);
    g.u32(8, 4).u32(12, 7);
    check(
        M::GpadlTeardown(GpadlTeardown {
            child_relid: RelId(4),
            gpadl: GpadlId(7),
        }),
        &g,
        None,
    );
    let mut g = G::new(12, 12);
    g.u32(8, 7);
    check(
        M::GpadlTorndown(GpadlTorndown { gpadl: GpadlId(7) }),
        &g,
        None,
    );
    let mut g = G::new(12, 13);
    g.u32(8, 4);
    check(
        M::RelIdReleased(RelIdReleased {
            child_relid: RelId(4),
        }),
        &g,
        None,
    );
}

#[test]
fn initiate_contact_below_5_0_carries_the_interrupt_page() {
    let mut g = G::new(40, 14);
    g.u32(8, 0x0004_0000)
        .u32(12, 0)
        .u64(16, 0x7_F000)
        .u64(24, 0x8_0000)
        .u64(32, 0x8_1000);
    let m = InitiateContact {
        version_requested: Version::WIN10,
        target_vcpu: VpIndex(0),
        target: ContactTarget::InterruptPage(0x7_F000),
        monitor_page1: 0x8_0000,
        monitor_page2: 0x8_1000,
        client_id: None,
    };
    check(M::InitiateContact(m), &g, None);
}

#[test]
fn initiate_contact_from_5_0_carries_msg_sint_and_vtl() {
    let mut g = G::new(40, 14);
    g.u32(8, 0x0005_0003)
        .u32(12, 1)
        .u8(16, 2)
        .u8(17, 0)
        .u64(24, 0x8_0000)
        .u64(32, 0x8_1000);
    let m = InitiateContact {
        version_requested: Version::WIN10_V5_3,
        target_vcpu: VpIndex(1),
        target: ContactTarget::MessageSint {
            msg_sint: 2,
            msg_vtl: 0,
            feature_flags: FeatureFlags::NONE,
        },
        monitor_page1: 0x8_0000,
        monitor_page2: 0x8_1000,
        client_id: None,
    };
    check(M::InitiateContact(m), &g, None);
    assert_eq!(
        Version::WIN10_V5_3.initiate_contact_connection_id(),
        ConnectionId(4)
    );
}

#[test]
fn initiate_contact_6_0_with_client_id_is_56_bytes() {
    let mut g = G::new(56, 14);
    g.u32(8, 0x0006_0000)
        .u32(12, 0)
        .u8(16, 2)
        .u8(17, 0)
        .u32(20, 0x18)
        .raw(40, &ID_A);
    let m = InitiateContact {
        version_requested: Version::WIN10_V6_0,
        target_vcpu: VpIndex(0),
        target: ContactTarget::MessageSint {
            msg_sint: 2,
            msg_vtl: 0,
            feature_flags: FeatureFlags::CLIENT_ID | FeatureFlags::CONFIDENTIAL_CHANNELS,
        },
        monitor_page1: 0,
        monitor_page2: 0,
        client_id: Some(Guid(ID_A)),
    };
    check(M::InitiateContact(m), &g, None);
}

#[test]
fn version_response_is_16_bytes() {
    let mut g = G::new(16, 15);
    g.u8(8, 1).u8(9, 0).u32(12, 4);
    let m = VersionResponse {
        version_supported: true,
        connection_state: ConnectionState::SUCCESSFUL,
        msg_conn_id: ConnectionId(4),
        ext: VersionResponseExt::None,
    };
    assert!(m.is_success(Version::WIN10_V5_3));
    let refused = VersionResponse {
        connection_state: ConnectionState(1),
        ..m
    };
    assert!(!refused.is_success(Version::WIN10_V5_3));
    // Below 2.4 the state byte is not meaningful and is ignored.
    assert!(refused.is_success(Version::WIN7));
    let rejected = VersionResponse {
        version_supported: false,
        ..m
    };
    assert!(!rejected.is_success(Version::WIN7));
    check(M::VersionResponse(m), &g, None);
    check(M::VersionResponse(m), &g, Some(Version::WIN10_V5_3));
}

#[test]
fn version_response_6_0_forms_are_20_and_40_bytes() {
    let mut g = G::new(20, 15);
    g.u8(8, 1).u32(12, 1).u32(16, 0x15);
    let m = VersionResponse {
        version_supported: true,
        connection_state: ConnectionState(0),
        msg_conn_id: ConnectionId(1),
        ext: VersionResponseExt::Features(FeatureFlags(0x15)),
    };
    check(M::VersionResponse(m), &g, Some(Version::WIN10_V6_0));
    // Without a 6.0 request the same bytes read as the 16-byte form.
    let Ok(M::VersionResponse(short)) = decode(&g.0, None) else {
        panic!()
    };
    assert_eq!(short.ext, VersionResponseExt::None);

    let mut g = G::new(40, 15);
    g.u8(8, 1)
        .u32(12, 1)
        .u32(16, 0x40)
        .u64(24, 0x32_1000)
        .u64(32, 0x12_3000);
    let m = VersionResponse {
        version_supported: true,
        connection_state: ConnectionState(0),
        msg_conn_id: ConnectionId(1),
        ext: VersionResponseExt::MonitorPages {
            features: FeatureFlags::SERVER_SPECIFIED_MONITOR_PAGES,
            parent_to_child: 0x32_1000,
            child_to_parent: 0x12_3000,
        },
    };
    check(M::VersionResponse(m), &g, Some(Version::WIN10_V6_0));
}

#[test]
fn reserved_channel_messages_18_19_20() {
    let mut g = G::new(28, 18);
    g.u32(8, 3).u32(12, 1).u32(16, 2).u32(20, 0x99).u32(24, 4);
    let m = OpenReservedChannel {
        channel_id: RelId(3),
        target_vp: VpIndex(1),
        target_sint: 2,
        ring_gpadl: GpadlId(0x99),
        downstream_page_offset: 4,
    };
    check(M::OpenReservedChannel(m), &g, Some(Version::WIN10));
    let mut g = G::new(20, 19);
    g.u32(8, 3).u32(12, 1).u32(16, 2);
    let m = CloseReservedChannel {
        channel_id: RelId(3),
        target_vp: VpIndex(1),
        target_sint: 2,
    };
    check(M::CloseReservedChannel(m), &g, Some(Version::WS2008));
    let mut g = G::new(12, 20);
    g.u32(8, 3);
    check(
        M::CloseReservedResponse(CloseReservedResponse {
            channel_id: RelId(3),
        }),
        &g,
        Some(Version::WIN10),
    );
}

#[test]
fn tl_connect_request_is_40_bytes_and_56_with_silo_id() {
    let mut g = G::new(40, 21);
    g.raw(8, &ID_A).raw(24, &NET_WIRE);
    let m = TlConnectRequest {
        guest_endpoint_id: Guid(ID_A),
        host_service_id: guid::NETWORK,
        silo_id: None,
    };
    check(M::TlConnectRequest(m), &g, Some(Version::WIN10));
    let mut g = G::new(56, 21);
    g.raw(8, &ID_A).raw(24, &NET_WIRE).raw(40, &DM_WIRE);
    let m = TlConnectRequest {
        silo_id: Some(guid::DYNAMIC_MEMORY),
        ..m
    };
    check(M::TlConnectRequest(m), &g, Some(Version::WIN10_V5_2));
}

#[test]
fn modifychannel_tl_connect_result_and_modifychannel_response() {
    let mut g = G::new(16, 22);
    g.u32(8, 6).u32(12, 2);
    check(
        M::ModifyChannel(ModifyChannel {
            child_relid: RelId(6),
            target_vp: VpIndex(2),
        }),
        &g,
        Some(Version::WIN10_V4_1),
    );
    let mut g = G::new(44, 23);
    g.raw(8, &ID_A).raw(24, &DM_WIRE).u32(40, 0xC000_0236);
    let m = TlConnectResult {
        endpoint_id: Guid(ID_A),
        service_id: guid::DYNAMIC_MEMORY,
        status: 0xC000_0236,
    };
    check(M::TlConnectResult(m), &g, Some(Version::WIN10_V4_1));
    let mut g = G::new(16, 24);
    g.u32(8, 6).u32(12, 0);
    check(
        M::ModifyChannelResponse(ModifyChannelResponse {
            child_relid: RelId(6),
            status: 0,
        }),
        &g,
        Some(Version::WIN10_V5_3),
    );
}

#[test]
fn modify_connection_24_and_its_response_9_bytes() {
    let mut g = G::new(24, 25);
    g.u64(8, 0x5000).u64(16, 0x6000);
    let m = ModifyConnection {
        parent_to_child_monitor_page: 0x5000,
        child_to_parent_monitor_page: 0x6000,
    };
    check(M::ModifyConnection(m), &g, Some(Version::WIN10_V6_0));
    let mut g = G::new(9, 26);
    g.u8(8, 1);
    let m = ModifyConnectionResponse {
        connection_state: ConnectionState::FAILED_LOW_RESOURCES,
    };
    check(
        M::ModifyConnectionResponse(m),
        &g,
        Some(Version::WIN10_V6_0),
    );
}

#[test]
fn header_padding_and_trailing_bytes_are_ignored_like_linux() {
    let mut g = G::new(24, 7);
    g.u32(4, 0xdead_beef).u32(8, 9).u32(12, 0xffff_ffff);
    assert_eq!(
        decode(&g.0, None),
        Ok(M::CloseChannel(CloseChannel {
            child_relid: RelId(9)
        }))
    );
}

#[test]
fn truncated_message_is_too_short_naming_its_type() {
    let g = open_golden(148);
    assert_eq!(
        decode(&g.0[..147], None),
        Err(DecodeError::TooShort {
            msgtype: MessageType::OPENCHANNEL,
            len: 147,
            min: 148
        })
    );
    let e = decode(&G::new(195, 1).0, None).unwrap_err();
    assert_eq!(
        e,
        DecodeError::TooShort {
            msgtype: MessageType::OFFERCHANNEL,
            len: 195,
            min: 196
        }
    );
    assert!(e.to_string().contains("OFFERCHANNEL"));
}

#[test]
fn unknown_types_oversize_and_headerless_input_are_errors() {
    assert_eq!(
        decode(&G::new(8, 0).0, None),
        Err(DecodeError::UnknownType(0))
    );
    assert_eq!(
        decode(&G::new(64, 30).0, None),
        Err(DecodeError::UnknownType(30))
    );
    assert_eq!(
        decode(&[1, 0, 0], None),
        Err(DecodeError::HeaderTooShort { len: 3 })
    );
    assert_eq!(
        decode(&G::new(241, 1).0, None),
        Err(DecodeError::TooLong {
            msgtype: MessageType::OFFERCHANNEL,
            len: 241
        })
    );
}

#[test]
fn message_newer_than_the_negotiated_version_is_refused() {
    let mut g = G::new(16, 24);
    g.u32(8, 6);
    assert_eq!(
        decode(&g.0, Some(Version::WIN10_V5_2)),
        Err(DecodeError::NotInVersion {
            msgtype: MessageType::MODIFYCHANNEL_RESPONSE,
            version: Version::WIN10_V5_2
        })
    );
    // Before negotiation nothing is gated.
    assert!(decode(&g.0, None).is_ok());
}

fn gpadl_field_error(g: &G) -> Result<M, DecodeError> {
    decode(&g.0, None)
}

#[test]
fn gpadl_header_with_inconsistent_ranges_is_refused() {
    let bad = |field| {
        Err(DecodeError::BadField {
            msgtype: MessageType::GPADL_HEADER,
            field,
        })
    };
    // rangecount 0.
    let mut g = G::new(36, 8);
    g.u16(16, 16).u16(18, 0).u32(20, 4096);
    assert_eq!(gpadl_field_error(&g), bad("rangecount"));
    // range_buflen says 2 pages but byte_count says 1.
    let mut g = G::new(44, 8);
    g.u16(16, 24).u16(18, 1).u32(20, 4096);
    assert_eq!(gpadl_field_error(&g), bad("range_buflen"));
    // range_buflen not a multiple of 8.
    let mut g = G::new(36, 8);
    g.u16(16, 15).u16(18, 1).u32(20, 4096);
    assert_eq!(gpadl_field_error(&g), bad("range_buflen"));
    // byte_offset beyond the first page.
    let mut g = G::new(36, 8);
    g.u16(16, 16).u16(18, 1).u32(20, 1).u32(24, 4096);
    assert_eq!(gpadl_field_error(&g), bad("byte_offset"));
    // More data announced than carried, and the carried part is not whole PFNs.
    let mut g = G::new(40, 8);
    g.u16(16, 24).u16(18, 1).u32(20, 8192);
    assert_eq!(
        gpadl_field_error(&g),
        Err(DecodeError::BadLength {
            msgtype: MessageType::GPADL_HEADER,
            len: 40
        })
    );
    // A body that is not a whole number of PFNs.
    let g = G::new(28, 9);
    assert_eq!(
        decode(&g.0, None),
        Err(DecodeError::BadLength {
            msgtype: MessageType::GPADL_BODY,
            len: 28
        })
    );
}
