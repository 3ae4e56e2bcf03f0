//! Buffers: pool pages a client allocates for one of its open channels beyond the rings
//! (netvsc's receive and send buffers, storvsc's data buffers), granted into the channel's
//! window slot after its rings and, when asked, described to the host as a GPADL of the channel.
//!
//! A buffer follows the lifetime rule of its channel's rings (docs/lifetime.md#buffers): its
//! client's mappings are revoked first (on a free, or in step 2 of the channel's teardown,
//! whatever started it), then its GPADL is torn down (after the channel's CLOSECHANNEL in a
//! teardown, at once on a free) and GPADL_TORNDOWN awaited, and only when the channel's host
//! side has ended too (the host may still reach any page of the channel by frame number,
//! through a GPA-direct request it has not completed) are its pages zeroed and returned, before
//! the channel's teardown ends. A failed revoke taints the page (never reused) and the region of
//! the window slot that held it is never used again; an unconfirmed GPADL teardown quarantines
//! the pages under the buffer's GPADL id until a late GPADL_TORNDOWN.
//!
//! ```text
//! Free ─alloc, GPADL─▶ Creating ─GPADL_CREATED, grant─▶ Ready
//! Free ─alloc, no GPADL, grant────────────────────────▶ Ready
//!          Creating / Ready ─free, channel teardown─▶ Releasing(hold) ─channel ends─▶ Free
//! ```

use log::{info, warn};

use crate::control::{
    BufferHandle, BufferInfo, BufferLimit, ChannelHandle, ClientError, FRAMES_PER_RESPONSE,
    Response,
};
use crate::gpadl::gpadl_messages;
use crate::hv::Hypervisor;
use crate::ids::{BufferId, GpadlId, RelId};
use crate::kernel::Kernel;
use crate::msg::{ChannelMessage, GpadlCreated, GpadlTeardown};

use super::Driver;
use super::clients::ClientIdx;
use super::deadline::Deadline;
use super::pages::PageList;
use super::post::post;
use super::state::{ChanState, Close, GpadlHold};

/// Buffers the driver holds at once, for all clients.
pub const MAX_BUFFERS: usize = 64;
/// Buffers one client holds at once.
pub const MAX_CLIENT_BUFFERS: usize = 8;
/// Buffers one channel holds at once; a freed buffer counts until the channel closes (its
/// pages stay with the channel until the host has let go of it).
pub const MAX_CHANNEL_BUFFERS: usize = 4;
/// Pages of one buffer (1 MiB).
pub const MAX_BUFFER_PAGES: usize = 256;

/// What a buffer holds from its allocation until its pages go back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buf {
    /// The client that allocated it.
    pub client: ClientIdx,
    /// Its channel.
    pub relid: RelId,
    /// The channel's generation at the allocation (the channel handle's).
    pub chan_generation: u32,
    /// Its pages.
    pub pages: PageList,
    /// Its first page in the client's window.
    pub window_page: u32,
    /// Its GPADL, if one was asked for.
    pub gpadl: Option<GpadlId>,
}

/// The state of one buffer table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufState {
    /// No buffer.
    Free,
    /// GPADL_HEADER (and bodies) sent, GPADL_CREATED awaited; nothing granted yet.
    Creating {
        /// The buffer.
        buf: Buf,
        /// When to give up waiting.
        deadline: Deadline,
    },
    /// Granted into the client's window (its GPADL created, if any).
    Ready {
        /// The buffer.
        buf: Buf,
    },
    /// Revoked (or never granted): the host side of its GPADL in progress, then parked with
    /// the channel until the channel's host side ends.
    Releasing {
        /// The buffer.
        buf: Buf,
        /// What the host may hold of its GPADL (`None` for a buffer without one).
        hold: GpadlHold,
        /// When to give up on GPADL_CREATED (`hold` pending) or GPADL_TORNDOWN (torn down).
        deadline: Option<Deadline>,
    },
}

impl BufState {
    /// The buffer, unless the entry is free.
    pub fn buf(&self) -> Option<&Buf> {
        match self {
            Self::Creating { buf, .. } | Self::Ready { buf } | Self::Releasing { buf, .. } => {
                Some(buf)
            }
            Self::Free => None,
        }
    }

