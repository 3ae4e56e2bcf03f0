//! The VMBus driver PD of the image: a thin loop over `vmbus_driver::driver::Driver`.
//!
//! Seams: `sel4_kernel::Sel4Kernel` (pool pages, grants into client windows, revocation,
//! control pages, client notifications) and [`hv::StandInHv`] (the hypercall stand-in to the
//! simulated host PD). Events: a notification from the host is the SINT2 interrupt
//! (`Driver::on_interrupt`), a protected call from a client is a control request
//! (`Driver::on_client_call`), and a fault report from the root task is a client fault
//! (`Driver::on_client_fault`).
//!
//! The PD also keeps the end-to-end verdict of `build/qemu-e2e.xml`: it reports PASS to the root
//! task when client A, restarted after client B got the recycled pages, faults again on its old
//! ring, and the driver's own counters agree with the scenario.
#![no_std]
#![no_main]

mod hv;

use pd_runtime::layout::SELF_CHANNEL;
use pd_runtime::{
    Channel, Child, FaultAction, FaultReport, Handler, Message, notify_self, println, report,
};
use pd_support::abi::{self, scenario as sc};
use pd_support::cell::StaticCell;
use pd_support::logger::{self, ConsoleLog};
use sel4_kernel::{ClientWindow, Sel4Kernel};
use vmbus_driver::driver::{ClientConfig, Driver, DriverConfig};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, VpIndex};
use vmbus_driver::version::Version;

use hv::StandInHv;

/// The clients in the seam's numbering (`ClientId(i)` is entry `i`).
static WINDOWS: [ClientWindow; 2] = [
    ClientWindow {
        vspace_index: 1,
        window_vaddr: sc::WINDOW as u64,
        pages: sc::WINDOW_PAGES,
        channel: Channel(1),
        control_vaddr: Some(sc::DRIVER_CONTROL[0]),
    },
    ClientWindow {
        vspace_index: 2,
        window_vaddr: sc::WINDOW as u64,
        pages: sc::WINDOW_PAGES,
        channel: Channel(2),
        control_vaddr: Some(sc::DRIVER_CONTROL[1]),
    },
];
static CLASSES_A: [Guid; 1] = [sc::ECHO_A_CLASS];
static CLASSES_B: [Guid; 1] = [sc::ECHO_B_CLASS];
static LOG: ConsoleLog = ConsoleLog {
    name: "vmbus-driver",
    level: log::Level::Info,
};

/// Ticks the driver waits for a host reply: the image has no timer, so time advances one tick
/// per event handled, and the host PD answers within the same event.
const REPLY_TIMEOUT: u64 = 1_000_000;

/// The driver core (about 300 KiB): placed by the loader from `Driver::EMPTY`, initialised in
/// place, never on the 64 KiB stack.
static DRIVER: StaticCell<Driver> = StaticCell::new(Driver::EMPTY);

struct DriverPd {
    driver: &'static mut Driver,
    hv: StandInHv,
    kernel: Sel4Kernel,
    now: u64,
    faults_a: u32,
    done: bool,
    verdict: Option<u64>,
}

impl DriverPd {
    /// Records the verdict; it goes to the root task from `notified` (a report made while the
    /// root task waits for our answer to a fault report would never be received).
    fn verdict(&mut self, code: u64) {
        if !self.done {
            self.done = true;
            self.verdict = Some(code);
            notify_self();
        }
    }

    fn fail(&mut self, why: &str) {
        println!("vmbus-driver: FAIL: {why}");
        self.verdict(sc::REPORT_FAIL + 10);
    }

    fn tick(&mut self) -> u64 {
        self.now += 1;
        self.now
    }

    fn interrupt(&mut self) {
        loop {
            let now = self.tick();
            if !self
                .driver
                .on_interrupt(&mut self.hv, &mut self.kernel, now)
            {
                break;
            }
        }
    }
}

fn client_of_channel(ch: Channel) -> Option<ClientId> {
    WINDOWS
        .iter()
        .position(|w| w.channel == ch)
        .map(|i| ClientId(i as u16))
}

fn client_of_pd(child: Child) -> Option<ClientId> {
    match child.0 {
        sc::CLIENT_A_PD => Some(ClientId(0)),
        sc::CLIENT_B_PD => Some(ClientId(1)),
        _ => None,
    }
}

