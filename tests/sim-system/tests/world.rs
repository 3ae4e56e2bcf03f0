//! The world as a scriptable scheduler: concurrent client programs, host actions injected
//! between steps, host and driver stepped separately, blocking waits bounded.

use hv_host::DeviceSpec;
use sim_system::{EchoClient, World, WorldConfig};
use vmbus_client::{ClientError, open};
use vmbus_driver::driver::{ChannelState, ConnectionState};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, RelId};

fn booted(cfg: &WorldConfig, names: &[&str]) -> (World, Vec<(ClientId, Guid)>) {
    let mut w = World::repository(cfg);
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let c = w.client(n).unwrap();
        let (id, class) = (c.id, c.classes[0]);
        w.host_mut()
            .add_device(DeviceSpec::echo(class, Guid([i as u8 + 1; 16])))
            .unwrap();
        out.push((id, class));
    }
    w.start();
    let n = names.len();
    w.run_until(
        |w| {
            w.driver().connection().state == ConnectionState::Connected
                && w.driver_channels().len() == n
        },
        100,
    )
    .expect("boot");
    (w, out)
}

fn relid_of(w: &World, client: ClientId) -> RelId {
    w.driver_channels()
        .iter()
        .find(|c| c.client == Some(client))
        .map(|c| c.relid)
        .expect("client holds a channel")
}

#[test]
fn a_rescind_of_one_clients_channel_leaves_the_other_clients_traffic_running() {
    let (mut w, clients) = booted(&WorldConfig::default(), &["heartbeat", "shutdown"]);
    let (hb, hb_class) = clients[0];
    let (sd, sd_class) = clients[1];
    let hb_prog = EchoClient::new(hb_class);
    let sd_prog = EchoClient::new(sd_class).rings(2, 3);
    let (hbh, sdh) = (hb_prog.handle(), sd_prog.handle());
    w.set_program(hb, Box::new(hb_prog));
    w.set_program(sd, Box::new(sd_prog));
    w.run_until(
        |_| hbh.stats().echoed >= 20 && sdh.stats().echoed >= 20,
        400,
    )
    .expect("both echo");

    let relid = relid_of(&w, hb);
    let sd_before = sdh.stats().echoed;
    w.host_mut().rescind(relid).unwrap();
    w.run_until(
        |w| hbh.stats().gone == 1 && w.driver_channels().len() == 1,
        100,
    )
    .expect("heartbeat sees its channel gone");
    w.run(50);
    assert!(
        sdh.stats().echoed >= sd_before + 20,
        "shutdown kept echoing"
    );
    assert_eq!(hbh.stats().open_relid, None);
    assert!(
        !w.client_stopped(hb),
        "the library never touched the revoked ring"
    );

    // Offered again: the heartbeat program opens it on its own and echoes again.
    w.host_mut()
        .add_device(DeviceSpec::echo(hb_class, Guid([9; 16])))
        .unwrap();
    let echoed = hbh.stats().echoed;
    w.run_until(|_| hbh.stats().echoed >= echoed + 10, 200)
        .expect("heartbeat echoes on the new channel");
    for h in [&hbh, &sdh] {
        let s = h.stats();
        assert_eq!(s.mismatches, 0, "{s:?}");
        assert_eq!(h.last_error(), None, "{s:?}");
    }
    assert_eq!(hbh.stats().opens, 2);
    assert_eq!(w.driver_stats().relids_released, 1);
}

#[test]
fn closing_channels_in_a_loop_returns_every_page() {
    let (mut w, clients) = booted(&WorldConfig::default(), &["timesync"]);
    let (ts, class) = clients[0];
    let free = w.pool_free();
    let prog = EchoClient::new(class)
        .packets_per_channel(8)
        .stop_after_channels(3);
    let h = prog.handle();
    w.set_program(ts, Box::new(prog));
    w.run_until(|w| w.client_done(ts), 500)
        .expect("program finishes");
    let s = h.stats();
    assert_eq!((s.opens, s.closed, s.echoed, s.mismatches), (3, 3, 24, 0));
    w.run_until(
        |w| {
            w.driver_channels()
                .iter()
                .all(|c| c.state == ChannelState::Offered)
        },
        50,
    )
    .expect("teardowns finish");
    assert_eq!(w.pool_free(), free);
    // Every granted page was revoked: 3 channels x 8 pages, one unmap each (the seam keeps the
    // copies for the next grants: no revoke, no delete).
    let c = w.sim_counters();
    assert_eq!((c.unmap_calls, c.revokes, c.deletes), (24, 0, 0));
}

#[test]
fn host_and_driver_step_separately() {
    let (mut w, clients) = booted(&WorldConfig::default(), &["kvp"]);
    let (kvp, _) = clients[0];
    let relid = w.driver_channels()[0].relid;
    let ch = w.as_client(kvp, |ctx| open(ctx, relid, 2, 2)).unwrap();
    w.host_mut().rescind(relid).unwrap();
    // The host queued the rescind, but the driver has not run: the channel is still open and
    // its rings still mapped.
    w.host_step();
    assert_eq!(w.driver().channel(relid).unwrap().state, ChannelState::Open);
    assert!(w.as_client(kvp, |ctx| ch.check_open(ctx)).is_ok());
    w.driver_step();
    assert!(matches!(
        w.driver().channel(relid).map(|c| c.state),
        Some(ChannelState::TearingDown(_)) | None
    ));
    assert_eq!(
        w.as_client(kvp, |ctx| ch.check_open(ctx)),
        Err(ClientError::ChannelGone)
    );
}

