//! Cross-checks of the VMBus extension: one driver, each client wired to it, windows, classes.

use std::collections::HashMap;

use super::Validator;
use crate::diag::ErrorKind;
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
                    extra.name, drivers[0].name, drivers[0].line
                ),
            );
        }
        let driver = drivers.first().copied();
        if let Some(pd) = driver {
            self.pool(pd);
        }
        let clients: Vec<(&ProtectionDomain, &VmbusClient)> = self.sys.vmbus_clients().collect();
        for &(pd, c) in &clients {
            self.window(pd, c);
            if pd.vmbus_driver.is_some() {
                self.sink.push(
                    c.line,
                    ErrorKind::Vmbus,
                    format!(
                        "PD \"{}\" cannot be both the VMBus driver and a client",
                        pd.name
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
                        pd.name
                    ),
                );
                continue;
            };
            self.client_channel(pd, c, driver);
            if !driver
                .cspace
                .iter()
                .any(|cap| cap.kind == CapKind::Vspace && cap.pd == pd.name)
            {
                self.sink.push(
                    c.line,
                    ErrorKind::Vmbus,
                    format!(
                        "VMBus driver \"{}\" has no cap_vspace for client \"{}\": it could not map ring pages into the client's window",
                        driver.name, pd.name
                    ),
                );
            }
        }
        self.device_classes(&clients);
    }

    fn pool(&mut self, pd: &ProtectionDomain) {
        let Some(d) = &pd.vmbus_driver else { return };
        let Some(name) = &d.pool_region else { return };
        let Some(r) = self.sys.region(name) else {
            self.sink.push(
                d.line,
                ErrorKind::UnknownName,
                format!(
                    "vmbus_driver of \"{}\" names unknown pool region \"{name}\"",
                    pd.name
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
                    "pool region \"{name}\" ({:#x} bytes in {:#x} pages) does not match pool_pages {} ({want:#x} bytes in 0x1000 pages)",
                    r.size, r.page_size, d.pool_pages
                ),
            );
        }
    }

    fn window(&mut self, pd: &ProtectionDomain, c: &VmbusClient) {
        if !c.window_vaddr.is_multiple_of(PAGE_SIZE) || !c.window_size.is_multiple_of(PAGE_SIZE) {
            self.sink.push(
                c.line,
                ErrorKind::Alignment,
                format!(
                    "VMBus window of \"{}\": vaddr {:#x} and size {:#x} must both be multiples of {PAGE_SIZE:#x}",
                    pd.name, c.window_vaddr, c.window_size
                ),
            );
        }
        match c.window_vaddr.checked_add(c.window_size) {
            Some(end) if end <= USER_VADDR_LIMIT => {}
            _ => self.sink.push(
                c.line,
                ErrorKind::BadValue,
                format!(
                    "VMBus window of \"{}\": {:#x} + {:#x} runs past the user address limit {USER_VADDR_LIMIT:#x}",
                    pd.name, c.window_vaddr, c.window_size
                ),
            ),
        }
        let need = u64::from(c.max_channels)
            .saturating_mul(MIN_PAGES_PER_CHANNEL)
            .saturating_mul(PAGE_SIZE);
        if c.window_size < need {
            self.sink.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus window of \"{}\" ({:#x} bytes) cannot hold {} channels: each needs at least {MIN_PAGES_PER_CHANNEL} pages, {need:#x} bytes in all",
                    pd.name, c.window_size, c.max_channels
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
            .sys
            .channels_of(&pd.name)
            .find(|(mine, _)| mine.id == c.driver_channel);
        match found {
            None => self.sink.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus client \"{}\" has no channel to the driver: its driver_channel {} is not a channel of this PD",
                    pd.name, c.driver_channel
                ),
            ),
            Some((_, other)) if other.pd != driver.name => self.sink.push(
                c.line,
                ErrorKind::Vmbus,
                format!(
                    "VMBus client \"{}\" has no channel to the driver: its driver_channel {} leads to \"{}\", not to driver \"{}\"",
                    pd.name, c.driver_channel, other.pd, driver.name
                ),
            ),
            Some((mine, _)) if !mine.pp => self.sink.push(
                mine.line,
                ErrorKind::Vmbus,
                format!(
                    "channel from VMBus client \"{}\" to driver \"{}\" needs pp=\"true\" on the client end: clients make protected calls to the driver",
                    pd.name, driver.name
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
                            format!("client \"{}\" lists {what} twice (first at line {line})", pd.name)
                        } else {
                            format!(
                                "{what} is served by both \"{owner}\" (line {line}) and \"{}\": an offer could not be routed",
                                pd.name
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
