//! Two sides on two threads over the same flat memory, each a test client that uses only the
//! queues (and a notification standing in for an seL4 notification):
//!
//! * network: a filler (a driver's RX) writes numbered packets into buffers it takes from the
//!   free queue and hands them over on the active queue; a drainer (the RX virtualiser) checks
//!   each packet and hands the buffer back on the free queue. Both sleep when they run dry and
//!   rely on `consumer_signalled` to be woken: a lost wakeup shows up as a stall.
//! * block: a client writes and reads back blocks through the request queue; a fake driver
//!   answers from a disk in memory after publishing the storage-info page.
//!
//! The network test catches a broken signalling protocol (a consumer that sleeps without the
//! re-check, a producer that never notifies) as a stall. It cannot catch a missing full fence in
//! `request_signal`/`require_signal` on x86: `FlatMem` stores a sub-word field with a locked
//! compare-and-swap, which is itself a full barrier there.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::thread;
use std::time::Duration;

use common::Notification;
use sddf::{
    BlkDataRegion, BlkQueue, BlkRequest, BlkRequestCode, BlkResponse, BlkStatus, DeviceLimits,
    FlatMem, NetBuffer, NetDataRegion, NetQueue, QueueMem, StorageInfo, StorageInfoPage, blk, net,
    storage,
};

const STALL: Duration = Duration::from_secs(20);

fn packet(seq: u64) -> Vec<u8> {
    let len = 60 + (seq % 1400) as usize;
    let mut bytes = vec![seq as u8; len];
    bytes[..8].copy_from_slice(&seq.to_le_bytes());
    bytes
}

#[test]
fn net_echo_between_a_filler_and_a_drainer() {
    const CAPACITY: u32 = 8;
    const PACKETS: u64 = 100_000; // beyond 65 536: the u16 indices wrap
    let free = common::words(net::layout::region_size(CAPACITY));
    let active = common::words(net::layout::region_size(CAPACITY));
    let data: Vec<AtomicU64> = common::words(CAPACITY as usize * 2048);
    let data = FlatMem::new(&data);
    let queue = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), CAPACITY).unwrap();
    let region = NetDataRegion::offsets(u64::from(CAPACITY) * 2048);
    let wake_filler = Notification::default();
    let wake_drainer = Notification::default();

    let mut drainer = queue.drainer(region);
    let mut filler = queue.filler(region);
    assert_eq!(drainer.fill_free(region), Ok(CAPACITY));

    thread::scope(|s| {
        // Side A: the filler.
        s.spawn(|| {
            let mut seq = 0u64;
            loop {
                while seq < PACKETS {
                    let Some(buffer) = filler.free.dequeue().unwrap() else {
                        break;
                    };
                    assert_eq!(buffer.len, 0, "free buffers come back empty");
                    let bytes = packet(seq);
                    data.write(buffer.io_or_offset as usize, &bytes);
                    filler
                        .active
                        .enqueue(NetBuffer {
                            len: bytes.len() as u16,
                            ..buffer
                        })
                        .unwrap();
                    seq += 1;
                }
                if filler.active.take_signal() {
                    wake_drainer.signal();
                }
                if seq == PACKETS {
                    break;
                }
                if !filler.free.finish_batch().unwrap() {
                    let woken = wake_filler.wait(STALL);
                    assert!(
                        woken || filler.free.is_empty().unwrap(),
                        "lost wakeup: free buffers queued but never signalled"
                    );
                    assert!(woken, "filler stalled");
                }
            }
        });

        // Side B: the drainer.
        s.spawn(|| {
            let mut expected = 0u64;
            loop {
                while let Some(buffer) = drainer.active.dequeue().unwrap() {
                    let want = packet(expected);
                    assert_eq!(usize::from(buffer.len), want.len());
                    let mut got = vec![0u8; want.len()];
                    data.read(buffer.io_or_offset as usize, &mut got);
                    assert_eq!(got, want, "packet {expected}");
                    expected += 1;
                    drainer
                        .free
                        .enqueue(NetBuffer { len: 0, ..buffer })
                        .unwrap();
                }
                if drainer.free.take_signal() {
                    wake_filler.signal();
                }
                if expected == PACKETS {
                    break;
                }
                if !drainer.active.finish_batch().unwrap() {
                    let woken = wake_drainer.wait(STALL);
                    assert!(
                        woken || drainer.active.is_empty().unwrap(),
                        "lost wakeup: packets queued but never signalled"
                    );
                    assert!(woken, "drainer stalled");
                }
            }
        });
    });
    assert_eq!(drainer.active.head(), (PACKETS % 65_536) as u16);
}

