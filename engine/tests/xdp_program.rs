//! The real XDP program (`ebpf/c/sluice_xdp.c`), run by the kernel with
//! BPF_PROG_TEST_RUN on hand-built frames: for each frame the program's
//! return value and which one of its per-CPU counters moved.
//!
//! They need root (CAP_BPF); without it they say so in one line and return,
//! and with `CI` set they fail instead. The table needs no lab (the program
//! is run, not attached); the redirect case opens an AF_XDP socket on a veth
//! of a lab and runs there.
use sluice_ebpf::abi::{ServiceKey, XdpCounters};
use sluice_engine::afxdp::{open_queues, BindMode, FrameTable};
use sluice_engine::steering::{Steering, XdpCounterReader};
use sluice_lab::{Lab, LabConfig, Side};
use std::net::{IpAddr, Ipv4Addr};

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// The service address (UDP 7, TCP 80, ICMP echo).
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// An address sluice answers ARP for (it has an ARP key).
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// An address with no key at all.
const OTHER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 4);
/// An address whose every TCP port is steered (a port-0 key).
const WILD: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 5);
const UDP_PORT: u16 = 7;
const TCP_PORT: u16 = 80;

const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const BROADCAST: [u8; 6] = [0xff; 6];

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const ETH_IPV6: u16 = 0x86dd;
const ETH_8021Q: u16 = 0x8100;
const ETH_8021AD: u16 = 0x88a8;
const ETH_LLDP: u16 = 0x88cc;

const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const GRE: u8 = 47;

const IP_MF: u16 = 0x2000;
const IP_DF: u16 = 0x4000;

// ---------------------------------------------------------------- frames

/// The Internet checksum (RFC 1071) of `parts`, concatenated.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        match odd.take() {
            None => odd = Some(b),
            Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet frame with one VLAN tag (`tpid` 0x8100 or 0x88a8), VLAN 100.
fn eth_tagged(tpid: u16, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(4 + payload.len());
    inner.extend_from_slice(&100u16.to_be_bytes());
    inner.extend_from_slice(&ethertype.to_be_bytes());
    inner.extend_from_slice(payload);
    eth(SERVER_MAC, tpid, &inner)
}

/// Sets the IPv4 header checksum of `ip` (over its IHL words, or what the
/// buffer has of them).
fn fix_ip_checksum(ip: &mut [u8]) {
    let hlen = (usize::from(ip[0] & 0x0f) * 4).min(ip.len());
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&[&ip[..hlen]]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
}

/// An IPv4 packet from CLIENT to `dst`, with `options` (a multiple of 4
/// bytes) and `frag` (flags and fragment offset, as on the wire).
fn ipv4_with(proto: u8, dst: Ipv4Addr, frag: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0, "IPv4 options come in 32-bit words");
    let hlen = 20 + options.len();
    let total = (hlen + payload.len()) as u16;
    let mut ip = Vec::with_capacity(hlen + payload.len());
    ip.push(0x40 | (hlen / 4) as u8);
    ip.push(0); // DSCP/ECN
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&0x1234u16.to_be_bytes()); // ID
    ip.extend_from_slice(&frag.to_be_bytes());
    ip.push(64); // TTL
    ip.push(proto);
    ip.extend_from_slice(&[0, 0]); // checksum, below
    ip.extend_from_slice(&CLIENT.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(options);
    ip.extend_from_slice(payload);
    fix_ip_checksum(&mut ip);
    ip
}

fn ipv4(proto: u8, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    ipv4_with(proto, dst, IP_DF, &[], payload)
}

/// The TCP/UDP checksum of `segment` (its checksum field zero) from CLIENT to `dst`.
fn l4_checksum(proto: u8, dst: Ipv4Addr, segment: &[u8]) -> u16 {
    let len = (segment.len() as u16).to_be_bytes();
    let pseudo = [&CLIENT.octets()[..], &dst.octets()[..], &[0, proto], &len[..]].concat();
    checksum(&[&pseudo, segment])
}

fn udp(dst: Ipv4Addr, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&40000u16.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    let c = match l4_checksum(UDP, dst, &u) {
        0 => 0xffff,
        c => c,
    };
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

/// A TCP SYN without options.
fn tcp_syn(dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&40000u16.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes()); // seq
    t.extend_from_slice(&0u32.to_be_bytes()); // ack
    t.push(5 << 4); // data offset
    t.push(0x02); // SYN
    t.extend_from_slice(&64240u16.to_be_bytes()); // window
    t.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    let c = l4_checksum(TCP, dst, &t);
    t[16..18].copy_from_slice(&c.to_be_bytes());
    t
}

