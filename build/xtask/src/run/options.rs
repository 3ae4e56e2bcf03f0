//! Command-line options of `cargo xtask run`.

use std::path::PathBuf;

use hv_host::Hostile;

use super::devices::{DEFAULT_DEVICES, DeviceReq, ECHO_DEVICES, check_real, parse_devices};
use crate::args::{Arg, ArgError, Args};

/// Usage of `cargo xtask run`.
pub(crate) const USAGE: &str = "usage: cargo xtask run [options]
The main job: boots the system of system.xml on the simulated seL4 kernel and Hyper-V host,
runs a scenario with hot removal and re-adding, prints the live channel table and a summary.
By default the host offers its real network adapter and SCSI controller (no sub-channels: the
drivers open none): the net PD runs netvsc and the storage PD storvsc as sDDF drivers, and the
sDDF clients net_client (ARP, pings, UDP echoes) and blk_client (blocks written, flushed, read
back and verified) use them; the default scenario removes both under traffic and adds them back.
  --scenario NAME     default | hotplug | rescind-storm | unload | hostile   (default: default)
  --devices LIST      NAME[*COUNT][+SUBS],...  classes: heartbeat shutdown timesync kvp dynmem
                      net scsi ide   (default: heartbeat,shutdown,timesync,kvp,dynmem,net,scsi;
                      without --echo: net and scsi once each, no sub-channels, no ide)
  --echo              net, scsi and ide are echo devices and the net and storage PDs run the
                      echo workload on every channel, sub-channels included (default devices
                      with --echo: heartbeat,shutdown,timesync,kvp,dynmem,net+3,scsi+1)
  --hostile MODES     host misbehaviour during the middle phase, comma-separated: unknown-type
                      oversize-slot truncate wrong-fields out-of-range duplicate-offers no-reply
                      stray-gpadl event-flood corrupt-ring (the bus), ic-foreign-versions
                      ic-truncate ic-oversize-body ic-unknown-type ic-wrong-service
                      ic-response-flag dm-truncate dm-oversize dm-balloon-early
                      dm-unballoon-unknown (the services), or all (each mode in turn)
  --host KIND         hyperv | qemu: the host's version and rescind behaviour (default: hyperv)
  --steps N           world steps of the traffic phases (default: 400)
  --system PATH       the system description (default: the repository's system.xml)
  --seed N            seed of the scenario's random choices (default: 1)
  --trace             print the host's integration-service and Dynamic Memory message trace
                      (each negotiation, request and answer) at each table (also with -v)
  -v / -q             more / less logging on stderr (repeatable)
  -h, --help          this text";

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
    IcForeignVersions,
    IcTruncate,
    IcOversizeBody,
    IcUnknownType,
    IcWrongService,
    IcResponseFlag,
    DmTruncate,
    DmOversize,
    DmBalloonEarly,
    DmUnballoonUnknown,
}

impl HostileMode {
    pub(crate) const ALL: [(&'static str, HostileMode); 20] = [
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
        ("ic-foreign-versions", Self::IcForeignVersions),
        ("ic-truncate", Self::IcTruncate),
        ("ic-oversize-body", Self::IcOversizeBody),
        ("ic-unknown-type", Self::IcUnknownType),
        ("ic-wrong-service", Self::IcWrongService),
        ("ic-response-flag", Self::IcResponseFlag),
        ("dm-truncate", Self::DmTruncate),
        ("dm-oversize", Self::DmOversize),
        ("dm-balloon-early", Self::DmBalloonEarly),
        ("dm-unballoon-unknown", Self::DmUnballoonUnknown),
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
            Self::IcForeignVersions => h.ic_foreign_versions = true,
            Self::IcTruncate => h.ic_truncate = true,
            Self::IcOversizeBody => h.ic_oversize_body = true,
            Self::IcUnknownType => h.ic_unknown_type = true,
            Self::IcWrongService => h.ic_wrong_service = true,
            Self::IcResponseFlag => h.ic_response_flag = true,
            Self::DmTruncate => h.dm_truncate = true,
            Self::DmOversize => h.dm_oversize = true,
            Self::DmBalloonEarly => h.dm_balloon_before_capabilities = true,
            Self::DmUnballoonUnknown => h.dm_unballoon_unknown = true,
        }
    }

