//! Cross-checks of the VMBus wiring against the Microkit description: the driver and its pool,
//! the simulated host, each client's channel, window, capability and control page, the classes.
//!
//! A problem with a companion element is reported at its line of the companion; a problem with a
//! Microkit element the wiring relies on (a channel end without `pp`, a map of the pool region by
//! a PD that must not see it) at its line of the description. Each check looks at the PDs' maps
//! through one index of maps by region, built once, so the checks stay linear.

use std::collections::{HashMap, HashSet};

use pd_runtime::layout::{IPC_BUFFER, IPC_BUFFER_SIZE, REGION_END, REGION_START, window};

use super::Validator;
use crate::diag::{ErrorKind, shown};
use crate::model::*;

/// The maps of each region: (PD, its map), in file order.
type MapsByRegion<'a> = HashMap<&'a str, Vec<(&'a ProtectionDomain, &'a Map)>>;

impl<'a> Validator<'a> {
    pub(super) fn vmbus(&mut self) {
        let sys = self.sys;
        let driver = sys.vmbus_driver();
        let host = sys.vmbus_host();
        let clients: Vec<(&ProtectionDomain, &VmbusClient)> = sys.vmbus_clients().collect();
        let mut by_region: MapsByRegion<'a> = HashMap::new();
        for pd in &sys.pds {
            for m in &pd.maps {
                by_region.entry(m.mr.as_str()).or_default().push((pd, m));
            }
        }
        if let Some(pd) = driver {
            self.pool(pd, host, &by_region);
            self.synic(pd, host);
            self.hyperv(pd, host);
        }
        if let Some(h) = host {
            self.host(h, driver);
        }
        // The clients whose VSpace the driver holds (cap_vspace).
        let vspaces: HashSet<&str> = driver
            .iter()
            .flat_map(|d| &d.cspace)
            .filter(|cap| cap.kind == CapKind::Vspace)
            .map(|cap| cap.pd.as_str())
            .collect();
        let mut controls: HashMap<&str, (&str, u32)> = HashMap::new();
        for &(pd, c) in &clients {
            self.window(pd, c, driver);
            self.instance_filters(pd, c);
            let Some(driver) = driver else {
                self.companion.push(
                    c.line,
                    ErrorKind::Vmbus,
                    format!(
                        "VMBus client \"{}\" has no driver: the companion has no 'driver'",
                        shown(&pd.name)
                    ),
                );
                continue;
            };
            self.client_channel(pd, c, driver);
            if !vspaces.contains(pd.name.as_str()) {
                self.companion.push(
                    c.line,
                    ErrorKind::Vmbus,
                    format!(
                        "VMBus driver \"{}\" has no cap_vspace for client \"{}\": it could not map ring pages into the client's window",
                        shown(&driver.name),
                        shown(&pd.name)
                    ),
                );
            }
            if let Some((other, line)) = controls.get(c.control.as_str()) {
                self.companion.push(
                    c.line,
                    ErrorKind::Vmbus,
                    format!(
                        "control region \"{}\" of client \"{}\" is already the control page of \"{}\" (line {line})",
                        shown(&c.control),
                        shown(&pd.name),
                        shown(other)
                    ),
                );
            } else {
                controls.insert(&c.control, (&pd.name, c.line));
                self.control(pd, c, driver, &by_region);
            }
        }
        self.device_classes(&clients);
    }

    /// A region named by the companion at `line`: it exists and is one page.
    fn one_page_region(&mut self, name: &str, what: &str, line: u32) -> bool {
        let Some(r) = self.region(name) else {
            self.companion.push(
                line,
                ErrorKind::UnknownName,
                format!("{what} names unknown memory region \"{}\"", shown(name)),
            );
            return false;
        };
        if r.size != PAGE_SIZE {
            self.companion.push(
                line,
                ErrorKind::Vmbus,
                format!(
                    "{what} region \"{}\" is {:#x} bytes; it must be one page ({PAGE_SIZE:#x}) (line {} of {})",
                    shown(name),
                    r.size,
                    r.line,
                    self.sys.file
                ),
            );
            return false;
        }
        true
    }

    /// `pd` maps `region` with write access (`write`) or at least read access, else a problem
    /// at the companion's `line`.
    fn mapped_in(
        &mut self,
        pd: &ProtectionDomain,
        region: &str,
        write: bool,
        what: &str,
        line: u32,
    ) {
        let m = pd.maps.iter().find(|m| m.mr == region);
        let ok = m.is_some_and(|m| m.perms.read && (m.perms.write || !write));
        if !ok {
            self.companion.push(
                line,
                ErrorKind::Vmbus,
                format!(
                    "{what}: PD \"{}\" must map region \"{}\" {} in {}",
                    shown(&pd.name),
                    shown(region),
                    if write { "read-write" } else { "readable" },
                    self.sys.file
                ),
            );
        }
    }

