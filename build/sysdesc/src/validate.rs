//! Cross-checks of a parsed description: names, address spaces, ids, priorities, VMBus wiring.
//!
//! Every check runs and every problem is reported, each with the file and line of the element at
//! fault: the Microkit description's, or the VMBus companion's ([`System::vmbus_file`]).
//!
//! The checks take time linear in the size of the description (up to a log factor): names are
//! looked up in hash maps built once, each PD's channel ends and child PDs are gathered in one
//! pass, overlaps come from one sweep over the sorted ranges, and each problem is reported once
//! (an element overlapping many others is reported once, naming one of them).

use std::collections::{HashMap, HashSet};

use crate::diag::{Diagnostic, ErrorKind, Sink, shown};
use crate::model::*;

/// Checks `sys` and returns every problem found (empty: the description is consistent).
pub fn validate(sys: &System) -> Vec<Diagnostic> {
    let mut v = Validator::new(sys);
    v.names();
    v.regions();
    v.channels();
    for (i, pd) in sys.pds.iter().enumerate() {
        v.pd_address_space(pd);
        v.pd_ids(i, pd);
        v.pd_refs(pd);
    }
    v.irq_vectors();
    v.domains();
    v.vmbus();
    let mut diags = v.sink.diags;
    diags.append(&mut v.companion.diags);
    diags
}

struct Validator<'a> {
    sys: &'a System,
    /// Problems in the Microkit description.
    sink: Sink,
    /// Problems in the VMBus companion.
    companion: Sink,
    /// The first PD of each name.
    pd_by_name: HashMap<&'a str, &'a ProtectionDomain>,
    /// The first memory region of each name.
    region_by_name: HashMap<&'a str, &'a MemoryRegion>,
    /// The channel ends of each PD name, as (its end, the other end), in file order.
    ends: HashMap<&'a str, Vec<(&'a ChannelEnd, &'a ChannelEnd)>>,
    /// The child PDs of each PD, by index.
    children: Vec<Vec<&'a ProtectionDomain>>,
    /// The declared domain names.
    declared_domains: HashSet<&'a str>,
}

/// A used virtual address range in one address space, for overlap checks.
struct Span {
    what: String,
    start: u64,
    end: u64,
    line: u32,
}

impl<'a> Validator<'a> {
    fn new(sys: &'a System) -> Self {
        let mut pd_by_name = HashMap::new();
        let mut children = vec![Vec::new(); sys.pds.len()];
        for pd in &sys.pds {
            pd_by_name.entry(pd.name.as_str()).or_insert(pd);
            if let Some(parent) = pd.parent.and_then(|p| children.get_mut(p)) {
                parent.push(pd);
            }
        }
        let mut region_by_name = HashMap::new();
        for r in &sys.regions {
            region_by_name.entry(r.name.as_str()).or_insert(r);
        }
        let mut ends: HashMap<&str, Vec<_>> = HashMap::new();
        for c in &sys.channels {
            let [a, b] = &c.ends;
            ends.entry(a.pd.as_str()).or_default().push((a, b));
            ends.entry(b.pd.as_str()).or_default().push((b, a));
        }
        let declared_domains = sys
            .domains
            .iter()
            .flat_map(|d| &d.domains)
            .map(|d| d.name.as_str())
            .collect();
        Validator {
            sys,
            sink: Sink::new(&sys.file),
            companion: Sink::new(sys.vmbus_file.as_deref().unwrap_or(&sys.file)),
            pd_by_name,
            region_by_name,
            ends,
            children,
            declared_domains,
        }
    }

