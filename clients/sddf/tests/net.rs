//! The network queues on one thread: round trips, wrap-around, full and empty, configuration
//! checks and the signalling protocol.

mod common;

use std::sync::atomic::Ordering;

use sddf::{
    ConfigError, EnqueueError, FlatMem, NetBuffer, NetConsumer, NetDataRegion, NetKind,
    NetProducer, NetQueue, QueueId, QueueMem, net,
};

const REGION: NetDataRegion = NetDataRegion::offsets(64 * 2048);

fn pair(
    words: &[std::sync::atomic::AtomicU64],
    capacity: u32,
) -> (NetProducer<FlatMem<'_>>, NetConsumer<FlatMem<'_>>) {
    let mem = FlatMem::new(words);
    (
        NetProducer::new(NetKind::Active, mem, capacity, REGION).unwrap(),
        NetConsumer::new(NetKind::Active, mem, capacity, REGION).unwrap(),
    )
}

fn buf(i: u64, len: u16) -> NetBuffer {
    NetBuffer {
        io_or_offset: (i % 64) * 2048,
        len,
    }
}

#[test]
fn round_trip_in_order() {
    let words = common::words(net::layout::region_size(8));
    let (mut p, mut c) = pair(&words, 8);
    assert_eq!(c.dequeue(), Ok(None));
    for i in 0..5 {
        p.enqueue(buf(i, 100 + i as u16)).unwrap();
    }
    assert_eq!(p.len(), Ok(5));
    assert_eq!(c.len(), Ok(5));
    for i in 0..5 {
        assert_eq!(c.dequeue(), Ok(Some(buf(i, 100 + i as u16))));
    }
    assert_eq!(c.dequeue(), Ok(None));
    assert_eq!(c.is_empty(), Ok(true));
    assert_eq!(p.is_empty(), Ok(true));
}

#[test]
fn full_uses_every_slot_and_refuses_one_more() {
    let words = common::words(net::layout::region_size(4));
    let (mut p, mut c) = pair(&words, 4);
    for i in 0..4 {
        assert_eq!(p.is_full(), Ok(false));
        p.enqueue(buf(i, 1)).unwrap();
    }
    assert_eq!(p.is_full(), Ok(true));
    assert_eq!(p.len(), Ok(4));
    assert_eq!(p.enqueue(buf(9, 1)), Err(EnqueueError::Full));
    // The refused buffer wrote nothing: the oldest is still slot 0's.
    assert_eq!(c.dequeue(), Ok(Some(buf(0, 1))));
    assert_eq!(p.is_full(), Ok(false));
    p.enqueue(buf(4, 1)).unwrap();
    for i in 1..5 {
        assert_eq!(c.dequeue(), Ok(Some(buf(i, 1))));
    }
}

#[test]
fn indices_wrap_around_u16() {
    let words = common::words(net::layout::region_size(4));
    let (mut p, mut c) = pair(&words, 4);
    // 70 000 buffers through a 4-slot queue: the u16 indices wrap once.
    for i in 0..70_000u64 {
        p.enqueue(buf(i, (i % 1500) as u16)).unwrap();
        if i % 3 == 2 {
            for j in i - 2..=i {
                assert_eq!(c.dequeue(), Ok(Some(buf(j, (j % 1500) as u16))));
            }
        }
    }
    assert_eq!(c.dequeue(), Ok(Some(buf(69_999, (69_999 % 1500) as u16))));
    assert_eq!(p.tail(), (70_000u32 % 65_536) as u16);
    assert_eq!(c.head(), p.tail());
}

#[test]
fn full_and_empty_across_the_wrap() {
    let words = common::words(net::layout::region_size(4));
    let mem = FlatMem::new(&words);
    // Both ends attach to a queue whose indices are just below the wrap.
    mem.store_u16(net::layout::TAIL, 65_534, Ordering::Relaxed);
    mem.store_u16(net::layout::HEAD, 65_534, Ordering::Relaxed);
    let (mut p, mut c) = pair(&words, 4);
    assert_eq!(c.is_empty(), Ok(true));
    for i in 0..4 {
        p.enqueue(buf(i, 7)).unwrap();
    }
    assert_eq!(p.tail(), 2, "tail wrapped");
    assert_eq!(p.is_full(), Ok(true));
    assert_eq!(c.len(), Ok(4));
    assert_eq!(p.enqueue(buf(5, 7)), Err(EnqueueError::Full));
    for i in 0..4 {
        assert_eq!(c.dequeue(), Ok(Some(buf(i, 7))));
    }
    assert_eq!(c.is_empty(), Ok(true));
    assert_eq!(c.head(), 2);
}

