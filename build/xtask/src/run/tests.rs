//! The main job end to end, in-process: the scenarios complete and their summaries agree with
//! themselves and with the pool.

use super::options::{HostKind, HostileMode, Options, ScenarioName, parse};
use super::report::Report;
use super::{execute, execute_with, verdict};

fn run(args: &[&str]) -> (Report, String) {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    let opts = parse(&args).expect("options parse");
    let mut out = Vec::new();
    let report = execute(&opts, &mut out).expect("the run completes");
    (report, String::from_utf8(out).expect("utf-8 output"))
}

/// The summary line that starts with `prefix`.
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
}

/// The accounting every run must end with: every page free (unload tore everything down),
/// quarantined or lent to the host (the balloon), teardowns balanced with opens, every echo
/// correct, the driver lending exactly what the host holds.
fn assert_consistent(r: &Report) {
    assert_eq!(r.unaccounted(), 0, "{r:#?}");
    assert_eq!(r.open_now, 0, "unload leaves no channel");
    assert_eq!(r.pages_in_channels, 0);
    assert_eq!(r.pool_free + r.quarantined + r.lent, r.pool_total);
    assert_eq!(
        r.driver.pages_taken,
        r.driver.pages_returned + r.quarantined as u64 + r.lent as u64,
        "every page taken came back, is quarantined or is lent"
    );
    assert_eq!(
        r.driver.balloon_pages_lent - r.driver.balloon_pages_reclaimed,
        r.lent as u64
    );
    assert_eq!(r.driver.teardowns, r.driver.teardowns_completed);
    assert_eq!(r.clients.mismatches, 0);
    assert_eq!(
        r.faults, 0,
        "the client library never touches a revoked ring"
    );
    assert_eq!(verdict(r), Ok(()), "the run succeeds");
    if let Some(n) = &r.network {
        assert_eq!(n.failures, 0, "{n:?}");
    }
    if let Some(s) = &r.storage {
        assert_eq!((s.stats.blocks_mismatched, s.stats.stray), (0, 0), "{s:?}");
    }
}

/// The driver opened exactly what the clients and the real drivers' programs opened.
fn opens_agree(r: &Report) {
    let real = r.network.map_or(0, |n| n.opens) + r.storage.map_or(0, |s| s.opens);
    assert_eq!(r.driver.opens, r.clients.opens + real, "{:?}", r.clients);
}

#[test]
fn the_default_run_removes_and_readds_the_network_and_storage_devices_and_leaks_no_page() {
    let (r, out) = run(&["--steps", "200"]);
    assert_consistent(&r);
    assert_eq!(r.quarantined, 0, "an honest host confirms every teardown");
    assert_eq!(r.pool_free + r.lent, r.pool_total);
    // Hot removal of the network adapter and the SCSI controller (no sub-channels) and their
    // re-adding.
    assert_eq!(r.driver.rescinds, 2);
    assert_eq!(r.driver.relids_released, 2);
    assert_eq!(r.host.releases, 2);
    // 7 devices, 7 channels at boot, 2 offered again.
    assert_eq!(r.driver.offers, 9);
    opens_agree(&r);
    let (n, s) = (r.network.unwrap(), r.storage.unwrap());
    assert_eq!(
        (n.opens, s.opens),
        (2, 2),
        "opened, then again after the re-add"
    );
    assert_eq!(r.host.guest_errors, 0, "{:?}", r.host_errors);
    assert_eq!(r.driver.hostile, 0);
    assert!(r.version.is_some());
    assert_eq!(
        r.kernel.unmaps,
        r.kernel.maps + r.lent as u64,
        "every mapping made was removed again, and the driver's own mapping of each page lent to the host"
    );
    for moment in [
        "after boot",
        "hot removal of net and scsi: the teardown as the host saw it",
        "GPADL_TORNDOWN",
        "-- pool after the teardown: ",
        " quarantined, 0 lent, 2 monitor pages, 0 unaccounted --",
        "after re-adding net and scsi",
        "after the host ballooned out 256 pages",
        "after the host gave 128 pages back",
        "after the orderly stop: every channel closed, UNLOAD answered",
        "==== summary: scenario default",
    ] {
        assert!(out.contains(moment), "missing `{moment}` in:\n{out}");
    }
    // As on Hyper-V: monitor pages at connect, every channel offered with a monitor id, so no
    // guest-to-host signal costs a hypercall; the monitor pages go back after UNLOAD.
    assert_eq!(r.driver.monitor_connects, 1);
    assert_eq!(r.driver.signals, 0, "no signal by hypercall");
    assert!(r.driver.monitor_signals > 0);
    assert_eq!(r.monitor_pages, 0, "returned after the answered UNLOAD");
    assert!(
        out.contains("(0.0 per 1000 packets), by monitor page"),
        "{out}"
    );
}

