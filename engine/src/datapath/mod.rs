//! What happens to one received frame: parse, check, find the flow's owner,
//! serve (UDP echo/discard, ICMP echo, ARP for VIPs), and say what to do with
//! the frame.
//!
//! No I/O and no clock: the worker passes the time in and acts on the
//! [`Verdict`]. Replies are built in place in the received frame, the
//! transport part by the service's module and the Ethernet and IPv4 headers
//! by [`reply::turn_around`] only, so an echo costs no copy of the payload.
//!
//! | module | serves |
//! |---|---|
//! | `services` | the service table (protocol, address, port) |
//! | `arp` | ARP requests for VIPs |
//! | `icmp` | ICMP echo |
//! | `udp` | UDP echo and discard |
//! | `tcp` | TCP segments checked and parsed for the core's TCP stack |
//! | `reply` | the Ethernet/IPv4 headers of every in-place reply |
mod arp;
mod icmp;
#[cfg(test)]
mod prop_tests;
pub mod reply;
mod services;
pub mod tcp;
pub mod udp;

pub use reply::REPLY_TTL;
pub use services::{IntHasher, ServiceEntry, ServiceTable};
pub use tcp::TcpInput;

use crate::ownership::{FlowKey, OwnerDirectory, Ownership};
use crate::stats::{CoreStats, Counter, DropReason};
use crate::wire::{ethernet, ip_proto, ipv4};
use std::cell::Cell;
use std::net::Ipv4Addr;

/// What to do with a frame after [`handle_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the frame, rewritten in place into a reply of `len` bytes;
    /// `tally` counts it as served once the tx ring takes it.
    Reply {
        /// Length of the reply frame.
        len: u32,
        /// The counter of the service that answered.
        tally: Counter,
    },
    /// The service consumed it (and counted it); free the frame.
    Consumed,
    /// Drop it for this reason; free the frame.
    Drop(DropReason),
    /// Another core owns the flow: hand the frame over.
    HandOff(u16),
    /// A checked TCP segment for the core's TCP stack, which takes the frame.
    Tcp(TcpInput),
}

/// What a transport handler decided; the IP part of a reply is built by
/// [`handle_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum L4Verdict {
    /// The transport header is the reply's now.
    Reply(Counter),
    /// Consumed.
    Consumed,
    /// Dropped.
    Drop(DropReason),
    /// Owned by another core.
    HandOff(u16),
    /// For the TCP stack.
    Tcp(TcpInput),
}

/// How the frame reached this core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// From this core's rx ring: ask the directory who owns the flow.
    Rx,
    /// Handed over by another core that found this core to be the owner.
    HandedOver,
}

/// The per-core context a frame is handled in.
pub struct Context<'a> {
    /// The services.
    pub services: &'a ServiceTable,
    /// Flow ownership.
    pub owners: &'a OwnerDirectory,
    /// This core's index.
    pub core: u16,
    /// The engine clock, in microseconds since the engine started.
    pub now_us: u64,
    /// This core's counters.
    pub stats: &'a CoreStats,
    /// The IP ID of the next reply (this core's counter).
    pub ip_id: &'a Cell<u16>,
}

impl Context<'_> {
    /// The engine clock in whole seconds (the owner directory's unit).
    #[inline]
    pub fn now_s(&self) -> u64 {
        self.now_us / 1_000_000
    }

    /// Who handles `flow`: `None` means this core.
    #[inline]
    fn owner_elsewhere(&self, flow: &FlowKey, arrival: Arrival) -> Option<u16> {
        if arrival == Arrival::HandedOver {
            self.owners.touch(flow, self.core, self.now_s());
            return None;
        }
        match self.owners.lookup(flow, self.core, self.now_s()) {
            Ownership::Mine { claimed } => {
                if claimed {
                    self.stats.add(Counter::FlowsClaimed, 1);
                }
                None
            }
            Ownership::Other(o) => Some(o),
        }
    }

    /// The IP ID for the next packet this core sends.
    #[inline]
    fn next_ip_id(&self) -> u16 {
        let id = self.ip_id.get();
        self.ip_id.set(id.wrapping_add(1));
        id
    }
}

