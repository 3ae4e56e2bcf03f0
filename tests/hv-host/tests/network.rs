//! The network device (netvsp), host side, driven by a raw guest: NVSP initialization bytes, the
//! receive and send buffers, RNDIS control over GPA-direct ranges and send sections, the loopback
//! switch (ARP, ICMP echo, UDP echo), receive-region recycling, the link, and the hostile modes.

mod common;

use common::svc::{RING_PAGES, Svc};
use common::{PAGE, u32le};
use hv_host::devices::network::rndis::{self, MEDIA_CONNECT, MEDIA_DISCONNECT};
use hv_host::devices::network::rx::OVERSIZE_EXTRA;
use hv_host::devices::network::{NVSP_V5, NVSP_V6, NVSP_V61};
use hv_host::hostile::NET_UNKNOWN_TID;
use hv_host::{DeviceSpec, GuestError, Hostile, NetFault, NetOptions};
use vmbus_driver::ids::GpadlId;
use vmbus_driver::msg::ChannelMessage;
use vmbus_driver::ring::{GpaRange, PacketType, RingError};

const GUEST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];
const GUEST_IP: [u8; 4] = [10, 0, 0, 2];
const HOST_IP: [u8; 4] = [10, 0, 0, 1];
const SEND_PAGES: usize = 2;
const MSG_PAGES: usize = 2;

struct Pkt {
    ty: PacketType,
    tid: u64,
    ext: Vec<u8>,
    payload: Vec<u8>,
}

struct Net {
    s: Svc,
    recv: usize,
    recv_pages: usize,
    send: usize,
    msg: usize,
    tid: u64,
}

impl Net {
    fn open(opts: NetOptions, recv_pages: usize) -> Net {
        let s = Svc::open(
            DeviceSpec::network_with(opts),
            recv_pages + SEND_PAGES + MSG_PAGES,
        );
        let recv = 2 * RING_PAGES;
        Net {
            s,
            recv,
            recv_pages,
            send: recv + recv_pages,
            msg: recv + recv_pages + SEND_PAGES,
            tid: 100,
        }
    }

    fn signal(&mut self) {
        self.s.g.host.signal_event(self.s.conn, 0);
        self.s.poll();
    }

    /// An in-band NVSP message asking for a completion.
    fn nvsp(&mut self, fields: &[u32]) -> u64 {
        self.tid += 1;
        let mut p = vec![0u8; 40];
        for (i, f) in fields.iter().enumerate() {
            p[4 * i..4 * i + 4].copy_from_slice(&f.to_le_bytes());
        }
        let mut b = self.s.tx.batch().unwrap();
        b.write_inband(self.tid, true, &p).unwrap();
        b.commit();
        self.signal();
        self.tid
    }

    fn packets(&mut self) -> Vec<Pkt> {
        let mut out = Vec::new();
        let mut b = match self.s.rx.batch() {
            Ok(b) => b,
            Err(RingError::Empty) => return out,
            Err(e) => panic!("{e}"),
        };
        while let Some(p) = b.next_packet().unwrap() {
            let mut ext = vec![0u8; p.ext_len()];
            p.read_ext(0, &mut ext).unwrap();
            let mut payload = vec![0u8; p.payload_len()];
            p.read_payload(0, &mut payload).unwrap();
            out.push(Pkt {
                ty: p.packet_type(),
                tid: p.transaction_id(),
                ext,
                payload,
            });
        }
        b.commit().unwrap();
        out
    }

    fn gpadl(&mut self, id: u32, first: usize, n: usize) {
        self.s.g.create_gpadl(self.s.relid, GpadlId(id), first, n);
        assert!(
            matches!(self.s.g.msgs()[..], [ChannelMessage::GpadlCreated(c)] if c.creation_status == 0)
        );
    }

    /// INIT 6.1, NDIS 6.30, receive buffer (GPADL 2, id 0xcafe), send buffer (GPADL 3).
    fn init(&mut self) {
        let t = self.nvsp(&[1, NVSP_V61, NVSP_V61]);
        let p = self.packets();
        assert_eq!((p[0].ty, p[0].tid), (PacketType::COMP, t));
        self.nvsp(&[100, 6, 30]);
        assert!(self.packets().is_empty(), "NDIS version is not answered");
        self.gpadl(2, self.recv, self.recv_pages);
        self.gpadl(3, self.send, SEND_PAGES);
        self.nvsp(&[101, 2, 0xcafe]);
        assert_eq!(u32le(&self.packets()[0].payload, 4), 1);
        self.nvsp(&[104, 3, 0]);
        assert_eq!(u32le(&self.packets()[0].payload, 4), 1);
    }

