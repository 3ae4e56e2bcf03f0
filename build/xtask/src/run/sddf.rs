//! The real network and storage devices of the main job: netvsc on the net PD and storvsc on the
//! storage PD as sDDF drivers (`sim_system::network` / `sim_system::storage`), and the two sDDF
//! clients of the description, `net_client` (`NetTestClient`: ARP, pings and UDP echoes against
//! the host's loopback switch, over and over) and `blk_client` (`BlkWorkload`: blocks written,
//! flushed, read back and verified, round after round).
//!
//! Where the simulation differs: it runs programs only on VMBus client PDs, and the two sDDF
//! clients have no VMBus connection. They run between world steps, after every PD of the step,
//! with their queues in shared test memory (see `sim_system::network` and `sim_system::storage`);
//! the network client borrows the net PD's step context for the clock only, and the block client
//! reaches its data region through the storage PD's window buffer, which is that region here.
//! The network client sends only while netvsc reports the device ready with its link up (its
//! requests would otherwise wait in the TX queue for the next device); a request in flight when
//! the device goes away is unanswered, and if its frame was still queued it goes out when the
//! device is back and its answer comes late: at most one such late answer per removal is
//! accepted, within [`LATE_WINDOW`] steps of the device being ready again. Every other frame that
//! answers nothing asked is a verification failure.

use std::fmt::Write as _;

use log::warn;
use sim_system::World;
use sim_system::network::{
    ANSWER_STEPS, NetQueues, NetTestClient, NetTestHandle, NetvscDriver, NetvscHandle, Request,
};
use sim_system::programs::{BlkWorkload, BlkWorkloadStats};
use sim_system::storage::{SharedQueues, StorHandle, StorvscDriver};
use vmbus_driver::guid::{self, Guid};
use vmbus_driver::ids::ClientId;

/// The network test client's PD in the description.
pub(crate) const NET_CLIENT_PD: &str = "net_client";
/// The block client's PD in the description.
pub(crate) const BLK_CLIENT_PD: &str = "blk_client";

/// Steps after the network device is ready again during which the late answer of a request
/// queued before its removal is accepted.
pub(crate) const LATE_WINDOW: u64 = 2 * ANSWER_STEPS;

/// The network test client's script, repeated (sequence numbers move on each round).
fn net_script() -> Vec<Request> {
    vec![
        Request::Arp,
        Request::Ping(1),
        Request::Udp(1),
        Request::Ping(2),
        Request::Udp(2),
    ]
}

/// Answers the network client verified, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NetCounts {
    pub arp: u64,
    pub icmp: u64,
    pub udp: u64,
}

impl NetCounts {
    pub(crate) const fn total(self) -> u64 {
        self.arp + self.icmp + self.udp
    }

    const fn minus(self, b: Self) -> Self {
        Self {
            arp: self.arp - b.arp,
            icmp: self.icmp - b.icmp,
            udp: self.udp - b.udp,
        }
    }
}

/// The network side: netvsc's handle and the sDDF test client.
struct NetSide {
    driver: NetvscHandle,
    client: Option<(NetTestClient, NetTestHandle)>,
    /// The VMBus client whose step context the test client borrows (the net PD).
    clock: ClientId,
    /// Late answers still accepted, and accepted so far.
    allowance: u64,
    late: u64,
    /// Frames that answered nothing asked, beyond the late answers.
    failures: u64,
    unexpected_seen: u64,
    ready_since: Option<u64>,
    removals: u64,
}

impl NetSide {
    fn counts(&self) -> NetCounts {
        self.client
            .as_ref()
            .map_or_else(NetCounts::default, |(_, h)| {
                let s = h.state();
                NetCounts {
                    arp: s.arp_replies,
                    icmp: s.echo_replies,
                    udp: s.udp_echoes,
                }
            })
    }

    fn step(&mut self, w: &mut World) {
        let ready = self.driver.ready();
        let now = w.now();
        if ready {
            let since = *self.ready_since.get_or_insert(now);
            if now > since + LATE_WINDOW {
                self.allowance = 0;
            }
        } else {
            self.ready_since = None;
        }
        let Some((c, h)) = &mut self.client else {
            return;
        };
        if ready {
            w.as_client(self.clock, |ctx| {
                sim_system::ClientProgram::step(c, ctx);
            });
        }
        let unexpected = h.state().unexpected;
        let new = unexpected - self.unexpected_seen;
        self.unexpected_seen = unexpected;
        let ok = new.min(self.allowance);
        self.allowance -= ok;
        self.late += ok;
        self.failures += new - ok;
    }
}

