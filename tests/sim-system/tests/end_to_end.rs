//! End to end on the system of system.xml: boot, handshake, offers, a client opens a channel to the
//! echo device, traffic both ways, a rescind while traffic flows, the client's stale access faults
//! in the kernel model, the teardown reaches the host in the order of
//! docs/lifetime.md#the-teardown-step-by-step, the pages return to the pool, and the same relid,
//! offered again, opens as a new channel that no stale event or handle reaches.

use hv_host::{DeviceSpec, Direction, LogRecord};
use sel4_sim::{FaultKind, MemError, PdState, SimConfig};
use sim_system::{ClientRingMem, World, WorldConfig};
use vmbus_client::{Channel, ClientEnv, ClientError, list_offers, open};
use vmbus_driver::driver::{ChannelState, ConnectionState};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::ClientId;
use vmbus_driver::msg::MessageType;
use vmbus_driver::ring::{Control, RingMem};

const INSTANCE: Guid = Guid([0x42; 16]);

fn heartbeat(w: &World) -> (ClientId, Guid) {
    let c = w.client("heartbeat").expect("system.xml has heartbeat");
    (c.id, c.classes[0])
}

/// Messages of `records` of the given types, as (direction, type, relid).
fn teardown_messages(records: &[LogRecord]) -> Vec<(Direction, MessageType)> {
    let wanted = [
        MessageType::RESCIND_CHANNELOFFER,
        MessageType::CLOSECHANNEL,
        MessageType::GPADL_TEARDOWN,
        MessageType::GPADL_TORNDOWN,
        MessageType::RELID_RELEASED,
    ];
    records
        .iter()
        .filter(|r| wanted.contains(&r.msgtype))
        .map(|r| (r.dir, r.msgtype))
        .collect()
}

/// Sends `payload` as the client and steps until the echo comes back; returns the echo.
fn echo_round_trip(
    w: &mut World,
    id: ClientId,
    ch: &mut Channel<ClientRingMem>,
    payload: &[u8],
) -> Vec<u8> {
    w.as_client(id, |ctx| ch.send(ctx, payload)).expect("send");
    for _ in 0..50 {
        w.step();
        let mut buf = [0u8; 256];
        if let Some(r) = w.as_client(id, |ctx| ch.recv(ctx, &mut buf)).expect("recv") {
            return buf[..r.len].to_vec();
        }
    }
    panic!("no echo within 50 steps");
}

#[test]
fn rescind_while_traffic_flows_revokes_tears_down_in_order_and_the_relid_reopens_clean() {
    rescind_scenario(SimConfig::default());
}

/// The same on seL4 5.0.0's x86 semantics, where deleting a copy leaves its mapping unless the
/// driver unmaps it first: the client must still fault.
#[test]
fn rescind_scenario_holds_with_the_sel4_5_0_unmap_quirk() {
    rescind_scenario(SimConfig {
        sel4_5_0_x86_unmap_only_final: true,
        ..SimConfig::default()
    });
}

