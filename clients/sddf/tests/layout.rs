//! The byte layout of every shared struct against sDDF 0.6.0's C definitions.
//!
//! Each struct is written out twice: as the numbers read off the C headers
//! (`include/sddf/network/queue.h`, `include/sddf/blk/queue.h`, `include/sddf/blk/storage_info.h`)
//! and as a `#[repr(C)]` transcription of the C struct whose offsets the compiler computes. The
//! crate's layout constants must equal both, and the bytes the queues actually write must land
//! at those offsets.

mod common;

use core::mem::{align_of, offset_of, size_of};
use std::sync::atomic::Ordering;

use sddf::{
    BlkDataRegion, BlkQueue, BlkRequest, BlkRequestCode, BlkResponse, BlkStatus, FlatMem,
    NetBuffer, NetDataRegion, NetKind, NetProducer, QueueMem, StorageInfo, StorageInfoPage, blk,
    net, storage,
};

// Transcriptions of the C structs (C enums are `int`, C `bool` is one byte; a flexible array
// member sits where a zero-length array of its element type would).

#[repr(C)]
struct CNetBuffDesc {
    io_or_offset: u64,
    len: u16,
}

#[repr(C)]
struct CNetQueue {
    tail: u16,
    head: u16,
    consumer_signalled: u32,
    buffers: [CNetBuffDesc; 0],
}

#[repr(C)]
struct CBlkReq {
    code: u32,
    io_or_offset: u64,
    block_number: u64,
    count: u16,
    id: u32,
}

#[repr(C)]
struct CBlkResp {
    status: u32,
    success_count: u16,
    id: u32,
}

#[repr(C)]
struct CBlkReqQueue {
    head: u32,
    tail: u32,
    plugged: bool,
    buffers: [CBlkReq; 0],
}

#[repr(C)]
struct CBlkRespQueue {
    head: u32,
    tail: u32,
    buffers: [CBlkResp; 0],
}

#[repr(C)]
struct CBlkStorageInfo {
    serial_number: [u8; 64],
    read_only: bool,
    ready: bool,
    sector_size: u16,
    block_size: u16,
    queue_depth: u16,
    cylinders: u16,
    heads: u16,
    blocks: u16,
    capacity: u64,
}

#[test]
fn net_queue_layout() {
    // Read off the header.
    assert_eq!(net::layout::TAIL, 0);
    assert_eq!(net::layout::HEAD, 2);
    assert_eq!(net::layout::CONSUMER_SIGNALLED, 4);
    assert_eq!(net::layout::BUFFERS, 8);
    assert_eq!(net::layout::DESC_IO_OR_OFFSET, 0);
    assert_eq!(net::layout::DESC_LEN, 8);
    assert_eq!(net::layout::DESC_SIZE, 16);
    assert_eq!(net::layout::region_size(512), 8 + 512 * 16);
    assert_eq!(sddf::NET_BUFFER_SIZE, 2048);

    // Computed from the transcription.
    assert_eq!(offset_of!(CNetQueue, tail), net::layout::TAIL);
    assert_eq!(offset_of!(CNetQueue, head), net::layout::HEAD);
    assert_eq!(
        offset_of!(CNetQueue, consumer_signalled),
        net::layout::CONSUMER_SIGNALLED
    );
    assert_eq!(offset_of!(CNetQueue, buffers), net::layout::BUFFERS);
    assert_eq!(
        offset_of!(CNetBuffDesc, io_or_offset),
        net::layout::DESC_IO_OR_OFFSET
    );
    assert_eq!(offset_of!(CNetBuffDesc, len), net::layout::DESC_LEN);
    assert_eq!(size_of::<CNetBuffDesc>(), net::layout::DESC_SIZE);
    assert_eq!(size_of::<CNetQueue>(), net::layout::BUFFERS);
}

