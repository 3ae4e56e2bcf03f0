//! The network driver program (`sim_system::network::NetvscDriver`: netvsc over the `net`
//! client's VMBus channel) against the simulated host's network device and loopback switch,
//! with a test client on the other side that uses only the sDDF queues
//! (`sim_system::network::NetTestClient`): ARP, ping and UDP echo answered, a rescind in the
//! middle of traffic, and a hostile host.

use hv_host::{DeviceId, DeviceSpec, Hostile};
use sim_system::network::{
    NetQueues, NetTestClient, NetTestHandle, NetvscDriver, NetvscHandle, Request,
};
use sim_system::{World, WorldConfig};
use vmbus_client::ClientEnv;
use vmbus_driver::driver::ConnectionState;
use vmbus_driver::ids::ClientId;

/// The PD the test client runs on: one of the description's with no device offered here (the
/// real sDDF client is a PD of its own with no VMBus connection).
const TEST_CLIENT_PD: &str = "heartbeat";

struct Net {
    w: World,
    drv: NetvscHandle,
    net_id: ClientId,
    dev: DeviceId,
    queues: NetQueues,
    /// Free pool pages before the device was offered.
    free0: usize,
}

impl Net {
    /// Boots the system with the network device and the driver program; waits for the device
    /// to be configured with its link up.
    fn boot() -> Self {
        let mut w = World::repository(&WorldConfig::default());
        let queues = NetQueues::new();
        let drv = NetvscDriver::new(&queues);
        let handle = drv.handle();
        let net_id = w.client("net").expect("net client").id;
        w.set_program(net_id, Box::new(drv));
        w.start();
        w.run_until(
            |w| w.driver().connection().state == ConnectionState::Connected,
            200,
        )
        .expect("connects");
        w.run(5);
        let free0 = w.pool_free();
        let dev = w
            .host_mut()
            .add_device(DeviceSpec::network())
            .expect("host takes the device");
        let mut n = Self {
            w,
            drv: handle,
            net_id,
            dev,
            queues,
            free0,
        };
        n.until("netvsc ready", |n| n.drv.ready());
        n
    }

    fn until(&mut self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        for _ in 0..2000 {
            if cond(self) {
                return;
            }
            self.w.step();
        }
        panic!(
            "{what}: not reached; driver {:?}; host {:?}",
            self.drv.state(),
            self.w.host().net().stats()
        );
    }

    /// Installs the sDDF test client with `script`.
    fn client(&mut self, script: Vec<Request>, repeat: bool) -> NetTestHandle {
        let c = NetTestClient::new(&self.queues, script, repeat);
        let h = c.handle();
        let id = self.w.client(TEST_CLIENT_PD).unwrap().id;
        self.w.set_program(id, Box::new(c));
        h
    }
}

#[test]
fn a_ping_through_netvsc_and_sddf_is_answered_by_the_host_switch() {
    let mut n = Net::boot();
    let info = n.drv.state().info.expect("configured");
    assert_eq!(info.mac, hv_host::NetOptions::DEFAULT.mac);
    let c = n.client(
        vec![
            Request::Arp,
            Request::Ping(1),
            Request::Ping(2),
            Request::Ping(3),
        ],
        false,
    );
    n.until("ARP and three pings answered", |_| {
        let s = c.state();
        s.arp_replies == 1 && s.echo_replies == 3
    });
    let s = c.state();
    assert_eq!((s.sent, s.unexpected, s.unanswered), (4, 0, 0), "{s:?}");
    let host = n.w.host().net();
    assert_eq!((host.arp_answered(), host.icmp_answered()), (1, 3));
    assert_eq!(host.frames_switched(), 4);
    let d = n.drv.state();
    assert_eq!(d.bridge.tx_sent, 4);
    assert_eq!(d.bridge.rx_delivered, 4);
    assert_eq!(d.tx_done, 4, "every send section completed");
    assert_eq!((d.hostile, d.window_faults), (0, 0), "{:?}", d.errors);
    assert_eq!(
        n.w.host().net().rx_outstanding(),
        0,
        "every receive completed"
    );
}

#[test]
fn a_udp_datagram_is_echoed_through_netvsc() {
    let mut n = Net::boot();
    let c = n.client(vec![Request::Arp, Request::Udp(1), Request::Udp(2)], false);
    n.until("two datagrams echoed", |_| c.state().udp_echoes == 2);
    let s = c.state();
    assert_eq!(
        (s.arp_replies, s.unexpected, s.unanswered),
        (1, 0, 0),
        "{s:?}"
    );
    assert_eq!(n.w.host().net().udp_answered(), 2);
}

