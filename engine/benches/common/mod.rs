//! Frames for the engine's benchmarks, built with the wire module's own
//! emitters (so every checksum is right) between a client and the server
//! the service table answers for.
//!
//! Each bench is its own crate and uses only some of these.
#![allow(dead_code)]

use sluice_engine::config::Config;
use sluice_engine::datapath::ServiceTable;
use sluice_engine::wire::ethernet::{self, ethertype};
use sluice_engine::wire::{ip_proto, ipv4, EthernetAddress, EthernetFrame, Ipv4Packet, Ipv4Repr, TcpOption};
use sluice_engine::wire::{TcpSegment, UdpDatagram, UdpRepr};
use std::net::Ipv4Addr;

pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const CLIENT_PORT: u16 = 40000;
/// UDP echo and TCP echo both listen here.
pub const ECHO_PORT: u16 = 7;

/// Ethernet + IPv4 headers (no IP options).
const L3: usize = ethernet::HEADER_LEN + ipv4::HEADER_LEN;

/// Writes the Ethernet and IPv4 headers of a client → server frame whose
/// IPv4 payload is `l4_len` bytes long (already in place after them).
fn l2_l3(frame: &mut [u8], proto: u8, l4_len: usize) {
    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    eth.set_dst_addr(SERVER_MAC);
    eth.set_src_addr(CLIENT_MAC);
    eth.set_ethertype(ethertype::IPV4);
    let repr = Ipv4Repr { src_addr: CLIENT, dst_addr: SERVER, protocol: proto, payload_len: l4_len, ttl: 64 };
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut frame[ethernet::HEADER_LEN..]));
}

/// A UDP datagram client:40000 → server:7 with `payload_len` bytes of
/// payload; padded to the 60-byte Ethernet minimum like a frame on the wire.
pub fn udp_frame(payload_len: usize) -> Vec<u8> {
    let l4_len = 8 + payload_len;
    let mut f = vec![0u8; (L3 + l4_len).max(60)];
    for (i, b) in f[L3 + 8..L3 + l4_len].iter_mut().enumerate() {
        *b = i as u8;
    }
    let repr = UdpRepr { src_port: CLIENT_PORT, dst_port: ECHO_PORT, payload_len };
    repr.emit(&mut UdpDatagram::new_unchecked(&mut f[L3..L3 + l4_len]), CLIENT, SERVER);
    l2_l3(&mut f, ip_proto::UDP, l4_len);
    f
}

/// TCP header options as a client puts them in its SYN (Linux's layout):
/// MSS, SACK permitted, timestamps, NOP, window scale; 20 bytes.
pub fn syn_options() -> Vec<TcpOption> {
    vec![
        TcpOption::MaxSegmentSize(1460),
        TcpOption::SackPermitted,
        TcpOption::Timestamps { tsval: 0x0102_0304, tsecr: 0 },
        TcpOption::NoOperation,
        TcpOption::WindowScale(7),
    ]
}

/// The options of a data segment on a connection with timestamps: NOP,
/// NOP, timestamps; 12 bytes.
pub fn data_options() -> Vec<TcpOption> {
    vec![
        TcpOption::NoOperation,
        TcpOption::NoOperation,
        TcpOption::Timestamps { tsval: 0x0102_0304, tsecr: 0x0a0b_0c0d },
    ]
}

/// A TCP segment client:40000 → server:7 with `flags` (the low byte of the
/// header's flag bits), `opts` (padded with EOL to a multiple of 4) and
/// `payload_len` bytes of payload.
pub fn tcp_frame(flags: u8, opts: &[TcpOption], payload_len: usize) -> Vec<u8> {
    let opt_len = opts.iter().map(|o| o.buffer_len()).sum::<usize>().next_multiple_of(4);
    let header_len = 20 + opt_len;
    let l4_len = header_len + payload_len;
    let mut f = vec![0u8; (L3 + l4_len).max(60)];
    {
        let mut seg = TcpSegment::new_unchecked(&mut f[L3..L3 + l4_len]);
        seg.set_src_port(CLIENT_PORT);
        seg.set_dst_port(ECHO_PORT);
        seg.set_seq_number(0x1000_0000);
        seg.set_ack_number(if flags & 0x10 != 0 { 0x2000_0000 } else { 0 });
        seg.set_header_len(header_len);
        seg.set_flags(u16::from(flags));
        seg.set_window_len(0x0200);
        let mut at = 0;
        let options = seg.options_mut();
        for o in opts {
            at += o.emit(&mut options[at..]);
        }
        for (i, b) in seg.payload_mut().iter_mut().enumerate() {
            *b = i as u8;
        }
        seg.fill_checksum(CLIENT, SERVER, l4_len);
    }
    l2_l3(&mut f, ip_proto::TCP, l4_len);
    f
}

/// The service table of a server with UDP and TCP echo on port 7, replying
/// from `SERVER_MAC`.
pub fn services() -> ServiceTable {
    let cfg = Config::parse(
        r#"
[engine]
interface = "sluice0"
[[service]]
name = "udp-echo"
proto = "udp"
listen = "198.18.0.2:7"
kind = "echo"
[[service]]
name = "tcp-echo"
proto = "tcp"
listen = "198.18.0.2:7"
kind = "echo"
"#,
        "bench",
    )
    .expect("the bench's configuration is valid");
    let mut t = ServiceTable::from_config(&cfg);
    t.set_mac(SERVER_MAC);
    t
}
