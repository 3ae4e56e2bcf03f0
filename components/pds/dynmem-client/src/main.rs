//! The Dynamic Memory client of `build/qemu-hyperv.xml`: opens the host's balloon device (QEMU's
//! `hv-balloon` in `cargo xtask qemu-test`), negotiates and serves balloon requests through
//! `dynmem_service::DynMem` (the program logic `system.xml`'s `dynmem-pd` runs too), until the
//! host rescinds the channel.
//!
//! Once the negotiation is done it tells the driver (a protected call labelled `DM_READY`), which
//! keeps the system's verdict. After the rescind the library refuses the channel (`ChannelGone`);
//! the client then touches its old ring directly, standing for a client that raced the
//! revocation: the driver revoked the ring pages before tearing the channel down, so the access
//! faults, the kernel stops this PD and the root task reports the fault to the driver, which
//! gives the system's verdict.
#![no_std]
#![no_main]

use client_env::{env_of, wait_for_offer};
use dynmem::msg;
use dynmem_service::{DynMem, End};
use pd_runtime::{Channel, Handler, Message, ppcall, println, report};
use pd_support::abi::scenario as sc;
use sel4::mem::Region;
use vmbus_driver::guid::Guid;

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Wake-ups while waiting for the host's offer (its negotiation under QEMU's software CPU takes
/// a while).
const OFFER_TRIES: u32 = 20_000_000;

struct Idle;

impl Handler for Idle {
    fn notified(&mut self, _: Channel) {}
}

fn fail(code: u64, why: &str) -> Idle {
    println!("dynmem: FAIL: {why}");
    report(sc::REPORT_FAIL + 50 + code, &[]);
    Idle
}

fn init() -> Idle {
    let config = pd_runtime::own_config(CONFIGS);
    let mut env = env_of(config);
    let Some(driver) = config.client.as_ref().map(|c| Channel(c.driver_channel)) else {
        return fail(9, "not a VMBus client");
    };
    let Some(relid) = wait_for_offer(&mut env, Guid(msg::CLASS), OFFER_TRIES) else {
        return fail(1, "no offer of the Dynamic Memory device");
    };
    let mut dm = DynMem::new();
    let mut refused = false;
    // Tell the driver, which keeps the system's verdict.
    let end = dm.serve(&mut env, relid, || {
        refused = ppcall(driver, Message::new(sc::DM_READY, &[])).label() != 0;
    });
    if refused {
        return fail(8, "the driver refused the ready report");
    }
    if let End::Failed(code) = end {
        return fail(code, "the channel failed");
    }
    println!(
        "dynmem: the library reports the channel gone (rescinded; balloon {} pages); touching the old ring",
        dm.balloon.stats().ballooned_now
    );
    let Some(ring) = Region::new(env.page_address(0), 4096) else {
        return fail(6, "window outside the mapping range");
    };
    // The outbound ring's write index: a page fault if the driver really revoked the page.
    let index = ring.read_u64(0);
    println!("dynmem: read {index:?} from a revoked ring");
    fail(7, "the revoked ring page was still readable")
}

pd_runtime::protection_domain!(init);
