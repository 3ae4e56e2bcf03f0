//! Configuration of the simulated host: which host it imitates, which versions it accepts, and
//! the devices it offers.

use vmbus_driver::guid::Guid;
use vmbus_driver::ids::ConnectionId;
use vmbus_driver::msg::OfferFlags;
use vmbus_driver::version::{FeatureFlags, Version};

pub use crate::devices::network::NetOptions;

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
    /// Integration service: heartbeat (a sequence number every [`Host::ic_tick`]).
    ///
    /// [`Host::ic_tick`]: crate::Host::ic_tick
    Heartbeat,
    /// Integration service: shutdown (a request on [`Host::request_shutdown`]).
    ///
    /// [`Host::request_shutdown`]: crate::Host::request_shutdown
    Shutdown,
    /// Integration service: time synchronisation (a sample every [`Host::ic_tick`]).
    ///
    /// [`Host::ic_tick`]: crate::Host::ic_tick
    TimeSync,
    /// Integration service: key-value pair exchange (a scripted exchange after negotiation).
    Kvp,
    /// Dynamic Memory (the hv-balloon device).
    DynamicMemory(DmOptions),
    /// Storage (storvsp: the vstor protocol) over a SCSI or IDE channel, a RAM disk behind it.
    Storage(StorageOptions),
    /// Synthetic network adapter (netvsp: NVSP + RNDIS) over a loopback switch.
    Network(NetOptions),
}

impl DeviceKind {
    /// Whether the kind is one of the integration services.
    pub const fn is_ic(&self) -> bool {
        matches!(
            self,
            Self::Heartbeat | Self::Shutdown | Self::TimeSync | Self::Kvp
        )
    }
}

/// How the Dynamic Memory device answers and behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmOptions {
    /// Accept DM_VERSION_REQUEST for 2.0 (Windows 10).
    pub accept_2_0: bool,
    /// Accept 1.0 (Windows 8).
    pub accept_1_0: bool,
    /// Accept 0.3 (Windows 7).
    pub accept_0_3: bool,
    /// Write [`DM_SCRIBBLE`](crate::devices::dynmem::DM_SCRIBBLE) over every page while the host
    /// holds it (a guest that reuses a returned page without zeroing it is caught).
    pub scribble: bool,
}

impl DmOptions {
    /// Every version accepted, ballooned pages scribbled.
    pub const ALL: Self = Self {
        accept_2_0: true,
        accept_1_0: true,
        accept_0_3: true,
        scribble: true,
    };
}

/// How the storage device answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageOptions {
    /// Accept protocol 6.2 (Windows 10).
    pub accept_win10: bool,
    /// Accept 6.0 (Windows 8.1).
    pub accept_win8_1: bool,
    /// Accept 5.1 (Windows 8).
    pub accept_win8: bool,
    /// Accept 4.2 (Windows 7: the shorter `vmscsi_request`) and 2.0 (Windows Server 2008).
    pub accept_win7: bool,
    /// QUERY_PROPERTIES max_transfer_bytes (at most 1 MiB); a larger buffer is refused.
    pub max_transfer: u32,
    /// QUERY_PROPERTIES max_channel_cnt (0: no multi-channel flag; the device never offers
    /// storage sub-channels itself).
    pub sub_channels: u16,
}

impl StorageOptions {
    /// The versions Hyper-V accepts today (5.1, 6.0, 6.2), 256 KiB transfers (OpenVMM's
    /// storvsp value), no multi-channel.
    pub const DEFAULT: Self = Self {
        accept_win10: true,
        accept_win8_1: true,
        accept_win8: true,
        accept_win7: false,
        max_transfer: 0x4_0000,
        sub_channels: 0,
    };

    /// Whether QUERY_PROTOCOL_VERSION for `v` (major << 8 | minor) is accepted.
    pub const fn accepts(&self, v: u16) -> bool {
        use crate::devices::storage::proto as p;
        match v {
            p::VERSION_WIN10 => self.accept_win10,
            p::VERSION_WIN8_1 => self.accept_win8_1,
            p::VERSION_WIN8 => self.accept_win8,
            p::VERSION_WIN7 | p::VERSION_WIN6 => self.accept_win7,
            _ => false,
        }
    }
}

/// Heartbeat class 57164f39-9115-4e78-ab55-382f3bd5422d.
pub const HEARTBEAT_CLASS: Guid = Guid::from_fields(
    0x57164f39,
    0x9115,
    0x4e78,
    [0xab, 0x55, 0x38, 0x2f, 0x3b, 0xd5, 0x42, 0x2d],
);
/// Shutdown class 0e0b6031-5213-4934-818b-38d90ced39db.
pub const SHUTDOWN_CLASS: Guid = Guid::from_fields(
    0x0e0b6031,
    0x5213,
    0x4934,
    [0x81, 0x8b, 0x38, 0xd9, 0x0c, 0xed, 0x39, 0xdb],
);
/// Time synchronisation class 9527e630-d0ae-497b-adce-e80ab0175caf.
pub const TIMESYNC_CLASS: Guid = Guid::from_fields(
    0x9527e630,
    0xd0ae,
    0x497b,
    [0xad, 0xce, 0xe8, 0x0a, 0xb0, 0x17, 0x5c, 0xaf],
);
/// Key-value pair exchange class a9a0f4e7-5a45-4d96-b827-8a841e8c03e6.
pub const KVP_CLASS: Guid = Guid::from_fields(
    0xa9a0f4e7,
    0x5a45,
    0x4d96,
    [0xb8, 0x27, 0x8a, 0x84, 0x1e, 0x8c, 0x03, 0xe6],
);
/// Dynamic Memory class 525074dc-8985-46e2-8057-a307dc18a502.
pub const DYNAMIC_MEMORY_CLASS: Guid = Guid::from_fields(
    0x525074dc,
    0x8985,
    0x46e2,
    [0x80, 0x57, 0xa3, 0x07, 0xdc, 0x18, 0xa5, 0x02],
);

