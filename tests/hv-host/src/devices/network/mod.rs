//! The synthetic network adapter, host side (netvsp): NVSP over the channel's rings, RNDIS inside
//! it, and a loopback switch behind it.
//!
//! NVSP (every message starts with its u32 type): the guest sends INIT (two u32 versions, the
//! oldest and newest it accepts; guests today send the same version twice and walk down a list),
//! answered INIT_COMPLETE (negotiated version, maximum MDL chain length, status: 1 success, 2
//! failure) as a completion packet (type 0xB) with the request's transaction id. Then
//! SEND_NDIS_VERSION (major, minor) and, from NVSP 2, SEND_NDIS_CONFIG (MTU, reserved, a u64 of
//! capabilities), both unanswered; SEND_RECEIVE_BUFFER (GPADL id u32, buffer id u16) answered
//! SEND_RECEIVE_BUFFER_COMPLETE (status, section count 1, one section: offset 0, sub-allocation
//! size, sub-allocation count, end offset); SEND_SEND_BUFFER (GPADL id, id) answered
//! SEND_SEND_BUFFER_COMPLETE (status, section size). RNDIS messages travel in SEND_RNDIS_PACKET
//! (channel type: 0 data, 1 control; send-buffer section index, or 0xFFFFFFFF when the message is
//! in the GPA-direct ranges of a type 9 packet; bytes used in the section), each answered by a
//! completion packet carrying SEND_RNDIS_PACKET_COMPLETE (status).
//!
//! Host to guest, every RNDIS message (control answers, status indications, received frames) is
//! written into one free sub-allocation of the guest's receive buffer and announced by a
//! transfer-page packet (type 7: the buffer's id as transfer page set, one range) whose payload is
//! SEND_RNDIS_PACKET; the sub-allocation is the host's again only after the guest's completion
//! packet with that packet's transaction id.
//!
//! Modules: [`nvsp`] (the ring work and NVSP), [`rndis`] (RNDIS control), [`rx`] (receive
//! regions), [`switch`] (ARP, ICMP echo, UDP echo). Values the sources disagree on are in
//! [`nvsp`]'s documentation.

mod events;
pub mod nvsp;
pub mod rndis;
pub mod rx;
pub mod switch;
mod tx;

use vmbus_driver::ids::RelId;

use crate::fifo::Fifo;
use crate::host::{Host, HostError};
use crate::offers::ChannelState;

pub use events::{NetEvent, NetFault};
pub(crate) use nvsp::run;

/// NVSP 1 (Windows Server 2008).
pub const NVSP_V1: u32 = 0x0000_0002;
/// NVSP 2 (Windows Server 2008 R2).
pub const NVSP_V2: u32 = 0x0003_0002;
/// NVSP 4 (Windows Server 2012).
pub const NVSP_V4: u32 = 0x0004_0000;
/// NVSP 5 (Windows Server 2012 R2).
pub const NVSP_V5: u32 = 0x0005_0000;
/// NVSP 6 (Windows Server 2016).
pub const NVSP_V6: u32 = 0x0006_0000;
/// NVSP 6.1.
pub const NVSP_V61: u32 = 0x0006_0001;
/// The versions a Hyper-V host accepts, newest first.
pub const NVSP_VERSIONS: [u32; 6] = [NVSP_V61, NVSP_V6, NVSP_V5, NVSP_V4, NVSP_V2, NVSP_V1];

/// Receive-buffer sub-allocation size the host answers (Hyper-V's 1728).
pub const RECV_SUB_ALLOC: u32 = 1728;
/// Send-buffer section size the host answers (Hyper-V's 6144).
pub const SEND_SECTION: u32 = 6144;
/// Receive regions the host uses at most (the first ones of the buffer).
pub const MAX_RX: usize = 128;
/// RNDIS messages waiting for a free receive region.
pub const PENDING: usize = 8;
/// Largest RNDIS message the host sends (a PACKET_MSG header and a 1514-byte frame fit).
pub const PENDING_BYTES: usize = 1600;
/// Largest guest RNDIS message (one send section).
pub const MSG_BUF: usize = SEND_SECTION as usize;
/// Link speed reported, in 100 bit/s units (10 Gbit/s).
pub const LINK_SPEED: u32 = 100_000_000;
/// Largest frame payload reported (OID_GEN_MAXIMUM_FRAME_SIZE).
pub const MTU: u32 = 1500;

