//! OPENCHANNEL checks and device traffic through real rings in guest memory: the echo, sink and
//! source devices, with the host honouring the docs/protocol.md#producer-when-to-signal,
//! #consumer-when-to-signal signalling rules.

mod common;

use common::*;
use hv_host::{ChannelState, DeviceKind, DeviceSpec, GuestError, HostConfig};
use vmbus_driver::hv::HvStatus;
use vmbus_driver::ids::{ConnectionId, GpadlId, RelId};
use vmbus_driver::msg::{ChannelMessage, CloseChannel};
use vmbus_driver::ring::{
    Control, FEATURE_PENDING_SEND_SZ, PacketType, RingError, RingMem, RingReader, RingWriter,
};
use vmbus_driver::version::Version;

const FAIL: u32 = 0x8000_FFFF;

struct Chan {
    g: Guest,
    relid: RelId,
    conn: ConnectionId,
    tx: RingWriter<GuestRing>,
    rx: RingReader<GuestRing>,
}

/// Connects, opens the first offer over pages 0.. (outbound `out` pages, inbound `inn` pages)
/// with the guest's ring headers initialised as a guest does (feature bit 0 in its outbound).
fn open_with(cfg: HostConfig, kind: DeviceKind, out: usize, inn: usize) -> Chan {
    let mut g = Guest::new(cfg, out + inn);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)).with_kind(kind))
        .unwrap();
    let v = if cfg.mode == hv_host::Mode::Qemu {
        Version::WIN10
    } else {
        Version::WIN10_V5_3
    };
    let offer = g.connect(v)[0];
    g.mem
        .set_u32(0, Control::FeatureBits.offset(), FEATURE_PENDING_SEND_SZ);
    assert_eq!(g.open(offer.child_relid, GpadlId(1), 0, out, inn), 0);
    let tx = RingWriter::new(GuestRing {
        mem: g.mem.clone(),
        first: 0,
        pages: out,
    })
    .unwrap();
    let rx = RingReader::new(GuestRing {
        mem: g.mem.clone(),
        first: out,
        pages: inn,
    })
    .unwrap();
    Chan {
        relid: offer.child_relid,
        conn: offer.connection_id,
        g,
        tx,
        rx,
    }
}

impl Chan {
    /// Writes one in-band packet; returns whether the ring rules say "signal the host".
    fn send(&mut self, tid: u64, payload: &[u8]) -> bool {
        let mut b = self.tx.batch().unwrap();
        b.write_inband(tid, false, payload).unwrap();
        b.commit().signal
    }

    fn signal(&mut self) -> HvStatus {
        self.g.host.signal_event(self.conn, 0)
    }

    fn poll(&mut self) {
        let mut mem = self.g.mem.clone();
        self.g.host.poll(&mut mem);
    }

    /// Reads every packet of the inbound ring: (type, tid, payload); and the commit's signal.
    fn recv(&mut self) -> (Vec<(PacketType, u64, Vec<u8>)>, bool) {
        let mut out = Vec::new();
        let mut b = match self.rx.batch() {
            Ok(b) => b,
            Err(RingError::Empty) => return (out, false),
            Err(e) => panic!("{e}"),
        };
        while let Some(p) = b.next_packet().unwrap() {
            let mut buf = vec![0u8; p.payload_len()];
            p.read_payload(0, &mut buf).unwrap();
            out.push((p.packet_type(), p.transaction_id(), buf));
        }
        let sig = b.commit().unwrap().signal;
        (out, sig)
    }

    fn flag_set(&mut self) -> bool {
        let w = (self.relid.0 / 32) as usize;
        self.g.host.synic_mut().take_flags(w) & (1 << (self.relid.0 % 32)) != 0
    }
}

