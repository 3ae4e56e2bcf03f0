//! The driver's `Kernel` seam on the simulated kernel: grant, revoke, notify, ack and the pool.

use sel4_sim::{
    Access, ClientSetup, DriverSetup, FaultKind, IrqSetup, MemError, PdId, Sim, SimKernel, SlotRef,
};
use vmbus_driver::ids::{ClientId, PageId};
use vmbus_driver::kernel::{Kernel, KernelError};

const POOL_BASE: u64 = 0x1000_0000;
const WIN_A: u64 = 0x2000_0000;
const WIN_B: u64 = 0x3000_0000;
const IRQ: u32 = 5;

struct World {
    k: SimKernel,
    monitor: PdId,
    a: PdId,
    b: PdId,
}

fn world(pool_pages: u32) -> World {
    let mut sim = Sim::new();
    let monitor = sim.create_pd("monitor", 254);
    let driver = sim.create_pd("vmbus", 200);
    let a = sim.create_pd("client-a", 100);
    let b = sim.create_pd("client-b", 100);
    for pd in [driver, a, b] {
        sim.set_fault_handler(pd, Some(monitor)).unwrap();
    }
    let setup = DriverSetup {
        driver,
        pool_pages,
        pool_base: POOL_BASE,
        clients: vec![
            ClientSetup {
                id: ClientId(0),
                pd: a,
                window_base: WIN_A,
                window_pages: 4,
                badge: 1 << 1,
            },
            ClientSetup {
                id: ClientId(1),
                pd: b,
                window_base: WIN_B,
                window_pages: 2,
                badge: 1 << 2,
            },
        ],
        irq: Some(IrqSetup {
            irq: IRQ,
            badge: 1 << 0,
        }),
    };
    let k = SimKernel::new(sim, &setup).unwrap();
    World { k, monitor, a, b }
}

#[test]
fn grant_lets_the_client_see_the_drivers_bytes_and_its_writes_come_back() {
    let mut w = world(4);
    let p = w.k.take_page().unwrap();
    w.k.write_page(p, 16, b"ring").unwrap();
    w.k.grant(p, ClientId(0), 2).unwrap();
    let mut buf = [0; 4];
    w.k.sim.read(w.a, WIN_A + 2 * 4096 + 16, &mut buf).unwrap();
    assert_eq!(&buf, b"ring");
    w.k.sim
        .write_u32(w.a, WIN_A + 2 * 4096 + 100, 0xfeed)
        .unwrap();
    let mut back = [0; 4];
    w.k.read_page(p, 100, &mut back).unwrap();
    assert_eq!(u32::from_le_bytes(back), 0xfeed);
}

#[test]
fn revoke_makes_the_clients_next_access_fault_at_the_window_address() {
    let mut w = world(4);
    let p = w.k.take_page().unwrap();
    w.k.grant(p, ClientId(1), 1).unwrap();
    let addr = WIN_B + 4096 + 8;
    w.k.sim.read_u64(w.b, addr).unwrap();
    w.k.revoke(p).unwrap();
    let err = w.k.sim.read_u64(w.b, addr).unwrap_err();
    let MemError::Fault(msg) = err else {
        panic!("{err}")
    };
    assert_eq!(msg.pd, w.b);
    assert_eq!(
        msg.kind,
        FaultKind::VmFault {
            vaddr: addr,
            access: Access::Read,
            present: false
        }
    );
    assert_eq!(w.k.sim.take_fault(w.monitor).unwrap(), Some(msg));
    // The driver still reaches the page through its own mapping.
    w.k.write_page(p, 0, &[1]).unwrap();
}