/// Handles one Ethernet frame in place.
pub fn handle_frame(frame: &mut [u8], arrival: Arrival, cx: &Context<'_>) -> Verdict {
    let frame_len = frame.len() as u32;
    let Ok(mut eth) = ethernet::Frame::new_checked(&mut *frame) else {
        return Verdict::Drop(DropReason::EthTruncated);
    };
    if eth.ethertype() == ethernet::ethertype::ARP {
        return arp::handle(&mut eth, frame_len, cx);
    }
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return Verdict::Drop(DropReason::NotIpv4);
    }
    // A reply goes back to the source MAC from our own: neither may be a group address.
    if !eth.dst_addr().is_unicast() || !eth.src_addr().is_unicast() {
        return Verdict::Drop(DropReason::NotUnicast);
    }
    // On a shared segment (or a NIC in promiscuous mode) a frame for another
    // host's MAC is not ours to answer, even to one of our addresses.
    if eth.dst_addr() != cx.services.mac() {
        return Verdict::Drop(DropReason::NotForUs);
    }
    let Ok(mut ip) = ipv4::Packet::new_checked(eth.payload_mut()) else {
        return Verdict::Drop(DropReason::Ipv4Malformed);
    };
    if !ip.verify_checksum() {
        return Verdict::Drop(DropReason::Ipv4BadChecksum);
    }
    if ip.is_fragment() {
        return Verdict::Drop(DropReason::Ipv4Fragment);
    }
    if ip.header_len() > ipv4::HEADER_LEN {
        return Verdict::Drop(DropReason::Ipv4Options);
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if is_martian(src) {
        return Verdict::Drop(DropReason::MartianSource);
    }
    let l4 = match ip.protocol() {
        ip_proto::UDP => udp::handle(ip.payload_mut(), src, dst, arrival, cx),
        ip_proto::ICMP => icmp::handle(ip.payload_mut(), src, dst, arrival, cx),
        ip_proto::TCP => tcp::handle(ip.payload_mut(), src, dst, arrival, cx),
        _ => L4Verdict::Drop(DropReason::ProtoUnsupported),
    };
    match l4 {
        L4Verdict::Reply(tally) => Verdict::Reply { len: reply::turn_around(&mut eth, cx.next_ip_id()), tally },
        L4Verdict::Consumed => Verdict::Consumed,
        L4Verdict::Drop(r) => Verdict::Drop(r),
        L4Verdict::HandOff(o) => Verdict::HandOff(o),
        L4Verdict::Tcp(mut t) => {
            t.payload_off += (ethernet::HEADER_LEN + ipv4::HEADER_LEN) as u16;
            t.remote_mac = eth.src_addr().0;
            Verdict::Tcp(t)
        }
    }
}

