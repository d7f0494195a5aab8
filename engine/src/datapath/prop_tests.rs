//! Property tests of [`handle_frame`] that reach every branch: valid frames
//! built through the wire `Repr`s and views with random fields, and
//! corruptions of them made after their checksums were filled in. Each case
//! asserts the exact verdict and, for a reply, the exact reply bytes.
//!
//! Expectations come from what a case changed, worked out with these tests'
//! own byte offsets and their own checksum ([`ref_sum`]), never from the
//! datapath's code.

use super::{handle_frame, udp::LOOP_PORTS, Arrival, Context, ServiceTable, Verdict};
use crate::config::Config;
use crate::ownership::OwnerDirectory;
use crate::stats::{CoreStats, Counter, DropReason};
use crate::wire::{
    arp, ethernet, icmpv4, ip_proto, ipv4, udp, ArpOperation, ArpRepr, EthernetAddress, Ipv4Repr, UdpRepr,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::cell::Cell;
use std::net::Ipv4Addr;

const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const BROADCAST: [u8; 6] = [0xff; 6];
/// The one service address: echo on port 7, discard on port 9.
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const ECHO_PORT: u16 = 7;
const DISCARD_PORT: u16 = 9;
/// The addresses sluice answers ARP for (with `SERVER_MAC`).
const VIPS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 0, 3), Ipv4Addr::new(198, 19, 7, 1)];

/// Offsets in a frame whose IPv4 header is 20 bytes.
const IP: usize = 14;
const L4: usize = 34;

// ---------------------------------------------------------------------------
// Fixture

struct Fixture {
    services: ServiceTable,
    owners: OwnerDirectory,
    stats: CoreStats,
    ip_id: Cell<u16>,
}

impl Fixture {
    /// Echo and discard on `SERVER`, ARP for `VIPS`, the core's next IP ID `ip_id`.
    fn new(ip_id: u16) -> Self {
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
        let mut services = ServiceTable::from_config(&cfg);
        services.answer_arp(VIPS.to_vec(), EthernetAddress(SERVER_MAC));
        Fixture {
            services,
            owners: OwnerDirectory::new(1024, 30, 1),
            stats: CoreStats::default(),
            ip_id: Cell::new(ip_id),
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

    /// Handles `frame` as received on core 0's rx ring.
    fn run(&self, frame: &mut [u8]) -> Verdict {
        handle_frame(frame, Arrival::Rx, &self.cx(0))
    }

    fn count(&self, c: Counter) -> u64 {
        self.stats.counter(c)
    }
}

// ---------------------------------------------------------------------------
// Reference arithmetic (independent of wire::checksum)

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn addr_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Ones'-complement sum of big-endian 16-bit words (an odd last byte is
/// padded with zero), with end-around carry.
fn ref_sum(data: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for w in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Whether data that includes its checksum field verifies.
fn verifies(data: &[u8]) -> bool {
    ref_sum(data) == 0xffff
}

/// Whether `dgram` (exactly as long as its length field says) has a UDP
/// checksum that verifies, or none (a stored 0).
fn udp_ok(src: Ipv4Addr, dst: Ipv4Addr, dgram: &[u8]) -> bool {
    be16(dgram, 6) == 0 || udp_sum(src, dst, dgram) == 0xffff
}

/// [`ref_sum`] over the UDP pseudo-header (length `dgram.len()`) and `dgram`.
fn udp_sum(src: Ipv4Addr, dst: Ipv4Addr, dgram: &[u8]) -> u16 {
    let mut v = Vec::with_capacity(12 + dgram.len());
    v.extend_from_slice(&src.octets());
    v.extend_from_slice(&dst.octets());
    v.extend_from_slice(&[0, ip_proto::UDP]);
    v.extend_from_slice(&(dgram.len() as u16).to_be_bytes());
    v.extend_from_slice(dgram);
    ref_sum(&v)
}

fn is_martian(a: Ipv4Addr) -> bool {
    // ARCHITECTURE.md: 0/8, 127/8, 224/4 and above.
    matches!(a.octets()[0], 0 | 127 | 224..=255)
}

/// Recomputes the IPv4 header checksum of `frame` after an edit.
fn refill_ip_checksum(frame: &mut [u8]) {
    ipv4::Packet::new_unchecked(&mut frame[IP..]).fill_checksum();
}

/// Where two byte strings first differ (for readable failures).
fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y).or(if a.len() == b.len() { None } else { Some(a.len().min(b.len())) })
}

// ---------------------------------------------------------------------------
// Frame builders

/// The Ethernet and IPv4 part of a test frame: what [`Ipv4Repr`] carries and
/// the fields it does not, set through the `ipv4::Packet` setters.
#[derive(Clone, Debug)]
struct Ip {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    ethertype: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    tos: u8,
    ident: u16,
    df: bool,
    mf: bool,
    /// Fragment offset in 8-byte units (13 bits).
    frag_units: u16,
    ttl: u8,
    /// IPv4 option bytes, a multiple of 4 long (at most 40).
    options: Vec<u8>,
    /// Ethernet padding after the IP packet.
    pad: Vec<u8>,
}

/// The transport part of a test frame.
#[derive(Clone, Debug)]
enum L4 {
    Udp {
        sport: u16,
        dport: u16,
        payload: Vec<u8>,
        /// false: the checksum field is 0 ("none").
        checksum: bool,
        /// Bytes inside the IP packet after the datagram (UDP length < IP payload).
        trailer: Vec<u8>,
    },
    Echo {
        ident: u16,
        seq: u16,
        data: Vec<u8>,
    },
}

impl L4 {
    fn proto(&self) -> u8 {
        match self {
            L4::Udp { .. } => ip_proto::UDP,
            L4::Echo { .. } => ip_proto::ICMP,
        }
    }

