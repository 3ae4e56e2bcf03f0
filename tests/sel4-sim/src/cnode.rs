//! CNode invocations: `CNode_Copy`, `CNode_Mint`, `CNode_Delete`, `CNode_Revoke`.
//!
//! Checks run in the order of seL4 5.0's `decodeCNodeInvocation`: destination lookup, destination
//! empty (`DeleteFirst`), source lookup, source non-empty (`FailedLookup`), then derivation.
//! Deleting or revoking an empty slot succeeds, as in seL4 (`cteDelete` on a null capability
//! does nothing and reports success), so misuse there is visible only in the counters and in the
//! slot staying empty; the model follows the kernel rather than inventing an error.

use crate::cap::Cap;
use crate::cspace::Mdb;
use crate::error::Error;
use crate::ids::SlotRef;
use crate::rights::CapRights;
use crate::sim::Sim;

impl Sim {
    /// `CNode_Copy`: derives a copy of `src` with its rights masked by `rights` into the empty
    /// slot `dest`. A copy of a frame capability is unmapped.
    ///
    /// # Errors
    /// `FailedLookup` (bad slot or empty source), `DeleteFirst` (occupied destination),
    /// `RevokeFirst` (untyped with children), `NoSuchPd`.
    pub fn copy(&mut self, src: SlotRef, dest: SlotRef, rights: CapRights) -> Result<(), Error> {
        match self.derive(src, dest, rights, None) {
            Ok(()) => {
                self.counters.copies += 1;
                Ok(())
            }
            Err(e) => self.refuse(e),
        }
    }

    /// `CNode_Mint`: like [`Sim::copy`], and sets the badge of a notification capability.
    /// Minting from an already badged notification capability is `IllegalOperation`, as seL4's
    /// `updateCapData` yields a null capability then; the badge is ignored for other types.
    ///
    /// # Errors
    /// As [`Sim::copy`], plus `IllegalOperation` for a badged source notification.
    pub fn mint(
        &mut self,
        src: SlotRef,
        dest: SlotRef,
        rights: CapRights,
        badge: u64,
    ) -> Result<(), Error> {
        match self.derive(src, dest, rights, Some(badge)) {
            Ok(()) => {
                self.counters.mints += 1;
                Ok(())
            }
            Err(e) => self.refuse(e),
        }
    }

    /// [`Sim::copy`] into the lowest empty slot of `dest_pd`; returns that slot.
    ///
    /// # Errors
    /// As [`Sim::copy`], plus `NotEnoughMemory` when `dest_pd`'s CSpace is full.
    pub fn copy_to_free(
        &mut self,
        src: SlotRef,
        dest_pd: crate::PdId,
        rights: CapRights,
    ) -> Result<crate::CapPtr, Error> {
        let slot = match self.free_slot(dest_pd) {
            Ok(s) => s,
            Err(e) => return self.refuse(e),
        };
        self.copy(src, SlotRef::new(dest_pd, slot), rights)?;
        Ok(slot)
    }

    /// [`Sim::mint`] into the lowest empty slot of `dest_pd`; returns that slot.
    ///
    /// # Errors
    /// As [`Sim::mint`], plus `NotEnoughMemory` when `dest_pd`'s CSpace is full.
    pub fn mint_to_free(
        &mut self,
        src: SlotRef,
        dest_pd: crate::PdId,
        rights: CapRights,
        badge: u64,
    ) -> Result<crate::CapPtr, Error> {
        let slot = match self.free_slot(dest_pd) {
            Ok(s) => s,
            Err(e) => return self.refuse(e),
        };
        self.mint(src, SlotRef::new(dest_pd, slot), rights, badge)?;
        Ok(slot)
    }

    /// `CNode_Delete`: deletes the capability in `slot`. A mapped frame capability loses its
    /// mapping; the last capability to an object destroys it. An empty slot is a successful no-op.
    ///
    /// # Errors
    /// `FailedLookup` for a slot outside the CSpace, `NoSuchPd`.
    pub fn delete(&mut self, slot: SlotRef) -> Result<(), Error> {
        let cap = match self.slot(slot) {
            Ok(s) => s.cap,
            Err(e) => return self.refuse(e),
        };
        if cap.is_some() {
            self.delete_cap(slot);
        }
        self.counters.deletes += 1;
        Ok(())
    }

    /// `CNode_Revoke`: deletes every CDT descendant of the capability in `slot`, not the
    /// capability itself. Returns how many capabilities were deleted. An empty slot, or a
    /// capability without descendants, is a successful no-op.
    ///
    /// # Errors
    /// `FailedLookup` for a slot outside the CSpace, `NoSuchPd`.
    pub fn revoke(&mut self, slot: SlotRef) -> Result<usize, Error> {
        if let Err(e) = self.slot(slot) {
            return self.refuse(e);
        }
        let victims = self.cdt_descendants(slot);
        for v in &victims {
            self.delete_cap(*v);
        }
        self.counters.revokes += 1;
        self.counters.revoked_caps += victims.len() as u64;
        Ok(victims.len())
    }