fn rescind_scenario(sim: SimConfig) {
    let mut w = World::repository(&WorldConfig {
        sim,
        ..WorldConfig::default()
    });
    let (hb, class) = heartbeat(&w);
    let pool_pages = w.pool_free();
    assert_eq!(pool_pages, 8192);
    w.host_mut()
        .add_device(DeviceSpec::echo(class, INSTANCE))
        .expect("host takes the device");

    // Boot: handshake and offers.
    w.start();
    w.run_until(
        |w| {
            w.driver().connection().state == ConnectionState::Connected
                && w.driver_channels().len() == 1
        },
        100,
    )
    .expect("connected with one offer");
    let boot: Vec<MessageType> = w.host().log().iter().map(|r| r.msgtype).collect();
    let pos = |t| boot.iter().position(|&m| m == t).expect("message in log");
    assert!(pos(MessageType::INITIATE_CONTACT) < pos(MessageType::VERSION_RESPONSE));
    assert!(pos(MessageType::VERSION_RESPONSE) < pos(MessageType::REQUESTOFFERS));
    assert!(pos(MessageType::REQUESTOFFERS) < pos(MessageType::OFFERCHANNEL));
    assert!(pos(MessageType::OFFERCHANNEL) < pos(MessageType::ALLOFFERS_DELIVERED));

    // The client lists and opens the offer; the blocking open lets host and driver run.
    let offers = w
        .as_client(hb, |ctx| list_offers(ctx, Some(class)))
        .expect("list");
    assert_eq!(offers.len(), 1);
    let relid = offers[0].relid;
    assert_eq!(offers[0].instance, INSTANCE.0);
    let mut ch = w.as_client(hb, |ctx| open(ctx, relid, 4, 4)).expect("open");
    let handle = ch.handle();
    assert_eq!(handle.relid, relid);
    let row = w.driver().channel(relid).expect("driver row");
    assert_eq!(row.state, ChannelState::Open);
    assert_eq!(row.client, Some(hb));
    assert_eq!(row.pages, 8);
    assert_eq!(w.pool_free(), pool_pages - w.connection_pages() - 8);
    // The rings are mapped in the client's window slot 0.
    let window = w.client("heartbeat").unwrap().window_base;
    let pd = w.client_pd(hb).unwrap();
    {
        let k = w.instance().kernel().borrow();
        for page in 0..8 {
            assert!(k.sim.mapping(pd, window + page * 4096).unwrap().is_some());
        }
        assert!(k.sim.mapping(pd, window + 8 * 4096).unwrap().is_none());
    }

    // Traffic both ways: each packet goes to the host and comes back.
    for i in 0..5u8 {
        let msg = [i; 24];
        assert_eq!(echo_round_trip(&mut w, hb, &mut ch, &msg), msg.to_vec());
    }
    assert!(
        w.driver_stats().events_delivered >= 1,
        "echoes were signalled"
    );
    assert!(w.as_client(hb, |ctx| ch.take_events(ctx)).unwrap() >= 1);

    // Rescind while traffic flows: a packet is in flight when the host withdraws the channel.
    w.as_client(hb, |ctx| ch.send(ctx, b"in flight")).unwrap();
    // The slot's event counter is monotonic over the slot's life (control page layout).
    let slot_events_at_rescind = w.driver_channels()[0].events;
    assert!(slot_events_at_rescind >= 1);
    let log_mark = w.host().log().total();
    let faults_before = w.sim_counters().faults;
    w.host_mut().rescind(relid).expect("rescind");
    w.host_step();
    w.driver_step();
    // The driver has revoked the rings: the mappings are gone from the client's VSpace.
    {
        let k = w.instance().kernel().borrow();
        for page in 0..8 {
            assert!(k.sim.mapping(pd, window + page * 4096).unwrap().is_none());
        }
    }
    // Through the library the client learns the channel is gone, without touching the ring.
    let err = w.as_client(hb, |ctx| ch.send(ctx, b"after rescind"));
    assert_eq!(err, Err(ClientError::ChannelGone));
    assert_eq!(w.sim_counters().faults, faults_before);
    // A client that kept using its ring pointer faults: the kernel model records it, stops the
    // PD and hands the fault to the driver.
    let stale = w.as_client(hb, |ctx| {
        let mem = ctx.ring_mem(0, 4);
        let v = mem.load(Control::ReadIndex, core::sync::atomic::Ordering::Acquire);
        (v, mem.fault())
    });
    assert_eq!(stale.0, 0, "a faulting load yields zero");
    match stale.1 {
        Some(MemError::Fault(m)) => {
            assert_eq!(m.pd, pd);
            assert!(matches!(
                m.kind,
                FaultKind::VmFault { vaddr, present: false, .. } if vaddr == window + 4
            ));
        }
        other => panic!("expected a VM fault, got {other:?}"),
    }
    assert!(w.client_stopped(hb));
    assert_eq!(
        w.instance().kernel().borrow().sim.pd_state(pd).unwrap(),
        PdState::Stopped
    );
    assert_eq!(w.sim_counters().faults, faults_before + 1);

    // The teardown completes: host log in the order of docs/lifetime.md#the-teardown-step-by-step,
    // pages back in the pool.
    w.run_until(
        |w| w.driver_channels().is_empty() && !w.faults().is_empty(),
        100,
    )
    .expect("teardown completes and the driver took the fault");
    assert_eq!(w.faults().len(), 1);
    assert_eq!(w.faults()[0].client, hb);
    assert_eq!(w.driver_stats().client_faults, 1);
    let after: Vec<LogRecord> = w.host().log().since(log_mark).copied().collect();
    assert_eq!(
        teardown_messages(&after),
        vec![
            (Direction::Sent, MessageType::RESCIND_CHANNELOFFER),
            (Direction::Received, MessageType::CLOSECHANNEL),
            (Direction::Received, MessageType::GPADL_TEARDOWN),
            (Direction::Sent, MessageType::GPADL_TORNDOWN),
            (Direction::Received, MessageType::RELID_RELEASED),
        ]
    );
    for r in after.iter().filter(|r| r.dir == Direction::Received) {
        if let Some(rid) = r.relid {
            assert_eq!(rid, relid);
        }
    }
    assert_eq!(w.pool_free(), pool_pages - w.connection_pages());
    assert_eq!(w.driver().quarantined_pages(), 0);
    assert_eq!(w.driver_stats().relids_released, 1);

    // A late event for the dead relid is dropped, not delivered to anyone.
    let dropped = w.driver_stats().events_dropped_stale;
    w.host_mut().flood_events([relid.0]);
    w.step();
    assert_eq!(w.driver_stats().events_dropped_stale, dropped + 1);

    // The same relid is offered again and opened by a new channel.
    w.restart_client(hb);
    w.host_mut()
        .add_device(DeviceSpec::echo(class, INSTANCE))
        .expect("offered again");
    w.run_until(|w| w.driver_channels().len() == 1, 100)
        .expect("re-offered");
    assert_eq!(w.driver_channels()[0].relid, relid, "same relid");
    assert_eq!(
        w.as_client(hb, |ctx| ctx.poll_notification()),
        Some(1),
        "the only notification pending is the old channel's Gone"
    );
    let mut ch2 = w
        .as_client(hb, |ctx| open(ctx, relid, 4, 4))
        .expect("reopen");
    let h2 = ch2.handle();
    assert_eq!((h2.relid, h2.slot), (handle.relid, handle.slot));
    assert!(h2.generation > handle.generation, "new generation");
    assert_eq!(
        w.as_client(hb, |ctx| ch2.take_events(ctx)),
        Ok(0),
        "no stale event"
    );
    assert_eq!(
        w.driver_channels()[0].events,
        slot_events_at_rescind,
        "nothing was delivered to the slot between the rescind and the new open"
    );
    // The old handle cannot reach the new channel, though relid and slot are the same.
    assert_eq!(
        w.as_client(hb, |ctx| ch.send(ctx, b"stale")),
        Err(ClientError::ChannelGone)
    );
    assert_eq!(
        echo_round_trip(&mut w, hb, &mut ch2, b"new channel, 24 bytes..."),
        b"new channel, 24 bytes...".to_vec()
    );
}