#[test]
fn the_network_and_storage_lines_show_traffic_verified_before_and_after_the_re_add() {
    let (r, out) = run(&["--steps", "200", "-q"]);
    assert_consistent(&r);
    let n = r.network.expect("the real network device");
    let before = n.before.expect("a removal");
    let after = n.after();
    for (what, c) in [("before", before), ("after", after)] {
        assert!(
            c.arp > 0 && c.icmp > 0 && c.udp > 0,
            "ARP, ICMP and UDP verified {what} the re-add: {n:?}"
        );
    }
    // Every answer the client verified came from the host's switch.
    assert!(n.answered.arp <= n.host.arp && n.answered.icmp <= n.host.icmp);
    assert!(n.answered.udp <= n.host.udp);
    assert!(
        n.unanswered <= n.removals + 1,
        "only requests lost with the device: {n:?}"
    );
    assert!(n.link_downs >= 2 && n.gone >= 2, "rescind and stop: {n:?}");
    assert!(n.readies >= 2, "ready again after the re-add: {n:?}");
    assert!(n.tx_sent > 0 && n.rx_delivered > 0 && n.frames_switched > 0);
    let s = r.storage.expect("the real SCSI controller");
    let b = s.before.expect("a removal");
    assert!(b.blocks_verified > 0, "{s:?}");
    assert!(s.verified_after() > 0, "{s:?}");
    assert!(
        s.stats.no_device >= 1,
        "a request in flight failed with NoDevice: {s:?}"
    );
    assert_eq!(s.stats.failed, 0, "{s:?}");
    assert_eq!(s.stats.blocks_verified, s.stats.blocks_read);
    assert!(s.stats.blocks_written >= s.stats.blocks_read);
    assert_eq!((s.opens, s.gone), (2, 2));
    let net = line(&out, "network:   ");
    for text in [
        "client answered and verified ARP ",
        "before the removal ",
        "after the re-add ",
        "failed verification 0",
        "link downs ",
        "bridge frames tx ",
    ] {
        assert!(net.contains(text), "missing `{text}` in: {net}");
    }
    let st = line(&out, "storage:   ");
    for text in [
        "mismatched 0",
        "verified before the removal ",
        &format!("after the re-add {}", s.verified_after()),
        &format!("requests failed with NoDevice {}", s.stats.no_device),
        "storvsc opens 2 (reopens 1)",
    ] {
        assert!(st.contains(text), "missing `{text}` in: {st}");
    }
}

#[test]
fn a_block_that_reads_back_different_fails_the_run() {
    let args: Vec<String> = ["--steps", "120", "-q"]
        .iter()
        .map(ToString::to_string)
        .collect();
    let opts = parse(&args).unwrap();
    let mut out = Vec::new();
    // The host's disk forgets every write: what is read back is not what was written.
    let mut lossy = |w: &mut sim_system::World| w.host_mut().storage_disk_mut().fill(0xA5);
    let r = execute_with(&opts, &mut out, Some(&mut lossy)).expect("the run completes");
    let s = r.storage.unwrap();
    assert!(s.stats.blocks_mismatched > 0, "{s:?}");
    assert_eq!(s.stats.blocks_verified, 0, "{s:?}");
    let why = verdict(&r).expect_err("the run fails");
    assert!(why.contains("blocks read back different"), "{why}");
    let out = String::from_utf8(out).unwrap();
    assert!(
        line(&out, "storage:   ").contains(&format!("mismatched {}", s.stats.blocks_mismatched))
    );
}