/// The storage side: storvsc's handle and the block workload.
struct BlkSide {
    driver: StorHandle,
    /// The storage PD's VMBus client.
    id: ClientId,
    workload: Option<BlkWorkload>,
}

impl BlkSide {
    fn stats(&self) -> BlkWorkloadStats {
        self.workload
            .as_ref()
            .map_or_else(BlkWorkloadStats::default, BlkWorkload::stats)
    }
}

/// What was verified when the scenario's first removal began.
#[derive(Debug, Clone, Copy, Default)]
struct Mark {
    net: NetCounts,
    blk: BlkWorkloadStats,
    net_gone: u64,
    net_failures: u64,
    blk_gone: u64,
}

/// The real devices' programs and the sDDF clients, as installed for a run.
#[derive(Default)]
pub(crate) struct Sddf {
    net: Option<NetSide>,
    blk: Option<BlkSide>,
    mark: Option<Mark>,
}

impl core::fmt::Debug for Sddf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sddf")
            .field("net", &self.net.is_some())
            .field("blk", &self.blk.is_some())
            .finish_non_exhaustive()
    }
}

impl Sddf {
    /// Installs netvsc on VMBus client `id` (the net PD) and the network test client on
    /// [`NET_CLIENT_PD`] if the description has it.
    pub(crate) fn install_net(&mut self, w: &mut World, id: ClientId) {
        let queues = NetQueues::new();
        let drv = NetvscDriver::new(&queues);
        let driver = drv.handle();
        w.set_program(id, Box::new(drv));
        let client = if w.instance().pd(NET_CLIENT_PD).is_some() {
            let c = NetTestClient::new(&queues, net_script(), true);
            let h = c.handle();
            Some((c, h))
        } else {
            warn!("the description has no {NET_CLIENT_PD} PD: netvsc runs without an sDDF client");
            None
        };
        self.net = Some(NetSide {
            driver,
            client,
            clock: id,
            allowance: 0,
            late: 0,
            failures: 0,
            unexpected_seen: 0,
            ready_since: None,
            removals: 0,
        });
    }

    /// Installs storvsc on VMBus client `id` (the storage PD) and the block workload on
    /// [`BLK_CLIENT_PD`] if the description has it.
    pub(crate) fn install_blk(&mut self, w: &mut World, id: ClientId) {
        let queues = SharedQueues::new();
        let drv = StorvscDriver::new(&queues);
        let driver = drv.handle();
        w.set_program(id, Box::new(drv));
        let workload = if w.instance().pd(BLK_CLIENT_PD).is_some() {
            Some(BlkWorkload::new(&queues, driver.clone(), id))
        } else {
            warn!("the description has no {BLK_CLIENT_PD} PD: storvsc runs without an sDDF client");
            None
        };
        self.blk = Some(BlkSide {
            driver,
            id,
            workload,
        });
    }

    /// The classes whose channels a real driver serves (one primary each).
    pub(crate) fn real_classes(&self) -> Vec<Guid> {
        let mut v = Vec::new();
        if self.net.is_some() {
            v.push(guid::NETWORK);
        }
        if self.blk.is_some() {
            v.push(guid::SCSI);
        }
        v
    }

    /// The VMBus clients that run a real driver (they keep their channels when the echo and
    /// service clients close theirs).
    pub(crate) fn driver_clients(&self) -> Vec<ClientId> {
        self.net
            .iter()
            .map(|n| n.clock)
            .chain(self.blk.iter().map(|b| b.id))
            .collect()
    }

    /// One step of both sDDF clients, after a world step.
    pub(crate) fn step(&mut self, w: &mut World) {
        if let Some(n) = &mut self.net {
            n.step(w);
        }
        if let Some(b) = &mut self.blk
            && let Some(wl) = &mut b.workload
        {
            wl.step(w);
        }
    }

    /// The host removes a device of class `class`: a network request queued then may be
    /// answered late.
    pub(crate) fn removing(&mut self, class: &Guid) {
        if *class == guid::NETWORK
            && let Some(n) = &mut self.net
        {
            n.allowance += 1;
            n.removals += 1;
        }
    }

    /// Remembers what was verified before the scenario's removal.
    pub(crate) fn mark(&mut self) {
        self.mark = Some(Mark {
            net: self.net.as_ref().map(NetSide::counts).unwrap_or_default(),
            blk: self.blk.as_ref().map(BlkSide::stats).unwrap_or_default(),
            net_gone: self.net.as_ref().map_or(0, |n| n.driver.state().gone),
            net_failures: self.net.as_ref().map_or(0, |n| n.failures),
            blk_gone: self.blk.as_ref().map_or(0, |b| b.driver.state().gone),
        });
    }

