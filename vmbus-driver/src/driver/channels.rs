//! The channel table: one entry per possible relid (its offer, generation and [`ChanState`]),
//! each client's channel slots, and the GPADL ids that name channels.
//!
//! The table has one compact entry per relid (2048, the SINT2 event-flag count), so a lookup from
//! an event flag, a host message or a client's handle is one bounds-checked index. A channel a
//! client opened lives in its relid's entry (its state carries the open's data), a client slot
//! names the relid bound to it, and a GPADL id carries its relid in its low bits.

use crate::control::MAX_SLOTS;
use crate::guid::Guid;
use crate::ids::{ConnectionId, GpadlId, RelId, SlotId};

use super::clients::{ClientIdx, Clients};
use super::config::MAX_CLIENTS;
use super::state::ChanState;

/// Relids the table covers: 1..2048 (0 is never a channel; the event bitmap has 2048 flags).
pub const MAX_RELIDS: usize = 2048;
/// Channels that can be open (or opening, or being torn down) at once: every relid.
pub const MAX_OPEN: usize = MAX_RELIDS - 1;
/// Most pages (both rings) of one channel.
pub const MAX_CHANNEL_PAGES: usize = 256;

/// Bits of a GPADL id that hold the relid (never 0, so neither is the id, and a reply's GPADL
/// finds its channel in O(1)); the bits above count allocations.
const GPADL_RELID_BITS: u32 = 11;
const _: () = assert!(MAX_RELIDS == 1 << GPADL_RELID_BITS);

/// What the host's offer says about a relid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer {
    /// Device class.
    pub class: Guid,
    /// Device instance.
    pub instance: Guid,
    /// Connection id for HvCallSignalEvent.
    pub connection_id: ConnectionId,
    /// 0 for a primary channel.
    pub sub_index: u16,
    /// The monitor id (below 128) when the host allocated one: the channel may be signalled
    /// through the monitor page (docs/protocol.md#monitor-pages).
    pub monitor: Option<u8>,
}

impl Offer {
    const NONE: Offer = Offer {
        class: Guid::NIL,
        instance: Guid::NIL,
        connection_id: ConnectionId(0),
        sub_index: 0,
        monitor: None,
    };

    /// Whether both offers are of the same device (class and instance).
    fn same_device(&self, other: &Offer) -> bool {
        self.class == other.class && self.instance == other.instance
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Meaningful unless the state is `Free`.
    offer: Offer,
    /// Bumped on each new offer and at the start of each teardown (docs/lifetime.md#generations).
    generation: u32,
    state: ChanState,
}

impl Entry {
    const EMPTY: Entry = Entry {
        offer: Offer::NONE,
        generation: 0,
        state: ChanState::Free,
    };
}

/// A client's channel slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Holds no channel.
    Free,
    /// Holds the channel being opened or open under this relid.
    Bound(RelId),
    /// Retired for good: revoking a page granted into it failed, so the client may still map
    /// that page there, and nothing is ever granted into the slot again.
    Retired,
}

/// One client's slots.
#[derive(Debug, Clone, Copy)]
struct ClientSlots {
    /// Slots configured (the rest of the array is unused).
    count: u16,
    slots: [Slot; MAX_SLOTS],
    /// Monotonic event counter per slot (published in the status record).
    events: [u32; MAX_SLOTS],
}

impl ClientSlots {
    const EMPTY: ClientSlots = ClientSlots {
        count: 0,
        slots: [Slot::Free; MAX_SLOTS],
        events: [0; MAX_SLOTS],
    };

    fn index(&self, slot: SlotId) -> Option<usize> {
        (slot.0 < self.count).then_some(slot.index())
    }
}

/// The channel table.
#[derive(Debug, Clone)]
pub(crate) struct ChannelTable {
    entries: [Entry; MAX_RELIDS],
    clients: [ClientSlots; MAX_CLIENTS],
    /// Offered sub-channels: while there are none, a primary's teardown skips the search.
    sub_offers: usize,
    /// GPADL allocations so far (the id's high bits).
    gpadl_seq: u32,
}

impl ChannelTable {
    /// No offers, no slots.
    pub const EMPTY: ChannelTable = ChannelTable {
        entries: [Entry::EMPTY; MAX_RELIDS],
        clients: [ClientSlots::EMPTY; MAX_CLIENTS],
        sub_offers: 0,
        gpadl_seq: 0,
    };

    /// Forgets everything, in place, and gives each of `clients` its slots.
    pub fn reset(&mut self, clients: &Clients) {
        for e in self.entries.iter_mut() {
            *e = Entry::EMPTY;
        }
        for s in self.clients.iter_mut() {
            *s = ClientSlots::EMPTY;
        }
        for c in clients.all() {
            self.clients[c.get()].count = clients.max_channels(c);
        }
        self.sub_offers = 0;
        self.gpadl_seq = 0;
    }

