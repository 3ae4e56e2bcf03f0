//! Small scripted fakes of the driver's seams for the driver-core tests: a host that answers per
//! the wire protocol (with switches for refusals, silence and post failures), a kernel with a
//! page pool, grants and control pages, and one shared log of everything the driver did, in
//! order. The faithful simulated host and kernel live in tests/; these only need to be honest
//! enough to check the driver's own sequencing.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::rc::Rc;

use vmbus_driver::control::{
    ChannelHandle, ChannelStatus, REQUEST_AREA, REQUEST_OFFSET, RESPONSE_AREA, RESPONSE_OFFSET,
    Request, Response, STATUS_RECORD_SIZE, StatusRecord, decode_frame, encode_frame, status_offset,
};
use vmbus_driver::driver::{ClientConfig, ConnectionState, Driver, DriverConfig};
use vmbus_driver::guid::Guid;
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::hv::{HvMessageType, HvStatus, Hypervisor};
use vmbus_driver::ids::{ClientId, ConnectionId, GpadlId, PageId, RelId, SlotId, VpIndex};
use vmbus_driver::kernel::{Kernel, KernelError};
use vmbus_driver::msg::{
    ChannelMessage, GpadlCreated, GpadlTorndown, MessageType, ModifyChannelResponse, OfferChannel,
    OfferFlags, OpenChannelResult, RescindChannelOffer, VersionResponse, VersionResponseExt,
    decode, encode,
};
use vmbus_driver::version::Version;

/// One thing the driver did through a seam.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ev {
    /// A posted message: connection and raw bytes.
    Post(ConnectionId, Vec<u8>),
    Take(PageId),
    Grant(PageId, ClientId, usize),
    Revoke(PageId),
    Zero(PageId),
    Return(PageId),
    Notify(ClientId),
    Signal(ConnectionId),
    AckIrq,
    /// The driver's own mapping of the page removed (a balloon lend).
    UnmapOwn(PageId),
    /// The driver's own mapping of the page restored (a balloon reclaim).
    MapOwn(PageId),
}

