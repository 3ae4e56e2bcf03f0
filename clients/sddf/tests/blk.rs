//! The block queues and the storage-info page on one thread.

mod common;

use std::sync::atomic::AtomicU64;

use sddf::{
    BlkDataRegion, BlkQueue, BlkRequest, BlkRequestCode, BlkRequester, BlkResponder, BlkResponse,
    BlkStatus, ConfigError, DeviceLimits, EnqueueError, FlatMem, PeerError, QueueId, RequestFault,
    StorageFault, StorageInfo, StorageInfoPage, blk, storage,
};

const REGION: BlkDataRegion = BlkDataRegion::offsets(16 * 4096);

struct Mem {
    req: Vec<AtomicU64>,
    resp: Vec<AtomicU64>,
}

impl Mem {
    fn new(capacity: u32) -> Self {
        Self {
            req: common::words(blk::layout::req_region_size(capacity)),
            resp: common::words(blk::layout::resp_region_size(capacity)),
        }
    }

    fn ends(&self, capacity: u32) -> (BlkRequester<FlatMem<'_>>, BlkResponder<FlatMem<'_>>) {
        let q = BlkQueue::new(FlatMem::new(&self.req), FlatMem::new(&self.resp), capacity).unwrap();
        (q.requester(REGION), q.responder(REGION))
    }
}

fn read(id: u32, block: u64) -> BlkRequest {
    BlkRequest {
        code: BlkRequestCode::Read,
        io_or_offset: (u64::from(id) % 16) * 4096,
        block_number: block,
        count: 1,
        id,
    }
}

#[test]
fn request_and_response_round_trip() {
    let mem = Mem::new(4);
    let (mut client, mut driver) = mem.ends(4);
    let reqs = [
        read(1, 10),
        BlkRequest {
            code: BlkRequestCode::Write,
            io_or_offset: 4096,
            block_number: u64::MAX - 4,
            count: 4,
            id: 2,
        },
        BlkRequest {
            code: BlkRequestCode::Flush,
            io_or_offset: 0,
            block_number: 0,
            count: 0,
            id: 3,
        },
        BlkRequest {
            code: BlkRequestCode::Barrier,
            io_or_offset: 0,
            block_number: 0,
            count: 0,
            id: 4,
        },
    ];
    for r in &reqs {
        client.enqueue_request(r).unwrap();
    }
    assert_eq!(client.requests_len(), Ok(4));
    assert_eq!(client.is_request_full(), Ok(true));
    assert_eq!(client.enqueue_request(&read(5, 0)), Err(EnqueueError::Full));
    for r in &reqs {
        assert_eq!(driver.dequeue_request(), Ok(Some(*r)));
        driver
            .enqueue_response(&BlkResponse {
                status: BlkStatus::Ok,
                success_count: r.count,
                id: r.id,
            })
            .unwrap();
    }
    assert_eq!(driver.dequeue_request(), Ok(None));
    assert_eq!(driver.is_response_full(), Ok(true));
    assert_eq!(
        driver.enqueue_response(&BlkResponse {
            status: BlkStatus::Ok,
            success_count: 0,
            id: 9
        }),
        Err(EnqueueError::Full)
    );
    for r in &reqs {
        let resp = client.dequeue_response().unwrap().unwrap();
        assert_eq!((resp.id, resp.success_count), (r.id, r.count));
    }
    assert_eq!(client.dequeue_response(), Ok(None));
    assert_eq!(client.is_response_empty(), Ok(true));
}

#[test]
fn every_status_round_trips() {
    let mem = Mem::new(8);
    let (mut client, mut driver) = mem.ends(8);
    let all = [
        BlkStatus::Ok,
        BlkStatus::Unspecified,
        BlkStatus::InvalidParam,
        BlkStatus::Io,
        BlkStatus::NoDevice,
    ];
    for (i, status) in all.into_iter().enumerate() {
        driver
            .enqueue_response(&BlkResponse {
                status,
                success_count: i as u16,
                id: 100 + i as u32,
            })
            .unwrap();
    }
    for (i, status) in all.into_iter().enumerate() {
        assert_eq!(
            client.dequeue_response(),
            Ok(Some(BlkResponse {
                status,
                success_count: i as u16,
                id: 100 + i as u32
            }))
        );
    }
}

#[test]
fn indices_wrap_around_many_times() {
    let mem = Mem::new(2);
    let (mut client, mut driver) = mem.ends(2);
    for id in 0..10_000u32 {
        client.enqueue_request(&read(id, u64::from(id))).unwrap();
        let req = driver.dequeue_request().unwrap().unwrap();
        assert_eq!(req.id, id);
        driver
            .enqueue_response(&BlkResponse {
                status: BlkStatus::Ok,
                success_count: 1,
                id,
            })
            .unwrap();
        assert_eq!(client.dequeue_response().unwrap().unwrap().id, id);
    }
}

#[test]
fn u32_indices_wrap() {
    let mem = Mem::new(4);
    // Attach to a queue whose indices are just below 2^32.
    {
        use sddf::QueueMem;
        use std::sync::atomic::Ordering;
        let req = FlatMem::new(&mem.req);
        req.store_u32(blk::layout::REQ_HEAD, u32::MAX - 1, Ordering::Relaxed);
        req.store_u32(blk::layout::REQ_TAIL, u32::MAX - 1, Ordering::Relaxed);
    }
    let (mut client, mut driver) = mem.ends(4);
    for id in 0..4 {
        client.enqueue_request(&read(id, 0)).unwrap();
    }
    assert_eq!(client.is_request_full(), Ok(true));
    assert_eq!(driver.requests_len(), Ok(4));
    for id in 0..4 {
        assert_eq!(driver.dequeue_request().unwrap().unwrap().id, id);
    }
    assert_eq!(driver.is_request_empty(), Ok(true));
}