    /// Whether `relid` is one the table covers (1..2048).
    pub fn in_range(relid: RelId) -> bool {
        (1..MAX_RELIDS as u32).contains(&relid.0)
    }

    /// Every relid the table covers, in order.
    pub fn relids() -> impl Iterator<Item = RelId> {
        (1..MAX_RELIDS as u32).map(RelId)
    }

    fn entry(&self, relid: RelId) -> Option<&Entry> {
        if Self::in_range(relid) {
            self.entries.get(relid.0 as usize)
        } else {
            None
        }
    }

    fn entry_mut(&mut self, relid: RelId) -> Option<&mut Entry> {
        if Self::in_range(relid) {
            self.entries.get_mut(relid.0 as usize)
        } else {
            None
        }
    }

    /// The relid's state (`Free` outside the table).
    pub fn state(&self, relid: RelId) -> ChanState {
        self.entry(relid).map_or(ChanState::Free, |e| e.state)
    }

    /// Replaces the state of an offered relid. An offer comes and goes only with
    /// [`ChannelTable::offer`] and [`ChannelTable::release`], and slots are bound with
    /// [`ChannelTable::bind`] and released with [`ChannelTable::release_slot`], never here.
    pub fn set_state(&mut self, relid: RelId, state: ChanState) {
        if let Some(e) = self.entry_mut(relid)
            && e.state != ChanState::Free
            && state != ChanState::Free
        {
            e.state = state;
        }
    }

    /// A buffer revoke of `relid`'s channel failed: see [`super::state::Opened::window_tainted`].
    pub fn taint_window(&mut self, relid: RelId) {
        if let Some(ch) = self.entry_mut(relid).and_then(|e| e.state.opened_mut()) {
            ch.window_tainted = true;
        }
    }

    /// The relid's offer, unless it is `Free`.
    pub fn offer_of(&self, relid: RelId) -> Option<Offer> {
        self.entry(relid)
            .filter(|e| e.state != ChanState::Free)
            .map(|e| e.offer)
    }

    /// The relid's generation (0 outside the table).
    pub fn generation(&self, relid: RelId) -> u32 {
        self.entry(relid).map_or(0, |e| e.generation)
    }

    /// Teardown step 1 (and a rescind of an unopened offer): from now on nothing is matched
    /// against the old generation.
    pub fn bump_generation(&mut self, relid: RelId) {
        if let Some(e) = self.entry_mut(relid) {
            e.generation = e.generation.wrapping_add(1);
        }
    }

    /// A new offer of a `Free` relid.
    pub fn offer(&mut self, relid: RelId, offer: Offer) {
        let Some(e) = self.entry_mut(relid).filter(|e| e.state == ChanState::Free) else {
            return;
        };
        e.offer = offer;
        e.generation = e.generation.wrapping_add(1);
        e.state = ChanState::Offered;
        if offer.sub_index != 0 {
            self.sub_offers += 1;
        }
    }

    /// The relid is free for a new offer.
    pub fn release(&mut self, relid: RelId) {
        let Some(e) = self.entry_mut(relid).filter(|e| e.state != ChanState::Free) else {
            return;
        };
        e.state = ChanState::Free;
        if e.offer.sub_index != 0 {
            self.sub_offers -= 1;
        }
    }

    /// The host forgot every offer (unload): every entry is free (generations move on).
    pub fn forget_all(&mut self) {
        for e in self.entries.iter_mut() {
            if e.state != ChanState::Free {
                e.state = ChanState::Free;
                e.generation = e.generation.wrapping_add(1);
            }
        }
        self.sub_offers = 0;
    }

