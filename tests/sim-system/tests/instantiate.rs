//! The system instantiated from the repository's system.xml matches its description: PDs,
//! mappings with their rights, channels between the described ends, empty windows, the pool,
//! control pages private to driver and client, the VMBus interrupt.

use sel4_sim::{Cap, CapRights, PdState, SLOT_VSPACE, SlotRef, VmRights};
use sim_system::layout::PAGE;
use sim_system::{Instance, load_repository_system};
use sysdesc::model::System;

fn system() -> (System, Instance) {
    let sys = load_repository_system().expect("system.xml loads");
    let inst = Instance::build(&sys, sel4_sim::SimConfig::default()).expect("instantiates");
    (sys, inst)
}

#[test]
fn every_described_pd_exists_once_with_its_priority() {
    let (sys, inst) = system();
    assert_eq!(inst.pds().len(), sys.pds.len());
    let k = inst.kernel().borrow();
    for p in &sys.pds {
        let pd = inst
            .pd(&p.name)
            .unwrap_or_else(|| panic!("{} missing", p.name));
        assert_eq!(k.sim.pd_name(pd).unwrap(), p.name);
        assert_eq!(k.sim.pd_priority(pd).unwrap(), p.sched.priority);
        assert_eq!(k.sim.pd_state(pd).unwrap(), PdState::Running);
    }
    // Distinct PDs.
    let mut ids: Vec<_> = inst.pds().iter().map(|&(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sys.pds.len());
    assert_eq!(inst.clients().len(), sys.vmbus_clients().count());
}

#[test]
fn described_maps_are_shared_and_carry_their_rights() {
    let (sys, inst) = system();
    let pool = sys
        .vmbus_driver()
        .and_then(|d| d.vmbus_driver.as_ref())
        .and_then(|v| v.pool_region.clone());
    let mut k = inst.kernel().borrow_mut();
    let mut checked = 0;
    for p in &sys.pds {
        let pd = inst.pd(&p.name).unwrap();
        for m in &p.maps {
            if Some(&m.mr) == pool.as_ref() {
                continue; // the host's physical view, tested below
            }
            let region = sys.region(&m.mr).unwrap();
            let inst_region = inst.region(&m.mr).unwrap();
            assert_eq!(inst_region.frames.len() as u64, region.size / PAGE);
            for page in 0..region.size / PAGE {
                let vaddr = m.vaddr + page * PAGE;
                let mapping = k.sim.mapping(pd, vaddr).unwrap().expect("mapped");
                let frame = k.sim.frame_of(inst_region.frames[page as usize]).unwrap();
                assert_eq!(mapping.frame, frame, "{} {:#x}", p.name, vaddr);
                let want = match (m.perms.read, m.perms.write) {
                    (true, true) => VmRights::ReadWrite,
                    (true, false) => VmRights::ReadOnly,
                    _ => VmRights::KernelOnly,
                };
                assert_eq!(mapping.rights, want);
            }
            checked += 1;
        }
    }
    // hv_host and the driver both map the two SynIC pages and the hypercall input page; the
    // driver and each of the 7 clients map the client's control page; the network driver and
    // its sDDF client map the six network regions, the storage driver and its client the four
    // block regions.
    assert_eq!(checked, 2 * 3 + 2 * 7 + 2 * 6 + 2 * 4);
    // A write by one mapper is read by the other: the frames are shared, not copied.
    let host = inst.pd("hv_host").unwrap();
    let driver = inst.pd("vmbus_driver").unwrap();
    k.sim.write_u32(host, 0x2000_0010, 0xfeed_beef).unwrap();
    assert_eq!(k.sim.read_u32(driver, 0x2000_0010).unwrap(), 0xfeed_beef);
    // Nothing is mapped just past a region.
    assert!(k.sim.mapping(host, 0x2000_3000).unwrap().is_none());
}

#[test]
fn channels_connect_the_described_ends() {
    let (sys, inst) = system();
    assert_eq!(inst.channels().len(), sys.channels.len());
    for c in &sys.channels {
        let a = inst.pd(&c.ends[0].pd).unwrap();
        let b = inst.pd(&c.ends[1].pd).unwrap();
        // Drain both, notify from a, only b sees exactly its end's bit.
        let mut k = inst.kernel().borrow_mut();
        let _ = k.sim.pd_wait(a).unwrap();
        let _ = k.sim.pd_wait(b).unwrap();
        drop(k);
        inst.notify(a, c.ends[0].id).unwrap();
        let mut k = inst.kernel().borrow_mut();
        assert_eq!(k.sim.pd_wait(b).unwrap(), Some(1u64 << c.ends[1].id));
        assert_eq!(k.sim.pd_wait(a).unwrap(), None);
        drop(k);
        // Protected calls only where the description says pp.
        assert_eq!(inst.pp_target(a, c.ends[0].id).is_some(), c.ends[0].pp);
        assert_eq!(inst.pp_target(b, c.ends[1].id).is_some(), c.ends[1].pp);
    }
    // Every client's pp path leads to the driver.
    for c in inst.clients() {
        assert_eq!(inst.pp_target(c.pd, c.driver_channel), Some(inst.driver()));
    }
    // A channel id nobody described is refused.
    let hb = inst.pd("heartbeat").unwrap();
    assert!(inst.notify(hb, 9).is_err());
}

#[test]
fn windows_are_empty_and_the_driver_holds_each_clients_vspace() {
    let (sys, inst) = system();
    let k = inst.kernel().borrow();
    for (p, c) in sys.vmbus_clients() {
        let pd = inst.pd(&p.name).unwrap();
        for page in 0..c.window_size / PAGE {
            assert!(
                k.sim
                    .mapping(pd, c.window_vaddr + page * PAGE)
                    .unwrap()
                    .is_none()
            );
        }
        let info = inst.client_by_pd(pd).unwrap();
        assert_eq!(info.window_pages as u64, c.window_size / PAGE);
        assert_eq!(info.max_channels, c.max_channels as usize);
        assert_eq!(info.classes.len(), c.devices.len());
        let link = k.seam.client(info.id).unwrap();
        assert_eq!(
            k.sim
                .cap(SlotRef::new(inst.driver(), link.vspace_cap))
                .unwrap(),
            k.sim.cap(SlotRef::new(pd, SLOT_VSPACE)).unwrap()
        );
    }
    // The described cap_vspace slots hold the named clients' VSpaces.
    let driver = sys.vmbus_driver().unwrap();
    for e in &driver.cspace {
        let target = inst.pd(&e.pd).unwrap();
        let got = k
            .sim
            .cap(SlotRef::new(inst.driver(), sel4_sim::CapPtr(e.slot as u32)))
            .unwrap();
        assert!(matches!(got, Some(Cap::VSpace { .. })));
        assert_eq!(got, k.sim.cap(SlotRef::new(target, SLOT_VSPACE)).unwrap());
    }
}

#[test]
fn pool_is_free_owned_by_the_driver_and_visible_to_the_host_by_frame_number() {
    let (sys, inst) = system();
    let pages = sys
        .vmbus_driver()
        .unwrap()
        .vmbus_driver
        .as_ref()
        .unwrap()
        .pool_pages;
    assert_eq!(u64::from(inst.pool().pages), pages);
    assert_eq!(inst.pool().by_pfn.len() as u64, pages);
    {
        let k = inst.kernel().borrow();
        assert_eq!(k.seam.free_pages() as u64, pages);
        // Originals (retyped straight from untyped memory) in the driver's CSpace, mapped in
        // the driver only.
        let r = inst.regions().iter().find(|r| r.is_pool).unwrap();
        assert_eq!(r.frames.len() as u64, pages);
        for f in r.frames.iter().step_by(997) {
            assert_eq!(f.pd, inst.driver());
            let parent = k.sim.cdt_parent(*f).unwrap().expect("retyped");
            assert!(matches!(
                k.sim.cap(parent).unwrap(),
                Some(Cap::Untyped { .. })
            ));
            assert_eq!(k.sim.children(*f).unwrap(), vec![]);
            let Some(Cap::Frame { mapped, .. }) = k.sim.cap(*f).unwrap() else {
                panic!("pool slot holds no frame");
            };
            assert_eq!(
                mapped.map(|m| m.vspace),
                Some(k.sim.pd_vspace(inst.driver()).unwrap())
            );
        }
    }
    // The host writes a frame by number; the driver reads it through its pool mapping.
    let gm = inst.guest_mem();
    let (&pfn, &(page, _)) = inst.pool().by_pfn.iter().nth(3).unwrap();
    gm.write(pfn, 100, b"hello").unwrap();
    let mut buf = [0u8; 5];
    let k = inst.kernel().borrow();
    k.seam.read_page(&k.sim, page, 100, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    drop(k);
    let mut back = [0u8; 5];
    gm.read(pfn, 100, &mut back).unwrap();
    assert_eq!(&back, b"hello");
    // A frame outside the pool and an access past the page are refused.
    let max = *inst.pool().by_pfn.keys().last().unwrap();
    assert!(gm.read(max + 1, 0, &mut back).is_err());
    assert!(gm.write(pfn, 4094, b"abc").is_err());
}

#[test]
fn control_page_is_shared_by_driver_and_its_client_only() {
    let (_, inst) = system();
    let driver = inst.driver();
    let mut k = inst.kernel().borrow_mut();
    for c in inst.clients() {
        let marker = 0x1000_0000 + u32::from(c.id.0);
        k.sim.write_u32(c.pd, c.control_vaddr + 8, marker).unwrap();
        assert_eq!(
            k.sim.read_u32(driver, c.driver_control_vaddr + 8).unwrap(),
            marker
        );
        // No other PD maps this frame.
        for &(_, pd) in inst.pds() {
            if pd == driver || pd == c.pd {
                continue;
            }
            for other in inst.clients() {
                if let Some(m) = k.sim.mapping(pd, other.control_vaddr).unwrap() {
                    assert_ne!(m.frame, c.control_frame);
                }
            }
        }
    }
    // Client 1 reads its own page, not client 0's marker.
    let c1 = &inst.clients()[1];
    assert_eq!(
        k.sim.read_u32(c1.pd, c1.control_vaddr + 8).unwrap(),
        0x1000_0001
    );
    // The host has no control page mapped at all.
    let host = inst.host().unwrap();
    assert!(k.sim.mapping(host, c1.control_vaddr).unwrap().is_none());
    let _ = CapRights::READ;
}

#[test]
fn vmbus_interrupt_reaches_the_driver_until_acknowledged() {
    let (_, inst) = system();
    let irq = inst.vmbus_irq();
    let mut guard = inst.kernel().borrow_mut();
    let k = &mut *guard;
    assert_eq!(k.sim.raise_irq(irq.irq), sel4_sim::IrqOutcome::Delivered);
    let n = k.seam.driver_notification().unwrap();
    let driver = inst.driver();
    assert_eq!(
        k.sim.wait(SlotRef::new(driver, n)).unwrap(),
        Some(irq.badge)
    );
    assert_eq!(k.sim.raise_irq(irq.irq), sel4_sim::IrqOutcome::Latched);
    k.seam.ack_irq(&mut k.sim).unwrap();
    // The latched interrupt is delivered at the acknowledgement.
    assert_eq!(
        k.sim.wait(SlotRef::new(driver, n)).unwrap(),
        Some(irq.badge)
    );
}

#[test]
fn client_faults_go_to_the_driver() {
    let (_, inst) = system();
    let c = &inst.clients()[0];
    let mut k = inst.kernel().borrow_mut();
    assert!(k.sim.read_u32(c.pd, c.window_base).is_err());
    assert_eq!(k.sim.pd_state(c.pd).unwrap(), PdState::Stopped);
    let f = k.sim.take_fault(inst.driver()).unwrap().expect("delivered");
    assert_eq!(f.pd, c.pd);
}

/// The clients' classes reach the driver as the GUIDs written in the companion: the
/// configuration's wire bytes (`sysdesc::Guid::bytes`) are the driver's own parse of the text.
#[test]
fn client_classes_are_the_described_guids() {
    let (sys, inst) = system();
    for (p, c) in sys.vmbus_clients() {
        let info = inst.client_by_name(&p.name).unwrap();
        let want: Vec<vmbus_driver::guid::Guid> = c
            .devices
            .iter()
            .map(|d| vmbus_driver::guid::Guid::parse(d.class.as_str()).unwrap())
            .collect();
        assert_eq!(info.classes, want, "{}", p.name);
    }
}
