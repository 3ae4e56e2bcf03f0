//! Microkit-style wiring on top of the kernel model: each PD's notification, channels between
//! PDs, and memory regions shared by copying frame capabilities.
//!
//! Microkit gives every PD one notification; channel `id` of a PD is bit `id` of its badge, so a
//! PD that notifies its end of a channel signals the other PD's notification with the bit of the
//! other end's id. This is what instantiating a system description needs; protected procedure
//! calls are not modelled (no threads run in the simulation).

use crate::error::Error;
use crate::ids::{CapPtr, PdId, SlotRef};
use crate::rights::CapRights;
use crate::sim::{SLOT_VSPACE, Sim};

/// Highest Microkit channel id (`MICROKIT_MAX_CHANNELS` is 63: ids 0..=62).
pub const MAX_CHANNEL_ID: u8 = 62;

impl Sim {
    /// The PD's own notification (created on first use), the one its event loop waits on.
    ///
    /// # Errors
    /// `NoSuchPd`, or `NotEnoughMemory` when the CSpace is full.
    pub fn pd_notification(&mut self, pd: PdId) -> Result<CapPtr, Error> {
        if let Some(n) = self.pd(pd)?.notification {
            return Ok(n);
        }
        let n = self.create_notification(pd)?;
        self.pd_mut(pd)?.notification = Some(n);
        Ok(n)
    }

    /// Connects channel `a_id` of `a` with channel `b_id` of `b`: each end gets a write-only
    /// capability to the other's notification, badged with the bit of the other end's id.
    ///
    /// # Errors
    /// `InvalidArgument` for an id above [`MAX_CHANNEL_ID`], a channel to the PD itself, or an id
    /// already used in that PD; `NoSuchPd`; CSpace exhaustion.
    pub fn create_channel(&mut self, a: PdId, a_id: u8, b: PdId, b_id: u8) -> Result<(), Error> {
        if a == b || a_id > MAX_CHANNEL_ID || b_id > MAX_CHANNEL_ID {
            return self.refuse(Error::InvalidArgument);
        }
        if self.pd(a)?.channels.contains_key(&a_id) || self.pd(b)?.channels.contains_key(&b_id) {
            return self.refuse(Error::InvalidArgument);
        }
        let na = self.pd_notification(a)?;
        let nb = self.pd_notification(b)?;
        let to_b = self.mint_to_free(SlotRef::new(b, nb), a, CapRights::WRITE, 1 << b_id)?;
        let to_a = self.mint_to_free(SlotRef::new(a, na), b, CapRights::WRITE, 1 << a_id)?;
        self.pd_mut(a)?.channels.insert(a_id, to_b);
        self.pd_mut(b)?.channels.insert(b_id, to_a);
        Ok(())
    }

    /// The slot of `pd`'s capability that signals the other end of channel `ch`.
    ///
    /// # Errors
    /// `NoSuchPd`.
    pub fn channel_cap(&self, pd: PdId, ch: u8) -> Result<Option<CapPtr>, Error> {
        Ok(self.pd(pd)?.channels.get(&ch).copied())
    }

    /// `microkit_notify(ch)` from `pd`.
    ///
    /// # Errors
    /// `InvalidArgument` if `pd` has no channel `ch`; `NoSuchPd`.
    pub fn notify_channel(&mut self, pd: PdId, ch: u8) -> Result<(), Error> {
        let Some(cap) = self.pd(pd)?.channels.get(&ch).copied() else {
            return self.refuse(Error::InvalidArgument);
        };
        self.signal(SlotRef::new(pd, cap))
    }

    /// Microkit's event loop step for `pd`: the channel ids that notified it since the last call
    /// (bit `id` set for channel `id`), or `None` if nothing is pending.
    ///
    /// # Errors
    /// `NoSuchPd`, CSpace exhaustion (creating the notification on first use).
    pub fn pd_wait(&mut self, pd: PdId) -> Result<Option<u64>, Error> {
        let n = self.pd_notification(pd)?;
        self.wait(SlotRef::new(pd, n))
    }

    /// Maps a shared memory region into `pd`: copies each frame capability of `frames` (held by
    /// any PD, e.g. the one that created the region) into `pd`'s CSpace and maps the copies at
    /// consecutive pages from `vaddr` with `rights`. Returns the copies' slots. On an error the
    /// copies made so far are deleted again.
    ///
    /// # Errors
    /// As [`Sim::copy`] and [`Sim::map`].
    pub fn map_region(
        &mut self,
        frames: &[SlotRef],
        pd: PdId,
        vaddr: u64,
        rights: CapRights,
    ) -> Result<Vec<CapPtr>, Error> {
        let mut done = Vec::with_capacity(frames.len());
        for (i, f) in frames.iter().enumerate() {
            let at = (i as u64)
                .checked_mul(crate::PAGE_SIZE as u64)
                .and_then(|off| vaddr.checked_add(off));
            let result = match at {
                Some(at) => self.copy_to_free(*f, pd, rights).and_then(|c| {
                    let copy = SlotRef::new(pd, c);
                    match self.map(copy, SlotRef::new(pd, SLOT_VSPACE), at, rights) {
                        Ok(()) => Ok(c),
                        Err(e) => {
                            let _ = self.delete(copy);
                            Err(e)
                        }
                    }
                }),
                None => self.refuse(Error::InvalidArgument),
            };
            match result {
                Ok(c) => done.push(c),
                Err(e) => {
                    for c in done {
                        let _ = self.delete(SlotRef::new(pd, c));
                    }
                    return Err(e);
                }
            }
        }
        Ok(done)
    }
}