#[test]
fn echo_returns_each_payload_and_sets_the_event_flag_only_when_the_ring_went_non_empty() {
    let mut c = open_with(HostConfig::hyperv(), DeviceKind::Echo, 2, 2);
    c.poll();
    assert_eq!(
        c.g.mem.u32_at(2, Control::FeatureBits.offset()) & FEATURE_PENDING_SEND_SZ,
        1,
        "the host advertises pending_send_sz in its ring"
    );
    c.g.host.synic_mut().take_interrupt();
    assert!(c.send(7, b"hello"), "empty ring: signal");
    assert_eq!(c.signal(), HvStatus::SUCCESS);
    c.poll();
    assert!(c.flag_set(), "relid flag set for the first echo");
    assert!(c.g.host.synic_mut().take_interrupt());
    // Second packet: the host consumed the first, so the guest signals again; the echo lands
    // behind the unread first one, so the host must not signal.
    assert!(c.send(8, b"world!!!!"));
    c.signal();
    c.poll();
    assert!(!c.flag_set(), "inbound ring was not empty: no event");
    let (pkts, _) = c.recv();
    assert_eq!(pkts.len(), 2);
    assert_eq!(pkts[0].0, PacketType::DATA_INBAND);
    assert_eq!((pkts[0].1, &pkts[0].2[..5]), (7, &b"hello"[..]));
    assert_eq!((pkts[1].1, &pkts[1].2[..9]), (8, &b"world!!!!"[..]));
    let info = c.g.host.channel(c.relid).unwrap();
    assert_eq!((info.stats.packets_in, info.stats.packets_out), (2, 2));
    assert_eq!(info.stats.signals_to_guest, 1);
    assert_eq!(info.stats.spurious_signals, 0);
}

#[test]
fn the_host_does_not_signal_a_guest_that_masked_interrupts() {
    let mut c = open_with(HostConfig::hyperv(), DeviceKind::Echo, 2, 2);
    c.rx.disable_interrupts();
    c.send(1, b"x");
    c.signal();
    c.poll();
    assert!(!c.flag_set());
    assert_eq!(c.recv().0.len(), 1);
}

#[test]
fn a_signal_without_new_data_is_counted_as_spurious() {
    let mut c = open_with(HostConfig::hyperv(), DeviceKind::Echo, 2, 2);
    c.poll();
    c.signal();
    c.poll();
    assert_eq!(c.g.host.channel(c.relid).unwrap().stats.spurious_signals, 1);
    assert_eq!(c.g.host.counters().spurious_signals, 1);
}

#[test]
fn a_packet_without_a_signal_is_not_seen_until_the_guest_signals() {
    let mut c = open_with(HostConfig::hyperv(), DeviceKind::Echo, 2, 2);
    c.poll();
    c.send(1, b"quiet");
    c.poll();
    assert_eq!(c.recv().0.len(), 0, "the host reads only when signalled");
    c.signal();
    c.poll();
    assert_eq!(c.recv().0.len(), 1);
}

#[test]
fn a_full_host_ring_waits_with_pending_send_sz_and_resumes_on_the_guests_signal() {
    let mut c = open_with(HostConfig::hyperv(), DeviceKind::Echo, 3, 2);
    let payload = [0xAB; 1000];
    // 16 + 1000 + 8 = 1024 ring bytes per echo: three fit in 4096 - 8, four do not.
    for tid in 0..6u64 {
        if c.send(tid, &payload) {
            c.signal();
        }
        c.poll();
    }
    let pending = c.g.mem.u32_at(3, Control::PendingSendSz.offset());
    assert_eq!(pending, 1024, "host waits for room for one echo");
    let (first, sig) = c.recv();
    assert_eq!(first.len(), 3);
    assert!(
        sig,
        "freeing room the host waits for: the guest must signal"
    );
    c.signal();
    c.poll();
    assert_eq!(c.g.mem.u32_at(3, Control::PendingSendSz.offset()), 0);
    let (rest, _) = c.recv();
    let tids: Vec<u64> = first.iter().chain(&rest).map(|p| p.1).collect();
    assert_eq!(tids, [0, 1, 2, 3, 4, 5], "every packet echoed, in order");
}

#[test]
fn sink_consumes_and_source_produces_its_packets() {
    let mut c = open_with(HostConfig::hyperv(), DeviceKind::Sink, 2, 2);
    c.send(1, b"abc");
    c.signal();
    c.poll();
    let s = c.g.host.channel(c.relid).unwrap().stats;
    assert_eq!((s.packets_in, s.packets_out), (1, 0));
    let mut c = open_with(
        HostConfig::hyperv(),
        DeviceKind::Source {
            packets: 3,
            payload_len: 16,
        },
        2,
        2,
    );
    c.poll();
    assert!(c.flag_set());
    let (pkts, _) = c.recv();
    assert_eq!(pkts.len(), 3);
    let expect: Vec<u8> = (2u8..18).collect();
    assert_eq!((pkts[2].1, &pkts[2].2[..]), (2, &expect[..]));
}

