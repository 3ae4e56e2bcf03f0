//! The version walk against hosts older than the driver: refusals on the way down are expected
//! and logged below warning level; only a walk that ends with no version accepted warns.

mod common;

use common::logcap;
use hv_host::HostConfig;
use sim_system::{World, WorldConfig};
use vmbus_driver::driver::ConnectionState;
use vmbus_driver::version::Version;

/// Boots the repository's world against `host` with the driver asking for 6.0 first, and
/// returns the version accepted and the warnings logged on the way.
fn walk(host: HostConfig) -> (Option<Version>, u32, Vec<String>) {
    logcap::install();
    let cfg = WorldConfig {
        host,
        max_version: Version::WIN10_V6_0,
        ..WorldConfig::default()
    };
    let mut w = World::repository(&cfg);
    w.start();
    for _ in 0..300 {
        if w.driver().connection().state == ConnectionState::Connected {
            break;
        }
        w.step();
    }
    let c = w.driver().connection();
    assert_eq!(c.state, ConnectionState::Connected);
    (c.version, c.versions_refused, logcap::take())
}

#[test]
fn a_hyperv_host_refusing_the_newer_versions_is_not_a_warning() {
    // VERSION_RESPONSE "not supported" for 6.0 down to 5.1.
    let host = HostConfig {
        max_version: Version::WIN10_V5,
        ..HostConfig::hyperv()
    };
    let (version, refused, warnings) = walk(host);
    assert_eq!(version, Some(Version::WIN10_V5));
    assert!(refused > 0, "the walk went down");
    assert_eq!(warnings, Vec::<String>::new());
}

#[test]
fn a_host_without_connection_4_is_not_a_warning() {
    // QEMU refuses the posts on connection 4 (5.0 and newer) with INVALID_CONNECTION_ID.
    let (version, refused, warnings) = walk(HostConfig::qemu());
    assert_eq!(version, Some(Version::WIN10));
    assert!(refused > 0, "the walk went down");
    assert_eq!(warnings, Vec::<String>::new());
}
