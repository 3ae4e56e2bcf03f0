//! The Dynamic Memory program (`components/pds/dynmem-service`'s `DynMem::serve` and its
//! `DriverPages`, step by step): open the balloon channel, negotiate (`dynmem::Startup`), then
//! serve the host's balloon requests with pages the driver lends (`dynmem::Balloon` over
//! [`DriverPages`](dynmem::driver_pages::DriverPages)), with a status report after the negotiation and after every balloon change.

use std::cell::{Ref, RefCell};
use std::rc::Rc;

use dynmem::driver_pages::DriverPages;
use dynmem::msg::{self, Capabilities, MAX_GUEST_MESSAGE, MAX_MESSAGE, MsgType, Version};
use dynmem::{Balloon, BalloonStats, MemoryFigures, Startup, StartupStep};
use log::{info, warn};
use vmbus_client::{ClientError, memory_info};
use vmbus_driver::guid::{self, Guid};

use super::link::{Link, LinkStats, Pause, State};
use super::{MAX_PACKET, keep};
use crate::program::{ClientCtx, ClientProgram, Flow};

/// What the client reports (dynmem-service's `CAPS`): it balloons, and takes neither hot add
/// nor hot remove.
pub const CAPS: Capabilities = Capabilities {
    balloon: true,
    hot_add: false,
    hot_add_alignment: 0,
    hot_remove: false,
    min_pages: 4096,
    max_page_number: 0,
};

/// What a [`DynMemClient`] shares with its handle.
#[derive(Debug)]
pub struct DynMemState {
    /// The balloon (what is ballooned now, the totals).
    pub balloon: Balloon,
    /// The negotiation on the channel open now (`None` while none is open).
    pub startup: Option<Startup>,
    /// The protocol version the host accepted last.
    pub version: Option<Version>,
    /// Status reports sent.
    pub status_reports: u64,
    /// Host messages refused during the negotiation (the negotiation went on).
    pub startup_refused: u64,
    /// Connection counters.
    pub link: LinkStats,
    /// The last errors and refusals, newest last.
    pub errors: Vec<String>,
}

/// A view of a [`DynMemClient`]'s state that stays with the caller.
#[derive(Debug, Clone)]
pub struct DynMemHandle(Rc<RefCell<DynMemState>>);

impl DynMemHandle {
    /// The state now.
    #[must_use]
    pub fn state(&self) -> Ref<'_, DynMemState> {
        self.0.borrow()
    }

    /// The balloon's counters.
    #[must_use]
    pub fn stats(&self) -> BalloonStats {
        self.0.borrow().balloon.stats()
    }

    /// Whether the negotiation finished on the channel open now.
    #[must_use]
    pub fn ready(&self) -> bool {
        matches!(self.0.borrow().startup, Some(Startup::Ready { .. }))
    }

    /// Connection counters.
    #[must_use]
    pub fn link(&self) -> LinkStats {
        self.0.borrow().link
    }
}

/// The Dynamic Memory program.
pub struct DynMemClient {
    link: Link,
    shared: DynMemHandle,
    inbound: Vec<u8>,
    out: Box<[u8; MAX_MESSAGE]>,
    trans_id: u32,
    pause: Pause,
}

impl core::fmt::Debug for DynMemClient {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DynMemClient")
            .field("link", &self.shared.link())
            .finish_non_exhaustive()
    }
}

impl Default for DynMemClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Why serving stopped in this step.
enum End {
    Gone,
    Broken(String),
}

impl DynMemClient {
    /// The program on offers of the Dynamic Memory class.
    #[must_use]
    pub fn new() -> Self {
        Self::with_class(guid::DYNAMIC_MEMORY)
    }

    /// The program on offers of `class`.
    #[must_use]
    pub fn with_class(class: Guid) -> Self {
        Self {
            link: Link::new("dynmem", class),
            shared: DynMemHandle(Rc::new(RefCell::new(DynMemState {
                balloon: Balloon::new(),
                startup: None,
                version: None,
                status_reports: 0,
                startup_refused: 0,
                link: LinkStats::default(),
                errors: Vec::new(),
            }))),
            inbound: vec![0; MAX_PACKET],
            out: Box::new([0; MAX_MESSAGE]),
            trans_id: 0,
            pause: Pause::default(),
        }
    }