#[test]
fn open_refuses_a_bad_ring_layout_or_a_missing_gpadl() {
    let mut g = Guest::new(HostConfig::hyperv(), 8);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10_V5_3)[0].child_relid;
    g.create_gpadl(r, GpadlId(1), 0, 3);
    g.msgs();
    let result = |g: &mut Guest, gpadl, k| {
        g.post(&open_channel(r, GpadlId(gpadl), k));
        match g.msgs()[..] {
            [ChannelMessage::OpenChannelResult(x)] => x.status,
            ref o => panic!("{o:?}"),
        }
    };
    assert_eq!(
        result(&mut g, 1, 1),
        FAIL,
        "outbound ring without a data page"
    );
    assert_eq!(
        result(&mut g, 1, 2),
        FAIL,
        "inbound ring without a data page"
    );
    assert_eq!(result(&mut g, 2, 2), FAIL, "no such GPADL");
    assert_eq!(g.host.channel_state(r), ChannelState::Offered);
    // Unknown relid: a guest error with no reply at all.
    g.post(&open_channel(RelId(300), GpadlId(1), 2));
    assert!(g.take().is_empty());
    assert_eq!(
        g.host.errors().last(),
        Some(GuestError::UnknownRelid(RelId(300)))
    );
}

#[test]
fn qemu_fails_an_open_with_status_1_and_ignores_an_unknown_relid() {
    let mut g = Guest::new(HostConfig::qemu(), 8);
    g.host
        .add_device(DeviceSpec::echo(class(1), instance(1)))
        .unwrap();
    let r = g.connect(Version::WIN10)[0].child_relid;
    g.post(&open_channel(r, GpadlId(1), 2));
    assert!(matches!(g.msgs()[..], [ChannelMessage::OpenChannelResult(x)] if x.status == 1));
    g.post(&open_channel(RelId(300), GpadlId(1), 2));
    assert!(g.take().is_empty());
    assert_eq!(g.host.counters().guest_errors, 0);
}

#[test]
fn close_has_no_reply_stops_the_device_and_closes_the_signal_port() {
    let mut c = open_with(HostConfig::hyperv(), DeviceKind::Echo, 2, 2);
    c.g.post(&ChannelMessage::CloseChannel(CloseChannel {
        child_relid: c.relid,
    }));
    assert!(c.g.take().is_empty());
    assert_eq!(c.g.host.channel_state(c.relid), ChannelState::Offered);
    assert_eq!(c.signal(), HvStatus::INVALID_PORT_ID);
    c.send(1, b"late");
    c.poll();
    assert_eq!(c.recv().0.len(), 0);
    // Closing again is a guest error.
    c.g.post(&ChannelMessage::CloseChannel(CloseChannel {
        child_relid: c.relid,
    }));
    assert_eq!(
        c.g.host.errors().last(),
        Some(GuestError::ChannelNotOpen(c.relid))
    );
}

#[test]
fn a_corrupt_guest_ring_stops_the_device_and_is_counted() {
    let mut c = open_with(HostConfig::hyperv(), DeviceKind::Echo, 2, 2);
    c.poll();
    // A write index past the data area.
    c.g.mem.set_u32(0, Control::WriteIndex.offset(), 4096 + 8);
    c.signal();
    c.poll();
    let info = c.g.host.channel(c.relid).unwrap();
    assert!(info.broken);
    assert!(matches!(
        c.g.host.errors().last(),
        Some(GuestError::Ring(r, RingError::Corrupt(_))) if r == c.relid
    ));
    // The guest scribbling on the host's own read index does not move the host.
    assert_eq!(
        GuestRing {
            mem: c.g.mem.clone(),
            first: 0,
            pages: 2
        }
        .load(Control::ReadIndex, std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn qemu_channel_connection_ids_are_16_plus_relid() {
    let mut c = open_with(HostConfig::qemu(), DeviceKind::Echo, 2, 2);
    assert_eq!(c.conn, ConnectionId(16 + c.relid.0));
    c.send(3, b"q");
    assert_eq!(c.signal(), HvStatus::SUCCESS);
    c.poll();
    assert_eq!(c.recv().0.len(), 1);
    assert_eq!(
        c.g.host.signal_event(ConnectionId(0x2000 | c.relid.0), 0),
        HvStatus::INVALID_CONNECTION_ID
    );
    assert_eq!(c.g.host.signal_event(c.conn, 1), HvStatus::INVALID_PORT_ID);
}