#[test]
fn blk_client_and_fake_driver() {
    const CAPACITY: u32 = 4;
    const BLOCKS: u64 = 64;
    const OPS: u32 = 20_000;
    const SLOTS: u64 = 8;
    let req = common::words(blk::layout::req_region_size(CAPACITY));
    let resp = common::words(blk::layout::resp_region_size(CAPACITY));
    let info = common::words(storage::layout::REGION_SIZE);
    let data: Vec<AtomicU64> = common::words(SLOTS as usize * 4096);
    let data = FlatMem::new(&data);
    let queue = BlkQueue::new(FlatMem::new(&req), FlatMem::new(&resp), CAPACITY).unwrap();
    let page = StorageInfoPage::new(FlatMem::new(&info)).unwrap();
    let region = BlkDataRegion::offsets(SLOTS * 4096);
    let mut client = queue.requester(region);
    let mut driver = queue.responder(region);
    let wake_client = Notification::default();
    let wake_driver = Notification::default();

    thread::scope(|s| {
        // The fake driver: publishes the device, then serves requests from a disk in memory.
        s.spawn(|| {
            let mut disk = vec![0u8; (BLOCKS * 4096) as usize];
            let mut info = StorageInfo {
                capacity: BLOCKS,
                queue_depth: CAPACITY as u16,
                ..StorageInfo::default()
            };
            info.set_serial(b"fake-disk");
            page.publish(&info).unwrap();
            driver.set_device(DeviceLimits::from(&info));
            wake_client.signal();
            let mut served = 0;
            while served < OPS {
                let mut answered = false;
                while let Some(req) = driver.dequeue_request().unwrap() {
                    let at = (req.block_number * 4096) as usize;
                    let len = req.bytes() as usize;
                    match req.code {
                        BlkRequestCode::Read => {
                            data.write(req.io_or_offset as usize, &disk[at..at + len])
                        }
                        BlkRequestCode::Write => {
                            data.read(req.io_or_offset as usize, &mut disk[at..at + len])
                        }
                        BlkRequestCode::Flush | BlkRequestCode::Barrier => {}
                    }
                    driver
                        .enqueue_response(&BlkResponse {
                            status: BlkStatus::Ok,
                            success_count: req.count,
                            id: req.id,
                        })
                        .unwrap();
                    served += 1;
                    answered = true;
                }
                if answered {
                    wake_client.signal();
                } else {
                    assert!(wake_driver.wait(STALL), "driver stalled");
                }
            }
        });

        // The client: waits for the device, then writes blocks and reads them back.
        s.spawn(|| {
            let info = loop {
                if let Some(info) = page.read().unwrap() {
                    break info;
                }
                assert!(wake_client.wait(STALL), "no storage info");
            };
            assert_eq!(info.serial(), b"fake-disk");
            assert_eq!(info.capacity, BLOCKS);

            // What each block holds, as of the requests issued so far.
            let mut contents: Vec<u32> = vec![u32::MAX; BLOCKS as usize];
            let mut free_slots: VecDeque<u64> = (0..SLOTS).collect();
            // id -> (code, slot, the block's contents a READ must find)
            let mut in_flight: HashMap<u32, (BlkRequestCode, u64, u32)> = HashMap::new();
            let mut next = 0u32;
            let mut done = 0u32;
            while done < OPS {
                let mut issued = false;
                while next < OPS && in_flight.len() < CAPACITY as usize {
                    let slot = free_slots.pop_front().unwrap();
                    let block = u64::from(next) % BLOCKS;
                    let code = if next % 97 == 96 {
                        BlkRequestCode::Flush
                    } else if next < BLOCKS as u32 || next.is_multiple_of(3) {
                        BlkRequestCode::Write
                    } else {
                        BlkRequestCode::Read
                    };
                    if code == BlkRequestCode::Write {
                        let mut bytes = vec![0u8; 4096];
                        for (i, b) in bytes.chunks_mut(4).enumerate() {
                            b.copy_from_slice(&(next ^ i as u32).to_le_bytes());
                        }
                        data.write((slot * 4096) as usize, &bytes);
                        contents[block as usize] = next;
                    }
                    client
                        .enqueue_request(&BlkRequest {
                            code,
                            io_or_offset: slot * 4096,
                            block_number: block,
                            count: u16::from(code != BlkRequestCode::Flush),
                            id: next,
                        })
                        .unwrap();
                    in_flight.insert(next, (code, slot, contents[block as usize]));
                    next += 1;
                    issued = true;
                }
                if issued {
                    wake_driver.signal();
                }
                let mut got = false;
                while let Some(resp) = client.dequeue_response().unwrap() {
                    let (code, slot, want) = in_flight.remove(&resp.id).expect("known id");
                    assert_eq!(resp.status, BlkStatus::Ok);
                    if code == BlkRequestCode::Read {
                        assert_eq!(resp.success_count, 1);
                        let mut bytes = vec![0u8; 4096];
                        data.read((slot * 4096) as usize, &mut bytes);
                        for (i, b) in bytes.chunks(4).enumerate() {
                            let word = u32::from_le_bytes(b.try_into().unwrap());
                            assert_eq!(word, want ^ i as u32, "request {}", resp.id);
                        }
                    }
                    free_slots.push_back(slot);
                    done += 1;
                    got = true;
                }
                if !got && !issued {
                    assert!(wake_client.wait(STALL), "client stalled");
                }
            }
            assert!(in_flight.is_empty());
        });
    });
}
