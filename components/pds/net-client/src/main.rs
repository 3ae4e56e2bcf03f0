//! Placeholder: the sDDF test client of `system.xml` (it lands with its program).
#![no_std]
#![no_main]

use pd_runtime::{Channel, Handler};

// `CONFIGS`: this PD's regions and channels, generated from the system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

struct Idle;

impl Handler for Idle {
    fn notified(&mut self, _: Channel) {}
}

fn init() -> Idle {
    let _ = pd_runtime::own_config(CONFIGS);
    Idle
}

pd_runtime::protection_domain!(init);