impl Ev {
    /// The message type of a post.
    pub fn msgtype(&self) -> Option<MessageType> {
        match self {
            Ev::Post(_, b) => Some(MessageType(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            _ => None,
        }
    }
}

pub type Log = Rc<RefCell<Vec<Ev>>>;

/// Little-endian u32 at `off` of raw message bytes.
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

/// A host that answers per the protocol.
pub struct FakeHv {
    pub log: Log,
    /// Messages waiting for the SINT2 slot (front = in the slot), as full 256-byte slots.
    pub queue: VecDeque<[u8; 256]>,
    pub events: [u32; 64],
    pub eoms: u32,
    /// Newest version the host accepts (older ones are accepted too).
    pub max_accept: Version,
    /// Whether connection 4 exists (false: a QEMU-like host).
    pub conn4: bool,
    /// msg_conn_id handed back for >= 5.0.
    pub msg_conn_id: u32,
    /// Offers sent after REQUESTOFFERS.
    pub offers: Vec<OfferChannel>,
    /// Message types the host never answers.
    pub silent: HashSet<u32>,
    /// Status for GPADL_CREATED and OPENCHANNEL_RESULT.
    pub gpadl_status: u32,
    pub open_status: u32,
    /// Statuses returned by the next posts, before any normal handling.
    pub post_failures: VecDeque<HvStatus>,
    /// Negotiated version.
    pub version: Option<Version>,
    /// GPADLs being described: id -> (relid, expected pfns, pfns so far).
    pub pending_gpadls: HashMap<u32, (u32, usize, Vec<u64>)>,
    /// Complete GPADLs: id -> pfns.
    pub gpadls: BTreeMap<u32, Vec<u64>>,
    /// Status of signal_event.
    pub signal_status: HvStatus,
    /// GPADL ids whose GPADL_CREATED and GPADL_TORNDOWN never come (one buffer's, say).
    pub silent_gpadls: HashSet<u32>,
}

impl FakeHv {
    pub fn new(log: Log) -> FakeHv {
        FakeHv {
            log,
            queue: VecDeque::new(),
            events: [0; 64],
            eoms: 0,
            max_accept: Version::WIN10_V5_3,
            conn4: true,
            msg_conn_id: 1,
            offers: Vec::new(),
            silent: HashSet::new(),
            gpadl_status: 0,
            open_status: 0,
            post_failures: VecDeque::new(),
            version: None,
            pending_gpadls: HashMap::new(),
            gpadls: BTreeMap::new(),
            signal_status: HvStatus::SUCCESS,
            silent_gpadls: HashSet::new(),
        }
    }

    /// Queues a raw payload as a VMBus message.
    pub fn send_raw(&mut self, payload: &[u8]) {
        let mut m = [0u8; 256];
        m[0] = 1;
        m[4] = payload.len().min(255) as u8;
        let n = payload.len().min(240);
        m[16..16 + n].copy_from_slice(&payload[..n]);
        self.queue.push_back(m);
    }

    /// Queues a slot exactly as given.
    pub fn send_slot(&mut self, slot: [u8; 256]) {
        self.queue.push_back(slot);
    }

    /// Queues a typed message.
    pub fn send(&mut self, msg: &ChannelMessage) {
        let mut b = [0u8; 240];
        let n = encode(msg, &mut b).unwrap();
        self.send_raw(&b[..n]);
    }

    pub fn rescind(&mut self, relid: u32) {
        self.send(&ChannelMessage::RescindChannelOffer(RescindChannelOffer {
            child_relid: RelId(relid),
        }));
    }

    pub fn torndown(&mut self, gpadl: u32) {
        self.send(&ChannelMessage::GpadlTorndown(GpadlTorndown {
            gpadl: GpadlId(gpadl),
        }));
    }

    /// Sets event flag `relid`.
    pub fn raise(&mut self, relid: u32) {
        self.events[(relid / 32) as usize] |= 1 << (relid % 32);
    }

    /// Whether anything waits for the driver.
    pub fn busy(&self) -> bool {
        !self.queue.is_empty() || self.events.iter().any(|w| *w != 0)
    }

    fn reply(&mut self, t: MessageType, msg: ChannelMessage) {
        if !self.silent.contains(&t.0) {
            self.send(&msg);
        }
    }

    fn handle(&mut self, conn: ConnectionId, bytes: &[u8]) -> HvStatus {
        let msg = match decode(bytes, self.version) {
            Ok(m) => m,
            Err(_) => return HvStatus::INVALID_PARAMETER,
        };
        match msg {
            ChannelMessage::InitiateContact(ic) => {
                let v = ic.version_requested;
                if conn.0 == 4 && !self.conn4 {
                    return HvStatus::INVALID_CONNECTION_ID;
                }
                let expected_conn = if v >= Version::WIN10_V5 { 4 } else { 1 };
                assert_eq!(conn.0, expected_conn, "INITIATE_CONTACT {v} on {conn}");
                let ok = v <= self.max_accept;
                if ok {
                    self.version = Some(v);
                }
                let id = if v >= Version::WIN10_V5 {
                    self.msg_conn_id
                } else {
                    v.0
                };
                self.reply(
                    MessageType::VERSION_RESPONSE,
                    ChannelMessage::VersionResponse(VersionResponse {
                        version_supported: ok,
                        connection_state: Default::default(),
                        msg_conn_id: ConnectionId(id),
                        ext: VersionResponseExt::None,
                    }),
                );
            }
            ChannelMessage::RequestOffers => {
                for o in self.offers.clone() {
                    self.reply(MessageType::OFFERCHANNEL, ChannelMessage::OfferChannel(o));
                }
                self.reply(
                    MessageType::ALLOFFERS_DELIVERED,
                    ChannelMessage::AllOffersDelivered,
                );
            }
            ChannelMessage::GpadlHeader(h) => {
                let n = (usize::from(h.range_buflen) - 8) / 8;
                let pfns = h.pfns().to_vec();
                self.pending_gpadls
                    .insert(h.gpadl.0, (h.child_relid.0, n, pfns));
                self.maybe_created(h.gpadl.0);
            }
            ChannelMessage::GpadlBody(b) => {
                if let Some(p) = self.pending_gpadls.get_mut(&b.gpadl.0) {
                    p.2.extend_from_slice(b.pfns.as_slice());
                }
                self.maybe_created(b.gpadl.0);
            }
            ChannelMessage::OpenChannel(o) => self.reply(
                MessageType::OPENCHANNEL_RESULT,
                ChannelMessage::OpenChannelResult(OpenChannelResult {
                    child_relid: o.child_relid,
                    openid: o.openid,
                    status: self.open_status,
                }),
            ),
            ChannelMessage::GpadlTeardown(t) => {
                self.gpadls.remove(&t.gpadl.0);
                if self.silent_gpadls.contains(&t.gpadl.0) {
                    return HvStatus::SUCCESS;
                }
                self.reply(
                    MessageType::GPADL_TORNDOWN,
                    ChannelMessage::GpadlTorndown(GpadlTorndown { gpadl: t.gpadl }),
                );
            }
            ChannelMessage::ModifyChannel(m)
                if self.version.is_some_and(|v| v >= Version::WIN10_V5_3) =>
            {
                self.reply(
                    MessageType::MODIFYCHANNEL_RESPONSE,
                    ChannelMessage::ModifyChannelResponse(ModifyChannelResponse {
                        child_relid: m.child_relid,
                        status: 0,
                    }),
                );
            }
            ChannelMessage::Unload => {
                self.reply(MessageType::UNLOAD_RESPONSE, ChannelMessage::UnloadResponse)
            }
            _ => {}
        }
        HvStatus::SUCCESS
    }

    fn maybe_created(&mut self, id: u32) {
        let done = self
            .pending_gpadls
            .get(&id)
            .is_some_and(|(_, n, got)| got.len() >= *n);
        if done {
            let (relid, _, pfns) = self.pending_gpadls.remove(&id).unwrap();
            if self.gpadl_status == 0 {
                self.gpadls.insert(id, pfns);
            }
            if self.silent_gpadls.contains(&id) {
                return;
            }
            self.reply(
                MessageType::GPADL_CREATED,
                ChannelMessage::GpadlCreated(GpadlCreated {
                    child_relid: RelId(relid),
                    gpadl: GpadlId(id),
                    creation_status: self.gpadl_status,
                }),
            );
        }
    }
}

impl Hypervisor for FakeHv {
    fn post_message(
        &mut self,
        connection: ConnectionId,
        message_type: HvMessageType,
        payload: &[u8],
    ) -> HvStatus {
        assert_eq!(message_type, HvMessageType::VMBUS);
        assert!(payload.len() <= 240);
        if let Some(s) = self.post_failures.pop_front() {
            return s;
        }
        let status = self.handle(connection, payload);
        if status.is_success() {
            self.log
                .borrow_mut()
                .push(Ev::Post(connection, payload.to_vec()));
        }
        status
    }

    fn signal_event(&mut self, connection: ConnectionId, flag_number: u16) -> HvStatus {
        assert_eq!(flag_number, 0);
        self.log.borrow_mut().push(Ev::Signal(connection));
        self.signal_status
    }

    fn read_message_slot(&mut self, sint: u8) -> [u8; 256] {
        assert_eq!(sint, 2);
        match self.queue.front() {
            Some(m) => {
                let mut m = *m;
                if self.queue.len() > 1 {
                    m[5] |= 1;
                }
                m
            }
            None => [0; 256],
        }
    }

    fn clear_message_slot(&mut self, _sint: u8, expected_type: HvMessageType) -> bool {
        match self.queue.front() {
            Some(m) if u32_at(m, 0) == expected_type.0 => {
                self.queue.pop_front();
                true
            }
            _ => false,
        }
    }

    fn end_of_message(&mut self) {
        self.eoms += 1;
    }

    fn take_event_flags(&mut self, _sint: u8, word: usize) -> u32 {
        std::mem::take(&mut self.events[word])
    }
}

/// How an injected kernel failure behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// The kernel refuses the operation: nothing happened.
    Refuse,
    /// The operation went half way (a grant copied but did not map; a revoke removed the
    /// first mapping only; a zero wrote half the page), then failed.
    Partial,
    /// The operation was done, but the kernel reported an error.
    Done,
}

/// A kernel operation failure armed in [`FakeKernel`]: the operation with this index (counted
/// from 0 since the plan was armed) fails in this mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailPlan {
    pub at: u64,
    pub mode: FailMode,
}

