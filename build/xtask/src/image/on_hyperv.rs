//! The system on Hyper-V (`build/qemu-hyperv.xml`) under the project's patched QEMU: the host's
//! side of its scenario and the verdict from both sides.
//!
//! Once the Dynamic Memory client says its negotiation is done, the host first inflates and
//! deflates the balloon (QMP `balloon`, a target [`BALLOON_PAGES`] below the guest's RAM, then
//! the full size again). QEMU's hv-balloon acts on a target only 50 s after the guest's
//! capabilities (its post-init wait, [`POST_INIT_WAIT`]); it then asks for the difference
//! (DM_BALLOON_REQUEST), and the client answers with pool pages the driver lends. The inflate is
//! done when QEMU's `query-balloon` shows the smaller size and the client's log shows the pages
//! ballooned; the deflate (DM_UNBALLOON_REQUEST) when both show the full size again. This is
//! left out of a boot from the ISO, which checks the boot path (the wait would double).
//!
//! Then the host removes the balloon device (QMP `device_del`): QEMU rescinds the channel and
//! releases the device only after the guest closed it and released the relid (the driver tears
//! its GPADL down before it releases: QEMU ends a channel's GPADLs at RELID_RELEASED and answers
//! no teardown after it). Then a second balloon device is added (QMP `device_add`, another
//! instance), for the second client. The run passes when the root task reports PASS (the
//! driver's verdict: the first client faulted on its revoked ring, every page came back to the
//! pool, none is still lent, and the second client runs on those pages), QEMU reported the first
//! device deleted, its trace shows the balloon requests answered and the teardown in order, the
//! driver's balloon counters agree with QEMU's, and QEMU logged no guest error. A passing system
//! on Hyper-V does not leave QEMU (the host's side may still be at work when the guest is done),
//! so once both verdicts are in, QMP `quit` ends the run; a failure still leaves through
//! `isa-debug-exit` at once.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Image;
use super::qemu::{self, Machine, Opts, PASS_LINE, Run};
use crate::qemu_host::qmp::{self, Qmp};

/// The client's line after which the host balloons, then removes the device.
pub const READY_LINE: &str = "dynmem: capabilities accepted";

/// The balloon's QEMU device id at boot.
const DEVICE: &str = "balloon";
/// Its instance, the one the first client takes (`build/qemu-hyperv.vmbus.xml`).
const INSTANCE: &str = "4856ba11-0000-4000-8000-00000000000a";
/// The device added after the removal, and its instance (the second client's).
const NEXT_DEVICE: &str = "balloon_next";
const NEXT_INSTANCE: &str = "4856ba11-0000-4000-8000-00000000000b";

/// Pages the host balloons out (2 MiB). The driver lends from its pool of 1024 pages
/// (`build/qemu-hyperv.vmbus.xml`), never its last eighth, and the client's ring holds 8: 888
/// pages at most.
pub const BALLOON_PAGES: u64 = 512;
/// hv-balloon's page (`HV_BALLOON_PAGE_SIZE`).
const PAGE: u64 = 4096;
/// hv-balloon's wait after the guest's capabilities before it acts on a target
/// (`HV_BALLOON_POST_INIT_WAIT` in QEMU's `hw/hyperv/hv-balloon.c`), on QEMU's virtual clock,
/// which runs with the host's under the software CPU.
const POST_INIT_WAIT: Duration = Duration::from_secs(50);
/// How long the inflate may take beyond that wait, and the deflate in all.
const BALLOON_SLACK: Duration = Duration::from_secs(30);
/// The client's line after each balloon change.
const CLIENT_BALLOON: &str = "dynmem: balloon now ";

/// The `-device` argument of the balloon at boot.
pub fn boot_device() -> String {
    format!("hv-balloon,id={DEVICE},instanceid={INSTANCE}")
}

/// How long the QMP socket may take to appear.
const QMP_WAIT: Duration = Duration::from_secs(10);

/// The balloon under way: the guest's full size in bytes (QEMU's `actual` before the inflate)
/// and when the step's `balloon` command went.
#[derive(Debug, Clone, Copy)]
struct Target {
    full: u64,
    since: Instant,
}

/// Where the host side stands.
enum Phase {
    /// Waiting for the client to be ready.
    Booting,
    /// `balloon` sent with the smaller target; waiting for QEMU and the client to show it.
    Inflating(Qmp, Target),
    /// `balloon` sent with the full size; waiting for QEMU and the client to show it.
    Deflating(Qmp, Target),
    /// `device_del` sent; waiting for DEVICE_DELETED.
    Removing(Qmp),
    /// QEMU reported the device deleted and the second device is added; waiting for the guest's
    /// verdict, then `quit`.
    Removed(Qmp),
    /// `quit` sent.
    Quit,
}

