//! The sDDF block bridge against a scripted host: splitting, frames, completions, failures.

extern crate std;
use std::vec;
use std::vec::Vec;

use sddf::blk::{BlkRequest, BlkRequestCode, BlkResponse, BlkStatus};

use super::{BlkBridge, DeviceError, Refusal};
use crate::msg::{ChannelProperties, PACKET_MAX};
use crate::requests::{Done, Incoming, IoError, Requests};
use crate::{Capacity, DataBuffer, Lun, Negotiated, Submitted, Version};

/// A host whose largest transfer is 16 KiB (four sDDF blocks), queue depth `depth`.
fn table(depth: usize) -> Requests<8> {
    let max = 16 * 1024;
    Requests::new(
        &Negotiated {
            version: Version::WIN10,
            properties: ChannelProperties {
                max_channel_count: 0,
                flags: 0,
                max_transfer_bytes: max,
            },
            max_transfer_bytes: max,
            sub_channels_offered: 0,
        },
        depth,
    )
}

/// A 512-byte-sector disk of 1 MiB (256 sDDF blocks).
fn bridge() -> BlkBridge {
    let cap = Capacity {
        blocks: 2048,
        block_size: 512,
        physical_exponent: 0,
        thin: false,
    };
    BlkBridge::new(Lun::default(), &cap, 16 * 1024).unwrap()
}

/// The data region: page `p` is frame 0x1000 + p, for pages below 64.
fn frame(p: u64) -> Option<u64> {
    (p < 64).then_some(0x1000 + p)
}

/// What the fake channel saw: (transaction id, first frame, pages, data length).
type Sent = Vec<(u64, u64, usize, u32)>;

