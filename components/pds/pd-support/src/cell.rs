//! A static that hands out one `&'static mut` to its value, once.
//!
//! PD programs are single-threaded, but a `static` still needs a guard so that the one mutable
//! reference cannot be taken twice.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A value in static memory (its `const` initialiser is placed by the loader, never on a stack),
/// lent out mutably at most once.
pub struct StaticCell<T> {
    taken: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reachable only through the one reference `take` hands out, guarded by the
// atomic flag, so sharing the cell between threads cannot create two references.
unsafe impl<T: Send> Sync for StaticCell<T> {}

impl<T> core::fmt::Debug for StaticCell<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StaticCell")
    }
}

impl<T> StaticCell<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        StaticCell {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// The value, the first time; `None` afterwards.
    // A mutable reference from a shared one is the point of the cell: the flag makes it unique.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag was false, so no reference was handed out before and none will be
        // after: this is the only reference to the value for the rest of the program.
        Some(unsafe { &mut *self.value.get() })
    }
}