    /// Whether every installed driver is ready (netvsc configured, link up; storvsc serving).
    pub(crate) fn drivers_ready(&self) -> bool {
        self.net.as_ref().is_none_or(|n| n.driver.ready())
            && self.blk.as_ref().is_none_or(|b| b.driver.serving())
    }

    /// Whether each sDDF client checked traffic since the mark (all of it without a mark):
    /// network answers of each kind, or frames that failed verification; blocks read back,
    /// verified or not. A failed check ends in the summary and fails the run there.
    pub(crate) fn checked_since_mark(&self) -> bool {
        let m = self.mark.unwrap_or_default();
        let net = self.net.as_ref().is_none_or(|n| {
            n.client.is_none() || n.failures > m.net_failures || {
                let c = n.counts().minus(m.net);
                c.icmp > 0 && c.udp > 0
            }
        });
        let blk = self.blk.as_ref().is_none_or(|b| {
            let t = b.stats();
            b.workload.is_none()
                || t.blocks_verified + t.blocks_mismatched
                    > m.blk.blocks_verified + m.blk.blocks_mismatched
        });
        net && blk
    }

    /// Whether the block workload has a request in flight (true without one).
    pub(crate) fn blk_busy(&self) -> bool {
        self.blk
            .as_ref()
            .and_then(|b| b.workload.as_ref())
            .is_none_or(BlkWorkload::busy)
    }

    /// Whether the drivers noticed the removal since the mark: netvsc reported the link down,
    /// storvsc answered the requests in flight with `NoDevice`.
    pub(crate) fn noticed_removal(&self) -> bool {
        let m = self.mark.unwrap_or_default();
        let net = self.net.as_ref().is_none_or(|n| {
            let s = n.driver.state();
            s.gone > m.net_gone && !s.link_up
        });
        let blk = self.blk.as_ref().is_none_or(|b| {
            b.driver.state().gone > m.blk_gone
                && (b.workload.is_none() || b.stats().no_device > m.blk.no_device)
        });
        net && blk
    }

    /// The report's network and storage parts.
    pub(crate) fn report(&self, w: &World) -> (Option<NetReport>, Option<StorReport>) {
        let mark = self.mark;
        let net = self.net.as_ref().map(|n| {
            let d = n.driver.state();
            let host = w.host().net();
            let (sent, unanswered, unexpected, errors) =
                n.client.as_ref().map_or((0, 0, 0, 0), |(_, h)| {
                    let s = h.state();
                    (s.sent, s.unanswered, s.unexpected, s.errors.len())
                });
            let counts = n.counts();
            NetReport {
                client: n.client.is_some(),
                sent,
                answered: counts,
                before: mark.map(|m| m.net),
                unanswered,
                unexpected,
                late: n.late,
                failures: n.failures + errors as u64,
                host: NetCounts {
                    arp: host.arp_answered(),
                    icmp: host.icmp_answered(),
                    udp: host.udp_answered(),
                },
                frames_switched: host.frames_switched(),
                opens: d.opens,
                gone: d.gone,
                readies: d.readies,
                link_downs: d.link_downs,
                link_ups: d.link_ups,
                tx_sent: d.bridge.tx_sent,
                rx_delivered: d.bridge.rx_delivered,
                rx_dropped: d.bridge.rx_no_buffer + d.bridge.rx_too_big,
                tx_refused: d.bridge.tx_refused,
                window_faults: d.window_faults,
                hostile: d.hostile,
                removals: n.removals,
            }
        });
        let blk = self.blk.as_ref().map(|b| {
            let d = b.driver.state();
            let host = w.host().storage().stats();
            StorReport {
                client: b.workload.is_some(),
                stats: b.stats(),
                before: mark.map(|m| m.blk),
                opens: d.opens,
                gone: d.gone,
                capacity: d.info.map(|i| i.capacity),
                scsi_commands: d.scsi_commands,
                host_srbs: host.srbs,
                host_srb_errors: host.srb_errors,
                host_errors: d.host_errors.len(),
                errors: d.errors.len(),
            }
        });
        (net, blk)
    }
}

