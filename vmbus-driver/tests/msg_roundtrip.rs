//! Property tests: every message type survives encode → decode; arbitrary bytes never panic the
//! decoder; whatever decodes re-encodes to something that decodes to the same value; truncation
//! below a type's minimum size is `TooShort` naming that type.

use proptest::prelude::*;
use vmbus_driver::guid::Guid;
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

fn guid() -> impl Strategy<Value = Guid> {
    any::<[u8; 16]>().prop_map(Guid)
}

fn bytes120() -> impl Strategy<Value = [u8; 120]> {
    prop::collection::vec(any::<u8>(), 120).prop_map(|v| {
        let mut a = [0u8; 120];
        a.copy_from_slice(&v);
        a
    })
}

fn offer() -> impl Strategy<Value = M> {
    (
        (
            guid(),
            guid(),
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<u16>(),
        ),
        bytes120(),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            any::<u8>(),
            any::<bool>(),
            any::<bool>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |((t, i, r1, r2, fl, mmio), ud, (sub, opt, relid, mon, ma, ded, conn))| {
                M::OfferChannel(OfferChannel {
                    if_type: t,
                    if_instance: i,
                    reserved1: r1,
                    reserved2: r2,
                    chn_flags: OfferFlags(fl),
                    mmio_megabytes: mmio,
                    user_def: ud,
                    sub_channel_index: sub,
                    mmio_megabytes_optional: opt,
                    child_relid: RelId(relid),
                    monitor_id: mon,
                    monitor_allocated: ma,
                    is_dedicated_interrupt: ded,
                    connection_id: ConnectionId(conn),
                })
            },
        )
}

fn open_channel() -> impl Strategy<Value = M> {
    (
        any::<[u32; 5]>(),
        bytes120(),
        prop::option::of((any::<u32>(), any::<u16>(), any::<u16>())),
    )
        .prop_map(|(f, ud, sig)| {
            M::OpenChannel(OpenChannel {
                child_relid: RelId(f[0]),
                openid: f[1],
                ring_gpadl: GpadlId(f[2]),
                target_vp: VpIndex(f[3]),
                downstream_ring_page_offset: f[4],
                userdata: ud,
                signal: sig.map(|(c, e, fl)| OpenChannelSignal {
                    connection_id: ConnectionId(c),
                    event_flag: e,
                    flags: OpenChannelFlags(fl),
                }),
            })
        })
}

/// A valid single-range GPADL header: n pages, k <= min(n, 26) of them carried here.
fn gpadl_header() -> impl Strategy<Value = M> {
    (1usize..=200, any::<u32>(), any::<u32>(), any::<u64>()).prop_flat_map(
        |(n, relid, id, seed)| {
            (0..=n.min(26)).prop_map(move |k| {
                let mut words = vec![(n as u64) * 4096];
                words.extend((0..k as u64).map(|i| seed.wrapping_add(i)));
                // A header that does not carry every PFN must end on a whole word: it does.
                M::GpadlHeader(GpadlHeader {
                    child_relid: RelId(relid),
                    gpadl: GpadlId(id),
                    range_buflen: (8 + 8 * n) as u16,
                    rangecount: 1,
                    range_data: RangeWords::from_slice(&words).unwrap(),
                })
            })
        },
    )
}

fn gpadl_body() -> impl Strategy<Value = M> {
    (
        any::<u32>(),
        any::<u32>(),
        prop::collection::vec(any::<u64>(), 1..=28),
    )
        .prop_map(|(n, g, p)| {
            M::GpadlBody(GpadlBody {
                msgnumber: n,
                gpadl: GpadlId(g),
                pfns: PfnList::from_slice(&p).unwrap(),
            })
        })
}

fn initiate_contact() -> impl Strategy<Value = M> {
    (
        prop::sample::select(Version::ALL.to_vec()),
        any::<u32>(),
        any::<u64>(),
        (any::<u8>(), any::<u8>(), any::<u32>()),
        any::<u64>(),
        any::<u64>(),
        prop::option::of(guid()),
    )
        .prop_map(|(v, vp, page, (sint, vtl, ff), m1, m2, cid)| {
            let target = if v.uses_msg_sint() {
                ContactTarget::MessageSint {
                    msg_sint: sint,
                    msg_vtl: vtl,
                    feature_flags: FeatureFlags(ff),
                }
            } else {
                ContactTarget::InterruptPage(page)
            };
            M::InitiateContact(InitiateContact {
                version_requested: v,
                target_vcpu: VpIndex(vp),
                target,
                monitor_page1: m1,
                monitor_page2: m2,
                client_id: cid.filter(|_| v.supports_feature_flags()),
            })
        })
}