    /// One RNDIS message in GPA-direct ranges (one per page, as Linux sends them).
    fn rndis_gpa(&mut self, control: bool, m: &[u8]) -> u64 {
        for (i, c) in m.chunks(PAGE).enumerate() {
            self.s.g.mem.0.borrow_mut()[self.msg + i][..c.len()].copy_from_slice(c);
        }
        let pfns: Vec<[u64; 1]> = (0..m.len().div_ceil(PAGE))
            .map(|i| [self.s.g.mem.pfn(self.msg + i)])
            .collect();
        let ranges: Vec<GpaRange> = m
            .chunks(PAGE)
            .zip(&pfns)
            .map(|(c, p)| GpaRange {
                byte_count: c.len() as u32,
                byte_offset: 0,
                pfns: p,
            })
            .collect();
        self.tid += 1;
        let mut p = [0u8; 28];
        p[..4].copy_from_slice(&107u32.to_le_bytes());
        p[4..8].copy_from_slice(&u32::from(control).to_le_bytes());
        p[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut b = self.s.tx.batch().unwrap();
        b.write_gpa_direct(self.tid, true, &ranges, &p).unwrap();
        b.commit();
        self.signal();
        self.tid
    }

    /// The receive-buffer bytes a transfer-page packet names (one range).
    fn region(&self, p: &Pkt) -> Vec<u8> {
        assert_eq!(p.ty, PacketType::DATA_USING_XFER_PAGES);
        assert_eq!(u16::from_le_bytes([p.ext[0], p.ext[1]]), 0xcafe);
        assert_eq!(u32le(&p.ext, 4), 1, "one range");
        let (count, offset) = (u32le(&p.ext, 8) as usize, u32le(&p.ext, 12) as usize);
        let m = self.s.g.mem.0.borrow();
        (offset..offset + count)
            .map(|a| m[self.recv + a / PAGE][a % PAGE])
            .collect()
    }

    /// Returns a receive region.
    fn complete(&mut self, tid: u64) {
        let mut p = [0u8; 8];
        p[..4].copy_from_slice(&108u32.to_le_bytes());
        p[4..].copy_from_slice(&1u32.to_le_bytes());
        let mut b = self.s.tx.batch().unwrap();
        b.write_completion(tid, &p).unwrap();
        b.commit();
        self.signal();
    }

    /// Sends a control message; returns the RNDIS answers delivered (regions returned).
    fn control(&mut self, m: &[u8]) -> Vec<Vec<u8>> {
        let tid = self.rndis_gpa(true, m);
        let ps = self.packets();
        assert_eq!((ps[0].ty, ps[0].tid), (PacketType::COMP, tid));
        assert_eq!(&ps[0].payload[..8], &[108, 0, 0, 0, 1, 0, 0, 0]);
        let mut out = Vec::new();
        for p in &ps[1..] {
            assert_eq!(
                &p.payload[..12],
                &[107, 0, 0, 0, 1, 0, 0, 0, 255, 255, 255, 255]
            );
            out.push(self.region(p));
            self.complete(p.tid);
        }
        out
    }

    /// RNDIS INITIALIZE and the packet filter set: ready for frames.
    fn ready(&mut self) {
        self.init();
        let init = rmsg(2, &[1, 1, 0, 0x4000]);
        let a = self.control(&init);
        assert_eq!(u32le(&a[0], 0), 0x8000_0002);
        self.control(&rmsg(5, &[2, 0x0001_010E, 4, 20, 0, 0x9]));
        assert_eq!(self.s.g.host.net().packet_filter(), 9);
    }

    /// Sends a frame; returns the frames delivered back (regions completed).
    fn frame(&mut self, f: &[u8]) -> Vec<Vec<u8>> {
        self.rndis_gpa(false, &packet(f));
        let ps = self.packets();
        assert_eq!(ps[0].ty, PacketType::COMP);
        ps[1..]
            .iter()
            .map(|p| {
                assert_eq!(u32le(&p.payload, 4), 0, "data channel");
                let r = self.region(p);
                self.complete(p.tid);
                assert_eq!(u32le(&r, 0), 1);
                let (off, len) = (u32le(&r, 8) as usize, u32le(&r, 12) as usize);
                r[8 + off..8 + off + len].to_vec()
            })
            .collect()
    }
}

/// An RNDIS message of type `ty` with `fields` after type and length.
fn rmsg(ty: u32, fields: &[u32]) -> Vec<u8> {
    let mut m = ty.to_le_bytes().to_vec();
    m.extend_from_slice(&(8 + 4 * fields.len() as u32).to_le_bytes());
    fields
        .iter()
        .for_each(|f| m.extend_from_slice(&f.to_le_bytes()));
    m
}

/// An RNDIS PACKET carrying `frame`.
fn packet(frame: &[u8]) -> Vec<u8> {
    let mut m = rmsg(1, &[36, frame.len() as u32, 0, 0, 0, 0, 0, 0, 0]);
    m[4..8].copy_from_slice(&(44 + frame.len() as u32).to_le_bytes());
    m.extend_from_slice(frame);
    m
}

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0)))
        .sum();
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    !(s as u16)
}

