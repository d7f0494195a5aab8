//! One frame through `sluice_engine::datapath::handle_frame`, set up as the
//! datapath's own unit tests do it (a service table from a config, an owner
//! directory, per-core stats), with no AF_XDP socket: the frame is a byte
//! buffer.
//!
//! `udp_echo/*`: a UDP echo request turned into its reply in place. The
//! reply overwrites the request, so every iteration first copies the
//! request back into the buffer; `copy_only/*` measures that copy alone, to
//! subtract. `tcp_to_stack/*`: a TCP segment checked and parsed into the
//! state machine's `Segment` (`Verdict::Tcp`); the frame is not written,
//! so no copy is needed. Throughput is frames.
#![forbid(unsafe_code)]

mod common;

use common::{data_options, services, tcp_frame, udp_frame};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_engine::datapath::{handle_frame, Arrival, Context, Verdict};
use sluice_engine::ownership::OwnerDirectory;
use sluice_engine::stats::{CoreStats, Counter};
use std::cell::Cell;
use std::hint::black_box;

fn datapath(c: &mut Criterion) {
    let services = services();
    let owners = OwnerDirectory::new(1 << 16, 30, 1);
    let stats = CoreStats::default();
    let ip_id = Cell::new(1);
    let cx =
        Context { services: &services, owners: &owners, core: 0, now_us: 10_000_000, stats: &stats, ip_id: &ip_id };

    let mut g = c.benchmark_group("datapath");
    g.throughput(Throughput::Elements(1));

    for payload in [18usize, 1472] {
        let request = udp_frame(payload);
        let mut buf = request.clone();
        // The first frame claims the flow for core 0; every later one finds it.
        let v = handle_frame(&mut buf, Arrival::Rx, &cx);
        let reply_len = (14 + 20 + 8 + payload) as u32;
        assert_eq!(v, Verdict::Reply { len: reply_len, tally: Counter::UdpEchoed });
        g.bench_with_input(BenchmarkId::new("udp_echo", request.len()), &request, |b, request| {
            b.iter(|| {
                buf.copy_from_slice(request);
                handle_frame(black_box(&mut buf), Arrival::Rx, &cx)
            })
        });
        g.bench_with_input(BenchmarkId::new("copy_only", request.len()), &request, |b, request| {
            b.iter(|| {
                buf.copy_from_slice(request);
                black_box(&mut buf);
            })
        });
    }

    for payload in [64usize, 1448] {
        let mut seg = tcp_frame(0x18, &data_options(), payload);
        match handle_frame(&mut seg, Arrival::Rx, &cx) {
            Verdict::Tcp(t) => {
                assert_eq!(t.seg.len as usize, payload);
                assert!(t.seg.opts.timestamp.is_some());
            }
            v => panic!("the TCP segment is not for the stack: {v:?}"),
        }
        let len = seg.len();
        g.bench_function(BenchmarkId::new("tcp_to_stack", len), |b| {
            b.iter(|| handle_frame(black_box(&mut seg), Arrival::Rx, &cx))
        });
    }
    g.finish();
}

criterion_group!(benches, datapath);
criterion_main!(benches);
