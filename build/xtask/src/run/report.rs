//! The numbers a run ends with, gathered once from the world.

use sim_system::World;
use vmbus_driver::driver::{ConnectionState, Stats};
use vmbus_driver::version::Version;

use super::program::Totals;
use super::sddf::{NetReport, StorReport};
use super::services::ServiceReport;

/// The end state of a run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// World steps run.
    pub steps: u64,
    /// Negotiated version (the last one, if unloaded).
    pub version: Option<Version>,
    /// Connection state at the end.
    pub connection: ConnectionState,
    /// Versions the host refused during the walk.
    pub versions_refused: u32,
    /// The driver's counters.
    pub driver: Stats,
    /// The host's counters.
    pub host: hv_host::Counters,
    /// The driver's monitor pages held at the end (0 after an answered UNLOAD).
    pub monitor_pages: usize,
    /// Packets the host took from the guest's rings over the run.
    pub packets_to_host: u64,
    /// Guest errors the host logged (the last few).
    pub host_errors: Vec<String>,
    /// The kernel model's operation counters.
    pub kernel: sel4_sim::Counters,
    /// All clients' counters summed.
    pub clients: Totals,
    /// Channels open, opening or in teardown at the end.
    pub open_now: usize,
    /// Pool pages in all.
    pub pool_total: usize,
    /// Pool pages free.
    pub pool_free: usize,
    /// Pages held by channels at the end.
    pub pages_in_channels: usize,
    /// Pages quarantined (teardown never confirmed by the host).
    pub quarantined: usize,
    /// Client faults the driver handled.
    pub faults: usize,
    /// Pool pages lent to the host (the balloon) at the end.
    pub lent: usize,
    /// The service clients and their hosts' side.
    pub services: ServiceReport,
    /// The real network device, its driver and sDDF client (not with --echo).
    pub network: Option<NetReport>,
    /// The real SCSI controller, its driver and the block workload (not with --echo).
    pub storage: Option<StorReport>,
    /// Whether the host stayed honest (no hostile mode): then a block request failing with
    /// anything but `NoDevice` is a failure too.
    pub honest: bool,
}

impl Report {
    /// Gathers the report; `version` is the version seen while connected (UNLOAD clears it).
    pub(crate) fn gather(
        w: &World,
        scenario: &'static str,
        version: Option<Version>,
        clients: Totals,
        services: ServiceReport,
    ) -> Report {
        let conn = w.driver().connection();
        Report {
            scenario,
            steps: w.steps(),
            version: conn.version.or(version),
            connection: conn.state,
            versions_refused: conn.versions_refused,
            driver: w.driver_stats(),
            host: w.host().counters(),
            packets_to_host: w.host().packets_received(),
            monitor_pages: w.driver().connection_pages(),
            host_errors: w.host().errors().iter().map(|e| e.to_string()).collect(),
            kernel: w.sim_counters(),
            clients,
            open_now: w.driver().open_count(),
            pool_total: w.instance().pool().pages as usize,
            pool_free: w.pool_free(),
            pages_in_channels: w.driver_channels().iter().map(|c| c.pages).sum(),
            quarantined: w.driver().quarantined_pages(),
            faults: w.faults().len(),
            lent: w.driver().lent_pages(),
            services,
            network: None,
            storage: None,
            honest: true,
        }
    }

    /// Why the run failed, if it did: pages unaccounted, echoes that did not match, network
    /// answers or blocks that did not verify. Empty when the run succeeded.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.unaccounted() != 0 {
            p.push(format!("{} pool pages unaccounted", self.unaccounted()));
        }
        if self.clients.mismatches != 0 {
            p.push(format!("{} echo mismatches", self.clients.mismatches));
        }
        if let Some(n) = &self.network
            && n.failures != 0
        {
            p.push(format!(
                "{} network frames failed verification (answering nothing asked)",
                n.failures
            ));
        }
        if let Some(s) = &self.storage {
            if s.stats.blocks_mismatched != 0 {
                p.push(format!(
                    "{} blocks read back different from what was written",
                    s.stats.blocks_mismatched
                ));
            }
            if s.stats.stray != 0 {
                p.push(format!(
                    "{} block responses to no request in flight",
                    s.stats.stray
                ));
            }
            if self.honest && s.stats.failed != 0 {
                p.push(format!(
                    "{} block requests failed with an error from an honest host",
                    s.stats.failed
                ));
            }
        }
        p
    }

    /// Pool pages neither free, nor held by a channel, nor quarantined, nor lent to the host, nor
    /// the driver's monitor pages:
    /// leaked (must be 0).
    pub(crate) fn unaccounted(&self) -> i64 {
        self.pool_total as i64
            - self.pool_free as i64
            - self.pages_in_channels as i64
            - self.quarantined as i64
            - self.lent as i64
            - self.monitor_pages as i64
    }
}

/// Adds `b` into `a`.
pub(crate) fn add_totals(a: &mut Totals, b: &Totals) {
    a.opens_started += b.opens_started;
    a.opens += b.opens;
    a.open_failures += b.open_failures;
    a.sent += b.sent;
    a.echoed += b.echoed;
    a.mismatches += b.mismatches;
    a.gone += b.gone;
    a.closed += b.closed;
    a.refused += b.refused;
    a.errors += b.errors;
}
