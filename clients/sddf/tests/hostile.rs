//! A hostile peer: whatever it writes into the shared regions, this side reports a
//! [`PeerError`] and never reads or writes outside the queue, never panics, and never trusts
//! a copy of its own index.

mod common;

use std::sync::atomic::Ordering;

use sddf::{
    BlkDataRegion, BlkQueue, BlkRequest, BlkRequestCode, EnqueueError, Flag, FlatMem, NetBuffer,
    NetConsumer, NetDataRegion, NetKind, NetProducer, PeerError, QueueId, QueueMem, RequestFault,
    StorageFault, StorageInfo, StorageInfoPage, blk, net, storage,
};

const REGION: NetDataRegion = NetDataRegion::offsets(8 * 2048);

fn desc(mem: &FlatMem<'_>, slot: usize, io_or_offset: u64, len: u16) {
    let at = net::layout::BUFFERS + slot * net::layout::DESC_SIZE;
    mem.write(at, &NetBuffer { io_or_offset, len }.to_bytes());
}

#[test]
fn net_tail_moved_out_of_range_is_reported_and_nothing_is_consumed() {
    let words = common::words(net::layout::region_size(4));
    let mem = FlatMem::new(&words);
    let mut c = NetConsumer::new(NetKind::Active, mem, 4, REGION).unwrap();
    for bad_tail in [5u16, 100, 0xffff] {
        mem.store_u16(net::layout::TAIL, bad_tail, Ordering::Release);
        let err = PeerError::IndexOutOfRange {
            queue: QueueId::NetActive,
            ours: 0,
            theirs: u32::from(bad_tail),
            capacity: 4,
        };
        assert_eq!(c.dequeue(), Err(err));
        assert_eq!(c.len(), Err(err));
        assert_eq!(c.finish_batch(), Err(err));
        assert_eq!(c.head(), 0);
        assert_eq!(mem.load_u16(net::layout::HEAD, Ordering::Relaxed), 0);
    }
    // Once the peer puts a sane tail back, the queue works again.
    desc(&mem, 0, 2048, 10);
    mem.store_u16(net::layout::TAIL, 1, Ordering::Release);
    assert_eq!(
        c.dequeue(),
        Ok(Some(NetBuffer {
            io_or_offset: 2048,
            len: 10
        }))
    );
}

#[test]
fn net_head_moved_out_of_range_stops_the_producer() {
    let words = common::words(net::layout::region_size(4));
    let mem = FlatMem::new(&words);
    let mut p = NetProducer::new(NetKind::Free, mem, 4, REGION).unwrap();
    p.enqueue(NetBuffer::default()).unwrap();
    // The consumer claims to have taken more than was ever produced (head ahead of tail): the
    // distance wraps to 0xffff, which would let the producer overwrite unconsumed slots.
    mem.store_u16(net::layout::HEAD, 2, Ordering::Release);
    let before: Vec<u64> = words.iter().map(|w| w.load(Ordering::Relaxed)).collect();
    assert_eq!(
        p.enqueue(NetBuffer::default()),
        Err(EnqueueError::Peer(PeerError::IndexOutOfRange {
            queue: QueueId::NetFree,
            ours: 1,
            theirs: 2,
            capacity: 4,
        }))
    );
    assert!(p.is_full().is_err());
    let after: Vec<u64> = words.iter().map(|w| w.load(Ordering::Relaxed)).collect();
    assert_eq!(before, after, "nothing written");
}

#[test]
fn net_peer_rewriting_our_own_index_is_ignored() {
    let words = common::words(net::layout::region_size(4));
    let mem = FlatMem::new(&words);
    let mut p = NetProducer::new(NetKind::Active, mem, 4, REGION).unwrap();
    let mut c = NetConsumer::new(NetKind::Active, mem, 4, REGION).unwrap();
    for i in 0..3 {
        p.enqueue(NetBuffer {
            io_or_offset: i * 2048,
            len: 1,
        })
        .unwrap();
    }
    // The peer scribbles over the consumer's head; the consumer keeps its own count.
    mem.store_u16(net::layout::HEAD, 2, Ordering::Relaxed);
    assert_eq!(c.dequeue().unwrap().unwrap().io_or_offset, 0);
    assert_eq!(mem.load_u16(net::layout::HEAD, Ordering::Relaxed), 1);
    // And over the producer's tail: the producer writes the next slot, not the peer's choice.
    mem.store_u16(net::layout::TAIL, 0, Ordering::Relaxed);
    p.enqueue(NetBuffer {
        io_or_offset: 3 * 2048,
        len: 1,
    })
    .unwrap();
    assert_eq!(mem.load_u16(net::layout::TAIL, Ordering::Relaxed), 4);
    for i in 1..4 {
        assert_eq!(c.dequeue().unwrap().unwrap().io_or_offset, i * 2048);
    }
}

