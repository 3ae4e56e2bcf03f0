//! Notifications: a badge word that signals OR into, and wait/poll that take and clear it.
//!
//! The model has no threads, so `wait` never blocks: with nothing pending it returns `None` where
//! a real thread would block until the next signal.

use crate::cap::Cap;
use crate::error::Error;
use crate::ids::{NtfnId, SlotRef, UntypedId};
use crate::sim::Sim;

/// A notification object.
#[derive(Debug)]
pub(crate) struct NtfnObj {
    /// OR of the badges signalled since the last wait or poll.
    pub word: u64,
    /// Whether a signal arrived since the last wait or poll (a badge of 0 still counts).
    pub pending: bool,
    /// Capabilities to the notification plus IRQ bindings to it.
    pub refs: u32,
    /// The untyped region the notification was retyped from, if any.
    pub untyped: Option<UntypedId>,
}

impl NtfnObj {
    pub fn new(untyped: Option<UntypedId>) -> Self {
        Self {
            word: 0,
            pending: false,
            refs: 0,
            untyped,
        }
    }
}

impl Sim {
    pub(crate) fn ntfn_add_ref(&mut self, id: NtfnId) {
        if let Some(Some(n)) = self.ntfns.get_mut(id.0 as usize) {
            n.refs += 1;
        }
    }

    /// Drops a reference; the last one destroys the notification.
    pub(crate) fn ntfn_drop_ref(&mut self, id: NtfnId) {
        if let Some(entry) = self.ntfns.get_mut(id.0 as usize)
            && let Some(n) = entry
        {
            n.refs = n.refs.saturating_sub(1);
            if n.refs == 0 {
                *entry = None;
            }
        }
    }

    /// ORs `badge` into a live notification (the kernel's `sendSignal`).
    pub(crate) fn ntfn_signal(&mut self, id: NtfnId, badge: u64) {
        if let Some(Some(n)) = self.ntfns.get_mut(id.0 as usize) {
            n.word |= badge;
            n.pending = true;
            self.counters.signals += 1;
        }
    }

    /// The notification capability in `slot` and its badge, if it has the right `write`/`read`.
    fn ntfn_cap(&self, slot: SlotRef, need_write: bool) -> Result<(NtfnId, u64), Error> {
        match self.slot(slot)?.cap {
            Some(Cap::Notification { id, badge, rights })
                if (need_write && rights.write) || (!need_write && rights.read) =>
            {
                Ok((id, badge))
            }
            // seL4 answers an empty slot or a wrong type with a capability fault; the model
            // reports it to the caller as an invalid capability.
            _ => Err(Error::InvalidCapability),
        }
    }

    /// `seL4_Signal`: ORs the badge of the capability in `slot` into its notification.
    ///
    /// # Errors
    /// `InvalidCapability` if the slot holds no notification capability with the write right
    /// (seL4 drops such a signal silently; the model makes the misuse visible); lookup errors.
    pub fn signal(&mut self, slot: SlotRef) -> Result<(), Error> {
        match self.ntfn_cap(slot, true) {
            Ok((id, badge)) => {
                self.ntfn_signal(id, badge);
                Ok(())
            }
            Err(e) => self.refuse(e),
        }
    }

    /// `seL4_Wait`: takes and clears the pending word; `None` if nothing is pending (a real
    /// thread would block).
    ///
    /// # Errors
    /// `InvalidCapability` without a notification capability with the read right; lookup errors.
    pub fn wait(&mut self, slot: SlotRef) -> Result<Option<u64>, Error> {
        let id = match self.ntfn_cap(slot, false) {
            Ok((id, _)) => id,
            Err(e) => return self.refuse(e),
        };
        let taken = self.take_word(id);
        if taken.is_some() {
            self.counters.waits += 1;
        } else {
            self.counters.waits_blocked += 1;
        }
        Ok(taken)
    }

    /// `seL4_Poll`: takes and clears the pending word, 0 if nothing is pending (as seL4 returns a
    /// badge of 0, so a poll cannot tell "nothing" from a signal with badge 0).
    ///
    /// # Errors
    /// As [`Sim::wait`].
    pub fn poll(&mut self, slot: SlotRef) -> Result<u64, Error> {
        let id = match self.ntfn_cap(slot, false) {
            Ok((id, _)) => id,
            Err(e) => return self.refuse(e),
        };
        self.counters.polls += 1;
        Ok(self.take_word(id).unwrap_or(0))
    }

    /// The pending word of the notification `slot` names, without clearing it (for assertions).
    ///
    /// # Errors
    /// `InvalidCapability` if the slot holds no notification capability; lookup errors.
    pub fn pending_word(&self, slot: SlotRef) -> Result<Option<u64>, Error> {
        let Some(Cap::Notification { id, .. }) = self.slot(slot)?.cap else {
            return Err(Error::InvalidCapability);
        };
        Ok(self
            .ntfns
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .and_then(|n| n.pending.then_some(n.word)))
    }

    /// Whether the notification object still exists (a capability or an IRQ binding names it).
    #[must_use]
    pub fn notification_exists(&self, id: NtfnId) -> bool {
        self.ntfns.get(id.0 as usize).is_some_and(Option::is_some)
    }

    /// The badge of the notification capability in `slot`.
    ///
    /// # Errors
    /// `InvalidCapability` if the slot holds no notification capability; lookup errors.
    pub fn badge(&self, slot: SlotRef) -> Result<u64, Error> {
        match self.slot(slot)?.cap {
            Some(Cap::Notification { badge, .. }) => Ok(badge),
            _ => Err(Error::InvalidCapability),
        }
    }

    fn take_word(&mut self, id: NtfnId) -> Option<u64> {
        let n = self.ntfns.get_mut(id.0 as usize).and_then(Option::as_mut)?;
        if !n.pending {
            return None;
        }
        n.pending = false;
        Some(core::mem::take(&mut n.word))
    }
}
