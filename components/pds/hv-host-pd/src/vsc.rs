//! The host's part of `system.xml`'s network and storage run: it offers the synthetic network
//! adapter (a loopback switch answering ARP, ICMP echo and UDP echo) and the synthetic SCSI
//! controller (a RAM disk) when the system's clients serve their classes, lets the guest's sDDF
//! clients work through netvsc and storvsc, and then rescinds both devices while that traffic
//! flows (each device once its own client's first round is done and its stream under way). It
//! checks what a host can see of the guest's cleanup: every GPADL of the rescinded channels
//! torn down before the relid is released, and every page of them that held data zeroed or
//! reused once the driver is past the release (its contents changed: the driver zeroes a page
//! after RELID_RELEASED, before the pool has it again; the host looks at its next call). Then
//! it offers each device again and waits until its client's second round went through the new
//! channel; only then may the services script ask for the shutdown.
//!
//! The clients judge their own traffic (every reply and block checked; `PASS round N` lines,
//! which `cargo xtask qemu-test` requires); the host judges the cleanup. The image has no timer,
//! so every threshold here is counted in what the host's devices did.

use hv_host::{DeviceId, DeviceSpec, Direction, GuestMemory, Host};
use pd_runtime::config::Guid as ConfigGuid;
use pd_runtime::println;
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{GpadlId, RelId};
use vmbus_driver::msg::MessageType;

/// UDP datagrams the switch must have echoed before the rescind: the client's first round (4)
/// and its stream after it, so the rescind lands in the middle of traffic.
const NET_UDP_BEFORE: u64 = 12;
/// ICMP echo requests answered before the rescind (the client's first round).
const NET_ICMP_BEFORE: u64 = 4;
/// After the re-offer: ICMP echoes (the second round's pings) ...
const NET_ICMP_AFTER: u64 = 4;
/// ... and UDP datagrams (its echoes and the stream resumed).
const NET_UDP_AFTER: u64 = 8;
/// 512-byte sectors written before the rescind (the client's first round: 16 blocks of 4 KiB).
const STOR_WRITTEN_BEFORE: u64 = 16 * 8;
/// Sectors read before the rescind: the first round's read-back and a stream after it.
const STOR_READ_BEFORE: u64 = 16 * 8 + 64;
/// After the re-offer: sectors written (the second round's 16 blocks) ...
const STOR_WRITTEN_AFTER: u64 = 16 * 8;
/// ... and read (round 1's blocks checked, round 2's read back, the stream resumed).
const STOR_READ_AFTER: u64 = 2 * 16 * 8 + 64;
/// GPADLs of one channel the host follows (ring plus buffers).
const MAX_GPADLS: usize = 8;
/// Pages of one device's GPADLs the host fingerprints (netvsc's rings and buffers: 144).
const MAX_PAGES: usize = 160;

/// The two devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Network,
    Storage,
}

impl Kind {
    const fn spec(self) -> DeviceSpec {
        match self {
            Kind::Network => DeviceSpec::network(),
            Kind::Storage => DeviceSpec::scsi(),
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Storage => "storage",
        }
    }
}

/// Where one device's run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Offered the first time; waiting for the first round and the stream.
    First,
    /// Rescinded; waiting for RELID_RELEASED.
    Rescinded,
    /// RELID_RELEASED seen; the pages are checked at the host's next call.
    Released,
    /// Offered again; waiting for the second round.
    Second,
    /// The second round went through.
    Done,
}

/// A page of a rescinded channel and a fingerprint of what it held at the rescind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    pfn: u64,
    print: u64,
}

/// One device's run.
#[derive(Debug)]
struct Device {
    kind: Kind,
    dev: DeviceId,
    phase: Phase,
    /// Its primary channel now.
    relid: Option<RelId>,
    /// The GPADLs the host created for that channel.
    gpadls: [Option<GpadlId>; MAX_GPADLS],
    /// Of those, torn down by the guest (since the rescind).
    torn: [bool; MAX_GPADLS],
    released: bool,
    pages: [Page; MAX_PAGES],
    n_pages: usize,
    /// Counters at the re-offer (write, read / UDP, ICMP).
    base: (u64, u64),
}

/// The script's state.
#[derive(Debug)]
pub struct Vsc {
    devices: [Option<Device>; 2],
    log_seen: u64,
    /// Why the script failed, once it has.
    pub failed: Option<&'static str>,
}

/// Whether the system's clients serve the network or the SCSI class.
pub fn serves(classes: &[ConfigGuid]) -> bool {
    [Kind::Network, Kind::Storage]
        .iter()
        .any(|k| served(classes, k.spec().class))
}

fn served(classes: &[ConfigGuid], class: Guid) -> bool {
    classes.iter().any(|g| Guid(g.0) == class)
}

