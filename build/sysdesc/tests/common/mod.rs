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

/// A valid driver + client system; `driver_extra` goes inside the driver PD, `client_extra`
/// inside the client PD, `client` replaces the client's vmbus_client attributes, `more` is
/// appended inside `system`.
pub fn vmbus_system(driver_extra: &str, client: &str, client_extra: &str, more: &str) -> String {
    format!(
        r#"<system>
    <memory_region name="shared" size="0x2000" />
    <protection_domain name="driver" priority="200">
        <program_image path="vmbus-driver-pd.elf" />
        <cspace><cap_vspace slot="5" pd="client" /></cspace>
        <vmbus_driver pool_pages="64" />
{driver_extra}    </protection_domain>
    <protection_domain name="client" priority="100">
        <program_image path="client-pd.elf" />
        <map mr="shared" vaddr="0x30000000" />
        <vmbus_client {client}>
            <vmbus_device class="57164f39-9115-4e78-ab55-382f3bd5422d" />
        </vmbus_client>
{client_extra}    </protection_domain>
    <channel>
        <end pd="client" id="1" pp="true" />
        <end pd="driver" id="3" />
    </channel>
{more}</system>
"#
    )
}

/// The client attributes of a valid [`vmbus_system`].
pub const CLIENT_OK: &str =
    r#"driver_channel="1" window_vaddr="0x40000000" window_size="0x10000" max_channels="2""#;
