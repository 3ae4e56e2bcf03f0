//! Driver core at full capacity: every relid 1..2047 open at once (16 clients x 128 slots),
//! events on all of them, and everything back in the pool after unload.

mod driver_fakes;

use std::cell::RefCell;
use std::rc::Rc;

use driver_fakes::*;
use vmbus_driver::control::{ChannelStatus, Request, Response};
use vmbus_driver::driver::{ClientConfig, ConnectionState, Driver, DriverConfig, MAX_OPEN};
use vmbus_driver::guid::Guid;
use vmbus_driver::ids::{ClientId, RelId, VpIndex};
use vmbus_driver::version::Version;

#[test]
fn all_2047_relids_open_at_once_receive_events_and_unload_cleanly() {
    let classes = [NET];
    let ids: Vec<ClientId> = (0..16).map(ClientId).collect();
    let clients: Vec<ClientConfig<'_>> = ids
        .iter()
        .map(|&id| ClientConfig {
            id,
            window_pages: 128 * 4,
            max_channels: 128,
            classes: &classes,
            instance: None,
            power: false,
            low_latency: false,
        })
        .collect();
    let cfg = DriverConfig {
        target_vp: VpIndex(0),
        max_version: Version::WIN10_V5_3,
        reply_timeout: 10,
        clients: &clients,
    };
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    let mut hv = FakeHv::new(log.clone());
    hv.offers = (1..=MAX_OPEN as u32)
        .map(|r| offer(r, NET, (r % 251) as u8, 0))
        .collect();
    for (i, o) in hv.offers.iter_mut().enumerate() {
        o.if_instance = Guid([
            (i % 256) as u8,
            (i / 256) as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
        ]);
    }
    let mut k = FakeKernel::new(log.clone(), 4 * MAX_OPEN as u32, &ids);
    let mut d = Box::new(Driver::new(&cfg));
    d.start(&mut hv, 1);
    while hv.busy() {
        d.on_interrupt(&mut hv, &mut k, 1);
    }
    assert_eq!(d.connection().state, ConnectionState::Connected);
    log.borrow_mut().clear();

    let mut handles = Vec::new();
    for relid in 1..=MAX_OPEN as u32 {
        let client = ids[(relid as usize - 1) / 128];
        let req = Request::Open {
            relid: RelId(relid),
            out_ring_pages: 2,
            in_ring_pages: 2,
        };
        let mut area = [0u8; 512];
        let n = vmbus_driver::control::encode_frame(&req, &mut area).unwrap();
        k.control.get_mut(&client).unwrap()[..n].copy_from_slice(&area[..n]);
        d.on_client_call(&mut hv, &mut k, client, 1);
        let resp: Response =
            vmbus_driver::control::decode_frame(&k.control[&client][512..2048]).unwrap();
        let Response::Opening { handle } = resp else {
            panic!("open {relid}: {resp:?}")
        };
        handles.push((client, handle));
        while hv.busy() {
            d.on_interrupt(&mut hv, &mut k, 1);
        }
    }
    assert_eq!(d.open_count(), MAX_OPEN);
    assert_eq!(k.free.len(), 0, "every pool page is a ring page");
    for (client, h) in &handles {
        assert_eq!(k.status(*client, h.slot).state, ChannelStatus::Open);
    }

    hv.events = [u32::MAX; 64];
    d.on_interrupt(&mut hv, &mut k, 2);
    assert_eq!(d.stats().events_delivered, MAX_OPEN as u64);
    for (client, h) in &handles {
        assert_eq!(k.status(*client, h.slot).event_count, 1);
    }

    d.unload(&mut hv, &mut k, 3);
    while hv.busy() {
        d.on_interrupt(&mut hv, &mut k, 3);
    }
    assert_eq!(d.connection().state, ConnectionState::Disconnected);
    assert_eq!(d.open_count(), 0);
    assert_eq!(k.free.len(), 4 * MAX_OPEN);
    assert!(
        k.violations.is_empty(),
        "{:?}",
        &k.violations[..k.violations.len().min(5)]
    );
}
