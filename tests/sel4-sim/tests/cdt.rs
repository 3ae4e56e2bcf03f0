//! The capability derivation tree against the seL4 manual: copy, mint, delete, revoke.

use sel4_sim::{Cap, CapPtr, CapRights, Error, ObjectType, Sim, SlotRef, VmRights};

fn setup() -> (Sim, sel4_sim::PdId, SlotRef) {
    let mut sim = Sim::new();
    let pd = sim.create_pd("root", 200);
    let frame = sim.create_frames(pd, 1).unwrap()[0];
    (sim, pd, SlotRef::new(pd, frame))
}

#[test]
fn revoke_deletes_every_copy_but_not_the_original() {
    let (mut sim, pd, orig) = setup();
    let a = sim.copy_to_free(orig, pd, CapRights::ALL).unwrap();
    let b = sim.copy_to_free(orig, pd, CapRights::ALL).unwrap();
    assert_eq!(sim.revoke(orig).unwrap(), 2);
    assert_eq!(sim.cap(SlotRef::new(pd, a)).unwrap(), None);
    assert_eq!(sim.cap(SlotRef::new(pd, b)).unwrap(), None);
    assert!(
        matches!(sim.cap(orig).unwrap(), Some(Cap::Frame { .. })),
        "revoke kept the target"
    );
    assert_eq!(sim.counters().revoked_caps, 2);
}

#[test]
fn revoking_a_copy_leaves_its_siblings() {
    let (mut sim, pd, orig) = setup();
    let a = SlotRef::new(pd, sim.copy_to_free(orig, pd, CapRights::ALL).unwrap());
    let b = SlotRef::new(pd, sim.copy_to_free(orig, pd, CapRights::ALL).unwrap());
    // A copy of a copy is a sibling (frame copies are not revocable, manual §3.1.2).
    let c = SlotRef::new(pd, sim.copy_to_free(a, pd, CapRights::ALL).unwrap());
    assert_eq!(sim.cdt_parent(c).unwrap(), Some(orig));
    assert_eq!(sim.revoke(a).unwrap(), 0);
    for s in [a, b, c] {
        assert!(
            sim.cap(s).unwrap().is_some(),
            "{s} was deleted by revoking a sibling"
        );
    }
}

#[test]
fn deleting_a_copy_leaves_original_and_siblings() {
    let (mut sim, pd, orig) = setup();
    let a = SlotRef::new(pd, sim.copy_to_free(orig, pd, CapRights::ALL).unwrap());
    let b = SlotRef::new(pd, sim.copy_to_free(orig, pd, CapRights::ALL).unwrap());
    sim.delete(a).unwrap();
    assert_eq!(sim.cap(a).unwrap(), None);
    assert!(sim.cap(b).unwrap().is_some());
    assert_eq!(sim.children(orig).unwrap(), vec![b]);
}

#[test]
fn copy_into_occupied_slot_is_delete_first() {
    let (mut sim, pd, orig) = setup();
    let other = sim.create_notification(pd).unwrap();
    let before = sim.cap(SlotRef::new(pd, other)).unwrap();
    assert_eq!(
        sim.copy(orig, SlotRef::new(pd, other), CapRights::ALL),
        Err(Error::DeleteFirst)
    );
    assert_eq!(
        sim.cap(SlotRef::new(pd, other)).unwrap(),
        before,
        "occupant overwritten"
    );
    assert_eq!(sim.counters().copies, 0);
    assert_eq!(sim.counters().errors, 1);
}

#[test]
fn copy_from_empty_or_out_of_range_slot_is_failed_lookup() {
    let (mut sim, pd, _) = setup();
    let dest = SlotRef::new(pd, sim.free_slot(pd).unwrap());
    let empty = SlotRef::new(pd, CapPtr(4000));
    assert_eq!(
        sim.copy(empty, dest, CapRights::ALL),
        Err(Error::FailedLookup)
    );
    let outside = SlotRef::new(pd, CapPtr(1 << 20));
    assert_eq!(
        sim.copy(outside, dest, CapRights::ALL),
        Err(Error::FailedLookup)
    );
    assert_eq!(sim.delete(outside), Err(Error::FailedLookup));
}

#[test]
fn delete_and_revoke_of_an_empty_slot_succeed_as_in_sel4() {
    // seL4's cteDelete on a null capability finalises nothing and returns success.
    let (mut sim, pd, _) = setup();
    let empty = SlotRef::new(pd, CapPtr(3000));
    assert_eq!(sim.delete(empty), Ok(()));
    assert_eq!(sim.revoke(empty), Ok(0));
    assert_eq!(sim.cap(empty).unwrap(), None);
    assert_eq!(sim.counters().deletes, 1);
    assert_eq!(sim.counters().revokes, 1);
}

#[test]
fn mint_reduces_rights_and_cannot_add_them() {
    let (mut sim, pd, orig) = setup();
    let ro = SlotRef::new(pd, sim.mint_to_free(orig, pd, CapRights::READ, 0).unwrap());
    let Some(Cap::Frame { rights, .. }) = sim.cap(ro).unwrap() else {
        panic!("not a frame")
    };
    assert_eq!(rights, VmRights::ReadOnly);
    let again = SlotRef::new(pd, sim.mint_to_free(ro, pd, CapRights::ALL, 0).unwrap());
    let Some(Cap::Frame { rights, .. }) = sim.cap(again).unwrap() else {
        panic!("not a frame")
    };
    assert_eq!(rights, VmRights::ReadOnly, "mint added write back");

    let n = SlotRef::new(pd, sim.create_notification(pd).unwrap());
    let w = SlotRef::new(pd, sim.mint_to_free(n, pd, CapRights::WRITE, 5).unwrap());
    let w2 = SlotRef::new(pd, sim.copy_to_free(w, pd, CapRights::ALL).unwrap());
    let Some(Cap::Notification { rights, badge, .. }) = sim.cap(w2).unwrap() else {
        panic!()
    };
    assert_eq!(rights, CapRights::WRITE);
    assert_eq!(badge, 5);
    assert_eq!(
        sim.wait(w2),
        Err(Error::InvalidCapability),
        "write-only cap could wait"
    );
}

