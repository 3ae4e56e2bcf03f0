//! The Dynamic Memory client's program logic on seL4, shared by `dynmem-pd` (system.xml) and
//! `dynmem-client` (the Hyper-V system of `cargo xtask qemu-test`): open the balloon channel,
//! negotiate (`dynmem::Startup`), then serve the host's balloon requests with pages the VMBus
//! driver lends from its pool (`dynmem::Balloon` over [`DriverPages`]).
//!
//! The lifetime rule holds for ballooned pages as for ring pages: the driver revokes every
//! mapping of a page, its own included, before it names the page to this client, so by the
//! time the client reports a page to the host nothing in the guest can touch it; pages the host
//! gives back are zeroed by the driver before they return to its pool.
//!
//! Status reports: Linux sends one a second; the image has no timer, so this client sends one
//! after the negotiation and after every balloon or unballoon answer, each with the driver's
//! figures of the pool.
#![no_std]

use client_env::Sel4Env;
use dynmem::driver_pages::DriverPages;
use dynmem::msg::{self, Capabilities, MAX_GUEST_MESSAGE, MAX_MESSAGE, MsgType};
use dynmem::{Balloon, MemoryFigures, Startup, StartupStep};
use pd_runtime::println;
use pd_support::cell::StaticCell;
use shared_mem::MappedRing;
use vmbus_client::{Channel, ClientError, RelId, memory_info, open};

/// Pages of each ring, header page included: a balloon response is up to 4 KiB.
pub const RING_PAGES: u16 = 4;

/// The largest packet the inbound ring can hold (its data area).
const MAX_PACKET: usize = (RING_PAGES as usize - 1) * 4096;

/// What the client reports: it balloons, and takes neither hot add nor hot remove.
pub const CAPS: Capabilities = Capabilities {
    balloon: true,
    hot_add: false,
    hot_add_alignment: 0,
    hot_remove: false,
    min_pages: 4096,
    max_page_number: 0,
};

/// Buffers (static memory: the packets are up to 12 KiB).
struct Buffers {
    inbound: [u8; MAX_PACKET],
    out: [u8; MAX_MESSAGE],
}

impl core::fmt::Debug for Buffers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Buffers")
    }
}

static BUFFERS: StaticCell<Buffers> = StaticCell::new(Buffers {
    inbound: [0; MAX_PACKET],
    out: [0; MAX_MESSAGE],
});

/// How serving the channel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The host rescinded the channel (or the driver tore it down).
    Gone,
    /// The channel failed; the reason was logged.
    Failed(u64),
}

/// The client's program: one balloon channel at a time.
#[derive(Debug)]
pub struct DynMem {
    buffers: &'static mut Buffers,
    /// The balloon (what is ballooned now, the totals).
    pub balloon: Balloon,
    trans_id: u32,
}

impl DynMem {
    /// The program's state.
    ///
    /// # Panics
    /// When made twice in one PD.
    pub fn new() -> DynMem {
        let Some(buffers) = BUFFERS.take() else {
            panic!("one Dynamic Memory client per PD");
        };
        DynMem {
            buffers,
            balloon: Balloon::new(),
            trans_id: 0,
        }
    }

    fn next_trans_id(&mut self) -> u32 {
        self.trans_id = self.trans_id.wrapping_add(1);
        self.trans_id
    }

