//! The program entry point of every seL4 program of the image (root task and PDs).
//!
//! `_start` (assembly, target builds only) switches to a stack in the program's `.bss` and calls
//! [`rust_start`] with the first two argument registers: the boot-information pointer for the
//! root task (0 for PDs), and for PDs a parameter word the root task sets (the PD's index in the
//! system, by which it finds its generated configuration). The program names its main function
//! with [`declare_main!`].

use sel4_sys::bootinfo::BootInfo;

/// What the program starts with.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// The boot information (root task only).
    pub bootinfo: Option<BootInfo>,
    /// The parameter word the root task passes a PD in `rsi` (0 for the root task).
    pub param: usize,
}

/// Bytes of stack every program gets (in its `.bss`).
pub const STACK_SIZE: usize = 64 * 1024;

#[cfg(target_os = "none")]
core::arch::global_asm!(
    ".section .bss.sel4_stack, \"aw\", @nobits",
    ".p2align 12",
    "sel4_stack_bottom:",
    ".space {size}",
    "sel4_stack_top:",
    ".text",
    ".globl _start",
    "_start:",
    "lea rsp, [rip + sel4_stack_top]",
    "xor ebp, ebp",
    "call {start}",
    "ud2",
    size = const STACK_SIZE,
    start = sym rust_start,
);

unsafe extern "Rust" {
    /// Defined by [`declare_main!`] in the program.
    fn __sel4_program_main(start: Start) -> !;
}

static STARTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Called once by `_start`; a second call (only possible from Rust code) halts.
pub extern "C" fn rust_start(arg: usize, param: usize) -> ! {
    if STARTED.swap(true, core::sync::atomic::Ordering::SeqCst) {
        loop {
            sel4_sys::syscall::debug_halt();
        }
    }
    // SAFETY: the first call comes from `_start`, and `arg` is the first argument register the
    // kernel (root task: boot-info pointer) or our root task (PDs: 0) set.
    let bootinfo = (arg != 0).then(|| unsafe { BootInfo::from_raw(arg as *const u8) });
    // SAFETY: `declare_main!` defines the symbol with this signature.
    unsafe {
        __sel4_program_main(Start {
            bootinfo,
            param: if bootinfo.is_some() { 0 } else { param },
        })
    }
}

/// Names the program's main function: `sel4::declare_main!(main);` with `fn main(Start) -> !`.
#[macro_export]
macro_rules! declare_main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        fn __sel4_program_main(start: $crate::entry::Start) -> ! {
            $main(start)
        }
    };
}
