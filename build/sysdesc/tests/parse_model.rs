//! Every Microkit element and attribute (x86-64 forms) and the VMBus companion's elements parse
//! into the model with the values written in the XML.

use sysdesc::model::*;

const ALL: &str = r#"<?xml version="1.0"?>
<system>
    <memory_region name="fixed" size="0x4000" page_size="0x1000" phys_addr="0xfee0_0000" prefill_path="blob.bin" />
    <memory_region name="big" size="0x400000" page_size="0x200000" />
    <memory_region name="rsdp" size="0x1000" prefill_bootinfo="x86_acpi_rsdp" />
    <memory_region name="pool" size="0x20000" />
    <memory_region name="ctl" size="0x1000" />
    <protection_domain name="drv" priority="200" budget="500" period="2000" passive="true"
                       stack_size="0x4000" smc="false" cpu="0" domain="red" fpu="false">
        <program_image path="drv.elf" path_for_symbols="drv.debug.elf" />
        <map mr="fixed" vaddr="0x3000000" perms="r" cached="false" setvar_vaddr="fixed_base"
             setvar_size="fixed_size" setvar_prefill_size="fixed_fill" />
        <map mr="big" vaddr="0x40000000" perms="rwx" />
        <map mr="ctl" vaddr="0x30000000" />
        <irq id="5" pin="11" vector="43" ioapic="1" trigger="edge" polarity="low" setvar_id="irq_a" />
        <irq id="6" pcidev="02:1f.7" handle="3" vector="44" setvar_id="irq_b" />
        <ioport id="0" addr="0x3f8" size="8" setvar_id="com1_id" setvar_addr="com1_base" />
        <setvar symbol="fixed_paddr" region_paddr="fixed" />
        <protection_domain name="kid" id="2" setvar_id="kid_id" priority="150" domain="blue">
            <program_image path="kid.elf" />
        </protection_domain>
        <virtual_machine name="guest" priority="120" budget="100" period="400">
            <vcpu id="0" cpu="0" setvar_id="vcpu0" />
            <vcpu id="1" />
            <map mr="big" vaddr="0x0" perms="rw" cached="true" />
        </virtual_machine>
        <cspace>
            <cap_tcb slot="2" pd="kid" />
            <cap_sc slot="3" pd="kid" />
            <cap_vspace slot="4" pd="cl" />
        </cspace>
    </protection_domain>
    <protection_domain name="cl" priority="7" domain="red">
        <program_image path="cl.elf" />
        <map mr="ctl" vaddr="0x30000000" />
    </protection_domain>
    <channel>
        <end pd="cl" id="9" pp="true" notify="false" setvar_id="to_drv" />
        <end pd="drv" id="23" />
    </channel>
    <domains>
        <domain name="red" id="1" />
        <domain name="blue" />
        <domain_schedule start_index="1" index_shift="2">
            <schedule_entry domain="red" duration="1000 us" />
            <schedule_entry domain="blue" duration="0x10 ticks" />
            <domain name="green" length="7" />
            <schedule_end_marker />
        </domain_schedule>
    </domains>
</system>
"#;

const ALL_VMBUS: &str = r#"<?xml version="1.0"?>
<vmbus system="all.xml">
    <driver pd="drv" pool_pages="32" pool_region="pool" pool_vaddr="0x6000_0000" />
    <client pd="cl" driver_channel="9" window_vaddr="0x5000_0000" window_size="0x20000"
            max_channels="3" control="ctl">
        <device class="F8615163-DF3E-46C5-913F-F2D2F965ED0E" instance="00000000-0000-0000-0000-0000000000aa" />
        <device class="ba6163d9-04a1-4d29-b605-72e2ffb1dc7f" instance="00000000-0000-0000-0000-0000000000AA" />
    </client>
</vmbus>
"#;

