//! Cross-checks of the VMBus extension: one driver, each client wired to it, windows, classes.

use std::collections::{HashMap, HashSet};

use pd_runtime::layout::{IPC_BUFFER, IPC_BUFFER_SIZE, window};

use super::Validator;
use crate::diag::{ErrorKind, shown};
use crate::model::*;

impl Validator<'_> {
    pub(super) fn vmbus(&mut self) {
        let drivers: Vec<&ProtectionDomain> = self
            .sys
            .pds
            .iter()
            .filter(|p| p.vmbus_driver.is_some())
            .collect();
        for extra in drivers.iter().skip(1) {
            self.sink.push(
                extra.vmbus_driver.as_ref().map_or(extra.line, |d| d.line),
                ErrorKind::Vmbus,
                format!(
                    "PD \"{}\" is a second VMBus driver; \"{}\" (line {}) already is one",
                    shown(&extra.name),
                    shown(&drivers[0].name),
                    drivers[0].line
                ),
            );
        }
        let driver = drivers.first().copied();
        if let Some(pd) = driver {
            self.pool(pd);
        }
        let clients: Vec<(&ProtectionDomain, &VmbusClient)> = self.sys.vmbus_clients().collect();
        // The clients whose VSpace the driver holds (cap_vspace).
        let vspaces: HashSet<&str> = driver
            .iter()
            .flat_map(|d| &d.cspace)
            .filter(|cap| cap.kind == CapKind::Vspace)
            .map(|cap| cap.pd.as_str())
            .collect();
        for &(pd, c) in &clients {
            self.window(pd, c, driver);
            if pd.vmbus_driver.is_some() {
                self.sink.push(
                    c.line,
                    ErrorKind::Vmbus,
                    format!(
                        "PD \"{}\" cannot be both the VMBus driver and a client",
                        shown(&pd.name)
                    ),
                );
                continue;
            }
            let Some(driver) = driver else {
                self.sink.push(
                    c.line,
                    ErrorKind::Vmbus,
                    format!(
                        "VMBus client \"{}\" has no driver: no PD has a 'vmbus_driver' element",
                        shown(&pd.name)
                    ),
                );
                continue;
            };
            self.client_channel(pd, c, driver);
            if !vspaces.contains(pd.name.as_str()) {
                self.sink.push(
                    c.line,
                    ErrorKind::Vmbus,
                    format!(
                        "VMBus driver \"{}\" has no cap_vspace for client \"{}\": it could not map ring pages into the client's window",
                        shown(&driver.name),
                        shown(&pd.name)
                    ),
                );
            }
        }
        self.device_classes(&clients);
    }

    fn pool(&mut self, pd: &ProtectionDomain) {
        let Some(d) = &pd.vmbus_driver else { return };
        let Some(name) = &d.pool_region else { return };
        let Some(r) = self.region(name) else {
            self.sink.push(
                d.line,
                ErrorKind::UnknownName,
                format!(
                    "vmbus_driver of \"{}\" names unknown pool region \"{}\"",
                    shown(&pd.name),
                    shown(name)
                ),
            );
            return;
        };
        let want = d.pool_pages.saturating_mul(PAGE_SIZE);
        if r.size != want || r.page_size != PAGE_SIZE {
            self.sink.push(
                d.line,
                ErrorKind::Vmbus,
                format!(
                    "pool region \"{}\" ({:#x} bytes in {:#x} pages) does not match pool_pages {} ({want:#x} bytes in 0x1000 pages)",
                    shown(name),
                    r.size,
                    r.page_size,
                    d.pool_pages
                ),
            );
        }
    }

    /// The window of client `pd`: aligned, where the image can map it
    /// ([`window::placement`]), no larger than the driver's pool ([`window::fits_pool`]) and
    /// large enough for its channels.
    fn window(
        &mut self,
        pd: &ProtectionDomain,
        c: &VmbusClient,
        driver: Option<&ProtectionDomain>,
    ) {
        let name = shown(&pd.name);
        if !c.window_vaddr.is_multiple_of(PAGE_SIZE) || !c.window_size.is_multiple_of(PAGE_SIZE) {
            self.sink.push(
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
            self.sink.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus window of \"{name}\" at {at} {what}; windows lie in the run-time mapping range {:#x}..{:#x}",
                    window::START,
                    window::END
                ),
            );
        }
        if let Some(driver) = driver
            && let Some(d) = &driver.vmbus_driver
            && !window::fits_pool(c.window_size, d.pool_pages)
        {
            self.sink.push(
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
            self.sink.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus window of \"{name}\" ({:#x} bytes) cannot hold {} channels: each needs at least {MIN_PAGES_PER_CHANNEL} pages, {need:#x} bytes in all",
                    c.window_size, c.max_channels
                ),
            );
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
            None => self.sink.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus client \"{}\" has no channel to the driver: its driver_channel {} is not a channel of this PD",
                    shown(&pd.name),
                    c.driver_channel
                ),
            ),
            Some((_, other)) if other.pd != driver.name => self.sink.push(
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
                    self.sink.push(
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
