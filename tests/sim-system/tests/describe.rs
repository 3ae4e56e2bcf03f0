//! Instantiating descriptions other than the repository's: what the model refuses, and a
//! minimal system that works.

use sel4_sim::SimConfig;
use sim_system::{BuildError, Instance};

/// A minimal description: driver `d` (its cspace holding `driver_extra` too) and client `c`,
/// each mapping `c`'s control page.
fn system(driver_extra: &str) -> String {
    format!(
        r#"<system>
    <memory_region name="control_c" size="0x1000" />
    <protection_domain name="d" priority="200">
        <program_image path="d.elf" />
        <map mr="control_c" vaddr="0x30000000" />
        <cspace><cap_vspace slot="16" pd="c" />{driver_extra}</cspace>
    </protection_domain>
    <protection_domain name="c" priority="100">
        <program_image path="c.elf" />
        <map mr="control_c" vaddr="0x30000000" />
    </protection_domain>
    <channel>
        <end pd="c" id="0" pp="true" />
        <end pd="d" id="5" />
    </channel>
</system>"#
    )
}

/// Its VMBus companion, the client's window at `window`.
fn companion(window: &str) -> String {
    format!(
        r#"<vmbus system="test.xml">
    <driver pd="d" pool_pages="64" pool_vaddr="0x20000000" />
    <client pd="c" driver_channel="0" window_vaddr="{window}" window_size="0x10000" max_channels="2" control="control_c">
        <device class="57164f39-9115-4e78-ab55-382f3bd5422d" />
    </client>
</vmbus>"#
    )
}

fn check(xml: &str, vm: &str) -> Result<sysdesc::System, Vec<sysdesc::Diagnostic>> {
    sysdesc::parse_and_validate_pair(
        sysdesc::Source::new("test.xml", xml),
        sysdesc::Source::new("test.vmbus.xml", vm),
    )
}

fn build(xml: &str, vm: &str) -> Result<Instance, BuildError> {
    let sys = check(xml, vm).expect("valid description");
    Instance::build(&sys, SimConfig::default())
}

#[test]
fn a_minimal_system_instantiates_with_its_own_numbers() {
    let inst = build(&system(""), &companion("0x40000000")).unwrap();
    assert_eq!(inst.pds().len(), 2);
    assert_eq!(inst.clients().len(), 1);
    let c = &inst.clients()[0];
    assert_eq!((c.window_pages, c.max_channels), (16, 2));
    assert_eq!((c.driver_channel, c.driver_end), (0, 5));
    // The control page is the described region, where each PD maps it.
    assert_eq!(
        (c.control_vaddr, c.driver_control_vaddr),
        (0x3000_0000, 0x3000_0000)
    );
    assert_eq!(inst.pool().pages, 64);
    assert_eq!(inst.kernel().borrow().seam.free_pages(), 64);
    // No host in this description: nobody maps the pool as guest memory.
    assert_eq!(inst.host(), None);
    // The VMBus interrupt takes the driver's highest free channel id.
    assert_eq!(inst.vmbus_irq().badge, 1 << 62);
    // The described cap_vspace is in the described slot.
    let k = inst.kernel().borrow();
    assert!(matches!(
        k.sim
            .cap(sel4_sim::SlotRef::new(inst.driver(), sel4_sim::CapPtr(16)))
            .unwrap(),
        Some(sel4_sim::Cap::VSpace { .. })
    ));
}

#[test]
fn a_window_over_the_control_page_is_refused_by_the_description() {
    let d = check(&system(""), &companion("0x30000000")).unwrap_err();
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].file, "test.vmbus.xml");
    assert_eq!(d[0].kind, sysdesc::ErrorKind::Overlap);
}

#[test]
fn capabilities_the_model_lacks_are_refused_not_dropped() {
    let e = build(
        &system(r#"<cap_tcb slot="17" pd="c" />"#),
        &companion("0x40000000"),
    )
    .unwrap_err();
    assert!(matches!(e, BuildError::Unsupported { pd: 0, .. }), "{e}");
}

#[test]
fn a_system_without_a_driver_is_refused() {
    let xml = r#"<system>
    <protection_domain name="x" priority="100"><program_image path="x.elf" /></protection_domain>
</system>"#;
    let sys = sysdesc::parse_and_validate("test.xml", xml).unwrap();
    assert_eq!(
        Instance::build(&sys, SimConfig::default()).unwrap_err(),
        BuildError::NoDriver
    );
}

#[test]
fn notify_false_and_pp_are_enforced_per_end() {
    let xml = system("").replace(
        r#"<end pd="d" id="5" />"#,
        r#"<end pd="d" id="5" notify="false" />"#,
    );
    let inst = build(&xml, &companion("0x40000000")).unwrap();
    let c = inst.clients()[0].pd;
    let d = inst.driver();
    assert_eq!(inst.notify(d, 5), Err(sim_system::NotifyError::NotAllowed));
    inst.notify(c, 0).unwrap();
    assert_eq!(
        inst.kernel().borrow_mut().sim.pd_wait(d).unwrap(),
        Some(1 << 5)
    );
    // Only the client's end may call.
    assert_eq!(inst.pp_target(c, 0), Some(d));
    assert_eq!(inst.pp_target(d, 5), None);
}
