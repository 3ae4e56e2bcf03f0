//! netvsc behind sDDF queues: a test client that uses only the queues on the other side.

extern crate std;
use std::sync::atomic::AtomicU64;
use std::vec;
use std::vec::Vec;

use sddf::FlatMem;
use sddf::net::{NET_BUFFER_SIZE, NetBuffer, NetDataRegion, NetQueue};

use super::ready_rig;
use crate::PacketKind;
use crate::sddf_net::{NetBridge, TxStop};

/// Descriptors per queue.
const CAP: u32 = 8;

/// Words for one queue of `CAP` descriptors (an 8-byte header, 16 bytes each).
fn queue_words() -> Vec<AtomicU64> {
    (0..FlatMem::words_for(8 + 16 * CAP as usize))
        .map(|_| AtomicU64::new(0))
        .collect()
}

#[test]
fn received_frames_reach_the_client_through_the_rx_queues_and_wait_for_free_buffers() {
    let (free, active) = (queue_words(), queue_words());
    let region = NetDataRegion::offsets(u64::from(NET_BUFFER_SIZE) * 2);
    // The client's side: it owns the free queue's tail and fills it with its two buffers.
    let mut client = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), CAP)
        .unwrap()
        .drainer(region);
    assert_eq!(client.fill_free(region).unwrap(), 2);
    let mut rx = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), CAP)
        .unwrap()
        .filler(region);
    let mut data = vec![0u8; NET_BUFFER_SIZE as usize * 2];
    let mut bridge = NetBridge::new();
    for (i, byte) in [0x11u8, 0x22, 0x33].into_iter().enumerate() {
        let frame = vec![byte; 60 + i];
        bridge.deliver(&mut rx, &mut data[..], &frame).unwrap();
    }
    assert_eq!(
        (bridge.stats.rx_delivered, bridge.stats.rx_no_buffer),
        (2, 1),
        "two buffers, three frames: the third is dropped, not written anywhere"
    );
    let got: Vec<NetBuffer> = core::iter::from_fn(|| client.active.dequeue().unwrap()).collect();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].io_or_offset, got[0].len), (0, 60));
    assert_eq!((got[1].io_or_offset, got[1].len), (2048, 61));
    assert!(data[..60].iter().all(|&b| b == 0x11));
    assert!(data[2048..2048 + 61].iter().all(|&b| b == 0x22));
    // A frame larger than an sDDF buffer is dropped.
    client.free.enqueue(NetBuffer { len: 0, ..got[0] }).unwrap();
    bridge
        .deliver(&mut rx, &mut data[..], &[0u8; 2049])
        .unwrap();
    assert_eq!(bridge.stats.rx_too_big, 1);
    bridge.deliver(&mut rx, &mut data[..], &[0x44; 64]).unwrap();
    assert_eq!(client.active.dequeue().unwrap().map(|b| b.len), Some(64));
}

#[test]
fn client_frames_go_out_through_send_sections_and_their_buffers_come_back_at_once() {
    let mut rig = ready_rig();
    let (free, active) = (queue_words(), queue_words());
    let region = NetDataRegion::offsets(u64::from(NET_BUFFER_SIZE) * 8);
    // The client's TX side fills buffers and hands them over on the active queue.
    let mut client = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), CAP)
        .unwrap()
        .filler(region);
    let mut tx = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), CAP)
        .unwrap()
        .drainer(region);
    let mut data = vec![0u8; NET_BUFFER_SIZE as usize * 8];
    for i in 0..6u64 {
        let at = (i * 2048) as usize;
        data[at..at + 100].fill(i as u8 + 1);
        client
            .active
            .enqueue(NetBuffer {
                io_or_offset: i * 2048,
                len: 100,
            })
            .unwrap();
    }
    let mut bridge = NetBridge::new();
    // The rig's send buffer has 4 sections: four frames go, then the device is busy.
    let (stop, _) = bridge
        .transmit(
            &mut tx,
            &data[..],
            &mut rig.dev,
            &mut rig.send[..],
            &mut rig.out,
        )
        .unwrap();
    assert_eq!(stop, TxStop::DeviceBusy);
    assert_eq!(bridge.stats.tx_sent, 4);
    let sent = rig.take_out();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|p| p.kind == PacketKind::InBand));
    // Every sent buffer is already back with the client, emptied.
    let back: Vec<NetBuffer> = core::iter::from_fn(|| client.free.dequeue().unwrap()).collect();
    assert_eq!(back.len(), 4);
    assert!(back.iter().all(|b| b.len == 0));
    // The frames are in the sections: section 0 holds the first frame after its RNDIS header.
    assert!(rig.send[44..144].iter().all(|&b| b == 1));
    // Completions free the sections; the held frame and the rest go out.
    for p in &sent {
        rig.feed(&super::completion(
            p.transaction_id,
            &super::nvsp_msg(&[crate::nvsp::msg_type::SEND_RNDIS_PKT_COMPLETE, 1]),
        ))
        .unwrap();
    }
    let (stop, _) = bridge
        .transmit(
            &mut tx,
            &data[..],
            &mut rig.dev,
            &mut rig.send[..],
            &mut rig.out,
        )
        .unwrap();
    assert_eq!(stop, TxStop::Drained);
    assert_eq!(bridge.stats.tx_sent, 6);
}

#[test]
fn a_frame_held_for_a_busy_device_goes_back_to_the_client_on_rescind() {
    let mut rig = ready_rig();
    let (free, active) = (queue_words(), queue_words());
    let region = NetDataRegion::offsets(u64::from(NET_BUFFER_SIZE) * 8);
    let mut client = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), CAP)
        .unwrap()
        .filler(region);
    let mut tx = NetQueue::new(FlatMem::new(&free), FlatMem::new(&active), CAP)
        .unwrap()
        .drainer(region);
    let data = vec![0u8; NET_BUFFER_SIZE as usize * 8];
    for i in 0..5u64 {
        client
            .active
            .enqueue(NetBuffer {
                io_or_offset: i * 2048,
                len: 60,
            })
            .unwrap();
    }
    let mut bridge = NetBridge::new();
    let (stop, _) = bridge
        .transmit(
            &mut tx,
            &data[..],
            &mut rig.dev,
            &mut rig.send[..],
            &mut rig.out,
        )
        .unwrap();
    assert_eq!(stop, TxStop::DeviceBusy);
    let back = core::iter::from_fn(|| client.free.dequeue().unwrap()).count();
    assert_eq!(back, 4, "the fifth is held");
    bridge.rescind(&mut tx);
    let last = client.free.dequeue().unwrap().unwrap();
    assert_eq!((last.io_or_offset, last.len), (4 * 2048, 0));
}