fn eth(dst: [u8; 6], ty: u16) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&ty.to_be_bytes());
    f
}

fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mut f = eth([0xff; 6], 0x0806);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&GUEST_IP);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(NetOptions::DEFAULT.switch_mac, 0x0800);
    let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&(20 + l4.len() as u16).to_be_bytes());
    h.extend_from_slice(&GUEST_IP);
    h.extend_from_slice(&HOST_IP);
    let c = csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(l4);
    f
}

fn ping(seq: u16, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0xab, 0xcd];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let c = csum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(1, &icmp)
}

fn udp(dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = 40000u16.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&(8 + data.len() as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    ipv4(17, &u)
}

fn udp_ok(ip: &[u8]) -> bool {
    let udp = &ip[20..];
    let mut p = ip[12..20].to_vec();
    p.extend_from_slice(&[0, 17]);
    p.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    p.extend_from_slice(udp);
    csum(&p) == 0
}

fn net_error(n: &Net) -> Option<NetFault> {
    match n.s.g.host.errors().last() {
        Some(GuestError::Net(_, f)) => Some(f),
        _ => None,
    }
}

#[test]
fn host_size() {
    println!(
        "size_of::<Host>() = {}",
        std::mem::size_of::<hv_host::Host>()
    );
}

#[test]
fn nvsp_init_and_buffers_are_answered_byte_exact() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    let t = n.nvsp(&[1, NVSP_V61, NVSP_V61]);
    let p = n.packets();
    assert_eq!((p.len(), p[0].ty, p[0].tid), (1, PacketType::COMP, t));
    let mut want = vec![2, 0, 0, 0, 1, 0, 6, 0, 34, 0, 0, 0, 1, 0, 0, 0];
    want.resize(40, 0);
    assert_eq!(p[0].payload, want);
    n.gpadl(2, n.recv, 4);
    n.gpadl(3, n.send, SEND_PAGES);
    n.nvsp(&[101, 2, 0xcafe]);
    let r = &n.packets()[0].payload;
    // Status 1, one section: offset 0, 1728-byte sub-allocations, 16384 / 1728 = 9 of them.
    let words: Vec<u32> = (0..7).map(|i| u32le(r, 4 * i)).collect();
    assert_eq!(words, [102, 1, 1, 0, 1728, 9, 9 * 1728]);
    n.nvsp(&[104, 3, 0]);
    let r = &n.packets()[0].payload;
    assert_eq!((u32le(r, 0), u32le(r, 4), u32le(r, 8)), (105, 1, 6144));
    // A GPADL the host does not hold: refused, a guest error.
    n.nvsp(&[101, 77, 0xcafe]);
    assert_eq!(u32le(&n.packets()[0].payload, 4), 2);
    assert_eq!(net_error(&n), Some(NetFault::BadBuffer(77)));
    let trace = n.s.trace_since(0);
    assert_eq!(
        trace[0],
        "guest->host netvsp: NVSP INIT 0x60001..0x60001 accepted 6.1"
    );
    assert!(trace[1].contains("receive buffer gpadl 0x2 16384 bytes, 9 sub-allocations"));
}

