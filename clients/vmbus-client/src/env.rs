//! The `ClientEnv` seam: what the library needs from the client PD's platform.
//!
//! On seL4 it is a protected call on the driver channel, the control page mapped at a fixed
//! address, the PD's notification, and the window's mapped pages; in the simulation every access
//! goes through the client PD's VSpace in the kernel model.

use vmbus_driver::ids::SlotId;
use vmbus_driver::ring::RingMem;

/// How the client's channel window is split: `max_channels` equal slots of `pages /
/// max_channels` pages each (the driver uses the same rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLayout {
    /// Pages in the window.
    pub pages: usize,
    /// Channel slots.
    pub max_channels: usize,
}

impl WindowLayout {
    /// Pages per slot (0 for a layout without slots).
    #[must_use]
    pub const fn slot_pages(&self) -> usize {
        match self.pages.checked_div(self.max_channels) {
            Some(n) => n,
            None => 0,
        }
    }

    /// First window page of slot `slot`, or `None` for a slot outside the window.
    #[must_use]
    pub const fn slot_base(&self, slot: SlotId) -> Option<usize> {
        if slot.index() < self.max_channels {
            Some(slot.index() * self.slot_pages())
        } else {
            None
        }
    }
}

/// The client PD's platform, as the library uses it.
pub trait ClientEnv {
    /// Ring memory over mapped window pages.
    type Mem: RingMem;

    /// Makes a protected call to the driver. The request is in the control page's request area;
    /// when this returns the driver has written its response to the response area.
    fn ppcall_driver(&mut self);

    /// Copies bytes at `offset` of the control page into `buf` (`offset + buf.len() <= 4096`).
    fn control_read(&mut self, offset: usize, buf: &mut [u8]);

    /// Copies `data` to `offset` of the control page (request area only; `offset + data.len()
    /// <= 4096`).
    fn control_write(&mut self, offset: usize, data: &[u8]);

    /// Waits for the driver's notification and returns the notification word; `None` when no
    /// notification will come (a simulation that has nothing left to run for this client).
    fn wait_notification(&mut self) -> Option<u64>;

    /// Ring memory of `pages` window pages from window page `first` (the ring's header page
    /// first, then its data pages).
    fn ring_mem(&mut self, first: usize, pages: usize) -> Self::Mem;

    /// The client's window layout.
    fn window(&self) -> WindowLayout;

    /// Copies bytes at byte `offset` from window page `window_page` (a buffer's pages are
    /// consecutive window pages) into `buf`; false if this environment gives no such access
    /// (the default: a PD then maps `window base + window_page * 4096` itself).
    fn window_read(&mut self, window_page: usize, offset: usize, buf: &mut [u8]) -> bool {
        let _ = (window_page, offset, buf);
        false
    }

    /// Copies `data` to byte `offset` from window page `window_page`; false as for
    /// [`ClientEnv::window_read`].
    fn window_write(&mut self, window_page: usize, offset: usize, data: &[u8]) -> bool {
        let _ = (window_page, offset, data);
        false
    }
}

impl<E: ClientEnv + ?Sized> ClientEnv for &mut E {
    type Mem = E::Mem;
    fn ppcall_driver(&mut self) {
        (**self).ppcall_driver();
    }
    fn control_read(&mut self, offset: usize, buf: &mut [u8]) {
        (**self).control_read(offset, buf);
    }
    fn control_write(&mut self, offset: usize, data: &[u8]) {
        (**self).control_write(offset, data);
    }
    fn wait_notification(&mut self) -> Option<u64> {
        (**self).wait_notification()
    }
    fn ring_mem(&mut self, first: usize, pages: usize) -> Self::Mem {
        (**self).ring_mem(first, pages)
    }
    fn window(&self) -> WindowLayout {
        (**self).window()
    }
    fn window_read(&mut self, window_page: usize, offset: usize, buf: &mut [u8]) -> bool {
        (**self).window_read(window_page, offset, buf)
    }
    fn window_write(&mut self, window_page: usize, offset: usize, data: &[u8]) -> bool {
        (**self).window_write(window_page, offset, data)
    }
}
