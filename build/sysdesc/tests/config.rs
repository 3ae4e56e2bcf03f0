//! The configuration the PD programs of the end-to-end system (`build/qemu-e2e.xml` and its
//! companion) are built with has what the scenario needs: the driver and the host agree on the
//! SynIC and hypercall pages and on their channel, the host's guest memory is the driver's pool,
//! each client's window and control page are where the driver maps them, and the clients serve
//! the echo devices the host PD offers (pd-support's `abi::scenario`).

use std::path::PathBuf;

use sysdesc::config::{
    HvConfig, PdConfig, SynicConfig, pd_config, program_configs, program_source,
};

fn e2e() -> (PathBuf, sysdesc::System) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../qemu-e2e.xml");
    let sys = sysdesc::load(&path).unwrap_or_else(|d| panic!("{d:#?}"));
    (path, sys)
}

fn config(name: &str) -> PdConfig {
    pd_config(&e2e().1, name).unwrap()
}

/// A GUID's wire bytes from its text.
fn guid(s: &str) -> [u8; 16] {
    sysdesc::Guid::parse(s).unwrap().bytes()
}

#[test]
fn the_driver_and_the_host_meet_on_one_channel_and_the_same_pages() {
    let driver = config("vmbus_driver");
    let host = config("hv_host");
    let d = driver.driver.as_ref().unwrap();
    let h = host.host.clone().unwrap();
    // The driver calls the host on its channel; the host's end of it is the host's channel.
    let HvConfig::StandIn {
        synic: driver_synic,
        host: link,
    } = d.hypervisor
    else {
        panic!("the driver's host is not the host PD: {:?}", d.hypervisor)
    };
    let drv_end = driver
        .channels
        .iter()
        .find(|c| c.id == link.channel)
        .unwrap();
    assert_eq!((drv_end.peer.as_str(), drv_end.pp), ("hv_host", true));
    let host_end = host
        .channels
        .iter()
        .find(|c| c.id == h.driver_channel)
        .unwrap();
    assert_eq!(
        (host_end.peer.as_str(), host_end.pp),
        ("vmbus_driver", false)
    );
    // Each PD's addresses are its own maps of the shared regions.
    let at = |c: &PdConfig, r: &str| c.maps.iter().find(|m| m.region == r).unwrap().vaddr;
    for c in [&driver, &host] {
        let s = match &c.host {
            Some(h) => h.synic,
            None => driver_synic,
        };
        assert_eq!(
            s,
            SynicConfig {
                message: at(c, "synic_message"),
                event_flags: at(c, "synic_event_flags")
            }
        );
    }
    assert_eq!(link.hypercall_input, at(&driver, "hypercall_input"));
    assert_eq!(h.hypercall_input, at(&host, "hypercall_input"));
    // The host's guest memory is the driver's whole pool.
    assert_eq!(h.guest_memory_vaddr, at(&host, "vmbus_pool"));
    assert_eq!(h.guest_memory_pages, d.pool_pages);
    assert_eq!(d.pool_vaddr, at(&driver, "vmbus_pool"));
    assert_eq!(d.pool_pages, 8192);
}

#[test]
fn the_clients_serve_the_scenarios_echo_devices_in_order() {
    let driver = config("vmbus_driver");
    let d = driver.driver.unwrap();
    let names: Vec<&str> = d.clients.iter().map(|c| c.name.as_str()).collect();
    // Client A (ClientId 0) opens echo device A, client B echo device B.
    assert_eq!(names, ["client_a", "client_b"]);
    let classes = [
        guid("e2e0ec40-0001-4000-8000-00000000000a"),
        guid("e2e0ec40-0001-4000-8000-00000000000b"),
    ];
    for (i, c) in d.clients.iter().enumerate() {
        let own = config(&c.name);
        let cl = own.client.unwrap();
        assert_eq!((c.id, cl.id), (i as u16, i as u16));
        assert_eq!(c.classes, [classes[i]]);
        assert_eq!(cl.classes, c.classes);
        assert_eq!(c.pd_index, own.index, "fault reports name the client's PD");
        // The driver reaches the client on the channel the client calls it on.
        let end = own
            .channels
            .iter()
            .find(|e| e.id == cl.driver_channel)
            .unwrap();
        assert_eq!((end.peer.as_str(), end.pp), ("vmbus_driver", true));
        let theirs = driver.channels.iter().find(|e| e.id == c.channel).unwrap();
        assert_eq!(theirs.peer, c.name);
        // Both map the client's control page; the window holds the scenario's two rings of 4
        // pages (abi::scenario::RING_PAGES) in its one slot.
        assert_eq!(c.window_vaddr, cl.window_vaddr);
        assert_eq!((c.max_channels, c.window_pages), (1, 16));
        assert!(c.window_pages >= 2 * 4);
        assert_ne!(c.control_vaddr, 0);
        assert_ne!(cl.control_vaddr, 0);
        assert_eq!(c.vspace_slot, i as u64 + 1);
    }
}

#[test]
fn each_program_gets_the_configuration_of_its_pds() {
    let (path, sys) = e2e();
    for (program, pds) in [
        ("vmbus-driver-pd", vec!["vmbus_driver"]),
        ("hv-host-pd", vec!["hv_host"]),
        ("echo-client-a", vec!["client_a"]),
        ("echo-client-b", vec!["client_b"]),
    ] {
        let names: Vec<String> = program_configs(&sys, program)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, pds);
        let text = program_source(&path, program).unwrap();
        assert!(text.contains("pub static CONFIGS: &[::pd_runtime::config::PdConfig] = &["));
    }
    let text = program_source(&path, "vmbus-driver-pd").unwrap();
    assert!(
        text.contains("DriverClient { id: 1, name: \"client_b\", pd_index: 3, vspace_slot: 2, channel: 2, window_vaddr: 0x50000000, window_pages: 16, control_vaddr: 0x30001000,"),
        "{text}"
    );
    assert!(
        program_source(&path, "grant-client")
            .unwrap_err()
            .contains("runs program `grant-client`")
    );
}

#[test]
fn a_program_run_by_two_pds_gets_both_configurations() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../qemu-test.xml");
    let sys = sysdesc::load(&path).unwrap();
    let configs = program_configs(&sys, "grant-client");
    let who: Vec<(&str, usize)> = configs.iter().map(|c| (c.name.as_str(), c.index)).collect();
    assert_eq!(who, [("client_a", 1), ("client_b", 2)]);
    let text = program_source(&path, "grant-client").unwrap();
    assert_eq!(text.matches("::pd_runtime::config::PdConfig {").count(), 2);
}

#[test]
fn the_host_offers_every_class_the_clients_serve_once() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../system.xml");
    let sys = sysdesc::load(&path).unwrap_or_else(|d| panic!("{d:#?}"));
    let host = pd_config(&sys, "hv_host").unwrap();
    let h = host.host.as_ref().unwrap();
    // system.vmbus.xml: heartbeat, shutdown, timesync, kvp, dynamic memory, network, then the
    // storage client's SCSI and IDE classes.
    assert_eq!(h.client_classes.len(), 8);
    assert_eq!(
        h.client_classes[0],
        guid("57164f39-9115-4e78-ab55-382f3bd5422d")
    );
    assert_eq!(
        h.client_classes[7],
        guid("32412632-86cb-44a2-9b5c-50d1417354f5")
    );
    let mut unique = h.client_classes.clone();
    unique.dedup();
    assert_eq!(unique, h.client_classes);
}