#[test]
fn a_network_answer_that_does_not_verify_fails_the_run() {
    let (mut r, _) = run(&["--steps", "120", "-q"]);
    assert_eq!(verdict(&r), Ok(()));
    r.network.as_mut().unwrap().failures = 1;
    let why = verdict(&r).expect_err("the run fails");
    assert!(why.contains("network frames failed verification"), "{why}");
}

#[test]
fn echo_devices_with_sub_channels_are_removed_and_re_added_with_echo() {
    let (r, out) = run(&["--echo", "--steps", "200", "-q"]);
    assert_consistent(&r);
    assert!(r.network.is_none() && r.storage.is_none());
    // net (primary + 3 sub-channels) and scsi (primary + 1).
    assert_eq!(r.driver.rescinds, 6);
    assert_eq!(r.driver.relids_released, 6);
    // 7 devices, 11 channels at boot, 6 offered again.
    assert_eq!(r.driver.offers, 17);
    assert_eq!(r.driver.opens, r.clients.opens);
    assert!(r.clients.echoed > 100, "{:?}", r.clients);
    assert!(out.contains("hot removal of net and scsi: the teardown as the host saw it"));
    assert!(!out.contains("network:   ") && !out.contains("storage:   "));
}

#[test]
fn the_default_run_serves_every_service_and_ends_in_the_orderly_stop() {
    use vmbus_driver::driver::{StopKind, UnloadEnd};
    let (r, out) = run(&["--steps", "200", "-q"]);
    assert_consistent(&r);
    let s = &r.services;
    let (seq, answered) = s.heartbeat.expect("heartbeat served");
    assert!(seq >= 5, "the host ticked: {seq}");
    assert_eq!(
        answered,
        Some(seq + 1),
        "the last heartbeat answered plus one"
    );
    assert!(s.samples >= 5, "time samples taken: {}", s.samples);
    assert_eq!(s.kvp_pairs, 2, "three pairs set, one deleted");
    // 256 ballooned out, 128 given back: the host holds what the driver lends.
    assert_eq!((s.inflated, s.deflated), (256, 128));
    assert_eq!((s.host_held, s.lent), (128, 128));
    assert_eq!(r.lent, 128);
    assert_eq!(s.refused, 0, "an honest host sends nothing to refuse");
    assert_eq!(
        s.stop,
        Some((StopKind::PowerOff, Some(UnloadEnd::Answered)))
    );
    assert_eq!(
        r.connection,
        vmbus_driver::driver::ConnectionState::Disconnected
    );
    for text in [
        "heartbeat: framework 3.0 service 3.0",
        "timesync:  framework 3.0 service 4.0",
        "last sample: host time 2024-01-01 ",
        "guest store, pool 0: HostName = \"hv-host-sim\"",
        "host read, pool 2: OSName = \"seL4\"",
        "balloon: host holds 128 pages, driver lends 128",
        "(inflated 256 deflated 128 in all)",
        "system stopped: power off, every channel closed, UNLOAD answered",
    ] {
        assert!(out.contains(text), "missing `{text}` in:\n{out}");
    }
    // Without --trace the host's message trace is not printed.
    assert!(!out.contains("integration-service and Dynamic Memory trace"));
}

#[test]
fn trace_prints_each_negotiation_and_the_balloon_messages() {
    let (_, out) = run(&["--steps", "120", "--trace", "-q"]);
    for text in [
        "-- the host's integration-service and Dynamic Memory trace --",
        "host->guest ic heartbeat: negotiate offer framework 1.0,3.0 service 1.0,3.0",
        "guest->host ic heartbeat: negotiate framework 3.0 service 3.0 agreed",
        "guest->host ic shutdown: negotiate framework 3.0 service 3.2 agreed",
        "guest->host ic timesync: negotiate framework 3.0 service 4.0 agreed",
        "guest->host ic kvp: negotiate framework 3.0 service 4.0 agreed",
        "guest->host dm: VERSION_REQUEST 2.0 accepted",
        "host->guest dm: BALLOON_REQUEST 256 pages",
        "host->guest dm: UNBALLOON_REQUEST",
        "host->guest ic shutdown: shutdown request flags 0x0",
    ] {
        assert!(out.contains(text), "missing `{text}` in:\n{out}");
    }
}