    /// The PD named `name` (the first, if several are).
    fn pd(&self, name: &str) -> Option<&'a ProtectionDomain> {
        self.pd_by_name.get(name).copied()
    }

    /// The memory region named `name` (the first, if several are).
    fn region(&self, name: &str) -> Option<&'a MemoryRegion> {
        self.region_by_name.get(name).copied()
    }

    /// The channels of the PD named `pd`, as (its end, the other end), in file order.
    fn channels_of(&self, pd: &str) -> &[(&'a ChannelEnd, &'a ChannelEnd)] {
        self.ends.get(pd).map_or(&[], Vec::as_slice)
    }

    fn names(&mut self) {
        let mut seen: HashMap<&str, (u32, &str)> = HashMap::new();
        let mut named: Vec<(&str, u32, &str)> = Vec::new();
        for pd in &self.sys.pds {
            named.push((&pd.name, pd.line, "protection domain"));
            if let Some(vm) = &pd.virtual_machine {
                named.push((&vm.name, vm.line, "virtual machine"));
            }
        }
        for (name, line, what) in named {
            if let Some((first, first_what)) = seen.get(name) {
                self.sink.push(
                    line,
                    ErrorKind::DuplicateName,
                    format!(
                        "{what} name \"{}\" is already used by the {first_what} at line {first}",
                        shown(name)
                    ),
                );
            } else {
                seen.insert(name, (line, what));
            }
        }
        if self.sys.pds.len() > MAX_PDS {
            self.sink.push(
                self.sys.pds[MAX_PDS].line,
                ErrorKind::Structure,
                format!(
                    "{} protection domains; Microkit supports at most {MAX_PDS}",
                    self.sys.pds.len()
                ),
            );
        }
        let mut regions: HashMap<&str, u32> = HashMap::new();
        for r in &self.sys.regions {
            if let Some(first) = regions.get(r.name.as_str()) {
                self.sink.push(
                    r.line,
                    ErrorKind::DuplicateName,
                    format!(
                        "memory region name \"{}\" is already used at line {first}",
                        shown(&r.name)
                    ),
                );
            } else {
                regions.insert(&r.name, r.line);
            }
        }
    }

    fn regions(&mut self) {
        for r in &self.sys.regions {
            if r.size == 0 || r.size % r.page_size != 0 {
                self.sink.push(
                    r.line,
                    ErrorKind::Alignment,
                    format!(
                        "memory region \"{}\": size {:#x} is not a non-zero multiple of its page size {:#x}",
                        shown(&r.name),
                        r.size,
                        r.page_size
                    ),
                );
            }
            if let Some(pa) = r.phys_addr
                && pa % r.page_size != 0
            {
                self.sink.push(
                    r.line,
                    ErrorKind::Alignment,
                    format!(
                        "memory region \"{}\": phys_addr {pa:#x} is not aligned to its page size {:#x}",
                        shown(&r.name),
                        r.page_size
                    ),
                );
            }
        }
    }

    fn channels(&mut self) {
        for c in &self.sys.channels {
            let [a, b] = &c.ends;
            for e in [a, b] {
                if self.pd(&e.pd).is_none() {
                    self.sink.push(
                        e.line,
                        ErrorKind::UnknownName,
                        format!("channel end names unknown PD \"{}\"", shown(&e.pd)),
                    );
                }
            }
            if a.pd == b.pd {
                self.sink.push(
                    c.line,
                    ErrorKind::Structure,
                    format!("channel connects PD \"{}\" to itself", shown(&a.pd)),
                );
                continue;
            }
            for (caller, callee) in [(a, b), (b, a)] {
                if !caller.pp {
                    continue;
                }
                let (Some(from), Some(to)) = (self.pd(&caller.pd), self.pd(&callee.pd)) else {
                    continue;
                };
                if to.sched.priority <= from.sched.priority {
                    self.sink.push(
                        caller.line,
                        ErrorKind::Priority,
                        format!(
                            "PD \"{}\" (priority {}) may not make protected calls to PD \"{}\" (priority {}): the callee needs a strictly higher priority",
                            shown(&from.name),
                            from.sched.priority,
                            shown(&to.name),
                            to.sched.priority
                        ),
                    );
                }
            }
        }
    }

    /// Checks one list of maps (a PD's or a VM's).
    fn maps(&mut self, owner: &str, maps: &[Map]) {
        let mut spans: Vec<Span> = Vec::new();
        for m in maps {
            let Some(r) = self.region(&m.mr) else {
                self.sink.push(
                    m.line,
                    ErrorKind::UnknownName,
                    format!(
                        "map in {owner} names unknown memory region \"{}\"",
                        shown(&m.mr)
                    ),
                );
                continue;
            };
            if m.vaddr % r.page_size != 0 {
                self.sink.push(
                    m.line,
                    ErrorKind::Alignment,
                    format!(
                        "map of \"{}\" in {owner}: vaddr {:#x} is not aligned to the region's page size {:#x}",
                        shown(&m.mr),
                        m.vaddr,
                        r.page_size
                    ),
                );
            }
            let end = match m.vaddr.checked_add(r.size) {
                Some(end) if end <= USER_VADDR_LIMIT => end,
                _ => {
                    self.sink.push(
                        m.line,
                        ErrorKind::BadValue,
                        format!(
                            "map of \"{}\" in {owner}: {:#x} + {:#x} runs past the user address limit {USER_VADDR_LIMIT:#x}",
                            shown(&m.mr),
                            m.vaddr,
                            r.size
                        ),
                    );
                    continue;
                }
            };
            spans.push(Span {
                what: format!("map of \"{}\"", shown(&m.mr)),
                start: m.vaddr,
                end,
                line: m.line,
            });
        }
        for (line, msg) in overlaps(&spans, owner) {
            self.sink.push(line, ErrorKind::Overlap, msg);
        }
    }

    /// The maps of a PD and of its virtual machine (a client's window is checked against them
    /// with the VMBus wiring).
    fn pd_address_space(&mut self, pd: &ProtectionDomain) {
        self.maps(&format!("PD \"{}\"", shown(&pd.name)), &pd.maps);
        if let Some(vm) = &pd.virtual_machine {
            self.maps(
                &format!("virtual machine \"{}\"", shown(&vm.name)),
                &vm.maps,
            );
        }
    }

    /// The ids of PD number `index`.
    fn pd_ids(&mut self, index: usize, pd: &ProtectionDomain) {
        // Channel and interrupt ids share one space: both are bits of the PD's notification badge.
        let mut used: HashMap<u8, (String, u32)> = HashMap::new();
        let mut ids: Vec<(u8, String, u32)> = Vec::new();
        for (mine, other) in self.channels_of(&pd.name) {
            ids.push((
                mine.id,
                format!("the channel to \"{}\"", shown(&other.pd)),
                mine.line,
            ));
        }
        for irq in &pd.irqs {
            ids.push((irq.id, format!("irq vector {}", irq.vector), irq.line));
        }
        ids.sort_by_key(|i| i.2);
        for (id, what, line) in ids {
            if let Some((first, first_line)) = used.get(&id) {
                self.sink.push(
                    line,
                    ErrorKind::DuplicateId,
                    format!(
                        "id {id} of PD \"{}\" for {what} is already used by {first} (line {first_line})",
                        shown(&pd.name)
                    ),
                );
            } else {
                used.insert(id, (what, line));
            }
        }
        let mut ports: HashMap<u8, u32> = HashMap::new();
        for io in &pd.ioports {
            if let Some(first) = ports.insert(io.id, io.line) {
                self.sink.push(
                    io.line,
                    ErrorKind::DuplicateId,
                    format!(
                        "ioport id {} of PD \"{}\" is already used at line {first}",
                        io.id,
                        shown(&pd.name)
                    ),
                );
            }
        }
        // Child PD ids and vCPU ids share the parent's fault/child id space.
        let mut children: HashMap<u8, u32> = HashMap::new();
        if let Some(vm) = &pd.virtual_machine {
            for v in &vm.vcpus {
                if let Some(first) = children.insert(v.id, v.line) {
                    self.sink.push(
                        v.line,
                        ErrorKind::DuplicateId,
                        format!(
                            "vcpu id {} in PD \"{}\" is already used at line {first}",
                            v.id,
                            shown(&pd.name)
                        ),
                    );
                }
            }
        }
        let kids = self.children.get(index).cloned().unwrap_or_default();
        for child in kids {
            if let Some(id) = child.child_id
                && let Some(first) = children.insert(id, child.line)
            {
                self.sink.push(
                    child.line,
                    ErrorKind::DuplicateId,
                    format!(
                        "child id {id} of PD \"{}\" (for \"{}\") is already used at line {first}",
                        shown(&pd.name),
                        shown(&child.name)
                    ),
                );
            }
        }
    }

    fn pd_refs(&mut self, pd: &ProtectionDomain) {
        for s in &pd.setvars {
            if self.region(&s.region_paddr).is_none() {
                self.sink.push(
                    s.line,
                    ErrorKind::UnknownName,
                    format!(
                        "setvar \"{}\" in PD \"{}\" names unknown memory region \"{}\"",
                        shown(&s.symbol),
                        shown(&pd.name),
                        shown(&s.region_paddr)
                    ),
                );
            }
        }
        let mut slots: HashMap<u64, u32> = HashMap::new();
        for cap in &pd.cspace {
            if self.pd(&cap.pd).is_none() {
                self.sink.push(
                    cap.line,
                    ErrorKind::UnknownName,
                    format!(
                        "cspace entry in PD \"{}\" names unknown PD \"{}\"",
                        shown(&pd.name),
                        shown(&cap.pd)
                    ),
                );
            }
            if let Some(first) = slots.insert(cap.slot, cap.line) {
                self.sink.push(
                    cap.line,
                    ErrorKind::DuplicateId,
                    format!(
                        "cspace slot {} of PD \"{}\" is already used at line {first}",
                        cap.slot,
                        shown(&pd.name)
                    ),
                );
            }
        }
        match (&self.sys.domains, &pd.domain) {
            (Some(_), Some(name)) if !self.declared_domains.contains(name.as_str()) => {
                self.sink.push(
                    pd.line,
                    ErrorKind::UnknownName,
                    format!(
                        "PD \"{}\" names undeclared domain \"{}\"",
                        shown(&pd.name),
                        shown(name)
                    ),
                )
            }
            (Some(_), None) => self.sink.push(
                pd.line,
                ErrorKind::MissingAttribute,
                format!(
                    "PD \"{}\" needs a 'domain' attribute: the system declares a domain schedule",
                    shown(&pd.name)
                ),
            ),
            (None, Some(name)) => self.sink.push(
                pd.line,
                ErrorKind::UnknownName,
                format!(
                    "PD \"{}\" names domain \"{}\" but the system declares no 'domains'",
                    shown(&pd.name),
                    shown(name)
                ),
            ),
            _ => {}
        }
    }

    fn irq_vectors(&mut self) {
        let mut seen: HashMap<u8, (&str, u32)> = HashMap::new();
        for pd in &self.sys.pds {
            for irq in &pd.irqs {
                if let Some((owner, line)) = seen.get(&irq.vector) {
                    self.sink.push(
                        irq.line,
                        ErrorKind::DuplicateId,
                        format!(
                            "irq vector {} of PD \"{}\" is already taken by PD \"{}\" (line {line})",
                            irq.vector,
                            shown(&pd.name),
                            shown(owner)
                        ),
                    );
                } else {
                    seen.insert(irq.vector, (&pd.name, irq.line));
                }
            }
        }
    }

    fn domains(&mut self) {
        let Some(d) = &self.sys.domains else { return };
        let mut names: HashMap<&str, u32> = HashMap::new();
        let mut ids: HashMap<u8, &str> = HashMap::new();
        for dom in &d.domains {
            if let Some(first) = names.insert(&dom.name, dom.line) {
                self.sink.push(
                    dom.line,
                    ErrorKind::DuplicateName,
                    format!(
                        "domain \"{}\" is already declared at line {first}",
                        shown(&dom.name)
                    ),
                );
            }
            if let Some(id) = dom.id
                && let Some(other) = ids.insert(id, &dom.name)
            {
                self.sink.push(
                    dom.line,
                    ErrorKind::DuplicateId,
                    format!(
                        "domain id {id} of \"{}\" is already used by \"{}\"",
                        shown(&dom.name),
                        shown(other)
                    ),
                );
            }
        }
        for e in &d.schedule {
            if let ScheduleEntry::Run { domain, line, .. } = e
                && !names.contains_key(domain.as_str())
            {
                self.sink.push(
                    *line,
                    ErrorKind::UnknownName,
                    format!(
                        "schedule entry names undeclared domain \"{}\"",
                        shown(domain)
                    ),
                );
            }
        }
        if d.start_index >= d.schedule.len() as u64 && !d.schedule.is_empty() {
            self.sink.push(
                d.line,
                ErrorKind::BadValue,
                format!(
                    "domain_schedule start_index {} is past the {} schedule entries",
                    d.start_index,
                    d.schedule.len()
                ),
            );
        }
    }
}

