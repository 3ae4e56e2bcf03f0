//! Hyper-V layer: hypercalls, synthetic MSRs, CPUID, SynIC message slots and event flags.
