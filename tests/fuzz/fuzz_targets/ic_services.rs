//! Fuzz target: every integration service's guest side on arbitrary host packets.
//!
//! The input is split into packets (a length byte, then that many bytes, up to the input's end)
//! and each packet goes, in turn, to the heartbeat, shutdown, time sync and KVP endpoints
//! (`ic::service::Endpoint`), which keep their state across packets as a channel does. Nothing
//! may panic; an answer is never longer than the packet it overwrites, and a service request is
//! never answered before a negotiation agreed.
//!
//! Run from the repository root: `cargo +nightly-2026-05-20 fuzz run --fuzz-dir tests/fuzz
//! ic_services`.
#![no_main]

use ic::kvp::{Kvp, SEL4_GUEST};
use ic::service::{Endpoint, Negotiation, Service, Step};
use ic::services::{Heartbeat, Shutdown, TimeSync};
use libfuzzer_sys::fuzz_target;

fn feed<S: Service>(ep: &mut Endpoint<S>, packet: &[u8]) {
    // Room for the largest answer: the packet itself (answers are written in place).
    let mut buf = packet.to_vec();
    let before = ep.negotiation();
    match ep.on_packet(&mut buf) {
        Ok(Step::Negotiated { len, .. }) => assert!(len <= packet.len()),
        Ok(Step::Answered { len, .. }) => {
            assert!(len <= packet.len());
            assert!(matches!(before, Negotiation::Agreed { .. }));
        }
        Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut heartbeat = Endpoint::new(Heartbeat::default());
    let mut shutdown = Endpoint::new(Shutdown::default());
    let mut timesync = Endpoint::new(TimeSync::default());
    let mut kvp = Box::new(Endpoint::new(Kvp::<4>::new(SEL4_GUEST)));
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (packet, tail) = tail.split_at(n);
        rest = tail;
        feed(&mut heartbeat, packet);
        feed(&mut shutdown, packet);
        feed(&mut timesync, packet);
        feed(&mut kvp, packet);
    }
});
