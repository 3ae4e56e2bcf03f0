//! Test-client frames for an sDDF network client facing the simulated host's loopback switch
//! (`hv_host`'s network device with its default options): an ARP request for the switch's
//! address, ICMP echo requests and UDP datagrams to the switch's echo port, and the checks of
//! the switch's answers (addresses, lengths, IPv4, ICMP and UDP checksums, payloads).
//!
//! The simulation's test client (`sim_system::network`) and the image's `net_client` PD build
//! and check their frames here, so both speak the same frames. Nothing allocates: a builder
//! writes into the caller's buffer and returns the frame's length (0 when the buffer is shorter
//! than [`MAX_FRAME`] needs for that frame); a check reads the received bytes only.
//!
//! The addresses are the host switch's defaults (`hv_host::NetOptions::DEFAULT`); the
//! simulation's tests check that they agree.

/// The guest's MAC address (the host's synthetic adapter's default).
pub const GUEST_MAC: [u8; 6] = [0x00, 0x15, 0x5d, 0x00, 0x00, 0x01];
/// The switch's MAC address.
pub const SWITCH_MAC: [u8; 6] = [0x00, 0x15, 0x5d, 0x00, 0x00, 0xfe];
/// The switch's IPv4 address.
pub const SWITCH_IP: [u8; 4] = [10, 0, 0, 1];
/// The guest's address on the switch's network.
pub const GUEST_IP: [u8; 4] = [10, 0, 0, 2];
/// The UDP port the switch echoes.
pub const ECHO_PORT: u16 = 7;
/// The ICMP echo identifier the test client uses.
pub const ICMP_ID: u16 = 0x5e14;
/// The UDP source port the test client uses.
pub const UDP_SPORT: u16 = 40007;
/// The longest frame a builder here writes (the shortest buffer every builder accepts).
pub const MAX_FRAME: usize = 128;

/// Ethernet header bytes.
const ETH: usize = 14;
/// IPv4 header bytes (no options).
const IPV4: usize = 20;
/// The shortest Ethernet frame without its FCS.
const MIN_ETH: usize = 60;
/// ICMP echo payload bytes.
const ECHO_PAYLOAD: usize = 32;
/// The UDP payload's fixed text; the number follows in decimal.
const UDP_TEXT: &[u8] = b"seL4 netvsc echo ";
/// The longest UDP payload (the text and five digits).
const UDP_PAYLOAD_MAX: usize = UDP_TEXT.len() + 5;

