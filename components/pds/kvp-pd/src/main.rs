//! The KVP client of `system.xml`: answers the host's key-value exchange (`ic::kvp::Kvp`): the
//! guest's own facts in the auto pool, and a bounded store of what the host sets, read back and
//! deleted on request. Every pair the host sets is logged, so the run shows the store.
#![no_std]
#![no_main]

use ic::kvp::{Event, Kvp, Op, Pool, SEL4_GUEST};
use ic::service::Endpoint;
use ic_service::ServiceChannel;
use pd_runtime::{Channel, Handler, println};
use pd_support::cell::StaticCell;

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Pairs the store keeps across all pools (about 2.6 KiB each, in static memory); a SET beyond
/// them is refused with a failure status, never evicting another pair.
const STORE: usize = 16;

static ENDPOINT: StaticCell<Endpoint<Kvp<'static, STORE>>> =
    StaticCell::new(Endpoint::new(Kvp::new(SEL4_GUEST)));

struct KvpPd(ServiceChannel<Kvp<'static, STORE>>);

/// Writes a UTF-16LE key up to its terminating NUL.
struct Utf16<'a>(&'a [u8]);

impl core::fmt::Display for Utf16<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let units = self
            .0
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0);
        for c in char::decode_utf16(units) {
            write!(f, "{}", c.unwrap_or(char::REPLACEMENT_CHARACTER))?;
        }
        Ok(())
    }
}

fn op_name(op: Op) -> &'static str {
    match op.0 {
        0 => "GET",
        1 => "SET",
        2 => "DELETE",
        3 => "ENUMERATE",
        4 => "GET_IP_INFO",
        5 => "SET_IP_INFO",
        _ => "unknown operation",
    }
}

fn on_event(ep: &mut Endpoint<Kvp<'static, STORE>>, event: Event) {
    match event {
        Event::Done(op, pool) if op.0 == 1 || op.0 == 2 => {
            let store = &ep.service.store;
            println!(
                "kvp: {} in pool {} done; the store holds {} pairs:",
                op_name(op),
                pool.0,
                store.len()
            );
            for p in 0..=4 {
                let mut i = 0;
                while let Some((key, value)) = store.nth(Pool(p), i) {
                    match value.number() {
                        Some(n) => println!("kvp:   pool {p}: {} = {n}", Utf16(key)),
                        None => println!(
                            "kvp:   pool {p}: {} = \"{}\"",
                            Utf16(key),
                            Utf16(value.bytes)
                        ),
                    }
                    i += 1;
                }
            }
        }
        Event::Done(op, pool) => println!("kvp: {} in pool {} answered", op_name(op), pool.0),
        Event::Refused(op, e) => println!("kvp: {} refused: {e}", op_name(op)),
    }
}

impl Handler for KvpPd {
    fn notified(&mut self, _: Channel) {
        self.0.on_notified(on_event);
    }
}

fn init() -> KvpPd {
    let Some(endpoint) = ENDPOINT.take() else {
        panic!("KVP state taken twice");
    };
    let mut ch = ServiceChannel::new(pd_runtime::own_config(CONFIGS), endpoint);
    ch.connect(on_event);
    KvpPd(ch)
}

pd_runtime::protection_domain!(init);
