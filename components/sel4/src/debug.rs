//! Printing to the kernel's serial console (debug kernels), for logs and test verdicts.

use core::fmt;

/// Writes through `seL4_DebugPutChar`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DebugWriter;

impl fmt::Write for DebugWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(sel4_sys::syscall::debug_put_char);
        Ok(())
    }
}

/// Prints a formatted line to the kernel console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::debug::DebugWriter, $($arg)*);
    }};
}
