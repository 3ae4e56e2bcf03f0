//! Opening a channel for a client: ring pages from the pool, header pages initialised, the ring
//! GPADL, OPENCHANNEL, then the grant into the client's window slot. Also MODIFYCHANNEL.

use core::fmt;

use log::{info, warn};

use crate::control::{ChannelHandle, ChannelStatus, ClientError};
use crate::gpadl::gpadl_messages;
use crate::hv::Hypervisor;
use crate::ids::{GpadlId, PageId, RelId, VpIndex};
use crate::kernel::{Kernel, KernelError};
use crate::msg::{
    ChannelMessage, CloseChannel, GpadlCreated, GpadlTeardown, ModifyChannel,
    ModifyChannelResponse, OpenChannel, OpenChannelResult,
};
use crate::ring::FEATURE_PENDING_SEND_SZ;

use super::Driver;
use super::pages::PageList;
use super::post::post;
use super::table::{
    GPADL_INDEX_BITS, GpadlState, MAX_CHANNEL_PAGES, MAX_OPEN, OpenChan, OpenState, Phase,
    RelidState, TeardownReason, flags, gpadl_id, gpadl_index,
};

/// Offset of the feature bits in a ring header page (VMBUS-PROTOCOL.md §5.2).
const FEATURE_BITS: usize = 64;

/// Why a MODIFYCHANNEL could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetargetError {
    /// The negotiated version predates MODIFYCHANNEL (4.1).
    NotSupported,
    /// No open channel has that relid.
    NotOpen,
    /// A MODIFYCHANNEL for the channel still awaits its response.
    Pending,
    /// The post failed.
    PostFailed,
}

impl fmt::Display for RetargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotSupported => "MODIFYCHANNEL needs protocol 4.1",
            Self::NotOpen => "channel not open",
            Self::Pending => "a MODIFYCHANNEL is still pending",
            Self::PostFailed => "MODIFYCHANNEL could not be posted",
        })
    }
}

