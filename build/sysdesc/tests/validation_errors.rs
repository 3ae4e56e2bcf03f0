//! Each validation rule, on a small description that breaks only that rule: the exact
//! `file:line: message` and the error kind.

mod common;

use common::{CLIENT_OK, assert_one, diags, line_of, vmbus_system};
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
fn window_overlapping_a_map_is_refused() {
    let client =
        r#"driver_channel="1" window_vaddr="0x30001000" window_size="0x10000" max_channels="2""#;
    let xml = vmbus_system("", client, "", "");
    let map = line_of(&xml, "<map mr=\"shared\"");
    assert_one(
        &xml,
        ErrorKind::Overlap,
        "<vmbus_client",
        &format!(
            "VMBus window in PD \"client\" at 0x30001000..0x30011000 overlaps map of \"shared\" at 0x30000000..0x30002000 (line {map})"
        ),
    );
}

#[test]
fn map_overlapping_a_window_is_refused_whichever_comes_first() {
    let xml = vmbus_system(
        "",
        CLIENT_OK,
        "        <map mr=\"shared\" vaddr=\"0x4000f000\" />\n",
        "",
    );
    let window = line_of(&xml, "<vmbus_client");
    assert_one(
        &xml,
        ErrorKind::Overlap,
        "0x4000f000",
        &format!(
            "map of \"shared\" in PD \"client\" at 0x4000f000..0x40011000 overlaps VMBus window at 0x40000000..0x40010000 (line {window})"
        ),
    );
}

#[test]
fn window_not_page_aligned_is_refused() {
    let client =
        r#"driver_channel="1" window_vaddr="0x40000800" window_size="0x10000" max_channels="2""#;
    assert_one(
        &vmbus_system("", client, "", ""),
        ErrorKind::Alignment,
        "<vmbus_client",
        "VMBus window of \"client\": vaddr 0x40000800 and size 0x10000 must both be multiples of 0x1000",
    );
}

#[test]
fn window_too_small_for_its_channels_is_refused() {
    let client =
        r#"driver_channel="1" window_vaddr="0x40000000" window_size="0x7000" max_channels="2""#;
    assert_one(
        &vmbus_system("", client, "", ""),
        ErrorKind::Vmbus,
        "<vmbus_client",
        "VMBus window of \"client\" (0x7000 bytes) cannot hold 2 channels: each needs at least 4 pages, 0x8000 bytes in all",
    );
}

#[test]
fn client_without_driver_is_refused() {
    let xml = system(&pd(
        "c",
        1,
        &format!(
            "        <vmbus_client {CLIENT_OK}>\n            <vmbus_device class=\"57164f39-9115-4e78-ab55-382f3bd5422d\" />\n        </vmbus_client>\n"
        ),
    ));
    let d = diags(&xml);
    let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        vec![format!(
            "t.xml:{}: VMBus client \"c\" has no driver: no PD has a 'vmbus_driver' element",
            line_of(&xml, "<vmbus_client")
        )]
    );
}

#[test]
fn second_driver_is_refused() {
    let more = "    <protection_domain name=\"driver2\" priority=\"201\">\n        <program_image path=\"d2.elf\" />\n        <vmbus_driver pool_pages=\"8\" />\n    </protection_domain>\n";
    let xml = vmbus_system("", CLIENT_OK, "", more);
    let first = line_of(&xml, "name=\"driver\"");
    assert_one(
        &xml,
        ErrorKind::Vmbus,
        "pool_pages=\"8\"",
        &format!(
            "PD \"driver2\" is a second VMBus driver; \"driver\" (line {first}) already is one"
        ),
    );
}

#[test]
fn client_whose_driver_channel_does_not_exist_is_refused() {
    let client =
        r#"driver_channel="9" window_vaddr="0x40000000" window_size="0x10000" max_channels="2""#;
    assert_one(
        &vmbus_system("", client, "", ""),
        ErrorKind::Vmbus,
        "<vmbus_client",
        "VMBus client \"client\" has no channel to the driver: its driver_channel 9 is not a channel of this PD",
    );
}

