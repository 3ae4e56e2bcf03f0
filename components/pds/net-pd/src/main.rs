//! The net client of `system.xml`, until its VSC protocol client lands: it sleeps until the
//! driver tells it about an offer of one of its device classes (the hot-add notification), then
//! logs the offer and leaves it unopened (`client_env::OfferWatch`). The simulated host of the
//! image offers no net device, so in `cargo xtask qemu --system system.xml` this PD sleeps for
//! the whole run.
#![no_std]
#![no_main]

use client_env::OfferWatch;
use pd_runtime::{Channel, Handler};

// `CONFIGS`: this PD's window, control page, driver channel and device classes, generated from
// the system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

struct Waiting(OfferWatch);

impl Handler for Waiting {
    fn notified(&mut self, _: Channel) {
        self.0.check();
    }
}

fn init() -> Waiting {
    let mut w = OfferWatch::new(pd_runtime::own_config(CONFIGS), "net");
    w.check();
    Waiting(w)
}

pd_runtime::protection_domain!(init);