#[test]
fn own_requests_are_checked() {
    let mem = Mem::new(4);
    let (mut client, _) = mem.ends(4);
    let past_end = BlkRequest {
        io_or_offset: 15 * 4096,
        count: 2,
        ..read(1, 0)
    };
    assert_eq!(
        client.enqueue_request(&past_end),
        Err(EnqueueError::Invalid(RequestFault::OutOfRegion))
    );
    let overflow = BlkRequest {
        block_number: u64::MAX,
        ..read(2, 0)
    };
    assert_eq!(
        client.enqueue_request(&overflow),
        Err(EnqueueError::Invalid(RequestFault::CountOverflow))
    );
    assert_eq!(client.requests_len(), Ok(0));
    // FLUSH and BARRIER carry no transfer: their other fields are not checked.
    client
        .enqueue_request(&BlkRequest {
            code: BlkRequestCode::Flush,
            io_or_offset: u64::MAX,
            block_number: u64::MAX,
            count: u16::MAX,
            id: 3,
        })
        .unwrap();
}

#[test]
fn responder_checks_against_the_device() {
    let mem = Mem::new(4);
    let (mut client, mut driver) = mem.ends(4);
    driver.set_device(DeviceLimits {
        capacity: 100,
        read_only: true,
    });
    client.enqueue_request(&read(1, 99)).unwrap();
    client.enqueue_request(&read(2, 100)).unwrap();
    client
        .enqueue_request(&BlkRequest {
            code: BlkRequestCode::Write,
            ..read(3, 0)
        })
        .unwrap();
    assert_eq!(driver.dequeue_request(), Ok(Some(read(1, 99))));
    assert_eq!(
        driver.dequeue_request(),
        Err(PeerError::BadRequest {
            id: 2,
            fault: RequestFault::BeyondDevice
        })
    );
    assert_eq!(
        driver.dequeue_request(),
        Err(PeerError::BadRequest {
            id: 3,
            fault: RequestFault::ReadOnly
        })
    );
    assert_eq!(driver.dequeue_request(), Ok(None));
}

#[test]
fn plugged_flag() {
    let mem = Mem::new(4);
    let (client, driver) = mem.ends(4);
    assert_eq!(driver.is_plugged(), Ok(false));
    client.set_plugged(true);
    assert_eq!(driver.is_plugged(), Ok(true));
    client.set_plugged(false);
    assert_eq!(driver.is_plugged(), Ok(false));
}

#[test]
fn capacity_and_regions_are_checked() {
    let mem = Mem::new(4);
    let req = FlatMem::new(&mem.req);
    let resp = FlatMem::new(&mem.resp);
    assert_eq!(
        BlkQueue::new(req, resp, 3).err(),
        Some(ConfigError::BadCapacity {
            queue: QueueId::BlkRequest,
            capacity: 3
        })
    );
    assert_eq!(
        BlkQueue::new(req, resp, 8).err(),
        Some(ConfigError::RegionTooSmall {
            queue: QueueId::BlkRequest,
            needed: blk::layout::req_region_size(8),
            have: mem.req.len() * 8,
        })
    );
    // The response region is checked too.
    let small = common::words(blk::layout::resp_region_size(2));
    assert_eq!(
        BlkQueue::new(req, FlatMem::new(&small), 4).err(),
        Some(ConfigError::RegionTooSmall {
            queue: QueueId::BlkResponse,
            needed: blk::layout::resp_region_size(4),
            have: small.len() * 8,
        })
    );
    assert_eq!(
        BlkDataRegion::new(u64::MAX - 1, 4),
        Err(ConfigError::BadDataRegion)
    );
}

fn info() -> StorageInfo {
    let mut info = StorageInfo {
        sector_size: 512,
        block_size: 1,
        queue_depth: 32,
        capacity: 1 << 20,
        ..StorageInfo::default()
    };
    info.set_serial(b"0123456789");
    info
}

#[test]
fn storage_info_publish_and_read() {
    let words = common::words(storage::layout::REGION_SIZE);
    let page = StorageInfoPage::new(FlatMem::new(&words)).unwrap();
    assert_eq!(page.is_ready(), Ok(false));
    assert_eq!(page.read(), Ok(None));
    page.publish(&info()).unwrap();
    assert_eq!(page.is_ready(), Ok(true));
    let got = page.read().unwrap().unwrap();
    assert_eq!(got, info());
    assert_eq!(got.serial(), b"0123456789");
    assert_eq!(DeviceLimits::from(&got).capacity, 1 << 20);
    page.withdraw();
    assert_eq!(page.read(), Ok(None));
}

#[test]
fn storage_info_is_checked_before_publishing() {
    let words = common::words(storage::layout::REGION_SIZE);
    let page = StorageInfoPage::new(FlatMem::new(&words)).unwrap();
    let mut bad = info();
    bad.sector_size = 520;
    assert_eq!(page.publish(&bad), Err(StorageFault::BadSectorSize(520)));
    bad = info();
    bad.block_size = 0;
    assert_eq!(page.publish(&bad), Err(StorageFault::ZeroBlockSize));
    bad = info();
    bad.serial_number = [b'x'; 64];
    assert_eq!(page.publish(&bad), Err(StorageFault::SerialNotTerminated));
    assert_eq!(page.is_ready(), Ok(false), "nothing published");

    let mut long = info();
    long.set_serial(&[b'y'; 100]);
    assert_eq!(long.serial().len(), 63, "cut to 63 bytes and terminated");
    page.publish(&long).unwrap();

    let small = common::words(80);
    assert!(StorageInfoPage::new(FlatMem::new(&small)).is_err());
}
