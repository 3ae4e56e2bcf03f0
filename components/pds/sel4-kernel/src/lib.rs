//! The driver's Kernel seam on seL4: pool pages as original frame capabilities, grants as mapped
//! copies, revocation.
//!
//! The root task gives the driver PD its pool as original frame capabilities in slots
//! `POOL_BASE + page`, each mapped in the driver at `pool_vaddr + page * 4096`, and a capability
//! to each client's VSpace (`cap_vspace`). A grant copies the original into a free slot and maps
//! the copy into the client's window; a revoke unmaps every copy and then revokes the original.
//!
//! The explicit unmap matters on seL4 5.0.0: deleting a frame capability unmaps it only when it is
//! the last capability to the frame (`Mode_finaliseCap` checks `final`), so revoking the original
//! alone leaves client mappings in place (measured under QEMU: the client still read the page).
//! Revoking afterwards deletes the copies, so no stale capability can map the page again.
#![no_std]

use pd_runtime::layout::slot;
use pd_runtime::{Channel, irq_ack, notify, own_cnode};
use sel4::mem::Region;
use sel4::{Error, Frame, Rights, VSpace, Word};
use vmbus_driver::ids::{ClientId, PageId};
use vmbus_driver::kernel::{Kernel, KernelError, PAGE_SIZE};

/// Most pool pages (the slot range `POOL_BASE..FREE_BASE`).
pub const MAX_POOL: usize = (slot::FREE_BASE - slot::POOL_BASE) as usize;
/// Most simultaneous mappings of one page (one per client mapping; DESIGN.md keeps it small).
pub const MAX_MAPPINGS: usize = 2;
/// Free CSpace slots for copies.
const COPY_SLOTS: usize = (slot::COUNT - slot::FREE_BASE) as usize;

/// How the driver reaches one client.
#[derive(Debug, Clone, Copy)]
pub struct ClientWindow {
    /// Index of the client's `cap_vspace` (slot `VSPACE_CAP_BASE + index`).
    pub vspace_index: u8,
    /// First address of the client's window.
    pub window_vaddr: Word,
    /// Window size in pages.
    pub pages: usize,
    /// The driver's channel to the client.
    pub channel: Channel,
}

/// The seam.
#[derive(Debug)]
pub struct Sel4Kernel {
    pool: Region,
    pages: usize,
    taken: [bool; MAX_POOL],
    copies: [[Option<Word>; MAX_MAPPINGS]; MAX_POOL],
    slot_used: [bool; COPY_SLOTS],
    clients: &'static [ClientWindow],
    irq: Option<Channel>,
}

fn refused(e: Error) -> KernelError {
    KernelError::Refused(u32::try_from(e.code()).unwrap_or(u32::MAX))
}

impl Sel4Kernel {
    /// A seam over `pages` pool pages mapped at `pool_vaddr`, for `clients`; `irq` is the channel
    /// of the VMBus interrupt, if any. `None` when the pool lies outside the run-time mapping
    /// range or is larger than the slot layout allows.
    pub fn new(pool_vaddr: usize, pages: usize, clients: &'static [ClientWindow], irq: Option<Channel>) -> Option<Self> {
        if pages > MAX_POOL {
            return None;
        }
        let pool = Region::new(pool_vaddr, pages * PAGE_SIZE)?;
        Some(Sel4Kernel {
            pool,
            pages,
            taken: [false; MAX_POOL],
            copies: [[None; MAX_MAPPINGS]; MAX_POOL],
            slot_used: [false; COPY_SLOTS],
            clients,
            irq,
        })
    }

    fn page(&self, page: PageId) -> Result<usize, KernelError> {
        let i = page.0 as usize;
        if i < self.pages { Ok(i) } else { Err(KernelError::NoSuchPage) }
    }

    fn original(i: usize) -> Word {
        slot::POOL_BASE + i as Word
    }

    fn page_offset(&self, page: PageId, offset: usize, len: usize) -> Result<usize, KernelError> {
        let i = self.page(page)?;
        match offset.checked_add(len) {
            Some(end) if end <= PAGE_SIZE => Ok(i * PAGE_SIZE + offset),
            _ => Err(KernelError::OutOfBounds),
        }
    }