    /// Whether the host side is done with the buffer's GPADL (none, torn down, refused, or
    /// given up on): it waits only for its channel's end.
    fn settled(&self) -> bool {
        matches!(
            self,
            Self::Releasing {
                hold: GpadlHold::None | GpadlHold::Gone | GpadlHold::Quarantined,
                ..
            }
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Bumped when a buffer is allocated in the entry and when its release starts.
    generation: u32,
    state: BufState,
}

/// The buffer table.
#[derive(Debug, Clone)]
pub(crate) struct BufferTable {
    entries: [Entry; MAX_BUFFERS],
}

impl BufferTable {
    /// No buffers.
    pub const EMPTY: BufferTable = BufferTable {
        entries: [Entry {
            generation: 0,
            state: BufState::Free,
        }; MAX_BUFFERS],
    };

    /// Forgets every buffer, in place.
    pub fn reset(&mut self) {
        *self = BufferTable::EMPTY;
    }

    fn ids() -> impl Iterator<Item = BufferId> {
        // MAX_BUFFERS (64) fits a u16.
        (0..MAX_BUFFERS as u16).map(BufferId)
    }

    /// Entry `id`'s state (`Free` outside the table).
    pub fn state(&self, id: BufferId) -> BufState {
        self.entries
            .get(usize::from(id.0))
            .map_or(BufState::Free, |e| e.state)
    }

    /// Entry `id`'s generation.
    pub fn generation(&self, id: BufferId) -> u32 {
        self.entries
            .get(usize::from(id.0))
            .map_or(0, |e| e.generation)
    }

    /// Replaces entry `id`'s state, bumping its generation if `bump`.
    pub fn set(&mut self, id: BufferId, state: BufState, bump: bool) {
        if let Some(e) = self.entries.get_mut(usize::from(id.0)) {
            e.state = state;
            if bump {
                e.generation = e.generation.wrapping_add(1);
            }
        }
    }

    /// A free entry.
    fn free_entry(&self) -> Option<BufferId> {
        Self::ids().find(|&id| self.state(id) == BufState::Free)
    }

    /// The buffers of channel `relid` (in any state but free).
    pub fn of_channel(&self, relid: RelId) -> impl Iterator<Item = BufferId> + '_ {
        Self::ids().filter(move |&id| self.state(id).buf().is_some_and(|b| b.relid == relid))
    }

    /// Buffers client `c` holds.
    fn client_count(&self, c: ClientIdx) -> usize {
        Self::ids()
            .filter(|&id| self.state(id).buf().is_some_and(|b| b.client == c))
            .count()
    }

    /// The buffer whose GPADL is `gpadl`.
    pub fn by_gpadl(&self, gpadl: GpadlId) -> Option<BufferId> {
        Self::ids().find(|&id| self.state(id).buf().is_some_and(|b| b.gpadl == Some(gpadl)))
    }

    /// The page lists of every buffer.
    pub fn lists(&self) -> impl Iterator<Item = PageList> + '_ {
        Self::ids().filter_map(|id| self.state(id).buf().map(|b| b.pages))
    }

    /// Buffers held.
    pub fn count(&self) -> usize {
        Self::ids()
            .filter(|&id| self.state(id) != BufState::Free)
            .count()
    }

    /// The earliest passed deadline's buffer.
    pub fn expired(&self, now: u64) -> Option<BufferId> {
        Self::ids().find(|&id| {
            let deadline = match self.state(id) {
                BufState::Creating { deadline, .. } => Some(deadline),
                BufState::Releasing { deadline, .. } => deadline,
                BufState::Free | BufState::Ready { .. } => None,
            };
            deadline.is_some_and(|d| d.passed(now))
        })
    }
}

impl Driver {
    /// Pages held by buffers (granted, being created, or parked until their channel ends),
    /// less the tainted ones, which [`Driver::quarantined_pages`] counts already.
    pub fn buffer_pages(&self) -> usize {
        self.buffers
            .lists()
            .map(|l| l.len() - self.pool.tainted(l))
            .sum()
    }

