//! The VMBus companion file: its syntax, its references into the Microkit description, and each
//! rule of the wiring, on a small pair that breaks only that rule. Every problem names the file
//! it is in (`t.xml` or `t.vmbus.xml`) and its line there.

mod common;

use common::{
    CLIENT_OK, DRIVER_OK, VM, assert_one_pair, check_pair, line_of, pair_diags, vmbus_companion,
    vmbus_system,
};
use sysdesc::ErrorKind;

/// The valid pair with the client attributes `client`.
fn with_client(client: &str) -> (String, String) {
    (
        vmbus_system("", "", ""),
        vmbus_companion(DRIVER_OK, client, ""),
    )
}

fn ok() -> (String, String) {
    with_client(CLIENT_OK)
}

#[test]
fn a_valid_pair_wires_the_pds_it_names() {
    let (xml, vm) = ok();
    let s = check_pair(&xml, &vm).unwrap();
    assert_eq!(s.vmbus_file.as_deref(), Some(VM));
    assert_eq!(s.vmbus_driver().map(|p| p.name.as_str()), Some("driver"));
    let clients: Vec<&str> = s.vmbus_clients().map(|(p, _)| p.name.as_str()).collect();
    assert_eq!(clients, ["client"]);
    // The description alone is a valid system without VMBus wiring.
    let plain = sysdesc::parse_and_validate("t.xml", &xml).unwrap();
    assert!(plain.vmbus_driver().is_none() && plain.vmbus_file.is_none());
}

#[test]
fn vmbus_elements_in_the_microkit_file_are_unknown_elements() {
    let xml = vmbus_system("        <vmbus_driver pool_pages=\"64\" />\n", "", "");
    let d = match sysdesc::parse_and_validate("t.xml", &xml) {
        Ok(_) => panic!("accepted"),
        Err(d) => d,
    };
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].kind, ErrorKind::UnknownElement);
    assert_eq!(
        d[0].to_string(),
        format!(
            "t.xml:{}: unknown element 'vmbus_driver' in 'protection_domain' (allowed: program_image, map, irq, ioport, setvar, protection_domain, virtual_machine, cspace); VMBus wiring belongs in the companion file t.vmbus.xml",
            line_of(&xml, "<vmbus_driver")
        )
    );
}

#[test]
fn companion_syntax_errors_name_the_companion() {
    let xml = vmbus_system("", "", "");
    let vm = vmbus_companion(DRIVER_OK, CLIENT_OK, "").replace(
        "57164f39-9115-4e78-ab55-382f3bd5422d",
        "57164f39-9115-4e78-ab55-382f3bd5422",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::BadValue,
        "<device",
        "class GUID '57164f39-9115-4e78-ab55-382f3bd5422' is 35 characters long, expected 36 (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
    );
    let vm = vmbus_companion(DRIVER_OK, CLIENT_OK, "    <bus />\n");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::UnknownElement,
        "<bus",
        "unknown element 'bus' in 'vmbus' (allowed: driver, host, hyperv, client)",
    );
    let vm = vmbus_companion(&format!("{DRIVER_OK} colour=\"red\""), CLIENT_OK, "");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::UnknownAttribute,
        "colour",
        "unknown attribute 'colour' on 'driver' (allowed: pd, pool_pages, pool_region, pool_vaddr, synic_message, synic_event_flags)",
    );
    let vm = vmbus_companion(DRIVER_OK, CLIENT_OK, "").replace(
        "<device class=\"57164f39-9115-4e78-ab55-382f3bd5422d\" />",
        "<device class=\"57164f39-9115-4e78-ab55-382f3bd5422d\"><extra /></device>",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::UnknownElement,
        "<extra",
        "unknown element 'extra' in 'device' (allowed: none)",
    );
}

#[test]
fn a_client_without_devices_or_control_is_refused() {
    let (xml, _) = ok();
    let vm = vmbus_companion(DRIVER_OK, CLIENT_OK, "").replace(
        "        <device class=\"57164f39-9115-4e78-ab55-382f3bd5422d\" />\n",
        "",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Structure,
        "<client",
        "'client' needs at least one 'device' (the device classes it serves)",
    );
    let vm = vmbus_companion(
        DRIVER_OK,
        &CLIENT_OK.replace(" control=\"control\"", ""),
        "",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::MissingAttribute,
        "<client",
        "'client' needs the attribute 'control'",
    );
}