/// The Internet checksum of `b` (RFC 1071), with `acc` already summed.
#[must_use]
pub fn inet_checksum(b: &[u8], mut acc: u32) -> u16 {
    for c in b.chunks(2) {
        acc += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    !(acc as u16)
}

/// Writes the Ethernet header from the guest to `dst`.
fn eth(out: &mut [u8], dst: [u8; 6], ethertype: u16) {
    out[..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&GUEST_MAC);
    out[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

/// An ARP request from the guest for the switch's address, into `out`; its length (60).
#[must_use]
pub fn arp_request(out: &mut [u8]) -> usize {
    let Some(f) = out.get_mut(..MIN_ETH) else {
        return 0;
    };
    f.fill(0);
    eth(f, [0xff; 6], 0x0806);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&GUEST_MAC);
    f[28..32].copy_from_slice(&GUEST_IP);
    f[38..42].copy_from_slice(&SWITCH_IP);
    MIN_ETH
}

/// Writes the Ethernet and IPv4 headers to the switch in front of an `l4_len`-byte payload of
/// protocol `proto` (already in place at `ETH + IPV4`).
fn ipv4(f: &mut [u8], proto: u8, l4_len: usize) {
    eth(f, SWITCH_MAC, 0x0800);
    let total = (IPV4 + l4_len) as u16;
    let ip = &mut f[ETH..ETH + IPV4];
    ip.fill(0);
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&GUEST_IP);
    ip[16..20].copy_from_slice(&SWITCH_IP);
    let c = inet_checksum(ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

fn echo_payload(seq: u16) -> [u8; ECHO_PAYLOAD] {
    core::array::from_fn(|i| (i as u8) ^ (seq as u8))
}

/// An ICMP echo request to the switch with sequence `seq`, into `out`; its length (74).
#[must_use]
pub fn echo_request(seq: u16, out: &mut [u8]) -> usize {
    let len = ETH + IPV4 + 8 + ECHO_PAYLOAD;
    let Some(f) = out.get_mut(..len) else {
        return 0;
    };
    let icmp = &mut f[ETH + IPV4..];
    icmp[..4].copy_from_slice(&[8, 0, 0, 0]);
    icmp[4..6].copy_from_slice(&ICMP_ID.to_be_bytes());
    icmp[6..8].copy_from_slice(&seq.to_be_bytes());
    icmp[8..].copy_from_slice(&echo_payload(seq));
    let c = inet_checksum(icmp, 0);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(f, 1, 8 + ECHO_PAYLOAD);
    len
}

/// The UDP payload naming `n` ("seL4 netvsc echo N") and its length.
fn udp_payload(n: u16) -> ([u8; UDP_PAYLOAD_MAX], usize) {
    let mut p = [0u8; UDP_PAYLOAD_MAX];
    p[..UDP_TEXT.len()].copy_from_slice(UDP_TEXT);
    let mut digits = [0u8; 5];
    let mut k = 0;
    let mut v = n;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for (i, d) in digits[..k].iter().rev().enumerate() {
        p[UDP_TEXT.len() + i] = *d;
    }
    (p, UDP_TEXT.len() + k)
}

/// The ones'-complement sum of the UDP pseudo-header.
fn pseudo_sum(src: [u8; 4], dst: [u8; 4], len: u16) -> u32 {
    let mut p = [0u8; 12];
    p[..4].copy_from_slice(&src);
    p[4..8].copy_from_slice(&dst);
    p[9] = 17;
    p[10..12].copy_from_slice(&len.to_be_bytes());
    u32::from(!inet_checksum(&p, 0))
}

/// A UDP datagram to the switch's echo port, its payload naming `n`, into `out`; its length
/// (at least 60: short frames are padded with zeros).
#[must_use]
pub fn udp_datagram(n: u16, out: &mut [u8]) -> usize {
    let (payload, plen) = udp_payload(n);
    let ulen = 8 + plen;
    let len = (ETH + IPV4 + ulen).max(MIN_ETH);
    let Some(f) = out.get_mut(..len) else {
        return 0;
    };
    f.fill(0);
    let udp = &mut f[ETH + IPV4..ETH + IPV4 + ulen];
    udp[..2].copy_from_slice(&UDP_SPORT.to_be_bytes());
    udp[2..4].copy_from_slice(&ECHO_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&(ulen as u16).to_be_bytes());
    udp[8..].copy_from_slice(&payload[..plen]);
    let c = match inet_checksum(udp, pseudo_sum(GUEST_IP, SWITCH_IP, ulen as u16)) {
        0 => 0xFFFF,
        c => c,
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    ipv4(f, 17, ulen);
    len
}

/// Whether `f` is an Ethernet frame from the switch to the guest of `ethertype`.
fn for_guest(f: &[u8], ethertype: u16) -> bool {
    f.len() >= ETH
        && f[..6] == GUEST_MAC
        && f[6..12] == SWITCH_MAC
        && f[12..14] == ethertype.to_be_bytes()
}

/// Whether `f` is the switch's ARP reply to the guest's request.
#[must_use]
pub fn is_arp_reply(f: &[u8]) -> bool {
    let Some(a) = f.get(14..42) else {
        return false;
    };
    for_guest(f, 0x0806)
        && a[..8] == [0, 1, 0x08, 0, 6, 4, 0, 2]
        && a[8..14] == SWITCH_MAC
        && a[14..18] == SWITCH_IP
        && a[18..24] == GUEST_MAC
        && a[24..28] == GUEST_IP
}

/// The IPv4 packet's payload if `f` is a valid IPv4 frame from the switch to the guest of
/// protocol `proto` (header checksum, addresses and total length checked).
fn ipv4_from_switch(f: &[u8], proto: u8) -> Option<&[u8]> {
    if !for_guest(f, 0x0800) {
        return None;
    }
    let ip = f.get(ETH..)?;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    let (hdr, l4) = ip.get(..total)?.split_at_checked(IPV4)?;
    let ok = hdr[0] == 0x45
        && hdr[9] == proto
        && inet_checksum(hdr, 0) == 0
        && hdr[12..16] == SWITCH_IP
        && hdr[16..20] == GUEST_IP;
    ok.then_some(l4)
}

/// Whether `f` is the echo reply to [`echo_request`]`(seq)` (checksums and payload checked).
#[must_use]
pub fn is_echo_reply(f: &[u8], seq: u16) -> bool {
    let Some(icmp) = ipv4_from_switch(f, 1) else {
        return false;
    };
    icmp.len() == 8 + ECHO_PAYLOAD
        && icmp[..2] == [0, 0]
        && inet_checksum(icmp, 0) == 0
        && icmp[4..6] == ICMP_ID.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
        && icmp[8..] == echo_payload(seq)
}

/// Whether `f` echoes [`udp_datagram`]`(n)` (checksums and payload checked).
#[must_use]
pub fn is_udp_echo(f: &[u8], n: u16) -> bool {
    let Some(udp) = ipv4_from_switch(f, 17) else {
        return false;
    };
    let (payload, plen) = udp_payload(n);
    let len = (8 + plen) as u16;
    udp.len() == usize::from(len)
        && udp[..2] == ECHO_PORT.to_be_bytes()
        && udp[2..4] == UDP_SPORT.to_be_bytes()
        && udp[4..6] == len.to_be_bytes()
        && inet_checksum(udp, pseudo_sum(SWITCH_IP, GUEST_IP, len)) == 0
        && udp[8..] == payload[..plen]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the switch does to a frame of the guest: swaps the Ethernet addresses, and for IPv4
    /// the IP addresses (the header checksum is unchanged by a swap).
    fn mirror(f: &mut [u8]) {
        let (dst, src) = ([f[0], f[1], f[2], f[3], f[4], f[5]], GUEST_MAC);
        f[..6].copy_from_slice(&src);
        f[6..12].copy_from_slice(&dst);
        let mut a = [0u8; 4];
        a.copy_from_slice(&f[26..30]);
        f.copy_within(30..34, 26);
        f[30..34].copy_from_slice(&a);
    }

    fn echo_reply(seq: u16) -> ([u8; MAX_FRAME], usize) {
        let mut f = [0u8; MAX_FRAME];
        let n = echo_request(seq, &mut f);
        mirror(&mut f[..n]);
        // Type 0 (reply): the checksum goes up by 8 << 8.
        f[34] = 0;
        let icmp = &mut f[34..n];
        icmp[2..4].fill(0);
        let c = inet_checksum(icmp, 0);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        (f, n)
    }

    fn udp_echo(x: u16) -> ([u8; MAX_FRAME], usize) {
        let mut f = [0u8; MAX_FRAME];
        let n = udp_datagram(x, &mut f);
        mirror(&mut f[..n]);
        let ulen = usize::from(u16::from_be_bytes([f[38], f[39]]));
        let udp = &mut f[34..34 + ulen];
        let (s, d) = ([udp[0], udp[1]], [udp[2], udp[3]]);
        udp[..2].copy_from_slice(&d);
        udp[2..4].copy_from_slice(&s);
        // The pseudo-header sum does not change with the addresses' order; the ports swap.
        (f, n)
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        let b = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(inet_checksum(&b, 0), !0xddf2);
        // An odd length pads with a zero byte.
        assert_eq!(inet_checksum(&[0xab], 0), !0xab00);
    }

    #[test]
    fn arp_request_asks_for_the_switch() {
        let mut f = [0xAAu8; MAX_FRAME];
        assert_eq!(arp_request(&mut f), 60);
        assert_eq!(f[..6], [0xff; 6]);
        assert_eq!(f[6..12], GUEST_MAC);
        assert_eq!(f[12..14], [0x08, 0x06]);
        assert_eq!(f[20..22], [0, 1], "request");
        assert_eq!(f[38..42], SWITCH_IP);
        assert!(f[42..60].iter().all(|b| *b == 0), "padding zeroed");
        assert!(!is_arp_reply(&f[..60]), "a request is not a reply");
        let mut reply = [0u8; 60];
        reply[..6].copy_from_slice(&GUEST_MAC);
        reply[6..12].copy_from_slice(&SWITCH_MAC);
        reply[12..14].copy_from_slice(&[0x08, 0x06]);
        reply[14..22].copy_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 2]);
        reply[22..28].copy_from_slice(&SWITCH_MAC);
        reply[28..32].copy_from_slice(&SWITCH_IP);
        reply[32..38].copy_from_slice(&GUEST_MAC);
        reply[38..42].copy_from_slice(&GUEST_IP);
        assert!(is_arp_reply(&reply));
        assert!(!is_arp_reply(&reply[..41]), "short");
        reply[31] = 9;
        assert!(!is_arp_reply(&reply), "another address");
    }

    #[test]
    fn echo_request_has_valid_checksums_and_its_reply_checks() {
        let mut f = [0u8; MAX_FRAME];
        let n = echo_request(7, &mut f);
        assert_eq!(n, 74);
        assert_eq!(inet_checksum(&f[14..34], 0), 0, "IPv4 header");
        assert_eq!(inet_checksum(&f[34..n], 0), 0, "ICMP");
        let (r, n) = echo_reply(7);
        assert!(is_echo_reply(&r[..n], 7));
        assert!(!is_echo_reply(&r[..n], 8), "another sequence");
        let mut bad = r;
        bad[n - 1] ^= 1;
        assert!(!is_echo_reply(&bad[..n], 7), "payload changed");
        assert!(!is_echo_reply(&r[..n - 1], 7), "truncated");
    }

    #[test]
    fn udp_datagram_carries_its_number_and_its_echo_checks() {
        for x in [0u16, 9, 10, 4242, u16::MAX] {
            let mut f = [0u8; MAX_FRAME];
            let n = udp_datagram(x, &mut f);
            assert!(n >= 60);
            let ulen = usize::from(u16::from_be_bytes([f[38], f[39]]));
            let text = format_args!("seL4 netvsc echo {x}").to_string();
            assert_eq!(&f[42..34 + ulen], text.as_bytes());
            assert_eq!(
                inet_checksum(
                    &f[34..34 + ulen],
                    pseudo_sum(GUEST_IP, SWITCH_IP, ulen as u16)
                ),
                0
            );
            let (r, rn) = udp_echo(x);
            assert!(is_udp_echo(&r[..rn], x), "{x}");
            assert!(!is_udp_echo(&r[..rn], x.wrapping_add(1)));
            let mut bad = r;
            bad[40] ^= 0x10;
            assert!(!is_udp_echo(&bad[..rn], x), "UDP checksum");
        }
    }

    #[test]
    fn short_buffers_get_nothing() {
        let mut f = [0u8; 59];
        assert_eq!(arp_request(&mut f), 0);
        assert_eq!(echo_request(1, &mut f), 0);
        assert_eq!(udp_datagram(1, &mut f), 0);
        assert!(!is_udp_echo(&[], 1) && !is_echo_reply(&[0; 14], 1));
    }

    extern crate std;
    use std::string::ToString;
}