/// A kernel with a page pool, grants and control pages, and fault injection: every kernel
/// operation is counted, and the one a [`FailPlan`] names fails.
pub struct FakeKernel {
    pub log: Log,
    pub pages: Vec<Vec<u8>>,
    pub free: Vec<PageId>,
    /// Every capability copy of a page that may exist in a client (grants not revoked, and
    /// partial or failed revokes leave them here).
    pub granted: HashMap<PageId, Vec<(ClientId, usize)>>,
    pub control: HashMap<ClientId, Vec<u8>>,
    /// The armed failure, if any.
    pub fail: Option<FailPlan>,
    /// Operations counted since the plan was armed.
    pub ops: std::cell::Cell<u64>,
    /// Operations that were made to fail: (index, operation name).
    pub injected: RefCell<Vec<(u64, &'static str)>>,
    /// Broken promises of the driver (returning a granted or non-zero page, ...).
    pub violations: Vec<String>,
    /// Pages whose driver mapping may be removed (an unmap that went through, even if it was
    /// reported failed); every access to one is refused and recorded as a violation.
    pub unmapped: HashSet<PageId>,
    /// Pages whose driver mapping may still be in place although the driver asked for it to be
    /// removed (a refused or half-done unmap).
    pub unmap_incomplete: HashSet<PageId>,
    /// Give pages consecutive frame numbers ([`FakeKernel::frame`]), so balloon ranges coalesce.
    pub contiguous_frames: bool,
}

/// Frame number of pool page `p` (arbitrary, distinct from the page index).
pub fn frame_of(p: PageId) -> u64 {
    0x8_0000 + u64::from(p.0) * 3
}

impl FakeKernel {
    pub fn new(log: Log, pool: u32, clients: &[ClientId]) -> FakeKernel {
        FakeKernel {
            log,
            pages: (0..pool).map(|_| vec![0u8; PAGE_SIZE]).collect(),
            free: (0..pool).rev().map(PageId).collect(),
            granted: HashMap::new(),
            control: clients.iter().map(|c| (*c, vec![0u8; 4096])).collect(),
            violations: Vec::new(),
            unmapped: HashSet::new(),
            unmap_incomplete: HashSet::new(),
            contiguous_frames: false,
            fail: None,
            ops: std::cell::Cell::new(0),
            injected: RefCell::new(Vec::new()),
        }
    }

