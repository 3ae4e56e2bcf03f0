//! Ring memory over real mapped pages: the one place the ring buffer touches raw shared memory.
#![no_std]
