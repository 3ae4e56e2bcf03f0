//! Tests against a scripted host.

extern crate std;
use std::vec;
use std::vec::Vec;

use crate::nvsp::{self, GuestMessage, HostMessage, Version, msg_type as nt};
use crate::rndis::{self, Control, Request, msg_type as rt, oid};
use crate::vmpkt::{self, GpaRange, RawPacket, XferPages};
use crate::*;

const RECV_LEN: u32 = 64 * 1024;
const SEND_SECTION: u32 = 6144;
const SEND_SECTIONS: u32 = 4;
const MAC: [u8; 6] = [0x00, 0x15, 0x5d, 0x01, 0x02, 0x03];

fn cfg() -> Config {
    Config {
        recv_gpadl: 0x1001,
        recv_len: RECV_LEN,
        send_gpadl: 0x1002,
        send_len: SEND_SECTION * SEND_SECTIONS,
        mtu: 1500,
        packet_filter: Config::DEFAULT_FILTER,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Ready(DeviceInfo),
    Frame(Vec<u8>),
    LinkUp,
    LinkDown,
    TxDone(u64),
    Subchannels(u32),
    FilterSet(u32),
}

struct Rig {
    dev: Netvsc,
    recv: Vec<u8>,
    send: Vec<u8>,
    out: Outbox,
    events: Vec<Ev>,
    next_tid: u64,
    next_off: usize,
}

fn u32le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn nvsp_msg(words: &[u32]) -> Vec<u8> {
    let mut v: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    v.resize(v.len().max(28), 0);
    v
}

fn completion(tid: u64, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 256];
    let n = vmpkt::encode_completion(tid, payload, &mut b).unwrap();
    b.truncate(n);
    b
}

/// A transfer-page packet: set id, ranges (offset, len), payload SEND_RNDIS_PKT.
fn xfer(tid: u64, set_id: u16, ranges: &[(u32, u32)], count_override: Option<u32>) -> Vec<u8> {
    let ext = 8 + 8 * ranges.len();
    let payload = nvsp_msg(&[nt::SEND_RNDIS_PKT, 0, u32::MAX, 0]);
    let off = 16 + ext;
    let len = off + payload.len().next_multiple_of(8);
    let mut b = vec![0u8; len];
    b[0..2].copy_from_slice(&vmpkt::TYPE_DATA_XFER_PAGES.to_le_bytes());
    b[2..4].copy_from_slice(&((off / 8) as u16).to_le_bytes());
    b[4..6].copy_from_slice(&((len / 8) as u16).to_le_bytes());
    b[6..8].copy_from_slice(&1u16.to_le_bytes());
    b[8..16].copy_from_slice(&tid.to_le_bytes());
    b[16..18].copy_from_slice(&set_id.to_le_bytes());
    let count = count_override.unwrap_or(ranges.len() as u32);
    b[20..24].copy_from_slice(&count.to_le_bytes());
    for (i, (o, l)) in ranges.iter().enumerate() {
        b[24 + 8 * i..28 + 8 * i].copy_from_slice(&l.to_le_bytes());
        b[28 + 8 * i..32 + 8 * i].copy_from_slice(&o.to_le_bytes());
    }
    b[off..off + payload.len()].copy_from_slice(&payload);
    b
}

