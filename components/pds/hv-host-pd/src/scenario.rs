//! The host's part of the end-to-end scenario: rescind under traffic, check the teardown order,
//! offer device B, check that B's ring pages are A's pages, recycled and zeroed.
//!
//! The host learns what happened from its own message log (`Host::log`), the record a real host
//! would have: every message the guest posted and every message it sent.

use hv_host::{DeviceSpec, Direction, GuestMemory, Host, LogRecord};
use pd_runtime::println;
use pd_support::abi::scenario as sc;
use vmbus_driver::ids::{GpadlId, RelId};
use vmbus_driver::msg::MessageType;

/// Most pages of a channel's GPADL the scenario keeps (two rings of [`sc::RING_PAGES`]).
const MAX_PFNS: usize = 16;
/// Most log records kept from the rescind to RELID_RELEASED.
const MAX_TEARDOWN_RECORDS: usize = 32;

/// Where the scenario is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for A's channel to carry enough traffic.
    Traffic,
    /// A's channel rescinded; collecting the teardown messages.
    Rescinded,
    /// Device B offered; waiting for B's GPADL.
    OfferedB,
    /// B's pages checked.
    CheckedB,
}

/// The scenario's state.
#[derive(Debug)]
pub struct Scenario {
    phase: Phase,
    log_seen: u64,
    relid_a: Option<RelId>,
    gpadl_a: Option<GpadlId>,
    pfns_a: [u64; MAX_PFNS],
    n_pfns_a: usize,
    relid_b: Option<RelId>,
    teardown: [Option<LogRecord>; MAX_TEARDOWN_RECORDS],
    n_teardown: usize,
    released_a: bool,
    created_b: Option<GpadlId>,
}

impl Scenario {
    /// Before the first message.
    pub fn new() -> Scenario {
        Scenario {
            phase: Phase::Traffic,
            log_seen: 0,
            relid_a: None,
            gpadl_a: None,
            pfns_a: [0; MAX_PFNS],
            n_pfns_a: 0,
            relid_b: None,
            teardown: [None; MAX_TEARDOWN_RECORDS],
            n_teardown: 0,
            released_a: false,
            created_b: None,
        }
    }

    /// Looks at what happened since the last call and takes the next step; `Err(step)` when the
    /// guest broke the scenario's rules.
    pub fn step<G: GuestMemory>(&mut self, host: &mut Host, mem: &mut G) -> Result<(), u64> {
        self.read_log(host)?;
        match self.phase {
            Phase::Traffic => {
                let Some(relid) = self.relid_a else {
                    return Ok(());
                };
                let Some(ch) = host.channel(relid) else {
                    return Ok(());
                };
                if ch.stats.packets_out >= sc::RESCIND_AFTER {
                    // A's data is in its ring pages now: the check on B's pages must find it
                    // gone, so it must be there to begin with.
                    let secret = secret_words(mem, &self.pfns_a[..self.n_pfns_a])?;
                    println!(
                        "hv-host: {} packets echoed on {relid} ({secret} words of A's data in its ring pages); rescinding it while the client's traffic flows",
                        ch.stats.packets_out
                    );
                    if secret == 0 {
                        return Err(11);
                    }
                    host.rescind(relid).map_err(|_| 1u64)?;
                    self.phase = Phase::Rescinded;
                    host.process();
                }
            }
            Phase::Rescinded => {
                if self.released_a {
                    self.check_teardown()?;
                    host.add_device(DeviceSpec::echo(sc::ECHO_B_CLASS, sc::ECHO_B_INSTANCE))
                        .map_err(|_| 3u64)?;
                    println!("hv-host: teardown order checked; offering echo device B");
                    self.phase = Phase::OfferedB;
                    host.process();
                }
            }
            Phase::OfferedB => {
                if let Some(g) = self.created_b {
                    self.check_b_pages(host, mem, g)?;
                    self.phase = Phase::CheckedB;
                }
            }
            Phase::CheckedB => {}
        }
        Ok(())
    }

