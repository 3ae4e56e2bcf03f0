//! The conformance adapter for the real driver core (`vmbus_driver::driver::Driver`, feature
//! `driver`): the harness plays the host and the clients from the model's steps, through small
//! seams of its own, and reduces the driver's state to the model's [`AbstractState`].
//!
//! Mapping: model relid `r` is wire relid `r + 1`; model client `c` is `ClientId(c + 1)`; one
//! model page is one channel's worth of pool pages ([`PAGES_PER_CHANNEL`]: two rings of two
//! pages). Host messages are handed to the driver typed (`Driver::on_message`), preceded by an
//! interrupt with an empty message slot so the event flags are taken first, exactly as one
//! interrupt carrying that message. Timeouts: every step advances the clock by one tick; the
//! model's "oldest teardown waits time out" becomes `on_tick` at the moment the oldest wait's
//! GPADL_TEARDOWN was posted plus the reply timeout.
//!
//! Kernel failures: the harness's kernel fails the operation the model chose. A model page is
//! the pool pages the driver took for the open that got it; when the model arms a failure on
//! it for the next step, the first grant, revoke or zero the driver makes on those pages in
//! that step, and every further operation of the same kind on them in that step, fails. The
//! kernel also checks, independently of the model, that a page whose revoke or zeroing failed
//! is never zeroed, returned or granted again, and that no page is granted while a capability
//! to it may still exist.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use vmbus_driver::control::{
    ChannelHandle, REQUEST_AREA, REQUEST_OFFSET, RESPONSE_AREA, RESPONSE_OFFSET, Request, Response,
    decode_frame, encode_frame,
};
use vmbus_driver::driver::{AbstractPhase, ClientConfig, ConnectionState, Driver, DriverConfig};
use vmbus_driver::guid::Guid;
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::hv::{HvMessageType, HvStatus, Hypervisor};
use vmbus_driver::ids::{ClientId, ConnectionId, PageId, RelId, VpIndex};
use vmbus_driver::kernel::{Kernel, KernelError};
use vmbus_driver::msg::{
    ChannelMessage, GpadlCreated, GpadlTorndown, OfferChannel, OfferFlags, OpenChannelResult,
    RescindChannelOffer, VersionResponse, VersionResponseExt, decode,
};
use vmbus_driver::version::Version;

use crate::abstraction::{AbstractChan, AbstractMsg, AbstractState, abstract_model};
use crate::model::{Action, LifetimeModel};
use crate::state::{Handle, HostMsg, NONE, Phase, State};

use super::Implementation;

/// Pool pages per model page: outbound and inbound ring of two pages each.
pub const PAGES_PER_CHANNEL: usize = 4;
/// Ring pages per direction requested by the model's clients.
const RING_PAGES: u16 = 2;
/// Reply timeout in ticks: far beyond any trace, so only the model's timeouts fire.
const TIMEOUT: u64 = 1_000_000;
/// Device class of every offer (all clients are configured for it).
const CLASS: Guid = vmbus_driver::guid::HEARTBEAT;
/// Window pages per client slot: four pages.
const SLOT_PAGES: usize = 4;
/// Error code of an injected kernel failure.
const INJECTED: u32 = 0xFA11;

/// A kernel operation the model may make fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Grant,
    Revoke,
    Zero,
}

/// The harness's hypervisor: the driver's posts are decoded into a queue the model's host takes
/// from; event flags are set by the model's host; the message slot is never used (messages go
/// through `on_message`).
#[derive(Clone, Debug)]
struct HarnessHv {
    posted: VecDeque<ChannelMessage>,
    flags: [u32; 64],
    version: Option<Version>,
    now: u64,
    /// Tick at which each relid's last GPADL_HEADER, OPENCHANNEL or GPADL_TEARDOWN was posted:
    /// when the driver's wait for the reply began.
    wait_since: BTreeMap<u32, u64>,
}

