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
        "unknown element 'mapping' in 'protection_domain' (allowed: program_image, map, irq, ioport, setvar, protection_domain, virtual_machine, cspace, vmbus_driver, vmbus_client)",
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
fn malformed_guid_is_refused() {
    assert_one(
        &pd_with(
            "priority=\"1\"",
            "        <vmbus_client driver_channel=\"0\" window_vaddr=\"0x40000000\" window_size=\"0x4000\" max_channels=\"1\">\n            <vmbus_device class=\"57164f39-9115-4e78-ab55-382f3bd5422\" />\n        </vmbus_client>\n",
        ),
        ErrorKind::BadValue,
        "vmbus_device",
        "class GUID '57164f39-9115-4e78-ab55-382f3bd5422' is 35 characters long, expected 36 (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
    );
}

#[test]
fn client_without_device_classes_is_refused() {
    assert_one(
        &pd_with(
            "priority=\"1\"",
            "        <vmbus_client driver_channel=\"0\" window_vaddr=\"0x40000000\" window_size=\"0x4000\" max_channels=\"1\" />\n",
        ),
        ErrorKind::Structure,
        "vmbus_client",
        "'vmbus_client' needs at least one 'vmbus_device' (the device classes it serves)",
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
