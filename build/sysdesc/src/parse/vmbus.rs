//! The VMBus companion file (`<stem>.vmbus.xml` beside the Microkit description): its parser and
//! how its elements attach to the PDs of the description.
//!
//! ```xml
//! <vmbus system="system.xml">
//!     <driver pd="vmbus_driver" pool_region="vmbus_pool" pool_pages="8192"
//!             synic_message="synic_message" synic_event_flags="synic_event_flags" />
//!     <host pd="hv_host" driver_channel="0" hypercall_input="hypercall_input" />
//!     <client pd="net" driver_channel="0" window_vaddr="0x40000000" window_size="0x1000000"
//!             max_channels="8" control="control_net">
//!         <device class="f8615163-df3e-46c5-913f-f2d2f965ed0e" />
//!     </client>
//! </vmbus>
//! ```
//!
//! On Hyper-V itself, `<hyperv sint_channel="0" synic_vaddr="0x20000000" />` takes the place of
//! `<host>` and of the driver's SynIC regions.
//!
//! Parsing checks the companion's own syntax (elements, attributes, numbers, GUIDs) with the
//! Microkit file's rules; [`attach`] then names PDs of the description and records each element
//! in its PD ([`ProtectionDomain::vmbus_driver`], [`ProtectionDomain::vmbus_host`],
//! [`ProtectionDomain::vmbus_client`]), so the rest of the code sees one [`System`]. What the
//! wiring means for the Microkit elements (channels, maps, regions, capabilities) is checked by
//! `validate`.

use std::collections::HashMap;

use roxmltree::Node;

use crate::diag::{Diagnostic, ErrorKind, Sink, shown};
use crate::model::*;
use crate::parse::{Parser, elements, run, tag};

/// The companion as parsed: its elements by the PD they name, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wiring {
    /// The companion's file name (as given to the parser).
    pub file: String,
    /// The description it wires (the root's `system` attribute), and that attribute's line.
    pub system: (String, u32),
    /// `driver` elements: (PD name, element).
    pub drivers: Vec<(String, VmbusDriver)>,
    /// `host` elements: (PD name, element).
    pub hosts: Vec<(String, VmbusHost)>,
    /// `client` elements: (PD name, element), in file order (their `ClientId` order).
    pub clients: Vec<(String, VmbusClient)>,
    /// `hyperv` elements (at most one is valid), in file order.
    pub hyperv: Vec<VmbusHyperV>,
}

/// Parses the companion `xml` (named `file` in diagnostics) without looking at the description.
pub fn parse_vmbus(file: &str, xml: &str) -> Result<Wiring, Vec<Diagnostic>> {
    run(file, xml, |p| p.vmbus(file))
}

impl Parser<'_, '_> {
    fn vmbus(&mut self, file: &str) -> Wiring {
        let root = self.doc.root_element();
        let mut w = Wiring {
            file: file.to_string(),
            system: (String::new(), 0),
            drivers: Vec::new(),
            hosts: Vec::new(),
            clients: Vec::new(),
            hyperv: Vec::new(),
        };
        if tag(root) != Some("vmbus") {
            let name = self.written_name(root);
            self.err(
                root,
                ErrorKind::UnknownElement,
                format!(
                    "root element is '{}', expected 'vmbus' (a VMBus companion file)",
                    shown(name)
                ),
            );
            return w;
        }
        self.check_attrs(root, &["system"]);
        if let Some(s) = self.req(root, "system") {
            w.system = (s.to_string(), self.attr_line(root, "system"));
        }
        const ALLOWED: &[&str] = &["driver", "host", "hyperv", "client"];
        for c in elements(root) {
            match tag(c).unwrap_or("") {
                "driver" => {
                    if let Some(d) = self.driver(c) {
                        w.drivers.push(d);
                    }
                }
                "host" => {
                    if let Some(h) = self.host(c) {
                        w.hosts.push(h);
                    }
                }
                "hyperv" => {
                    if let Some(h) = self.hyperv(c) {
                        w.hyperv.push(h);
                    }
                }
                "client" => {
                    if let Some(cl) = self.client(c) {
                        w.clients.push(cl);
                    }
                }
                _ => self.unknown_element(c, "vmbus", ALLOWED),
            }
        }
        w
    }

    /// A region-name attribute (optional; empty is an error).
    fn region_attr(&mut self, node: Node, name: &str) -> Option<String> {
        self.opt_str(node, name)
    }