#[test]
fn blk_queue_layout() {
    assert_eq!(blk::layout::REQ_HEAD, 0);
    assert_eq!(blk::layout::REQ_TAIL, 4);
    assert_eq!(blk::layout::REQ_PLUGGED, 8);
    assert_eq!(blk::layout::REQ_BUFFERS, 16);
    assert_eq!(blk::layout::REQ_SIZE, 32);
    assert_eq!(blk::layout::REQ_CODE, 0);
    assert_eq!(blk::layout::REQ_IO_OR_OFFSET, 8);
    assert_eq!(blk::layout::REQ_BLOCK_NUMBER, 16);
    assert_eq!(blk::layout::REQ_COUNT, 24);
    assert_eq!(blk::layout::REQ_ID, 28);
    assert_eq!(blk::layout::RESP_HEAD, 0);
    assert_eq!(blk::layout::RESP_TAIL, 4);
    assert_eq!(blk::layout::RESP_BUFFERS, 8);
    assert_eq!(blk::layout::RESP_SIZE, 12);
    assert_eq!(blk::layout::RESP_STATUS, 0);
    assert_eq!(blk::layout::RESP_SUCCESS_COUNT, 4);
    assert_eq!(blk::layout::RESP_ID, 8);
    assert_eq!(sddf::BLK_TRANSFER_SIZE, 4096);

    assert_eq!(offset_of!(CBlkReqQueue, head), blk::layout::REQ_HEAD);
    assert_eq!(offset_of!(CBlkReqQueue, tail), blk::layout::REQ_TAIL);
    assert_eq!(offset_of!(CBlkReqQueue, plugged), blk::layout::REQ_PLUGGED);
    assert_eq!(offset_of!(CBlkReqQueue, buffers), blk::layout::REQ_BUFFERS);
    assert_eq!(size_of::<CBlkReq>(), blk::layout::REQ_SIZE);
    assert_eq!(align_of::<CBlkReq>(), 8);
    assert_eq!(offset_of!(CBlkReq, code), blk::layout::REQ_CODE);
    assert_eq!(
        offset_of!(CBlkReq, io_or_offset),
        blk::layout::REQ_IO_OR_OFFSET
    );
    assert_eq!(
        offset_of!(CBlkReq, block_number),
        blk::layout::REQ_BLOCK_NUMBER
    );
    assert_eq!(offset_of!(CBlkReq, count), blk::layout::REQ_COUNT);
    assert_eq!(offset_of!(CBlkReq, id), blk::layout::REQ_ID);

    assert_eq!(offset_of!(CBlkRespQueue, head), blk::layout::RESP_HEAD);
    assert_eq!(offset_of!(CBlkRespQueue, tail), blk::layout::RESP_TAIL);
    assert_eq!(
        offset_of!(CBlkRespQueue, buffers),
        blk::layout::RESP_BUFFERS
    );
    assert_eq!(size_of::<CBlkResp>(), blk::layout::RESP_SIZE);
    assert_eq!(offset_of!(CBlkResp, status), blk::layout::RESP_STATUS);
    assert_eq!(
        offset_of!(CBlkResp, success_count),
        blk::layout::RESP_SUCCESS_COUNT
    );
    assert_eq!(offset_of!(CBlkResp, id), blk::layout::RESP_ID);

    // The codes' values, in the enums' declaration order.
    assert_eq!(BlkRequestCode::Read as u32, 0);
    assert_eq!(BlkRequestCode::Write as u32, 1);
    assert_eq!(BlkRequestCode::Flush as u32, 2);
    assert_eq!(BlkRequestCode::Barrier as u32, 3);
    assert_eq!(BlkStatus::Ok as u32, 0);
    assert_eq!(BlkStatus::Unspecified as u32, 1);
    assert_eq!(BlkStatus::InvalidParam as u32, 2);
    assert_eq!(BlkStatus::Io as u32, 3);
    assert_eq!(BlkStatus::NoDevice as u32, 4);
}