#[test]
fn a_rescind_mid_traffic_takes_the_link_down_and_every_buffer_page_back() {
    let mut n = Net::boot();
    let in_use = n.free0 - n.w.pool_free();
    let rings_and_buffers = 2 * usize::from(sim_system::network::RING_PAGES)
        + (sim_system::network::RECV_PAGES + sim_system::network::SEND_PAGES) as usize;
    assert!(
        in_use >= rings_and_buffers,
        "{in_use} pool pages in use, {rings_and_buffers} expected at least"
    );
    let c = n.client(
        vec![Request::Ping(1), Request::Udp(2), Request::Ping(3)],
        true,
    );
    n.until("traffic flows", |_| {
        let s = c.state();
        s.echo_replies >= 4 && s.udp_echoes >= 2
    });
    let answered_before = {
        let s = c.state();
        s.echo_replies + s.udp_echoes
    };
    n.w.host_mut().remove_device(n.dev).expect("rescind");
    n.until("the link reported down", |n| {
        let d = n.drv.state();
        d.gone == 1 && !d.link_up && d.link_downs >= 1
    });
    n.until("every ring and buffer page back in the pool", |n| {
        n.w.pool_free() == n.free0
    });
    // Traffic after the rescind goes nowhere and nothing panics.
    n.w.run(100);
    let s = c.state();
    assert!(answered_before >= 6);
    assert!(
        s.unanswered >= 1,
        "requests after the rescind stay unanswered: {s:?}"
    );
    assert_eq!(s.unexpected, 0);
    assert_eq!(n.w.pool_free(), n.free0);
    assert!(
        !n.w.client_stopped(n.net_id),
        "the driver program never faulted"
    );
}

#[test]
fn the_receive_buffer_is_unreachable_by_the_client_after_the_rescind() {
    let mut n = Net::boot();
    let (recv, send) = n.drv.state().buffers.expect("buffers");
    let mut b = [0u8; 64];
    assert!(
        n.w.as_client(n.net_id, |ctx| ctx.window_read(recv.window_page, 0, &mut b)),
        "reachable while open"
    );
    n.w.host_mut().remove_device(n.dev).expect("rescind");
    n.until("the channel gone", |n| n.drv.state().gone == 1);
    n.until("every page back", |n| n.w.pool_free() == n.free0);
    for (buf, what) in [(recv, "receive"), (send, "send")] {
        for page in [0, buf.pages - 1] {
            let ok = n.w.as_client(n.net_id, |ctx| {
                ctx.window_read(buf.window_page + page, 0, &mut b)
            });
            assert!(!ok, "page {page} of the {what} buffer still readable");
        }
    }
}

#[test]
fn receive_ranges_beyond_the_buffer_are_refused_while_other_traffic_goes_on() {
    let mut n = Net::boot();
    let c = n.client(vec![Request::Ping(1), Request::Udp(2)], true);
    n.until("traffic flows", |_| c.state().echo_replies >= 2);
    n.w.host_mut().set_hostile(Hostile {
        net_xfer_beyond_buffer: true,
        ..Hostile::NONE
    });
    n.until("hostile receives refused", |n| n.drv.state().hostile >= 3);
    let (echo, udp) = {
        let s = c.state();
        (s.echo_replies, s.udp_echoes)
    };
    n.w.run(60);
    {
        let s = c.state();
        assert_eq!(
            (s.echo_replies, s.udp_echoes),
            (echo, udp),
            "nothing from a range beyond the buffer reaches the client"
        );
    }
    n.w.host_mut().set_hostile(Hostile::NONE);
    n.until("answers again", |_| {
        let s = c.state();
        s.echo_replies >= echo + 2 && s.udp_echoes >= udp + 2
    });
    let d = n.drv.state();
    assert_eq!(d.gone, 0, "the channel stayed");
    assert!(d.link_up);
    assert_eq!(c.state().unexpected, 0);
    assert!(!n.w.client_stopped(n.net_id));
    drop(d);
    // The host got a failure completion for every refused receive: nothing stays held.
    n.w.run(20);
    assert_eq!(n.w.host().net().rx_outstanding(), 0);
}
