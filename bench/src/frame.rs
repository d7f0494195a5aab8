//! Ethernet/IPv4/UDP request frames for the AF_XDP generator, the check of
//! a reply, and the turnaround of a reply into the next request.
//!
//! A request goes from `client_ip:port` to the server; its payload is
//! [`crate::kernel_gen::fill_payload`] of the flow (the port's index) and a
//! sequence number, so every reply is checked byte for byte exactly like the
//! kernel-socket generator does. Requests carry full IPv4 and UDP checksums.
//! Replies are not required to carry a valid UDP checksum: a kernel server
//! on veth sends them with checksum offload, i.e. only the pseudo-header sum.
use crate::kernel_gen::{fill_payload, verify_payload, MIN_PAYLOAD};
use sluice_engine::wire::{ethernet, ip_proto, ipv4, udp, EthernetAddress, Ipv4Repr, UdpRepr};
use std::net::{Ipv4Addr, SocketAddrV4};

/// Bytes of the Ethernet, IPv4 (no options) and UDP headers.
pub const HEADERS_LEN: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN;

/// TTL of generated requests.
pub const REQUEST_TTL: u8 = 64;

/// Largest payload: a 1500-byte IPv4 packet.
pub const MAX_PAYLOAD: usize = 1500 - ipv4::HEADER_LEN - udp::HEADER_LEN;

/// Where requests go from and to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowAddrs {
    /// MAC of the generator's interface.
    pub client_mac: [u8; 6],
    /// MAC of the server's interface (the next hop on the veth).
    pub server_mac: [u8; 6],
    /// Source address of requests.
    pub client_ip: Ipv4Addr,
    /// The echo service.
    pub server: SocketAddrV4,
    /// First source port; flow `i` uses `base_port + i`.
    pub base_port: u16,
    /// Number of flows (source ports).
    pub flows: u16,
}

impl FlowAddrs {
    /// Source port of flow `flow`.
    pub fn port(&self, flow: u16) -> u16 {
        self.base_port.wrapping_add(flow)
    }

    /// Flow index of source port `port`, if it is one of ours.
    pub fn flow_of(&self, port: u16) -> Option<u16> {
        let i = port.checked_sub(self.base_port)?;
        (i < self.flows).then_some(i)
    }
}

/// Length of a frame carrying `payload_len` bytes of UDP payload.
pub fn frame_len(payload_len: usize) -> usize {
    HEADERS_LEN + payload_len
}

/// Writes request `seq` of flow `flow` into `buf` and returns its length,
/// or `None` when `buf` is too short or the payload size is out of range.
pub fn build_request(buf: &mut [u8], a: &FlowAddrs, flow: u16, seq: u64, payload_len: usize) -> Option<usize> {
    let len = frame_len(payload_len);
    if buf.len() < len || !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&payload_len) {
        return None;
    }
    let buf = &mut buf[..len];
    let mut eth = ethernet::Frame::new_unchecked(&mut *buf);
    eth.set_dst_addr(EthernetAddress(a.server_mac));
    eth.set_src_addr(EthernetAddress(a.client_mac));
    eth.set_ethertype(ethernet::ethertype::IPV4);
    let server_ip = *a.server.ip();
    let ip_repr = Ipv4Repr {
        src_addr: a.client_ip,
        dst_addr: server_ip,
        protocol: ip_proto::UDP,
        payload_len: udp::HEADER_LEN + payload_len,
        ttl: REQUEST_TTL,
    };
    let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
    ip_repr.emit(&mut ip);
    let l4 = &mut ip.payload_mut()[..];
    fill_payload(&mut l4[udp::HEADER_LEN..], flow, seq);
    let udp_repr = UdpRepr { src_port: a.port(flow), dst_port: a.server.port(), payload_len };
    udp_repr.emit(&mut udp::Datagram::new_unchecked(l4), a.client_ip, server_ip);
    Some(len)
}

/// Checks that `frame` is the server's reply to one of our requests with a
/// `payload_len`-byte payload that verifies byte for byte; returns the flow
/// and the sequence number it answers.
pub fn check_reply(frame: &[u8], a: &FlowAddrs, payload_len: usize) -> Option<(u16, u64)> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return None;
    }
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    if ip.header_len() != ipv4::HEADER_LEN
        || ip.protocol() != ip_proto::UDP
        || ip.is_fragment()
        || !ip.verify_checksum()
        || ip.src_addr() != *a.server.ip()
        || ip.dst_addr() != a.client_ip
    {
        return None;
    }
    let dgram = udp::Datagram::new_checked(ip.payload()).ok()?;
    if dgram.src_port() != a.server.port() || usize::from(dgram.len()) != udp::HEADER_LEN + payload_len {
        return None;
    }
    let flow = a.flow_of(dgram.dst_port())?;
    let seq = verify_payload(dgram.payload(), flow, payload_len)?;
    Some((flow, seq))
}