    /// Arms a failure of operation `at` (counted from now).
    pub fn arm(&mut self, plan: FailPlan) {
        self.fail = Some(plan);
        self.ops.set(0);
        self.injected.borrow_mut().clear();
    }

    /// Counts one operation; `Some(mode)` if it is the one to fail.
    fn fault(&self, name: &'static str) -> Option<FailMode> {
        let n = self.ops.get();
        self.ops.set(n + 1);
        let plan = self.fail?;
        (plan.at == n).then(|| {
            self.injected.borrow_mut().push((n, name));
            plan.mode
        })
    }

    /// The lifetime rule as the kernel sees it: every broken promise so far, plus every page
    /// now in the free pool while a client may hold a capability to it, and every page two
    /// clients may reach at once.
    pub fn lifetime_violations(&self) -> Vec<String> {
        let mut v = self.violations.clone();
        for p in &self.free {
            if self.granted.get(p).is_some_and(|g| !g.is_empty()) {
                v.push(format!("{p} is in the pool while a client may map it"));
            }
        }
        for (p, g) in &self.granted {
            if g.iter().any(|(c, _)| *c != g[0].0) {
                v.push(format!("{p} is reachable by two clients: {g:?}"));
            }
        }
        v
    }
    /// Frame number of page `p`: [`frame_of`], or `0x8_0000 + p` with `contiguous_frames`.
    pub fn frame(&self, p: PageId) -> u64 {
        if self.contiguous_frames {
            0x8_0000 + u64::from(p.0)
        } else {
            frame_of(p)
        }
    }

    /// The pool page with frame number `pfn`, if any.
    pub fn page_of_frame(&self, pfn: u64) -> Option<PageId> {
        let off = pfn.checked_sub(0x8_0000)?;
        let i = if self.contiguous_frames {
            off
        } else if off % 3 == 0 {
            off / 3
        } else {
            return None;
        };
        let i = u32::try_from(i).ok()?;
        ((i as usize) < self.pages.len()).then_some(PageId(i))
    }

    /// Refuses an access to a page whose driver mapping is removed, recording a violation.
    fn check_mapped(&mut self, page: PageId, what: &str) -> Result<(), KernelError> {
        if self.unmapped.contains(&page) {
            self.violations
                .push(format!("{what} {page} through its removed driver mapping"));
            return Err(KernelError::Refused(6));
        }
        Ok(())
    }

