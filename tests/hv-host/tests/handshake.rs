//! Version negotiation by Hyper-V's and by QEMU's rules, checked on the bytes in the SynIC slot.

mod common;

use common::*;
use hv_host::{Connection, GuestError, HostConfig};
use vmbus_driver::hv::{HvMessageType, HvStatus};
use vmbus_driver::ids::ConnectionId;
use vmbus_driver::msg::{ChannelMessage, ContactTarget, InitiateContact, MessageType};
use vmbus_driver::version::Version;

/// VERSION_RESPONSE bytes from the slot: type 15 at 0, version_supported at 8, connection_state
/// at 9, msg_conn_id at 12 (docs/protocol.md#message-layouts).
fn version_bytes(g: &mut Guest) -> (u8, Vec<u8>) {
    let got = g.take_with(None);
    assert_eq!(got.len(), 1, "{got:?}");
    (got[0].slot_size, got[0].bytes.clone())
}

#[test]
fn hyperv_accepts_5_3_on_connection_4_and_hands_back_its_msg_conn_id() {
    let mut cfg = HostConfig::hyperv();
    cfg.msg_conn_id = ConnectionId(0x42);
    let mut g = Guest::new(cfg, 1);
    let st = g.post_on(ConnectionId(4), &initiate_contact(Version::WIN10_V5_3));
    assert_eq!(st, HvStatus::SUCCESS);
    let (size, b) = version_bytes(&mut g);
    assert_eq!(size, 16);
    assert_eq!(u32le(&b, 0), 15, "VERSION_RESPONSE");
    assert_eq!(b[8], 1, "version_supported");
    assert_eq!(b[9], 0, "connection_state");
    assert_eq!(u32le(&b, 12), 0x42, "msg_conn_id");
    assert!(matches!(
        g.host.connection(),
        Connection::Connected {
            version: Version::WIN10_V5_3,
            msg_conn: ConnectionId(0x42),
            ..
        }
    ));
}

#[test]
fn hyperv_after_the_handshake_messages_on_another_connection_are_refused() {
    let mut cfg = HostConfig::hyperv();
    cfg.msg_conn_id = ConnectionId(0x42);
    let mut g = Guest::new(cfg, 1);
    assert!(g.accepted(Version::WIN10_V5_3));
    // Connection 1 is registered (it is VMBus's), but this connection's messages go to 0x42.
    assert_eq!(
        g.post_on(ConnectionId(1), &ChannelMessage::RequestOffers),
        HvStatus::SUCCESS
    );
    assert!(
        g.take().is_empty(),
        "no offers for a message on the wrong connection"
    );
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::WrongConnection {
            msgtype: MessageType::REQUESTOFFERS,
            got: ConnectionId(1),
            expected: ConnectionId(0x42)
        })
    );
    // An unregistered connection fails at the hypercall.
    assert_eq!(
        g.post_on(ConnectionId(7), &ChannelMessage::RequestOffers),
        HvStatus::INVALID_CONNECTION_ID
    );
}

#[test]
fn hyperv_refuses_5_0_on_connection_1_and_versions_outside_its_range() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    g.post_on(ConnectionId(1), &initiate_contact(Version::WIN10_V5));
    let (_, b) = version_bytes(&mut g);
    assert_eq!((b[8], u32le(&b, 12)), (0, 0));
    assert_eq!(g.host.counters().guest_errors, 1);
    // 6.0 is beyond the configured 5.3.
    assert!(!g.accepted(Version::WIN10_V6_0));
    // An unknown version number inside the range is refused: Hyper-V matches exact versions.
    g.post_on(ConnectionId(1), &initiate_contact(Version::new(2, 1)));
    let (_, b) = version_bytes(&mut g);
    assert_eq!(b[8], 0);
    assert_eq!(g.host.connection(), Connection::Disconnected);
    // Below 5.0 the reply's msg_conn_id echoes the version (OpenVMM).
    assert!(g.accepted(Version::WIN10));
    assert_eq!(
        g.host.log().iter().last().map(|r| r.msgtype),
        Some(MessageType::VERSION_RESPONSE)
    );
}

#[test]
fn hyperv_below_5_0_reply_carries_the_version_in_msg_conn_id() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    g.post_on(ConnectionId(1), &initiate_contact(Version::WIN8_1));
    let (_, b) = version_bytes(&mut g);
    assert_eq!(b[8], 1);
    assert_eq!(u32le(&b, 12), 0x0003_0000);
}

#[test]
fn hyperv_one_monitor_page_without_the_other_fails_the_connection() {
    let mut g = Guest::new(HostConfig::hyperv(), 1);
    let ChannelMessage::InitiateContact(mut ic) = initiate_contact(Version::WIN10_V5_2) else {
        unreachable!()
    };
    ic.monitor_page1 = 0x5000;
    g.post_on(ConnectionId(4), &ChannelMessage::InitiateContact(ic));
    let (_, b) = version_bytes(&mut g);
    assert_eq!((b[8], b[9]), (1, 2), "supported, FAILED_UNKNOWN_FAILURE");
    assert_eq!(g.host.connection(), Connection::Disconnected);
}