#[test]
fn the_root_must_be_vmbus_and_name_this_description() {
    let (xml, vm) = ok();
    let other = vm.replace("system=\"t.xml\"", "system=\"other.xml\"");
    assert_one_pair(
        &xml,
        &other,
        true,
        ErrorKind::UnknownName,
        "<vmbus",
        "this companion wires \"other.xml\", but it is read with \"t.xml\"",
    );
    let d = pair_diags(&xml, &xml);
    assert_eq!(
        d[0].to_string(),
        "t.vmbus.xml:1: root element is 'system', expected 'vmbus' (a VMBus companion file)"
    );
}

#[test]
fn a_pd_the_description_lacks_is_refused() {
    let (xml, _) = ok();
    let vm = vmbus_companion(DRIVER_OK, CLIENT_OK, "").replace("pd=\"client\"", "pd=\"clinet\"");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::UnknownName,
        "<client",
        "'client' names PD \"clinet\", which t.xml does not describe",
    );
}

#[test]
fn a_second_driver_or_a_second_role_is_refused() {
    let xml = vmbus_system(
        "",
        "",
        "    <protection_domain name=\"driver2\" priority=\"201\">\n        <program_image path=\"d2.elf\" />\n    </protection_domain>\n",
    );
    let vm = vmbus_companion(
        DRIVER_OK,
        CLIENT_OK,
        "    <driver pd=\"driver2\" pool_pages=\"8\" pool_vaddr=\"0x20000000\" />\n",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "driver2",
        "a second 'driver' (\"driver2\"): the system has one, \"driver\" at line 2",
    );
    let (xml, _) = ok();
    let vm = vmbus_companion(
        DRIVER_OK,
        CLIENT_OK,
        "    <client pd=\"driver\" driver_channel=\"3\" window_vaddr=\"0x40000000\" window_size=\"0x4000\" max_channels=\"1\" control=\"control\">\n        <device class=\"0e0b6031-5213-4934-818b-38d90ced39db\" />\n    </client>\n",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client pd=\"driver\"",
        "PD \"driver\" is already the driver at line 2: a PD has one VMBus role",
    );
}

#[test]
fn window_overlapping_a_map_is_refused_naming_the_map_in_the_description() {
    let (xml, vm) = with_client(
        &CLIENT_OK.replace("window_vaddr=\"0x40000000\"", "window_vaddr=\"0x30001000\""),
    );
    let map = line_of(&xml, "<map mr=\"shared\"");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Overlap,
        "<client",
        &format!(
            "VMBus window of \"client\" at 0x30001000..0x30011000 overlaps its map of \"shared\" at 0x30000000 (line {map} of t.xml)"
        ),
    );
}

#[test]
fn window_not_page_aligned_or_too_small_is_refused() {
    let (xml, vm) = with_client(
        &CLIENT_OK.replace("window_vaddr=\"0x40000000\"", "window_vaddr=\"0x40000800\""),
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Alignment,
        "<client",
        "VMBus window of \"client\": vaddr 0x40000800 and size 0x10000 must both be multiples of 0x1000",
    );
    let (xml, vm) =
        with_client(&CLIENT_OK.replace("window_size=\"0x10000\"", "window_size=\"0x7000\""));
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "VMBus window of \"client\" (0x7000 bytes) cannot hold 2 channels: each needs at least 4 pages, 0x8000 bytes in all",
    );
}

fn window(vaddr: &str, size: &str) -> (String, String) {
    with_client(&format!(
        r#"driver_channel="1" window_vaddr="{vaddr}" window_size="{size}" max_channels="2" control="control""#
    ))
}

const RANGE: &str = "windows lie in the run-time mapping range 0x20000000..0x100000000";