fn init() -> DriverPd {
    logger::install(&LOG);
    let clients = [
        ClientConfig {
            id: ClientId(0),
            window_pages: sc::WINDOW_PAGES,
            max_channels: 1,
            classes: &CLASSES_A,
            instance: None,
        },
        ClientConfig {
            id: ClientId(1),
            window_pages: sc::WINDOW_PAGES,
            max_channels: 1,
            classes: &CLASSES_B,
            instance: None,
        },
    ];
    let config = DriverConfig {
        target_vp: VpIndex(0),
        max_version: Version::WIN10_V5_3,
        reply_timeout: REPLY_TIMEOUT,
        clients: &clients,
    };
    let Some(driver) = DRIVER.take() else {
        panic!("driver taken twice");
    };
    if let Err(e) = driver.init(&config) {
        panic!("driver configuration: {e}");
    }
    let Some(kernel) = Sel4Kernel::new(sc::DRIVER_POOL, pd_runtime::pool_pages(), &WINDOWS, None)
    else {
        panic!("pool outside the mapping range");
    };
    let Some(hv) = StandInHv::new() else {
        panic!("SynIC pages outside the mapping range");
    };
    let mut pd = DriverPd {
        driver,
        hv,
        kernel,
        now: 0,
        faults_a: 0,
        done: false,
        verdict: None,
    };
    println!(
        "vmbus-driver: {} pool pages; starting the connection",
        pd_runtime::pool_pages()
    );
    let now = pd.tick();
    pd.driver.start(&mut pd.hv, now);
    pd
}

impl Handler for DriverPd {
    fn notified(&mut self, ch: Channel) {
        if ch.0 == SELF_CHANNEL {
            if let Some(code) = self.verdict.take() {
                report(code, &[]);
            }
        } else if ch.0 == abi::DRIVER_HOST_CHANNEL {
            let before = self.driver.connection();
            self.interrupt();
            let after = self.driver.connection();
            if before != after {
                println!("vmbus-driver: connection {after:?}");
            }
        }
    }

    fn protected(&mut self, ch: Channel, _msg: Message) -> Message {
        match client_of_channel(ch) {
            Some(client) => {
                let now = self.tick();
                self.driver
                    .on_client_call(&mut self.hv, &mut self.kernel, client, now);
                Message::new(0, &[])
            }
            None => Message::new(u64::MAX, &[]),
        }
    }

    fn fault(&mut self, child: Child, r: FaultReport) -> FaultAction {
        let Some(client) = client_of_pd(child) else {
            self.fail("fault report for a PD that is not a client");
            return FaultAction::Stop;
        };
        let in_window = r.is_vm_fault()
            && (sc::WINDOW as u64..(sc::WINDOW + sc::WINDOW_PAGES * 4096) as u64)
                .contains(&r.address());
        println!(
            "vmbus-driver: {client} faulted at {:#x} (VM fault: {}, in its window: {in_window}); tearing down its channels",
            r.address(),
            r.is_vm_fault()
        );
        let now = self.tick();
        self.driver
            .on_client_fault(&mut self.hv, &mut self.kernel, client, now);
        if client == ClientId(0) && in_window {
            self.faults_a += 1;
        } else {
            self.fail("unexpected fault");
            return FaultAction::Stop;
        }
        let st = *self.driver.stats();
        println!(
            "vmbus-driver: stats: offers {} opens {} rescinds {} teardowns {}/{} relids released {} pages taken {} returned {} client faults {} open channels {} quarantined {}",
            st.offers,
            st.opens,
            st.rescinds,
            st.teardowns_completed,
            st.teardowns,
            st.relids_released,
            st.pages_taken,
            st.pages_returned,
            st.client_faults,
            self.driver.open_count(),
            self.driver.quarantined_pages()
        );
        if self.faults_a == 2 && !self.done {
            // Client B asked the root task to restart A only after its own channel on the
            // recycled pages worked: this second fault is A trying its old ring again.
            let ok = st.rescinds == 1
                && st.relids_released == 1
                && st.client_faults == 2
                && st.opens == 2
                && self.driver.open_count() == 1
                && self.driver.quarantined_pages() == 0
                && st.hostile == 0;
            if ok {
                println!(
                    "vmbus-driver: client A still cannot reach the pages now used by client B"
                );
                self.verdict(sc::REPORT_PASS);
            } else {
                self.fail("driver counters disagree with the scenario");
            }
        }
        FaultAction::Stop
    }
}

pd_runtime::protection_domain!(init);
