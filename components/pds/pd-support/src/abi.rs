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
//! Which pages and which channel: each PD's generated configuration (`pd_runtime::config`: the
//! driver's `Driver::synic` and `Driver::host`, the host's `Host`), from the system description
//! and its VMBus companion. Only the protocol is here.

/// Protected-call labels of the stand-in.
pub mod label {
    /// HvCallPostMessage.
    pub const POST_MESSAGE: u64 = 1;
    /// HvCallSignalEvent.
    pub const SIGNAL_EVENT: u64 = 2;
    /// The EOM register write.
    pub const END_OF_MESSAGE: u64 = 3;
}

/// The end-to-end scenario of `build/qemu-e2e.xml`: the devices the host offers and the data
/// the PDs exchange. Who is who (PD indices, channels, windows, the class each client opens)
/// comes from each PD's generated configuration.
pub mod scenario {
    use vmbus_driver::guid::Guid;

    /// Class of the echo device the host offers at boot and rescinds under traffic (client A
    /// serves it: `build/qemu-e2e.vmbus.xml`): e2e0ec40-0001-4000-8000-00000000000a.
    pub const ECHO_A_CLASS: Guid =
        Guid::from_fields(0xe2e0_ec40, 0x0001, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0x0a]);
    /// Class of the echo device the host offers once A's channel is released (client B serves
    /// it): e2e0ec40-0001-4000-8000-00000000000b.
    pub const ECHO_B_CLASS: Guid =
        Guid::from_fields(0xe2e0_ec40, 0x0001, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0x0b]);
    /// Instance GUIDs of the two devices.
    pub const ECHO_A_INSTANCE: Guid =
        Guid::from_fields(0x1a57_a0c0, 0x0001, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0x0a]);
    /// Instance GUID of device B.
    pub const ECHO_B_INSTANCE: Guid =
        Guid::from_fields(0x1a57_a0c0, 0x0001, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0x0b]);

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

    /// The protected-call label with which client B tells the driver that its traffic on the
    /// recycled pages is done; the driver then asks the root task to restart the client that
    /// faulted (client A). Control requests use label 0.
    pub const B_DONE: u64 = 0xB0D0;
    /// Label of a Dynamic Memory client's protected call to the driver once its protocol
    /// negotiation is done (`build/qemu-hyperv.xml`).
    pub const DM_READY: u64 = 0xD3D0;

    /// Root-task report codes (roottask's monitor): PASS, restart a PD, failures from 2 up.
    pub const REPORT_PASS: u64 = 0;
    /// Restart the PD named in word 0.
    pub const REPORT_RESUME: u64 = 1;
    /// First failure code.
    pub const REPORT_FAIL: u64 = 2;
    /// The driver finished an orderly stop a permitted client asked for (the shutdown
    /// integration service answering the host): every channel is closed and the bus unloaded.
    /// Word 0: [`STOP_POWER_OFF`] or [`STOP_RESTART`]; word 1: the PD index of the client that
    /// asked; word 2: how the unload ended ([`UNLOAD_ANSWERED`], [`UNLOAD_TIMED_OUT`],
    /// [`UNLOAD_NOT_SENT`]). Not a failure code: the failure codes stay below it.
    pub const REPORT_STOP: u64 = 0x100;
    /// Word 0 of [`REPORT_STOP`]: power off.
    pub const STOP_POWER_OFF: u64 = 0;
    /// Word 0 of [`REPORT_STOP`]: restart.
    pub const STOP_RESTART: u64 = 1;
    /// Word 2 of [`REPORT_STOP`]: the host answered UNLOAD.
    pub const UNLOAD_ANSWERED: u64 = 0;
    /// Word 2 of [`REPORT_STOP`]: UNLOAD_RESPONSE did not come within the reply timeout.
    pub const UNLOAD_TIMED_OUT: u64 = 1;
    /// Word 2 of [`REPORT_STOP`]: no UNLOAD was sent (not connected, or the post failed).
    pub const UNLOAD_NOT_SENT: u64 = 2;
}

/// The time sync client's clock (`system.xml`'s `timesync` PD), read by a protected call on a
/// channel to it.
pub mod clock {
    /// Label of the read. The reply's label is 0 once the clock has a sample (1 before) and its
    /// words are: Unix time in ns, ns since the last sample (the reading's error grows with it),
    /// samples taken, and 1 when the cycle counter is calibrated (two samples seen).
    pub const NOW: u64 = 0xC10C;
}

/// The sDDF connections of `system.xml`: the network driver (`net`) with its client
/// (`net_client`), the block driver (`storage`) with its client (`blk_client`). The regions are
/// the description's memory regions (each end finds its mapping by name in its generated
/// configuration, `region::SharedRegion::of`); the queue capacities are what both ends give
/// their queues. A data region's buffer count follows from its size.
pub mod sddf {
    /// Network RX free queue (client → driver: empty buffers).
    pub const NET_RX_FREE: &str = "net_rx_free";
    /// Network RX active queue (driver → client: received frames).
    pub const NET_RX_ACTIVE: &str = "net_rx_active";
    /// Network TX free queue (driver → client: buffers sent).
    pub const NET_TX_FREE: &str = "net_tx_free";
    /// Network TX active queue (client → driver: frames to send).
    pub const NET_TX_ACTIVE: &str = "net_tx_active";
    /// The RX data region (the buffers of the RX queues).
    pub const NET_RX_DATA: &str = "net_rx_data";
    /// The TX data region (the buffers of the TX queues).
    pub const NET_TX_DATA: &str = "net_tx_data";
    /// Descriptors in each network queue.
    pub const NET_QUEUE_CAPACITY: u32 = 32;
    /// The block device's storage information (driver writes, client reads).
    pub const BLK_STORAGE_INFO: &str = "blk_storage_info";
    /// Block request queue (client → driver).
    pub const BLK_REQUEST: &str = "blk_request";
    /// Block response queue (driver → client).
    pub const BLK_RESPONSE: &str = "blk_response";
    /// The block data region the requests name by offset.
    pub const BLK_DATA: &str = "blk_data";
    /// Entries in each block queue.
    pub const BLK_QUEUE_CAPACITY: u32 = 32;
}
