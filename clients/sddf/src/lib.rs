//! The shared queues of the seL4 Device Driver Framework (sDDF): the network free/active queues,
//! the block request/response queues and the block storage-info page, over a portable
//! shared-memory seam ([`QueueMem`]), with every value the peer wrote checked before use.
//!
//! With these the project's network client can sit in an sDDF system as its network driver
//! (netvsc is the *driver* end of sDDF's network queues) and its storage client as its block
//! driver (storvsc is the *driver* end of the block queues), with sDDF's virtualisers and clients
//! on the other side.
//!
//! # Version followed
//!
//! sDDF release **0.6.0** (`au-ts/sddf`), the newest release its `CHANGES.md` lists. The layouts
//! were read from `include/sddf/network/queue.h`, `include/sddf/network/constants.h`,
//! `include/sddf/network/config.h`, `include/sddf/blk/queue.h`,
//! `include/sddf/blk/storage_info.h` and `include/sddf/util/fence.h` at commit
//! `01f3020bdc6a51be6806e1400ab67553d8867540` (a tree whose `CHANGES.md` ends at 0.6.0; the
//! network queue header was compared across the stored versions of that file, whose structs do
//! not differ). In that version a block request's `block_number` is a `u64` and a queue is full
//! at `capacity` entries (every slot is used).
//!
//! The structs are C structs in the native byte order with natural alignment; both enums are
//! `int`-sized. This crate writes them little-endian and refuses to build for a big-endian target.
//!
//! # Layouts
//!
//! Network queue (`net_queue_t`, one region per queue; [`net::layout`]):
//!
//! | offset | size | field | written by |
//! |--------|------|-------|------------|
//! | 0 | 2 | `tail`: next slot to fill, free-running `u16` | producer |
//! | 2 | 2 | `head`: next slot to take, free-running `u16` | consumer |
//! | 4 | 4 | `consumer_signalled`: 0 = the consumer asks for a notification | both (below) |
//! | 8 + 16·i | 16 | `buffers[i]`: `io_or_offset` `u64` at 0, `len` `u16` at 8, 6 bytes padding | producer |
//!
//! Block request queue (`blk_req_queue_t`; [`blk::layout`]): `head` `u32` at 0 (consumer),
//! `tail` `u32` at 4 (producer), `plugged` `bool` at 8 (requester), entries from 16, 32 bytes
//! each: `code` `u32` at 0 (READ 0, WRITE 1, FLUSH 2, BARRIER 3), `io_or_offset` `u64` at 8,
//! `block_number` `u64` at 16, `count` `u16` at 24, `id` `u32` at 28.
//!
//! Block response queue (`blk_resp_queue_t`): `head` `u32` at 0 (consumer), `tail` `u32` at 4
//! (producer), entries from 8, 12 bytes each: `status` `u32` at 0 (OK 0, ERR_UNSPEC 1,
//! ERR_INVALID_PARAM 2, ERR_IO 3, ERR_NO_DEVICE 4), `success_count` `u16` at 4, `id` `u32` at 8.
//!
//! Storage info (`blk_storage_info_t`, in a 4 KiB region; [`storage::layout`]): `serial_number`
//! `char[64]` at 0, `read_only` at 64, `ready` at 65, `sector_size` at 66, `block_size` at 68,
//! `queue_depth` at 70, `cylinders` at 72, `heads` at 74, `blocks` at 76, `capacity` `u64` at
//! 80; 88 bytes. Block numbers, counts, `block_size` and `capacity` count `BLK_TRANSFER_SIZE`
//! (4096-byte) units.
//!
//! The capacity is not in shared memory: both ends are configured with it (sDDF moved it out so a
//! peer cannot change it). It must be a power of two (at most 2^15 for the network queues' `u16`
//! indices, 2^31 for the block queues' `u32` ones) so that slot `index % capacity` stays the same
//! across the indices' wrap-around; entries in the queue are `tail - head` modulo the index
//! width, from 0 (empty) to `capacity` (full).
//!
//! # Ordering and signalling
//!
//! Each index has one writer. A producer writes the entry, then stores `tail + 1` with release; a
//! consumer loads `tail` with acquire, copies the entry out, then stores `head + 1` with release;
//! a producer loads `head` with acquire before it reuses a slot. sDDF 0.6.0's C code expresses
//! the release side as `THREAD_MEMORY_RELEASE()` before the index increment; its SMP variants
//! use these same acquire loads and release stores. Each end of this crate keeps its own index
//! locally and only ever stores it, so a peer that overwrites either index cannot make this side
//! read or write outside the ring: a peer index more than `capacity` away is reported as
//! [`PeerError::IndexOutOfRange`] and nothing moves.
//!
//! Network notifications go through `consumer_signalled`:
//!
//! * The consumer, when it has emptied the queue, clears the flag (`net_request_signal_*`,
//!   [`NetConsumer::request_signal`]) and looks at the queue once more; if something arrived
//!   meanwhile it sets the flag again (`net_cancel_signal_*`, [`NetConsumer::cancel_signal`])
//!   and keeps going. [`NetConsumer::finish_batch`] does both steps.
//! * The producer, after a batch of enqueues, notifies the consumer only if the flag is clear
//!   (`net_require_signal_*`, [`NetProducer::require_signal`]) and sets it as it notifies
//!   ([`NetProducer::cancel_signal`]); [`NetProducer::take_signal`] does both.
//!
//! The flag store and the re-check on one side and the `tail` store and the flag check on the
//! other form a store-then-load pair on each side, which acquire and release do not order: on an
//! SMP system either side could miss the other and the consumer would sleep with work queued.
//! This crate puts a sequentially consistent fence after the consumer's clear and before the
//! producer's check, so at least one of them sees the other. (sDDF's PDs usually share one core,
//! where that cannot happen.)
//!
//! The block queues have no signal flag: a side that enqueued requests or responses notifies its
//! peer. The requester may set `plugged` to ask the serving side to leave requests queued. The
//! storage-info page is written by the serving side and published by a release store of
//! `ready = 1`; the requesting side loads `ready` with acquire before it reads the fields.
//!
//! # Checks
//!
//! Whatever the peer wrote is checked before it is used: an index out of range, a network buffer
//! outside the data region (not on a buffer boundary, or longer than a buffer), an unknown block
//! request code or response status, a block count that overflows or a transfer outside the data
//! region or past the device, a boolean that is neither 0 nor 1, an invalid storage-info page.
//! Each is a [`PeerError`], never a panic. An entry that fails its check has been consumed (the
//! queue moves on, and the error carries what the peer wrote, including a block request's `id` so
//! the driver can answer it with an error status).
//!
//! # How the clients use the queues
//!
//! The network client (netvsc) is the driver end of two connections to sDDF's virtualisers. RX:
//! it is the [`NetFiller`] — it takes empty buffers from the free queue, lets the host's receive
//! packets land in them, and hands them to the RX virtualiser on the active queue (notifying
//! when [`NetProducer::take_signal`] says so). TX: it is the [`NetDrainer`] — it takes packets
//! from the active queue, sends them to the host, and returns the buffers on the free queue.
//! Buffers are named by I/O address (`base` of [`NetDataRegion`] is the data region's I/O
//! address); a client of sDDF names them by offset (`base` 0).
//!
//! The storage client (storvsc) is the serving end of a block connection to the block
//! virtualiser ([`BlkResponder`]): it publishes the device on the [`StorageInfoPage`] at start-up,
//! takes requests (checked against its data region and the device, [`DeviceLimits`]), carries
//! them out over VMBus, and answers each with a response carrying the request's id. A block
//! client (and the tests' fake client) is the [`BlkRequester`].
//!
//! # The seam
//!
//! [`QueueMem`] is loads and stores of 8-, 16- and 32-bit words at byte offsets with an explicit
//! ordering, fences, and byte copies. The seL4 side implements it over a mapped region; tests use
//! [`FlatMem`], a region in an array of atomics, shared by two threads without `unsafe`.
//!
//! ```
//! use core::sync::atomic::AtomicU64;
//! use sddf::{FlatMem, NetBuffer, NetDataRegion, NetQueue, net};
//!
//! let capacity = 4;
//! let free: Vec<AtomicU64> = (0..FlatMem::words_for(net::layout::region_size(capacity)))
//!     .map(|_| AtomicU64::new(0))
//!     .collect();
//! let active: Vec<AtomicU64> = (0..FlatMem::words_for(net::layout::region_size(capacity)))
//!     .map(|_| AtomicU64::new(0))
//!     .collect();
//! let queue = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), capacity).unwrap();
//! let region = NetDataRegion::offsets(4 * 2048);
//! let mut driver_rx = queue.filler(region);
//! let mut virt_rx = queue.drainer(region);
//!
//! virt_rx.fill_free(region).unwrap(); // the virtualiser hands out every buffer
//! let empty = driver_rx.free.dequeue().unwrap().unwrap();
//! driver_rx.active.enqueue(NetBuffer { len: 60, ..empty }).unwrap();
//! let got = virt_rx.active.dequeue().unwrap().unwrap();
//! assert_eq!(got.len, 60);
//! ```

#![no_std]
#![forbid(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("sDDF's queues are native-endian C structs; this crate encodes them little-endian");

pub mod blk;
pub mod error;
pub mod frames;
pub mod mem;
pub mod net;
mod ring;
pub mod storage;

pub use blk::{
    BLK_TRANSFER_SIZE, BlkDataRegion, BlkQueue, BlkRequest, BlkRequestCode, BlkRequester,
    BlkResponder, BlkResponse, BlkStatus, DeviceLimits, check_request,
};
pub use error::{ConfigError, EnqueueError, Flag, PeerError, QueueId, RequestFault, StorageFault};
pub use mem::{FlatMem, QueueMem};
pub use net::{
    NET_BUFFER_SIZE, NetBuffer, NetConsumer, NetDataRegion, NetDrainer, NetFiller, NetKind,
    NetProducer, NetQueue,
};
pub use storage::{StorageInfo, StorageInfoPage};
