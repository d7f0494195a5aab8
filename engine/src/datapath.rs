//! What happens to one received frame: parse, check, find the flow's owner,
//! serve (UDP echo/discard, ICMP echo), and say what to do with the frame.
//!
//! No I/O and no clock: the worker passes the time in and acts on the
//! [`Verdict`]. Replies are built in place in the received frame (addresses
//! and ports swapped, TTL reset with an incremental checksum update), so an
//! echo costs no copy of the payload.
use crate::config::{Config, Proto, ServiceKind};
use crate::ownership::{FlowKey, OwnerDirectory, Ownership};
use crate::stats::{CoreStats, Counter, DropReason};
use crate::wire::ethernet::EthernetAddress;
use crate::wire::{arp, ethernet, icmpv4, ip_proto, ipv4, udp};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr};

/// TTL of the packets sluice sends.
pub const REPLY_TTL: u8 = 64;

/// What to do with a frame after [`handle_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the frame (rewritten in place) with this length.
    Send(u32),
    /// The service consumed it; free the frame.
    Consumed,
    /// Drop it for this reason; free the frame.
    Drop(DropReason),
    /// Another core owns the flow: hand the frame over.
    HandOff(u16),
}

/// How the frame reached this core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// From this core's rx ring: ask the directory who owns the flow.
    Rx,
    /// Handed over by another core that found this core to be the owner.
    HandedOver,
}

/// A multiply-rotate hasher for the small integer keys of the service table
/// (the keys come from the config, not from the wire).
#[derive(Default)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ *b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

fn service_key(proto: u8, addr: Ipv4Addr, port: u16) -> u64 {
    (u32::from(addr) as u64) << 32 | (port as u64) << 8 | proto as u64
}

/// A configured service as the datapath needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    /// Index in the configuration.
    pub id: u32,
    /// What it does.
    pub kind: ServiceKind,
}

/// The services by (protocol, address, port), and the addresses that answer
/// ICMP echo. Built once at start; read-only on the packet path.
#[derive(Clone, Debug, Default)]
pub struct ServiceTable {
    by_key: HashMap<u64, ServiceEntry, BuildHasherDefault<IntHasher>>,
    addrs: Vec<Ipv4Addr>,
    arp_addrs: Vec<Ipv4Addr>,
    mac: EthernetAddress,
}

impl ServiceTable {
    /// The table of a validated configuration.
    pub fn from_config(cfg: &Config) -> Self {
        let mut t = ServiceTable::default();
        for (id, s) in cfg.services.iter().enumerate() {
            if let IpAddr::V4(a) = s.listen.ip() {
                t.by_key.insert(
                    service_key(s.proto.number(), a, s.listen.port()),
                    ServiceEntry { id: id as u32, kind: s.kind },
                );
            }
        }
        t.addrs = cfg.service_addrs();
        t
    }

    /// The service on `addr:port` for `proto`.
    #[inline]
    pub fn lookup(&self, proto: Proto, addr: Ipv4Addr, port: u16) -> Option<ServiceEntry> {
        self.by_key.get(&service_key(proto.number(), addr, port)).copied()
    }

    /// Makes sluice answer ARP requests for `addrs` (service addresses no
    /// local interface has) with `mac`, the interface's address.
    pub fn answer_arp(&mut self, addrs: Vec<Ipv4Addr>, mac: EthernetAddress) {
        self.arp_addrs = addrs;
        self.mac = mac;
    }

    /// The addresses sluice answers ARP for.
    pub fn arp_addrs(&self) -> &[Ipv4Addr] {
        &self.arp_addrs
    }

    /// Whether `addr` is a service address (answers ICMP echo).
    #[inline]
    pub fn is_service_addr(&self, addr: Ipv4Addr) -> bool {
        self.addrs.contains(&addr)
    }
}

