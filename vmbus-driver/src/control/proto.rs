//! Requests and responses of the client control protocol, encoded with postcard.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{BufferId, GpadlId, RelId, SlotId};

/// Most offers one `Offers` response carries.
pub const OFFERS_PER_RESPONSE: usize = 8;

/// Most ranges one `Lent` response carries: 64 ranges of at most 15 postcard bytes each fit the
/// response area with room to spare (checked by a test).
pub const LENT_RANGES_PER_RESPONSE: usize = 64;

/// Most ranges one `BalloonReclaim` request carries: 32 ranges of at most 15 postcard bytes
/// each fit the 512-byte request area (checked by a test); a client splits longer lists.
pub const RECLAIM_RANGES_PER_REQUEST: usize = 32;

/// Most frame numbers one `Frames` response carries: 128 frames of at most 10 postcard bytes
/// each fit the 1532-byte response area (checked by a test); a client asks again from `start +
/// 128`.
pub const FRAMES_PER_RESPONSE: usize = 128;

/// A client's reference to one of its buffers. The driver refuses (`BufferGone`) a handle whose
/// generation is not the buffer's current one, so a handle kept across a free, a close or a
/// rescind never reaches a later buffer in the same table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BufferHandle {
    /// The buffer's entry in the driver's buffer table.
    pub id: BufferId,
    /// The entry's generation when the buffer was allocated.
    pub generation: u32,
}

/// A buffer granted into the client's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BufferInfo {
    /// The buffer.
    pub buffer: BufferHandle,
    /// First page of the buffer in the client's window (inside the channel's window slot,
    /// after its rings).
    pub window_page: u32,
    /// Pages of the buffer (consecutive window pages from `window_page`).
    pub pages: u32,
    /// The GPADL the host knows the buffer by (netvsc's receive and send buffers), if one was
    /// asked for.
    pub gpadl: Option<GpadlId>,
}

/// Which bound refused an `AllocBuffer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BufferLimit {
    /// The channel holds its most buffers (`driver::MAX_CHANNEL_BUFFERS`), freed ones
    /// included until the channel closes.
    Channel,
    /// The client holds its most buffers (`driver::MAX_CLIENT_BUFFERS`).
    Client,
    /// The driver's buffer table is full (`driver::MAX_BUFFERS`).
    Driver,
}

/// Guest frames `start .. start + count` (4 KiB frame numbers), as the balloon lends and
/// reclaims them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PfnRange {
    /// First guest frame number.
    pub start: u64,
    /// Frames in the range.
    pub count: u32,
}

impl PfnRange {
    /// One past the last frame, or `None` for an empty range or one that overflows.
    pub fn end(&self) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        self.start.checked_add(u64::from(self.count))
    }
}

/// Why a `Lent` response carries fewer pages than were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LendLimit {
    /// Nothing held it back: every page asked for was lent.
    None,
    /// The pool's free pages are down to the reserve ballooning never takes (so that rings can
    /// still open).
    Reserve,
    /// The response holds no more ranges ([`LENT_RANGES_PER_RESPONSE`]); ask again.
    ResponseFull,
    /// The driver's table of lent pages is full (pages fragmented by reclaims); reclaim first.
    TableFull,
    /// A kernel operation on a page failed; that page is quarantined for good, never lent.
    KernelError,
}

/// A client's reference to one of its channels. The driver refuses a handle whose generation is
/// not the channel's current one, so a handle kept across a rescind or close can never reach a
/// later channel that reuses the relid or the slot (R1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelHandle {
    /// The client's channel slot (window slot and status record index).
    pub slot: SlotId,
    /// The channel's relid.
    pub relid: RelId,
    /// The channel's generation when it was opened.
    pub generation: u32,
}

/// One offer as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OfferInfo {
    /// The offer's relid.
    pub relid: RelId,
    /// Device class GUID, wire byte order.
    pub class: [u8; 16],
    /// Instance GUID, wire byte order.
    pub instance: [u8; 16],
    /// 0 for a primary channel, else the sub-channel's index.
    pub sub_channel_index: u16,
}