fn version_response() -> impl Strategy<Value = M> {
    (
        any::<bool>(),
        any::<u8>(),
        any::<u32>(),
        0u8..3,
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(ok, st, conn, form, f, p2c, c2p)| {
            let ext = match form {
                0 => VersionResponseExt::None,
                1 => VersionResponseExt::Features(FeatureFlags(f)),
                _ => VersionResponseExt::MonitorPages {
                    features: FeatureFlags(f) | FeatureFlags::SERVER_SPECIFIED_MONITOR_PAGES,
                    parent_to_child: p2c,
                    child_to_parent: c2p,
                },
            };
            M::VersionResponse(VersionResponse {
                version_supported: ok,
                connection_state: ConnectionState(st),
                msg_conn_id: ConnectionId(conn),
                ext,
            })
        })
}

fn small_messages() -> impl Strategy<Value = M> {
    let u = any::<u32>;
    prop_oneof![
        u().prop_map(|r| M::RescindChannelOffer(RescindChannelOffer {
            child_relid: RelId(r)
        })),
        Just(M::RequestOffers),
        Just(M::AllOffersDelivered),
        (u(), u(), u()).prop_map(|(a, b, c)| M::OpenChannelResult(OpenChannelResult {
            child_relid: RelId(a),
            openid: b,
            status: c
        })),
        u().prop_map(|r| M::CloseChannel(CloseChannel {
            child_relid: RelId(r)
        })),
        (u(), u(), u()).prop_map(|(a, b, c)| M::GpadlCreated(GpadlCreated {
            child_relid: RelId(a),
            gpadl: GpadlId(b),
            creation_status: c
        })),
        (u(), u()).prop_map(|(a, b)| M::GpadlTeardown(GpadlTeardown {
            child_relid: RelId(a),
            gpadl: GpadlId(b)
        })),
        u().prop_map(|g| M::GpadlTorndown(GpadlTorndown { gpadl: GpadlId(g) })),
        u().prop_map(|r| M::RelIdReleased(RelIdReleased {
            child_relid: RelId(r)
        })),
        Just(M::Unload),
        Just(M::UnloadResponse),
        any::<[u32; 5]>().prop_map(|f| M::OpenReservedChannel(OpenReservedChannel {
            channel_id: RelId(f[0]),
            target_vp: VpIndex(f[1]),
            target_sint: f[2],
            ring_gpadl: GpadlId(f[3]),
            downstream_page_offset: f[4]
        })),
        (u(), u(), u()).prop_map(|(a, b, c)| M::CloseReservedChannel(CloseReservedChannel {
            channel_id: RelId(a),
            target_vp: VpIndex(b),
            target_sint: c
        })),
        u().prop_map(|r| M::CloseReservedResponse(CloseReservedResponse {
            channel_id: RelId(r)
        })),
        (guid(), guid(), prop::option::of(guid())).prop_map(|(e, s, silo)| M::TlConnectRequest(
            TlConnectRequest {
                guest_endpoint_id: e,
                host_service_id: s,
                silo_id: silo
            }
        )),
        (u(), u()).prop_map(|(a, b)| M::ModifyChannel(ModifyChannel {
            child_relid: RelId(a),
            target_vp: VpIndex(b)
        })),
        (guid(), guid(), u()).prop_map(|(e, s, st)| M::TlConnectResult(TlConnectResult {
            endpoint_id: e,
            service_id: s,
            status: st
        })),
        (u(), u()).prop_map(|(a, b)| M::ModifyChannelResponse(ModifyChannelResponse {
            child_relid: RelId(a),
            status: b
        })),
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| M::ModifyConnection(ModifyConnection {
            parent_to_child_monitor_page: a,
            child_to_parent_monitor_page: b
        })),
        any::<u8>().prop_map(|s| M::ModifyConnectionResponse(ModifyConnectionResponse {
            connection_state: ConnectionState(s)
        })),
        Just(M::Pause),
        Just(M::PauseResponse),
        Just(M::Resume),
    ]
}

fn any_message() -> impl Strategy<Value = M> {
    prop_oneof![
        offer(),
        open_channel(),
        gpadl_header(),
        gpadl_body(),
        initiate_contact(),
        version_response(),
        small_messages(),
    ]
}

