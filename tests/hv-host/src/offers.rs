//! Devices and their channels: relid allocation (1..=2047), offers, hot add, rescind at any
//! moment, and RELID_RELEASED tracking.
//!
//! A rescinded relid stays allocated until the guest's RELID_RELEASED (or a bus reset, after which
//! the guest holds no references); only then may a new offer reuse it. The lowest free relid is
//! taken, so a device removed and re-added gets its old relid back once it was released.
//!
//! Connection ids: QEMU uses 16 + relid; Hyper-V mode uses OpenVMM's scheme
//! relid | SINT << 12 | VTL << 16 (SINT 2, VTL 0), so the two are never equal and a guest that
//! computes the id instead of copying it from the offer is caught.

use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ConnectionId, RelId};
use vmbus_driver::msg::{ChannelMessage, OfferChannel, OfferFlags};

use crate::config::{DeviceKind, DeviceSpec, Mode};
use crate::host::{Connection, Host, HostError, HostEvent};
use crate::log::GuestError;
use crate::open::RingState;

/// Relid table size: relids 1..=2047 (relid 0 and flag 0 are never a channel).
pub const RELID_SLOTS: usize = 2048;
/// Devices the host can hold at once.
pub const MAX_DEVICES: usize = 256;
/// OpenVMM's "no monitor" id.
pub(crate) const NO_MONITOR: u8 = 0xFF;

/// A device index in the host's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId(pub u16);

/// A channel's state as the host sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// Relid not in use.
    Free,
    /// Offered (or waiting for REQUESTOFFERS), closed.
    Offered,
    /// Opened by the guest.
    Open,
    /// Rescinded; waiting for RELID_RELEASED.
    Rescinded,
}

/// Per-channel counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelStats {
    /// Packets read from the guest-to-host ring.
    pub packets_in: u64,
    /// Packets written to the host-to-guest ring.
    pub packets_out: u64,
    /// Payload bytes read.
    pub bytes_in: u64,
    /// Payload bytes written.
    pub bytes_out: u64,
    /// SignalEvent calls for this channel.
    pub signals_from_guest: u64,
    /// Signals taken from the channel's pending bit in the child-to-parent monitor page.
    pub monitor_signals: u64,
    /// Of those, calls when the guest-to-host ring had no unread data or the channel was not open.
    pub spurious_signals: u64,
    /// Event flags set for the guest.
    pub signals_to_guest: u64,
    /// Packets dropped (too big for the device, or no room after a guest changed them).
    pub dropped: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    pub state: ChannelState,
    pub device: u16,
    pub sub_index: u16,
    pub monitor_id: u8,
    /// The offer was queued on this connection.
    pub announced: bool,
    /// Released by RELID_RELEASED and not reallocated since (to tell a duplicate release).
    pub released: bool,
    pub ring: RingState,
    pub stats: ChannelStats,
}

impl Channel {
    pub const FREE: Self = Self {
        state: ChannelState::Free,
        device: 0,
        sub_index: 0,
        monitor_id: NO_MONITOR,
        announced: false,
        released: false,
        ring: RingState::CLOSED,
        stats: ChannelStats {
            packets_in: 0,
            packets_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            signals_from_guest: 0,
            monitor_signals: 0,
            spurious_signals: 0,
            signals_to_guest: 0,
            dropped: 0,
        },
    };
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DeviceSlot {
    pub spec: Option<DeviceSpec>,
    /// Allocated relids (offered, open or rescinded); the slot is freed when it reaches 0.
    pub live: u32,
}

impl DeviceSlot {
    pub const EMPTY: Self = Self {
        spec: None,
        live: 0,
    };
}

/// A read-only view of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The relid.
    pub relid: RelId,
    /// State.
    pub state: ChannelState,
    /// The device it belongs to.
    pub device: DeviceId,
    /// Device class.
    pub class: Guid,
    /// 0 for the primary channel.
    pub sub_channel_index: u16,
    /// The offer's connection id.
    pub connection_id: ConnectionId,
    /// The ring GPADL while open.
    pub ring_gpadl: Option<vmbus_driver::ids::GpadlId>,
    /// OPENCHANNEL.target_vp while open.
    pub target_vp: u32,
    /// The device stopped reading because the guest's ring was bad.
    pub broken: bool,
    /// Counters.
    pub stats: ChannelStats,
}

impl Host {
    /// The connection id of `relid`'s offer in this mode.
    pub fn connection_id_of(&self, relid: RelId) -> ConnectionId {
        match self.config.mode {
            Mode::Qemu => ConnectionId(16 + relid.0),
            Mode::HyperV => ConnectionId(relid.0 | (2 << 12)),
        }
    }

