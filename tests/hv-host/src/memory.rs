//! The `GuestMemory` seam (guest-physical pages by frame number) and the ring memory the devices
//! use over a GPADL's pages.
//!
//! The host reaches guest memory only through this seam, a page at a time: GPADL PFNs are guest
//! data, so an access to a frame the guest does not have fails with an error instead of touching
//! anything, and the device that tried it marks its channel broken.

use core::cell::{Cell, RefCell};
use core::fmt;
use core::sync::atomic::{Ordering, fence};

use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::ring::{Control, RingMem};

/// Why a guest-memory access failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestMemError {
    /// The frame is not guest memory.
    NoSuchPage(u64),
    /// The access runs past the end of the 4 KiB page.
    OutOfPage {
        /// Offset in the page.
        offset: usize,
        /// Bytes asked for.
        len: usize,
    },
}

impl fmt::Display for GuestMemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchPage(pfn) => write!(f, "guest frame {pfn:#x} does not exist"),
            Self::OutOfPage { offset, len } => {
                write!(f, "{len} bytes at page offset {offset} cross the page end")
            }
        }
    }
}

/// Guest-physical memory as the host sees it: frames by number.
///
/// Accesses never cross a page (`offset + len <= 4096`); implementations return
/// [`GuestMemError::OutOfPage`] otherwise. The 32-bit control-word accessors default to plain
/// copies, which is exact for a single-threaded simulation; an implementation over memory shared
/// with a running guest overrides them with real atomics.
pub trait GuestMemory {
    /// Copies bytes out of frame `pfn` starting at `offset`.
    fn read(&mut self, pfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), GuestMemError>;

    /// Copies `data` into frame `pfn` starting at `offset`.
    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) -> Result<(), GuestMemError>;

    /// Loads an aligned little-endian u32 (a ring control word).
    fn load_u32(
        &mut self,
        pfn: u64,
        offset: usize,
        _order: Ordering,
    ) -> Result<u32, GuestMemError> {
        let mut b = [0u8; 4];
        self.read(pfn, offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Stores an aligned little-endian u32 (a ring control word).
    fn store_u32(
        &mut self,
        pfn: u64,
        offset: usize,
        value: u32,
        _order: Ordering,
    ) -> Result<(), GuestMemError> {
        self.write(pfn, offset, &value.to_le_bytes())
    }

    /// Swaps the aligned little-endian u32 at `offset` with `value` and returns the old value
    /// (the host taking the monitor page's pending bits). The default is a load then a store,
    /// exact for a single-threaded simulation; memory shared with a running guest overrides it
    /// with a real atomic swap, so a bit the guest sets in between is not lost.
    fn swap_u32(
        &mut self,
        pfn: u64,
        offset: usize,
        value: u32,
        order: Ordering,
    ) -> Result<u32, GuestMemError> {
        // A load takes the acquire half of `order`, the store its release half (an atomic load
        // or store refuses the other).
        let (load, store) = match order {
            Ordering::AcqRel => (Ordering::Acquire, Ordering::Release),
            Ordering::Acquire => (Ordering::Acquire, Ordering::Relaxed),
            Ordering::Release => (Ordering::Relaxed, Ordering::Release),
            o => (o, o),
        };
        let old = self.load_u32(pfn, offset, load)?;
        self.store_u32(pfn, offset, value, store)?;
        Ok(old)
    }

    /// A memory fence for the ring protocol's barriers.
    fn fence(&mut self, order: Ordering) {
        fence(order);
    }
}

impl<G: GuestMemory + ?Sized> GuestMemory for &mut G {
    fn read(&mut self, pfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), GuestMemError> {
        (**self).read(pfn, offset, buf)
    }
    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) -> Result<(), GuestMemError> {
        (**self).write(pfn, offset, data)
    }
    fn load_u32(&mut self, pfn: u64, offset: usize, order: Ordering) -> Result<u32, GuestMemError> {
        (**self).load_u32(pfn, offset, order)
    }
    fn store_u32(
        &mut self,
        pfn: u64,
        offset: usize,
        value: u32,
        order: Ordering,
    ) -> Result<(), GuestMemError> {
        (**self).store_u32(pfn, offset, value, order)
    }
    fn swap_u32(
        &mut self,
        pfn: u64,
        offset: usize,
        value: u32,
        order: Ordering,
    ) -> Result<u32, GuestMemError> {
        (**self).swap_u32(pfn, offset, value, order)
    }
    fn fence(&mut self, order: Ordering) {
        (**self).fence(order);
    }
}

