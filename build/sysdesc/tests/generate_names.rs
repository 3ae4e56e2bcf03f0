//! Names in generated code: clashes get a suffix, odd PD names still give valid identifiers.

use sysdesc::{generate_pd_constants, module_name, parse_and_validate};

#[test]
fn module_names_are_valid_identifiers() {
    assert_eq!(module_name("vmbus-driver"), "vmbus_driver");
    assert_eq!(module_name("Net"), "net");
    assert_eq!(module_name("type"), "pd_type");
    assert_eq!(module_name("9lives"), "pd_9lives");
}

#[test]
fn two_channels_to_one_peer_get_distinct_constants() {
    let xml = r#"<system>
    <memory_region name="buf" size="0x3000" />
    <protection_domain name="a" priority="1">
        <program_image path="a.elf" />
        <map mr="buf" vaddr="0x100000" />
        <map mr="buf" vaddr="0x200000" perms="r" />
    </protection_domain>
    <protection_domain name="b-peer" priority="2">
        <program_image path="b.elf" />
    </protection_domain>
    <channel><end pd="a" id="3" pp="true" /><end pd="b-peer" id="0" /></channel>
    <channel><end pd="a" id="5" /><end pd="b-peer" id="1" /></channel>
</system>"#;
    let s = parse_and_validate("t.xml", xml).unwrap();
    let a = generate_pd_constants(&s, "a").unwrap();
    for line in [
        "pub const CH_B_PEER: u32 = 3;",
        "pub const CH_B_PEER_BADGE: u64 = 0x8;",
        "pub const CH_B_PEER_PP: bool = true;",
        "pub const CH_B_PEER_5: u32 = 5;",
        "pub const CH_B_PEER_5_BADGE: u64 = 0x20;",
        "pub const CH_B_PEER_5_PP: bool = false;",
        "pub const BUF_VADDR: usize = 0x100000;",
        "pub const BUF_1_VADDR: usize = 0x200000;",
        "pub const BUF_1_SIZE: usize = 0x3000;",
    ] {
        assert!(a.contains(line), "missing `{line}` in:\n{a}");
    }
    let b = generate_pd_constants(&s, "b-peer").unwrap();
    assert!(b.contains("pub mod b_peer {"));
    assert!(b.contains("pub const CH_A: u32 = 0;") && b.contains("pub const CH_A_1: u32 = 1;"));
}

#[test]
fn a_region_named_like_a_fixed_constant_gets_a_suffix() {
    let xml = r#"<system>
    <memory_region name="vmbus_window" size="0x1000" />
    <memory_region name="priority" size="0x1000" />
    <protection_domain name="a" priority="1">
        <program_image path="a.elf" />
        <map mr="vmbus_window" vaddr="0x100000" />
        <map mr="priority" vaddr="0x200000" />
    </protection_domain>
</system>"#;
    let s = parse_and_validate("t.xml", xml).unwrap();
    let a = generate_pd_constants(&s, "a").unwrap();
    // VMBUS_WINDOW_VADDR is reserved for the client window, so the map's constants move aside.
    assert!(
        a.contains("pub const VMBUS_WINDOW_0_VADDR: usize = 0x100000;"),
        "{a}"
    );
    assert!(!a.contains("pub const VMBUS_WINDOW_VADDR"), "{a}");
    // PRIORITY_VADDR clashes with nothing, so it keeps its plain name.
    assert!(
        a.contains("pub const PRIORITY_VADDR: usize = 0x200000;"),
        "{a}"
    );
}