/// Synthetic network adapter class f8615163-df3e-46c5-913f-f2d2f965ed0e.
pub const NETWORK_CLASS: Guid = Guid::from_fields(
    0xf8615163,
    0xdf3e,
    0x46c5,
    [0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e],
);

/// Synthetic SCSI controller class ba6163d9-04a1-4d29-b605-72e2ffb1dc7f.
pub const SCSI_CLASS: Guid = Guid::from_fields(
    0xba6163d9,
    0x04a1,
    0x4d29,
    [0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc, 0x7f],
);
/// IDE accelerator class 32412632-86cb-44a2-9b5c-50d1417354f5 (served like SCSI).
pub const IDE_CLASS: Guid = Guid::from_fields(
    0x32412632,
    0x86cb,
    0x44a2,
    [0x9b, 0x5c, 0x50, 0xd1, 0x41, 0x73, 0x54, 0xf5],
);

/// The instance GUID the service constructors use: `n` in the first field, the rest fixed.
const fn service_instance(n: u32) -> Guid {
    Guid::from_fields(
        0x5e7f_0000 | n,
        0x1c1c,
        0x4a4a,
        [0xb0, 0, 0, 0, 0, 0, 0, n as u8],
    )
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

    /// A device of `kind` with class `class` and the fixed instance number `n`.
    const fn service(class: Guid, n: u32, kind: DeviceKind) -> Self {
        Self::echo(class, service_instance(n)).with_kind(kind)
    }

    /// The heartbeat integration service.
    pub const fn heartbeat() -> Self {
        Self::service(HEARTBEAT_CLASS, 1, DeviceKind::Heartbeat)
    }

    /// The shutdown integration service.
    pub const fn shutdown() -> Self {
        Self::service(SHUTDOWN_CLASS, 2, DeviceKind::Shutdown)
    }

    /// The time synchronisation integration service.
    pub const fn timesync() -> Self {
        Self::service(TIMESYNC_CLASS, 3, DeviceKind::TimeSync)
    }

    /// The key-value pair exchange integration service.
    pub const fn kvp() -> Self {
        Self::service(KVP_CLASS, 4, DeviceKind::Kvp)
    }

    /// The Dynamic Memory device, every version accepted.
    pub const fn dynamic_memory() -> Self {
        Self::dynamic_memory_with(DmOptions::ALL)
    }

    /// The Dynamic Memory device with `opts`.
    pub const fn dynamic_memory_with(opts: DmOptions) -> Self {
        Self::service(DYNAMIC_MEMORY_CLASS, 5, DeviceKind::DynamicMemory(opts))
    }

    /// The synthetic network adapter with [`NetOptions::DEFAULT`].
    pub const fn network() -> Self {
        Self::network_with(NetOptions::DEFAULT)
    }

    /// The synthetic network adapter with `opts`.
    pub const fn network_with(opts: NetOptions) -> Self {
        Self::service(NETWORK_CLASS, 6, DeviceKind::Network(opts))
    }

    /// The synthetic SCSI controller with [`StorageOptions::DEFAULT`].
    pub const fn scsi() -> Self {
        Self::scsi_with(StorageOptions::DEFAULT)
    }

    /// The synthetic SCSI controller with `opts`.
    pub const fn scsi_with(opts: StorageOptions) -> Self {
        Self::service(SCSI_CLASS, 7, DeviceKind::Storage(opts))
    }

    /// The IDE accelerator channel with [`StorageOptions::DEFAULT`] (the same protocol and disk).
    pub const fn ide() -> Self {
        Self::service(IDE_CLASS, 8, DeviceKind::Storage(StorageOptions::DEFAULT))
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
    /// Hyper-V mode: offer every channel with a monitor id (monitor_allocated, ids distinct,
    /// the first 128 relids), as Hyper-V does for most devices, and honour the monitor pages
    /// (docs/protocol.md#monitor-pages). QEMU mode never allocates one. A device with
    /// [`DeviceSpec::monitored`] gets one even when this is off.
    pub monitor_ids: bool,
    /// The latency the host writes for each monitored channel into both monitor pages
    /// (`latency[group][bit]`, u16; the simulation's own value, in 100 ns units as Hyper-V's
    /// monitor latencies are said to be; nothing in the guest reads it but Linux's sysfs).
    pub monitor_latency: u16,
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
            monitor_ids: true,
            monitor_latency: MONITOR_LATENCY,
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
            monitor_ids: false,
            monitor_latency: MONITOR_LATENCY,
        }
    }
}

/// The monitor latency [`HostConfig::hyperv`] writes (100, i.e. 10 µs in 100 ns units).
pub const MONITOR_LATENCY: u16 = 100;