/// The per-core context a frame is handled in.
pub struct Context<'a> {
    /// The services.
    pub services: &'a ServiceTable,
    /// Flow ownership.
    pub owners: &'a OwnerDirectory,
    /// This core's index.
    pub core: u16,
    /// The engine clock in whole seconds.
    pub now_s: u64,
    /// This core's counters.
    pub stats: &'a CoreStats,
}

impl Context<'_> {
    /// Who handles `flow`: `None` means this core.
    #[inline]
    fn owner_elsewhere(&self, flow: &FlowKey, arrival: Arrival) -> Option<u16> {
        if arrival == Arrival::HandedOver {
            self.owners.touch(flow, self.core, self.now_s);
            return None;
        }
        match self.owners.lookup(flow, self.core, self.now_s) {
            Ownership::Mine { claimed } => {
                if claimed {
                    self.stats.add(Counter::FlowsClaimed, 1);
                }
                None
            }
            Ownership::Other(o) => Some(o),
        }
    }
}

/// Handles one Ethernet frame in place.
pub fn handle_frame(frame: &mut [u8], arrival: Arrival, cx: &Context<'_>) -> Verdict {
    let frame_len = frame.len() as u32;
    let Ok(mut eth) = ethernet::Frame::new_checked(&mut *frame) else {
        return Verdict::Drop(DropReason::EthTruncated);
    };
    if eth.ethertype() == ethernet::ethertype::ARP {
        return handle_arp(&mut eth, frame_len, cx);
    }
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return Verdict::Drop(DropReason::NotIpv4);
    }
    // A reply goes back to the source MAC from our own: neither may be a group address.
    if !eth.dst_addr().is_unicast() || !eth.src_addr().is_unicast() {
        return Verdict::Drop(DropReason::NotUnicast);
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
    let ip_len = ip.total_len();
    let verdict = match ip.protocol() {
        ip_proto::UDP => handle_udp(ip.payload_mut(), src, dst, arrival, cx),
        ip_proto::ICMP => handle_icmp(ip.payload_mut(), src, dst, arrival, cx),
        _ => Verdict::Drop(DropReason::ProtoUnsupported),
    };
    if let Verdict::Send(_) = verdict {
        ip.swap_addrs();
        ip.set_ttl_incremental(REPLY_TTL);
        eth.swap_addrs();
        return Verdict::Send(ethernet::HEADER_LEN as u32 + ip_len as u32);
    }
    verdict
}

/// Answers an ARP request for an address sluice answers for (RFC 826), in
/// place: the requester learns the interface's MAC for the service address.
/// Requests are broadcast, so this runs before the unicast check; the reply
/// is unicast to the requester. Stateless: no flow owner is involved.
///
/// As Linux does: only requests sent to the broadcast address or to our MAC
/// are answered (not ones meant for another host on a shared segment); an
/// RFC 5227 probe (sender address 0.0.0.0) gets a reply whose target address
/// is 0.0.0.0; a gratuitous request (sender address = the service address,
/// i.e. another host claiming it) is not answered.
fn handle_arp<T: AsRef<[u8]> + AsMut<[u8]>>(eth: &mut ethernet::Frame<T>, frame_len: u32, cx: &Context<'_>) -> Verdict {
    let requester = eth.src_addr();
    if !requester.is_unicast() {
        return Verdict::Drop(DropReason::NotUnicast);
    }
    let mac = cx.services.mac;
    let to = eth.dst_addr();
    if !to.is_broadcast() && to != mac {
        return Verdict::Drop(DropReason::ArpUnsupported);
    }
    let Ok(mut a) = arp::Packet::new_checked(eth.payload_mut()) else {
        return Verdict::Drop(DropReason::ArpUnsupported);
    };
    let target = a.target_proto_addr();
    if a.operation() != arp::Operation::Request as u16 || !cx.services.arp_addrs.contains(&target) {
        return Verdict::Drop(DropReason::ArpUnsupported);
    }
    let (sha, spa) = (a.sender_hw_addr(), a.sender_proto_addr());
    let probe = spa.is_unspecified();
    if sha != requester || spa == target || (!probe && is_martian(spa)) {
        return Verdict::Drop(DropReason::ArpUnsupported);
    }
    a.set_operation(arp::Operation::Reply as u16);
    a.set_target_hw_addr(sha);
    a.set_target_proto_addr(spa); // 0.0.0.0 for a probe, as RFC 5227 expects
    a.set_sender_hw_addr(mac);
    a.set_sender_proto_addr(target);
    eth.set_dst_addr(requester);
    eth.set_src_addr(mac);
    cx.stats.add(Counter::ArpReplied, 1);
    // The reply is as long as the request: 42 bytes, or the padded 60 of a
    // frame that crossed a real wire (its padding is sent back as it came).
    Verdict::Send(frame_len)
}

