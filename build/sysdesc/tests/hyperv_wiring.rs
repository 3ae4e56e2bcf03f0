//! The companion's `hyperv` element: the driver talks to Hyper-V itself through the kernel's
//! Hyper-V service. Each rule on a small pair that breaks only that rule.

mod common;

use common::{CLIENT_OK, DRIVER_OK, assert_one_pair, check_pair, vmbus_companion, vmbus_system};
use sysdesc::ErrorKind;
use sysdesc::config::{HvConfig, SynicConfig, pd_config};

/// The valid pair plus `hyperv` (the element's attributes).
fn with_hyperv(attrs: &str) -> (String, String) {
    (
        vmbus_system("", "", ""),
        vmbus_companion(DRIVER_OK, CLIENT_OK, &format!("    <hyperv {attrs} />\n")),
    )
}

const HYPERV_OK: &str = r#"sint_channel="0" synic_vaddr="0x30000000""#;

#[test]
fn the_driver_of_a_system_on_hyperv_gets_the_synic_frames_and_the_sint_channel() {
    let (xml, vm) = with_hyperv(HYPERV_OK);
    let s = check_pair(&xml, &vm).unwrap();
    let d = pd_config(&s, "driver").unwrap().driver.unwrap();
    assert_eq!(
        d.hypervisor,
        HvConfig::HyperV {
            synic: SynicConfig {
                message: 0x3000_0000,
                event_flags: 0x3000_1000
            },
            sint_channel: 0
        }
    );
    // Without the element the driver has no host.
    let (xml, vm) = (
        vmbus_system("", "", ""),
        vmbus_companion(DRIVER_OK, CLIENT_OK, ""),
    );
    let s = check_pair(&xml, &vm).unwrap();
    let d = pd_config(&s, "driver").unwrap().driver.unwrap();
    assert_eq!(d.hypervisor, HvConfig::None);
}

#[test]
fn a_sint_channel_the_driver_already_uses_is_refused() {
    // Channel 3 is the driver's end of its channel to the client.
    let (xml, vm) = with_hyperv(r#"sint_channel="3" synic_vaddr="0x30000000""#);
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<hyperv",
        "sint_channel 3 of driver \"driver\" is already one of its channel or interrupt ids",
    );
}

#[test]
fn synic_pages_over_the_pool_or_a_map_or_outside_the_range_are_refused() {
    // The pool is 64 pages at 0x20000000; the driver maps its control page at 0x31000000.
    for (vaddr, message) in [
        (
            "0x2003f000",
            "SynIC pages of driver \"driver\" at 0x2003f000..0x20041000 overlap its memory at 0x20000000..0x20040000",
        ),
        (
            "0x30fff000",
            "SynIC pages of driver \"driver\" at 0x30fff000..0x31001000 overlap its memory at 0x31000000..0x31001000",
        ),
        (
            "0x1000",
            "SynIC pages of driver \"driver\" at 0x1000..0x3000 must be page aligned and lie in the run-time mapping range 0x20000000..0x100000000, clear of the IPC buffer",
        ),
        (
            "0x30000800",
            "SynIC pages of driver \"driver\" at 0x30000800..0x30002800 must be page aligned and lie in the run-time mapping range 0x20000000..0x100000000, clear of the IPC buffer",
        ),
    ] {
        let (xml, vm) = with_hyperv(&format!(r#"sint_channel="0" synic_vaddr="{vaddr}""#));
        let kind = if message.contains("overlap") {
            ErrorKind::Overlap
        } else {
            ErrorKind::Vmbus
        };
        assert_one_pair(&xml, &vm, true, kind, "<hyperv", message);
    }
}

#[test]
fn hyperv_and_a_simulated_host_or_synic_regions_together_are_refused() {
    let xml = vmbus_system(
        "        <map mr=\"sim\" vaddr=\"0x32000000\" />\n        <map mr=\"sief\" vaddr=\"0x32001000\" />\n",
        "",
        "    <memory_region name=\"sim\" size=\"0x1000\" />\n    <memory_region name=\"sief\" size=\"0x1000\" />\n",
    );
    let vm = vmbus_companion(
        &format!(r#"{DRIVER_OK} synic_message="sim" synic_event_flags="sief""#),
        CLIENT_OK,
        &format!("    <hyperv {HYPERV_OK} />\n"),
    );
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<hyperv",
        "driver \"driver\" has SynIC regions, but with 'hyperv' its SynIC pages are the kernel's frames at synic_vaddr: drop 'synic_message' and 'synic_event_flags'",
    );
}

#[test]
fn a_second_hyperv_or_one_without_a_driver_is_refused() {
    let (xml, _) = with_hyperv(HYPERV_OK);
    let vm = vmbus_companion(
        DRIVER_OK,
        CLIENT_OK,
        &format!("    <hyperv {HYPERV_OK} />\n    <hyperv {HYPERV_OK} />\n"),
    );
    let d = common::pair_diags(&xml, &vm);
    let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        text,
        [format!(
            "t.vmbus.xml:{}: a second 'hyperv': the system has one at line {}",
            common::line_of(&vm, "<hyperv") + 1,
            common::line_of(&vm, "<hyperv")
        )]
    );
    let vm = format!("<vmbus system=\"t.xml\">\n    <hyperv {HYPERV_OK} />\n</vmbus>\n");
    assert_one_pair(
        &xml,
        &vm,
        true,
        ErrorKind::Vmbus,
        "<hyperv",
        "'hyperv' connects the VMBus driver to Hyper-V, but the companion has no 'driver'",
    );
}

#[test]
fn hyperv_attributes_are_checked() {
    let (xml, vm) = with_hyperv(r#"sint_channel="0""#);
    let d = common::pair_diags(&xml, &vm);
    assert!(
        d.iter().any(|d| d.to_string().contains("synic_vaddr")),
        "{d:?}"
    );
    let (xml, vm) = with_hyperv(r#"sint_channel="0" synic_vaddr="0x30000000" irq="5""#);
    let d = common::pair_diags(&xml, &vm);
    assert!(d.iter().any(|d| d.to_string().contains("irq")), "{d:?}");
}
