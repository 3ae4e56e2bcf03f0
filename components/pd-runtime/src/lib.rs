//! Protection-domain runtime for our seL4 image: entry, stack, IPC buffer, and Microkit-style handlers.
#![no_std]
