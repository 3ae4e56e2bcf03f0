//! The system description: parse, validate and configure from a Microkit system description and
//! its VMBus companion.
//!
//! A system is two files. The description (`system.xml`, `build/qemu-e2e.xml`, ...) is a plain
//! seL4 Microkit system description (x86-64 forms; the syntax of Microkit 2.3): Microkit's tool
//! refuses unknown elements, so nothing of ours goes in it. The VMBus wiring Microkit cannot
//! express goes in a companion file beside it, `<stem>.vmbus.xml` (`system.vmbus.xml`,
//! `build/qemu-e2e.vmbus.xml`), which names PDs, regions and channels of the description:
//!
//! - root `<vmbus system="FILE">`: `FILE` is the description it wires (its file name).
//! - `<driver pd="P" pool_pages="N" [pool_region="R"] [pool_vaddr="A"] [synic_message="R"
//!   synic_event_flags="R"]/>`: PD `P` is the VMBus driver, at most one per system. Its pool of
//!   `N` 4 KiB pages is region `R` (exactly `N` pages; only the driver and the host may map it)
//!   or fresh frames; the driver sees it where it maps `R`, or at `pool_vaddr` when it does not
//!   (in the run-time mapping range, over none of its maps). The SynIC message and event-flags
//!   pages are one-page regions the driver (and the host) map read-write.
//! - `<host pd="P" driver_channel="ID" hypercall_input="R"/>`: PD `P` is the simulated Hyper-V
//!   host of the image (the hypercall stand-in): the driver calls it on the channel whose host end
//!   is `ID` (`pp="true"` on the driver's end), the payload of a posted message goes through the
//!   one-page region `R` (read-write in the driver, readable in the host), and the host sees the
//!   driver's pool region, which it must map, as guest memory. Needs a driver with SynIC pages.
//! - `<hyperv sint_channel="ID" synic_vaddr="A"/>`: the driver talks to Hyper-V itself through
//!   the kernel's Hyper-V service instead of a host PD (at most one; not with `host`, and the
//!   driver has no SynIC regions). The root task maps the kernel's SynIC message and event-flags
//!   frames at `A` and `A + 0x1000` (page aligned, in the run-time range, clear of the driver's
//!   maps and pool) and delivers the SINT2 interrupt on the driver's channel id `ID` (one it uses
//!   for nothing else).
//! - `<client pd="P" driver_channel="ID" window_vaddr="A" window_size="S" max_channels="M"
//!   control="R" [power="true|false"] [low_latency="true|false"]>` with `<device class="GUID" [instance="GUID"]/>`
//!   children: PD `P` reaches the driver over its channel `ID` (which must lead to the driver, with `pp="true"` on the client
//!   end); the driver holds a `cap_vspace` for it and maps channel rings into its window
//!   `A..A+S` (page aligned, at least 4 pages per channel, over none of the client's maps, inside
//!   the run-time mapping range `0x20000000..4 GiB` and no larger than the driver's pool), at most
//!   `M` channels at once; `R` is its control page, a one-page region that it and the driver map
//!   read-write and no other PD maps. One `device` per class served; `instance` filters offers
//!   (the same filter for all of a client's devices). No two clients may claim the same class
//!   and filter. A client's position among the clients is its number (`ClientId`).
//!   `power="true"` lets the client ask the driver for an orderly stop of the system
//!   (`Request::Stop`: the shutdown integration service); default `false`, and the driver
//!   refuses the request of any other client. `low_latency="true"` makes the driver signal
//!   the host for the client's channels by hypercall even when the host offered them with a
//!   monitor id (the host sees each signal at once instead of at its next scan of the monitor
//!   page); default `false`.
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
//! [`load`] / [`parse_and_validate`] / [`parse_and_validate_pair`] give a checked [`System`];
//! [`config::pd_config`] turns it into one PD's configuration, which the PD programs' build
//! scripts render as Rust ([`config::build_script`]) and the simulation uses directly. Every
//! problem is a [`Diagnostic`] that prints as `file:line: message`.

