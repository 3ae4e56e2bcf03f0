//! Allocation for the root task: free CSpace slots and kernel objects from untyped memory,
//! with a count of what was created.

use sel4::{BootInfo, CNode, Error, Untyped, Word, object_type as ot, slot};

/// Most untyped capabilities the root task looks at.
const MAX_UNTYPED: usize = 256;

/// Object kinds the root task creates (for the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Thread control block.
    Tcb,
    /// Endpoint.
    Endpoint,
    /// Notification.
    Notification,
    /// CNode.
    CNode,
    /// VSpace root (PML4).
    VSpace,
    /// Paging structure (PDPT, page directory or page table).
    Paging,
    /// 4 KiB frame.
    Frame,
}

/// Object counts by kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    /// Per [`Kind`], in declaration order.
    pub by_kind: [u32; 7],
}

impl Counts {
    /// Total objects.
    pub fn total(&self) -> u32 {
        self.by_kind.iter().sum()
    }
}

/// The allocator.
#[derive(Debug)]
pub struct Alloc {
    next_slot: Word,
    end_slot: Word,
    untyped: [(Word, bool); MAX_UNTYPED],
    n_untyped: usize,
    /// What was created so far.
    pub counts: Counts,
}

impl Alloc {
    /// Takes the empty slots and the RAM untypeds of the boot information.
    pub fn new(bi: &BootInfo) -> Self {
        let mut untyped = [(0, false); MAX_UNTYPED];
        let ut = bi.untyped();
        let mut n = 0;
        for i in 0..(ut.end - ut.start) as usize {
            if let Some(d) = bi.untyped_desc(i)
                && !d.is_device
                && n < MAX_UNTYPED
            {
                untyped[n] = (ut.start + i as Word, true);
                n += 1;
            }
        }
        Alloc {
            next_slot: bi.empty().start,
            end_slot: bi.empty().end,
            untyped,
            n_untyped: n,
            counts: Counts::default(),
        }
    }

    /// Bytes of RAM (non-device) untyped memory the boot information lists.
    pub fn ram_bytes(&self, bi: &BootInfo) -> u64 {
        (0..(bi.untyped().end - bi.untyped().start) as usize)
            .filter_map(|i| bi.untyped_desc(i))
            .filter(|d| !d.is_device && d.size_bits < 64)
            .map(|d| 1u64 << d.size_bits)
            .sum()
    }

    /// The root task's own CNode.
    pub fn root_cnode() -> CNode {
        CNode::own(slot::seL4_CapInitThreadCNode)
    }

    /// A free slot of the root CNode.
    pub fn slot(&mut self) -> Result<Word, Error> {
        if self.next_slot >= self.end_slot {
            return Err(Error::NotEnoughMemory);
        }
        self.next_slot += 1;
        Ok(self.next_slot - 1)
    }

    /// Creates one object and returns the slot of its capability.
    pub fn object(&mut self, kind: Kind, size_bits: Word) -> Result<Word, Error> {
        let ty = match kind {
            Kind::Tcb => ot::seL4_TCBObject,
            Kind::Endpoint => ot::seL4_EndpointObject,
            Kind::Notification => ot::seL4_NotificationObject,
            Kind::CNode => ot::seL4_CapTableObject,
            Kind::VSpace => ot::seL4_X64_PML4Object,
            Kind::Frame => ot::seL4_X86_4K,
            Kind::Paging => return Err(Error::InvalidArgument),
        };
        self.retype(kind, ty, size_bits)
    }

    /// Creates `count` frames whose capabilities occupy consecutive slots; returns the first.
    /// Frames come from untyped memory, which the kernel clears when it is retyped.
    pub fn frames(&mut self, count: Word) -> Result<Word, Error> {
        if self.end_slot - self.next_slot < count {
            return Err(Error::NotEnoughMemory);
        }
        let base = self.next_slot;
        self.next_slot += count;
        let mut done = 0;
        let mut i = 0;
        while done < count {
            if i >= self.n_untyped {
                return Err(Error::NotEnoughMemory);
            }
            let (cap, usable) = self.untyped[i];
            if !usable {
                i += 1;
                continue;
            }
            // As many as fit (at most the kernel's fan-out limit per call): halve the batch
            // until this untyped takes it.
            let mut n = (count - done).min(sel4::sys::config::CONFIG_RETYPE_FAN_OUT_LIMIT);
            loop {
                match Untyped(cap).retype(ot::seL4_X86_4K, 0, Self::root_cnode(), base + done, n) {
                    Ok(()) => {
                        done += n;
                        self.counts.by_kind[Kind::Frame as usize] += n as u32;
                        break;
                    }
                    Err(Error::NotEnoughMemory) if n > 1 => n /= 2,
                    Err(Error::NotEnoughMemory) => {
                        self.untyped[i].1 = false;
                        i += 1;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(base)
    }

    /// Creates one paging structure of the given sel4 object type.
    pub fn paging(&mut self, ty: Word) -> Result<Word, Error> {
        self.retype(Kind::Paging, ty, 0)
    }

    fn retype(&mut self, kind: Kind, ty: Word, size_bits: Word) -> Result<Word, Error> {
        let dest = self.slot()?;
        for i in 0..self.n_untyped {
            let (cap, usable) = self.untyped[i];
            if !usable {
                continue;
            }
            match Untyped(cap).retype(ty, size_bits, Self::root_cnode(), dest, 1) {
                Ok(()) => {
                    self.counts.by_kind[kind as usize] += 1;
                    return Ok(dest);
                }
                // Too little left in this one for this object: try the next.
                Err(Error::NotEnoughMemory) => {}
                Err(e) => return Err(e),
            }
            // An untyped too small for a 4 KiB frame cannot serve anything we create.
            if ty == ot::seL4_X86_4K {
                self.untyped[i].1 = false;
            }
        }
        Err(Error::NotEnoughMemory)
    }
}