    /// Whether nothing in the guest can reach `page`: no client capability, no driver mapping.
    pub fn unreachable(&self, page: PageId) -> bool {
        self.granted.get(&page).is_none_or(Vec::is_empty)
            && self.unmapped.contains(&page)
            && !self.unmap_incomplete.contains(&page)
            && !self.free.contains(&page)
    }

    fn page_mut(&mut self, p: PageId) -> Result<&mut Vec<u8>, KernelError> {
        self.pages
            .get_mut(p.0 as usize)
            .ok_or(KernelError::NoSuchPage)
    }

    pub fn status(&self, client: ClientId, slot: SlotId) -> StatusRecord {
        let page = &self.control[&client];
        let at = status_offset(slot);
        let bytes: [u8; STATUS_RECORD_SIZE] = page[at..at + STATUS_RECORD_SIZE].try_into().unwrap();
        StatusRecord::from_bytes(&bytes).unwrap()
    }

    /// Pages in the free pool whose frame a GPADL the host holds still covers.
    pub fn free_pages_the_host_holds(&self, hv: &FakeHv) -> Vec<PageId> {
        self.free
            .iter()
            .copied()
            .filter(|p| {
                let f = self.frame(*p);
                hv.gpadls.values().any(|pfns| pfns.contains(&f))
            })
            .collect()
    }

    /// Number of pages not in the pool.
    pub fn pages_out(&self) -> usize {
        self.pages.len() - self.free.len()
    }
}

impl Kernel for FakeKernel {
    fn take_page(&mut self) -> Result<PageId, KernelError> {
        if let Some(mode) = self.fault("take_page") {
            if mode != FailMode::Refuse {
                // Taken but not reported: the page is lost to the driver, never shared.
                let _ = self.free.pop();
            }
            return Err(KernelError::Refused(1));
        }
        let p = self.free.pop().ok_or(KernelError::PoolEmpty)?;
        self.log.borrow_mut().push(Ev::Take(p));
        Ok(p)
    }

    fn return_page(&mut self, page: PageId) -> Result<(), KernelError> {
        let fault = self.fault("return_page");
        if fault == Some(FailMode::Refuse) {
            return Err(KernelError::Refused(1));
        }
        self.check_mapped(page, "returned")?;
        if self.granted.get(&page).is_some_and(|g| !g.is_empty()) {
            self.violations
                .push(format!("{page} returned while granted"));
        }
        if self.pages[page.0 as usize].iter().any(|b| *b != 0) {
            self.violations.push(format!("{page} returned non-zero"));
        }
        if self.free.contains(&page) {
            self.violations.push(format!("{page} returned twice"));
        }
        self.free.push(page);
        self.log.borrow_mut().push(Ev::Return(page));
        if fault.is_some() {
            return Err(KernelError::Refused(1));
        }
        Ok(())
    }

    fn page_frame(&self, page: PageId) -> Result<u64, KernelError> {
        if self.fault("page_frame").is_some() {
            return Err(KernelError::Refused(1));
        }
        Ok(self.frame(page))
    }

    fn write_page(&mut self, page: PageId, offset: usize, data: &[u8]) -> Result<(), KernelError> {
        if self.fault("write_page").is_some() {
            return Err(KernelError::Refused(1));
        }
        self.check_mapped(page, "wrote")?;
        let p = self.page_mut(page)?;
        p.get_mut(offset..offset + data.len())
            .ok_or(KernelError::OutOfBounds)?
            .copy_from_slice(data);
        Ok(())
    }

    fn read_page(&self, page: PageId, offset: usize, buf: &mut [u8]) -> Result<(), KernelError> {
        if self.fault("read_page").is_some() {
            return Err(KernelError::Refused(1));
        }
        if self.unmapped.contains(&page) {
            // `&self`: the violation cannot be recorded here; the access is refused.
            return Err(KernelError::Refused(6));
        }
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
        let fault = self.fault("zero_page");
        self.check_mapped(page, "zeroed")?;
        match fault {
            Some(FailMode::Refuse) => return Err(KernelError::Refused(1)),
            Some(FailMode::Partial) => {
                self.page_mut(page)?[..PAGE_SIZE / 2].fill(0);
                return Err(KernelError::Refused(1));
            }
            Some(FailMode::Done) => {
                self.page_mut(page)?.fill(0);
                return Err(KernelError::Refused(1));
            }
            None => {}
        }
        self.page_mut(page)?.fill(0);
        self.log.borrow_mut().push(Ev::Zero(page));
        Ok(())
    }

