//! Frames, VSpaces and PD memory accesses: mapping rules and observable faults.

use sel4_sim::{
    Access, CapRights, Error, FaultKind, MemError, PdId, PdState, SLOT_VSPACE, Sim, SlotRef,
    USER_TOP,
};

const A_BASE: u64 = 0x40_0000;
const B_BASE: u64 = 0x80_0000;

/// A parent with two children; the parent handles the children's faults. The frame's original
/// is in `a`, mapped at `A_BASE`.
fn system() -> (Sim, PdId, PdId, PdId, SlotRef) {
    let mut sim = Sim::new();
    let parent = sim.create_pd("parent", 200);
    let a = sim.create_pd("a", 100);
    let b = sim.create_pd("b", 100);
    sim.set_fault_handler(a, Some(parent)).unwrap();
    sim.set_fault_handler(b, Some(parent)).unwrap();
    let f = sim.create_frames(a, 1).unwrap()[0];
    sim.map_own(a, f, A_BASE, CapRights::READ_WRITE).unwrap();
    (sim, parent, a, b, SlotRef::new(a, f))
}

fn map_copy_in(sim: &mut Sim, orig: SlotRef, pd: PdId, vaddr: u64, rights: CapRights) -> SlotRef {
    let c = SlotRef::new(pd, sim.copy_to_free(orig, pd, CapRights::ALL).unwrap());
    sim.map(c, SlotRef::new(pd, SLOT_VSPACE), vaddr, rights)
        .unwrap();
    c
}