    /// Length of the IP payload this makes.
    fn ip_payload_len(&self) -> usize {
        match self {
            L4::Udp { payload, trailer, .. } => udp::HEADER_LEN + payload.len() + trailer.len(),
            L4::Echo { data, .. } => icmpv4::HEADER_LEN + data.len(),
        }
    }

    /// The verdict on a well-formed frame carrying this to `SERVER`, whose
    /// IP packet is `ip_total` bytes.
    fn served(&self, ip_total: usize) -> Verdict {
        let len = (ethernet::HEADER_LEN + ip_total) as u32;
        match self {
            L4::Udp { dport: DISCARD_PORT, .. } => Verdict::Consumed,
            L4::Udp { dport: ECHO_PORT, sport, .. } if LOOP_PORTS.contains(sport) => {
                Verdict::Drop(DropReason::UdpLoopPort)
            }
            L4::Udp { dport: ECHO_PORT, .. } => Verdict::Reply { len, tally: Counter::UdpEchoed },
            L4::Udp { .. } => Verdict::Drop(DropReason::NoService),
            L4::Echo { .. } => Verdict::Reply { len, tally: Counter::IcmpEchoed },
        }
    }
}

/// Builds the frame: header through `Ipv4Repr::emit`, then the fields the
/// Repr does not carry; UDP through `UdpRepr::emit`, ICMP through the view.
fn build(ip: &Ip, l4: &L4) -> Vec<u8> {
    let hl = ipv4::HEADER_LEN + ip.options.len();
    let len = l4.ip_payload_len();
    let mut f = vec![0u8; ethernet::HEADER_LEN + hl + len + ip.pad.len()];
    {
        let mut eth = ethernet::Frame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(EthernetAddress(ip.dst_mac));
        eth.set_src_addr(EthernetAddress(ip.src_mac));
        eth.set_ethertype(ip.ethertype);
        let mut p = ipv4::Packet::new_unchecked(eth.payload_mut());
        let repr = Ipv4Repr { src_addr: ip.src, dst_addr: ip.dst, protocol: l4.proto(), payload_len: len, ttl: ip.ttl };
        repr.emit(&mut p);
        p.set_dscp_ecn(ip.tos);
        p.set_ident(ip.ident);
        p.set_dont_frag(ip.df);
        p.set_more_frags(ip.mf);
        p.set_frag_offset(ip.frag_units * 8);
        p.set_header_len(hl);
        p.set_total_len((hl + len) as u16);
        p.options_mut().copy_from_slice(&ip.options);
        p.fill_checksum();
        let seg = p.payload_mut();
        match l4 {
            L4::Udp { sport, dport, payload, checksum, trailer } => {
                let repr = UdpRepr { src_port: *sport, dst_port: *dport, payload_len: payload.len() };
                let end = repr.buffer_len();
                seg[udp::HEADER_LEN..end].copy_from_slice(payload);
                seg[end..].copy_from_slice(trailer);
                let mut d = udp::Datagram::new_unchecked(&mut seg[..]);
                repr.emit(&mut d, ip.src, ip.dst);
                if !checksum {
                    d.set_checksum(0);
                }
            }
            L4::Echo { ident, seq, data } => {
                let mut m = icmpv4::Packet::new_unchecked(seg);
                m.set_msg_type(icmpv4::msg_type::ECHO_REQUEST);
                m.set_code(0);
                m.set_echo_ident(*ident);
                m.set_echo_seq_no(*seq);
                m.data_mut().copy_from_slice(data);
                m.fill_checksum();
            }
        }
    }
    let n = f.len();
    f[n - ip.pad.len()..].copy_from_slice(&ip.pad);
    f
}

/// An Ethernet/IPv4 ARP frame with a free operation field.
#[derive(Clone, Debug)]
struct Arp {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    op: u16,
    sha: [u8; 6],
    spa: Ipv4Addr,
    tha: [u8; 6],
    tpa: Ipv4Addr,
    pad: Vec<u8>,
}

fn build_arp(a: &Arp) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + arp::PACKET_LEN + a.pad.len()];
    {
        let mut eth = ethernet::Frame::new_unchecked(&mut f[..]);
        eth.set_dst_addr(EthernetAddress(a.eth_dst));
        eth.set_src_addr(EthernetAddress(a.eth_src));
        eth.set_ethertype(ethernet::ethertype::ARP);
        let mut p = arp::Packet::new_unchecked(eth.payload_mut());
        ArpRepr {
            operation: ArpOperation::Request,
            sender_hw_addr: EthernetAddress(a.sha),
            sender_proto_addr: a.spa,
            target_hw_addr: EthernetAddress(a.tha),
            target_proto_addr: a.tpa,
        }
        .emit(&mut p);
        p.set_operation(a.op);
    }
    let n = f.len();
    f[n - a.pad.len()..].copy_from_slice(&a.pad);
    f
}

// ---------------------------------------------------------------------------
// Reply oracle