/// How the network device answers and what its switch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetOptions {
    /// The adapter's MAC address (OID_802_3_PERMANENT_ADDRESS and CURRENT_ADDRESS).
    pub mac: [u8; 6],
    /// The switch's MAC address (the source of its answers).
    pub switch_mac: [u8; 6],
    /// The switch's IPv4 address (ARP, ICMP echo and UDP echo are answered for it).
    pub host_ip: [u8; 4],
    /// UDP datagrams to this port are echoed.
    pub udp_echo_port: u16,
    /// Oldest NVSP version accepted.
    pub min_version: u32,
    /// Newest NVSP version accepted.
    pub max_version: u32,
}

impl NetOptions {
    /// MAC 00:15:5d:00:00:01 (Hyper-V's prefix), switch 00:15:5d:00:00:fe at 10.0.0.1, UDP echo
    /// on port 7, NVSP 1 to 6.1.
    pub const DEFAULT: Self = Self {
        mac: [0x00, 0x15, 0x5d, 0x00, 0x00, 0x01],
        switch_mac: [0x00, 0x15, 0x5d, 0x00, 0x00, 0xfe],
        host_ip: [10, 0, 0, 1],
        udp_echo_port: 7,
        min_version: NVSP_V1,
        max_version: NVSP_V61,
    };
}

/// Counters of the network device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames the guest sent (RNDIS packets handed to the switch).
    pub frames_switched: u64,
    /// ARP requests answered.
    pub arp_answered: u64,
    /// ICMP echo requests answered.
    pub icmp_answered: u64,
    /// UDP datagrams echoed.
    pub udp_answered: u64,
    /// Frames delivered into the receive buffer.
    pub frames_delivered: u64,
    /// RNDIS messages for the guest dropped (no region free and the queue full, or no buffer).
    pub rx_dropped: u64,
    /// Switch answers not delivered because the packet filter is 0.
    pub rx_filtered: u64,
    /// Completions the guest returned for receive regions.
    pub rx_completed: u64,
    /// Guest RNDIS messages answered with a completion.
    pub rndis_completions: u64,
}

/// Where the guest's receive buffer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buffer {
    pub gpadl: u32,
    pub id: u16,
    pub size: u32,
}

/// One RNDIS message waiting for a receive region.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    pub control: bool,
    pub len: u16,
    pub bytes: [u8; PENDING_BYTES],
}

/// The network device's state.
#[derive(Debug, Clone)]
pub struct NetState {
    pub(crate) relid: Option<RelId>,
    pub(crate) opts: NetOptions,
    pub(crate) version: Option<u32>,
    pub(crate) ndis: Option<(u32, u32)>,
    pub(crate) recv: Option<Buffer>,
    pub(crate) send: Option<Buffer>,
    pub(crate) rndis_ready: bool,
    pub(crate) filter: u32,
    pub(crate) link_up: bool,
    /// Transaction id of each receive region in use (0: free).
    pub(crate) rx: [u64; MAX_RX],
    pub(crate) next_tid: u64,
    pub(crate) pending: Fifo<Pending, PENDING>,
    pub(crate) stats: NetStats,
    pub(crate) buf: [u8; MSG_BUF],
}

impl NetState {
    pub(crate) const NEW: Self = Self {
        relid: None,
        opts: NetOptions::DEFAULT,
        version: None,
        ndis: None,
        recv: None,
        send: None,
        rndis_ready: false,
        filter: 0,
        link_up: true,
        rx: [0; MAX_RX],
        next_tid: 1,
        pending: Fifo::new(Pending {
            control: false,
            len: 0,
            bytes: [0; PENDING_BYTES],
        }),
        stats: NetStats {
            frames_switched: 0,
            arp_answered: 0,
            icmp_answered: 0,
            udp_answered: 0,
            frames_delivered: 0,
            rx_dropped: 0,
            rx_filtered: 0,
            rx_completed: 0,
            rndis_completions: 0,
        },
        buf: [0; MSG_BUF],
    };

