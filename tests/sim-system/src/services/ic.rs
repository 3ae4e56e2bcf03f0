//! The integration-service programs (heartbeat, shutdown, time sync, KVP): the common part of
//! `components/pds/ic-service` (answer every request through `ic::service::Endpoint`, echoing
//! the host's transaction id) and what each PD does with the events, as [`IcService`] impls.

use std::cell::{Ref, RefCell};
use std::rc::Rc;

use ic::kvp::{Event as KvpEvent, GuestInfo, Kvp, Op, Pool};
use ic::negotiate::Outcome;
use ic::service::{Endpoint, Negotiation, Refused, Service, Step};
use ic::services::{Heartbeat, Shutdown, TimeSync};
use ic::shutdown::Request as HostRequest;
use ic::timesync::Sample;
use log::{info, warn};
use vmbus_client::{ClientError, call};
use vmbus_driver::control::{Request, Response};
use vmbus_driver::guid::{self, Guid};

use super::link::{Link, LinkStats, Pause, State};
use super::{MAX_PACKET, keep};
use crate::program::{ClientCtx, ClientProgram, Flow};

/// Pairs the KVP store keeps (kvp-pd's `STORE`).
pub const KVP_STORE: usize = 16;

/// What the guest tells the host about itself (what kvp-pd answers).
pub const GUEST_INFO: GuestInfo<'static> = ic::kvp::SEL4_GUEST;

/// What a PD program does around its service: the state it keeps beyond the endpoint, the
/// counter reading before each packet, and what it does with each answered request.
pub trait IcService: Service + Sized + 'static {
    /// The program's own state (what a report shows beyond the endpoint).
    type Extra: Default + core::fmt::Debug;
    /// The device class served.
    const CLASS: Guid;

    /// Before each packet is answered (time sync reads its counter here).
    fn before_packet(_ep: &mut Endpoint<Self>, _extra: &mut Self::Extra, _ctx: &ClientCtx<'_>) {}

    /// An answered request, after its answer went out; `Some(restart)` asks the driver to stop
    /// the system (shutdown only).
    fn on_event(
        ep: &mut Endpoint<Self>,
        extra: &mut Self::Extra,
        event: Self::Event,
        ctx: &ClientCtx<'_>,
    ) -> Option<bool>;

    /// The stop asked of the driver and its answer (`clock`: the time sync clock then).
    fn record_stop(
        _extra: &mut Self::Extra,
        _restart: bool,
        _answer: Result<Response, ClientError>,
        _clock: Option<u64>,
    ) {
    }
}

impl IcService for Heartbeat {
    type Extra = ();
    const CLASS: Guid = guid::HEARTBEAT;

    fn on_event(ep: &mut Endpoint<Self>, (): &mut (), seq: u64, _: &ClientCtx<'_>) -> Option<bool> {
        // heartbeat-pd logs one answer in eight.
        if ep.answered() % 8 == 1 {
            info!(
                "heartbeat: answered sequence {seq} ({} answers)",
                ep.answered()
            );
        }
        None
    }
}

/// Time sync: the samples taken and the counter reading of the last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeSyncExtra {
    /// Samples answered.
    pub samples: u64,
    /// The reference counter when the last sample arrived.
    pub last_counter: Option<u64>,
}

impl IcService for TimeSync {
    type Extra = TimeSyncExtra;
    const CLASS: Guid = guid::TIME_SYNC;

    fn before_packet(ep: &mut Endpoint<Self>, _: &mut TimeSyncExtra, ctx: &ClientCtx<'_>) {
        // The PD reads its calibrated cycle counter; the simulation's guest reads the partition
        // reference counter itself, so the clock needs no calibration.
        ep.service.now = Some(ctx.reference_time());
    }

    fn on_event(
        _: &mut Endpoint<Self>,
        extra: &mut TimeSyncExtra,
        (sample, taken): (Sample, bool),
        ctx: &ClientCtx<'_>,
    ) -> Option<bool> {
        extra.samples += 1;
        extra.last_counter = Some(ctx.reference_time());
        if !taken {
            warn!("timesync: sample {sample:?} not taken by the clock");
        }
        None
    }
}

/// Shutdown: the host's requests and the stop asked of the driver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownExtra {
    /// Every request the host made, in order.
    pub requests: Vec<HostRequest>,
    /// The stop asked (`Some(restart)`), once asked.
    pub stop_asked: Option<bool>,
    /// The driver's answer to the stop (`Stopping`, or its refusal).
    pub stop_answer: Option<Result<Response, ClientError>>,
    /// The time sync client's clock (Unix ns) when the stop was asked, if the program reads it.
    pub stop_clock: Option<u64>,
}