#[test]
fn nvsp_versions_refused_and_chosen_from_a_range() {
    let opts = NetOptions {
        max_version: NVSP_V6,
        ..NetOptions::DEFAULT
    };
    let mut n = Net::open(opts, 1);
    n.nvsp(&[1, NVSP_V61, NVSP_V61]);
    let r = &n.packets()[0].payload;
    assert_eq!((u32le(r, 4), u32le(r, 12)), (u32::MAX, 2));
    assert_eq!(r.len(), 32, "28 bytes before 6.1, padded to 8");
    n.nvsp(&[1, NVSP_V5, NVSP_V61]);
    let r = &n.packets()[0].payload;
    assert_eq!((u32le(r, 4), u32le(r, 12)), (NVSP_V6, 1));
    assert_eq!(n.s.g.host.net().version(), Some(NVSP_V6));
}

#[test]
fn messages_before_init_are_refused() {
    let mut n = Net::open(NetOptions::DEFAULT, 1);
    n.nvsp(&[104, 3, 0]);
    assert!(n.packets().is_empty());
    assert_eq!(net_error(&n), Some(NetFault::NotInitialized(104)));
}

#[test]
fn rndis_init_indicates_the_link_and_query_returns_the_mac() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.init();
    let a = n.control(&rmsg(2, &[7, 1, 0, 0x4000]));
    assert_eq!(a.len(), 2, "INITIALIZE_CMPLT then INDICATE_STATUS");
    let words: Vec<u32> = (0..13).map(|i| u32le(&a[0], 4 * i)).collect();
    assert_eq!(
        words,
        [0x8000_0002, 52, 7, 0, 1, 0, 1, 0, 8, 0x4000, 3, 0, 0]
    );
    assert_eq!(a[1], rmsg(7, &[MEDIA_CONNECT, 0, 0]));
    let q = n.control(&rmsg(4, &[8, rndis::OID_PERMANENT_ADDRESS, 0, 20, 0]));
    let words: Vec<u32> = (0..6).map(|i| u32le(&q[0], 4 * i)).collect();
    assert_eq!(words, [0x8000_0004, 30, 8, 0, 6, 16]);
    assert_eq!(q[0][24..30], NetOptions::DEFAULT.mac);
    for (oid, v) in [
        (rndis::OID_MAXIMUM_FRAME_SIZE, 1500),
        (rndis::OID_MEDIA_CONNECT_STATUS, 0),
        (rndis::OID_LINK_SPEED, 100_000_000),
    ] {
        let q = n.control(&rmsg(4, &[9, oid, 0, 20, 0]));
        assert_eq!((u32le(&q[0], 12), u32le(&q[0], 24)), (0, v), "{oid:#x}");
    }
    let q = n.control(&rmsg(4, &[10, 0x0001_0203, 0, 20, 0]));
    assert_eq!(u32le(&q[0], 12), rndis::STATUS_NOT_SUPPORTED);
    let k = n.control(&rmsg(8, &[11]));
    assert_eq!(k[0], rmsg(0x8000_0008, &[11, 0]));
    let trace = n.s.trace_since(0);
    assert!(trace.contains(&"guest->host netvsp: RNDIS INITIALIZE #7 1.0".to_string()));
    assert!(trace.contains(&"host->guest netvsp: RNDIS INDICATE_STATUS 0x4001000b".to_string()));
    assert!(trace.contains(&"guest->host netvsp: RNDIS QUERY 0x01010101 status 0x0".to_string()));
    assert!(trace.contains(&"guest->host netvsp: RNDIS KEEPALIVE #11".to_string()));
}

