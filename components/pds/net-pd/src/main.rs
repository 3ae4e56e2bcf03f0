//! The net client of `system.xml`, until its VSC protocol client lands: it sleeps until the
//! driver tells it about an offer of one of its device classes (the hot-add notification), then
//! logs the offer and leaves it unopened. The simulated host of the image offers no net device,
//! so in `cargo xtask qemu --system system.xml` this PD sleeps for the whole run.
#![no_std]
#![no_main]

use client_env::env_of;
use pd_runtime::{Channel, Handler, println};
use vmbus_client::{ClientError, list_offers, offers_delivered};
use vmbus_driver::control::ClientError as Refusal;

// `CONFIGS`: this PD's window, control page, driver channel and device classes, generated from
// the system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

struct Waiting {
    env: client_env::Sel4Env,
    seen: u32,
}

impl Waiting {
    /// Lists the offers of this client's classes when the driver's counter moved.
    fn check(&mut self) {
        let now = offers_delivered(&mut self.env);
        if now == self.seen {
            return;
        }
        self.seen = now;
        match list_offers(&mut self.env, None) {
            Ok(offers) => {
                for o in offers.iter() {
                    println!(
                        "net: offered {} (class {}); its protocol client is not built yet: left unopened",
                        o.relid,
                        vmbus_driver::guid::Guid(o.class)
                    );
                }
            }
            Err(ClientError::Refused(Refusal::NotConnected)) => {}
            Err(e) => println!("net: listing offers: {e}"),
        }
    }
}

impl Handler for Waiting {
    fn notified(&mut self, _: Channel) {
        self.check();
    }
}

fn init() -> Waiting {
    let env = env_of(pd_runtime::own_config(CONFIGS));
    let mut w = Waiting { env, seen: 0 };
    w.check();
    w
}

pd_runtime::protection_domain!(init);