    /// The pool: its region (if any) is the right size, the driver sees it at one address (its
    /// map of the region, or `pool_vaddr`) in the run-time range and clear of its maps, and no PD
    /// but the driver and the host maps the pool's region.
    fn pool(
        &mut self,
        pd: &ProtectionDomain,
        host: Option<&ProtectionDomain>,
        by_region: &MapsByRegion<'_>,
    ) {
        let Some(d) = &pd.vmbus_driver else { return };
        let mapped = d
            .pool_region
            .as_ref()
            .and_then(|r| pd.maps.iter().find(|m| &m.mr == r));
        if let Some(name) = &d.pool_region {
            match self.region(name) {
                None => self.companion.push(
                    d.line,
                    ErrorKind::UnknownName,
                    format!(
                        "driver \"{}\" names unknown pool region \"{}\"",
                        shown(&pd.name),
                        shown(name)
                    ),
                ),
                Some(r) => {
                    let want = d.pool_pages.saturating_mul(PAGE_SIZE);
                    if r.size != want || r.page_size != PAGE_SIZE {
                        self.companion.push(
                            d.line,
                            ErrorKind::Vmbus,
                            format!(
                                "pool region \"{}\" ({:#x} bytes in {:#x} pages, line {} of {}) does not match pool_pages {} ({want:#x} bytes in 0x1000 pages)",
                                shown(name),
                                r.size,
                                r.page_size,
                                r.line,
                                self.sys.file,
                                d.pool_pages
                            ),
                        );
                    }
                }
            }
            for (other, m) in by_region.get(name.as_str()).map_or(&[][..], Vec::as_slice) {
                if other.name != pd.name && host.is_none_or(|h| h.name != other.name) {
                    self.sink.push(
                        m.line,
                        ErrorKind::Vmbus,
                        format!(
                            "PD \"{}\" maps \"{}\", the VMBus driver's ring-page pool: only the driver and the host may (the driver grants its pages to clients one by one)",
                            shown(&other.name),
                            shown(name)
                        ),
                    );
                }
            }
        }
        match (mapped, d.pool_vaddr) {
            (Some(m), Some(v)) => self.companion.push(
                d.line,
                ErrorKind::Vmbus,
                format!(
                    "pool_vaddr {v:#x} of driver \"{}\": the driver already maps its pool region at {:#x} (line {} of {}); give one or the other",
                    shown(&pd.name),
                    m.vaddr,
                    m.line,
                    self.sys.file
                ),
            ),
            (None, None) => self.companion.push(
                d.line,
                ErrorKind::MissingAttribute,
                format!(
                    "driver \"{}\" does not map its pool: give 'pool_vaddr', or map the pool region in the driver",
                    shown(&pd.name)
                ),
            ),
            (Some(_), None) => {}
            (None, Some(v)) => self.pool_placement(pd, d, v),
        }
    }

    /// A pool at `vaddr` (from `pool_vaddr`): aligned, in the run-time range, clear of the
    /// driver's maps.
    fn pool_placement(&mut self, pd: &ProtectionDomain, d: &VmbusDriver, vaddr: u64) {
        let size = d.pool_pages.saturating_mul(PAGE_SIZE);
        let end = vaddr.saturating_add(size);
        if !vaddr.is_multiple_of(PAGE_SIZE) || vaddr < REGION_START || end > REGION_END {
            self.companion.push(
                d.line,
                ErrorKind::Vmbus,
                format!(
                    "pool of driver \"{}\" at {vaddr:#x}..{end:#x} must be page aligned and lie in the run-time mapping range {REGION_START:#x}..{REGION_END:#x}",
                    shown(&pd.name)
                ),
            );
        }
        for m in &pd.maps {
            let size = self.region(&m.mr).map_or(0, |r| r.size);
            if m.vaddr < end && vaddr < m.vaddr.saturating_add(size) {
                self.companion.push(
                    d.line,
                    ErrorKind::Overlap,
                    format!(
                        "pool of driver \"{}\" at {vaddr:#x}..{end:#x} overlaps its map of \"{}\" at {:#x} (line {} of {})",
                        shown(&pd.name),
                        shown(&m.mr),
                        m.vaddr,
                        m.line,
                        self.sys.file
                    ),
                );
                break;
            }
        }
    }