#[test]
fn arp_request_for_the_host_is_answered() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.ready();
    let lines = n.s.g.host.trace().total();
    let a = n.frame(&arp_request(HOST_IP));
    assert_eq!(a.len(), 1);
    let f = &a[0];
    assert_eq!(f.len(), 60, "padded to the Ethernet minimum");
    assert_eq!(&f[..6], &GUEST_MAC);
    assert_eq!(f[6..12], NetOptions::DEFAULT.switch_mac);
    assert_eq!(&f[12..22], &[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
    assert_eq!(f[22..28], NetOptions::DEFAULT.switch_mac);
    assert_eq!(&f[28..32], &HOST_IP);
    assert_eq!((&f[32..38], &f[38..42]), (&GUEST_MAC[..], &GUEST_IP[..]));
    assert!(n.frame(&arp_request([10, 0, 0, 9])).is_empty(), "not ours");
    let net = n.s.g.host.net();
    assert_eq!((net.arp_answered(), net.frames_switched()), (1, 2));
    assert_eq!(
        n.s.g.host.trace().total(),
        lines,
        "no trace line per data frame"
    );
}

#[test]
fn ping_is_answered_with_correct_checksums() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.ready();
    let data: Vec<u8> = (0..56u8).collect();
    let a = n.frame(&ping(3, &data));
    assert_eq!(a.len(), 1);
    let ip = &a[0][14..];
    assert_eq!(csum(&ip[..20]), 0, "IPv4 header checksum");
    assert_eq!((&ip[12..16], &ip[16..20]), (&HOST_IP[..], &GUEST_IP[..]));
    let icmp = &ip[20..20 + 64];
    assert_eq!(csum(icmp), 0, "ICMP checksum");
    assert_eq!(&icmp[..2], &[0, 0], "echo reply");
    assert_eq!(&icmp[4..8], &[0xab, 0xcd, 0, 3]);
    assert_eq!(&icmp[8..], &data[..]);
    // A request with a wrong checksum is not answered.
    let mut bad = ping(4, &data);
    bad[40] ^= 1;
    assert!(n.frame(&bad).is_empty());
    assert_eq!(n.s.g.host.net().icmp_answered(), 1);
}

#[test]
fn udp_to_the_echo_port_is_echoed() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.ready();
    let a = n.frame(&udp(7, b"hello, host"));
    assert_eq!(a.len(), 1);
    let ip = &a[0][14..];
    assert_eq!(csum(&ip[..20]), 0);
    assert!(udp_ok(&ip[..20 + 19]), "UDP checksum");
    assert_eq!(&ip[20..24], &[0, 7, 0x9c, 0x40], "ports swapped");
    assert_eq!(&ip[28..39], b"hello, host");
    assert!(n.frame(&udp(9, b"x")).is_empty(), "not the echo port");
    assert_eq!(n.s.g.host.net().udp_answered(), 1);
}

#[test]
fn frames_in_a_send_section_are_switched() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.ready();
    let m = packet(&arp_request(HOST_IP));
    n.s.g.mem.0.borrow_mut()[n.send][..m.len()].copy_from_slice(&m);
    let t = n.nvsp(&[107, 0, 0, m.len() as u32]);
    let ps = n.packets();
    assert_eq!(
        (ps[0].ty, ps[0].tid, u32le(&ps[0].payload, 4)),
        (PacketType::COMP, t, 1)
    );
    assert_eq!(ps.len(), 2);
    assert_eq!(n.s.g.host.net().arp_answered(), 1);
    // Section 1 is past the 8 KiB send buffer.
    n.nvsp(&[107, 0, 1, 64]);
    assert_eq!(u32le(&n.packets()[0].payload, 4), 2);
    assert_eq!(
        net_error(&n),
        Some(NetFault::BadSection { index: 1, size: 64 })
    );
}

#[test]
fn receive_regions_are_reused_only_after_their_completion() {
    // One page: two 1728-byte regions.
    let mut n = Net::open(NetOptions::DEFAULT, 1);
    n.ready();
    for _ in 0..3 {
        n.rndis_gpa(false, &packet(&arp_request(HOST_IP)));
    }
    let ps: Vec<Pkt> = n
        .packets()
        .into_iter()
        .filter(|p| p.ty != PacketType::COMP)
        .collect();
    assert_eq!(ps.len(), 2);
    let net = n.s.g.host.net();
    assert_eq!((net.rx_outstanding(), net.rx_waiting()), (2, 1));
    let offsets: Vec<u32> = ps.iter().map(|p| u32le(&p.ext, 12)).collect();
    assert_eq!(offsets, [0, 1728]);
    n.complete(ps[1].tid);
    let third = n.packets();
    assert_eq!(third.len(), 1);
    assert_eq!(u32le(&third[0].ext, 12), 1728, "the returned region");
    assert_ne!(third[0].tid, ps[1].tid);
    n.complete(ps[0].tid);
    n.complete(third[0].tid);
    assert_eq!(n.s.g.host.net().rx_outstanding(), 0);
    // Returning it twice: an unknown id.
    n.complete(third[0].tid);
    assert_eq!(
        net_error(&n),
        Some(NetFault::UnknownCompletion(third[0].tid))
    );
}

