//! One integration-service channel's state and its request / answer cycle (the framework of
//! [`super::ic`] applied to heartbeat, shutdown, time sync and KVP).

use vmbus_driver::ids::RelId;
use vmbus_driver::ring::RingMem;

use crate::devices::ic::{self, IcFault, IcPhase};
use crate::devices::kvp::{self, KvpStep, KvpStore};
use crate::devices::service::{Ctx, Tx};
use crate::devices::timesync::{SimClock, TimeSample};
use crate::devices::trace::{IcVer, Service, TraceEvent, VerList};
use crate::devices::{heartbeat, shutdown, timesync};
use crate::log::{Direction, GuestError};

/// Counters of one integration service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IcStats {
    /// Requests sent (negotiation included).
    pub requests: u64,
    /// Answers accepted.
    pub answers: u64,
    /// Of those, answers with a non-zero status.
    pub failed_answers: u64,
    /// Answers refused (each also a guest error).
    pub refused: u64,
    /// Requests still unanswered when the next was due.
    pub unanswered: u64,
    /// The last accepted answer's status.
    pub last_status: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    tid: u64,
    ty: u16,
    seq: u64,
    kvp: KvpStep,
}

/// One integration service as the host runs it.
#[derive(Debug, Clone, Copy)]
pub struct IcChannel {
    pub(crate) service: Service,
    pub(crate) relid: Option<RelId>,
    pub(crate) phase: IcPhase,
    offered: (VerList, VerList),
    agreed: Option<(IcVer, IcVer)>,
    pending: Option<Pending>,
    next_tid: u64,
    ic_tid: u8,
    pub(crate) due: bool,
    stats: IcStats,
    seq: u64,
    last_answered: Option<u64>,
    wrong_seq: u64,
    pub(crate) shutdown_flags: Option<u32>,
    shutdown_status: Option<u32>,
    samples: u64,
    last_sample: Option<TimeSample>,
}

impl IcChannel {
    pub(crate) const fn new(service: Service) -> Self {
        Self {
            service,
            relid: None,
            phase: IcPhase::Closed,
            offered: (VerList::EMPTY, VerList::EMPTY),
            agreed: None,
            pending: None,
            next_tid: 1,
            ic_tid: 0,
            due: false,
            stats: IcStats {
                requests: 0,
                answers: 0,
                failed_answers: 0,
                refused: 0,
                unanswered: 0,
                last_status: None,
            },
            seq: 0,
            last_answered: None,
            wrong_seq: 0,
            shutdown_flags: None,
            shutdown_status: None,
            samples: 0,
            last_sample: None,
        }
    }

    /// The channel it runs on (the last one opened).
    pub fn relid(&self) -> Option<RelId> {
        self.relid
    }
    /// Where it stands.
    pub fn phase(&self) -> IcPhase {
        self.phase
    }
    /// The framework and service versions agreed.
    pub fn agreed(&self) -> Option<(IcVer, IcVer)> {
        self.agreed
    }
    /// Counters.
    pub fn stats(&self) -> IcStats {
        self.stats
    }
    /// Heartbeat: the last sequence number sent.
    pub fn heartbeat_sequence(&self) -> u64 {
        self.seq
    }
    /// Heartbeat: the last correct answer (a request's sequence number plus one).
    pub fn heartbeat_last_answered(&self) -> Option<u64> {
        self.last_answered
    }
    /// Heartbeat: answers that were not the sequence number plus one.
    pub fn heartbeat_wrong(&self) -> u64 {
        self.wrong_seq
    }
    /// Shutdown: the status of the last answer (0 accepted).
    pub fn shutdown_status(&self) -> Option<u32> {
        self.shutdown_status
    }
    /// Time sync: samples sent.
    pub fn timesync_samples(&self) -> u64 {
        self.samples
    }
    /// Time sync: the last sample sent.
    pub fn timesync_last_sample(&self) -> Option<TimeSample> {
        self.last_sample
    }

    /// A fresh open of `relid`: state reset (counters kept), negotiation sent.
    pub(crate) fn open<M: RingMem>(
        &mut self,
        relid: RelId,
        out: &mut [u8],
        tx: &mut Tx<'_, M>,
        ctx: &mut Ctx<'_>,
    ) {
        let stats = self.stats;
        *self = Self::new(self.service);
        self.stats = stats;
        self.relid = Some(relid);
        self.phase = IcPhase::Negotiating;
        let (n, fw, sv) = ic::negotiate_body(out, self.service, &ctx.hostile);
        self.offered = (fw, sv);
        let len = ic::frame(
            out,
            ic::TYPE_NEGOTIATE,
            IcVer::new(1, 0),
            IcVer::new(1, 0),
            n,
            0,
        );
        let ev = TraceEvent::NegotiateOffer {
            frameworks: fw,
            services: sv,
        };
        self.send(out, len, 0, KvpStep::Done, ev, tx, ctx);
    }

    #[allow(clippy::too_many_arguments)]
    fn send<M: RingMem>(
        &mut self,
        out: &mut [u8],
        len: usize,
        seq: u64,
        kvp: KvpStep,
        ev: TraceEvent,
        tx: &mut Tx<'_, M>,
        ctx: &mut Ctx<'_>,
    ) {
        out[ic::PIPE_HEADER + 16] = self.ic_tid;
        self.ic_tid = self.ic_tid.wrapping_add(1);
        let (len, ty, bent) = ic::bend(out, len, self.service, &ctx.hostile);
        let tid = self.next_tid;
        self.next_tid += 1;
        ctx.trace(Direction::Sent, self.service, ev);
        if let Some(b) = bent {
            ctx.trace(Direction::Sent, self.service, TraceEvent::Bent(b));
        }
        if tx.send(tid, &out[..len]) {
            self.stats.requests += 1;
            self.pending = Some(Pending { tid, ty, seq, kvp });
        }
    }