#[test]
fn service_hostile_modes_are_refused_by_the_clients_and_every_service_recovers() {
    let (r, out) = run(&[
        "--scenario",
        "hostile",
        "--hostile",
        "ic-foreign-versions,ic-truncate,ic-oversize-body,ic-unknown-type,ic-wrong-service,ic-response-flag,dm-truncate,dm-oversize,dm-balloon-early,dm-unballoon-unknown",
        "--steps",
        "160",
        "-q",
    ]);
    assert_consistent(&r);
    assert!(r.services.refused > 0, "{:?}", r.services);
    // The bending is inside the rings: the bus saw nothing hostile.
    assert_eq!(r.driver.hostile, 0, "{:?}", r.driver);
    assert_eq!(r.lent, 0, "no page lent to a host that lost track of it");
    assert!(out.contains("recovered: traffic after the hostile modes"));
    let (seq, answered) = r.services.heartbeat.unwrap();
    assert_eq!(answered, Some(seq + 1), "the heartbeat serves again");
}

#[test]
fn a_hostile_host_is_survived_and_every_page_is_free_or_quarantined() {
    let (r, out) = run(&[
        "--scenario",
        "hostile",
        "--hostile",
        "all",
        "--steps",
        "160",
        "-q",
    ]);
    assert_consistent(&r);
    assert!(r.driver.hostile > 0, "{:?}", r.driver);
    assert!(r.driver.malformed > 0 && r.driver.relid_out_of_range > 0);
    assert!(r.driver.duplicate_offers > 0 && r.driver.unknown_gpadl > 0);
    assert!(r.driver.timeouts > 0, "no-reply makes the driver time out");
    assert!(
        r.driver.events_dropped_stale > 0,
        "the flood hit closed relids"
    );
    assert!(out.contains("recovered: traffic after the hostile modes"));
}

