//! The host side of the devices, run by [`Host::poll`]: each open channel whose guest signalled (or
//! that waits for ring space, or was just opened) gets its device run over its rings, and the guest
//! is interrupted only when the ring rules of docs/protocol.md#producer-when-to-signal,
//! #consumer-when-to-signal say so.
//!
//! Host-to-guest interrupts: from 2.4 the relid's SINT2 event flag; before 2.4 the relid's bit in
//! the first half of the legacy interrupt page, plus SINT2 flag 0 on Hyper-V (QEMU raises the SINT
//! without it, docs/protocol.md#how-vmbus-uses-sint2).

pub mod dynmem;
mod echo;
pub mod heartbeat;
pub mod ic;
pub mod icsvc;
pub mod kvp;
pub mod network;
pub(crate) mod service;
pub mod shutdown;
pub mod storage;
pub mod timesync;
pub mod trace;

use core::sync::atomic::Ordering;

use vmbus_driver::hv::{PAGE_SIZE, PAGE_SIZE_U32, PAGE_SIZE_U64};
use vmbus_driver::ids::RelId;
use vmbus_driver::ring::Control;

use crate::config::Mode;
use crate::host::Host;
use crate::log::GuestError;
use crate::memory::{GuestMemError, GuestMemory};
use crate::offers::{ChannelState, RELID_SLOTS};

pub(crate) use echo::DeviceError;

/// Which word of which ring header [`Host::corrupt_ring`] overwrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingSide {
    /// The guest-to-host ring (the guest produces; the host owns `read_index`).
    Outbound,
    /// The host-to-guest ring (the host produces; the host owns `write_index`).
    Inbound,
}

impl Host {
    /// Runs the host side: pending guest messages, the legacy interrupt page, hostile floods and
    /// corruptions, then every device that has work. The only entry point that touches guest
    /// memory.
    pub fn poll<G: GuestMemory>(&mut self, mem: &mut G) {
        self.process();
        if core::mem::take(&mut self.legacy_scan) {
            self.scan_legacy(mem);
        }
        self.poll_monitor(mem);
        if self.hostile.event_flood {
            self.flood_events(1..RELID_SLOTS as u32);
        }
        for r in 1..RELID_SLOTS as u32 {
            let relid = RelId(r);
            let Some(c) = self.slot(relid) else { continue };
            if c.state != ChannelState::Open || c.ring.result_pending.is_some() {
                continue;
            }
            if self.hostile.corrupt_ring_indices {
                self.corrupt_both(mem, relid);
            }
            let c = &self.channels[r as usize];
            if c.ring.broken || !(c.ring.signalled || c.ring.waiting_space) {
                continue;
            }
            self.run_device(mem, relid);
        }
        self.process();
    }

    fn run_device<G: GuestMemory>(&mut self, mem: &mut G, relid: RelId) {
        let Some(kind) = self.kind_of(relid) else {
            return;
        };
        let idx = relid.0 as usize;
        let slot = usize::from(self.channels[idx].ring.gpadl_slot);
        // Split borrows: the PFNs (gpadls), the channel, and the scratch buffer.
        let pfns = self.gpadls.pfns(slot);
        let ch = &mut self.channels[idx];
        let out = if let crate::config::DeviceKind::Network(opts) = kind {
            let mut ctx = service::Ctx {
                relid,
                trace: &mut self.trace,
                errors: &mut self.errors,
                counters: &mut self.counters,
                gpadls: &self.gpadls,
                hostile: self.hostile,
            };
            network::run(
                mem,
                pfns,
                opts,
                &mut ch.ring,
                &mut ch.stats,
                &mut self.net,
                &mut ctx,
            )
        } else if let crate::config::DeviceKind::Storage(opts) = kind {
            let mut ctx = service::Ctx {
                relid,
                trace: &mut self.trace,
                errors: &mut self.errors,
                counters: &mut self.counters,
                gpadls: &self.gpadls,
                hostile: self.hostile,
            };
            storage::run(
                mem,
                pfns,
                opts,
                &mut ch.ring,
                &mut ch.stats,
                &mut self.storage,
                &mut ctx,
            )
        } else if service::service_of(kind).is_some() {
            let mut ctx = service::Ctx {
                relid,
                trace: &mut self.trace,
                errors: &mut self.errors,
                counters: &mut self.counters,
                gpadls: &self.gpadls,
                hostile: self.hostile,
            };
            service::run(
                mem,
                pfns,
                kind,
                &mut ch.ring,
                &mut ch.stats,
                &mut self.services,
                &mut self.scratch,
                &mut ctx,
            )
        } else {
            echo::run(
                mem,
                pfns,
                kind,
                &mut ch.ring,
                &mut ch.stats,
                &mut self.scratch,
            )
        };
        if out.spurious {
            self.counters.spurious_signals += 1;
        }
        if let Some(e) = out.error {
            self.channels[idx].ring.broken = true;
            self.guest_error(match e {
                DeviceError::Ring(e) => GuestError::Ring(relid, e),
                DeviceError::Memory(e) => GuestError::Memory(relid, e),
                DeviceError::Unsupported(t) => GuestError::UnsupportedPacket(relid, t),
            });
        }
        if out.signal {
            self.signal_guest(mem, relid);
        }
    }

