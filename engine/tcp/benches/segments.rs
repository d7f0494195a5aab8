//! Segment processing in the sans-I/O TCP (`sluice_tcp`), driven through
//! its public API the way the engine drives it: segments in
//! (`Listener::on_segment`, `Conn::on_segment`), the application's read
//! (`Conn::recv`), segments out (`Conn::transmit` into an `Emit`).
//!
//! The peer is synthesised: its segments are built here with the sequence
//! numbers and timestamps a real client would send. Payload is a chunk that
//! only knows its length (no bytes, no allocation), so the figures are the
//! state machine's own cost, without header building or checksums (see the
//! engine's `wire` and `datapath` benches for those).
//!
//! `established/*`: an established connection receives an in-order
//! full-sized data segment, the application reads it, and the connection
//! transmits its ACK; with delayed ACKs off (one ACK per segment) and on
//! (the default 40 ms: one ACK per two full-sized segments).
//! `listener/*`: a SYN at a listener answered with a SYN-ACK, from the SYN
//! queue or (queue full) with a cookie; and a whole passive open (SYN,
//! SYN-ACK, the final ACK, the connection made and ESTABLISHED).
#![forbid(unsafe_code)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_tcp::segment::{Options, Timestamp};
use sluice_tcp::{
    Arena, Blocked, Chunk, Conn, Emit, Env, Flags, Limits, Listen, Listener, OutSegment, PayloadRef, Secrets, Segment,
    Seq, State, TcpConfig, TcpStats, Tuple,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Now, µs (the clock does not move: nothing here waits for a timer).
const NOW: u64 = 5_000_000;
const CLIENT_ISN: Seq = Seq(0x1000_0000);
const CLIENT_TSVAL: u32 = 777_000;
/// The window the client advertises (scaled by its shift of 7: 128 KiB).
const CLIENT_WND: u16 = 1024;

/// Payload that is only a length.
#[derive(Debug)]
struct Len(usize);

impl Chunk for Len {
    fn len(&self) -> usize {
        self.0
    }
    fn advance(&mut self, n: usize) {
        self.0 -= n;
    }
    fn truncate(&mut self, n: usize) {
        self.0 = n;
    }
}

/// Takes what a connection sends: counts it and lays its options out as
/// the engine's emitter would before writing a header.
struct Sink {
    segments: u64,
    last: OutSegment,
    opts: [u8; 40],
}

impl Default for Sink {
    fn default() -> Self {
        Sink { segments: 0, last: OutSegment::default(), opts: [0; 40] }
    }
}

impl Emit<Len> for Sink {
    fn emit(&mut self, seg: &OutSegment, _payload: Option<PayloadRef>, _arena: &mut Arena<Len>) -> Result<(), Blocked> {
        self.segments += 1;
        self.last = *seg;
        black_box(seg.opts.write(&mut self.opts));
        Ok(())
    }
}

/// What a core keeps for all its connections.
struct Core {
    arena: Arena<Len>,
    stats: TcpStats,
    limits: Limits,
    released: u64,
}

impl Core {
    fn new() -> Self {
        Core { arena: Arena::new(1024), stats: TcpStats::default(), limits: Limits::default(), released: 0 }
    }

    /// Runs `f` with the environment a connection call takes.
    fn with<R>(&mut self, f: impl FnOnce(&mut Env<'_, Len>) -> R) -> R {
        let released = &mut self.released;
        let mut release = |_c: Len| *released += 1;
        let mut absorb = |_: &mut Len, _: &Len| false;
        let mut env = Env {
            now: NOW,
            arena: &mut self.arena,
            stats: &mut self.stats,
            limits: &mut self.limits,
            release: &mut release,
            absorb: &mut absorb,
        };
        f(&mut env)
    }
}

fn tuple(remote_port: u16) -> Tuple {
    Tuple { local_addr: [198, 18, 0, 2], local_port: 80, remote_addr: [198, 18, 0, 1], remote_port }
}

fn listener(cfg: TcpConfig, queue: u32) -> Listener {
    Listener::new(cfg, Secrets::from_random([11, 22, 33, 44, 55, 66, 77, 88]), queue)
}

/// A client's SYN, every option offered (as Linux's).
fn syn() -> Segment {
    Segment {
        seq: CLIENT_ISN,
        flags: Flags::SYN,
        wnd: 64240,
        opts: Options {
            mss: Some(1460),
            wscale: Some(7),
            sack_permitted: true,
            timestamp: Some(Timestamp { val: CLIENT_TSVAL, ecr: 0 }),
            ..Options::default()
        },
        ..Segment::default()
    }
}

/// The client's ACK of `syn_ack`, which completes the handshake.
fn final_ack(syn_ack: &OutSegment) -> Segment {
    let ecr = syn_ack.opts.timestamp.map_or(0, |t| t.val);
    Segment {
        seq: CLIENT_ISN + 1,
        ack: syn_ack.seq + 1,
        flags: Flags::ACK,
        wnd: CLIENT_WND,
        opts: Options { timestamp: Some(Timestamp { val: CLIENT_TSVAL, ecr }), ..Options::default() },
        len: 0,
    }
}

/// A passive open through a listener: the connection, ESTABLISHED, and the
/// TSval our SYN-ACK carried (the client echoes it).
fn established(cfg: &Arc<TcpConfig>, core: &mut Core) -> (Conn, u32) {
    let mut l = listener(**cfg, 64);
    let t = tuple(40000);
    let Listen::SynAck { seg: syn_ack, kept: true } = l.on_segment(&t, &syn(), NOW, &mut core.stats, 0) else {
        panic!("no SYN-ACK from the SYN queue");
    };
    let ack = final_ack(&syn_ack);
    let Listen::Accept(half) = l.on_segment(&t, &ack, NOW, &mut core.stats, 0) else {
        panic!("the final ACK did not complete the handshake");
    };
    let mut conn = Conn::accept(cfg.clone(), &half, NOW);
    core.with(|env| conn.on_segment(&ack, None, env));
    assert_eq!(conn.state(), State::Established);
    let mut sink = Sink::default();
    core.with(|env| conn.transmit(env, &mut sink));
    (conn, ack.opts.timestamp.map_or(0, |t| t.ecr))
}

/// The next in-order full-sized segment from the client.
fn data(conn: &Conn, ecr: u32, len: u32) -> Segment {
    Segment {
        seq: conn.rcv_nxt(),
        ack: conn.snd_nxt(),
        flags: Flags::ACK | Flags::PSH,
        wnd: CLIENT_WND,
        opts: Options { timestamp: Some(Timestamp { val: CLIENT_TSVAL, ecr }), ..Options::default() },
        len,
    }
}

/// `n` in-order segments arrive, the application reads them, the
/// connection transmits; returns the segments it sent.
fn receive(conn: &mut Conn, core: &mut Core, sink: &mut Sink, ecr: u32, n: u32) -> u64 {
    let before = sink.segments;
    let mss = conn.send_mss();
    for _ in 0..n {
        let seg = data(conn, ecr, mss);
        core.with(|env| conn.on_segment(&seg, Some(Len(mss as usize)), env));
    }
    while let Some(chunk) = conn.recv(&mut core.arena) {
        black_box(chunk);
    }
    core.with(|env| conn.transmit(env, sink));
    sink.segments - before
}

fn established_conn(c: &mut Criterion) {
    let mut g = c.benchmark_group("established");
    for (name, delayed_ack, per_ack) in [("data_in_ack_out", 0u64, 1u32), ("data_in_delayed_ack", 40_000, 2)] {
        let cfg = Arc::new(TcpConfig { delayed_ack, ..TcpConfig::default() });
        let mut core = Core::new();
        let (mut conn, ecr) = established(&cfg, &mut core);
        let mut sink = Sink::default();
        // Past the quick-ACK start, then check the steady state: one ACK,
        // for everything received, per `per_ack` segments.
        for _ in 0..64 {
            receive(&mut conn, &mut core, &mut sink, ecr, per_ack);
        }
        for _ in 0..16 {
            assert_eq!(receive(&mut conn, &mut core, &mut sink, ecr, per_ack), 1, "{name}: one ACK");
            assert!(sink.last.flags.ack() && sink.last.data.is_none() && sink.last.ack == conn.rcv_nxt());
        }
        g.throughput(Throughput::Elements(u64::from(per_ack)));
        g.bench_function(BenchmarkId::new(name, format!("{}x{}B", per_ack, conn.send_mss())), |b| {
            b.iter(|| receive(&mut conn, &mut core, &mut sink, ecr, per_ack))
        });
        assert_eq!(conn.state(), State::Established);
        assert_eq!(core.arena.used(), 0, "every chunk was read");
    }
    g.finish();
}

fn listener_syn(c: &mut Criterion) {
    let cfg = TcpConfig::default();
    let mut g = c.benchmark_group("listener");
    g.throughput(Throughput::Elements(1));

    // A SYN from a new tuple each time gets a SYN queue entry and a SYN-ACK.
    // Batches of SYNs are timed; between batches (untimed) a RST removes
    // each entry again, so the queue never fills up.
    const BATCH: u16 = 1024;
    let mut l = listener(cfg, 4096);
    let mut stats = TcpStats::default();
    let syn = syn();
    let rst = Segment { seq: CLIENT_ISN + 1, flags: Flags::RST, ..Segment::default() };
    assert!(matches!(l.on_segment(&tuple(1), &syn, NOW, &mut stats, 0), Listen::SynAck { kept: true, .. }));
    l.on_segment(&tuple(1), &rst, NOW, &mut stats, 0);
    assert_eq!(l.half_open(), 0);
    g.bench_function("syn_to_synack", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = (iters - done).min(u64::from(BATCH)) as u16;
                let start = Instant::now();
                for p in 0..n {
                    black_box(l.on_segment(&tuple(1024 + p), black_box(&syn), NOW, &mut stats, 0));
                }
                total += start.elapsed();
                for p in 0..n {
                    l.on_segment(&tuple(1024 + p), &rst, NOW, &mut stats, 0);
                }
                assert_eq!(l.half_open(), 0);
                done += u64::from(n);
            }
            total
        })
    });

    // The SYN queue full (a queue of one slot never takes an entry): every
    // SYN is answered with a cookie and nothing is kept.
    let mut full = listener(cfg, 1);
    assert!(matches!(full.on_segment(&tuple(1), &syn, NOW, &mut stats, 0), Listen::SynAck { kept: false, .. }));
    g.bench_function("syn_to_synack_cookie", |b| {
        b.iter(|| full.on_segment(&tuple(40000), black_box(&syn), NOW, &mut stats, 0))
    });

    // SYN → SYN-ACK, final ACK → accept, the connection ESTABLISHED (and
    // asked to transmit, which finds nothing to send).
    let shared = Arc::new(cfg);
    let mut core = Core::new();
    let mut sink = Sink::default();
    let t = tuple(40000);
    g.bench_function("passive_open", |b| {
        b.iter(|| {
            let Listen::SynAck { seg: syn_ack, .. } = l.on_segment(&t, black_box(&syn), NOW, &mut core.stats, 0) else {
                panic!("no SYN-ACK");
            };
            let ack = final_ack(&syn_ack);
            let Listen::Accept(half) = l.on_segment(&t, &ack, NOW, &mut core.stats, 0) else {
                panic!("no accept");
            };
            let mut conn = Conn::accept(shared.clone(), &half, NOW);
            core.with(|env| {
                conn.on_segment(&ack, None, env);
                conn.transmit(env, &mut sink);
            });
            debug_assert_eq!(conn.state(), State::Established);
            conn
        })
    });
    g.finish();
}

criterion_group!(benches, established_conn, listener_syn);
criterion_main!(benches);
