//! The race catalogue R1-R8 of docs/races.md on the system of system.xml: each race is a named,
//! deterministic test that runs the sequence it races with phase by phase (host, driver with one
//! SynIC message per step, clients) and injects the racing input before every phase of it in
//! turn, checking the race's own condition ("what must hold here") and the global invariants of
//! docs/lifetime.md after every phase (see `common::monitor`).
//!
//! | race | tests |
//! |------|-------|
//! | R1 | `r1_rescind_during_a_client_lookup_leaves_only_stale_handles_that_are_refused` |
//! | R2 | `r2_event_for_a_torn_down_relid_is_never_delivered_to_the_new_owner` |
//! | R3 | `r3_shutdown_during_a_half_done_rescind_runs_each_teardown_step_once` |
//! | R4 | `r4_table_edits_from_client_calls_never_lose_or_misroute_interrupt_path_events` |
//! | R5 | `r5_host_rescind_racing_its_offer_is_handled_in_arrival_order_and_never_offers_twice`, `r5_rescind_arriving_before_its_offer_is_counted_and_the_offer_is_taken_once` |
//! | R6 | `r6_close_and_gpadl_teardown_complete_before_any_page_returns_to_the_pool` |
//! | R7 | `r7_primary_teardown_covers_a_sub_channel_rescinded_meanwhile_first`, `r7_sub_channel_open_racing_the_primary_close_is_refused_or_torn_down_first` |
//! | R8 | `r8_client_close_during_a_rescind_teardown_is_a_no_op`, `r8_client_fault_during_a_rescind_teardown_is_a_no_op`, `r8_duplicate_rescind_during_a_teardown_is_counted_and_changes_nothing` |
//!
//! R9-R14, the races this driver's own history added to the catalogue (teardown during an open,
//! lost rescinds, messages crossing UNLOAD, late replies, stale client access and signals), are
//! tested where their sequence lives; docs/races.md names each of those tests.

#[path = "../common/mod.rs"]
mod common;

mod monitor_selftest;
mod progs;
mod r1;
mod r2;
mod r3;
mod r4;
mod r5;
mod r6;
mod r7;
mod r8;
