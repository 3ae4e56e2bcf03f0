//! The hypercall stand-in between the driver PD and the simulated host PD.
//!
//! On Hyper-V the driver posts messages and signals events with hypercalls and finds the host's
//! messages and event flags in the SynIC message page (SIMP) and event-flags page (SIEFP). In the
//! image the host is a PD, so:
//! - post message: the driver writes the payload to the input page and makes a protected call
//!   [`label::POST_MESSAGE`] with words `[connection id, message type, payload length]`;
//! - signal event: protected call [`label::SIGNAL_EVENT`] with `[connection id, flag number]`;
//! - end of message (the EOM MSR write): protected call [`label::END_OF_MESSAGE`];
//! - the reply's label is the 16-bit hypercall status (`HvStatus`);
//! - the host writes its messages into the message page (SINT2's slot at
//!   [`VMBUS_SLOT_OFFSET`](vmbus_driver::hv::synic::VMBUS_SLOT_OFFSET)) and sets event flags in
//!   the event-flags page (SINT2's 2048-bit bitmap at the same offset), then notifies the driver
//!   on the channel that stands for the SINT2 interrupt.
//!
//! Addresses are those of `build/qemu-e2e.xml` (the same in both PDs).

/// Protected-call labels of the stand-in.
pub mod label {
    /// HvCallPostMessage.
    pub const POST_MESSAGE: u64 = 1;
    /// HvCallSignalEvent.
    pub const SIGNAL_EVENT: u64 = 2;
    /// The EOM register write.
    pub const END_OF_MESSAGE: u64 = 3;
}

/// The SynIC message page (SIMP), in the driver and the host.
pub const SYNIC_MESSAGE_PAGE: usize = 0x2000_0000;
/// The SynIC event-flags page (SIEFP), in the driver and the host.
pub const SYNIC_EVENT_PAGE: usize = 0x2000_1000;
/// The hypercall input page (the payload of a posted message), in the driver and the host.
pub const HYPERCALL_INPUT_PAGE: usize = 0x2000_2000;
/// Where the host sees guest memory (the pool region).
pub const HOST_GUEST_MEMORY: usize = 0x8000_0000;
/// Pages of guest memory the host sees (the pool region: system.xml's 8192 pages).
pub const GUEST_MEMORY_PAGES: usize = 8192;

/// The driver's channel to the host (it calls the host on it; the host notifies it on it).
pub const DRIVER_HOST_CHANNEL: u8 = 0;
/// The host's channel to the driver.
pub const HOST_DRIVER_CHANNEL: u8 = 0;

/// The end-to-end scenario of `build/qemu-e2e.xml`: who is who, and what they exchange.
pub mod scenario {
    use vmbus_driver::guid::Guid;

    /// Class of the echo device client A opens (offered at boot, rescinded under traffic):
    /// e2e0ec40-0001-4000-8000-00000000000a.
    pub const ECHO_A_CLASS: Guid =
        Guid::from_fields(0xe2e0_ec40, 0x0001, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0x0a]);
    /// Class of the echo device client B opens (offered once A's channel is released):
    /// e2e0ec40-0001-4000-8000-00000000000b.
    pub const ECHO_B_CLASS: Guid =
        Guid::from_fields(0xe2e0_ec40, 0x0001, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0x0b]);
    /// Instance GUIDs of the two devices.
    pub const ECHO_A_INSTANCE: Guid =
        Guid::from_fields(0x1a57_a0c0, 0x0001, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0x0a]);
    /// Instance GUID of device B.
    pub const ECHO_B_INSTANCE: Guid =
        Guid::from_fields(0x1a57_a0c0, 0x0001, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0x0b]);

    /// PD indices (order of the description).
    pub const HOST_PD: u8 = 0;
    /// The driver.
    pub const DRIVER_PD: u8 = 1;
    /// Client A (opens device A, faults after the rescind).
    pub const CLIENT_A_PD: u8 = 2;
    /// Client B (opens device B on the recycled pages).
    pub const CLIENT_B_PD: u8 = 3;

    /// Each client's window (`window_vaddr`) and its size in pages.
    pub const WINDOW: usize = 0x5000_0000;
    /// Window pages (one channel slot).
    pub const WINDOW_PAGES: usize = 16;
    /// Each client's control page, in the client.
    pub const CLIENT_CONTROL: usize = 0x3000_0000;
    /// Client A's and B's control pages, in the driver.
    pub const DRIVER_CONTROL: [usize; 2] = [0x3000_0000, 0x3000_1000];
    /// The driver's mapping of its pool (its map of the pool region).
    pub const DRIVER_POOL: usize = 0x4000_0000;
    /// Ring sizes the clients open with (pages, header page included).
    pub const RING_PAGES: u16 = 4;

    /// High half of every payload word client A sends: the host looks for it in recycled pages.
    pub const SECRET_A: u64 = 0x5EC2_E7A0_0000_0000;
    /// High half of every payload word client B sends.
    pub const DATA_B: u64 = 0xB0B0_0000_0000_0000;
    /// Mask of the high half.
    pub const TAG_MASK: u64 = 0xFFFF_FFFF_0000_0000;
    /// Packets the host echoes on A's channel before it rescinds the channel.
    pub const RESCIND_AFTER: u64 = 8;
    /// Packets client B exchanges.
    pub const B_PACKETS: u64 = 4;
    /// Payload bytes per packet.
    pub const PAYLOAD: usize = 64;

    /// Root-task report codes (roottask's monitor): PASS, restart a PD, failures from 2 up.
    pub const REPORT_PASS: u64 = 0;
    /// Restart the PD named in word 0.
    pub const REPORT_RESUME: u64 = 1;
    /// First failure code.
    pub const REPORT_FAIL: u64 = 2;
}