/// Guest memory over a slice of pages numbered from `base_pfn`: for tests and small simulations.
#[derive(Debug)]
pub struct PageArrayMemory<'a> {
    base_pfn: u64,
    pages: &'a mut [[u8; PAGE_SIZE]],
}

impl<'a> PageArrayMemory<'a> {
    /// Frames `base_pfn .. base_pfn + pages.len()`.
    pub fn new(base_pfn: u64, pages: &'a mut [[u8; PAGE_SIZE]]) -> Self {
        Self { base_pfn, pages }
    }

    /// The page of frame `pfn`.
    pub fn page(&self, pfn: u64) -> Option<&[u8; PAGE_SIZE]> {
        let i = usize::try_from(pfn.checked_sub(self.base_pfn)?).ok()?;
        self.pages.get(i)
    }

    /// The page of frame `pfn`, writable.
    pub fn page_mut(&mut self, pfn: u64) -> Option<&mut [u8; PAGE_SIZE]> {
        let i = usize::try_from(pfn.checked_sub(self.base_pfn)?).ok()?;
        self.pages.get_mut(i)
    }

    fn range(&mut self, pfn: u64, offset: usize, len: usize) -> Result<&mut [u8], GuestMemError> {
        if offset > PAGE_SIZE || len > PAGE_SIZE - offset {
            return Err(GuestMemError::OutOfPage { offset, len });
        }
        let page = self.page_mut(pfn).ok_or(GuestMemError::NoSuchPage(pfn))?;
        Ok(&mut page[offset..offset + len])
    }
}

impl GuestMemory for PageArrayMemory<'_> {
    fn read(&mut self, pfn: u64, offset: usize, buf: &mut [u8]) -> Result<(), GuestMemError> {
        buf.copy_from_slice(self.range(pfn, offset, buf.len())?);
        Ok(())
    }

    fn write(&mut self, pfn: u64, offset: usize, data: &[u8]) -> Result<(), GuestMemError> {
        self.range(pfn, offset, data.len())?.copy_from_slice(data);
        Ok(())
    }
}

/// One ring (header page + data pages) inside a GPADL, as `vmbus_driver::ring::RingMem`.
///
/// The host keeps its own index (read index of the guest-to-host ring, write index of the
/// host-to-guest ring) privately and never reads it back from shared memory: `own` answers loads
/// of that word, so a guest that scribbles on it cannot move the host's position. A failed
/// guest-memory access latches [`fault`](Self::fault); loads then return `u32::MAX` (an invalid
/// index, which the ring code rejects) and reads return zeros.
pub struct GpadlRingMem<'m, 'g, G: GuestMemory> {
    mem: &'m RefCell<&'g mut G>,
    /// The ring's pages: header first, then data.
    pfns: &'m [u64],
    own: Option<(Control, u32)>,
    fault: Cell<Option<GuestMemError>>,
}

impl<G: GuestMemory> fmt::Debug for GpadlRingMem<'_, '_, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpadlRingMem")
            .field("pages", &self.pfns.len())
            .field("own", &self.own)
            .field("fault", &self.fault.get())
            .finish()
    }
}

impl<'m, 'g, G: GuestMemory> GpadlRingMem<'m, 'g, G> {
    /// A ring over `pfns` (at least two pages: header and one data page; the caller checked the
    /// layout), answering loads of `own.0` with `own.1`.
    pub fn new(mem: &'m RefCell<&'g mut G>, pfns: &'m [u64], own: Option<(Control, u32)>) -> Self {
        Self {
            mem,
            pfns,
            own,
            fault: Cell::new(None),
        }
    }

    /// The first guest-memory error, if any access failed.
    pub fn fault(&self) -> Option<GuestMemError> {
        self.fault.get()
    }

    fn record(&self, e: GuestMemError) {
        if self.fault.get().is_none() {
            self.fault.set(Some(e));
        }
    }

