//! Test PD: reads its window when told to and reports what it saw.
//!
//! On each notification from the driver (channel 0) it reads the first 4 KiB page of its window:
//! word 0 and the number of non-zero words after it, and word 0 of its control page, and tells
//! the driver by a protected call.
//! When the driver has revoked the page, the read is a page fault: the kernel stops this PD and
//! the root task reports it to the driver.
#![no_std]
#![no_main]

use pd_runtime::{Channel, Handler, Message, ppcall};
use sel4::mem::Region;

/// The client's window (build/qemu-test.xml: `window_vaddr`).
const WINDOW: usize = 0x8000_0000;
/// The client's control page (build/qemu-test.xml: its map of its control region).
const CONTROL: usize = 0x3000_0000;
const DRIVER: Channel = Channel(0);

struct Client {
    window: Region,
    control: Region,
}

fn init() -> Client {
    let region =
        |at| Region::new(at, 4096).unwrap_or_else(|| panic!("{at:#x} outside the mapping range"));
    Client {
        window: region(WINDOW),
        control: region(CONTROL),
    }
}

impl Handler for Client {
    fn notified(&mut self, ch: Channel) {
        if ch != DRIVER {
            return;
        }
        let first = self.window.read_u64(0).unwrap_or(0);
        let nonzero = (1..512)
            .filter(|i| self.window.read_u64(i * 8).is_some_and(|w| w != 0))
            .count() as u64;
        let control = self.control.read_u64(0).unwrap_or(0);
        ppcall(DRIVER, Message::new(0, &[first, nonzero, control]));
    }
}

pd_runtime::protection_domain!(init);
