//! The heartbeat client of `system.xml`: answers each heartbeat of the host with the sequence
//! number plus one (`ic::services::Heartbeat`), so the host sees the guest alive, and logs the
//! sequence now and then.
#![no_std]
#![no_main]

use ic::service::Endpoint;
use ic::services::Heartbeat;
use ic_service::ServiceChannel;
use pd_runtime::{Channel, Handler, println};
use pd_support::cell::StaticCell;

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Log one answered heartbeat in this many.
const LOG_EVERY: u64 = 8;

static ENDPOINT: StaticCell<Endpoint<Heartbeat>> =
    StaticCell::new(Endpoint::new(Heartbeat { last: None }));

struct HeartbeatPd(ServiceChannel<Heartbeat>);

fn on_event(ep: &mut Endpoint<Heartbeat>, seq: u64) {
    if ep.answered() % LOG_EVERY == 1 {
        println!(
            "heartbeat: answered sequence {seq} ({} answers)",
            ep.answered()
        );
    }
}

impl Handler for HeartbeatPd {
    fn notified(&mut self, _: Channel) {
        self.0.on_notified(on_event);
    }
}

fn init() -> HeartbeatPd {
    let Some(endpoint) = ENDPOINT.take() else {
        panic!("heartbeat state taken twice");
    };
    let mut ch = ServiceChannel::new(pd_runtime::own_config(CONFIGS), endpoint);
    ch.connect(on_event);
    HeartbeatPd(ch)
}

pd_runtime::protection_domain!(init);