    /// Sends the request that is due, if any.
    pub(crate) fn poll<M: RingMem>(
        &mut self,
        out: &mut [u8],
        clock: SimClock,
        kvp: &KvpStore,
        tx: &mut Tx<'_, M>,
        ctx: &mut Ctx<'_>,
    ) {
        if self.phase != IcPhase::Ready || !self.due {
            return;
        }
        if self.pending.take().is_some() {
            self.stats.unanswered += 1;
            ctx.trace(Direction::Sent, self.service, TraceEvent::Unanswered);
        }
        self.due = false;
        let Some((fw, sv)) = self.agreed else { return };
        let ty = ic::message_type(self.service);
        let (n, seq, step, ev) = match self.service {
            Service::Heartbeat => {
                self.seq = self.seq.wrapping_add(1);
                let seq = self.seq;
                let n = heartbeat::body(out, seq);
                (n, seq, KvpStep::Done, TraceEvent::Heartbeat { seq })
            }
            Service::Shutdown => {
                let Some(flags) = self.shutdown_flags.take() else {
                    return;
                };
                let n = shutdown::body(out, flags);
                (n, 0, KvpStep::Done, TraceEvent::Shutdown { flags })
            }
            Service::TimeSync => {
                let (n, s) = timesync::body(out, sv, clock, self.samples == 0);
                self.samples += 1;
                self.last_sample = Some(s);
                (n, 0, KvpStep::Done, timesync::event(&s))
            }
            Service::Kvp => {
                let Some((n, ev)) = kvp::body(out, kvp.step) else {
                    return;
                };
                (n, 0, kvp.step, ev)
            }
            _ => return,
        };
        let len = ic::frame(out, ty, fw, sv, n, 0);
        self.send(out, len, seq, step, ev, tx, ctx);
    }

    fn refuse(&mut self, ctx: &mut Ctx<'_>, f: IcFault) {
        self.stats.refused += 1;
        let e = GuestError::Ic(ctx.relid, f);
        ctx.fault(self.service, e);
    }

    /// One in-band packet from the guest.
    pub(crate) fn on_packet(&mut self, b: &[u8], tid: u64, kvp: &mut KvpStore, ctx: &mut Ctx<'_>) {
        let a = match ic::parse_answer(b) {
            Ok(a) => a,
            Err(f) => return self.refuse(ctx, f),
        };
        let Some(p) = self.pending else {
            return self.refuse(ctx, IcFault::Unsolicited);
        };
        if tid != p.tid {
            let f = IcFault::WrongTransaction {
                expected: p.tid,
                got: tid,
            };
            return self.refuse(ctx, f);
        }
        if a.ty != p.ty {
            let f = IcFault::WrongType {
                expected: p.ty,
                got: a.ty,
            };
            return self.refuse(ctx, f);
        }
        self.pending = None;
        self.stats.answers += 1;
        self.stats.last_status = Some(a.status);
        if a.status != 0 {
            self.stats.failed_answers += 1;
        }
        let body = &b[ic::BODY..ic::BODY + usize::from(a.body)];
        let svc = self.service;
        let answer = TraceEvent::Answer { status: a.status };
        match a.ty {
            ic::TYPE_NEGOTIATE => {
                match ic::negotiate_answer(body, (&self.offered.0, &self.offered.1)) {
                    Ok(ev) => {
                        ctx.trace(Direction::Received, svc, ev);
                        if let TraceEvent::NegotiateAgreed { framework, service } = ev {
                            self.agreed = Some((framework, service));
                            self.phase = IcPhase::Ready;
                            // KVP starts its script; shutdown sends a request made before the
                            // negotiation finished.
                            self.due = svc == Service::Kvp || self.shutdown_flags.is_some();
                        } else {
                            self.phase = IcPhase::NoCommonVersion;
                        }
                    }
                    Err(f) => {
                        self.phase = IcPhase::Failed;
                        self.refuse(ctx, f);
                    }
                }
            }
            ic::TYPE_HEARTBEAT if svc == Service::Heartbeat => match heartbeat::answer(body, p.seq)
            {
                Ok((ev, wrong)) => {
                    ctx.trace(Direction::Received, svc, ev);
                    match wrong {
                        Some(f) => {
                            self.wrong_seq += 1;
                            self.refuse(ctx, f);
                        }
                        None => self.last_answered = Some(p.seq.wrapping_add(1)),
                    }
                }
                Err(f) => self.refuse(ctx, f),
            },
            ic::TYPE_SHUTDOWN if svc == Service::Shutdown => {
                self.shutdown_status = Some(a.status);
                ctx.trace(Direction::Received, svc, answer);
            }
            ic::TYPE_KVP if svc == Service::Kvp => {
                ctx.trace(Direction::Received, svc, answer);
                if let Err(f) = kvp::answer(kvp, p.kvp, a.status, body) {
                    self.refuse(ctx, f);
                }
                self.due = kvp.step != KvpStep::Done;
            }
            _ => ctx.trace(Direction::Received, svc, answer),
        }
    }
}
