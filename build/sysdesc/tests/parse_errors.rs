//! Syntax-level refusals: unknown elements and attributes, missing or malformed values, wrong
//! element counts. Each names the file and the line of the element (or attribute) at fault.

mod common;

use common::{assert_one, diags, line_of};
use sysdesc::ErrorKind;

fn system(body: &str) -> String {
    format!("<system>\n{body}</system>\n")
}

fn pd_with(attrs: &str, inner: &str) -> String {
    system(&format!(
        "    <protection_domain name=\"a\" {attrs}>\n        <program_image path=\"a.elf\" />\n{inner}    </protection_domain>\n"
    ))
}

#[test]
fn malformed_xml_names_the_line() {
    let xml = "<system>\n  <memory_region name=\"r\" size=\"0x1000\">\n</system>\n";
    let d = diags(xml);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].kind, ErrorKind::Xml);
    assert_eq!(d[0].line, 3);
    assert!(
        d[0].to_string()
            .starts_with("t.xml:3: not well-formed XML: "),
        "{}",
        d[0]
    );
}

#[test]
fn root_must_be_system() {
    assert_one(
        "<sys>\n</sys>\n",
        ErrorKind::UnknownElement,
        "<sys>",
        "root element is 'sys', expected 'system'",
    );
}

#[test]
fn unknown_element_is_refused() {
    assert_one(
        &system("    <memory_regoin name=\"r\" size=\"0x1000\" />\n"),
        ErrorKind::UnknownElement,
        "regoin",
        "unknown element 'memory_regoin' in 'system' (allowed: protection_domain, memory_region, channel, domains)",
    );
}

#[test]
fn unknown_attribute_names_the_attribute_line() {
    let xml = system(
        "    <memory_region name=\"r\"\n        size=\"0x1000\"\n        colour=\"blue\" />\n",
    );
    assert_one(
        &xml,
        ErrorKind::UnknownAttribute,
        "colour",
        "unknown attribute 'colour' on 'memory_region' (allowed: name, size, page_size, phys_addr, prefill_path, prefill_bootinfo)",
    );
}

#[test]
fn unknown_element_inside_pd_is_refused() {
    assert_one(
        &pd_with("priority=\"1\"", "        <mapping mr=\"x\" />\n"),
        ErrorKind::UnknownElement,
        "<mapping",
        "unknown element 'mapping' in 'protection_domain' (allowed: program_image, map, irq, ioport, setvar, protection_domain, virtual_machine, cspace)",
    );
}

#[test]
fn child_pd_attributes_are_refused_at_top_level() {
    assert_one(
        &pd_with("priority=\"1\" id=\"3\"", ""),
        ErrorKind::UnknownAttribute,
        "id=\"3\"",
        "unknown attribute 'id' on 'protection_domain' (allowed: name, priority, budget, period, passive, stack_size, smc, cpu, domain, fpu)",
    );
}

#[test]
fn missing_required_attribute_is_refused() {
    assert_one(
        &system("    <memory_region name=\"r\" />\n"),
        ErrorKind::MissingAttribute,
        "memory_region",
        "'memory_region' needs the attribute 'size' (sysdesc does not size regions from prefill data)",
    );
}

#[test]
fn malformed_number_is_refused() {
    assert_one(
        &system("    <memory_region name=\"r\" size=\"0x10g0\" />\n"),
        ErrorKind::BadValue,
        "0x10g0",
        "'size' on 'memory_region' is '0x10g0', not a number (decimal or 0x hexadecimal)",
    );
}

#[test]
fn priority_255_is_out_of_range() {
    assert_one(
        &pd_with("priority=\"255\"", ""),
        ErrorKind::BadValue,
        "255",
        "'priority' on 'protection_domain' is 255, must be within 0..=254",
    );
}

#[test]
fn budget_above_period_is_refused() {
    assert_one(
        &pd_with("priority=\"1\" budget=\"2000\" period=\"1000\"", ""),
        ErrorKind::BadValue,
        "budget",
        "budget (2000) of 'protection_domain' must not exceed its period (1000)",
    );
}

#[test]
fn bad_boolean_is_refused() {
    assert_one(
        &pd_with("priority=\"1\" passive=\"yes\"", ""),
        ErrorKind::BadValue,
        "passive",
        "'passive' on 'protection_domain' is 'yes', must be 'true' or 'false'",
    );
}

