//! Protection-domain runtime for our seL4 image: entry, stack, IPC buffer, and Microkit-style
//! handlers.
//!
//! A PD program implements [`Handler`] (`notified`, `protected`, `fault`, with `init` being the
//! value the program builds before the loop starts) and names it with
//! [`protection_domain!`]. The runtime's loop waits on the PD's input endpoint, to which its
//! notification is bound, and dispatches: notification bits to `notified` (one call per
//! channel), protected calls to `protected` (the return value is the reply), and fault reports
//! from the root task to `fault`. [`notify`], [`ppcall`] and [`irq_ack`] act on channels, as
//! `microkit_notify`, `microkit_ppcall` and `microkit_irq_ack` do.
//!
//! The entry point and stack come from `sel4::entry`; the IPC buffer is mapped by the root task at
//! [`layout::IPC_BUFFER`] and reached through `gs`. The CSpace layout that the root task builds
//! and this runtime relies on is in [`layout`].
#![no_std]

pub mod layout;

/// The configuration types a PD's build script generates (`$OUT_DIR/config.rs`).
pub use pd_config as config;
pub use sel4::{Message, println};

use layout::{badge, slot};
use sel4::{CNode, Endpoint, IrqHandler, Notification, Word};

/// A channel id (0..=[`layout::MAX_CHANNEL`]), as in system.xml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Channel(pub u8);

/// A PD whose faults the root task reports to this one (its index in the system description).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child(pub u8);

/// A fault the root task reports: the kernel's fault label and its first message words
/// (for a VM fault: instruction pointer, address, prefetch flag, fault status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultReport {
    /// `sel4::fault::*` label.
    pub label: Word,
    /// Message words 0-3.
    pub words: [Word; 4],
}

impl FaultReport {
    /// Whether this is a VM (page) fault.
    pub fn is_vm_fault(&self) -> bool {
        self.label == sel4::fault::seL4_Fault_VMFault
    }

    /// The faulting address of a VM fault.
    pub fn address(&self) -> Word {
        self.words[sel4::consts::seL4_VMFault_Addr as usize]
    }
}

/// What the PD answers to a fault report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Keep the faulting PD stopped (the rest of the system runs on).
    Stop,
    /// Restart the faulting instruction (after the handler fixed the cause).
    Restart,
}

/// The handlers of a PD, after Microkit's `notified`, `protected` and `fault`.
pub trait Handler {
    /// A notification arrived on `ch`.
    fn notified(&mut self, ch: Channel);

    /// A protected call arrived on `ch`; the result is the reply. The default refuses it.
    fn protected(&mut self, ch: Channel, msg: Message) -> Message {
        let _ = (ch, msg);
        Message::new(Word::MAX, &[])
    }

    /// A PD this one supervises faulted. The default stops it.
    fn fault(&mut self, child: Child, report: FaultReport) -> FaultAction {
        let _ = (child, report);
        FaultAction::Stop
    }
}

/// Signals the other end of channel `ch`.
pub fn notify(ch: Channel) {
    Notification(slot::NOTIFY_BASE + Word::from(ch.0)).signal();
}

/// Signals this PD itself: `notified(Channel(layout::SELF_CHANNEL))` runs after the current
/// handler returns (Microkit's deferred actions serve the same need).
pub fn notify_self() {
    Notification(slot::SELF_NOTIFY).signal();
}

/// Makes a protected call on channel `ch` and returns the reply.
pub fn ppcall(ch: Channel, msg: Message) -> Message {
    Endpoint(slot::PPCALL_BASE + Word::from(ch.0)).call(msg)
}

/// Acknowledges the interrupt delivered on channel `ch`.
pub fn irq_ack(ch: Channel) -> Result<(), sel4::Error> {
    IrqHandler(slot::IRQ_BASE + Word::from(ch.0)).ack()
}

/// This PD's root CNode, addressed with full 64-bit indices.
pub fn own_cnode() -> CNode {
    CNode::own(slot::CNODE)
}

/// Tells the root task a result (`code` 0: success), for tests and supervision.
pub fn report(code: Word, words: &[Word]) -> Message {
    Endpoint(slot::MONITOR).call(Message::new(code, words))
}

/// The event loop: never returns.
pub fn run<H: Handler>(mut h: H) -> ! {
    let input = Endpoint(slot::INPUT);
    let (mut msg, mut from) = input.recv();
    loop {
        let reply = if from & badge::PPCALL != 0 {
            Some(h.protected(Channel((from & badge::CHANNEL_MASK) as u8), msg))
        } else if from & badge::FAULT != 0 {
            let report = FaultReport {
                label: msg.label(),
                words: msg.words,
            };
            let action = h.fault(Child((from & badge::CHANNEL_MASK) as u8), report);
            Some(Message::new(u64::from(action == FaultAction::Restart), &[]))
        } else {
            for ch in 0..=layout::SELF_CHANNEL {
                if from & (1 << ch) != 0 {
                    h.notified(Channel(ch));
                }
            }
            None
        };
        (msg, from) = match reply {
            Some(r) => input.reply_recv(r),
            None => input.recv(),
        };
    }
}

static PD_INDEX: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Records the start parameter (called by [`protection_domain!`] before `init`).
pub fn set_start_param(param: usize) {
    PD_INDEX.store(param, core::sync::atomic::Ordering::Relaxed);
}

/// This PD's index in the system description, as the root task passed it at start.
pub fn pd_index() -> usize {
    PD_INDEX.load(core::sync::atomic::Ordering::Relaxed)
}

/// This PD's own entry of `configs` (the generated `CONFIGS` of its program: one entry per PD
/// that runs the program), chosen by [`pd_index`].
///
/// # Panics
/// When no entry has this PD's index: the program was built for another description than the
/// root task's table (`cargo xtask image` builds both from one).
pub fn own_config(configs: &'static [config::PdConfig]) -> &'static config::PdConfig {
    match config::select(configs, pd_index()) {
        Some(c) => c,
        None => panic!(
            "no configuration for PD index {}: program and root task built from different descriptions",
            pd_index()
        ),
    }
}

/// Declares a PD program: `pd_runtime::protection_domain!(init)` where `init() -> impl Handler`
/// runs first (Microkit's `init`), then the event loop.
#[macro_export]
macro_rules! protection_domain {
    ($init:path) => {
        fn __pd_runtime_main(start: ::sel4::entry::Start) -> ! {
            $crate::set_start_param(start.param);
            $crate::run($init())
        }
        ::sel4::declare_main!(__pd_runtime_main);
    };
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("panic: {info}");
    // Tell the root task, which counts this as a failure; then stop for good.
    let _ = report(Word::MAX, &[]);
    loop {
        sel4::Tcb(slot::TCB).suspend().ok();
    }
}