/// Checks that `reply` is exactly what `req` (an IPv4 echo request with a
/// 20-byte header, UDP or ICMP) must become when answered with IP ID `id`:
/// MACs and addresses swapped, TTL 64, ECN cleared (DSCP, DF, total length
/// kept), the header checksum recomputed; UDP ports swapped with the
/// checksum bytes unchanged (the sum does not depend on word order); ICMP
/// type 0 with a checksum that verifies; payload, trailer and Ethernet
/// padding untouched.
fn check_reply(req: &[u8], reply: &[u8], id: u16) -> Result<(), TestCaseError> {
    let end = IP + usize::from(be16(req, IP + 2));
    let mut e = req.to_vec();
    e[0..6].copy_from_slice(&req[6..12]);
    e[6..12].copy_from_slice(&req[0..6]);
    e[IP + 1] = req[IP + 1] & !0b11;
    e[IP + 4..IP + 6].copy_from_slice(&id.to_be_bytes());
    e[IP + 8] = 64;
    e[IP + 12..IP + 16].copy_from_slice(&req[IP + 16..IP + 20]);
    e[IP + 16..IP + 20].copy_from_slice(&req[IP + 12..IP + 16]);
    e[IP + 10..IP + 12].fill(0);
    let c = !ref_sum(&e[IP..L4]);
    e[IP + 10..IP + 12].copy_from_slice(&c.to_be_bytes());
    prop_assert!(verifies(&reply[IP..L4]), "reply IPv4 checksum");
    match req[IP + 9] {
        ip_proto::UDP => {
            e[L4..L4 + 2].copy_from_slice(&req[L4 + 2..L4 + 4]);
            e[L4 + 2..L4 + 4].copy_from_slice(&req[L4..L4 + 2]);
            let ulen = usize::from(be16(req, L4 + 4));
            prop_assert!(
                udp_ok(addr_at(reply, IP + 12), addr_at(reply, IP + 16), &reply[L4..L4 + ulen]),
                "reply UDP checksum"
            );
        }
        ip_proto::ICMP => {
            e[L4] = icmpv4::msg_type::ECHO_REPLY;
            // A checksum that verifies is unique up to the two forms of
            // zero, so take the reply's once it verifies.
            prop_assert!(verifies(&reply[L4..end]), "reply ICMP checksum");
            e[L4 + 2..L4 + 4].copy_from_slice(&reply[L4 + 2..L4 + 4]);
        }
        p => prop_assert!(false, "not an echo request: protocol {}", p),
    }
    let at = first_diff(reply, &e);
    prop_assert!(
        at.is_none(),
        "reply differs at byte {:?}: got {:02x?} want {:02x?}",
        at,
        reply.get(at.unwrap_or(0)..(at.unwrap_or(0) + 8).min(reply.len())),
        e.get(at.unwrap_or(0)..(at.unwrap_or(0) + 8).min(e.len()))
    );
    Ok(())
}

/// Checks the bookkeeping a verdict implies: a reply takes the core's next
/// IP ID and nothing else does; a flow claims its owner slot only once its
/// checksums verified and it reached a service; discard counts; replies are
/// counted only when transmitted (by the worker, not here).
fn check_bookkeeping(fx: &Fixture, v: Verdict, id0: u16) -> Result<(), TestCaseError> {
    let replied = matches!(v, Verdict::Reply { .. });
    prop_assert_eq!(fx.ip_id.get(), if replied { id0.wrapping_add(1) } else { id0 }, "IP ID counter");
    // A loop-port datagram is refused before it may claim a slot.
    let served = matches!(v, Verdict::Reply { tally: Counter::UdpEchoed | Counter::IcmpEchoed, .. })
        || matches!(v, Verdict::Consumed);
    prop_assert_eq!(fx.count(Counter::FlowsClaimed), u64::from(served), "flows claimed");
    prop_assert_eq!(fx.count(Counter::UdpDiscarded), u64::from(v == Verdict::Consumed));
    prop_assert_eq!(fx.count(Counter::UdpEchoed) + fx.count(Counter::IcmpEchoed) + fx.count(Counter::ArpReplied), 0);
    Ok(())
}

// ---------------------------------------------------------------------------
// Strategies

fn unicast_mac() -> impl Strategy<Value = [u8; 6]> {
    any::<[u8; 6]>().prop_map(|mut m| {
        m[0] &= !1;
        m
    })
}

/// Broadcast or any other address with the group bit set.
fn group_mac() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![
        Just(BROADCAST),
        any::<[u8; 6]>().prop_map(|mut m| {
            m[0] |= 1;
            m
        })
    ]
}

/// A random address no reply is refused to (first octet 1..=223 but 127).
fn client_addr() -> impl Strategy<Value = Ipv4Addr> {
    (1u8..=222, any::<[u8; 3]>()).prop_map(|(o, [b, c, d])| Ipv4Addr::new(if o >= 127 { o + 1 } else { o }, b, c, d))
}

/// A martian, its boundaries (0, 127, 224, 255) as often as the rest.
fn martian_addr() -> impl Strategy<Value = Ipv4Addr> {
    (prop_oneof![Just(0u8), Just(127u8), Just(224u8), Just(255u8), 224u8..=255], any::<[u8; 3]>())
        .prop_map(|(o, [b, c, d])| Ipv4Addr::new(o, b, c, d))
}

/// An address in 198.18.0.0/15, the benchmarking range the tests live in.
fn lab_addr() -> impl Strategy<Value = Ipv4Addr> {
    (0u32..1 << 17).prop_map(|x| Ipv4Addr::from(0xc612_0000 | x))
}

fn padding() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), vec(any::<u8>(), 0..48)]
}

fn source_port() -> impl Strategy<Value = u16> {
    prop_oneof![3 => any::<u16>(), 1 => select(LOOP_PORTS)]
}

fn non_loop_port() -> impl Strategy<Value = u16> {
    any::<u16>().prop_filter("a loop port", |p| !LOOP_PORTS.contains(p))
}

/// A valid unfragmented IPv4 header without options from a random client
/// to `dst`, with random DSCP/ECN, ident, DF, TTL and Ethernet padding.
fn ip_to(dst: impl Strategy<Value = Ipv4Addr>) -> impl Strategy<Value = Ip> {
    (unicast_mac(), client_addr(), dst, any::<u8>(), any::<u16>(), any::<bool>(), any::<u8>(), padding()).prop_map(
        |(src_mac, src, dst, tos, ident, df, ttl, pad)| Ip {
            dst_mac: SERVER_MAC,
            src_mac,
            ethertype: ethernet::ethertype::IPV4,
            src,
            dst,
            tos,
            ident,
            df,
            mf: false,
            frag_units: 0,
            ttl,
            options: Vec::new(),
            pad,
        },
    )
}