/// A client's request (written to the request area of its control page).
// The reclaim variant is the largest (32 ranges, about 530 bytes); as for `Response`, no
// allocator to box it, and a request lives only briefly on the stack while it is decoded.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// List the offers this client may open whose relid is at least `start`.
    ListOffers {
        /// First relid to consider (the previous response's `next`, or relid 0).
        start: RelId,
    },
    /// Open the offer `relid` with rings of the given sizes in pages, header page included.
    Open {
        /// The offer's relid.
        relid: RelId,
        /// Guest-to-host ring pages (header + data, at least 2).
        out_ring_pages: u16,
        /// Host-to-guest ring pages (header + data, at least 2).
        in_ring_pages: u16,
    },
    /// Close a channel.
    Close {
        /// The channel.
        handle: ChannelHandle,
    },
    /// Ask the driver to signal the host for a channel (after the ring writer said "signal").
    Signal {
        /// The channel.
        handle: ChannelHandle,
    },
    /// Balloon inflate: take up to `pages` free pool pages, remove every mapping of them in
    /// the guest (client capabilities and the driver's own), and hand their frames to this
    /// client for the host. Answered with `Lent`.
    BalloonLend {
        /// Pages wanted.
        pages: u32,
    },
    /// Balloon deflate: the host gave these frames back. Every frame must be lent to this
    /// client, once; otherwise the whole request is refused and nothing changes. The driver
    /// maps each page again, zeroes it and returns it to the pool. Answered with `Reclaimed`.
    BalloonReclaim {
        /// Up to [`RECLAIM_RANGES_PER_REQUEST`] non-overlapping, non-empty ranges.
        ranges: heapless::Vec<PfnRange, RECLAIM_RANGES_PER_REQUEST>,
    },
    /// The pool's page counts, for status reports. Answered with `Memory`.
    MemoryInfo,
    /// Allocate a buffer of `pages` pool pages for open channel `handle`, granted into the
    /// channel's window slot after its rings. With `gpadl` the driver also describes the pages
    /// to the host as a GPADL of the channel and answers `BufferCreating`; the buffer is granted
    /// once the host confirms (GPADL_CREATED), and the client learns it with `BufferStatus`
    /// after the driver's notification. Without `gpadl` the answer is `Buffer` at once.
    AllocBuffer {
        /// The open channel the buffer belongs to (its teardown takes the buffer with it).
        handle: ChannelHandle,
        /// Pages wanted (1 to `driver::MAX_BUFFER_PAGES`).
        pages: u32,
        /// Describe the pages to the host as a GPADL (netvsc's receive and send buffers).
        gpadl: bool,
    },
    /// Where a buffer stands: `BufferCreating` while its GPADL is awaited, `Buffer` once it is
    /// granted, `BufferGone` if its creation failed or it was freed.
    BufferStatus {
        /// The buffer's channel.
        handle: ChannelHandle,
        /// The buffer.
        buffer: BufferHandle,
    },
    /// Guest frame numbers of a granted buffer's pages from page `start` on (for GPA-direct
    /// descriptors). Answered with `Frames`.
    BufferFrames {
        /// The buffer's channel.
        handle: ChannelHandle,
        /// The buffer.
        buffer: BufferHandle,
        /// First page wanted.
        start: u32,
    },
    /// Free a buffer: its pages leave the client's window before the answer (`BufferFreed`);
    /// its GPADL is torn down; the pages stay with the channel until its close, since the host
    /// may still reach them through a GPA-direct request.
    FreeBuffer {
        /// The buffer's channel.
        handle: ChannelHandle,
        /// The buffer.
        buffer: BufferHandle,
    },
    /// Stop the system in order (the host asked the guest to shut down or restart): the driver
    /// closes every channel of every client (revoke, teardown), then unloads the bus (UNLOAD,
    /// UNLOAD_RESPONSE) and reports the stop to the system. Only a client the system
    /// description allows (`power="true"`) may ask; others get `NotPermitted`. A second request
    /// while stopping changes nothing.
    Stop {
        /// Restart after the stop (false: power off).
        restart: bool,
    },
}

/// The driver's response (written to the response area of the client's control page).
// The offers variant is the largest (about 330 bytes); boxing is not available without an
// allocator, and a response lives only briefly on the stack while it is encoded or decoded.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Offers, in ascending relid order.
    Offers {
        /// Up to [`OFFERS_PER_RESPONSE`] offers.
        offers: heapless::Vec<OfferInfo, OFFERS_PER_RESPONSE>,
        /// The `start` for the next page, if more offers may follow.
        next: Option<RelId>,
    },
    /// The open started; the status record of `handle.slot` says when it completes.
    Opening {
        /// The new channel.
        handle: ChannelHandle,
    },
    /// The channel is closed: the client's mappings are gone; the driver finishes the host side.
    Closed,
    /// The signal request was handled.
    Signalled {
        /// Whether the driver signalled the host: HvCallSignalEvent, or the channel's monitor
        /// bit for a monitored channel (false: the ring did not need a signal).
        hypercall: bool,
    },
    /// The stop is under way (or done): every channel is being closed and the bus unloaded.
    Stopping,
    /// The request failed.
    Error(ClientError),
    /// Pages lent for the balloon: nothing in the guest maps them any more.
    Lent {
        /// Their frames, coalesced into ascending runs where consecutive.
        ranges: heapless::Vec<PfnRange, LENT_RANGES_PER_RESPONSE>,
        /// Pages in `ranges`.
        pages: u32,
        /// Why fewer pages than asked for were lent ([`LendLimit::None`] if none held back).
        limit: LendLimit,
    },
    /// Lent pages taken back from the host.
    Reclaimed {
        /// Pages no longer lent (every page of the request).
        pages: u32,
        /// Of those, pages a kernel operation failed on: kept out of the pool for good.
        quarantined: u32,
    },
    /// The pool's page counts.
    Memory(MemoryInfo),
    /// The buffer's GPADL was sent; its creation is awaited (ask `BufferStatus` after a
    /// notification).
    BufferCreating {
        /// The buffer.
        buffer: BufferHandle,
    },
    /// A buffer granted into the client's window.
    Buffer(BufferInfo),
    /// Frame numbers of a buffer's pages.
    Frames {
        /// Index of the first page whose frame is in `frames`.
        start: u32,
        /// Up to [`FRAMES_PER_RESPONSE`] guest frame numbers, in page order.
        frames: heapless::Vec<u64, FRAMES_PER_RESPONSE>,
        /// Pages in the buffer.
        total: u32,
    },
    /// The buffer is freed: the client's mappings of it are gone.
    BufferFreed,
}

