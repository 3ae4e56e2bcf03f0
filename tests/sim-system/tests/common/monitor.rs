//! The global invariants of docs/lifetime.md#what-is-checked, checked after every step of a
//! scenario.
//!
//! The [`Monitor`] reads the host's message log as it grows (the log is a ring of 1024 records,
//! so it must be read after every step, which is what the scenario rig does) and the kernel model
//! directly. It never trusts the driver's own counters for what it checks: the messages come
//! from the host's record of what it received, the pool from the kernel model's seam, the
//! mappings from the client VSpaces.
//!
//! Checked after each step:
//! - no free pool page is granted to a client, mapped in a client window, or covered by a GPADL
//!   the host still holds;
//! - every RELID_RELEASED answers one RESCIND_CHANNELOFFER (never two for one rescind);
//! - no guest message names a relid after its release (until the host offers it again);
//! - a GPADL is torn down at most once, and no guest message names it after its teardown (until
//!   the id is described again);
//! - a new GPADL never covers a page of a GPADL the host still holds (pages are reused only
//!   after GPADL_TORNDOWN).
//!
//! Checked at the end ([`Monitor::check_quiescent`]): every rescind got exactly one
//! RELID_RELEASED and every created GPADL of a channel no longer open was torn down exactly
//! once.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use hv_host::{Direction, LogRecord};
use sim_system::World;
use vmbus_driver::ids::{GpadlId, PageId};
use vmbus_driver::msg::MessageType;

/// What the monitor knows of one GPADL id.
#[derive(Debug, Clone, Default)]
struct GpadlTrack {
    /// GPADL_CREATED with status 0 was sent for it.
    created: bool,
    /// GPADL_TEARDOWN messages the guest sent for it.
    teardowns: u32,
    /// GPADL_TORNDOWN was sent: the host no longer holds it.
    torndown: bool,
    /// Frame numbers the host recorded for it (filled once the host holds it).
    pfns: Vec<u64>,
}

/// The invariant checker of one world.
#[derive(Debug)]
pub struct Monitor {
    /// Next log sequence number to read.
    seq: u64,
    /// Whether every RESCIND in the log is a real host rescind (false under hostile
    /// injection of rescinds, where the release balance is not the driver's to keep).
    pub strict_rescinds: bool,
    /// Rescinds sent and not yet answered, per relid.
    rescinds_open: BTreeMap<u32, u32>,
    /// Rescinds sent / RELID_RELEASED received, in total.
    pub rescinds: u64,
    /// RELID_RELEASED received.
    pub releases: u64,
    /// Relids released and not offered again.
    released: BTreeSet<u32>,
    /// GPADLs by id (the current incarnation of each id).
    gpadls: BTreeMap<u32, GpadlTrack>,
    /// Every GPADL id whose pfns still have to be read from the host.
    pending_pfns: Vec<u32>,
    /// Pool frame number -> page (the pool's frames as the host sees them).
    pfn_to_page: BTreeMap<u64, PageId>,
    /// Frames of the pool pages, by page number.
    page_frames: Vec<sel4_sim::FrameId>,
    /// Per client: mapped page count with no channel open (control page, code, ...).
    baseline_mapped: Vec<usize>,
    /// Violations found, with the step they were found at.
    pub violations: Vec<String>,
    /// Steps observed.
    pub steps: u64,
    /// Whether to run the (costlier) per-step pool checks.
    pub pool_checks: bool,
}

