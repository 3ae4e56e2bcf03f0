//! Checking takes time linear in the size of the description (up to a log factor): line numbers
//! come from one table, names and ids from hash maps, overlaps from one sorted sweep, and a
//! problem is reported once, not once per pair of elements.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::line_of;
use common::scale::{self, Shape};
use sysdesc::ErrorKind;

/// Checks `xml` (with the companion `vm`, if any) in a thread and waits at most `limit` for it.
fn check_within(
    xml: String,
    vm: Option<String>,
    limit: Duration,
) -> Result<sysdesc::System, Vec<sysdesc::Diagnostic>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = match &vm {
            Some(vm) => sysdesc::parse_and_validate_pair(
                sysdesc::Source::new("huge.xml", &xml),
                sysdesc::Source::new("huge.vmbus.xml", vm),
            ),
            None => sysdesc::parse_and_validate("huge.xml", &xml),
        };
        let _ = tx.send(r);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("checking took more than {limit:?}: quadratic somewhere"))
}

#[test]
fn checking_a_huge_description_is_not_quadratic() {
    // 100,008 channels between 8,334 PDs with 25,002 maps: about 10 MB. Linear checking takes
    // well under a second even unoptimised; the earlier quadratic check (a line number found by
    // scanning the text from its start, PDs found by scanning the PD list) took minutes.
    let shape = Shape {
        pds: 8_334,
        maps: 3,
        clients: 8,
    };
    let xml = scale::description(shape);
    let vm = scale::companion(shape, "huge.xml");
    let pd_line = nth_pd_line(&xml, 63);
    let diags = check_within(xml, Some(vm), Duration::from_secs(60)).expect_err("too many PDs");
    let text: Vec<String> = diags.iter().take(5).map(|d| d.to_string()).collect();
    assert_eq!(diags.len(), 1, "{text:#?}");
    assert_eq!(diags[0].kind, ErrorKind::Structure);
    // The 64th PD (after the driver, the clients and p0..) is the one named.
    assert_eq!(
        text[0],
        format!(
            "huge.xml:{pd_line}: {} protection domains; Microkit supports at most 63",
            shape.pds + shape.clients + 1
        )
    );
}

/// The line of the `index`th PD (0-based, file order) of a generated description.
fn nth_pd_line(xml: &str, index: usize) -> u32 {
    xml.lines()
        .enumerate()
        .filter(|(_, l)| l.contains("<protection_domain "))
        .nth(index)
        .map(|(i, _)| i as u32 + 1)
        .unwrap()
}

#[test]
fn a_generated_description_within_the_limits_is_valid() {
    let shape = Shape {
        pds: 40,
        maps: 3,
        clients: 8,
    };
    let sys = sysdesc::parse_and_validate_pair(
        sysdesc::Source::new("g.xml", &scale::description(shape)),
        sysdesc::Source::new("g.vmbus.xml", &scale::companion(shape, "g.xml")),
    )
    .unwrap();
    assert_eq!(sys.channels.len(), shape.channel_count());
    assert_eq!(sys.pds.len(), 49);
    assert_eq!(sys.vmbus_clients().count(), 8);
}

#[test]
fn overlapping_maps_are_reported_once_each_not_once_per_pair() {
    // 2,000 maps of one region at one address: every map overlaps every other. One diagnostic
    // per map after the first (each names one map it overlaps), not one per pair (1,999,000).
    let mut inner = String::new();
    for _ in 0..2_000 {
        inner.push_str("        <map mr=\"r\" vaddr=\"0x30000000\" />\n");
    }
    let xml = format!(
        "<system>\n    <memory_region name=\"r\" size=\"0x1000\" />\n    <protection_domain name=\"a\" priority=\"1\">\n        <program_image path=\"a.elf\" />\n{inner}    </protection_domain>\n</system>\n"
    );
    let diags = check_within(xml, None, Duration::from_secs(60)).expect_err("overlaps");
    assert_eq!(diags.len(), 1_999);
    assert!(diags.iter().all(|d| d.kind == ErrorKind::Overlap));
    // Each report is at a later map and names an earlier one.
    assert_eq!(diags[0].line, 6);
    assert!(
        diags[0].message.ends_with("(line 5)"),
        "{}",
        diags[0].message
    );
    let lines: std::collections::BTreeSet<u32> = diags.iter().map(|d| d.line).collect();
    assert_eq!(lines.len(), 1_999, "one report per map");
}

#[test]
fn line_numbers_deep_into_a_huge_description_are_exact() {
    let shape = Shape {
        pds: 2_000,
        maps: 1,
        clients: 2,
    };
    let mut xml = scale::description(shape);
    // A problem near the end (an unknown PD in the last channel), another in the middle, with
    // CRLF line ends in between.
    xml = xml.replacen(
        "\n    <protection_domain name=\"p1000\"",
        "\r\n    <protection_domain name=\"p1000\"",
        1,
    );
    let last = xml.rfind("pd=\"p1999\" id=\"11\"").unwrap();
    xml.replace_range(last..last + "pd=\"p1999\"".len(), "pd=\"nope\"");
    xml = xml.replacen("<map mr=\"r1500_0\"", "<map mr=\"nothing\"", 1);
    let want = [
        (nth_pd_line(&xml, 63), ErrorKind::Structure),
        (line_of(&xml, "mr=\"nothing\""), ErrorKind::UnknownName),
        (line_of(&xml, "pd=\"nope\""), ErrorKind::UnknownName),
    ];
    let vm = scale::companion(shape, "huge.xml");
    let diags = check_within(xml, Some(vm), Duration::from_secs(60)).expect_err("three problems");
    let mut got: Vec<(u32, ErrorKind)> = diags.iter().map(|d| (d.line, d.kind)).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, want, "{diags:#?}");
}