impl IcService for Shutdown {
    type Extra = ShutdownExtra;
    const CLASS: Guid = guid::SHUTDOWN;

    fn on_event(
        _: &mut Endpoint<Self>,
        extra: &mut ShutdownExtra,
        r: HostRequest,
        _: &ClientCtx<'_>,
    ) -> Option<bool> {
        extra.requests.push(r);
        match r {
            HostRequest::Shutdown { .. } => Some(false),
            HostRequest::Restart { .. } => Some(true),
            HostRequest::Hibernate => {
                info!("shutdown: hibernation refused (not supported)");
                None
            }
            HostRequest::Unknown(flags) => {
                info!("shutdown: request with unknown flags {flags:#x} refused");
                None
            }
        }
    }

    fn record_stop(
        extra: &mut ShutdownExtra,
        restart: bool,
        answer: Result<Response, ClientError>,
        clock: Option<u64>,
    ) {
        extra.stop_asked = Some(restart);
        extra.stop_answer = Some(answer);
        extra.stop_clock = clock;
    }
}

/// KVP: what was done and refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvpExtra {
    /// Requests done (status 0), by operation number (GET, SET, DELETE, ENUMERATE, ...).
    pub done: [u64; 6],
    /// Requests answered with a failure status, by operation number.
    pub refused: [u64; 6],
}

fn op_name(op: Op) -> &'static str {
    match op.0 {
        0 => "GET",
        1 => "SET",
        2 => "DELETE",
        3 => "ENUMERATE",
        4 => "GET_IP_INFO",
        5 => "SET_IP_INFO",
        _ => "unknown operation",
    }
}

impl IcService for Kvp<'static, KVP_STORE> {
    type Extra = KvpExtra;
    const CLASS: Guid = guid::KVP;

    fn on_event(
        ep: &mut Endpoint<Self>,
        extra: &mut KvpExtra,
        event: KvpEvent,
        _: &ClientCtx<'_>,
    ) -> Option<bool> {
        match event {
            KvpEvent::Done(op, pool) => {
                if let Some(n) = extra.done.get_mut(usize::from(op.0)) {
                    *n += 1;
                }
                if op == Op::SET || op == Op::DELETE {
                    info!(
                        "kvp: {} in pool {} done; the store holds {} pairs",
                        op_name(op),
                        pool.0,
                        ep.service.store.len()
                    );
                }
            }
            KvpEvent::Refused(op, e) => {
                if let Some(n) = extra.refused.get_mut(usize::from(op.0)) {
                    *n += 1;
                }
                info!("kvp: {} refused: {e}", op_name(op));
            }
        }
        None
    }
}

/// One pair of the KVP store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvpPair {
    /// Pool number.
    pub pool: u8,
    /// Key.
    pub key: String,
    /// Value (a number as decimal digits).
    pub value: String,
}

fn utf16(b: &[u8]) -> String {
    let units = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0);
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// What an [`IcClient`] shares with its handle.
#[derive(Debug)]
pub struct IcState<S: IcService> {
    /// The protocol state (negotiation, counters, the service's own state).
    pub endpoint: Endpoint<S>,
    /// The program's own state.
    pub extra: S::Extra,
    /// Connection counters.
    pub link: LinkStats,
    /// Negotiations answered, in order.
    pub negotiations: Vec<Outcome>,
    /// The last refusals of packets (never answered), newest last.
    pub refusals: Vec<String>,
    /// The last channel errors (receive, send), newest last.
    pub errors: Vec<String>,
}

/// A view of an [`IcClient`]'s state that stays with the caller.
#[derive(Debug)]
pub struct IcHandle<S: IcService>(Rc<RefCell<IcState<S>>>);

impl<S: IcService> Clone for IcHandle<S> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S: IcService> IcHandle<S> {
    /// The state now.
    #[must_use]
    pub fn state(&self) -> Ref<'_, IcState<S>> {
        self.0.borrow()
    }

    /// Where the negotiation stands.
    #[must_use]
    pub fn negotiation(&self) -> Negotiation {
        self.0.borrow().endpoint.negotiation()
    }

    /// Requests answered (negotiations included).
    #[must_use]
    pub fn answered(&self) -> u64 {
        self.0.borrow().endpoint.answered()
    }

    /// Packets refused (never answered).
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.0.borrow().endpoint.refused()
    }

    /// Connection counters.
    #[must_use]
    pub fn link(&self) -> LinkStats {
        self.0.borrow().link
    }
}

impl IcHandle<Heartbeat> {
    /// The sequence number of the last answer (the host's plus one).
    #[must_use]
    pub fn last_sequence(&self) -> Option<u64> {
        self.0.borrow().endpoint.service.last
    }
}