#[test]
fn minting_a_badged_notification_is_illegal() {
    let mut sim = Sim::new();
    let pd = sim.create_pd("p", 1);
    let n = SlotRef::new(pd, sim.create_notification(pd).unwrap());
    let b = SlotRef::new(pd, sim.mint_to_free(n, pd, CapRights::ALL, 1).unwrap());
    let dest = SlotRef::new(pd, sim.free_slot(pd).unwrap());
    assert_eq!(
        sim.mint(b, dest, CapRights::ALL, 2),
        Err(Error::IllegalOperation)
    );
    assert_eq!(sim.cap(dest).unwrap(), None);
}

#[test]
fn badged_mint_is_a_new_original_for_its_copies() {
    let mut sim = Sim::new();
    let pd = sim.create_pd("p", 1);
    let n = SlotRef::new(pd, sim.create_notification(pd).unwrap());
    let b1 = SlotRef::new(pd, sim.mint_to_free(n, pd, CapRights::ALL, 1).unwrap());
    let b2 = SlotRef::new(pd, sim.mint_to_free(n, pd, CapRights::ALL, 2).unwrap());
    let c1 = SlotRef::new(pd, sim.copy_to_free(b1, pd, CapRights::ALL).unwrap());
    assert_eq!(sim.cdt_parent(c1).unwrap(), Some(b1));
    assert_eq!(sim.revoke(b1).unwrap(), 1);
    assert_eq!(sim.cap(c1).unwrap(), None);
    assert!(sim.cap(b2).unwrap().is_some(), "other badge revoked");
    assert_eq!(
        sim.revoke(n).unwrap(),
        2,
        "original revokes both badged mints"
    );
}

#[test]
fn deleting_a_parent_promotes_its_children() {
    let (mut sim, pd, orig) = setup();
    let ut = sim.cdt_parent(orig).unwrap().unwrap();
    let a = SlotRef::new(pd, sim.copy_to_free(orig, pd, CapRights::ALL).unwrap());
    sim.delete(orig).unwrap();
    assert_eq!(sim.cdt_parent(a).unwrap(), Some(ut));
    assert!(
        sim.cap(a).unwrap().is_some(),
        "deleting the original deleted its copy"
    );
    // The frame lives on through the copy; revoking the untyped reaches it.
    assert_eq!(sim.revoke(ut).unwrap(), 1);
    assert_eq!(sim.cap(a).unwrap(), None);
}

#[test]
fn untyped_with_children_cannot_be_copied_and_is_reusable_after_revoke() {
    let mut sim = Sim::new();
    let pd = sim.create_pd("p", 1);
    let ut = SlotRef::new(pd, sim.create_untyped(pd, 13).unwrap());
    let dest = SlotRef::new(pd, CapPtr(100));
    let frames = sim.retype(ut, ObjectType::Frame4K, 2, dest).unwrap();
    assert_eq!(frames, vec![CapPtr(100), CapPtr(101)]);
    let free = SlotRef::new(pd, sim.free_slot(pd).unwrap());
    assert_eq!(sim.copy(ut, free, CapRights::ALL), Err(Error::RevokeFirst));
    let more = SlotRef::new(pd, CapPtr(200));
    assert_eq!(
        sim.retype(ut, ObjectType::Frame4K, 1, more),
        Err(Error::NotEnoughMemory)
    );
    assert_eq!(
        sim.retype(ut, ObjectType::Frame4K, 1, dest),
        Err(Error::DeleteFirst)
    );
    let first_paddr = sim.frame_paddr(dest).unwrap();
    let old_frame = sim.frame_of(dest).unwrap();
    assert_eq!(sim.revoke(ut).unwrap(), 2);
    assert!(!sim.frame_exists(old_frame), "revoked frame not reclaimed");
    // With no children left the region is reset and the memory is reused.
    sim.retype(ut, ObjectType::Frame4K, 2, more).unwrap();
    assert_eq!(sim.frame_paddr(more).unwrap(), first_paddr);
}

#[test]
fn retype_gives_zeroed_frames_at_distinct_addresses() {
    let mut sim = Sim::new();
    let pd = sim.create_pd("p", 1);
    let caps = sim.create_frames(pd, 300).unwrap();
    let mut addrs: Vec<u64> = caps
        .iter()
        .map(|c| sim.frame_paddr(SlotRef::new(pd, *c)).unwrap())
        .collect();
    assert!(addrs.iter().all(|a| a % 4096 == 0));
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), 300);
    let f = sim.frame_of(SlotRef::new(pd, caps[299])).unwrap();
    assert!(sim.frame_bytes(f).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn vspace_copies_are_children_of_the_pds_own_cap() {
    let mut sim = Sim::new();
    let a = sim.create_pd("a", 1);
    let b = sim.create_pd("b", 1);
    let vs = SlotRef::new(a, sel4_sim::SLOT_VSPACE);
    let copy = SlotRef::new(b, sim.copy_to_free(vs, b, CapRights::ALL).unwrap());
    assert_eq!(sim.cdt_parent(copy).unwrap(), Some(vs));
    assert_eq!(sim.revoke(vs).unwrap(), 1);
    assert_eq!(sim.cap(copy).unwrap(), None);
}
