//! Each validation rule of the Microkit description, on a small description that breaks only
//! that rule: the exact `file:line: message` and the error kind (the VMBus wiring's rules are in
//! `vmbus_wiring.rs`).

mod common;

use common::{assert_one, diags, line_of};
use sysdesc::ErrorKind;

fn pd(name: &str, prio: u32, inner: &str) -> String {
    format!(
        "    <protection_domain name=\"{name}\" priority=\"{prio}\">\n        <program_image path=\"{name}.elf\" />\n{inner}    </protection_domain>\n"
    )
}

fn system(body: &str) -> String {
    format!("<system>\n{body}</system>\n")
}

#[test]
fn duplicate_pd_name_is_refused() {
    let xml = system(&format!("{}{}", pd("a", 1, ""), pd("a", 2, "")));
    let second = line_of(&xml, "priority=\"2\"");
    let d = diags(&xml);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].kind, ErrorKind::DuplicateName);
    assert_eq!(
        d[0].to_string(),
        format!(
            "t.xml:{second}: protection domain name \"a\" is already used by the protection domain at line 2"
        )
    );
}

#[test]
fn duplicate_region_name_is_refused() {
    let xml = system(
        "    <memory_region name=\"r\" size=\"0x1000\" />\n    <memory_region name=\"r\" size=\"0x2000\" />\n",
    );
    assert_one(
        &xml,
        ErrorKind::DuplicateName,
        "0x2000",
        "memory region name \"r\" is already used at line 2",
    );
}

#[test]
fn map_of_unknown_region_is_refused() {
    let xml = system(&pd(
        "a",
        1,
        "        <map mr=\"nowhere\" vaddr=\"0x1000000\" />\n",
    ));
    assert_one(
        &xml,
        ErrorKind::UnknownName,
        "nowhere",
        "map in PD \"a\" names unknown memory region \"nowhere\"",
    );
}

#[test]
fn channel_to_unknown_pd_is_refused() {
    let xml = system(&format!(
        "{}    <channel>\n        <end pd=\"a\" id=\"1\" />\n        <end pd=\"ghost\" id=\"1\" />\n    </channel>\n",
        pd("a", 1, "")
    ));
    assert_one(
        &xml,
        ErrorKind::UnknownName,
        "ghost",
        "channel end names unknown PD \"ghost\"",
    );
}

#[test]
fn overlapping_maps_in_one_pd_are_refused() {
    let xml = system(&format!(
        "    <memory_region name=\"rings\" size=\"0x2000\" />\n    <memory_region name=\"buf\" size=\"0x1000\" />\n{}",
        pd(
            "net",
            1,
            "        <map mr=\"rings\" vaddr=\"0x1fff000\" />\n        <map mr=\"buf\" vaddr=\"0x2000000\" />\n"
        )
    ));
    let first = line_of(&xml, "0x1fff000");
    assert_one(
        &xml,
        ErrorKind::Overlap,
        "0x2000000",
        &format!(
            "map of \"buf\" in PD \"net\" at 0x2000000..0x2001000 overlaps map of \"rings\" at 0x1fff000..0x2001000 (line {first})"
        ),
    );
}

#[test]
fn same_region_in_two_pds_at_one_address_is_fine() {
    let xml = system(&format!(
        "    <memory_region name=\"r\" size=\"0x1000\" />\n{}{}",
        pd("a", 1, "        <map mr=\"r\" vaddr=\"0x1000000\" />\n"),
        pd("b", 1, "        <map mr=\"r\" vaddr=\"0x1000000\" />\n")
    ));
    sysdesc::parse_and_validate("t.xml", &xml).unwrap();
}

#[test]
fn channel_id_63_is_out_of_range() {
    let xml = system(&format!(
        "{}{}    <channel>\n        <end pd=\"a\" id=\"63\" />\n        <end pd=\"b\" id=\"0\" />\n    </channel>\n",
        pd("a", 1, ""),
        pd("b", 1, "")
    ));
    assert_one(
        &xml,
        ErrorKind::BadValue,
        "id=\"63\"",
        "'id' on 'end' is 63, must be within 0..=23",
    );
}

