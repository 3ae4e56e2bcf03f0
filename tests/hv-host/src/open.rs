//! OPENCHANNEL (GPADL and ring layout checks, docs/protocol.md#ring-placement-in-the-gpadl),
//! CLOSECHANNEL, MODIFYCHANNEL, and the guest's channel signals.
//!
//! Hyper-V mode (OpenVMM's server): OPENCHANNEL for an unknown relid or an open channel is a guest
//! error with no reply; for a rescinded channel it is ignored; a missing, incomplete, foreign or
//! busy ring GPADL, or a ring layout other than "each ring one header page plus at least one data
//! page" (downstream offset >= 2, GPADL pages >= offset + 2), is answered OPENCHANNEL_RESULT with
//! status 0x8000FFFF. QEMU mode: unknown relid or a channel not closed is ignored, failures are
//! status 1, the GPADL's relid is not checked.

use vmbus_driver::ids::RelId;
use vmbus_driver::msg::{ChannelMessage, ModifyChannelResponse, OpenChannel, OpenChannelResult};

use crate::config::Mode;
use crate::gpadl::{GpadlState, STATUS_UNSUCCESSFUL};
use crate::host::Host;
use crate::log::GuestError;
use crate::offers::ChannelState;

/// QEMU's OPENCHANNEL_RESULT failure status.
pub const QEMU_OPEN_FAILED: u32 = 1;

/// The host's private state of an open channel's rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingState {
    pub gpadl: vmbus_driver::ids::GpadlId,
    pub gpadl_slot: u16,
    /// Page index of the host-to-guest ring's header in the GPADL.
    pub downstream: u32,
    pub target_vp: u32,
    /// The host's read index of the guest-to-host ring (never read back from guest memory).
    pub out_read: u32,
    /// The host's write index of the host-to-guest ring.
    pub in_write: u32,
    /// Indices taken from the headers at the first poll after open.
    pub started: bool,
    /// The device should look at its rings (guest signal, open, or waiting for space).
    pub signalled: bool,
    /// The device stopped: the guest's ring was corrupt or unreachable.
    pub broken: bool,
    /// A SignalEvent arrived since the device last looked (to detect needless signals).
    pub guest_signal: bool,
    /// The device waits for room in the host-to-guest ring (pending_send_sz may be set).
    pub waiting_space: bool,
    /// Packets a source device still has to send.
    pub source_left: u32,
    /// The device holds the GPADL but the host has not sent OPENCHANNEL_RESULT yet (openid to
    /// answer with): the open is pending, the device does not run.
    pub result_pending: Option<u32>,
}

impl RingState {
    pub const CLOSED: Self = Self {
        gpadl: vmbus_driver::ids::GpadlId(0),
        gpadl_slot: 0,
        downstream: 0,
        target_vp: 0,
        out_read: 0,
        in_write: 0,
        started: false,
        signalled: false,
        broken: false,
        guest_signal: false,
        waiting_space: false,
        source_left: 0,
        result_pending: None,
    };
}

impl Host {
    pub(crate) fn open_channel(&mut self, o: &OpenChannel) {
        let relid = o.child_relid;
        let qemu = self.config.mode == Mode::Qemu;
        match self.channel_state(relid) {
            ChannelState::Offered => {}
            ChannelState::Rescinded => {
                self.counters.ignored += 1;
                return;
            }
            ChannelState::Open if !qemu => {
                return self.guest_error(GuestError::ChannelAlreadyOpen(relid));
            }
            ChannelState::Free if !qemu => {
                return self.guest_error(GuestError::UnknownRelid(relid));
            }
            _ => {
                self.counters.ignored += 1;
                return;
            }
        }
        let fail = if qemu {
            QEMU_OPEN_FAILED
        } else {
            STATUS_UNSUCCESSFUL
        };
        let slot = self.gpadls.find(o.ring_gpadl).filter(|&s| {
            let e = self.gpadls.entry(s);
            e.state == GpadlState::Ready && e.user.is_none() && (qemu || e.relid == relid)
        });
        let k = o.downstream_ring_page_offset;
        let layout_ok = |pages: u32| k >= 2 && pages >= k.saturating_add(2);
        let Some(slot) = slot.filter(|&s| layout_ok(self.gpadls.entry(s).pages)) else {
            self.send(ChannelMessage::OpenChannelResult(OpenChannelResult {
                child_relid: relid,
                openid: o.openid,
                status: fail,
            }));
            return;
        };
        self.gpadls.entry_mut(slot).user = Some(relid);
        let source = match self.kind_of(relid) {
            Some(crate::config::DeviceKind::Source { packets, .. }) => packets,
            _ => 0,
        };
        if let Some(c) = self.slot_mut(relid) {
            c.state = ChannelState::Open;
            c.ring = RingState {
                gpadl: o.ring_gpadl,
                // slot < MAX_GPADLS = 4096.
                gpadl_slot: slot as u16,
                downstream: k,
                target_vp: o.target_vp.0,
                // As if the guest had signalled: the device may send first (QEMU does this).
                signalled: true,
                source_left: source,
                ..RingState::CLOSED
            };
        }
        self.counters.opens += 1;
        if self.hold_open_results {
            // The device is still opening: it maps the GPADL now, the answer comes later.
            if let Some(c) = self.slot_mut(relid) {
                c.ring.result_pending = Some(o.openid);
            }
            return;
        }
        self.send(ChannelMessage::OpenChannelResult(OpenChannelResult {
            child_relid: relid,
            openid: o.openid,
            status: 0,
        }));
    }