    fn take_slot(&mut self) -> Result<Word, KernelError> {
        let k = self.slot_used.iter().position(|u| !u).ok_or(KernelError::PoolEmpty)?;
        self.slot_used[k] = true;
        Ok(slot::FREE_BASE + k as Word)
    }

    fn free_slot(&mut self, s: Word) {
        if let Some(u) = s.checked_sub(slot::FREE_BASE).and_then(|k| self.slot_used.get_mut(k as usize)) {
            *u = false;
        }
    }
}

impl Kernel for Sel4Kernel {
    fn take_page(&mut self) -> Result<PageId, KernelError> {
        let i = self.taken[..self.pages].iter().position(|t| !t).ok_or(KernelError::PoolEmpty)?;
        self.taken[i] = true;
        Ok(PageId(i as u32))
    }

    fn return_page(&mut self, page: PageId) -> Result<(), KernelError> {
        let i = self.page(page)?;
        self.taken[i] = false;
        Ok(())
    }

    fn page_frame(&self, page: PageId) -> Result<u64, KernelError> {
        let i = self.page(page)?;
        Frame(Self::original(i)).paddr().map(|p| p >> 12).map_err(refused)
    }

    fn write_page(&mut self, page: PageId, offset: usize, data: &[u8]) -> Result<(), KernelError> {
        let at = self.page_offset(page, offset, data.len())?;
        if self.pool.write_bytes(at, data) { Ok(()) } else { Err(KernelError::OutOfBounds) }
    }

    fn read_page(&self, page: PageId, offset: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        let at = self.page_offset(page, offset, buf.len())?;
        if self.pool.read_bytes(at, buf) { Ok(()) } else { Err(KernelError::OutOfBounds) }
    }

    fn zero_page(&mut self, page: PageId) -> Result<(), KernelError> {
        let at = self.page_offset(page, 0, PAGE_SIZE)?;
        for off in (0..PAGE_SIZE).step_by(8) {
            self.pool.write_u64(at + off, 0);
        }
        Ok(())
    }

    fn grant(&mut self, page: PageId, client: ClientId, window_page: usize) -> Result<(), KernelError> {
        let i = self.page(page)?;
        let c = *self.clients.get(usize::from(client.0)).ok_or(KernelError::NoSuchClient)?;
        if window_page >= c.pages {
            return Err(KernelError::OutsideWindow);
        }
        let free = self.copies[i].iter().position(Option::is_none).ok_or(KernelError::WindowSlotBusy)?;
        let copy = self.take_slot()?;
        let cn = own_cnode();
        if let Err(e) = cn.copy(copy, cn, Self::original(i), Rights::READ_WRITE) {
            self.free_slot(copy);
            return Err(refused(e));
        }
        let vaddr = c.window_vaddr + (window_page * PAGE_SIZE) as Word;
        let vspace = VSpace(slot::VSPACE_CAP_BASE + Word::from(c.vspace_index));
        if let Err(e) = Frame(copy).map(vspace, vaddr, Rights::READ_WRITE) {
            let _ = cn.delete(copy);
            self.free_slot(copy);
            return Err(if e == Error::DeleteFirst { KernelError::WindowSlotBusy } else { refused(e) });
        }
        self.copies[i][free] = Some(copy);
        Ok(())
    }

    fn revoke(&mut self, page: PageId) -> Result<(), KernelError> {
        let i = self.page(page)?;
        for k in 0..MAX_MAPPINGS {
            if let Some(copy) = self.copies[i][k] {
                Frame(copy).unmap().map_err(refused)?;
            }
        }
        own_cnode().revoke(Self::original(i)).map_err(refused)?;
        for k in 0..MAX_MAPPINGS {
            if let Some(copy) = self.copies[i][k].take() {
                self.free_slot(copy);
            }
        }
        Ok(())
    }

    fn notify(&mut self, client: ClientId) -> Result<(), KernelError> {
        let c = self.clients.get(usize::from(client.0)).ok_or(KernelError::NoSuchClient)?;
        notify(c.channel);
        Ok(())
    }

    fn ack_irq(&mut self) -> Result<(), KernelError> {
        match self.irq {
            Some(ch) => irq_ack(ch).map_err(refused),
            None => Ok(()),
        }
    }
}
