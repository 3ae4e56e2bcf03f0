//! The guest side of Hyper-V's storage protocol (storvsc), the protocol of the VMBus device
//! classes [`msg::SCSI_CLASS`] (the synthetic SCSI controller) and [`msg::IDE_CLASS`].
//!
//! Every message is a vstor packet ([`msg`]): a 12-byte header (operation, flags, status) and a
//! union (protocol version, channel properties, SCSI request block, sub-channel count), 48 bytes
//! up to protocol 4.2 and 64 bytes from 5.1 on. The guest opens the primary channel and runs the
//! initialisation exchange ([`Init`]: begin, versions newest first until the host accepts one,
//! properties, end); then it sends SCSI requests ([`Requests`]), each an `EXECUTE_SRB` packet
//! whose data lies in guest pages the host reads or writes directly: a GPA-direct VMBus packet
//! (type 9) whose one range ([`DataBuffer`]) lists the pages' frame numbers. The host answers
//! each with a completion carrying the request's transaction id; [`Requests`] matches it and
//! decodes the SRB status, SCSI status and sense data into an [`IoError`], or reports the bytes
//! moved. Hosts with several queues create sub-channels on request ([`SubChannels`]).
//!
//! Nothing here touches a ring or a page: the PD program moves the bytes (with
//! `vmbus_client::Channel`) and owns the data pages.
//!
//! ```
//! use storvsc::{Command, DataBuffer, Init, InitStep, Incoming, Lun, Requests, msg::PACKET_MAX};
//!
//! // A scripted host: every answer is a 64-byte COMPLETE_IO completion.
//! fn completion(status: u32, body: &[(usize, &[u8])]) -> [u8; 64] {
//!     let mut p = [0u8; 64];
//!     p[0] = 1; // COMPLETE_IO
//!     p[8..12].copy_from_slice(&status.to_le_bytes());
//!     for (at, bytes) in body { p[*at..*at + bytes.len()].copy_from_slice(bytes); }
//!     p
//! }
//! let mut out = [0u8; PACKET_MAX];
//! // Send out[.._n] in-band with init.transaction_id(), and each request that follows too.
//! let (mut init, _n) = Init::begin(&mut out);
//! assert_eq!(init.transaction_id(), storvsc::INIT_TRANSACTION_ID);
//! let mut answer = |init: &mut Init, p: &[u8], out: &mut [u8; PACKET_MAX]| {
//!     init.on_packet(init.transaction_id(), p, out).unwrap()
//! };
//! answer(&mut init, &completion(0, &[]), &mut out); // begun: propose 6.2
//! answer(&mut init, &completion(0xC000_0059, &[]), &mut out); // 6.2 refused: 6.0
//! answer(&mut init, &completion(0, &[]), &mut out); // 6.0 accepted: properties
//! let props = completion(0, &[(16, &[0, 0]), (24, &0x40000u32.to_le_bytes())]);
//! answer(&mut init, &props, &mut out); // 256 KiB per request: end
//! let InitStep::Ready(negotiated) = answer(&mut init, &completion(0, &[]), &mut out)
//! else { panic!() };
//! assert_eq!(negotiated.version, storvsc::Version::WIN8_1);
//!
//! let mut requests: Requests = Requests::new(&negotiated, 32);
//! let pfns = [0x1234u64];
//! let buffer = DataBuffer { offset: 0, len: 512, pfns: &pfns };
//! let read = Command::read_16(0, 1, 512).unwrap();
//! let sent = requests.submit(Lun::default(), &read, Some(&buffer), &mut out).unwrap();
//! assert!(sent.gpa_direct); // send out[..sent.len] as GPA-direct with buffer's range
//! // The host's completion: SRB length 52, SRB status SUCCESS, 512 bytes moved.
//! let done = completion(0, &[(12, &[52, 0, 1, 0]), (24, &512u32.to_le_bytes())]);
//! let Incoming::Done(d) = requests.on_packet(sent.transaction_id, &done).unwrap() else {
//!     panic!()
//! };
//! assert_eq!(d.result.unwrap().transferred, 512);
//! ```
//!
//! Not done here: Fibre Channel HBA data (`FC_HBA_DATA`, synthetic FC only), bus, adapter and LUN
//! resets, tagged queueing (requests go untagged), and Linux's quirk of turning failed INQUIRY
//! and MODE SENSE completions into successes.
#![no_std]
#![forbid(unsafe_code)]

pub mod blk;
mod buffer;
pub mod cdb;
mod init;
pub mod msg;
mod requests;
mod subchannel;

pub use buffer::{BufferError, DataBuffer, MAX_PFN, PAGE_SIZE};
pub use cdb::{Capacity, CapacityError, Command, CommandError, Sense};
pub use init::{INIT_TRANSACTION_ID, Init, InitError, InitStep, Negotiated};
pub use msg::{Direction, Lun, Version};
pub use requests::{
    DEFAULT_CAPACITY, Done, HostError, Incoming, IoError, RequestStats, Requests, SubmitError,
    Submitted, Transfer, queue_depth_for, ring_bytes_per_request,
};
pub use subchannel::{SubChannelError, SubChannels};

#[cfg(test)]
mod tests;