impl Hypervisor for HarnessHv {
    fn post_message(&mut self, _c: ConnectionId, _t: HvMessageType, payload: &[u8]) -> HvStatus {
        match decode(payload, self.version) {
            Ok(ChannelMessage::GpadlBody(_)) => {}
            Ok(m) => {
                // Every post that starts a wait for a host reply (re)arms the relid's timer.
                match m {
                    ChannelMessage::GpadlTeardown(t) => {
                        self.wait_since.insert(t.child_relid.0, self.now);
                    }
                    ChannelMessage::GpadlHeader(h) => {
                        self.wait_since.insert(h.child_relid.0, self.now);
                    }
                    ChannelMessage::OpenChannel(o) => {
                        self.wait_since.insert(o.child_relid.0, self.now);
                    }
                    _ => {}
                }
                self.posted.push_back(m);
            }
            Err(_) => return HvStatus::INVALID_PARAMETER,
        }
        HvStatus::SUCCESS
    }

    fn signal_event(&mut self, _c: ConnectionId, _flag: u16) -> HvStatus {
        HvStatus::SUCCESS
    }

    fn read_message_slot(&mut self, _sint: u8) -> [u8; 256] {
        [0; 256]
    }

    fn clear_message_slot(&mut self, _sint: u8, _t: HvMessageType) -> bool {
        false
    }

    fn end_of_message(&mut self) {}

    fn take_event_flags(&mut self, _sint: u8, word: usize) -> u32 {
        self.flags.get_mut(word).map_or(0, std::mem::take)
    }
}

/// The harness's kernel: a page pool, grants per page, control pages, and failure injection.
#[derive(Clone, Debug)]
struct HarnessKernel {
    pages: Vec<Vec<u8>>,
    free: Vec<PageId>,
    /// Pages a client may map (a failed revoke leaves its entry).
    granted: BTreeMap<u32, ClientId>,
    control: Vec<Vec<u8>>,
    /// Pages whose operation in the current step fails.
    armed: Vec<PageId>,
    /// The kind of the first operation on an armed page this step: the one that fails.
    armed_op: Option<Op>,
    /// Pages taken from the pool since the log was last cleared.
    taken: Vec<PageId>,
    /// Pages whose revoke or zeroing failed.
    tainted: BTreeSet<u32>,
    /// What the driver did that no correct driver does, found by the kernel itself.
    broken: Vec<String>,
    /// Pages whose driver mapping is removed (lent to the host; the model lends none, so any
    /// entry here is the driver's doing).
    own_unmapped: BTreeSet<u32>,
}

impl HarnessKernel {
    /// Whether this operation on `page` is the injected failure.
    fn inject(&mut self, page: PageId, op: Op) -> Result<(), KernelError> {
        if !self.armed.contains(&page) {
            return Ok(());
        }
        match self.armed_op {
            None => self.armed_op = Some(op),
            Some(o) if o != op => return Ok(()),
            Some(_) => {}
        }
        Err(KernelError::Refused(INJECTED))
    }

    /// Refuses an access to a page whose driver mapping is removed, recording it as broken.
    fn check_own_mapped(&mut self, page: PageId, what: &str) -> Result<(), KernelError> {
        if self.own_unmapped.contains(&page.0) {
            self.broken.push(format!(
                "{what} {page:?} through its removed driver mapping"
            ));
            return Err(KernelError::Refused(INJECTED));
        }
        Ok(())
    }

    fn check_untainted(&mut self, page: PageId, what: &str) {
        if self.tainted.contains(&page.0) {
            self.broken
                .push(format!("{what} {page:?}, whose revoke or zeroing failed"));
        }
    }

    fn control_page(&self, client: ClientId) -> Result<&Vec<u8>, KernelError> {
        let i = usize::from(client.0)
            .checked_sub(1)
            .ok_or(KernelError::NoSuchClient)?;
        self.control.get(i).ok_or(KernelError::NoSuchClient)
    }

    fn control_page_mut(&mut self, client: ClientId) -> Result<&mut Vec<u8>, KernelError> {
        let i = usize::from(client.0)
            .checked_sub(1)
            .ok_or(KernelError::NoSuchClient)?;
        self.control.get_mut(i).ok_or(KernelError::NoSuchClient)
    }
}

