//! XML to model: `protection_domain` and everything inside it.

use roxmltree::Node;

use crate::diag::{ErrorKind, shown};
use crate::guid::Guid;
use crate::model::*;
use crate::parse::{Parser, elements, tag};

/// Largest x86-64 interrupt vector seL4 hands to user level (`irq_user_max - irq_user_min`).
const X86_IRQ_VECTOR_MAX: u64 = 107;
const MIN_STACK: u64 = 0x1000;
const MAX_STACK: u64 = 16 * 1024 * 1024;

const PD_CHILDREN: &[&str] = &[
    "program_image",
    "map",
    "irq",
    "ioport",
    "setvar",
    "protection_domain",
    "virtual_machine",
    "cspace",
];

impl<'d, 'i> Parser<'d, 'i> {
    fn sched(&mut self, node: Node) -> Sched {
        let priority = self
            .num_in(node, "priority", false, 0, u64::from(MAX_PRIORITY))
            .unwrap_or(0) as u8;
        let budget_us = self.opt_num(node, "budget").unwrap_or(DEFAULT_BUDGET_US);
        let period_us = self.opt_num(node, "period").unwrap_or(budget_us);
        if budget_us > period_us {
            self.err(
                node,
                ErrorKind::BadValue,
                format!(
                    "budget ({budget_us}) of '{}' must not exceed its period ({period_us})",
                    node.tag_name().name()
                ),
            );
        }
        Sched {
            priority,
            budget_us,
            period_us,
        }
    }

