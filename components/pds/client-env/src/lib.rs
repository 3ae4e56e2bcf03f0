//! `vmbus_client::ClientEnv` on seL4, for the client PDs of the image.
//!
//! A request is a protected call on the client's driver channel (0) with the request in the
//! control page; the driver's notifications arrive on the PD's input endpoint (its notification
//! is bound to its thread); ring memory is `shared_mem::MappedRing` over the window pages the
//! driver granted. When the driver revokes a channel those pages vanish from the window: the
//! library then reports `ChannelGone` from the status record, and any access that still reaches
//! a ring or a channel buffer (`window_read` / `window_write`) is a page fault that the kernel stops the PD on and the root task reports to the
//! driver.
#![no_std]
#![allow(
    unsafe_code,
    reason = "ring memory over the window's raw addresses (`MappedRing::from_ring_pages`)"
)]

use core::ptr::NonNull;

use pd_runtime::layout::slot;
use pd_runtime::{Channel, Message, ppcall};
use pd_support::page::SharedPage;
use sel4::Endpoint;
use shared_mem::MappedRing;
use vmbus_client::{ClientEnv, WindowLayout};

/// The client's platform.
#[derive(Debug)]
pub struct Sel4Env {
    control: SharedPage,
    window: usize,
    layout: WindowLayout,
    driver: Channel,
    /// Notifications received.
    pub notifications: u64,
}

impl Sel4Env {
    /// The environment of a client whose control page is at `control`, whose window starts at
    /// `window` with `layout`, and whose driver channel is `driver`; `None` for addresses outside
    /// the run-time mapping range.
    pub fn new(
        control: usize,
        window: usize,
        layout: WindowLayout,
        driver: Channel,
    ) -> Option<Sel4Env> {
        let end = window.checked_add(layout.pages.checked_mul(4096)?)?;
        if window < sel4::mem::REGION_START || end > sel4::mem::REGION_END {
            return None;
        }
        Some(Sel4Env {
            control: SharedPage::at(control)?,
            window,
            layout,
            driver,
            notifications: 0,
        })
    }

    /// The address of window page `page`.
    pub fn page_address(&self, page: usize) -> usize {
        self.window + page * 4096
    }
}

impl ClientEnv for Sel4Env {
    type Mem = MappedRing;

    fn ppcall_driver(&mut self) {
        ppcall(self.driver, Message::new(0, &[]));
    }

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) {
        if !self.control.read_bytes(offset, buf) {
            buf.fill(0);
        }
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) {
        let _ = self.control.write_bytes(offset, data);
    }

    fn wait_notification(&mut self) -> Option<u64> {
        let (_, badge) = Endpoint(slot::INPUT).recv();
        self.notifications += 1;
        Some(badge)
    }

    fn ring_mem(&mut self, first: usize, pages: usize) -> MappedRing {
        // The library asks only for rings inside a window slot (it checks ring sizes against
        // the layout before it opens); clamp anyway so no value leaves the window.
        let first = first.min(self.layout.pages.saturating_sub(2));
        let pages = pages.clamp(2, self.layout.pages - first);
        let base = self.page_address(first);
        let Some(ptr) = NonNull::new(base as *mut u8) else {
            panic!("window at address 0");
        };
        // SAFETY: `base .. base + pages * 4096` lies inside the window, which the system
        // description reserves for this client's rings and nothing else in this program touches
        // (only `MappedRing`'s atomics do). The pages stay mapped while the driver holds the
        // channel open for us; after a revocation an access faults and the kernel stops this
        // PD before the instruction completes, so no access ever reaches another page.
        match unsafe { MappedRing::from_ring_pages(ptr, pages * 4096) } {
            Ok(m) => m,
            Err(e) => panic!("ring memory: {e}"),
        }
    }

    fn window(&self) -> WindowLayout {
        self.layout
    }

    fn window_read(&mut self, window_page: usize, offset: usize, buf: &mut [u8]) -> bool {
        let Some(base) = self.window_span(window_page, offset, buf.len()) else {
            return false;
        };
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: inside the window (checked for the whole copy by `window_span`); a
            // volatile byte load through a raw pointer, no reference formed. The library calls
            // this only after it read the channel's status record as open with no system call
            // since, and the driver revokes only while it runs (this PD is then blocked in a
            // call or preempted by a higher-priority PD): a page revoked under a preempted copy
            // is a fault the kernel stops this PD on, never another page's bytes.
            *b = unsafe { ((base + i) as *const u8).read_volatile() };
        }
        true
    }

    fn window_write(&mut self, window_page: usize, offset: usize, data: &[u8]) -> bool {
        let Some(base) = self.window_span(window_page, offset, data.len()) else {
            return false;
        };
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `window_read`.
            unsafe { ((base + i) as *mut u8).write_volatile(b) };
        }
        true
    }
}

