//! Ring memory of a client's window, accessed as the client PD: every load, store and copy goes
//! through the client's VSpace in the simulated kernel.
//!
//! An access after the driver revoked the ring's pages raises a VM fault in the model: the fault
//! is logged and queued for the client's fault handler (the driver), the client PD stops, and the
//! access yields zeroes (a stopped PD executes nothing more; the scheduler stops running it). The
//! ring code above never panics on those zeroes.

use core::cell::Cell;
use core::sync::atomic::Ordering;
use std::rc::Rc;

use sel4_sim::{MemError, PdId};
use vmbus_driver::ring::{Control, HEADER_SIZE, RingMem};

use crate::instance::SharedKernel;

/// The first access of a ring memory that did not happen.
pub type RingFault = MemError;

/// One ring (header page plus data pages) at `header_vaddr` of a client's address space.
#[derive(Debug, Clone)]
pub struct ClientRingMem {
    kernel: SharedKernel,
    pd: PdId,
    header_vaddr: u64,
    data_size: u32,
    fault: Rc<Cell<Option<RingFault>>>,
}

impl ClientRingMem {
    /// Ring memory of `pages` pages (the first is the header) at `header_vaddr` of `pd`.
    #[must_use]
    pub fn new(kernel: SharedKernel, pd: PdId, header_vaddr: u64, pages: usize) -> Self {
        let data = pages.saturating_sub(1).saturating_mul(HEADER_SIZE);
        Self {
            kernel,
            pd,
            header_vaddr,
            data_size: u32::try_from(data).unwrap_or(u32::MAX),
            fault: Rc::new(Cell::new(None)),
        }
    }

    /// The first access through this memory (or a clone of it) that faulted or found the PD
    /// stopped, if any.
    #[must_use]
    pub fn fault(&self) -> Option<RingFault> {
        self.fault.get()
    }

    fn note(&self, e: MemError) {
        if self.fault.get().is_none() {
            self.fault.set(Some(e));
        }
    }

    fn read(&self, vaddr: u64, buf: &mut [u8]) {
        let result = self.kernel.borrow_mut().sim.read(self.pd, vaddr, buf);
        if let Err(e) = result {
            buf.fill(0);
            self.note(e);
        }
    }

    fn write(&self, vaddr: u64, data: &[u8]) {
        let result = self.kernel.borrow_mut().sim.write(self.pd, vaddr, data);
        if let Err(e) = result {
            self.note(e);
        }
    }

    fn word_vaddr(&self, word: Control) -> u64 {
        self.header_vaddr + word.offset() as u64
    }

    fn data_vaddr(&self, offset: u32, len: usize) -> u64 {
        assert!(
            offset as usize + len <= self.data_size as usize,
            "ring data access out of range"
        );
        self.header_vaddr + HEADER_SIZE as u64 + u64::from(offset)
    }
}

// The simulation runs one PD at a time, so every access is atomic and sequentially consistent;
// the orderings the ring code asks for hold trivially.
impl RingMem for ClientRingMem {
    fn data_size(&self) -> u32 {
        self.data_size
    }

    fn load(&self, word: Control, _order: Ordering) -> u32 {
        let mut b = [0u8; 4];
        self.read(self.word_vaddr(word), &mut b);
        u32::from_le_bytes(b)
    }

    fn store(&self, word: Control, value: u32, _order: Ordering) {
        self.write(self.word_vaddr(word), &value.to_le_bytes());
    }

    fn swap(&self, word: Control, value: u32, order: Ordering) -> u32 {
        let old = self.load(word, order);
        self.store(word, value, order);
        old
    }

    fn fence(&self, _order: Ordering) {}

    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        let vaddr = self.data_vaddr(offset, buf.len());
        self.read(vaddr, buf);
    }

    fn write_data(&self, offset: u32, data: &[u8]) {
        let vaddr = self.data_vaddr(offset, data.len());
        self.write(vaddr, data);
    }
}
