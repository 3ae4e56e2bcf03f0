//! The VMBus driver PD of the image: a thin loop over `vmbus_driver::driver::Driver`.
//!
//! Seams: `sel4_kernel::Sel4Kernel` (pool pages, grants into client windows, revocation,
//! control pages, client notifications) and [`hv::Seam`], chosen by the description: the
//! hypercall stand-in to the simulated host PD, or Hyper-V through the kernel's Hyper-V service.
//! Events: a notification from the host PD, or the SINT2 interrupt on Hyper-V, runs
//! `Driver::on_interrupt`; a protected call from a client is a control request
//! (`Driver::on_client_call`), and a fault report from the root task is a client fault
//! (`Driver::on_client_fault`).
//!
//! Every address, channel, client number, window, class and PD index comes from the PD's
//! configuration, generated from the system description by build.rs (`CONFIGS`).
//!
//! The PD also keeps the end-to-end verdict of its system. `build/qemu-e2e.xml` (simulated
//! host): when client B says its traffic on the recycled pages is done, it asks the root task to
//! restart the client that faulted (client A); PASS when client A faults again on its old ring
//! and the driver's own counters agree with the scenario. `build/qemu-hyperv.xml` (Hyper-V): the
//! first Dynamic Memory client faults in its window after the host rescinded its channel; once
//! the teardown finished (RELID_RELEASED sent) every page taken must be back in the pool: its
//! ring pages, and the pages lent for the balloon (`cargo xtask qemu-test` inflates and deflates
//! it before the removal), none of which may still be lent; PASS when the client of the device
//! the host added afterwards reports its negotiation done on the first client's ring pages,
//! taken again after their revoke and zeroing.
//!
//! Any system: a client the description allows (`power="true"`, the shutdown integration
//! service) may ask the driver to stop (`Request::Stop`). Once every channel is closed and the
//! bus unloaded (`Driver::stopped`), the PD reports `REPORT_STOP` to the root task, which ends
//! the run. The image has no timer: time advances one tick per event and the driver's timeouts
//! (`Driver::on_tick`, run before each event) count events, so a host that never answers UNLOAD
//! holds the stop until `REPLY_TIMEOUT` more events have come (a client's call, a host
//! notification); with nothing arriving at all, it waits.
#![no_std]
#![no_main]

mod hv;

use pd_runtime::config::{Driver as DriverWiring, Hypervisor as HostKind};
use pd_runtime::layout::SELF_CHANNEL;
use pd_runtime::{
    Channel, Child, FaultAction, FaultReport, Handler, Message, irq_ack, notify_self, println,
    report,
};
use pd_support::abi::scenario as sc;
use pd_support::cell::StaticCell;
use pd_support::logger::{self, ConsoleLog};
use sel4_kernel::Sel4Kernel;
use vmbus_driver::driver::{
    ClientConfig, Driver, DriverConfig, MAX_CLASSES, MAX_CLIENTS, StopKind, UnloadEnd,
};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, VpIndex};
use vmbus_driver::version::Version;

use hv::{HyperVSeam, Seam, StandInHv};

// `CONFIGS`: this PD's pool, SynIC pages, host link and client table, generated from the system
// description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

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

/// The Hyper-V system's rescind (`build/qemu-hyperv.xml`), as the driver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rescind {
    /// No client has faulted on a rescinded channel yet.
    Waiting,
    /// A client faulted in its window after the rescind; the teardown may still run.
    Faulted,
    /// The teardown finished with every page back in the pool, nothing lent; the driver's
    /// counters then (pages taken, and pages the kernel seam had taken again).
    Done { taken: u64, reused: u64 },
}

struct DriverPd {
    driver: &'static mut Driver,
    wiring: &'static DriverWiring,
    hv: Seam,
    /// The channel of the host's interrupt: the host PD's notification, or the SINT2 interrupt.
    host: Channel,
    kernel: Sel4Kernel,
    now: u64,
    faults_a: u32,
    /// Where the Hyper-V system's rescind stands.
    rescind: Rescind,
    /// Pages taken for channels when the first Dynamic Memory client reported ready: its
    /// channel's ring pages (the connection's monitor pages are not counted; nothing is
    /// ballooned before the negotiation ends).
    ring_pages: Option<u64>,
    done: bool,
    verdict: Option<u64>,
    /// The orderly stop's report, once the stop is complete, until it goes to the root task.
    stop_report: Option<[u64; 3]>,
    /// The stop was reported (or is about to be).
    stop_reported: bool,
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

