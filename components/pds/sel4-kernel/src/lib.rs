//! The driver's Kernel seam on seL4: pool pages as original frame capabilities, grants as mapped
//! copies, revocation.
//!
//! The root task gives the driver PD its pool as frame capabilities in slots `POOL_BASE + page`
//! (the originals of the driver's grants), each mapped in the driver at `pool_vaddr + page * 4096`,
//! and a capability to each client's VSpace (`cap_vspace`). Where the pool lies, and each
//! client's capability slot, window, channel and control page, come from the driver's generated
//! configuration (`pd_runtime::config::Driver`). A grant copies the original into the page's next
//! copy slot (`pd_runtime::layout::slot::copy`) and maps the copy into the client's window; a
//! revoke takes every copy away again.
//!
//! Revocation does not rely on the capability derivation tree, for two reasons measured on
//! seL4 5.0.0 under QEMU:
//! - deleting a frame capability unmaps it only when it is the last capability to the frame
//!   (`Mode_finaliseCap` checks `final`): with the pool capability alive, revoking it deleted the
//!   client's copy but left the client's mapping, and the client still read the page;
//! - only a revocable capability (the one untyped retype made) has CDT children: when the pool is
//!   backed by a region that the host also maps, the driver holds a copy, and revoking it deleted
//!   nothing (the next grant found its copy slot still full).
//!
//! So a revoke unmaps every copy this seam mapped (it knows them: one slot per page and
//! mapping, `slot::copy`), explicitly, and keeps the unmapped copies in their slots: the page's
//! next grant maps a kept copy instead of copying the original again. A client never holds a
//! capability (the driver maps copies through its capability to the client's VSpace), so an
//! unmapped copy in the driver's CSpace gives no client a way back to the page. Rescind to
//! reuse costs two invocations per page: `Page_Unmap` at the revoke, `Page_Map` at the next
//! grant (copy, map, unmap, delete and revoke before).
//!
//! A page lent to the host (the Dynamic Memory balloon) loses the driver's own mapping too:
//! `unmap_own` unmaps the original capability (`seL4_X86_Page_Unmap`; the root task mapped the
//! pool through it), `map_own` maps it again at the same address through the PD's own VSpace
//! capability (`slot::VSPACE`). While a page is unmapped the seam refuses every access to it, so
//! the driver cannot fault on memory the host owns.
#![no_std]

use core::sync::atomic::{AtomicU32, Ordering};

use pd_runtime::config::{Driver, DriverClient};
use pd_runtime::layout::slot;
use pd_runtime::{Channel, irq_ack, notify, own_cnode};
use sel4::mem::Region;
use sel4::{Error, Frame, Rights, VSpace, Word};
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ids::{ClientId, PageId};
use vmbus_driver::kernel::{Kernel, KernelError};

/// Most pool pages (system.xml's pool: 8192 pages, 32 MiB).
pub const MAX_POOL: usize = 8192;
/// Most simultaneous mappings of one page (one per client mapping; docs/lifetime.md keeps it
/// small).
pub const MAX_MAPPINGS: usize = slot::MAX_MAPPINGS as usize;

/// A fixed-size bit set (pages taken, copies mapped), kept small enough for a PD's stack.
#[derive(Debug)]
struct Bits<const WORDS: usize>([u64; WORDS]);

impl<const WORDS: usize> Bits<WORDS> {
    const fn new() -> Self {
        Bits([0; WORDS])
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize, on: bool) {
        if let Some(w) = self.0.get_mut(i / 64) {
            if on {
                *w |= 1 << (i % 64);
            } else {
                *w &= !(1 << (i % 64));
            }
        }
    }
}

/// The seam.
#[derive(Debug)]
pub struct Sel4Kernel {
    pool: Region,
    pages: usize,
    taken: Bits<{ MAX_POOL / 64 }>,
    /// Pages taken at least once: a page taken again is a reused page.
    ever_taken: Bits<{ MAX_POOL / 64 }>,
    reused: usize,
    /// Bit `page * MAX_MAPPINGS + k`: copy `k` of `page` is mapped into a client.
    mapped: Bits<{ MAX_POOL * MAX_MAPPINGS / 64 }>,
    /// Bit `page * MAX_MAPPINGS + k`: copy `k` of `page` is in its slot (mapped or kept
    /// unmapped for the next grant).
    copied: Bits<{ MAX_POOL * MAX_MAPPINGS / 64 }>,
    /// Pages whose own mapping in the driver is removed (lent to the host).
    unmapped: Bits<{ MAX_POOL / 64 }>,
    /// Pages free in the pool.
    free: usize,
    clients: &'static [DriverClient],
    irq: Option<Channel>,
}

/// seL4's `FailedLookup` code: what an access through the removed mapping of a lent page is
/// refused with.
const FAILED_LOOKUP: u32 = 6;

fn refused(e: Error) -> KernelError {
    KernelError::Refused(u32::try_from(e.code()).unwrap_or(u32::MAX))
}

