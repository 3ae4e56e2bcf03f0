//! Monitored notification end to end (docs/protocol.md#monitor-pages): on the system of
//! system.xml, a client streams packets to a sink device over a channel the host offered with a
//! monitor id. Started with monitor pages, the driver signals the host by the channel's bit in
//! the child-to-parent page and issues no HvCallSignalEvent; started without, every signal is a
//! hypercall. Prints the hypercalls per 1000 packets of both (`cargo test -p sim-system --test
//! monitor -- --nocapture`).

use hv_host::{DeviceKind, DeviceSpec};
use sim_system::{World, WorldConfig};
use vmbus_client::{ClientError, list_offers, open};
use vmbus_driver::driver::ConnectionState;
use vmbus_driver::guid::Guid;
use vmbus_driver::ring::RingError;

const INSTANCE: Guid = Guid([0x4d; 16]);
const PACKETS: u64 = 1000;
const PAYLOAD: [u8; 64] = [0x5a; 64];

/// What one streaming run cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Packets the device consumed.
    packets: u64,
    /// Driver: HvCallSignalEvent issued for the client (`Stats::signals`).
    hypercalls: u64,
    /// Driver: signals through the monitor page (`Stats::monitor_signals`).
    monitor_bits: u64,
    /// Host: SignalEvent calls it received, and signals it took from the monitor page.
    host_hypercalls: u64,
    host_monitor: u64,
}

/// Streams `PACKETS` packets from the heartbeat client to a sink; the world starts with or
/// without monitor pages. Counts from the open on.
fn stream(monitored: bool) -> Run {
    let mut w = World::repository(&WorldConfig::default());
    let c = w.client("heartbeat").expect("system.xml has heartbeat");
    let (id, class) = (c.id, c.classes[0]);
    w.host_mut()
        .add_device(DeviceSpec::echo(class, INSTANCE).with_kind(DeviceKind::Sink))
        .expect("host takes the device");
    if monitored {
        w.start();
    } else {
        w.start_unmonitored();
    }
    w.run_until(
        |w| {
            w.driver().connection().state == ConnectionState::Connected
                && w.driver_channels().len() == 1
        },
        100,
    )
    .expect("connected with one offer");
    let relid = w
        .as_client(id, |ctx| list_offers(ctx, Some(class)))
        .expect("list")[0]
        .relid;
    let mut ch = w.as_client(id, |ctx| open(ctx, relid, 4, 4)).expect("open");
    let (d0, h0) = (w.driver_stats(), w.host().counters());
    let mut sent = 0;
    let mut steps = 0;
    while sent < PACKETS {
        match w.as_client(id, |ctx| ch.send(ctx, &PAYLOAD)) {
            Ok(()) => sent += 1,
            Err(ClientError::Ring(RingError::Full)) => {}
            Err(e) => panic!("send: {e:?}"),
        }
        // The host and driver run every fourth packet (and whenever the ring is full).
        if sent % 4 == 0 {
            w.step();
            steps += 1;
            assert!(steps < 100 * PACKETS, "the sink stopped consuming");
        }
    }
    let host_in = |w: &World| w.host().channel(relid).map_or(0, |c| c.stats.packets_in);
    w.run_until(|w| host_in(w) == PACKETS, 1000)
        .expect("the sink consumed every packet");
    let (d, h) = (w.driver_stats(), w.host().counters());
    Run {
        packets: host_in(&w),
        hypercalls: d.signals - d0.signals,
        monitor_bits: d.monitor_signals - d0.monitor_signals,
        host_hypercalls: h.signals_received - h0.signals_received,
        host_monitor: h.monitor_signals - h0.monitor_signals,
    }
}

#[test]
fn a_streaming_monitored_channel_signals_the_host_with_no_hypercall() {
    let with = stream(true);
    let without = stream(false);
    let per_1000 = |n: u64, r: &Run| n * 1000 / r.packets;
    println!(
        "hypercalls per 1000 packets: {} with monitored notification ({} monitor bits), {} without",
        per_1000(with.hypercalls, &with),
        per_1000(with.monitor_bits, &with),
        per_1000(without.hypercalls, &without),
    );
    assert_eq!(with.packets, PACKETS);
    assert_eq!(without.packets, PACKETS);
    // Monitored: every signal is a monitor bit, none a hypercall, and the host saw them so.
    assert_eq!(with.hypercalls, 0, "{with:?}");
    assert_eq!(with.host_hypercalls, 0, "{with:?}");
    assert!(with.monitor_bits > 0, "{with:?}");
    assert!(
        with.host_monitor > 0 && with.host_monitor <= with.monitor_bits,
        "{with:?}"
    );
    // Without monitor pages the same stream costs hypercalls.
    assert!(without.hypercalls > 0, "{without:?}");
    assert_eq!(without.host_hypercalls, without.hypercalls, "{without:?}");
    assert_eq!(
        without.monitor_bits + without.host_monitor,
        0,
        "{without:?}"
    );
}

#[test]
fn the_monitor_pages_go_back_to_the_pool_after_unload() {
    let mut w = World::repository(&WorldConfig::default());
    let free = w.pool_free();
    w.start();
    w.run_until(
        |w| w.driver().connection().state == ConnectionState::Connected,
        100,
    )
    .expect("connected");
    assert_eq!(w.pool_free(), free - 2);
    let (p1, p2) = w.host().monitor_pages().expect("the host took the pages");
    assert_ne!(p1, p2);
    w.unload();
    w.run_until(
        |w| w.driver().connection().state == ConnectionState::Disconnected,
        100,
    )
    .expect("unloaded");
    assert_eq!(w.driver().monitor_pages(), None);
    assert_eq!(w.pool_free(), free);
    assert_eq!(w.host().monitor_pages(), None);
}
