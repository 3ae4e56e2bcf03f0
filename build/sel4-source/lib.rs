//! Nothing to compile: this package only pins the crate that carries the seL4 kernel source.