#[test]
fn revoke_removes_every_clients_mapping_and_keeps_the_copies_for_the_next_grant() {
    let mut w = world(2);
    let driver = w.k.seam.driver();
    let free_before = w.k.sim.free_slot_count(driver).unwrap();
    let p = w.k.take_page().unwrap();
    w.k.grant(p, ClientId(0), 0).unwrap();
    w.k.grant(p, ClientId(1), 0).unwrap();
    assert_eq!(w.k.seam.grant_count(p), 2);
    assert_eq!(w.k.sim.free_slot_count(driver).unwrap(), free_before - 2);
    w.k.sim.reset_counters();
    w.k.revoke(p).unwrap();
    assert_eq!(w.k.seam.grant_count(p), 0);
    assert_eq!(w.k.sim.mapped_page_count(w.a).unwrap(), 0);
    assert_eq!(w.k.sim.mapped_page_count(w.b).unwrap(), 0);
    let c = *w.k.sim.counters();
    assert_eq!(
        (c.unmap_calls, c.revokes, c.deletes),
        (2, 0, 0),
        "one unmap per mapping, nothing else"
    );
    // The copies stay in the driver's CSpace, unmapped ...
    assert_eq!(w.k.sim.free_slot_count(driver).unwrap(), free_before - 2);
    // ... and the next grants map them without copying again.
    w.k.grant(p, ClientId(0), 0).unwrap();
    w.k.grant(p, ClientId(1), 1).unwrap();
    let c = *w.k.sim.counters();
    assert_eq!((c.copies, c.maps), (0, 2));
    assert_eq!(w.k.sim.free_slot_count(driver).unwrap(), free_before - 2);
    assert_eq!(w.k.sim.mapped_page_count(w.a).unwrap(), 1);
    assert_eq!(w.k.sim.mapped_page_count(w.b).unwrap(), 1);
}

#[test]
fn revoking_a_page_without_grants_is_a_no_op() {
    let mut w = world(1);
    let p = w.k.take_page().unwrap();
    w.k.write_page(p, 0, &[7]).unwrap();
    w.k.revoke(p).unwrap();
    let mut b = [0];
    w.k.read_page(p, 0, &mut b).unwrap();
    assert_eq!(b, [7]);
}

#[test]
fn zero_page_zeroes_what_the_client_wrote() {
    let mut w = world(1);
    let p = w.k.take_page().unwrap();
    w.k.grant(p, ClientId(0), 3).unwrap();
    w.k.sim.write(w.a, WIN_A + 3 * 4096, &[0xaa; 4096]).unwrap();
    w.k.revoke(p).unwrap();
    w.k.zero_page(p).unwrap();
    let mut all = [0xff; 4096];
    w.k.read_page(p, 0, &mut all).unwrap();
    assert!(all.iter().all(|&b| b == 0));
    w.k.return_page(p).unwrap();
}

#[test]
fn page_frames_are_stable_and_distinct() {
    let mut w = world(8);
    let frames: Vec<u64> = (0..8).map(|i| w.k.page_frame(PageId(i)).unwrap()).collect();
    let mut sorted = frames.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 8);
    let p = w.k.take_page().unwrap();
    w.k.grant(p, ClientId(0), 0).unwrap();
    w.k.revoke(p).unwrap();
    assert_eq!(w.k.page_frame(p).unwrap(), frames[p.0 as usize]);
    // The frame number is the page's physical address as the client's mapping sees it.
    let m =
        w.k.sim
            .mapping(w.k.seam.driver(), POOL_BASE + u64::from(p.0) * 4096)
            .unwrap()
            .unwrap();
    let orig = SlotRef::new(w.k.seam.driver(), w.k.seam.original_cap(p).unwrap());
    assert_eq!(sim_frame(&w, orig), m.frame);
    assert_eq!(
        w.k.sim.frame_paddr(orig).unwrap() / 4096,
        frames[p.0 as usize]
    );
    assert_eq!(w.k.page_frame(PageId(8)), Err(KernelError::NoSuchPage));
}

fn sim_frame(w: &World, slot: SlotRef) -> sel4_sim::FrameId {
    w.k.sim.frame_of(slot).unwrap()
}

#[test]
fn pool_runs_dry_and_refills() {
    let mut w = world(2);
    let p0 = w.k.take_page().unwrap();
    let p1 = w.k.take_page().unwrap();
    assert_ne!(p0, p1);
    assert_eq!(w.k.take_page(), Err(KernelError::PoolEmpty));
    w.k.return_page(p1).unwrap();
    assert_eq!(w.k.take_page(), Ok(p1));
}

#[test]
fn return_page_refuses_granted_dirty_or_free_pages() {
    let mut w = world(2);
    let p = w.k.take_page().unwrap();
    w.k.grant(p, ClientId(0), 0).unwrap();
    assert_eq!(w.k.return_page(p), Err(KernelError::Refused(9)));
    w.k.revoke(p).unwrap();
    w.k.write_page(p, 4095, &[1]).unwrap();
    assert_eq!(w.k.return_page(p), Err(KernelError::Refused(3)));
    w.k.zero_page(p).unwrap();
    w.k.return_page(p).unwrap();
    assert_eq!(w.k.return_page(p), Err(KernelError::Refused(3)));
}