    /// Interrupts the guest for `relid` (see the module documentation).
    pub(crate) fn signal_guest<G: GuestMemory>(&mut self, mem: &mut G, relid: RelId) {
        self.counters.events_sent += 1;
        if let Some(c) = self.slot_mut(relid) {
            c.stats.signals_to_guest += 1;
        }
        let legacy = self
            .version()
            .is_some_and(|v| !v.has_per_channel_event_flags());
        if !legacy {
            self.synic.set_flag(relid.0);
            return;
        }
        if let crate::host::Connection::Connected {
            interrupt_page: Some(gpa),
            ..
        } = self.conn
        {
            let (pfn, off) = (gpa / PAGE_SIZE_U64, (gpa % PAGE_SIZE_U64) as usize);
            let byte = off + relid.0 as usize / 8;
            let mut b = [0u8; 1];
            if byte < PAGE_SIZE && mem.read(pfn, byte, &mut b).is_ok() {
                b[0] |= 1 << (relid.0 % 8);
                let _ = mem.write(pfn, byte, &b);
            }
        }
        match self.config.mode {
            Mode::HyperV => self.synic.set_flag(0),
            Mode::Qemu => self.synic.raise(),
        }
    }

    /// WS2008 guest-to-host signals: test-and-clear the interrupt page's second half.
    fn scan_legacy<G: GuestMemory>(&mut self, mem: &mut G) {
        let Some(crate::host::Connection::Connected {
            interrupt_page: Some(gpa),
            ..
        }) = Some(self.conn)
        else {
            return;
        };
        if gpa % PAGE_SIZE_U64 != 0 {
            return;
        }
        let pfn = gpa / PAGE_SIZE_U64;
        let mut bits = [0u8; RELID_SLOTS / 8];
        if mem.read(pfn, PAGE_SIZE / 2, &mut bits).is_err() {
            return;
        }
        let _ = mem.write(pfn, PAGE_SIZE / 2, &[0u8; RELID_SLOTS / 8]);
        for (i, &byte) in bits.iter().enumerate() {
            for b in 0..8 {
                if byte & (1 << b) != 0 && i * 8 + b != 0 {
                    // i < 256 and b < 8.
                    let relid = RelId((i * 8 + b) as u32);
                    let _ = self.channel_signalled(relid);
                }
            }
        }
    }

    /// Writes `value` into control word `word` of one ring header of open channel `relid` (the
    /// hostile "corrupt ring indices" action).
    pub fn corrupt_ring<G: GuestMemory>(
        &mut self,
        mem: &mut G,
        relid: RelId,
        side: RingSide,
        word: Control,
        value: u32,
    ) -> Result<(), GuestMemError> {
        let Some(c) = self.slot(relid).filter(|c| c.state == ChannelState::Open) else {
            return Ok(());
        };
        let pfns = self.gpadls.pfns(usize::from(c.ring.gpadl_slot));
        let page = match side {
            RingSide::Outbound => 0,
            RingSide::Inbound => c.ring.downstream as usize,
        };
        let pfn = pfns
            .get(page)
            .copied()
            .ok_or(GuestMemError::NoSuchPage(u64::MAX))?;
        mem.store_u32(pfn, word.offset(), value, Ordering::SeqCst)
    }

    /// The flood form: an out-of-range write index in the inbound header, an out-of-range read
    /// index in the outbound header.
    fn corrupt_both<G: GuestMemory>(&mut self, mem: &mut G, relid: RelId) {
        let Some(c) = self.slot(relid) else { return };
        let slot = usize::from(c.ring.gpadl_slot);
        let k = c.ring.downstream;
        let pages = self.gpadls.entry(slot).pages;
        // One past each ring's data size, 8-aligned: rejected as out of range.
        let out_size = (k - 1) * PAGE_SIZE_U32;
        let in_size = (pages - k - 1) * PAGE_SIZE_U32;
        let _ = self.corrupt_ring(
            mem,
            relid,
            RingSide::Inbound,
            Control::WriteIndex,
            in_size + 8,
        );
        let _ = self.corrupt_ring(
            mem,
            relid,
            RingSide::Outbound,
            Control::ReadIndex,
            out_size + 8,
        );
    }
}