#[test]
fn a_blocking_open_without_budget_gives_up_and_cancels() {
    let cfg = WorldConfig {
        block_budget: 0,
        ..WorldConfig::default()
    };
    let (mut w, clients) = booted(&cfg, &["dynmem"]);
    let (dm, _) = clients[0];
    let relid = w.driver_channels()[0].relid;
    let free = w.pool_free();
    let r = w.as_client(dm, |ctx| open(ctx, relid, 2, 2));
    assert_eq!(r.err(), Some(ClientError::NoCompletion));
    w.run_until(
        |w| w.driver().channel(relid).map(|c| c.state) == Some(ChannelState::Offered),
        100,
    )
    .expect("the cancelled open is torn down");
    assert_eq!(w.pool_free(), free);
}

#[test]
fn run_until_reports_the_step_limit() {
    let mut w = World::repository(&WorldConfig::default());
    // No start: the driver never connects.
    let e = w
        .run_until(
            |w| w.driver().connection().state == ConnectionState::Connected,
            5,
        )
        .unwrap_err();
    assert_eq!(e.steps, 5);
    assert_eq!(w.steps(), 5);
}

#[test]
fn a_client_that_faults_is_no_longer_scheduled_and_loses_its_channels() {
    use sim_system::{ClientCtx, Flow};
    use std::cell::Cell;
    use std::rc::Rc;

    let (mut w, clients) = booted(&WorldConfig::default(), &["net"]);
    let (net, _) = clients[0];
    let relid = w.driver_channels()[0].relid;
    let free = w.pool_free();
    let steps = Rc::new(Cell::new(0u32));
    let seen = steps.clone();
    // Opens the channel, then scribbles past its window: a wild write.
    let program = move |ctx: &mut ClientCtx<'_>| {
        seen.set(seen.get() + 1);
        match seen.get() {
            1 => {
                // Dropping the channel value neither closes nor unmaps anything.
                let _channel = open(ctx, relid, 8, 8).expect("open");
            }
            2 => {
                let past = ctx.info().window_base + ctx.info().window_pages as u64 * 4096;
                assert!(ctx.write_memory(past, b"wild").is_err());
            }
            _ => panic!("a stopped client must not run again"),
        }
        Flow::Continue
    };
    w.set_program(net, Box::new(program));
    w.step();
    assert_eq!(w.pool_free(), free - 16);
    w.step();
    assert!(w.client_stopped(net));
    w.run_until(
        |w| w.driver().channel(relid).map(|c| c.state) == Some(ChannelState::Offered),
        50,
    )
    .expect("the fault tears the channel down");
    assert_eq!(steps.get(), 2);
    assert_eq!(w.faults().len(), 1);
    assert_eq!(w.faults()[0].client, net);
    assert_eq!(w.driver_stats().client_faults, 1);
    assert_eq!(w.pool_free(), free);
    // The host saw the channel closed and its GPADL torn down, not released (no rescind).
    assert_eq!(w.host().counters().closes, 1);
    assert_eq!(w.host().counters().releases, 0);
}

#[test]
fn unload_tears_every_channel_down_before_unload() {
    use vmbus_driver::msg::MessageType;
    let (mut w, clients) = booted(&WorldConfig::default(), &["heartbeat", "kvp"]);
    let free = w.pool_free();
    for &(id, _) in &clients {
        let relid = w
            .driver_channels()
            .iter()
            .find(|c| w.instance().client(id).unwrap().classes.contains(&c.class))
            .unwrap()
            .relid;
        w.as_client(id, |ctx| open(ctx, relid, 2, 2)).unwrap();
    }
    assert_eq!(w.pool_free(), free - 8);
    let mark = w.host().log().total();
    // The answered unload returns the connection's monitor pages too.
    let monitor = w.connection_pages();
    assert_eq!(monitor, 2);
    w.unload();
    w.run_until(|w| w.pool_free() == free + monitor, 100)
        .expect("pages return");
    let sent: Vec<MessageType> = w
        .host()
        .log()
        .since(mark)
        .filter(|r| r.dir == hv_host::Direction::Received)
        .map(|r| r.msgtype)
        .collect();
    let unload = sent
        .iter()
        .position(|&t| t == MessageType::UNLOAD)
        .expect("UNLOAD sent");
    let last_teardown = sent
        .iter()
        .rposition(|&t| t == MessageType::GPADL_TEARDOWN)
        .expect("GPADLs torn down");
    assert_eq!(
        sent.iter()
            .filter(|&&t| t == MessageType::CLOSECHANNEL)
            .count(),
        2
    );
    assert!(last_teardown < unload, "{sent:?}");
}