    /// The channel signalled on `conn`, if `conn` is one of this mode's channel connection ids for
    /// a relid that is allocated.
    pub(crate) fn relid_of_connection(&self, conn: ConnectionId) -> Option<RelId> {
        let relid = match self.config.mode {
            Mode::Qemu => conn.0.checked_sub(16)?,
            Mode::HyperV => {
                if conn.0 >> 12 != 2 {
                    return None;
                }
                conn.0 & 0xFFF
            }
        };
        let relid = RelId(relid);
        (self.slot(relid)?.state != ChannelState::Free).then_some(relid)
    }

    pub(crate) fn slot(&self, relid: RelId) -> Option<&Channel> {
        if relid.0 == 0 {
            return None;
        }
        self.channels.get(relid.0 as usize)
    }

    pub(crate) fn slot_mut(&mut self, relid: RelId) -> Option<&mut Channel> {
        if relid.0 == 0 {
            return None;
        }
        self.channels.get_mut(relid.0 as usize)
    }

    /// The state of `relid` (Free for anything out of range).
    pub fn channel_state(&self, relid: RelId) -> ChannelState {
        self.slot(relid).map_or(ChannelState::Free, |c| c.state)
    }

    /// A view of channel `relid`, if allocated.
    pub fn channel(&self, relid: RelId) -> Option<ChannelInfo> {
        let c = self.slot(relid)?;
        if c.state == ChannelState::Free {
            return None;
        }
        let class = self.devices[usize::from(c.device)]
            .spec
            .map_or(Guid::NIL, |s| s.class);
        let open = c.state == ChannelState::Open;
        Some(ChannelInfo {
            relid,
            state: c.state,
            device: DeviceId(c.device),
            class,
            sub_channel_index: c.sub_index,
            connection_id: self.connection_id_of(relid),
            ring_gpadl: open.then_some(c.ring.gpadl),
            target_vp: c.ring.target_vp,
            broken: c.ring.broken,
            stats: c.stats,
        })
    }

