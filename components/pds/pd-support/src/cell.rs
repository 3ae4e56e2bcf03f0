//! A static that hands out one `&'static mut` to its value, once.
//!
//! PD programs are single-threaded, but a `static` still needs a guard so that the one mutable
//! reference cannot be taken twice. A `spin` mutex whose guard is leaked is exactly that: the
//! first `take` locks it for the rest of the program, every later one finds it locked.

use spin::mutex::{SpinMutex, SpinMutexGuard};

/// A value in static memory (its `const` initialiser is placed by the loader, never on a stack),
/// lent out mutably at most once.
pub struct StaticCell<T> {
    value: SpinMutex<T>,
}

impl<T> core::fmt::Debug for StaticCell<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StaticCell")
    }
}

impl<T> StaticCell<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        StaticCell {
            value: SpinMutex::new(value),
        }
    }

    /// The value, the first time; `None` afterwards.
    pub fn take(&'static self) -> Option<&'static mut T> {
        self.value.try_lock().map(SpinMutexGuard::leak)
    }
}