pub mod config;
pub mod diag;
pub mod guid;
pub mod model;
pub mod parse;
pub mod validate;

pub use diag::{Diagnostic, ErrorKind};
pub use guid::{Guid, GuidError};
pub use model::System;
pub use parse::parse;
pub use parse::vmbus::{Wiring, parse_vmbus};
pub use validate::validate;

/// The layout of the image (`pd_runtime::layout`): page size, run-time mapping range, CSpace
/// slots. The one definition, shared with the root task and the PDs.
pub use pd_runtime::layout;

use std::path::{Path, PathBuf};

/// A description's text and the name diagnostics give it.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The file name used in diagnostics.
    pub file: &'a str,
    /// The XML text.
    pub xml: &'a str,
}

impl<'a> Source<'a> {
    /// `xml`, named `file`.
    pub fn new(file: &'a str, xml: &'a str) -> Self {
        Source { file, xml }
    }
}

/// Parses and validates `xml`, a description without VMBus wiring, naming it `file` in
/// diagnostics.
///
/// Syntax problems are all reported first; the cross-checks run once the file parses cleanly
/// (a half-parsed model would only add follow-on noise).
pub fn parse_and_validate(file: &str, xml: &str) -> Result<System, Vec<Diagnostic>> {
    check(Source::new(file, xml), None)
}

/// Parses and validates a description and its VMBus companion: both files' syntax first, then
/// the companion's PD names, then every cross-check. Each problem names the file it is in.
pub fn parse_and_validate_pair(
    system: Source<'_>,
    vmbus: Source<'_>,
) -> Result<System, Vec<Diagnostic>> {
    check(system, Some(vmbus))
}

fn check(system: Source<'_>, vmbus: Option<Source<'_>>) -> Result<System, Vec<Diagnostic>> {
    let sys = parse(system.file, system.xml);
    let wiring = vmbus.map(|v| parse_vmbus(v.file, v.xml));
    let (mut sys, wiring) = match (sys, wiring.transpose()) {
        (Ok(s), Ok(w)) => (s, w),
        (s, w) => {
            let mut diags = s.err().unwrap_or_default();
            diags.extend(w.err().unwrap_or_default());
            return Err(diags);
        }
    };
    let mut diags = match wiring {
        Some(w) => parse::vmbus::attach(&mut sys, w),
        None => Vec::new(),
    };
    diags.extend(validate(&sys));
    if diags.is_empty() {
        Ok(sys)
    } else {
        Err(diags)
    }
}

/// The file name of the companion of the description named `file`: `<stem>.vmbus.xml`
/// (`system.xml` -> `system.vmbus.xml`).
pub fn companion_name(file: &str) -> String {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    let stem = name.strip_suffix(".xml").unwrap_or(name);
    format!("{stem}.vmbus.xml")
}

/// The companion of the description at `path`: [`companion_name`] in the same folder.
pub fn companion_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or(String::new(), |f| f.to_string_lossy().into_owned());
    path.with_file_name(companion_name(&name))
}

fn read(path: &Path) -> Result<String, Vec<Diagnostic>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            file: path.display().to_string(),
            line: 0,
            kind: ErrorKind::Xml,
            message: format!("cannot read the file: {e}"),
        }]
    })
}

/// Reads, parses and validates the description at `path` with its companion
/// ([`companion_path`]) when there is one; without one the system has no VMBus wiring.
pub fn load(path: &Path) -> Result<System, Vec<Diagnostic>> {
    let companion = companion_path(path);
    load_pair(path, companion.exists().then_some(companion.as_path()))
}

/// Reads, parses and validates the description at `path` with the companion at `vmbus`, if
/// any.
pub fn load_pair(path: &Path, vmbus: Option<&Path>) -> Result<System, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let xml = read(path)?;
    match vmbus {
        None => parse_and_validate(&file, &xml),
        Some(v) => {
            let vfile = v.display().to_string();
            let vxml = read(v)?;
            parse_and_validate_pair(Source::new(&file, &xml), Source::new(&vfile, &vxml))
        }
    }
}