impl Sel4Kernel {
    /// A seam over the driver's pool and clients as its configuration gives them (`ClientId(i)`
    /// is entry `i` of `config.clients`); `irq` is the channel of the VMBus interrupt, if any.
    /// `None` when the pool lies outside the run-time mapping range or is larger than
    /// [`MAX_POOL`].
    pub fn new(config: &'static Driver, irq: Option<Channel>) -> Option<Self> {
        let pages = config.pool_pages;
        if pages > MAX_POOL {
            return None;
        }
        let pool = Region::new(config.pool_vaddr, pages * PAGE_SIZE)?;
        Some(Sel4Kernel {
            pool,
            pages,
            taken: Bits::new(),
            ever_taken: Bits::new(),
            reused: 0,
            mapped: Bits::new(),
            copied: Bits::new(),
            unmapped: Bits::new(),
            free: pages,
            clients: config.clients,
            irq,
        })
    }

    /// How many times a page that had been returned to the pool was taken again (a reused page:
    /// the lifetime rule's revoke and zeroing happened in between).
    pub fn reused_pages(&self) -> usize {
        self.reused
    }

    fn page(&self, page: PageId) -> Result<usize, KernelError> {
        let i = page.0 as usize;
        if i < self.pages {
            Ok(i)
        } else {
            Err(KernelError::NoSuchPage)
        }
    }

    fn original(i: usize) -> Word {
        slot::POOL_BASE + i as Word
    }

    fn page_offset(&self, page: PageId, offset: usize, len: usize) -> Result<usize, KernelError> {
        let i = self.page(page)?;
        if self.unmapped.get(i) {
            // Lent to the host: the driver's mapping is gone, an access would fault.
            return Err(KernelError::Refused(FAILED_LOOKUP));
        }
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(i * PAGE_SIZE + offset),
            _ => Err(KernelError::OutOfBounds),
        }
    }

    fn control(
        &self,
        client: ClientId,
        offset: usize,
        len: usize,
    ) -> Result<(Region, usize), KernelError> {
        let c = self
            .clients
            .get(usize::from(client.0))
            .ok_or(KernelError::NoSuchClient)?;
        let page = Region::new(c.control_vaddr, PAGE_SIZE).ok_or(KernelError::NoSuchClient)?;
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok((page, offset)),
            _ => Err(KernelError::OutOfBounds),
        }
    }

    fn copy_slot(&self, page: usize, k: usize) -> Word {
        slot::copy(self.pages as Word, page as Word, k as Word)
    }
}

impl Kernel for Sel4Kernel {
    fn take_page(&mut self) -> Result<PageId, KernelError> {
        let i = (0..self.pages)
            .find(|&i| !self.taken.get(i))
            .ok_or(KernelError::PoolEmpty)?;
        self.taken.set(i, true);
        self.free -= 1;
        if self.ever_taken.get(i) {
            self.reused += 1;
        }
        self.ever_taken.set(i, true);
        Ok(PageId(i as u32))
    }

    fn return_page(&mut self, page: PageId) -> Result<(), KernelError> {
        let i = self.page(page)?;
        if self.unmapped.get(i) {
            return Err(KernelError::Refused(FAILED_LOOKUP));
        }
        if self.taken.get(i) {
            self.taken.set(i, false);
            self.free += 1;
        }
        Ok(())
    }

    fn page_frame(&self, page: PageId) -> Result<u64, KernelError> {
        let i = self.page(page)?;
        Frame(Self::original(i))
            .paddr()
            .map(|p| p >> 12)
            .map_err(refused)
    }

    fn write_page(&mut self, page: PageId, offset: usize, data: &[u8]) -> Result<(), KernelError> {
        let at = self.page_offset(page, offset, data.len())?;
        if self.pool.write_bytes(at, data) {
            Ok(())
        } else {
            Err(KernelError::OutOfBounds)
        }
    }

    fn read_page(&self, page: PageId, offset: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        let at = self.page_offset(page, offset, buf.len())?;
        if self.pool.read_bytes(at, buf) {
            Ok(())
        } else {
            Err(KernelError::OutOfBounds)
        }
    }

    /// The OR is a `lock or` on the driver's own mapping of the pool page, so a host (or the
    /// hypervisor) clearing bits of the same word at the same time loses none of ours.
    #[allow(unsafe_code)]
    fn or_page_u32(&mut self, page: PageId, offset: usize, bits: u32) -> Result<(), KernelError> {
        if !offset.is_multiple_of(4) {
            return Err(KernelError::OutOfBounds);
        }
        let at = self.page_offset(page, offset, 4)?;
        let addr = self.pool.base() + at;
        // SAFETY: `page_offset` checked that the 4 bytes lie inside this pool page and that
        // the page is mapped in the driver (a lent page is refused above); the pool is mapped
        // read-write for the driver's whole life in the run-time range, outside every Rust
        // object, and `addr` is 4-byte aligned (the pool is page-aligned, `offset` checked).
        // Others write the word only with atomic or plain aligned stores, so treating it as an
        // `AtomicU32` for this one access is sound; no reference outlives the call.
        let word = unsafe { AtomicU32::from_ptr(addr as *mut u32) };
        word.fetch_or(bits.to_le(), Ordering::SeqCst);
        Ok(())
    }

