//! After the build, the root task supervises: it receives every PD's faults and reports on its
//! endpoint, forwards a fault to the PD's fault handler (the VMBus driver for its clients), stops
//! or restarts the faulting PD as the handler answers, and ends a test run through QEMU's
//! `isa-debug-exit` port (a passing system on Hyper-V runs on: the host's side of its scenario
//! decides when the run ends).

use pd_runtime::layout::badge;
use sel4::{Endpoint, IoPort, Message, Rights, Tcb, Word, fault, println, slot};

use crate::alloc::Alloc;
use crate::loader::{Built, MAX_PDS};
use crate::system::System;

/// Report codes a PD sends on its monitor capability (the message label).
pub mod code {
    /// The PD's scenario passed.
    pub const PASS: u64 = 0;
    /// Restart the PD whose index is word 0 (a stopped client, to show it still cannot read).
    /// Any other code (but [`STOP`]) is a failure; the words say more.
    pub const RESUME: u64 = 1;
    /// The VMBus driver finished an orderly stop (`pd_support::abi::scenario::REPORT_STOP`):
    /// word 0 is 0 for power off, 1 for restart; word 1 the PD index of the client that asked;
    /// word 2 how the bus unload ended (0 UNLOAD answered, 1 timed out, 2 not sent).
    pub const STOP: u64 = 0x100;
}

/// Value written to the isa-debug-exit port on success (QEMU exits with 33).
const EXIT_PASS: u8 = 0x10;
/// Value written on failure (QEMU exits with 35).
const EXIT_FAIL: u8 = 0x11;
/// Value written after an orderly stop for power off (QEMU exits with 37).
const EXIT_POWER_OFF: u8 = 0x12;
/// Value written after an orderly stop for restart (QEMU exits with 39).
const EXIT_RESTART: u8 = 0x13;

/// Prints the verdict line the test runner reads.
fn verdict_line(pass: bool) {
    println!(
        "{}",
        if pass {
            "qemu-test: PASS"
        } else {
            "qemu-test: FAIL"
        }
    );
}

/// Ends the run under QEMU with a verdict.
pub fn exit(pass: bool) -> ! {
    verdict_line(pass);
    exit_with(if pass { EXIT_PASS } else { EXIT_FAIL })
}

/// Writes `v` to QEMU's isa-debug-exit port (QEMU exits with `(v << 1) | 1`); halts if the
/// port is not there.
fn exit_with(v: u8) -> ! {
    let _ = IoPort(slot::seL4_CapIOPort).out8(0xf4, v);
    loop {
        sel4::sys::syscall::debug_halt();
    }
}

/// The driver finished an orderly stop that PD `by` asked for: says so and ends the run with
/// the stop's own exit value (neither PASS nor FAIL).
fn orderly_stop(words: &[Word], by: &str) -> ! {
    let restart = words[0] == 1;
    let unload = match words[2] {
        0 => "UNLOAD answered",
        1 => "UNLOAD not answered (reply timeout)",
        _ => "no UNLOAD sent (bus not connected)",
    };
    println!(
        "root: orderly stop: {} requested by {by}; channels closed, {unload}",
        if restart { "restart" } else { "power off" }
    );
    exit_with(if restart {
        EXIT_RESTART
    } else {
        EXIT_POWER_OFF
    })
}

/// What the monitor saw.
#[derive(Debug, Default)]
struct Log {
    faults: u32,
    forwarded: u32,
    unhandled: u32,
}

/// The supervision loop.
pub fn run(sys: &System, built: &Built, a: &mut Alloc) -> ! {
    let ep = Endpoint(built.monitor);
    let root = Alloc::root_cnode();
    let mut to_handler = [0 as Word; MAX_PDS];
    let mut log = Log::default();
    let (mut msg, mut from) = ep.recv();
    loop {
        // Badges are the root task's own (PD index below MAX_PDS); clamp anyway, never index past.
        let idx = ((from & badge::CHANNEL_MASK) as usize).min(MAX_PDS - 1);
        let name = sys.pds.get(idx).map_or("?", |p| p.name);
        let mut reply = None;
        if from & badge::FAULT != 0 {
            log.faults += 1;
            let [ip, addr, ..] = msg.words;
            let kind = if msg.label() == fault::seL4_Fault_VMFault {
                "VM fault"
            } else {
                "fault"
            };
            println!(
                "root: {kind} (label {}) in {name}: ip {ip:#x} addr {addr:#x}",
                msg.label()
            );
            let tcb = Tcb(built.pds[idx].tcb);
            let handler = sys
                .pds
                .get(idx)
                .and_then(|p| p.fault_handler)
                .filter(|&h| h < sys.pds.len());
            if let Some(h) = handler
                && to_handler[idx] == 0
            {
                // One badged capability per faulting PD, made on its first fault.
                to_handler[idx] = a
                    .slot()
                    .ok()
                    .filter(|&s| {
                        root.mint(
                            s,
                            root,
                            built.pds[h].input,
                            Rights::ALL,
                            badge::FAULT | idx as Word,
                        )
                        .is_ok()
                    })
                    .unwrap_or(0);
            }
            match handler {
                Some(h) if to_handler[idx] != 0 => {
                    log.forwarded += 1;
                    let answer = Endpoint(to_handler[idx]).call(msg);
                    if answer.label() == 1 {
                        println!("root: {} restarts {name}", sys.pds[h].name);
                        let _ = tcb.resume();
                    } else {
                        println!(
                            "root: {name} stopped (reported to {}); the rest runs on",
                            sys.pds[h].name
                        );
                        let _ = tcb.suspend();
                    }
                }
                _ => {
                    log.unhandled += 1;
                    println!("root: {name} has no fault handler; stopped");
                    let _ = tcb.suspend();
                }
            }
        } else if from & badge::MONITOR != 0 {
            match msg.label() {
                code::PASS => {
                    println!(
                        "root: {name} reports PASS; faults {} (forwarded {}, unhandled {})",
                        log.faults, log.forwarded, log.unhandled
                    );
                    let pass = log.forwarded > 0 && log.unhandled == 0;
                    if pass && sys.pds.iter().any(|p| p.hyperv.is_some()) {
                        // On Hyper-V the host's side of the scenario (QEMU releasing the device
                        // after our RELID_RELEASED) is still under way: an exit now would cut it
                        // short. The system runs on; the host ends the run.
                        verdict_line(true);
                        println!("root: the system runs on; the host ends the run");
                    } else {
                        exit(pass);
                    }
                }
                code::RESUME => {
                    let target = msg.words[0] as usize;
                    let ok = target < sys.pds.len()
                        && Tcb(built.pds[target.min(MAX_PDS - 1)].tcb).resume().is_ok();
                    println!(
                        "root: {name} asks to restart {}: {}",
                        sys.pds.get(target).map_or("?", |p| p.name),
                        if ok { "done" } else { "refused" }
                    );
                    reply = Some(Message::new(u64::from(!ok), &[]));
                }
                code::STOP => {
                    let by = sys.pds.get(msg.words[1] as usize).map_or("?", |p| p.name);
                    orderly_stop(&msg.words, by);
                }
                c => {
                    println!(
                        "root: {name} reports failure {c} ({:#x} {:#x} {:#x} {:#x})",
                        msg.words[0], msg.words[1], msg.words[2], msg.words[3]
                    );
                    exit(false);
                }
            }
        }
        (msg, from) = match reply {
            Some(r) => ep.reply_recv(r),
            None => ep.recv(),
        };
    }
}