#[test]
fn stack_size_not_page_multiple_is_refused() {
    assert_one(
        &pd_with("priority=\"1\" stack_size=\"0x1800\"", ""),
        ErrorKind::Alignment,
        "stack_size",
        "stack_size 0x1800 of PD \"a\" is not a multiple of 0x1000",
    );
}

#[test]
fn smc_is_arm_only() {
    assert_one(
        &pd_with("priority=\"1\" smc=\"true\"", ""),
        ErrorKind::BadValue,
        "smc",
        "PD \"a\": smc=\"true\" is ARM-only; this system is x86-64",
    );
}

#[test]
fn pd_without_program_image_is_refused() {
    assert_one(
        &system("    <protection_domain name=\"a\" priority=\"1\">\n    </protection_domain>\n"),
        ErrorKind::Structure,
        "protection_domain name",
        "PD \"a\" needs exactly one 'program_image', has 0",
    );
}

#[test]
fn write_only_map_is_refused() {
    assert_one(
        &pd_with(
            "priority=\"1\"",
            "        <map mr=\"r\" vaddr=\"0x1000\" perms=\"w\" />\n",
        ),
        ErrorKind::BadValue,
        "perms",
        "perms 'w': write without read is not allowed by seL4",
    );
}

#[test]
fn channel_needs_exactly_two_ends() {
    assert_one(
        &system("    <channel>\n        <end pd=\"a\" id=\"1\" />\n    </channel>\n"),
        ErrorKind::Structure,
        "<channel>",
        "'channel' needs exactly two 'end' elements, has 1",
    );
}

#[test]
fn protected_calls_both_ways_are_refused() {
    assert_one(
        &system(
            "    <channel>\n        <end pd=\"a\" id=\"1\" pp=\"true\" />\n        <end pd=\"b\" id=\"1\" pp=\"true\" />\n    </channel>\n",
        ),
        ErrorKind::Priority,
        "<channel>",
        "channel between \"a\" and \"b\" has pp on both ends: protected calls go one way only",
    );
}

#[test]
fn arm_irq_form_is_refused_on_x86_64() {
    assert_one(
        &pd_with("priority=\"1\"", "        <irq irq=\"33\" id=\"1\" />\n"),
        ErrorKind::BadValue,
        "<irq",
        "'irq' with an 'irq' number is the ARM/RISC-V form; on x86-64 give 'pin' (I/O APIC) or 'pcidev' (MSI)",
    );
}

#[test]
fn bad_pci_address_is_refused() {
    assert_one(
        &pd_with(
            "priority=\"1\"",
            "        <irq id=\"1\" pcidev=\"00:20.0\" handle=\"0\" vector=\"3\" />\n",
        ),
        ErrorKind::BadValue,
        "<irq",
        "pcidev '00:20.0' must be bus:device.function in hexadecimal (bus <= ff, device <= 1f, function <= 7)",
    );
}

#[test]
fn irq_vector_above_107_is_refused() {
    assert_one(
        &pd_with(
            "priority=\"1\"",
            "        <irq id=\"1\" pin=\"2\" vector=\"108\" />\n",
        ),
        ErrorKind::BadValue,
        "<irq",
        "'vector' on 'irq' is 108, must be within 0..=107",
    );
}

#[test]
fn cspace_slot_zero_is_reserved() {
    assert_one(
        &pd_with(
            "priority=\"1\"",
            "        <cspace>\n            <cap_tcb slot=\"0\" pd=\"a\" />\n        </cspace>\n",
        ),
        ErrorKind::BadValue,
        "cap_tcb",
        "slot 0 is reserved for the Microkit CNode",
    );
}

#[test]
fn bad_schedule_duration_is_refused() {
    assert_one(
        &system(
            "    <domains>\n        <domain name=\"d\" />\n        <domain_schedule>\n            <schedule_entry domain=\"d\" duration=\"10 ms\" />\n        </domain_schedule>\n    </domains>\n",
        ),
        ErrorKind::BadValue,
        "10 ms",
        "duration '10 ms' must be a non-zero number and a unit, 'us' or 'ticks' (e.g. '1000 us')",
    );
}

