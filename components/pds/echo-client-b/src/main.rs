//! End-to-end client B: waits for echo device B (offered once A's channel is released), opens
//! it on the recycled pages, checks that every echo is its own data, then tells the driver it is
//! done, and the driver asks the root task to restart client A, which must fault again on its
//! old ring.
#![no_std]
#![no_main]

use client_env::{env_of, payload, wait_for_offer};
use pd_runtime::{Channel, Handler, Message, ppcall, println, report};
use pd_support::abi::scenario as sc;
use sel4::mem::Region;
use vmbus_client::{ClientError, open};
use vmbus_driver::guid::Guid;

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

struct Idle;

impl Handler for Idle {
    fn notified(&mut self, _: Channel) {}
}

fn fail(code: u64, why: &str) -> Idle {
    println!("client-b: FAIL: {why}");
    report(sc::REPORT_FAIL + 40 + code, &[]);
    Idle
}

fn init() -> Idle {
    let config = pd_runtime::own_config(CONFIGS);
    let mut env = env_of(config);
    // The device class this client serves (the host's echo device B).
    let Some(client) = &config.client else {
        return fail(10, "not a VMBus client");
    };
    let Some(class) = client.classes.first() else {
        return fail(10, "no device class configured");
    };
    let Some(relid) = wait_for_offer(&mut env, Guid(class.0), 10_000_000) else {
        return fail(1, "no offer of echo device B");
    };
    let mut ch = match open(&mut env, relid, sc::RING_PAGES, sc::RING_PAGES) {
        Ok(c) => c,
        Err(_) => return fail(2, "open failed"),
    };
    // The ring pages as granted: only ring headers and zeroes, nothing of A's.
    let Some(window) = Region::new(env.page_address(0), 2 * sc::RING_PAGES as usize * 4096) else {
        return fail(3, "window outside the mapping range");
    };
    let foreign = (0..window.len() / 8)
        .filter_map(|i| window.read_u64(i * 8))
        .filter(|w| w & sc::TAG_MASK == sc::SECRET_A)
        .count();
    println!(
        "client-b: opened {relid} on recycled pages; words of A's data in its rings: {foreign}"
    );
    if foreign != 0 {
        return fail(4, "client A's data is visible in client B's rings");
    }
    let mut buf = [0u8; sc::PAYLOAD];
    for n in 0..sc::B_PACKETS {
        let sent = payload(sc::DATA_B, n);
        if let Err(e) = ch.send(&mut env, &sent) {
            println!("client-b: send: {e}");
            return fail(5, "send failed");
        }
        loop {
            match ch.recv(&mut env, &mut buf) {
                Ok(Some(r)) if r.len == sc::PAYLOAD && buf == sent => break,
                Ok(Some(_)) => return fail(6, "echo differs from the packet sent"),
                Ok(None) => env.wait_notification_now(),
                Err(ClientError::ChannelGone) => return fail(7, "channel B gone"),
                Err(e) => {
                    println!("client-b: recv: {e}");
                    return fail(8, "receive failed");
                }
            }
        }
    }
    println!(
        "client-b: {} packets echoed on the recycled pages; the driver is to have client A restarted",
        sc::B_PACKETS
    );
    let done = Message::new(sc::B_DONE, &[]);
    if ppcall(Channel(client.driver_channel), done).label() != 0 {
        return fail(9, "restart of client A refused");
    }
    Idle
}

pd_runtime::protection_domain!(init);
