//! GUID wire order, parsing and class names; protocol version values, try order and connection ids
//! (docs/protocol.md#guids-on-the-wire, #how-vmbus-uses-sint2, #well-known-device-classes,
//! #protocol-versions).

use vmbus_driver::guid::{self, Guid, GuidParseError};
use vmbus_driver::ids::ConnectionId;
use vmbus_driver::version::{self, FeatureFlags, Version};

#[test]
fn dynamic_memory_guid_uses_the_mixed_endian_wire_order_of_the_document() {
    let wire = [
        0xdc, 0x74, 0x50, 0x52, 0x85, 0x89, 0xe2, 0x46, 0x80, 0x57, 0xa3, 0x07, 0xdc, 0x18, 0xa5,
        0x02,
    ];
    assert_eq!(guid::DYNAMIC_MEMORY.0, wire);
    assert_eq!(
        Guid::parse("525074dc-8985-46e2-8057-a307dc18a502"),
        Ok(Guid(wire))
    );
    assert_eq!(
        Guid(wire).to_string(),
        "525074dc-8985-46e2-8057-a307dc18a502"
    );
    assert_eq!(
        Guid(wire).fields(),
        (
            0x525074dc,
            0x8985,
            0x46e2,
            [0x80, 0x57, 0xa3, 0x07, 0xdc, 0x18, 0xa5, 0x02]
        )
    );
}

#[test]
fn ide_guid_matches_freebsd_storvsc_wire_bytes() {
    // FreeBSD's storvsc writes its class GUIDs as wire-order byte arrays.
    let ide = [
        0x32, 0x26, 0x41, 0x32, 0xcb, 0x86, 0xa2, 0x44, 0x9b, 0x5c, 0x50, 0xd1, 0x41, 0x73, 0x54,
        0xf5,
    ];
    let scsi = [
        0xd9, 0x63, 0x61, 0xba, 0xa1, 0x04, 0x29, 0x4d, 0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc,
        0x7f,
    ];
    assert_eq!(guid::IDE.0, ide);
    assert_eq!(guid::SCSI.0, scsi);
}

#[test]
fn class_guid_constants_print_as_the_document_table() {
    // Strings copied from the docs/protocol.md#well-known-device-classes table and the Linux header
    // comments.
    let table = [
        (
            guid::NETWORK,
            "f8615163-df3e-46c5-913f-f2d2f965ed0e",
            "network",
        ),
        (guid::SCSI, "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f", "scsi"),
        (guid::IDE, "32412632-86cb-44a2-9b5c-50d1417354f5", "ide"),
        (
            guid::SHUTDOWN,
            "0e0b6031-5213-4934-818b-38d90ced39db",
            "shutdown",
        ),
        (
            guid::TIME_SYNC,
            "9527e630-d0ae-497b-adce-e80ab0175caf",
            "time sync",
        ),
        (
            guid::HEARTBEAT,
            "57164f39-9115-4e78-ab55-382f3bd5422d",
            "heartbeat",
        ),
        (guid::KVP, "a9a0f4e7-5a45-4d96-b827-8a841e8c03e6", "kvp"),
        (guid::VSS, "35fa2e29-ea23-4236-96ae-3a6ebacba440", "vss"),
        (
            guid::DYNAMIC_MEMORY,
            "525074dc-8985-46e2-8057-a307dc18a502",
            "dynamic memory",
        ),
        (
            guid::KEYBOARD,
            "f912ad6d-2b17-48ea-bd65-f927a61c7684",
            "keyboard",
        ),
        (guid::MOUSE, "cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a", "mouse"),
        (
            guid::SYNTHETIC_VIDEO,
            "da0a7802-e377-4aac-8e77-0558eb1073f8",
            "synthetic video",
        ),
        (
            guid::PCI_PASSTHROUGH,
            "44c4f61d-4444-4400-9d52-802e27ede19f",
            "pci pass-through",
        ),
        (
            guid::FILE_COPY,
            "34d14be3-dee4-41c8-9ae7-6b174977c192",
            "file copy",
        ),
        (
            guid::REMOTE_DESKTOP,
            "276aacf4-ac15-426c-98dd-7521ad3f01fe",
            "remote desktop",
        ),
    ];
    for (g, s, name) in table {
        assert_eq!(g.to_string(), s);
        assert_eq!(Guid::parse(s), Ok(g));
        assert_eq!(Guid::parse(&s.to_uppercase()), Ok(g));
        assert_eq!(g.class_name(), Some(name));
    }
    assert_eq!(Guid::NIL.class_name(), None);
}

#[test]
fn braces_are_accepted_and_malformed_strings_are_refused() {
    assert_eq!(
        Guid::parse("{9527E630-D0AE-497B-ADCE-E80AB0175CAF}"),
        Ok(guid::TIME_SYNC)
    );
    assert_eq!(Guid::parse("9527e630"), Err(GuidParseError::BadLength(8)));
    assert_eq!(
        Guid::parse("9527e630xd0ae-497b-adce-e80ab0175caf"),
        Err(GuidParseError::MissingDash(8))
    );
    assert_eq!(
        Guid::parse("9527e630-d0ae-497b-adce-e80ab0175caG"),
        Err(GuidParseError::BadHexDigit(35))
    );
    assert_eq!(
        Guid::parse("é527e630-d0ae-497b-adce-e80ab0175ca"),
        Err(GuidParseError::BadHexDigit(0))
    );
}