#[test]
fn two_pds_mapping_one_frame_see_each_others_writes() {
    let (mut sim, _, a, b, orig) = system();
    map_copy_in(&mut sim, orig, b, B_BASE, CapRights::READ_WRITE);
    sim.write(a, A_BASE + 100, b"hello").unwrap();
    let mut buf = [0; 5];
    sim.read(b, B_BASE + 100, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    sim.write_u64(b, B_BASE + 8, 0x1122_3344_5566_7788).unwrap();
    assert_eq!(sim.read_u64(a, A_BASE + 8).unwrap(), 0x1122_3344_5566_7788);
    assert_eq!(
        sim.read_u32(a, A_BASE + 8).unwrap(),
        0x5566_7788,
        "not little-endian"
    );
}

#[test]
fn revoke_removes_derived_mappings_and_the_next_access_faults_to_the_handler() {
    let (mut sim, parent, a, b, orig) = system();
    map_copy_in(&mut sim, orig, b, B_BASE, CapRights::READ_WRITE);
    assert_eq!(sim.read_u32(b, B_BASE + 0x24).unwrap(), 0);
    sim.revoke(orig).unwrap();
    assert_eq!(sim.mapping(b, B_BASE).unwrap(), None);
    let err = sim.read_u32(b, B_BASE + 0x24).unwrap_err();
    let expected = FaultKind::VmFault {
        vaddr: B_BASE + 0x24,
        access: Access::Read,
        present: false,
    };
    let MemError::Fault(msg) = err else {
        panic!("expected a fault, got {err}")
    };
    assert_eq!((msg.pd, msg.kind), (b, expected));
    assert_eq!(sim.take_fault(parent).unwrap(), Some(msg));
    assert_eq!(sim.pd_state(b).unwrap(), PdState::Stopped);
    // The original's own mapping in `a` is untouched.
    sim.write_u32(a, A_BASE, 1).unwrap();
}

#[test]
fn mapping_an_already_mapped_frame_cap_is_invalid_capability() {
    let (mut sim, _, a, b, orig) = system();
    // Same VSpace, other address; and another VSpace: both refused, as seL4 5.0 does.
    let own = SlotRef::new(a, SLOT_VSPACE);
    assert_eq!(
        sim.map(orig, own, A_BASE + 0x1000, CapRights::ALL),
        Err(Error::InvalidCapability)
    );
    let bvs = SlotRef::new(
        a,
        sim.copy_to_free(SlotRef::new(b, SLOT_VSPACE), a, CapRights::ALL)
            .unwrap(),
    );
    assert_eq!(
        sim.map(orig, bvs, B_BASE, CapRights::ALL),
        Err(Error::InvalidCapability)
    );
    assert_eq!(sim.mapped_page_count(b).unwrap(), 0);
    assert_eq!(sim.counters().maps, 1);
}

#[test]
fn map_rejects_occupied_unaligned_and_kernel_addresses() {
    let (mut sim, _, a, _, orig) = system();
    let own = SlotRef::new(a, SLOT_VSPACE);
    let c = SlotRef::new(a, sim.copy_to_free(orig, a, CapRights::ALL).unwrap());
    assert_eq!(
        sim.map(c, own, A_BASE, CapRights::ALL),
        Err(Error::DeleteFirst)
    );
    assert_eq!(
        sim.map(c, own, A_BASE + 0x1008, CapRights::ALL),
        Err(Error::AlignmentError)
    );
    assert_eq!(
        sim.map(c, own, USER_TOP & !0xfff, CapRights::ALL),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        sim.map(c, own, !0xfff_u64, CapRights::ALL),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        sim.map(own, own, A_BASE + 0x2000, CapRights::ALL),
        Err(Error::InvalidCapability)
    );
    sim.map(c, own, (USER_TOP & !0xfff) - 0x1000, CapRights::ALL)
        .unwrap();
}

#[test]
fn read_only_mapping_refuses_writes_with_a_protection_fault() {
    let (mut sim, parent, a, b, orig) = system();
    map_copy_in(&mut sim, orig, b, B_BASE, CapRights::READ);
    sim.write_u32(a, A_BASE + 4, 9).unwrap();
    assert_eq!(sim.read_u32(b, B_BASE + 4).unwrap(), 9);
    let err = sim.write_u32(b, B_BASE + 4, 1).unwrap_err();
    let MemError::Fault(msg) = err else {
        panic!("{err}")
    };
    assert_eq!(
        msg.kind,
        FaultKind::VmFault {
            vaddr: B_BASE + 4,
            access: Access::Write,
            present: true
        }
    );
    assert_eq!(sim.pending_faults(parent).unwrap().len(), 1);
    assert_eq!(
        sim.read_u32(a, A_BASE + 4).unwrap(),
        9,
        "refused write changed memory"
    );
}

#[test]
fn read_only_capability_maps_read_only_even_when_asked_for_write() {
    let (mut sim, _, _, b, orig) = system();
    let ro = SlotRef::new(b, sim.copy_to_free(orig, b, CapRights::READ).unwrap());
    sim.map(
        ro,
        SlotRef::new(b, SLOT_VSPACE),
        B_BASE,
        CapRights::READ_WRITE,
    )
    .unwrap();
    assert!(matches!(
        sim.write_u32(b, B_BASE, 1),
        Err(MemError::Fault(_))
    ));
}

#[test]
fn deleting_a_mapped_copy_removes_its_mapping_only() {
    let (mut sim, _, a, b, orig) = system();
    let c = map_copy_in(&mut sim, orig, b, B_BASE, CapRights::READ_WRITE);
    sim.delete(c).unwrap();
    assert!(matches!(sim.read_u32(b, B_BASE), Err(MemError::Fault(_))));
    sim.write_u32(a, A_BASE, 3).unwrap();
    assert_eq!(sim.counters().unmaps, 1);
}

#[test]
fn unmap_removes_the_mapping_and_allows_a_new_one() {
    let (mut sim, _, a, _, orig) = system();
    sim.unmap(orig).unwrap();
    assert!(matches!(sim.read_u32(a, A_BASE), Err(MemError::Fault(_))));
    sim.resume(a).unwrap();
    sim.unmap(orig).unwrap(); // unmapping an unmapped frame cap succeeds, as in seL4
    sim.map_own(a, orig.slot, A_BASE + 0x3000, CapRights::READ_WRITE)
        .unwrap();
    sim.write_u32(a, A_BASE + 0x3000, 5).unwrap();
}

#[test]
fn stopped_pd_does_nothing_until_resumed() {
    let (mut sim, parent, a, _, _) = system();
    assert!(matches!(sim.read_u32(a, 0x1000), Err(MemError::Fault(_))));
    assert_eq!(sim.write_u32(a, A_BASE, 1), Err(MemError::Stopped(a)));
    assert_eq!(
        sim.pending_faults(parent).unwrap().len(),
        1,
        "a stopped PD faulted again"
    );
    sim.resume(a).unwrap();
    sim.write_u32(a, A_BASE, 1).unwrap();
    assert_eq!(sim.read_u32(a, A_BASE).unwrap(), 1);
}

#[test]
fn access_crossing_into_an_unmapped_page_faults_there_and_changes_nothing() {
    let (mut sim, _, a, _, _) = system();
    let err = sim.write(a, A_BASE + 4094, &[1, 2, 3, 4]).unwrap_err();
    let MemError::Fault(msg) = err else {
        panic!("{err}")
    };
    assert_eq!(
        msg.kind,
        FaultKind::VmFault {
            vaddr: A_BASE + 4096,
            access: Access::Write,
            present: false
        }
    );
    sim.resume(a).unwrap();
    let mut buf = [9; 2];
    sim.read(a, A_BASE + 4094, &mut buf).unwrap();
    assert_eq!(buf, [0, 0], "partial write of a faulting access");
}

#[test]
fn access_spanning_two_mapped_pages_is_split_across_frames() {
    let mut sim = Sim::new();
    let a = sim.create_pd("a", 1);
    let fs = sim.create_frames(a, 2).unwrap();
    // Map the frames in reverse order so contiguity in memory cannot fake the result.
    sim.map_own(a, fs[1], A_BASE, CapRights::READ_WRITE)
        .unwrap();
    sim.map_own(a, fs[0], A_BASE + 4096, CapRights::READ_WRITE)
        .unwrap();
    sim.write_u64(a, A_BASE + 4092, 0x0807_0605_0403_0201)
        .unwrap();
    let f1 = sim.frame_of(SlotRef::new(a, fs[1])).unwrap();
    let f0 = sim.frame_of(SlotRef::new(a, fs[0])).unwrap();
    assert_eq!(&sim.frame_bytes(f1).unwrap()[4092..], &[1, 2, 3, 4]);
    assert_eq!(&sim.frame_bytes(f0).unwrap()[..4], &[5, 6, 7, 8]);
}

#[test]
fn fault_without_handler_is_logged_and_stops_the_pd() {
    let mut sim = Sim::new();
    let a = sim.create_pd("a", 1);
    assert!(sim.read_u32(a, 0).is_err());
    assert_eq!(sim.fault_log().len(), 1);
    assert_eq!(sim.fault_log()[0].pd, a);
    assert_eq!(sim.pd_state(a).unwrap(), PdState::Stopped);
    assert_eq!(sim.counters().faults, 1);
}

#[test]
fn peek_reports_without_recording() {
    let (mut sim, parent, a, _, _) = system();
    let mut b = [0; 4];
    assert!(sim.peek(a, 0x1000, &mut b).is_err());
    assert!(sim.fault_log().is_empty());
    assert_eq!(sim.pending_faults(parent).unwrap().len(), 0);
    sim.write_u32(a, A_BASE, 0xabcd).unwrap();
    sim.peek(a, A_BASE, &mut b).unwrap();
    assert_eq!(u32::from_le_bytes(b), 0xabcd);
}