/// The pool's page counts, as `MemoryInfo` answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemoryInfo {
    /// Pages in the pool.
    pub pool_pages: u32,
    /// Pages free in the pool now.
    pub free_pages: u32,
    /// Pages lent to the host now, for all clients.
    pub lent_pages: u32,
    /// Of those, pages lent through this client.
    pub lent_by_client: u32,
    /// Free pages ballooning never takes.
    pub reserve_pages: u32,
    /// Pages kept out of the pool now (quarantined), whatever the cause.
    pub quarantined_pages: u32,
}

/// Why a client request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientError {
    /// The request could not be decoded (or its length was out of range).
    BadRequest,
    /// The bus is not connected (handshake pending, failed or unloading).
    NotConnected,
    /// No offer with that relid exists.
    NoSuchOffer,
    /// The offer's class or instance is not configured for this client, or the sub-channel's
    /// primary is not open by this client.
    NotPermitted,
    /// The offer is already open (or being opened or torn down).
    Busy,
    /// The client has no free channel slot.
    NoFreeSlot,
    /// The ring sizes are below 2 pages each or do not fit the client's window slot.
    BadRingSize,
    /// The driver is out of ring pages or table space.
    NoResources,
    /// The handle is stale: the channel was closed, rescinded or failed.
    ChannelGone,
    /// The channel is not open yet.
    NotOpen,
    /// The hypervisor refused the signal hypercall.
    SignalFailed,
    /// The host could not be told (a post-message hypercall failed).
    HostUnreachable,
    /// The channel's ring header holds indices out of range or misaligned (the host corrupted
    /// it); the driver refuses to act on it.
    RingCorrupt,
    /// A frame of a balloon reclaim is not lent to this client: never lent, lent to another
    /// client, or already reclaimed. Nothing was reclaimed.
    NotLent,
    /// A range of a balloon reclaim is empty, overflows, or overlaps another range of the
    /// request. Nothing was reclaimed.
    BadRanges,
    /// The buffer handle is stale or not this client's: the buffer was freed, torn down with
    /// its channel, its creation failed, or it belongs to another client or channel.
    BufferGone,
    /// A buffer limit is reached; nothing was allocated.
    BufferLimit(BufferLimit),
    /// A buffer of 0 pages or more than `driver::MAX_BUFFER_PAGES`, or frames asked from past
    /// its end.
    BadBufferSize,
    /// The buffer does not fit the free part of the channel's window slot (after its rings and
    /// its other buffers), or a region of the slot could not be revoked and is never used again.
    WindowFull,
    /// The buffer's GPADL is not created yet (frames are handed out for granted buffers only).
    BufferNotReady,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadRequest => "malformed request",
            Self::NotConnected => "VMBus is not connected",
            Self::NoSuchOffer => "no such offer",
            Self::NotPermitted => "offer not permitted for this client",
            Self::Busy => "offer already in use",
            Self::NoFreeSlot => "no free channel slot",
            Self::BadRingSize => "ring sizes invalid or too large for the window slot",
            Self::NoResources => "driver out of ring pages or table space",
            Self::ChannelGone => "channel gone (closed, rescinded or failed)",
            Self::RingCorrupt => "ring header corrupt (indices out of range or misaligned)",
            Self::NotOpen => "channel not open yet",
            Self::SignalFailed => "signal hypercall failed",
            Self::HostUnreachable => "message to the host could not be posted",
            Self::NotLent => "frame not lent to this client (or already reclaimed)",
            Self::BadRanges => "frame range empty, overflowing or overlapping",
            Self::BufferGone => "buffer gone (freed, torn down, failed or not this client's)",
            Self::BufferLimit(BufferLimit::Channel) => "the channel has its most buffers",
            Self::BufferLimit(BufferLimit::Client) => "the client has its most buffers",
            Self::BufferLimit(BufferLimit::Driver) => "the driver's buffer table is full",
            Self::BadBufferSize => "buffer size (or frame index) out of range",
            Self::WindowFull => "buffer does not fit the channel's window slot",
            Self::BufferNotReady => "buffer not created yet",
        })
    }
}