    /// Parses a PD and (recursively) its child PDs into `out`, parent before children;
    /// `depth` is the number of PDs it is nested in.
    pub(crate) fn protection_domain(
        &mut self,
        node: Node,
        parent: Option<usize>,
        depth: usize,
        out: &mut Vec<ProtectionDomain>,
    ) {
        // A chain of nested PDs longer than the PD limit cannot be valid; stopping here also
        // keeps the recursion shallow whatever the input.
        if depth >= MAX_PDS {
            self.err(
                node,
                ErrorKind::Structure,
                format!(
                    "more than {MAX_PDS} protection domains nested in one another (Microkit supports at most {MAX_PDS} in all)"
                ),
            );
            return;
        }
        let mut attrs = vec![
            "name",
            "priority",
            "budget",
            "period",
            "passive",
            "stack_size",
            "smc",
            "cpu",
            "domain",
            "fpu",
        ];
        if parent.is_some() {
            attrs.extend(["id", "setvar_id"]);
        }
        self.check_attrs(node, &attrs);
        let name = self.req(node, "name").unwrap_or("").to_string();
        let sched = self.sched(node);
        let passive = self.boolean(node, "passive", false);
        let stack_size = self
            .num_in(node, "stack_size", false, MIN_STACK, MAX_STACK)
            .unwrap_or(DEFAULT_STACK_SIZE);
        if !stack_size.is_multiple_of(PAGE_SIZE) {
            self.err(
                node,
                ErrorKind::Alignment,
                format!(
                    "stack_size {stack_size:#x} of PD \"{}\" is not a multiple of 0x1000",
                    shown(&name)
                ),
            );
        }
        let smc = self.boolean(node, "smc", false);
        if smc {
            self.err(
                node,
                ErrorKind::BadValue,
                format!(
                    "PD \"{}\": smc=\"true\" is ARM-only; this system is x86-64",
                    shown(&name)
                ),
            );
        }
        let cpu = self.num_in(node, "cpu", false, 0, 255).unwrap_or(0) as u8;
        let fpu = self.boolean(node, "fpu", true);
        let domain = self.opt_str(node, "domain");
        let (child_id, setvar_id) = if parent.is_some() {
            (self.id(node, "id"), self.opt_str(node, "setvar_id"))
        } else {
            (None, None)
        };

        let mut pd = ProtectionDomain {
            name,
            line: self.line(node),
            sched,
            passive,
            stack_size,
            smc,
            cpu,
            fpu,
            domain,
            program_image: ProgramImage {
                path: String::new(),
                path_for_symbols: None,
                line: 0,
            },
            maps: Vec::new(),
            irqs: Vec::new(),
            ioports: Vec::new(),
            setvars: Vec::new(),
            parent,
            child_id,
            setvar_id,
            virtual_machine: None,
            cspace: Vec::new(),
            vmbus_driver: None,
            vmbus_host: None,
            vmbus_client: None,
        };
        let mut images = 0;
        let mut cspaces = 0;
        let mut children = Vec::new();
        for c in elements(node) {
            match tag(c).unwrap_or("") {
                "program_image" => {
                    images += 1;
                    self.leaf(c, &["path", "path_for_symbols"]);
                    if let Some(path) = self.req(c, "path") {
                        pd.program_image = ProgramImage {
                            path: path.to_string(),
                            path_for_symbols: self.opt_str(c, "path_for_symbols"),
                            line: self.line(c),
                        };
                    }
                }
                "map" => {
                    if let Some(m) = self.map(c, true) {
                        pd.maps.push(m);
                    }
                }
                "irq" => {
                    if let Some(i) = self.irq(c) {
                        pd.irqs.push(i);
                    }
                }
                "ioport" => {
                    if let Some(i) = self.ioport(c) {
                        pd.ioports.push(i);
                    }
                }
                "setvar" => {
                    self.leaf(c, &["symbol", "region_paddr"]);
                    let symbol = self.req(c, "symbol").map(str::to_string);
                    let region = self.req(c, "region_paddr").map(str::to_string);
                    if let (Some(symbol), Some(region_paddr)) = (symbol, region) {
                        pd.setvars.push(SetVar {
                            symbol,
                            region_paddr,
                            line: self.line(c),
                        });
                    }
                }
                "protection_domain" => children.push(c),
                "virtual_machine" => {
                    let vm = self.virtual_machine(c);
                    if pd.virtual_machine.is_some() {
                        self.err(
                            c,
                            ErrorKind::Structure,
                            format!(
                                "PD \"{}\" has more than one 'virtual_machine'",
                                shown(&pd.name)
                            ),
                        );
                    } else {
                        pd.virtual_machine = vm;
                    }
                }
                "cspace" => {
                    cspaces += 1;
                    if cspaces > 1 {
                        self.err(
                            c,
                            ErrorKind::Structure,
                            format!("PD \"{}\" has more than one 'cspace'", shown(&pd.name)),
                        );
                    }
                    self.cspace(c, &mut pd.cspace);
                }
                _ => self.unknown_element(c, "protection_domain", PD_CHILDREN),
            }
        }
        if images != 1 {
            self.err(
                node,
                ErrorKind::Structure,
                format!(
                    "PD \"{}\" needs exactly one 'program_image', has {images}",
                    shown(&pd.name)
                ),
            );
        }
        let index = out.len();
        out.push(pd);
        for c in children {
            self.protection_domain(c, Some(index), depth + 1, out);
        }
    }

    /// A `map`; `in_pd` allows the `setvar_*` attributes (virtual machines have no program image).
    fn map(&mut self, node: Node, in_pd: bool) -> Option<Map> {
        let mut attrs = vec!["mr", "vaddr", "perms", "cached"];
        if in_pd {
            attrs.extend(["setvar_vaddr", "setvar_size", "setvar_prefill_size"]);
        }
        self.leaf(node, &attrs);
        let mr = self.req(node, "mr").map(str::to_string);
        let vaddr = self.req_num(node, "vaddr");
        let perms = match node.attribute("perms") {
            None => Some(Perms {
                read: true,
                write: true,
                execute: false,
            }),
            Some(s) => {
                let mut p = Perms::default();
                let mut ok = !s.is_empty();
                for ch in s.chars() {
                    match ch {
                        'r' => p.read = true,
                        'w' => p.write = true,
                        'x' => p.execute = true,
                        _ => ok = false,
                    }
                }
                if !ok {
                    self.err(
                        node,
                        ErrorKind::BadValue,
                        format!(
                            "perms '{}' must be a non-empty combination of 'r', 'w' and 'x'",
                            shown(s)
                        ),
                    );
                    None
                } else if p.write && !p.read {
                    self.err(
                        node,
                        ErrorKind::BadValue,
                        format!(
                            "perms '{}': write without read is not allowed by seL4",
                            shown(s)
                        ),
                    );
                    None
                } else {
                    Some(p)
                }
            }
        };
        let cached = self.boolean(node, "cached", true);
        let (setvar_vaddr, setvar_size, setvar_prefill_size) = if in_pd {
            (
                self.opt_str(node, "setvar_vaddr"),
                self.opt_str(node, "setvar_size"),
                self.opt_str(node, "setvar_prefill_size"),
            )
        } else {
            (None, None, None)
        };
        Some(Map {
            mr: mr?,
            vaddr: vaddr?,
            perms: perms?,
            cached,
            setvar_vaddr,
            setvar_size,
            setvar_prefill_size,
            line: self.line(node),
        })
    }

