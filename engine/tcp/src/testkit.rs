//! An in-memory network for testing the state machine: two endpoints, a
//! link each way that delays, drops, duplicates and reorders segments on a
//! seeded random schedule, and a simulated clock that jumps to the next
//! event. Options go through their wire encoding on the way, so what one
//! side sends is what the other parses.
//!
//! Used by this crate's tests and by the interop tests against smoltcp.
#![allow(missing_docs)]
use crate::buf::{Arena, VecChunk, NIL};
use crate::config::TcpConfig;
use crate::conn::{Blocked, Conn, Emit, Env, Events, HalfOpen, Limits, Negotiated, PayloadRef, State};
use crate::listener::{Listen, Listener, Secrets, Tuple};
use crate::segment::{parse_options, Flags, OutSegment, Segment};
use crate::seq::Seq;
use crate::stats::TcpStats;
use std::collections::VecDeque;

/// Bytes a test chunk may grow to by receive coalescing (as a frame's room
/// after its headroom would allow).
pub const FRAME_ROOM: usize = 1800;

/// One connection's core, for tests that drive a [`Conn`] by hand, one
/// segment and timer at a time: its arena, counters and limits, and a
/// count of the chunks it released.
pub struct Core {
    pub arena: Arena<VecChunk>,
    pub stats: TcpStats,
    pub limits: Limits,
    pub released: u64,
}

impl Default for Core {
    fn default() -> Self {
        Core::new()
    }
}

impl Core {
    pub fn new() -> Core {
        Core { arena: Arena::new(100_000), stats: TcpStats::default(), limits: Limits::default(), released: 0 }
    }