#[test]
fn stray_text_is_refused() {
    assert_one(
        &system(
            "    <channel>oops\n        <end pd=\"a\" id=\"1\" />\n        <end pd=\"b\" id=\"2\" />\n    </channel>\n",
        ),
        ErrorKind::Structure,
        "oops",
        "unexpected text inside 'channel'",
    );
}

#[test]
fn several_syntax_errors_are_all_reported() {
    let xml = system(
        "    <memory_region name=\"r\" size=\"zz\" />\n    <bogus />\n    <memory_region size=\"0x1000\" />\n",
    );
    let d = diags(&xml);
    let got: Vec<(u32, ErrorKind)> = d.iter().map(|d| (d.line, d.kind)).collect();
    assert_eq!(
        got,
        vec![
            (line_of(&xml, "zz"), ErrorKind::BadValue),
            (line_of(&xml, "bogus"), ErrorKind::UnknownElement),
            (
                line_of(&xml, "<memory_region size"),
                ErrorKind::MissingAttribute
            ),
        ]
    );
}

/// Every element that takes no children, with a description that nests `<extra />` inside it
/// (the rest of the description is valid) and the needle of that element's line.
fn leaves_with_a_child() -> Vec<(&'static str, String)> {
    let driver = |inner: &str| {
        system(&format!(
            "    <protection_domain name=\"a\" priority=\"1\">\n        <program_image path=\"a.elf\" />\n{inner}    </protection_domain>\n"
        ))
    };
    let schedule = |entry: &str| {
        system(&format!(
            "    <protection_domain name=\"a\" priority=\"1\" domain=\"red\">\n        <program_image path=\"a.elf\" />\n    </protection_domain>\n    <domains>\n        <domain name=\"red\" />\n        <domain_schedule>\n{entry}        </domain_schedule>\n    </domains>\n"
        ))
    };
    vec![
        (
            "program_image",
            system(
                "    <protection_domain name=\"a\" priority=\"1\">\n        <program_image path=\"a.elf\">\n            <extra />\n        </program_image>\n    </protection_domain>\n",
            ),
        ),
        (
            "setvar",
            system(
                "    <memory_region name=\"r\" size=\"0x1000\" />\n    <protection_domain name=\"a\" priority=\"1\">\n        <program_image path=\"a.elf\" />\n        <setvar symbol=\"s\" region_paddr=\"r\">\n            <extra />\n        </setvar>\n    </protection_domain>\n",
            ),
        ),
        (
            "vcpu",
            driver(
                "        <virtual_machine name=\"vm\" priority=\"1\">\n            <vcpu id=\"0\">\n                <extra />\n            </vcpu>\n        </virtual_machine>\n",
            ),
        ),
        (
            "cap_tcb",
            driver(
                "        <cspace>\n            <cap_tcb slot=\"1\" pd=\"a\">\n                <extra />\n            </cap_tcb>\n        </cspace>\n",
            ),
        ),
        (
            "cap_sc",
            driver(
                "        <cspace>\n            <cap_sc slot=\"1\" pd=\"a\">\n                <extra />\n            </cap_sc>\n        </cspace>\n",
            ),
        ),
        (
            "cap_vspace",
            driver(
                "        <cspace>\n            <cap_vspace slot=\"1\" pd=\"a\">\n                <extra />\n            </cap_vspace>\n        </cspace>\n",
            ),
        ),
        (
            "end",
            system(
                "    <protection_domain name=\"a\" priority=\"1\"><program_image path=\"a.elf\" /></protection_domain>\n    <protection_domain name=\"b\" priority=\"1\"><program_image path=\"b.elf\" /></protection_domain>\n    <channel>\n        <end pd=\"a\" id=\"0\">\n            <extra />\n        </end>\n        <end pd=\"b\" id=\"0\" />\n    </channel>\n",
            ),
        ),
        (
            "domain",
            system(
                "    <protection_domain name=\"a\" priority=\"1\" domain=\"red\">\n        <program_image path=\"a.elf\" />\n    </protection_domain>\n    <domains>\n        <domain name=\"red\">\n            <extra />\n        </domain>\n        <domain_schedule>\n            <schedule_entry domain=\"red\" duration=\"5 ticks\" />\n        </domain_schedule>\n    </domains>\n",
            ),
        ),
        (
            "schedule_entry",
            schedule(
                "            <schedule_entry domain=\"red\" duration=\"5 ticks\">\n                <extra />\n            </schedule_entry>\n",
            ),
        ),
        (
            "schedule_end_marker",
            schedule(
                "            <schedule_entry domain=\"red\" duration=\"5 ticks\" />\n            <schedule_end_marker>\n                <extra />\n            </schedule_end_marker>\n",
            ),
        ),
    ]
}

