//! The device set of a run: class names as `--devices` spells them, counts and sub-channels.

use core::fmt;

use vmbus_driver::guid::{self, Guid};

/// Class names `--devices` accepts, with their class GUIDs (the classes system.xml's clients
/// serve).
pub(crate) const CLASSES: [(&str, Guid); 8] = [
    ("heartbeat", guid::HEARTBEAT),
    ("shutdown", guid::SHUTDOWN),
    ("timesync", guid::TIME_SYNC),
    ("kvp", guid::KVP),
    ("dynmem", guid::DYNAMIC_MEMORY),
    ("net", guid::NETWORK),
    ("scsi", guid::SCSI),
    ("ide", guid::IDE),
];

/// The device set when `--devices` is not given: every class the repository's clients serve
/// (IDE shares the storage client with SCSI and is left out), the host's real network adapter
/// and SCSI controller without sub-channels (the netvsc and storvsc drivers open none).
pub(crate) const DEFAULT_DEVICES: &str = "heartbeat,shutdown,timesync,kvp,dynmem,net,scsi";

/// The device set of `--echo` when `--devices` is not given: network and SCSI as echo devices,
/// network with three sub-channels and SCSI with one.
pub(crate) const ECHO_DEVICES: &str = "heartbeat,shutdown,timesync,kvp,dynmem,net+3,scsi+1";

/// Devices of one class: `count` devices, each with `sub_channels` sub-channels (network, SCSI
/// and IDE: the host's real devices, or echo devices with `--echo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeviceReq {
    /// Class name as given.
    pub name: &'static str,
    /// Class GUID.
    pub class: Guid,
    /// Devices of this class.
    pub count: u16,
    /// Sub-channels of each.
    pub sub_channels: u16,
}

/// Why a `--devices` list was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeviceListError {
    /// Not a known class name.
    UnknownClass(String),
    /// A count or sub-channel number that is not a number in range.
    BadNumber(String),
    /// The list is empty.
    Empty,
}

impl fmt::Display for DeviceListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownClass(n) => {
                let names: Vec<&str> = CLASSES.iter().map(|(n, _)| *n).collect();
                write!(
                    f,
                    "unknown device class `{n}` (known: {})",
                    names.join(", ")
                )
            }
            Self::BadNumber(s) => write!(
                f,
                "`{s}`: counts are 1..=64 (`*N`) and sub-channels 0..=63 (`+N`)"
            ),
            Self::Empty => f.write_str("the device list is empty"),
        }
    }
}

/// Parses `NAME[*COUNT][+SUBS],...`, e.g. `net*2+3,heartbeat`.
pub(crate) fn parse_devices(list: &str) -> Result<Vec<DeviceReq>, DeviceListError> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (rest, subs) = match item.split_once('+') {
            Some((r, s)) => (r, number(s, 0, 63)?),
            None => (item, 0),
        };
        let (name, count) = match rest.split_once('*') {
            Some((n, c)) => (n, number(c, 1, 64)?),
            None => (rest, 1),
        };
        let (name, class) = CLASSES
            .iter()
            .find(|(n, _)| *n == name)
            .copied()
            .ok_or_else(|| DeviceListError::UnknownClass(name.to_string()))?;
        out.push(DeviceReq {
            name,
            class,
            count,
            sub_channels: subs,
        });
    }
    if out.is_empty() {
        return Err(DeviceListError::Empty);
    }
    Ok(out)
}

/// Checks a device set for the real network and storage devices (no `--echo`): one network
/// adapter and one SCSI controller at most, without sub-channels (the netvsc and storvsc driver
/// programs open only a primary channel), and no IDE channel (the storage PD runs storvsc on
/// the SCSI controller).
pub(crate) fn check_real(devices: &[DeviceReq]) -> Result<(), String> {
    for d in devices {
        match d.name {
            "net" | "scsi" if d.count > 1 => {
                return Err(format!(
                    "`{}*{}`: one real {} device at most (its PD runs one driver); use --echo for more",
                    d.name, d.count, d.name
                ));
            }
            "net" | "scsi" if d.sub_channels > 0 => {
                return Err(format!(
                    "`{}+{}`: the real {} device is offered without sub-channels (its driver opens \
                     none); use --echo for sub-channel scenarios",
                    d.name, d.sub_channels, d.name
                ));
            }
            "ide" => {
                return Err(
                    "`ide`: the storage PD runs storvsc on the SCSI controller only; use \
                            --echo for an IDE echo device"
                        .into(),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

fn number(s: &str, min: u16, max: u16) -> Result<u16, DeviceListError> {
    s.parse::<u16>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| DeviceListError::BadNumber(s.to_string()))
}

/// The short name of a class for the table: ours, else the well-known name, else the GUID.
pub(crate) fn class_label(class: &Guid) -> String {
    CLASSES
        .iter()
        .find(|(_, g)| g == class)
        .map(|(n, _)| (*n).to_string())
        .or_else(|| class.class_name().map(str::to_string))
        .unwrap_or_else(|| class.to_string())
}
