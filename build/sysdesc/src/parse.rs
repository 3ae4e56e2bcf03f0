//! XML to model: element and attribute checking, numbers, the top-level elements.
//!
//! Every unknown element or attribute is an error (Microkit rejects them too), and parsing goes
//! on after an error so one run reports everything wrong in the file. The VMBus companion file is
//! read by the same machinery ([`vmbus`]).

use std::collections::HashSet;

use roxmltree::{Document, Node};

use crate::diag::{Diagnostic, ErrorKind, MAX_SHOWN, Sink, shown, shown_max};
use crate::model::*;

mod lines;
mod pd;
mod prescan;
pub mod vmbus;

use lines::Lines;
use prescan::{Excess, MAX_ATTRIBUTES, MAX_NAMESPACES};

/// Parser state: the document, its line table and the diagnostics found so far.
pub(crate) struct Parser<'d, 'i> {
    pub doc: &'d Document<'i>,
    lines: Lines,
    pub sink: Sink,
}

/// Parses `xml` (named `file` in diagnostics) into a [`System`] without cross-checking it.
///
/// Returns every syntax-level problem (unknown elements or attributes, malformed or
/// out-of-range values, wrong element counts); see [`crate::validate()`] for the rest. The file
/// is plain Microkit: its PDs have no VMBus wiring until a companion is attached
/// ([`vmbus::attach`]).
pub fn parse(file: &str, xml: &str) -> Result<System, Vec<Diagnostic>> {
    run(file, xml, |p| p.system(file))
}

/// Runs `read` over the parsed document of `xml` (named `file`), after the pre-scan; the result
/// if no problem was found, else every problem.
pub(crate) fn run<T>(
    file: &str,
    xml: &str,
    read: impl FnOnce(&mut Parser<'_, '_>) -> T,
) -> Result<T, Vec<Diagnostic>> {
    let mut sink = Sink::new(file);
    let lines = Lines::new(xml);
    if let Some(excess) = prescan::prescan(xml) {
        let (at, message) = match excess {
            Excess::Attributes { at, name } => (
                at,
                format!(
                    "element '{}' has more than {MAX_ATTRIBUTES} attributes (no element of the format has more than 12)",
                    shown(name)
                ),
            ),
            Excess::Namespaces { at } => (
                at,
                format!(
                    "more than {MAX_NAMESPACES} namespace declarations (the format uses no namespaces)"
                ),
            ),
        };
        sink.push(lines.line(at), ErrorKind::UnknownAttribute, message);
        return Err(sink.diags);
    }
    let doc = match Document::parse(xml) {
        Ok(doc) => doc,
        Err(e) => {
            let pos = e.pos();
            let e = e.to_string();
            sink.push(
                pos.row,
                ErrorKind::Xml,
                format!("not well-formed XML: {}", shown_max(&e, 4 * MAX_SHOWN)),
            );
            return Err(sink.diags);
        }
    };
    let mut p = Parser {
        doc: &doc,
        lines,
        sink,
    };
    let out = read(&mut p);
    if p.sink.diags.is_empty() {
        Ok(out)
    } else {
        Err(p.sink.diags)
    }
}

/// The element children of `node` (comments and whitespace skipped).
pub(crate) fn elements<'a, 'b>(node: Node<'a, 'b>) -> impl Iterator<Item = Node<'a, 'b>> {
    node.children().filter(|c| c.is_element())
}

/// The name of element `node` as the format knows it; `None` for a name in a namespace (the
/// format has none, so `<x:vcpu>` is not `<vcpu>`).
pub(crate) fn tag<'a>(node: Node<'a, '_>) -> Option<&'a str> {
    match node.tag_name().namespace() {
        None => Some(node.tag_name().name()),
        Some(_) => None,
    }
}