/// A request the server answers: UDP echo from a non-loop port, or ICMP echo.
fn answered_l4(max_payload: usize) -> impl Strategy<Value = L4> {
    prop_oneof![
        (non_loop_port(), vec(any::<u8>(), 0..max_payload)).prop_map(|(sport, payload)| L4::Udp {
            sport,
            dport: ECHO_PORT,
            payload,
            checksum: true,
            trailer: Vec::new()
        }),
        (any::<u16>(), any::<u16>(), vec(any::<u8>(), 0..max_payload)).prop_map(|(ident, seq, data)| L4::Echo {
            ident,
            seq,
            data
        }),
    ]
}

/// UDP to echo or discard from a non-loop port, checksummed, or ICMP echo.
fn served_l4(max_payload: usize) -> impl Strategy<Value = L4> {
    (answered_l4(max_payload), any::<bool>()).prop_map(|(mut l4, discard)| {
        if let L4::Udp { dport, .. } = &mut l4 {
            if discard {
                *dport = DISCARD_PORT;
            }
        }
        l4
    })
}

/// Valid IPv4 options: NOPs and Router Alerts (RFC 2113), EOL-padded to a
/// multiple of 4 (IHL 6..=14).
fn ip_options() -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![Just(vec![1u8]), Just(vec![148u8, 4, 0, 0])], 1..10).prop_map(|opts| {
        let mut b = opts.concat();
        while b.len() % 4 != 0 {
            b.push(0);
        }
        b
    })
}

// ---------------------------------------------------------------------------
// Valid requests

proptest! {
    /// UDP to echo, discard, another port or another address: the exact
    /// verdict, and for an echo the exact reply.
    #[test]
    fn valid_udp_gets_its_service_verdict_and_echoes_exactly(
        ip in ip_to(prop_oneof![4 => Just(SERVER), 1 => client_addr()]),
        sport in source_port(),
        dport in prop_oneof![2 => Just(ECHO_PORT), 1 => Just(DISCARD_PORT), 1 => any::<u16>()],
        payload in vec(any::<u8>(), 0..1400),
        checksum in prop::bool::weighted(0.9),
        trailer in prop_oneof![3 => Just(Vec::new()), 1 => vec(any::<u8>(), 1..8)],
        id0 in any::<u16>(),
    ) {
        let l4 = L4::Udp { sport, dport, payload, checksum, trailer };
        let req = build(&ip, &l4);
        let ip_total = ipv4::HEADER_LEN + l4.ip_payload_len();
        let expected = if ip.dst == SERVER { l4.served(ip_total) } else { Verdict::Drop(DropReason::NoService) };
        let fx = Fixture::new(id0);
        let mut f = req.clone();
        let v = fx.run(&mut f);
        prop_assert_eq!(v, expected);
        if let Verdict::Reply { len, .. } = v {
            prop_assert_eq!(len as usize, req.len() - ip.pad.len(), "padding is not part of the reply");
            check_reply(&req, &f, id0)?;
        }
        check_bookkeeping(&fx, v, id0)?;
    }

    /// ICMP echo requests with random ident, sequence and data: a reply with
    /// type 0, a valid checksum and the data as sent; to another address,
    /// no service.
    #[test]
    fn valid_icmp_echo_gets_an_exact_reply(
        ip in ip_to(prop_oneof![4 => Just(SERVER), 1 => client_addr()]),
        ident in any::<u16>(),
        seq in any::<u16>(),
        data in vec(any::<u8>(), 0..1400),
        id0 in any::<u16>(),
    ) {
        let l4 = L4::Echo { ident, seq, data };
        let req = build(&ip, &l4);
        let ip_total = ipv4::HEADER_LEN + l4.ip_payload_len();
        let expected = if ip.dst == SERVER { l4.served(ip_total) } else { Verdict::Drop(DropReason::NoService) };
        let fx = Fixture::new(id0);
        let mut f = req.clone();
        let v = fx.run(&mut f);
        prop_assert_eq!(v, expected);
        if let Verdict::Reply { .. } = v {
            check_reply(&req, &f, id0)?;
            // The same, through the views.
            let p = ipv4::Packet::new_checked(&f[IP..]).unwrap();
            let m = icmpv4::Packet::new_checked(p.payload()).unwrap();
            prop_assert_eq!((m.msg_type(), m.code()), (icmpv4::msg_type::ECHO_REPLY, 0));
            prop_assert!(m.verify_checksum());
            prop_assert_eq!((m.echo_ident(), m.echo_seq_no()), (ident, seq));
            prop_assert_eq!(m.data(), &req[L4 + 8..IP + ip_total]);
        }
        check_bookkeeping(&fx, v, id0)?;
    }

    /// A flow another core owns is handed over untouched, and the owner's
    /// reply to the handed-over frame is the reply it would have made.
    #[test]
    fn flows_owned_elsewhere_are_handed_off_untouched(
        ip in ip_to(Just(SERVER)),
        l4 in answered_l4(200),
        id0 in any::<u16>(),
    ) {
        let req = build(&ip, &l4);
        let fx = Fixture::new(id0);
        let mut first = req.clone();
        let claimed = handle_frame(&mut first, Arrival::Rx, &fx.cx(1));
        prop_assert_eq!(claimed, l4.served(ipv4::HEADER_LEN + l4.ip_payload_len()));
        check_reply(&req, &first, id0)?;
        let mut f = req.clone();
        prop_assert_eq!(handle_frame(&mut f, Arrival::Rx, &fx.cx(0)), Verdict::HandOff(1));
        prop_assert!(f == req, "a handed-off frame is not modified");
        prop_assert_eq!(fx.ip_id.get(), id0.wrapping_add(1), "a handoff takes no IP ID");
        let v = handle_frame(&mut f, Arrival::HandedOver, &fx.cx(1));
        prop_assert_eq!(v, l4.served(ipv4::HEADER_LEN + l4.ip_payload_len()));
        check_reply(&req, &f, id0.wrapping_add(1))?;
        prop_assert_eq!(fx.count(Counter::FlowsClaimed), 1);
    }
}