impl Driver {
    /// A client's Open request.
    pub(crate) fn open_channel<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        c: usize,
        relid: u32,
        (out_pages, in_pages): (u16, u16),
        now: u64,
    ) -> Result<ChannelHandle, ClientError> {
        if !self.is_connected() {
            return Err(ClientError::NotConnected);
        }
        let r = Driver::entry_index(RelId(relid)).ok_or(ClientError::NoSuchOffer)?;
        let e = self.relids[r];
        let client = &self.clients.entries[c];
        // Permission first: an offer the client may not open looks exactly like no offer, so
        // a client learns nothing about other classes' channels.
        if e.state == RelidState::Free || e.rescinded || !client.allows(&e.class, &e.instance) {
            return Err(ClientError::NoSuchOffer);
        }
        if e.state == RelidState::Active || e.unresolved_open.is_some() {
            return Err(ClientError::Busy);
        }
        if e.sub_index != 0 {
            // A sub-channel belongs to its primary: only the primary's owner may open it.
            let p = self.primary_of(r).ok_or(ClientError::NotPermitted)?;
            let pe = &self.relids[p];
            let po = &self.opens[usize::from(pe.open)];
            if pe.state != RelidState::Active
                || po.phase != Phase::Open
                || usize::from(po.client) != c
            {
                return Err(ClientError::NotPermitted);
            }
        }
        let total = usize::from(out_pages) + usize::from(in_pages);
        if out_pages < 2
            || in_pages < 2
            || total > MAX_CHANNEL_PAGES
            || total > client.slot_pages as usize
        {
            return Err(ClientError::BadRingSize);
        }
        let slot = client.free_slot().ok_or(ClientError::NoFreeSlot)?;
        let idx = (0..MAX_OPEN)
            .find(|&i| !self.opens[i].in_use())
            .ok_or(ClientError::NoResources)?;
        let list = self
            .arena
            .alloc(total, PageId(u32::MAX))
            .ok_or(ClientError::NoResources)?;
        let mut pfns = [0u64; MAX_CHANNEL_PAGES];
        for (i, pfn) in pfns.iter_mut().enumerate().take(total) {
            let page = match k.take_page() {
                Ok(p) => p,
                Err(err) => {
                    warn!("open {relid}: no ring page: {err}");
                    self.zero_and_return(k, list);
                    return Err(ClientError::NoResources);
                }
            };
            self.stats.pages_taken += 1;
            self.arena.set(list, i, page);
            match k.page_frame(page) {
                Ok(f) => *pfn = f,
                Err(err) => {
                    self.stats.kernel_errors += 1;
                    warn!("open {relid}: page frame: {err}");
                    self.zero_and_return(k, list);
                    return Err(ClientError::NoResources);
                }
            }
        }
        if let Err(err) = self.init_ring_headers(k, list, usize::from(out_pages)) {
            self.stats.kernel_errors += 1;
            warn!("open {relid}: ring header: {err}");
            self.zero_and_return(k, list);
            return Err(ClientError::NoResources);
        }
        let gpadl = self.alloc_gpadl_id(idx);
        let generation = e.generation;
        self.opens[idx] = OpenChan {
            // r < 2048 and c < MAX_CLIENTS, slot < MAX_SLOTS (128): all fit.
            relid: r as u16,
            client: c as u8,
            slot: slot as u8,
            generation,
            phase: Phase::GpadlPending,
            gpadl_state: GpadlState::None,
            open_state: OpenState::NotSent,
            flags: 0,
            gpadl,
            pages: list,
            out_pages,
            reason: TeardownReason::OpenFailed,
            deadline: 0,
            target_vp: self.target_vp,
            pending_vp: self.target_vp,
            signals: 0,
            signalled_at: None,
        };
        self.opens_in_use += 1;
        self.relids[r].state = RelidState::Active;
        self.relids[r].open = idx as u16;
        self.clients.entries[c].slots[slot] = idx as u16;
        self.write_status(k, c, slot, generation, ChannelStatus::Opening);
        let handle = ChannelHandle {
            slot: slot as u16,
            relid,
            generation,
        };
        // The GPADL: header, then bodies. A failed header leaves nothing on the host; a failed
        // body leaves a partial GPADL the host may hold, which the teardown path tears down.
        let Ok(msgs) = gpadl_messages(RelId(relid), gpadl, &pfns[..total]) else {
            self.begin_teardown(hv, k, idx, TeardownReason::OpenFailed, now);
            return Err(ClientError::NoResources);
        };
        for (n, msg) in msgs.enumerate() {
            if post(hv, &mut self.stats, self.conn.msg_conn, &msg).is_err() {
                if n > 0 {
                    self.opens[idx].gpadl_state = GpadlState::Created;
                }
                self.begin_teardown(hv, k, idx, TeardownReason::OpenFailed, now);
                return Err(ClientError::HostUnreachable);
            }
            self.opens[idx].gpadl_state = GpadlState::Pending;
        }
        self.opens[idx].deadline = self.deadline(now);
        info!("open {relid}: GPADL {gpadl} of {total} pages sent");
        Ok(handle)
    }

    /// Zero indices in both ring headers, feature bit 0 in the outbound one (§5.2).
    fn init_ring_headers<K: Kernel + ?Sized>(
        &self,
        k: &mut K,
        list: PageList,
        out_pages: usize,
    ) -> Result<(), KernelError> {
        let missing = KernelError::NoSuchPage;
        let out = self.arena.get(list, 0).ok_or(missing)?;
        let inb = self.arena.get(list, out_pages).ok_or(missing)?;
        k.write_page(out, 0, &[0; 16])?;
        k.write_page(out, FEATURE_BITS, &FEATURE_PENDING_SEND_SZ.to_le_bytes())?;
        k.write_page(inb, 0, &[0; 16])?;
        Ok(())
    }

    /// A fresh GPADL id naming open-table entry `idx`, never 0 and never one in quarantine.
    fn alloc_gpadl_id(&mut self, idx: usize) -> GpadlId {
        loop {
            self.gpadl_seq = (self.gpadl_seq + 1) & ((1 << (32 - GPADL_INDEX_BITS)) - 1);
            let id = gpadl_id(idx, self.gpadl_seq);
            if !self.quarantine.contains(id) {
                return id;
            }
        }
    }

    /// The open-table entry a GPADL id names, if it is in use with exactly that GPADL.
    pub(crate) fn open_by_gpadl(&self, id: GpadlId) -> Option<usize> {
        let idx = gpadl_index(id)?;
        let o = &self.opens[idx];
        (o.in_use() && o.gpadl == id).then_some(idx)
    }

    /// GPADL_CREATED.
    pub(crate) fn on_gpadl_created<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        g: &GpadlCreated,
        now: u64,
    ) {
        let Some(_) = self.checked_relid(g.child_relid, "GPADL_CREATED") else {
            return;
        };
        let Some(idx) = self.open_by_gpadl(g.gpadl) else {
            self.stats.hostile += 1;
            self.stats.unknown_gpadl += 1;
            warn!("GPADL_CREATED for unknown {}", g.gpadl);
            return;
        };
        let o = self.opens[idx];
        if u32::from(o.relid) != g.child_relid.0 {
            self.mismatched("GPADL_CREATED names the wrong relid");
            return;
        }
        if o.gpadl_state != GpadlState::Pending {
            self.mismatched("GPADL_CREATED not awaited");
            return;
        }
        self.opens[idx].deadline = 0;
        if g.creation_status != 0 {
            warn!("host refused {} (status {:#x})", g.gpadl, g.creation_status);
            self.opens[idx].gpadl_state = GpadlState::Gone;
        } else {
            self.opens[idx].gpadl_state = GpadlState::Created;
        }
        match o.phase {
            Phase::GpadlPending if g.creation_status == 0 => self.send_open(hv, k, idx, now),
            Phase::GpadlPending => self.begin_teardown(hv, k, idx, TeardownReason::OpenFailed, now),
            Phase::Teardown => self.advance_teardown(hv, k, idx, now),
            Phase::OpenPending | Phase::Open => {}
        }
    }

    /// OPENCHANNEL after the GPADL exists.
    fn send_open<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        idx: usize,
        now: u64,
    ) {
        let o = self.opens[idx];
        let msg = ChannelMessage::OpenChannel(OpenChannel {
            child_relid: RelId(u32::from(o.relid)),
            openid: o.gpadl.0,
            ring_gpadl: o.gpadl,
            target_vp: o.target_vp,
            downstream_ring_page_offset: u32::from(o.out_pages),
            userdata: [0; 120],
            signal: None,
        });
        if post(hv, &mut self.stats, self.conn.msg_conn, &msg).is_err() {
            self.begin_teardown(hv, k, idx, TeardownReason::OpenFailed, now);
            return;
        }
        let o = &mut self.opens[idx];
        o.phase = Phase::OpenPending;
        o.open_state = OpenState::Sent;
        o.deadline = now.saturating_add(self.reply_timeout).max(1);
    }

    /// OPENCHANNEL_RESULT.
    pub(crate) fn on_open_result<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        res: &OpenChannelResult,
        now: u64,
    ) {
        let Some(r) = self.checked_relid(res.child_relid, "OPENCHANNEL_RESULT") else {
            return;
        };
        let e = self.relids[r];
        if e.state != RelidState::Active {
            if e.unresolved_open.is_some_and(|g| g.0 == res.openid) {
                if self.conn.unload_sent {
                    // Nothing is posted after UNLOAD: the host forgets the channel with it.
                    info!(
                        "late OPENCHANNEL_RESULT for {} crossed UNLOAD: ignored",
                        res.child_relid
                    );
                    return;
                }
                self.resolve_open(hv, r, res.status == 0);
                return;
            }
            self.mismatched("OPENCHANNEL_RESULT for a relid with no open");
            return;
        }
        let idx = usize::from(e.open);
        let o = self.opens[idx];
        if o.gpadl.0 != res.openid || o.open_state != OpenState::Sent {
            self.mismatched("OPENCHANNEL_RESULT names the wrong openid or is not awaited");
            return;
        }
        let ok = res.status == 0;
        self.opens[idx].open_state = if ok {
            OpenState::Opened
        } else {
            OpenState::Refused
        };
        if o.phase == Phase::Teardown {
            // The teardown waited for this answer (unless a rescind closed the channel
            // already): now CLOSECHANNEL if the host opened it, then the GPADL.
            if !o.has(flags::CLOSE_SENT) {
                self.opens[idx].deadline = 0;
                self.advance_teardown(hv, k, idx, now);
            }
            return;
        }
        self.opens[idx].deadline = 0;
        if !ok {
            warn!(
                "host refused to open {} (status {:#x})",
                res.child_relid, res.status
            );
            self.begin_teardown(hv, k, idx, TeardownReason::OpenFailed, now);
            return;
        }
        let (c, slot) = (usize::from(o.client), usize::from(o.slot));
        let client = &self.clients.entries[c];
        let (id, base) = (client.id, slot * client.slot_pages as usize);
        for (i, (page, _)) in self.arena.iter_marked(o.pages).enumerate() {
            if let Err(err) = k.grant(page, id, base + i) {
                self.stats.kernel_errors += 1;
                warn!("granting ring page to {id}: {err}");
                self.opens[idx].flags |= flags::GRANTED;
                self.begin_teardown(hv, k, idx, TeardownReason::OpenFailed, now);
                return;
            }
        }
        self.opens[idx].flags |= flags::GRANTED;
        self.opens[idx].phase = Phase::Open;
        self.stats.opens += 1;
        self.write_status(k, c, slot, o.generation, ChannelStatus::Open);
        self.notify_client(k, id);
        info!("{} open for {id}", res.child_relid);
    }

    /// The late OPENCHANNEL_RESULT of an open whose teardown gave up waiting for it (or the
    /// rescind of its relid, `opened` true): if the host may have opened the channel,
    /// CLOSECHANNEL; then GPADL_TEARDOWN, whose GPADL_TORNDOWN frees the quarantined pages.
    /// The relid can be opened again.
    pub(crate) fn resolve_open<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        r: usize,
        opened: bool,
    ) {
        let Some(gpadl) = self.relids[r].unresolved_open.take() else {
            return;
        };
        // r < MAX_RELIDS (2048).
        let relid = RelId(r as u32);
        info!("late OPENCHANNEL_RESULT for {relid}: opened {opened}; closing");
        if opened {
            let msg = ChannelMessage::CloseChannel(CloseChannel { child_relid: relid });
            let _ = post(hv, &mut self.stats, self.conn.msg_conn, &msg);
        }
        let msg = ChannelMessage::GpadlTeardown(GpadlTeardown {
            child_relid: relid,
            gpadl,
        });
        let _ = post(hv, &mut self.stats, self.conn.msg_conn, &msg);
    }

    /// Moves an open channel's host interrupts to `vp` with MODIFYCHANNEL (4.1+). From 5.3 the
    /// host acknowledges it and the new VP is recorded then; before 5.3 it is recorded at once.
    pub fn retarget<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        relid: RelId,
        vp: VpIndex,
        now: u64,
    ) -> Result<(), RetargetError> {
        let v = self.conn.version.ok_or(RetargetError::NotSupported)?;
        if !v.supports_modifychannel() || !self.is_connected() {
            return Err(RetargetError::NotSupported);
        }
        let r = Driver::entry_index(relid).ok_or(RetargetError::NotOpen)?;
        let e = self.relids[r];
        if e.state != RelidState::Active {
            return Err(RetargetError::NotOpen);
        }
        let idx = usize::from(e.open);
        let o = self.opens[idx];
        if o.phase != Phase::Open {
            return Err(RetargetError::NotOpen);
        }
        if o.has(flags::MODIFY_PENDING) {
            return Err(RetargetError::Pending);
        }
        let msg = ChannelMessage::ModifyChannel(ModifyChannel {
            child_relid: relid,
            target_vp: vp,
        });
        post(hv, &mut self.stats, self.conn.msg_conn, &msg)
            .map_err(|_| RetargetError::PostFailed)?;
        self.stats.retargets += 1;
        let o = &mut self.opens[idx];
        if v.supports_modifychannel_response() {
            o.flags |= flags::MODIFY_PENDING;
            o.pending_vp = vp;
            o.deadline = now.saturating_add(self.reply_timeout).max(1);
        } else {
            o.target_vp = vp;
        }
        Ok(())
    }

    /// MODIFYCHANNEL_RESPONSE (5.3+).
    pub(crate) fn on_modify_response(&mut self, res: &ModifyChannelResponse) {
        let Some(r) = self.checked_relid(res.child_relid, "MODIFYCHANNEL_RESPONSE") else {
            return;
        };
        let e = self.relids[r];
        let idx = usize::from(e.open);
        if e.state != RelidState::Active || !self.opens[idx].has(flags::MODIFY_PENDING) {
            self.mismatched("MODIFYCHANNEL_RESPONSE not awaited");
            return;
        }
        let o = &mut self.opens[idx];
        o.flags &= !flags::MODIFY_PENDING;
        o.deadline = 0;
        if res.status == 0 {
            o.target_vp = o.pending_vp;
        } else {
            warn!(
                "host refused MODIFYCHANNEL for {} ({:#x})",
                res.child_relid, res.status
            );
        }
    }
}