impl IcHandle<TimeSync> {
    /// The last sample and whether the clock took it.
    #[must_use]
    pub fn last_sample(&self) -> Option<(Sample, bool)> {
        self.0.borrow().endpoint.service.last
    }

    /// Samples answered.
    #[must_use]
    pub fn samples(&self) -> u64 {
        self.0.borrow().extra.samples
    }

    /// The clock (Unix ns) when the reference counter reads `counter`; `None` before a sample.
    #[must_use]
    pub fn clock_at(&self, counter: u64) -> Option<u64> {
        self.0.borrow().endpoint.service.clock.now(counter)
    }
}

impl IcHandle<Shutdown> {
    /// The host's requests so far.
    #[must_use]
    pub fn requests(&self) -> Vec<HostRequest> {
        self.0.borrow().extra.requests.clone()
    }

    /// The stop asked of the driver (`Some(restart)`).
    #[must_use]
    pub fn stop_asked(&self) -> Option<bool> {
        self.0.borrow().extra.stop_asked
    }

    /// The driver's answer to the stop.
    #[must_use]
    pub fn stop_answer(&self) -> Option<Result<Response, ClientError>> {
        self.0.borrow().extra.stop_answer.clone()
    }
}

impl IcHandle<Kvp<'static, KVP_STORE>> {
    /// The store's pairs, pool by pool, in store order.
    #[must_use]
    pub fn pairs(&self) -> Vec<KvpPair> {
        let s = self.0.borrow();
        let store = &s.endpoint.service.store;
        let mut out = Vec::new();
        for p in 0..Pool::COUNT {
            let mut i = 0;
            while let Some((key, value)) = store.nth(Pool(p), i) {
                out.push(KvpPair {
                    pool: p,
                    key: utf16(key),
                    value: value
                        .number()
                        .map_or_else(|| utf16(value.bytes), |n| n.to_string()),
                });
                i += 1;
            }
        }
        out
    }

    /// Requests done and refused by operation number.
    #[must_use]
    pub fn ops(&self) -> KvpExtra {
        self.0.borrow().extra.clone()
    }
}

/// One integration service's program (see the module documentation).
pub struct IcClient<S: IcService> {
    link: Link,
    shared: IcHandle<S>,
    buf: Vec<u8>,
    pause: Pause,
    clock: Option<IcHandle<TimeSync>>,
    /// The stop to ask at the next step (the answer to the host is out).
    pending_stop: Option<bool>,
    /// A stop was asked: the program answers nothing more (as shutdown-pd).
    stopping: bool,
}

impl<S: IcService> core::fmt::Debug for IcClient<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IcClient")
            .field("service", &S::NAME)
            .field("link", &self.shared.link())
            .finish_non_exhaustive()
    }
}

impl<S: IcService> IcClient<S> {
    /// The program for `service` (its initial state) on offers of `S::CLASS`.
    #[must_use]
    pub fn new(service: S) -> Self {
        Self::with_class(service, S::CLASS)
    }

    /// The program on offers of `class` instead.
    #[must_use]
    pub fn with_class(service: S, class: Guid) -> Self {
        let shared = IcHandle(Rc::new(RefCell::new(IcState {
            endpoint: Endpoint::new(service),
            extra: S::Extra::default(),
            link: LinkStats::default(),
            negotiations: Vec::new(),
            refusals: Vec::new(),
            errors: Vec::new(),
        })));
        Self {
            link: Link::new(S::NAME, class),
            shared,
            buf: vec![0; MAX_PACKET],
            pause: Pause::default(),
            clock: None,
            pending_stop: None,
            stopping: false,
        }
    }

    /// The handle to read the state with.
    #[must_use]
    pub fn handle(&self) -> IcHandle<S> {
        self.shared.clone()
    }

    /// The switch that closes and reopens the channel.
    #[must_use]
    pub fn pause_switch(&self) -> Pause {
        self.pause.clone()
    }

    /// The class served.
    #[must_use]
    pub fn class(&self) -> Guid {
        self.link.class()
    }

