//! The host against a guest that sends anything: no panic, no hang, tables that do not leak, and
//! a long offer/open/traffic/rescind cycle that returns every table entry.

mod common;

use common::*;
use hv_host::{ChannelState, DeviceKind, DeviceSpec, HostConfig, Hostile, RingSide};
use vmbus_driver::hv::{HvMessageType, HvStatus};
use vmbus_driver::ids::{ConnectionId, GpadlId, RelId};
use vmbus_driver::msg::{ChannelMessage, CloseChannel, GpadlTeardown, RelIdReleased};
use vmbus_driver::ring::{Control, RingWriter};
use vmbus_driver::version::Version;

/// xorshift64*: a fixed sequence, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A message of a random type with fields drawn from small ranges (so they hit live relids and
/// GPADL ids), or random bytes.
fn random_message(rng: &mut Rng, pages: usize) -> Vec<u8> {
    let mut b = vec![0u8; 8 + rng.below(233) as usize];
    for x in b.iter_mut() {
        *x = rng.next() as u8;
    }
    // Mostly the types that move channel state; any type (and reconnects) now and then.
    const TYPES: [u32; 16] = [3, 5, 5, 5, 7, 8, 8, 8, 8, 9, 11, 11, 13, 13, 22, 5];
    let t = match rng.below(100) {
        0 => 14,
        1..=4 => rng.below(32) as u32,
        _ => TYPES[rng.below(16) as usize],
    };
    b[0..4].copy_from_slice(&t.to_le_bytes());
    if rng.below(4) != 0 && b.len() >= 12 {
        // Plausible fields: relid 0..6 at 8, GPADL id 0..6 at 12 (or 16 for OPENCHANNEL), small
        // page counts and PFNs inside the test memory.
        let relid = rng.below(6) as u32;
        b[8..12].copy_from_slice(&relid.to_le_bytes());
        if b.len() >= 16 {
            b[12..16].copy_from_slice(&(rng.below(6) as u32).to_le_bytes());
        }
        if t == 5 && b.len() >= 28 {
            b[16..20].copy_from_slice(&(rng.below(6) as u32).to_le_bytes());
            b[24..28].copy_from_slice(&(rng.below(5) as u32).to_le_bytes());
        }
        if t == 8 && b.len() >= 28 {
            let n = 1 + rng.below(6);
            b[16..18].copy_from_slice(&((8 + 8 * n) as u16).to_le_bytes());
            b[18..20].copy_from_slice(&1u16.to_le_bytes());
            b[20..24].copy_from_slice(&((n * 4096) as u32).to_le_bytes());
            b[24..28].copy_from_slice(&0u32.to_le_bytes());
            let mut off = 28;
            while off + 8 <= b.len() {
                let pfn = BASE_PFN + rng.below(pages as u64 + 2);
                b[off..off + 8].copy_from_slice(&pfn.to_le_bytes());
                off += 8;
            }
        }
        if t == 14 && b.len() >= 12 {
            let v = Version::ALL[rng.below(11) as usize];
            b[8..12].copy_from_slice(&v.0.to_le_bytes());
        }
    }
    b
}

#[test]
fn random_guest_input_never_panics_or_hangs_either_host() {
    for (seed, cfg) in [(1u64, HostConfig::hyperv()), (2, HostConfig::qemu())] {
        let pages = 16;
        let mut g = Guest::new(cfg, pages);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        for i in 0..4u8 {
            let kind = [
                DeviceKind::Echo,
                DeviceKind::Sink,
                DeviceKind::Source {
                    packets: 50,
                    payload_len: 100,
                },
                DeviceKind::Echo,
            ][usize::from(i)];
            g.host
                .add_device(DeviceSpec::echo(class(i), instance(i)).with_kind(kind))
                .unwrap();
        }
        let v = if cfg.mode == hv_host::Mode::Qemu {
            Version::WIN10
        } else {
            Version::WIN10_V5_3
        };
        g.connect(v);
        for step in 0..20_000u32 {
            match rng.below(12) {
                0..=5 => {
                    let m = random_message(&mut rng, pages);
                    let conn =
                        ConnectionId([1, 1, 1, 1, 1, 1, 1, 4, 0x2001, 0][rng.below(10) as usize]);
                    let st = g.host.post_message(conn, HvMessageType::VMBUS, &m);
                    assert_ne!(st, HvStatus::INVALID_PARAMETER);
                }
                6 => {
                    let conn = ConnectionId((rng.next() as u32) & 0x2007);
                    g.host.signal_event(conn, 0);
                }
                7 => {
                    // The guest scribbles on a ring header or data.
                    let page = rng.below(pages as u64) as usize;
                    let off = (rng.below(16) * 4) as usize;
                    g.mem.set_u32(page, off, rng.next() as u32);
                }
                8..=9 => {
                    let _ = g.take_with(None);
                }
                _ => {
                    if step % 1000 == 0 && cfg.mode == hv_host::Mode::HyperV {
                        let r = RelId(1 + rng.below(4) as u32);
                        let _ = g.host.rescind(r);
                    }
                    let mut mem = g.mem.clone();
                    g.host.poll(&mut mem);
                }
            }
            // Invariants: every open channel owns exactly one ring GPADL entry.
            if step % 500 == 0 {
                for c in g.host.channels() {
                    if c.state == ChannelState::Open {
                        let id = c.ring_gpadl.unwrap();
                        assert!(g.host.gpadl_pfns(id).is_some(), "{c:?}");
                    }
                }
            }
        }
        let c = g.host.counters();
        assert!(c.messages_received > 1000);
        assert!(
            c.gpadls_created > 0 && c.opens > 0,
            "the walk reached open channels"
        );
    }
}