fn rndis_packet(frame: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 44];
    let len = 44 + frame.len() as u32;
    for (at, v) in [(0, rt::PACKET), (4, len), (8, 36), (12, frame.len() as u32)] {
        m[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    m.extend_from_slice(frame);
    m
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn query_c(req_id: u32, status: u32, info: &[u8]) -> Vec<u8> {
    let len = 24 + info.len() as u32;
    let mut m = words(&[rt::QUERY_C, len, req_id, status, info.len() as u32, 16]);
    m.extend_from_slice(info);
    m
}

impl Rig {
    fn new() -> Rig {
        Rig {
            dev: Netvsc::new(cfg()),
            recv: vec![0; RECV_LEN as usize],
            send: vec![0; (SEND_SECTION * SEND_SECTIONS) as usize],
            out: Outbox::new(),
            events: Vec::new(),
            next_tid: 100,
            next_off: 0,
        }
    }

    fn feed(&mut self, raw: &[u8]) -> Result<(), Error> {
        let mut scratch = [0u8; 2048];
        let events = &mut self.events;
        self.dev.on_packet(
            raw,
            &self.recv[..],
            &mut self.send[..],
            &mut scratch,
            &mut self.out,
            |e| {
                events.push(match e {
                    Event::Ready(i) => Ev::Ready(i),
                    Event::Frame(f) => Ev::Frame(f.to_vec()),
                    Event::LinkUp => Ev::LinkUp,
                    Event::LinkDown => Ev::LinkDown,
                    Event::TxDone(t) => Ev::TxDone(t),
                    Event::Subchannels(n) => Ev::Subchannels(n),
                    Event::FilterSet(s) => Ev::FilterSet(s),
                })
            },
        )
    }

    fn take_out(&mut self) -> Vec<Packet> {
        let v = self.out.packets().copied().collect();
        self.out.clear();
        v
    }

    /// Places RNDIS messages in the receive buffer and delivers them in one transfer-page
    /// packet; returns the feed result and the completion the guest queued.
    fn deliver(&mut self, msgs: &[Vec<u8>]) -> (Result<(), Error>, Packet) {
        let mut ranges = Vec::new();
        for m in msgs {
            let off = self.next_off;
            self.recv[off..off + m.len()].copy_from_slice(m);
            ranges.push((off as u32, m.len() as u32));
            self.next_off = (off + 1728) % (RECV_LEN as usize - 1728);
        }
        self.next_tid += 1;
        let tid = self.next_tid;
        let r = self.feed(&xfer(tid, nvsp::RECV_BUFFER_ID, &ranges, None));
        let mut comp = None;
        for p in self.take_out() {
            if p.kind == PacketKind::Completion {
                comp = Some(p);
            } else {
                self.out.push(p).unwrap();
            }
        }
        let comp = comp.unwrap();
        assert_eq!(comp.transaction_id, tid);
        (r, comp)
    }

    /// The RNDIS control request the guest put in a section, and that section's tid.
    fn control_request(p: &Packet, send: &[u8]) -> (Vec<u8>, u64) {
        let m = p.payload();
        assert_eq!(u32le(m, 0), nt::SEND_RNDIS_PKT);
        assert_eq!(u32le(m, 4), nvsp::CHANNEL_CONTROL);
        let (idx, size) = (u32le(m, 8), u32le(m, 12));
        let at = (idx * SEND_SECTION) as usize;
        (send[at..at + size as usize].to_vec(), p.transaction_id)
    }

    /// Serves the guest's pending control request with `answer` (given the request bytes).
    fn serve(&mut self, answer: impl Fn(&[u8]) -> Vec<u8>) -> Result<(), Error> {
        let pkts = self.take_out();
        assert_eq!(pkts.len(), 1, "{pkts:?}");
        let (req, tid) = Rig::control_request(&pkts[0], &self.send);
        self.feed(&completion(
            tid,
            &nvsp_msg(&[nt::SEND_RNDIS_PKT_COMPLETE, 1]),
        ))?;
        let (r, comp) = self.deliver(&[answer(&req)]);
        let status = if r.is_ok() {
            nvsp::status::SUCCESS
        } else {
            nvsp::status::FAIL
        };
        assert_eq!(
            comp.payload(),
            &words(&[nt::SEND_RNDIS_PKT_COMPLETE, status])[..]
        );
        r
    }

    fn nvsp_init(&mut self, refuse: usize) -> Version {
        self.dev.start(&mut self.out).unwrap();
        for i in 0..refuse {
            let p = self.take_out();
            assert_eq!(p.len(), 1);
            let v = Version::PROPOSALS[i].0;
            assert_eq!(p[0].payload()[..12], words(&[nt::INIT, v, v])[..]);
            self.feed(&completion(
                p[0].transaction_id,
                &nvsp_msg(&[nt::INIT_COMPLETE, v, 0, nvsp::status::FAIL]),
            ))
            .unwrap();
        }
        let p = self.take_out();
        let version = Version::PROPOSALS[refuse];
        self.feed(&completion(
            p[0].transaction_id,
            &nvsp_msg(&[nt::INIT_COMPLETE, version.0, 0, 1]),
        ))
        .unwrap();
        let p = self.take_out();
        let recv = p.last().unwrap();
        assert_eq!(
            recv.payload()[..10],
            [101, 0, 0, 0, 0x01, 0x10, 0, 0, 0xfe, 0xca]
        );
        assert!(recv.completion_requested);
        self.feed(&completion(
            recv.transaction_id,
            &nvsp_msg(&[nt::SEND_RECV_BUF_COMPLETE, 1, 1, 0, 1728, 30, 1728 * 30]),
        ))
        .unwrap();
        let p = self.take_out();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].payload()[..10], [104, 0, 0, 0, 0x02, 0x10, 0, 0, 0, 0]);
        self.feed(&completion(
            p[0].transaction_id,
            &nvsp_msg(&[nt::SEND_SEND_BUF_COMPLETE, 1, SEND_SECTION]),
        ))
        .unwrap();
        version
    }

    fn bring_up(&mut self, refuse: usize) -> Version {
        let v = self.nvsp_init(refuse);
        assert_eq!(self.dev.phase(), Phase::Rndis(RndisStep::Init));
        self.serve(|req| {
            assert_eq!(u32le(req, 0), rt::INIT);
            let mut m = words(&[
                rt::INIT_C,
                52,
                u32le(req, 8),
                0,
                1,
                0,
                1,
                0,
                8,
                0x4000,
                3,
                0,
                0,
            ]);
            m.truncate(52);
            m
        })
        .unwrap();
        self.serve(|req| {
            assert_eq!(
                (u32le(req, 0), u32le(req, 12)),
                (rt::QUERY, oid::P802_3_PERMANENT_ADDRESS)
            );
            query_c(u32le(req, 8), 0, &MAC)
        })
        .unwrap();
        self.serve(|req| {
            assert_eq!(u32le(req, 12), oid::GEN_MAXIMUM_FRAME_SIZE);
            query_c(u32le(req, 8), 0, &1400u32.to_le_bytes())
        })
        .unwrap();
        self.serve(|req| {
            assert_eq!(u32le(req, 12), oid::GEN_MEDIA_CONNECT_STATUS);
            query_c(u32le(req, 8), 0, &0u32.to_le_bytes())
        })
        .unwrap();
        self.serve(|req| {
            assert_eq!(
                (u32le(req, 0), u32le(req, 12)),
                (rt::SET, oid::GEN_CURRENT_PACKET_FILTER)
            );
            assert_eq!(u32le(req, 28), 0xB);
            words(&[rt::SET_C, 16, u32le(req, 8), 0])
        })
        .unwrap();
        assert_eq!(self.dev.phase(), Phase::Ready);
        v
    }
}