/// Sources no reply may go to (RFC 1122 3.2.1.3, RFC 5735): "this network",
/// loopback, multicast, reserved and broadcast.
pub(crate) fn is_martian(a: Ipv4Addr) -> bool {
    let o = a.octets()[0];
    o == 0 || o == 127 || o >= 224
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::wire::checksum;
    use crate::wire::{arp, icmpv4, udp, EthernetAddress};
    use proptest::prelude::*;

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn table() -> ServiceTable {
        let mut t = table_without_mac();
        t.set_mac(EthernetAddress(SERVER_MAC));
        t
    }

    fn table_without_mac() -> ServiceTable {
        let cfg = Config::parse(
            r#"
[engine]
interface = "sluice0"
[[service]]
name = "echo"
proto = "udp"
listen = "198.18.0.2:7"
kind = "echo"
[[service]]
name = "discard"
proto = "udp"
listen = "198.18.0.2:9"
kind = "discard"
"#,
            "test",
        )
        .unwrap();
        ServiceTable::from_config(&cfg)
    }

    /// An Ethernet + IPv4 header (checksum filled) followed by `l4`.
    fn ip_frame(proto: u8, l4: &[u8], ttl: u8) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&SERVER_MAC);
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[0x08, 0x00]);
        let total = 20 + l4.len() as u16;
        f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0x12, 0x34, 0x40, 0, ttl, proto, 0, 0]);
        f.extend_from_slice(&CLIENT.octets());
        f.extend_from_slice(&SERVER.octets());
        let c = checksum::finish(checksum::sum(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(l4);
        f
    }

    fn udp_frame(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let len = 8 + payload.len() as u16;
        let mut l4 = Vec::new();
        l4.extend_from_slice(&sport.to_be_bytes());
        l4.extend_from_slice(&dport.to_be_bytes());
        l4.extend_from_slice(&len.to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
        l4.extend_from_slice(payload);
        let c = checksum::finish(checksum::pseudo_header_v4(CLIENT, SERVER, 17, len) + checksum::sum(&l4));
        l4[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
        ip_frame(17, &l4, 61)
    }

    fn icmp_echo_frame(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
        let mut l4 = vec![8, 0, 0, 0];
        l4.extend_from_slice(&ident.to_be_bytes());
        l4.extend_from_slice(&seq.to_be_bytes());
        l4.extend_from_slice(data);
        let c = checksum::finish(checksum::sum(&l4));
        l4[2..4].copy_from_slice(&c.to_be_bytes());
        ip_frame(1, &l4, 64)
    }

    struct Fixture {
        services: ServiceTable,
        owners: OwnerDirectory,
        stats: CoreStats,
        ip_id: Cell<u16>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                services: table(),
                owners: OwnerDirectory::new(1024, 30, 1),
                stats: CoreStats::default(),
                ip_id: Cell::new(0x4242),
            }
        }
        fn cx(&self, core: u16) -> Context<'_> {
            Context {
                services: &self.services,
                owners: &self.owners,
                core,
                now_us: 10_000_000,
                stats: &self.stats,
                ip_id: &self.ip_id,
            }
        }
    }

    #[test]
    fn udp_echo_reply_swaps_endpoints_and_keeps_valid_checksums() {
        let fx = Fixture::new();
        let f = udp_frame(40000, 7, b"hello sluice");
        let mut padded = f.clone();
        padded.resize(f.len().max(60) + 4, 0xee); // Ethernet padding must not be echoed
        let v = handle_frame(&mut padded, Arrival::Rx, &fx.cx(0));
        assert_eq!(v, Verdict::Reply { len: f.len() as u32, tally: Counter::UdpEchoed });
        let reply = &padded[..f.len()];
        let eth = ethernet::Frame::new_checked(reply).unwrap();
        assert_eq!(eth.dst_addr().0, CLIENT_MAC);
        assert_eq!(eth.src_addr().0, SERVER_MAC);
        let ip = ipv4::Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr(), ip.ttl()), (SERVER, CLIENT, REPLY_TTL));
        let u = udp::Datagram::new_checked(ip.payload()).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (7, 40000));
        assert!(u.verify_checksum(SERVER, CLIENT));
        assert_eq!(u.payload(), b"hello sluice");
        assert_eq!(fx.stats.counter(Counter::UdpEchoed), 0, "counted when the tx ring takes it, not here");
        // Length, checksum and payload are the request's, byte for byte; the ports are swapped.
        assert_eq!(reply[38..], f[38..]);
        assert_eq!((&reply[34..36], &reply[36..38]), (&f[36..38], &f[34..36]));
        assert_eq!(ip.ident(), 0x4242, "the core's own IP ID, not the request's 0x1234");
    }

    #[test]
    fn replies_take_fresh_ip_ids_and_never_echo_ecn() {
        let fx = Fixture::new();
        for (i, tos) in [0x00u8, 0x01, 0x02, 0x03, 0xb8, 0xbb].into_iter().enumerate() {
            let mut f = udp_frame(40000 + i as u16, 7, b"ecn");
            f[15] = tos;
            f[24..26].copy_from_slice(&[0, 0]);
            let c = checksum::finish(checksum::sum(&f[14..34]));
            f[24..26].copy_from_slice(&c.to_be_bytes());
            assert!(matches!(handle_frame(&mut f, Arrival::Rx, &fx.cx(0)), Verdict::Reply { .. }));
            let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
            assert_eq!(ip.dscp_ecn(), tos & !3, "DSCP kept, ECN (and any CE mark) cleared: {tos:#x}");
            assert_eq!(ip.ident(), 0x4242 + i as u16);
            assert!(ip.verify_checksum());
        }
    }

    #[test]
    fn echo_refuses_datagrams_from_ports_that_loop_or_amplify() {
        let fx = Fixture::new();
        for port in [0u16, 7, 13, 19, 37, 53, 123] {
            let mut f = udp_frame(port, 7, b"loop?");
            assert_eq!(handle_frame(&mut f, Arrival::Rx, &fx.cx(0)), Verdict::Drop(DropReason::UdpLoopPort), "{port}");
        }
        // Discard answers nothing, so any source is fine there.
        let mut f = udp_frame(19, 9, b"chargen to discard");
        assert_eq!(handle_frame(&mut f, Arrival::Rx, &fx.cx(0)), Verdict::Consumed);
    }

    #[test]
    fn frames_for_another_hosts_mac_are_not_answered() {
        let fx = Fixture::new();
        let mut f = udp_frame(40000, 7, b"not for us");
        f[..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]);
        assert_eq!(handle_frame(&mut f, Arrival::Rx, &fx.cx(0)), Verdict::Drop(DropReason::NotForUs));
        assert_eq!(fx.stats.counter(Counter::FlowsClaimed), 0);
    }

    #[test]
    fn discard_consumes_and_counts() {
        let fx = Fixture::new();
        let mut f = udp_frame(40000, 9, b"x");
        assert_eq!(handle_frame(&mut f, Arrival::Rx, &fx.cx(0)), Verdict::Consumed);
        assert_eq!(fx.stats.counter(Counter::UdpDiscarded), 1);
    }

    #[test]
    fn icmp_echo_request_gets_a_valid_reply() {
        let fx = Fixture::new();
        let mut f = icmp_echo_frame(0x77, 3, b"ping data");
        let v = handle_frame(&mut f, Arrival::Rx, &fx.cx(0));
        assert_eq!(v, Verdict::Reply { len: f.len() as u32, tally: Counter::IcmpEchoed });
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), icmpv4::msg_type::ECHO_REPLY);
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no(), icmp.data()), (0x77, 3, &b"ping data"[..]));
        assert_eq!(ip.dst_addr(), CLIENT);
        assert!(ip.verify_checksum());
    }

    #[test]
    fn every_bad_frame_has_its_drop_reason() {
        let fx = Fixture::new();
        let cx = fx.cx(0);
        let drop = |mut f: Vec<u8>| match handle_frame(&mut f, Arrival::Rx, &cx) {
            Verdict::Drop(r) => r,
            v => panic!("{v:?}"),
        };
        assert_eq!(drop(vec![0; 10]), DropReason::EthTruncated);
        let mut lldp = udp_frame(1, 7, b"");
        lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert_eq!(drop(lldp), DropReason::NotIpv4);
        let mut f = udp_frame(1, 7, b"abc");
        f[14] = 0x46; // IHL 6 with no options: checksum no longer matches either, but length first
        f.truncate(14 + 20);
        assert_eq!(drop(f), DropReason::Ipv4Malformed);
        let mut f = udp_frame(1, 7, b"abc");
        f[24] ^= 1;
        assert_eq!(drop(f), DropReason::Ipv4BadChecksum);
        let mut f = udp_frame(1, 7, b"abc");
        let last = f.len() - 1;
        f[last] ^= 0xff;
        assert_eq!(drop(f), DropReason::UdpBadChecksum);
        assert_eq!(drop(udp_frame(1, 8, b"abc")), DropReason::NoService);
        let mut f = udp_frame(1, 7, b"abc");
        f[38..40].copy_from_slice(&[0, 200]); // UDP length past the datagram
        assert_eq!(drop(f), DropReason::UdpMalformed);
        let mut frag = udp_frame(1, 7, b"abc");
        frag[20] |= 0x20; // more fragments
        let c = checksum::finish(checksum::sum(&{
            let mut h = frag[14..34].to_vec();
            h[10] = 0;
            h[11] = 0;
            h
        }));
        frag[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(drop(frag), DropReason::Ipv4Fragment);
        let mut bcast = udp_frame(1, 7, b"abc");
        bcast[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(drop(bcast), DropReason::NotUnicast);
        let mut mcast_src = udp_frame(1, 7, b"abc");
        mcast_src[6] |= 1;
        assert_eq!(drop(mcast_src), DropReason::NotUnicast);
        for martian in [[0, 0, 0, 0], [127, 0, 0, 1], [224, 0, 0, 5], [255, 255, 255, 255]] {
            let mut f = udp_frame(1, 7, b"abc");
            f[26..30].copy_from_slice(&martian);
            f[24..26].copy_from_slice(&[0, 0]);
            let c = checksum::finish(checksum::sum(&f[14..34]));
            f[24..26].copy_from_slice(&c.to_be_bytes());
            assert_eq!(drop(f), DropReason::MartianSource, "{martian:?}");
        }
        let mut opts = udp_frame(1, 7, b"abc");
        opts.splice(34..34, [1u8, 1, 1, 0]); // four bytes of NOP/EOL options
        opts[14] = 0x46;
        let total = u16::from_be_bytes([opts[16], opts[17]]) + 4;
        opts[16..18].copy_from_slice(&total.to_be_bytes());
        opts[24..26].copy_from_slice(&[0, 0]);
        let c = checksum::finish(checksum::sum(&opts[14..38]));
        opts[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(drop(opts), DropReason::Ipv4Options);
        let tcp = ip_frame(6, &[0u8; 20], 64);
        assert_eq!(drop(tcp), DropReason::TcpMalformed, "data offset 0");
        let gre = ip_frame(47, &[0u8; 20], 64);
        assert_eq!(drop(gre), DropReason::ProtoUnsupported);
        let mut unreach = icmp_echo_frame(1, 1, b"");
        unreach[34] = 3;
        assert_eq!(drop(unreach), DropReason::IcmpUnsupported);
        let mut badsum = icmp_echo_frame(1, 1, b"zz");
        badsum[36] ^= 1;
        assert_eq!(drop(badsum), DropReason::IcmpBadChecksum);
    }

    #[test]
    fn a_flow_owned_elsewhere_is_handed_off_and_served_there() {
        let fx = Fixture::new();
        let mut f = udp_frame(5555, 7, b"abc");
        assert!(matches!(handle_frame(&mut f.clone(), Arrival::Rx, &fx.cx(1)), Verdict::Reply { .. }));
        assert_eq!(handle_frame(&mut f.clone(), Arrival::Rx, &fx.cx(0)), Verdict::HandOff(1));
        // The owner serves a handed-over frame without asking again.
        assert!(matches!(handle_frame(&mut f, Arrival::HandedOver, &fx.cx(1)), Verdict::Reply { .. }));
        assert_eq!(fx.stats.counter(Counter::FlowsClaimed), 1);
    }

    fn arp_request(target: Ipv4Addr, op: u16) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, op as u8]);
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&CLIENT.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&target.octets());
        f.resize(60, 0); // Ethernet minimum, as on the wire
        f
    }

    #[test]
    fn arp_requests_for_answered_addresses_get_a_reply_in_place() {
        let mut fx = Fixture::new();
        let vip = Ipv4Addr::new(198, 18, 0, 3);
        fx.services.answer_arp(vec![vip], EthernetAddress(SERVER_MAC));
        let mut f = arp_request(vip, 1);
        assert_eq!(
            handle_frame(&mut f, Arrival::Rx, &fx.cx(0)),
            Verdict::Reply { len: 60, tally: Counter::ArpReplied }
        );
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst_addr().0, eth.src_addr().0), (CLIENT_MAC, SERVER_MAC));
        let a = arp::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(a.operation(), 2);
        assert_eq!((a.sender_hw_addr().0, a.sender_proto_addr()), (SERVER_MAC, vip));
        assert_eq!((a.target_hw_addr().0, a.target_proto_addr()), (CLIENT_MAC, CLIENT));
    }

    #[test]
    fn other_arp_is_left_alone() {
        let mut fx = Fixture::new();
        let vip = Ipv4Addr::new(198, 18, 0, 3);
        fx.services.answer_arp(vec![vip], EthernetAddress(SERVER_MAC));
        let cx = fx.cx(0);
        let verdict = |mut f: Vec<u8>| handle_frame(&mut f, Arrival::Rx, &cx);
        assert_eq!(verdict(arp_request(SERVER, 1)), Verdict::Drop(DropReason::ArpUnsupported), "kernel's address");
        assert_eq!(verdict(arp_request(vip, 2)), Verdict::Drop(DropReason::ArpUnsupported), "a reply");
        let mut spoof = arp_request(vip, 1);
        spoof[22] ^= 1; // sender MAC differs from the Ethernet source
        assert_eq!(verdict(spoof), Verdict::Drop(DropReason::ArpUnsupported));
        let mut short = arp_request(vip, 1);
        short.truncate(30);
        assert_eq!(verdict(short), Verdict::Drop(DropReason::ArpUnsupported));
        let mut mcast = arp_request(vip, 1);
        mcast[6] |= 1;
        assert_eq!(verdict(mcast), Verdict::Drop(DropReason::NotUnicast));
        let mut elsewhere = arp_request(vip, 1);
        elsewhere[..6].copy_from_slice(&[0x02, 9, 9, 9, 9, 9]); // unicast to another host
        assert_eq!(verdict(elsewhere), Verdict::Drop(DropReason::ArpUnsupported));
        let mut gratuitous = arp_request(vip, 1);
        gratuitous[28..32].copy_from_slice(&vip.octets()); // someone else claims the VIP
        assert_eq!(verdict(gratuitous), Verdict::Drop(DropReason::ArpUnsupported));
    }

    #[test]
    fn arp_probes_and_unicast_refreshes_are_answered() {
        let mut fx = Fixture::new();
        let vip = Ipv4Addr::new(198, 18, 0, 3);
        fx.services.answer_arp(vec![vip], EthernetAddress(SERVER_MAC));
        // RFC 5227 probe: sender address 0.0.0.0; the reply's target is 0.0.0.0.
        let mut probe = arp_request(vip, 1);
        probe[28..32].copy_from_slice(&[0; 4]);
        assert_eq!(
            handle_frame(&mut probe, Arrival::Rx, &fx.cx(0)),
            Verdict::Reply { len: 60, tally: Counter::ArpReplied }
        );
        let a = arp::Packet::new_checked(&probe[14..]).unwrap();
        assert_eq!(
            (a.operation(), a.target_proto_addr(), a.target_hw_addr().0),
            (2, Ipv4Addr::UNSPECIFIED, CLIENT_MAC)
        );
        // A unicast refresh sent to our MAC.
        let mut refresh = arp_request(vip, 1);
        refresh[..6].copy_from_slice(&SERVER_MAC);
        assert_eq!(
            handle_frame(&mut refresh, Arrival::Rx, &fx.cx(0)),
            Verdict::Reply { len: 60, tally: Counter::ArpReplied }
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let fx = Fixture::new();
            let mut b = bytes;
            let _ = handle_frame(&mut b, Arrival::Rx, &fx.cx(0));
        }

        #[test]
        fn mutated_echo_requests_never_panic_and_replies_verify(
            pos in 0usize..60, val in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..40)
        ) {
            let fx = Fixture::new();
            let mut f = udp_frame(40000, 7, &payload);
            let p = pos % f.len();
            f[p] = val;
            if let Verdict::Reply { len, .. } = handle_frame(&mut f, Arrival::Rx, &fx.cx(0)) {
                let ip = ipv4::Packet::new_checked(&f[14..len as usize]).unwrap();
                prop_assert!(ip.verify_checksum());
                let u = udp::Datagram::new_checked(ip.payload()).unwrap();
                prop_assert!(u.verify_checksum(ip.src_addr(), ip.dst_addr()));
            }
        }
    }
}