fn sender(sent: &mut Sent) -> impl FnMut(&Submitted, Option<&DataBuffer<'_>>, &[u8]) -> bool + '_ {
    |s, data, _bytes| {
        let (first, pages, len) = data.map_or((0, 0, 0), |d| (d.pfns[0], d.pfns.len(), d.len));
        sent.push((s.transaction_id, first, pages, len));
        true
    }
}

/// A successful SRB completion that moved `moved` bytes.
fn ok(moved: u32) -> [u8; 64] {
    let mut p = [0u8; 64];
    p[0] = 1; // COMPLETE_IO
    p[12..14].copy_from_slice(&52u16.to_le_bytes());
    p[14] = 1; // SRB_STATUS_SUCCESS
    p[24..28].copy_from_slice(&moved.to_le_bytes());
    p
}

fn done(r: &mut Requests<8>, tid: u64, moved: u32) -> Done {
    match r.on_packet(tid, &ok(moved)).unwrap() {
        Incoming::Done(d) => d,
        other => panic!("{other:?}"),
    }
}

fn req(code: BlkRequestCode, offset: u64, block: u64, count: u16, id: u32) -> BlkRequest {
    BlkRequest {
        code,
        io_or_offset: offset,
        block_number: block,
        count,
        id,
    }
}

#[test]
fn a_request_larger_than_the_hosts_transfer_is_split_and_answered_once_whole() {
    let (mut b, mut r, mut out, mut sent) = (bridge(), table(8), [0u8; PACKET_MAX], Vec::new());
    // 10 blocks (40 KiB) from data offset 8 KiB: parts of 4, 4 and 2 blocks.
    let rq = req(BlkRequestCode::Write, 8192, 100, 10, 7);
    b.take(&rq, &mut r, &frame, &mut out, &mut sender(&mut sent))
        .unwrap();
    assert_eq!(
        sent,
        vec![
            (sent[0].0, 0x1002, 4, 16384),
            (sent[1].0, 0x1006, 4, 16384),
            (sent[2].0, 0x100a, 2, 8192)
        ]
    );
    let tids: Vec<u64> = sent.iter().map(|s| s.0).collect();
    let mut more = Vec::new();
    for (i, &tid) in tids.iter().enumerate() {
        let d = done(&mut r, tid, if i < 2 { 16384 } else { 8192 });
        let resp = b.complete(&d, &mut r, &frame, &mut out, &mut sender(&mut more));
        if i < 2 {
            assert_eq!(resp, None, "not before the last part");
        } else {
            assert_eq!(
                resp,
                Some(BlkResponse {
                    status: BlkStatus::Ok,
                    success_count: 10,
                    id: 7
                })
            );
        }
    }
    assert!(more.is_empty());
    assert_eq!(b.in_flight(), 0);
}

#[test]
fn parts_that_do_not_fit_the_scsi_queue_go_out_as_completions_make_room() {
    let (mut b, mut r, mut out, mut sent) = (bridge(), table(1), [0u8; PACKET_MAX], Vec::new());
    b.take(
        &req(BlkRequestCode::Read, 0, 0, 8, 1),
        &mut r,
        &frame,
        &mut out,
        &mut sender(&mut sent),
    )
    .unwrap();
    assert_eq!(sent.len(), 1, "queue depth 1: one part now");
    let d = done(&mut r, sent[0].0, 16384);
    let mut next = Vec::new();
    assert_eq!(
        b.complete(&d, &mut r, &frame, &mut out, &mut sender(&mut next)),
        None
    );
    assert_eq!(next.len(), 1, "the second part went out on the completion");
    assert_eq!(next[0].1, 0x1004);
    let d = done(&mut r, next[0].0, 16384);
    let resp = b.complete(&d, &mut r, &frame, &mut out, &mut sender(&mut next));
    assert_eq!(
        resp.map(|x| (x.status, x.success_count)),
        Some((BlkStatus::Ok, 8))
    );
}

#[test]
fn bad_requests_are_answered_at_once_and_send_nothing() {
    let (mut b, mut r, mut out, mut sent) = (bridge(), table(8), [0u8; PACKET_MAX], Vec::new());
    let status = |res: Result<(), Refusal>| match res {
        Err(Refusal::Respond(x)) => x.status,
        other => panic!("{other:?}"),
    };
    // Beyond the device (256 blocks), zero blocks, data outside the shared region.
    for rq in [
        req(BlkRequestCode::Read, 0, 255, 2, 1),
        req(BlkRequestCode::Read, 0, 0, 0, 2),
        req(BlkRequestCode::Write, 63 * 4096, 0, 2, 3),
    ] {
        assert_eq!(
            status(b.take(&rq, &mut r, &frame, &mut out, &mut sender(&mut sent))),
            BlkStatus::InvalidParam,
            "{rq:?}"
        );
    }
    assert!(sent.is_empty());
    assert_eq!(b.in_flight(), 0);
    // A barrier has nothing to wait for here.
    assert_eq!(
        status(b.take(
            &req(BlkRequestCode::Barrier, 0, 0, 0, 4),
            &mut r,
            &frame,
            &mut out,
            &mut sender(&mut sent)
        )),
        BlkStatus::Ok
    );
}

#[test]
fn a_failed_part_fails_the_request_with_the_blocks_done_before_it() {
    let (mut b, mut r, mut out, mut sent) = (bridge(), table(8), [0u8; PACKET_MAX], Vec::new());
    b.take(
        &req(BlkRequestCode::Read, 0, 0, 8, 9),
        &mut r,
        &frame,
        &mut out,
        &mut sender(&mut sent),
    )
    .unwrap();
    let first = done(&mut r, sent[0].0, 16384);
    assert_eq!(
        b.complete(&first, &mut r, &frame, &mut out, &mut sender(&mut sent)),
        None
    );
    let failed = Done {
        transaction_id: sent[1].0,
        opcode: 0x88,
        result: Err(IoError::Aborted { srb_status: 2 }),
    };
    let resp = b
        .complete(&failed, &mut r, &frame, &mut out, &mut sender(&mut sent))
        .unwrap();
    assert_eq!(
        (resp.status, resp.success_count, resp.id),
        (BlkStatus::Io, 4, 9)
    );
}

#[test]
fn a_rescind_answers_every_request_in_flight_with_no_device() {
    let (mut b, mut r, mut out, mut sent) = (bridge(), table(8), [0u8; PACKET_MAX], Vec::new());
    for id in 0..3 {
        b.take(
            &req(BlkRequestCode::Write, 0, u64::from(id), 1, id),
            &mut r,
            &frame,
            &mut out,
            &mut sender(&mut sent),
        )
        .unwrap();
    }
    let mut answers = Vec::new();
    b.fail_all(|x| answers.push(x));
    assert_eq!(answers.len(), 3);
    assert!(answers.iter().all(|x| x.status == BlkStatus::NoDevice));
    assert_eq!(b.in_flight(), 0);
}

#[test]
fn a_device_sddf_blocks_cannot_address_is_refused() {
    let cap = |bs| Capacity {
        blocks: 10,
        block_size: bs,
        physical_exponent: 0,
        thin: false,
    };
    assert_eq!(
        BlkBridge::new(Lun::default(), &cap(3000), 65536).unwrap_err(),
        DeviceError::BlockSize(3000)
    );
    assert_eq!(
        BlkBridge::new(Lun::default(), &cap(512), 2048).unwrap_err(),
        DeviceError::MaxTransfer(2048)
    );
    let info = bridge().storage_info(8);
    assert_eq!(
        (info.capacity, info.sector_size, info.block_size),
        (256, 512, 4)
    );
}