    /// A fresh open: the protocol starts again; the link state (the host's cable) stays.
    pub(crate) fn open(&mut self, relid: RelId, opts: NetOptions) {
        let link_up = self.link_up;
        let stats = self.stats;
        *self = Self::NEW;
        self.relid = Some(relid);
        self.opts = opts;
        self.link_up = link_up;
        self.stats = stats;
    }

    /// The channel.
    pub fn relid(&self) -> Option<RelId> {
        self.relid
    }
    /// The NVSP version accepted.
    pub fn version(&self) -> Option<u32> {
        self.version
    }
    /// The NDIS version the guest sent.
    pub fn ndis_version(&self) -> Option<(u32, u32)> {
        self.ndis
    }
    /// The receive buffer's (GPADL id, bytes).
    pub fn receive_buffer(&self) -> Option<(u32, u32)> {
        self.recv.map(|b| (b.gpadl, b.size))
    }
    /// The send buffer's (GPADL id, bytes).
    pub fn send_buffer(&self) -> Option<(u32, u32)> {
        self.send.map(|b| (b.gpadl, b.size))
    }
    /// RNDIS initialized.
    pub fn rndis_ready(&self) -> bool {
        self.rndis_ready
    }
    /// OID_GEN_CURRENT_PACKET_FILTER as the guest set it.
    pub fn packet_filter(&self) -> u32 {
        self.filter
    }
    /// The link state.
    pub fn link_up(&self) -> bool {
        self.link_up
    }
    /// Receive regions the guest holds (sent and not completed).
    pub fn rx_outstanding(&self) -> usize {
        self.rx.iter().filter(|&&t| t != 0).count()
    }
    /// RNDIS messages waiting for a free receive region.
    pub fn rx_waiting(&self) -> usize {
        self.pending.len()
    }
    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }
    /// Frames the guest sent to the switch.
    pub fn frames_switched(&self) -> u64 {
        self.stats.frames_switched
    }
    /// ARP requests answered.
    pub fn arp_answered(&self) -> u64 {
        self.stats.arp_answered
    }
    /// ICMP echo requests answered.
    pub fn icmp_answered(&self) -> u64 {
        self.stats.icmp_answered
    }
    /// UDP datagrams echoed.
    pub fn udp_answered(&self) -> u64 {
        self.stats.udp_answered
    }
}

impl Host {
    /// The network device's state.
    pub fn net(&self) -> &NetState {
        &self.net
    }

    /// Plugs (`up`) or unplugs the adapter's cable: an RNDIS INDICATE_STATUS (media connect or
    /// disconnect) goes to the guest at the next poll. The state changes in any case; the
    /// indication needs RNDIS initialized (`NotReady` otherwise: the guest learns the state from
    /// the indication after its RNDIS INITIALIZE, or by OID_GEN_MEDIA_CONNECT_STATUS).
    pub fn net_link(&mut self, up: bool) -> Result<(), HostError> {
        self.net.link_up = up;
        let relid = self.net.relid.ok_or(HostError::NotReady)?;
        if !self.net.rndis_ready {
            return Err(HostError::NotReady);
        }
        match self.slot_mut(relid) {
            Some(c) if c.state == ChannelState::Open => c.ring.signalled = true,
            _ => return Err(HostError::NotOpen(relid)),
        }
        let mut ctx = crate::devices::service::Ctx {
            relid,
            trace: &mut self.trace,
            errors: &mut self.errors,
            counters: &mut self.counters,
            gpadls: &self.gpadls,
            hostile: self.hostile,
        };
        rndis::indicate_link(&mut self.net, &mut ctx);
        Ok(())
    }
}