impl Vsc {
    /// Offers the network and SCSI devices some client of the system serves.
    pub fn new(host: &mut Host, classes: &[ConfigGuid]) -> Vsc {
        let mut devices = [None, None];
        for (slot, kind) in devices.iter_mut().zip([Kind::Network, Kind::Storage]) {
            if !served(classes, kind.spec().class) {
                continue;
            }
            match host.add_device(kind.spec()) {
                Ok(dev) => {
                    println!("hv-host: {} device offered", kind.name());
                    *slot = Some(Device::new(kind, dev));
                }
                Err(e) => println!("hv-host: adding the {} device: {e}", kind.name()),
            }
        }
        Vsc {
            devices,
            log_seen: 0,
            failed: None,
        }
    }

    /// Every device offered went through its second round (true when none is offered).
    pub fn done(&self) -> bool {
        self.devices
            .iter()
            .flatten()
            .all(|d| d.phase == Phase::Done)
    }

    /// Takes the next step after the host ran (`true` when it changed something the host must
    /// act on: poll again).
    pub fn step<G: GuestMemory>(&mut self, host: &mut Host, mem: &mut G) -> bool {
        if self.failed.is_some() {
            return false;
        }
        self.read_log(host);
        let mut changed = false;
        for d in self.devices.iter_mut().flatten() {
            let r = match d.phase {
                // Each device is rescinded when its own first round is done and its client's
                // stream is under way.
                Phase::First if d.first_round_done(host) => d.rescind(host, mem),
                Phase::Rescinded if d.released => {
                    // The driver zeroes and returns the pages after it posted RELID_RELEASED,
                    // in the same run: look at them at the host's next call.
                    d.phase = Phase::Released;
                    Ok(false)
                }
                Phase::Released => d.check_and_reoffer(host, mem),
                Phase::Second if d.second_round_done(host) => {
                    println!(
                        "hv-host: {}: second round through the new channel: {}",
                        d.kind.name(),
                        d.counters(host)
                    );
                    d.phase = Phase::Done;
                    Ok(false)
                }
                _ => Ok(false),
            };
            match r {
                Ok(c) => changed |= c,
                Err(why) => {
                    println!("hv-host: {}: {why}", d.kind.name());
                    self.failed = Some(why);
                    return false;
                }
            }
        }
        changed
    }

    /// Follows the devices' channels, GPADLs, teardowns and releases in the message log.
    fn read_log(&mut self, host: &Host) {
        for r in host.log().since(self.log_seen) {
            for d in self.devices.iter_mut().flatten() {
                if r.dir == Direction::Sent
                    && r.msgtype == MessageType::OFFERCHANNEL
                    && let Some(relid) = r.relid
                    && let Some(ch) = host.channel(relid)
                    && ch.class == d.kind.spec().class
                    && ch.sub_channel_index == 0
                    && !matches!(d.phase, Phase::Rescinded | Phase::Released)
                {
                    d.relid = Some(relid);
                    d.gpadls = [None; MAX_GPADLS];
                    d.torn = [false; MAX_GPADLS];
                    d.released = false;
                }
                if d.relid.is_none() || r.relid != d.relid && r.gpadl.is_none() {
                    continue;
                }
                match (r.dir, r.msgtype) {
                    (Direction::Sent, MessageType::GPADL_CREATED)
                        if r.status == Some(0) && r.relid == d.relid =>
                    {
                        if let Some(free) = d.gpadls.iter_mut().find(|g| g.is_none()) {
                            *free = r.gpadl;
                        }
                    }
                    (Direction::Received, MessageType::GPADL_TEARDOWN) => {
                        if let Some(i) = d.gpadls.iter().position(|g| *g == r.gpadl && g.is_some())
                        {
                            d.torn[i] = true;
                        }
                    }
                    (Direction::Received, MessageType::RELID_RELEASED) if r.relid == d.relid => {
                        d.released = true;
                    }
                    _ => {}
                }
            }
        }
        self.log_seen = host.log().total();
    }
}

impl Device {
    fn new(kind: Kind, dev: DeviceId) -> Device {
        Device {
            kind,
            dev,
            phase: Phase::First,
            relid: None,
            gpadls: [None; MAX_GPADLS],
            torn: [false; MAX_GPADLS],
            released: false,
            pages: [Page { pfn: 0, print: 0 }; MAX_PAGES],
            n_pages: 0,
            base: (0, 0),
        }
    }

    /// (UDP echoed, ICMP answered) or (sectors written, sectors read).
    fn progress(&self, host: &Host) -> (u64, u64) {
        match self.kind {
            Kind::Network => {
                let s = host.net().stats();
                (s.udp_answered, s.icmp_answered)
            }
            Kind::Storage => {
                let s = host.storage().stats();
                (s.sectors_written, s.sectors_read)
            }
        }
    }