    /// Opens `relid`, negotiates and serves it until it goes away; `on_ready` runs once the
    /// host accepted the capabilities.
    pub fn serve(&mut self, env: &mut Sel4Env, relid: RelId, on_ready: impl FnOnce()) -> End {
        let mut ch = match open(env, relid, RING_PAGES, RING_PAGES) {
            Ok(c) => c,
            Err(e) => {
                println!("dynmem: open {relid}: {e}");
                return End::Failed(2);
            }
        };
        println!("dynmem: opened {relid}; negotiating");
        let mut small = [0u8; MAX_GUEST_MESSAGE];
        let tid = self.next_trans_id();
        let (mut startup, n) = Startup::begin(&mut small, tid);
        if let Err(e) = send(env, &mut ch, &small[..n]) {
            return e;
        }
        let mut on_ready = Some(on_ready);
        loop {
            let len = match ch.recv(env, &mut self.buffers.inbound) {
                Ok(Some(r)) => r.len,
                Ok(None) => {
                    env.wait_notification_now();
                    continue;
                }
                Err(ClientError::ChannelGone) => return End::Gone,
                Err(e) => {
                    println!("dynmem: receive: {e}");
                    return End::Failed(4);
                }
            };
            if !matches!(startup, Startup::Ready { .. }) {
                // A host request before the negotiation ended (a hostile or confused host):
                // a balloon request gets no pages, the others the balloon's own refusal; the
                // negotiation goes on.
                let early = msg::split(&self.buffers.inbound[..len])
                    .ok()
                    .map(|(h, _)| h.ty);
                if early == Some(MsgType::BALLOON_REQUEST) {
                    println!("dynmem: balloon request before the negotiation ended: no pages");
                    let tid = self.next_trans_id();
                    let n = msg::balloon_response_none(&mut small, tid);
                    if let Err(e) = send(env, &mut ch, &small[..n]) {
                        return e;
                    }
                    continue;
                }
                if matches!(
                    early,
                    Some(MsgType::UNBALLOON_REQUEST | MsgType::HOT_ADD_REQUEST)
                ) {
                    if let Err(e) = self.on_request(env, &mut ch, len) {
                        return e;
                    }
                    continue;
                }
                let tid = self.next_trans_id();
                match startup.on_message(&self.buffers.inbound[..len], &mut small, tid, &CAPS) {
                    Ok(StartupStep::Send(n)) => {
                        if let Startup::Reporting { version } = startup {
                            println!("dynmem: the host accepted Dynamic Memory protocol {version}");
                        }
                        if let Err(e) = send(env, &mut ch, &small[..n]) {
                            return e;
                        }
                    }
                    Ok(StartupStep::Wait) => {}
                    Ok(StartupStep::Ready) => {
                        if let Startup::Ready { version, host } = startup {
                            println!(
                                "dynmem: capabilities accepted (protocol {version}, hot remove {}, pressure reports {}); ready",
                                host.hot_remove, !host.suppress_pressure_reports
                            );
                        }
                        if let Some(f) = on_ready.take() {
                            f();
                        }
                        if let Err(e) = self.report_status(env, &mut ch) {
                            return e;
                        }
                    }
                    Err(e) => {
                        println!("dynmem: negotiation: {e}");
                        return End::Failed(5);
                    }
                }
                continue;
            }
            if let Err(e) = self.on_request(env, &mut ch, len) {
                return e;
            }
        }
    }

    /// One host message after the start-up: the balloon answers it, in as many messages as it
    /// takes.
    fn on_request(
        &mut self,
        env: &mut Sel4Env,
        ch: &mut Channel<MappedRing>,
        len: usize,
    ) -> Result<(), End> {
        let before = self.balloon.stats();
        let tid = self.next_trans_id();
        let mut reply = self.balloon.on_message(
            &self.buffers.inbound[..len],
            &mut DriverPages::new(env),
            &mut self.buffers.out,
            tid,
        );
        loop {
            if let Some(e) = &reply.error {
                println!("dynmem: {e}");
            }
            if reply.len > 0 {
                let n = reply.len;
                send(env, ch, &self.buffers.out[..n])?;
            }
            if !reply.more {
                break;
            }
            let tid = self.next_trans_id();
            reply = self
                .balloon
                .resume(&mut DriverPages::new(env), &mut self.buffers.out, tid);
        }
        let after = self.balloon.stats();
        if after.inflated_total != before.inflated_total
            || after.deflated_total != before.deflated_total
        {
            println!(
                "dynmem: balloon now {} pages (inflated {} in all, deflated {}; refused {}, source faults {})",
                after.ballooned_now,
                after.inflated_total,
                after.deflated_total,
                after.refused,
                after.source_faults
            );
            self.report_status(env, ch)?;
        }
        Ok(())
    }

    /// Sends a status report with the driver's pool figures.
    fn report_status(
        &mut self,
        env: &mut Sel4Env,
        ch: &mut Channel<MappedRing>,
    ) -> Result<(), End> {
        let figures = match memory_info(env) {
            Ok(m) => MemoryFigures {
                total_pages: u64::from(m.pool_pages),
                free_pages: u64::from(m.free_pages),
            },
            Err(e) => {
                println!("dynmem: memory figures: {e}");
                return Ok(());
            }
        };
        let tid = self.next_trans_id();
        match self
            .balloon
            .status_report(&figures, &mut self.buffers.out, tid)
        {
            Ok(n) => send(env, ch, &self.buffers.out[..n]),
            Err(e) => {
                println!("dynmem: status report: {e}");
                Ok(())
            }
        }
    }
}

impl Default for DynMem {
    fn default() -> Self {
        Self::new()
    }
}

fn send(env: &mut Sel4Env, ch: &mut Channel<MappedRing>, bytes: &[u8]) -> Result<(), End> {
    match ch.send(env, bytes) {
        Ok(()) => Ok(()),
        Err(ClientError::ChannelGone) => Err(End::Gone),
        Err(e) => {
            println!("dynmem: send: {e}");
            Err(End::Failed(3))
        }
    }
}
