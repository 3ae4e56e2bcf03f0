//! Command-line options of `cargo xtask run`.

use core::fmt;
use std::path::PathBuf;

use hv_host::Hostile;

use super::devices::{DEFAULT_DEVICES, DeviceListError, DeviceReq, parse_devices};

/// Usage of `cargo xtask run`.
pub(crate) const USAGE: &str = "usage: cargo xtask run [options]
  --scenario NAME     default | hotplug | rescind-storm | unload | hostile   (default: default)
  --devices LIST      NAME[*COUNT][+SUBS],...  classes: heartbeat shutdown timesync kvp dynmem
                      net scsi ide   (default: heartbeat,shutdown,timesync,kvp,dynmem,net+3,scsi+1)
  --hostile MODES     host misbehaviour during the middle phase, comma-separated: unknown-type
                      oversize-slot truncate wrong-fields out-of-range duplicate-offers no-reply
                      stray-gpadl event-flood corrupt-ring, or all (each mode in turn)
  --host KIND         hyperv | qemu: the host's version and rescind behaviour (default: hyperv)
  --steps N           world steps of the traffic phases (default: 400)
  --system PATH       the system description (default: the repository's system.xml)
  --seed N            seed of the scenario's random choices (default: 1)
  -v / -q             more / less logging on stderr (repeatable)";

/// Which scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScenarioName {
    /// Boot, traffic, hot removal of one device while traffic flows, re-adding, unload.
    Default,
    /// Devices removed and added again, round after round, chosen by the seed.
    Hotplug,
    /// Every channel rescinded at once, repeatedly, under traffic.
    RescindStorm,
    /// Unload while every channel is open and busy.
    Unload,
    /// Each hostile mode in turn while traffic flows; then recovery.
    Hostile,
}

impl ScenarioName {
    const ALL: [(&'static str, ScenarioName); 5] = [
        ("default", Self::Default),
        ("hotplug", Self::Hotplug),
        ("rescind-storm", Self::RescindStorm),
        ("unload", Self::Unload),
        ("hostile", Self::Hostile),
    ];

    /// The name as the command line spells it.
    pub(crate) fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |(n, _)| n)
    }
}

/// The simulated host's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostKind {
    /// Hyper-V rules (versions up to 5.3, rescinds).
    HyperV,
    /// QEMU's vmbus-bridge rules (versions up to 4.0, no rescinds).
    Qemu,
}

/// One hostile behaviour of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostileMode {
    UnknownType,
    OversizeSlot,
    Truncate,
    WrongFields,
    OutOfRange,
    DuplicateOffers,
    NoReply,
    StrayGpadl,
    EventFlood,
    CorruptRing,
}

impl HostileMode {
    pub(crate) const ALL: [(&'static str, HostileMode); 10] = [
        ("unknown-type", Self::UnknownType),
        ("oversize-slot", Self::OversizeSlot),
        ("truncate", Self::Truncate),
        ("wrong-fields", Self::WrongFields),
        ("out-of-range", Self::OutOfRange),
        ("duplicate-offers", Self::DuplicateOffers),
        ("no-reply", Self::NoReply),
        ("stray-gpadl", Self::StrayGpadl),
        ("event-flood", Self::EventFlood),
        ("corrupt-ring", Self::CorruptRing),
    ];

    /// The name as the command line spells it.
    pub(crate) fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map_or("?", |(n, _)| n)
    }

    /// Adds this behaviour to `h`.
    pub(crate) fn apply(self, h: &mut Hostile) {
        match self {
            Self::UnknownType => h.unknown_type = true,
            Self::OversizeSlot => h.oversize_slot = true,
            Self::Truncate => h.truncate = true,
            Self::WrongFields => h.wrong_fields = true,
            Self::OutOfRange => h.out_of_range_relids = true,
            Self::DuplicateOffers => h.duplicate_offers = true,
            // Every reply withheld: the driver's timeouts must fire.
            Self::NoReply => h.silence = u32::MAX,
            Self::StrayGpadl => h.stray_gpadl_created = true,
            Self::EventFlood => h.event_flood = true,
            Self::CorruptRing => h.corrupt_ring_indices = true,
        }
    }
}

