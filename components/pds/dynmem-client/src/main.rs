//! The Dynamic Memory client of `build/qemu-hyperv.xml`: opens the host's balloon device (QEMU's
//! `hv-balloon` in `cargo xtask qemu-test`), negotiates the protocol version and reports its
//! capabilities (`clients/dynmem`), then serves the channel until the host rescinds it.
//!
//! Once the negotiation is done it tells the driver (a protected call labelled `DM_READY`), which
//! keeps the system's verdict. After the rescind the library refuses the channel (`ChannelGone`);
//! the client then touches
//! its old ring directly, standing for a client that raced the revocation: the driver revoked the
//! ring pages before tearing the channel down, so the access faults, the kernel stops this PD
//! and the root task reports the fault to the driver, which gives the system's verdict.
//!
//! Balloon inflation and deflation are issue 13's work: this client reports the balloon
//! capability so that the host accepts it, and answers a balloon request with no pages.
#![no_std]
#![no_main]

use client_env::{env_of, wait_for_offer};
use dynmem::msg::{self, Capabilities, MAX_GUEST_MESSAGE, MsgType};
use dynmem::{Startup, StartupStep};
use pd_runtime::{Channel, Handler, Message, ppcall, println, report};
use pd_support::abi::scenario as sc;
use sel4::mem::Region;
use vmbus_client::{ClientError, open};
use vmbus_driver::guid::Guid;

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Pages of each ring (the host's balloon messages are small).
const RING_PAGES: u16 = 4;

/// Yields while waiting for the host's offer (its negotiation under QEMU's software CPU takes a
/// while).
const OFFER_TRIES: u32 = 20_000_000;

/// What the client reports: it can balloon, needs at least 16 MiB and no hot add.
const CAPS: Capabilities = Capabilities {
    balloon: true,
    hot_add: false,
    hot_add_alignment: 0,
    hot_remove: false,
    min_pages: 4096,
    max_page_number: 0,
};

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
    let mut ch = match open(&mut env, relid, RING_PAGES, RING_PAGES) {
        Ok(c) => c,
        Err(e) => {
            println!("dynmem: open: {e}");
            return fail(2, "open failed");
        }
    };
    println!("dynmem: opened {relid}; negotiating");
    let mut out = [0u8; MAX_GUEST_MESSAGE];
    let mut trans_id = 1u32;
    let (mut startup, n) = Startup::begin(&mut out, trans_id);
    let mut pending = Some(n);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(n) = pending.take() {
            match ch.send(&mut env, &out[..n]) {
                Ok(()) => {}
                Err(ClientError::ChannelGone) => break,
                Err(e) => {
                    println!("dynmem: send: {e}");
                    return fail(3, "send failed");
                }
            }
        }
        let len = match ch.recv(&mut env, &mut buf) {
            Ok(Some(r)) => r.len,
            Ok(None) => {
                env.wait_notification_now();
                continue;
            }
            Err(ClientError::ChannelGone) => break,
            Err(e) => {
                println!("dynmem: recv: {e}");
                return fail(4, "receive failed");
            }
        };
        let packet = &buf[..len];
        trans_id = trans_id.wrapping_add(1);
        if !matches!(startup, Startup::Ready { .. }) {
            match startup.on_message(packet, &mut out, trans_id, &CAPS) {
                Ok(StartupStep::Send(n)) => {
                    if let Startup::Reporting { version } = startup {
                        println!("dynmem: the host accepted Dynamic Memory protocol {version}");
                    }
                    pending = Some(n);
                }
                Ok(StartupStep::Wait) => {}
                Ok(StartupStep::Ready) => {
                    if let Startup::Ready { version, host } = startup {
                        println!(
                            "dynmem: capabilities accepted (protocol {version}, hot remove {}, pressure reports {}); ready",
                            host.hot_remove, !host.suppress_pressure_reports
                        );
                    }
                    // Tell the driver, which keeps the system's verdict.
                    if ppcall(driver, Message::new(sc::DM_READY, &[])).label() != 0 {
                        return fail(8, "the driver refused the ready report");
                    }
                }
                Err(e) => {
                    println!("dynmem: negotiation: {e}");
                    return fail(5, "negotiation failed");
                }
            }
            continue;
        }
        match msg::split(packet) {
            Ok((h, _)) if h.ty == MsgType::BALLOON_REQUEST => {
                println!("dynmem: balloon request (not served yet): answering with no pages");
                pending = Some(msg::balloon_response_none(&mut out, h.trans_id));
            }
            Ok((h, _)) => println!("dynmem: message type {} ignored", h.ty.0),
            Err(e) => println!("dynmem: bad message from the host: {e}"),
        }
    }
    println!("dynmem: the library reports the channel gone (rescinded); touching the old ring");
    let Some(ring) = Region::new(env.page_address(0), 4096) else {
        return fail(6, "window outside the mapping range");
    };
    // The outbound ring's write index: a page fault if the driver really revoked the page.
    let index = ring.read_u64(0);
    println!("dynmem: read {index:?} from a revoked ring");
    fail(7, "the revoked ring page was still readable")
}

pd_runtime::protection_domain!(init);