impl Kernel for HarnessKernel {
    fn take_page(&mut self) -> Result<PageId, KernelError> {
        let page = self.free.pop().ok_or(KernelError::PoolEmpty)?;
        self.taken.push(page);
        Ok(page)
    }

    fn return_page(&mut self, page: PageId) -> Result<(), KernelError> {
        self.check_untainted(page, "returned");
        self.check_own_mapped(page, "returned")?;
        if let Some(c) = self.granted.get(&page.0) {
            self.broken
                .push(format!("returned {page:?} while {c} may still map it"));
        }
        self.free.push(page);
        Ok(())
    }

    fn page_frame(&self, page: PageId) -> Result<u64, KernelError> {
        Ok(0x1000 + u64::from(page.0))
    }

    fn write_page(&mut self, page: PageId, offset: usize, data: &[u8]) -> Result<(), KernelError> {
        self.check_own_mapped(page, "wrote")?;
        let p = self
            .pages
            .get_mut(page.0 as usize)
            .ok_or(KernelError::NoSuchPage)?;
        p.get_mut(offset..offset + data.len())
            .ok_or(KernelError::OutOfBounds)?
            .copy_from_slice(data);
        Ok(())
    }

    fn read_page(&self, page: PageId, offset: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        let p = self
            .pages
            .get(page.0 as usize)
            .ok_or(KernelError::NoSuchPage)?;
        buf.copy_from_slice(
            p.get(offset..offset + buf.len())
                .ok_or(KernelError::OutOfBounds)?,
        );
        Ok(())
    }

    fn zero_page(&mut self, page: PageId) -> Result<(), KernelError> {
        self.check_untainted(page, "zeroed");
        self.check_own_mapped(page, "zeroed")?;
        if let Err(e) = self.inject(page, Op::Zero) {
            self.tainted.insert(page.0);
            return Err(e);
        }
        self.pages
            .get_mut(page.0 as usize)
            .ok_or(KernelError::NoSuchPage)?
            .fill(0);
        Ok(())
    }

    fn grant(
        &mut self,
        page: PageId,
        client: ClientId,
        _window_page: usize,
    ) -> Result<(), KernelError> {
        self.check_untainted(page, "granted");
        if let Some(c) = self.granted.get(&page.0) {
            self.broken.push(format!(
                "granted {page:?} to {client} while {c} may still map it"
            ));
        }
        self.inject(page, Op::Grant)?;
        self.granted.insert(page.0, client);
        Ok(())
    }

    fn revoke(&mut self, page: PageId) -> Result<(), KernelError> {
        if let Err(e) = self.inject(page, Op::Revoke) {
            // The client may keep its capability and mapping.
            self.tainted.insert(page.0);
            return Err(e);
        }
        self.granted.remove(&page.0);
        Ok(())
    }

    fn pool_pages(&self) -> usize {
        self.pages.len()
    }

    fn free_pages(&self) -> usize {
        self.free.len()
    }

    fn unmap_own(&mut self, page: PageId) -> Result<(), KernelError> {
        self.own_unmapped.insert(page.0);
        Ok(())
    }

    fn map_own(&mut self, page: PageId) -> Result<(), KernelError> {
        self.own_unmapped.remove(&page.0);
        Ok(())
    }

    fn notify(&mut self, _client: ClientId) -> Result<(), KernelError> {
        Ok(())
    }

    fn ack_irq(&mut self) -> Result<(), KernelError> {
        Ok(())
    }

    fn control_read(
        &self,
        client: ClientId,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), KernelError> {
        let p = self.control_page(client)?;
        buf.copy_from_slice(
            p.get(offset..offset + buf.len())
                .ok_or(KernelError::OutOfBounds)?,
        );
        Ok(())
    }

    fn control_write(
        &mut self,
        client: ClientId,
        offset: usize,
        data: &[u8],
    ) -> Result<(), KernelError> {
        let p = self.control_page_mut(client)?;
        p.get_mut(offset..offset + data.len())
            .ok_or(KernelError::OutOfBounds)?
            .copy_from_slice(data);
        Ok(())
    }
}

