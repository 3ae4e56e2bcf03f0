//! Monitored notification (docs/protocol.md#monitor-pages, docs/lifetime.md#monitor-pages):
//! the two monitor pages of INITIATE_CONTACT, the guest-to-host signal through the
//! child-to-parent page instead of HvCallSignalEvent, the fall-backs to the hypercall, and the
//! pages' life (returned only after an answered UNLOAD, quarantined when the kernel fails).

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelHandle, Request, Response};
use vmbus_driver::hv::PAGE_SIZE;
use vmbus_driver::hv::monitor::{pending_bit, pending_offset};
use vmbus_driver::ids::{ClientId, ConnectionId, PageId};
use vmbus_driver::msg::{MessageType, OfferChannel};
use vmbus_driver::version::Version;

/// An offer of relid `relid` with monitor id `id` allocated.
fn monitored(relid: u32, id: u8) -> OfferChannel {
    let mut o = offer(relid, NET, relid as u8, 0);
    o.monitor_allocated = true;
    o.monitor_id = id;
    o
}

/// Writes the outbound ring header's write, read and mask words of the only GPADL the host
/// holds.
fn set_outbound(w: &mut World, write: u32, read: u32) {
    let frame = w.hv.gpadls.values().next().unwrap()[0];
    let page = (0..w.k.pages.len() as u32)
        .map(PageId)
        .find(|p| w.k.frame(*p) == frame)
        .unwrap();
    let p = &mut w.k.pages[page.0 as usize];
    p[0..4].copy_from_slice(&write.to_le_bytes());
    p[4..8].copy_from_slice(&read.to_le_bytes());
    p[8..12].copy_from_slice(&0u32.to_le_bytes());
}

fn signal(w: &mut World, h: ChannelHandle) -> Response {
    signal_as(w, A, h)
}

fn signal_as(w: &mut World, client: ClientId, h: ChannelHandle) -> Response {
    w.call(client, Request::Signal { handle: h })
}

fn hypercalls(w: &World) -> usize {
    w.events()
        .iter()
        .filter(|e| matches!(e, Ev::Signal(_)))
        .count()
}

/// The pending word of `id`'s trigger group in the child-to-parent page.
fn pending(w: &World, id: u8) -> u32 {
    let [_, c2p] = w.d.monitor_pages().expect("monitor pages held");
    let at = pending_offset(id);
    u32::from_le_bytes(w.k.pages[c2p.0 as usize][at..at + 4].try_into().unwrap())
}

/// (monitor_page1, monitor_page2) of every INITIATE_CONTACT posted.
fn contact_pages(w: &World) -> Vec<(u64, u64)> {
    w.posts_of(MessageType::INITIATE_CONTACT)
        .iter()
        .map(|b| {
            let q = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
            (q(24), q(32))
        })
        .collect()
}

#[test]
fn initiate_contact_carries_two_zeroed_pool_pages_the_same_across_the_version_walk() {
    let mut w = World::new(vec![monitored(5, 3)]);
    // Refuses 6.0 down to 5.0: the walk retries with the same pages.
    w.hv.max_accept = Version::WIN10;
    w.connect_monitored();
    let [p1, p2] = w.d.monitor_pages().expect("monitor pages held");
    assert_ne!(p1, p2);
    let want = (
        w.k.frame(p1) * PAGE_SIZE as u64,
        w.k.frame(p2) * PAGE_SIZE as u64,
    );
    let sent = contact_pages(&w);
    assert!(sent.len() > 1, "the walk went down: {sent:?}");
    assert!(sent.iter().all(|s| *s == want), "{sent:?} != {want:?}");
    // Out of the pool, never granted, zero.
    assert!(!w.k.free.contains(&p1) && !w.k.free.contains(&p2));
    for p in [p1, p2] {
        assert!(w.k.pages[p.0 as usize].iter().all(|b| *b == 0));
    }
    assert_eq!(w.d.stats().monitor_connects, 1);
    // Opening a channel never grants a monitor page.
    let _h = w.open(A, 5);
    assert!(
        !w.events()
            .iter()
            .any(|e| matches!(e, Ev::Grant(p, ..) if *p == p1 || *p == p2))
    );
}

#[test]
fn a_monitored_channel_signals_with_its_monitor_bit_and_no_hypercall() {
    let mut w = World::new(vec![monitored(5, 37)]);
    w.connect_monitored();
    let h = w.open(A, 5);
    w.clear_log();
    set_outbound(&mut w, 64, 0);
    assert_eq!(signal(&mut w, h), Response::Signalled { hypercall: true });
    assert_eq!(hypercalls(&w), 0, "{:?}", w.events());
    assert_eq!(pending(&w, 37), pending_bit(37));
    // The host took the bit; new data sets it again, still with no hypercall.
    let [_, c2p] = w.d.monitor_pages().unwrap();
    w.k.pages[c2p.0 as usize].fill(0);
    set_outbound(&mut w, 128, 64);
    assert_eq!(signal(&mut w, h), Response::Signalled { hypercall: true });
    assert_eq!(pending(&w, 37), 1 << 5);
    let s = w.d.stats();
    assert_eq!((s.signals, s.monitor_signals), (0, 2));
}

