//! Test PD: reads its window when told to and reports what it saw.
//!
//! On each notification from the driver (channel 0) it reads the first 4 KiB page of its window:
//! word 0 and the number of non-zero words after it, and tells the driver by a protected call.
//! When the driver has revoked the page, the read is a page fault: the kernel stops this PD and
//! the root task reports it to the driver.
#![no_std]
#![no_main]

use pd_runtime::{Channel, Handler, Message, ppcall};
use sel4::mem::{REGION_START, Region};

/// The client's window (system description: `windows` of this PD).
const WINDOW: usize = REGION_START;
const DRIVER: Channel = Channel(0);

struct Client {
    window: Region,
}

fn init() -> Client {
    Client {
        window: Region::new(WINDOW, 4096)
            .unwrap_or_else(|| panic!("window outside the mapping range")),
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
        ppcall(DRIVER, Message::new(0, &[first, nonzero]));
    }
}

pd_runtime::protection_domain!(init);
