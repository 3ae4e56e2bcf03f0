//! The repository's descriptions: each validates with its companion, `system.xml` has the
//! planned PDs, and the generated configuration carries the numbers written in the two files
//! (read here straight from the XML with roxmltree, not through sysdesc).

use std::path::PathBuf;

use sysdesc::config::{pd_config, program_configs, render};

fn repo(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(file)
}

fn load(file: &str) -> sysdesc::System {
    sysdesc::load(&repo(file))
        .unwrap_or_else(|d| panic!("{:#?}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>()))
}

fn num(s: &str) -> u64 {
    let s = s.replace('_', "");
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

#[test]
fn every_repository_description_validates_with_its_companion() {
    for file in ["system.xml", "build/qemu-test.xml", "build/qemu-e2e.xml"] {
        let s = load(file);
        assert!(s.vmbus_file.is_some(), "{file}: no companion");
        assert!(s.vmbus_driver().is_some(), "{file}: no driver");
        // The description alone is plain Microkit: it validates without the companion.
        let xml = std::fs::read_to_string(repo(file)).unwrap();
        assert!(!xml.contains("<vmbus"), "{file} has VMBus elements");
        sysdesc::parse_and_validate(file, &xml).unwrap();
    }
}

#[test]
fn repository_system_xml_has_the_planned_pds() {
    let s = load("system.xml");
    assert_eq!(
        s.vmbus_driver().map(|d| d.name.as_str()),
        Some("vmbus_driver")
    );
    assert_eq!(s.vmbus_host().map(|d| d.name.as_str()), Some("hv_host"));
    let clients: Vec<&str> = s.vmbus_clients().map(|(p, _)| p.name.as_str()).collect();
    assert_eq!(
        clients,
        [
            "heartbeat",
            "shutdown",
            "timesync",
            "kvp",
            "dynmem",
            "net",
            "storage"
        ]
    );
    assert_eq!(
        s.pd("vmbus_driver").unwrap().program_image.path,
        "vmbus-driver-pd.elf"
    );
}

#[test]
fn repository_clients_serve_the_documented_device_classes() {
    // Class GUIDs from docs/protocol.md's table of well-known classes.
    let expect = [
        ("heartbeat", "57164f39-9115-4e78-ab55-382f3bd5422d"),
        ("shutdown", "0e0b6031-5213-4934-818b-38d90ced39db"),
        ("timesync", "9527e630-d0ae-497b-adce-e80ab0175caf"),
        ("kvp", "a9a0f4e7-5a45-4d96-b827-8a841e8c03e6"),
        ("dynmem", "525074dc-8985-46e2-8057-a307dc18a502"),
        ("net", "f8615163-df3e-46c5-913f-f2d2f965ed0e"),
        ("storage", "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f"),
    ];
    let s = load("system.xml");
    for (pd, class) in expect {
        let c = s.pd(pd).unwrap().vmbus_client.as_ref().unwrap();
        assert!(
            c.devices.iter().any(|d| d.class.as_str() == class),
            "{pd} does not serve {class}"
        );
    }
}

/// A client as the two files say, read without sysdesc.
struct RawClient {
    name: String,
    client_end: u64,
    driver_end: u64,
    window_vaddr: u64,
    window_size: u64,
    max_channels: u64,
    control_in_driver: u64,
    control_in_client: u64,
}

fn raw_clients(file: &str) -> (String, Vec<RawClient>) {
    let xml = std::fs::read_to_string(repo(file)).unwrap();
    let vm = std::fs::read_to_string(sysdesc::companion_path(&repo(file))).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let wiring = roxmltree::Document::parse(&vm).unwrap();
    let driver = wiring
        .descendants()
        .find(|n| n.has_tag_name("driver"))
        .unwrap()
        .attribute("pd")
        .unwrap()
        .to_string();
    let map = |pd: &str, region: &str| {
        let p = doc
            .descendants()
            .find(|n| n.has_tag_name("protection_domain") && n.attribute("name") == Some(pd))
            .unwrap();
        let m = p
            .children()
            .find(|m| m.has_tag_name("map") && m.attribute("mr") == Some(region))
            .unwrap();
        num(m.attribute("vaddr").unwrap())
    };
    let end = |pd: &str, other: &str| {
        doc.descendants()
            .filter(|n| n.has_tag_name("channel"))
            .find_map(|c| {
                let ends: Vec<_> = c.children().filter(|e| e.has_tag_name("end")).collect();
                let pds: Vec<_> = ends.iter().map(|e| e.attribute("pd").unwrap()).collect();
                if pds.contains(&pd) && pds.contains(&other) {
                    let e = ends.iter().find(|e| e.attribute("pd") == Some(pd))?;
                    Some(num(e.attribute("id").unwrap()))
                } else {
                    None
                }
            })
            .unwrap()
    };
    let clients = wiring
        .descendants()
        .filter(|n| n.has_tag_name("client"))
        .map(|c| {
            let name = c.attribute("pd").unwrap().to_string();
            let control = c.attribute("control").unwrap();
            RawClient {
                client_end: end(&name, &driver),
                driver_end: end(&driver, &name),
                window_vaddr: num(c.attribute("window_vaddr").unwrap()),
                window_size: num(c.attribute("window_size").unwrap()),
                max_channels: num(c.attribute("max_channels").unwrap()),
                control_in_driver: map(&driver, control),
                control_in_client: map(&name, control),
                name,
            }
        })
        .collect();
    (driver, clients)
}

#[test]
fn the_configuration_carries_the_numbers_in_the_two_files() {
    for file in ["system.xml", "build/qemu-e2e.xml", "build/qemu-test.xml"] {
        let s = load(file);
        let (driver, raw) = raw_clients(file);
        let d = pd_config(&s, &driver).unwrap().driver.unwrap();
        assert_eq!(d.clients.len(), raw.len(), "{file}");
        for (i, (r, c)) in raw.iter().zip(&d.clients).enumerate() {
            assert_eq!(
                (
                    usize::from(c.id),
                    c.name.as_str(),
                    u64::from(c.channel),
                    c.window_vaddr,
                    c.window_pages * 4096,
                    u64::from(c.max_channels),
                    c.control_vaddr
                ),
                (
                    i,
                    r.name.as_str(),
                    r.driver_end,
                    r.window_vaddr,
                    r.window_size,
                    r.max_channels,
                    r.control_in_driver
                ),
                "{file}: driver's row of {}",
                r.name
            );
            let own = pd_config(&s, &r.name).unwrap().client.unwrap();
            assert_eq!(
                (
                    u64::from(own.driver_channel),
                    own.control_vaddr,
                    own.window_vaddr
                ),
                (r.client_end, r.control_in_client, r.window_vaddr),
                "{file}: {}",
                r.name
            );
        }
    }
}

#[test]
fn generation_is_deterministic_and_covers_every_pd_once() {
    for file in ["system.xml", "build/qemu-e2e.xml", "build/qemu-test.xml"] {
        let a = load(file);
        let b = load(file);
        let mut programs: Vec<&str> = Vec::new();
        for p in &a.pds {
            let name = sysdesc::config::program_name(&p.program_image.path);
            if !programs.contains(&name) {
                programs.push(name);
            }
        }
        let mut covered = 0;
        for p in programs {
            let configs = program_configs(&a, p);
            covered += configs.len();
            assert_eq!(render(&a, &configs), render(&b, &program_configs(&b, p)));
        }
        assert_eq!(covered, a.pds.len(), "{file}");
    }
    assert!(pd_config(&load("system.xml"), "no-such-pd").is_none());
}