    /// Answers every packet waiting; the stop to ask, if the host asked for one.
    fn pump(&mut self, ctx: &mut ClientCtx<'_>) -> Option<bool> {
        let mut stop = None;
        loop {
            let State::Open(ch) = &mut self.link.state else {
                return stop;
            };
            let received = match ch.recv(ctx, &mut self.buf) {
                Ok(Some(r)) => r,
                Ok(None) => return stop,
                Err(ClientError::ChannelGone) => {
                    let mut s = self.shared.0.borrow_mut();
                    self.link.gone(ctx, &mut s.link);
                    return stop;
                }
                Err(e) => {
                    // A broken ring: the PD keeps the channel and fails each receive; the
                    // simulation gives it back and opens the device again.
                    warn!("{}: receive: {e}; closing the channel", S::NAME);
                    let mut s = self.shared.0.borrow_mut();
                    keep(&mut s.errors, format!("receive: {e}"));
                    s.link.errors += 1;
                    self.link.close(ctx, true, &mut s.link);
                    return stop;
                }
            };
            let mut s = self.shared.0.borrow_mut();
            let s = &mut *s;
            S::before_packet(&mut s.endpoint, &mut s.extra, ctx);
            let (len, event) = match s.endpoint.on_packet(&mut self.buf[..received.len]) {
                Ok(Step::Negotiated { len, outcome }) => {
                    match outcome {
                        Outcome::Agreed { framework, service } => info!(
                            "{}: negotiated framework {}.{}, service {}.{}",
                            S::NAME,
                            framework.major,
                            framework.minor,
                            service.major,
                            service.minor
                        ),
                        Outcome::NoCommonVersion => info!(
                            "{}: the host offers no version this client speaks (answered 0/0)",
                            S::NAME
                        ),
                    }
                    s.negotiations.push(outcome);
                    (len, None)
                }
                Ok(Step::Answered { len, event }) => (len, Some(event)),
                Err(e) => {
                    info!("{}: request refused: {e}", S::NAME);
                    keep(&mut s.refusals, refusal_text(e));
                    continue;
                }
            };
            match ch.send_packet(ctx, received.transaction_id, false, &self.buf[..len]) {
                Ok(()) => {}
                Err(ClientError::ChannelGone) => {
                    self.link.gone(ctx, &mut s.link);
                    return stop;
                }
                Err(e) => {
                    warn!("{}: answer: {e}; closing the channel", S::NAME);
                    keep(&mut s.errors, format!("answer: {e}"));
                    s.link.errors += 1;
                    self.link.close(ctx, true, &mut s.link);
                    return stop;
                }
            }
            if let Some(event) = event
                && let Some(restart) = S::on_event(&mut s.endpoint, &mut s.extra, event, ctx)
            {
                stop = Some(restart);
            }
        }
    }

    /// The answer is out: have the driver stop the system (shutdown-pd's `stop`).
    fn stop(&mut self, ctx: &mut ClientCtx<'_>, restart: bool) {
        let what = if restart { "restart" } else { "power off" };
        if self.stopping {
            info!("{}: a stop is already under way", S::NAME);
            return;
        }
        self.stopping = true;
        let clock = self
            .clock
            .as_ref()
            .and_then(|c| c.clock_at(ctx.reference_time()));
        match clock {
            Some(ns) => info!(
                "{}: the host asks for {what} at {} s after 1970",
                S::NAME,
                ns / 1_000_000_000
            ),
            None => info!("{}: the host asks for {what}", S::NAME),
        }
        let answer = call(ctx, &Request::Stop { restart });
        match &answer {
            Ok(Response::Stopping) => info!(
                "{}: the driver is closing every channel and unloading the bus",
                S::NAME
            ),
            Ok(r) => warn!("{}: the driver answered the stop with {r:?}", S::NAME),
            Err(e) => warn!("{}: stop request failed: {e}", S::NAME),
        }
        S::record_stop(
            &mut self.shared.0.borrow_mut().extra,
            restart,
            answer,
            clock,
        );
    }
}

impl IcClient<Shutdown> {
    /// Reads the time sync program's clock when the stop is asked (shutdown-pd's channel to
    /// the `timesync` PD).
    #[must_use]
    pub fn with_clock(mut self, clock: IcHandle<TimeSync>) -> Self {
        self.clock = Some(clock);
        self
    }
}

fn refusal_text(r: Refused) -> String {
    r.to_string()
}

impl<S: IcService> ClientProgram for IcClient<S> {
    fn step(&mut self, ctx: &mut ClientCtx<'_>) -> Flow {
        // A notification says "look at the ring and the status records"; the program looks
        // every step anyway.
        let _ = ctx.poll_notification();
        // shutdown-pd asks right after sending its answer; on seL4 the host PD (at a higher
        // priority) has taken the answer by then, as the signal reaches it at once. The
        // simulated host reads the ring when it next runs, which is before this step.
        if let Some(restart) = self.pending_stop.take() {
            self.stop(ctx, restart);
        }
        if self.stopping {
            return Flow::Continue;
        }
        if self.pause.paused() {
            if !matches!(self.link.state, State::Waiting { .. }) {
                let mut s = self.shared.0.borrow_mut();
                self.link.close(ctx, false, &mut s.link);
            }
            return Flow::Continue;
        }
        {
            let mut s = self.shared.0.borrow_mut();
            self.link.advance(ctx, &mut s.link);
        }
        self.pending_stop = self.pump(ctx);
        Flow::Continue
    }
}