#[test]
fn the_leaf_descriptions_are_valid_without_the_stray_child() {
    for (leaf, xml) in leaves_with_a_child() {
        let clean = xml
            .replace("\n                <extra />", "")
            .replace("\n            <extra />", "");
        if let Err(d) = sysdesc::parse_and_validate("t.xml", &clean) {
            panic!(
                "{leaf}: {:#?}",
                d.iter().map(|d| d.to_string()).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn an_unknown_element_inside_any_leaf_element_is_refused() {
    for (leaf, xml) in leaves_with_a_child() {
        let d = diags(&xml);
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(d.len(), 1, "{leaf}: {text:#?}");
        assert_eq!(d[0].kind, ErrorKind::UnknownElement, "{leaf}: {}", text[0]);
        assert_eq!(
            text[0],
            format!(
                "t.xml:{}: unknown element 'extra' in '{leaf}' (allowed: none)",
                line_of(&xml, "<extra")
            ),
            "{leaf}"
        );
    }
}

#[test]
fn a_namespaced_element_is_not_taken_for_a_known_one() {
    // `<x:vcpu>` is not `<vcpu>`: Microkit's format has no namespaces, so it is an unknown
    // element wherever it appears (here in virtual_machine, cspace, channel, domains).
    let cases = [
        (
            "virtual_machine",
            "vcpu",
            "        <virtual_machine name=\"vm\" priority=\"1\">\n            <vcpu id=\"0\" />\n            <x:vcpu xmlns:x=\"urn:x\" id=\"1\" />\n        </virtual_machine>\n",
        ),
        (
            "cspace",
            "cap_tcb",
            "        <cspace>\n            <x:cap_tcb xmlns:x=\"urn:x\" slot=\"1\" pd=\"a\" />\n        </cspace>\n",
        ),
    ];
    for (parent, tag, inner) in cases {
        let xml = pd_with("priority=\"1\"", inner);
        let d = diags(&xml);
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        assert_eq!(d.len(), 1, "{parent}: {text:#?}");
        assert_eq!(d[0].kind, ErrorKind::UnknownElement, "{}", text[0]);
        assert_eq!(d[0].line, line_of(&xml, "<x:"), "{}", text[0]);
        assert!(
            text[0].contains(&format!("unknown element 'x:{tag}' in '{parent}'")),
            "{}",
            text[0]
        );
    }
    let xml = system(
        "    <protection_domain name=\"a\" priority=\"1\" domain=\"red\">\n        <program_image path=\"a.elf\" />\n    </protection_domain>\n    <domains>\n        <domain name=\"red\" />\n        <x:domain xmlns:x=\"urn:x\" name=\"blue\" />\n        <domain_schedule>\n            <schedule_entry domain=\"red\" duration=\"5 ticks\" />\n        </domain_schedule>\n    </domains>\n",
    );
    let d = diags(&xml);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].kind, ErrorKind::UnknownElement);
    assert_eq!(d[0].line, line_of(&xml, "<x:domain"));
}

#[test]
fn a_huge_attribute_value_is_cut_in_messages() {
    let huge = "9".repeat(1_000_000) + "z";
    let xml = system(&format!(
        "    <memory_region name=\"r\" size=\"{huge}\" />\n"
    ));
    let d = diags(&xml);
    assert_eq!(d.len(), 1, "{} diagnostics", d.len());
    let text = d[0].to_string();
    assert!(
        text.len() < 300,
        "message of {} bytes: {}",
        text.len(),
        &text[..300]
    );
    assert_eq!(
        text,
        format!(
            "t.xml:2: 'size' on 'memory_region' is '{}…(1000001 bytes)', not a number (decimal or 0x hexadecimal)",
            "9".repeat(64)
        )
    );
}

#[test]
fn huge_names_and_tags_are_cut_in_messages() {
    // An unknown element and an unknown attribute with huge names, and a huge unknown PD name
    // (reported by validation): each message stays short.
    let tag = "t".repeat(100_000);
    let attr = "a".repeat(100_000);
    let xml = system(&format!(
        "    <{tag} />\n    <memory_region name=\"r\" size=\"0x1000\" {attr}=\"1\" />\n"
    ));
    let d = diags(&xml);
    assert_eq!(d.len(), 2, "{} diagnostics", d.len());
    for x in &d {
        assert!(
            x.message.len() < 300,
            "message of {} bytes",
            x.message.len()
        );
        assert!(
            x.message.contains("…(100000 bytes)"),
            "{}",
            &x.message[..200]
        );
    }
    let name = "p".repeat(100_000);
    let xml = system(&format!(
        "    <protection_domain name=\"a\" priority=\"1\"><program_image path=\"a.elf\" /></protection_domain>\n    <channel>\n        <end pd=\"a\" id=\"0\" />\n        <end pd=\"{name}\" id=\"0\" />\n    </channel>\n"
    ));
    let d = diags(&xml);
    assert_eq!(d.len(), 1, "{} diagnostics", d.len());
    assert_eq!(
        d[0].to_string(),
        format!(
            "t.xml:5: channel end names unknown PD \"{}…(100000 bytes)\"",
            "p".repeat(64)
        )
    );
}

#[test]
fn a_value_with_a_line_break_stays_on_the_diagnostic_line() {
    let xml = system("    <memory_region name=\"r\" size=\"0x1000\" page_size=\"1&#10;2\" />\n");
    let d = diags(&xml);
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(!d[0].message.contains('\n'), "{}", d[0].message);
    assert!(d[0].message.contains("'1\\n2'"), "{}", d[0].message);
}

#[test]
fn an_element_with_thousands_of_attributes_is_refused_in_one_diagnostic() {
    // The XML parser compares every attribute of an element with the earlier ones: with 200,000
    // attributes that alone took minutes. Such an element is refused before the XML parser runs.
    let attrs: String = (0..5_000).map(|i| format!(" a{i}=\"1\"")).collect();
    let xml = system(&format!(
        "    <memory_region name=\"r\" size=\"0x1000\"\n{attrs} />\n"
    ));
    assert_one(
        &xml,
        ErrorKind::UnknownAttribute,
        "<memory_region",
        "element 'memory_region' has more than 32 attributes (no element of the format has more than 12)",
    );
}

#[test]
fn many_namespace_declarations_are_refused() {
    // Namespaces in scope are copied and searched at elements: thousands of nested
    // declarations made parsing quadratic. The format has no namespaces; a few are tolerated.
    let open: String = (0..17)
        .map(|i| format!("<x{i}:e xmlns:x{i}=\"urn:{i}\">\n"))
        .collect();
    let close: String = (0..17).rev().map(|i| format!("</x{i}:e>\n")).collect();
    let xml = system(&format!("{open}{close}"));
    assert_one(
        &xml,
        ErrorKind::UnknownAttribute,
        "xmlns:x16",
        "more than 16 namespace declarations (the format uses no namespaces)",
    );
}

#[test]
fn deeply_nested_pds_are_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    let mut xml = String::from("<system>\n");
    for i in 0..depth {
        let id = if i == 0 { "" } else { " id=\"1\"" };
        xml.push_str(&format!(
            "<protection_domain name=\"p{i}\"{id} priority=\"1\"><program_image path=\"a.elf\" />\n"
        ));
    }
    for _ in 0..depth {
        xml.push_str("</protection_domain>\n");
    }
    xml.push_str("</system>\n");
    assert_one(
        &xml,
        ErrorKind::Structure,
        "name=\"p63\"",
        "more than 63 protection domains nested in one another (Microkit supports at most 63 in all)",
    );
}

#[test]
fn a_huge_name_in_malformed_xml_is_cut() {
    // The XML parser's own message quotes the names involved.
    let name = "n".repeat(100_000);
    let xml = format!("<system>\n<{name}>\n</system>\n");
    let d = diags(&xml);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].kind, ErrorKind::Xml);
    assert!(
        d[0].message.starts_with("not well-formed XML: ") && d[0].message.len() < 400,
        "message of {} bytes",
        d[0].message.len()
    );
    assert!(d[0].message.ends_with(" bytes)"), "{}", d[0].message);
}