    fn counters(&self, host: &Host) -> heapless::String<160> {
        let mut s = heapless::String::new();
        let _ = match self.kind {
            Kind::Network => {
                let n = host.net().stats();
                core::fmt::write(
                    &mut s,
                    format_args!(
                        "{} frames switched: ARP {}, ICMP echo {}, UDP echo {}; {} frames delivered, {} dropped",
                        n.frames_switched,
                        n.arp_answered,
                        n.icmp_answered,
                        n.udp_answered,
                        n.frames_delivered,
                        n.rx_dropped
                    ),
                )
            }
            Kind::Storage => {
                let st = host.storage().stats();
                core::fmt::write(
                    &mut s,
                    format_args!(
                        "{} SRBs ({} failed), {} sectors written, {} read, {} refused",
                        st.srbs, st.srb_errors, st.sectors_written, st.sectors_read, st.refused
                    ),
                )
            }
        };
        s
    }

    fn first_round_done(&self, host: &Host) -> bool {
        let (a, b) = self.progress(host);
        match self.kind {
            Kind::Network => a >= NET_UDP_BEFORE && b >= NET_ICMP_BEFORE,
            Kind::Storage => a >= STOR_WRITTEN_BEFORE && b >= STOR_READ_BEFORE,
        }
    }

    fn second_round_done(&self, host: &Host) -> bool {
        let (a, b) = self.progress(host);
        let (a, b) = (a.saturating_sub(self.base.0), b.saturating_sub(self.base.1));
        match self.kind {
            Kind::Network => a >= NET_UDP_AFTER && b >= NET_ICMP_AFTER,
            Kind::Storage => a >= STOR_WRITTEN_AFTER && b >= STOR_READ_AFTER,
        }
    }

    /// Fingerprints the channel's GPADL pages and rescinds the device under traffic.
    fn rescind<G: GuestMemory>(
        &mut self,
        host: &mut Host,
        mem: &mut G,
    ) -> Result<bool, &'static str> {
        let Some(relid) = self.relid else {
            return Err("traffic counted but no channel seen");
        };
        self.n_pages = 0;
        let mut with_data = 0;
        for g in self.gpadls.iter().flatten() {
            let Some(pfns) = host.gpadl_pfns(*g) else {
                continue;
            };
            for &pfn in pfns {
                if self.n_pages == MAX_PAGES {
                    break;
                }
                let print = fingerprint(mem, pfn)?;
                if print != ZERO_PRINT {
                    with_data += 1;
                }
                self.pages[self.n_pages] = Page { pfn, print };
                self.n_pages += 1;
            }
        }
        println!(
            "hv-host: {}: {}; rescinding {relid} while the client's traffic flows ({} GPADLs, {} pages, {with_data} of them holding data)",
            self.kind.name(),
            self.counters(host),
            self.gpadls.iter().flatten().count(),
            self.n_pages
        );
        if with_data == 0 {
            return Err("no page of the channel holds data before the rescind");
        }
        host.remove_device(self.dev)
            .map_err(|_| "the rescind could not be sent")?;
        self.phase = Phase::Rescinded;
        Ok(true)
    }

    /// After RELID_RELEASED: every GPADL torn down, every page that held data changed; then
    /// offers the device again.
    fn check_and_reoffer<G: GuestMemory>(
        &mut self,
        host: &mut Host,
        mem: &mut G,
    ) -> Result<bool, &'static str> {
        let gpadls = self.gpadls.iter().flatten().count();
        let torn = self.torn.iter().filter(|&&t| t).count();
        let mut stale = 0;
        let mut changed = 0;
        for p in &self.pages[..self.n_pages] {
            if p.print == ZERO_PRINT {
                continue;
            }
            if fingerprint(mem, p.pfn)? == p.print {
                stale += 1;
            } else {
                changed += 1;
            }
        }
        println!(
            "hv-host: {}: {} released; {torn} of its {gpadls} GPADLs torn down first; of its pages that held data {changed} zeroed or reused, {stale} still hold their old contents",
            self.kind.name(),
            self.relid.map_or(0, |r| r.0),
        );
        if torn != gpadls {
            return Err("a GPADL of the rescinded channel was not torn down");
        }
        if stale != 0 {
            return Err("a page of the rescinded channel kept its contents after the release");
        }
        self.dev = host
            .add_device(self.kind.spec())
            .map_err(|_| "the device could not be offered again")?;
        self.base = self.progress(host);
        self.phase = Phase::Second;
        println!("hv-host: {}: offered again", self.kind.name());
        Ok(true)
    }
}

/// FNV-1a's offset basis and prime.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The fingerprint of an all-zero page.
const ZERO_PRINT: u64 = {
    let mut h = FNV_OFFSET;
    let mut i = 0;
    while i < 4096 {
        h = h.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
};

/// FNV-1a over the page's 4096 bytes (read in small pieces: the host's stack is small).
fn fingerprint<G: GuestMemory>(mem: &mut G, pfn: u64) -> Result<u64, &'static str> {
    let mut h = FNV_OFFSET;
    let mut piece = [0u8; 256];
    for at in (0..4096).step_by(piece.len()) {
        mem.read(pfn, at, &mut piece)
            .map_err(|_| "a GPADL page is not guest memory")?;
        h = piece
            .iter()
            .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME));
    }
    Ok(h)
}
