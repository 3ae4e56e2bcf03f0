//! The model's state: host, driver, kernel (pages, capabilities, mappings), clients and the two
//! message queues, as small fixed-size, hashable values.
//!
//! Indices are small integers: relid index `r` (wire relid `r + 1`), client `c`, pool page `p`.
//! Fields marked *ghost* are not state of any real party: they record facts the properties need
//! (which incarnation of a relid a message or an event belongs to, what a party observed).

use core::fmt;

/// Most channels (relids) a configuration may have.
pub const MAX_CHANNELS: usize = 3;
/// Most clients a configuration may have.
pub const MAX_CLIENTS: usize = 3;
/// Most pool pages a configuration may have.
pub const MAX_PAGES: usize = 4;
/// Capacity of each message queue; exceeding it is reported as a violation of the model's bounds.
pub const FIFO_CAP: usize = 10;
/// "No client" / "no page" in the compact `u8` fields.
pub const NONE: u8 = u8::MAX;

/// A bounded first-in first-out queue of `Copy` items, hashable and allocation-free.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fifo<T: Copy, const N: usize> {
    items: [Option<T>; N],
    len: u8,
}

impl<T: Copy, const N: usize> Default for Fifo<T, N> {
    fn default() -> Self {
        Self {
            items: [None; N],
            len: 0,
        }
    }
}

impl<T: Copy, const N: usize> Fifo<T, N> {
    /// Appends an item; returns `false` (and drops it) when the queue is full.
    pub fn push(&mut self, item: T) -> bool {
        let len = usize::from(self.len);
        if len == N {
            return false;
        }
        self.items[len] = Some(item);
        self.len += 1;
        true
    }

    /// The oldest item, if any.
    pub fn front(&self) -> Option<T> {
        self.items[0]
    }

    /// Removes and returns the oldest item.
    pub fn pop(&mut self) -> Option<T> {
        let first = self.items[0]?;
        self.items.copy_within(1.., 0);
        self.items[N - 1] = None;
        self.len -= 1;
        Some(first)
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The queued items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.items.iter().take(self.len()).filter_map(|i| *i)
    }
}

impl<T: Copy + fmt::Debug, const N: usize> fmt::Debug for Fifo<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A message from the host to the driver (in the host→driver SynIC message stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostMsg {
    /// CHANNELOFFER for relid `relid`; `inc` (ghost) is the incarnation of the relid it starts.
    Offer { relid: u8, inc: u8 },
    /// RESCIND_CHANNELOFFER.
    Rescind { relid: u8 },
    /// GPADL_CREATED for the GPADL over `page` (the model's GPADL id is its page).
    GpadlCreated { relid: u8, page: u8 },
    /// OPENCHANNEL_RESULT, `ok` for status 0.
    OpenResult { relid: u8, ok: bool },
    /// GPADL_TORNDOWN for the GPADL over `page`.
    TornDown { page: u8 },
    /// UNLOAD_RESPONSE.
    UnloadResponse,
}

/// A message from the driver to the host (HvCallPostMessage). `inc` is ghost: the incarnation
/// of the relid the driver acted on, so the host can tell a message about a released relid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GuestMsg {
    /// GPADL_HEADER (+ bodies) creating the GPADL over `page` for `relid`.
    GpadlHeader { relid: u8, inc: u8, page: u8 },
    /// OPENCHANNEL naming the ring GPADL over `page`.
    OpenChannel { relid: u8, inc: u8, page: u8 },
    /// CLOSECHANNEL. `confirmed` (ghost, stamped by [`State::send`]): when it was sent, the
    /// driver had received OPENCHANNEL_RESULT success for its current open of the relid, or the
    /// relid's rescind (see [`State::confirmed`]).
    CloseChannel { relid: u8, inc: u8, confirmed: bool },
    /// GPADL_TEARDOWN of the GPADL over `page`.
    GpadlTeardown { relid: u8, inc: u8, page: u8 },
    /// RELID_RELEASED.
    RelidReleased { relid: u8, inc: u8 },
    /// UNLOAD.
    Unload,
}