    /// Runs `f` with the connection's environment at `now`.
    pub fn with<R>(&mut self, now: u64, f: impl FnOnce(&mut Env<'_, VecChunk>) -> R) -> R {
        with_env(now, &mut self.arena, &mut self.stats, &mut self.limits, &mut self.released, f)
    }

    /// A segment without payload arrives.
    pub fn seg(&mut self, c: &mut Conn, now: u64, s: Segment) {
        self.with(now, |env| c.on_segment(&s, None, env));
    }

    /// A segment with `payload` (if any) arrives.
    pub fn seg_with(&mut self, c: &mut Conn, now: u64, s: Segment, payload: Option<VecChunk>) {
        self.with(now, |env| c.on_segment(&s, payload, env));
    }

    /// A segment carrying `bytes` arrives (its length set from them).
    pub fn data(&mut self, c: &mut Conn, now: u64, mut s: Segment, bytes: &[u8]) {
        s.len = bytes.len() as u32;
        self.with(now, |env| c.on_segment(&s, Some(VecChunk::new(bytes.to_vec())), env));
    }

    /// What the connection sends now.
    pub fn tx(&mut self, c: &mut Conn, now: u64) -> Vec<Wired> {
        let mut w = Wire::default();
        self.with(now, |env| c.transmit(env, &mut w));
        w.out
    }

    /// The connection's timers at `now`.
    pub fn timer(&mut self, c: &mut Conn, now: u64) {
        self.with(now, |env| c.on_timer(env));
    }

    /// The application's CLOSE.
    pub fn close(&mut self, c: &mut Conn) {
        let released = &mut self.released;
        c.close(&mut self.arena, &mut |_c: VecChunk| *released += 1);
    }

    /// A passive open brought to ESTABLISHED by the handshake's ACK at
    /// `now`: IRS 1000 and ISS 5000, so RCV.NXT 1001 and SND.NXT 5001; an
    /// MSS of 1460, SACK, no timestamps, no window scaling, a 65535-byte
    /// window.
    pub fn established_server(&mut self, cfg: TcpConfig, now: u64) -> Conn {
        let neg = Negotiated {
            peer_mss: 1460,
            rcv_wscale: 0,
            snd_wscale: 0,
            window_scaling: false,
            timestamps: false,
            sack: true,
        };
        let half =
            HalfOpen { irs: Seq(1000), iss: Seq(5000), neg, ts_recent: 0, ts_offset: 0, wnd: 65535, synack_at: 0 };
        let mut c = Conn::accept(cfg, &half, now);
        let ack = Segment { seq: Seq(1001), ack: Seq(5001), flags: Flags::ACK, wnd: 65535, ..Segment::default() };
        self.seg(&mut c, now, ack);
        assert_eq!(c.state(), State::Established);
        c
    }
}

/// Runs `f` with an environment at `now` over these parts: released
/// chunks are counted in `released`, and chunks coalesce up to
/// [`FRAME_ROOM`] bytes.
pub fn with_env<R>(
    now: u64,
    arena: &mut Arena<VecChunk>,
    stats: &mut TcpStats,
    limits: &mut Limits,
    released: &mut u64,
    f: impl FnOnce(&mut Env<'_, VecChunk>) -> R,
) -> R {
    let mut rel = |_c: VecChunk| *released += 1;
    let mut absorb = |a: &mut VecChunk, b: &VecChunk| a.absorb(b, FRAME_ROOM);
    f(&mut Env { now, arena, stats, limits, release: &mut rel, absorb: &mut absorb })
}

/// xorshift64*: a small deterministic generator for the link's faults.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: f64) -> bool {
        (self.next_u64() % 1_000_000) as f64 / 10_000.0 < pct
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// A segment on the wire: header, options as bytes, payload.
#[derive(Clone, Debug)]
pub struct Wired {
    pub seg: OutSegment,
    pub opts: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Wired {
    /// The segment the receiver parses.
    pub fn parse(&self) -> Segment {
        let opts = parse_options(&self.opts, self.seg.flags.syn()).expect("our options parse");
        Segment {
            seq: self.seg.seq,
            ack: self.seg.ack,
            flags: self.seg.flags,
            wnd: self.seg.wnd,
            opts,
            len: self.payload.len() as u32,
        }
    }
}

/// Collects what a connection emits.
#[derive(Default)]
pub struct Wire {
    pub out: Vec<Wired>,
    /// Refuse to emit (to test Blocked).
    pub refuse: bool,
}

impl Emit<VecChunk> for Wire {
    fn emit(
        &mut self,
        seg: &OutSegment,
        payload: Option<PayloadRef>,
        arena: &mut Arena<VecChunk>,
    ) -> Result<(), Blocked> {
        if self.refuse {
            return Err(Blocked);
        }
        let mut bytes = Vec::new();
        if let Some(p) = payload {
            let mut i = p.node;
            let mut off = p.offset as usize;
            let mut left = p.len as usize;
            while left > 0 && i != NIL {
                let n = arena.node(i);
                let b = &n.chunk().bytes()[off..];
                let take = b.len().min(left);
                bytes.extend_from_slice(&b[..take]);
                left -= take;
                off = 0;
                i = n.next();
            }
            assert_eq!(left, 0, "the payload reference runs past the send queue");
            assert_eq!(Some(p.len), seg.data.map(|d| d.len));
        }
        let mut opts = vec![0u8; seg.opts.encoded_len()];
        let n = seg.opts.write(&mut opts);
        assert!(n <= 40, "options longer than 40 bytes");
        opts.truncate(n);
        self.out.push(Wired { seg: *seg, opts, payload: bytes });
        Ok(())
    }
}

/// What an endpoint's application does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum App {
    /// Reads everything.
    Sink,
    /// Sends back what it reads.
    Echo,
    /// Reads nothing (to fill windows).
    Hold,
}

/// One side.
pub struct Endpoint {
    pub cfg: TcpConfig,
    pub conn: Option<Conn>,
    pub listener: Option<Listener>,
    pub tuple: Tuple,
    pub arena: Arena<VecChunk>,
    pub stats: TcpStats,
    pub limits: Limits,
    pub app: App,
    /// Bytes the application still wants to send.
    pub to_send: VecDeque<u8>,
    /// Close once `to_send` is empty.
    pub close_when_sent: bool,
    /// Close (after sending what is queued) once the peer closed.
    pub close_after_peer: bool,
    /// Bytes the application received.
    pub received: Vec<u8>,
    pub events: Events,
    pub released: u64,
    /// Segments it emitted (for assertions).
    pub sent: Vec<Wired>,
    pub closed_at: Option<u64>,
    /// What the listener answered without a connection (RSTs, SYN-ACKs).
    pub stateless: Vec<Wired>,
}

impl Endpoint {
    pub fn new(cfg: TcpConfig, tuple: Tuple) -> Self {
        Endpoint {
            cfg,
            conn: None,
            listener: None,
            tuple,
            arena: Arena::new(8192),
            stats: TcpStats::default(),
            limits: Limits::default(),
            app: App::Sink,
            to_send: VecDeque::new(),
            close_when_sent: false,
            close_after_peer: false,
            received: Vec::new(),
            events: Events::default(),
            released: 0,
            sent: Vec::new(),
            closed_at: None,
            stateless: Vec::new(),
        }
    }

    /// Runs `f` with the connection and an environment at `now`.
    pub fn with<R>(&mut self, now: u64, f: impl FnOnce(&mut Conn, &mut Env<'_, VecChunk>) -> R) -> Option<R> {
        let c = self.conn.as_mut()?;
        Some(with_env(now, &mut self.arena, &mut self.stats, &mut self.limits, &mut self.released, |env| f(c, env)))
    }

    fn deliver(&mut self, now: u64, w: &Wired, out: &mut Vec<Wired>) {
        let seg = w.parse();
        let payload = (!w.payload.is_empty()).then(|| VecChunk::new(w.payload.clone()));
        if self.conn.as_ref().is_some_and(|c| c.state() != State::Closed) {
            self.with(now, |c, env| c.on_segment(&seg, payload, env));
            return;
        }
        if let Some(l) = self.listener.as_mut() {
            match l.on_segment(&self.tuple, &seg, now, &mut self.stats, 0) {
                Listen::SynAck { seg: sa, .. } => out.push(wired(sa)),
                Listen::Reset(r) => out.push(wired(r)),
                Listen::Drop => {}
                Listen::Accept(h) => {
                    self.conn = Some(Conn::accept(self.cfg, &h, now));
                    self.with(now, |c, env| c.on_segment(&seg, payload, env));
                }
            }
            return;
        }
        // No connection, no listener: RST (RFC 9293 3.10.7.1).
        if let Some(r) = crate::conn::reset_for(&seg) {
            out.push(wired(r));
        }
    }

    /// The application's turn, then whatever is to be sent.
    fn service(&mut self, now: u64, wire: &mut Wire) {
        let Some(c) = self.conn.as_mut() else { return };
        let ev = c.take_events();
        self.events = self.events | ev;
        if ev.has(Events::CLOSED) && self.closed_at.is_none() {
            self.closed_at = Some(now);
        }
        if self.app != App::Hold {
            while let Some(ch) = c.recv(&mut self.arena) {
                self.received.extend_from_slice(ch.bytes());
                if self.app == App::Echo {
                    self.to_send.extend(ch.bytes());
                }
                self.released += 1;
            }
        }
        // Write what fits, in MSS-sized chunks.
        let mss = c.send_mss() as usize;
        while !self.to_send.is_empty() {
            let room = c.send_space() as usize;
            let n = self.to_send.len().min(mss).min(room);
            if n == 0 {
                break;
            }
            let bytes: Vec<u8> = self.to_send.drain(..n).collect();
            if let Err(ch) = c.send(VecChunk::new(bytes), &mut self.arena) {
                let b = ch.bytes().to_vec();
                for (i, x) in b.into_iter().enumerate() {
                    self.to_send.insert(i, x);
                }
                break;
            }
        }
        if self.close_after_peer && self.events.has(Events::PEER_CLOSED) {
            self.close_when_sent = true;
        }
        if self.close_when_sent && self.to_send.is_empty() && matches!(c.state(), State::Established | State::CloseWait)
        {
            let released = &mut self.released;
            c.close(&mut self.arena, &mut |_c: VecChunk| *released += 1);
        }
        self.with(now, |c, env| {
            c.transmit(env, wire);
        });
        if let Some(c) = self.conn.as_mut() {
            let ev = c.take_events();
            self.events = self.events | ev;
            if ev.has(Events::CLOSED) && self.closed_at.is_none() {
                self.closed_at = Some(now);
            }
        }
    }
}

fn wired(seg: OutSegment) -> Wired {
    let mut opts = vec![0u8; seg.opts.encoded_len()];
    let n = seg.opts.write(&mut opts);
    opts.truncate(n);
    Wired { seg, opts, payload: Vec::new() }
}

/// A targeted fault: drop the segments for which it returns true.
pub type DropRule = Box<dyn FnMut(&Wired) -> bool>;

/// One direction of the network.
pub struct Link {
    pub delay: u64,
    pub jitter: u64,
    pub loss_pct: f64,
    pub dup_pct: f64,
    pub reorder_pct: f64,
    /// Drop everything (a black hole).
    pub down: bool,
    /// Drop segments for which this returns true (targeted faults).
    pub drop_if: Option<DropRule>,
    queue: Vec<(u64, u64, Wired)>,
    seq: u64,
    pub delivered: u64,
    pub dropped: u64,
}

impl Link {
    pub fn new(delay: u64) -> Self {
        Link {
            delay,
            jitter: 0,
            loss_pct: 0.0,
            dup_pct: 0.0,
            reorder_pct: 0.0,
            down: false,
            drop_if: None,
            queue: Vec::new(),
            seq: 0,
            delivered: 0,
            dropped: 0,
        }
    }

    pub fn push(&mut self, now: u64, w: Wired, rng: &mut Rng) {
        if self.down || rng.chance(self.loss_pct) || self.drop_if.as_mut().is_some_and(|f| f(&w)) {
            self.dropped += 1;
            return;
        }
        let copies = if rng.chance(self.dup_pct) { 2 } else { 1 };
        for _ in 0..copies {
            let mut at = now + self.delay + if self.jitter > 0 { rng.below(self.jitter) } else { 0 };
            if rng.chance(self.reorder_pct) {
                at += self.delay.max(1) * 3;
            }
            self.seq += 1;
            self.queue.push((at, self.seq, w.clone()));
        }
    }

    fn next_at(&self) -> Option<u64> {
        self.queue.iter().map(|(t, _, _)| *t).min()
    }

    fn take_due(&mut self, now: u64) -> Vec<Wired> {
        let mut due: Vec<(u64, u64, Wired)> = Vec::new();
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i].0 <= now {
                due.push(self.queue.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|(t, s, _)| (*t, *s));
        self.delivered += due.len() as u64;
        due.into_iter().map(|(_, _, w)| w).collect()
    }
}

/// Two endpoints and the links between them.
pub struct Sim {
    pub now: u64,
    pub a: Endpoint,
    pub b: Endpoint,
    pub ab: Link,
    pub ba: Link,
    pub rng: Rng,
    /// Steps taken.
    pub steps: u64,
}

/// The client's and the server's tuple.
pub fn tuples() -> (Tuple, Tuple) {
    let a = Tuple { local_addr: [198, 18, 0, 1], local_port: 40000, remote_addr: [198, 18, 0, 2], remote_port: 80 };
    let b = Tuple { local_addr: [198, 18, 0, 2], local_port: 80, remote_addr: [198, 18, 0, 1], remote_port: 40000 };
    (a, b)
}

impl Sim {
    /// A client `a` (not connected yet) and a server `b` listening, on
    /// links with `delay` µs one way.
    pub fn new(cfg_a: TcpConfig, cfg_b: TcpConfig, delay: u64, seed: u64) -> Sim {
        let (ta, tb) = tuples();
        let mut b = Endpoint::new(cfg_b, tb);
        b.listener = Some(Listener::new(cfg_b, Secrets::from_random([9, 8, 7, 6, 5, 4, 3, 2]), 64));
        Sim {
            now: 1_000_000,
            a: Endpoint::new(cfg_a, ta),
            b,
            ab: Link::new(delay),
            ba: Link::new(delay),
            rng: Rng::new(seed),
            steps: 0,
        }
    }

    /// `a` opens the connection.
    pub fn connect(&mut self) {
        let mut st = TcpStats::default();
        self.a.conn = Some(Conn::connect(self.a.cfg, Seq(0x1234_5678), 77, self.now, &mut st));
        self.a.stats.add(crate::stats::TcpCounter::ActiveOpens, 1);
        self.service();
    }

    pub fn service(&mut self) {
        let mut wa = Wire::default();
        self.a.service(self.now, &mut wa);
        for w in wa.out {
            self.a.sent.push(w.clone());
            self.ab.push(self.now, w, &mut self.rng);
        }
        let mut wb = Wire::default();
        self.b.service(self.now, &mut wb);
        for w in wb.out {
            self.b.sent.push(w.clone());
            self.ba.push(self.now, w, &mut self.rng);
        }
    }

    /// The next time anything happens.
    pub fn next_event(&self) -> Option<u64> {
        let t = [
            self.ab.next_at(),
            self.ba.next_at(),
            self.a.conn.as_ref().and_then(|c| c.poll_at()),
            self.b.conn.as_ref().and_then(|c| c.poll_at()),
        ];
        t.into_iter().flatten().min()
    }

    /// Advances to the next event and handles it; false when nothing is
    /// left to happen.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.next_event() else { return false };
        self.steps += 1;
        self.now = self.now.max(t);
        let now = self.now;
        let mut stateless = Vec::new();
        let trace = std::env::var_os("SIM_TRACE").is_some();
        for w in self.ab.take_due(now) {
            if trace {
                eprintln!(
                    "{now:>10} a>b {:?} seq {} ack {} wnd {} len {} {:?}",
                    w.seg.flags,
                    w.seg.seq,
                    w.seg.ack,
                    w.seg.wnd,
                    w.payload.len(),
                    self.states()
                );
            }
            self.b.deliver(now, &w, &mut stateless);
        }
        for w in stateless.drain(..) {
            self.b.stateless.push(w.clone());
            self.ba.push(now, w, &mut self.rng);
        }
        for w in self.ba.take_due(now) {
            if trace {
                eprintln!(
                    "{now:>10} b>a {:?} seq {} ack {} wnd {} len {} {:?}",
                    w.seg.flags,
                    w.seg.seq,
                    w.seg.ack,
                    w.seg.wnd,
                    w.payload.len(),
                    self.states()
                );
            }
            self.a.deliver(now, &w, &mut stateless);
        }
        for w in stateless.drain(..) {
            self.a.stateless.push(w.clone());
            self.ab.push(now, w, &mut self.rng);
        }
        for e in [&mut self.a, &mut self.b] {
            if e.conn.as_ref().and_then(|c| c.poll_at()).is_some_and(|t| t <= now) {
                e.with(now, |c, env| c.on_timer(env));
            }
        }
        self.service();
        true
    }

    /// Steps until `done` or `limit` µs of simulated time passed; returns
    /// whether `done` held.
    pub fn run_until(&mut self, limit: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        // The applications may have been given something to do.
        self.service();
        while self.now < end {
            if done(self) {
                return true;
            }
            if !self.step() {
                return done(self);
            }
            assert!(self.steps < 50_000_000, "runaway simulation");
        }
        done(self)
    }

    /// Both connections' states.
    pub fn states(&self) -> (Option<State>, Option<State>) {
        (self.a.conn.as_ref().map(|c| c.state()), self.b.conn.as_ref().map(|c| c.state()))
    }
}

/// `n` bytes of a recognisable pattern.
pub fn pattern(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ salt).collect()
}

/// Chunks still queued anywhere (for leak checks).
pub fn queued(e: &Endpoint) -> u32 {
    e.conn.as_ref().map_or(0, |c| c.chunks_held())
}