#[test]
fn a_window_outside_the_run_time_range_is_refused() {
    let cases = [
        (
            ("0x0", "0x10000"),
            "at 0x0..0x10000 starts at address 0".to_string(),
        ),
        (
            ("0xfff8000", "0x10000"),
            "at 0xfff8000..0x10008000 overlaps the IPC buffer at 0x10000000..0x10001000".to_string(),
        ),
        (
            // Programs are linked at 0x400000 (components/pds/link.ld).
            ("0x400000", "0x10000"),
            "at 0x400000..0x410000 lies below the run-time mapping range (program, stack, IPC buffer and PD info page are there)".to_string(),
        ),
        (
            ("0xffff0000", "0x20000"),
            "at 0xffff0000..0x100010000 reaches above 4 GiB (seL4 5.0.0 reports VM-fault addresses in 32 bits)".to_string(),
        ),
    ];
    for ((vaddr, size), what) in cases {
        let (xml, vm) = window(vaddr, size);
        assert_one_pair(
            &xml,
            &vm,
            true,
            ErrorKind::Vmbus,
            "<client",
            &format!("VMBus window of \"client\" {what}; {RANGE}"),
        );
    }
    let (xml, vm) = window("0xffff0000", "0x10000");
    check_pair(&xml, &vm).unwrap();
}

#[test]
fn a_window_larger_than_the_whole_pool_is_refused() {
    // The driver's pool has 64 pages (0x40000 bytes).
    let (xml, vm) = window("0x40000000", "0x41000");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "VMBus window of \"client\" (0x41000 bytes) is larger than the whole ring-page pool of driver \"driver\" (64 pages, 0x40000 bytes)",
    );
    let (xml, vm) = window("0x40000000", "0x40000");
    check_pair(&xml, &vm).unwrap();
}

#[test]
fn client_without_driver_is_refused() {
    let (xml, _) = ok();
    let vm = vmbus_companion(DRIVER_OK, CLIENT_OK, "")
        .replace(&format!("    <driver pd=\"driver\" {DRIVER_OK} />\n"), "");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "VMBus client \"client\" has no driver: the companion has no 'driver'",
    );
}

#[test]
fn client_whose_driver_channel_is_wrong_is_refused() {
    let (xml, vm) = with_client(&CLIENT_OK.replace("driver_channel=\"1\"", "driver_channel=\"9\""));
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "VMBus client \"client\" has no channel to the driver: its driver_channel 9 is not a channel of this PD",
    );
    let more = "    <protection_domain name=\"other\" priority=\"150\">\n        <program_image path=\"o.elf\" />\n    </protection_domain>\n    <channel>\n        <end pd=\"client\" id=\"2\" />\n        <end pd=\"other\" id=\"0\" />\n    </channel>\n";
    let xml = vmbus_system("", "", more);
    let vm = vmbus_companion(
        DRIVER_OK,
        &CLIENT_OK.replace("driver_channel=\"1\"", "driver_channel=\"2\""),
        "",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "VMBus client \"client\" has no channel to the driver: its driver_channel 2 leads to \"other\", not to driver \"driver\"",
    );
    // The image's channel ids stop at 23, in the companion as in the description.
    let (xml, vm) =
        with_client(&CLIENT_OK.replace("driver_channel=\"1\"", "driver_channel=\"24\""));
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::BadValue,
        "<client",
        "'driver_channel' on 'client' is 24, must be within 0..=23",
    );
}

#[test]
fn driver_channel_without_pp_on_the_client_end_is_refused_in_the_description() {
    let (xml, vm) = ok();
    let xml = xml.replace(
        "<end pd=\"client\" id=\"1\" pp=\"true\" />",
        "<end pd=\"client\" id=\"1\" />",
    );
    assert_one_pair(
        &xml,
        &vm,
        false,
        ErrorKind::Vmbus,
        "<end pd=\"client\"",
        "channel from VMBus client \"client\" to driver \"driver\" needs pp=\"true\" on the client end: clients make protected calls to the driver",
    );
}

#[test]
fn the_largest_channel_id_the_root_task_takes_is_accepted() {
    let (xml, vm) = ok();
    let xml = xml.replace(
        "<end pd=\"driver\" id=\"3\" />",
        "<end pd=\"driver\" id=\"23\" />",
    );
    check_pair(&xml, &vm).unwrap();
}

#[test]
fn driver_without_vspace_cap_for_a_client_is_refused() {
    let (xml, vm) = ok();
    let xml = xml.replace(
        "<cspace><cap_vspace slot=\"5\" pd=\"client\" /></cspace>",
        "<cspace><cap_tcb slot=\"5\" pd=\"client\" /></cspace>",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "VMBus driver \"driver\" has no cap_vspace for client \"client\": it could not map ring pages into the client's window",
    );
}