/// The real driver core, driven by the model's steps.
#[derive(Clone, Debug)]
pub struct DriverImplementation {
    model: LifetimeModel,
    channels: usize,
    clients: usize,
    driver: Box<Driver>,
    hv: HarnessHv,
    k: HarnessKernel,
    /// Host → driver messages, mirroring the model's queue.
    to_driver: VecDeque<ChannelMessage>,
    /// Ticks at which a driver entry point ran (when its timers may have been armed).
    calls: BTreeSet<u64>,
    /// Per client and relid: the handle the driver gave for an open.
    handles: Vec<Vec<Option<ChannelHandle>>>,
    /// Per model page: the pool pages the driver took for the open that got it.
    page_map: BTreeMap<u8, Vec<PageId>>,
    now: u64,
}

fn offer(relid: u32) -> OfferChannel {
    OfferChannel {
        if_type: CLASS,
        if_instance: Guid([relid as u8; 16]),
        reserved1: 0,
        reserved2: 0,
        chn_flags: OfferFlags(0),
        mmio_megabytes: 0,
        user_def: [0; 120],
        sub_channel_index: 0,
        mmio_megabytes_optional: 0,
        child_relid: RelId(relid),
        monitor_id: 0,
        monitor_allocated: false,
        is_dedicated_interrupt: true,
        connection_id: ConnectionId(0x100 + relid),
    }
}

impl DriverImplementation {
    /// A connected driver for `model`'s configuration: the handshake is played here (version
    /// accepted, no offers at connection time), so the driver starts where the model does.
    pub fn new(model: &LifetimeModel) -> Result<Self, String> {
        let cfg = &model.cfg;
        let classes = [CLASS];
        // One slot per relid, and one more per kernel failure: a slot whose pages' revoke
        // failed is retired for good, which the model (no slots) does not count.
        let slots = cfg.channels + usize::from(cfg.kernel_failures);
        let clients: Vec<ClientConfig<'_>> = (0..cfg.clients)
            .map(|c| ClientConfig {
                id: ClientId(c as u16 + 1),
                window_pages: SLOT_PAGES * slots,
                max_channels: slots,
                classes: &classes,
                instance: None,
                power: false,
                low_latency: false,
            })
            .collect();
        let dcfg = DriverConfig {
            target_vp: VpIndex(0),
            max_version: Version::WIN10_V5_3,
            reply_timeout: TIMEOUT,
            clients: &clients,
        };
        let driver = Box::new(Driver::try_new(&dcfg).map_err(|e| e.to_string())?);
        let pool = cfg.pages * PAGES_PER_CHANNEL;
        let mut imp = Self {
            model: model.clone(),
            channels: cfg.channels,
            clients: cfg.clients,
            driver,
            hv: HarnessHv {
                posted: VecDeque::new(),
                flags: [0; 64],
                version: None,
                now: 1,
                wait_since: BTreeMap::new(),
            },
            k: HarnessKernel {
                pages: vec![vec![0; PAGE_SIZE]; pool],
                free: (0..pool as u32).rev().map(PageId).collect(),
                granted: BTreeMap::new(),
                control: vec![vec![0; PAGE_SIZE]; cfg.clients],
                armed: Vec::new(),
                armed_op: None,
                taken: Vec::new(),
                tainted: BTreeSet::new(),
                broken: Vec::new(),
                own_unmapped: BTreeSet::new(),
            },
            to_driver: VecDeque::new(),
            handles: vec![vec![None; cfg.channels]; cfg.clients],
            page_map: BTreeMap::new(),
            calls: BTreeSet::new(),
            now: 1,
        };
        imp.connect()?;
        Ok(imp)
    }

    /// The driver under test.
    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// Pool pages whose revoke or zeroing the harness's kernel failed.
    pub fn tainted_pages(&self) -> usize {
        self.k.tainted.len()
    }

    /// Pool pages client `c` (model numbering) may still map.
    pub fn pages_mapped_by(&self, c: u8) -> usize {
        let id = ClientId(u16::from(c) + 1);
        self.k.granted.values().filter(|g| **g == id).count()
    }

