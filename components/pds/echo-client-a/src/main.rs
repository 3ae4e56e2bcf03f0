//! End-to-end client A: opens echo device A, sends packets and checks each echo until the host
//! rescinds the channel under its traffic; then touches its old ring directly, which must be a
//! page fault (the driver revoked the pages before anything else).
//!
//! The library refuses to touch a channel the driver marked gone (`ChannelGone`, from the status
//! record); the direct read after that stands for a client that raced the revocation or ignores
//! the library. The kernel stops this PD on the fault and the root task reports it to the
//! driver. When client B has the recycled pages, the root task restarts this PD at the same
//! instruction: it faults again.
#![no_std]
#![no_main]

use client_env::{env_of, payload, wait_for_offer};
use pd_runtime::{Channel, Handler, println, report};
use pd_support::abi::scenario as sc;
use sel4::mem::Region;
use vmbus_client::{ClientError, open};
use vmbus_driver::guid::Guid;

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Packets sent at most (the host rescinds after `RESCIND_AFTER`).
const MAX_PACKETS: u64 = 10_000;

struct Idle;

impl Handler for Idle {
    fn notified(&mut self, _: Channel) {}
}

fn fail(code: u64, why: &str) -> Idle {
    println!("client-a: FAIL: {why}");
    report(sc::REPORT_FAIL + 30 + code, &[]);
    Idle
}

fn init() -> Idle {
    let config = pd_runtime::own_config(CONFIGS);
    let mut env = env_of(config);
    // The device class this client serves (the host's echo device A).
    let Some(class) = config.client.as_ref().and_then(|c| c.classes.first()) else {
        return fail(8, "no device class configured");
    };
    let Some(relid) = wait_for_offer(&mut env, Guid(class.0), 100_000) else {
        return fail(1, "no offer of echo device A");
    };
    let mut ch = match open(&mut env, relid, sc::RING_PAGES, sc::RING_PAGES) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                2,
                match e {
                    ClientError::OpenFailed => "open failed",
                    _ => "open refused",
                },
            );
        }
    };
    println!("client-a: opened {relid}; sending packets");
    let mut echoed = 0u64;
    let mut buf = [0u8; sc::PAYLOAD];
    'traffic: for n in 0..MAX_PACKETS {
        let sent = payload(sc::SECRET_A, n);
        match ch.send(&mut env, &sent) {
            Ok(()) => {}
            Err(ClientError::ChannelGone) => break 'traffic,
            Err(e) => {
                println!("client-a: send: {e}");
                return fail(3, "send failed");
            }
        }
        loop {
            match ch.recv(&mut env, &mut buf) {
                Ok(Some(r)) if r.len == sc::PAYLOAD && buf == sent => {
                    echoed += 1;
                    break;
                }
                Ok(Some(_)) => return fail(4, "echo differs from the packet sent"),
                Ok(None) => {
                    env.wait_notification_now();
                }
                Err(ClientError::ChannelGone) => break 'traffic,
                Err(e) => {
                    println!("client-a: recv: {e}");
                    return fail(5, "receive failed");
                }
            }
        }
    }
    println!(
        "client-a: {echoed} packets echoed, then the library reports the channel gone; touching the old ring anyway"
    );
    let Some(ring) = Region::new(env.page_address(0), 4096) else {
        return fail(6, "window outside the mapping range");
    };
    // The outbound ring's write index: a page fault if the driver really revoked the page.
    let index = ring.read_u64(0);
    println!("client-a: read {index:?} from a revoked ring");
    fail(7, "the revoked ring page was still readable")
}

pd_runtime::protection_domain!(init);
