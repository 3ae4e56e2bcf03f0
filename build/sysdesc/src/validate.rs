//! Cross-checks of a parsed description: names, address spaces, ids, priorities, VMBus wiring.
//!
//! Every check runs and every problem is reported, each with the line of the element at fault.

use std::collections::HashMap;

use crate::diag::{Diagnostic, ErrorKind, Sink};
use crate::model::*;

/// Checks `sys` and returns every problem found (empty: the description is consistent).
pub fn validate(sys: &System) -> Vec<Diagnostic> {
    let mut v = Validator {
        sys,
        sink: Sink::new(&sys.file),
    };
    v.names();
    v.regions();
    v.channels();
    for pd in &sys.pds {
        v.pd_address_space(pd);
        v.pd_ids(pd);
        v.pd_refs(pd);
    }
    v.irq_vectors();
    v.domains();
    v.vmbus();
    v.sink.diags
}

struct Validator<'a> {
    sys: &'a System,
    sink: Sink,
}

/// A used virtual address range in one address space, for overlap checks.
struct Span {
    what: String,
    start: u64,
    end: u64,
    line: u32,
}

impl Validator<'_> {
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
                        "{what} name \"{name}\" is already used by the {first_what} at line {first}"
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
                        r.name
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
                        r.name, r.size, r.page_size
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
                            r.name, r.page_size
                        ),
                    );
            }
        }
    }

    fn channels(&mut self) {
        for c in &self.sys.channels {
            let [a, b] = &c.ends;
            for e in [a, b] {
                if self.sys.pd(&e.pd).is_none() {
                    self.sink.push(
                        e.line,
                        ErrorKind::UnknownName,
                        format!("channel end names unknown PD \"{}\"", e.pd),
                    );
                }
            }
            if a.pd == b.pd {
                self.sink.push(
                    c.line,
                    ErrorKind::Structure,
                    format!("channel connects PD \"{}\" to itself", a.pd),
                );
                continue;
            }
            for (caller, callee) in [(a, b), (b, a)] {
                if !caller.pp {
                    continue;
                }
                let (Some(from), Some(to)) = (self.sys.pd(&caller.pd), self.sys.pd(&callee.pd))
                else {
                    continue;
                };
                if to.sched.priority <= from.sched.priority {
                    self.sink.push(
                        caller.line,
                        ErrorKind::Priority,
                        format!(
                            "PD \"{}\" (priority {}) may not make protected calls to PD \"{}\" (priority {}): the callee needs a strictly higher priority",
                            from.name, from.sched.priority, to.name, to.sched.priority
                        ),
                    );
                }
            }
        }
    }

    /// Checks one list of maps (a PD's or a VM's) plus extra spans (a client window).
    fn maps(&mut self, owner: &str, maps: &[Map], extra: Vec<Span>) {
        let mut spans: Vec<Span> = Vec::new();
        for m in maps {
            let Some(r) = self.sys.region(&m.mr) else {
                self.sink.push(
                    m.line,
                    ErrorKind::UnknownName,
                    format!("map in {owner} names unknown memory region \"{}\"", m.mr),
                );
                continue;
            };
            if m.vaddr % r.page_size != 0 {
                self.sink.push(
                    m.line,
                    ErrorKind::Alignment,
                    format!(
                        "map of \"{}\" in {owner}: vaddr {:#x} is not aligned to the region's page size {:#x}",
                        m.mr, m.vaddr, r.page_size
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
                            m.mr, m.vaddr, r.size
                        ),
                    );
                    continue;
                }
            };
            spans.push(Span {
                what: format!("map of \"{}\"", m.mr),
                start: m.vaddr,
                end,
                line: m.line,
            });
        }
        spans.extend(extra);
        spans.sort_by_key(|s| s.line);
        for (i, s) in spans.iter().enumerate() {
            for t in &spans[..i] {
                if s.start < t.end && t.start < s.end {
                    self.sink.push(
                        s.line,
                        ErrorKind::Overlap,
                        format!(
                            "{} in {owner} at {:#x}..{:#x} overlaps {} at {:#x}..{:#x} (line {})",
                            s.what, s.start, s.end, t.what, t.start, t.end, t.line
                        ),
                    );
                }
            }
        }
    }

    fn pd_address_space(&mut self, pd: &ProtectionDomain) {
        let mut extra = Vec::new();
        if let Some(c) = &pd.vmbus_client
            && let Some(end) = c.window_vaddr.checked_add(c.window_size)
        {
            extra.push(Span {
                what: "VMBus window".to_string(),
                start: c.window_vaddr,
                end,
                line: c.line,
            });
        }
        self.maps(&format!("PD \"{}\"", pd.name), &pd.maps, extra);
        if let Some(vm) = &pd.virtual_machine {
            self.maps(
                &format!("virtual machine \"{}\"", vm.name),
                &vm.maps,
                Vec::new(),
            );
        }
    }

    fn pd_ids(&mut self, pd: &ProtectionDomain) {
        // Channel and interrupt ids share one space: both are bits of the PD's notification badge.
        let mut used: HashMap<u8, (String, u32)> = HashMap::new();
        let mut ids: Vec<(u8, String, u32)> = Vec::new();
        for (mine, other) in self.sys.channels_of(&pd.name) {
            ids.push((
                mine.id,
                format!("the channel to \"{}\"", other.pd),
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
                        pd.name
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
                        io.id, pd.name
                    ),
                );
            }
        }
        // Child PD ids and vCPU ids share the parent's fault/child id space.
        let index = self.sys.pd_index(&pd.name);
        let mut children: HashMap<u8, u32> = HashMap::new();
        if let Some(vm) = &pd.virtual_machine {
            for v in &vm.vcpus {
                if let Some(first) = children.insert(v.id, v.line) {
                    self.sink.push(
                        v.line,
                        ErrorKind::DuplicateId,
                        format!(
                            "vcpu id {} in PD \"{}\" is already used at line {first}",
                            v.id, pd.name
                        ),
                    );
                }
            }
        }
        for child in self
            .sys
            .pds
            .iter()
            .filter(|c| c.parent.is_some() && c.parent == index)
        {
            if let Some(id) = child.child_id
                && let Some(first) = children.insert(id, child.line)
            {
                self.sink.push(
                    child.line,
                    ErrorKind::DuplicateId,
                    format!(
                        "child id {id} of PD \"{}\" (for \"{}\") is already used at line {first}",
                        pd.name, child.name
                    ),
                );
            }
        }
    }

    fn pd_refs(&mut self, pd: &ProtectionDomain) {
        for s in &pd.setvars {
            if self.sys.region(&s.region_paddr).is_none() {
                self.sink.push(
                    s.line,
                    ErrorKind::UnknownName,
                    format!(
                        "setvar \"{}\" in PD \"{}\" names unknown memory region \"{}\"",
                        s.symbol, pd.name, s.region_paddr
                    ),
                );
            }
        }
        let mut slots: HashMap<u64, u32> = HashMap::new();
        for cap in &pd.cspace {
            if self.sys.pd(&cap.pd).is_none() {
                self.sink.push(
                    cap.line,
                    ErrorKind::UnknownName,
                    format!(
                        "cspace entry in PD \"{}\" names unknown PD \"{}\"",
                        pd.name, cap.pd
                    ),
                );
            }
            if let Some(first) = slots.insert(cap.slot, cap.line) {
                self.sink.push(
                    cap.line,
                    ErrorKind::DuplicateId,
                    format!(
                        "cspace slot {} of PD \"{}\" is already used at line {first}",
                        cap.slot, pd.name
                    ),
                );
            }
        }
        match (&self.sys.domains, &pd.domain) {
            (Some(d), Some(name)) if !d.domains.iter().any(|x| &x.name == name) => self.sink.push(
                pd.line,
                ErrorKind::UnknownName,
                format!("PD \"{}\" names undeclared domain \"{name}\"", pd.name),
            ),
            (Some(_), None) => self.sink.push(
                pd.line,
                ErrorKind::MissingAttribute,
                format!(
                    "PD \"{}\" needs a 'domain' attribute: the system declares a domain schedule",
                    pd.name
                ),
            ),
            (None, Some(name)) => self.sink.push(
                pd.line,
                ErrorKind::UnknownName,
                format!(
                    "PD \"{}\" names domain \"{name}\" but the system declares no 'domains'",
                    pd.name
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
                            "irq vector {} of PD \"{}\" is already taken by PD \"{owner}\" (line {line})",
                            irq.vector, pd.name
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
                        dom.name
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
                        "domain id {id} of \"{}\" is already used by \"{other}\"",
                        dom.name
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
                    format!("schedule entry names undeclared domain \"{domain}\""),
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

mod vmbus;
