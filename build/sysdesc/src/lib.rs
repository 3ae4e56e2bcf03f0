//! The system description: parse, validate and generate from system.xml.
//!
//! `system.xml` follows seL4 Microkit's system description format (x86-64 forms) and adds a few
//! elements, all prefixed `vmbus_`, for what Microkit cannot express:
//!
//! - `<vmbus_driver pool_pages="N"/>` inside the driver's `protection_domain`: this PD is the
//!   VMBus driver, and its ring-page pool holds `N` 4 KiB pages. At most one per system.
//! - `<vmbus_client driver_channel="ID" window_vaddr="A" window_size="S" max_channels="M">`
//!   inside a client's `protection_domain`: the client reaches the driver over its Microkit
//!   channel `ID` (which must lead to the driver, with `pp="true"` on the client end); the driver
//!   maps channel rings into the client's window `A..A+S` (page aligned, at least 4 pages per
//!   channel, overlapping no mapping, inside the run-time mapping range `0x20000000..4 GiB` and
//!   no larger than the driver's pool), at most `M` channels at once. Children:
//!   `<vmbus_device class="GUID" instance="GUID"/>`, one per device class served; `instance` is
//!   an optional filter. No two clients may claim the same class and filter.
//!
//! Microkit elements and attributes understood (x86-64; anything else, including any child of an
//! element that takes none and any element in a namespace, is an error naming the file and line,
//! as Microkit rejects unknown elements and attributes):
//!
//! - `system`: children `protection_domain`, `memory_region`, `channel`, `domains`.
//! - `protection_domain`: `name priority budget period passive stack_size smc cpu domain fpu`
//!   (nested ones also `id setvar_id`); children `program_image path path_for_symbols`,
//!   `map mr vaddr perms cached setvar_vaddr setvar_size setvar_prefill_size`,
//!   `irq` as I/O APIC (`id pin vector ioapic trigger polarity setvar_id`) or MSI
//!   (`id pcidev handle vector setvar_id`), `ioport id addr size setvar_id setvar_addr`,
//!   `setvar symbol region_paddr`, nested `protection_domain`, `virtual_machine name priority
//!   budget period` with `vcpu id cpu setvar_id` and `map mr vaddr perms cached`, and `cspace`
//!   with `cap_tcb` / `cap_sc` / `cap_vspace slot pd`.
//! - `memory_region`: `name size page_size phys_addr prefill_path prefill_bootinfo`.
//! - `channel`: exactly two `end pd id pp notify setvar_id`.
//! - `domains`: `domain name id`, one `domain_schedule start_index index_shift` with
//!   `schedule_entry domain duration` (`"N us"` / `"N ticks"`), `schedule_end_marker`, and the
//!   earlier form `domain name length` (declares the domain and runs it for `length` ticks).
//!
//! What the image cannot run is refused too, by the limits it defines once in
//! `pd_runtime::layout` (shared with the root task): channel and interrupt ids only up to 23
//! (Microkit allows 62), and the window rule above (`pd_runtime::layout::window`).
//!
//! Checking takes time linear in the size of the description (up to a log factor): line numbers
//! come from one table of line starts, names from hash maps, overlaps from one sorted sweep, and
//! each problem is reported once. Values echoed in messages are cut to 64 bytes. An element with
//! more than 32 attributes, more than 16 namespace declarations, or protection domains nested
//! more than 63 deep are refused outright (none can be valid), as they would make the XML parser
//! (or the recursion over nested PDs) slow or deep.
//!
//! [`load`] / [`parse_and_validate`] give a checked [`System`]; [`generate_pd_constants`] and
//! [`generate_system_table`] turn it into Rust source. Every problem is a [`Diagnostic`] that
//! prints as `file:line: message`.

pub mod diag;
pub mod generate;
pub mod guid;
pub mod model;
pub mod parse;
pub mod validate;

pub use diag::{Diagnostic, ErrorKind};
pub use generate::{generate_pd_constants, generate_system_table, module_name};
pub use guid::{Guid, GuidError};
pub use model::System;
pub use parse::parse;
pub use validate::validate;

use std::path::Path;

/// Parses and validates `xml`, naming it `file` in diagnostics.
///
/// Syntax problems are all reported first; the cross-checks run once the file parses cleanly
/// (a half-parsed model would only add follow-on noise).
pub fn parse_and_validate(file: &str, xml: &str) -> Result<System, Vec<Diagnostic>> {
    let sys = parse(file, xml)?;
    let diags = validate(&sys);
    if diags.is_empty() {
        Ok(sys)
    } else {
        Err(diags)
    }
}

/// Reads, parses and validates the description at `path`.
pub fn load(path: &Path) -> Result<System, Vec<Diagnostic>> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(xml) => parse_and_validate(&file, &xml),
        Err(e) => Err(vec![Diagnostic {
            file,
            line: 0,
            kind: ErrorKind::Xml,
            message: format!("cannot read the file: {e}"),
        }]),
    }
}