/// The host's view of one relid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum HostPhase {
    /// Not offered (never, or released after a rescind).
    #[default]
    Absent,
    /// Offered and not rescinded.
    Offered,
    /// Rescinded; waiting for RELID_RELEASED before the relid may be offered again.
    Rescinded,
}

/// The host's record of one relid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HostChan {
    /// Offer state.
    pub phase: HostPhase,
    /// How many offers of this relid were made so far (the current incarnation is `offers - 1`).
    pub offers: u8,
    /// The host has the channel open (OPENCHANNEL accepted, no close or rescind since).
    pub open: bool,
}

impl HostChan {
    /// The current incarnation number, if the relid was ever offered.
    pub fn inc(&self) -> Option<u8> {
        self.offers.checked_sub(1)
    }
}

/// A GPADL the host holds, over one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostGpadl {
    /// Relid the GPADL was created for.
    pub relid: u8,
    /// Incarnation of that relid (ghost).
    pub inc: u8,
}

/// The simulated host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Host {
    /// Per relid.
    pub chans: [HostChan; MAX_CHANNELS],
    /// Per pool page: the GPADL over it that the host may still use.
    pub gpadls: [Option<HostGpadl>; MAX_PAGES],
    /// Event flags: set bit per relid, tagged (ghost) with the incarnation that signalled it.
    /// Setting an already set flag changes nothing: events coalesce.
    pub flags: [Option<u8>; MAX_CHANNELS],
    /// The host processed UNLOAD and forgot the guest.
    pub unloaded: bool,
}

/// The driver's state of one channel (docs/lifetime.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Phase {
    /// No offer known (never offered, or released).
    #[default]
    Absent,
    /// Offered, no client.
    Offered,
    /// GPADL_HEADER sent for a client's open.
    GpadlPending,
    /// GPADL created, OPENCHANNEL sent.
    OpenPending,
    /// Open: the client has the ring page mapped.
    Open,
    /// Client revoked; CLOSECHANNEL/GPADL_TEARDOWN sent (or waiting for GPADL_CREATED or
    /// OPENCHANNEL_RESULT before they can be), waiting for GPADL_TORNDOWN.
    Teardown,
}

impl Phase {
    /// A client owns the channel (opening or open).
    pub fn is_live(self) -> bool {
        matches!(self, Self::GpadlPending | Self::OpenPending | Self::Open)
    }

    /// The driver waits for a host reply (GPADL_CREATED, OPENCHANNEL_RESULT, GPADL_TORNDOWN).
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            Self::GpadlPending | Self::OpenPending | Self::Teardown
        )
    }

    /// The channel needs no more work from the driver.
    pub fn is_idle(self) -> bool {
        matches!(self, Self::Absent | Self::Offered)
    }
}

/// The driver's record of one relid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DrvChan {
    /// Lifetime state.
    pub phase: Phase,
    /// Incarnation of the relid from its offer (the model's stand-in for "this offer").
    pub inc: u8,
    /// The client that owns (or, during teardown, owned) the channel, or [`NONE`].
    pub client: u8,
    /// The ring page, or [`NONE`].
    pub page: u8,
    /// The host rescinded the relid: RELID_RELEASED is owed once teardown completes.
    pub rescinded: bool,
    /// During teardown of a channel whose GPADL_CREATED had not arrived: GPADL_TEARDOWN is sent
    /// only once the GPADL is confirmed (a teardown never names a GPADL the host may not know).
    pub await_created: bool,
    /// During teardown of a channel whose OPENCHANNEL was sent and not answered: neither
    /// CLOSECHANNEL nor GPADL_TEARDOWN is sent before OPENCHANNEL_RESULT (a host ignores a
    /// CLOSECHANNEL for an open it has not completed, and would then keep the channel open).
    pub await_open: bool,
    /// `Offered` only: the relid's last OPENCHANNEL was never answered, not even during its
    /// teardown, so the host may still open the channel on the GPADL over `page` (quarantined).
    /// No client may open the relid until the late OPENCHANNEL_RESULT or a rescind resolves it.
    pub unresolved: bool,
    /// While waiting for a host reply: order in which the waits began (0 = oldest); timers fire
    /// oldest first, all waits begun by one step together.
    pub wait_rank: u8,
}