#[test]
fn nvsp_encodings_are_byte_exact() {
    let mut b = [0u8; 40];
    let cases: [(GuestMessage, &[u8]); 6] = [
        (
            GuestMessage::Init {
                version: Version::V61,
            },
            &[1, 0, 0, 0, 1, 0, 6, 0, 1, 0, 6, 0],
        ),
        (
            GuestMessage::NdisVersion {
                major: 6,
                minor: 30,
            },
            &[100, 0, 0, 0, 6, 0, 0, 0, 30, 0, 0, 0],
        ),
        (
            GuestMessage::RecvBuffer {
                gpadl: 0xabcd,
                id: 0xcafe,
            },
            &[101, 0, 0, 0, 0xcd, 0xab, 0, 0, 0xfe, 0xca],
        ),
        (
            GuestMessage::RndisPacket {
                channel: 0,
                section: 3,
                size: 1558,
            },
            &[107, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0x16, 0x06, 0, 0],
        ),
        (
            GuestMessage::SubchannelRequest { count: 3 },
            &[133, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0],
        ),
        (
            GuestMessage::NdisConfig {
                mtu: 1514,
                capabilities: nvsp::capability::IEEE8021Q,
            },
            &[125, 0, 0, 0, 0xea, 0x05, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0],
        ),
    ];
    for (m, want) in cases {
        assert_eq!(m.encode(&mut b), 40, "{m:?}");
        assert_eq!(&b[..want.len()], want, "{m:?}");
        assert!(b[want.len()..].iter().all(|&x| x == 0), "{m:?}");
    }
    assert_eq!(
        GuestMessage::RndisPacketComplete { status: 2 }.encode(&mut b),
        8
    );
    assert_eq!(&b[..8], &[108, 0, 0, 0, 2, 0, 0, 0]);
}

#[test]
fn nvsp_decode_checks_lengths() {
    let full = nvsp_msg(&[nt::SEND_RECV_BUF_COMPLETE, 1, 1, 0, 1728, 30, 51840]);
    assert!(matches!(
        HostMessage::decode(&full),
        Ok(HostMessage::RecvBufferComplete {
            num_sections: 1,
            ..
        })
    ));
    assert_eq!(
        HostMessage::decode(&full[..27]),
        Err(nvsp::NvspError::Truncated {
            msg_type: nt::SEND_RECV_BUF_COMPLETE,
            needed: 28,
            got: 27
        })
    );
    assert!(HostMessage::decode(&[2, 0, 0]).is_err());
    assert!(HostMessage::decode(&words(&[nt::INIT_COMPLETE, 0, 0])).is_err());
}

#[test]
fn rndis_encodings_are_byte_exact() {
    let mut b = [0u8; rndis::MAX_CONTROL_OUT];
    let n = Request::Init { req_id: 7 }.encode(&mut b).unwrap();
    assert_eq!(&b[..n], &words(&[2, 24, 7, 1, 0, 0x4000])[..]);
    let n = Request::Query {
        req_id: 8,
        oid: oid::GEN_MEDIA_CONNECT_STATUS,
    }
    .encode(&mut b)
    .unwrap();
    assert_eq!(&b[..n], &words(&[4, 28, 8, 0x0001_0114, 0, 20, 0])[..]);
    let n = Request::Set {
        req_id: 9,
        oid: oid::GEN_CURRENT_PACKET_FILTER,
        value: &[0xb, 0, 0, 0],
    }
    .encode(&mut b)
    .unwrap();
    assert_eq!(&b[..n], &words(&[5, 32, 9, 0x0001_010e, 4, 20, 0, 0xb])[..]);
    let n = Request::KeepAliveComplete { req_id: 5 }
        .encode(&mut b)
        .unwrap();
    assert_eq!(&b[..n], &words(&[0x8000_0008, 16, 5, 0])[..]);
    assert!(
        Request::Set {
            req_id: 1,
            oid: 1,
            value: &[0; 40]
        }
        .encode(&mut b)
        .is_none()
    );
    let mut h = [0u8; rndis::PACKET_HEADER_LEN];
    rndis::encode_packet_header(60, &mut h);
    assert_eq!(&h[..], &words(&[1, 104, 36, 60, 0, 0, 0, 0, 0, 0, 0])[..]);
}