#[test]
fn client_whose_driver_channel_leads_elsewhere_is_refused() {
    let more = "    <protection_domain name=\"other\" priority=\"150\">\n        <program_image path=\"o.elf\" />\n    </protection_domain>\n    <channel>\n        <end pd=\"client\" id=\"2\" />\n        <end pd=\"other\" id=\"0\" />\n    </channel>\n";
    let client =
        r#"driver_channel="2" window_vaddr="0x40000000" window_size="0x10000" max_channels="2""#;
    assert_one(
        &vmbus_system("", client, "", more),
        ErrorKind::Vmbus,
        "<vmbus_client",
        "VMBus client \"client\" has no channel to the driver: its driver_channel 2 leads to \"other\", not to driver \"driver\"",
    );
}

#[test]
fn driver_channel_without_pp_on_the_client_end_is_refused() {
    let xml = vmbus_system("", CLIENT_OK, "", "").replace(
        "<end pd=\"client\" id=\"1\" pp=\"true\" />",
        "<end pd=\"client\" id=\"1\" />",
    );
    assert_one(
        &xml,
        ErrorKind::Vmbus,
        "<end pd=\"client\"",
        "channel from VMBus client \"client\" to driver \"driver\" needs pp=\"true\" on the client end: clients make protected calls to the driver",
    );
}

#[test]
fn driver_without_vspace_cap_for_a_client_is_refused() {
    let xml = vmbus_system("", CLIENT_OK, "", "").replace(
        "<cspace><cap_vspace slot=\"5\" pd=\"client\" /></cspace>",
        "<cspace><cap_tcb slot=\"5\" pd=\"client\" /></cspace>",
    );
    assert_one(
        &xml,
        ErrorKind::Vmbus,
        "<vmbus_client",
        "VMBus driver \"driver\" has no cap_vspace for client \"client\": it could not map ring pages into the client's window",
    );
}

#[test]
fn device_class_claimed_by_two_clients_is_refused() {
    let more = r#"    <protection_domain name="client2" priority="100">
        <program_image path="c2.elf" />
        <vmbus_client driver_channel="0" window_vaddr="0x40000000" window_size="0x4000" max_channels="1">
            <vmbus_device class="57164F39-9115-4E78-AB55-382F3BD5422D" />
        </vmbus_client>
    </protection_domain>
    <channel>
        <end pd="client2" id="0" pp="true" />
        <end pd="driver" id="4" />
    </channel>
"#;
    let xml = vmbus_system(
        "        <cspace><cap_vspace slot=\"6\" pd=\"client2\" /></cspace>\n",
        CLIENT_OK,
        "",
        more,
    );
    // The second cspace element is itself an error; keep only one by merging.
    let xml = xml
        .replace(
            "        <cspace><cap_vspace slot=\"6\" pd=\"client2\" /></cspace>\n",
            "",
        )
        .replace(
            "<cap_vspace slot=\"5\" pd=\"client\" />",
            "<cap_vspace slot=\"5\" pd=\"client\" /><cap_vspace slot=\"6\" pd=\"client2\" />",
        );
    let first = line_of(&xml, "57164f39");
    assert_one(
        &xml,
        ErrorKind::Vmbus,
        "57164F39",
        &format!(
            "device class 57164f39-9115-4e78-ab55-382f3bd5422d (any instance) is served by both \"client\" (line {first}) and \"client2\": an offer could not be routed"
        ),
    );
}