impl Default for DrvChan {
    fn default() -> Self {
        Self {
            phase: Phase::Absent,
            inc: 0,
            client: NONE,
            page: NONE,
            rescinded: false,
            await_created: false,
            await_open: false,
            unresolved: false,
            wait_rank: 0,
        }
    }
}

/// The driver's connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Conn {
    /// Connected (version negotiated; the handshake itself is not modelled).
    #[default]
    Connected,
    /// Unload requested: tearing every channel down before UNLOAD.
    Unloading,
    /// UNLOAD sent, waiting for UNLOAD_RESPONSE.
    UnloadSent,
    /// UNLOAD_RESPONSE received: final.
    Unloaded,
}

/// Where a pool page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum PageState {
    /// In the free pool.
    #[default]
    Pool,
    /// Ring page of channel `relid`.
    InUse { relid: u8 },
    /// Out of the pool: its GPADL teardown was not confirmed in time (a late GPADL_TORNDOWN
    /// frees it), or, for a [`Kernel::tainted`] page, for good.
    Quarantined,
}

/// The kernel: pool pages, their contents and the capabilities derived from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kernel {
    /// Per page.
    pub pages: [PageState; MAX_PAGES],
    /// Per page: written since it was last zeroed (a client or the host may have written to it).
    pub dirty: [bool; MAX_PAGES],
    /// Per client: bit `p` set when the client holds a capability derived from page `p`, mapped
    /// in its window (grant = copy + map, revoke deletes every copy and mapping).
    pub maps: [u8; MAX_CLIENTS],
    /// Bit `p`: a kernel operation on page `p` failed after it was shared (its revoke, so a
    /// client may still hold a capability to it, or its zeroing, so it may hold a client's
    /// data). A tainted page is quarantined for good: never zeroed, returned or granted again.
    pub tainted: u8,
    /// The page whose kernel operation (grant, revoke or zero) in the next step fails, or
    /// [`NONE`]. Cleared after that step, whether an operation used it or not.
    pub armed: u8,
    /// Kernel operations that failed so far (bounded by `Config::kernel_failures`).
    pub failures: u8,
}

impl Default for Kernel {
    fn default() -> Self {
        Self {
            pages: Default::default(),
            dirty: Default::default(),
            maps: Default::default(),
            tainted: 0,
            armed: NONE,
            failures: 0,
        }
    }
}

impl Kernel {
    /// Whether page `p` is tainted.
    pub fn is_tainted(&self, p: u8) -> bool {
        self.tainted & (1 << p) != 0
    }

    /// Takes the armed failure if it is for page `p`: `true` when this operation on `p` fails.
    pub fn fails(&mut self, p: u8) -> bool {
        if p != NONE && self.armed == p {
            self.armed = NONE;
            self.failures += 1;
            true
        } else {
            false
        }
    }
}

/// What a client believes about a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Handle {
    /// No handle.
    #[default]
    None,
    /// A handle whose generation matches the driver's.
    Current,
    /// A handle from before a generation bump (rescind, open failure): refused when used.
    Stale,
}

/// A client PD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Client {
    /// The client faulted (it is stopped for good).
    pub faulted: bool,
    /// Per relid.
    pub handles: [Handle; MAX_CHANNELS],
}

