//! 4 KiB frames: objects with real content, and what tests may ask about them.

use crate::cap::Cap;
use crate::error::Error;
use crate::ids::{FrameId, SlotRef, UntypedId};
use crate::sim::Sim;

/// Size of a frame in bytes: the seL4 x86-64 small page.
pub use sel4::PAGE_SIZE;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_BITS: u32 = PAGE_SIZE.trailing_zeros();

/// A frame object: its simulated physical address and its bytes.
#[derive(Debug)]
pub(crate) struct FrameObj {
    /// Simulated physical address (page aligned, unique).
    pub paddr: u64,
    /// The frame's content; every mapping of the frame reads and writes these bytes.
    pub data: Box<[u8; PAGE_SIZE]>,
    /// Capabilities to the frame.
    pub caps: u32,
    /// Mappings left behind by deleted capabilities (only with the seL4 5.0.0 quirk).
    pub orphan_maps: u32,
    /// The untyped region the frame was retyped from.
    pub untyped: Option<UntypedId>,
}

impl FrameObj {
    pub fn new(paddr: u64, untyped: Option<UntypedId>) -> Self {
        Self {
            paddr,
            data: Box::new([0; PAGE_SIZE]),
            caps: 0,
            orphan_maps: 0,
            untyped,
        }
    }
}

impl Sim {
    pub(crate) fn frame_obj(&self, id: FrameId) -> Option<&FrameObj> {
        self.frames.get(id.0 as usize).and_then(Option::as_ref)
    }

    pub(crate) fn frame_obj_mut(&mut self, id: FrameId) -> Option<&mut FrameObj> {
        self.frames.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    /// Drops a capability reference; a frame nothing refers to any more is reclaimed.
    pub(crate) fn frame_drop_ref(&mut self, id: FrameId) {
        if let Some(entry) = self.frames.get_mut(id.0 as usize)
            && let Some(f) = entry
        {
            f.caps = f.caps.saturating_sub(1);
            if f.caps == 0 && f.orphan_maps == 0 {
                *entry = None;
            }
        }
    }

    /// The frame a frame capability names.
    ///
    /// # Errors
    /// `InvalidCapability` if the slot holds no frame capability; lookup errors.
    pub fn frame_of(&self, slot: SlotRef) -> Result<FrameId, Error> {
        match self.slot(slot)?.cap {
            Some(Cap::Frame { id, .. }) => Ok(id),
            _ => Err(Error::InvalidCapability),
        }
    }

    /// `X86_Page_GetAddress`: the simulated physical address of the frame a capability names.
    ///
    /// # Errors
    /// As [`Sim::frame_of`].
    pub fn frame_paddr(&self, slot: SlotRef) -> Result<u64, Error> {
        let id = self.frame_of(slot)?;
        self.frame_obj(id)
            .map(|f| f.paddr)
            .ok_or(Error::InvalidCapability)
    }

    /// Whether the frame object still exists (some capability or mapping refers to it).
    #[must_use]
    pub fn frame_exists(&self, id: FrameId) -> bool {
        self.frame_obj(id).is_some()
    }

    /// The frame's bytes as the kernel sees them (for assertions; PDs go through their VSpace).
    #[must_use]
    pub fn frame_bytes(&self, id: FrameId) -> Option<&[u8; PAGE_SIZE]> {
        self.frame_obj(id).map(|f| &*f.data)
    }

    /// Writes `data` into the frame at `offset` by physical address, as a hypervisor writes
    /// guest memory: no PD's mapping is involved (a page the guest unmapped everywhere, such as
    /// one lent to the host, is still written). False for a missing frame or a span past its end.
    pub fn frame_write(&mut self, id: FrameId, offset: usize, data: &[u8]) -> bool {
        let Some(f) = self.frame_obj_mut(id) else {
            return false;
        };
        match offset.checked_add(data.len()) {
            Some(end) if end <= PAGE_SIZE => {
                f.data[offset..end].copy_from_slice(data);
                true
            }
            _ => false,
        }
    }
}