#[test]
fn rndis_control_decode_checks_offsets() {
    let q = query_c(3, 0, &MAC);
    assert_eq!(
        Control::decode(&q),
        Ok(Control::QueryComplete {
            req_id: 3,
            status: 0,
            info: &MAC
        })
    );
    let mut bad = q.clone();
    bad[20..24].copy_from_slice(&20u32.to_le_bytes()); // info runs past the message
    assert!(matches!(
        Control::decode(&bad),
        Err(rndis::RndisError::OutOfMessage { .. })
    ));
    let mut inside = q.clone();
    inside[20..24].copy_from_slice(&8u32.to_le_bytes()); // info inside the fixed fields
    assert!(matches!(
        Control::decode(&inside),
        Err(rndis::RndisError::OutOfMessage { .. })
    ));
    let mut long = q;
    long[4..8].copy_from_slice(&100u32.to_le_bytes());
    assert!(matches!(
        Control::decode(&long),
        Err(rndis::RndisError::BadLength { .. })
    ));
}

#[test]
fn ppi_walk_validates_entries() {
    let mut info = words(&[16, rndis::ppi_type::IEEE_8021Q, 12, 0x0005]);
    info.extend(words(&[
        16,
        rndis::ppi_type::HASH_VALUE | 0x8000_0000,
        12,
        9,
    ]));
    let mut seen = Vec::new();
    rndis::ppi_walk(&info, |p| seen.push((p.ty, p.internal, p.data.to_vec()))).unwrap();
    assert_eq!(
        seen,
        vec![(6, false, vec![5, 0, 0, 0]), (8, true, vec![9, 0, 0, 0])]
    );
    let bad = words(&[40, 6, 12, 0]);
    assert_eq!(
        rndis::ppi_walk(&bad, |_| {}),
        Err(rndis::RndisError::BadPerPacketInfo { at: 0 })
    );
}