#[test]
fn no_zombie_channel_survives_a_hostile_mode_and_every_offered_channel_serves_again() {
    // `execute` itself fails (`RunError::NotRecovered`) unless every channel the host offers
    // after the modes is open in the driver and moved traffic in the recovery phase, and the
    // driver holds no channel the host does not have open (a lost rescind's zombie).
    // The echo set (11 channels, sub-channels included) and the real devices (7 channels).
    for (mode, echo, channels) in [
        ("truncate", true, 11),
        ("no-reply", true, 11),
        ("event-flood", true, 11),
        ("corrupt-ring", true, 11),
        ("all", true, 11),
        ("corrupt-ring", false, 7),
        ("all", false, 7),
    ] {
        let mut args: Vec<String> = [
            "--scenario",
            "hostile",
            "--hostile",
            mode,
            "--steps",
            "120",
            "-q",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        if echo {
            args.push("--echo".into());
        }
        let opts = parse(&args).unwrap();
        let mut out = Vec::new();
        let r = execute(&opts, &mut out).expect("the run completes");
        assert_consistent(&r);
        // The last table before unload shows every channel open and echoing again.
        let text = String::from_utf8(out).unwrap();
        let recovered = text
            .split("-- recovered: traffic after the hostile modes")
            .nth(1)
            .and_then(|t| t.split("\n--").next())
            .unwrap_or_else(|| panic!("{mode}: no recovery table"));
        let rows: Vec<&str> = recovered.lines().skip(2).collect();
        // Exactly the channels of the device set: no zombie of a mangled rescind is left.
        assert_eq!(rows.len(), channels, "{mode}: {recovered}");
        assert!(
            rows.iter().all(|l| l.contains(" open ")),
            "{mode}: not every channel reopened:\n{recovered}"
        );
    }
}

#[test]
fn the_other_scenarios_complete_with_consistent_counts() {
    for scenario in ["hotplug", "rescind-storm", "unload"] {
        for echo in [true, false] {
            let mut args = vec![
                "--scenario",
                scenario,
                "--steps",
                "120",
                "--seed",
                "3",
                "-q",
            ];
            if echo {
                args.push("--echo");
            }
            let (r, _) = run(&args);
            assert_consistent(&r);
            assert_eq!(r.quarantined, 0, "{scenario}");
            assert_eq!(r.driver.rescinds, r.driver.relids_released, "{scenario}");
            opens_agree(&r);
            if echo {
                assert!(r.clients.echoed > 0, "{scenario}");
            } else {
                let (n, s) = (r.network.unwrap(), r.storage.unwrap());
                assert!(n.answered.total() > 0, "{scenario}: {n:?}");
                assert!(s.stats.blocks_verified > 0, "{scenario}: {s:?}");
                assert_eq!(s.stats.failed, 0, "{scenario}: {s:?}");
            }
        }
    }
}

#[test]
fn a_qemu_host_negotiates_4_0_rescinds_on_removal_and_the_clients_close_and_reopen() {
    let (r, _) = run(&[
        "--host",
        "qemu",
        "--devices",
        "heartbeat,kvp",
        "--steps",
        "120",
        "-q",
    ]);
    assert_consistent(&r);
    assert_eq!(r.version.map(|v| v.to_string()), Some("4.0".to_string()));
    // QEMU with the project's series rescinds on device_del, and releases on RELID_RELEASED.
    assert!(r.driver.rescinds >= 1, "{:?}", r.driver);
    assert_eq!(r.driver.rescinds, r.driver.relids_released);
    assert_eq!(r.host.releases, r.driver.relids_released);
    assert!(r.clients.closed >= 2, "{:?}", r.clients);
}

#[test]
fn options_parse_and_refuse() {
    let args: Vec<String> = [
        "--scenario",
        "rescind-storm",
        "--echo",
        "--devices",
        "net*2+3,heartbeat",
        "--hostile",
        "no-reply,event-flood",
        "--host",
        "qemu",
        "--steps",
        "100",
        "--seed",
        "9",
        "-vv",
        "-q",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    let o: Options = parse(&args).unwrap();
    assert_eq!(o.scenario, ScenarioName::RescindStorm);
    assert_eq!(o.devices.len(), 2);
    assert_eq!((o.devices[0].count, o.devices[0].sub_channels), (2, 3));
    assert_eq!(
        o.hostile,
        vec![HostileMode::NoReply, HostileMode::EventFlood]
    );
    assert_eq!(o.host, HostKind::Qemu);
    assert!(o.echo);
    assert_eq!((o.steps, o.seed, o.verbosity), (100, 9, 1));
    // The defaults: the real network and SCSI devices without sub-channels; with --echo the
    // echo set with sub-channels.
    let d = parse(&[]).unwrap();
    assert!(!d.echo);
    let net = d.devices.iter().find(|r| r.name == "net").unwrap();
    assert_eq!((net.count, net.sub_channels), (1, 0));
    let e = parse(&["--echo".to_string()]).unwrap();
    let net = e.devices.iter().find(|r| r.name == "net").unwrap();
    assert_eq!((net.count, net.sub_channels), (1, 3));
    for bad in [
        &["--scenario", "nope"][..],
        &["--devices", "toaster"],
        &["--devices", "net+99"],
        // The real devices: one each, no sub-channels, no IDE (--echo for those).
        &["--devices", "net+3"],
        &["--devices", "scsi*2"],
        &["--devices", "heartbeat,ide"],
        &["--hostile", "polite"],
        &["--steps"],
        &["--frobnicate"],
    ] {
        let a: Vec<String> = bad.iter().map(ToString::to_string).collect();
        assert!(parse(&a).is_err(), "{bad:?} accepted");
    }
}