/// Turns a reply that passed [`check_reply`] into request `new_seq` of the
/// same flow, in place: Ethernet and IPv4 addresses and UDP ports swapped
/// back, TTL reset, a fresh payload, both checksums recomputed in full (the
/// reply's UDP checksum may be partial). Returns the frame length, or `None`
/// if the frame is not a well-formed IPv4/UDP frame of that size.
pub fn turnaround(frame: &mut [u8], flow: u16, new_seq: u64, payload_len: usize) -> Option<usize> {
    let len = frame_len(payload_len);
    if frame.len() < len {
        return None;
    }
    let frame = &mut frame[..len];
    let mut eth = ethernet::Frame::new_checked(&mut *frame).ok()?;
    eth.swap_addrs();
    let mut ip = ipv4::Packet::new_checked(eth.payload_mut()).ok()?;
    if ip.header_len() != ipv4::HEADER_LEN || usize::from(ip.total_len()) != len - ethernet::HEADER_LEN {
        return None;
    }
    ip.swap_addrs();
    ip.set_ttl(REQUEST_TTL);
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut dgram = udp::Datagram::new_checked(ip.payload_mut()).ok()?;
    if usize::from(dgram.len()) != udp::HEADER_LEN + payload_len {
        return None;
    }
    dgram.swap_ports();
    fill_payload(dgram.payload_mut(), flow, new_seq);
    dgram.fill_checksum(src, dst);
    Some(len)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> FlowAddrs {
        FlowAddrs {
            client_mac: [0x02, 0, 0, 0, 0, 0x01],
            server_mac: [0x02, 0, 0, 0, 0, 0x02],
            client_ip: Ipv4Addr::new(198, 18, 0, 1),
            server: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7),
            base_port: 40000,
            flows: 64,
        }
    }

    /// What an echo server sends back: addresses and ports swapped, as the
    /// kernel would build it (new IP header checksum, TTL 64, ident 0x1234;
    /// UDP checksum left as is, which stays valid under the swap).
    fn echo(req: &[u8]) -> Vec<u8> {
        let mut r = req.to_vec();
        let mut eth = ethernet::Frame::new_unchecked(&mut r[..]);
        eth.swap_addrs();
        let mut ip = ipv4::Packet::new_unchecked(eth.payload_mut());
        ip.swap_addrs();
        ip.set_ident(0x1234);
        ip.set_ttl(63);
        ip.fill_checksum();
        udp::Datagram::new_unchecked(ip.payload_mut()).swap_ports();
        r
    }

    fn verifies(frame: &[u8]) -> (bool, bool) {
        let eth = ethernet::Frame::new_checked(frame).unwrap();
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        let d = udp::Datagram::new_checked(ip.payload()).unwrap();
        (ip.verify_checksum(), d.checksum() != 0 && d.verify_checksum(ip.src_addr(), ip.dst_addr()))
    }

    #[test]
    fn request_has_valid_headers_and_checksums() {
        let a = addrs();
        let mut buf = [0u8; 2048];
        let len = build_request(&mut buf, &a, 5, 77, 64).unwrap();
        assert_eq!(len, 42 + 64);
        let f = &buf[..len];
        let eth = ethernet::Frame::new_checked(f).unwrap();
        assert_eq!(eth.dst_addr().0, a.server_mac);
        assert_eq!(eth.src_addr().0, a.client_mac);
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        let repr = Ipv4Repr::parse(&ip, true).expect("IPv4 checksum verifies");
        assert_eq!((repr.src_addr, repr.dst_addr, repr.protocol), (a.client_ip, *a.server.ip(), ip_proto::UDP));
        let d = udp::Datagram::new_checked(ip.payload()).unwrap();
        let u = UdpRepr::parse(&d, ip.src_addr(), ip.dst_addr(), true).expect("UDP checksum verifies");
        assert_eq!((u.src_port, u.dst_port, u.payload_len), (40005, 7, 64));
        assert_ne!(d.checksum(), 0, "a full checksum, not 'none'");
        assert_eq!(verify_payload(d.payload(), 5, 64), Some(77));
        assert_eq!(verifies(f), (true, true));
    }

    #[test]
    fn request_sizes_are_checked() {
        let a = addrs();
        let mut small = [0u8; 60];
        assert_eq!(build_request(&mut small, &a, 0, 1, 64), None, "buffer too short");
        assert_eq!(build_request(&mut small, &a, 0, 1, 7), None, "payload below the sequence number");
        assert_eq!(build_request(&mut [0u8; 60], &a, 0, 1, 8), Some(50));
        assert_eq!(build_request(&mut [0u8; 2048], &a, 0, 1, MAX_PAYLOAD + 1), None);
    }

    #[test]
    fn reply_is_accepted_and_turned_into_the_next_request() {
        let a = addrs();
        for payload in [8usize, 64, 1000] {
            let mut buf = vec![0u8; 2048];
            let len = build_request(&mut buf, &a, 9, 1 << 40 | 3, payload).unwrap();
            let mut reply = echo(&buf[..len]);
            assert_eq!(check_reply(&reply, &a, payload), Some((9, 1 << 40 | 3)));
            assert_eq!(check_reply(&buf[..len], &a, payload), None, "a request is not a reply");

            let n = turnaround(&mut reply, 9, 1 << 40 | 4, payload).unwrap();
            assert_eq!(n, len);
            let mut expected = vec![0u8; 2048];
            build_request(&mut expected, &a, 9, 1 << 40 | 4, payload).unwrap();
            let (got, want) = (&reply[..n], &expected[..n]);
            assert_eq!(verifies(got), (true, true), "both checksums verify after the turnaround");
            // Same frame as a freshly built request except the IP ident the
            // server chose (and so the IP checksum).
            assert_eq!(got[..18], want[..18]);
            assert_eq!(got[20..24], want[20..24]);
            assert_eq!(got[26..], want[26..]);
            assert_eq!(check_reply(&echo(got), &a, payload), Some((9, 1 << 40 | 4)));
        }
    }

    #[test]
    fn turnaround_fixes_a_partial_udp_checksum() {
        let a = addrs();
        let mut buf = [0u8; 2048];
        let len = build_request(&mut buf, &a, 1, 10, 64).unwrap();
        let mut reply = echo(&buf[..len]);
        // Checksum offload: only the pseudo-header sum is in the field.
        reply[40..42].copy_from_slice(&0x1234u16.to_be_bytes());
        assert!(check_reply(&reply, &a, 64).is_some(), "a partial UDP checksum is not a mismatch");
        let n = turnaround(&mut reply, 1, 11, 64).unwrap();
        assert_eq!(verifies(&reply[..n]), (true, true));
    }

    #[test]
    fn wrong_replies_are_refused() {
        let a = addrs();
        let mut buf = [0u8; 2048];
        let len = build_request(&mut buf, &a, 2, 100, 64).unwrap();
        let good = echo(&buf[..len]);
        assert!(check_reply(&good, &a, 64).is_some());
        assert_eq!(check_reply(&good, &a, 65), None, "other payload size");
        assert_eq!(check_reply(&good[..len - 1], &a, 64), None, "truncated");
        for at in [12, 23, 26, 30, 34, 36, 45, 60, len - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40;
            if at == 23 || at == 26 || at == 30 {
                // Keep the IP checksum right so only the changed field is judged.
                let mut eth = ethernet::Frame::new_unchecked(&mut bad[..]);
                ipv4::Packet::new_unchecked(eth.payload_mut()).fill_checksum();
            }
            assert_eq!(check_reply(&bad, &a, 64), None, "byte {at} changed");
        }
        let mut other_port = good.clone();
        udp::Datagram::new_unchecked(&mut other_port[34..]).set_dst_port(40000 + 64);
        assert_eq!(check_reply(&other_port, &a, 64), None, "port outside our flows");
        assert_eq!(turnaround(&mut [0u8; 20], 0, 0, 64), None);
    }

    #[test]
    fn macs_parse() {
        assert_eq!(parse_mac("02:00:0a:Ff:00:01"), Some([2, 0, 10, 255, 0, 1]));
        assert_eq!(parse_mac("02:00:0a:ff:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:02"), None);
        assert_eq!(parse_mac("2:00:0a:ff:00:01"), None);
        assert_eq!(parse_mac("zz:00:0a:ff:00:01"), None);
    }
}