#[test]
fn raw_packets_build_and_parse() {
    let c = completion(0x55, &[108, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(
        &c[..16],
        &[11, 0, 2, 0, 3, 0, 0, 0, 0x55, 0, 0, 0, 0, 0, 0, 0]
    );
    let p = RawPacket::parse(&c).unwrap();
    assert_eq!(
        (p.packet_type, p.transaction_id, p.payload.len()),
        (11, 0x55, 8)
    );
    let mut b = [0u8; 128];
    let pfns = [0x1234, 0x1235];
    let n = vmpkt::encode_gpa_direct(
        9,
        &[GpaRange {
            byte_count: 5000,
            byte_offset: 100,
            pfns: &pfns,
        }],
        &[7; 4],
        &mut b,
    )
    .unwrap();
    assert_eq!(n, 16 + 8 + 24 + 8);
    assert_eq!(&b[..8], &[9, 0, 6, 0, 7, 0, 1, 0]);
    assert_eq!(
        &b[16..32],
        &[0, 0, 0, 0, 1, 0, 0, 0, 0x88, 0x13, 0, 0, 100, 0, 0, 0]
    );
    assert_eq!(
        &b[32..48],
        &[0x34, 0x12, 0, 0, 0, 0, 0, 0, 0x35, 0x12, 0, 0, 0, 0, 0, 0]
    );
    assert!(
        vmpkt::encode_gpa_direct(
            9,
            &[GpaRange {
                byte_count: 5000,
                byte_offset: 100,
                pfns: &pfns[..1]
            }],
            &[],
            &mut b
        )
        .is_err()
    );
    let mut bad = c.clone();
    bad[2] = 1; // offset8 below the descriptor
    assert!(matches!(
        RawPacket::parse(&bad),
        Err(vmpkt::PacketError::BadOffset { .. })
    ));
    assert!(matches!(
        RawPacket::parse(&c[..20]),
        Err(vmpkt::PacketError::Truncated { .. })
    ));
    let x = xfer(1, 0xcafe, &[(0, 10)], Some(5));
    let p = RawPacket::parse(&x).unwrap();
    assert!(matches!(
        XferPages::parse(p.ext),
        Err(vmpkt::PacketError::BadRangeCount { count: 5, room: 1 })
    ));
}

#[test]
fn init_walks_versions_newest_first_and_configures() {
    let mut rig = Rig::new();
    // 6.1 and 6 refused, 5 accepted.
    let v = rig.bring_up(2);
    assert_eq!(v, Version::V5);
    let info = rig.dev.info().unwrap();
    assert_eq!(info.mac, MAC);
    assert_eq!(info.mtu, 1400);
    assert!(info.link_up);
    assert_eq!(
        info.recv,
        RecvLayout {
            section_size: 1728,
            sections: 30
        }
    );
    assert_eq!(
        (info.send_section_size, info.send_sections),
        (SEND_SECTION, SEND_SECTIONS)
    );
    assert_eq!(rig.events, vec![Ev::Ready(info), Ev::LinkUp]);
    assert_eq!(rig.dev.sections_in_use(), 0);
}

#[test]
fn init_sends_ndis_config_and_version() {
    let mut rig = Rig::new();
    rig.dev.start(&mut rig.out).unwrap();
    let p = rig.take_out();
    rig.feed(&completion(
        p[0].transaction_id,
        &nvsp_msg(&[nt::INIT_COMPLETE, 0, 0, 1]),
    ))
    .unwrap();
    let p = rig.take_out();
    assert_eq!(p.len(), 3);
    assert_eq!(
        p[0].payload()[..8],
        words(&[nt::SEND_NDIS_CONFIG, 1514])[..]
    );
    assert!(!p[0].completion_requested);
    assert_eq!(
        p[1].payload()[..12],
        words(&[nt::SEND_NDIS_VERSION, 6, 30])[..]
    );
    assert_eq!(
        rig.dev.phase(),
        Phase::RecvBuffer {
            version: Version::V61
        }
    );
}

#[test]
fn every_version_refused_fails() {
    let mut rig = Rig::new();
    rig.dev.start(&mut rig.out).unwrap();
    let mut last = Ok(());
    for _ in 0..Version::PROPOSALS.len() {
        let p = rig.take_out();
        assert_eq!(p.len(), 1);
        last = rig.feed(&completion(
            p[0].transaction_id,
            &nvsp_msg(&[nt::INIT_COMPLETE, 0, 0, 2]),
        ));
    }
    assert_eq!(last, Err(Error::AllVersionsRefused));
    assert_eq!(rig.dev.phase(), Phase::Failed(Error::AllVersionsRefused));
    assert!(rig.out.is_empty());
}

#[test]
fn receive_sections_larger_than_the_buffer_are_refused() {
    let mut rig = Rig::new();
    rig.dev.start(&mut rig.out).unwrap();
    let p = rig.take_out();
    rig.feed(&completion(
        p[0].transaction_id,
        &nvsp_msg(&[nt::INIT_COMPLETE, 0, 0, 1]),
    ))
    .unwrap();
    let p = rig.take_out();
    let e = rig
        .feed(&completion(
            p[2].transaction_id,
            &nvsp_msg(&[nt::SEND_RECV_BUF_COMPLETE, 1, 1, 0, 1728, 1000, 0]),
        ))
        .unwrap_err();
    assert!(matches!(e, Error::BadRecvLayout(_)) && e.is_hostile());
}

#[test]
fn receives_several_frames_in_one_transfer() {
    let mut rig = Rig::new();
    rig.bring_up(0);
    rig.events.clear();
    let frames: Vec<Vec<u8>> = (0..3u8)
        .map(|i| vec![i; 60 + usize::from(i) * 100])
        .collect();
    let msgs: Vec<Vec<u8>> = frames.iter().map(|f| rndis_packet(f)).collect();
    let (r, comp) = rig.deliver(&msgs);
    r.unwrap();
    assert_eq!(comp.kind, PacketKind::Completion);
    assert_eq!(
        comp.payload(),
        &words(&[nt::SEND_RNDIS_PKT_COMPLETE, 1])[..]
    );
    let got: Vec<Ev> = frames.into_iter().map(Ev::Frame).collect();
    assert_eq!(rig.events, got);
}

fn ready_rig() -> Rig {
    let mut rig = Rig::new();
    rig.bring_up(0);
    rig.events.clear();
    rig
}

fn hostile_receive(mutate: impl Fn(&mut Vec<u8>)) -> (Error, Packet, Vec<Ev>) {
    let mut rig = ready_rig();
    let good = rndis_packet(&[0xaa; 64]);
    let mut bad = rndis_packet(&[0xbb; 64]);
    mutate(&mut bad);
    let (r, comp) = rig.deliver(&[good, bad]);
    (r.unwrap_err(), comp, rig.events)
}

#[test]
fn hostile_rndis_lengths_fail_the_range_only() {
    let fail = words(&[nt::SEND_RNDIS_PKT_COMPLETE, nvsp::status::FAIL]);
    // Message length beyond the range.
    let (e, comp, ev) = hostile_receive(|m| m[4..8].copy_from_slice(&200u32.to_le_bytes()));
    assert!(matches!(
        e,
        Error::Rndis(rndis::RndisError::BadLength { msg_len: 200, .. })
    ));
    assert!(e.is_hostile());
    assert_eq!(comp.payload(), &fail[..]);
    assert_eq!(ev, vec![Ev::Frame(vec![0xaa; 64])]);
    // Data offset inside the packet header.
    let (e, ..) = hostile_receive(|m| m[8..12].copy_from_slice(&20u32.to_le_bytes()));
    assert_eq!(
        e,
        Error::Rndis(rndis::RndisError::DataInHeader { offset: 20 })
    );
    // Data length beyond the message.
    let (e, ..) = hostile_receive(|m| m[12..16].copy_from_slice(&65u32.to_le_bytes()));
    assert_eq!(
        e,
        Error::Rndis(rndis::RndisError::OutOfMessage {
            offset: 36,
            len: 65
        })
    );
    // Per-packet info beyond the message.
    let (e, ..) = hostile_receive(|m| {
        m[28..32].copy_from_slice(&36u32.to_le_bytes());
        m[32..36].copy_from_slice(&100u32.to_le_bytes());
    });
    assert!(matches!(
        e,
        Error::Rndis(rndis::RndisError::OutOfMessage { .. })
    ));
}

#[test]
fn hostile_ranges_are_refused() {
    let mut rig = ready_rig();
    let m = rndis_packet(&[1; 64]);
    rig.recv[..m.len()].copy_from_slice(&m);
    let fail = words(&[nt::SEND_RNDIS_PKT_COMPLETE, nvsp::status::FAIL]);
    for (ranges, want) in [
        (
            vec![(0, m.len() as u32), (RECV_LEN - 8, 16)],
            Error::BadRange {
                offset: RECV_LEN - 8,
                len: 16,
            },
        ),
        (
            vec![(0, m.len() as u32), (u32::MAX, 16)],
            Error::BadRange {
                offset: u32::MAX,
                len: 16,
            },
        ),
        (
            vec![(0, 1729)],
            Error::BadRange {
                offset: 0,
                len: 1729,
            },
        ),
    ] {
        rig.events.clear();
        let e = rig.feed(&xfer(77, 0xcafe, &ranges, None)).unwrap_err();
        assert_eq!(e, want);
        let comp = rig.take_out().pop().unwrap();
        assert_eq!((comp.transaction_id, comp.payload()), (77, &fail[..]));
    }
    let e = rig
        .feed(&xfer(78, 0x1234, &[(0, m.len() as u32)], None))
        .unwrap_err();
    assert_eq!(e, Error::WrongTransferSet(0x1234));
    assert_eq!(rig.take_out().pop().unwrap().payload(), &fail[..]);
}

#[test]
fn oversize_control_message_is_hostile() {
    let mut rig = ready_rig();
    let mut m = query_c(1, 0, &[0; 300]);
    m.truncate(m.len());
    let (r, _) = rig.deliver(&[m]);
    assert_eq!(r, Err(Error::OversizeControl(324)));
}

#[test]
fn unknown_completions_are_hostile() {
    let mut rig = ready_rig();
    let ok = nvsp_msg(&[nt::SEND_RNDIS_PKT_COMPLETE, 1]);
    for tid in [
        0x4000_0000_0000_0001u64,
        0x4000_0000_0000_0400,
        0x2000_0000_0000_0003,
        0x8000_0000_0000_0002,
        12345,
    ] {
        let e = rig.feed(&completion(tid, &ok)).unwrap_err();
        assert_eq!(e, Error::UnknownCompletion(tid));
        assert!(e.is_hostile());
    }
    // A real send completes once; the second completion is unknown.
    let tid = rig
        .dev
        .send_frame(&[0x11; 100], &mut rig.send[..], &mut rig.out)
        .unwrap();
    rig.feed(&completion(tid, &ok)).unwrap();
    assert_eq!(
        rig.feed(&completion(tid, &ok)),
        Err(Error::UnknownCompletion(tid))
    );
    assert_eq!(rig.events, vec![Ev::TxDone(tid)]);
}

#[test]
fn unknown_and_mismatched_rndis_requests_are_hostile() {
    let mut rig = ready_rig();
    let (r, _) = rig.deliver(&[query_c(999, 0, &[0; 4])]);
    assert_eq!(r, Err(Error::UnknownRequest(999)));
    rig.dev
        .set_packet_filter(rndis::filter::PROMISCUOUS, &mut rig.send[..], &mut rig.out)
        .unwrap();
    let r = rig.serve(|req| query_c(u32le(req, 8), 0, &[0; 4]));
    assert!(matches!(r, Err(Error::RequestMismatch(_))));
    // The request stays pending: its real answer (request id 6, after the five of
    // configuration) still completes it.
    let (r, _) = rig.deliver(&[words(&[rt::SET_C, 16, 6, 0])]);
    r.unwrap();
    assert_eq!(rig.events, vec![Ev::FilterSet(0)]);
}

#[test]
fn packet_filter_round_trip_after_ready() {
    let mut rig = ready_rig();
    rig.dev
        .set_packet_filter(rndis::filter::PROMISCUOUS, &mut rig.send[..], &mut rig.out)
        .unwrap();
    rig.serve(|req| {
        assert_eq!(u32le(req, 28), rndis::filter::PROMISCUOUS);
        words(&[rt::SET_C, 16, u32le(req, 8), 0])
    })
    .unwrap();
    assert_eq!(rig.events, vec![Ev::FilterSet(0)]);
}

#[test]
fn transmit_copies_into_a_section() {
    let mut rig = ready_rig();
    let frame = [0x42u8; 100];
    let tid = rig
        .dev
        .send_frame(&frame, &mut rig.send[..], &mut rig.out)
        .unwrap();
    let p = rig.take_out();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].kind, p[0].transaction_id, p[0].completion_requested),
        (PacketKind::InBand, tid, true)
    );
    let m = p[0].payload();
    assert_eq!(m[..16], words(&[nt::SEND_RNDIS_PKT, 0, 0, 144])[..]);
    assert_eq!(
        rig.send[..44],
        words(&[1, 144, 36, 100, 0, 0, 0, 0, 0, 0, 0])[..]
    );
    assert_eq!(rig.send[44..144], frame[..]);
    assert_eq!(
        rig.dev
            .send_frame(&[0; 1515], &mut rig.send[..], &mut rig.out),
        Err(Error::FrameTooBig(1515))
    );
}

