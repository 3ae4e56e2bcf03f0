//! The repository's system.xml: it validates, it has the planned PDs, and the generated
//! constants carry the numbers written in the XML (read here straight from the XML with
//! roxmltree, not through sysdesc), compile without warnings and are deterministic.

use std::path::PathBuf;
use std::process::Command;

fn repo_xml_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../system.xml")
}

fn repo_xml() -> String {
    std::fs::read_to_string(repo_xml_path()).expect("system.xml at the workspace root")
}

fn load() -> sysdesc::System {
    sysdesc::parse_and_validate("system.xml", &repo_xml())
        .unwrap_or_else(|d| panic!("{:#?}", d.iter().map(|d| d.to_string()).collect::<Vec<_>>()))
}

fn num(s: &str) -> u64 {
    let s = s.replace('_', "");
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

/// Facts about one client, read directly from the XML.
struct RawClient {
    name: String,
    client_id: u64,
    driver_id: u64,
    window_vaddr: u64,
    window_size: u64,
    max_channels: u64,
    classes: Vec<String>,
}

fn raw_facts(xml: &str) -> (String, u64, Vec<RawClient>) {
    let doc = roxmltree::Document::parse(xml).unwrap();
    let pds: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("protection_domain"))
        .collect();
    let driver = pds
        .iter()
        .find(|p| p.children().any(|c| c.has_tag_name("vmbus_driver")))
        .unwrap();
    let driver_name = driver.attribute("name").unwrap().to_string();
    let pool = num(driver
        .children()
        .find(|c| c.has_tag_name("vmbus_driver"))
        .unwrap()
        .attribute("pool_pages")
        .unwrap());
    let channels: Vec<Vec<(String, u64)>> = doc
        .descendants()
        .filter(|n| n.has_tag_name("channel"))
        .map(|c| {
            c.children()
                .filter(|e| e.has_tag_name("end"))
                .map(|e| {
                    (
                        e.attribute("pd").unwrap().to_string(),
                        num(e.attribute("id").unwrap()),
                    )
                })
                .collect()
        })
        .collect();
    let mut clients = Vec::new();
    for p in &pds {
        let Some(cl) = p.children().find(|c| c.has_tag_name("vmbus_client")) else {
            continue;
        };
        let name = p.attribute("name").unwrap().to_string();
        let ends = channels
            .iter()
            .find(|ends| {
                ends.iter().any(|(pd, _)| *pd == name)
                    && ends.iter().any(|(pd, _)| *pd == driver_name)
            })
            .unwrap();
        let id_of = |who: &str| ends.iter().find(|(pd, _)| pd == who).unwrap().1;
        clients.push(RawClient {
            client_id: id_of(&name),
            driver_id: id_of(&driver_name),
            window_vaddr: num(cl.attribute("window_vaddr").unwrap()),
            window_size: num(cl.attribute("window_size").unwrap()),
            max_channels: num(cl.attribute("max_channels").unwrap()),
            classes: cl
                .children()
                .filter(|d| d.has_tag_name("vmbus_device"))
                .map(|d| d.attribute("class").unwrap().to_ascii_lowercase())
                .collect(),
            name,
        });
    }
    (driver_name, pool, clients)
}

#[test]
fn repository_system_xml_validates() {
    let s = load();
    assert_eq!(
        s.vmbus_driver().map(|d| d.name.as_str()),
        Some("vmbus_driver")
    );
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
    assert!(
        s.pd("hv_host").is_some(),
        "the simulated host PD is part of the image"
    );
    assert_eq!(
        s.pd("vmbus_driver").unwrap().program_image.path,
        "vmbus-driver-pd.elf"
    );
}

#[test]
fn repository_clients_serve_the_documented_device_classes() {
    // Class GUIDs from VMBUS-PROTOCOL.md's table of well-known classes.
    let expect = [
        ("heartbeat", "57164f39-9115-4e78-ab55-382f3bd5422d"),
        ("shutdown", "0e0b6031-5213-4934-818b-38d90ced39db"),
        ("timesync", "9527e630-d0ae-497b-adce-e80ab0175caf"),
        ("kvp", "a9a0f4e7-5a45-4d96-b827-8a841e8c03e6"),
        ("dynmem", "525074dc-8985-46e2-8057-a307dc18a502"),
        ("net", "f8615163-df3e-46c5-913f-f2d2f965ed0e"),
        ("storage", "ba6163d9-04a1-4d29-b605-72e2ffb1dc7f"),
    ];
    let s = load();
    for (pd, class) in expect {
        let c = s.pd(pd).unwrap().vmbus_client.as_ref().unwrap();
        assert!(
            c.devices.iter().any(|d| d.class.as_str() == class),
            "{pd} does not serve {class}"
        );
    }
}

