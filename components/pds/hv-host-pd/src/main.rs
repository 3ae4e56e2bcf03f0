//! The simulated Hyper-V host as a PD: `hv_host::Host` (the same no_std code the simulation
//! runs) behind the hypercall stand-in of pd-support's `abi`.
//!
//! The driver's protected calls are its hypercalls (post message, signal event, EOM); after each
//! the host runs its devices over guest memory ([`guest::PoolMemory`]), moves its SynIC output
//! into the shared pages ([`synic::SharedSynic`]) and notifies the driver when there is
//! something to take. The host also plays its part of the end-to-end scenario of
//! `build/qemu-e2e.xml` ([`scenario::Scenario`]): it rescinds device A's channel while client A's
//! traffic flows, checks the order of the teardown messages in its log and prints the log, then
//! offers device B and checks that B's ring pages are A's recycled pages, zeroed.
#![no_std]
#![no_main]

mod guest;
mod scenario;
mod synic;

use hv_host::{DeviceSpec, Host, HostConfig};
use pd_runtime::layout::SELF_CHANNEL;
use pd_runtime::{Channel, Handler, Message, notify, notify_self, println, report};
use pd_support::abi::{self, label, scenario as sc};
use pd_support::cell::StaticCell;
use pd_support::info::Info;
use pd_support::page::SharedPage;
use vmbus_driver::hv::HvStatus;
use vmbus_driver::hv::synic::{HvMessageType, MAX_PAYLOAD};
use vmbus_driver::ids::ConnectionId;

use guest::PoolMemory;
use scenario::Scenario;
use synic::SharedSynic;

/// The host (about 720 KiB): built by the loader from its `const` initialiser, never on a stack.
static HOST: StaticCell<Host> = StaticCell::new(Host::new(HostConfig::hyperv()));

struct HostPd {
    host: &'static mut Host,
    mem: PoolMemory,
    synic: SharedSynic,
    input: SharedPage,
    scenario: Scenario,
    calls: u64,
    failure: Option<u64>,
}

fn init() -> HostPd {
    let Some(host) = HOST.take() else {
        panic!("host taken twice");
    };
    let Some(info) = Info::read() else {
        panic!("no PD info page from the root task");
    };
    let mem = PoolMemory::new(info, abi::HOST_GUEST_MEMORY, abi::GUEST_MEMORY_PAGES);
    let (Some(message), Some(events), Some(input)) = (
        SharedPage::at(abi::SYNIC_MESSAGE_PAGE),
        SharedPage::at(abi::SYNIC_EVENT_PAGE),
        SharedPage::at(abi::HYPERCALL_INPUT_PAGE),
    ) else {
        panic!("shared pages outside the mapping range");
    };
    println!(
        "hv-host: guest memory: {} pages in {} runs of frames",
        mem.known_pages(),
        info.runs().len()
    );
    let device = host.add_device(DeviceSpec::echo(sc::ECHO_A_CLASS, sc::ECHO_A_INSTANCE));
    if let Err(e) = device {
        panic!("adding echo device A: {e}");
    }
    println!("hv-host: echo device A ready; waiting for the guest's INITIATE_CONTACT");
    HostPd {
        host,
        mem,
        synic: SharedSynic::new(message, events),
        input,
        scenario: Scenario::new(),
        calls: 0,
        failure: None,
    }
}

impl HostPd {
    fn hypercall(&mut self, msg: &Message) -> HvStatus {
        let [w0, w1, w2, _] = msg.words;
        match msg.label() {
            label::POST_MESSAGE => {
                let Ok(len) = usize::try_from(w2) else {
                    return HvStatus::INVALID_PARAMETER;
                };
                if len > MAX_PAYLOAD {
                    return HvStatus::INVALID_PARAMETER;
                }
                let mut payload = [0u8; MAX_PAYLOAD];
                self.input.read_bytes(0, &mut payload[..len]);
                let (Ok(conn), Ok(ty)) = (u32::try_from(w0), u32::try_from(w1)) else {
                    return HvStatus::INVALID_PARAMETER;
                };
                self.host
                    .post_message(ConnectionId(conn), HvMessageType(ty), &payload[..len])
            }
            label::SIGNAL_EVENT => match (u32::try_from(w0), u16::try_from(w1)) {
                (Ok(conn), Ok(flag)) => self.host.signal_event(ConnectionId(conn), flag),
                _ => HvStatus::INVALID_PARAMETER,
            },
            label::END_OF_MESSAGE => {
                self.host.end_of_message();
                HvStatus::SUCCESS
            }
            _ => HvStatus::INVALID_HYPERCALL_CODE,
        }
    }
}

impl Handler for HostPd {
    fn notified(&mut self, ch: Channel) {
        if ch.0 == SELF_CHANNEL
            && let Some(code) = self.failure.take()
        {
            report(code, &[]);
        }
    }

    fn protected(&mut self, ch: Channel, msg: Message) -> Message {
        if ch.0 != abi::HOST_DRIVER_CHANNEL {
            return Message::new(u64::from(HvStatus::ACCESS_DENIED.0), &[]);
        }
        self.calls += 1;
        let status = self.hypercall(&msg);
        self.host.poll(&mut self.mem);
        if let Err(step) = self.scenario.step(self.host, &mut self.mem)
            && self.failure.is_none()
        {
            println!("hv-host: FAIL at scenario step {step}");
            // Reported from `notified`: the root task may be waiting on the driver now.
            self.failure = Some(sc::REPORT_FAIL + 20 + step);
            notify_self();
        }
        if self.synic.sync(self.host) {
            notify(Channel(abi::HOST_DRIVER_CHANNEL));
        }
        Message::new(u64::from(status.0), &[])
    }
}

pd_runtime::protection_domain!(init);