    fn irq(&mut self, node: Node) -> Option<Irq> {
        for c in elements(node) {
            self.unknown_element(c, "irq", &[]);
        }
        let source = if node.attribute("pin").is_some() {
            self.check_attrs(
                node,
                &[
                    "id",
                    "setvar_id",
                    "ioapic",
                    "pin",
                    "trigger",
                    "polarity",
                    "vector",
                ],
            );
            let ioapic = self.opt_num(node, "ioapic").unwrap_or(0);
            let pin = self.req_num(node, "pin");
            let trigger = match node.attribute("trigger") {
                None | Some("level") => Some(Trigger::Level),
                Some("edge") => Some(Trigger::Edge),
                Some(v) => {
                    self.err(
                        node,
                        ErrorKind::BadValue,
                        format!("trigger '{}' must be 'level' or 'edge'", shown(v)),
                    );
                    None
                }
            };
            let polarity = match node.attribute("polarity") {
                None | Some("high") => Some(Polarity::High),
                Some("low") => Some(Polarity::Low),
                Some(v) => {
                    self.err(
                        node,
                        ErrorKind::BadValue,
                        format!("polarity '{}' must be 'low' or 'high'", shown(v)),
                    );
                    None
                }
            };
            match (pin, trigger, polarity) {
                (Some(pin), Some(trigger), Some(polarity)) => Some(IrqSource::Ioapic {
                    ioapic,
                    pin,
                    trigger,
                    polarity,
                }),
                _ => None,
            }
        } else if node.attribute("pcidev").is_some() {
            self.check_attrs(node, &["id", "setvar_id", "pcidev", "handle", "vector"]);
            let raw = node.attribute("pcidev").unwrap_or("");
            let pcidev = parse_pci(raw);
            if pcidev.is_none() {
                self.err(
                    node,
                    ErrorKind::BadValue,
                    format!(
                        "pcidev '{}' must be bus:device.function in hexadecimal (bus <= ff, device <= 1f, function <= 7)",
                        shown(raw)
                    ),
                );
            }
            let handle = self.req_num(node, "handle");
            match (pcidev, handle) {
                (Some(pcidev), Some(handle)) => Some(IrqSource::Msi { pcidev, handle }),
                _ => None,
            }
        } else if node.attribute("irq").is_some() {
            self.err(
                node,
                ErrorKind::BadValue,
                "'irq' with an 'irq' number is the ARM/RISC-V form; on x86-64 give 'pin' (I/O APIC) or 'pcidev' (MSI)",
            );
            // The form is unknown, so its other attributes cannot be judged: stop here.
            return None;
        } else {
            self.err(
                node,
                ErrorKind::MissingAttribute,
                "'irq' needs 'pin' (I/O APIC form) or 'pcidev' (MSI form)",
            );
            return None;
        };
        let id = self.channel_id(node, "id");
        let vector = self.num_in(node, "vector", true, 0, X86_IRQ_VECTOR_MAX);
        let setvar_id = self.opt_str(node, "setvar_id");
        Some(Irq {
            id: id?,
            vector: vector? as u8,
            source: source?,
            setvar_id,
            line: self.line(node),
        })
    }