#[test]
fn generated_constants_carry_the_numbers_in_the_xml() {
    let xml = repo_xml();
    let s = load();
    let (driver, pool, clients) = raw_facts(&xml);
    assert_eq!(clients.len(), 7);
    let drv = sysdesc::generate_pd_constants(&s, &driver).unwrap();
    assert!(
        drv.contains(&format!("pub const VMBUS_POOL_PAGES: usize = {pool};")),
        "{drv}"
    );
    for c in &clients {
        let text = sysdesc::generate_pd_constants(&s, &c.name).unwrap();
        for line in [
            format!("pub const VMBUS_DRIVER_CHANNEL: u32 = {};", c.client_id),
            format!(
                "pub const VMBUS_DRIVER_BADGE: u64 = {:#x};",
                1u64 << c.client_id
            ),
            format!(
                "pub const VMBUS_WINDOW_VADDR: usize = {:#x};",
                c.window_vaddr
            ),
            format!("pub const VMBUS_WINDOW_SIZE: usize = {:#x};", c.window_size),
            format!("pub const VMBUS_MAX_CHANNELS: u32 = {};", c.max_channels),
        ] {
            assert!(text.contains(&line), "{} lacks `{line}`:\n{text}", c.name);
        }
        for class in &c.classes {
            assert!(text.contains(&format!("(\"{class}\", None)")), "{}", c.name);
        }
        let upper = c.name.to_ascii_uppercase();
        let ch = format!("pub const CH_{upper}: u32 = {};", c.driver_id);
        assert!(drv.contains(&ch), "driver lacks `{ch}`");
        let badge = format!(
            "pub const CH_{upper}_BADGE: u64 = {:#x};",
            1u64 << c.driver_id
        );
        assert!(drv.contains(&badge), "driver lacks `{badge}`");
        let row = format!("name: \"{}\", channel: {},", c.name, c.driver_id);
        assert!(drv.contains(&row), "driver client table lacks `{row}`");
    }
}

#[test]
fn generation_is_deterministic() {
    let a = load();
    let b = load();
    for pd in &a.pds {
        let x = sysdesc::generate_pd_constants(&a, &pd.name).unwrap();
        let y = sysdesc::generate_pd_constants(&b, &pd.name).unwrap();
        assert_eq!(x, y, "{}", pd.name);
        assert_eq!(x, sysdesc::generate_pd_constants(&a, &pd.name).unwrap());
    }
    assert_eq!(
        sysdesc::generate_system_table(&a),
        sysdesc::generate_system_table(&b)
    );
    assert!(sysdesc::generate_pd_constants(&a, "no-such-pd").is_none());
}

#[test]
fn system_table_lists_every_pd_and_channel_in_order() {
    let s = load();
    let t = sysdesc::generate_system_table(&s);
    let mut at = 0;
    for pd in &s.pds {
        let needle = format!(
            "Pd {{ name: \"{}\", priority: {},",
            pd.name, pd.sched.priority
        );
        let pos = t[at..]
            .find(&needle)
            .unwrap_or_else(|| panic!("missing or out of order: {needle}"));
        at += pos;
    }
    // Channel 0 in the XML joins the driver (PD index 1) and the host (index 0).
    assert!(t.contains(
        "Channel { a: End { pd: 1, id: 0, pp: true, notify: true }, b: End { pd: 0, id: 0, pp: false, notify: true } }"
    ));
    assert!(t.contains("pub const VMBUS_DRIVER: Option<u16> = Some(1);"));
}

/// Compiles `files` (crate root first) with the pinned rustc and `-D warnings`.
fn compile(dir: &std::path::Path, root: &str) {
    let out = Command::new("rustc")
        .current_dir(dir)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "-D",
            "warnings",
            "-D",
            "missing_docs",
        ])
        .arg("--out-dir")
        .arg(dir)
        .arg(root)
        .output()
        .expect("run rustc");
    assert!(
        out.status.success(),
        "generated code does not compile:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generated_code_compiles_without_warnings() {
    let s = load();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sysdesc-generated");
    std::fs::create_dir_all(&dir).unwrap();
    let mut root = String::from("//! All PD constants of the repository system.\n");
    for pd in &s.pds {
        let m = sysdesc::module_name(&pd.name);
        std::fs::write(
            dir.join(format!("{m}.rs")),
            sysdesc::generate_pd_constants(&s, &pd.name).unwrap(),
        )
        .unwrap();
        root.push_str(&format!("include!(\"{m}.rs\");\n"));
    }
    std::fs::write(dir.join("pds.rs"), root).unwrap();
    compile(&dir, "pds.rs");
    std::fs::write(
        dir.join("system_table.rs"),
        sysdesc::generate_system_table(&s),
    )
    .unwrap();
    compile(&dir, "system_table.rs");
}
