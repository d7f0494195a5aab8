//! Frame tokens: a core's `FramePool` (take a token from the free list and
//! give it back), a frame's bytes reached through its token, and the
//! exchange stack that `rebalance` lends to and borrows from. The UMEM is
//! anonymous memory (`FrameTable::create`), no socket.
//!
//! The AF_XDP rings are in `ring.rs`.
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_engine::afxdp::{Frame, FrameTable};
use sluice_engine::pool::SharedFrames;
use std::hint::black_box;

const FRAMES: u32 = 4096;
const FRAME_SIZE: u32 = 2048;

fn pool(c: &mut Criterion) {
    let shared = SharedFrames::new(FrameTable::create(FRAMES, FRAME_SIZE).expect("an anonymous UMEM maps"));
    let mut pool = shared.split(1).pop().expect("one pool");
    let table = pool.table().clone();

    let mut g = c.benchmark_group("pool");
    g.throughput(Throughput::Elements(1));
    g.bench_function("alloc_free", |b| {
        b.iter(|| {
            let f = pool.alloc().expect("a free frame");
            pool.free(black_box(f));
        })
    });

    for batch in [32usize, 64] {
        let mut held: Vec<Frame> = Vec::with_capacity(batch);
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_function(BenchmarkId::new("alloc_free_batch", batch), |b| {
            b.iter(|| {
                for _ in 0..batch {
                    held.push(pool.alloc().expect("a free frame"));
                }
                for f in held.drain(..) {
                    pool.free(f);
                }
            })
        });
    }

    // A frame's bytes through its token: the table checks the token and the
    // range, then hands out the slice.
    g.throughput(Throughput::Elements(1));
    let mut f = pool.alloc().expect("a free frame");
    g.bench_function("token_bytes_mut", |b| {
        b.iter(|| {
            let bytes = table.bytes_mut(black_box(&mut f), black_box(256), black_box(64)).expect("in the frame");
            bytes[0] = bytes[0].wrapping_add(1);
        })
    });
    pool.free(f);

    // Every free frame but one to the exchange stack and back: each frame
    // is one push and one pop of the shared queue.
    let moved = 2 * (pool.free_len() as u64 - 1);
    g.throughput(Throughput::Elements(moved));
    g.sample_size(30);
    g.bench_function(BenchmarkId::new("rebalance_round_trip", moved), |b| {
        let all = pool.free_len();
        b.iter(|| {
            pool.set_marks(0, 1);
            let (lent, _) = pool.rebalance(0);
            pool.set_marks(all, all + 1);
            let (_, borrowed) = pool.rebalance(0);
            debug_assert_eq!(lent, borrowed);
            (lent, borrowed)
        })
    });
    g.finish();
    assert_eq!(pool.free_len() as u32, FRAMES, "every frame is back");
    assert_eq!(sluice_engine::afxdp::frames_leaked(), 0);
}

criterion_group!(benches, pool);
criterion_main!(benches);