#[test]
fn sections_exhaust_and_are_reused() {
    let mut s = Sections::new(3);
    assert_eq!((s.alloc(), s.alloc(), s.alloc()), (Ok(0), Ok(1), Ok(2)));
    assert_eq!(s.alloc(), Err(SectionError::Exhausted));
    s.free(1).unwrap();
    assert_eq!(s.free(1), Err(SectionError::NotAllocated(1)));
    assert_eq!(s.alloc(), Ok(1));
    assert_eq!(s.clear(), 3);
    assert_eq!(Sections::new(100_000).count(), MAX_SECTIONS as u32);

    let mut rig = ready_rig();
    let mut tids = Vec::new();
    for _ in 0..SEND_SECTIONS {
        tids.push(
            rig.dev
                .send_frame(&[1; 60], &mut rig.send[..], &mut rig.out)
                .unwrap(),
        );
        rig.take_out();
    }
    assert_eq!(
        rig.dev
            .send_frame(&[1; 60], &mut rig.send[..], &mut rig.out),
        Err(Error::NoSection)
    );
    rig.feed(&completion(
        tids[2],
        &nvsp_msg(&[nt::SEND_RNDIS_PKT_COMPLETE, 1]),
    ))
    .unwrap();
    assert_eq!(
        rig.dev
            .send_frame(&[1; 60], &mut rig.send[..], &mut rig.out),
        Ok(tids[2])
    );
}