impl Sel4Env {
    /// The address of byte `offset` from window page `window_page` when `len` bytes from there
    /// lie inside the window.
    fn window_span(&self, window_page: usize, offset: usize, len: usize) -> Option<usize> {
        let start = window_page.checked_mul(4096)?.checked_add(offset)?;
        if start.checked_add(len)? > self.layout.pages.checked_mul(4096)? {
            return None;
        }
        Some(self.window + start)
    }
}

/// The environment of the client whose generated configuration is `config` (its control page,
/// window and driver channel).
///
/// # Panics
/// When the configuration has no client part or its addresses lie outside the run-time mapping
/// range (a description `cargo xtask check` refuses).
pub fn env_of(config: &pd_runtime::config::PdConfig) -> Sel4Env {
    let Some(c) = &config.client else {
        panic!("{} is not a VMBus client", config.name);
    };
    let layout = WindowLayout {
        pages: c.window_pages,
        max_channels: c.max_channels as usize,
    };
    match Sel4Env::new(
        c.control_vaddr,
        c.window_vaddr,
        layout,
        Channel(c.driver_channel),
    ) {
        Some(e) => e,
        None => panic!("client addresses outside the mapping range"),
    }
}

/// The payload of packet `n` tagged `tag` (the high half of every word).
pub fn payload(tag: u64, n: u64) -> [u8; pd_support::abi::scenario::PAYLOAD] {
    let mut p = [0u8; pd_support::abi::scenario::PAYLOAD];
    for (w, chunk) in p.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(tag | (n << 8) | w as u64).to_le_bytes());
    }
    p
}

/// Waits until the driver lists an offer of `class` and returns its relid: sleeps on the PD's
/// notification while no offer of this client's classes has arrived (the driver counts them in
/// the control page and notifies the client; `vmbus_client::wait_for_offer`). For a client that
/// can wait for its device for ever.
///
/// # Errors
/// The driver's refusals and undecodable responses (`vmbus_client::wait_for_offer`).
pub fn await_offer(
    env: &mut Sel4Env,
    class: vmbus_driver::guid::Guid,
) -> Result<vmbus_client::RelId, vmbus_client::ClientError> {
    vmbus_client::wait_for_offer(env, class)
}

/// As [`await_offer`], with the wake-ups bounded: sleeps on the PD's notification while no offer
/// of this client's classes has arrived, and gives up (`None`) after `tries` wake-ups that
/// brought no offer of `class` (notifications about other things, offers of its other classes)
/// or on a refusal other than `NotConnected`. It lists the offers once at the start and then
/// only when the driver's offers-delivered counter moved. It still sleeps for ever if nothing
/// at all happens; [`poll_for_offer`] gives up then too.
pub fn wait_for_offer(
    env: &mut Sel4Env,
    class: vmbus_driver::guid::Guid,
    tries: u32,
) -> Option<vmbus_client::RelId> {
    let mut left = tries;
    loop {
        let seen = vmbus_client::offers_delivered(env);
        match vmbus_client::list_offers(env, Some(class)) {
            Ok(offers) => {
                if let Some(o) = offers.first() {
                    return Some(o.relid);
                }
            }
            Err(vmbus_client::ClientError::Refused(
                vmbus_driver::control::ClientError::NotConnected,
            )) => {}
            Err(_) => return None,
        }
        while vmbus_client::offers_delivered(env) == seen {
            left = left.checked_sub(1)?;
            env.wait_notification_now();
        }
    }
}

/// The bounded wait for a system that must give up even when nothing happens at all: as
/// [`wait_for_offer`], but it yields instead of sleeping while the counter has not moved, and
/// gives up (`None`) after `yields` yields. A notification it leaves pending only wakes the
/// PD's next wait once more, which every wait of the library tolerates.
pub fn poll_for_offer(
    env: &mut Sel4Env,
    class: vmbus_driver::guid::Guid,
    yields: u32,
) -> Option<vmbus_client::RelId> {
    let mut left = yields;
    loop {
        let seen = vmbus_client::offers_delivered(env);
        if let Ok(offers) = vmbus_client::list_offers(env, Some(class))
            && let Some(o) = offers.first()
        {
            return Some(o.relid);
        }
        while vmbus_client::offers_delivered(env) == seen {
            left = left.checked_sub(1)?;
            sel4::sys::syscall::yield_now();
        }
    }
}

impl Sel4Env {
    /// Waits for the next notification (the library's `wait_notification`, without its `Option`:
    /// on seL4 a notification always can come).
    pub fn wait_notification_now(&mut self) {
        let _ = self.wait_notification();
    }
}
