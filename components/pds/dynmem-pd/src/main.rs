//! The Dynamic Memory client of `system.xml` (`dynmem_service::DynMem`): waits for the host's
//! balloon device, negotiates, serves inflate and deflate with pages the driver lends, and
//! after a rescind waits for the device to be offered again.
#![no_std]
#![no_main]

use client_env::{env_of, wait_for_offer};
use dynmem_service::{DynMem, End};
use pd_runtime::{Channel, Handler, println};
use vmbus_driver::guid::Guid;

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Wake-ups a wait for the offer takes before it gives up.
const OFFER_TRIES: u32 = 20_000_000;

struct Idle;

impl Handler for Idle {
    fn notified(&mut self, _: Channel) {}
}

fn init() -> Idle {
    let config = pd_runtime::own_config(CONFIGS);
    let Some(class) = config.client.as_ref().and_then(|c| c.classes.first()) else {
        panic!("{} is not a client with a device class", config.name);
    };
    let mut env = env_of(config);
    let mut dm = DynMem::new();
    loop {
        let Some(relid) = wait_for_offer(&mut env, Guid(class.0), OFFER_TRIES) else {
            println!("dynmem: no offer of the Dynamic Memory device; giving up");
            return Idle;
        };
        match dm.serve(&mut env, relid, || {}) {
            End::Gone => println!(
                "dynmem: the channel is gone (rescinded); {} pages stay with the host; waiting for the device again",
                dm.balloon.stats().ballooned_now
            ),
            End::Failed(code) => {
                println!("dynmem: the channel failed ({code}); stopped");
                return Idle;
            }
        }
    }
}

pd_runtime::protection_domain!(init);