/// An ICMP message of `icmp_type` (8 echo request, 0 echo reply, ...).
fn icmp(icmp_type: u8, code: u8) -> Vec<u8> {
    let mut m = vec![icmp_type, code, 0, 0, 0x00, 0x2a, 0x00, 0x01];
    m.extend_from_slice(b"sluice-ping");
    let c = checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An Ethernet/IPv4 ARP packet (`oper` 1 request, 2 reply) from CLIENT for `target`.
fn arp(oper: u16, target: Ipv4Addr) -> Vec<u8> {
    let mut a = Vec::with_capacity(28);
    a.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
    a.extend_from_slice(&ETH_IPV4.to_be_bytes());
    a.extend_from_slice(&[6, 4]);
    a.extend_from_slice(&oper.to_be_bytes());
    a.extend_from_slice(&CLIENT_MAC);
    a.extend_from_slice(&CLIENT.octets());
    a.extend_from_slice(if oper == 1 { &[0; 6] } else { &SERVER_MAC });
    a.extend_from_slice(&target.octets());
    a
}

/// IPv4-mapped IPv6 address of a lab address (the frames stay in 198.18.0.0/15).
fn mapped(a: Ipv4Addr) -> [u8; 16] {
    a.to_ipv6_mapped().octets()
}

fn ipv6(next_header: u8, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(40 + payload.len());
    p.extend_from_slice(&[0x60, 0, 0, 0]);
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next_header);
    p.push(64); // hop limit
    p.extend_from_slice(&mapped(CLIENT));
    p.extend_from_slice(&mapped(dst));
    p.extend_from_slice(payload);
    p
}

fn udp_frame(dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    eth(SERVER_MAC, ETH_IPV4, &ipv4(UDP, dst, &udp(dst, dport, b"hello")))
}

/// `frame` truncated to `len` bytes.
fn cut(mut frame: Vec<u8>, len: usize) -> Vec<u8> {
    frame.truncate(len);
    frame
}

/// `struct xdp_md` as BPF_PROG_TEST_RUN takes it: data, data_end, data_meta,
/// ingress_ifindex, rx_queue_index, egress_ifindex (native-endian u32); no
/// metadata here, so `data` is 0.
///
/// What the kernel checks (net/bpf/test_run.c, bpf_prog_test_run_xdp, as of
/// 6.18): `data_meta` 0; `data` (the metadata length in front of the
/// packet) a multiple of 4, at most 32; `data_end` (the end of the linear
/// part) not beyond the data passed in, the rest becoming a fragment (since
/// commit fe9544ed1a2e; before it `data_end` had to equal the data length);
/// `egress_ifindex` 0; and `ingress_ifindex` is looked up in the caller's
/// network namespace (ENODEV if absent, EINVAL unless `rx_queue_index` is
/// below its real_num_rx_queues). All else is EINVAL.
fn xdp_md(data_end: usize, ingress_ifindex: u32, rx_queue_index: u32) -> [u8; 24] {
    let fields = [0, data_end as u32, 0, ingress_ifindex, rx_queue_index, 0];
    let mut b = [0u8; 24];
    for (chunk, v) in b.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    b
}

// ---------------------------------------------------------------- the runs

/// One frame for the program: the data passed in, the optional context,
/// and what is expected.
struct Case {
    name: &'static str,
    data: Vec<u8>,
    ctx: Option<[u8; 24]>,
    ret: u32,
    /// The counter that moves by one (a field name of `XdpCounters`).
    counter: &'static str,
}

fn case(name: &'static str, frame: Vec<u8>, ret: u32, counter: &'static str) -> Case {
    Case { name, data: frame, ctx: None, ret, counter }
}

/// A frame of which the program sees only the first `linear` bytes.
///
/// BPF_PROG_TEST_RUN refuses packets under 14 bytes (EINVAL, see
/// `test_run_refuses_data_shorter_than_ethernet`), metadata not counted, so
/// a frame shorter than an Ethernet header cannot be passed as such. The
/// context can end the linear part early instead: the program's
/// `data_end` is then `linear` bytes in and the rest of `frame` lies in a
/// fragment, which direct packet access does not reach. To the program that
/// is a `linear`-byte frame.
fn runt(name: &'static str, frame: Vec<u8>, linear: usize, counter: &'static str) -> Case {
    assert!(frame.len() >= 14 && linear < 14, "a runt is cut inside the Ethernet header");
    let ctx = xdp_md(linear, 0, 0);
    Case { name, data: frame, ctx: Some(ctx), ret: XDP_PASS, counter }
}

