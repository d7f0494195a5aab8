//! The per-core timer wheel (`sluice_tcp::TimerWheel`): arming, re-arming
//! and cancelling a connection's timer, expiring timers as the clock
//! advances, and the next deadline a sleeping core waits for.
//!
//! For arming, re-arming, cancelling and the next deadline the wheel holds
//! `BACKGROUND` other timers spread over 1 ms to 2 h (RTOs, delayed ACKs,
//! keepalives), as a busy core's would. The benches that expire timers run
//! the clock forward by millions of milliseconds, so they use a wheel of
//! their own with only the timers they arm.
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_tcp::TimerWheel;
use std::hint::black_box;

const MS: u64 = 1000;
const START: u64 = 1_000_000;
const CAPACITY: u32 = 1 << 16;
const BACKGROUND: u32 = 10_000;

/// A wheel at `START` with `BACKGROUND` timers armed (ids from 1000 up),
/// deadlines from 1 ms to about 2 h away.
fn busy_wheel() -> TimerWheel {
    let mut w = TimerWheel::new(CAPACITY, START);
    let mut x = 0x9e37_79b9_u64;
    for id in 0..BACKGROUND {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = match id % 4 {
            0 => MS + (x >> 40) % (40 * MS),             // delayed ACK
            1 => 200 * MS + (x >> 40) % (800 * MS),      // RTO
            2 => 60_000 * MS,                            // TIME-WAIT / FIN-WAIT-2
            _ => 7_200_000 * MS + (x >> 40) % (60 * MS), // keepalive
        };
        w.arm(1000 + id, START + delay);
    }
    w
}

fn schedule(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer_wheel");
    g.throughput(Throughput::Elements(1));

    // The common case on every ACK: a connection's RTO moves forward (the
    // deadline alternates between two milliseconds so each call relinks).
    let mut w = busy_wheel();
    let mut id = 0u32;
    let mut flip = 0u64;
    g.bench_function("rearm_rto", |b| {
        b.iter(|| {
            id = (id + 1) % 1000;
            flip ^= 1;
            w.arm(black_box(id), START + 200 * MS + flip * MS);
        })
    });
    for i in 0..1000 {
        w.cancel(i);
    }

    g.bench_function("arm_cancel", |b| {
        b.iter(|| {
            w.arm(black_box(7), START + 40 * MS);
            w.cancel(black_box(7));
        })
    });

    g.bench_function("next_deadline", |b| b.iter(|| black_box(&w).next_deadline()));

    // Schedule one timer 1 ms ahead and run the clock to it: it fires.
    let mut w = TimerWheel::new(CAPACITY, START);
    let mut now = START;
    let mut fired = 0u64;
    g.bench_function("arm_and_expire_1ms", |b| {
        b.iter(|| {
            now += MS;
            w.arm(black_box(3), now);
            w.advance(now, |id| {
                fired += 1;
                black_box(id);
            });
        })
    });
    assert!(fired > 0 && !w.is_armed(3));
    g.finish();
}

fn expire(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer_wheel_expire");
    // `n` timers scheduled over the next `n` x 10 µs (several per
    // millisecond slot), then the clock runs past them: all fire.
    for n in [64u32, 1024] {
        let mut w = TimerWheel::new(CAPACITY, START);
        let mut now = START;
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(BenchmarkId::new("schedule_and_expire", n), |b| {
            b.iter(|| {
                for id in 0..n {
                    w.arm(id, now + MS + u64::from(id) * 10);
                }
                now += MS + u64::from(n) * 10 + MS;
                let mut fired = 0u32;
                w.advance(now, |_| fired += 1);
                debug_assert_eq!(fired, n);
                fired
            })
        });
        assert_eq!(w.armed(), 0, "every timer fired");
    }
    g.finish();
}

criterion_group!(benches, schedule, expire);
criterion_main!(benches);