/// The valid pair plus a second client `client2` (channel 4 of the driver, control `control2`)
/// whose device element is `device`.
fn two_clients(device: &str) -> (String, String) {
    let xml = vmbus_system(
        "        <map mr=\"control2\" vaddr=\"0x31001000\" />\n",
        "",
        "    <memory_region name=\"control2\" size=\"0x1000\" />\n    <protection_domain name=\"client2\" priority=\"100\">\n        <program_image path=\"c2.elf\" />\n        <map mr=\"control2\" vaddr=\"0x30000000\" />\n    </protection_domain>\n    <channel>\n        <end pd=\"client2\" id=\"0\" pp=\"true\" />\n        <end pd=\"driver\" id=\"4\" />\n    </channel>\n",
    )
    .replace(
        "<cap_vspace slot=\"5\" pd=\"client\" />",
        "<cap_vspace slot=\"5\" pd=\"client\" /><cap_vspace slot=\"6\" pd=\"client2\" />",
    );
    let vm = vmbus_companion(
        DRIVER_OK,
        CLIENT_OK,
        &format!(
            "    <client pd=\"client2\" driver_channel=\"0\" window_vaddr=\"0x40000000\" window_size=\"0x4000\" max_channels=\"1\" control=\"control2\">\n        {device}\n    </client>\n"
        ),
    );
    (xml, vm)
}

#[test]
fn two_clients_with_their_own_classes_are_numbered_in_companion_order() {
    let (xml, vm) = two_clients("<device class=\"0e0b6031-5213-4934-818b-38d90ced39db\" />");
    let s = check_pair(&xml, &vm).unwrap();
    let clients: Vec<&str> = s.vmbus_clients().map(|(p, _)| p.name.as_str()).collect();
    assert_eq!(clients, ["client", "client2"]);
}

#[test]
fn device_class_claimed_by_two_clients_is_refused() {
    let (xml, vm) = two_clients("<device class=\"57164F39-9115-4E78-AB55-382F3BD5422D\" />");
    let first = line_of(&vm, "57164f39");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "57164F39",
        &format!(
            "device class 57164f39-9115-4e78-ab55-382f3bd5422d (any instance) is served by both \"client\" (line {first}) and \"client2\": an offer could not be routed"
        ),
    );
}

#[test]
fn one_instance_filter_per_client() {
    let (xml, _) = ok();
    let vm = vmbus_companion(DRIVER_OK, CLIENT_OK, "").replace(
        "        <device class=\"57164f39-9115-4e78-ab55-382f3bd5422d\" />\n",
        "        <device class=\"57164f39-9115-4e78-ab55-382f3bd5422d\" />\n        <device class=\"0e0b6031-5213-4934-818b-38d90ced39db\" instance=\"00000000-0000-0000-0000-0000000000aa\" />\n",
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "instance=",
        &format!(
            "client \"client\": this device's instance filter differs from the one at line {}; the driver takes one filter per client",
            line_of(&vm, "57164f39")
        ),
    );
}