/// Sources no reply may go to (RFC 1122 3.2.1.3, RFC 5735): "this network",
/// loopback, multicast, reserved and broadcast.
fn is_martian(a: Ipv4Addr) -> bool {
    let o = a.octets()[0];
    o == 0 || o == 127 || o >= 224
}

fn handle_udp(l4: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, arrival: Arrival, cx: &Context<'_>) -> Verdict {
    let Ok(mut dgram) = udp::Datagram::new_checked(l4) else {
        return Verdict::Drop(DropReason::UdpMalformed);
    };
    let Some(service) = cx.services.lookup(Proto::Udp, dst, dgram.dst_port()) else {
        return Verdict::Drop(DropReason::NoService);
    };
    // Verify before the flow may claim a directory slot.
    if !dgram.verify_checksum(src, dst) {
        return Verdict::Drop(DropReason::UdpBadChecksum);
    }
    let flow = FlowKey { proto: ip_proto::UDP, src, dst, src_port: dgram.src_port(), dst_port: dgram.dst_port() };
    if let Some(owner) = cx.owner_elsewhere(&flow, arrival) {
        return Verdict::HandOff(owner);
    }
    match service.kind {
        ServiceKind::Echo => {
            // Swapping the ports (and, in the caller, the addresses) leaves
            // the one's-complement sum, and so the checksum, unchanged.
            dgram.swap_ports();
            cx.stats.add(Counter::UdpEchoed, 1);
            Verdict::Send(0)
        }
        ServiceKind::Discard => {
            cx.stats.add(Counter::UdpDiscarded, 1);
            Verdict::Consumed
        }
        // Config validation admits only echo and discard for UDP today.
        _ => Verdict::Drop(DropReason::NoService),
    }
}

