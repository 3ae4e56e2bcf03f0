//! Helpers shared by the sysdesc integration tests.
#![allow(dead_code)]

pub mod scale;

use sysdesc::{Diagnostic, ErrorKind};

/// The 1-based line of the first line of `xml` containing `needle` (plain text search, so the
/// expected line does not come from the parser under test).
pub fn line_of(xml: &str, needle: &str) -> u32 {
    let idx = xml
        .lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("test XML has no line containing {needle:?}"));
    idx as u32 + 1
}

/// All diagnostics for `xml` (named `t.xml`); panics if it is accepted.
pub fn diags(xml: &str) -> Vec<Diagnostic> {
    match sysdesc::parse_and_validate("t.xml", xml) {
        Ok(_) => panic!("description was accepted:\n{xml}"),
        Err(d) => d,
    }
}

/// Asserts `xml` is rejected with exactly one diagnostic, of `kind`, reading `t.xml:<line of
/// needle>: <message>`.
pub fn assert_one(xml: &str, kind: ErrorKind, needle: &str, message: &str) {
    let d = diags(xml);
    let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(d.len(), 1, "expected one diagnostic, got {text:#?}");
    assert_eq!(d[0].kind, kind, "{}", text[0]);
    assert_eq!(
        text[0],
        format!("t.xml:{}: {message}", line_of(xml, needle))
    );
}

/// The file name of the companion in these tests.
pub const VM: &str = "t.vmbus.xml";

/// All diagnostics for the description `xml` (named `t.xml`) with the companion `vm` (named
/// [`VM`]); panics if the pair is accepted.
pub fn pair_diags(xml: &str, vm: &str) -> Vec<Diagnostic> {
    match check_pair(xml, vm) {
        Ok(_) => panic!("description was accepted:\n{xml}\n{vm}"),
        Err(d) => d,
    }
}

/// Checks the description `xml` (named `t.xml`) with the companion `vm` (named [`VM`]).
pub fn check_pair(xml: &str, vm: &str) -> Result<sysdesc::System, Vec<Diagnostic>> {
    sysdesc::parse_and_validate_pair(
        sysdesc::Source::new("t.xml", xml),
        sysdesc::Source::new(VM, vm),
    )
}

/// Asserts the pair is rejected with exactly one diagnostic, of `kind`, reading
/// `<file>:<line of needle in that file>: <message>`, `file` being `t.xml` (`in_companion`
/// false) or [`VM`].
pub fn assert_one_pair(
    xml: &str,
    vm: &str,
    in_companion: bool,
    kind: ErrorKind,
    needle: &str,
    message: &str,
) {
    let d = pair_diags(xml, vm);
    let text: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(d.len(), 1, "expected one diagnostic, got {text:#?}");
    assert_eq!(d[0].kind, kind, "{}", text[0]);
    let (file, body) = if in_companion {
        (VM, vm)
    } else {
        ("t.xml", xml)
    };
    assert_eq!(
        text[0],
        format!("{file}:{}: {message}", line_of(body, needle))
    );
}

/// A valid driver + client description (plain Microkit); `driver_extra` goes inside the driver
/// PD, `client_extra` inside the client PD, `more` is appended inside `system`. The client maps
/// `shared` at 0x30000000 and its control page `control` at 0x30100000; the driver maps
/// `control` at 0x31000000.
pub fn vmbus_system(driver_extra: &str, client_extra: &str, more: &str) -> String {
    format!(
        r#"<system>
    <memory_region name="shared" size="0x2000" />
    <memory_region name="control" size="0x1000" />
    <protection_domain name="driver" priority="200">
        <program_image path="vmbus-driver-pd.elf" />
        <map mr="control" vaddr="0x31000000" />
        <cspace><cap_vspace slot="5" pd="client" /></cspace>
{driver_extra}    </protection_domain>
    <protection_domain name="client" priority="100">
        <program_image path="client-pd.elf" />
        <map mr="shared" vaddr="0x30000000" />
        <map mr="control" vaddr="0x30100000" />
{client_extra}    </protection_domain>
    <channel>
        <end pd="client" id="1" pp="true" />
        <end pd="driver" id="3" />
    </channel>
{more}</system>
"#
    )
}

/// The companion of [`vmbus_system`]: the driver (`driver` replaces its attributes after `pd`),
/// the client with attributes `client` (after `pd`), `more` appended inside `vmbus`.
pub fn vmbus_companion(driver: &str, client: &str, more: &str) -> String {
    format!(
        r#"<vmbus system="t.xml">
    <driver pd="driver" {driver} />
    <client pd="client" {client}>
        <device class="57164f39-9115-4e78-ab55-382f3bd5422d" />
    </client>
{more}</vmbus>
"#
    )
}

/// The driver attributes of a valid [`vmbus_companion`]: 64 fresh pages at 0x20000000.
pub const DRIVER_OK: &str = r#"pool_pages="64" pool_vaddr="0x20000000""#;

/// The client attributes of a valid [`vmbus_companion`].
pub const CLIENT_OK: &str = r#"driver_channel="1" window_vaddr="0x40000000" window_size="0x10000" max_channels="2" control="control""#;