#[test]
fn capacity_and_region_are_checked() {
    let words = common::words(net::layout::region_size(8));
    let mem = FlatMem::new(&words);
    for capacity in [0, 3, 6, 65_536, 1 << 20] {
        assert_eq!(
            NetProducer::new(NetKind::Free, mem, capacity, REGION).err(),
            Some(ConfigError::BadCapacity {
                queue: QueueId::NetFree,
                capacity
            })
        );
    }
    assert_eq!(
        NetConsumer::new(NetKind::Active, mem, 16, REGION).err(),
        Some(ConfigError::RegionTooSmall {
            queue: QueueId::NetActive,
            needed: net::layout::region_size(16),
            have: net::layout::region_size(8),
        })
    );
    assert!(NetQueue::new(mem, mem, 8).is_ok());
    assert!(NetQueue::new(mem, mem, 16).is_err());
    assert_eq!(
        NetDataRegion::new(u64::MAX, 2, 2048),
        Err(ConfigError::BadDataRegion)
    );
    assert_eq!(
        NetDataRegion::new(0, 2048, 0),
        Err(ConfigError::BadDataRegion)
    );
}

#[test]
fn own_buffers_outside_the_region_are_refused() {
    let words = common::words(net::layout::region_size(8));
    let region = NetDataRegion::new(0x8000_0000, 4 * 2048, 2048).unwrap();
    let mut p = NetProducer::new(NetKind::Free, FlatMem::new(&words), 8, region).unwrap();
    for bad in [
        NetBuffer {
            io_or_offset: 0,
            len: 0,
        }, // below the base
        NetBuffer {
            io_or_offset: 0x8000_0000 + 4 * 2048,
            len: 0,
        }, // past the end
        NetBuffer {
            io_or_offset: 0x8000_0010,
            len: 0,
        }, // not on a buffer boundary
        NetBuffer {
            io_or_offset: 0x8000_0800,
            len: 2049,
        }, // longer than a buffer
    ] {
        assert_eq!(p.enqueue(bad), Err(EnqueueError::Invalid(bad)));
    }
    assert_eq!(p.len(), Ok(0), "nothing written");
    p.enqueue(NetBuffer {
        io_or_offset: 0x8000_1800,
        len: 2048,
    })
    .unwrap();
}

#[test]
fn drainer_fills_the_free_queue_for_the_filler() {
    let free = common::words(net::layout::region_size(8));
    let active = common::words(net::layout::region_size(8));
    let queue = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), 8).unwrap();
    // More buffers than slots: fill stops when the queue is full.
    let region = NetDataRegion::offsets(10 * 2048);
    let mut drainer = queue.drainer(region);
    let mut filler = queue.filler(region);
    assert_eq!(drainer.fill_free(region), Ok(8));
    for i in 0..8 {
        assert_eq!(
            filler.free.dequeue(),
            Ok(Some(NetBuffer {
                io_or_offset: i * 2048,
                len: 0
            }))
        );
    }
    // Fewer buffers than slots: every buffer once.
    let small = NetDataRegion::offsets(3 * 2048 + 100);
    assert_eq!(drainer.fill_free(small), Ok(3));
    assert_eq!(filler.free.len(), Ok(3));
}

#[test]
fn signalling_protocol() {
    let words = common::words(net::layout::region_size(4));
    let mem = FlatMem::new(&words);
    let (mut p, mut c) = pair(&words, 4);
    let flag = || mem.load_u32(net::layout::CONSUMER_SIGNALLED, Ordering::Relaxed);

    // A fresh queue: the flag is 0, so the consumer is waiting for a notification.
    assert!(p.require_signal());
    p.enqueue(buf(0, 1)).unwrap();
    assert!(p.take_signal(), "first batch notifies");
    assert_eq!(flag(), 1, "the producer marked the consumer signalled");
    p.enqueue(buf(1, 1)).unwrap();
    assert!(
        !p.take_signal(),
        "no second notification before the consumer asks"
    );

    // The consumer drains, asks for a signal, and finds the queue empty: it may sleep.
    assert!(c.dequeue().unwrap().is_some());
    assert!(c.dequeue().unwrap().is_some());
    assert_eq!(c.finish_batch(), Ok(false));
    assert_eq!(flag(), 0, "the consumer asked to be notified");
    p.enqueue(buf(2, 1)).unwrap();
    assert!(p.take_signal(), "the producer must notify now");
    assert!(!p.take_signal());

    // Work that arrives between the consumer's last dequeue and its request: the consumer sees
    // it on the re-check, withdraws the request and goes on; the producer does not notify.
    assert!(c.dequeue().unwrap().is_some());
    p.enqueue(buf(3, 1)).unwrap();
    assert_eq!(c.finish_batch(), Ok(true), "reprocess");
    assert_eq!(flag(), 1);
    assert!(!p.take_signal());
    assert!(c.dequeue().unwrap().is_some());

    // The single steps.
    c.request_signal();
    assert!(p.require_signal());
    c.cancel_signal();
    assert!(!p.require_signal());
    c.request_signal();
    p.cancel_signal();
    assert!(!p.require_signal());
}
