//! Raw seL4 5.0.0 system calls for x86-64, with invocation labels generated from the kernel interface XML.
#![no_std]
