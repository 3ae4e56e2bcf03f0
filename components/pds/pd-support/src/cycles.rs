//! The processor's cycle counter (the TSC), which user code may read on x86-64 (seL4 leaves
//! CR4.TSD clear): the time base a PD calibrates against the host's time samples.

/// The time-stamp counter now.
pub fn read() -> u64 {
    // SAFETY: RDTSC reads a register and changes no memory; the kernel lets user mode execute
    // it (an exception would stop this PD, not corrupt anything).
    unsafe { core::arch::x86_64::_rdtsc() }
}