#[test]
fn storage_info_layout() {
    assert_eq!(storage::layout::SERIAL_NUMBER, 0);
    assert_eq!(storage::layout::SERIAL_NUMBER_LEN, 64);
    assert_eq!(storage::layout::READ_ONLY, 64);
    assert_eq!(storage::layout::READY, 65);
    assert_eq!(storage::layout::SECTOR_SIZE, 66);
    assert_eq!(storage::layout::BLOCK_SIZE, 68);
    assert_eq!(storage::layout::QUEUE_DEPTH, 70);
    assert_eq!(storage::layout::CYLINDERS, 72);
    assert_eq!(storage::layout::HEADS, 74);
    assert_eq!(storage::layout::BLOCKS, 76);
    assert_eq!(storage::layout::CAPACITY, 80);
    assert_eq!(storage::layout::SIZE, 88);
    assert_eq!(storage::layout::REGION_SIZE, 0x1000);

    assert_eq!(
        offset_of!(CBlkStorageInfo, serial_number),
        storage::layout::SERIAL_NUMBER
    );
    assert_eq!(
        offset_of!(CBlkStorageInfo, read_only),
        storage::layout::READ_ONLY
    );
    assert_eq!(offset_of!(CBlkStorageInfo, ready), storage::layout::READY);
    assert_eq!(
        offset_of!(CBlkStorageInfo, sector_size),
        storage::layout::SECTOR_SIZE
    );
    assert_eq!(
        offset_of!(CBlkStorageInfo, block_size),
        storage::layout::BLOCK_SIZE
    );
    assert_eq!(
        offset_of!(CBlkStorageInfo, queue_depth),
        storage::layout::QUEUE_DEPTH
    );
    assert_eq!(
        offset_of!(CBlkStorageInfo, cylinders),
        storage::layout::CYLINDERS
    );
    assert_eq!(offset_of!(CBlkStorageInfo, heads), storage::layout::HEADS);
    assert_eq!(offset_of!(CBlkStorageInfo, blocks), storage::layout::BLOCKS);
    assert_eq!(
        offset_of!(CBlkStorageInfo, capacity),
        storage::layout::CAPACITY
    );
    assert_eq!(size_of::<CBlkStorageInfo>(), storage::layout::SIZE);
}

fn raw<const N: usize>(mem: &FlatMem<'_>, at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    mem.read(at, &mut out);
    out
}

#[test]
fn net_bytes_land_at_the_c_offsets() {
    let words = common::words(net::layout::region_size(4));
    let mem = FlatMem::new(&words);
    let region = NetDataRegion::new(0x1_0000_0000, 4 * 2048, 2048).unwrap();
    let mut producer = NetProducer::new(NetKind::Active, mem, 4, region).unwrap();
    producer
        .enqueue(NetBuffer {
            io_or_offset: 0x1_0000_0800,
            len: 0x5a5,
        })
        .unwrap();
    producer.enqueue(region.buffer(3).unwrap()).unwrap();
    producer.cancel_signal();

    assert_eq!(u16::from_le_bytes(raw(&mem, 0)), 2, "tail at 0");
    assert_eq!(u16::from_le_bytes(raw(&mem, 2)), 0, "head at 2");
    assert_eq!(
        u32::from_le_bytes(raw(&mem, 4)),
        1,
        "consumer_signalled at 4"
    );
    assert_eq!(u64::from_le_bytes(raw(&mem, 8)), 0x1_0000_0800);
    assert_eq!(u16::from_le_bytes(raw(&mem, 16)), 0x5a5);
    assert_eq!(raw::<6>(&mem, 18), [0; 6], "padding");
    assert_eq!(u64::from_le_bytes(raw(&mem, 24)), 0x1_0000_1800);
    assert_eq!(u16::from_le_bytes(raw(&mem, 32)), 0);
}