#[test]
fn a_low_latency_clients_monitored_channel_signals_by_hypercall_and_sets_no_bit() {
    let mut o = offer(6, HEARTBEAT, 2, 0);
    o.monitor_allocated = true;
    o.monitor_id = 41;
    let mut w = World::new(vec![monitored(5, 37), o]);
    w.connect_monitored();
    let hb = w.open(B, 6);
    w.clear_log();
    set_outbound(&mut w, 64, 0);
    assert_eq!(
        signal_as(&mut w, B, hb),
        Response::Signalled { hypercall: true }
    );
    assert_eq!(w.events(), [Ev::Signal(ConnectionId(0x106))]);
    assert_eq!(
        pending(&w, 41),
        0,
        "no monitor bit for a low-latency client"
    );
    let s = w.d.stats();
    assert_eq!((s.signals, s.monitor_signals), (1, 0));
}

#[test]
fn an_unmonitored_channel_still_uses_the_hypercall() {
    let mut w = World::new(vec![offer(5, NET, 1, 0)]);
    w.connect_monitored();
    let h = w.open(A, 5);
    w.clear_log();
    set_outbound(&mut w, 64, 0);
    assert_eq!(signal(&mut w, h), Response::Signalled { hypercall: true });
    assert_eq!(w.events(), [Ev::Signal(ConnectionId(0x105))]);
    let s = w.d.stats();
    assert_eq!((s.signals, s.monitor_signals), (1, 0));
}

#[test]
fn a_monitored_offer_on_a_connection_without_monitor_pages_uses_the_hypercall() {
    let mut w = World::new(vec![monitored(5, 2)]);
    w.connect();
    assert!(contact_pages(&w).iter().all(|p| *p == (0, 0)));
    let h = w.open(A, 5);
    w.clear_log();
    set_outbound(&mut w, 64, 0);
    assert_eq!(signal(&mut w, h), Response::Signalled { hypercall: true });
    assert_eq!(hypercalls(&w), 1);
    assert_eq!(w.d.stats().monitor_signals, 0);
}

#[test]
fn a_hostile_monitor_id_falls_back_to_the_hypercall() {
    let mut w = World::new(vec![monitored(5, 200)]);
    w.connect_monitored();
    let s = w.d.stats();
    assert_eq!(s.bad_monitor_ids, 1);
    assert!(s.hostile >= 1);
    let h = w.open(A, 5);
    w.clear_log();
    set_outbound(&mut w, 64, 0);
    assert_eq!(signal(&mut w, h), Response::Signalled { hypercall: true });
    assert_eq!(hypercalls(&w), 1);
    let [_, c2p] = w.d.monitor_pages().unwrap();
    assert!(
        w.k.pages[c2p.0 as usize].iter().all(|b| *b == 0),
        "no bit set anywhere"
    );
}

#[test]
fn a_monitor_bit_the_kernel_refuses_falls_back_to_the_hypercall() {
    let mut w = World::new(vec![monitored(5, 9)]);
    w.connect_monitored();
    let h = w.open(A, 5);
    set_outbound(&mut w, 64, 0);
    // Find the monitor bit among the signal's kernel operations and refuse it.
    let ops = {
        let mut probe = World::new(vec![monitored(5, 9)]);
        probe.connect_monitored();
        let h = probe.open(A, 5);
        set_outbound(&mut probe, 64, 0);
        probe.k.arm(FailPlan {
            at: u64::MAX,
            mode: FailMode::Refuse,
        });
        signal(&mut probe, h);
        probe.k.ops.get()
    };
    let mut refused = false;
    for at in 0..ops {
        w.k.arm(FailPlan {
            at,
            mode: FailMode::Refuse,
        });
        w.clear_log();
        let r = w.try_call(A, Request::Signal { handle: h });
        if w.k.injected.borrow().as_slice() == [(at, "or_page_u32")] {
            assert_eq!(r, Some(Response::Signalled { hypercall: true }));
            assert_eq!(hypercalls(&w), 1);
            assert_eq!(w.d.stats().monitor_signals, 0);
            refused = true;
            break;
        }
        // Let the next attempt signal again.
        set_outbound(&mut w, 64 + 8 * (at as u32 + 1), 0);
    }
    assert!(
        refused,
        "the signal sets the monitor bit through the kernel"
    );
}

