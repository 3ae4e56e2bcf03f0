//! The system on Hyper-V (`build/qemu-hyperv.xml`) under the project's patched QEMU: the host's
//! side of its scenario and the verdict from both sides.
//!
//! Once the Dynamic Memory client says its negotiation is done, the host removes the balloon
//! device (QMP `device_del`): QEMU rescinds the channel and releases the device only after the
//! guest closed it and released the relid (the driver tears its GPADL down before it releases:
//! QEMU ends a channel's GPADLs at RELID_RELEASED and answers no teardown after it). Then a second
//! balloon device is added (QMP `device_add`, another instance), for the second client. The run passes when the
//! root task reports PASS (the driver's verdict: the first client faulted on its revoked ring,
//! every page came back to the pool, and the second client runs on those pages), QEMU reported
//! the first device deleted, its trace shows the teardown in order, and it logged no guest
//! error. A
//! passing system on Hyper-V does not leave QEMU (the host's side may still be at work when the
//! guest is done), so once both verdicts are in, QMP `quit` ends the run; a failure still leaves
//! through `isa-debug-exit` at once.

use std::path::Path;
use std::time::Duration;

use super::Image;
use super::qemu::{self, Machine, Opts, PASS_LINE, Run};
use crate::qemu_host::qmp::Qmp;

/// The client's line after which the host removes the device.
pub const READY_LINE: &str = "dynmem: capabilities accepted";

/// The balloon's QEMU device id at boot.
const DEVICE: &str = "balloon";
/// Its instance, the one the first client takes (`build/qemu-hyperv.vmbus.xml`).
const INSTANCE: &str = "4856ba11-0000-4000-8000-00000000000a";
/// The device added after the removal, and its instance (the second client's).
const NEXT_DEVICE: &str = "balloon_next";
const NEXT_INSTANCE: &str = "4856ba11-0000-4000-8000-00000000000b";

/// The `-device` argument of the balloon at boot.
pub fn boot_device() -> String {
    format!("hv-balloon,id={DEVICE},instanceid={INSTANCE}")
}

/// How long the QMP socket may take to appear.
const QMP_WAIT: Duration = Duration::from_secs(10);

/// Where the host side stands.
enum Phase {
    /// Waiting for the client to be ready.
    Booting,
    /// `device_del` sent; waiting for DEVICE_DELETED.
    Removing(Qmp),
    /// QEMU reported the device deleted and the second device is added; waiting for the guest's
    /// verdict, then `quit`.
    Removed(Qmp),
    /// `quit` sent.
    Quit,
}

/// The scenario as QEMU's trace records it: the first open, then the teardown in the order the
/// design requires (docs/lifetime.md#the-teardown-step-by-step): the host's rescind, the
/// guest's CLOSECHANNEL, its GPADL_TEARDOWN, the host's GPADL_TORNDOWN, the guest's
/// RELID_RELEASED; then the open of the added device's channel.
const TEARDOWN_ORDER: &[&str] = &[
    "vmbus_open_channel",
    "vmbus_rescind_channel",
    "vmbus_close_channel",
    "vmbus_gpadl_teardown",
    "vmbus_gpadl_torndown",
    "vmbus_relid_released",
    "vmbus_open_channel",
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
                let mut q = Qmp::connect(sock, QMP_WAIT)?;
                eprintln!("xtask qemu-test: the client is ready; QMP device_del {DEVICE}");
                q.execute("device_del", &format!("{{\"id\": \"{DEVICE}\"}}"))?;
                Phase::Removing(q)
            }
            Phase::Removing(mut q) => {
                if q.wait_event("DEVICE_DELETED", DEVICE, Duration::from_millis(20))? {
                    eprintln!(
                        "xtask qemu-test: QEMU reports {DEVICE} deleted; QMP device_add {NEXT_DEVICE}"
                    );
                    q.execute(
                        "device_add",
                        &format!(
                            "{{\"driver\": \"hv-balloon\", \"id\": \"{NEXT_DEVICE}\", \"instanceid\": \"{NEXT_INSTANCE}\"}}"
                        ),
                    )?;
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
                q.events.join("\n")
            ));
        }
        Phase::Removed(_) if !guest_passed => {
            run.verdict()?;
            return Err("QEMU deleted the device but the guest gave no verdict".into());
        }
        _ => run.verdict()?,
    }
    host_side(&run.qemu_messages)
}

/// QEMU's side of the verdict, from what it printed (`messages`): its trace holds the scenario's
/// steps in order ([`TEARDOWN_ORDER`]) and no other line reports a guest error.
fn host_side(messages: &str) -> Result<(), String> {
    let mut trace = messages.lines().filter(|l| l.starts_with("vmbus_"));
    for step in TEARDOWN_ORDER {
        if !trace.any(|l| l.starts_with(step)) {
            return Err(format!(
                "QEMU's trace lacks {step} in the order {TEARDOWN_ORDER:?}"
            ));
        }
    }
    let guest_errors: Vec<&str> = messages
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

#[cfg(test)]
mod tests {
    use super::host_side;

    /// QEMU's messages of a passing run (its trace lines and the warning it always prints).
    const GOOD: &str = "qemu-system-x86_64: -device vmbus-bridge: warning: VMBus enabled without the recommended set of Hyper-V features
vmbus_initiate_contact version 4.0 target vp 0 mon pages 0x0,0x0 int page 0x0
vmbus_open_channel channel #1 gpadl #2049 target vp 0
vmbus_rescind_channel channel #1
vmbus_close_channel channel #1
vmbus_gpadl_teardown gpadl #2049
vmbus_gpadl_torndown gpadl #2049
vmbus_relid_released channel #1
vmbus_unplug_device dev 0x1
vmbus_open_channel channel #2 gpadl #2050 target vp 0
";

    #[test]
    fn the_host_side_passes_the_design_order_only() {
        assert_eq!(host_side(GOOD), Ok(()));
        // GPADL_TEARDOWN before CLOSECHANNEL: the ring could be torn down under an open channel.
        let swapped = GOOD
            .replace("vmbus_close_channel channel #1\n", "")
            .replace(
                "vmbus_gpadl_torndown gpadl #2049\n",
                "vmbus_gpadl_torndown gpadl #2049\nvmbus_close_channel channel #1\n",
            );
        assert!(
            host_side(&swapped)
                .unwrap_err()
                .contains("vmbus_close_channel")
        );
        // No RELID_RELEASED: the device never goes.
        let unreleased = GOOD.replace("vmbus_relid_released channel #1\n", "");
        assert!(
            host_side(&unreleased)
                .unwrap_err()
                .contains("vmbus_relid_released")
        );
        // The recycled pages never served a new channel.
        let no_reopen = GOOD.replace(
            "vmbus_open_channel channel #2 gpadl #2050 target vp 0\n",
            "",
        );
        assert!(host_side(&no_reopen).is_err());
    }

    #[test]
    fn a_guest_error_qemu_logs_fails_the_run() {
        let logged = format!("{GOOD}qemu-system-x86_64: hv-balloon: unknown DM message 99\n");
        assert!(
            host_side(&logged)
                .unwrap_err()
                .contains("unknown DM message")
        );
    }
}