    fn header(&self) -> u64 {
        self.pfns.first().copied().unwrap_or(u64::MAX)
    }

    /// Walks `[offset, offset + len)` of the data area page by page.
    fn each_page(&self, offset: u32, len: usize, mut f: impl FnMut(u64, usize, usize, usize)) {
        let mut done = 0usize;
        let mut pos = offset as usize;
        while done < len {
            let page = 1 + pos / PAGE_SIZE;
            let in_page = pos % PAGE_SIZE;
            let n = (PAGE_SIZE - in_page).min(len - done);
            match self.pfns.get(page) {
                Some(&pfn) => f(pfn, in_page, done, n),
                None => self.record(GuestMemError::OutOfPage {
                    offset: pos,
                    len: n,
                }),
            }
            done += n;
            pos += n;
        }
    }
}

impl<G: GuestMemory> RingMem for GpadlRingMem<'_, '_, G> {
    fn data_size(&self) -> u32 {
        let pages = self.pfns.len().saturating_sub(1);
        u32::try_from(pages * PAGE_SIZE).unwrap_or(u32::MAX)
    }

    fn load(&self, word: Control, order: Ordering) -> u32 {
        if let Some((w, v)) = self.own
            && w == word
        {
            return v;
        }
        match self
            .mem
            .borrow_mut()
            .load_u32(self.header(), word.offset(), order)
        {
            Ok(v) => v,
            Err(e) => {
                self.record(e);
                u32::MAX
            }
        }
    }

    fn store(&self, word: Control, value: u32, order: Ordering) {
        if let Err(e) = self
            .mem
            .borrow_mut()
            .store_u32(self.header(), word.offset(), value, order)
        {
            self.record(e);
        }
    }

    fn swap(&self, word: Control, value: u32, order: Ordering) -> u32 {
        let old = self.load(word, order);
        self.store(word, value, order);
        old
    }

    fn fence(&self, order: Ordering) {
        self.mem.borrow_mut().fence(order);
    }

    fn read_data(&self, offset: u32, buf: &mut [u8]) {
        let mut mem = self.mem.borrow_mut();
        let len = buf.len();
        self.each_page(offset, len, |pfn, in_page, done, n| {
            let dst = &mut buf[done..done + n];
            if let Err(e) = mem.read(pfn, in_page, dst) {
                dst.fill(0);
                self.record(e);
            }
        });
    }

    fn write_data(&self, offset: u32, data: &[u8]) {
        let mut mem = self.mem.borrow_mut();
        self.each_page(offset, data.len(), |pfn, in_page, done, n| {
            if let Err(e) = mem.write(pfn, in_page, &data[done..done + n]) {
                self.record(e);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::{AtomicU32, Ordering};

    use super::{GuestMemError, GuestMemory};

    /// One word of guest memory behind a real atomic, as the image's host PD has it: an atomic
    /// load or store refuses (panics on) the half of an ordering it cannot take.
    struct AtomicWord(AtomicU32);

    impl GuestMemory for AtomicWord {
        fn read(&mut self, _: u64, _: usize, _: &mut [u8]) -> Result<(), GuestMemError> {
            Ok(())
        }
        fn write(&mut self, _: u64, _: usize, _: &[u8]) -> Result<(), GuestMemError> {
            Ok(())
        }
        fn load_u32(&mut self, _: u64, _: usize, order: Ordering) -> Result<u32, GuestMemError> {
            Ok(self.0.load(order))
        }
        fn store_u32(
            &mut self,
            _: u64,
            _: usize,
            value: u32,
            order: Ordering,
        ) -> Result<(), GuestMemError> {
            self.0.store(value, order);
            Ok(())
        }
    }

    #[test]
    fn the_default_swap_splits_an_acquire_release_order_between_its_load_and_store() {
        let mut m = AtomicWord(AtomicU32::new(0b101));
        for order in [
            Ordering::AcqRel,
            Ordering::Acquire,
            Ordering::Release,
            Ordering::SeqCst,
            Ordering::Relaxed,
        ] {
            m.0.store(0b101, Ordering::Relaxed);
            assert_eq!(m.swap_u32(0, 0, 0, order), Ok(0b101), "{order:?}");
            assert_eq!(m.0.load(Ordering::Relaxed), 0);
        }
    }
}
