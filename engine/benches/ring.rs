//! The AF_XDP rings with the frame table behind them, per frame: the socket's
//! side (`fill`, `receive`, `transmit`, `reap`, each one batch) against the
//! in-memory kernel side `afxdp::fake` (the `fake-kernel` feature), which
//! does on the other end what the kernel does: consumes fill, produces rx,
//! consumes tx, produces completions. What is measured is the ring code
//! (cached indices, acquire/release publication) and the table's one
//! compare-and-swap per frame coming back, on both ends (the fake's end is
//! the same ring code), plus the fake's 64-byte copy into each received
//! frame, as copy mode does; `rx_half_64` is the receive half alone.
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_engine::afxdp::fake::FakeKernel;
use sluice_engine::afxdp::{Desc, Frame, Packet};
use std::hint::black_box;

const RING: u32 = 2048;
const FRAMES: u32 = 2 * RING;
const FRAME_SIZE: u32 = 2048;
/// A minimum Ethernet frame, as a small request arrives.
const PACKET: [u8; 64] = [0x5a; 64];

fn ring(c: &mut Criterion) {
    let (table, mut sock, mut kernel) =
        FakeKernel::standalone(FRAMES, FRAME_SIZE, RING).expect("an anonymous UMEM and memfd rings map");
    let mut free: Vec<Frame> = table.take_all();
    let mut descs = vec![Desc::default(); 256];
    let mut addrs = vec![0u64; 256];
    let mut rx: Vec<Packet> = Vec::with_capacity(256);

    let mut g = c.benchmark_group("ring");
    for batch in [1u32, 32, 64, 256] {
        g.throughput(Throughput::Elements(batch as u64));
        // One frame's whole trip: lent to the fill ring, received, sent back
        // out on the tx ring, completed and reaped onto the free list.
        g.bench_function(BenchmarkId::new("fill_rx_tx_reap", batch), |b| {
            b.iter(|| {
                let lent = sock.fill(&mut free, batch as usize);
                let delivered = kernel.deliver_many(&PACKET, lent as u32);
                let got = sock.receive(&mut descs, delivered as usize, |p| match p {
                    Ok(p) => rx.push(p),
                    Err(f) => free.push(f),
                });
                let mut it = rx.drain(..);
                let sent = sock.transmit(got.descs, || it.next(), |p| free.push(p.into_frame()));
                drop(it);
                let completed = kernel.complete_sent();
                let (reaped, refused) = sock.reap(&mut addrs, |f| free.push(f));
                assert_eq!((sent, completed, reaped, refused), (batch as usize, sent, sent, 0));
                black_box(reaped)
            })
        });
    }

    // The receive half: fill, the fake's copy and rx, the socket's receive
    // (a reclaim per frame), the frame straight back to the free list.
    g.throughput(Throughput::Elements(64));
    g.bench_function("rx_half_64", |b| {
        b.iter(|| {
            sock.fill(&mut free, 64);
            black_box(kernel.deliver_many(&PACKET, 64));
            sock.receive(&mut descs, 64, |p| match p {
                Ok(p) => free.push(p.into_frame()),
                Err(f) => free.push(f),
            });
        })
    });
    g.finish();
    assert_eq!(free.len() as u32, FRAMES, "every frame lent was received or reaped back");
    for f in free {
        table.retire(f);
    }
}

criterion_group!(benches, ring);
criterion_main!(benches);