    /// Buffers held, in any state.
    pub fn buffer_count(&self) -> usize {
        self.buffers.count()
    }

    /// The open channel a current handle of client `c` names.
    fn open_channel_of(
        &self,
        c: ClientIdx,
        handle: &ChannelHandle,
    ) -> Result<(RelId, super::state::Opened, crate::ids::SlotId), ClientError> {
        let relid = self.handle_channel(c, handle)?;
        match self.channels.state(relid) {
            ChanState::Open { ch, slot, .. } => Ok((relid, ch, slot)),
            _ => Err(ClientError::NotOpen),
        }
    }

    /// The live buffer `buffer` of client `c`'s channel `handle`: the channel handle must be
    /// current, and the buffer this client's, of that channel and at its generation.
    fn live_buffer(
        &self,
        c: ClientIdx,
        handle: &ChannelHandle,
        buffer: &BufferHandle,
    ) -> Result<(RelId, BufState), ClientError> {
        let relid = self.handle_channel(c, handle)?;
        let state = self.buffers.state(buffer.id);
        let ours = match state {
            BufState::Creating { buf, .. } | BufState::Ready { buf } => {
                buf.client == c && buf.relid == relid && buf.chan_generation == handle.generation
            }
            BufState::Free | BufState::Releasing { .. } => false,
        };
        if !ours || self.buffers.generation(buffer.id) != buffer.generation {
            return Err(ClientError::BufferGone);
        }
        Ok((relid, state))
    }

    /// A free region of `pages` window pages in the channel's slot, after its rings and its
    /// buffers; its first window page.
    fn window_region(
        &self,
        relid: RelId,
        ch: &super::state::Opened,
        slot: crate::ids::SlotId,
        pages: usize,
    ) -> Option<u32> {
        let slot_pages = self.clients.slot_pages(ch.client);
        let base = slot.index().checked_mul(slot_pages)?;
        let mut taken = heapless::Vec::<(usize, usize), MAX_CHANNEL_BUFFERS>::new();
        for id in self.buffers.of_channel(relid) {
            if let BufState::Creating { buf, .. } | BufState::Ready { buf } = self.buffers.state(id)
            {
                let start = (buf.window_page as usize).checked_sub(base)?;
                taken.push((start, start + buf.pages.len())).ok()?;
            }
        }
        taken.sort_unstable();
        let mut at = ch.pages.len();
        for (start, end) in taken {
            if start >= at + pages {
                break;
            }
            at = at.max(end);
        }
        if at + pages > slot_pages {
            return None;
        }
        u32::try_from(base + at).ok()
    }