fn parsed() -> System {
    sysdesc::parse_and_validate_pair(
        sysdesc::Source::new("all.xml", ALL),
        sysdesc::Source::new("all.vmbus.xml", ALL_VMBUS),
    )
    .unwrap_or_else(|d| panic!("{:#?}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>()))
}

#[test]
fn memory_regions_carry_every_attribute() {
    let s = parsed();
    let f = s.region("fixed").unwrap();
    assert_eq!(
        (
            f.size,
            f.page_size,
            f.phys_addr,
            f.prefill_path.as_deref(),
            f.line
        ),
        (0x4000, 0x1000, Some(0xfee0_0000), Some("blob.bin"), 3)
    );
    assert_eq!(s.region("big").unwrap().page_size, 0x20_0000);
    assert_eq!(
        s.region("rsdp").unwrap().prefill_bootinfo.as_deref(),
        Some("x86_acpi_rsdp")
    );
    assert_eq!(
        s.region("pool").unwrap().page_size,
        0x1000,
        "default page size"
    );
}

#[test]
fn protection_domain_attributes() {
    let s = parsed();
    let d = s.pd("drv").unwrap();
    assert_eq!(
        d.sched,
        Sched {
            priority: 200,
            budget_us: 500,
            period_us: 2000
        }
    );
    assert!(d.passive && !d.smc && !d.fpu);
    assert_eq!(
        (d.stack_size, d.cpu, d.domain.as_deref(), d.line),
        (0x4000, 0, Some("red"), 8)
    );
    assert_eq!(d.program_image.path, "drv.elf");
    assert_eq!(
        d.program_image.path_for_symbols.as_deref(),
        Some("drv.debug.elf")
    );
    // Defaults: budget 1000 us, period = budget, fpu on, 8 KiB stack.
    let c = s.pd("cl").unwrap();
    assert_eq!((c.sched.budget_us, c.sched.period_us), (1000, 1000));
    assert!(c.fpu && !c.passive);
    assert_eq!(c.stack_size, 0x2000);
}

#[test]
fn maps_carry_perms_cache_and_setvars() {
    let s = parsed();
    let d = s.pd("drv").unwrap();
    let m = &d.maps[0];
    assert_eq!(
        (m.mr.as_str(), m.vaddr, m.perms.bits(), m.cached),
        ("fixed", 0x300_0000, 1, false)
    );
    assert_eq!(m.setvar_vaddr.as_deref(), Some("fixed_base"));
    assert_eq!(m.setvar_size.as_deref(), Some("fixed_size"));
    assert_eq!(m.setvar_prefill_size.as_deref(), Some("fixed_fill"));
    assert_eq!(d.maps[1].perms.bits(), 7);
    assert!(d.maps[1].cached, "cached defaults to true");
}

#[test]
fn both_x86_irq_forms_parse() {
    let s = parsed();
    let d = s.pd("drv").unwrap();
    assert_eq!((d.irqs[0].id, d.irqs[0].vector), (5, 43));
    assert_eq!(
        d.irqs[0].source,
        IrqSource::Ioapic {
            ioapic: 1,
            pin: 11,
            trigger: Trigger::Edge,
            polarity: Polarity::Low
        }
    );
    assert_eq!(d.irqs[0].setvar_id.as_deref(), Some("irq_a"));
    assert_eq!(
        d.irqs[1].source,
        IrqSource::Msi {
            pcidev: PciAddr {
                bus: 2,
                device: 0x1f,
                function: 7
            },
            handle: 3
        }
    );
    assert_eq!(d.irqs[1].vector, 44);
}

#[test]
fn ioport_and_setvar_parse() {
    let s = parsed();
    let d = s.pd("drv").unwrap();
    let io = &d.ioports[0];
    assert_eq!((io.id, io.addr, io.size), (0, 0x3f8, 8));
    assert_eq!(io.setvar_id.as_deref(), Some("com1_id"));
    assert_eq!(io.setvar_addr.as_deref(), Some("com1_base"));
    assert_eq!(d.setvars[0].symbol, "fixed_paddr");
    assert_eq!(d.setvars[0].region_paddr, "fixed");
}

#[test]
fn nested_pd_follows_its_parent() {
    let s = parsed();
    let names: Vec<&str> = s.pds.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["drv", "kid", "cl"]);
    let k = s.pd("kid").unwrap();
    assert_eq!(
        (k.parent, k.child_id, k.setvar_id.as_deref()),
        (Some(0), Some(2), Some("kid_id"))
    );
    assert_eq!(k.sched.priority, 150);
}

#[test]
fn virtual_machine_parses() {
    let s = parsed();
    let vm = s.pd("drv").unwrap().virtual_machine.as_ref().unwrap();
    assert_eq!(vm.name, "guest");
    assert_eq!(
        (vm.sched.priority, vm.sched.budget_us, vm.sched.period_us),
        (120, 100, 400)
    );
    assert_eq!(vm.vcpus.len(), 2);
    assert_eq!((vm.vcpus[0].id, vm.vcpus[0].cpu), (0, Some(0)));
    assert_eq!(vm.vcpus[0].setvar_id.as_deref(), Some("vcpu0"));
    assert_eq!((vm.vcpus[1].id, vm.vcpus[1].cpu), (1, None));
    assert_eq!((vm.maps[0].mr.as_str(), vm.maps[0].vaddr), ("big", 0));
}

#[test]
fn cspace_entries_parse() {
    let s = parsed();
    let caps: Vec<(CapKind, &str, u64)> = s
        .pd("drv")
        .unwrap()
        .cspace
        .iter()
        .map(|c| (c.kind, c.pd.as_str(), c.slot))
        .collect();
    assert_eq!(
        caps,
        [
            (CapKind::Tcb, "kid", 2),
            (CapKind::Sc, "kid", 3),
            (CapKind::Vspace, "cl", 4)
        ]
    );
}

#[test]
fn channel_ends_parse_with_defaults() {
    let s = parsed();
    let [a, b] = &s.channels[0].ends;
    assert_eq!(
        (a.pd.as_str(), a.id, a.pp, a.notify),
        ("cl", 9, true, false)
    );
    assert_eq!(a.setvar_id.as_deref(), Some("to_drv"));
    assert_eq!(
        (b.pd.as_str(), b.id, b.pp, b.notify),
        ("drv", 23, false, true)
    );
}

#[test]
fn domains_and_schedule_parse() {
    let s = parsed();
    let d = s.domains.as_ref().unwrap();
    let decl: Vec<(&str, Option<u8>)> = d.domains.iter().map(|x| (x.name.as_str(), x.id)).collect();
    assert_eq!(decl, [("red", Some(1)), ("blue", None), ("green", None)]);
    assert_eq!((d.start_index, d.index_shift), (1, Some(2)));
    let runs: Vec<(String, Duration)> = d
        .schedule
        .iter()
        .filter_map(|e| match e {
            ScheduleEntry::Run {
                domain, duration, ..
            } => Some((domain.clone(), *duration)),
            ScheduleEntry::EndMarker { .. } => None,
        })
        .collect();
    assert_eq!(
        runs,
        [
            ("red".to_string(), Duration::Us(1000)),
            ("blue".to_string(), Duration::Ticks(16)),
            ("green".to_string(), Duration::Ticks(7)),
        ]
    );
    assert!(matches!(d.schedule[3], ScheduleEntry::EndMarker { .. }));
}

#[test]
fn the_companion_fills_the_pds_vmbus_fields() {
    let s = parsed();
    assert_eq!(s.vmbus_file.as_deref(), Some("all.vmbus.xml"));
    let drv = s.pd("drv").unwrap().vmbus_driver.as_ref().unwrap();
    assert_eq!(
        (drv.pool_pages, drv.pool_region.as_deref(), drv.pool_vaddr),
        (32, Some("pool"), Some(0x6000_0000))
    );
    // Lines of companion elements are lines of the companion.
    assert_eq!(drv.line, 3);
    let cl = s.pd("cl").unwrap().vmbus_client.as_ref().unwrap();
    assert_eq!(
        (
            cl.driver_channel,
            cl.window_vaddr,
            cl.window_size,
            cl.max_channels
        ),
        (9, 0x5000_0000, 0x20000, 3)
    );
    assert_eq!((cl.control.as_str(), cl.line), ("ctl", 4));
    assert_eq!(
        cl.devices[0].class.as_str(),
        "f8615163-df3e-46c5-913f-f2d2f965ed0e"
    );
    for d in &cl.devices {
        assert_eq!(
            d.instance.as_ref().map(|g| g.as_str()),
            Some("00000000-0000-0000-0000-0000000000aa")
        );
    }
    let (mine, drv_end) = s.driver_channel_of("cl").unwrap();
    assert_eq!((mine.id, drv_end.id), (9, 23));
}
