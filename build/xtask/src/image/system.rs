//! The system the image runs, as the root task's table (`build/out/system.rs`): PDs with their
//! programs, windows, pools and `cap_vspace` capabilities, shared regions and channels.
//!
//! The table is rendered from [`System`], which [`from_description`] makes from a system
//! description and its VMBus companion, parsed and validated by `sysdesc`. Where the driver sees
//! its pool comes from `sysdesc::config` (the computation that configures the driver program
//! itself), so the root task maps the pool where the driver looks for it.

use std::fmt::Write;
use std::path::Path;

use sysdesc::layout::{PAGE, slot::MAX_VSPACE_CAPS};

/// One PD of the system.
#[derive(Debug, Clone)]
pub struct Pd {
    /// Name.
    pub name: String,
    /// Program (a package of `components/pds`).
    pub program: String,
    /// Priority.
    pub priority: u8,
    /// Index of the PD its faults are reported to.
    pub fault_handler: Option<usize>,
    /// `cap_vspace`: (slot offset from pd-runtime's `VSPACE_CAP_BASE`, PD index).
    pub vspace_caps: Vec<(u64, usize)>,
    /// Windows: (vaddr, pages).
    pub windows: Vec<(u64, usize)>,
    /// Pool: (vaddr, pages, backing region index).
    pub pool: Option<(u64, usize, Option<usize>)>,
    /// Mapped regions: (region index, vaddr, writable).
    pub maps: Vec<(usize, u64, bool)>,
    /// Hyper-V wiring of the driver: (SynIC message page vaddr, SINT2 channel id); the event-flags
    /// page follows the message page.
    pub hyperv: Option<(u64, u8)>,
}

/// A channel: (pd, id) at each end; `b` may call `a`.
#[derive(Debug, Clone)]
pub struct Channel {
    /// First end.
    pub a: (usize, u8),
    /// Second end.
    pub b: (usize, u8),
    /// `b` makes protected calls to `a`.
    pub b_calls_a: bool,
}

/// A system to build.
#[derive(Debug, Clone)]
pub struct System {
    /// PDs in index order.
    pub pds: Vec<Pd>,
    /// Shared regions: (name, pages).
    pub regions: Vec<(String, usize)>,
    /// Channels.
    pub channels: Vec<Channel>,
}

