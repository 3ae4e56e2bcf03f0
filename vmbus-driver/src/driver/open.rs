//! Opening a channel for a client: ring pages from the pool, header pages initialised, the ring
//! GPADL, OPENCHANNEL, then the grant into the client's window slot. Also MODIFYCHANNEL.

use core::fmt;

use log::{info, warn};

use crate::control::{ChannelHandle, ChannelStatus, ClientError};
use crate::gpadl::gpadl_messages;
use crate::hv::Hypervisor;
use crate::ids::{RelId, SlotId, VpIndex};
use crate::kernel::{Kernel, KernelError};
use crate::msg::{
    ChannelMessage, GpadlCreated, GpadlTeardown, ModifyChannel, ModifyChannelResponse, OpenChannel,
    OpenChannelResult,
};
use crate::ring::FEATURE_PENDING_SEND_SZ;

use super::Driver;
use super::channels::MAX_CHANNEL_PAGES;
use super::clients::ClientIdx;
use super::pages::PageList;
use super::post::post;
use super::state::{ChanState, Close, GpadlHold, Opened, Retarget, TeardownReason};
use super::teardown::Start;

/// Offset of the feature bits in a ring header page (docs/protocol.md#the-ring-header-page).
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
    /// Client `c`'s Open request.
    pub(crate) fn open_channel<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        c: ClientIdx,
        relid: RelId,
        (out_pages, in_pages): (u16, u16),
        now: u64,
    ) -> Result<ChannelHandle, ClientError> {
        if !self.is_connected() {
            return Err(ClientError::NotConnected);
        }
        let offer = self
            .channels
            .offer_of(relid)
            .ok_or(ClientError::NoSuchOffer)?;
        let state = self.channels.state(relid);
        // Permission first: an offer the client may not open looks exactly like no offer, so
        // a client learns nothing about other classes' channels.
        if state.rescinded() || !self.clients.allows(c, &offer.class, &offer.instance) {
            return Err(ClientError::NoSuchOffer);
        }
        if state != ChanState::Offered {
            return Err(ClientError::Busy);
        }
        if offer.sub_index != 0 {
            // A sub-channel belongs to its primary: only the primary's owner may open it.
            let p = self
                .channels
                .primary_of(relid)
                .ok_or(ClientError::NotPermitted)?;
            match self.channels.state(p) {
                ChanState::Open { ch, .. } if ch.client == c => {}
                _ => return Err(ClientError::NotPermitted),
            }
        }
        let total = usize::from(out_pages) + usize::from(in_pages);
        if out_pages < 2
            || in_pages < 2
            || total > MAX_CHANNEL_PAGES
            || total > self.clients.slot_pages(c)
        {
            return Err(ClientError::BadRingSize);
        }
        let slot = self.channels.free_slot(c).ok_or(ClientError::NoFreeSlot)?;
        let list = self.pool.alloc(total).ok_or(ClientError::NoResources)?;
        let mut pfns = [0u64; MAX_CHANNEL_PAGES];
        for (i, pfn) in pfns.iter_mut().enumerate().take(total) {
            let page = match k.take_page() {
                Ok(p) => p,
                Err(err) => {
                    warn!("open {relid}: no ring page: {err}");
                    self.pool.zero_and_return(k, list, &mut self.stats);
                    return Err(ClientError::NoResources);
                }
            };
            self.stats.pages_taken += 1;
            self.pool.set(list, i, page);
            match k.page_frame(page) {
                Ok(f) => *pfn = f,
                Err(err) => {
                    self.stats.kernel_errors += 1;
                    warn!("open {relid}: page frame: {err}");
                    self.pool.zero_and_return(k, list, &mut self.stats);
                    return Err(ClientError::NoResources);
                }
            }
        }
        if let Err(err) = self.init_ring_headers(k, list, usize::from(out_pages)) {
            self.stats.kernel_errors += 1;
            warn!("open {relid}: ring header: {err}");
            self.pool.zero_and_return(k, list, &mut self.stats);
            return Err(ClientError::NoResources);
        }
        let pool = &self.pool;
        let gpadl = self
            .channels
            .alloc_gpadl(relid, |id| pool.in_quarantine(id));
        let generation = self.channels.generation(relid);
        let ch = Opened {
            client: c,
            gpadl,
            pages: list,
            out_pages,
            target_vp: self.target_vp,
            signals: 0,
            window_tainted: false,
        };
        let state = ChanState::GpadlPending {
            ch,
            slot,
            deadline: self.deadline(now),
        };
        if !self.channels.bind(relid, c, slot, state) {
            // Both were checked free above.
            self.pool.zero_and_return(k, list, &mut self.stats);
            return Err(ClientError::Busy);
        }
        self.write_status(k, c, slot, generation, ChannelStatus::Opening);
        let handle = ChannelHandle {
            slot,
            relid,
            generation,
        };
        // The GPADL: header, then bodies. A failed header leaves nothing on the host; a failed
        // body leaves a partial GPADL the host may hold, which the teardown path tears down.
        let failed = TeardownReason::OpenFailed;
        let Ok(msgs) = gpadl_messages(relid, gpadl, &pfns[..total]) else {
            self.start_teardown(hv, k, relid, failed, Start::unopened(GpadlHold::None), now);
            return Err(ClientError::NoResources);
        };
        for (n, msg) in msgs.enumerate() {
            if post(hv, &mut self.stats, self.conn.msg_conn(), &msg).is_err() {
                let held = if n > 0 {
                    GpadlHold::Held
                } else {
                    GpadlHold::None
                };
                self.start_teardown(hv, k, relid, failed, Start::unopened(held), now);
                return Err(ClientError::HostUnreachable);
            }
        }
        info!("open {relid}: GPADL {gpadl} of {total} pages sent");
        Ok(handle)
    }

    /// Zero indices in both ring headers, feature bit 0 in the outbound one
    /// (docs/protocol.md#the-ring-header-page).
    fn init_ring_headers<K: Kernel + ?Sized>(
        &self,
        k: &mut K,
        list: PageList,
        out_pages: usize,
    ) -> Result<(), KernelError> {
        let missing = KernelError::NoSuchPage;
        let out = self.pool.get(list, 0).ok_or(missing)?;
        let inb = self.pool.get(list, out_pages).ok_or(missing)?;
        k.write_page(out, 0, &[0; 16])?;
        k.write_page(out, FEATURE_BITS, &FEATURE_PENDING_SEND_SZ.to_le_bytes())?;
        k.write_page(inb, 0, &[0; 16])?;
        Ok(())
    }

    /// GPADL_CREATED.
    pub(crate) fn on_gpadl_created<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        g: &GpadlCreated,
        now: u64,
    ) {
        if !self.check_relid(g.child_relid, "GPADL_CREATED") {
            return;
        }
        let Some(relid) = self.channels.by_gpadl(g.gpadl) else {
            if self.on_buffer_gpadl_created(hv, k, g, now) {
                return;
            }
            self.stats.hostile += 1;
            self.stats.unknown_gpadl += 1;
            warn!("GPADL_CREATED for unknown {}", g.gpadl);
            return;
        };
        if relid != g.child_relid {
            self.mismatched("GPADL_CREATED names the wrong relid");
            return;
        }
        let state = self.channels.state(relid);
        let awaited = match state {
            ChanState::GpadlPending { .. } => true,
            ChanState::TearingDown { td, .. } => td.gpadl == GpadlHold::Pending,
            _ => false,
        };
        if !awaited {
            self.mismatched("GPADL_CREATED not awaited");
            return;
        }
        let created = g.creation_status == 0;
        if !created {
            warn!("host refused {} (status {:#x})", g.gpadl, g.creation_status);
        }
        let hold = if created {
            GpadlHold::Held
        } else {
            GpadlHold::Gone
        };
        match state {
            ChanState::GpadlPending { ch, slot, .. } if created => {
                self.send_open(hv, k, relid, ch, slot, now)
            }
            ChanState::GpadlPending { .. } => {
                let failed = TeardownReason::OpenFailed;
                self.start_teardown(hv, k, relid, failed, Start::unopened(hold), now);
            }
            ChanState::TearingDown { ch, mut td } => {
                td.gpadl = hold;
                td.deadline = None;
                self.channels
                    .set_state(relid, ChanState::TearingDown { ch, td });
                self.advance_teardown(hv, k, relid, now);
            }
            _ => {}
        }
    }

    /// OPENCHANNEL after the GPADL exists.
    fn send_open<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        ch: Opened,
        slot: SlotId,
        now: u64,
    ) {
        let msg = ChannelMessage::OpenChannel(OpenChannel {
            child_relid: relid,
            openid: ch.gpadl.0,
            ring_gpadl: ch.gpadl,
            target_vp: ch.target_vp,
            downstream_ring_page_offset: u32::from(ch.out_pages),
            userdata: [0; 120],
            signal: None,
        });
        if post(hv, &mut self.stats, self.conn.msg_conn(), &msg).is_err() {
            let failed = TeardownReason::OpenFailed;
            self.start_teardown(hv, k, relid, failed, Start::unopened(GpadlHold::Held), now);
            return;
        }
        let state = ChanState::OpenPending {
            ch,
            slot,
            deadline: self.deadline(now),
        };
        self.channels.set_state(relid, state);
    }

    /// OPENCHANNEL_RESULT.
    pub(crate) fn on_open_result<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        res: &OpenChannelResult,
        now: u64,
    ) {
        let relid = res.child_relid;
        if !self.check_relid(relid, "OPENCHANNEL_RESULT") {
            return;
        }
        let ok = res.status == 0;
        let state = self.channels.state(relid);
        match state {
            ChanState::OpenUnresolved { gpadl } if gpadl.0 == res.openid => {
                if self.conn.unload_sent() {
                    // Nothing is posted after UNLOAD: the host forgets the channel with it.
                    info!("late OPENCHANNEL_RESULT for {relid} crossed UNLOAD: ignored");
                    return;
                }
                self.resolve_open(hv, relid, ok);
            }
            ChanState::OpenPending { ch, slot, .. } if ch.gpadl.0 == res.openid => {
                self.opened(hv, k, relid, ch, slot, res, now);
            }
            ChanState::TearingDown { ch, mut td } if ch.gpadl.0 == res.openid => match td.close {
                Close::AwaitingResult => {
                    // The teardown waited for this answer: now CLOSECHANNEL if the host opened
                    // the channel, then the GPADL.
                    td.close = if ok { Close::Owed } else { Close::Nothing };
                    td.deadline = None;
                    self.channels
                        .set_state(relid, ChanState::TearingDown { ch, td });
                    self.advance_teardown(hv, k, relid, now);
                }
                Close::SentBeforeResult => {
                    // A rescind closed the channel already.
                    td.close = Close::Sent;
                    self.channels
                        .set_state(relid, ChanState::TearingDown { ch, td });
                }
                Close::Nothing | Close::Owed | Close::Sent => {
                    self.mismatched("OPENCHANNEL_RESULT names the wrong openid or is not awaited")
                }
            },
            _ if state.opened().is_some() => {
                self.mismatched("OPENCHANNEL_RESULT names the wrong openid or is not awaited")
            }
            _ => self.mismatched("OPENCHANNEL_RESULT for a relid with no open"),
        }
    }

    /// The OPENCHANNEL_RESULT `res` of the open of `relid`: on success the grant into the
    /// client's window slot.
    #[allow(clippy::too_many_arguments)]
    fn opened<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        relid: RelId,
        ch: Opened,
        slot: SlotId,
        res: &OpenChannelResult,
        now: u64,
    ) {
        let failed = TeardownReason::OpenFailed;
        if res.status != 0 {
            warn!("host refused to open {relid} (status {:#x})", res.status);
            self.start_teardown(hv, k, relid, failed, Start::unopened(GpadlHold::Held), now);
            return;
        }
        let c = ch.client;
        let (id, base) = (
            self.clients.id(c),
            slot.index() * self.clients.slot_pages(c),
        );
        let grant_failed = (self.pool.pages(ch.pages).enumerate())
            .find_map(|(i, page)| k.grant(page, id, base + i).err());
        if let Some(err) = grant_failed {
            self.stats.kernel_errors += 1;
            warn!("granting ring page to {id}: {err}");
            // The pages granted before the failure are mapped in the client's window.
            self.start_teardown(hv, k, relid, failed, Start::granted(), now);
            return;
        }
        let state = ChanState::Open {
            ch,
            slot,
            signalled_at: None,
            retarget: None,
        };
        self.channels.set_state(relid, state);
        self.stats.opens += 1;
        let generation = self.channels.generation(relid);
        self.write_status(k, c, slot, generation, ChannelStatus::Open);
        self.notify_client(k, id);
        info!("{relid} open for {id}");
    }

    /// The late OPENCHANNEL_RESULT of an open whose teardown gave up waiting for it (or the
    /// rescind of its relid, `opened` true): if the host may have opened the channel,
    /// CLOSECHANNEL; then GPADL_TEARDOWN, whose GPADL_TORNDOWN frees the quarantined pages.
    /// The relid can be opened again.
    pub(crate) fn resolve_open<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        relid: RelId,
        opened: bool,
    ) {
        let ChanState::OpenUnresolved { gpadl } = self.channels.state(relid) else {
            return;
        };
        self.channels.set_state(relid, ChanState::Offered);
        info!("late OPENCHANNEL_RESULT for {relid}: opened {opened}; closing");
        if opened {
            self.post_close(hv, relid);
        }
        let msg = ChannelMessage::GpadlTeardown(GpadlTeardown {
            child_relid: relid,
            gpadl,
        });
        let _ = post(hv, &mut self.stats, self.conn.msg_conn(), &msg);
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
        let v = self.conn.version().ok_or(RetargetError::NotSupported)?;
        if !v.supports_modifychannel() || !self.is_connected() {
            return Err(RetargetError::NotSupported);
        }
        let ChanState::Open {
            mut ch,
            slot,
            signalled_at,
            retarget,
        } = self.channels.state(relid)
        else {
            return Err(RetargetError::NotOpen);
        };
        if retarget.is_some() {
            return Err(RetargetError::Pending);
        }
        let msg = ChannelMessage::ModifyChannel(ModifyChannel {
            child_relid: relid,
            target_vp: vp,
        });
        post(hv, &mut self.stats, self.conn.msg_conn(), &msg)
            .map_err(|_| RetargetError::PostFailed)?;
        self.stats.retargets += 1;
        let retarget = if v.supports_modifychannel_response() {
            Some(Retarget {
                vp,
                deadline: self.deadline(now),
            })
        } else {
            ch.target_vp = vp;
            None
        };
        let state = ChanState::Open {
            ch,
            slot,
            signalled_at,
            retarget,
        };
        self.channels.set_state(relid, state);
        Ok(())
    }

    /// MODIFYCHANNEL_RESPONSE (5.3+).
    pub(crate) fn on_modify_response(&mut self, res: &ModifyChannelResponse) {
        let relid = res.child_relid;
        if !self.check_relid(relid, "MODIFYCHANNEL_RESPONSE") {
            return;
        }
        let ChanState::Open {
            mut ch,
            slot,
            signalled_at,
            retarget: Some(pending),
        } = self.channels.state(relid)
        else {
            self.mismatched("MODIFYCHANNEL_RESPONSE not awaited");
            return;
        };
        if res.status == 0 {
            ch.target_vp = pending.vp;
        } else {
            warn!("host refused MODIFYCHANNEL for {relid} ({:#x})", res.status);
        }
        let state = ChanState::Open {
            ch,
            slot,
            signalled_at,
            retarget: None,
        };
        self.channels.set_state(relid, state);
    }
}
