//! Soak: 10,000 cycles of hot-add offer, open by a client program, echo traffic and a rescind
//! while the channel is open, on the system of system.xml. Asserts zero leaks: free pool pages,
//! capability slots of the driver and every client, client mappings, driver table entries and
//! host channels and GPADLs are the same at the end as at the start; prints the totals.

mod common;

use std::time::Instant;

use hv_host::DeviceSpec;
use sim_system::{EchoClient, World, WorldConfig};
use vmbus_driver::driver::ConnectionState;

use common::{Monitor, client, instance};

const CYCLES: u64 = 10_000;
/// Echoes each cycle waits for before the rescind.
const ECHOES_PER_CYCLE: u64 = 4;

/// Everything that must come back to where it started.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resources {
    pool_free: usize,
    /// The driver's free CSpace slots, counting those holding the seam's kept unmapped copies
    /// (reused by the next grants, not leaked).
    driver_free_slots: usize,
    client_free_slots: Vec<usize>,
    client_mapped_pages: Vec<usize>,
    driver_channels: usize,
    driver_open: usize,
    quarantined: usize,
    host_channels: usize,
    host_gpadls: usize,
}

fn resources(w: &World) -> Resources {
    let k = w.instance().kernel().borrow();
    let driver_pd = k.seam.driver();
    let clients = w.instance().clients();
    Resources {
        pool_free: k.seam.free_pages(),
        driver_free_slots: k.sim.free_slot_count(driver_pd).unwrap() + k.seam.spare_copies(),
        client_free_slots: clients
            .iter()
            .map(|c| k.sim.free_slot_count(c.pd).unwrap())
            .collect(),
        client_mapped_pages: clients
            .iter()
            .map(|c| k.sim.mapped_page_count(c.pd).unwrap())
            .collect(),
        driver_channels: w.driver_channels().len(),
        driver_open: w.driver().open_count(),
        quarantined: w.driver().quarantined_pages(),
        host_channels: w.host().channels().count(),
        host_gpadls: w.host().gpadl_count(),
    }
}