    fn or_page_u32(&mut self, page: PageId, offset: usize, bits: u32) -> Result<(), KernelError> {
        if self.fault("or_page_u32").is_some() {
            return Err(KernelError::Refused(1));
        }
        self.check_mapped(page, "set bits in")?;
        let p = self.page_mut(page)?;
        let w = p
            .get_mut(offset..offset + 4)
            .filter(|_| offset.is_multiple_of(4))
            .ok_or(KernelError::OutOfBounds)?;
        let v = u32::from_le_bytes((&*w).try_into().unwrap()) | bits;
        w.copy_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn grant(
        &mut self,
        page: PageId,
        client: ClientId,
        window_page: usize,
    ) -> Result<(), KernelError> {
        let fault = self.fault("grant");
        if fault == Some(FailMode::Refuse) {
            return Err(KernelError::Refused(1));
        }
        if let Some(g) = self.granted.get(&page)
            && g.iter().any(|(c, _)| *c != client)
        {
            self.violations
                .push(format!("{page} granted to {client} while {g:?} may map it"));
        }
        // A partial grant left a copy (mapped or not) in the client's reach.
        self.granted
            .entry(page)
            .or_default()
            .push((client, window_page));
        if fault.is_some() {
            return Err(KernelError::Refused(1));
        }
        self.log
            .borrow_mut()
            .push(Ev::Grant(page, client, window_page));
        Ok(())
    }

    fn revoke(&mut self, page: PageId) -> Result<(), KernelError> {
        match self.fault("revoke") {
            Some(FailMode::Refuse) => return Err(KernelError::Refused(1)),
            Some(FailMode::Partial) => {
                if let Some(g) = self.granted.get_mut(&page)
                    && !g.is_empty()
                {
                    g.remove(0);
                }
                return Err(KernelError::Refused(1));
            }
            Some(FailMode::Done) => {
                self.granted.remove(&page);
                return Err(KernelError::Refused(1));
            }
            None => {}
        }
        self.granted.remove(&page);
        self.log.borrow_mut().push(Ev::Revoke(page));
        Ok(())
    }

    fn pool_pages(&self) -> usize {
        self.pages.len()
    }

    fn free_pages(&self) -> usize {
        self.free.len()
    }

    fn unmap_own(&mut self, page: PageId) -> Result<(), KernelError> {
        if self.free.contains(&page) {
            self.violations.push(format!("{page} unmapped while free"));
        }
        match self.fault("unmap_own") {
            Some(FailMode::Refuse) => {
                self.unmap_incomplete.insert(page);
                return Err(KernelError::Refused(1));
            }
            Some(FailMode::Partial) => {
                // Accesses fault already, but a stale translation may remain.
                self.unmapped.insert(page);
                self.unmap_incomplete.insert(page);
                return Err(KernelError::Refused(1));
            }
            Some(FailMode::Done) => {
                self.unmapped.insert(page);
                return Err(KernelError::Refused(1));
            }
            None => {}
        }
        self.unmapped.insert(page);
        self.unmap_incomplete.remove(&page);
        self.log.borrow_mut().push(Ev::UnmapOwn(page));
        Ok(())
    }

    fn map_own(&mut self, page: PageId) -> Result<(), KernelError> {
        match self.fault("map_own") {
            Some(FailMode::Refuse | FailMode::Partial) => return Err(KernelError::Refused(1)),
            Some(FailMode::Done) => {
                self.unmapped.remove(&page);
                return Err(KernelError::Refused(1));
            }
            None => {}
        }
        self.unmapped.remove(&page);
        self.unmap_incomplete.remove(&page);
        self.log.borrow_mut().push(Ev::MapOwn(page));
        Ok(())
    }

    fn notify(&mut self, client: ClientId) -> Result<(), KernelError> {
        if self.fault("notify").is_some() {
            return Err(KernelError::Refused(1));
        }
        self.log.borrow_mut().push(Ev::Notify(client));
        Ok(())
    }

    fn ack_irq(&mut self) -> Result<(), KernelError> {
        if self.fault("ack_irq").is_some() {
            return Err(KernelError::Refused(1));
        }
        self.log.borrow_mut().push(Ev::AckIrq);
        Ok(())
    }

    fn control_read(
        &self,
        client: ClientId,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), KernelError> {
        if self.fault("control_read").is_some() {
            return Err(KernelError::Refused(1));
        }
        let page = self.control.get(&client).ok_or(KernelError::NoSuchClient)?;
        buf.copy_from_slice(
            page.get(offset..offset + buf.len())
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
        if self.fault("control_write").is_some() {
            return Err(KernelError::Refused(1));
        }
        let page = self
            .control
            .get_mut(&client)
            .ok_or(KernelError::NoSuchClient)?;
        page.get_mut(offset..offset + data.len())
            .ok_or(KernelError::OutOfBounds)?
            .copy_from_slice(data);
        Ok(())
    }
}

/// Test device class GUIDs.
pub const NET: Guid = vmbus_driver::guid::NETWORK;
pub const HEARTBEAT: Guid = vmbus_driver::guid::HEARTBEAT;
pub const SCSI: Guid = vmbus_driver::guid::SCSI;

/// Client A may use NET and SCSI; client B HEARTBEAT, and B may stop the system.
pub const A: ClientId = ClientId(1);
pub const B: ClientId = ClientId(2);
pub const WINDOW_PAGES: usize = 256;
pub const MAX_CHANNELS: usize = 4;
pub const SLOT_PAGES: usize = WINDOW_PAGES / MAX_CHANNELS;
pub const TIMEOUT: u64 = 100;
pub const TARGET_VP: u32 = 3;

/// An offer of `class` with instance byte `inst`.
pub fn offer(relid: u32, class: Guid, inst: u8, sub: u16) -> OfferChannel {
    OfferChannel {
        if_type: class,
        if_instance: Guid([inst; 16]),
        reserved1: 0,
        reserved2: 0,
        chn_flags: OfferFlags(0),
        mmio_megabytes: 0,
        user_def: [0; 120],
        sub_channel_index: sub,
        mmio_megabytes_optional: 0,
        child_relid: RelId(relid),
        monitor_id: 0,
        monitor_allocated: false,
        is_dedicated_interrupt: true,
        connection_id: ConnectionId(0x100u32.wrapping_add(relid) & 0x00FF_FFFF),
    }
}

/// A client's Open request for `relid` with these ring sizes.
pub fn open_request(relid: u32, out_ring_pages: u16, in_ring_pages: u16) -> Request {
    Request::Open {
        relid: RelId(relid),
        out_ring_pages,
        in_ring_pages,
    }
}

/// The driver, both fakes and a clock.
pub struct World {
    pub log: Log,
    pub hv: FakeHv,
    pub k: FakeKernel,
    pub d: Box<Driver>,
    pub now: u64,
}

const A_CLASSES: [Guid; 2] = [NET, SCSI];
const B_CLASSES: [Guid; 1] = [HEARTBEAT];

impl World {
    /// A world whose host offers `offers`; not started.
    pub fn new(offers: Vec<OfferChannel>) -> World {
        World::with_max(offers, Version::WIN10_V6_0)
    }

    pub fn with_max(offers: Vec<OfferChannel>, max_version: Version) -> World {
        let clients = [
            ClientConfig {
                id: A,
                window_pages: WINDOW_PAGES,
                max_channels: MAX_CHANNELS,
                classes: &A_CLASSES,
                instance: None,
                power: false,
                low_latency: false,
            },
            ClientConfig {
                id: B,
                window_pages: WINDOW_PAGES,
                max_channels: MAX_CHANNELS,
                classes: &B_CLASSES,
                instance: None,
                // B plays the shutdown integration service: it may stop the system. It also
                // asks for low latency: its channels are signalled by hypercall even when
                // monitored.
                power: true,
                low_latency: true,
            },
        ];
        let cfg = DriverConfig {
            target_vp: VpIndex(TARGET_VP),
            max_version,
            reply_timeout: TIMEOUT,
            clients: &clients,
        };
        let log: Log = Rc::new(RefCell::new(Vec::new()));
        let mut hv = FakeHv::new(log.clone());
        hv.offers = offers;
        World {
            k: FakeKernel::new(log.clone(), 1024, &[A, B]),
            hv,
            d: Box::new(Driver::new(&cfg)),
            log,
            now: 1,
        }
    }

    /// Runs the interrupt path until the host has nothing left for the driver.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
            if !self.hv.busy() {
                return;
            }
            self.d.on_interrupt(&mut self.hv, &mut self.k, self.now);
        }
        panic!("host never went quiet");
    }