    fn connect(&mut self) -> Result<(), String> {
        self.driver.start(&mut self.hv, self.now);
        let Some(ChannelMessage::InitiateContact(ic)) = self.hv.posted.pop_front() else {
            return Err("no INITIATE_CONTACT".into());
        };
        self.hv.version = Some(ic.version_requested);
        let vr = ChannelMessage::VersionResponse(VersionResponse {
            version_supported: true,
            connection_state: Default::default(),
            msg_conn_id: ConnectionId(1),
            ext: VersionResponseExt::None,
        });
        self.driver
            .on_message(&mut self.hv, &mut self.k, &vr, self.now);
        match self.hv.posted.pop_front() {
            Some(ChannelMessage::RequestOffers) => {}
            other => return Err(format!("expected REQUESTOFFERS, got {other:?}")),
        }
        let all = ChannelMessage::AllOffersDelivered;
        self.driver
            .on_message(&mut self.hv, &mut self.k, &all, self.now);
        if self.driver.connection().state != ConnectionState::Connected {
            return Err(format!("not connected: {}", self.driver.connection().state));
        }
        Ok(())
    }

    fn call(&mut self, c: u8, req: Request) -> Result<Response, String> {
        let client = ClientId(u16::from(c) + 1);
        let mut area = [0u8; REQUEST_AREA];
        let n = encode_frame(&req, &mut area).map_err(|e| format!("{e:?}"))?;
        self.k
            .control_write(client, REQUEST_OFFSET, &area[..n])
            .map_err(|e| e.to_string())?;
        self.driver
            .on_client_call(&mut self.hv, &mut self.k, client, self.now);
        let page = self.k.control_page(client).map_err(|e| e.to_string())?;
        decode_frame(&page[RESPONSE_OFFSET..RESPONSE_OFFSET + RESPONSE_AREA])
            .map_err(|e| format!("response undecodable: {e:?}"))
    }

    /// The host's reply to the message it just took, built from the driver's own ids.
    fn reply(taken: &ChannelMessage, want: HostMsg) -> Result<ChannelMessage, String> {
        Ok(match (want, taken) {
            (HostMsg::GpadlCreated { .. }, ChannelMessage::GpadlHeader(h)) => {
                ChannelMessage::GpadlCreated(GpadlCreated {
                    child_relid: h.child_relid,
                    gpadl: h.gpadl,
                    creation_status: 0,
                })
            }
            (HostMsg::OpenResult { ok, .. }, ChannelMessage::OpenChannel(o)) => {
                ChannelMessage::OpenChannelResult(OpenChannelResult {
                    child_relid: o.child_relid,
                    openid: o.openid,
                    status: if ok { 0 } else { 0xC000_0001 },
                })
            }
            (HostMsg::TornDown { .. }, ChannelMessage::GpadlTeardown(t)) => {
                ChannelMessage::GpadlTorndown(GpadlTorndown { gpadl: t.gpadl })
            }
            (HostMsg::UnloadResponse, ChannelMessage::Unload) => ChannelMessage::UnloadResponse,
            (w, t) => return Err(format!("host wants to answer {w:?} but took {t:?}")),
        })
    }
}

fn abstract_msg(m: &ChannelMessage) -> Option<AbstractMsg> {
    let r = |relid: RelId| relid.0.wrapping_sub(1) as u8;
    Some(match m {
        ChannelMessage::GpadlHeader(h) => AbstractMsg::GpadlHeader(r(h.child_relid)),
        ChannelMessage::OpenChannel(o) => AbstractMsg::OpenChannel(r(o.child_relid)),
        ChannelMessage::CloseChannel(c) => AbstractMsg::CloseChannel(r(c.child_relid)),
        ChannelMessage::GpadlTeardown(t) => AbstractMsg::GpadlTeardown(r(t.child_relid)),
        ChannelMessage::RelIdReleased(x) => AbstractMsg::RelidReleased(r(x.child_relid)),
        ChannelMessage::Unload => AbstractMsg::Unload,
        _ => return None,
    })
}