    /// Every allocated channel, by relid.
    pub fn channels(&self) -> impl Iterator<Item = ChannelInfo> + '_ {
        (1..RELID_SLOTS as u32).filter_map(|r| self.channel(RelId(r)))
    }

    /// The relids of a device's channels (primary first, then sub-channels by index).
    pub fn device_relids(&self, dev: DeviceId) -> impl Iterator<Item = RelId> + '_ {
        let n = self.devices[usize::from(dev.0) % MAX_DEVICES]
            .spec
            .map_or(0, |s| s.sub_channels);
        (0..=n).filter_map(move |i| {
            (1..RELID_SLOTS as u32).map(RelId).find(|&r| {
                let c = &self.channels[r.0 as usize];
                c.device == dev.0
                    && c.sub_index == i
                    && matches!(c.state, ChannelState::Offered | ChannelState::Open)
            })
        })
    }

    fn free_relid(&self, after: u32) -> Option<RelId> {
        (after + 1..RELID_SLOTS as u32)
            .map(RelId)
            .find(|&r| self.channels[r.0 as usize].state == ChannelState::Free)
    }

    fn offers_requested(&self) -> bool {
        matches!(
            self.conn,
            Connection::Connected {
                offers_requested: true,
                ..
            }
        )
    }

    /// Adds a device (hot add at any time): allocates relids for its primary and sub-channels and,
    /// if the guest already asked for offers, sends them. Returns the device id.
    pub fn add_device(&mut self, spec: DeviceSpec) -> Result<DeviceId, HostError> {
        let dev = self
            .devices
            .iter()
            .position(|d| d.spec.is_none())
            .ok_or(HostError::TooManyDevices)?;
        // Check first, so a device is offered whole or not at all.
        let count = usize::from(spec.sub_channels) + 1;
        let free = self
            .channels
            .iter()
            .skip(1)
            .filter(|c| c.state == ChannelState::Free)
            .count();
        if free < count {
            return Err(HostError::NoFreeRelid);
        }
        if self.outbox.room() < count {
            return Err(HostError::QueueFull);
        }
        self.devices[dev] = DeviceSlot {
            spec: Some(spec),
            // count <= 65536.
            live: count as u32,
        };
        let monitored =
            (spec.monitored || self.config.monitor_ids) && self.config.mode == Mode::HyperV;
        let mut last = 0;
        for i in 0..count {
            let Some(relid) = self.free_relid(last) else {
                break;
            };
            last = relid.0;
            let monitor_id = if monitored {
                // 128 monitor ids (4 trigger groups of 32); relids are unique, so this is too
                // for the first 128 channels, and "none" after.
                u8::try_from(relid.0 - 1)
                    .ok()
                    .filter(|m| *m < 128)
                    .unwrap_or(NO_MONITOR)
            } else {
                NO_MONITOR
            };
            self.channels[relid.0 as usize] = Channel {
                state: ChannelState::Offered,
                // dev < MAX_DEVICES = 256, i <= u16::MAX.
                device: dev as u16,
                sub_index: i as u16,
                monitor_id,
                ..Channel::FREE
            };
            if self.offers_requested() {
                // Room checked above.
                let _ = self.outbox.push(HostEvent::Offer(relid));
            }
        }
        self.process();
        Ok(DeviceId(dev as u16))
    }

    /// Packets the host took from the guest's rings, on every channel since the start (the
    /// channels freed since included).
    pub fn packets_received(&self) -> u64 {
        self.counters.packets_of_freed_channels
            + self
                .channels
                .iter()
                .map(|c| c.stats.packets_in)
                .sum::<u64>()
    }

    /// Removes a device: rescinds its sub-channels, then its primary.
    pub fn remove_device(&mut self, dev: DeviceId) -> Result<(), HostError> {
        let i = usize::from(dev.0);
        if self.devices.get(i).and_then(|d| d.spec).is_none() {
            return Err(HostError::UnknownDevice(dev.0));
        }
        // Sub-channels first, the primary last.
        let n = self.devices[i].spec.map_or(0, |s| s.sub_channels);
        for sub in (0..=n).rev() {
            let found = (1..RELID_SLOTS as u32).map(RelId).find(|&r| {
                let c = &self.channels[r.0 as usize];
                c.device == dev.0
                    && c.sub_index == sub
                    && matches!(c.state, ChannelState::Offered | ChannelState::Open)
            });
            if let Some(r) = found {
                self.rescind(r)?;
            }
        }
        Ok(())
    }

    /// Rescinds channel `relid` at any moment (Hyper-V; QEMU with the project's series on
    /// `device_del`, build/qemu/). An open channel is closed on the host side at once; its GPADLs
    /// stay until the guest tears them down (answered at once) or releases the relid. A channel
    /// the guest was never told about is simply freed.
    pub fn rescind(&mut self, relid: RelId) -> Result<(), HostError> {
        let announced = match self.slot(relid) {
            Some(c) if matches!(c.state, ChannelState::Offered | ChannelState::Open) => c.announced,
            _ => return Err(HostError::UnknownRelid(relid)),
        };
        if announced && self.outbox.room() == 0 {
            return Err(HostError::QueueFull);
        }
        self.stop_device(relid);
        // Teardowns waiting for the close complete now, as OpenVMM's revoke does.
        self.finish_deferred_teardowns(relid);
        if announced {
            if let Some(c) = self.slot_mut(relid) {
                c.state = ChannelState::Rescinded;
            }
            self.monitor_changed();
            let _ = self.outbox.push(HostEvent::Rescind(relid));
        } else {
            self.gpadls.drop_channel(relid);
            self.free_channel(relid);
        }
        self.process();
        Ok(())
    }

    fn free_channel(&mut self, relid: RelId) {
        let Some(c) = self.slot_mut(relid) else {
            return;
        };
        if c.state == ChannelState::Free {
            return;
        }
        let dev = usize::from(c.device);
        let packets = c.stats.packets_in;
        *c = Channel {
            released: c.released,
            ..Channel::FREE
        };
        self.counters.packets_of_freed_channels += packets;
        self.monitor_changed();
        // A device whose channels are all gone leaves the table.
        let d = &mut self.devices[dev];
        d.live = d.live.saturating_sub(1);
        if d.live == 0 {
            *d = DeviceSlot::EMPTY;
        }
    }

    /// A bus reset for one relid: rescinded relids are freed, others go back to "offered, not
    /// yet announced".
    pub(crate) fn reset_channel(&mut self, relid: RelId) {
        let Some(state) = self.slot(relid).map(|c| c.state) else {
            return;
        };
        match state {
            ChannelState::Free => {}
            ChannelState::Rescinded => self.free_channel(relid),
            ChannelState::Offered | ChannelState::Open => {
                self.stop_device(relid);
                if let Some(c) = self.slot_mut(relid) {
                    c.state = ChannelState::Offered;
                    c.announced = false;
                    c.ring = RingState::CLOSED;
                }
            }
        }
    }

    /// REQUESTOFFERS: every offered channel in relid order, then ALLOFFERS_DELIVERED. Hyper-V
    /// refuses a second request on one connection (OpenVMM's OffersAlreadySent); QEMU answers it
    /// with ALLOFFERS_DELIVERED alone.
    pub(crate) fn request_offers(&mut self) {
        if let Connection::Connected {
            offers_requested, ..
        } = &mut self.conn
        {
            if *offers_requested && self.config.mode == Mode::HyperV {
                self.guest_error(GuestError::OffersAlreadySent);
                return;
            }
            *offers_requested = true;
        }
        if self
            .hostile
            .silences(vmbus_driver::msg::MessageType::REQUESTOFFERS)
        {
            self.counters.silenced += 1;
            return;
        }
        // Channels already announced on this connection are not offered again (QEMU marks
        // each channel's offer as sent and a repeated REQUESTOFFERS finds none left).
        for r in 1..RELID_SLOTS {
            let c = &self.channels[r];
            if !c.announced && matches!(c.state, ChannelState::Offered | ChannelState::Open) {
                // r < 2048 and the outbox holds more than 2048 events.
                let _ = self.outbox.push(HostEvent::Offer(RelId(r as u32)));
            }
        }
        let _ = self.outbox.push(HostEvent::AllOffersDelivered);
    }

    /// Sends the offer of `relid` unless it was rescinded or already announced meanwhile.
    pub(crate) fn send_offer(&mut self, relid: RelId) {
        let Some(c) = self.slot(relid).copied() else {
            return;
        };
        if c.announced || !matches!(c.state, ChannelState::Offered | ChannelState::Open) {
            return;
        }
        let Some(spec) = self.devices[usize::from(c.device)].spec else {
            return;
        };
        let qemu = self.config.mode == Mode::Qemu;
        let offer = OfferChannel {
            if_type: spec.class,
            if_instance: spec.instance,
            reserved1: 0,
            reserved2: 0,
            chn_flags: if qemu { OfferFlags(0) } else { spec.flags },
            mmio_megabytes: spec.mmio_megabytes,
            user_def: [0; 120],
            sub_channel_index: c.sub_index,
            mmio_megabytes_optional: 0,
            child_relid: relid,
            monitor_id: if qemu {
                0
            } else if self.hostile.bad_monitor_ids && c.monitor_id != NO_MONITOR {
                crate::hostile::BAD_MONITOR_ID_BASE.saturating_add(c.monitor_id)
            } else {
                c.monitor_id
            },
            monitor_allocated: !qemu && c.monitor_id != NO_MONITOR,
            is_dedicated_interrupt: true,
            connection_id: self.connection_id_of(relid),
        };
        if let Some(c) = self.slot_mut(relid) {
            c.announced = true;
        }
        self.monitor_changed();
        self.counters.offers_sent += 1;
        self.send(ChannelMessage::OfferChannel(offer));
        if self.hostile.duplicate_offers {
            self.counters.offers_sent += 1;
            self.send(ChannelMessage::OfferChannel(offer));
        }
    }

    /// RELID_RELEASED. Hyper-V, and QEMU with the project's series, free a rescinded relid,
    /// dropping GPADLs the guest did not tear down (OpenVMM: "no need to tear down"; QEMU: "from
    /// RELID_RELEASED on they are gone"). On Hyper-V a duplicate release, a release of an unknown
    /// relid, of a closed channel that was never rescinded or of an open channel is a guest error
    /// and changes nothing (OpenVMM would take a release of a closed, never-rescinded channel as
    /// the guest giving up the offer; this host counts it, as the project's driver must never do
    /// it); QEMU ignores every release but that of a rescinded channel
    /// (docs/protocol.md#qemus-bus-state-machine).
    pub(crate) fn relid_released(&mut self, relid: RelId) {
        let rescinded = self
            .slot(relid)
            .is_some_and(|c| c.state == ChannelState::Rescinded);
        if self.config.mode == Mode::Qemu && !rescinded {
            self.counters.ignored += 1;
            return;
        }
        let Some(c) = self.slot(relid).copied() else {
            self.guest_error(GuestError::UnknownRelid(relid));
            return;
        };
        match c.state {
            ChannelState::Rescinded => {
                self.counters.releases += 1;
                self.counters.gpadls_dropped += self.gpadls.drop_channel(relid) as u64;
                if let Some(c) = self.slot_mut(relid) {
                    c.released = true;
                }
                self.free_channel(relid);
            }
            ChannelState::Free if c.released => {
                self.guest_error(GuestError::DuplicateRelease(relid));
            }
            ChannelState::Free => self.guest_error(GuestError::UnknownRelid(relid)),
            ChannelState::Offered => self.guest_error(GuestError::ReleaseNotRescinded(relid)),
            ChannelState::Open => self.guest_error(GuestError::ReleaseWhileOpen(relid)),
        }
    }

    /// The device kind of `relid`'s device.
    pub(crate) fn kind_of(&self, relid: RelId) -> Option<DeviceKind> {
        let c = self.slot(relid)?;
        self.devices[usize::from(c.device)].spec.map(|s| s.kind)
    }
}
