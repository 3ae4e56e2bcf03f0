//! The capability derivation tree: links between slots and seL4's parent relation.
//!
//! seL4 keeps the CDT as a list ordered so that descendants follow their ancestor, with the
//! parent relation computed by `isMDBParentOf`. This model keeps an explicit tree whose shape is
//! the same: a new capability becomes the child of the nearest capability on its source's
//! ancestor chain (source included) that `isMDBParentOf` accepts, so a copy of a non-revocable
//! copy becomes its sibling, as the manual's "Capability Derivation Tree" section describes.

use crate::cap::Cap;
use crate::cspace::Mdb;
use crate::ids::SlotRef;
use crate::sim::Sim;

impl Sim {
    /// seL4's `sameRegionAs`: whether capability `b` is to (part of) what capability `a` covers.
    pub(crate) fn same_region(&self, a: &Cap, b: &Cap) -> bool {
        match (a, b) {
            (Cap::Untyped { id: ua }, Cap::Untyped { id: ub }) => ua == ub,
            (Cap::Untyped { id: ua }, Cap::Frame { id, .. }) => self
                .frames
                .get(id.0 as usize)
                .and_then(Option::as_ref)
                .is_some_and(|f| f.untyped == Some(*ua)),
            (Cap::Untyped { id: ua }, Cap::Notification { id, .. }) => self
                .ntfns
                .get(id.0 as usize)
                .and_then(Option::as_ref)
                .is_some_and(|n| n.untyped == Some(*ua)),
            (Cap::Frame { id: fa, .. }, Cap::Frame { id: fb, .. }) => fa == fb,
            (Cap::Notification { id: na, .. }, Cap::Notification { id: nb, .. }) => na == nb,
            (Cap::VSpace { id: va }, Cap::VSpace { id: vb }) => va == vb,
            (Cap::IrqHandler { irq: a }, Cap::IrqHandler { irq: b }) => a == b,
            _ => false,
        }
    }

    /// seL4's `isMDBParentOf(a, b)` for a capability `b` with CDT flag `b_first_badged`.
    pub(crate) fn is_mdb_parent_of(&self, a: SlotRef, b: &Cap, b_first_badged: bool) -> bool {
        let Ok(slot) = self.slot(a) else { return false };
        let Some(a_cap) = slot.cap else { return false };
        if !slot.mdb.revocable || !self.same_region(&a_cap, b) {
            return false;
        }
        match (a_cap, b) {
            (Cap::Notification { badge: 0, .. }, _) => true,
            (Cap::Notification { badge: ba, .. }, Cap::Notification { badge: bb, .. }) => {
                ba == *bb && !b_first_badged
            }
            (Cap::Notification { .. }, _) => false,
            _ => true,
        }
    }

    /// The CDT parent a capability derived from `src` gets: the nearest of `src` and its
    /// ancestors that is an MDB parent of the new capability.
    pub(crate) fn parent_for(
        &self,
        src: SlotRef,
        new: &Cap,
        first_badged: bool,
    ) -> Option<SlotRef> {
        let mut candidate = Some(src);
        while let Some(c) = candidate {
            if self.is_mdb_parent_of(c, new, first_badged) {
                return Some(c);
            }
            candidate = self.slot(c).ok().and_then(|s| s.mdb.parent);
        }
        None
    }

    /// Makes `child` (an unlinked slot) the first child of `parent`, or a root.
    pub(crate) fn cdt_link(&mut self, parent: Option<SlotRef>, child: SlotRef) {
        let old_first = parent
            .and_then(|p| self.slot(p).ok())
            .and_then(|s| s.mdb.first_child);
        if let Ok(c) = self.slot_mut(child) {
            c.mdb.parent = parent;
            c.mdb.prev_sib = None;
            c.mdb.next_sib = old_first;
        }
        if let Some(f) = old_first
            && let Ok(s) = self.slot_mut(f)
        {
            s.mdb.prev_sib = Some(child);
        }
        if let Some(p) = parent
            && let Ok(s) = self.slot_mut(p)
        {
            s.mdb.first_child = Some(child);
        }
    }

    /// Removes `node` from the tree; its children move up to its parent (as removing a node from
    /// seL4's ordered list does). Its own links are cleared.
    pub(crate) fn cdt_unlink(&mut self, node: SlotRef) {
        let Ok(slot) = self.slot(node) else { return };
        let mdb = slot.mdb;
        // Detach from the sibling list.
        if let Some(p) = mdb.prev_sib {
            if let Ok(s) = self.slot_mut(p) {
                s.mdb.next_sib = mdb.next_sib;
            }
        } else if let Some(parent) = mdb.parent
            && let Ok(s) = self.slot_mut(parent)
        {
            s.mdb.first_child = mdb.next_sib;
        }
        if let Some(n) = mdb.next_sib
            && let Ok(s) = self.slot_mut(n)
        {
            s.mdb.prev_sib = mdb.prev_sib;
        }
        // Promote the children.
        for child in self.cdt_children(node) {
            self.cdt_link(mdb.parent, child);
        }
        if let Ok(s) = self.slot_mut(node) {
            s.mdb = Mdb::default();
        }
    }

    /// The direct CDT children of `node`.
    pub(crate) fn cdt_children(&self, node: SlotRef) -> Vec<SlotRef> {
        let mut out = Vec::new();
        let mut next = self.slot(node).ok().and_then(|s| s.mdb.first_child);
        while let Some(c) = next {
            out.push(c);
            next = self.slot(c).ok().and_then(|s| s.mdb.next_sib);
        }
        out
    }

    /// Every CDT descendant of `node`, deepest first (so deleting them in order never promotes).
    pub(crate) fn cdt_descendants(&self, node: SlotRef) -> Vec<SlotRef> {
        let mut out = Vec::new();
        let mut stack = vec![(node, false)];
        while let Some((n, expanded)) = stack.pop() {
            if expanded {
                if n != node {
                    out.push(n);
                }
                continue;
            }
            stack.push((n, true));
            for c in self.cdt_children(n) {
                stack.push((c, false));
            }
        }
        out
    }

    /// The CDT children of the capability in `slot`, as slots (empty for an empty slot).
    ///
    /// # Errors
    /// [`crate::Error::NoSuchPd`], or [`crate::Error::FailedLookup`] for a slot outside the
    /// CSpace.
    pub fn children(&self, slot: SlotRef) -> Result<Vec<SlotRef>, crate::Error> {
        self.slot(slot)?;
        Ok(self.cdt_children(slot))
    }
}