impl Implementation for DriverImplementation {
    fn apply(&mut self, action: Action, before: &State, after: &State) -> Result<(), String> {
        let res = self.step(action, before, after);
        if after.kernel.armed == NONE {
            // An armed failure lasts one step, used or not (a step the model treats as a
            // no-op leaves it armed).
            self.k.armed.clear();
            self.k.armed_op = None;
        }
        if !self.k.broken.is_empty() {
            return Err(format!("kernel: {}", self.k.broken.join("; ")));
        }
        res
    }

    fn abstract_state(&self) -> AbstractState {
        self.abstract_now()
    }
}

impl DriverImplementation {
    fn step(&mut self, action: Action, before: &State, after: &State) -> Result<(), String> {
        self.now += 1;
        self.hv.now = self.now;
        let now = self.now;
        if !matches!(
            action,
            Action::HostOffer(_)
                | Action::HostRescind(_)
                | Action::HostSignal(_)
                | Action::HostReceive(_)
        ) {
            self.calls.insert(now);
        }
        match action {
            Action::HostOffer(r) => {
                if after != before {
                    self.to_driver
                        .push_back(ChannelMessage::OfferChannel(offer(u32::from(r) + 1)));
                }
            }
            Action::HostRescind(r) => {
                if after != before {
                    self.to_driver
                        .push_back(ChannelMessage::RescindChannelOffer(RescindChannelOffer {
                            child_relid: RelId(u32::from(r) + 1),
                        }));
                }
            }
            Action::HostSignal(r) => {
                if after != before {
                    let bit = usize::from(r) + 1;
                    self.hv.flags[bit / 32] |= 1 << (bit % 32);
                }
            }
            Action::HostReceive(_) => {
                let taken = self
                    .hv
                    .posted
                    .pop_front()
                    .ok_or("the host expected a message; the driver posted none")?;
                if after.to_driver.len() > before.to_driver.len() {
                    let want = after.to_driver.iter().last().ok_or("model reply missing")?;
                    self.to_driver.push_back(Self::reply(&taken, want)?);
                }
            }
            Action::DriverMessage => {
                let msg = self.to_driver.pop_front().ok_or("no host message queued")?;
                self.driver.on_interrupt(&mut self.hv, &mut self.k, now);
                self.driver.on_message(&mut self.hv, &mut self.k, &msg, now);
            }
            Action::DriverEvents => {
                self.driver.on_interrupt(&mut self.hv, &mut self.k, now);
            }
            Action::DriverTimeout => {
                // The model's timer fires at no particular tick: the driver's clock may stop at
                // any of its possible deadlines, oldest first.
                let want = abstract_model(&self.model, after);
                // A wait began at a tick when the driver ran, no earlier than the oldest
                // wait-starting message of a waiting channel (the driver may rearm a timer when
                // a teardown starts).
                let oldest = (0..self.channels)
                    .filter(|&r| before.drv[r].phase.is_waiting())
                    .filter_map(|r| self.hv.wait_since.get(&(r as u32 + 1)).copied())
                    .min()
                    .unwrap_or(self.now);
                // Deadlines already passed fire at the current tick; later ones at their own.
                let mut deadlines: Vec<u64> =
                    self.calls.range(oldest..).map(|t| t + TIMEOUT).collect();
                deadlines.push(self.now);
                deadlines.sort_unstable();
                deadlines.dedup();
                // Try each candidate tick on a copy; take the first whose outcome matches the
                // model. None does: fire the first candidate that changes anything, so the
                // comparison shows the driver's own choice.
                let mut fallback = None;
                for t in deadlines.into_iter().filter(|t| *t >= self.now) {
                    let mut trial = self.clone();
                    trial.now = t;
                    trial.hv.now = t;
                    trial.calls.insert(t);
                    trial.driver.on_tick(&mut trial.hv, &mut trial.k, t);
                    let got = trial.abstract_now();
                    if got == want {
                        *self = trial;
                        return Ok(());
                    }
                    if fallback.is_none() && got != self.abstract_now() {
                        fallback = Some(trial);
                    }
                }
                if let Some(trial) = fallback {
                    *self = trial;
                }
            }
            Action::KernelFault(p) => {
                self.k.armed = self.page_map.get(&p).cloned().unwrap_or_default();
                self.k.armed_op = None;
            }
            Action::ClientOpen(c, r) => {
                self.k.taken.clear();
                let resp = self.call(
                    c,
                    Request::Open {
                        relid: RelId(u32::from(r) + 1),
                        out_ring_pages: RING_PAGES,
                        in_ring_pages: RING_PAGES,
                    },
                )?;
                if let Response::Opening { handle } = resp {
                    self.handles[usize::from(c)][usize::from(r)] = Some(handle);
                }
                let ch = after.drv[usize::from(r)];
                if before.drv[usize::from(r)].phase == Phase::Offered
                    && ch.phase == Phase::GpadlPending
                {
                    self.page_map
                        .insert(ch.page, std::mem::take(&mut self.k.taken));
                }
            }
            Action::ClientClose(c, r) => {
                if let Some(handle) = self.handles[usize::from(c)][usize::from(r)].take() {
                    self.call(c, Request::Close { handle })?;
                }
            }
            Action::ClientFault(c) => {
                self.handles[usize::from(c)]
                    .iter_mut()
                    .for_each(|h| *h = None);
                let client = ClientId(u16::from(c) + 1);
                self.driver
                    .on_client_fault(&mut self.hv, &mut self.k, client, now);
            }
            Action::Unload => self.driver.unload(&mut self.hv, &mut self.k, now),
        }
        Ok(())
    }