#[test]
fn frames_beyond_a_section_go_gpa_direct() {
    let mut rig = Rig::new();
    rig.dev = Netvsc::new(Config { mtu: 9000, ..cfg() });
    rig.bring_up(0);
    rig.events.clear();
    // The host said 1400; a smaller section makes the GPA path needed: use the whole MTU.
    let big = vec![0u8; 1414];
    assert!(
        rig.dev
            .send_frame(&big, &mut rig.send[..], &mut rig.out)
            .is_ok()
    );
    let g = rig.dev.send_frame_gpa(1414).unwrap();
    assert_eq!(g.packet.kind, PacketKind::GpaDirect);
    assert_eq!(
        g.packet.payload()[..16],
        words(&[nt::SEND_RNDIS_PKT, 0, u32::MAX, 0])[..]
    );
    assert_eq!(g.header[..16], words(&[1, 44 + 1414, 36, 1414])[..]);
    rig.feed(&completion(
        g.packet.transaction_id,
        &nvsp_msg(&[nt::SEND_RNDIS_PKT_COMPLETE, 1]),
    ))
    .unwrap();
    assert_eq!(rig.events, vec![Ev::TxDone(g.packet.transaction_id)]);
    for _ in 0..GPA_SLOTS {
        rig.dev.send_frame_gpa(100).unwrap();
    }
    assert_eq!(rig.dev.send_frame_gpa(100), Err(Error::NoGpaSlot));
}

#[test]
fn frame_larger_than_a_section_is_refused_by_send_frame() {
    let mut rig = Rig::new();
    rig.dev = Netvsc::new(Config { mtu: 9000, ..cfg() });
    rig.nvsp_init(0);
    // Serve configuration with a host maximum frame size of 9000.
    rig.serve(|req| {
        words(&[
            rt::INIT_C,
            52,
            u32le(req, 8),
            0,
            1,
            0,
            1,
            0,
            8,
            0x4000,
            3,
            0,
            0,
        ])
    })
    .unwrap();
    rig.serve(|req| query_c(u32le(req, 8), 0, &MAC)).unwrap();
    rig.serve(|req| query_c(u32le(req, 8), 0, &9000u32.to_le_bytes()))
        .unwrap();
    rig.serve(|req| query_c(u32le(req, 8), 0, &1u32.to_le_bytes()))
        .unwrap();
    rig.serve(|req| words(&[rt::SET_C, 16, u32le(req, 8), 0]))
        .unwrap();
    assert!(!rig.dev.link_up());
    let jumbo = vec![0u8; 9014];
    assert_eq!(
        rig.dev.send_frame(&jumbo, &mut rig.send[..], &mut rig.out),
        Err(Error::FrameTooBig(9014))
    );
    assert!(rig.dev.send_frame_gpa(9014).is_ok());
}