    /// Starts and completes the handshake and offers.
    pub fn connect(&mut self) {
        self.d.start(&mut self.hv, self.now);
        self.pump();
        assert_eq!(self.d.connection().state, ConnectionState::Connected);
    }

    /// As [`World::connect`], with monitor pages (`Driver::start_monitored`).
    pub fn connect_monitored(&mut self) {
        self.d.start_monitored(&mut self.hv, &mut self.k, self.now);
        self.pump();
        assert_eq!(self.d.connection().state, ConnectionState::Connected);
    }

    /// A client request through the control page; `None` if no decodable response is there
    /// (a kernel failure may stop the driver from reading the request or writing the answer).
    pub fn try_call(&mut self, client: ClientId, req: Request) -> Option<Response> {
        let mut area = [0u8; REQUEST_AREA];
        let n = encode_frame(&req, &mut area).unwrap();
        self.k.control.get_mut(&client).unwrap()[REQUEST_OFFSET..REQUEST_OFFSET + n]
            .copy_from_slice(&area[..n]);
        self.d
            .on_client_call(&mut self.hv, &mut self.k, client, self.now);
        let page = &self.k.control[&client];
        decode_frame(&page[RESPONSE_OFFSET..RESPONSE_OFFSET + RESPONSE_AREA]).ok()
    }