/// Minimum sizes from the docs/protocol.md#message-types, #message-layouts tables, written out
/// independently of the decoder.
fn doc_min_size(t: u32) -> usize {
    match t {
        1 => 196,
        2 | 7 | 12 | 13 | 20 => 12,
        5 => 148,
        6 | 10 | 19 => 20,
        8 => 28,
        9 => 24,
        11 | 22 | 24 => 16,
        14 | 21 => 40,
        15 => 16,
        18 => 28,
        23 => 44,
        25 => 24,
        26 => 9,
        _ => 8,
    }
}

fn versions() -> impl Strategy<Value = Option<Version>> {
    prop_oneof![
        Just(None),
        prop::sample::select(Version::ALL.to_vec()).prop_map(Some),
        any::<u32>().prop_map(|v| Some(Version(v)))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_type_round_trips(m in any_message()) {
        let mut buf = [0u8; 240];
        let n = encode(&m, &mut buf).unwrap();
        prop_assert!(n <= 240);
        prop_assert_eq!(n, m.wire_len());
        prop_assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), m.msgtype().0);
        // 6.0 allows every message and every long form.
        prop_assert_eq!(decode(&buf[..n], Some(Version::WIN10_V6_0)), Ok(m));
    }

    #[test]
    fn truncation_below_the_minimum_is_too_short_naming_the_type(m in any_message(), cut in 0usize..240) {
        let mut buf = [0u8; 240];
        let n = encode(&m, &mut buf).unwrap();
        let t = m.msgtype().0;
        let min = doc_min_size(t);
        let len = cut % n;
        if (8..min).contains(&len) {
            prop_assert_eq!(
                decode(&buf[..len], None),
                Err(DecodeError::TooShort { msgtype: MessageType(t), len, min })
            );
        } else if len < 8 {
            prop_assert_eq!(decode(&buf[..len], None), Err(DecodeError::HeaderTooShort { len }));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_decoded_values_reencode_stably(
        ty in 0u32..32,
        body in prop::collection::vec(any::<u8>(), 0..260),
        v in versions(),
    ) {
        let mut bytes = ty.to_le_bytes().to_vec();
        bytes.extend_from_slice(&body);
        if let Ok(m) = decode(&bytes, v) {
            let mut buf = [0u8; 240];
            let n = encode(&m, &mut buf).unwrap();
            prop_assert_eq!(decode(&buf[..n], v), Ok(m));
        }
    }

    #[test]
    fn gpadl_shaped_input_never_panics_and_reencodes_stably(
        rangecount in 0u16..4,
        // Mostly consistent lengths (multiples of 8), so that many inputs decode.
        buflen in prop_oneof![3 => (0u16..50).prop_map(|k| k * 8), 1 => any::<u16>()],
        pages in 0u32..40,
        tail in 0u32..4096,
        offset in prop_oneof![Just(0u32), 0u32..5000],
        len in 20usize..=248,
        fill in any::<u64>(),
    ) {
        let mut bytes = vec![0u8; len];
        bytes[..4].copy_from_slice(&8u32.to_le_bytes());
        bytes[16..18].copy_from_slice(&buflen.to_le_bytes());
        bytes[18..20].copy_from_slice(&rangecount.to_le_bytes());
        if len >= 28 {
            let byte_count = pages * 4096 + tail % 2;
            bytes[20..24].copy_from_slice(&byte_count.to_le_bytes());
            bytes[24..28].copy_from_slice(&offset.to_le_bytes());
        }
        for (i, b) in bytes.iter_mut().enumerate().skip(28) {
            *b = (fill >> (i % 8 * 8)) as u8;
        }
        match decode(&bytes, None) {
            Ok(m) => {
                let mut buf = [0u8; 240];
                let n = encode(&m, &mut buf).unwrap();
                prop_assert_eq!(decode(&buf[..n], None), Ok(m));
            }
            Err(e) => {
                let expected = matches!(
                    e,
                    DecodeError::TooShort { .. }
                        | DecodeError::TooLong { .. }
                        | DecodeError::BadField { .. }
                        | DecodeError::BadLength { .. }
                );
                prop_assert!(expected, "unexpected error {:?}", e);
            }
        }
    }

    #[test]
    fn fully_random_input_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), v in versions()) {
        let r = decode(&bytes, v);
        if let Err(e) = r {
            // Display works for every error.
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