    fn zero_page(&mut self, page: PageId) -> Result<(), KernelError> {
        let at = self.page_offset(page, 0, PAGE_SIZE)?;
        for off in (0..PAGE_SIZE).step_by(8) {
            self.pool.write_u64(at + off, 0);
        }
        Ok(())
    }

    fn grant(
        &mut self,
        page: PageId,
        client: ClientId,
        window_page: usize,
    ) -> Result<(), KernelError> {
        let i = self.page(page)?;
        let c = self
            .clients
            .get(usize::from(client.0))
            .ok_or(KernelError::NoSuchClient)?;
        if window_page >= c.window_pages {
            return Err(KernelError::OutsideWindow);
        }
        // A kept copy first (no copy needed), else an empty slot.
        let bit = |k: usize| i * MAX_MAPPINGS + k;
        let k = (0..MAX_MAPPINGS)
            .find(|&k| !self.mapped.get(bit(k)) && self.copied.get(bit(k)))
            .or_else(|| (0..MAX_MAPPINGS).find(|&k| !self.mapped.get(bit(k))))
            .ok_or(KernelError::WindowSlotBusy)?;
        let copy = self.copy_slot(i, k);
        if !self.copied.get(bit(k)) {
            let cn = own_cnode();
            cn.copy(copy, cn, Self::original(i), Rights::READ_WRITE)
                .map_err(refused)?;
            self.copied.set(bit(k), true);
        }
        let vaddr = (c.window_vaddr + window_page * PAGE_SIZE) as Word;
        let vspace = VSpace(slot::VSPACE_CAP_BASE + c.vspace_slot);
        if let Err(e) = Frame(copy).map(vspace, vaddr, Rights::READ_WRITE) {
            // The copy stays in its slot, unmapped, for the next grant.
            return Err(if e == Error::DeleteFirst {
                KernelError::WindowSlotBusy
            } else {
                refused(e)
            });
        }
        self.mapped.set(bit(k), true);
        Ok(())
    }

    /// `Page_Unmap` of every copy mapped into a client; the copies stay in their slots for the
    /// next grant. Any error of an unmap is returned as it is: the driver then keeps the page
    /// out of the pool for good (a client may still reach it), whatever the code.
    fn revoke(&mut self, page: PageId) -> Result<(), KernelError> {
        let i = self.page(page)?;
        for k in 0..MAX_MAPPINGS {
            if self.mapped.get(i * MAX_MAPPINGS + k) {
                Frame(self.copy_slot(i, k)).unmap().map_err(refused)?;
                self.mapped.set(i * MAX_MAPPINGS + k, false);
            }
        }
        Ok(())
    }

    fn pool_pages(&self) -> usize {
        self.pages
    }

    fn free_pages(&self) -> usize {
        self.free
    }

    /// `seL4_X86_Page_Unmap` of the original capability, which holds the driver's mapping.
    fn unmap_own(&mut self, page: PageId) -> Result<(), KernelError> {
        let i = self.page(page)?;
        if self.unmapped.get(i) {
            return Ok(());
        }
        // Refuse accesses from now on, even if the unmap fails half way: the driver then
        // quarantines the page for good.
        self.unmapped.set(i, true);
        Frame(Self::original(i)).unmap().map_err(refused)
    }

    /// `seL4_X86_Page_Map` of the original capability at its pool address, through the PD's
    /// own VSpace capability.
    fn map_own(&mut self, page: PageId) -> Result<(), KernelError> {
        let i = self.page(page)?;
        if !self.unmapped.get(i) {
            return Ok(());
        }
        let vaddr = (self.pool.base() + i * PAGE_SIZE) as Word;
        Frame(Self::original(i))
            .map(VSpace(slot::VSPACE), vaddr, Rights::READ_WRITE)
            .map_err(refused)?;
        self.unmapped.set(i, false);
        Ok(())
    }

    fn notify(&mut self, client: ClientId) -> Result<(), KernelError> {
        let c = self
            .clients
            .get(usize::from(client.0))
            .ok_or(KernelError::NoSuchClient)?;
        notify(Channel(c.channel));
        Ok(())
    }

    fn control_read(
        &self,
        client: ClientId,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), KernelError> {
        let (page, at) = self.control(client, offset, buf.len())?;
        if page.read_bytes(at, buf) {
            Ok(())
        } else {
            Err(KernelError::OutOfBounds)
        }
    }

    fn control_write(
        &mut self,
        client: ClientId,
        offset: usize,
        data: &[u8],
    ) -> Result<(), KernelError> {
        let (page, at) = self.control(client, offset, data.len())?;
        if page.write_bytes(at, data) {
            Ok(())
        } else {
            Err(KernelError::OutOfBounds)
        }
    }

    fn ack_irq(&mut self) -> Result<(), KernelError> {
        match self.irq {
            Some(ch) => irq_ack(ch).map_err(refused),
            None => Ok(()),
        }
    }
}