/// Runs `c` once; `None` if the return value and the counters are as
/// expected, else what differed.
fn check(steering: &Steering, counters: &XdpCounterReader, c: &Case) -> Option<String> {
    let before = counters.total();
    let ret = match steering.test_run(&c.data, c.ctx.as_ref().map(|b| &b[..])) {
        Ok(r) => r,
        Err(e) => return Some(format!("{}: {e}", c.name)),
    };
    let after = counters.total();
    let mut expected = before.fields();
    let slot = expected.iter_mut().find(|(k, _)| *k == c.counter).expect("a counter of XdpCounters");
    slot.1 += 1;
    let moved = diff(&before, &after);
    if ret != c.ret || after.fields() != expected {
        Some(format!("{}: returned {ret} (want {}), counters moved {moved:?} (want [{:?}])", c.name, c.ret, c.counter))
    } else {
        None
    }
}

/// The counters that changed between `a` and `b`, by how much.
fn diff(a: &XdpCounters, b: &XdpCounters) -> Vec<(&'static str, i128)> {
    a.fields()
        .iter()
        .zip(b.fields())
        .filter(|((_, x), (_, y))| x != y)
        .map(|((k, x), (_, y))| (*k, i128::from(y) - i128::from(*x)))
        .collect()
}

fn load_with_services() -> (Steering, XdpCounterReader) {
    let (mut steering, counters) = Steering::load().expect("load the XDP program");
    steering.add_service(ServiceKey::new(UDP, IpAddr::V4(SERVER), UDP_PORT), 0).unwrap();
    steering.add_service(ServiceKey::new(TCP, IpAddr::V4(SERVER), TCP_PORT), 1).unwrap();
    steering.add_service(ServiceKey::icmp_echo(SERVER), u32::MAX).unwrap();
    steering.add_service(ServiceKey::arp(VIP), u32::MAX).unwrap();
    // Every TCP port of WILD (the bench generator's kind of key).
    steering.add_service(ServiceKey::new(TCP, IpAddr::V4(WILD), 0), 2).unwrap();
    (steering, counters)
}