#[test]
fn soak_ten_thousand_offer_open_traffic_rescind_cycles_leak_nothing() {
    let t0 = Instant::now();
    let mut w = World::repository(&WorldConfig::default());
    w.start();
    w.run_until(
        |w| w.driver().connection().state == ConnectionState::Connected,
        100,
    )
    .expect("connected");
    let (hb, class) = client(&w, "heartbeat");
    let echo = EchoClient::new(class).in_flight(2).payload_len(48);
    let stats = echo.handle();
    w.set_program(hb, Box::new(echo));
    let start = resources(&w);
    let sim_start = w.sim_counters();
    let drv_start = w.driver_stats();
    let mut steps = 0u64;

    for cycle in 0..CYCLES {
        w.host_mut()
            .add_device(DeviceSpec::echo(class, instance(1)))
            .expect("host takes the device");
        let want = stats.stats().echoed + ECHOES_PER_CYCLE;
        steps += w
            .run_until(
                |_| {
                    let s = stats.stats();
                    s.opens == cycle + 1 && s.echoed >= want
                },
                400,
            )
            .unwrap_or_else(|e| panic!("cycle {cycle}: open and traffic: {e}"));
        let relid = w.driver_channels()[0].relid;
        w.host_mut().rescind(relid).expect("rescind");
        steps += w
            .run_until(
                |w| {
                    w.driver_channels().is_empty()
                        && w.host().channels().count() == 0
                        && stats.stats().open_relid.is_none()
                },
                400,
            )
            .unwrap_or_else(|e| panic!("cycle {cycle}: teardown: {e}"));
        if cycle % 1000 == 999 {
            // A full invariant check now and then (it reads the whole pool).
            let free = Monitor::free_pages(&w);
            assert_eq!(free.len(), start.pool_free, "cycle {cycle}");
            let k = w.instance().kernel().borrow();
            assert!(free.iter().all(|&p| k.seam.grant_count(p) == 0));
        }
    }

    let end = resources(&w);
    let s = stats.stats();
    let d = w.driver_stats();
    let sim = w.sim_counters();
    let elapsed = t0.elapsed();
    println!(
        "soak: {CYCLES} cycles, {steps} world steps in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "soak: client: opens {} echoed {} sent {} gone {} mismatches {} errors {} ring_full {}",
        s.opens, s.echoed, s.sent, s.gone, s.mismatches, s.errors, s.ring_full
    );
    println!(
        "soak: driver: offers {} rescinds {} opens {} teardowns {}/{} relids released {} \
         pages taken {} returned {} quarantined {} events delivered {} dropped {} signals {} \
         hostile {} kernel errors {}",
        d.offers - drv_start.offers,
        d.rescinds - drv_start.rescinds,
        d.opens - drv_start.opens,
        d.teardowns_completed - drv_start.teardowns_completed,
        d.teardowns - drv_start.teardowns,
        d.relids_released - drv_start.relids_released,
        d.pages_taken - drv_start.pages_taken,
        d.pages_returned - drv_start.pages_returned,
        d.quarantined_pages,
        d.events_delivered,
        d.events_dropped_stale,
        d.signals,
        d.hostile,
        d.kernel_errors
    );
    println!(
        "soak: kernel: copies {} revokes {} caps revoked {} maps {} unmaps {} faults {}",
        sim.copies - sim_start.copies,
        sim.revokes - sim_start.revokes,
        sim.revoked_caps - sim_start.revoked_caps,
        sim.maps - sim_start.maps,
        sim.unmaps - sim_start.unmaps,
        sim.faults - sim_start.faults
    );
    println!("soak: resources at start {start:?}");
    println!("soak: resources at end   {end:?}");

    // Zero leaks.
    assert_eq!(end, start, "resources after {CYCLES} cycles");
    // Every cycle did what it says.
    assert_eq!(s.opens, CYCLES);
    assert!(s.echoed >= CYCLES * ECHOES_PER_CYCLE);
    assert_eq!(s.mismatches, 0);
    assert_eq!(d.offers - drv_start.offers, CYCLES);
    assert_eq!(d.rescinds - drv_start.rescinds, CYCLES);
    assert_eq!(d.opens - drv_start.opens, CYCLES);
    assert_eq!(d.relids_released - drv_start.relids_released, CYCLES);
    assert_eq!(d.teardowns - drv_start.teardowns, CYCLES);
    assert_eq!(
        d.teardowns_completed - drv_start.teardowns_completed,
        CYCLES
    );
    assert_eq!(d.pages_taken - drv_start.pages_taken, CYCLES * 8);
    assert_eq!(d.pages_returned - drv_start.pages_returned, CYCLES * 8);
    assert_eq!((d.quarantined_pages, d.hostile, d.kernel_errors), (0, 0, 0));
    assert_eq!(
        w.host().counters().guest_errors,
        0,
        "{:?}",
        w.host().errors().last()
    );
    // Each channel's 8 ring pages were granted (mapped) and revoked (unmapped) once per cycle;
    // the seam copied each page's original once, in the first cycle, and kept the copies
    // unmapped for the next grants: no copy, delete or revoke per cycle.
    assert_eq!(sim.maps - sim_start.maps, CYCLES * 8);
    assert_eq!(sim.unmap_calls - sim_start.unmap_calls, CYCLES * 8);
    assert_eq!(sim.maps - sim_start.maps, sim.unmaps - sim_start.unmaps);
    assert!(sim.copies - sim_start.copies <= 8);
    assert_eq!(sim.revoked_caps - sim_start.revoked_caps, 0);
    assert_eq!(
        sim.faults, sim_start.faults,
        "no client touched a revoked page"
    );
    // The capability tree: a pool page's only derived capabilities are the seam's kept copies,
    // in the driver's CSpace and mapped nowhere.
    let k = w.instance().kernel().borrow();
    let driver_pd = k.seam.driver();
    for page in 0..8192u32 {
        let page = vmbus_driver::ids::PageId(page);
        let cap = k.seam.original_cap(page).expect("pool page");
        let children = k
            .sim
            .children(sel4_sim::SlotRef::new(driver_pd, cap))
            .unwrap();
        for child in &children {
            assert_eq!(
                child.pd, driver_pd,
                "{page}: a capability outside the driver"
            );
            let cap = k.sim.cap(*child).unwrap();
            assert!(
                matches!(cap, Some(sel4_sim::Cap::Frame { mapped: None, .. })),
                "{page}: a derived capability still mapped: {cap:?}"
            );
        }
    }
}
