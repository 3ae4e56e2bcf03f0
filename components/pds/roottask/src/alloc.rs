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

/// One RAM untyped and how much of it our retypes used. seL4 places each new object at the
/// untyped's free index rounded up to the object's size, so the allocator can tell beforehand
/// whether an object fits, instead of asking the kernel and getting a refusal (which the debug
/// kernel prints) for every untyped that is full.
#[derive(Debug, Clone, Copy, Default)]
struct Ut {
    cap: Word,
    size: u64,
    used: u64,
}

impl Ut {
    /// How many of `n` objects of `2^bits` bytes fit.
    fn fit(&self, bits: u32, n: Word) -> Word {
        let start = self.used.next_multiple_of(1 << bits);
        if start >= self.size {
            0
        } else {
            n.min((self.size - start) >> bits)
        }
    }

    /// Accounts for `n` objects of `2^bits` bytes.
    fn take(&mut self, bits: u32, n: Word) {
        self.used = self.used.next_multiple_of(1 << bits) + (n << bits);
    }
}

/// log2 of the size of each object kind on x86-64 (seL4 5.0.0,
/// `libsel4/sel4_arch_include/x86_64/sel4/sel4_arch/constants.h`: seL4_TCBBits 11,
/// seL4_EndpointBits 4, seL4_NotificationBits 5, seL4_SlotBits 5, paging structures and frames
/// 12); a CNode of `2^radix` slots takes `radix + 5` bits.
fn object_bits(kind: Kind, size_bits: Word) -> u32 {
    match kind {
        Kind::Tcb => 11,
        Kind::Endpoint => 4,
        Kind::Notification => 5,
        Kind::CNode => size_bits as u32 + 5,
        Kind::VSpace | Kind::Paging | Kind::Frame => 12,
    }
}

/// The allocator.
#[derive(Debug)]
pub struct Alloc {
    next_slot: Word,
    end_slot: Word,
    untyped: [Ut; MAX_UNTYPED],
    n_untyped: usize,
    /// What was created so far.
    pub counts: Counts,
}

impl Alloc {
    /// Takes the empty slots and the RAM untypeds of the boot information.
    pub fn new(bi: &BootInfo) -> Self {
        let mut untyped = [Ut::default(); MAX_UNTYPED];
        let ut = bi.untyped();
        let mut n = 0;
        for i in 0..(ut.end - ut.start) as usize {
            if let Some(d) = bi.untyped_desc(i)
                && !d.is_device
                && d.size_bits < 64
                && n < MAX_UNTYPED
            {
                untyped[n] = Ut {
                    cap: ut.start + i as Word,
                    size: 1 << d.size_bits,
                    used: 0,
                };
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
            // As many as fit here, at most the kernel's fan-out limit per call.
            let want = (count - done).min(sel4::sys::config::CONFIG_RETYPE_FAN_OUT_LIMIT);
            let n = self.untyped[i].fit(12, want);
            if n == 0 {
                i += 1;
                continue;
            }
            let u = &mut self.untyped[i];
            match Untyped(u.cap).retype(ot::seL4_X86_4K, 0, Self::root_cnode(), base + done, n) {
                Ok(()) => {
                    u.take(12, n);
                    done += n;
                    self.counts.by_kind[Kind::Frame as usize] += n as u32;
                }
                // Our account disagrees with the kernel's: treat this untyped as full.
                Err(Error::NotEnoughMemory) => {
                    u.used = u.size;
                    i += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(base)
    }

    /// Creates one paging structure of the given sel4 object type.
    pub fn paging(&mut self, ty: Word) -> Result<Word, Error> {
        self.retype(Kind::Paging, ty, 0)
    }

    fn retype(&mut self, kind: Kind, ty: Word, size_bits: Word) -> Result<Word, Error> {
        let bits = object_bits(kind, size_bits);
        let dest = self.slot()?;
        for i in 0..self.n_untyped {
            let u = &mut self.untyped[i];
            if u.fit(bits, 1) == 0 {
                continue;
            }
            match Untyped(u.cap).retype(ty, size_bits, Self::root_cnode(), dest, 1) {
                Ok(()) => {
                    u.take(bits, 1);
                    self.counts.by_kind[kind as usize] += 1;
                    return Ok(dest);
                }
                // Our account disagrees with the kernel's: treat this untyped as full.
                Err(Error::NotEnoughMemory) => u.used = u.size,
                Err(e) => return Err(e),
            }
        }
        Err(Error::NotEnoughMemory)
    }
}
