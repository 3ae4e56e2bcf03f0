//! The guest side of Hyper-V's network protocol (netvsc): NVSP over a VMBus channel of class
//! `f8615163-df3e-46c5-913f-f2d2f965ed0e`, with RNDIS messages inside it.
//!
//! Nothing here touches a ring, a page or a GPADL: the PD moves the bytes. It establishes two
//! GPADLs on the channel (the receive buffer, the send buffer), gives their handles in a
//! [`Config`], and then feeds every packet it takes from the inbound ring, whole (descriptor
//! included), to [`Netvsc::on_packet`], and sends what lands in the [`Outbox`].
//!
//! - [`nvsp`]: NVSP messages, encoded and decoded with every length checked.
//! - [`rndis`]: RNDIS messages: `INIT`, `QUERY`, `SET`, their completions, `PACKET` with data
//!   offset and per-packet info, `INDICATE_STATUS`, `KEEPALIVE`.
//! - [`vmpkt`]: raw VMBus packets: the descriptor, the transfer-page header of receives, and
//!   completion and GPA-direct packet builders.
//! - [`Sections`]: the bounded send-buffer section allocator.
//! - [`Netvsc`]: the device. Initialisation: `INIT` per version, newest first (6.1, 6, 5, 4,
//!   2, 1); on acceptance `SEND_NDIS_CONFIG` (2+), `SEND_NDIS_VERSION` and `SEND_RECV_BUF`; the
//!   receive buffer's sections checked; `SEND_SEND_BUF` and its section size; then RNDIS
//!   `INIT`, the MAC address, the maximum frame size, the link state, and the packet filter
//!   (directed, multicast, broadcast by default). [`Phase`] is that sequence as an enum whose
//!   variants carry their data.
//!
//! Receive: a transfer-page packet names ranges of the receive buffer, each one RNDIS
//! message. Every range is checked against the buffer and the host's sub-allocation size,
//! every RNDIS length against its range, the data against the message; each frame is copied
//! out and handed to the caller, and the completion for the packet's transaction id is
//! queued (status failure when a range was bad). Transmit: [`Netvsc::send_frame`] copies a
//! frame into a free section behind an RNDIS header and queues `SEND_RNDIS_PKT` naming the
//! section; its completion frees the section. Frames larger than a section go GPA-direct
//! ([`Netvsc::send_frame_gpa`]). A completion for no send in flight is a hostile error.
//!
//! ```
//! use netvsc::{Config, Netvsc, Outbox, Phase};
//! let mut dev = Netvsc::new(Config {
//!     recv_gpadl: 0x10, recv_len: 64 * 4096, send_gpadl: 0x11, send_len: 16 * 4096,
//!     mtu: 1500, packet_filter: Config::DEFAULT_FILTER,
//! });
//! let mut out = Outbox::new();
//! dev.start(&mut out).unwrap();
//! let init = out.packets().next().unwrap();
//! assert_eq!(&init.payload()[..12], &[1, 0, 0, 0, 1, 0, 6, 0, 1, 0, 6, 0]);
//! assert_eq!(dev.phase(), Phase::Version { index: 0 });
//! ```
#![no_std]
#![forbid(unsafe_code)]

mod device;
pub mod nvsp;
pub mod rndis;
pub mod sddf_net;
mod sections;
pub mod vmpkt;
mod wire;

pub use device::{
    BufferMem, Config, DeviceInfo, ETH_HEADER, Error, Event, GPA_SLOTS, GpaSend, MAX_CONTROL_IN,
    MAX_REQUESTS, MIN_SECTION, Netvsc, OUTBOX, Outbox, Packet, PacketKind, Phase, RecvLayout,
    Refusal, RescindReport, RndisStep,
};
pub use sections::{MAX_SECTIONS, SectionError, Sections};

/// The netvsc device class, in VMBus wire byte order (`f8615163-df3e-46c5-913f-f2d2f965ed0e`).
pub const CLASS: [u8; 16] = [
    0x63, 0x51, 0x61, 0xf8, 0x3e, 0xdf, 0xc5, 0x46, 0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e,
];

#[cfg(test)]
mod tests;