    /// The handle to read the state with.
    #[must_use]
    pub fn handle(&self) -> DynMemHandle {
        self.shared.clone()
    }

    /// The switch that closes and reopens the channel.
    #[must_use]
    pub fn pause_switch(&self) -> Pause {
        self.pause.clone()
    }

    fn next_trans_id(&mut self) -> u32 {
        self.trans_id = self.trans_id.wrapping_add(1);
        self.trans_id
    }

    fn send(&mut self, ctx: &mut ClientCtx<'_>, bytes: &[u8]) -> Result<(), End> {
        let State::Open(ch) = &mut self.link.state else {
            return Err(End::Gone);
        };
        match ch.send(ctx, bytes) {
            Ok(()) => Ok(()),
            Err(ClientError::ChannelGone) => Err(End::Gone),
            Err(e) => Err(End::Broken(format!("send: {e}"))),
        }
    }

    /// The channel just opened: propose the first version.
    fn begin(&mut self, ctx: &mut ClientCtx<'_>) -> Result<(), End> {
        info!("dynmem: negotiating");
        let mut small = [0u8; MAX_GUEST_MESSAGE];
        let tid = self.next_trans_id();
        let (startup, n) = Startup::begin(&mut small, tid);
        self.shared.0.borrow_mut().startup = Some(startup);
        self.send(ctx, &small[..n])
    }

    /// Takes every message waiting.
    fn pump(&mut self, ctx: &mut ClientCtx<'_>) -> Result<(), End> {
        loop {
            let State::Open(ch) = &mut self.link.state else {
                return Ok(());
            };
            let len = match ch.recv(ctx, &mut self.inbound) {
                Ok(Some(r)) => r.len,
                Ok(None) => return Ok(()),
                Err(ClientError::ChannelGone) => return Err(End::Gone),
                Err(e) => return Err(End::Broken(format!("receive: {e}"))),
            };
            let ready = matches!(self.shared.0.borrow().startup, Some(Startup::Ready { .. }));
            if ready {
                self.on_request(ctx, len)?;
            } else {
                self.on_startup(ctx, len)?;
            }
        }
    }

    /// A host message during the negotiation.
    fn on_startup(&mut self, ctx: &mut ClientCtx<'_>, len: usize) -> Result<(), End> {
        let mut small = [0u8; MAX_GUEST_MESSAGE];
        let tid = self.next_trans_id();
        let packet = &self.inbound[..len];
        let Some(before) = self.shared.0.borrow().startup else {
            return Ok(());
        };
        let mut startup = before;
        let step = startup.on_message(packet, &mut small, tid, &CAPS);
        match step {
            Ok(StartupStep::Send(n)) => {
                if let Startup::Reporting { version } = startup {
                    info!("dynmem: the host accepted Dynamic Memory protocol {version}");
                    self.shared.0.borrow_mut().version = Some(version);
                }
                self.shared.0.borrow_mut().startup = Some(startup);
                self.send(ctx, &small[..n])
            }
            Ok(StartupStep::Wait) => {
                self.shared.0.borrow_mut().startup = Some(startup);
                Ok(())
            }
            Ok(StartupStep::Ready) => {
                if let Startup::Ready { version, host } = startup {
                    info!(
                        "dynmem: capabilities accepted (protocol {version}, hot remove {}, pressure reports {}); ready",
                        host.hot_remove, !host.suppress_pressure_reports
                    );
                }
                self.shared.0.borrow_mut().startup = Some(startup);
                self.report_status(ctx)
            }
            Err(e) => {
                // The PD ends the channel here; the simulation refuses the message and goes on
                // with the negotiation where it was. A balloon request before the capabilities
                // is answered with no pages, which ends the host's transaction.
                let mut s = self.shared.0.borrow_mut();
                s.startup_refused += 1;
                keep(&mut s.errors, format!("negotiation: {e}"));
                drop(s);
                warn!("dynmem: negotiation: {e} (message refused)");
                if msg::split(packet).is_ok_and(|(h, _)| h.ty == MsgType::BALLOON_REQUEST) {
                    let tid = self.next_trans_id();
                    let n = msg::balloon_response_none(&mut small, tid);
                    return self.send(ctx, &small[..n]);
                }
                Ok(())
            }
        }
    }