/// Parses a number the way Microkit does: decimal, or hexadecimal with `0x`; `_` separators.
pub(crate) fn parse_number(s: &str) -> Option<u64> {
    let t: String = s.trim().chars().filter(|&c| c != '_').collect();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

impl<'d, 'i> Parser<'d, 'i> {
    /// 1-based line where `node` starts.
    pub fn line(&self, node: Node) -> u32 {
        self.lines.line(node.range().start)
    }

    pub(crate) fn attr_line(&self, node: Node, name: &str) -> u32 {
        node.attributes()
            .find(|a| a.name() == name && a.namespace().is_none())
            .map(|a| self.lines.line(a.range().start))
            .unwrap_or_else(|| self.line(node))
    }

    /// The name of element `node` as written, with its prefix (`x:vcpu`), for messages.
    pub(crate) fn written_name(&self, node: Node) -> &'i str {
        let text: &'i str = self.doc.input_text();
        let rest = text.get(node.range().start + 1..).unwrap_or("");
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
            .unwrap_or(rest.len());
        &rest[..end]
    }

    pub fn err(&mut self, node: Node, kind: ErrorKind, msg: impl Into<String>) {
        let line = self.line(node);
        self.sink.push(line, kind, msg);
    }

    fn attr_err(&mut self, node: Node, attr: &str, kind: ErrorKind, msg: impl Into<String>) {
        let line = self.attr_line(node, attr);
        self.sink.push(line, kind, msg);
    }

    /// Reports attributes of `node` not in `allowed`, and stray text inside `node`.
    pub fn check_attrs(&mut self, node: Node, allowed: &[&str]) {
        let tag = node.tag_name().name();
        for a in node.attributes() {
            if a.namespace().is_some() || !allowed.contains(&a.name()) {
                let line = self.lines.line(a.range().start);
                self.sink.push(
                    line,
                    ErrorKind::UnknownAttribute,
                    format!(
                        "unknown attribute '{}' on '{tag}' (allowed: {})",
                        shown(a.name()),
                        if allowed.is_empty() {
                            "none".to_string()
                        } else {
                            allowed.join(", ")
                        }
                    ),
                );
            }
        }
        for c in node.children() {
            if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
                let line = self.line(c);
                self.sink.push(
                    line,
                    ErrorKind::Structure,
                    format!("unexpected text inside '{tag}'"),
                );
            }
        }
    }

    /// Checks an element that takes no children: its attributes, text and child elements.
    pub fn leaf(&mut self, node: Node, allowed: &[&str]) {
        self.check_attrs(node, allowed);
        let tag = node.tag_name().name();
        for c in elements(node) {
            self.unknown_element(c, tag, &[]);
        }
    }

    pub fn unknown_element(&mut self, child: Node, parent: &str, allowed: &[&str]) {
        let name = self.written_name(child);
        // The VMBus elements of earlier versions of the format, met in a Microkit file.
        let hint = if name.starts_with("vmbus_") && self.doc.root_element().has_tag_name("system") {
            format!(
                "; VMBus wiring belongs in the companion file {}",
                crate::companion_name(&self.sink.file)
            )
        } else {
            String::new()
        };
        self.err(
            child,
            ErrorKind::UnknownElement,
            format!(
                "unknown element '{}' in '{parent}' (allowed: {}){hint}",
                shown(name),
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            ),
        );
    }

    /// A required string attribute.
    pub fn req<'n, 'm>(&mut self, node: Node<'n, 'm>, name: &str) -> Option<&'n str> {
        let v = node.attribute(name);
        if v.is_none() {
            self.err(
                node,
                ErrorKind::MissingAttribute,
                format!("'{}' needs the attribute '{name}'", node.tag_name().name()),
            );
        }
        v
    }

    /// A non-empty optional string attribute (empty is an error).
    pub fn opt_str(&mut self, node: Node, name: &str) -> Option<String> {
        let v = node.attribute(name)?;
        if v.trim().is_empty() {
            self.attr_err(
                node,
                name,
                ErrorKind::BadValue,
                format!("'{name}' on '{}' is empty", node.tag_name().name()),
            );
            return None;
        }
        Some(v.to_string())
    }

    /// An optional number attribute; `None` when absent or malformed (malformed is reported).
    pub fn opt_num(&mut self, node: Node, name: &str) -> Option<u64> {
        let v = node.attribute(name)?;
        let n = parse_number(v);
        if n.is_none() {
            self.attr_err(
                node,
                name,
                ErrorKind::BadValue,
                format!(
                    "'{name}' on '{}' is '{}', not a number (decimal or 0x hexadecimal)",
                    node.tag_name().name(),
                    shown(v)
                ),
            );
        }
        n
    }

    /// A required number attribute.
    pub fn req_num(&mut self, node: Node, name: &str) -> Option<u64> {
        self.req(node, name)?;
        self.opt_num(node, name)
    }

    /// A number attribute that must lie in `lo..=hi`.
    pub fn num_in(
        &mut self,
        node: Node,
        name: &str,
        required: bool,
        lo: u64,
        hi: u64,
    ) -> Option<u64> {
        let n = if required {
            self.req_num(node, name)?
        } else {
            self.opt_num(node, name)?
        };
        if n < lo || n > hi {
            self.attr_err(
                node,
                name,
                ErrorKind::BadValue,
                format!(
                    "'{name}' on '{}' is {n}, must be within {lo}..={hi}",
                    node.tag_name().name()
                ),
            );
            return None;
        }
        Some(n)
    }

    /// A boolean attribute (`true`/`false`) with a default.
    pub fn boolean(&mut self, node: Node, name: &str, default: bool) -> bool {
        match node.attribute(name) {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(v) => {
                self.attr_err(
                    node,
                    name,
                    ErrorKind::BadValue,
                    format!(
                        "'{name}' on '{}' is '{}', must be 'true' or 'false'",
                        node.tag_name().name(),
                        shown(v)
                    ),
                );
                default
            }
        }
    }

    /// A channel id: a bit of the PD's notification badge (channel ends, interrupts, the
    /// driver channel of a client), 0..=[`MAX_CHANNEL_ID`].
    pub fn channel_id(&mut self, node: Node, name: &str) -> Option<u8> {
        self.num_in(node, name, true, 0, u64::from(MAX_CHANNEL_ID))
            .map(|n| n as u8)
    }

    /// Another Microkit id (I/O port, child PD, vCPU), 0..=[`MICROKIT_MAX_ID`].
    pub fn id(&mut self, node: Node, name: &str) -> Option<u8> {
        self.num_in(node, name, true, 0, u64::from(MICROKIT_MAX_ID))
            .map(|n| n as u8)
    }

    fn system(&mut self, file: &str) -> System {
        let root = self.doc.root_element();
        let mut sys = System {
            file: file.to_string(),
            vmbus_file: None,
            pds: Vec::new(),
            regions: Vec::new(),
            channels: Vec::new(),
            domains: None,
        };
        if tag(root) != Some("system") {
            let name = self.written_name(root);
            self.err(
                root,
                ErrorKind::UnknownElement,
                format!("root element is '{}', expected 'system'", shown(name)),
            );
            return sys;
        }
        self.check_attrs(root, &[]);
        const ALLOWED: &[&str] = &["protection_domain", "memory_region", "channel", "domains"];
        for child in elements(root) {
            match tag(child).unwrap_or("") {
                "protection_domain" => self.protection_domain(child, None, 0, &mut sys.pds),
                "memory_region" => {
                    if let Some(r) = self.memory_region(child) {
                        sys.regions.push(r);
                    }
                }
                "channel" => {
                    if let Some(c) = self.channel(child) {
                        sys.channels.push(c);
                    }
                }
                "domains" => {
                    if sys.domains.is_some() {
                        self.err(
                            child,
                            ErrorKind::Structure,
                            "'domains' may appear only once",
                        );
                    } else {
                        sys.domains = self.domains(child);
                    }
                }
                _ => self.unknown_element(child, "system", ALLOWED),
            }
        }
        sys
    }

    fn memory_region(&mut self, node: Node) -> Option<MemoryRegion> {
        self.leaf(
            node,
            &[
                "name",
                "size",
                "page_size",
                "phys_addr",
                "prefill_path",
                "prefill_bootinfo",
            ],
        );
        let name = self.req(node, "name").map(str::to_string);
        let size = match self.opt_num(node, "size") {
            Some(s) => Some(s),
            None if node.attribute("size").is_none() => {
                self.err(
                    node,
                    ErrorKind::MissingAttribute,
                    "'memory_region' needs the attribute 'size' (sysdesc does not size regions from prefill data)",
                );
                None
            }
            None => None,
        };
        let page_size = self.opt_num(node, "page_size");
        if let Some(ps) = page_size
            && ps != PAGE_SIZE
            && ps != LARGE_PAGE_SIZE
        {
            self.attr_err(
                node,
                "page_size",
                ErrorKind::BadValue,
                format!("page_size {ps:#x} is not an x86-64 page size (0x1000 or 0x200000)"),
            );
        }
        let phys_addr = self.opt_num(node, "phys_addr");
        let prefill_path = self.opt_str(node, "prefill_path");
        let prefill_bootinfo = self.opt_str(node, "prefill_bootinfo");
        if let Some(bi) = &prefill_bootinfo {
            const KINDS: &[&str] = &[
                "x86_vbe",
                "x86_mbmmap",
                "x86_acpi_rsdp",
                "x86_framebuffer",
                "x86_tsc_freq",
                "fdt",
            ];
            if !KINDS.contains(&bi.as_str()) {
                self.attr_err(
                    node,
                    "prefill_bootinfo",
                    ErrorKind::BadValue,
                    format!(
                        "prefill_bootinfo '{}' is not one of {}",
                        shown(bi),
                        KINDS.join(", ")
                    ),
                );
            }
        }
        if prefill_path.is_some() && prefill_bootinfo.is_some() {
            self.err(
                node,
                ErrorKind::Structure,
                "'memory_region' may have prefill_path or prefill_bootinfo, not both",
            );
        }
        Some(MemoryRegion {
            name: name?,
            size: size?,
            page_size: page_size.unwrap_or(PAGE_SIZE),
            phys_addr,
            prefill_path,
            prefill_bootinfo,
            line: self.line(node),
        })
    }

    fn channel(&mut self, node: Node) -> Option<Channel> {
        self.check_attrs(node, &[]);
        let mut ends = Vec::new();
        let mut count = 0;
        for c in elements(node) {
            if tag(c) != Some("end") {
                self.unknown_element(c, "channel", &["end"]);
                continue;
            }
            count += 1;
            self.leaf(c, &["pd", "id", "pp", "notify", "setvar_id"]);
            let pd = self.req(c, "pd").map(str::to_string);
            let id = self.channel_id(c, "id");
            let pp = self.boolean(c, "pp", false);
            let notify = self.boolean(c, "notify", true);
            let setvar_id = self.opt_str(c, "setvar_id");
            if let (Some(pd), Some(id)) = (pd, id) {
                ends.push(ChannelEnd {
                    pd,
                    id,
                    pp,
                    notify,
                    setvar_id,
                    line: self.line(c),
                });
            }
        }
        if count != 2 {
            self.err(
                node,
                ErrorKind::Structure,
                format!("'channel' needs exactly two 'end' elements, has {count}"),
            );
            return None;
        }
        let [a, b]: [ChannelEnd; 2] = ends.try_into().ok()?;
        if a.pp && b.pp {
            self.err(
                node,
                ErrorKind::Priority,
                format!(
                    "channel between \"{}\" and \"{}\" has pp on both ends: protected calls go one way only",
                    shown(&a.pd),
                    shown(&b.pd)
                ),
            );
        }
        Some(Channel {
            ends: [a, b],
            line: self.line(node),
        })
    }

    fn domains(&mut self, node: Node) -> Option<Domains> {
        self.check_attrs(node, &[]);
        let mut out = Domains {
            domains: Vec::new(),
            schedule: Vec::new(),
            start_index: 0,
            index_shift: None,
            line: self.line(node),
        };
        let mut schedules = 0;
        // Names declared so far, so that a legacy schedule `domain` declares its own only once.
        let mut declared = HashSet::new();
        for c in elements(node) {
            match tag(c).unwrap_or("") {
                "domain" => {
                    self.leaf(c, &["name", "id"]);
                    let name = self.req(c, "name").map(str::to_string);
                    let id = self.num_in(c, "id", false, 0, 255).map(|n| n as u8);
                    if let Some(name) = name {
                        declared.insert(name.clone());
                        out.domains.push(Domain {
                            name,
                            id,
                            line: self.line(c),
                        });
                    }
                }
                "domain_schedule" => {
                    schedules += 1;
                    self.domain_schedule(c, &mut out, &mut declared);
                }
                _ => self.unknown_element(c, "domains", &["domain", "domain_schedule"]),
            }
        }
        if schedules != 1 {
            self.err(
                node,
                ErrorKind::Structure,
                format!("'domains' needs exactly one 'domain_schedule', has {schedules}"),
            );
        }
        Some(out)
    }

    fn domain_schedule(&mut self, node: Node, out: &mut Domains, declared: &mut HashSet<String>) {
        self.check_attrs(node, &["start_index", "index_shift"]);
        out.start_index = self.opt_num(node, "start_index").unwrap_or(0);
        out.index_shift = self.opt_num(node, "index_shift");
        for c in elements(node) {
            let line = self.line(c);
            match tag(c).unwrap_or("") {
                "schedule_entry" => {
                    self.leaf(c, &["domain", "duration"]);
                    let domain = self.req(c, "domain").map(str::to_string);
                    let duration = match self.req(c, "duration") {
                        Some(raw) => {
                            let d = parse_duration(raw);
                            if d.is_none() {
                                self.attr_err(
                                    c,
                                    "duration",
                                    ErrorKind::BadValue,
                                    format!(
                                        "duration '{}' must be a non-zero number and a unit, 'us' or 'ticks' (e.g. '1000 us')",
                                        shown(raw)
                                    ),
                                );
                            }
                            d
                        }
                        None => None,
                    };
                    if let (Some(domain), Some(duration)) = (domain, duration) {
                        out.schedule.push(ScheduleEntry::Run {
                            domain,
                            duration,
                            line,
                        });
                    }
                }
                "schedule_end_marker" => {
                    self.leaf(c, &[]);
                    out.schedule.push(ScheduleEntry::EndMarker { line });
                }
                // The earlier Microkit domain-scheduler form: `<domain name= length=>` both declares
                // the domain and schedules it for `length` ticks.
                "domain" => {
                    self.leaf(c, &["name", "length"]);
                    let name = self.req(c, "name").map(str::to_string);
                    let length = self.num_in(c, "length", true, 1, u64::MAX);
                    if let (Some(name), Some(length)) = (name, length) {
                        if declared.insert(name.clone()) {
                            out.domains.push(Domain {
                                name: name.clone(),
                                id: None,
                                line,
                            });
                        }
                        out.schedule.push(ScheduleEntry::Run {
                            domain: name,
                            duration: Duration::Ticks(length),
                            line,
                        });
                    }
                }
                _ => self.unknown_element(
                    c,
                    "domain_schedule",
                    &["schedule_entry", "schedule_end_marker", "domain"],
                ),
            }
        }
    }
}

/// `"1000 us"` or `"5 ticks"`, non-zero.
fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = s.trim().split_once(' ')?;
    let n = parse_number(n).filter(|&n| n > 0)?;
    match unit.trim() {
        "us" => Some(Duration::Us(n)),
        "ticks" => Some(Duration::Ticks(n)),
        _ => None,
    }
}
