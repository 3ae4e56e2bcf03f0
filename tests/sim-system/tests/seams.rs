//! The seams on the instantiated system: the driver's kernel (pool, grants, control pages) and
//! a client's ring memory, whose accesses go through the client's VSpace and fault after the
//! driver revokes the pages.

use core::sync::atomic::Ordering;

use sel4_sim::{Access, FaultKind, MemError, PdState};
use sim_system::{ClientRingMem, DriverKernel, Instance};
use vmbus_driver::ids::ClientId;
use vmbus_driver::kernel::{Kernel, KernelError};
use vmbus_driver::ring::{Control, RingMem, RingReader, RingWriter, init_ring};

#[test]
fn control_pages_reach_each_client_separately() {
    let inst = Instance::repository();
    let mut k = inst.kernel().borrow_mut();
    {
        let mut dk = DriverKernel::new(&mut k, inst.clients());
        dk.control_write(ClientId(2), 100, b"for timesync").unwrap();
        dk.control_write(ClientId(3), 100, b"for kvp").unwrap();
        let mut buf = [0u8; 12];
        Kernel::control_read(&dk, ClientId(2), 100, &mut buf).unwrap();
        assert_eq!(&buf, b"for timesync");
        // Bounds and unknown clients are refused.
        assert_eq!(
            dk.control_write(ClientId(2), 4090, b"too long"),
            Err(KernelError::OutOfBounds)
        );
        assert_eq!(
            Kernel::control_read(&dk, ClientId(99), 0, &mut buf),
            Err(KernelError::NoSuchClient)
        );
    }
    // The clients read what the driver wrote, each only its own.
    let timesync = &inst.clients()[2];
    let kvp = &inst.clients()[3];
    let mut got = [0u8; 12];
    k.sim
        .read(timesync.pd, timesync.control_vaddr + 100, &mut got)
        .unwrap();
    assert_eq!(&got, b"for timesync");
    let mut got = [0u8; 7];
    k.sim
        .read(kvp.pd, kvp.control_vaddr + 100, &mut got)
        .unwrap();
    assert_eq!(&got, b"for kvp");
}

#[test]
fn ring_access_after_revocation_faults_and_stops_the_client() {
    let inst = Instance::repository();
    let client = inst.client_by_name("heartbeat").unwrap().clone();
    // The driver takes two pages (header + data), initialises the ring and grants both.
    let (header, data) = {
        let mut k = inst.kernel().borrow_mut();
        let mut dk = DriverKernel::new(&mut k, inst.clients());
        let header = dk.take_page().unwrap();
        let data = dk.take_page().unwrap();
        dk.grant(header, client.id, 0).unwrap();
        dk.grant(data, client.id, 1).unwrap();
        (header, data)
    };
    let mem = ClientRingMem::new(inst.kernel().clone(), client.pd, client.window_base, 2);
    assert_eq!(mem.data_size(), 4096);
    init_ring(&mem, 1);
    let mut w = RingWriter::new(mem.clone()).unwrap();
    let mut b = w.batch().unwrap();
    b.write_inband(5, false, b"through the client's VSpace")
        .unwrap();
    b.commit();
    // The driver sees the client's write through its own mapping of the same page.
    {
        let k = inst.kernel().borrow();
        let mut word = [0u8; 4];
        k.seam.read_page(&k.sim, header, 0, &mut word).unwrap();
        assert_eq!(u32::from_le_bytes(word), w.write_index());
        let mut payload = [0u8; 27];
        k.seam.read_page(&k.sim, data, 16, &mut payload).unwrap();
        assert_eq!(&payload, b"through the client's VSpace");
    }
    assert_eq!(mem.fault(), None);
    let faults_before = inst.kernel().borrow().sim.counters().faults;

    // Revocation removes the mappings; the next access faults, yields zeroes, stops the PD.
    {
        let mut k = inst.kernel().borrow_mut();
        let mut dk = DriverKernel::new(&mut k, inst.clients());
        dk.revoke(header).unwrap();
        dk.revoke(data).unwrap();
    }
    let mut r = RingReader::new(mem.clone());
    assert!(r.is_ok(), "zeroes are a valid (empty) ring, not a crash");
    assert!(r.as_mut().unwrap().batch().is_err());
    let fault = mem.fault().expect("the access faulted");
    match fault {
        MemError::Fault(m) => {
            assert_eq!(m.pd, client.pd);
            assert_eq!(
                m.kind,
                FaultKind::VmFault {
                    vaddr: client.window_base + Control::ReadIndex.offset() as u64,
                    access: Access::Read,
                    present: false
                }
            );
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    let mut k = inst.kernel().borrow_mut();
    assert_eq!(k.sim.pd_state(client.pd).unwrap(), PdState::Stopped);
    assert_eq!(
        k.sim.counters().faults,
        faults_before + 1,
        "one fault, then stopped"
    );
    // The driver (the client's fault handler) has the fault message.
    let delivered = k.sim.take_fault(inst.driver()).unwrap().unwrap();
    assert_eq!(delivered.pd, client.pd);
    drop(k);
    // Further accesses do nothing and return zeroes.
    assert_eq!(mem.load(Control::WriteIndex, Ordering::Acquire), 0);
}

#[test]
fn a_stale_client_write_cannot_reach_a_page_reused_by_another_client() {
    let inst = Instance::repository();
    let a = inst.client_by_name("heartbeat").unwrap().clone();
    let b = inst.client_by_name("shutdown").unwrap().clone();
    let page = {
        let mut k = inst.kernel().borrow_mut();
        let mut dk = DriverKernel::new(&mut k, inst.clients());
        let page = dk.take_page().unwrap();
        dk.grant(page, a.id, 0).unwrap();
        dk.revoke(page).unwrap();
        dk.zero_page(page).unwrap();
        dk.return_page(page).unwrap();
        let again = dk.take_page().unwrap();
        assert_eq!(again, page, "the pool hands the same page out again");
        dk.grant(again, b.id, 0).unwrap();
        again
    };
    let mut k = inst.kernel().borrow_mut();
    assert!(k.sim.write(a.pd, a.window_base, b"stale").is_err());
    let mut buf = [0u8; 5];
    k.sim.read(b.pd, b.window_base, &mut buf).unwrap();
    assert_eq!(buf, [0; 5]);
    let _ = page;
}