/// Converts a parsed and validated system description into the root task's table.
///
/// Rules of the image: a program image `NAME.elf` is the package `NAME` of `components/pds`; a
/// client's faults go to the VMBus driver; `cap_vspace slot="N"` lands at pd-runtime's
/// `VSPACE_CAP_BASE + N`; the driver's pool is mapped in the driver where its configuration
/// says (`sysdesc::config`: its map of the pool region, or `pool_vaddr`). `setvar_vaddr` is not
/// needed (PD programs take addresses from the configuration their build scripts generate) and
/// budgets, periods and stack sizes are not applied (seL4 5.0.0 has no scheduling contexts;
/// stacks are 64 KiB in the program's `.bss`); elements the root task cannot build are refused.
pub fn from_description(d: &sysdesc::model::System) -> Result<System, String> {
    let index = |name: &str| {
        d.pds
            .iter()
            .position(|p| p.name == name)
            .ok_or(format!("no PD named {name}"))
    };
    let region = |name: &str| {
        d.regions
            .iter()
            .position(|r| r.name == name)
            .ok_or(format!("no region named {name}"))
    };
    // The root task's own limits (its tables are fixed-size): refused here, at build time,
    // rather than by the root task at boot.
    for (what, n, max) in [
        (
            "protection domains",
            d.pds.len(),
            sysdesc::model::ROOT_TASK_MAX_PDS,
        ),
        (
            "memory regions",
            d.regions.len(),
            sysdesc::model::ROOT_TASK_MAX_REGIONS,
        ),
    ] {
        if n > max {
            return Err(format!(
                "{n} {what}; the root task builds at most {max} (pd_runtime::layout)"
            ));
        }
    }
    let driver = d.pds.iter().position(|p| p.vmbus_driver.is_some());
    let mut pds = Vec::new();
    for p in &d.pds {
        // What the root task does not build yet is refused, never silently dropped.
        let unsupported = [
            (!p.irqs.is_empty(), "irq"),
            (!p.ioports.is_empty(), "ioport"),
            (p.virtual_machine.is_some(), "virtual_machine"),
            (p.parent.is_some(), "nested protection_domain"),
            (p.passive, "passive"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(present, _)| *present) {
            return Err(format!(
                "PD {}: the root task does not build `{what}` yet",
                p.name
            ));
        }
        let program = sysdesc::config::program_name(&p.program_image.path).to_string();
        let mut vspace_caps = Vec::new();
        for c in &p.cspace {
            if c.kind != sysdesc::model::CapKind::Vspace {
                return Err(format!(
                    "PD {}: only cap_vspace is supported by the root task",
                    p.name
                ));
            }
            if c.slot >= MAX_VSPACE_CAPS {
                return Err(format!(
                    "PD {}: cap_vspace slot {} (at most {})",
                    p.name,
                    c.slot,
                    MAX_VSPACE_CAPS - 1
                ));
            }
            vspace_caps.push((c.slot, index(&c.pd)?));
        }
        let pool_region = p
            .vmbus_driver
            .as_ref()
            .and_then(|v| v.pool_region.as_deref());
        let mut maps = Vec::new();
        for m in &p.maps {
            // The driver's map of its pool region is the pool itself (below).
            if Some(m.mr.as_str()) != pool_region {
                maps.push((region(&m.mr)?, m.vaddr, m.perms.write));
            }
        }
        let hyperv = p
            .vmbus_driver
            .as_ref()
            .and_then(|v| v.hyperv.as_ref())
            .map(|h| (h.synic_vaddr, h.sint_channel));
        let pool = match &p.vmbus_driver {
            Some(v) => {
                let backing = pool_region.map(region).transpose()?;
                if let Some(r) = backing
                    && d.regions[r].size < v.pool_pages * PAGE
                {
                    return Err(format!(
                        "PD {}: pool of {} pages exceeds region {}",
                        p.name, v.pool_pages, d.regions[r].name
                    ));
                }
                let config = sysdesc::config::pd_config(d, &p.name)
                    .and_then(|c| c.driver)
                    .ok_or(format!("PD {}: no driver configuration", p.name))?;
                Some((config.pool_vaddr, v.pool_pages as usize, backing))
            }
            None => None,
        };
        let windows = p
            .vmbus_client
            .iter()
            .map(|c| (c.window_vaddr, c.window_size.div_ceil(PAGE) as usize))
            .collect();
        pds.push(Pd {
            name: p.name.clone(),
            program,
            priority: p.sched.priority,
            fault_handler: p.vmbus_client.as_ref().and(driver),
            vspace_caps,
            windows,
            pool,
            maps,
            hyperv,
        });
    }
    let regions = d
        .regions
        .iter()
        .map(|r| (r.name.clone(), r.size.div_ceil(PAGE) as usize))
        .collect();
    let mut channels = Vec::new();
    for c in &d.channels {
        let [e0, e1] = &c.ends;
        // Order the ends so that `b` is the caller when there is one.
        let (a, b) = if e0.pp { (e1, e0) } else { (e0, e1) };
        channels.push(Channel {
            a: (index(&a.pd)?, a.id),
            b: (index(&b.pd)?, b.id),
            b_calls_a: b.pp,
        });
    }
    Ok(System {
        pds,
        regions,
        channels,
    })
}

impl System {
    /// The distinct programs, in first-use order.
    pub fn programs(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for p in &self.pds {
            if !v.contains(&p.program) {
                v.push(p.program.clone());
            }
        }
        v
    }

    /// Checks what the root task cannot check cheaply, then renders the table.
    pub fn render(&self, bin_dir: &Path) -> Result<String, String> {
        let n = self.pds.len();
        for (i, p) in self.pds.iter().enumerate() {
            let bad = |what: &str| Err(format!("PD {}: {what}", p.name));
            if p.fault_handler.is_some_and(|h| h >= n || h == i)
                || p.vspace_caps.iter().any(|&(_, v)| v >= n)
            {
                return bad("refers to a PD that does not exist");
            }
            if p.maps.iter().any(|&(r, _, _)| r >= self.regions.len()) {
                return bad("maps a region that does not exist");
            }
            if p.priority == 255 {
                return bad("priority 255 is the root task's");
            }
        }
        for c in &self.channels {
            if c.a.0 >= n || c.b.0 >= n || c.a.0 == c.b.0 {
                return Err("a channel joins a PD to itself or to no PD".into());
            }
            if c.b_calls_a && self.pds[c.b.0].priority >= self.pds[c.a.0].priority {
                return Err(format!(
                    "{} calls {} which must have a higher priority",
                    self.pds[c.b.0].name, self.pds[c.a.0].name
                ));
            }
        }
        let mut s = String::from(
            "// Generated by `cargo xtask image` (build/xtask/src/image/system.rs). Do not edit.\n\n",
        );
        s.push_str("/// The system the root task builds.\npub static SYSTEM: System = System {\n    pds: &[\n");
        for p in &self.pds {
            let elf = bin_dir.join(&p.program);
            let opt = |o: Option<usize>| o.map_or("None".to_string(), |v| format!("Some({v})"));
            let windows: Vec<String> = p
                .windows
                .iter()
                .map(|(v, n)| format!("Window {{ vaddr: {v:#x}, pages: {n} }}"))
                .collect();
            let maps: Vec<String> = p
                .maps
                .iter()
                .map(|(r, v, w)| format!("Map {{ region: {r}, vaddr: {v:#x}, writable: {w} }}"))
                .collect();
            let pool = p.pool.map_or("None".into(), |(v, n, r)| {
                format!("Some(Pool {{ vaddr: {v:#x}, pages: {n}, region: {r:?} }})")
            });
            let _ = writeln!(s, "        Pd {{");
            let _ = writeln!(s, "            name: {:?},", p.name);
            let _ = writeln!(
                s,
                "            elf: include_bytes!({:?}),",
                elf.display().to_string()
            );
            let _ = writeln!(s, "            priority: {},", p.priority);
            let _ = writeln!(s, "            fault_handler: {},", opt(p.fault_handler));
            let _ = writeln!(s, "            vspace_caps: &{:?},", p.vspace_caps);
            let _ = writeln!(s, "            windows: &[{}],", windows.join(", "));
            let _ = writeln!(s, "            pool: {pool},");
            let _ = writeln!(s, "            maps: &[{}],", maps.join(", "));
            let hyperv = p.hyperv.map_or("None".into(), |(v, ch)| {
                format!("Some(HyperV {{ synic_vaddr: {v:#x}, sint_channel: {ch} }})")
            });
            let _ = writeln!(s, "            hyperv: {hyperv},\n        }},");
        }
        s.push_str("    ],\n    regions: &[\n");
        for (name, pages) in &self.regions {
            let _ = writeln!(s, "        Region {{ name: {name:?}, pages: {pages} }},");
        }
        s.push_str("    ],\n    channels: &[\n");
        for c in &self.channels {
            let _ = writeln!(
                s,
                "        Channel {{ a: ({}, {}), b: ({}, {}), b_calls_a: {} }},",
                c.a.0, c.a.1, c.b.0, c.b.1, c.b_calls_a
            );
        }
        s.push_str("    ],\n};\n");
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A description of the repository (with its companion), as the image reads it.
    fn load(file: &str) -> sysdesc::model::System {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(file);
        sysdesc::load(&path).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn test_system() -> System {
        from_description(&load("build/qemu-test.xml")).unwrap()
    }

    #[test]
    fn description_becomes_driver_with_pool_and_clients_with_windows() {
        let s = test_system();
        let names: Vec<_> = s
            .pds
            .iter()
            .map(|p| (p.name.as_str(), p.program.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("grant_driver", "grant-driver"),
                ("client_a", "grant-client"),
                ("client_b", "grant-client")
            ]
        );
        // The pool where the companion's pool_vaddr puts it, of fresh frames.
        assert_eq!(s.pds[0].pool, Some((0x2000_0000, 8192, None)));
        assert_eq!(s.pds[0].vspace_caps, [(1, 1), (2, 2)]);
        assert_eq!(s.pds[1].windows, [(0x8000_0000, 4)]);
        // Clients' faults go to the driver; the driver's to nobody.
        assert_eq!(
            (
                s.pds[0].fault_handler,
                s.pds[1].fault_handler,
                s.pds[2].fault_handler
            ),
            (None, Some(0), Some(0))
        );
    }

    #[test]
    fn channel_ends_are_ordered_so_the_caller_is_b() {
        let s = test_system();
        assert_eq!(
            (s.channels[0].a, s.channels[0].b, s.channels[0].b_calls_a),
            ((0, 1), (1, 0), true)
        );
        assert_eq!((s.channels[1].a, s.channels[1].b), ((0, 2), (2, 0)));
    }

    #[test]
    fn a_call_to_a_lower_priority_pd_is_refused() {
        let mut s = test_system();
        s.pds[1].priority = 250;
        assert!(
            s.render(Path::new("/x"))
                .unwrap_err()
                .contains("higher priority")
        );
    }

    #[test]
    fn fault_handler_must_be_another_existing_pd() {
        let mut s = test_system();
        s.pds[1].fault_handler = Some(1);
        assert!(s.render(Path::new("/x")).is_err());
        s.pds[1].fault_handler = Some(7);
        assert!(s.render(Path::new("/x")).is_err());
    }

    #[test]
    fn table_names_each_program_once_per_pd_and_every_channel() {
        let text = test_system().render(Path::new("/bin")).unwrap();
        assert_eq!(
            text.matches("include_bytes!(\"/bin/grant-client\")")
                .count(),
            2
        );
        assert_eq!(
            text.matches("include_bytes!(\"/bin/grant-driver\")")
                .count(),
            1
        );
        assert!(text.contains("Channel { a: (0, 2), b: (2, 0), b_calls_a: true }"));
        assert!(text.contains("pool: Some(Pool { vaddr: 0x20000000, pages: 8192, region: None })"));
    }

    #[test]
    fn elements_the_root_task_cannot_build_are_refused_not_dropped() {
        let mut d = load("build/qemu-test.xml");
        d.pds[0].ioports.push(sysdesc::model::IoPort {
            id: 0,
            addr: 0x3f8,
            size: 8,
            setvar_id: None,
            setvar_addr: None,
            line: 1,
        });
        assert!(from_description(&d).unwrap_err().contains("ioport"));
    }

    #[test]
    fn the_project_system_description_converts() {
        let d = load("system.xml");
        let s = from_description(&d).unwrap();
        let driver = s.pds.iter().position(|p| p.name == "vmbus_driver").unwrap();
        let pool_region = s.regions.iter().position(|r| r.0 == "vmbus_pool");
        assert_eq!(
            s.pds[driver].pool.map(|p| (p.1, p.2)),
            Some((8192, pool_region))
        );
        // The driver's map of the pool region is its pool, not a second mapping.
        assert!(!s.pds[driver].maps.iter().any(|m| Some(m.0) == pool_region));
        // The host maps the same region: the pool's frames are its guest memory.
        let host = s.pds.iter().position(|p| p.name == "hv_host").unwrap();
        assert!(s.pds[host].maps.iter().any(|m| Some(m.0) == pool_region));
        assert!(
            s.pds
                .iter()
                .filter(|p| !p.windows.is_empty())
                .all(|p| p.fault_handler == Some(driver))
        );
    }

    /// The root task maps the pool where the driver program's generated configuration looks for
    /// it: both come from `sysdesc::config`.
    #[test]
    fn the_pool_lies_where_the_driver_configuration_says() {
        for file in ["build/qemu-e2e.xml", "build/qemu-test.xml", "system.xml"] {
            let d = load(file);
            let s = from_description(&d).unwrap();
            let driver = d.vmbus_driver().unwrap();
            let config = sysdesc::config::pd_config(&d, &driver.name).unwrap();
            let i = config.index;
            assert_eq!(
                s.pds[i].pool.map(|p| (p.0, p.1 as u64)),
                config.driver.map(|c| (c.pool_vaddr, c.pool_pages)),
                "{file}"
            );
            assert!(s.render(Path::new("/bin")).is_ok(), "{file}");
        }
    }
}
