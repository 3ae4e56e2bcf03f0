//! The shutdown client of `system.xml`: answers the host's shutdown requests
//! (`ic::services::Shutdown`: shut down and restart accepted, hibernate and unknown requests
//! refused), and after accepting one asks the driver to stop the system in order: every
//! channel of every client closed (mappings revoked, GPADLs torn down), the bus unloaded, then
//! the root task halts the machine with an exit status that says power off or restart.
//!
//! Before it asks, it reads the time sync client's clock (when the description gives it a
//! channel to the `timesync` PD) to log when the stop began.
#![no_std]
#![no_main]

use ic::service::Endpoint;
use ic::services::Shutdown;
use ic::shutdown::Request as HostRequest;
use ic_service::ServiceChannel;
use pd_runtime::{Channel, Handler, Message, ppcall, println};
use pd_support::abi::clock;
use pd_support::cell::StaticCell;
use vmbus_client::call;
use vmbus_driver::control::{Request, Response};

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// The PD whose clock the log line uses.
const CLOCK_PD: &str = "timesync";

static ENDPOINT: StaticCell<Endpoint<Shutdown>> =
    StaticCell::new(Endpoint::new(Shutdown { last: None }));

struct ShutdownPd {
    channel: ServiceChannel<Shutdown>,
    clock: Option<Channel>,
    /// The stop asked of the driver, once asked.
    stopping: Option<bool>,
}

impl ShutdownPd {
    fn serve(&mut self, connect: bool) {
        let mut accepted = None;
        let on_event = |_: &mut Endpoint<Shutdown>, r: HostRequest| match r {
            HostRequest::Shutdown { forced } => accepted = Some((false, forced)),
            HostRequest::Restart { forced } => accepted = Some((true, forced)),
            HostRequest::Hibernate => println!("shutdown: hibernation refused (not supported)"),
            HostRequest::Unknown(flags) => {
                println!("shutdown: request with unknown flags {flags:#x} refused")
            }
        };
        if connect {
            self.channel.connect(on_event);
        } else {
            self.channel.on_notified(on_event);
        }
        if let Some((restart, forced)) = accepted {
            self.stop(restart, forced);
        }
    }

    /// The answer is out: have the driver stop the system.
    fn stop(&mut self, restart: bool, forced: bool) {
        if self.stopping.is_some() {
            println!("shutdown: a stop is already under way");
            return;
        }
        let what = if restart { "restart" } else { "power off" };
        match self.clock.map(|c| ppcall(c, Message::new(clock::NOW, &[]))) {
            Some(m) if m.label() == 0 => println!(
                "shutdown: the host asks for {what} (forced: {forced}) at {} s after 1970 (clock from {} samples)",
                m.words[0] / 1_000_000_000,
                m.words[2]
            ),
            _ => println!("shutdown: the host asks for {what} (forced: {forced})"),
        }
        self.stopping = Some(restart);
        match call(&mut self.channel.env, &Request::Stop { restart }) {
            Ok(Response::Stopping) => {
                println!("shutdown: the driver is closing every channel and unloading the bus")
            }
            Ok(Response::Error(e)) => println!("shutdown: the driver refused the stop: {e}"),
            Ok(r) => println!("shutdown: unexpected answer to the stop: {r:?}"),
            Err(e) => println!("shutdown: stop request failed: {e}"),
        }
    }
}

impl Handler for ShutdownPd {
    fn notified(&mut self, _: Channel) {
        if self.stopping.is_none() {
            self.serve(false);
        }
    }
}

fn init() -> ShutdownPd {
    let config = pd_runtime::own_config(CONFIGS);
    let Some(endpoint) = ENDPOINT.take() else {
        panic!("shutdown state taken twice");
    };
    let clock = config
        .channels
        .iter()
        .find(|c| c.peer == CLOCK_PD && c.pp)
        .map(|c| Channel(c.id));
    let mut pd = ShutdownPd {
        channel: ServiceChannel::new(config, endpoint),
        clock,
        stopping: None,
    };
    pd.serve(true);
    pd
}

pd_runtime::protection_domain!(init);