    /// Holds (or, with `false`, sends) the OPENCHANNEL_RESULTs of successful opens, as a host
    /// whose devices take their time to open does. While an open is pending, the device maps
    /// the ring GPADL (its GPADL_TEARDOWN waits for the close) and a CLOSECHANNEL is a guest
    /// error that changes nothing.
    pub fn hold_open_results(&mut self, hold: bool) {
        self.hold_open_results = hold;
        if hold {
            return;
        }
        for r in 1..crate::offers::RELID_SLOTS as u32 {
            let relid = RelId(r);
            let pending = self
                .slot_mut(relid)
                .and_then(|c| c.ring.result_pending.take());
            if let Some(openid) = pending {
                self.send(ChannelMessage::OpenChannelResult(OpenChannelResult {
                    child_relid: relid,
                    openid,
                    status: 0,
                }));
            }
        }
        self.process();
    }

    pub(crate) fn close_channel(&mut self, relid: RelId) {
        let opening = self
            .slot(relid)
            .is_some_and(|c| c.ring.result_pending.is_some());
        match self.channel_state(relid) {
            ChannelState::Open if opening => {
                if self.config.mode == Mode::Qemu {
                    self.counters.ignored += 1;
                } else {
                    self.guest_error(GuestError::CloseWhileOpening(relid));
                }
            }
            ChannelState::Open => {
                self.stop_device(relid);
                if let Some(c) = self.slot_mut(relid) {
                    c.state = ChannelState::Offered;
                }
                self.counters.closes += 1;
            }
            _ if self.config.mode == Mode::Qemu => self.counters.ignored += 1,
            ChannelState::Rescinded => self.counters.ignored += 1,
            ChannelState::Offered => self.guest_error(GuestError::ChannelNotOpen(relid)),
            ChannelState::Free => self.guest_error(GuestError::UnknownRelid(relid)),
        }
    }

    /// Stops the device of an open channel and lets teardowns waiting for it finish.
    pub(crate) fn stop_device(&mut self, relid: RelId) {
        let Some(c) = self.slot_mut(relid) else {
            return;
        };
        if c.state != ChannelState::Open {
            return;
        }
        c.ring = crate::open::RingState {
            target_vp: c.ring.target_vp,
            ..RingState::CLOSED
        };
        self.finish_deferred_teardowns(relid);
    }

    pub(crate) fn modify_channel(&mut self, relid: RelId, target_vp: u32) {
        let v53 = self
            .version()
            .is_some_and(|v| v.supports_modifychannel_response());
        let status = if self.channel_state(relid) == ChannelState::Open {
            if let Some(c) = self.slot_mut(relid) {
                c.ring.target_vp = target_vp;
            }
            0
        } else {
            self.guest_error(GuestError::ChannelNotOpen(relid));
            STATUS_UNSUCCESSFUL
        };
        if v53 {
            self.send(ChannelMessage::ModifyChannelResponse(
                ModifyChannelResponse {
                    child_relid: relid,
                    status,
                },
            ));
        }
    }

    /// A SignalEvent for `relid`'s connection.
    pub(crate) fn channel_signalled(&mut self, relid: RelId) -> vmbus_driver::hv::HvStatus {
        self.counters.signals_received += 1;
        let Some(c) = self.slot_mut(relid) else {
            return vmbus_driver::hv::HvStatus::INVALID_CONNECTION_ID;
        };
        c.stats.signals_from_guest += 1;
        if c.state != ChannelState::Open || c.ring.result_pending.is_some() {
            // The port exists only while the channel is open.
            c.stats.spurious_signals += 1;
            self.counters.spurious_signals += 1;
            self.counters.hypercall_failures += 1;
            return vmbus_driver::hv::HvStatus::INVALID_PORT_ID;
        }
        c.ring.signalled = true;
        c.ring.guest_signal = true;
        vmbus_driver::hv::HvStatus::SUCCESS
    }
}
