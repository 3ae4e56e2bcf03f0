//! Test PD: grants, revokes and re-grants a ring page between two clients on the real kernel,
//! through the driver's `Kernel` seam on seL4 (`sel4-kernel`).
//!
//! The central claim of the VMBus driver, on seL4 itself: a page granted to a client (a copy of
//! the original frame capability, mapped into the client's window) is unreachable for that
//! client as soon as it is revoked, before the page is zeroed and granted to another client.
//! Steps:
//! 1. write each client's control page; take a pool page, fill it with a secret, grant it to
//!    client A, notify A;
//! 2. A reports the secret and its control page (protected call): revoke the page, notify A
//!    again;
//! 3. A's read faults; the root task reports the fault here: zero the page, write B's data,
//!    grant it to client B;
//! 4. B reports B's data and no trace of A's: ask the root task to restart A;
//! 5. A faults again on the same address: report PASS to the root task.
#![no_std]
#![no_main]

use pd_runtime::config::DriverClient;
use pd_runtime::layout::SELF_CHANNEL;
use pd_runtime::{
    Channel, Child, FaultAction, FaultReport, Handler, Message, notify_self, println, report,
};
use sel4::Word;
use sel4_kernel::Sel4Kernel;
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::{ClientId, PageId};
use vmbus_driver::kernel::{Kernel, KernelError};

// `CONFIGS`: this PD's pool and client table (windows, capabilities, channels, control pages,
// PD indices), generated from the system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

const SECRET_A: Word = 0x5EC2_E7A0_0000_0001;
const DATA_B: Word = 0xB0B0_0000_0000_0002;
/// Written to each client's control page; the client echoes word 0 of its control page.
const CONTROL_A: Word = 0xC0A7_0000_0000_000A;
const CONTROL_B: Word = 0xC0A7_0000_0000_000B;

/// The clients in the seam's numbering: the first and second of the configuration's table.
const A: ClientId = ClientId(0);
const B: ClientId = ClientId(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    GrantedA,
    RevokedA,
    GrantedB,
    RetryA,
    Done,
    Failed(u64),
}

struct Driver {
    clients: &'static [DriverClient],
    kernel: Sel4Kernel,
    page: PageId,
    phase: Phase,
}

impl Driver {
    fn fail(&mut self, step: u64, why: KernelError) {
        println!("grant-driver: step {step} failed: {why}");
        self.phase = Phase::Failed(step);
        notify_self();
    }

    fn write_word(&mut self, index: usize, w: Word) -> Result<(), KernelError> {
        self.kernel
            .write_page(self.page, index * 8, &w.to_le_bytes())
    }

    fn start(&mut self) -> Result<(), KernelError> {
        for i in 0..PAGE_SIZE / 8 {
            self.write_word(i, SECRET_A ^ i as Word)?;
        }
        self.kernel.control_write(A, 0, &CONTROL_A.to_le_bytes())?;
        self.kernel.control_write(B, 0, &CONTROL_B.to_le_bytes())?;
        let frame = self.kernel.page_frame(self.page)?;
        self.kernel.grant(self.page, A, 0)?;
        println!("grant-driver: pool page (frame {frame:#x}) granted to client-a");
        self.kernel.notify(A)
    }

    fn regrant(&mut self) -> Result<(), KernelError> {
        self.kernel.zero_page(self.page)?;
        self.write_word(0, DATA_B)?;
        self.kernel.grant(self.page, B, 0)?;
        println!("grant-driver: page zeroed and granted to client-b");
        self.kernel.notify(B)
    }
}

fn init() -> Driver {
    let config = pd_runtime::own_config(CONFIGS);
    let Some(wiring) = &config.driver else {
        panic!("{} is not the driver", config.name);
    };
    if wiring.clients.len() != 2 {
        panic!("the grant test needs two clients");
    }
    let Some(mut kernel) = Sel4Kernel::new(wiring, None) else {
        panic!("pool outside the mapping range");
    };
    let page = kernel.take_page().unwrap_or(PageId(0));
    let mut d = Driver {
        clients: wiring.clients,
        kernel,
        page,
        phase: Phase::GrantedA,
    };
    if let Err(e) = d.start() {
        d.fail(1, e);
    }
    d
}

impl Handler for Driver {
    fn notified(&mut self, ch: Channel) {
        if ch.0 != SELF_CHANNEL {
            return;
        }
        match self.phase {
            Phase::Done => {
                report(0, &[]);
            }
            Phase::Failed(step) => {
                report(2 + step, &[]);
            }
            _ => {}
        }
    }

    fn protected(&mut self, ch: Channel, msg: Message) -> Message {
        let [first, nonzero, control, _] = msg.words;
        println!(
            "grant-driver: channel {} read {first:#x} and {nonzero} more non-zero words; control page {control:#x}",
            ch.0
        );
        match self.phase {
            Phase::GrantedA if ch.0 == self.clients[0].channel => {
                if first != SECRET_A || nonzero != 511 || control != CONTROL_A {
                    self.fail(2, KernelError::OutOfBounds);
                } else if let Err(e) = self.kernel.revoke(self.page) {
                    self.fail(2, e);
                } else {
                    println!(
                        "grant-driver: revoked the page: client-a's mapping and copy are gone"
                    );
                    self.phase = Phase::RevokedA;
                    let _ = self.kernel.notify(A);
                }
            }
            Phase::GrantedB if ch.0 == self.clients[1].channel => {
                if first != DATA_B || nonzero != 0 || control != CONTROL_B {
                    self.fail(4, KernelError::OutOfBounds);
                } else {
                    self.phase = Phase::RetryA;
                    if report(1, &[Word::from(self.clients[0].pd_index)]).label() != 0 {
                        self.fail(4, KernelError::NoSuchClient);
                    }
                }
            }
            phase => {
                println!("grant-driver: unexpected call in {phase:?}");
                self.fail(9, KernelError::NoSuchClient);
            }
        }
        Message::new(0, &[])
    }

    fn fault(&mut self, child: Child, r: FaultReport) -> FaultAction {
        let a = &self.clients[0];
        let at_window = r.is_vm_fault() && r.address() == a.window_vaddr as Word;
        let is_a = u16::from(child.0) == a.pd_index;
        println!(
            "grant-driver: fault of PD {} at {:#x} (VM fault: {})",
            child.0,
            r.address(),
            r.is_vm_fault()
        );
        match self.phase {
            Phase::RevokedA if is_a && at_window => match self.regrant() {
                Ok(()) => self.phase = Phase::GrantedB,
                Err(e) => self.fail(3, e),
            },
            Phase::RetryA if is_a && at_window => {
                println!("grant-driver: client-a still cannot read the page granted to client-b");
                self.phase = Phase::Done;
                notify_self();
            }
            _ => self.fail(5, KernelError::NoSuchClient),
        }
        FaultAction::Stop
    }
}

pd_runtime::protection_domain!(init);