    /// Channels a client opened (opening, open or being torn down).
    pub fn opened_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state.opened().is_some())
            .count()
    }

    /// A live (offered, not rescinded) relid other than `except` whose offer is of the same
    /// device and sub-channel index as `offer`.
    pub fn live_device(&self, offer: &Offer, except: RelId) -> Option<RelId> {
        Self::relids().find(|&q| {
            q != except
                && self.entry(q).is_some_and(|e| {
                    e.state != ChanState::Free
                        && !e.state.rescinded()
                        && e.offer.same_device(offer)
                        && e.offer.sub_index == offer.sub_index
                })
        })
    }

    /// The primary (index 0, same device) of sub-channel `relid`, if offered.
    pub fn primary_of(&self, relid: RelId) -> Option<RelId> {
        let sub = self.offer_of(relid).filter(|o| o.sub_index != 0)?;
        Self::relids().find(|&p| {
            self.offer_of(p)
                .is_some_and(|po| po.sub_index == 0 && po.same_device(&sub))
        })
    }

    /// The offer of `relid` if it is an offered primary channel.
    fn primary_offer(&self, relid: RelId) -> Option<&Offer> {
        self.entry(relid)
            .filter(|e| e.state != ChanState::Free && e.offer.sub_index == 0)
            .map(|e| &e.offer)
    }

    /// The offered sub-channels of `primary`'s device (none if it is not an offered primary),
    /// with their states.
    fn subs(&self, primary: RelId) -> impl Iterator<Item = (RelId, &ChanState)> {
        // No search while no sub-channel is offered (the common case).
        let p = self.primary_offer(primary).filter(|_| self.sub_offers > 0);
        p.into_iter().flat_map(move |p| {
            Self::relids()
                .zip(self.entries.iter().skip(1))
                .filter(move |(_, e)| {
                    e.offer.sub_index != 0
                        && !matches!(e.state, ChanState::Free)
                        && e.offer.same_device(p)
                })
                .map(|(s, e)| (s, &e.state))
        })
    }

    /// The first offered sub-channel of `primary`'s device at or after relid `from`.
    pub fn next_sub(&self, primary: RelId, from: RelId) -> Option<RelId> {
        self.subs(primary).map(|(s, _)| s).find(|&s| s >= from)
    }

    /// Whether primary `primary` has a sub-channel that a client opened (R7: the primary's
    /// teardown waits for them).
    pub fn has_opened_subs(&self, primary: RelId) -> bool {
        self.subs(primary).any(|(_, st)| st.opened().is_some())
    }

    /// A free slot of client `c`, if any.
    pub fn free_slot(&self, c: ClientIdx) -> Option<SlotId> {
        let cs = &self.clients[c.get()];
        let i = cs.slots[..usize::from(cs.count)]
            .iter()
            .position(|&s| s == Slot::Free)?;
        // i < MAX_SLOTS (128).
        Some(SlotId(i as u16))
    }

    /// Client `c`'s slots, configured or not.
    pub fn slot_ids(&self, c: ClientIdx) -> impl Iterator<Item = SlotId> + use<> {
        (0..self.clients[c.get()].count).map(SlotId)
    }

    /// Slot `slot` of client `c`; `None` beyond its configured slots.
    pub fn slot(&self, c: ClientIdx, slot: SlotId) -> Option<Slot> {
        let cs = &self.clients[c.get()];
        cs.index(slot).map(|i| cs.slots[i])
    }

    /// Opens `relid` (an `Offered` entry) for client `c` in its free slot `slot`, in `state`
    /// (the open's first state). False, changing nothing, if the entry or the slot is taken.
    pub fn bind(&mut self, relid: RelId, c: ClientIdx, slot: SlotId, state: ChanState) -> bool {
        let offered = self.state(relid) == ChanState::Offered;
        let cs = &mut self.clients[c.get()];
        match cs.index(slot) {
            Some(i) if offered && cs.slots[i] == Slot::Free => {
                cs.slots[i] = Slot::Bound(relid);
                self.set_state(relid, state);
                true
            }
            _ => false,
        }
    }

    /// Teardown step 2: releases client `c`'s slot `slot` if `relid` is bound to it, retiring
    /// it for good if `retire`. Returns whether it was bound to `relid`.
    pub fn release_slot(&mut self, c: ClientIdx, slot: SlotId, relid: RelId, retire: bool) -> bool {
        let cs = &mut self.clients[c.get()];
        match cs.index(slot) {
            Some(i) if cs.slots[i] == Slot::Bound(relid) => {
                cs.slots[i] = if retire { Slot::Retired } else { Slot::Free };
                true
            }
            _ => false,
        }
    }

    /// Counts a host event on client `c`'s slot `slot`; returns the new count.
    pub fn count_event(&mut self, c: ClientIdx, slot: SlotId) -> u32 {
        let cs = &mut self.clients[c.get()];
        let Some(i) = cs.index(slot) else {
            return 0;
        };
        cs.events[i] = cs.events[i].wrapping_add(1);
        cs.events[i]
    }

    /// Host events counted on client `c`'s slot `slot`.
    pub fn events(&self, c: ClientIdx, slot: SlotId) -> u32 {
        let cs = &self.clients[c.get()];
        cs.index(slot).map_or(0, |i| cs.events[i])
    }

    /// A fresh GPADL id for `relid`: never 0, never one that `taken` says is still in use.
    pub fn alloc_gpadl(&mut self, relid: RelId, taken: impl Fn(GpadlId) -> bool) -> GpadlId {
        loop {
            self.gpadl_seq = (self.gpadl_seq + 1) & ((1 << (32 - GPADL_RELID_BITS)) - 1);
            // relid < MAX_RELIDS fits the low bits (callers pass a table relid).
            let id = GpadlId((self.gpadl_seq << GPADL_RELID_BITS) | (relid.0 % MAX_RELIDS as u32));
            if !taken(id) {
                return id;
            }
        }
    }

    /// The channel whose ring GPADL is exactly `id`, if a client opened one.
    pub fn by_gpadl(&self, id: GpadlId) -> Option<RelId> {
        let relid = RelId(id.0 & ((1 << GPADL_RELID_BITS) - 1));
        let ch = self.entry(relid)?.state;
        (ch.opened()?.gpadl == id).then_some(relid)
    }
}