/// The overlaps among `spans` (one address space, `owner` in messages), in line order: one sweep
/// over the spans sorted by start address, each compared with the span reaching furthest before
/// it. Every overlapping span is in at least one report (at the later line of the pair, naming
/// the earlier), and the sweep makes at most one report per span: never one per pair.
fn overlaps(spans: &[Span], owner: &str) -> Vec<(u32, String)> {
    // (line, position in `spans`) orders reports as the file does; empty spans overlap nothing.
    let mut order: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].start < spans[i].end)
        .collect();
    order.sort_by_key(|&i| (spans[i].start, spans[i].line, i));
    let mut found: Vec<(u32, usize, String)> = Vec::new();
    let mut reach: Option<usize> = None;
    for i in order {
        let s = &spans[i];
        if let Some(r) = reach {
            let t = &spans[r];
            if s.start < t.end {
                let ((later, li), (earlier, _)) = if (s.line, i) > (t.line, r) {
                    ((s, i), (t, r))
                } else {
                    ((t, r), (s, i))
                };
                found.push((
                    later.line,
                    li,
                    format!(
                        "{} in {owner} at {:#x}..{:#x} overlaps {} at {:#x}..{:#x} (line {})",
                        later.what,
                        later.start,
                        later.end,
                        earlier.what,
                        earlier.start,
                        earlier.end,
                        earlier.line
                    ),
                ));
            }
            if s.end > t.end {
                reach = Some(i);
            }
        } else {
            reach = Some(i);
        }
    }
    found.sort_by_key(|f| (f.0, f.1));
    found
        .into_iter()
        .map(|(line, _, msg)| (line, msg))
        .collect()
}

mod vmbus;