fn handle_icmp(l4: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr, arrival: Arrival, cx: &Context<'_>) -> Verdict {
    let Ok(mut icmp) = icmpv4::Packet::new_checked(l4) else {
        return Verdict::Drop(DropReason::IcmpMalformed);
    };
    if icmp.msg_type() != icmpv4::msg_type::ECHO_REQUEST || icmp.code() != 0 {
        return Verdict::Drop(DropReason::IcmpUnsupported);
    }
    if !cx.services.is_service_addr(dst) {
        return Verdict::Drop(DropReason::NoService);
    }
    if !icmp.verify_checksum() {
        return Verdict::Drop(DropReason::IcmpBadChecksum);
    }
    let flow = FlowKey { proto: ip_proto::ICMP, src, dst, src_port: icmp.echo_ident(), dst_port: 0 };
    if let Some(owner) = cx.owner_elsewhere(&flow, arrival) {
        return Verdict::HandOff(owner);
    }
    icmp.set_msg_type_incremental(icmpv4::msg_type::ECHO_REPLY);
    cx.stats.add(Counter::IcmpEchoed, 1);
    Verdict::Send(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use proptest::prelude::*;

    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn table() -> ServiceTable {
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
    }

    impl Fixture {
        fn new() -> Self {
            Fixture { services: table(), owners: OwnerDirectory::new(1024, 30, 1), stats: CoreStats::default() }
        }
        fn cx(&self, core: u16) -> Context<'_> {
            Context { services: &self.services, owners: &self.owners, core, now_s: 10, stats: &self.stats }
        }
    }

    #[test]
    fn udp_echo_reply_swaps_endpoints_and_keeps_valid_checksums() {
        let fx = Fixture::new();
        let f = udp_frame(40000, 7, b"hello sluice");
        let mut padded = f.clone();
        padded.resize(f.len().max(60) + 4, 0xee); // Ethernet padding must not be echoed
        let v = handle_frame(&mut padded, Arrival::Rx, &fx.cx(0));
        assert_eq!(v, Verdict::Send(f.len() as u32));
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
        assert_eq!(fx.stats.counter(Counter::UdpEchoed), 1);
        // Length, checksum and payload are the request's, byte for byte; the ports are swapped.
        assert_eq!(reply[38..], f[38..]);
        assert_eq!((&reply[34..36], &reply[36..38]), (&f[36..38], &f[34..36]));
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
        assert_eq!(v, Verdict::Send(f.len() as u32));
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        let icmp = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(icmp.msg_type(), icmpv4::msg_type::ECHO_REPLY);
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.echo_ident(), icmp.echo_seq_no(), icmp.data()), (0x77, 3, &b"ping data"[..]));
        assert_eq!(ip.dst_addr(), CLIENT);
        assert_eq!(fx.stats.counter(Counter::IcmpEchoed), 1);
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
        assert_eq!(drop(tcp), DropReason::ProtoUnsupported);
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
        assert!(matches!(handle_frame(&mut f.clone(), Arrival::Rx, &fx.cx(1)), Verdict::Send(_)));
        assert_eq!(handle_frame(&mut f.clone(), Arrival::Rx, &fx.cx(0)), Verdict::HandOff(1));
        // The owner serves a handed-over frame without asking again.
        assert!(matches!(handle_frame(&mut f, Arrival::HandedOver, &fx.cx(1)), Verdict::Send(_)));
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
        assert_eq!(handle_frame(&mut f, Arrival::Rx, &fx.cx(0)), Verdict::Send(60));
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst_addr().0, eth.src_addr().0), (CLIENT_MAC, SERVER_MAC));
        let a = arp::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(a.operation(), 2);
        assert_eq!((a.sender_hw_addr().0, a.sender_proto_addr()), (SERVER_MAC, vip));
        assert_eq!((a.target_hw_addr().0, a.target_proto_addr()), (CLIENT_MAC, CLIENT));
        assert_eq!(fx.stats.counter(Counter::ArpReplied), 1);
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
        assert_eq!(handle_frame(&mut probe, Arrival::Rx, &fx.cx(0)), Verdict::Send(60));
        let a = arp::Packet::new_checked(&probe[14..]).unwrap();
        assert_eq!(
            (a.operation(), a.target_proto_addr(), a.target_hw_addr().0),
            (2, Ipv4Addr::UNSPECIFIED, CLIENT_MAC)
        );
        // A unicast refresh sent to our MAC.
        let mut refresh = arp_request(vip, 1);
        refresh[..6].copy_from_slice(&SERVER_MAC);
        assert_eq!(handle_frame(&mut refresh, Arrival::Rx, &fx.cx(0)), Verdict::Send(60));
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
            if let Verdict::Send(len) = handle_frame(&mut f, Arrival::Rx, &fx.cx(0)) {
                let ip = ipv4::Packet::new_checked(&f[14..len as usize]).unwrap();
                prop_assert!(ip.verify_checksum());
                let u = udp::Datagram::new_checked(ip.payload()).unwrap();
                prop_assert!(u.verify_checksum(ip.src_addr(), ip.dst_addr()));
            }
        }
    }
}
