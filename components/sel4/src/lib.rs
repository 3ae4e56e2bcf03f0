//! Typed seL4 capabilities (frames, notifications, CNodes, VSpaces) over sel4-sys.
#![no_std]
