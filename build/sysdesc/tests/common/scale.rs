//! Large generated descriptions, for the scaling test and for timing `cargo xtask check`
//! (`cargo run -p sysdesc --release --example huge_description -- --help`).
//!
//! The shape is regular so that the description parses cleanly and reaches every cross-check:
//! `pds` PDs in a ring, each with `maps` maps of its own region, and 12 channels to each of the
//! next 12 PDs (ids 0..=11 on the calling side, 12..=23 on the called side: every id is within
//! the image's channel ids and used once per PD). A VMBus driver and `clients` clients (each
//! with a channel to the driver and a control page; in the companion, [`companion`], a window and
//! a device class) come on top. The only problem in it is the PD count when `pds` exceeds
//! Microkit's 63.
#![allow(dead_code)]

use std::fmt::Write as _;

/// Channels each ring PD starts (and, as the called side, ends).
pub const CHANNELS_PER_PD: usize = 12;

/// The size of a generated description.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// PDs in the ring (at least 13, so no PD is its own peer).
    pub pds: usize,
    /// Maps (and regions) per ring PD.
    pub maps: usize,
    /// VMBus clients (at most 23: the driver's channel ids bound them).
    pub clients: usize,
}

impl Shape {
    /// The shape with about `channels` channels and nothing else in the ring PDs.
    pub fn channels(channels: usize) -> Shape {
        Shape {
            pds: channels.div_ceil(CHANNELS_PER_PD).max(CHANNELS_PER_PD + 1),
            maps: 0,
            clients: 4,
        }
    }

    /// Channels in the description.
    pub fn channel_count(&self) -> usize {
        self.pds * CHANNELS_PER_PD + self.clients
    }
}

/// The description of `shape`.
pub fn description(shape: Shape) -> String {
    let mut x = String::with_capacity(shape.pds * (170 + 70 * shape.maps) + 4096);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<system>\n");
    x.push_str("    <memory_region name=\"pool\" size=\"0x400000\" />\n");
    for c in 0..shape.clients {
        let _ = writeln!(
            x,
            "    <memory_region name=\"control{c}\" size=\"0x1000\" />"
        );
    }
    for p in 0..shape.pds {
        for m in 0..shape.maps {
            let _ = writeln!(x, "    <memory_region name=\"r{p}_{m}\" size=\"0x1000\" />");
        }
    }
    x.push_str("    <protection_domain name=\"driver\" priority=\"200\">\n");
    x.push_str("        <program_image path=\"vmbus-driver-pd.elf\" />\n");
    x.push_str("        <map mr=\"pool\" vaddr=\"0x20000000\" />\n");
    for c in 0..shape.clients {
        let _ = writeln!(
            x,
            "        <map mr=\"control{c}\" vaddr=\"{:#x}\" />",
            0x3000_0000 + c * 0x1000
        );
    }
    x.push_str("        <cspace>\n");
    for c in 0..shape.clients {
        let _ = writeln!(
            x,
            "            <cap_vspace slot=\"{}\" pd=\"client{c}\" />",
            c + 1
        );
    }
    x.push_str("        </cspace>\n    </protection_domain>\n");
    for c in 0..shape.clients {
        let _ = write!(
            x,
            "    <protection_domain name=\"client{c}\" priority=\"100\">\n        \
             <program_image path=\"client.elf\" />\n        \
             <map mr=\"control{c}\" vaddr=\"0x30000000\" />\n    </protection_domain>\n"
        );
    }
    for p in 0..shape.pds {
        let _ = writeln!(
            x,
            "    <protection_domain name=\"p{p}\" priority=\"{}\">",
            1 + p % 100
        );
        x.push_str("        <program_image path=\"p.elf\" />\n");
        for m in 0..shape.maps {
            let _ = writeln!(
                x,
                "        <map mr=\"r{p}_{m}\" vaddr=\"{:#x}\" perms=\"r\" />",
                0x3000_0000 + m * 0x1000
            );
        }
        x.push_str("    </protection_domain>\n");
    }
    for c in 0..shape.clients {
        let _ = writeln!(
            x,
            "    <channel><end pd=\"client{c}\" id=\"0\" pp=\"true\" /><end pd=\"driver\" id=\"{c}\" /></channel>"
        );
    }
    for p in 0..shape.pds {
        for j in 0..CHANNELS_PER_PD {
            let q = (p + j + 1) % shape.pds;
            let _ = writeln!(
                x,
                "    <channel><end pd=\"p{p}\" id=\"{j}\" /><end pd=\"p{q}\" id=\"{}\" /></channel>",
                CHANNELS_PER_PD + j
            );
        }
    }
    x.push_str("</system>\n");
    x
}

/// The VMBus companion of [`description`]`(shape)`, for a description named `file`.
pub fn companion(shape: Shape, file: &str) -> String {
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<vmbus system=\"{file}\">\n    <driver pd=\"driver\" pool_pages=\"1024\" pool_region=\"pool\" />\n"
    );
    for c in 0..shape.clients {
        let _ = write!(
            x,
            "    <client pd=\"client{c}\" driver_channel=\"0\" window_vaddr=\"0x40000000\" window_size=\"0x10000\" max_channels=\"2\" control=\"control{c}\">\n        \
             <device class=\"57164f39-9115-4e78-ab55-{c:012x}\" />\n    </client>\n"
        );
    }
    x.push_str("</vmbus>\n");
    x
}