/// The network device's part of the summary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetReport {
    /// Whether the sDDF test client ran.
    pub client: bool,
    /// Requests the client sent.
    pub sent: u64,
    /// Answers the client verified.
    pub answered: NetCounts,
    /// Of those, before the scenario's removal.
    pub before: Option<NetCounts>,
    pub unanswered: u64,
    pub unexpected: u64,
    /// Late answers accepted (requests queued when the device went away).
    pub late: u64,
    /// Verification failures: frames that answered nothing asked beyond the late answers, and
    /// queue errors of the client (must be 0).
    pub failures: u64,
    /// What the host's switch answered.
    pub host: NetCounts,
    pub frames_switched: u64,
    pub opens: u64,
    pub gone: u64,
    pub readies: u64,
    pub link_downs: u64,
    pub link_ups: u64,
    pub tx_sent: u64,
    pub rx_delivered: u64,
    pub rx_dropped: u64,
    pub tx_refused: u64,
    pub window_faults: u64,
    pub hostile: u64,
    pub removals: u64,
}

impl NetReport {
    /// Answers verified after the scenario's removal (all of them without one).
    pub(crate) fn after(&self) -> NetCounts {
        self.answered.minus(self.before.unwrap_or_default())
    }

    /// The summary line.
    pub(crate) fn line(&self) -> String {
        let mut s = String::from("network:   ");
        let a = self.answered;
        let h = self.host;
        if self.client {
            let _ = write!(
                s,
                "client answered and verified ARP {}/{} ICMP {}/{} UDP {}/{} (host's switch); ",
                a.arp, h.arp, a.icmp, h.icmp, a.udp, h.udp
            );
            if let Some(b) = self.before {
                let after = self.after();
                let _ = write!(
                    s,
                    "before the removal {} (ARP {} ICMP {} UDP {}), after the re-add {} (ARP {} ICMP {} UDP {}); ",
                    b.total(),
                    b.arp,
                    b.icmp,
                    b.udp,
                    after.total(),
                    after.arp,
                    after.icmp,
                    after.udp
                );
            }
            let _ = write!(
                s,
                "sent {} unanswered {} (removals {}) unexpected {} of which late {}, failed verification {}; ",
                self.sent,
                self.unanswered,
                self.removals,
                self.unexpected,
                self.late,
                self.failures
            );
        } else {
            s.push_str("no sDDF client; ");
        }
        let _ = write!(
            s,
            "netvsc opens {} gone {} ready {} link downs {} ups {}; bridge frames tx {} rx {} (dropped {}, refused {}), host switched {}; window faults {} hostile {}",
            self.opens,
            self.gone,
            self.readies,
            self.link_downs,
            self.link_ups,
            self.tx_sent,
            self.rx_delivered,
            self.rx_dropped,
            self.tx_refused,
            self.frames_switched,
            self.window_faults,
            self.hostile
        );
        s
    }
}

/// The storage device's part of the summary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StorReport {
    /// Whether the block workload ran.
    pub client: bool,
    pub stats: BlkWorkloadStats,
    /// The workload's counters at the scenario's removal.
    pub before: Option<BlkWorkloadStats>,
    pub opens: u64,
    pub gone: u64,
    pub capacity: Option<u64>,
    pub scsi_commands: u64,
    pub host_srbs: u64,
    pub host_srb_errors: u64,
    pub host_errors: usize,
    pub errors: usize,
}

impl StorReport {
    /// Blocks verified after the scenario's removal (all of them without one).
    pub(crate) fn verified_after(&self) -> u64 {
        self.stats.blocks_verified - self.before.map_or(0, |b| b.blocks_verified)
    }

    /// The summary line.
    pub(crate) fn line(&self) -> String {
        let mut s = String::from("storage:   ");
        let t = &self.stats;
        if self.client {
            let _ = write!(
                s,
                "blocks written {} read {} verified {} mismatched {} in {} rounds (flushes {}); ",
                t.blocks_written,
                t.blocks_read,
                t.blocks_verified,
                t.blocks_mismatched,
                t.rounds,
                t.flushes
            );
            if let Some(b) = self.before {
                let _ = write!(
                    s,
                    "verified before the removal {}, after the re-add {}; ",
                    b.blocks_verified,
                    self.verified_after()
                );
            }
            let _ = write!(
                s,
                "requests failed with NoDevice {}, with other errors {}, stray responses {}, unreachable region {}; ",
                t.no_device, t.failed, t.stray, t.unreachable
            );
        } else {
            s.push_str("no sDDF client; ");
        }
        let _ = write!(
            s,
            "storvsc opens {} (reopens {}) gone {}, {} blocks, SCSI commands {} (host SRBs {}, errors {}); host errors {} other errors {}",
            self.opens,
            self.opens.saturating_sub(1),
            self.gone,
            self.capacity
                .map_or_else(|| "-".to_string(), |c| c.to_string()),
            self.scsi_commands,
            self.host_srbs,
            self.host_srb_errors,
            self.host_errors,
            self.errors
        );
        s
    }
}