// ---------------------------------------------------------------------------
// Corruptions after correct checksums

proptest! {
    /// One bit of the IPv4 header flipped: the version → malformed; the IHL
    /// or total length → malformed when out of bounds, else (the checksum
    /// covering the same or other bytes) a bad checksum, or options when a
    /// longer header happens to verify; any other bit → bad checksum.
    #[test]
    fn an_ipv4_header_bit_flip_has_its_exact_reason(
        ip in ip_to(Just(SERVER)),
        l4 in served_l4(64),
        bit in 0usize..160,
        id0 in any::<u16>(),
    ) {
        let mut f = build(&ip, &l4);
        let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
        f[IP + byte] ^= mask;
        let ip_buf = f.len() - IP;
        let total = usize::from(be16(&f, IP + 2));
        let expected = match byte {
            0 if mask >= 0x10 => DropReason::Ipv4Malformed, // version 4 no more
            0 => {
                let hl = usize::from(f[IP] & 0x0f) * 4;
                if hl < 20 || hl > ip_buf || total < hl {
                    DropReason::Ipv4Malformed
                } else if !verifies(&f[IP..IP + hl]) {
                    DropReason::Ipv4BadChecksum
                } else {
                    DropReason::Ipv4Options
                }
            }
            2 | 3 if total < 20 || total > ip_buf => DropReason::Ipv4Malformed,
            _ => DropReason::Ipv4BadChecksum,
        };
        let fx = Fixture::new(id0);
        let v = fx.run(&mut f);
        prop_assert_eq!(v, Verdict::Drop(expected), "flipped bit {} of header byte {}", bit % 8, byte);
        check_bookkeeping(&fx, v, id0)?;
    }

    /// One bit of the UDP datagram or ICMP message flipped. UDP: the
    /// destination port → no service (checked before the checksum); the
    /// length → malformed when out of bounds, else decided by the checksum
    /// over the shorter datagram; the checksum → bad, unless it became 0
    /// ("none"); anything else → bad checksum. ICMP: type or code →
    /// unsupported; anything else → bad checksum.
    #[test]
    fn a_transport_bit_flip_has_its_exact_reason(
        ip in ip_to(Just(SERVER)),
        l4 in served_l4(300),
        header_bit in 0usize..64,
        body_bit in any::<Index>(),
        in_header in any::<bool>(),
        id0 in any::<u16>(),
    ) {
        let mut f = build(&ip, &l4);
        let len = l4.ip_payload_len();
        let bit = if in_header || len == 8 { header_bit } else { 64 + body_bit.index((len - 8) * 8) };
        let byte = bit / 8;
        f[L4 + byte] ^= 1 << (bit % 8);
        let served = l4.served(ipv4::HEADER_LEN + len);
        let d = &f[L4..L4 + len];
        let expected = match (&l4, byte) {
            (L4::Udp { .. }, 2 | 3) if ![ECHO_PORT, DISCARD_PORT].contains(&be16(d, 2)) => {
                Verdict::Drop(DropReason::NoService)
            }
            (L4::Udp { .. }, 4 | 5) => {
                let ulen = usize::from(be16(d, 4));
                if !(8..=len).contains(&ulen) {
                    Verdict::Drop(DropReason::UdpMalformed)
                } else if udp_ok(ip.src, SERVER, &d[..ulen]) {
                    served
                } else {
                    Verdict::Drop(DropReason::UdpBadChecksum)
                }
            }
            (L4::Udp { .. }, 6 | 7) if be16(d, 6) == 0 => served,
            (L4::Udp { .. }, _) => Verdict::Drop(DropReason::UdpBadChecksum),
            (L4::Echo { .. }, 0 | 1) => Verdict::Drop(DropReason::IcmpUnsupported),
            (L4::Echo { .. }, _) => Verdict::Drop(DropReason::IcmpBadChecksum),
        };
        let fx = Fixture::new(id0);
        let v = fx.run(&mut f);
        prop_assert_eq!(v, expected, "flipped bit {} of transport byte {}", bit % 8, byte);
        check_bookkeeping(&fx, v, id0)?;
    }

    /// The UDP length field set to any value, the checksum then made right
    /// (sent as 0xFFFF when it computes to 0) for the datagram that length
    /// describes: below 8 or beyond the IP payload → malformed; otherwise a
    /// datagram shorter than the IP payload, served, the bytes after it kept
    /// as they are in an echo.
    #[test]
    fn any_udp_length_field_has_its_exact_verdict(
        ip in ip_to(Just(SERVER)),
        sport in non_loop_port(),
        dport in prop_oneof![Just(ECHO_PORT), Just(DISCARD_PORT)],
        payload in vec(any::<u8>(), 0..64),
        ulen in prop_oneof![0u16..8, 8u16..80, any::<u16>()],
        id0 in any::<u16>(),
    ) {
        let l4 = L4::Udp { sport, dport, payload, checksum: true, trailer: Vec::new() };
        let mut f = build(&ip, &l4);
        let n = l4.ip_payload_len();
        let u = usize::from(ulen);
        f[L4 + 4..L4 + 6].copy_from_slice(&ulen.to_be_bytes());
        if u <= n {
            f[L4 + 6..L4 + 8].fill(0);
            let c = match !udp_sum(ip.src, SERVER, &f[L4..L4 + u]) {
                0 => 0xffff,
                c => c,
            };
            f[L4 + 6..L4 + 8].copy_from_slice(&c.to_be_bytes());
        }
        let expected = if !(8..=n).contains(&u) {
            Verdict::Drop(DropReason::UdpMalformed)
        } else {
            l4.served(ipv4::HEADER_LEN + n)
        };
        let req = f.clone();
        let fx = Fixture::new(id0);
        let v = fx.run(&mut f);
        prop_assert_eq!(v, expected, "UDP length {} in an IP payload of {}", ulen, n);
        if let Verdict::Reply { .. } = v {
            check_reply(&req, &f, id0)?;
        }
        check_bookkeeping(&fx, v, id0)?;
    }

    /// The frame cut short at a random length: no Ethernet header →
    /// truncated; less than the IPv4 header or its total length → IPv4
    /// malformed; a cut in the padding only → served as usual.
    #[test]
    fn a_cut_frame_has_the_reason_of_where_the_cut_falls(
        ip in ip_to(Just(SERVER)),
        l4 in served_l4(100),
        cut in any::<Index>(),
        id0 in any::<u16>(),
    ) {
        let mut f = build(&ip, &l4);
        let cut = cut.index(f.len());
        f.truncate(cut);
        let ip_end = IP + ipv4::HEADER_LEN + l4.ip_payload_len();
        let expected = if cut < ethernet::HEADER_LEN {
            Verdict::Drop(DropReason::EthTruncated)
        } else if cut < ip_end {
            Verdict::Drop(DropReason::Ipv4Malformed)
        } else {
            l4.served(ip_end - IP)
        };
        let fx = Fixture::new(id0);
        let v = fx.run(&mut f);
        prop_assert_eq!(v, expected, "cut at {}", cut);
        check_bookkeeping(&fx, v, id0)?;
    }

    /// The IP packet shortened consistently (total length and header
    /// checksum fixed; the bytes beyond left as padding or cut off): a
    /// datagram shorter than its UDP header or length → UDP malformed; an
    /// ICMP message shorter than 8 → ICMP malformed, else decided by its
    /// checksum over what is left (trailing zero bytes do not change it).
    #[test]
    fn a_transport_cut_short_in_a_consistent_ip_packet_has_its_exact_reason(
        ip in ip_to(Just(SERVER)),
        l4 in served_l4(100),
        cut in any::<Index>(),
        drop_rest in any::<bool>(),
        id0 in any::<u16>(),
    ) {
        let mut f = build(&ip, &l4);
        let c = cut.index(l4.ip_payload_len());
        f[IP + 2..IP + 4].copy_from_slice(&((ipv4::HEADER_LEN + c) as u16).to_be_bytes());
        refill_ip_checksum(&mut f);
        if drop_rest {
            f.truncate(L4 + c);
        }
        let expected = match l4 {
            L4::Udp { .. } => Verdict::Drop(DropReason::UdpMalformed),
            L4::Echo { .. } if c < icmpv4::HEADER_LEN => Verdict::Drop(DropReason::IcmpMalformed),
            L4::Echo { .. } if verifies(&f[L4..L4 + c]) => {
                Verdict::Reply { len: (L4 + c) as u32, tally: Counter::IcmpEchoed }
            }
            L4::Echo { .. } => Verdict::Drop(DropReason::IcmpBadChecksum),
        };
        let req = f.clone();
        let fx = Fixture::new(id0);
        let v = fx.run(&mut f);
        prop_assert_eq!(v, expected, "transport cut to {} bytes", c);
        if let Verdict::Reply { .. } = v {
            check_reply(&req, &f, id0)?;
        }
        check_bookkeeping(&fx, v, id0)?;
    }
}

