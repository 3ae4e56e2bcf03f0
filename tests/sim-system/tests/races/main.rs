//! The race catalogue R1-R8 of DESIGN.md §1 on the system of system.xml: each race is a named,
//! deterministic test that runs the sequence it races with phase by phase (host, driver, clients)
//! and injects the racing input before every phase of it in turn, checking the race's own
//! condition ("what must hold here") and the global invariants of DESIGN.md §3 after every phase
//! (see `common::monitor`).

#[path = "../common/mod.rs"]
mod common;

mod progs;
mod r1;
mod r2;
mod r3;
mod r4;
mod r5;
mod r6;
mod r7;
mod r8;