#[test]
fn grant_checks_page_client_window_and_busy_slot() {
    let mut w = world(3);
    let p = w.k.take_page().unwrap();
    let q = w.k.take_page().unwrap();
    assert_eq!(
        w.k.grant(PageId(99), ClientId(0), 0),
        Err(KernelError::NoSuchPage)
    );
    assert_eq!(w.k.grant(p, ClientId(7), 0), Err(KernelError::NoSuchClient));
    assert_eq!(
        w.k.grant(p, ClientId(1), 2),
        Err(KernelError::OutsideWindow)
    );
    w.k.grant(p, ClientId(1), 1).unwrap();
    assert_eq!(
        w.k.grant(q, ClientId(1), 1),
        Err(KernelError::WindowSlotBusy)
    );
    let free = PageId(2);
    assert_eq!(
        w.k.grant(free, ClientId(0), 0),
        Err(KernelError::Refused(3)),
        "granted a free page"
    );
    assert_eq!(w.k.seam.grant_count(q), 0);
}

#[test]
fn page_access_past_the_end_is_out_of_bounds() {
    let mut w = world(1);
    let p = w.k.take_page().unwrap();
    assert_eq!(
        w.k.write_page(p, 4090, &[0; 7]),
        Err(KernelError::OutOfBounds)
    );
    let mut b = [0; 2];
    assert_eq!(
        w.k.read_page(p, usize::MAX, &mut b),
        Err(KernelError::OutOfBounds)
    );
    w.k.write_page(p, 4089, &[0; 7]).unwrap();
}

#[test]
fn notify_signals_the_client_with_its_badge() {
    let mut w = world(1);
    w.k.notify(ClientId(1)).unwrap();
    w.k.notify(ClientId(1)).unwrap();
    let link_b = w.k.seam.client(ClientId(1)).unwrap().clone();
    let link_a = w.k.seam.client(ClientId(0)).unwrap().clone();
    assert_eq!(
        w.k.sim.wait(SlotRef::new(w.b, link_b.client_ntfn)).unwrap(),
        Some(1 << 2)
    );
    assert_eq!(
        w.k.sim.wait(SlotRef::new(w.a, link_a.client_ntfn)).unwrap(),
        None
    );
    assert_eq!(w.k.notify(ClientId(9)), Err(KernelError::NoSuchClient));
}

#[test]
fn ack_irq_lets_the_next_interrupt_through() {
    let mut w = world(1);
    let d = w.k.seam.driver();
    let n = SlotRef::new(d, w.k.seam.driver_notification().unwrap());
    w.k.sim.raise_irq(IRQ);
    w.k.sim.raise_irq(IRQ);
    assert_eq!(w.k.sim.wait(n).unwrap(), Some(1));
    assert_eq!(w.k.sim.wait(n).unwrap(), None);
    w.k.ack_irq().unwrap();
    assert_eq!(w.k.sim.wait(n).unwrap(), Some(1));
}

#[test]
fn counters_count_the_kernel_work_of_a_grant_cycle() {
    let mut w = world(1);
    w.k.sim.reset_counters();
    let p = w.k.take_page().unwrap();
    w.k.grant(p, ClientId(0), 0).unwrap();
    w.k.grant(p, ClientId(1), 0).unwrap();
    w.k.revoke(p).unwrap();
    w.k.notify(ClientId(0)).unwrap();
    let c = *w.k.sim.counters();
    assert_eq!(
        (
            c.copies,
            c.maps,
            c.revokes,
            c.revoked_caps,
            c.unmaps,
            c.unmap_calls,
            c.signals
        ),
        (2, 2, 0, 0, 2, 2, 1)
    );
    assert_eq!(c.errors, 0);
}

#[test]
fn the_borrowed_view_is_the_same_kernel() {
    let mut w = world(1);
    let mut view = w.k.view();
    let p = view.take_page().unwrap();
    view.write_page(p, 0, &[42]).unwrap();
    view.grant(p, ClientId(0), 1).unwrap();
    assert_eq!(w.k.sim.read(w.a, WIN_A + 4096, &mut [0; 1]), Ok(()));
    let mut b = [0];
    w.k.sim.read(w.a, WIN_A + 4096, &mut b).unwrap();
    assert_eq!(b, [42]);
}