#[test]
fn hyperv_6_0_answers_the_20_byte_form_with_the_feature_intersection() {
    let mut cfg = HostConfig::hyperv();
    cfg.max_version = Version::WIN10_V6_0;
    cfg.features = vmbus_driver::version::FeatureFlags(0x10 | 0x08);
    let mut g = Guest::new(cfg, 1);
    let m = ChannelMessage::InitiateContact(InitiateContact {
        target: ContactTarget::MessageSint {
            msg_sint: 2,
            msg_vtl: 0,
            feature_flags: vmbus_driver::version::FeatureFlags(0x10 | 0x01),
        },
        ..match initiate_contact(Version::WIN10_V6_0) {
            ChannelMessage::InitiateContact(ic) => ic,
            _ => unreachable!(),
        }
    });
    g.post_on(ConnectionId(4), &m);
    let (size, b) = version_bytes(&mut g);
    assert_eq!(size, 20);
    assert_eq!(b[8], 1);
    assert_eq!(u32le(&b, 16), 0x10, "supported_features = host & requested");
}

#[test]
fn qemu_refuses_connection_4_at_the_hypercall() {
    let mut g = Guest::new(HostConfig::qemu(), 1);
    let st = g.post_on(ConnectionId(4), &initiate_contact(Version::WIN10_V5_3));
    assert_eq!(st, HvStatus::INVALID_CONNECTION_ID);
    assert!(g.take().is_empty());
    assert_eq!(g.host.counters().hypercall_failures, 1);
}

#[test]
fn qemu_accepts_by_range_test_and_answers_16_bytes_with_msg_conn_id_0() {
    let mut g = Guest::new(HostConfig::qemu(), 1);
    g.post_on(ConnectionId(1), &initiate_contact(Version::WIN10_V4_1));
    let (size, b) = version_bytes(&mut g);
    assert_eq!((size, b[8]), (16, 0), "4.1 refused");
    // 2.1 is no known version, but 0 < v <= 4.0.
    g.post_on(ConnectionId(1), &initiate_contact(Version::new(2, 1)));
    let (size, b) = version_bytes(&mut g);
    assert_eq!((size, b[8], b[9], u32le(&b, 12)), (16, 1, 0, 0));
    g.post_on(ConnectionId(1), &initiate_contact(Version::WIN10));
    let (_, b) = version_bytes(&mut g);
    assert_eq!(b[8], 1);
    assert!(matches!(
        g.host.connection(),
        Connection::Connected {
            version: Version::WIN10,
            ..
        }
    ));
}

#[test]
fn qemu_rejects_message_types_from_18_and_non_vmbus_hv_types_at_the_hypercall() {
    let mut g = Guest::new(HostConfig::qemu(), 1);
    // MODIFYCHANNEL (22) header only.
    let mut raw = [0u8; 16];
    raw[0] = 22;
    assert_eq!(
        g.host
            .post_message(ConnectionId(1), HvMessageType::VMBUS, &raw),
        HvStatus::INVALID_HYPERCALL_INPUT
    );
    raw[0] = 3;
    assert_eq!(
        g.host.post_message(ConnectionId(1), HvMessageType(2), &raw),
        HvStatus::INVALID_HYPERCALL_INPUT
    );
    // The PostMessage block rules come first: type 0 and payloads over 240 are INVALID_PARAMETER.
    assert_eq!(
        g.host.post_message(ConnectionId(1), HvMessageType(0), &raw),
        HvStatus::INVALID_PARAMETER
    );
    assert_eq!(
        g.host
            .post_message(ConnectionId(1), HvMessageType::VMBUS, &[0u8; 241]),
        HvStatus::INVALID_PARAMETER
    );
    assert_eq!(
        g.host
            .post_message(ConnectionId(0x0100_0001), HvMessageType::VMBUS, &raw),
        HvStatus::INVALID_HYPERCALL_INPUT
    );
}

#[test]
fn every_initiate_contact_resets_the_bus() {
    for cfg in [HostConfig::hyperv(), HostConfig::qemu()] {
        let mut g = Guest::new(cfg, 8);
        g.host
            .add_device(hv_host::DeviceSpec::echo(class(1), instance(1)))
            .unwrap();
        let offers = g.connect(Version::WIN10);
        let relid = offers[0].child_relid;
        assert_eq!(g.open(relid, vmbus_driver::ids::GpadlId(7), 0, 2, 2), 0);
        assert_eq!(
            g.host.channel(relid).unwrap().state,
            hv_host::ChannelState::Open
        );
        assert!(g.accepted(Version::WIN10));
        let ch = g.host.channel(relid).unwrap();
        assert_eq!(ch.state, hv_host::ChannelState::Offered, "{cfg:?}");
        // The GPADL went with the reset: the id is free again.
        g.post(&ChannelMessage::RequestOffers);
        g.take();
        g.create_gpadl(relid, vmbus_driver::ids::GpadlId(7), 0, 4);
        assert!(matches!(
            g.msgs()[..],
            [ChannelMessage::GpadlCreated(c)] if c.creation_status == 0
        ));
    }
}

#[test]
fn a_full_inbound_queue_answers_insufficient_buffers() {
    let mut g = Guest::new(HostConfig::qemu(), 1);
    g.post_on(ConnectionId(1), &initiate_contact(Version::WIN10));
    // The VERSION_RESPONSE sits in the slot; QEMU takes nothing new while a message waits, and
    // one more reply (to the next INITIATE_CONTACT) then waits for the slot.
    let mut ok = 0;
    let mut st = HvStatus::SUCCESS;
    for _ in 0..40 {
        st = g.post_on(ConnectionId(1), &initiate_contact(Version::WIN10));
        if st != HvStatus::SUCCESS {
            break;
        }
        ok += 1;
    }
    assert_eq!(st, HvStatus::INSUFFICIENT_BUFFERS);
    assert_eq!(
        ok,
        1 + 16,
        "one processed (its reply waits), then 16 queued"
    );
}