/// Header features each of which a well-formed frame (checksums right) may
/// carry, refused with the reason of the first one `handle_frame` checks.
#[derive(Clone, Debug)]
struct Features {
    ethertype: Option<u16>,
    group_dst: Option<[u8; 6]>,
    group_src: Option<[u8; 6]>,
    /// (MF, offset in 8-byte units), not both clear.
    fragment: Option<(bool, u16)>,
    options: Option<Vec<u8>>,
    martian_src: Option<Ipv4Addr>,
    protocol: Option<u8>,
    other_dst: Option<Ipv4Addr>,
}

fn features() -> impl Strategy<Value = Features> {
    let p = 0.2;
    (
        prop::option::weighted(
            0.1,
            any::<u16>()
                .prop_filter("IPv4 or ARP", |t| ![ethernet::ethertype::IPV4, ethernet::ethertype::ARP].contains(t)),
        ),
        prop::option::weighted(p, group_mac()),
        prop::option::weighted(p, group_mac()),
        prop::option::weighted(p, prop_oneof![(Just(true), 0u16..8192), (Just(false), 1u16..8192)]),
        prop::option::weighted(p, ip_options()),
        prop::option::weighted(p, martian_addr()),
        prop::option::weighted(
            p,
            any::<u8>().prop_filter("served", |&n| ![ip_proto::UDP, ip_proto::ICMP, ip_proto::TCP].contains(&n)),
        ),
        prop::option::weighted(p, client_addr().prop_filter("the service address", |&a| a != SERVER)),
    )
        .prop_map(|(ethertype, group_dst, group_src, fragment, options, martian_src, protocol, other_dst)| {
            Features { ethertype, group_dst, group_src, fragment, options, martian_src, protocol, other_dst }
        })
}

