//! Microkit-style wiring: channels carry the other end's id as a badge bit, regions are shared.

use sel4_sim::{CapRights, Error, MemError, Sim, SlotRef};

#[test]
fn a_channel_notifies_the_other_end_with_its_own_id_bit() {
    let mut sim = Sim::new();
    let a = sim.create_pd("a", 10);
    let b = sim.create_pd("b", 20);
    let c = sim.create_pd("c", 30);
    sim.create_channel(a, 3, b, 7).unwrap();
    sim.create_channel(c, 0, b, 9).unwrap();
    sim.notify_channel(a, 3).unwrap();
    sim.notify_channel(c, 0).unwrap();
    assert_eq!(sim.pd_wait(b).unwrap(), Some((1 << 7) | (1 << 9)));
    assert_eq!(sim.pd_wait(b).unwrap(), None);
    sim.notify_channel(b, 7).unwrap();
    assert_eq!(sim.pd_wait(a).unwrap(), Some(1 << 3));
    assert_eq!(
        sim.pd_wait(c).unwrap(),
        None,
        "notification reached the wrong PD"
    );
}

#[test]
fn channel_ids_are_checked() {
    let mut sim = Sim::new();
    let a = sim.create_pd("a", 10);
    let b = sim.create_pd("b", 20);
    sim.create_channel(a, 1, b, 1).unwrap();
    assert_eq!(
        sim.create_channel(a, 1, b, 2),
        Err(Error::InvalidArgument),
        "id reused in a"
    );
    assert_eq!(
        sim.create_channel(a, 63, b, 2),
        Err(Error::InvalidArgument),
        "id out of range"
    );
    assert_eq!(
        sim.create_channel(a, 2, a, 3),
        Err(Error::InvalidArgument),
        "channel to itself"
    );
    assert_eq!(sim.notify_channel(a, 5), Err(Error::InvalidArgument));
    assert!(sim.channel_cap(a, 1).unwrap().is_some());
    assert_eq!(sim.channel_cap(a, 2).unwrap(), None);
}

#[test]
fn a_region_mapped_into_two_pds_is_shared_and_rights_apply_per_pd() {
    let mut sim = Sim::new();
    let owner = sim.create_pd("monitor", 254);
    let a = sim.create_pd("a", 10);
    let b = sim.create_pd("b", 20);
    let frames: Vec<SlotRef> = sim
        .create_frames(owner, 3)
        .unwrap()
        .into_iter()
        .map(|c| SlotRef::new(owner, c))
        .collect();
    sim.map_region(&frames, a, 0x10_0000, CapRights::READ_WRITE)
        .unwrap();
    sim.map_region(&frames, b, 0x50_0000, CapRights::READ)
        .unwrap();
    sim.write_u32(a, 0x10_0000 + 2 * 4096 + 12, 99).unwrap();
    assert_eq!(sim.read_u32(b, 0x50_0000 + 2 * 4096 + 12).unwrap(), 99);
    assert!(matches!(
        sim.write_u32(b, 0x50_0000, 1),
        Err(MemError::Fault(_))
    ));
}

#[test]
fn a_region_that_does_not_fit_leaves_nothing_behind() {
    let mut sim = Sim::new();
    let owner = sim.create_pd("monitor", 254);
    let a = sim.create_pd("a", 10);
    let frames: Vec<SlotRef> = sim
        .create_frames(owner, 2)
        .unwrap()
        .into_iter()
        .map(|c| SlotRef::new(owner, c))
        .collect();
    let blocker = sim.create_frames(a, 1).unwrap()[0];
    sim.map_own(a, blocker, 0x10_1000, CapRights::READ).unwrap();
    let free = sim.free_slot_count(a).unwrap();
    assert_eq!(
        sim.map_region(&frames, a, 0x10_0000, CapRights::READ),
        Err(Error::DeleteFirst)
    );
    assert_eq!(sim.free_slot_count(a).unwrap(), free);
    assert_eq!(sim.mapped_page_count(a).unwrap(), 1);
}