#[test]
fn hostile_modes_together_do_not_break_the_host() {
    let mut g = Guest::new(HostConfig::hyperv(), 8);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)).with_sub_channels(3))
        .unwrap();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    assert_eq!(g.open(r, GpadlId(1), 0, 2, 2), 0);
    g.host.set_hostile(Hostile {
        unknown_type: true,
        oversize_slot: true,
        truncate: true,
        wrong_fields: true,
        out_of_range_relids: true,
        duplicate_offers: true,
        silence: 0,
        stray_gpadl_created: true,
        event_flood: true,
        bad_monitor_ids: true,
        corrupt_ring_indices: true,
        targets: 0,
        ic_foreign_versions: true,
        ic_truncate: true,
        ic_oversize_body: true,
        ic_unknown_type: true,
        ic_wrong_service: true,
        ic_response_flag: true,
        dm_truncate: true,
        dm_oversize: true,
        dm_balloon_before_capabilities: true,
        dm_unballoon_unknown: true,
        stor_bad_srb_length: true,
        stor_unknown_tid: true,
        stor_duplicate: true,
        stor_oversize_sense: true,
        stor_short_transfer: true,
        net_xfer_beyond_buffer: true,
        net_rndis_oversize_length: true,
        net_rndis_bad_data_offset: true,
        net_unknown_completion: true,
        net_bad_sections: true,
    });
    for _ in 0..50 {
        g.post(&ChannelMessage::RequestOffers);
        let mut mem = g.mem.clone();
        g.host.poll(&mut mem);
        g.host
            .corrupt_ring(&mut mem, r, RingSide::Outbound, Control::WriteIndex, 7)
            .unwrap();
        g.host.signal_event(ConnectionId(r.0 | 0x2000), 0);
        g.take_with(None);
    }
    assert!(g.host.channel(r).unwrap().broken);
}

#[test]
fn two_thousand_offer_open_traffic_rescind_cycles_leave_no_table_entry_behind() {
    let mut g = Guest::new(HostConfig::hyperv(), 4);
    g.connect(Version::WIN10_V5_3);
    for cycle in 0..2000u32 {
        let d = g
            .host
            .add_device(DeviceSpec::echo(class(1), instance(1)))
            .unwrap();
        let offer = match g.msgs()[..] {
            [ChannelMessage::OfferChannel(o)] => o,
            ref o => panic!("{o:?}"),
        };
        let r = offer.child_relid;
        assert_eq!(r, RelId(1), "the released relid is reused");
        // Fresh ring headers, as a guest initialises them before OPENCHANNEL.
        for p in 0..4 {
            g.mem.0.borrow_mut()[p][..128].fill(0);
        }
        let gpadl = GpadlId(cycle + 1);
        assert_eq!(g.open(r, gpadl, 0, 2, 2), 0);
        let mut w = RingWriter::new(GuestRing {
            mem: g.mem.clone(),
            first: 0,
            pages: 2,
        })
        .unwrap();
        let mut b = w.batch().unwrap();
        b.write_inband(u64::from(cycle), false, &cycle.to_le_bytes())
            .unwrap();
        assert!(b.commit().signal);
        assert_eq!(
            g.host.signal_event(offer.connection_id, 0),
            HvStatus::SUCCESS
        );
        let mut mem = g.mem.clone();
        g.host.poll(&mut mem);
        assert_eq!(g.host.channel(r).unwrap().stats.packets_out, 1);
        g.host.remove_device(d).unwrap();
        g.post(&ChannelMessage::CloseChannel(CloseChannel {
            child_relid: r,
        }));
        g.post(&ChannelMessage::GpadlTeardown(GpadlTeardown {
            child_relid: r,
            gpadl,
        }));
        g.post(&ChannelMessage::RelIdReleased(RelIdReleased {
            child_relid: r,
        }));
        let m = g.msgs();
        assert_eq!(m.len(), 2, "RESCIND, GPADL_TORNDOWN: {m:?}");
        assert_eq!(g.host.gpadl_count(), 0);
        assert_eq!(g.host.gpadl_pages(), 0);
        assert_eq!(g.host.channels().count(), 0);
    }
    let c = g.host.counters();
    assert_eq!(
        (c.opens, c.rescinds_sent, c.releases, c.gpadls_torn_down),
        (2000, 2000, 2000, 2000)
    );
    assert_eq!(c.guest_errors, 0);
}