    /// The service class a service mode bends (`"dynmem"`, or `"ic"` for the integration
    /// services); `None` for the bus modes.
    pub(crate) fn service(self) -> Option<&'static str> {
        match self {
            Self::IcForeignVersions
            | Self::IcTruncate
            | Self::IcOversizeBody
            | Self::IcUnknownType
            | Self::IcWrongService
            | Self::IcResponseFlag => Some("ic"),
            Self::DmTruncate
            | Self::DmOversize
            | Self::DmBalloonEarly
            | Self::DmUnballoonUnknown => Some("dynmem"),
            _ => None,
        }
    }
}

/// Everything `cargo xtask run` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub scenario: ScenarioName,
    pub devices: Vec<DeviceReq>,
    /// Network, SCSI and IDE as echo devices (the echo workload on the net and storage PDs).
    pub echo: bool,
    pub hostile: Vec<HostileMode>,
    pub host: HostKind,
    pub steps: u64,
    pub system: Option<PathBuf>,
    pub seed: u64,
    pub verbosity: i8,
    /// Print the host's IC/DM trace.
    pub trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            scenario: ScenarioName::Default,
            // The default list is a constant that parses.
            devices: parse_devices(DEFAULT_DEVICES).unwrap_or_default(),
            echo: false,
            hostile: Vec::new(),
            host: HostKind::HyperV,
            steps: 400,
            system: None,
            seed: 1,
            verbosity: 0,
            trace: false,
        }
    }
}

/// A value `option` does not accept: `value` is not `expected`.
fn bad(option: &str, value: &str, expected: &str) -> ArgError {
    ArgError::BadValue {
        option: option.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Parses the arguments after `run`.
pub(crate) fn parse(args: &[String]) -> Result<Options, ArgError> {
    let mut o = Options::default();
    let mut devices = None;
    let mut args = Args::new(args)?;
    while let Some(a) = args.next()? {
        match a {
            Arg::Long("--scenario") => {
                let v = args.value("--scenario")?;
                o.scenario = ScenarioName::ALL
                    .iter()
                    .find(|(n, _)| *n == v)
                    .map(|(_, s)| *s)
                    .ok_or_else(|| bad("--scenario", v, "a scenario (see --help)"))?;
            }
            Arg::Long("--devices") => {
                devices = Some(parse_devices(args.value("--devices")?).map_err(|e| {
                    ArgError::Invalid {
                        option: "--devices".into(),
                        why: e.to_string(),
                    }
                })?);
            }
            Arg::Long("--echo") => o.echo = true,
            Arg::Long("--hostile") => o.hostile = parse_hostile(args.value("--hostile")?)?,
            Arg::Long("--host") => {
                o.host = match args.value("--host")? {
                    "hyperv" => HostKind::HyperV,
                    "qemu" => HostKind::Qemu,
                    v => return Err(bad("--host", v, "hyperv or qemu")),
                };
            }
            Arg::Long("--steps") => {
                let v = args.value("--steps")?;
                o.steps = v
                    .parse()
                    .ok()
                    .filter(|n| (10..=10_000_000).contains(n))
                    .ok_or_else(|| bad("--steps", v, "a number from 10 to 10000000"))?;
            }
            Arg::Long("--system") => o.system = Some(PathBuf::from(args.value("--system")?)),
            Arg::Long("--seed") => o.seed = args.parsed("--seed", "a number")?,
            Arg::Long("--trace") => o.trace = true,
            Arg::Short('v') => o.verbosity = o.verbosity.saturating_add(1),
            Arg::Short('q') => o.verbosity = o.verbosity.saturating_sub(1),
            other => return Err(other.unexpected()),
        }
    }
    o.devices = match devices {
        Some(d) => d,
        // The default lists are constants that parse.
        None if o.echo => parse_devices(ECHO_DEVICES).unwrap_or_default(),
        None => parse_devices(DEFAULT_DEVICES).unwrap_or_default(),
    };
    if !o.echo {
        check_real(&o.devices).map_err(|why| ArgError::Invalid {
            option: "--devices".into(),
            why,
        })?;
    }
    Ok(o)
}

fn parse_hostile(list: &str) -> Result<Vec<HostileMode>, ArgError> {
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
            .ok_or_else(|| bad("--hostile", name, "a hostile mode (see --help)"))?;
        out.push(m);
    }
    if out.is_empty() {
        return Err(bad(
            "--hostile",
            list,
            "a list of hostile modes (see --help)",
        ));
    }
    Ok(out)
}