#[test]
fn pool_region_of_the_wrong_size_is_refused() {
    let xml = vmbus_system("", CLIENT_OK, "", "")
        .replace(
            "<vmbus_driver pool_pages=\"64\" />",
            "<vmbus_driver pool_pages=\"64\" pool_region=\"pool\" />",
        )
        .replace(
            "<memory_region name=\"shared\" size=\"0x2000\" />",
            "<memory_region name=\"shared\" size=\"0x2000\" />\n    <memory_region name=\"pool\" size=\"0x20000\" />",
        );
    assert_one(
        &xml,
        ErrorKind::Vmbus,
        "pool_region",
        "pool region \"pool\" (0x20000 bytes in 0x1000 pages) does not match pool_pages 64 (0x40000 bytes in 0x1000 pages)",
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
    let client =
        r#"driver_channel="24" window_vaddr="0x40000000" window_size="0x10000" max_channels="2""#;
    assert_one(
        &vmbus_system("", client, "", ""),
        ErrorKind::BadValue,
        "<vmbus_client",
        "'driver_channel' on 'vmbus_client' is 24, must be within 0..=23",
    );
}

#[test]
fn the_largest_channel_id_the_root_task_takes_is_accepted() {
    let xml = vmbus_system("", CLIENT_OK, "", "").replace(
        "<end pd=\"driver\" id=\"3\" />",
        "<end pd=\"driver\" id=\"23\" />",
    );
    sysdesc::parse_and_validate("t.xml", &xml).unwrap();
}

fn window(vaddr: &str, size: &str) -> String {
    let client = format!(
        r#"driver_channel="1" window_vaddr="{vaddr}" window_size="{size}" max_channels="2""#
    );
    vmbus_system("", &client, "", "")
}

const RANGE: &str = "windows lie in the run-time mapping range 0x20000000..0x100000000";

#[test]
fn a_window_at_address_0_is_refused() {
    assert_one(
        &window("0x0", "0x10000"),
        ErrorKind::Vmbus,
        "<vmbus_client",
        &format!("VMBus window of \"client\" at 0x0..0x10000 starts at address 0; {RANGE}"),
    );
}

#[test]
fn a_window_over_the_ipc_buffer_is_refused() {
    assert_one(
        &window("0xfff8000", "0x10000"),
        ErrorKind::Vmbus,
        "<vmbus_client",
        &format!(
            "VMBus window of \"client\" at 0xfff8000..0x10008000 overlaps the IPC buffer at 0x10000000..0x10001000; {RANGE}"
        ),
    );
}

#[test]
fn a_window_over_the_program_is_refused() {
    // Programs are linked at 0x400000 (components/pds/link.ld); the PD info page and stacks lie
    // below the run-time range as well.
    assert_one(
        &window("0x400000", "0x10000"),
        ErrorKind::Vmbus,
        "<vmbus_client",
        &format!(
            "VMBus window of \"client\" at 0x400000..0x410000 lies below the run-time mapping range (program, stack, IPC buffer and PD info page are there); {RANGE}"
        ),
    );
}

#[test]
fn a_window_above_4_gib_is_refused() {
    let msg = "seL4 5.0.0 reports VM-fault addresses in 32 bits";
    assert_one(
        &window("0xffff0000", "0x20000"),
        ErrorKind::Vmbus,
        "<vmbus_client",
        &format!(
            "VMBus window of \"client\" at 0xffff0000..0x100010000 reaches above 4 GiB ({msg}); {RANGE}"
        ),
    );
    assert_one(
        &window("0x100000000", "0x10000"),
        ErrorKind::Vmbus,
        "<vmbus_client",
        &format!(
            "VMBus window of \"client\" at 0x100000000..0x100010000 reaches above 4 GiB ({msg}); {RANGE}"
        ),
    );
}

#[test]
fn a_window_ending_at_4_gib_is_accepted() {
    sysdesc::parse_and_validate("t.xml", &window("0xffff0000", "0x10000")).unwrap();
}

#[test]
fn a_window_larger_than_the_whole_pool_is_refused() {
    // The driver's pool has 64 pages (0x40000 bytes).
    assert_one(
        &window("0x40000000", "0x41000"),
        ErrorKind::Vmbus,
        "<vmbus_client",
        "VMBus window of \"client\" (0x41000 bytes) is larger than the whole ring-page pool of driver \"driver\" (64 pages, 0x40000 bytes)",
    );
    sysdesc::parse_and_validate("t.xml", &window("0x40000000", "0x40000")).unwrap();
}