#[test]
fn the_control_page_is_a_one_page_region_of_the_client_and_the_driver_only() {
    let (xml, vm) = with_client(&CLIENT_OK.replace("control=\"control\"", "control=\"controll\""));
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::UnknownName,
        "<client",
        "control page of client \"client\" names unknown memory region \"controll\"",
    );
    let (xml, vm) = ok();
    let unmapped = xml.replace("        <map mr=\"control\" vaddr=\"0x31000000\" />\n", "");
    assert_one_pair(
        &unmapped,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "control page of client \"client\": PD \"driver\" must map region \"control\" read-write in t.xml",
    );
    let read_only = xml.replace(
        "<map mr=\"control\" vaddr=\"0x30100000\" />",
        "<map mr=\"control\" vaddr=\"0x30100000\" perms=\"r\" />",
    );
    assert_one_pair(
        &read_only,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "control page of client \"client\": PD \"client\" must map region \"control\" read-write in t.xml",
    );
    let big = xml.replace(
        "<memory_region name=\"control\" size=\"0x1000\" />",
        "<memory_region name=\"control\" size=\"0x2000\" />",
    );
    assert_one_pair(
        &big,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<client",
        "control page of client \"client\" region \"control\" is 0x2000 bytes; it must be one page (0x1000) (line 3 of t.xml)",
    );
    let third = vmbus_system(
        "",
        "",
        "    <protection_domain name=\"spy\" priority=\"10\">\n        <program_image path=\"s.elf\" />\n        <map mr=\"control\" vaddr=\"0x30000000\" />\n    </protection_domain>\n",
    );
    assert_one_pair(
        &third,
        &vm,
        false,
        ErrorKind::Vmbus,
        "<map mr=\"control\" vaddr=\"0x30000000\"",
        "PD \"spy\" maps \"control\", the control page of VMBus client \"client\": only the client and the driver may",
    );
    let (xml, vm) = two_clients("<device class=\"0e0b6031-5213-4934-818b-38d90ced39db\" />");
    let vm = vm.replace("control=\"control2\"", "control=\"control\"");
    let d = pair_diags(&xml, &vm);
    assert!(
        d.iter().any(|d| d.to_string()
            == format!(
                "t.vmbus.xml:{}: control region \"control\" of client \"client2\" is already the control page of \"client\" (line {})",
                line_of(&vm, "pd=\"client2\""),
                line_of(&vm, "pd=\"client\"")
            )),
        "{d:#?}"
    );
}

/// The valid pair with the pool in region `pool` of `pool_size` bytes, mapped by the driver at
/// `0x20000000` when `mapped`.
fn pool_pair(pool_size: &str, mapped: bool, driver: &str) -> (String, String) {
    let map = if mapped {
        "        <map mr=\"pool\" vaddr=\"0x20000000\" />\n"
    } else {
        ""
    };
    let xml = vmbus_system(
        map,
        "",
        &format!("    <memory_region name=\"pool\" size=\"{pool_size}\" />\n"),
    );
    (xml, vmbus_companion(driver, CLIENT_OK, ""))
}