    /// The checks and the insertion shared by copy and mint.
    fn derive(
        &mut self,
        src: SlotRef,
        dest: SlotRef,
        rights: CapRights,
        badge: Option<u64>,
    ) -> Result<(), Error> {
        if self.slot(dest)?.cap.is_some() {
            return Err(Error::DeleteFirst);
        }
        let src_cap = self.slot(src)?.cap.ok_or(Error::FailedLookup)?;
        let masked = mask_rights(src_cap, rights);
        let updated = match (masked, badge) {
            (
                Cap::Notification {
                    badge: 0,
                    id,
                    rights,
                },
                Some(b),
            ) => Cap::Notification {
                id,
                badge: b,
                rights,
            },
            (Cap::Notification { .. }, Some(_)) => return Err(Error::IllegalOperation),
            (c, _) => c,
        };
        let new_cap = match updated {
            Cap::Untyped { .. } => {
                if !self.cdt_children(src).is_empty() {
                    return Err(Error::RevokeFirst);
                }
                updated
            }
            Cap::Frame { id, rights, .. } => Cap::Frame {
                id,
                rights,
                mapped: None,
            },
            c => c,
        };
        let revocable = match (new_cap, src_cap) {
            (Cap::Notification { badge: a, .. }, Cap::Notification { badge: b, .. }) => a != b,
            // IRQ handler capabilities come from IRQ control (not modelled as a capability:
            // see `Sim::create_irq_handler`), so a derived one is never revocable.
            (Cap::Untyped { .. }, _) => true,
            _ => false,
        };
        let parent = self.parent_for(src, &new_cap, revocable);
        self.insert_cap(dest, new_cap, parent, revocable);
        Ok(())
    }

    /// Puts `cap` into the empty slot `dest` under `parent` and counts the new reference.
    pub(crate) fn insert_cap(
        &mut self,
        dest: SlotRef,
        cap: Cap,
        parent: Option<SlotRef>,
        revocable: bool,
    ) {
        self.set_cap(dest, Some(cap));
        if let Ok(s) = self.slot_mut(dest) {
            s.mdb = Mdb {
                revocable,
                first_badged: revocable,
                ..Mdb::default()
            };
        }
        self.cdt_link(parent, dest);
        self.add_ref(&cap);
    }

    /// Deletes the (present) capability in `slot`: finalises it, unlinks it, empties the slot.
    pub(crate) fn delete_cap(&mut self, slot: SlotRef) {
        let Some(cap) = self.slot(slot).ok().and_then(|s| s.cap) else {
            return;
        };
        let last = self.is_last_ref(&cap);
        if let Cap::Frame {
            id,
            mapped: Some(at),
            ..
        } = cap
        {
            if last || !self.config.sel4_5_0_x86_unmap_only_final {
                self.remove_mapping(at.vspace, at.vaddr);
            } else {
                self.orphan_mapping(at.vspace, at.vaddr, id);
            }
        }
        self.cdt_unlink(slot);
        self.set_cap(slot, None);
        self.drop_ref(&cap);
    }

    fn add_ref(&mut self, cap: &Cap) {
        match *cap {
            Cap::Frame { id, .. } => {
                if let Some(Some(f)) = self.frames.get_mut(id.0 as usize) {
                    f.caps += 1;
                }
            }
            Cap::Notification { id, .. } => self.ntfn_add_ref(id),
            Cap::Untyped { id } => {
                if let Some(Some(u)) = self.untypeds.get_mut(id.0 as usize) {
                    u.caps += 1;
                }
            }
            Cap::IrqHandler { irq } => {
                if let Some(s) = self.irqs.get_mut(&irq) {
                    s.handler_caps += 1;
                }
            }
            Cap::VSpace { .. } => {}
        }
    }

    fn is_last_ref(&self, cap: &Cap) -> bool {
        match *cap {
            Cap::Frame { id, .. } => self
                .frames
                .get(id.0 as usize)
                .and_then(Option::as_ref)
                .is_some_and(|f| f.caps <= 1),
            Cap::Notification { id, .. } => self
                .ntfns
                .get(id.0 as usize)
                .and_then(Option::as_ref)
                .is_some_and(|n| n.refs <= 1),
            Cap::Untyped { id } => self
                .untypeds
                .get(id.0 as usize)
                .and_then(Option::as_ref)
                .is_some_and(|u| u.caps <= 1),
            Cap::IrqHandler { irq } => self.irqs.get(&irq).is_some_and(|s| s.handler_caps <= 1),
            // VSpaces live as long as their PD.
            Cap::VSpace { .. } => false,
        }
    }

    /// Drops one reference; the last one destroys the object (seL4's `finaliseCap` with `final`).
    fn drop_ref(&mut self, cap: &Cap) {
        match *cap {
            Cap::Frame { id, .. } => self.frame_drop_ref(id),
            Cap::Notification { id, .. } => self.ntfn_drop_ref(id),
            Cap::Untyped { id } => {
                if let Some(entry) = self.untypeds.get_mut(id.0 as usize)
                    && let Some(u) = entry
                {
                    u.caps = u.caps.saturating_sub(1);
                    if u.caps == 0 {
                        *entry = None;
                    }
                }
            }
            Cap::IrqHandler { irq } => {
                let gone = self.irqs.get_mut(&irq).is_some_and(|s| {
                    s.handler_caps = s.handler_caps.saturating_sub(1);
                    s.handler_caps == 0
                });
                if gone {
                    // The IRQ becomes inactive and its notification binding goes with it.
                    if let Some(state) = self.irqs.remove(&irq)
                        && let Some((ntfn, _)) = state.bound
                    {
                        self.ntfn_drop_ref(ntfn);
                    }
                }
            }
            Cap::VSpace { .. } => {}
        }
    }
}

/// seL4's `maskCapRights`: intersect the rights a capability carries with `mask`.
fn mask_rights(cap: Cap, mask: CapRights) -> Cap {
    match cap {
        Cap::Frame { id, rights, mapped } => Cap::Frame {
            id,
            rights: rights.mask(mask),
            mapped,
        },
        Cap::Notification { id, badge, rights } => Cap::Notification {
            id,
            badge,
            rights: rights.intersect(mask),
        },
        c => c,
    }
}
