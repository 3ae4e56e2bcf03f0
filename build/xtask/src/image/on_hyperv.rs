//! The system on Hyper-V (`build/qemu-hyperv.xml`) under the project's patched QEMU: the host's
//! side of its scenario and the verdict from both sides.
//!
//! Once the Dynamic Memory client says its negotiation is done, the host removes the balloon
//! device (QMP `device_del`): QEMU rescinds the channel and releases the device only after the
//! guest closed it, tore its GPADL down and released the relid. The run passes when the root
//! task reports PASS (the driver's verdict: the client faulted on its revoked ring, every page is
//! back in the pool), QEMU reported the device deleted, and QEMU logged no guest error. A
//! passing system on Hyper-V does not leave QEMU (the host's side may still be at work when the
//! guest is done), so once both verdicts are in, QMP `quit` ends the run; a failure still leaves
//! through `isa-debug-exit` at once.

use std::path::Path;

use super::Image;
use super::qemu::{self, Machine, Opts, PASS_LINE, Run};
use super::qmp::Qmp;

/// The client's line after which the host removes the device.
pub const READY_LINE: &str = "dynmem: capabilities accepted";

/// The balloon's QEMU device id (`-device hv-balloon,id=balloon`).
const DEVICE: &str = "balloon";

/// Where the host side stands.
enum Phase {
    /// Waiting for the client to be ready.
    Booting,
    /// `device_del` sent; waiting for DEVICE_DELETED.
    Removing(Qmp),
    /// QEMU reported the device deleted; waiting for the guest's verdict, then `quit`.
    Removed(Qmp),
    /// `quit` sent.
    Quit,
}

/// The teardown as QEMU's trace records it, in the order the design requires
/// (docs/lifetime.md#the-teardown-step-by-step): the host's rescind, then the guest's
/// CLOSECHANNEL, its GPADL_TEARDOWN, the host's GPADL_TORNDOWN, the guest's RELID_RELEASED.
const TEARDOWN_ORDER: &[&str] = &[
    "vmbus_rescind_channel",
    "vmbus_close_channel",
    "vmbus_gpadl_teardown",
    "vmbus_gpadl_torndown",
    "vmbus_relid_released",
];

/// QEMU messages that report a guest's mistake (QEMU logs them as warnings or errors).
const GUEST_ERROR_MARKS: &[&str] = &["unexpected", "unknown", "invalid", "error", "failed"];

/// Boots `img` under `machine`, removes the device when the client is ready, and returns the
/// run with the verdict from both sides.
pub fn run(
    machine: &Machine,
    img: &Image,
    out: &Path,
    o: &Opts,
) -> Result<(Run, Result<(), String>), String> {
    let mut phase = Phase::Booting;
    let run = qemu::boot_on(machine, img, out, o, |log, sock| {
        phase = match std::mem::replace(&mut phase, Phase::Quit) {
            Phase::Booting if log.contains(READY_LINE) => {
                let mut q = Qmp::connect(sock)?;
                eprintln!("xtask qemu-test: the client is ready; QMP device_del {DEVICE}");
                q.execute("device_del", &format!("{{\"id\": \"{DEVICE}\"}}"))?;
                Phase::Removing(q)
            }
            Phase::Removing(mut q) => {
                q.pump()?;
                if q.has_event("DEVICE_DELETED", DEVICE) {
                    eprintln!("xtask qemu-test: QEMU reports {DEVICE} deleted");
                    Phase::Removed(q)
                } else {
                    Phase::Removing(q)
                }
            }
            Phase::Removed(mut q) if log.contains(PASS_LINE) => {
                eprintln!("xtask qemu-test: both sides are done; QMP quit");
                // QEMU may close the socket before it answers.
                let _ = q.execute("quit", "{}");
                Phase::Quit
            }
            other => other,
        };
        Ok(())
    })?;
    let verdict = judge(&run, phase);
    Ok((run, verdict))
}

/// The verdict of `run`, whose host side ended in `phase`.
fn judge(run: &Run, phase: Phase) -> Result<(), String> {
    let guest_passed = run.log.contains(PASS_LINE);
    match phase {
        Phase::Quit if guest_passed => eprintln!("xtask qemu-test: PASS ({run})"),
        // The guest failed (isa-debug-exit), or the run timed out: the exit status says which.
        Phase::Booting => {
            run.verdict()?;
            return Err("the client never reported ready".into());
        }
        Phase::Removing(q) if guest_passed => {
            return Err(format!(
                "the guest passed but QEMU never reported the device deleted; QMP said:\n{}",
                q.received
            ));
        }
        Phase::Removed(_) if !guest_passed => {
            run.verdict()?;
            return Err("QEMU deleted the device but the guest gave no verdict".into());
        }
        _ => run.verdict()?,
    }
    let mut trace = run
        .qemu_messages
        .lines()
        .filter(|l| l.starts_with("vmbus_"));
    for step in TEARDOWN_ORDER {
        if !trace.any(|l| l.starts_with(step)) {
            return Err(format!(
                "QEMU's trace lacks {step} in the teardown order {TEARDOWN_ORDER:?}"
            ));
        }
    }
    let guest_errors: Vec<&str> = run
        .qemu_messages
        .lines()
        .filter(|l| !l.starts_with("vmbus_"))
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            GUEST_ERROR_MARKS.iter().any(|m| l.contains(m))
        })
        .collect();
    if !guest_errors.is_empty() {
        return Err(format!(
            "QEMU logged guest errors:\n{}",
            guest_errors.join("\n")
        ));
    }
    Ok(())
}