#[test]
fn the_monitor_pages_are_zeroed_and_returned_after_unload() {
    let mut w = World::new(vec![monitored(5, 37)]);
    w.connect_monitored();
    let h = w.open(A, 5);
    set_outbound(&mut w, 64, 0);
    signal(&mut w, h);
    let [p1, p2] = w.d.monitor_pages().unwrap();
    // The host wrote its parameters into both pages.
    w.k.pages[p1.0 as usize][0x440] = 0x42;
    w.k.pages[p2.0 as usize][0x440] = 0x42;
    let returned = w.d.stats().pages_returned;
    w.d.unload(&mut w.hv, &mut w.k, w.now);
    w.pump();
    assert_eq!(w.d.monitor_pages(), None);
    assert!(w.k.free.contains(&p1) && w.k.free.contains(&p2));
    for p in [p1, p2] {
        assert!(w.k.pages[p.0 as usize].iter().all(|b| *b == 0));
    }
    // The channel's four ring pages and the two monitor pages.
    assert_eq!(w.d.stats().pages_returned, returned + 6);
    assert_eq!(w.k.lifetime_violations(), Vec::<String>::new());
}

#[test]
fn a_monitor_page_the_kernel_fails_to_zero_or_return_after_unload_is_quarantined_for_good() {
    let mut quarantined = 0;
    for mode in [FailMode::Refuse, FailMode::Partial, FailMode::Done] {
        for at in 0..8 {
            let mut w = World::new(vec![monitored(5, 1)]);
            w.connect_monitored();
            let [p1, p2] = w.d.monitor_pages().unwrap();
            w.k.pages[p1.0 as usize][0x440] = 0x42;
            w.k.pages[p2.0 as usize][0x440] = 0x42;
            w.d.unload(&mut w.hv, &mut w.k, w.now);
            w.k.arm(FailPlan { at, mode });
            w.pump();
            assert_eq!(w.d.monitor_pages(), None);
            let s = w.d.stats();
            for p in [p1, p2] {
                let free = w.k.free.contains(&p);
                let zero = w.k.pages[p.0 as usize].iter().all(|b| *b == 0);
                assert!(
                    !free || zero,
                    "{p} back in the pool non-zero ({mode:?} at {at})"
                );
            }
            let out = [p1, p2].iter().filter(|p| !w.k.free.contains(p)).count() as u64;
            // A return reported failed may have taken the page anyway: the driver still
            // counts it out, never the other way round.
            let counted = s.quarantine_zero_failed + s.quarantine_return_failed;
            assert!(
                out <= counted,
                "every page kept out is counted ({mode:?} at {at})"
            );
            assert_eq!(w.d.quarantined_pages() as u64, counted);
            quarantined += out;
            let v: Vec<String> =
                w.k.lifetime_violations()
                    .into_iter()
                    .filter(|v| !v.contains("returned non-zero"))
                    .collect();
            assert_eq!(v, Vec::<String>::new());
        }
    }
    assert!(quarantined > 0, "some failure hit a monitor page");
}

#[test]
fn monitor_pages_stay_held_while_the_host_may_hold_them_and_the_next_start_reuses_them() {
    let mut w = World::new(vec![monitored(5, 1)]);
    w.connect_monitored();
    let pages = w.d.monitor_pages().unwrap();
    let first = contact_pages(&w)[0];
    w.hv.silent.insert(MessageType::UNLOAD_RESPONSE.0);
    w.d.unload(&mut w.hv, &mut w.k, w.now);
    w.pump();
    w.tick(TIMEOUT + 1);
    // UNLOAD_RESPONSE never came: the host may still write them.
    assert_eq!(w.d.monitor_pages(), Some(pages));
    assert!(pages.iter().all(|p| !w.k.free.contains(p)));
    w.hv.silent.clear();
    w.clear_log();
    w.connect_monitored();
    assert_eq!(w.d.monitor_pages(), Some(pages));
    let again = contact_pages(&w);
    assert!(
        !again.is_empty() && again.iter().all(|p| *p == first),
        "{again:?}"
    );
}

#[test]
fn a_kernel_failure_taking_the_monitor_pages_connects_without_them_and_leaks_nothing_reusable() {
    for mode in [FailMode::Refuse, FailMode::Partial, FailMode::Done] {
        for at in 0..6 {
            let mut w = World::new(vec![monitored(5, 1)]);
            w.k.arm(FailPlan { at, mode });
            w.connect_monitored();
            let sent = contact_pages(&w);
            match w.d.monitor_pages() {
                Some([p1, p2]) => {
                    let want = (
                        w.k.frame(p1) * PAGE_SIZE as u64,
                        w.k.frame(p2) * PAGE_SIZE as u64,
                    );
                    assert!(sent.iter().all(|s| *s == want) || sent[0] == (0, 0));
                }
                None => assert!(sent.iter().all(|s| *s == (0, 0)), "{sent:?}"),
            }
            let v: Vec<String> =
                w.k.lifetime_violations()
                    .into_iter()
                    .filter(|v| !v.contains("returned non-zero"))
                    .collect();
            assert_eq!(v, Vec::<String>::new(), "{mode:?} at {at}");
            // Whatever happened, the channel works.
            let h = w.open(A, 5);
            set_outbound(&mut w, 64, 0);
            assert_eq!(signal(&mut w, h), Response::Signalled { hypercall: true });
        }
    }
}