#[test]
fn blk_bytes_land_at_the_c_offsets() {
    let req_words = common::words(blk::layout::req_region_size(2));
    let resp_words = common::words(blk::layout::resp_region_size(2));
    let req_mem = FlatMem::new(&req_words);
    let resp_mem = FlatMem::new(&resp_words);
    let queue = BlkQueue::new(req_mem, resp_mem, 2).unwrap();
    let region = BlkDataRegion::offsets(1 << 20);
    let mut requester = queue.requester(region);
    let mut responder = queue.responder(region);

    requester
        .enqueue_request(&BlkRequest {
            code: BlkRequestCode::Write,
            io_or_offset: 0x3000,
            block_number: 0x1_2345_6789,
            count: 7,
            id: 0xdead_beef,
        })
        .unwrap();
    requester.set_plugged(true);
    assert_eq!(u32::from_le_bytes(raw(&req_mem, 0)), 0, "head at 0");
    assert_eq!(u32::from_le_bytes(raw(&req_mem, 4)), 1, "tail at 4");
    assert_eq!(raw::<1>(&req_mem, 8), [1], "plugged at 8");
    assert_eq!(u32::from_le_bytes(raw(&req_mem, 16)), 1, "code");
    assert_eq!(u64::from_le_bytes(raw(&req_mem, 24)), 0x3000);
    assert_eq!(u64::from_le_bytes(raw(&req_mem, 32)), 0x1_2345_6789);
    assert_eq!(u16::from_le_bytes(raw(&req_mem, 40)), 7);
    assert_eq!(u32::from_le_bytes(raw(&req_mem, 44)), 0xdead_beef);

    responder.dequeue_request().unwrap().unwrap();
    assert_eq!(u32::from_le_bytes(raw(&req_mem, 0)), 1, "head moved");
    for id in [0x11, 0x22] {
        responder
            .enqueue_response(&BlkResponse {
                status: BlkStatus::Io,
                success_count: 3,
                id,
            })
            .unwrap();
    }
    assert_eq!(u32::from_le_bytes(raw(&resp_mem, 4)), 2, "tail at 4");
    assert_eq!(u32::from_le_bytes(raw(&resp_mem, 8)), 3, "status");
    assert_eq!(u16::from_le_bytes(raw(&resp_mem, 12)), 3, "success_count");
    assert_eq!(u32::from_le_bytes(raw(&resp_mem, 16)), 0x11, "id");
    assert_eq!(
        u32::from_le_bytes(raw(&resp_mem, 20)),
        3,
        "second entry at 8 + 12"
    );
    assert_eq!(u32::from_le_bytes(raw(&resp_mem, 28)), 0x22);
}

#[test]
fn storage_info_bytes_land_at_the_c_offsets() {
    let words = common::words(storage::layout::REGION_SIZE);
    let mem = FlatMem::new(&words);
    let page = StorageInfoPage::new(mem).unwrap();
    let mut info = StorageInfo {
        read_only: true,
        sector_size: 512,
        block_size: 2,
        queue_depth: 64,
        cylinders: 3,
        heads: 4,
        blocks: 5,
        capacity: 0x1234_5678_9abc,
        ..StorageInfo::default()
    };
    info.set_serial(b"hv-scsi-0");
    page.publish(&info).unwrap();
    assert_eq!(&raw::<10>(&mem, 0), b"hv-scsi-0\0");
    assert_eq!(raw::<2>(&mem, 64), [1, 1], "read_only, ready");
    assert_eq!(u16::from_le_bytes(raw(&mem, 66)), 512);
    assert_eq!(u16::from_le_bytes(raw(&mem, 68)), 2);
    assert_eq!(u16::from_le_bytes(raw(&mem, 70)), 64);
    assert_eq!(u16::from_le_bytes(raw(&mem, 72)), 3);
    assert_eq!(u16::from_le_bytes(raw(&mem, 74)), 4);
    assert_eq!(u16::from_le_bytes(raw(&mem, 76)), 5);
    assert_eq!(u64::from_le_bytes(raw(&mem, 80)), 0x1234_5678_9abc);
    assert_eq!(mem.load_u8(65, Ordering::Acquire), 1);
}