    fn driver(&mut self, node: Node) -> Option<(String, VmbusDriver)> {
        self.leaf(
            node,
            &[
                "pd",
                "pool_pages",
                "pool_region",
                "pool_vaddr",
                "synic_message",
                "synic_event_flags",
            ],
        );
        let pd = self.req(node, "pd").map(str::to_string);
        let pool_region = self.region_attr(node, "pool_region");
        let pool_vaddr = self.opt_num(node, "pool_vaddr");
        let synic_message = self.region_attr(node, "synic_message");
        let synic_event_flags = self.region_attr(node, "synic_event_flags");
        if synic_message.is_some() != synic_event_flags.is_some() {
            self.err(
                node,
                ErrorKind::MissingAttribute,
                "'driver' needs both 'synic_message' and 'synic_event_flags', or neither",
            );
        }
        let pool_pages = self.num_in(node, "pool_pages", true, 1, u64::from(u32::MAX));
        Some((
            pd?,
            VmbusDriver {
                pool_pages: pool_pages?,
                pool_region,
                pool_vaddr,
                synic_message,
                synic_event_flags,
                hyperv: None,
                line: self.line(node),
            },
        ))
    }

    fn host(&mut self, node: Node) -> Option<(String, VmbusHost)> {
        self.leaf(node, &["pd", "driver_channel", "hypercall_input"]);
        let pd = self.req(node, "pd").map(str::to_string);
        let driver_channel = self.channel_id(node, "driver_channel");
        let hypercall_input = self
            .req(node, "hypercall_input")
            .map(str::to_string)
            .filter(|s| !s.trim().is_empty());
        Some((
            pd?,
            VmbusHost {
                driver_channel: driver_channel?,
                hypercall_input: hypercall_input?,
                line: self.line(node),
            },
        ))
    }

    fn hyperv(&mut self, node: Node) -> Option<VmbusHyperV> {
        self.leaf(node, &["sint_channel", "synic_vaddr"]);
        let sint_channel = self.channel_id(node, "sint_channel");
        let synic_vaddr = self.req_num(node, "synic_vaddr");
        Some(VmbusHyperV {
            sint_channel: sint_channel?,
            synic_vaddr: synic_vaddr?,
            line: self.line(node),
        })
    }

    fn client(&mut self, node: Node) -> Option<(String, VmbusClient)> {
        self.check_attrs(
            node,
            &[
                "pd",
                "driver_channel",
                "window_vaddr",
                "window_size",
                "max_channels",
                "control",
                "power",
                "low_latency",
            ],
        );
        let pd = self.req(node, "pd").map(str::to_string);
        let driver_channel = self.channel_id(node, "driver_channel");
        let window_vaddr = self.req_num(node, "window_vaddr");
        let window_size = self.num_in(node, "window_size", true, 1, u64::MAX);
        let max_channels = self
            .num_in(node, "max_channels", true, 1, u64::from(u32::MAX))
            .map(|n| n as u32);
        let control = self.req(node, "control").map(str::to_string);
        let power = self.boolean(node, "power", false);
        let low_latency = self.boolean(node, "low_latency", false);
        let mut devices = Vec::new();
        let mut elements_seen = 0;
        for c in elements(node) {
            if tag(c) != Some("device") {
                self.unknown_element(c, "client", &["device"]);
                continue;
            }
            elements_seen += 1;
            self.leaf(c, &["class", "instance"]);
            let class = self.req(c, "class").and_then(|s| self.guid(c, "class", s));
            let instance = match c.attribute("instance") {
                None => Some(None),
                Some(s) => self.guid(c, "instance", s).map(Some),
            };
            if let (Some(class), Some(instance)) = (class, instance) {
                devices.push(DeviceClass {
                    class,
                    instance,
                    line: self.line(c),
                });
            }
        }
        if elements_seen == 0 {
            self.err(
                node,
                ErrorKind::Structure,
                "'client' needs at least one 'device' (the device classes it serves)",
            );
        }
        Some((
            pd?,
            VmbusClient {
                driver_channel: driver_channel?,
                window_vaddr: window_vaddr?,
                window_size: window_size?,
                max_channels: max_channels?,
                control: control?,
                devices,
                power,
                low_latency,
                line: self.line(node),
            },
        ))
    }
}