proptest! {
    /// Non-IPv4 EtherTypes, group MACs, fragments (MF or an offset), IP
    /// options, martian sources, unserved protocols and other destination
    /// addresses, alone or together, in frames whose checksums are all
    /// right: the verdict is the reason of the first check in
    /// `handle_frame`'s order, and a frame with none of them is served.
    #[test]
    fn refused_header_features_are_named_in_check_order(
        mut ip in ip_to(Just(SERVER)),
        l4 in served_l4(100),
        feat in features(),
        id0 in any::<u16>(),
    ) {
        if let Some(t) = feat.ethertype {
            ip.ethertype = t;
        }
        if let Some(m) = feat.group_dst {
            ip.dst_mac = m;
        }
        if let Some(m) = feat.group_src {
            ip.src_mac = m;
        }
        if let Some((mf, units)) = feat.fragment {
            ip.mf = mf;
            ip.frag_units = units;
        }
        if let Some(o) = &feat.options {
            ip.options = o.clone();
        }
        if let Some(a) = feat.martian_src {
            ip.src = a;
        }
        if let Some(a) = feat.other_dst {
            ip.dst = a;
        }
        let mut f = build(&ip, &l4);
        if let Some(n) = feat.protocol {
            f[IP + 9] = n;
            refill_ip_checksum(&mut f);
        }
        let hl = ipv4::HEADER_LEN + ip.options.len();
        prop_assert!(verifies(&f[IP..IP + hl]), "the test frame's IPv4 checksum");
        prop_assert_eq!(is_martian(ip.src), feat.martian_src.is_some(), "the address generators");
        let expected = if feat.ethertype.is_some() {
            Verdict::Drop(DropReason::NotIpv4)
        } else if feat.group_dst.is_some() || feat.group_src.is_some() {
            Verdict::Drop(DropReason::NotUnicast)
        } else if feat.fragment.is_some() {
            Verdict::Drop(DropReason::Ipv4Fragment)
        } else if feat.options.is_some() {
            Verdict::Drop(DropReason::Ipv4Options)
        } else if is_martian(ip.src) {
            Verdict::Drop(DropReason::MartianSource)
        } else if feat.protocol.is_some() {
            Verdict::Drop(DropReason::ProtoUnsupported)
        } else if feat.other_dst.is_some() {
            Verdict::Drop(DropReason::NoService)
        } else {
            l4.served(ipv4::HEADER_LEN + l4.ip_payload_len())
        };
        let req = f.clone();
        let fx = Fixture::new(id0);
        let v = fx.run(&mut f);
        prop_assert_eq!(v, expected);
        if let Verdict::Reply { .. } = v {
            check_reply(&req, &f, id0)?;
        }
        check_bookkeeping(&fx, v, id0)?;
    }
}

proptest! {
    /// Any source address, the first octets at the edges of the martian
    /// ranges as often as the rest, in a frame with every checksum right:
    /// 0/8, 127/8 and 224/4 and above are refused as martian, the rest served.
    #[test]
    fn martian_sources_are_refused_and_only_they(
        mut ip in ip_to(Just(SERVER)),
        l4 in served_l4(64),
        first in prop_oneof![
            select(vec![0u8, 1, 126, 127, 128, 223, 224, 255]),
            any::<u8>(),
        ],
        rest in any::<[u8; 3]>(),
        id0 in any::<u16>(),
    ) {
        ip.src = Ipv4Addr::new(first, rest[0], rest[1], rest[2]);
        let req = build(&ip, &l4);
        let expected = if matches!(first, 0 | 127 | 224..=255) {
            Verdict::Drop(DropReason::MartianSource)
        } else {
            l4.served(ipv4::HEADER_LEN + l4.ip_payload_len())
        };
        let fx = Fixture::new(id0);
        let mut f = req.clone();
        let v = fx.run(&mut f);
        prop_assert_eq!(v, expected, "source {}", ip.src);
        if let Verdict::Reply { .. } = v {
            check_reply(&req, &f, id0)?;
        }
        check_bookkeeping(&fx, v, id0)?;
    }
}

// ---------------------------------------------------------------------------
// ARP

/// A request for one of the VIPs, broadcast or to our MAC, from a random
/// unicast requester in 198.18.0.0/15 (or an RFC 5227 probe from 0.0.0.0),
/// with any target hardware address and random padding.
fn arp_request() -> impl Strategy<Value = Arp> {
    (
        prop_oneof![Just(BROADCAST), Just(SERVER_MAC)],
        unicast_mac(),
        prop_oneof![4 => lab_addr(), 1 => Just(Ipv4Addr::UNSPECIFIED)],
        prop_oneof![Just([0u8; 6]), any::<[u8; 6]>()],
        select(VIPS.to_vec()),
        prop_oneof![Just(Vec::new()), Just(vec![0u8; 18]), vec(any::<u8>(), 0..40)],
    )
        .prop_map(|(eth_dst, mac, spa, tha, tpa, pad)| Arp {
            eth_dst,
            eth_src: mac,
            op: ArpOperation::Request as u16,
            sha: mac,
            spa,
            tha,
            tpa,
            pad,
        })
}

/// One reason to leave an ARP request alone.
#[derive(Clone, Debug)]
enum ArpFault {
    /// The Ethernet source is a group address.
    SrcGroup([u8; 6]),
    /// Unicast to another host.
    DstElsewhere([u8; 6]),
    /// To a multicast group (not broadcast).
    DstMulticast([u8; 6]),
    /// An operation other than request.
    Op(u16),
    /// A target address sluice does not answer for.
    Target(Ipv4Addr),
    /// The sender hardware address: the requester's XORed with this (non-zero) mask.
    ShaMismatch([u8; 6]),
    /// Sender address = target address: someone claims the VIP.
    Gratuitous,
    /// A martian sender other than 0.0.0.0.
    MartianSender(Ipv4Addr),
    /// One of the six htype/ptype/hlen/plen bytes: its valid value XORed with a non-zero one.
    Header(usize, u8),
    /// The frame cut before the end of the ARP packet.
    Cut(usize),
}