    /// Client B (calling on `ch`) is done with the recycled pages: ask the root task to restart
    /// client A, which faulted; the reply's label is 0 when the root task did.
    fn restart_faulted(&mut self, ch: Channel) -> Message {
        let (Some(caller), Some(a)) = (self.client_of_channel(ch), self.wiring.clients.first())
        else {
            return Message::new(u64::MAX, &[]);
        };
        if caller == ClientId(a.id) || self.faults_a == 0 {
            self.fail("restart asked before client A faulted, or by client A");
            return Message::new(u64::MAX, &[]);
        }
        println!("vmbus-driver: client B is done; asking the root task to restart client A");
        let answer = report(sc::REPORT_RESUME, &[u64::from(a.pd_index)]).label();
        Message::new(answer, &[])
    }

    fn print_stats(&self) {
        let st = self.driver.stats();
        println!(
            "vmbus-driver: stats: offers {} opens {} rescinds {} teardowns {}/{} relids released {} pages taken {} returned {} balloon pages lent {} reclaimed {} client faults {} open channels {} quarantined {} hypervisor calls {}",
            st.offers,
            st.opens,
            st.rescinds,
            st.teardowns_completed,
            st.teardowns,
            st.relids_released,
            st.pages_taken,
            st.pages_returned,
            st.balloon_pages_lent,
            st.balloon_pages_reclaimed,
            st.client_faults,
            self.driver.open_count(),
            self.driver.quarantined_pages(),
            self.hv.calls()
        );
    }

    /// Pages the driver holds for the connection, not for a channel: the two monitor pages
    /// (taken at connect, returned only after an answered unload).
    fn connection_pages(&self) -> u64 {
        self.driver.connection_pages() as u64
    }

    /// The Hyper-V system's rescind (`build/qemu-hyperv.xml`): once a client has faulted in its
    /// window after a rescind and the teardown the host accepted is complete (the relid
    /// released, no channel open), every page taken for the channel must be back in the pool:
    /// the ring pages, and the balloon's (every page lent was reclaimed; a lend counts as a page
    /// taken, a reclaim that went back to the pool as one returned). Only the connection's
    /// monitor pages stay taken.
    fn check_hyperv(&mut self) {
        if self.rescind != Rescind::Faulted || self.done {
            return;
        }
        let st = *self.driver.stats();
        if st.relids_released == 0 || self.driver.open_count() != 0 {
            return; // the teardown is still under way
        }
        if st.balloon_pages_lent != st.balloon_pages_reclaimed {
            self.print_stats();
            self.fail("balloon pages still lent to the host after the rescind");
        } else if st.pages_returned + self.connection_pages() == st.pages_taken
            && self.driver.quarantined_pages() == 0
            && st.hostile == 0
        {
            println!(
                "vmbus-driver: rescind done: client mapping revoked, teardown accepted, relid released, {} pages back in the pool ({} of them lent to the balloon and reclaimed)",
                st.pages_returned, st.balloon_pages_reclaimed
            );
            self.rescind = Rescind::Done {
                taken: st.pages_taken,
                reused: self.kernel.reused_pages() as u64,
            };
        } else {
            self.print_stats();
            self.fail("pages not all back in the pool after the rescind");
        }
    }

    /// A Dynamic Memory client's negotiation is done (`DM_READY`). After the rescind, this is the
    /// client of the device the host added since: PASS when its channel runs on reused pages.
    fn dm_ready(&mut self, ch: Channel) -> Message {
        let Some(client) = self.client_of_channel(ch) else {
            return Message::new(u64::MAX, &[]);
        };
        println!("vmbus-driver: {client} reports its Dynamic Memory service ready");
        if self.rescind == Rescind::Waiting && self.ring_pages.is_none() {
            self.ring_pages = Some(self.driver.stats().pages_taken - self.connection_pages());
        }
        if let Rescind::Done { taken, reused } = self.rescind
            && !self.done
        {
            let st = *self.driver.stats();
            let reused = self.kernel.reused_pages() as u64 - reused;
            let taken = st.pages_taken - taken;
            println!(
                "vmbus-driver: {client} runs on recycled pages: {reused} pages taken again after their revoke and zeroing"
            );
            // The new channel runs on the first channel's ring pages, every one of them taken
            // again (the pool hands out its lowest free pages first; the balloon's pages,
            // reclaimed before the rescind, lie above them).
            if st.opens == 2
                && self.driver.open_count() == 1
                && Some(reused) == self.ring_pages
                && taken == reused
            {
                self.verdict(sc::REPORT_PASS);
            } else {
                self.print_stats();
                self.fail("the new channel does not run on the recycled pages");
            }
        }
        Message::new(0, &[])
    }

