//! Untyped memory and `Untyped_Retype` into frames and notifications.

use crate::cap::Cap;
use crate::error::Error;
use crate::frames::{FrameObj, PAGE_BITS};
use crate::ids::{CapPtr, FrameId, NtfnId, PdId, SlotRef, UntypedId};
use crate::notification::NtfnObj;
use crate::rights::{CapRights, VmRights};
use crate::sim::Sim;

/// seL4's `CONFIG_RETYPE_FAN_OUT_LIMIT`: most objects one retype may create.
pub const RETYPE_FAN_OUT_LIMIT: u32 = 256;
/// log2 of a notification object's size on x86-64 (`seL4_NotificationBits`).
pub const NOTIFICATION_BITS: u32 = 5;

/// Object types `Untyped_Retype` can create in this model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectType {
    /// `seL4_X86_4K`: a 4 KiB frame (zero filled, as seL4 clears retyped memory).
    Frame4K,
    /// `seL4_NotificationObject`.
    Notification,
}

impl ObjectType {
    const fn size_bits(self) -> u32 {
        match self {
            Self::Frame4K => PAGE_BITS,
            Self::Notification => NOTIFICATION_BITS,
        }
    }
}

/// An untyped region: a power-of-two range of simulated physical memory with a watermark.
#[derive(Debug)]
pub(crate) struct UntypedObj {
    pub base: u64,
    pub size_bits: u32,
    /// Bytes used from the start of the region (seL4's `capFreeIndex`, in bytes).
    pub free_index: u64,
    /// Capabilities to the region.
    pub caps: u32,
}

impl Sim {
    /// Creates an untyped region of `2^size_bits` bytes (12..=40) from simulated physical memory,
    /// its original capability in the lowest free slot of `pd`; returns that slot.
    ///
    /// # Errors
    /// `RangeError` for a size outside 12..=40, `NotEnoughMemory` for a full CSpace, `NoSuchPd`.
    pub fn create_untyped(&mut self, pd: PdId, size_bits: u32) -> Result<CapPtr, Error> {
        if !(PAGE_BITS..=40).contains(&size_bits) {
            return self.refuse(Error::RangeError);
        }
        let slot = match self.free_slot(pd) {
            Ok(s) => s,
            Err(e) => return self.refuse(e),
        };
        let size = 1u64 << size_bits;
        let base = self.next_paddr.next_multiple_of(size);
        self.next_paddr = base + size;
        let id = UntypedId(u32::try_from(self.untypeds.len()).unwrap_or(u32::MAX));
        self.untypeds.push(Some(UntypedObj {
            base,
            size_bits,
            free_index: 0,
            caps: 0,
        }));
        self.insert_cap(SlotRef::new(pd, slot), Cap::Untyped { id }, None, true);
        Ok(slot)
    }

    /// `Untyped_Retype`: creates `count` objects of type `ty` from the untyped capability `ut`,
    /// their original capabilities in slots `dest, dest+1, ...` of `dest.pd`'s CSpace, as CDT
    /// children of `ut`. If `ut` has no children its watermark is reset first (seL4 reuses a
    /// fully revoked region); otherwise objects are placed after the watermark.
    ///
    /// # Errors
    /// `InvalidCapability` (not an untyped), `RangeError` (count 0 or above the fan-out limit,
    /// slots past the CSpace end), `DeleteFirst` (a destination slot is occupied),
    /// `NotEnoughMemory` (no room left), lookup errors.
    pub fn retype(
        &mut self,
        ut: SlotRef,
        ty: ObjectType,
        count: u32,
        dest: SlotRef,
    ) -> Result<Vec<CapPtr>, Error> {
        match self.retype_inner(ut, ty, count, dest) {
            Ok(v) => {
                self.counters.retypes += 1;
                Ok(v)
            }
            Err(e) => self.refuse(e),
        }
    }

