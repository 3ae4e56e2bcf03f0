//! Configuration of the simulated host: which host it imitates, which versions it accepts, and
//! the devices it offers.

use vmbus_driver::guid::Guid;
use vmbus_driver::ids::ConnectionId;
use vmbus_driver::msg::OfferFlags;
use vmbus_driver::version::{FeatureFlags, Version};

/// Which host's rules the simulation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hyper-V as OpenVMM's server reproduces it: exact version list, connection 4 for >= 5.0,
    /// refusals answered with a failure status, rescinds.
    HyperV,
    /// QEMU's `vmbus-bridge` (docs/protocol.md#qemus-version-handshake, #qemus-bus-state-machine):
    /// connection 1 only, versions by the range test `0 < v <= 4.0`, invalid requests silently
    /// ignored, one message at a time, no rescinds.
    Qemu,
}

/// What a device does with its channel once open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Writes every in-band packet's payload back on the host-to-guest ring.
    Echo,
    /// Consumes packets and counts them.
    Sink,
    /// Produces `packets` in-band packets of `payload_len` bytes after open, then consumes.
    Source {
        /// Packets to send.
        packets: u32,
        /// Payload bytes per packet (at most 4096).
        payload_len: u16,
    },
    /// Never touches its rings (an offer-only device).
    Idle,
}

/// One device of the configurable device list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Interface (class) GUID.
    pub class: Guid,
    /// Instance GUID (sub-channels repeat it).
    pub instance: Guid,
    /// Sub-channels offered after the primary (sub_channel_index 1..=n).
    pub sub_channels: u16,
    /// Behaviour on the rings.
    pub kind: DeviceKind,
    /// Offer chn_flags.
    pub flags: OfferFlags,
    /// Offer mmio_megabytes.
    pub mmio_megabytes: u16,
    /// Ask for a monitor id (Hyper-V mode only; QEMU never allocates one).
    pub monitored: bool,
}

impl DeviceSpec {
    /// An echo device with no sub-channels.
    pub const fn echo(class: Guid, instance: Guid) -> Self {
        Self {
            class,
            instance,
            sub_channels: 0,
            kind: DeviceKind::Echo,
            flags: OfferFlags(0),
            mmio_megabytes: 0,
            monitored: false,
        }
    }

    /// The same device with `n` sub-channels.
    pub const fn with_sub_channels(mut self, n: u16) -> Self {
        self.sub_channels = n;
        self
    }

    /// The same device with another behaviour.
    pub const fn with_kind(mut self, kind: DeviceKind) -> Self {
        self.kind = kind;
        self
    }
}

/// Host configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    /// Hyper-V or QEMU rules.
    pub mode: Mode,
    /// Oldest version accepted (Hyper-V mode; exact known versions only).
    pub min_version: Version,
    /// Newest version accepted (Hyper-V mode; QEMU mode always caps at 4.0).
    pub max_version: Version,
    /// The connection id handed back in VERSION_RESPONSE for >= 5.0 (OpenVMM's VTL0 server uses
    /// 1; what Hyper-V uses is unconfirmed, so tests set others to check the guest reads it).
    pub msg_conn_id: ConnectionId,
    /// 6.0 features the host supports (answered as the intersection with the request).
    pub features: FeatureFlags,
    /// Guest-to-host messages the host buffers before PostMessage fails with
    /// INSUFFICIENT_BUFFERS (QEMU: 16); at most [`MAX_INBOUND`](crate::host::MAX_INBOUND).
    pub inbound_capacity: usize,
}

impl HostConfig {
    /// Hyper-V accepting every version from 0.13 to 5.3, msg_conn_id 1.
    pub const fn hyperv() -> Self {
        Self {
            mode: Mode::HyperV,
            min_version: Version::WS2008,
            max_version: Version::WIN10_V5_3,
            msg_conn_id: ConnectionId(1),
            features: FeatureFlags::NONE,
            inbound_capacity: 16,
        }
    }

    /// QEMU's vmbus-bridge.
    pub const fn qemu() -> Self {
        Self {
            mode: Mode::Qemu,
            min_version: Version::WS2008,
            max_version: Version::WIN10,
            msg_conn_id: ConnectionId(1),
            features: FeatureFlags::NONE,
            inbound_capacity: 16,
        }
    }
}