#[test]
fn hv_sock_service_ids_follow_the_vsock_template() {
    assert_eq!(
        guid::HV_SOCK_VSOCK_TEMPLATE.to_string(),
        "00000000-facb-11e6-bd58-64006a7986d3"
    );
    let port_22 = Guid::parse("00000016-facb-11e6-bd58-64006a7986d3").unwrap();
    assert_eq!(guid::is_vsock_service_id(&port_22), Some(22));
    assert_eq!(guid::is_vsock_service_id(&guid::NETWORK), None);
}

#[test]
fn versions_display_as_major_dot_minor() {
    let shown: Vec<String> = Version::ALL.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        shown,
        [
            "0.13", "1.1", "2.4", "3.0", "4.0", "4.1", "5.0", "5.1", "5.2", "5.3", "6.0"
        ]
    );
    assert!(Version::WIN10_V5_3.is_known());
    assert!(!Version(0x0005_0004).is_known());
}

#[test]
fn try_order_is_newest_first_and_6_0_only_in_the_opt_in_order() {
    assert!(Version::TRY_ORDER.windows(2).all(|w| w[0] > w[1]));
    assert_eq!(Version::TRY_ORDER[0], Version::WIN10_V5_3);
    assert!(!Version::TRY_ORDER.contains(&Version::WIN10_V6_0));
    assert_eq!(Version::TRY_ORDER_WITH_V6_0[0], Version::WIN10_V6_0);
    assert_eq!(&Version::TRY_ORDER_WITH_V6_0[1..], &Version::TRY_ORDER[..]);
}

#[test]
fn initiate_contact_goes_to_connection_4_from_5_0_and_1_before() {
    for v in Version::ALL {
        let expected = if v >= Version::new(5, 0) { 4 } else { 1 };
        assert_eq!(
            v.initiate_contact_connection_id(),
            ConnectionId(expected),
            "{v}"
        );
    }
    assert_eq!(version::MESSAGE_CONNECTION_ID, ConnectionId(1));
    assert_eq!(version::EVENT_CONNECTION_ID, ConnectionId(2));
    assert_eq!(version::MONITOR_CONNECTION_ID, ConnectionId(3));
    assert_eq!(version::MESSAGE_CONNECTION_ID_4, ConnectionId(4));
    assert_eq!(
        version::MESSAGE_REDIRECT_CONNECTION_ID,
        ConnectionId(0x800074)
    );
}

#[test]
fn capabilities_switch_on_at_the_documented_versions() {
    let first = |f: fn(Version) -> bool| Version::ALL.into_iter().find(|v| f(*v));
    assert_eq!(
        first(Version::supports_modifychannel),
        Some(Version::new(4, 1))
    );
    assert_eq!(
        first(Version::supports_modifychannel_response),
        Some(Version::new(5, 3))
    );
    assert_eq!(
        first(Version::has_per_channel_event_flags),
        Some(Version::new(2, 4))
    );
    assert_eq!(
        first(Version::honours_target_vcpu),
        Some(Version::new(3, 0))
    );
    assert_eq!(first(Version::should_unload), Some(Version::new(3, 0)));
    assert_eq!(
        first(Version::has_unload_response),
        Some(Version::new(1, 1))
    );
    assert_eq!(
        first(Version::has_per_channel_connection_id),
        Some(Version::new(1, 1))
    );
    assert_eq!(first(Version::uses_msg_sint), Some(Version::new(5, 0)));
    assert_eq!(first(Version::honours_msg_vtl), Some(Version::new(5, 1)));
    assert_eq!(
        first(Version::supports_tl_connect),
        Some(Version::new(4, 0))
    );
    assert_eq!(
        first(Version::supports_tl_connect_silo_id),
        Some(Version::new(5, 2))
    );
    assert_eq!(
        first(Version::supports_feature_flags),
        Some(Version::new(6, 0))
    );
}

#[test]
fn feature_flags_are_the_documented_bits_and_stay_open() {
    let all = [
        (FeatureFlags::GUEST_SPECIFIED_SIGNAL_PARAMETERS, 0x01),
        (FeatureFlags::CHANNEL_INTERRUPT_REDIRECTION, 0x02),
        (FeatureFlags::MODIFY_CONNECTION, 0x04),
        (FeatureFlags::CLIENT_ID, 0x08),
        (FeatureFlags::CONFIDENTIAL_CHANNELS, 0x10),
        (FeatureFlags::PAUSE_RESUME, 0x20),
        (FeatureFlags::SERVER_SPECIFIED_MONITOR_PAGES, 0x40),
        (FeatureFlags::GPA_PINNING, 0x80),
    ];
    for (f, bit) in all {
        assert_eq!(f.bits(), bit);
    }
    let unknown = FeatureFlags(0x8000_0000) | FeatureFlags::CLIENT_ID;
    assert!(unknown.contains(FeatureFlags::CLIENT_ID));
    assert!(!unknown.contains(FeatureFlags::PAUSE_RESUME));
    assert_eq!((unknown & FeatureFlags(0x8000_0000)).bits(), 0x8000_0000);
}