#[test]
fn net_descriptors_outside_the_region_are_reported_and_skipped() {
    let words = common::words(net::layout::region_size(8));
    let mem = FlatMem::new(&words);
    let region = NetDataRegion::new(0x4000_0000, 4 * 2048, 2048).unwrap();
    let mut c = NetConsumer::new(NetKind::Free, mem, 8, region).unwrap();
    let bad = [
        (0x4000_0800, 2049),     // longer than a buffer
        (0x4000_0800, u16::MAX), // far longer
        (0x3fff_f800, 0),        // below the region
        (0x4000_2000, 0),        // the first byte past it
        (0x4000_0004, 0),        // inside, not on a buffer boundary
        (u64::MAX, 1),           // overflow bait
    ];
    for (slot, &(io, len)) in bad.iter().enumerate() {
        desc(&mem, slot, io, len);
    }
    desc(&mem, bad.len(), 0x4000_1800, 2048);
    mem.store_u16(net::layout::TAIL, bad.len() as u16 + 1, Ordering::Release);
    for &(io_or_offset, len) in &bad {
        assert_eq!(
            c.dequeue(),
            Err(PeerError::BadBuffer {
                queue: QueueId::NetFree,
                io_or_offset,
                len
            })
        );
    }
    assert_eq!(
        c.dequeue(),
        Ok(Some(NetBuffer {
            io_or_offset: 0x4000_1800,
            len: 2048
        }))
    );
    assert_eq!(c.dequeue(), Ok(None));
}

fn raw_request(mem: &FlatMem<'_>, slot: usize, code: u32, req: &BlkRequest) {
    let mut bytes = req.to_bytes();
    bytes[blk::layout::REQ_CODE..blk::layout::REQ_CODE + 4].copy_from_slice(&code.to_le_bytes());
    mem.write(
        blk::layout::REQ_BUFFERS + slot * blk::layout::REQ_SIZE,
        &bytes,
    );
}

#[test]
fn blk_bad_requests_are_reported_with_their_id() {
    let req_words = common::words(blk::layout::req_region_size(8));
    let resp_words = common::words(blk::layout::resp_region_size(8));
    let req_mem = FlatMem::new(&req_words);
    let queue = BlkQueue::new(req_mem, FlatMem::new(&resp_words), 8).unwrap();
    let region = BlkDataRegion::new(0x10_0000, 8 * 4096).unwrap();
    let mut driver = queue.responder(region);
    let ok = BlkRequest {
        code: BlkRequestCode::Read,
        io_or_offset: 0x10_0000,
        block_number: 5,
        count: 8,
        id: 0,
    };
    let cases = [
        (4, ok, RequestFault::UnknownCode(4)),
        (0xffff_ffff, ok, RequestFault::UnknownCode(0xffff_ffff)),
        (
            1,
            BlkRequest {
                block_number: u64::MAX - 3,
                ..ok
            },
            RequestFault::CountOverflow,
        ),
        (
            0,
            BlkRequest {
                io_or_offset: 0x10_1000,
                ..ok
            },
            RequestFault::OutOfRegion,
        ),
        (
            0,
            BlkRequest {
                io_or_offset: 0xf_f000,
                count: 1,
                ..ok
            },
            RequestFault::OutOfRegion,
        ),
        (
            1,
            BlkRequest {
                io_or_offset: u64::MAX - 4095,
                count: u16::MAX,
                ..ok
            },
            RequestFault::OutOfRegion,
        ),
    ];
    for (slot, (code, req, _)) in cases.iter().enumerate() {
        let req = BlkRequest {
            id: 1000 + slot as u32,
            ..*req
        };
        raw_request(&req_mem, slot, *code, &req);
    }
    raw_request(&req_mem, cases.len(), 1, &BlkRequest { id: 7, ..ok });
    req_mem.store_u32(
        blk::layout::REQ_TAIL,
        cases.len() as u32 + 1,
        Ordering::Release,
    );
    for (slot, (_, _, fault)) in cases.iter().enumerate() {
        assert_eq!(
            driver.dequeue_request(),
            Err(PeerError::BadRequest {
                id: 1000 + slot as u32,
                fault: *fault
            })
        );
    }
    assert_eq!(
        driver.dequeue_request(),
        Ok(Some(BlkRequest {
            code: BlkRequestCode::Write,
            id: 7,
            ..ok
        }))
    );
}

#[test]
fn blk_indices_out_of_range_are_reported() {
    let req_words = common::words(blk::layout::req_region_size(4));
    let resp_words = common::words(blk::layout::resp_region_size(4));
    let req_mem = FlatMem::new(&req_words);
    let resp_mem = FlatMem::new(&resp_words);
    let queue = BlkQueue::new(req_mem, resp_mem, 4).unwrap();
    let mut driver = queue.responder(BlkDataRegion::offsets(4096));
    let mut client = queue.requester(BlkDataRegion::offsets(4096));

    req_mem.store_u32(blk::layout::REQ_TAIL, 5, Ordering::Release);
    assert_eq!(
        driver.dequeue_request(),
        Err(PeerError::IndexOutOfRange {
            queue: QueueId::BlkRequest,
            ours: 0,
            theirs: 5,
            capacity: 4
        })
    );
    resp_mem.store_u32(blk::layout::RESP_HEAD, 5, Ordering::Release);
    assert!(matches!(
        driver.enqueue_response(&sddf::BlkResponse {
            status: sddf::BlkStatus::Ok,
            success_count: 0,
            id: 0
        }),
        Err(EnqueueError::Peer(PeerError::IndexOutOfRange {
            queue: QueueId::BlkResponse,
            ..
        }))
    ));
    resp_mem.store_u32(blk::layout::RESP_TAIL, 1 << 31, Ordering::Release);
    assert!(matches!(
        client.dequeue_response(),
        Err(PeerError::IndexOutOfRange {
            queue: QueueId::BlkResponse,
            ..
        })
    ));
    req_mem.store_u32(blk::layout::REQ_HEAD, 3, Ordering::Release);
    assert!(matches!(
        client.requests_len(),
        Err(PeerError::IndexOutOfRange {
            queue: QueueId::BlkRequest,
            ..
        })
    ));
}

