//! Notifications (badges OR, wait and poll clear) and interrupts (no redelivery before ack).

use sel4_sim::{Cap, CapRights, Error, IrqOutcome, Sim, SlotRef};

#[test]
fn badges_or_together_and_wait_clears() {
    let mut sim = Sim::new();
    let rx = sim.create_pd("rx", 1);
    let tx = sim.create_pd("tx", 1);
    let n = SlotRef::new(rx, sim.create_notification(rx).unwrap());
    let b1 = SlotRef::new(
        tx,
        sim.mint_to_free(n, tx, CapRights::WRITE, 0b0001).unwrap(),
    );
    let b4 = SlotRef::new(
        tx,
        sim.mint_to_free(n, tx, CapRights::WRITE, 0b0100).unwrap(),
    );
    sim.signal(b1).unwrap();
    sim.signal(b4).unwrap();
    sim.signal(b1).unwrap();
    assert_eq!(sim.wait(n).unwrap(), Some(0b0101));
    assert_eq!(sim.wait(n).unwrap(), None, "wait did not clear");
    assert_eq!(sim.counters().signals, 3);
    assert_eq!(sim.counters().waits_blocked, 1);
}

#[test]
fn poll_takes_the_word_or_returns_zero() {
    let mut sim = Sim::new();
    let p = sim.create_pd("p", 1);
    let n = SlotRef::new(p, sim.create_notification(p).unwrap());
    let b = SlotRef::new(
        p,
        sim.mint_to_free(n, p, CapRights::WRITE, 1 << 63).unwrap(),
    );
    assert_eq!(sim.poll(n).unwrap(), 0);
    sim.signal(b).unwrap();
    assert_eq!(sim.pending_word(n).unwrap(), Some(1 << 63));
    assert_eq!(sim.poll(n).unwrap(), 1 << 63);
    assert_eq!(sim.pending_word(n).unwrap(), None);
}

#[test]
fn unbadged_signal_is_still_pending() {
    let mut sim = Sim::new();
    let p = sim.create_pd("p", 1);
    let n = SlotRef::new(p, sim.create_notification(p).unwrap());
    sim.signal(n).unwrap();
    assert_eq!(sim.wait(n).unwrap(), Some(0));
}

#[test]
fn signalling_needs_write_and_waiting_needs_read() {
    let mut sim = Sim::new();
    let p = sim.create_pd("p", 1);
    let n = SlotRef::new(p, sim.create_notification(p).unwrap());
    let ro = SlotRef::new(p, sim.mint_to_free(n, p, CapRights::READ, 2).unwrap());
    let wo = SlotRef::new(p, sim.mint_to_free(n, p, CapRights::WRITE, 4).unwrap());
    assert_eq!(sim.signal(ro), Err(Error::InvalidCapability));
    assert_eq!(sim.wait(wo), Err(Error::InvalidCapability));
    let empty = SlotRef::new(p, sim.free_slot(p).unwrap());
    assert_eq!(sim.signal(empty), Err(Error::InvalidCapability));
    assert_eq!(sim.pending_word(n).unwrap(), None);
}

#[test]
fn deleting_the_last_notification_cap_destroys_it_and_revoke_cuts_signallers() {
    let mut sim = Sim::new();
    let p = sim.create_pd("p", 1);
    let n = SlotRef::new(p, sim.create_notification(p).unwrap());
    let b = SlotRef::new(p, sim.mint_to_free(n, p, CapRights::WRITE, 8).unwrap());
    let Some(Cap::Notification { id, .. }) = sim.cap(n).unwrap() else {
        panic!()
    };
    sim.revoke(n).unwrap();
    assert_eq!(
        sim.signal(b),
        Err(Error::InvalidCapability),
        "revoked signaller still works"
    );
    assert!(sim.notification_exists(id));
    sim.delete(n).unwrap();
    assert_eq!(sim.cap(n).unwrap(), None);
    assert!(
        !sim.notification_exists(id),
        "last capability deleted, object survives"
    );
}

fn irq_system() -> (Sim, SlotRef, SlotRef) {
    let mut sim = Sim::new();
    let d = sim.create_pd("driver", 250);
    let n = SlotRef::new(d, sim.create_notification(d).unwrap());
    let badged = SlotRef::new(d, sim.mint_to_free(n, d, CapRights::WRITE, 1 << 5).unwrap());
    let h = SlotRef::new(d, sim.create_irq_handler(d, 7).unwrap());
    sim.irq_set_notification(h, badged).unwrap();
    (sim, n, h)
}

#[test]
fn irq_is_not_delivered_again_before_ack() {
    let (mut sim, n, h) = irq_system();
    assert_eq!(sim.raise_irq(7), IrqOutcome::Delivered);
    assert_eq!(sim.wait(n).unwrap(), Some(1 << 5));
    assert_eq!(sim.raise_irq(7), IrqOutcome::Latched);
    assert_eq!(sim.raise_irq(7), IrqOutcome::Latched);
    assert_eq!(sim.wait(n).unwrap(), None, "delivered while masked");
    sim.irq_ack(h).unwrap();
    // The latched interrupt arrives at the ack, once, and masks the line again.
    assert_eq!(sim.wait(n).unwrap(), Some(1 << 5));
    assert!(sim.irq_masked(7));
    assert_eq!(sim.raise_irq(7), IrqOutcome::Latched);
    assert_eq!(sim.counters().irqs_delivered, 2);
    sim.irq_ack(h).unwrap();
    sim.irq_ack(h).unwrap();
    assert_eq!(sim.raise_irq(7), IrqOutcome::Delivered);
}

#[test]
fn an_irq_has_one_handler_until_it_is_deleted() {
    let (mut sim, n, h) = irq_system();
    assert_eq!(sim.create_irq_handler(h.pd, 7), Err(Error::RevokeFirst));
    assert_eq!(sim.create_irq_handler(h.pd, 224), Err(Error::RangeError));
    let Some(Cap::Notification { id, .. }) = sim.cap(n).unwrap() else {
        panic!()
    };
    // The binding keeps the notification alive although its minted capability is revoked.
    sim.revoke(n).unwrap();
    sim.delete(n).unwrap();
    assert!(sim.notification_exists(id));
    sim.delete(h).unwrap();
    assert!(
        !sim.notification_exists(id),
        "unbinding the last reference kept the object"
    );
    assert_eq!(sim.raise_irq(7), IrqOutcome::NoHandler);
    let h2 = SlotRef::new(h.pd, sim.create_irq_handler(h.pd, 7).unwrap());
    assert_eq!(sim.raise_irq(7), IrqOutcome::Undelivered);
    sim.irq_ack(h2).unwrap();
}

#[test]
fn irq_binding_needs_a_signalling_notification_cap() {
    let (mut sim, n, h) = irq_system();
    let ro = SlotRef::new(n.pd, sim.mint_to_free(n, n.pd, CapRights::READ, 3).unwrap());
    assert_eq!(
        sim.irq_set_notification(h, ro),
        Err(Error::InvalidCapability)
    );
    assert_eq!(
        sim.irq_set_notification(n, n),
        Err(Error::InvalidCapability)
    );
    assert_eq!(sim.irq_ack(n), Err(Error::InvalidCapability));
}