    fn abstract_now(&self) -> AbstractState {
        let chans = (0..self.channels)
            .map(
                |r| match self.driver.abstract_channel(RelId(r as u32 + 1)) {
                    None => AbstractChan {
                        phase: Phase::Absent,
                        owner: None,
                        granted: false,
                        rescinded: false,
                    },
                    Some(a) => AbstractChan {
                        phase: match a.phase {
                            AbstractPhase::Offered => Phase::Offered,
                            AbstractPhase::GpadlPending => Phase::GpadlPending,
                            AbstractPhase::OpenPending => Phase::OpenPending,
                            AbstractPhase::Open => Phase::Open,
                            AbstractPhase::Teardown => Phase::Teardown,
                        },
                        owner: a.owner.map(|c| c.0.wrapping_sub(1) as u8),
                        granted: a.pages_granted,
                        rescinded: a.rescinded,
                    },
                },
            )
            .collect();
        let per = |pages: usize| pages.div_ceil(PAGES_PER_CHANNEL);
        let handles = (0..self.clients)
            .map(|c| {
                (0..self.channels)
                    .map(|r| match self.handles[c][r] {
                        None => Handle::None,
                        Some(h) => match self.driver.channel(h.relid) {
                            Some(info) if info.generation == h.generation => Handle::Current,
                            _ => Handle::Stale,
                        },
                    })
                    .collect()
            })
            .collect();
        AbstractState {
            chans,
            to_host: self.hv.posted.iter().filter_map(abstract_msg).collect(),
            mapped: (0..self.clients)
                .map(|c| {
                    let id = ClientId(c as u16 + 1);
                    per(self.k.granted.values().filter(|g| **g == id).count())
                })
                .collect(),
            handles,
            pool: self.k.free.len() / PAGES_PER_CHANNEL,
            // Out of the pool and held by no channel: quarantined (until a late GPADL_TORNDOWN,
            // or for good). Counted from the kernel, so pages kept for good after a failed
            // operation count however the driver books them.
            quarantined: per(self.k.pages.len()
                - self.k.free.len()
                - (0..self.channels)
                    .filter_map(|r| self.driver.channel(RelId(r as u32 + 1)))
                    .map(|info| info.pages)
                    .sum::<usize>()),
            flags: (0..self.channels)
                .map(|r| {
                    let bit = r + 1;
                    self.hv.flags[bit / 32] & (1 << (bit % 32)) != 0
                })
                .collect(),
            unloaded: self.driver.connection().state == ConnectionState::Disconnected,
        }
    }
}