#[test]
fn blk_unknown_status_is_reported_and_skipped() {
    let req_words = common::words(blk::layout::req_region_size(4));
    let resp_words = common::words(blk::layout::resp_region_size(4));
    let resp_mem = FlatMem::new(&resp_words);
    let queue = BlkQueue::new(FlatMem::new(&req_words), resp_mem, 4).unwrap();
    let mut client = queue.requester(BlkDataRegion::offsets(4096));
    let mut entry = [0u8; blk::layout::RESP_SIZE];
    entry[..4].copy_from_slice(&5u32.to_le_bytes());
    entry[8..].copy_from_slice(&42u32.to_le_bytes());
    resp_mem.write(blk::layout::RESP_BUFFERS, &entry);
    entry[..4].copy_from_slice(&3u32.to_le_bytes());
    resp_mem.write(blk::layout::RESP_BUFFERS + blk::layout::RESP_SIZE, &entry);
    resp_mem.store_u32(blk::layout::RESP_TAIL, 2, Ordering::Release);
    assert_eq!(
        client.dequeue_response(),
        Err(PeerError::UnknownStatus { id: 42, status: 5 })
    );
    assert_eq!(
        client.dequeue_response().unwrap().unwrap().status,
        sddf::BlkStatus::Io
    );
}

#[test]
fn bad_flags_are_reported() {
    let req_words = common::words(blk::layout::req_region_size(4));
    let resp_words = common::words(blk::layout::resp_region_size(4));
    let req_mem = FlatMem::new(&req_words);
    let queue = BlkQueue::new(req_mem, FlatMem::new(&resp_words), 4).unwrap();
    let driver = queue.responder(BlkDataRegion::offsets(4096));
    req_mem.store_u8(blk::layout::REQ_PLUGGED, 2, Ordering::Release);
    assert_eq!(
        driver.is_plugged(),
        Err(PeerError::BadFlag {
            flag: Flag::Plugged,
            value: 2
        })
    );

    let words = common::words(storage::layout::REGION_SIZE);
    let mem = FlatMem::new(&words);
    let page = StorageInfoPage::new(mem).unwrap();
    mem.store_u8(storage::layout::READY, 0x80, Ordering::Release);
    assert_eq!(
        page.read(),
        Err(PeerError::BadFlag {
            flag: Flag::Ready,
            value: 0x80
        })
    );
    let mut info = StorageInfo::default();
    info.set_serial(b"s");
    page.publish(&info).unwrap();
    mem.store_u8(storage::layout::READ_ONLY, 7, Ordering::Relaxed);
    assert_eq!(
        page.read(),
        Err(PeerError::BadFlag {
            flag: Flag::ReadOnly,
            value: 7
        })
    );
}

#[test]
fn bad_storage_info_is_reported() {
    let words = common::words(storage::layout::REGION_SIZE);
    let mem = FlatMem::new(&words);
    let page = StorageInfoPage::new(mem).unwrap();
    let good = StorageInfo {
        capacity: 10,
        ..StorageInfo::default()
    };
    page.publish(&good).unwrap();
    assert_eq!(page.read(), Ok(Some(good)));

    mem.store_u16(storage::layout::SECTOR_SIZE, 0, Ordering::Relaxed);
    assert_eq!(
        page.read(),
        Err(PeerError::BadStorageInfo(StorageFault::BadSectorSize(0)))
    );
    mem.store_u16(storage::layout::SECTOR_SIZE, 8192, Ordering::Relaxed);
    assert_eq!(
        page.read(),
        Err(PeerError::BadStorageInfo(StorageFault::BadSectorSize(8192)))
    );
    mem.store_u16(storage::layout::SECTOR_SIZE, 4096, Ordering::Relaxed);
    mem.store_u16(storage::layout::BLOCK_SIZE, 0, Ordering::Relaxed);
    assert_eq!(
        page.read(),
        Err(PeerError::BadStorageInfo(StorageFault::ZeroBlockSize))
    );
    mem.store_u16(storage::layout::BLOCK_SIZE, 1, Ordering::Relaxed);
    mem.write(0, &[b'z'; 64]);
    assert_eq!(
        page.read(),
        Err(PeerError::BadStorageInfo(StorageFault::SerialNotTerminated))
    );
}