fn arp_fault() -> impl Strategy<Value = ArpFault> {
    prop_oneof![
        group_mac().prop_map(ArpFault::SrcGroup),
        unicast_mac().prop_filter("ours", |m| *m != SERVER_MAC).prop_map(ArpFault::DstElsewhere),
        group_mac().prop_filter("broadcast", |m| *m != BROADCAST).prop_map(ArpFault::DstMulticast),
        any::<u16>().prop_filter("a request", |&o| o != 1).prop_map(ArpFault::Op),
        prop_oneof![Just(SERVER), lab_addr(), any::<u32>().prop_map(Ipv4Addr::from)]
            .prop_filter("a VIP", |a| !VIPS.contains(a))
            .prop_map(ArpFault::Target),
        any::<[u8; 6]>().prop_filter("zero", |m| *m != [0; 6]).prop_map(ArpFault::ShaMismatch),
        Just(ArpFault::Gratuitous),
        martian_addr().prop_filter("a probe", |a| !a.is_unspecified()).prop_map(ArpFault::MartianSender),
        (0usize..6, 1u8..=255).prop_map(|(at, x)| ArpFault::Header(at, x)),
        (0usize..ethernet::HEADER_LEN + arp::PACKET_LEN).prop_map(ArpFault::Cut),
    ]
}

proptest! {
    /// Valid requests for a VIP get the reply in place: to the requester's
    /// MAC from ours, operation 2, our MAC for the VIP, the requester's
    /// addresses as target (0.0.0.0 for a probe), padding kept, the length
    /// of the request up to the 60-byte minimum frame (longer padding is not
    /// echoed). A request whose sender claims the VIP is refused.
    #[test]
    fn arp_requests_for_a_vip_get_an_exact_reply(req in arp_request(), id0 in any::<u16>()) {
        let mut f = build_arp(&req);
        let orig = f.clone();
        let fx = Fixture::new(id0);
        let v = fx.run(&mut f);
        if req.spa == req.tpa {
            prop_assert_eq!(v, Verdict::Drop(DropReason::ArpUnsupported));
        } else {
            prop_assert_eq!(v, Verdict::Reply { len: (orig.len() as u32).min(60), tally: Counter::ArpReplied });
            let mut e = orig.clone();
            e[0..6].copy_from_slice(&req.sha);
            e[6..12].copy_from_slice(&SERVER_MAC);
            e[IP + 6..IP + 8].copy_from_slice(&[0, 2]);
            e[IP + 8..IP + 14].copy_from_slice(&SERVER_MAC);
            e[IP + 14..IP + 18].copy_from_slice(&req.tpa.octets());
            e[IP + 18..IP + 24].copy_from_slice(&req.sha);
            e[IP + 24..IP + 28].copy_from_slice(&req.spa.octets());
            prop_assert!(f == e, "reply differs at byte {:?}", first_diff(&f, &e));
            let a = arp::Packet::new_checked(&f[IP..]).unwrap();
            prop_assert_eq!(
                ArpRepr::parse(&a),
                Ok(ArpRepr {
                    operation: ArpOperation::Reply,
                    sender_hw_addr: EthernetAddress(SERVER_MAC),
                    sender_proto_addr: req.tpa,
                    target_hw_addr: EthernetAddress(req.sha),
                    target_proto_addr: req.spa,
                })
            );
        }
        prop_assert_eq!(fx.ip_id.get(), id0, "ARP takes no IP ID");
        prop_assert_eq!(fx.count(Counter::FlowsClaimed), 0, "ARP is stateless");
        prop_assert_eq!(fx.count(Counter::ArpReplied), 0, "counted when sent");
    }

    /// A request with one or more faults is left alone: cut inside the
    /// Ethernet header → truncated; from a group address → not unicast
    /// (checked first); any other fault → ARP unsupported.
    #[test]
    fn faulty_arp_is_refused_with_its_exact_reason(
        mut req in arp_request(),
        faults in vec(arp_fault(), 1..4),
        id0 in any::<u16>(),
    ) {
        let mut cut = None;
        let mut header = Vec::new();
        let requester = req.eth_src;
        for fault in &faults {
            match *fault {
                ArpFault::SrcGroup(m) => req.eth_src = m,
                ArpFault::DstElsewhere(m) | ArpFault::DstMulticast(m) => req.eth_dst = m,
                ArpFault::Op(o) => req.op = o,
                ArpFault::Target(a) => req.tpa = a,
                ArpFault::ShaMismatch(x) => req.sha = std::array::from_fn(|i| requester[i] ^ x[i]),
                ArpFault::Gratuitous => req.spa = req.tpa,
                ArpFault::MartianSender(a) => req.spa = a,
                ArpFault::Header(at, x) => header.push((at, x)),
                ArpFault::Cut(c) => cut = Some(cut.map_or(c, |d: usize| d.min(c))),
            }
        }
        let mut f = build_arp(&req);
        let valid = f.clone();
        for (at, x) in header {
            f[IP + at] = valid[IP + at] ^ x;
        }
        if let Some(c) = cut {
            f.truncate(c);
        }
        let expected = if cut.is_some_and(|c| c < ethernet::HEADER_LEN) {
            DropReason::EthTruncated
        } else if req.eth_src[0] & 1 != 0 {
            DropReason::NotUnicast
        } else {
            DropReason::ArpUnsupported
        };
        let fx = Fixture::new(id0);
        prop_assert_eq!(fx.run(&mut f), Verdict::Drop(expected));
        prop_assert_eq!(fx.ip_id.get(), id0);
        prop_assert_eq!(fx.count(Counter::FlowsClaimed), 0);
    }
}