#[test]
fn channel_id_reused_in_a_pd_is_refused() {
    let xml = system(&format!(
        "{}{}{}    <channel>\n        <end pd=\"a\" id=\"4\" />\n        <end pd=\"b\" id=\"0\" />\n    </channel>\n    <channel>\n        <end pd=\"a\" id=\"4\" />\n        <end pd=\"c\" id=\"0\" />\n    </channel>\n",
        pd("a", 1, ""),
        pd("b", 1, ""),
        pd("c", 1, "")
    ));
    let lines: Vec<u32> = xml
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("pd=\"a\" id=\"4\""))
        .map(|(i, _)| i as u32 + 1)
        .collect();
    let d = diags(&xml);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].kind, ErrorKind::DuplicateId);
    assert_eq!(
        d[0].to_string(),
        format!(
            "t.xml:{}: id 4 of PD \"a\" for the channel to \"c\" is already used by the channel to \"b\" (line {})",
            lines[1], lines[0]
        )
    );
}

#[test]
fn irq_and_channel_sharing_an_id_are_refused() {
    let xml = system(&format!(
        "{}{}    <channel>\n        <end pd=\"a\" id=\"2\" />\n        <end pd=\"b\" id=\"0\" />\n    </channel>\n",
        pd("a", 1, "        <irq id=\"2\" pin=\"4\" vector=\"40\" />\n"),
        pd("b", 1, "")
    ));
    let irq = line_of(&xml, "<irq");
    assert_one(
        &xml,
        ErrorKind::DuplicateId,
        "pd=\"a\" id=\"2\"",
        &format!(
            "id 2 of PD \"a\" for the channel to \"b\" is already used by irq vector 40 (line {irq})"
        ),
    );
}

#[test]
fn protected_call_to_equal_priority_is_refused() {
    let xml = system(&format!(
        "{}{}    <channel>\n        <end pd=\"low\" id=\"0\" pp=\"true\" />\n        <end pd=\"peer\" id=\"0\" />\n    </channel>\n",
        pd("low", 50, ""),
        pd("peer", 50, "")
    ));
    assert_one(
        &xml,
        ErrorKind::Priority,
        "pp=\"true\"",
        "PD \"low\" (priority 50) may not make protected calls to PD \"peer\" (priority 50): the callee needs a strictly higher priority",
    );
}

#[test]
fn protected_call_to_lower_priority_is_refused() {
    let xml = system(&format!(
        "{}{}    <channel>\n        <end pd=\"lo\" id=\"0\" />\n        <end pd=\"hi\" id=\"0\" pp=\"true\" />\n    </channel>\n",
        pd("lo", 10, ""),
        pd("hi", 90, "")
    ));
    assert_one(
        &xml,
        ErrorKind::Priority,
        "pp=\"true\"",
        "PD \"hi\" (priority 90) may not make protected calls to PD \"lo\" (priority 10): the callee needs a strictly higher priority",
    );
}

#[test]
fn region_size_not_page_multiple_is_refused() {
    let xml = system("    <memory_region name=\"r\" size=\"0x1800\" />\n");
    assert_one(
        &xml,
        ErrorKind::Alignment,
        "0x1800",
        "memory region \"r\": size 0x1800 is not a non-zero multiple of its page size 0x1000",
    );
}

#[test]
fn large_page_region_needs_2mib_multiple_and_aligned_maps() {
    let xml = system(&format!(
        "    <memory_region name=\"big\" size=\"0x200000\" page_size=\"0x200000\" />\n{}",
        pd("a", 1, "        <map mr=\"big\" vaddr=\"0x40001000\" />\n")
    ));
    assert_one(
        &xml,
        ErrorKind::Alignment,
        "0x40001000",
        "map of \"big\" in PD \"a\": vaddr 0x40001000 is not aligned to the region's page size 0x200000",
    );
}

#[test]
fn irq_vector_given_to_two_pds_is_refused() {
    let xml = system(&format!(
        "{}{}",
        pd("a", 1, "        <irq id=\"1\" pin=\"4\" vector=\"40\" />\n"),
        pd(
            "b",
            1,
            "        <irq id=\"1\" pcidev=\"00:03.0\" handle=\"0\" vector=\"40\" />\n"
        )
    ));
    let first = line_of(&xml, "pin=\"4\"");
    assert_one(
        &xml,
        ErrorKind::DuplicateId,
        "pcidev",
        &format!("irq vector 40 of PD \"b\" is already taken by PD \"a\" (line {first})"),
    );
}