    /// A client request through the control page.
    pub fn call(&mut self, client: ClientId, req: Request) -> Response {
        self.try_call(client, req).expect("a decodable response")
    }

    /// Opens `relid` for `client` with 2+2 pages, runs the host, returns the handle.
    pub fn open(&mut self, client: ClientId, relid: u32) -> ChannelHandle {
        self.open_sized(client, relid, 2, 2)
    }

    pub fn open_sized(
        &mut self,
        client: ClientId,
        relid: u32,
        out: u16,
        inn: u16,
    ) -> ChannelHandle {
        let handle = self.start_open_sized(client, relid, out, inn);
        self.pump();
        assert_eq!(
            self.k.status(client, handle.slot).state,
            ChannelStatus::Open
        );
        handle
    }

    /// Asks to open `relid` for `client` with 2+2 pages without running the host; the open
    /// must be accepted.
    pub fn start_open(&mut self, client: ClientId, relid: u32) -> ChannelHandle {
        self.start_open_sized(client, relid, 2, 2)
    }

    /// As [`World::start_open`] with the ring sizes given.
    pub fn start_open_sized(
        &mut self,
        client: ClientId,
        relid: u32,
        out: u16,
        inn: u16,
    ) -> ChannelHandle {
        let resp = self.call(client, open_request(relid, out, inn));
        let Response::Opening { handle } = resp else {
            panic!("open {relid}: {resp:?}");
        };
        handle
    }

    /// Advances the clock and runs the timeouts.
    pub fn tick(&mut self, by: u64) {
        self.now += by;
        self.d.on_tick(&mut self.hv, &mut self.k, self.now);
    }

    /// Clears the log.
    pub fn clear_log(&self) {
        self.log.borrow_mut().clear();
    }

    /// The log without interrupt acknowledgements.
    pub fn events(&self) -> Vec<Ev> {
        self.log
            .borrow()
            .iter()
            .filter(|e| **e != Ev::AckIrq)
            .cloned()
            .collect()
    }

    /// Message types posted, in order.
    pub fn posted_types(&self) -> Vec<MessageType> {
        self.log.borrow().iter().filter_map(Ev::msgtype).collect()
    }

    /// The raw bytes of posts of type `t`.
    pub fn posts_of(&self, t: MessageType) -> Vec<Vec<u8>> {
        self.log
            .borrow()
            .iter()
            .filter(|e| e.msgtype() == Some(t))
            .map(|e| match e {
                Ev::Post(_, b) => b.clone(),
                _ => unreachable!(),
            })
            .collect()
    }

    /// Connections of all posts.
    pub fn post_connections(&self) -> Vec<ConnectionId> {
        self.log
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Ev::Post(c, _) => Some(*c),
                _ => None,
            })
            .collect()
    }
}
