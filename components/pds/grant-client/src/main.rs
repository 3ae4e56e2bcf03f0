//! Test PD: reads its window when told to and reports what it saw.
//!
//! On each notification from the driver (channel 0) it reads the first 4 KiB page of its window:
//! word 0 and the number of non-zero words after it, and word 0 of its control page, and tells
//! the driver by a protected call.
//! When the driver has revoked the page, the read is a page fault: the kernel stops this PD and
//! the root task reports it to the driver. Two PDs run this program (`build/qemu-test.xml`); each
//! takes its window, control page and driver channel from its own entry of `CONFIGS`.
#![no_std]
#![no_main]

use pd_runtime::{Channel, Handler, Message, ppcall};
use sel4::mem::Region;

// `CONFIGS`: the window, control page and driver channel of each PD running this program,
// generated from the system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

struct Client {
    window: Region,
    control: Region,
    driver: Channel,
}

fn init() -> Client {
    let config = pd_runtime::own_config(CONFIGS);
    let Some(c) = &config.client else {
        panic!("{} is not a VMBus client", config.name);
    };
    let region =
        |at| Region::new(at, 4096).unwrap_or_else(|| panic!("{at:#x} outside the mapping range"));
    Client {
        window: region(c.window_vaddr),
        control: region(c.control_vaddr),
        driver: Channel(c.driver_channel),
    }
}

impl Handler for Client {
    fn notified(&mut self, ch: Channel) {
        if ch != self.driver {
            return;
        }
        let first = self.window.read_u64(0).unwrap_or(0);
        let nonzero = (1..512)
            .filter(|i| self.window.read_u64(i * 8).is_some_and(|w| w != 0))
            .count() as u64;
        let control = self.control.read_u64(0).unwrap_or(0);
        ppcall(self.driver, Message::new(0, &[first, nonzero, control]));
    }
}

pd_runtime::protection_domain!(init);