/// Records the companion's elements in the PDs of `sys` they name, and returns what does not fit:
/// a `system` attribute naming another file, unknown PDs, a second driver or host, a PD named
/// twice or in two roles. Every problem is at its line of the companion.
pub fn attach(sys: &mut System, w: Wiring) -> Vec<Diagnostic> {
    let mut sink = Sink::new(&w.file);
    let (named, line) = &w.system;
    if !same_file_name(named, &sys.file) {
        sink.push(
            *line,
            ErrorKind::UnknownName,
            format!(
                "this companion wires \"{}\", but it is read with \"{}\"",
                shown(named),
                shown(&sys.file)
            ),
        );
    }
    sys.vmbus_file = Some(w.file.clone());
    let index: HashMap<String, usize> = sys
        .pds
        .iter()
        .enumerate()
        .rev()
        .map(|(i, p)| (p.name.clone(), i))
        .collect();
    // The first element naming each PD: (what, line), to report a second one.
    let mut roles: HashMap<String, (&'static str, u32)> = HashMap::new();
    let mut first_of_kind: HashMap<&'static str, (String, u32)> = HashMap::new();
    let mut claim = |sink: &mut Sink, pd: &str, what: &'static str, line: u32| -> Option<usize> {
        let Some(&i) = index.get(pd) else {
            sink.push(
                line,
                ErrorKind::UnknownName,
                format!(
                    "'{what}' names PD \"{}\", which {} does not describe",
                    shown(pd),
                    shown(&sys.file)
                ),
            );
            return None;
        };
        if what != "client"
            && let Some((other, first)) = first_of_kind.get(what)
        {
            sink.push(
                line,
                ErrorKind::Vmbus,
                format!(
                    "a second '{what}' (\"{}\"): the system has one, \"{}\" at line {first}",
                    shown(pd),
                    shown(other)
                ),
            );
            return None;
        }
        if let Some((role, first)) = roles.get(pd) {
            sink.push(
                line,
                ErrorKind::Vmbus,
                format!(
                    "PD \"{}\" is already the {role} at line {first}: a PD has one VMBus role",
                    shown(pd)
                ),
            );
            return None;
        }
        roles.insert(pd.to_string(), (what, line));
        first_of_kind
            .entry(what)
            .or_insert_with(|| (pd.to_string(), line));
        Some(i)
    };
    let mut placed = Vec::new();
    for (pd, d) in w.drivers {
        if let Some(i) = claim(&mut sink, &pd, "driver", d.line) {
            placed.push((i, Role::Driver(d)));
        }
    }
    let mut hyperv = w.hyperv.into_iter();
    if let Some(first) = hyperv.next() {
        for extra in hyperv {
            sink.push(
                extra.line,
                ErrorKind::Vmbus,
                format!(
                    "a second 'hyperv': the system has one at line {}",
                    first.line
                ),
            );
        }
        match placed.iter_mut().find_map(|(_, r)| match r {
            Role::Driver(d) => Some(d),
            _ => None,
        }) {
            Some(d) => d.hyperv = Some(first),
            None => sink.push(
                first.line,
                ErrorKind::Vmbus,
                "'hyperv' connects the VMBus driver to Hyper-V, but the companion has no 'driver'",
            ),
        }
    }
    for (pd, h) in w.hosts {
        if let Some(i) = claim(&mut sink, &pd, "host", h.line) {
            placed.push((i, Role::Host(h)));
        }
    }
    for (pd, c) in w.clients {
        if let Some(i) = claim(&mut sink, &pd, "client", c.line) {
            placed.push((i, Role::Client(c)));
        }
    }
    for (i, role) in placed {
        let p = &mut sys.pds[i];
        match role {
            Role::Driver(d) => p.vmbus_driver = Some(d),
            Role::Host(h) => p.vmbus_host = Some(h),
            Role::Client(c) => p.vmbus_client = Some(c),
        }
    }
    sink.diags
}

enum Role {
    Driver(VmbusDriver),
    Host(VmbusHost),
    Client(VmbusClient),
}

/// Whether `named` (the companion's `system` attribute) names the file `file` (as given to the
/// parser): their last path components agree.
fn same_file_name(named: &str, file: &str) -> bool {
    let last = |s: &str| s.rsplit(['/', '\\']).next().unwrap_or(s).to_string();
    last(named) == last(file)
}