/// What the balloon did, as the host saw it.
#[derive(Debug, Clone, Copy)]
struct Ballooned {
    /// Seconds from the inflating `balloon` command to QEMU and the client agreeing.
    inflate_secs: f64,
    /// Seconds from the deflating `balloon` command to QEMU and the client agreeing.
    deflate_secs: f64,
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

/// QEMU messages that report a guest's mistake (QEMU logs them as warnings or errors; hv-balloon
/// starts its complaints about the guest's page ranges with "guest reported").
const GUEST_ERROR_MARKS: &[&str] = &[
    "unexpected",
    "unknown",
    "invalid",
    "error",
    "failed",
    "guest reported",
    "too short",
];

/// Boots `img` under `machine`, balloons (not from an ISO) and removes the device when the
/// client is ready, and returns the run with the verdict from both sides.
pub fn run(
    machine: &Machine,
    img: &Image,
    out: &Path,
    o: &Opts,
) -> Result<(Run, Result<(), String>), String> {
    let balloon = img.iso.is_none();
    // hv-balloon's wait is QEMU's, not the guest's: it comes on top of the run's limit.
    let o = &Opts {
        timeout: if balloon {
            o.timeout + POST_INIT_WAIT + BALLOON_SLACK
        } else {
            o.timeout
        },
    };
    let mut phase = Phase::Booting;
    let mut ballooned = None;
    let mut inflate_secs = 0.0;
    let run = qemu::boot_on(machine, img, out, o, |log, sock| {
        phase = match std::mem::replace(&mut phase, Phase::Quit) {
            Phase::Booting if log.contains(READY_LINE) => {
                let mut q = Qmp::connect(sock, QMP_WAIT)?;
                if balloon {
                    let full = actual(&mut q)?;
                    let target = full - BALLOON_PAGES * PAGE;
                    eprintln!(
                        "xtask qemu-test: the client is ready; QMP balloon {target} (the guest's {full} bytes less {BALLOON_PAGES} pages); hv-balloon acts on it {}s after the capabilities",
                        POST_INIT_WAIT.as_secs()
                    );
                    q.execute("balloon", &format!("{{\"value\": {target}}}"))?;
                    Phase::Inflating(
                        q,
                        Target {
                            full,
                            since: Instant::now(),
                        },
                    )
                } else {
                    remove(q)?
                }
            }
            Phase::Inflating(mut q, t) => {
                let target = t.full - BALLOON_PAGES * PAGE;
                let client = client_balloon(log);
                if let Some(c) = client
                    && c != (BALLOON_PAGES, BALLOON_PAGES, 0)
                {
                    return Err(format!(
                        "QEMU asked for {BALLOON_PAGES} pages but the client reports {} ({}); QEMU's balloon: {} bytes",
                        describe(c),
                        last_line(log, CLIENT_BALLOON),
                        actual(&mut q)?
                    ));
                }
                let waited = t.since.elapsed();
                // The client logs once it has answered; QEMU counts the pages when it reads
                // the answer.
                if client.is_some() && actual(&mut q)? == target {
                    inflate_secs = waited.as_secs_f64();
                    eprintln!(
                        "xtask qemu-test: inflated after {inflate_secs:.1} s: QEMU's balloon {target} bytes, the client's {BALLOON_PAGES} pages; QMP balloon {}",
                        t.full
                    );
                    q.execute("balloon", &format!("{{\"value\": {}}}", t.full))?;
                    Phase::Deflating(
                        q,
                        Target {
                            full: t.full,
                            since: Instant::now(),
                        },
                    )
                } else if waited > POST_INIT_WAIT + BALLOON_SLACK {
                    return Err(format!(
                        "hv-balloon did not inflate the balloon {:.0} s after the target: QEMU's balloon {} bytes (target {target}), the client's: {}",
                        waited.as_secs_f64(),
                        actual(&mut q)?,
                        client.map_or("no balloon yet".into(), describe)
                    ));
                } else {
                    Phase::Inflating(q, t)
                }
            }
            Phase::Deflating(mut q, t) => {
                let client = client_balloon(log);
                let waited = t.since.elapsed();
                match client {
                    // The host may give the pages back in several requests.
                    Some((now, BALLOON_PAGES, deflated)) if now + deflated == BALLOON_PAGES => {}
                    _ => {
                        return Err(format!(
                            "while deflating, the client reports {} ({})",
                            client.map_or("no balloon".into(), describe),
                            last_line(log, CLIENT_BALLOON)
                        ));
                    }
                }
                if client == Some((0, BALLOON_PAGES, BALLOON_PAGES)) && actual(&mut q)? == t.full {
                    let deflate_secs = waited.as_secs_f64();
                    eprintln!(
                        "xtask qemu-test: deflated after {deflate_secs:.1} s: QEMU's balloon {} bytes again, the client's 0 pages",
                        t.full
                    );
                    ballooned = Some(Ballooned {
                        inflate_secs,
                        deflate_secs,
                    });
                    // The same target again runs hv-balloon's event loop, which reads the
                    // client's answer if it has not yet: QEMU is idle before the removal.
                    q.execute("balloon", &format!("{{\"value\": {}}}", t.full))?;
                    remove(q)?
                } else if waited > BALLOON_SLACK {
                    return Err(format!(
                        "hv-balloon did not deflate the balloon {:.0} s after the full target: QEMU's balloon {} bytes (full {}), the client's: {}",
                        waited.as_secs_f64(),
                        actual(&mut q)?,
                        t.full,
                        client.map_or("no balloon".into(), describe)
                    ));
                } else {
                    Phase::Deflating(q, t)
                }
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
    let mut verdict = judge(&run, phase);
    if verdict.is_ok() && balloon {
        verdict = match ballooned {
            Some(b) => balloon_agrees(&run, b),
            None => Err("the balloon was never inflated and deflated".into()),
        };
    }
    Ok((run, verdict))
}

/// Sends `device_del` of the first device.
fn remove(mut q: Qmp) -> Result<Phase, String> {
    eprintln!("xtask qemu-test: QMP device_del {DEVICE}");
    q.execute("device_del", &format!("{{\"id\": \"{DEVICE}\"}}"))?;
    Ok(Phase::Removing(q))
}

/// QEMU's balloon size in bytes (`query-balloon`'s `actual`: the guest's RAM less the pages
/// the guest gave that lie in RAM).
fn actual(q: &mut Qmp) -> Result<u64, String> {
    let reply = q.execute("query-balloon", "{}")?;
    qmp::number(&reply, "actual").ok_or_else(|| format!("query-balloon: no size in {reply}"))
}

/// The client's last balloon line: pages ballooned now, inflated in all, deflated in all.
fn client_balloon(log: &str) -> Option<(u64, u64, u64)> {
    // The serial log's lines may carry a carriage return at either end.
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(CLIENT_BALLOON))?;
    let field = |after: &str| -> Option<u64> {
        let at = line.find(after)? + after.len();
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((field("")?, field("inflated ")?, field("deflated ")?))
}

/// `(now, inflated, deflated)` in words.
fn describe((now, inflated, deflated): (u64, u64, u64)) -> String {
    format!("{now} pages ballooned, {inflated} inflated and {deflated} deflated in all")
}

/// The last line of `log` that starts with `prefix`, or a note that none does.
fn last_line<'a>(log: &'a str, prefix: &str) -> &'a str {
    log.lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with(prefix))
        .unwrap_or("no such line")
}

/// The balloon seen from QEMU's trace and the driver's counters: QEMU asked for
/// [`BALLOON_PAGES`] and had its answer, gave as many back and had that answer too, all before
/// the rescind; the driver's last stats line counts as many pages lent and reclaimed.
fn balloon_agrees(run: &Run, b: Ballooned) -> Result<(), String> {
    qemu_balloon(&run.qemu_messages)?;
    let stats = last_line(&run.log, "vmbus-driver: stats:");
    let want = format!("balloon pages lent {BALLOON_PAGES} reclaimed {BALLOON_PAGES} ");
    if !stats.contains(&want) {
        return Err(format!(
            "the driver's counters disagree with the balloon of {BALLOON_PAGES} pages: {stats}"
        ));
    }
    eprintln!(
        "xtask qemu-test: the balloon agrees on both sides: {BALLOON_PAGES} pages out after {:.1} s (hv-balloon's wait included) and back after {:.1} s",
        b.inflate_secs, b.deflate_secs
    );
    Ok(())
}

/// QEMU's side of the balloon, from its trace: the balloon request(s) for [`BALLOON_PAGES`]
/// answered (the last answer without `more`), unballoon requests giving back as many, the
/// guest's unballoon answer, all before the rescind.
fn qemu_balloon(messages: &str) -> Result<(), String> {
    let before_rescind = messages
        .split("\nvmbus_rescind_channel")
        .next()
        .unwrap_or_default();
    let lines = |event: &str| -> Vec<&str> {
        before_rescind
            .lines()
            .filter(|l| l.starts_with(event))
            .collect()
    };
    let number_after = |line: &str, mark: &str| -> Option<u64> {
        let at = line.find(mark)? + mark.len();
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let asked: Vec<u64> = lines("hv_balloon_outgoing_balloon")
        .iter()
        .filter_map(|l| number_after(l, " for "))
        .collect();
    if asked.first() != Some(&BALLOON_PAGES) {
        return Err(format!(
            "QEMU's trace has no balloon request for {BALLOON_PAGES} pages before the rescind (requests: {asked:?})"
        ));
    }
    let answers = lines("hv_balloon_incoming_balloon");
    if answers.last().is_none_or(|l| !l.ends_with("more 0")) || asked.len() != 1 {
        return Err(format!(
            "QEMU did not take the guest's whole answer to its balloon request at once (requests {asked:?}; answers: {answers:?})"
        ));
    }
    let given: u64 = lines("hv_balloon_outgoing_unballoon")
        .iter()
        .filter_map(|l| number_after(l, " for "))
        .sum();
    if given != BALLOON_PAGES {
        return Err(format!(
            "QEMU's unballoon requests before the rescind give back {given} pages, not {BALLOON_PAGES}"
        ));
    }
    if lines("hv_balloon_incoming_unballoon").is_empty() {
        return Err("QEMU's trace lacks the guest's unballoon answer before the rescind".into());
    }
    Ok(())
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
        Phase::Inflating(..) | Phase::Deflating(..) => {
            run.verdict()?;
            return Err("the run ended while the balloon was under way".into());
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
    use super::{BALLOON_PAGES, client_balloon, host_side, qemu_balloon};

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

    /// QEMU's trace of a balloon of 512 pages (its hv_balloon events) and the removal after it.
    const BALLOON: &str = "hv_balloon_outgoing_balloon posting balloon 0 for 512, remaining 512
hv_balloon_incoming_balloon incoming balloon response 0, ranges 1, more 0
hv_balloon_outgoing_unballoon posting unballoon 1 for 512 @ 0x1c08, remaining 0
hv_balloon_incoming_unballoon incoming unballoon response 1
vmbus_rescind_channel channel #1
";

    #[test]
    fn the_balloon_must_go_out_and_back_before_the_rescind() {
        assert_eq!(BALLOON_PAGES, 512);
        assert_eq!(qemu_balloon(BALLOON), Ok(()));
        assert_eq!(host_side(&format!("{GOOD}{BALLOON}")), Ok(()));
        // Given back in two requests.
        let split = BALLOON.replace(
            "hv_balloon_outgoing_unballoon posting unballoon 1 for 512 @ 0x1c08, remaining 0\n",
            "hv_balloon_outgoing_unballoon posting unballoon 1 for 500 @ 0x1c08, remaining 12\nhv_balloon_outgoing_unballoon posting unballoon 1 for 12 @ 0x2000, remaining 0\n",
        );
        assert_eq!(qemu_balloon(&split), Ok(()));
        // The guest gave fewer pages: QEMU asked again.
        let short = BALLOON.replace(
            "more 0\n",
            "more 0\nhv_balloon_outgoing_balloon posting balloon 1 for 12, remaining 12\nhv_balloon_incoming_balloon incoming balloon response 1, ranges 0, more 0\n",
        );
        assert!(qemu_balloon(&short).unwrap_err().contains("whole answer"));
        // Not all given back.
        let kept = BALLOON.replace("for 512 @", "for 500 @");
        assert!(qemu_balloon(&kept).unwrap_err().contains("500"));
        // The deflate's answer only after the rescind.
        let late = BALLOON.replace(
            "hv_balloon_incoming_unballoon incoming unballoon response 1\nvmbus_rescind_channel channel #1\n",
            "vmbus_rescind_channel channel #1\nhv_balloon_incoming_unballoon incoming unballoon response 1\n",
        );
        assert!(
            qemu_balloon(&late)
                .unwrap_err()
                .contains("unballoon answer")
        );
        assert!(qemu_balloon("").is_err());
    }

    #[test]
    fn reads_the_clients_balloon_lines() {
        let log = "dynmem: capabilities accepted (protocol 2.0, hot remove true, pressure reports false); ready
dynmem: balloon now 512 pages (inflated 512 in all, deflated 0; refused 0, source faults 0)
vmbus-driver: [INFO] balloon: 512 pages reclaimed through client:0 (0 quarantined)
dynmem: balloon now 0 pages (inflated 512 in all, deflated 512; refused 0, source faults 0)
";
        assert_eq!(client_balloon(log), Some((0, 512, 512)));
        assert_eq!(
            client_balloon(log.split("vmbus-driver").next().unwrap_or_default()),
            Some((512, 512, 0))
        );
        assert_eq!(client_balloon("dynmem: ready\n"), None);
        // As the serial log has them.
        assert_eq!(
            client_balloon(
                "\r\ndynmem: balloon now 3 pages (inflated 4 in all, deflated 1; refused 0)\n\r"
            ),
            Some((3, 4, 1))
        );
    }

    #[test]
    fn hv_balloon_complaints_about_guest_pages_fail_the_run() {
        let logged = format!(
            "{GOOD}qemu-system-x86_64: warning: guest reported removed page 4660 not found in RAM\n"
        );
        assert!(host_side(&logged).unwrap_err().contains("not found in RAM"));
    }
}