#[test]
fn duplicate_child_id_is_refused() {
    let xml = system(&pd(
        "parent",
        10,
        "        <protection_domain name=\"k1\" id=\"1\" priority=\"5\">\n            <program_image path=\"k1.elf\" />\n        </protection_domain>\n        <protection_domain name=\"k2\" id=\"1\" priority=\"5\">\n            <program_image path=\"k2.elf\" />\n        </protection_domain>\n",
    ));
    let first = line_of(&xml, "name=\"k1\"");
    assert_one(
        &xml,
        ErrorKind::DuplicateId,
        "name=\"k2\"",
        &format!("child id 1 of PD \"parent\" (for \"k2\") is already used at line {first}"),
    );
}

#[test]
fn setvar_and_cspace_naming_unknown_things_are_refused() {
    let xml = system(&pd(
        "a",
        1,
        "        <setvar symbol=\"base\" region_paddr=\"missing\" />\n        <cspace>\n            <cap_sc slot=\"3\" pd=\"nobody\" />\n        </cspace>\n",
    ));
    let text: Vec<String> = diags(&xml).iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        vec![
            format!(
                "t.xml:{}: setvar \"base\" in PD \"a\" names unknown memory region \"missing\"",
                line_of(&xml, "<setvar")
            ),
            format!(
                "t.xml:{}: cspace entry in PD \"a\" names unknown PD \"nobody\"",
                line_of(&xml, "cap_sc")
            ),
        ]
    );
}

#[test]
fn pd_domain_must_be_declared() {
    let xml = system(&format!(
        "    <domains>\n        <domain name=\"red\" />\n        <domain_schedule>\n            <schedule_entry domain=\"red\" duration=\"1000 us\" />\n            <schedule_entry domain=\"blue\" duration=\"5 ticks\" />\n        </domain_schedule>\n    </domains>\n{}",
        pd("a", 1, "").replace("priority=\"1\"", "priority=\"1\" domain=\"green\"")
    ));
    let text: Vec<String> = diags(&xml).iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        vec![
            format!(
                "t.xml:{}: PD \"a\" names undeclared domain \"green\"",
                line_of(&xml, "domain=\"green\"")
            ),
            format!(
                "t.xml:{}: schedule entry names undeclared domain \"blue\"",
                line_of(&xml, "blue")
            ),
        ]
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let xml = system(&format!(
        "    <memory_region name=\"r\" size=\"0x1800\" />\n{}{}    <channel>\n        <end pd=\"a\" id=\"0\" pp=\"true\" />\n        <end pd=\"b\" id=\"0\" />\n    </channel>\n",
        pd("a", 9, "        <map mr=\"q\" vaddr=\"0x1000\" />\n"),
        pd("b", 9, "")
    ));
    let d = diags(&xml);
    let kinds: Vec<ErrorKind> = d.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ErrorKind::Alignment,
            ErrorKind::Priority,
            ErrorKind::UnknownName
        ],
        "{d:#?}"
    );
}

#[test]
fn a_channel_id_the_root_task_refuses_is_refused() {
    // The image's notification badges hold channel ids 0..=23 (pd_runtime::layout::MAX_CHANNEL);
    // Microkit's own limit (62) is not the image's.
    let xml = system(&format!(
        "{}{}    <channel>\n        <end pd=\"a\" id=\"24\" />\n        <end pd=\"b\" id=\"0\" />\n    </channel>\n",
        pd("a", 1, ""),
        pd("b", 1, "")
    ));
    assert_one(
        &xml,
        ErrorKind::BadValue,
        "id=\"24\"",
        "'id' on 'end' is 24, must be within 0..=23",
    );
    let xml = system(&pd(
        "a",
        1,
        "        <irq id=\"24\" pin=\"4\" vector=\"40\" />\n",
    ));
    assert_one(
        &xml,
        ErrorKind::BadValue,
        "id=\"24\"",
        "'id' on 'irq' is 24, must be within 0..=23",
    );
}