/// Everything `cargo xtask run` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub scenario: ScenarioName,
    pub devices: Vec<DeviceReq>,
    pub hostile: Vec<HostileMode>,
    pub host: HostKind,
    pub steps: u64,
    pub system: Option<PathBuf>,
    pub seed: u64,
    pub verbosity: i8,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scenario: ScenarioName::Default,
            // The default list is a constant that parses.
            devices: parse_devices(DEFAULT_DEVICES).unwrap_or_default(),
            hostile: Vec::new(),
            host: HostKind::HyperV,
            steps: 400,
            system: None,
            seed: 1,
            verbosity: 0,
        }
    }
}

/// Why the command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OptionError {
    /// An option this command does not have.
    Unknown(String),
    /// An option without its value.
    MissingValue(&'static str),
    /// A value that is not one of the allowed words.
    BadValue(&'static str, String),
    /// A bad device list.
    Devices(DeviceListError),
    /// `-h` / `--help`.
    Help,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(o) => write!(f, "unknown option `{o}`"),
            Self::MissingValue(o) => write!(f, "{o} needs a value"),
            Self::BadValue(o, v) => write!(f, "{o}: `{v}` is not allowed"),
            Self::Devices(e) => write!(f, "--devices: {e}"),
            Self::Help => f.write_str("help requested"),
        }
    }
}

/// Parses the arguments after `run`.
pub(crate) fn parse(args: &[String]) -> Result<Options, OptionError> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &'static str| it.next().ok_or(OptionError::MissingValue(name));
        match a.as_str() {
            "--scenario" => {
                let v = value("--scenario")?;
                o.scenario = ScenarioName::ALL
                    .iter()
                    .find(|(n, _)| n == v)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| OptionError::BadValue("--scenario", v.clone()))?;
            }
            "--devices" => {
                o.devices = parse_devices(value("--devices")?).map_err(OptionError::Devices)?;
            }
            "--hostile" => o.hostile = parse_hostile(value("--hostile")?)?,
            "--host" => {
                o.host = match value("--host")?.as_str() {
                    "hyperv" => HostKind::HyperV,
                    "qemu" => HostKind::Qemu,
                    v => return Err(OptionError::BadValue("--host", v.to_string())),
                };
            }
            "--steps" => {
                let v = value("--steps")?;
                o.steps = v
                    .parse()
                    .ok()
                    .filter(|n| (10..=10_000_000).contains(n))
                    .ok_or_else(|| OptionError::BadValue("--steps", v.clone()))?;
            }
            "--system" => o.system = Some(PathBuf::from(value("--system")?)),
            "--seed" => {
                let v = value("--seed")?;
                o.seed = v
                    .parse()
                    .map_err(|_| OptionError::BadValue("--seed", v.clone()))?;
            }
            "-h" | "--help" => return Err(OptionError::Help),
            flags if flags.len() > 1 && flags.starts_with('-') && !flags.starts_with("--") => {
                for ch in flags[1..].chars() {
                    match ch {
                        'v' => o.verbosity = o.verbosity.saturating_add(1),
                        'q' => o.verbosity = o.verbosity.saturating_sub(1),
                        _ => return Err(OptionError::Unknown(flags.to_string())),
                    }
                }
            }
            other => return Err(OptionError::Unknown(other.to_string())),
        }
    }
    Ok(o)
}

fn parse_hostile(list: &str) -> Result<Vec<HostileMode>, OptionError> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            out.extend(HostileMode::ALL.iter().map(|(_, m)| *m));
            continue;
        }
        let m = HostileMode::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
            .ok_or_else(|| OptionError::BadValue("--hostile", name.to_string()))?;
        out.push(m);
    }
    if out.is_empty() {
        return Err(OptionError::BadValue("--hostile", list.to_string()));
    }
    Ok(out)
}