    fn ioport(&mut self, node: Node) -> Option<IoPort> {
        self.check_attrs(node, &["id", "setvar_id", "setvar_addr", "addr", "size"]);
        for c in elements(node) {
            self.unknown_element(c, "ioport", &[]);
        }
        let id = self.id(node, "id");
        let addr = self.num_in(node, "addr", true, 0, 0xffff);
        let size = self.num_in(node, "size", true, 1, 0x1_0000);
        if let (Some(a), Some(s)) = (addr, size)
            && a + s > 0x1_0000
        {
            self.err(
                node,
                ErrorKind::BadValue,
                format!("ioport range {a:#x}+{s:#x} runs past port 0xffff"),
            );
            return None;
        }
        Some(IoPort {
            id: id?,
            addr: addr?,
            size: size?,
            setvar_id: self.opt_str(node, "setvar_id"),
            setvar_addr: self.opt_str(node, "setvar_addr"),
            line: self.line(node),
        })
    }

    fn virtual_machine(&mut self, node: Node) -> Option<VirtualMachine> {
        self.check_attrs(node, &["name", "priority", "budget", "period"]);
        let name = self.req(node, "name").map(str::to_string);
        let sched = self.sched(node);
        let mut vcpus = Vec::new();
        let mut maps = Vec::new();
        for c in elements(node) {
            match tag(c).unwrap_or("") {
                "vcpu" => {
                    self.leaf(c, &["id", "setvar_id", "cpu"]);
                    let id = self.id(c, "id");
                    let cpu = self.num_in(c, "cpu", false, 0, 255).map(|n| n as u8);
                    let setvar_id = self.opt_str(c, "setvar_id");
                    if let Some(id) = id {
                        vcpus.push(Vcpu {
                            id,
                            setvar_id,
                            cpu,
                            line: self.line(c),
                        });
                    }
                }
                "map" => {
                    if let Some(m) = self.map(c, false) {
                        maps.push(m);
                    }
                }
                _ => self.unknown_element(c, "virtual_machine", &["vcpu", "map"]),
            }
        }
        if vcpus.is_empty() {
            self.err(
                node,
                ErrorKind::Structure,
                "'virtual_machine' needs at least one 'vcpu'",
            );
        }
        Some(VirtualMachine {
            name: name?,
            sched,
            vcpus,
            maps,
            line: self.line(node),
        })
    }

    fn cspace(&mut self, node: Node, out: &mut Vec<CapEntry>) {
        self.check_attrs(node, &[]);
        const CAPS: &[&str] = &["cap_tcb", "cap_sc", "cap_vspace"];
        for c in elements(node) {
            let kind = match tag(c).unwrap_or("") {
                "cap_tcb" => CapKind::Tcb,
                "cap_sc" => CapKind::Sc,
                "cap_vspace" => CapKind::Vspace,
                _ => {
                    self.unknown_element(c, "cspace", CAPS);
                    continue;
                }
            };
            self.leaf(c, &["slot", "pd"]);
            let pd = self.req(c, "pd").map(str::to_string);
            let slot = self.req_num(c, "slot");
            let slot = match slot {
                Some(0) => {
                    self.err(
                        c,
                        ErrorKind::BadValue,
                        "slot 0 is reserved for the Microkit CNode",
                    );
                    None
                }
                s => s,
            };
            if let (Some(pd), Some(slot)) = (pd, slot) {
                out.push(CapEntry {
                    kind,
                    pd,
                    slot,
                    line: self.line(c),
                });
            }
        }
    }

    pub(crate) fn guid(&mut self, node: Node, attr: &str, s: &str) -> Option<Guid> {
        match Guid::parse(s) {
            Ok(g) => Some(g),
            Err(e) => {
                self.err(
                    node,
                    ErrorKind::BadValue,
                    format!("{attr} GUID '{}' {e}", shown(s)),
                );
                None
            }
        }
    }
}

/// `bus:device.function`, hexadecimal, within PCI's ranges.
fn parse_pci(s: &str) -> Option<PciAddr> {
    let (bus, rest) = s.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let bus = u8::from_str_radix(bus.trim(), 16).ok()?;
    let device = u8::from_str_radix(dev.trim(), 16)
        .ok()
        .filter(|&d| d <= 0x1f)?;
    let function = u8::from_str_radix(func.trim(), 16)
        .ok()
        .filter(|&f| f <= 7)?;
    Some(PciAddr {
        bus,
        device,
        function,
    })
}