    /// Advances the clock one tick (the image has no timer: one tick per event) and runs the
    /// driver's timeouts, so a host that stops answering is given up on after `REPLY_TIMEOUT`
    /// events.
    fn tick(&mut self) -> u64 {
        self.now += 1;
        self.driver
            .on_tick(&mut self.hv, &mut self.kernel, self.now);
        self.now
    }

    /// After each event: once an orderly stop is complete, report it to the root task (from
    /// `notified`, like the verdict).
    fn check_stop(&mut self) {
        if self.stop_reported {
            return;
        }
        let Some(stop) = self.driver.stopping() else {
            return;
        };
        let Some(end) = stop.unload else {
            return;
        };
        let kind = match stop.kind {
            StopKind::PowerOff => sc::STOP_POWER_OFF,
            StopKind::Restart => sc::STOP_RESTART,
        };
        let unload = match end {
            UnloadEnd::Answered => sc::UNLOAD_ANSWERED,
            UnloadEnd::TimedOut => sc::UNLOAD_TIMED_OUT,
            UnloadEnd::NotSent => sc::UNLOAD_NOT_SENT,
        };
        let by = self
            .wiring
            .clients
            .iter()
            .find(|c| ClientId(c.id) == stop.by)
            .map_or(u64::MAX, |c| u64::from(c.pd_index));
        println!(
            "vmbus-driver: orderly stop ({:?}) asked by {}: every channel closed, unload {end:?}",
            stop.kind, stop.by
        );
        self.print_stats();
        self.stop_reported = true;
        self.stop_report = Some([kind, by, unload]);
        notify_self();
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

impl DriverPd {
    /// The client the driver reaches on channel `ch`.
    fn client_of_channel(&self, ch: Channel) -> Option<ClientId> {
        self.wiring.client_on_channel(ch.0).map(|c| ClientId(c.id))
    }

    /// The client running in PD `child`, and its configuration.
    fn client_of_pd(&self, child: Child) -> Option<&'static pd_runtime::config::DriverClient> {
        self.wiring.client_in_pd(u16::from(child.0))
    }
}

/// Initialises the driver core with the configured clients (the core copies what it keeps).
fn configure(driver: &mut Driver, wiring: &DriverWiring) {
    let n = wiring.clients.len();
    if n > MAX_CLIENTS {
        panic!("{n} clients configured; the driver serves {MAX_CLIENTS}");
    }
    let mut classes = [[Guid::NIL; MAX_CLASSES]; MAX_CLIENTS];
    for (row, c) in classes.iter_mut().zip(wiring.clients) {
        for (g, class) in row.iter_mut().zip(c.classes) {
            *g = Guid(class.0);
        }
    }
    let mut clients = [ClientConfig {
        id: ClientId(0),
        window_pages: 0,
        max_channels: 0,
        classes: &[],
        instance: None,
        power: false,
        low_latency: false,
    }; MAX_CLIENTS];
    for ((slot, c), row) in clients.iter_mut().zip(wiring.clients).zip(&classes) {
        *slot = ClientConfig {
            id: ClientId(c.id),
            window_pages: c.window_pages,
            max_channels: c.max_channels as usize,
            classes: &row[..c.classes.len().min(MAX_CLASSES)],
            instance: c.instance.map(|g| Guid(g.0)),
            power: c.power,
            low_latency: c.low_latency,
        };
    }
    let config = DriverConfig {
        target_vp: VpIndex(0),
        max_version: Version::WIN10_V5_3,
        reply_timeout: REPLY_TIMEOUT,
        clients: &clients[..n],
    };
    if let Err(e) = driver.init(&config) {
        panic!("driver configuration: {e}");
    }
}

fn init() -> DriverPd {
    logger::install(&LOG);
    let config = pd_runtime::own_config(CONFIGS);
    let Some(wiring) = &config.driver else {
        panic!("{} is not the VMBus driver", config.name);
    };
    let Some(driver) = DRIVER.take() else {
        panic!("driver taken twice");
    };
    configure(driver, wiring);
    let Some(kernel) = Sel4Kernel::new(wiring, None) else {
        panic!("pool outside the mapping range");
    };
    let (hv, host) = match wiring.hypervisor {
        HostKind::StandIn { synic, host } => {
            (StandInHv::new(synic, host).map(Seam::StandIn), host.channel)
        }
        HostKind::HyperV {
            synic,
            sint_channel,
        } => (HyperVSeam::new(synic).map(Seam::HyperV), sint_channel),
        HostKind::None => panic!("no host in the configuration"),
    };
    let Some(hv) = hv else {
        panic!("SynIC pages outside the mapping range");
    };
    let mut pd = DriverPd {
        driver,
        wiring,
        hv,
        host: Channel(host),
        kernel,
        now: 0,
        faults_a: 0,
        rescind: Rescind::Waiting,
        ring_pages: None,
        done: false,
        verdict: None,
        stop_report: None,
        stop_reported: false,
    };
    println!(
        "vmbus-driver: {} pool pages, {} clients; starting the connection",
        wiring.pool_pages,
        wiring.clients.len()
    );
    let now = pd.tick();
    pd.driver.start_monitored(&mut pd.hv, &mut pd.kernel, now);
    pd
}

impl Handler for DriverPd {
    fn notified(&mut self, ch: Channel) {
        if ch.0 == SELF_CHANNEL {
            if let Some(code) = self.verdict.take() {
                report(code, &[]);
            }
            if let Some(words) = self.stop_report.take() {
                report(sc::REPORT_STOP, &words);
            }
        } else if ch == self.host {
            let before = self.driver.connection();
            self.interrupt();
            let after = self.driver.connection();
            if before != after {
                println!("vmbus-driver: connection {after:?}");
            }
            if matches!(self.hv, Seam::HyperV(_)) {
                if irq_ack(ch).is_err() {
                    self.fail("cannot acknowledge the SINT2 interrupt");
                }
                self.check_hyperv();
            }
            self.check_stop();
        }
    }

