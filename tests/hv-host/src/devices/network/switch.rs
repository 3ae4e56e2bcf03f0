//! The loopback switch behind the adapter: it answers ARP requests for the host address, ICMP
//! echo requests to it, and echoes UDP datagrams sent to it on the echo port. Everything else the
//! guest sends is counted and dropped. Answers come from the switch's MAC, padded to Ethernet's
//! 60-byte minimum; IPv4 header, ICMP and UDP checksums are computed (RFC 1071).

use super::NetOptions;

/// What an answer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// An ARP reply.
    Arp,
    /// An ICMP echo reply.
    Icmp,
    /// A UDP echo.
    Udp,
}

const ETH: usize = 14;
const MIN_FRAME: usize = 60;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV4: u16 = 0x0800;

fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

/// The one's-complement sum of `b` (odd length padded with a zero byte), folded, not inverted.
fn sum(b: &[u8], mut acc: u32) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc
}

/// The Internet checksum of `b` with `acc` already summed in.
pub fn checksum(b: &[u8], acc: u32) -> u16 {
    !(sum(b, acc) as u16)
}

/// Writes the switch's answer to `frame` into `out`; its length and kind, or `None` when the
/// frame gets no answer.
pub(crate) fn answer(opts: &NetOptions, frame: &[u8], out: &mut [u8]) -> Option<(usize, Answer)> {
    if frame.len() < ETH {
        return None;
    }
    let (n, kind) = match be16(frame, 12) {
        ETHERTYPE_ARP => (arp(opts, frame, out)?, Answer::Arp),
        ETHERTYPE_IPV4 => ipv4(opts, frame, out)?,
        _ => return None,
    };
    out[..6].copy_from_slice(&frame[6..12]);
    out[6..12].copy_from_slice(&opts.switch_mac);
    out[12..14].copy_from_slice(&frame[12..14]);
    let len = n.max(MIN_FRAME);
    out[n..len].fill(0);
    Some((len, kind))
}

/// An ARP request (Ethernet, IPv4) for the host address: the reply's length.
fn arp(opts: &NetOptions, f: &[u8], out: &mut [u8]) -> Option<usize> {
    let a = f.get(ETH..ETH + 28)?;
    let request = be16(a, 0) == 1 && be16(a, 2) == ETHERTYPE_IPV4 && a[4] == 6 && a[5] == 4;
    if !request || be16(a, 6) != 1 || a[24..28] != opts.host_ip || out.len() < ETH + 28 {
        return None;
    }
    let r = &mut out[ETH..ETH + 28];
    r[..6].copy_from_slice(&a[..6]);
    r[6..8].copy_from_slice(&2u16.to_be_bytes());
    r[8..14].copy_from_slice(&opts.switch_mac);
    r[14..18].copy_from_slice(&opts.host_ip);
    r[18..28].copy_from_slice(&a[8..18]);
    Some(ETH + 28)
}

/// An IPv4 packet to the host address: an ICMP echo request or a UDP datagram to the echo port.
fn ipv4(opts: &NetOptions, f: &[u8], out: &mut [u8]) -> Option<(usize, Answer)> {
    let ip = f.get(ETH..)?;
    let ihl = usize::from(ip.first()? & 0x0F) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl {
        return None;
    }
    let total = usize::from(be16(ip, 2));
    let fragmented = be16(ip, 6) & 0x3FFF != 0;
    if total < ihl || total > ip.len() || fragmented || checksum(&ip[..ihl], 0) != 0 {
        return None;
    }
    if ip[16..20] != opts.host_ip || out.len() < ETH + total {
        return None;
    }
    let r = &mut out[ETH..ETH + total];
    r.copy_from_slice(&ip[..total]);
    r[8] = 64;
    r[12..16].copy_from_slice(&ip[16..20]);
    r[16..20].copy_from_slice(&ip[12..16]);
    r[10..12].fill(0);
    let c = checksum(&r[..ihl], 0);
    r[10..12].copy_from_slice(&c.to_be_bytes());
    let (hdr, l4) = r.split_at_mut(ihl);
    let kind = match ip[9] {
        1 if l4.len() >= 8 && l4[0] == 8 && l4[1] == 0 && checksum(l4, 0) == 0 => {
            l4[0] = 0;
            l4[2..4].fill(0);
            let c = checksum(l4, 0);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
            Answer::Icmp
        }
        17 if l4.len() >= 8
            && be16(l4, 2) == opts.udp_echo_port
            && usize::from(be16(l4, 4)) == l4.len() =>
        {
            let (sport, dport) = ([l4[0], l4[1]], [l4[2], l4[3]]);
            l4[..2].copy_from_slice(&dport);
            l4[2..4].copy_from_slice(&sport);
            l4[6..8].fill(0);
            let c = udp_checksum(hdr, l4);
            l4[6..8].copy_from_slice(&c.to_be_bytes());
            Answer::Udp
        }
        _ => return None,
    };
    Some((ETH + total, kind))
}

/// The UDP checksum of `udp` (checksum field zero) under the IPv4 header `ip`'s pseudo-header;
/// 0 is sent as 0xFFFF.
pub fn udp_checksum(ip: &[u8], udp: &[u8]) -> u16 {
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&ip[12..20]);
    pseudo[9] = 17;
    // A UDP length fits u16 (it came from the length field).
    pseudo[10..12].copy_from_slice(&(udp.len() as u16).to_be_bytes());
    match checksum(udp, sum(&pseudo, 0)) {
        0 => 0xFFFF,
        c => c,
    }
}
