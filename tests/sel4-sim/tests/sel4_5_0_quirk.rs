//! seL4 5.0.0 on x86 unmaps a frame only when its last capability is deleted; the quirk mode
//! reproduces that so the driver's workaround (unmap copies before revoking) is tested.

use sel4_sim::{
    CapRights, ClientSetup, DriverSetup, MemError, SLOT_VSPACE, Sim, SimConfig, SimKernel, SlotRef,
};
use vmbus_driver::ids::ClientId;
use vmbus_driver::kernel::Kernel;

fn quirky() -> Sim {
    Sim::with_config(SimConfig {
        sel4_5_0_x86_unmap_only_final: true,
        ..SimConfig::default()
    })
}

#[test]
fn revoking_the_original_leaves_a_stale_client_mapping_on_sel4_5_0() {
    let mut sim = quirky();
    let a = sim.create_pd("a", 1);
    let b = sim.create_pd("b", 1);
    let f = SlotRef::new(a, sim.create_frames(a, 1).unwrap()[0]);
    sim.map_own(a, f.slot, 0x1000, CapRights::READ_WRITE)
        .unwrap();
    let c = SlotRef::new(b, sim.copy_to_free(f, b, CapRights::ALL).unwrap());
    sim.map(
        c,
        SlotRef::new(b, SLOT_VSPACE),
        0x2000,
        CapRights::READ_WRITE,
    )
    .unwrap();
    sim.revoke(f).unwrap();
    assert_eq!(sim.cap(c).unwrap(), None);
    // The copy is gone but its mapping is not: the client still reaches the frame.
    sim.write_u32(a, 0x1000, 77).unwrap();
    assert_eq!(sim.read_u32(b, 0x2000).unwrap(), 77);
    assert_eq!(sim.mapping(b, 0x2000).unwrap().unwrap().cap, None);
    // The default (manual) semantics remove it.
    let mut sim = Sim::new();
    let a = sim.create_pd("a", 1);
    let b = sim.create_pd("b", 1);
    let f = SlotRef::new(a, sim.create_frames(a, 1).unwrap()[0]);
    let c = SlotRef::new(b, sim.copy_to_free(f, b, CapRights::ALL).unwrap());
    sim.map(
        c,
        SlotRef::new(b, SLOT_VSPACE),
        0x2000,
        CapRights::READ_WRITE,
    )
    .unwrap();
    sim.revoke(f).unwrap();
    assert!(matches!(sim.read_u32(b, 0x2000), Err(MemError::Fault(_))));
}

#[test]
fn the_seams_revoke_unmaps_every_copy_on_sel4_5_0() {
    let mut sim = quirky();
    let d = sim.create_pd("driver", 2);
    let a = sim.create_pd("a", 1);
    let setup = DriverSetup {
        driver: d,
        pool_pages: 1,
        pool_base: 0x10_0000,
        clients: vec![ClientSetup {
            id: ClientId(0),
            pd: a,
            window_base: 0x20_0000,
            window_pages: 1,
            badge: 1,
        }],
        irq: None,
    };
    let mut k = SimKernel::new(sim, &setup).unwrap();
    let p = k.take_page().unwrap();
    k.grant(p, ClientId(0), 0).unwrap();
    k.sim.read_u32(a, 0x20_0000).unwrap();
    k.revoke(p).unwrap();
    assert!(matches!(
        k.sim.read_u32(a, 0x20_0000),
        Err(MemError::Fault(_))
    ));
}