    fn protected(&mut self, ch: Channel, msg: Message) -> Message {
        match msg.label() {
            sc::B_DONE => return self.restart_faulted(ch),
            sc::DM_READY => return self.dm_ready(ch),
            _ => {}
        }
        match self.client_of_channel(ch) {
            Some(client) => {
                let now = self.tick();
                self.driver
                    .on_client_call(&mut self.hv, &mut self.kernel, client, now);
                self.check_stop();
                Message::new(0, &[])
            }
            None => Message::new(u64::MAX, &[]),
        }
    }

    fn fault(&mut self, child: Child, r: FaultReport) -> FaultAction {
        let Some(c) = self.client_of_pd(child) else {
            self.fail("fault report for a PD that is not a client");
            return FaultAction::Stop;
        };
        let client = ClientId(c.id);
        let page = pd_runtime::layout::PAGE as usize;
        let window = c.window_vaddr as u64..(c.window_vaddr + c.window_pages * page) as u64;
        let in_window = r.is_vm_fault() && window.contains(&r.address());
        println!(
            "vmbus-driver: {client} faulted at {:#x} (VM fault: {}, in its window: {in_window}); tearing down its channels",
            r.address(),
            r.is_vm_fault()
        );
        let now = self.tick();
        self.driver
            .on_client_fault(&mut self.hv, &mut self.kernel, client, now);
        self.print_stats();
        self.check_stop();
        if matches!(self.hv, Seam::HyperV(_)) {
            if in_window && self.driver.stats().rescinds > 0 {
                if self.rescind == Rescind::Waiting {
                    self.rescind = Rescind::Faulted;
                }
                self.check_hyperv();
            } else {
                self.fail("a client faulted before any rescind, or outside its window");
            }
            return FaultAction::Stop;
        }
        // Client A is the driver's first client (`build/qemu-e2e.vmbus.xml`).
        if client == ClientId(0) && in_window {
            self.faults_a += 1;
        } else {
            self.fail("unexpected fault");
            return FaultAction::Stop;
        }
        let st = *self.driver.stats();
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