#[test]
fn link_follows_indications() {
    let mut rig = ready_rig();
    let ind = |s| words(&[rt::INDICATE_STATUS, 20, s, 0, 0]);
    rig.deliver(&[ind(rndis::status::MEDIA_DISCONNECT)])
        .0
        .unwrap();
    assert!(!rig.dev.link_up());
    rig.deliver(&[ind(rndis::status::MEDIA_CONNECT)]).0.unwrap();
    assert_eq!(rig.events, vec![Ev::LinkDown, Ev::LinkUp]);
}

#[test]
fn keepalive_is_answered() {
    let mut rig = ready_rig();
    rig.deliver(&[words(&[rt::KEEPALIVE, 12, 0x77])]).0.unwrap();
    let p = rig.take_out();
    let (req, tid) = Rig::control_request(&p[0], &rig.send);
    assert_eq!(req, words(&[rt::KEEPALIVE_C, 16, 0x77, 0]));
    rig.feed(&completion(
        tid,
        &nvsp_msg(&[nt::SEND_RNDIS_PKT_COMPLETE, 1]),
    ))
    .unwrap();
    assert!(rig.events.is_empty());
    assert_eq!(rig.dev.sections_in_use(), 0);
}

#[test]
fn rescind_drops_everything() {
    let mut rig = ready_rig();
    rig.dev
        .send_frame(&[1; 60], &mut rig.send[..], &mut rig.out)
        .unwrap();
    rig.dev.send_frame_gpa(60).unwrap();
    let mut ev = Vec::new();
    let report = rig.dev.rescind(|e| ev.push(e == Event::LinkDown));
    assert_eq!(ev, vec![true]);
    assert_eq!(
        report,
        RescindReport {
            sections: 1,
            gpa_sends: 1,
            requests: 0
        }
    );
    assert_eq!(rig.dev.sections_in_use(), 0);
    assert!(!rig.dev.link_up());
    assert_eq!(rig.dev.phase(), Phase::Rescinded);
    let ok = nvsp_msg(&[nt::SEND_RNDIS_PKT_COMPLETE, 1]);
    assert_eq!(
        rig.feed(&completion(0x4000_0000_0000_0000, &ok)),
        Err(Error::Rescinded)
    );
    assert_eq!(
        rig.dev
            .send_frame(&[1; 60], &mut rig.send[..], &mut rig.out),
        Err(Error::Rescinded)
    );
    assert_eq!(rig.dev.rescind(|_| {}), RescindReport::default());
}

#[test]
fn subchannel_bookkeeping() {
    let mut rig = ready_rig();
    rig.dev.request_subchannels(3, &mut rig.out).unwrap();
    assert_eq!(
        rig.dev.request_subchannels(3, &mut rig.out),
        Err(Error::NotReady)
    );
    let p = rig.take_out();
    assert_eq!(p[0].payload()[..12], words(&[nt::SUBCHANNEL, 1, 3])[..]);
    let tid = p[0].transaction_id;
    rig.feed(&completion(tid, &nvsp_msg(&[nt::SUBCHANNEL, 1, 2])))
        .unwrap();
    assert_eq!(
        (rig.dev.subchannels(), rig.events.clone()),
        (2, vec![Ev::Subchannels(2)])
    );
    assert_eq!(
        rig.feed(&completion(tid, &nvsp_msg(&[nt::SUBCHANNEL, 1, 2]))),
        Err(Error::UnknownCompletion(tid))
    );
    rig.dev.request_subchannels(1, &mut rig.out).unwrap();
    rig.take_out();
    let e = rig
        .feed(&completion(tid, &nvsp_msg(&[nt::SUBCHANNEL, 1, 4])))
        .unwrap_err();
    assert_eq!(
        e,
        Error::SubchannelCount {
            asked: 1,
            granted: 4
        }
    );

    let mut old = Rig::new();
    old.bring_up(3); // version 4
    assert_eq!(
        old.dev.request_subchannels(1, &mut old.out),
        Err(Error::NoSubchannels)
    );
}

#[test]
fn indirection_table_is_read_with_the_offset_quirk() {
    let mut m = nvsp_msg(&[nt::SEND_INDIRECTION_TABLE, 16, 12]);
    m.resize(40, 0);
    m.extend(words(&(0..16).collect::<Vec<u32>>()));
    let t = nvsp::indirection_table(&m, Version::V6).unwrap();
    assert_eq!(t[15], 15);
    // From 6.1 the offset is trusted: 12 points at the message fields, then table bytes.
    assert_eq!(nvsp::indirection_table(&m, Version::V61).unwrap()[0], 0);
    m[4] = 15;
    assert!(nvsp::indirection_table(&m, Version::V6).is_none());
}

#[path = "sddf_net_tests.rs"]
mod sddf_net_tests;