impl Monitor {
    /// A monitor for `w`, which must not have any channel open yet.
    pub fn new(w: &World) -> Self {
        let pool = w.instance().pool();
        let mut page_frames = vec![sel4_sim::FrameId(0); pool.pages as usize];
        let mut pfn_to_page = BTreeMap::new();
        for (&pfn, &(page, frame)) in pool.by_pfn.iter() {
            page_frames[page.0 as usize] = frame;
            pfn_to_page.insert(pfn, page);
        }
        let k = w.instance().kernel().borrow();
        let baseline_mapped = w
            .instance()
            .clients()
            .iter()
            .map(|c| k.sim.mapped_page_count(c.pd).expect("client pd"))
            .collect();
        drop(k);
        Self {
            seq: w.host().log().total(),
            strict_rescinds: true,
            rescinds_open: BTreeMap::new(),
            rescinds: 0,
            releases: 0,
            released: BTreeSet::new(),
            gpadls: BTreeMap::new(),
            pending_pfns: Vec::new(),
            pfn_to_page,
            page_frames,
            baseline_mapped,
            violations: Vec::new(),
            steps: 0,
            pool_checks: true,
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(format!("step {}: {what}", self.steps));
    }

    /// Reads the new log records and checks the state after one step.
    pub fn observe(&mut self, w: &World) {
        self.steps += 1;
        let log = w.host().log();
        let kept_from = log
            .total()
            .saturating_sub(hv_host::log::LOG_CAPACITY as u64);
        if self.seq < kept_from {
            self.violation(format!(
                "host log overran: {} records lost between observations",
                kept_from - self.seq
            ));
            self.seq = kept_from;
        }
        let records: Vec<LogRecord> = log.since(self.seq).copied().collect();
        self.seq = log.total();
        for r in &records {
            self.record(r);
        }
        self.read_pfns(w);
        if self.pool_checks {
            self.check_pool(w);
        }
    }

    /// One log record.
    fn record(&mut self, r: &LogRecord) {
        let t = r.msgtype;
        match r.dir {
            Direction::Sent => {
                if t == MessageType::OFFERCHANNEL
                    && let Some(rel) = r.relid
                {
                    self.released.remove(&rel.0);
                } else if t == MessageType::RESCIND_CHANNELOFFER
                    && let Some(rel) = r.relid
                {
                    self.rescinds += 1;
                    *self.rescinds_open.entry(rel.0).or_default() += 1;
                } else if t == MessageType::GPADL_CREATED
                    && let (Some(g), Some(0)) = (r.gpadl, r.status)
                    && let Some(track) = self.gpadls.get_mut(&g.0)
                {
                    track.created = true;
                } else if t == MessageType::GPADL_TORNDOWN
                    && let Some(g) = r.gpadl
                    && let Some(track) = self.gpadls.get_mut(&g.0)
                {
                    track.torndown = true;
                }
            }
            Direction::Received => self.guest_message(r),
        }
    }

    /// One message from the guest.
    fn guest_message(&mut self, r: &LogRecord) {
        let t = r.msgtype;
        if t == MessageType::RELID_RELEASED {
            let Some(rel) = r.relid else { return };
            match self.rescinds_open.get_mut(&rel.0) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    self.releases += 1;
                    self.released.insert(rel.0);
                }
                _ if self.strict_rescinds => self.violation(format!(
                    "RELID_RELEASED for {rel} answers no rescind (a second release?)"
                )),
                _ => {}
            }
            return;
        }
        if let Some(rel) = r.relid
            && self.released.contains(&rel.0)
        {
            self.violation(format!("guest sent {t} naming {rel} after its release"));
        }
        let Some(g) = r.gpadl else { return };
        if t == MessageType::GPADL_HEADER {
            if let Some(old) = self.gpadls.get(&g.0)
                && old.teardowns == 0
                && old.created
            {
                self.violation(format!("{g} described again while the host holds it"));
            }
            self.gpadls.insert(g.0, GpadlTrack::default());
            self.pending_pfns.push(g.0);
            return;
        }
        let Some(track) = self.gpadls.get_mut(&g.0) else {
            self.violation(format!("guest sent {t} naming {g}, never described"));
            return;
        };
        if t == MessageType::GPADL_TEARDOWN {
            track.teardowns += 1;
            if track.teardowns > 1 {
                self.violation(format!("{g} torn down twice"));
            }
        } else if track.teardowns > 0 {
            self.violation(format!("guest sent {t} naming {g} after its teardown"));
        }
    }

    /// Frame numbers of GPADLs the host now holds; a new GPADL must not share a frame with a
    /// GPADL the host still holds.
    fn read_pfns(&mut self, w: &World) {
        let pending = std::mem::take(&mut self.pending_pfns);
        for g in pending {
            let Some(pfns) = w.host().gpadl_pfns(GpadlId(g)) else {
                // Not complete yet (bodies to come) or refused: look again next step.
                if self
                    .gpadls
                    .get(&g)
                    .is_some_and(|t| !t.torndown && t.teardowns == 0)
                {
                    self.pending_pfns.push(g);
                }
                continue;
            };
            let pfns = pfns.to_vec();
            let clash: Vec<u32> = self
                .held_gpadls(w)
                .filter(|&(other, ref p)| other != g && p.iter().any(|f| pfns.contains(f)))
                .map(|(other, _)| other)
                .collect();
            for other in clash {
                self.violation(format!(
                    "GPADL {g:#x} reuses a page of GPADL {other:#x}, which the host still holds"
                ));
            }
            if let Some(t) = self.gpadls.get_mut(&g) {
                t.pfns = pfns;
            }
        }
    }

    /// (id, pfns) of every GPADL the host holds now, as far as the monitor saw it described.
    fn held_gpadls<'a>(&'a self, w: &'a World) -> impl Iterator<Item = (u32, Vec<u64>)> + 'a {
        self.gpadls
            .keys()
            .filter_map(move |&g| w.host().gpadl_pfns(GpadlId(g)).map(|p| (g, p.to_vec())))
    }

    /// The pages in the driver's free pool, read from a copy of the seam (taking pages from a
    /// copy changes nothing in the world).
    pub fn free_pages(w: &World) -> Vec<PageId> {
        let mut seam = w.instance().kernel().borrow().seam.clone();
        let mut out = Vec::with_capacity(seam.free_pages());
        while let Ok(p) = seam.take_page() {
            out.push(p);
        }
        out
    }

    /// Free pool pages: not granted, not mapped in any client window, not in a host GPADL.
    fn check_pool(&mut self, w: &World) {
        let free = Self::free_pages(w);
        let mut is_free = vec![false; self.page_frames.len()];
        for p in &free {
            is_free[p.0 as usize] = true;
        }
        let mut found = Vec::new();
        {
            let k = w.instance().kernel().borrow();
            for p in &free {
                if k.seam.grant_count(*p) != 0 {
                    found.push(format!("free pool {p} is still granted to a client"));
                }
            }
            let free_frames: HashSet<sel4_sim::FrameId> = free
                .iter()
                .map(|p| self.page_frames[p.0 as usize])
                .collect();
            for (i, c) in w.instance().clients().iter().enumerate() {
                let mapped = k.sim.mapped_page_count(c.pd).unwrap_or(0);
                if mapped <= self.baseline_mapped[i] {
                    continue;
                }
                for page in 0..c.window_pages as u64 {
                    let vaddr = c.window_base + page * 4096;
                    if let Ok(Some(m)) = k.sim.mapping(c.pd, vaddr)
                        && free_frames.contains(&m.frame)
                    {
                        found.push(format!(
                            "client {} maps a free pool frame at {vaddr:#x}",
                            c.name
                        ));
                    }
                }
            }
        }
        let held: Vec<(u32, Vec<u64>)> = self.held_gpadls(w).collect();
        for (g, pfns) in held {
            for pfn in pfns {
                if let Some(p) = self.pfn_to_page.get(&pfn)
                    && is_free[p.0 as usize]
                {
                    found.push(format!(
                        "free pool {p} is in GPADL {g:#x}, held by the host"
                    ));
                }
            }
        }
        for f in found {
            self.violation(f);
        }
    }

    /// The end-of-scenario checks: every rescind answered exactly once and every created GPADL
    /// torn down exactly once (a GPADL whose teardown the host never confirmed counts: the
    /// guest sent its one teardown), nothing pending.
    /// GPADLs of channels the host has open now are exempt (their teardown is still to come).
    pub fn check_quiescent(&mut self, w: &World) {
        let open: Vec<u32> = w
            .host()
            .channels()
            .filter_map(|c| c.ring_gpadl)
            .map(|g| g.0)
            .collect();
        if self.strict_rescinds {
            let open: Vec<(u32, u32)> = self
                .rescinds_open
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| (*r, *n))
                .collect();
            for (r, n) in open {
                self.violation(format!("relid {r}: {n} rescind(s) never answered"));
            }
        }
        let untorn: Vec<u32> = self
            .gpadls
            .iter()
            .filter(|(g, t)| t.created && t.teardowns != 1 && !open.contains(g))
            .map(|(g, _)| *g)
            .collect();
        for g in untorn {
            self.violation(format!(
                "created GPADL {g:#x} was not torn down exactly once"
            ));
        }
    }

    /// GPADL ids whose teardown was sent and never confirmed (their pages must stay out of the
    /// pool), with their frames.
    pub fn unconfirmed_teardowns(&self) -> Vec<(u32, Vec<u64>)> {
        self.gpadls
            .iter()
            .filter(|(_, t)| t.teardowns > 0 && !t.torndown)
            .map(|(g, t)| (*g, t.pfns.clone()))
            .collect()
    }

    /// Frames of every GPADL described so far, by id.
    pub fn gpadl_frames(&self, g: u32) -> Option<&[u64]> {
        self.gpadls.get(&g).map(|t| t.pfns.as_slice())
    }

    /// Panics with every violation found, naming `context`.
    pub fn assert_clean(&self, context: &str) {
        assert!(
            self.violations.is_empty(),
            "{context}: invariant violations:\n  {}",
            self.violations.join("\n  ")
        );
    }
}