    /// Client `c`'s AllocBuffer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn alloc_buffer<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        c: ClientIdx,
        handle: &ChannelHandle,
        pages: u32,
        gpadl: bool,
        now: u64,
    ) -> Result<Response, ClientError> {
        let (relid, ch, slot) = self.open_channel_of(c, handle)?;
        let n = pages as usize;
        if n == 0 || n > MAX_BUFFER_PAGES {
            return Err(ClientError::BadBufferSize);
        }
        if self.buffers.of_channel(relid).count() >= MAX_CHANNEL_BUFFERS {
            return Err(ClientError::BufferLimit(BufferLimit::Channel));
        }
        if self.buffers.client_count(c) >= MAX_CLIENT_BUFFERS {
            return Err(ClientError::BufferLimit(BufferLimit::Client));
        }
        let id = self
            .buffers
            .free_entry()
            .ok_or(ClientError::BufferLimit(BufferLimit::Driver))?;
        if ch.window_tainted {
            return Err(ClientError::WindowFull);
        }
        let window_page = self
            .window_region(relid, &ch, slot, n)
            .ok_or(ClientError::WindowFull)?;
        let list = self.pool.alloc(n).ok_or(ClientError::NoResources)?;
        let mut pfns = [0u64; MAX_BUFFER_PAGES];
        for (i, pfn) in pfns.iter_mut().enumerate().take(n) {
            let page = match k.take_page() {
                Ok(p) => p,
                Err(err) => {
                    warn!("buffer of {relid}: no page: {err}");
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
                    warn!("buffer of {relid}: page frame: {err}");
                    self.pool.zero_and_return(k, list, &mut self.stats);
                    return Err(ClientError::NoResources);
                }
            }
        }
        let mut buf = Buf {
            client: c,
            relid,
            chan_generation: handle.generation,
            pages: list,
            window_page,
            gpadl: None,
        };
        if !gpadl {
            self.buffers.set(id, BufState::Ready { buf }, true);
            if !self.grant_buffer(hv, k, id, now) {
                return Err(ClientError::NoResources);
            }
            self.stats.buffers_allocated += 1;
            return Ok(Response::Buffer(self.buffer_info(id, &buf)));
        }
        let ring = ch.gpadl;
        let (pool, buffers) = (&self.pool, &self.buffers);
        let gid = self.channels.alloc_gpadl(relid, |g| {
            g == ring || pool.in_quarantine(g) || buffers.by_gpadl(g).is_some()
        });
        buf.gpadl = Some(gid);
        let creating = BufState::Creating {
            buf,
            deadline: self.deadline(now),
        };
        self.buffers.set(id, creating, true);
        let buffer = BufferHandle {
            id,
            generation: self.buffers.generation(id),
        };
        let Ok(msgs) = gpadl_messages(relid, gid, &pfns[..n]) else {
            self.drop_unshared(k, id);
            return Err(ClientError::NoResources);
        };
        for (i, msg) in msgs.enumerate() {
            if post(hv, &mut self.stats, self.conn.msg_conn(), &msg).is_err() {
                if i == 0 {
                    // Nothing reached the host and nothing was granted.
                    self.drop_unshared(k, id);
                } else {
                    // The host may hold part of the GPADL: tear it down.
                    self.release_buffer(id, GpadlHold::Held, None);
                    self.advance_buffer(hv, id, now);
                }
                return Err(ClientError::HostUnreachable);
            }
        }
        info!("{relid}: buffer GPADL {gid} of {n} pages sent");
        Ok(Response::BufferCreating { buffer })
    }

    /// What the client learns of a granted buffer.
    fn buffer_info(&self, id: BufferId, buf: &Buf) -> BufferInfo {
        BufferInfo {
            buffer: BufferHandle {
                id,
                generation: self.buffers.generation(id),
            },
            window_page: buf.window_page,
            // A page list holds at most u16::MAX pages.
            pages: buf.pages.len() as u32,
            gpadl: buf.gpadl,
        }
    }

    /// Grants a `Ready` buffer's pages into its client's window. On a failure the buffer is
    /// released (every page revoked: the revoke covers any copy the grant made) and false
    /// returned.
    fn grant_buffer<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        id: BufferId,
        now: u64,
    ) -> bool {
        let BufState::Ready { buf } = self.buffers.state(id) else {
            return false;
        };
        let client = self.clients.id(buf.client);
        let first = buf.window_page as usize;
        let failed = (self.pool.pages(buf.pages).enumerate())
            .find_map(|(i, page)| k.grant(page, client, first + i).err());
        let Some(err) = failed else {
            return true;
        };
        self.stats.kernel_errors += 1;
        warn!("granting buffer page to {client}: {err}");
        let hold = if buf.gpadl.is_some() {
            GpadlHold::Held
        } else {
            GpadlHold::None
        };
        self.revoke_buffer(k, id);
        self.release_buffer(id, hold, None);
        self.advance_buffer(hv, id, now);
        false
    }

    /// Revokes a granted buffer's pages; a failure taints the page and marks the channel's
    /// window slot region as never to be used again (no more buffers on the channel; the slot
    /// is retired at its teardown). Returns how many revokes failed.
    fn revoke_buffer<K: Kernel + ?Sized>(&mut self, k: &mut K, id: BufferId) -> usize {
        let Some(buf) = self.buffers.state(id).buf().copied() else {
            return 0;
        };
        let failed = self.pool.revoke(k, buf.pages, buf.relid, &mut self.stats);
        if failed > 0 {
            self.channels.taint_window(buf.relid);
        }
        failed
    }

    /// Moves buffer `id` to `Releasing` with `hold` (its generation moves on: stale handles
    /// are refused from now on). The caller revoked what was granted.
    fn release_buffer(&mut self, id: BufferId, hold: GpadlHold, deadline: Option<Deadline>) {
        let Some(buf) = self.buffers.state(id).buf().copied() else {
            return;
        };
        let state = BufState::Releasing {
            buf,
            hold,
            deadline,
        };
        self.buffers.set(id, state, true);
    }

    /// A buffer nothing was shared of (never granted, its GPADL never reached the host): its
    /// pages go back at once.
    fn drop_unshared<K: Kernel + ?Sized>(&mut self, k: &mut K, id: BufferId) {
        if let Some(buf) = self.buffers.state(id).buf().copied() {
            self.pool.zero_and_return(k, buf.pages, &mut self.stats);
        }
        self.buffers.set(id, BufState::Free, true);
    }

    /// Whether the host side of channel `relid` lets a buffer's GPADL be torn down now: the
    /// channel is open (the client freed the buffer), or its teardown sent CLOSECHANNEL (or
    /// owes none), as the host expects the channel's GPADLs torn down after its close.
    fn buffer_teardown_allowed(&self, relid: RelId) -> bool {
        match self.channels.state(relid) {
            ChanState::Open { .. } => true,
            ChanState::TearingDown { td, .. } => {
                matches!(
                    td.close,
                    Close::Nothing | Close::Sent | Close::SentBeforeResult
                )
            }
            _ => false,
        }
    }

    /// Runs the host side of a releasing buffer as far as it can go: GPADL_TEARDOWN once the
    /// channel allows it. Returns whether the buffer is settled (waits only for its channel's
    /// end).
    fn advance_buffer<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        id: BufferId,
        now: u64,
    ) -> bool {
        let state = self.buffers.state(id);
        let BufState::Releasing { buf, hold, .. } = state else {
            return state == BufState::Free;
        };
        if hold != GpadlHold::Held {
            return state.settled();
        }
        let Some(gpadl) = buf.gpadl else {
            return true;
        };
        if !self.buffer_teardown_allowed(buf.relid) {
            return false;
        }
        let msg = ChannelMessage::GpadlTeardown(GpadlTeardown {
            child_relid: buf.relid,
            gpadl,
        });
        let next = if post(hv, &mut self.stats, self.conn.msg_conn(), &msg).is_ok() {
            BufState::Releasing {
                buf,
                hold: GpadlHold::TeardownSent,
                deadline: Some(self.deadline(now)),
            }
        } else {
            // The host may still hold the GPADL and was not told: never reuse the pages.
            BufState::Releasing {
                buf,
                hold: GpadlHold::Quarantined,
                deadline: None,
            }
        };
        self.buffers.set(id, next, false);
        next.settled()
    }

    /// Teardown step 2 for channel `relid`'s buffers: each granted one is revoked, each moves
    /// to `Releasing`. Returns how many revokes failed.
    pub(crate) fn revoke_channel_buffers<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        relid: RelId,
    ) -> usize {
        let mut failed = 0;
        let mut ids = heapless::Vec::<BufferId, MAX_BUFFERS>::new();
        ids.extend(self.buffers.of_channel(relid));
        for id in ids {
            match self.buffers.state(id) {
                BufState::Creating { deadline, .. } => {
                    self.release_buffer(id, GpadlHold::Pending, Some(deadline));
                }
                BufState::Ready { buf } => {
                    failed += self.revoke_buffer(k, id);
                    let hold = if buf.gpadl.is_some() {
                        GpadlHold::Held
                    } else {
                        GpadlHold::None
                    };
                    self.release_buffer(id, hold, None);
                }
                BufState::Free | BufState::Releasing { .. } => {}
            }
        }
        failed
    }

    /// Teardown step 3c: the host side of channel `relid`'s buffers. Returns whether every
    /// buffer is settled, so the teardown may end.
    pub(crate) fn advance_channel_buffers<H: Hypervisor + ?Sized>(
        &mut self,
        hv: &mut H,
        relid: RelId,
        now: u64,
    ) -> bool {
        let mut ids = heapless::Vec::<BufferId, MAX_BUFFERS>::new();
        ids.extend(self.buffers.of_channel(relid));
        let mut settled = true;
        for id in ids {
            settled &= self.advance_buffer(hv, id, now);
        }
        settled
    }

    /// Teardown step 5 for channel `relid`'s buffers, once the channel's host side ended:
    /// zero and return their pages, or quarantine them under the buffer's GPADL (its teardown
    /// was never confirmed) or under the ring's `ring_quarantine` GPADL (the host never let
    /// go of the channel, so a GPA-direct request may still reach them).
    pub(crate) fn finish_channel_buffers<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        relid: RelId,
        ring_quarantine: Option<GpadlId>,
    ) {
        let mut ids = heapless::Vec::<BufferId, MAX_BUFFERS>::new();
        ids.extend(self.buffers.of_channel(relid));
        for id in ids {
            let BufState::Releasing { buf, hold, .. } = self.buffers.state(id) else {
                // Not reachable: the teardown revoked every buffer in step 2.
                continue;
            };
            match (hold, buf.gpadl, ring_quarantine) {
                (GpadlHold::Quarantined, Some(g), _) | (_, _, Some(g)) => {
                    self.pool.quarantine(g, buf.pages, &mut self.stats);
                }
                _ => self.pool.zero_and_return(k, buf.pages, &mut self.stats),
            }
            self.stats.buffers_released += 1;
            self.buffers.set(id, BufState::Free, true);
        }
    }

    /// Client `c`'s FreeBuffer: revoke now, then the GPADL's teardown; the pages stay with
    /// the channel until it ends.
    pub(crate) fn free_buffer<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        c: ClientIdx,
        handle: &ChannelHandle,
        buffer: &BufferHandle,
        now: u64,
    ) -> Result<Response, ClientError> {
        let (_, state) = self.live_buffer(c, handle, buffer)?;
        match state {
            BufState::Creating { deadline, .. } => {
                self.release_buffer(buffer.id, GpadlHold::Pending, Some(deadline));
            }
            BufState::Ready { buf } => {
                self.revoke_buffer(k, buffer.id);
                let hold = if buf.gpadl.is_some() {
                    GpadlHold::Held
                } else {
                    GpadlHold::None
                };
                self.release_buffer(buffer.id, hold, None);
            }
            BufState::Free | BufState::Releasing { .. } => return Err(ClientError::BufferGone),
        }
        self.advance_buffer(hv, buffer.id, now);
        Ok(Response::BufferFreed)
    }

    /// Client `c`'s BufferStatus.
    pub(crate) fn buffer_status(
        &self,
        c: ClientIdx,
        handle: &ChannelHandle,
        buffer: &BufferHandle,
    ) -> Result<Response, ClientError> {
        match self.live_buffer(c, handle, buffer)? {
            (_, BufState::Ready { buf }) => Ok(Response::Buffer(self.buffer_info(buffer.id, &buf))),
            _ => Ok(Response::BufferCreating { buffer: *buffer }),
        }
    }

    /// Client `c`'s BufferFrames.
    pub(crate) fn buffer_frames<K: Kernel + ?Sized>(
        &mut self,
        k: &mut K,
        c: ClientIdx,
        handle: &ChannelHandle,
        buffer: &BufferHandle,
        start: u32,
    ) -> Result<Response, ClientError> {
        let (_, state) = self.live_buffer(c, handle, buffer)?;
        let BufState::Ready { buf } = state else {
            return Err(ClientError::BufferNotReady);
        };
        let total = buf.pages.len();
        if start as usize >= total {
            return Err(ClientError::BadBufferSize);
        }
        let mut frames = heapless::Vec::<u64, FRAMES_PER_RESPONSE>::new();
        for page in self
            .pool
            .pages(buf.pages)
            .skip(start as usize)
            .take(FRAMES_PER_RESPONSE)
        {
            match k.page_frame(page) {
                Ok(f) => {
                    let _ = frames.push(f);
                }
                Err(e) => {
                    self.stats.kernel_errors += 1;
                    warn!("frame of buffer page {page}: {e}");
                    return Err(ClientError::NoResources);
                }
            }
        }
        Ok(Response::Frames {
            start,
            frames,
            // A page list holds at most u16::MAX pages.
            total: total as u32,
        })
    }

    /// GPADL_CREATED for a buffer's GPADL; false if `g` names no buffer.
    pub(crate) fn on_buffer_gpadl_created<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        g: &GpadlCreated,
        now: u64,
    ) -> bool {
        let Some(id) = self.buffers.by_gpadl(g.gpadl) else {
            return false;
        };
        let state = self.buffers.state(id);
        if state.buf().is_some_and(|b| b.relid != g.child_relid) {
            self.mismatched("GPADL_CREATED names the wrong relid");
            return true;
        }
        let created = g.creation_status == 0;
        if !created {
            warn!(
                "host refused buffer {} (status {:#x})",
                g.gpadl, g.creation_status
            );
        }
        match state {
            BufState::Creating { buf, .. } => {
                let client = self.clients.id(buf.client);
                if created {
                    self.buffers.set(id, BufState::Ready { buf }, false);
                    if self.grant_buffer(hv, k, id, now) {
                        self.stats.buffers_allocated += 1;
                        info!("{}: buffer {} ready for {client}", buf.relid, g.gpadl);
                    }
                } else {
                    // Never granted, and the host holds nothing.
                    self.drop_unshared(k, id);
                }
                self.notify_client(k, client);
            }
            BufState::Releasing {
                buf,
                hold: GpadlHold::Pending,
                ..
            } => {
                let hold = if created {
                    GpadlHold::Held
                } else {
                    GpadlHold::Gone
                };
                let next = BufState::Releasing {
                    buf,
                    hold,
                    deadline: None,
                };
                self.buffers.set(id, next, false);
                self.advance_buffer(hv, id, now);
                self.advance_teardown(hv, k, buf.relid, now);
            }
            _ => self.mismatched("GPADL_CREATED not awaited"),
        }
        true
    }

    /// GPADL_TORNDOWN for a buffer's GPADL; false if `gpadl` names no buffer.
    pub(crate) fn on_buffer_gpadl_torndown<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        gpadl: GpadlId,
        now: u64,
    ) -> bool {
        let Some(id) = self.buffers.by_gpadl(gpadl) else {
            return false;
        };
        match self.buffers.state(id) {
            BufState::Releasing {
                buf,
                hold: GpadlHold::TeardownSent,
                ..
            } => {
                let next = BufState::Releasing {
                    buf,
                    hold: GpadlHold::Gone,
                    deadline: None,
                };
                self.buffers.set(id, next, false);
                self.advance_teardown(hv, k, buf.relid, now);
            }
            _ => self.mismatched("GPADL_TORNDOWN for a buffer GPADL not being torn down"),
        }
        true
    }

    /// Buffer replies that did not come in time.
    pub(crate) fn buffer_timeouts<H: Hypervisor + ?Sized, K: Kernel + ?Sized>(
        &mut self,
        hv: &mut H,
        k: &mut K,
        now: u64,
    ) {
        for _ in 0..MAX_BUFFERS {
            let Some(id) = self.buffers.expired(now) else {
                return;
            };
            self.stats.timeouts += 1;
            match self.buffers.state(id) {
                BufState::Creating { buf, .. } => {
                    warn!("{}: no GPADL_CREATED for a buffer", buf.relid);
                    // The host may have created it without telling us: tear it down.
                    self.release_buffer(id, GpadlHold::Held, None);
                    self.advance_buffer(hv, id, now);
                    let client = self.clients.id(buf.client);
                    self.notify_client(k, client);
                }
                BufState::Releasing { buf, hold, .. } => {
                    let hold = match hold {
                        GpadlHold::Pending => GpadlHold::Held,
                        GpadlHold::TeardownSent => {
                            warn!("{}: no GPADL_TORNDOWN for a buffer", buf.relid);
                            GpadlHold::Quarantined
                        }
                        other => other,
                    };
                    let next = BufState::Releasing {
                        buf,
                        hold,
                        deadline: None,
                    };
                    self.buffers.set(id, next, false);
                    self.advance_buffer(hv, id, now);
                    self.advance_teardown(hv, k, buf.relid, now);
                }
                BufState::Free | BufState::Ready { .. } => return,
            }
        }
    }
}