fn table() -> Vec<Case> {
    let udp_to_service = ipv4(UDP, SERVER, &udp(SERVER, UDP_PORT, b"hello"));
    let mut ihl4 = udp_to_service.clone();
    ihl4[0] = 0x44;
    fix_ip_checksum(&mut ihl4);
    let mut version6 = udp_to_service.clone();
    version6[0] = 0x65;
    fix_ip_checksum(&mut version6);
    // Record route (type 7), 3 bytes + pointer, padded with end-of-options.
    let record_route = [7, 3, 4, 0];
    let udp_payload = udp(SERVER, UDP_PORT, b"hello");

    vec![
        // --- too short, bad headers
        runt("13-byte frame (shorter than Ethernet)", udp_frame(SERVER, UDP_PORT), 13, "malformed"),
        runt("empty frame", udp_frame(SERVER, UDP_PORT), 0, "malformed"),
        case("IPv4 IHL 4", eth(SERVER_MAC, ETH_IPV4, &ihl4), XDP_PASS, "malformed"),
        case("IPv4 version 6 under ethertype 0x0800", eth(SERVER_MAC, ETH_IPV4, &version6), XDP_PASS, "malformed"),
        case(
            "IPv4 header truncated (19 of 20 bytes)",
            cut(udp_frame(SERVER, UDP_PORT), 14 + 19),
            XDP_PASS,
            "malformed",
        ),
        case("UDP header truncated (2 bytes)", cut(udp_frame(SERVER, UDP_PORT), 14 + 20 + 2), XDP_PASS, "malformed"),
        case(
            "TCP header truncated (3 bytes)",
            cut(eth(SERVER_MAC, ETH_IPV4, &ipv4(TCP, SERVER, &tcp_syn(SERVER, TCP_PORT))), 14 + 20 + 3),
            XDP_PASS,
            "malformed",
        ),
        case(
            "ICMP header truncated (3 bytes)",
            cut(eth(SERVER_MAC, ETH_IPV4, &ipv4(ICMP, SERVER, &icmp(8, 0))), 14 + 20 + 3),
            XDP_PASS,
            "malformed",
        ),
        case(
            "ARP request truncated (fixed part only)",
            cut(eth(BROADCAST, ETH_ARP, &arp(1, VIP)), 14 + 8),
            XDP_PASS,
            "malformed",
        ),
        case(
            "IPv6 header truncated (39 of 40 bytes)",
            cut(eth(SERVER_MAC, ETH_IPV6, &ipv6(UDP, SERVER, &[])), 14 + 39),
            XDP_PASS,
            "malformed",
        ),
        // --- handed to the kernel on purpose
        case("802.1Q-tagged UDP to a service", eth_tagged(ETH_8021Q, ETH_IPV4, &udp_to_service), XDP_PASS, "vlan"),
        case("802.1ad-tagged UDP to a service", eth_tagged(ETH_8021AD, ETH_IPV4, &udp_to_service), XDP_PASS, "vlan"),
        case(
            "0x9100 (old QinQ) tagged UDP to a service",
            eth_tagged(0x9100, ETH_IPV4, &udp_to_service),
            XDP_PASS,
            "vlan",
        ),
        case(
            "IPv4 with options (IHL 6) to a service",
            eth(SERVER_MAC, ETH_IPV4, &ipv4_with(UDP, SERVER, IP_DF, &record_route, &udp_payload)),
            XDP_PASS,
            "ip_options",
        ),
        case(
            "first fragment (MF) to a service",
            eth(SERVER_MAC, ETH_IPV4, &ipv4_with(UDP, SERVER, IP_MF, &[], &udp_payload)),
            XDP_PASS,
            "fragments",
        ),
        case(
            "middle fragment (MF, offset 185) to a service",
            eth(SERVER_MAC, ETH_IPV4, &ipv4_with(UDP, SERVER, IP_MF | 185, &[], b"middle..")),
            XDP_PASS,
            "fragments",
        ),
        case(
            "last fragment (offset 185) to a service",
            eth(SERVER_MAC, ETH_IPV4, &ipv4_with(UDP, SERVER, 185, &[], b"tail")),
            XDP_PASS,
            "fragments",
        ),
        case(
            "IPv6 UDP",
            eth(SERVER_MAC, ETH_IPV6, &ipv6(UDP, SERVER, &udp(SERVER, UDP_PORT, b"hello"))),
            XDP_PASS,
            "ipv6",
        ),
        // --- not a service
        case("UDP to a port that is not a service", udp_frame(SERVER, 9), XDP_PASS, "passed"),
        case("UDP to the service port of another address", udp_frame(OTHER, UDP_PORT), XDP_PASS, "passed"),
        case(
            "TCP to a port served only for UDP",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(TCP, SERVER, &tcp_syn(SERVER, UDP_PORT))),
            XDP_PASS,
            "passed",
        ),
        case(
            "ICMP echo reply to a service address",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(ICMP, SERVER, &icmp(0, 0))),
            XDP_PASS,
            "passed",
        ),
        case(
            "ICMP port unreachable to a service address",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(ICMP, SERVER, &icmp(3, 3))),
            XDP_PASS,
            "passed",
        ),
        case(
            "ICMP echo request to an address without a key",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(ICMP, OTHER, &icmp(8, 0))),
            XDP_PASS,
            "passed",
        ),
        case("GRE to a service address", eth(SERVER_MAC, ETH_IPV4, &ipv4(GRE, SERVER, &[0; 8])), XDP_PASS, "passed"),
        case("ARP reply from an address with an ARP key", eth(SERVER_MAC, ETH_ARP, &arp(2, VIP)), XDP_PASS, "passed"),
        case(
            "ARP request for an address without an ARP key",
            eth(BROADCAST, ETH_ARP, &arp(1, OTHER)),
            XDP_PASS,
            "passed",
        ),
        case("LLDP", eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], ETH_LLDP, &[0; 32]), XDP_PASS, "passed"),
        // --- steered, but queue 0 has no socket
        case("UDP to a service", udp_frame(SERVER, UDP_PORT), XDP_PASS, "no_socket"),
        case(
            "TCP SYN to a service",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(TCP, SERVER, &tcp_syn(SERVER, TCP_PORT))),
            XDP_PASS,
            "no_socket",
        ),
        case(
            "ICMP echo request to a service address",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(ICMP, SERVER, &icmp(8, 0))),
            XDP_PASS,
            "no_socket",
        ),
        case(
            "ARP request for an address with an ARP key",
            eth(BROADCAST, ETH_ARP, &arp(1, VIP)),
            XDP_PASS,
            "no_socket",
        ),
        // --- a port-0 key takes every port of its address, for its protocol only
        case(
            "TCP to any port of an address with a port-0 key",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(TCP, WILD, &tcp_syn(WILD, 4242))),
            XDP_PASS,
            "no_socket",
        ),
        case(
            "UDP to an address with a TCP port-0 key",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(UDP, WILD, &udp(WILD, 4242, b"x"))),
            XDP_PASS,
            "passed",
        ),
        case(
            "TCP to an unlisted port of a service address",
            eth(SERVER_MAC, ETH_IPV4, &ipv4(TCP, SERVER, &tcp_syn(SERVER, 4242))),
            XDP_PASS,
            "passed",
        ),
    ]
}