#[test]
fn link_changes_are_indicated() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.ready();
    n.s.g.host.net_link(false).unwrap();
    n.s.poll();
    let ps = n.packets();
    assert_eq!(n.region(&ps[0]), rmsg(7, &[MEDIA_DISCONNECT, 0, 0]));
    n.complete(ps[0].tid);
    assert!(!n.s.g.host.net().link_up());
    let q = n.control(&rmsg(4, &[3, rndis::OID_MEDIA_CONNECT_STATUS, 0, 20, 0]));
    assert_eq!(u32le(&q[0], 24), 1);
    n.s.g.host.net_link(true).unwrap();
    n.s.poll();
    let ps = n.packets();
    assert_eq!(n.region(&ps[0]), rmsg(7, &[MEDIA_CONNECT, 0, 0]));
}

#[test]
fn guest_rndis_with_oversize_length_or_data_offset_is_refused() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.ready();
    let mut m = rmsg(8, &[1]);
    m[4..8].copy_from_slice(&200u32.to_le_bytes());
    n.rndis_gpa(true, &m);
    assert_eq!(u32le(&n.packets()[0].payload, 4), 5, "invalid RNDIS packet");
    let f = NetFault::RndisLength {
        ty: 8,
        len: 200,
        avail: 12,
    };
    assert_eq!(net_error(&n), Some(f));
    let mut p = packet(&arp_request(HOST_IP));
    p[8..12].copy_from_slice(&100u32.to_le_bytes());
    n.rndis_gpa(false, &p);
    assert_eq!(u32le(&n.packets()[0].payload, 4), 5);
    assert!(matches!(
        net_error(&n),
        Some(NetFault::RndisDataOffset { offset: 100, .. })
    ));
}

fn hostile_net(h: Hostile) -> Net {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.ready();
    n.s.g.host.set_hostile(h);
    n
}

#[test]
fn hostile_transfer_ranges_beyond_the_buffer() {
    let h = Hostile {
        net_xfer_beyond_buffer: true,
        ..Hostile::NONE
    };
    let mut n = hostile_net(h);
    n.rndis_gpa(false, &packet(&arp_request(HOST_IP)));
    let ps = n.packets();
    assert_eq!(
        u32le(&ps[1].ext, 12),
        4 * PAGE as u32,
        "starts at the buffer's end"
    );
}

#[test]
fn hostile_oversize_rndis_length_and_data_offset() {
    let h = Hostile {
        net_rndis_oversize_length: true,
        ..Hostile::NONE
    };
    let mut n = hostile_net(h);
    n.rndis_gpa(false, &packet(&arp_request(HOST_IP)));
    let ps = n.packets();
    let r = n.region(&ps[1]);
    assert_eq!(u32le(&r, 4), r.len() as u32 + OVERSIZE_EXTRA);
    n.complete(ps[1].tid);
    let h = Hostile {
        net_rndis_bad_data_offset: true,
        ..Hostile::NONE
    };
    n.s.g.host.set_hostile(h);
    n.rndis_gpa(false, &packet(&arp_request(HOST_IP)));
    let ps = n.packets();
    let r = n.region(&ps[1]);
    assert_eq!(u32le(&r, 8), r.len() as u32, "data offset past the message");
}

#[test]
fn hostile_completion_for_an_unknown_id() {
    let h = Hostile {
        net_unknown_completion: true,
        ..Hostile::NONE
    };
    let mut n = hostile_net(h);
    let t = n.rndis_gpa(true, &rmsg(8, &[5]));
    let ps = n.packets();
    assert_eq!((ps[0].ty, ps[0].tid), (PacketType::COMP, t));
    assert_eq!((ps[1].ty, ps[1].tid), (PacketType::COMP, NET_UNKNOWN_TID));
}

#[test]
fn hostile_receive_buffer_completion_with_bad_sections() {
    let mut n = Net::open(NetOptions::DEFAULT, 4);
    n.s.g.host.set_hostile(Hostile {
        net_bad_sections: true,
        ..Hostile::NONE
    });
    n.nvsp(&[1, NVSP_V61, NVSP_V61]);
    n.packets();
    n.gpadl(2, n.recv, 4);
    n.nvsp(&[101, 2, 0xcafe]);
    let r = &n.packets()[0].payload;
    let end = u32le(r, 24);
    assert_eq!(end, 5 * PAGE as u32, "one page past the 4-page buffer");
    assert!(u32le(r, 16) * u32le(r, 20) > 4 * PAGE as u32);
}