    fn retype_inner(
        &mut self,
        ut: SlotRef,
        ty: ObjectType,
        count: u32,
        dest: SlotRef,
    ) -> Result<Vec<CapPtr>, Error> {
        let Some(Cap::Untyped { id }) = self.slot(ut)?.cap else {
            return Err(Error::InvalidCapability);
        };
        if count == 0 || count > RETYPE_FAN_OUT_LIMIT {
            return Err(Error::RangeError);
        }
        let cspace_len = self.pd(dest.pd)?.cspace.len();
        if dest.slot.0 == 0 || u64::from(dest.slot.0) + u64::from(count) > u64::from(cspace_len) {
            return Err(Error::RangeError);
        }
        let slots: Vec<CapPtr> = (dest.slot.0..dest.slot.0 + count).map(CapPtr).collect();
        for s in &slots {
            if self.slot(SlotRef::new(dest.pd, *s))?.cap.is_some() {
                return Err(Error::DeleteFirst);
            }
        }
        let reset = self.cdt_children(ut).is_empty();
        let u = self
            .untypeds
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::InvalidCapability)?;
        if reset {
            u.free_index = 0;
        }
        let obj_size = 1u64 << ty.size_bits();
        let start = u.free_index.next_multiple_of(obj_size);
        let needed = obj_size * u64::from(count);
        if start + needed > (1u64 << u.size_bits) {
            return Err(Error::NotEnoughMemory);
        }
        u.free_index = start + needed;
        let base = u.base + start;
        for (i, s) in slots.iter().enumerate() {
            let paddr = base + obj_size * i as u64;
            let cap = match ty {
                ObjectType::Frame4K => {
                    let fid = FrameId(u32::try_from(self.frames.len()).unwrap_or(u32::MAX));
                    self.frames.push(Some(FrameObj::new(paddr, Some(id))));
                    Cap::Frame {
                        id: fid,
                        rights: VmRights::ReadWrite,
                        mapped: None,
                    }
                }
                ObjectType::Notification => {
                    let nid = NtfnId(u32::try_from(self.ntfns.len()).unwrap_or(u32::MAX));
                    self.ntfns.push(Some(NtfnObj::new(Some(id))));
                    Cap::Notification {
                        id: nid,
                        badge: 0,
                        rights: CapRights::ALL,
                    }
                }
            };
            self.insert_cap(SlotRef::new(dest.pd, *s), cap, Some(ut), true);
        }
        Ok(slots)
    }

    /// Builder: `n` fresh zeroed frames for `pd`, retyped from a new untyped region whose
    /// capability also lands in `pd`'s CSpace. Returns the frames' original capabilities, which
    /// are in consecutive slots.
    ///
    /// # Errors
    /// `RangeError` for `n` of 0 or above [`RETYPE_FAN_OUT_LIMIT`] times 64, `NotEnoughMemory`
    /// when `pd`'s CSpace lacks room, `NoSuchPd`.
    pub fn create_frames(&mut self, pd: PdId, n: u32) -> Result<Vec<CapPtr>, Error> {
        if n == 0 || n > RETYPE_FAN_OUT_LIMIT * 64 {
            return self.refuse(Error::RangeError);
        }
        let size_bits = PAGE_BITS + n.next_power_of_two().trailing_zeros();
        let ut = self.create_untyped(pd, size_bits)?;
        let Some(first) = self.pd(pd)?.cspace.free_run(n) else {
            return self.refuse(Error::NotEnoughMemory);
        };
        let mut out = Vec::with_capacity(n as usize);
        let mut done = 0;
        while done < n {
            let chunk = (n - done).min(RETYPE_FAN_OUT_LIMIT);
            let dest = SlotRef::new(pd, CapPtr(first.0 + done));
            out.extend(self.retype(SlotRef::new(pd, ut), ObjectType::Frame4K, chunk, dest)?);
            done += chunk;
        }
        Ok(out)
    }

    /// Builder: a new notification whose original capability (all rights, unbadged) lands in the
    /// lowest free slot of `pd`. It comes from the kernel's own memory, not from an untyped the
    /// test created.
    ///
    /// # Errors
    /// `NotEnoughMemory` for a full CSpace, `NoSuchPd`.
    pub fn create_notification(&mut self, pd: PdId) -> Result<CapPtr, Error> {
        let slot = match self.free_slot(pd) {
            Ok(s) => s,
            Err(e) => return self.refuse(e),
        };
        let id = NtfnId(u32::try_from(self.ntfns.len()).unwrap_or(u32::MAX));
        self.ntfns.push(Some(NtfnObj::new(None)));
        let cap = Cap::Notification {
            id,
            badge: 0,
            rights: CapRights::ALL,
        };
        self.insert_cap(SlotRef::new(pd, slot), cap, None, true);
        Ok(slot)
    }
}