    /// One host message after the negotiation: the balloon answers it, in as many messages as
    /// it takes.
    fn on_request(&mut self, ctx: &mut ClientCtx<'_>, len: usize) -> Result<(), End> {
        let before = self.shared.stats();
        let tid = self.next_trans_id();
        let mut reply = {
            let mut s = self.shared.0.borrow_mut();
            s.balloon.on_message(
                &self.inbound[..len],
                &mut DriverPages::new(ctx),
                &mut self.out,
                tid,
            )
        };
        loop {
            if let Some(e) = &reply.error {
                warn!("dynmem: {e}");
                keep(&mut self.shared.0.borrow_mut().errors, e.to_string());
            }
            if reply.len > 0 {
                let out = self.out[..reply.len].to_vec();
                self.send(ctx, &out)?;
            }
            if !reply.more {
                break;
            }
            let tid = self.next_trans_id();
            let mut s = self.shared.0.borrow_mut();
            reply = s
                .balloon
                .resume(&mut DriverPages::new(ctx), &mut self.out, tid);
        }
        let after = self.shared.stats();
        if after.inflated_total != before.inflated_total
            || after.deflated_total != before.deflated_total
        {
            info!(
                "dynmem: balloon now {} pages (inflated {} in all, deflated {}; refused {}, source faults {})",
                after.ballooned_now,
                after.inflated_total,
                after.deflated_total,
                after.refused,
                after.source_faults
            );
            self.report_status(ctx)?;
        }
        Ok(())
    }

    /// Sends a status report with the driver's pool figures.
    fn report_status(&mut self, ctx: &mut ClientCtx<'_>) -> Result<(), End> {
        let figures = match memory_info(ctx) {
            Ok(m) => MemoryFigures {
                total_pages: u64::from(m.pool_pages),
                free_pages: u64::from(m.free_pages),
            },
            Err(e) => {
                warn!("dynmem: memory figures: {e}");
                return Ok(());
            }
        };
        let tid = self.next_trans_id();
        let n = {
            let s = self.shared.0.borrow();
            s.balloon.status_report(&figures, &mut self.out[..], tid)
        };
        match n {
            Ok(n) => {
                let out = self.out[..n].to_vec();
                self.send(ctx, &out)?;
                self.shared.0.borrow_mut().status_reports += 1;
                Ok(())
            }
            Err(e) => {
                warn!("dynmem: status report: {e}");
                Ok(())
            }
        }
    }

    fn serve(&mut self, ctx: &mut ClientCtx<'_>) -> Result<(), End> {
        let opened = {
            let mut s = self.shared.0.borrow_mut();
            self.link.advance(ctx, &mut s.link)
        };
        if opened {
            self.begin(ctx)?;
        }
        self.pump(ctx)
    }
}

impl ClientProgram for DynMemClient {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        let _ = ctx.poll_notification();
        if self.pause.paused() {
            if !matches!(self.link.state, State::Waiting { .. }) {
                let mut s = self.shared.0.borrow_mut();
                s.startup = None;
                self.link.close(ctx, false, &mut s.link);
            }
            return Flow::Continue;
        }
        match self.serve(ctx) {
            Ok(()) => {}
            Err(End::Gone) => {
                let mut s = self.shared.0.borrow_mut();
                info!(
                    "dynmem: the channel is gone; {} pages stay with the host; waiting for the device again",
                    s.balloon.stats().ballooned_now
                );
                s.startup = None;
                self.link.gone(ctx, &mut s.link);
            }
            Err(End::Broken(e)) => {
                // The PD stops serving; the simulation closes the channel and opens the device
                // again after a pause.
                warn!("dynmem: {e}; closing the channel");
                let mut s = self.shared.0.borrow_mut();
                keep(&mut s.errors, e);
                s.link.errors += 1;
                s.startup = None;
                self.link.close(ctx, true, &mut s.link);
            }
        }
        Flow::Continue
    }
}