    /// Takes the facts the scenario needs from the new log records.
    fn read_log(&mut self, host: &Host) -> Result<(), u64> {
        let total = host.log().total();
        for r in host.log().since(self.log_seen) {
            let ty = r.msgtype;
            if r.dir == Direction::Sent
                && ty == MessageType::OFFERCHANNEL
                && let Some(relid) = r.relid
                && let Some(ch) = host.channel(relid)
            {
                if ch.class == sc::ECHO_A_CLASS && self.relid_a.is_none() {
                    self.relid_a = Some(relid);
                } else if ch.class == sc::ECHO_B_CLASS && self.relid_b.is_none() {
                    self.relid_b = Some(relid);
                }
            }
            if r.dir == Direction::Sent && ty == MessageType::GPADL_CREATED && r.status == Some(0) {
                if r.relid == self.relid_a && self.gpadl_a.is_none() {
                    self.gpadl_a = r.gpadl;
                    if let Some(pfns) = r.gpadl.and_then(|g| host.gpadl_pfns(g)) {
                        let n = pfns.len().min(MAX_PFNS);
                        self.pfns_a[..n].copy_from_slice(&pfns[..n]);
                        self.n_pfns_a = n;
                        println!(
                            "hv-host: channel A's GPADL covers {} pages, frames {:#x}..",
                            pfns.len(),
                            pfns.first().copied().unwrap_or(0)
                        );
                    }
                } else if self.relid_b.is_some() && r.relid == self.relid_b {
                    self.created_b = r.gpadl;
                }
            }
            if self.phase == Phase::Rescinded {
                if self.n_teardown >= MAX_TEARDOWN_RECORDS {
                    return Err(2);
                }
                self.teardown[self.n_teardown] = Some(*r);
                self.n_teardown += 1;
            }
            if r.dir == Direction::Received
                && ty == MessageType::RELID_RELEASED
                && r.relid == self.relid_a
            {
                self.released_a = true;
            }
        }
        self.log_seen = total;
        Ok(())
    }

    /// Prints the log from the rescind on and checks its order
    /// (docs/lifetime.md#the-teardown-step-by-step): RESCIND(A), CLOSECHANNEL(A),
    /// GPADL_TEARDOWN(A's GPADL), GPADL_TORNDOWN, RELID_RELEASED(A), each once, and no other
    /// message about A or its GPADL.
    fn check_teardown(&self) -> Result<(), u64> {
        let records = || self.teardown[..self.n_teardown].iter().flatten();
        println!("hv-host: message log from the rescind on:");
        for r in records() {
            println!("hv-host:   {r}");
        }
        let (Some(relid), Some(gpadl)) = (self.relid_a, self.gpadl_a) else {
            return Err(4);
        };
        let expected = [
            (Direction::Sent, MessageType::RESCIND_CHANNELOFFER),
            (Direction::Received, MessageType::CLOSECHANNEL),
            (Direction::Received, MessageType::GPADL_TEARDOWN),
            (Direction::Sent, MessageType::GPADL_TORNDOWN),
            (Direction::Received, MessageType::RELID_RELEASED),
        ];
        let mut next = 0;
        for r in records() {
            let about_a = r.relid == Some(relid) || r.gpadl == Some(gpadl);
            if !about_a {
                continue;
            }
            match expected.get(next) {
                Some(&(dir, ty)) if r.dir == dir && r.msgtype == ty => next += 1,
                _ => {
                    println!("hv-host: out of order: {r}");
                    return Err(5);
                }
            }
        }
        if next != expected.len() {
            println!(
                "hv-host: teardown incomplete: {next} of {} steps",
                expected.len()
            );
            return Err(6);
        }
        Ok(())
    }

    /// B's GPADL, just created (client B has not run since): its pages must include A's old
    /// ring pages and hold none of A's data.
    fn check_b_pages<G: GuestMemory>(
        &self,
        host: &Host,
        mem: &mut G,
        gpadl: GpadlId,
    ) -> Result<(), u64> {
        let Some(pfns) = host.gpadl_pfns(gpadl) else {
            return Err(7);
        };
        let old = &self.pfns_a[..self.n_pfns_a];
        let reused = pfns.iter().filter(|p| old.contains(p)).count();
        let secret = secret_words(mem, pfns)?;
        let nonzero = count_words(mem, pfns, |v| v != 0)?;
        println!(
            "hv-host: channel B's GPADL covers {} pages, {reused} of them A's old ring pages; words of A's data in them: {secret}; non-zero words: {nonzero}",
            pfns.len()
        );
        if reused == 0 {
            return Err(9);
        }
        if secret != 0 {
            return Err(10);
        }
        Ok(())
    }
}

/// Words of client A's payload pattern in the pages `pfns`.
fn secret_words<G: GuestMemory>(mem: &mut G, pfns: &[u64]) -> Result<usize, u64> {
    count_words(mem, pfns, |v| v & sc::TAG_MASK == sc::SECRET_A)
}

/// Words of the pages `pfns` for which `pred` holds; `Err(8)` if a page is not guest memory.
fn count_words<G: GuestMemory>(
    mem: &mut G,
    pfns: &[u64],
    pred: impl Fn(u64) -> bool,
) -> Result<usize, u64> {
    let mut n = 0;
    for &pfn in pfns {
        let mut page = [0u8; 4096];
        mem.read(pfn, 0, &mut page).map_err(|_| 8u64)?;
        for w in page.chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            if pred(u64::from_le_bytes(b)) {
                n += 1;
            }
        }
    }
    Ok(n)
}
