//! Wire parsing and checksums (`sluice_engine::wire`).
//!
//! `parse/*`: one received frame read the way the datapath reads it:
//! Ethernet header, IPv4 header with its checksum, then the transport
//! header with its checksum over the payload, and for TCP the options
//! (both the wire module's option iterator and `sluice_tcp`'s
//! `parse_options`, which the datapath uses). Throughput is frames.
//!
//! `checksum/*`: the full Internet checksum over a buffer (bytes) and the
//! RFC 1624 incremental updates (one update per element).
#![forbid(unsafe_code)]

mod common;

use common::{data_options, syn_options, tcp_frame, udp_frame};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_engine::wire::{checksum, ethernet, ip_proto, EthernetFrame, Ipv4Packet, Ipv4Repr, TcpSegment};
use sluice_engine::wire::{UdpDatagram, UdpRepr, WireError};
use std::hint::black_box;

/// Ethernet + IPv4 + UDP, checksums verified; returns the ports and the
/// payload length.
fn parse_udp(frame: &[u8]) -> Result<(u16, u16, usize), WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return Err(WireError::Unsupported);
    }
    let ip = Ipv4Packet::new_checked(eth.payload())?;
    let ip_repr = Ipv4Repr::parse(&ip, true)?;
    if ip_repr.protocol != ip_proto::UDP {
        return Err(WireError::Unsupported);
    }
    let dgram = UdpDatagram::new_checked(ip.payload())?;
    let udp = UdpRepr::parse(&dgram, ip_repr.src_addr, ip_repr.dst_addr, true)?;
    Ok((udp.src_port, udp.dst_port, udp.payload_len))
}

/// What the TCP parse reads out of a segment.
#[derive(Debug, Default)]
struct TcpSummary {
    ports: (u16, u16),
    seq: u32,
    ack: u32,
    flags: u16,
    wnd: u16,
    options: u32,
    payload: usize,
}

/// Ethernet + IPv4 + TCP, checksums verified, options walked with the wire
/// module's iterator.
fn parse_tcp(frame: &[u8]) -> Result<TcpSummary, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != ethernet::ethertype::IPV4 {
        return Err(WireError::Unsupported);
    }
    let ip = Ipv4Packet::new_checked(eth.payload())?;
    let ip_repr = Ipv4Repr::parse(&ip, true)?;
    if ip_repr.protocol != ip_proto::TCP {
        return Err(WireError::Unsupported);
    }
    let l4 = ip.payload();
    let seg = TcpSegment::new_checked(l4)?;
    if !seg.verify_checksum(ip_repr.src_addr, ip_repr.dst_addr, l4.len()) {
        return Err(WireError::BadChecksum);
    }
    let mut options = 0;
    for o in seg.options_iter() {
        o?;
        options += 1;
    }
    Ok(TcpSummary {
        ports: (seg.src_port(), seg.dst_port()),
        seq: seg.seq_number(),
        ack: seg.ack_number(),
        flags: seg.flags(),
        wnd: seg.window_len(),
        options,
        payload: l4.len() - seg.header_len(),
    })
}

/// As [`parse_tcp`], with the options parsed into the state machine's form
/// (`sluice_tcp::segment::parse_options`), as the datapath does.
fn parse_tcp_for_stack(frame: &[u8]) -> Option<(u32, sluice_tcp::segment::Options)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip_repr = Ipv4Repr::parse(&ip, true).ok()?;
    let l4 = ip.payload();
    let seg = TcpSegment::new_checked(l4).ok()?;
    if !seg.verify_checksum(ip_repr.src_addr, ip_repr.dst_addr, l4.len()) {
        return None;
    }
    let opts = sluice_tcp::segment::parse_options(seg.options(), seg.syn()).ok()?;
    Some((seg.seq_number(), opts))
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));

    for payload in [18usize, 1472] {
        let f = udp_frame(payload);
        assert_eq!(parse_udp(&f), Ok((common::CLIENT_PORT, common::ECHO_PORT, payload)), "the UDP frame parses");
        g.bench_with_input(BenchmarkId::new("eth_ipv4_udp", f.len()), &f, |b, f| b.iter(|| parse_udp(black_box(f))));
    }

    let syn = tcp_frame(0x02, &syn_options(), 0);
    let data_small = tcp_frame(0x18, &data_options(), 64);
    let data_full = tcp_frame(0x18, &data_options(), 1448);
    for (name, f, flags, n_opts, payload) in [
        ("eth_ipv4_tcp_syn_opts", &syn, 0x02, 5, 0),
        ("eth_ipv4_tcp_ts", &data_small, 0x18, 3, 64),
        ("eth_ipv4_tcp_ts", &data_full, 0x18, 3, 1448),
    ] {
        let s = parse_tcp(f).expect("the TCP frame parses");
        assert_eq!(s.ports, (common::CLIENT_PORT, common::ECHO_PORT), "{name}: {s:?}");
        assert_eq!((s.seq, s.ack != 0, s.flags, s.wnd), (0x1000_0000, flags & 0x10 != 0, flags, 0x0200), "{name}");
        assert_eq!((s.options, s.payload), (n_opts, payload), "{name}: {s:?}");
        assert!(parse_tcp_for_stack(f).is_some_and(|(_, o)| o.timestamp.is_some()));
        g.bench_with_input(BenchmarkId::new(name, f.len()), f, |b, f| b.iter(|| parse_tcp(black_box(f))));
    }
    for (name, f) in [("eth_ipv4_tcp_syn_opts_for_stack", &syn), ("eth_ipv4_tcp_ts_for_stack", &data_small)] {
        g.bench_with_input(BenchmarkId::new(name, f.len()), f, |b, f| b.iter(|| parse_tcp_for_stack(black_box(f))));
    }
    g.finish();
}

fn checksums(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in [64usize, 512, 1500] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("full", len), &data, |b, d| {
            b.iter(|| checksum::finish(checksum::sum(black_box(d))))
        });
    }

    g.throughput(Throughput::Elements(1));
    // A TTL/protocol word change (as a TTL decrement) and an address change.
    g.bench_function("incremental_u16", |b| {
        let mut csum = 0x925eu16;
        let mut old = 0x4011u16;
        b.iter(|| {
            let new = old.wrapping_sub(0x0100);
            csum = checksum::update_u16(black_box(csum), old, new);
            old = new;
            csum
        })
    });
    g.bench_function("incremental_u32", |b| {
        let mut csum = 0x925eu16;
        let mut old = 0xc612_0001u32;
        b.iter(|| {
            let new = old.wrapping_add(1);
            csum = checksum::update_u32(black_box(csum), old, new);
            old = new;
            csum
        })
    });
    // The same header change both ways: a TTL decrement applied
    // incrementally, against recomputing the 20-byte IPv4 header's checksum.
    let frame = udp_frame(18);
    g.bench_function("ipv4_ttl_incremental", |b| {
        let mut f = frame.clone();
        b.iter(|| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
            let ttl = ip.ttl();
            ip.set_ttl_incremental(black_box(ttl.wrapping_sub(1)));
            ip.checksum()
        })
    });
    g.bench_function("ipv4_ttl_recompute", |b| {
        let mut f = frame.clone();
        b.iter(|| {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
            let ttl = ip.ttl();
            ip.set_ttl(black_box(ttl.wrapping_sub(1)));
            ip.fill_checksum();
            ip.checksum()
        })
    });
    g.finish();
}

criterion_group!(benches, parse, checksums);
criterion_main!(benches);