    /// The driver's SynIC pages: named regions of one page that the driver (and the host, if
    /// there is one) map read-write.
    fn synic(&mut self, pd: &ProtectionDomain, host: Option<&ProtectionDomain>) {
        let Some(d) = &pd.vmbus_driver else { return };
        for (attr, region) in [
            ("synic_message", &d.synic_message),
            ("synic_event_flags", &d.synic_event_flags),
        ] {
            let Some(region) = region else { continue };
            let what = format!("{attr} of driver \"{}\"", shown(&pd.name));
            if !self.one_page_region(region, &what, d.line) {
                continue;
            }
            self.mapped_in(pd, region, true, &what, d.line);
            if let Some(h) = host {
                self.mapped_in(h, region, true, &what, d.line);
            }
        }
    }

    /// Hyper-V as the host: no simulated host besides it, no SynIC regions (the SynIC pages are
    /// the kernel's frames, mapped at `synic_vaddr`), an interrupt channel id the driver uses for
    /// nothing else, and two pages of address space clear of the driver's maps and pool.
    fn hyperv(&mut self, pd: &ProtectionDomain, host: Option<&ProtectionDomain>) {
        let Some(d) = &pd.vmbus_driver else { return };
        let Some(h) = &d.hyperv else { return };
        let name = shown(&pd.name);
        if let Some(host) = host {
            self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "driver \"{name}\" talks to Hyper-V ('hyperv') and to the simulated host \"{}\" ('host'): a system has one host",
                    shown(&host.name)
                ),
            );
        }
        if d.synic_message.is_some() {
            self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "driver \"{name}\" has SynIC regions, but with 'hyperv' its SynIC pages are the kernel's frames at synic_vaddr: drop 'synic_message' and 'synic_event_flags'"
                ),
            );
        }
        let used = self
            .channels_of(&pd.name)
            .iter()
            .map(|(mine, _)| mine.id)
            .chain(pd.irqs.iter().map(|i| i.id))
            .any(|id| id == h.sint_channel);
        if used {
            self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "sint_channel {} of driver \"{name}\" is already one of its channel or interrupt ids",
                    h.sint_channel
                ),
            );
        }
        let size = 2 * PAGE_SIZE;
        let (start, end) = (h.synic_vaddr, h.synic_vaddr.saturating_add(size));
        if !start.is_multiple_of(PAGE_SIZE) || window::placement(start, size).is_err() {
            self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "SynIC pages of driver \"{name}\" at {start:#x}..{end:#x} must be page aligned and lie in the run-time mapping range {:#x}..{:#x}, clear of the IPC buffer",
                    window::START,
                    window::END
                ),
            );
            return;
        }
        let pool = d
            .pool_vaddr
            .map(|v| (v, v.saturating_add(d.pool_pages.saturating_mul(PAGE_SIZE))));
        let maps = pd.maps.iter().map(|m| {
            let size = self.region(&m.mr).map_or(0, |r| r.size);
            (m.vaddr, m.vaddr.saturating_add(size))
        });
        if let Some((a, b)) = maps.chain(pool).find(|&(a, b)| a < end && start < b) {
            self.companion.push(
                h.line,
                ErrorKind::Overlap,
                format!(
                    "SynIC pages of driver \"{name}\" at {start:#x}..{end:#x} overlap its memory at {a:#x}..{b:#x}"
                ),
            );
        }
    }

    /// The simulated host: a driver with SynIC pages to call it, a channel on which the driver
    /// calls it, the hypercall input page in both, the pool region as its guest memory.
    fn host(&mut self, pd: &ProtectionDomain, driver: Option<&ProtectionDomain>) {
        let Some(h) = &pd.vmbus_host else { return };
        let Some(driver) = driver else {
            self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "host \"{}\" has no driver to serve: the companion has no 'driver'",
                    shown(&pd.name)
                ),
            );
            return;
        };
        let Some(d) = &driver.vmbus_driver else {
            return;
        };
        if d.synic_message.is_none() {
            self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "host \"{}\" delivers messages through the SynIC pages, but driver \"{}\" has none (give it 'synic_message' and 'synic_event_flags')",
                    shown(&pd.name),
                    shown(&driver.name)
                ),
            );
        }
        let found = self
            .channels_of(&pd.name)
            .iter()
            .find(|(mine, _)| mine.id == h.driver_channel)
            .copied();
        match found {
            None => self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "host \"{}\" has no channel to the driver: its driver_channel {} is not a channel of this PD",
                    shown(&pd.name),
                    h.driver_channel
                ),
            ),
            Some((_, other)) if other.pd != driver.name => self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "host \"{}\": its driver_channel {} leads to \"{}\", not to driver \"{}\"",
                    shown(&pd.name),
                    h.driver_channel,
                    shown(&other.pd),
                    shown(&driver.name)
                ),
            ),
            Some((_, other)) if !other.pp => self.sink.push(
                other.line,
                ErrorKind::Vmbus,
                format!(
                    "channel from driver \"{}\" to host \"{}\" needs pp=\"true\" on the driver's end: the driver's hypercalls are protected calls to the host",
                    shown(&driver.name),
                    shown(&pd.name)
                ),
            ),
            Some(_) => {}
        }
        let what = format!("hypercall_input of host \"{}\"", shown(&pd.name));
        if self.one_page_region(&h.hypercall_input, &what, h.line) {
            self.mapped_in(driver, &h.hypercall_input, true, &what, h.line);
            self.mapped_in(pd, &h.hypercall_input, false, &what, h.line);
        }
        match &d.pool_region {
            Some(pool) => {
                let what = format!("guest memory of host \"{}\"", shown(&pd.name));
                self.mapped_in(pd, pool, true, &what, h.line);
            }
            None => self.companion.push(
                h.line,
                ErrorKind::Vmbus,
                format!(
                    "host \"{}\" needs the pool as guest memory, but driver \"{}\" has no pool_region",
                    shown(&pd.name),
                    shown(&driver.name)
                ),
            ),
        }
    }

    /// The window of client `pd`: aligned, where the image can map it
    /// ([`window::placement`]), clear of the client's maps, no larger than the driver's pool
    /// ([`window::fits_pool`]) and large enough for its channels.
    fn window(
        &mut self,
        pd: &ProtectionDomain,
        c: &VmbusClient,
        driver: Option<&ProtectionDomain>,
    ) {
        let name = shown(&pd.name);
        if !c.window_vaddr.is_multiple_of(PAGE_SIZE) || !c.window_size.is_multiple_of(PAGE_SIZE) {
            self.companion.push(
                c.line,
                ErrorKind::Alignment,
                format!(
                    "VMBus window of \"{name}\": vaddr {:#x} and size {:#x} must both be multiples of {PAGE_SIZE:#x}",
                    c.window_vaddr, c.window_size
                ),
            );
        }
        if let Err(why) = window::placement(c.window_vaddr, c.window_size) {
            let at = match c.window_vaddr.checked_add(c.window_size) {
                Some(end) => format!("{:#x}..{end:#x}", c.window_vaddr),
                None => format!("{:#x} + {:#x}", c.window_vaddr, c.window_size),
            };
            let what = match why {
                window::Misplaced::AtZero => "starts at address 0".to_string(),
                window::Misplaced::OverIpcBuffer => format!(
                    "overlaps the IPC buffer at {IPC_BUFFER:#x}..{:#x}",
                    IPC_BUFFER + IPC_BUFFER_SIZE
                ),
                window::Misplaced::BelowStart => "lies below the run-time mapping range (program, stack, IPC buffer and PD info page are there)".to_string(),
                window::Misplaced::Above4GiB => "reaches above 4 GiB (seL4 5.0.0 reports VM-fault addresses in 32 bits)".to_string(),
            };
            self.companion.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus window of \"{name}\" at {at} {what}; windows lie in the run-time mapping range {:#x}..{:#x}",
                    window::START,
                    window::END
                ),
            );
        } else {
            let end = c.window_vaddr + c.window_size;
            for m in &pd.maps {
                let size = self.region(&m.mr).map_or(0, |r| r.size);
                if m.vaddr < end && c.window_vaddr < m.vaddr.saturating_add(size) {
                    self.companion.push(
                        c.line,
                        ErrorKind::Overlap,
                        format!(
                            "VMBus window of \"{name}\" at {:#x}..{end:#x} overlaps its map of \"{}\" at {:#x} (line {} of {})",
                            c.window_vaddr,
                            shown(&m.mr),
                            m.vaddr,
                            m.line,
                            self.sys.file
                        ),
                    );
                    break;
                }
            }
        }
        if let Some(driver) = driver
            && let Some(d) = &driver.vmbus_driver
            && !window::fits_pool(c.window_size, d.pool_pages)
        {
            self.companion.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus window of \"{name}\" ({:#x} bytes) is larger than the whole ring-page pool of driver \"{}\" ({} pages, {:#x} bytes)",
                    c.window_size,
                    shown(&driver.name),
                    d.pool_pages,
                    d.pool_pages.saturating_mul(window::PAGE)
                ),
            );
        }
        let need = u64::from(c.max_channels)
            .saturating_mul(MIN_PAGES_PER_CHANNEL)
            .saturating_mul(PAGE_SIZE);
        if c.window_size < need {
            self.companion.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus window of \"{name}\" ({:#x} bytes) cannot hold {} channels: each needs at least {MIN_PAGES_PER_CHANNEL} pages, {need:#x} bytes in all",
                    c.window_size, c.max_channels
                ),
            );
        }
    }

    /// The driver takes one instance filter per client: all of a client's devices share theirs.
    fn instance_filters(&mut self, pd: &ProtectionDomain, c: &VmbusClient) {
        let Some(first) = c.devices.first() else {
            return;
        };
        for d in &c.devices[1..] {
            if d.instance != first.instance {
                self.companion.push(
                    d.line,
                    ErrorKind::Vmbus,
                    format!(
                        "client \"{}\": this device's instance filter differs from the one at line {}; the driver takes one filter per client",
                        shown(&pd.name),
                        first.line
                    ),
                );
            }
        }
    }

    fn client_channel(
        &mut self,
        pd: &ProtectionDomain,
        c: &VmbusClient,
        driver: &ProtectionDomain,
    ) {
        let found = self
            .channels_of(&pd.name)
            .iter()
            .find(|(mine, _)| mine.id == c.driver_channel)
            .copied();
        match found {
            None => self.companion.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus client \"{}\" has no channel to the driver: its driver_channel {} is not a channel of this PD",
                    shown(&pd.name),
                    c.driver_channel
                ),
            ),
            Some((_, other)) if other.pd != driver.name => self.companion.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus client \"{}\" has no channel to the driver: its driver_channel {} leads to \"{}\", not to driver \"{}\"",
                    shown(&pd.name),
                    c.driver_channel,
                    shown(&other.pd),
                    shown(&driver.name)
                ),
            ),
            Some((mine, _)) if !mine.pp => self.sink.push(
                mine.line,
                ErrorKind::Vmbus,
                format!(
                    "channel from VMBus client \"{}\" to driver \"{}\" needs pp=\"true\" on the client end: clients make protected calls to the driver",
                    shown(&pd.name),
                    shown(&driver.name)
                ),
            ),
            Some(_) => {}
        }
    }

    /// The client's control page: a one-page region mapped read-write by the client and the
    /// driver, and by no other PD (requests and replies pass through it).
    fn control(
        &mut self,
        pd: &ProtectionDomain,
        c: &VmbusClient,
        driver: &ProtectionDomain,
        by_region: &MapsByRegion<'_>,
    ) {
        let what = format!("control page of client \"{}\"", shown(&pd.name));
        if !self.one_page_region(&c.control, &what, c.line) {
            return;
        }
        self.mapped_in(pd, &c.control, true, &what, c.line);
        self.mapped_in(driver, &c.control, true, &what, c.line);
        for (other, m) in by_region
            .get(c.control.as_str())
            .map_or(&[][..], Vec::as_slice)
        {
            if other.name != pd.name && other.name != driver.name {
                self.sink.push(
                    m.line,
                    ErrorKind::Vmbus,
                    format!(
                        "PD \"{}\" maps \"{}\", the control page of VMBus client \"{}\": only the client and the driver may",
                        shown(&other.name),
                        shown(&c.control),
                        shown(&pd.name)
                    ),
                );
            }
        }
    }

    fn device_classes(&mut self, clients: &[(&ProtectionDomain, &VmbusClient)]) {
        // (class, instance filter) -> (client, line)
        let mut seen: HashMap<(&str, Option<&str>), (&str, u32)> = HashMap::new();
        for &(pd, c) in clients {
            for d in &c.devices {
                let key = (d.class.as_str(), d.instance.as_ref().map(|g| g.as_str()));
                if let Some((owner, line)) = seen.get(&key) {
                    let what = match key.1 {
                        Some(i) => format!("device class {} instance {i}", key.0),
                        None => format!("device class {} (any instance)", key.0),
                    };
                    self.companion.push(
                        d.line,
                        ErrorKind::Vmbus,
                        if *owner == pd.name {
                            format!(
                                "client \"{}\" lists {what} twice (first at line {line})",
                                shown(&pd.name)
                            )
                        } else {
                            format!(
                                "{what} is served by both \"{}\" (line {line}) and \"{}\": an offer could not be routed",
                                shown(owner),
                                shown(&pd.name)
                            )
                        },
                    );
                } else {
                    seen.insert(key, (&pd.name, d.line));
                }
            }
        }
    }
}