#[test]
fn every_frame_gets_its_verdict_and_its_counter() {
    if !sluice_lab::root_or_skip("every_frame_gets_its_verdict_and_its_counter") {
        return;
    }
    let (steering, counters) = load_with_services();
    let cases = table();
    let failures: Vec<String> = cases.iter().filter_map(|c| check(&steering, &counters, c)).collect();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn test_run_refuses_data_shorter_than_ethernet() {
    // Why the runts above are cut by the context: BPF_PROG_TEST_RUN itself
    // refuses fewer than 14 bytes of packet data (metadata not counted)
    // before the program runs.
    if !sluice_lab::root_or_skip("test_run_refuses_data_shorter_than_ethernet") {
        return;
    }
    let (steering, counters) = load_with_services();
    let err = steering.test_run(&[0u8; 13], None).expect_err("13 bytes of data are refused");
    assert!(err.to_string().contains("os error 22"), "want EINVAL, got: {err}");
    assert_eq!(counters.total(), XdpCounters::default(), "the program did not run");
}

/// With an AF_XDP socket in `xsks[0]` the program redirects service frames
/// of queue 0. The context says the frame came in on queue 0 of the veth the
/// socket is bound to, as a real one would. A plain test run reports the
/// program's verdict but does not carry out the redirect (only
/// BPF_F_TEST_XDP_LIVE_FRAMES would, and that reports no return value), so
/// nothing reaches the socket's rx ring here; and since the program looks
/// only at `rx_queue_index`, it would say XDP_REDIRECT without the context
/// too (loopback, queue 0).
#[test]
fn a_service_frame_is_redirected_to_the_socket_of_its_queue() {
    if !sluice_lab::root_or_skip("a_service_frame_is_redirected_to_the_socket_of_its_queue") {
        return;
    }
    let lab = Lab::up(LabConfig::unique("xdptr").with_queues(1)).expect("lab up");
    let ifname = lab.interface(Side::Server).to_string();
    let failures = Lab::run_in(&lab.server_ns, move || {
        let ifindex = nix::net::if_::if_nametoindex(ifname.as_str()).expect("the server veth has an index");
        let (mut steering, counters) = load_with_services();
        let table = FrameTable::create(128, 4096).expect("UMEM");
        let sockets = open_queues(&table, ifindex, 1, 64, BindMode::Auto).expect("AF_XDP socket on queue 0");
        steering.set_socket(0, &sockets[0]).expect("xsks[0]");

        let on_queue0 = |frame: Vec<u8>| {
            let ctx = xdp_md(frame.len(), ifindex, 0);
            (frame, Some(ctx))
        };
        let cases = [
            ("UDP to a service on queue 0", on_queue0(udp_frame(SERVER, UDP_PORT)), XDP_REDIRECT, "redirected"),
            (
                "ARP request for an address with an ARP key on queue 0",
                on_queue0(eth(BROADCAST, ETH_ARP, &arp(1, VIP))),
                XDP_REDIRECT,
                "redirected",
            ),
            ("UDP to a port that is not a service on queue 0", on_queue0(udp_frame(SERVER, 9)), XDP_PASS, "passed"),
        ];
        let failures: Vec<String> = cases
            .into_iter()
            .filter_map(|(name, (data, ctx), ret, counter)| {
                check(&steering, &counters, &Case { name, data, ctx, ret, counter })
            })
            .collect();
        drop(steering);
        drop(sockets);
        failures
    })
    .expect("run in the server namespace");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    lab.down().expect("lab down");
}
