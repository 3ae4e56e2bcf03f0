//! Fuzz target: the Dynamic Memory client on arbitrary host messages.
//!
//! The input is split into packets (a length byte, then that many bytes) and fed to the start-up
//! negotiation until it is ready, then to the balloon, whose page source lends from a small
//! fake pool and checks every reclaim. Nothing may panic; the balloon never reports a page the
//! source did not lend, never asks the source to take back a page it did not lend, and its
//! count of ballooned pages always equals what the source has out.
//!
//! Run from the repository root: `cargo +nightly-2026-05-20 fuzz run --fuzz-dir tests/fuzz
//! dynmem_messages`.
#![no_main]

use dynmem::msg::{Capabilities, MAX_GUEST_MESSAGE, MAX_MESSAGE, PageRange};
use dynmem::{Balloon, PageSource, Startup};
use libfuzzer_sys::fuzz_target;

/// A pool of 64 pages from frame 0x1000; each lend hands out the lowest free ones, one range
/// per page.
struct Pool {
    out: [bool; 64],
}

const BASE: u64 = 0x1000;

impl PageSource for Pool {
    type Error = ();

    fn lend(&mut self, max: u32, out: &mut [PageRange]) -> Result<usize, ()> {
        let mut n = 0;
        for (i, taken) in self.out.iter_mut().enumerate() {
            if n == out.len() || n as u32 == max {
                break;
            }
            if !*taken {
                *taken = true;
                out[n] = PageRange::new(BASE + i as u64, 1).map_err(|_| ())?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn reclaim(&mut self, ranges: &[PageRange]) -> Result<u32, ()> {
        let mut n = 0;
        for r in ranges {
            for p in r.start..r.end() {
                let i = p.checked_sub(BASE).expect("reclaim of a page never lent") as usize;
                assert!(self.out[i], "reclaim of a page not out");
                self.out[i] = false;
                n += 1;
            }
        }
        Ok(n)
    }
}

const CAPS: Capabilities = Capabilities {
    balloon: true,
    hot_add: false,
    hot_add_alignment: 0,
    hot_remove: false,
    min_pages: 16,
    max_page_number: 0,
};

fuzz_target!(|data: &[u8]| {
    let mut small = [0u8; MAX_GUEST_MESSAGE];
    let (mut startup, _) = Startup::begin(&mut small, 1);
    let mut balloon: Balloon<8> = Balloon::new();
    let mut pool = Pool { out: [false; 64] };
    let mut out = Box::new([0u8; MAX_MESSAGE]);
    let mut rest = data;
    let mut tid = 1;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let (packet, tail) = tail.split_at(n);
        rest = tail;
        tid += 1;
        if !matches!(startup, Startup::Ready { .. }) {
            let _ = startup.on_message(packet, &mut small, tid, &CAPS);
            continue;
        }
        let mut reply = balloon.on_message(packet, &mut pool, &mut out, tid);
        while reply.more {
            reply = balloon.resume(&mut pool, &mut out, tid);
        }
        let lent = pool.out.iter().filter(|&&o| o).count() as u64;
        assert_eq!(balloon.stats().ballooned_now, lent);
    }
});