/// A violation observed by a party when an action happened (ghost): the host when a message
/// breaks the protocol, a client when it is told of an event for a channel it does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u16)]
pub enum Violation {
    /// A message named a relid whose incarnation was released (or never offered).
    NamesReleasedRelid = 1 << 0,
    /// GPADL_TEARDOWN for a GPADL the host no longer has: torn down twice.
    GpadlTornDownTwice = 1 << 1,
    /// GPADL_HEADER over a page still covered by a live GPADL: reused before teardown.
    PageReusedUnderLiveGpadl = 1 << 2,
    /// RELID_RELEASED for a relid that is not waiting for one: released twice.
    ReleaseWithoutRescind = 1 << 3,
    /// GPADL_TEARDOWN while the channel using it is still open on the host.
    TeardownWhileOpen = 1 << 4,
    /// RELID_RELEASED while a GPADL of that relid is still live on the host.
    ReleaseWithLiveGpadl = 1 << 5,
    /// A message after UNLOAD.
    MessageAfterUnload = 1 << 6,
    /// UNLOAD while a channel is still open on the host.
    UnloadWithOpenChannel = 1 << 7,
    /// An event reached a client that does not hold that incarnation of the channel (R2).
    StrayEvent = 1 << 8,
    /// A queue overflowed: the model's bounds are too small (not a protocol fault).
    QueueOverflow = 1 << 9,
    /// OPENCHANNEL naming a GPADL the host does not have (torn down or never created).
    NamesTornDownGpadl = 1 << 10,
    /// CLOSECHANNEL for an open whose success the driver had not seen (OPENCHANNEL_RESULT not
    /// yet received or refused) and no rescind: the host ignores it, as a host whose open is
    /// still pending does, and may keep the channel open.
    CloseUnconfirmed = 1 << 11,
}

impl Violation {
    /// Every violation, in bit order.
    pub const ALL: [Self; 12] = [
        Self::NamesReleasedRelid,
        Self::GpadlTornDownTwice,
        Self::PageReusedUnderLiveGpadl,
        Self::ReleaseWithoutRescind,
        Self::TeardownWhileOpen,
        Self::ReleaseWithLiveGpadl,
        Self::MessageAfterUnload,
        Self::UnloadWithOpenChannel,
        Self::StrayEvent,
        Self::QueueOverflow,
        Self::NamesTornDownGpadl,
        Self::CloseUnconfirmed,
    ];

    /// The bit of this violation in [`State::violations`].
    pub fn bit(self) -> u16 {
        self as u16
    }
}

/// The whole system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct State {
    /// The host.
    pub host: Host,
    /// Host → driver messages, in order.
    pub to_driver: Fifo<HostMsg, FIFO_CAP>,
    /// Driver → host messages, in order.
    pub to_host: Fifo<GuestMsg, FIFO_CAP>,
    /// The driver's channel table.
    pub drv: [DrvChan; MAX_CHANNELS],
    /// The driver's connection state.
    pub conn: Conn,
    /// Pages, capabilities and mappings.
    pub kernel: Kernel,
    /// The clients.
    pub clients: [Client; MAX_CLIENTS],
    /// Ghost: bit set of [`Violation`]s observed so far.
    pub violations: u16,
    /// Ghost, bit per relid: since the driver began its last open of the relid (GPADL_HEADER),
    /// it received OPENCHANNEL_RESULT success for it, or a RESCIND (CLOSECHANNEL is allowed).
    pub confirmed: u8,
}

impl State {
    /// Records a violation.
    pub fn violate(&mut self, v: Violation) {
        self.violations |= v.bit();
    }

    /// Whether a violation was observed.
    pub fn has(&self, v: Violation) -> bool {
        self.violations & v.bit() != 0
    }

    /// Whether the driver may send CLOSECHANNEL for `relid` (see [`State::confirmed`]).
    pub fn is_confirmed(&self, relid: u8) -> bool {
        self.confirmed & (1 << relid) != 0
    }

    /// Sends a message to the host, stamping the ghost of a CLOSECHANNEL and forgetting the
    /// confirmation of the previous open when a new open starts.
    pub fn send(&mut self, msg: GuestMsg) {
        let msg = match msg {
            GuestMsg::CloseChannel { relid, inc, .. } => GuestMsg::CloseChannel {
                relid,
                inc,
                confirmed: self.is_confirmed(relid),
            },
            GuestMsg::GpadlHeader { relid, .. } | GuestMsg::OpenChannel { relid, .. } => {
                // A new open of the relid: nothing of it is confirmed yet.
                self.confirmed &= !(1 << relid);
                msg
            }
            _ => msg,
        };
        if !self.to_host.push(msg) {
            self.violate(Violation::QueueOverflow);
        }
    }

    /// Sends a message to the driver.
    pub fn post(&mut self, msg: HostMsg) {
        if !self.to_driver.push(msg) {
            self.violate(Violation::QueueOverflow);
        }
    }
}