#[test]
fn setup_rejects_bad_layouts() {
    let mut sim = Sim::new();
    let d = sim.create_pd("d", 1);
    let a = sim.create_pd("a", 1);
    let client = ClientSetup {
        id: ClientId(0),
        pd: a,
        window_base: 0x1001,
        window_pages: 1,
        badge: 1,
    };
    let mut setup = DriverSetup {
        driver: d,
        pool_pages: 1,
        pool_base: POOL_BASE,
        clients: vec![client],
        irq: None,
    };
    assert_eq!(
        sel4_sim::DriverSeam::new(&mut sim, &setup),
        Err(sel4_sim::Error::AlignmentError)
    );
    setup.clients[0].window_base = 0x7fff_ffff_f000;
    setup.clients[0].window_pages = 2;
    assert_eq!(
        sel4_sim::DriverSeam::new(&mut sim, &setup).map(|_| ()),
        Err(sel4_sim::Error::InvalidArgument)
    );
    let mut k = SimKernel::new(
        Sim::new(),
        &DriverSetup {
            driver: PdId(0),
            pool_pages: 0,
            pool_base: 0,
            clients: vec![],
            irq: None,
        },
    );
    assert!(k.is_err(), "setup for a PD that does not exist");
    let mut sim2 = Sim::new();
    let d2 = sim2.create_pd("d", 1);
    k = SimKernel::new(
        sim2,
        &DriverSetup {
            driver: d2,
            pool_pages: 0,
            pool_base: 0,
            clients: vec![],
            irq: None,
        },
    );
    let mut k = k.unwrap();
    assert_eq!(k.ack_irq(), Err(KernelError::Refused(2)));
    assert_eq!(k.take_page(), Err(KernelError::PoolEmpty));
}

#[test]
fn a_grant_the_kernel_refuses_keeps_its_copy_unmapped_for_the_next_grant() {
    let mut w = world(1);
    let driver = w.k.seam.driver();
    // The client already has its own page where window page 0 would go.
    let own = w.k.sim.create_frames(w.a, 1).unwrap()[0];
    w.k.sim
        .map_own(w.a, own, WIN_A, sel4_sim::CapRights::READ)
        .unwrap();
    let free = w.k.sim.free_slot_count(driver).unwrap();
    let p = w.k.take_page().unwrap();
    assert_eq!(w.k.grant(p, ClientId(0), 0), Err(KernelError::Refused(8)));
    assert_eq!(
        w.k.sim.free_slot_count(driver).unwrap(),
        free - 1,
        "the copy is kept, unmapped"
    );
    assert_eq!(w.k.seam.grant_count(p), 0);
    assert_eq!(w.k.seam.client(ClientId(0)).unwrap().window_page(0), None);
    w.k.sim.reset_counters();
    w.k.grant(p, ClientId(0), 1).unwrap();
    assert_eq!(
        w.k.seam.client(ClientId(0)).unwrap().window_page(1),
        Some(p)
    );
    assert_eq!(w.k.sim.counters().copies, 0, "the kept copy was mapped");
    assert_eq!(w.k.sim.free_slot_count(driver).unwrap(), free - 1);
}

#[test]
fn a_page_unmapped_from_the_driver_cannot_be_touched_by_it_until_mapped_back() {
    let mut w = world(4);
    let page = w.k.take_page().unwrap();
    w.k.write_page(page, 0, b"ring").unwrap();
    w.k.zero_page(page).unwrap();
    w.k.revoke(page).unwrap();
    w.k.unmap_own(page).unwrap();
    assert!(w.k.seam.own_unmapped(page));
    let driver = w.k.seam.driver();
    let vaddr = w.k.seam.pool_vaddr(page).unwrap();
    assert_eq!(
        w.k.sim.mapping(driver, vaddr).unwrap(),
        None,
        "the driver's own mapping is gone from its VSpace"
    );
    // Every access through the seam is refused and counted; none reaches the page.
    let mut buf = [0u8; 4];
    assert!(w.k.write_page(page, 0, b"host").is_err());
    assert!(w.k.read_page(page, 0, &mut buf).is_err());
    assert!(w.k.zero_page(page).is_err());
    assert!(w.k.return_page(page).is_err(), "a lent page cannot go back");
    assert_eq!(w.k.seam.unmapped_accesses(), 4);
    assert_eq!(w.k.free_pages(), 3);
    assert_eq!(w.k.pool_pages(), 4);
    // Unmapping twice is a no-op; mapping back restores the same address.
    w.k.unmap_own(page).unwrap();
    w.k.map_own(page).unwrap();
    w.k.map_own(page).unwrap();
    assert!(w.k.sim.mapping(driver, vaddr).unwrap().is_some());
    w.k.zero_page(page).unwrap();
    w.k.return_page(page).unwrap();
    assert_eq!(w.k.free_pages(), 4);
    assert_eq!(w.k.seam.unmapped_accesses(), 4);
}