#[test]
fn the_pool_region_must_exist_and_match_pool_pages() {
    let (xml, vm) = pool_pair("0x20000", true, r#"pool_pages="64" pool_region="pool""#);
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<driver",
        &format!(
            "pool region \"pool\" (0x20000 bytes in 0x1000 pages, line {} of t.xml) does not match pool_pages 64 (0x40000 bytes in 0x1000 pages)",
            line_of(&xml, "name=\"pool\"")
        ),
    );
    let (xml, vm) = pool_pair("0x40000", true, r#"pool_pages="64" pool_region="poool""#);
    let d = pair_diags(&xml, &vm);
    assert_eq!(
        d[0].to_string(),
        "t.vmbus.xml:2: driver \"driver\" names unknown pool region \"poool\""
    );
    let (xml, vm) = pool_pair("0x40000", true, r#"pool_pages="64" pool_region="pool""#);
    check_pair(&xml, &vm).unwrap();
}

#[test]
fn the_driver_sees_its_pool_at_one_address() {
    let (xml, vm) = pool_pair(
        "0x40000",
        true,
        r#"pool_pages="64" pool_region="pool" pool_vaddr="0x50000000""#,
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<driver",
        &format!(
            "pool_vaddr 0x50000000 of driver \"driver\": the driver already maps its pool region at 0x20000000 (line {} of t.xml); give one or the other",
            line_of(&xml, "<map mr=\"pool\"")
        ),
    );
    let (xml, vm) = pool_pair("0x40000", false, r#"pool_pages="64" pool_region="pool""#);
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::MissingAttribute,
        "<driver",
        "driver \"driver\" does not map its pool: give 'pool_vaddr', or map the pool region in the driver",
    );
    // A pool the driver does not map lies where pool_vaddr says: in range, over no map.
    let (xml, vm) = pool_pair(
        "0x40000",
        false,
        r#"pool_pages="64" pool_region="pool" pool_vaddr="0x30ff0000""#,
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Overlap,
        "<driver",
        &format!(
            "pool of driver \"driver\" at 0x30ff0000..0x31030000 overlaps its map of \"control\" at 0x31000000 (line {} of t.xml)",
            line_of(&xml, "vaddr=\"0x31000000\"")
        ),
    );
    let (xml, vm) = with_client(CLIENT_OK);
    let vm = vm.replace("pool_vaddr=\"0x20000000\"", "pool_vaddr=\"0x1000000\"");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<driver",
        "pool of driver \"driver\" at 0x1000000..0x1040000 must be page aligned and lie in the run-time mapping range 0x20000000..0x100000000",
    );
}

#[test]
fn only_the_driver_and_the_host_map_the_pool_region() {
    let (xml, vm) = pool_pair("0x40000", true, r#"pool_pages="64" pool_region="pool""#);
    let xml = xml.replace(
        "        <map mr=\"control\" vaddr=\"0x30100000\" />\n",
        "        <map mr=\"control\" vaddr=\"0x30100000\" />\n        <map mr=\"pool\" vaddr=\"0x50000000\" />\n",
    );
    assert_one_pair(
        &xml,
        &vm,
        false,
        ErrorKind::Vmbus,
        "0x50000000",
        "PD \"client\" maps \"pool\", the VMBus driver's ring-page pool: only the driver and the host may (the driver grants its pages to clients one by one)",
    );
}

/// A pair with the simulated host: SynIC, hypercall input and pool regions, a host PD `hv`
/// calling-wise above the driver, and the host's channel 0 to the driver's channel 0.
fn host_pair() -> (String, String) {
    let xml = vmbus_system(
        "        <map mr=\"simp\" vaddr=\"0x20000000\" />\n        <map mr=\"siefp\" vaddr=\"0x20001000\" />\n        <map mr=\"input\" vaddr=\"0x20002000\" />\n        <map mr=\"pool\" vaddr=\"0x40000000\" />\n",
        "",
        r#"    <memory_region name="simp" size="0x1000" />
    <memory_region name="siefp" size="0x1000" />
    <memory_region name="input" size="0x1000" />
    <memory_region name="pool" size="0x40000" />
    <protection_domain name="hv" priority="230">
        <program_image path="hv.elf" />
        <map mr="simp" vaddr="0x20000000" />
        <map mr="siefp" vaddr="0x20001000" />
        <map mr="input" vaddr="0x20002000" perms="r" />
        <map mr="pool" vaddr="0x80000000" />
    </protection_domain>
    <channel>
        <end pd="driver" id="0" pp="true" />
        <end pd="hv" id="0" />
    </channel>
"#,
    );
    let vm = vmbus_companion(
        r#"pool_pages="64" pool_region="pool" synic_message="simp" synic_event_flags="siefp""#,
        CLIENT_OK,
        "    <host pd=\"hv\" driver_channel=\"0\" hypercall_input=\"input\" />\n",
    );
    (xml, vm)
}

#[test]
fn a_host_with_its_pages_and_channel_is_accepted() {
    let (xml, vm) = host_pair();
    let s = check_pair(&xml, &vm).unwrap();
    assert_eq!(s.vmbus_host().map(|p| p.name.as_str()), Some("hv"));
}

#[test]
fn the_driver_calls_the_host_on_its_channel() {
    let (xml, vm) = host_pair();
    let no_pp = xml.replace(
        "<end pd=\"driver\" id=\"0\" pp=\"true\" />",
        "<end pd=\"driver\" id=\"0\" />",
    );
    assert_one_pair(
        &no_pp,
        &vm,
        false,
        ErrorKind::Vmbus,
        "<end pd=\"driver\" id=\"0\"",
        "channel from driver \"driver\" to host \"hv\" needs pp=\"true\" on the driver's end: the driver's hypercalls are protected calls to the host",
    );
    let wrong = vm.replace(
        "driver_channel=\"0\" hypercall",
        "driver_channel=\"5\" hypercall",
    );
    assert_one_pair(
        &xml,
        &wrong,
        true,
        ErrorKind::Vmbus,
        "<host",
        "host \"hv\" has no channel to the driver: its driver_channel 5 is not a channel of this PD",
    );
}

#[test]
fn the_host_maps_the_synic_input_and_pool_pages() {
    let (xml, vm) = host_pair();
    let no_input = xml.replace(
        "        <map mr=\"input\" vaddr=\"0x20002000\" perms=\"r\" />\n",
        "",
    );
    assert_one_pair(
        &no_input,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<host",
        "hypercall_input of host \"hv\": PD \"hv\" must map region \"input\" readable in t.xml",
    );
    let no_pool = xml.replace("        <map mr=\"pool\" vaddr=\"0x80000000\" />\n", "");
    assert_one_pair(
        &no_pool,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<host",
        "guest memory of host \"hv\": PD \"hv\" must map region \"pool\" read-write in t.xml",
    );
    let no_simp = xml.replacen("        <map mr=\"simp\" vaddr=\"0x20000000\" />\n", "", 1);
    let d = pair_diags(&no_simp, &vm);
    // Both PDs map "simp": the first map removed is the driver's.
    assert_eq!(
        d.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "t.vmbus.xml:2: synic_message of driver \"driver\": PD \"driver\" must map region \"simp\" read-write in t.xml"
        ]
    );
    let no_synic = vm.replace(r#" synic_message="simp" synic_event_flags="siefp""#, "");
    assert_one_pair(
        &xml,
        &no_synic,
        true,
        ErrorKind::Vmbus,
        "<host",
        "host \"hv\" delivers messages through the SynIC pages, but driver \"driver\" has none (give it 'synic_message' and 'synic_event_flags')",
    );
}

#[test]
fn load_finds_the_companion_beside_the_description() {
    let dir = std::env::temp_dir().join(format!("sysdesc-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (xml, vm) = ok();
    let path = dir.join("t.xml");
    std::fs::write(&path, &xml).unwrap();
    assert_eq!(
        sysdesc::companion_path(&path),
        dir.join("t.vmbus.xml"),
        "<stem>.vmbus.xml"
    );
    // No companion: a system without VMBus wiring.
    let s = sysdesc::load(&path).unwrap();
    assert!(s.vmbus_driver().is_none());
    std::fs::write(dir.join("t.vmbus.xml"), &vm).unwrap();
    let s = sysdesc::load(&path).unwrap();
    assert_eq!(s.vmbus_clients().count(), 1);
    assert_eq!(
        s.vmbus_file,
        Some(dir.join("t.vmbus.xml").display().to_string())
    );
    // A broken companion is reported under its own path.
    std::fs::write(
        dir.join("t.vmbus.xml"),
        vm.replace("pd=\"client\"", "pd=\"x\""),
    )
    .unwrap();
    let d = sysdesc::load(&path).unwrap_err();
    assert_eq!(d[0].file, dir.join("t.vmbus.xml").display().to_string());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The client table row the driver PD is built with, for a client with `attrs` added.
fn client_row(attrs: &str) -> (sysdesc::config::DriverClient, String) {
    let vm = vmbus_companion(DRIVER_OK, &format!("{CLIENT_OK}{attrs}"), "");
    let sys = check_pair(&vmbus_system("", "", ""), &vm).unwrap_or_else(|d| panic!("{d:#?}"));
    let cfg = sysdesc::config::pd_config(&sys, "driver").unwrap();
    let row = cfg.driver.as_ref().unwrap().clients[0].clone();
    (row, sysdesc::config::render(&sys, &[cfg]))
}

#[test]
fn the_power_and_low_latency_attributes_reach_the_drivers_client_table_and_default_to_false() {
    type Field = fn(&sysdesc::config::DriverClient) -> bool;
    let fields: [(&str, Field); 2] = [("power", |r| r.power), ("low_latency", |r| r.low_latency)];
    for (name, field) in fields {
        for (value, want) in [(None, false), (Some("true"), true), (Some("false"), false)] {
            let attr = value.map_or(String::new(), |v| format!(r#" {name}="{v}""#));
            let (row, src) = client_row(&attr);
            assert_eq!(field(&row), want, "{attr}");
            // The generated configuration the driver PD is built with carries it.
            assert!(src.contains(&format!("{name}: {want}")), "{attr}: {src}");
        }
    }
}

#[test]
fn power_or_low_latency_attributes_that_are_not_booleans_are_refused() {
    for name in ["power", "low_latency"] {
        let vm = vmbus_companion(DRIVER_OK, &format!(r#"{CLIENT_OK} {name}="yes""#), "");
        let d = pair_diags(&vmbus_system("", "", ""), &vm);
        let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
        let want = format!("'{name}' on 'client' is 'yes', must be 'true' or 'false'");
        assert!(text.iter().any(|t| t.contains(&want)), "{text:#?}");
    }
}
