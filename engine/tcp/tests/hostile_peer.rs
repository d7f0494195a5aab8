//! A hostile peer, by property test: a connection fed arbitrary segments
//! (any flags, sequence and acknowledgment numbers near its windows or
//! anywhere, payloads, SACK blocks, timestamps) mixed with well-formed
//! ones, timers, and the application's sends, reads and closes. Whatever
//! comes, the connection must not panic, must hold every chunk it was
//! given exactly once (released, held or read), must keep its sequence
//! numbers in order, and must keep a timer while anything it sent is
//! unacknowledged (no connection stuck with nothing to wake it).
use proptest::prelude::*;
use sluice_tcp::buf::VecChunk;
use sluice_tcp::conn::{Conn, HalfOpen, Negotiated, State};
use sluice_tcp::segment::{Flags, SackBlock, Segment, Timestamp};
use sluice_tcp::testkit::Core;
use sluice_tcp::{Seq, TcpConfig};

const T0: u64 = 1_000_000;

#[derive(Clone, Debug)]
enum Op {
    /// Anything: `seq` and `ack` relative to RCV.NXT and SND.UNA.
    Wild {
        seq: i64,
        ack: i64,
        flags: u8,
        wnd: u16,
        len: u16,
        sack: Vec<(i64, u32)>,
        ts: Option<(u32, u32)>,
    },
    /// A well-formed ACK of everything sent so far.
    PeerAck {
        wnd: u16,
    },
    /// The answer to our SYN: the peer's SYN (ISN `isn`) acknowledging it.
    PeerSynAck {
        isn: u32,
    },
    /// In-order data at RCV.NXT, acknowledging everything sent.
    PeerData {
        len: u16,
        fin: bool,
    },
    /// Time passes; due timers fire.
    Advance {
        us: u32,
    },
    Send {
        len: u16,
    },
    Read,
    Consume {
        n: u16,
    },
    Shutdown,
    Close,
    Abort,
}

fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => -3000i64..3000,
        2 => -70_000i64..70_000,
        1 => Just(0i64),
        1 => any::<u32>().prop_map(i64::from),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            offset(),
            offset(),
            any::<u8>(),
            any::<u16>(),
            prop_oneof![3 => Just(0u16), 2 => 1u16..1500, 1 => 1500u16..3000],
            prop::collection::vec((offset(), 0u32..5000), 0..4),
            prop::option::of((any::<u32>(), any::<u32>())),
        )
            .prop_map(|(seq, ack, flags, wnd, len, sack, ts)| Op::Wild { seq, ack, flags, wnd, len, sack, ts }),
        4 => any::<u16>().prop_map(|wnd| Op::PeerAck { wnd }),
        1 => any::<u32>().prop_map(|isn| Op::PeerSynAck { isn }),
        4 => (1u16..1500, prop::bool::weighted(0.05)).prop_map(|(len, fin)| Op::PeerData { len, fin }),
        3 => prop_oneof![0u32..1000, 1000u32..300_000, 300_000u32..3_000_000].prop_map(|us| Op::Advance { us }),
        3 => (1u16..3000).prop_map(|len| Op::Send { len }),
        2 => Just(Op::Read),
        1 => any::<u16>().prop_map(|n| Op::Consume { n }),
        1 => Just(Op::Shutdown),
        1 => Just(Op::Close),
        1 => Just(Op::Abort),
    ]
}

/// A passive open made ESTABLISHED (IRS 1000, ISS 5000), with or without
/// timestamps and window scaling.
fn established(h: &mut Core, cfg: TcpConfig, ts: bool, wscale: u8) -> Conn {
    let neg = Negotiated {
        peer_mss: 1460,
        rcv_wscale: wscale,
        snd_wscale: wscale,
        window_scaling: wscale > 0,
        timestamps: ts,
        sack: true,
    };
    let half = HalfOpen { irs: Seq(1000), iss: Seq(5000), neg, ts_recent: 77, ts_offset: 0, wnd: 65535, synack_at: 0 };
    let mut c = Conn::accept(cfg, &half, T0);
    let mut ack = Segment { seq: Seq(1001), ack: Seq(5001), flags: Flags::ACK, wnd: 65535, ..Segment::default() };
    if ts {
        ack.opts.timestamp = Some(Timestamp { val: 78, ecr: c.tsval_for_test(T0) });
    }
    h.seg(&mut c, T0, ack);
    assert_eq!(c.state(), State::Established);
    c
}

/// The peer's view: its own clock for timestamps, what it echoes.
struct Peer {
    tsval: u32,
    ts: bool,
}

impl Peer {
    fn stamp(&mut self, s: &mut Segment, c: &Conn, now: u64) {
        if self.ts {
            self.tsval = self.tsval.wrapping_add(1);
            s.opts.timestamp = Some(Timestamp { val: self.tsval, ecr: c.tsval_for_test(now) });
        }
    }
}

fn at(base: Seq, off: i64) -> Seq {
    Seq((base.0 as i64).wrapping_add(off) as u32)
}

fn synchronized(s: State) -> bool {
    !matches!(s, State::Closed | State::SynSent | State::SynReceived)
}

proptest! {
    // 256 cases unless PROPTEST_CASES says more.
    #[test]
    fn whatever_the_peer_sends_the_connection_stays_consistent(
        start in 0u8..3,
        ts in any::<bool>(),
        wscale in prop_oneof![Just(0u8), Just(7u8)],
        delayed_ack in any::<bool>(),
        tlp in any::<bool>(),
        ops in prop::collection::vec(op(), 1..160),
    ) {
        let cfg = TcpConfig {
            delayed_ack: if delayed_ack { 40_000 } else { 0 },
            tlp,
            rcv_chunks: 64,
            ooo_chunks: 16,
            snd_chunks: 64,
            ..TcpConfig::default()
        };
        let mut h = Core::new();
        // An established passive open, an active open in SYN-SENT, or one
        // in SYN-RECEIVED (a simultaneous open: the peer's SYN crossed ours).
        let mut c = match start {
            0 => established(&mut h, cfg, ts, wscale),
            _ => {
                let mut c = Conn::connect(cfg, Seq(100), 0, T0, &mut h.stats);
                let _ = h.tx(&mut c, T0);
                if start == 2 {
                    let syn = Segment { seq: Seq(7000), flags: Flags::SYN, wnd: 65535, ..Segment::default() };
                    h.seg(&mut c, T0, syn);
                    assert_eq!(c.state(), State::SynReceived);
                    let _ = h.tx(&mut c, T0);
                }
                c
            }
        };
        let mut peer = Peer { tsval: 1000, ts };
        let mut now = T0;
        // Chunks handed to the connection, and chunks the application read.
        let (mut given, mut read) = (0u64, 0u64);
        let mut last_rcv_nxt = c.rcv_nxt();
        let mut was_synchronized = synchronized(c.state());
        for op in ops {
            match op {
                Op::Wild { seq, ack, flags, wnd, len, sack, ts } => {
                    let mut s = Segment {
                        seq: at(c.rcv_nxt(), seq),
                        ack: at(c.snd_una(), ack),
                        flags: Flags(flags),
                        wnd,
                        len: len as u32,
                        ..Segment::default()
                    };
                    for (l, n) in sack {
                        let left = at(c.snd_una(), l);
                        s.opts.sack.push(SackBlock { left, right: left + n });
                    }
                    s.opts.timestamp = ts.map(|(val, ecr)| Timestamp { val, ecr });
                    let payload = (len > 0).then(|| VecChunk::new(vec![0xA5; len as usize]));
                    given += u64::from(payload.is_some());
                    h.seg_with(&mut c, now, s, payload);
                }
                Op::PeerAck { wnd } => {
                    let mut s = Segment { seq: c.rcv_nxt(), ack: c.snd_nxt(), flags: Flags::ACK, wnd, ..Segment::default() };
                    peer.stamp(&mut s, &c, now);
                    h.seg(&mut c, now, s);
                }
                Op::PeerSynAck { isn } => {
                    let mut s = Segment { seq: Seq(isn), ack: c.snd_nxt(), flags: Flags::SYN | Flags::ACK, wnd: 65535, ..Segment::default() };
                    s.opts.mss = Some(1460);
                    s.opts.sack_permitted = true;
                    if wscale > 0 {
                        s.opts.wscale = Some(wscale);
                    }
                    peer.stamp(&mut s, &c, now);
                    h.seg(&mut c, now, s);
                }
                Op::PeerData { len, fin } => {
                    let mut s = Segment {
                        seq: c.rcv_nxt(),
                        ack: c.snd_nxt(),
                        flags: if fin { Flags::ACK | Flags::FIN } else { Flags::ACK | Flags::PSH },
                        wnd: 65535,
                        len: len as u32,
                        ..Segment::default()
                    };
                    peer.stamp(&mut s, &c, now);
                    given += 1;
                    h.seg_with(&mut c, now, s, Some(VecChunk::new(vec![0x5A; len as usize])));
                }
                Op::Advance { us } => {
                    now += u64::from(us);
                    for _ in 0..64 {
                        match c.poll_at() {
                            Some(t) if t <= now => {
                                h.timer(&mut c, now);
                                let _ = h.tx(&mut c, now);
                            }
                            _ => break,
                        }
                    }
                }
                Op::Send { len } => {
                    if c.send(VecChunk::new(vec![1; len as usize]), &mut h.arena).is_ok() {
                        given += 1;
                    }
                }
                Op::Read => {
                    while c.recv(&mut h.arena).is_some() {
                        read += 1;
                    }
                }
                Op::Consume { n } => {
                    let released = &mut h.released;
                    c.consume(u32::from(n).min(c.recv_queue().bytes()), &mut h.arena, &mut |_| *released += 1);
                }
                Op::Shutdown => c.shutdown(),
                Op::Close => h.close(&mut c),
                Op::Abort => c.abort(),
            }
            let _ = h.tx(&mut c, now);
            // Every chunk is in exactly one place (coalesced ones were
            // released by the connection).
            prop_assert_eq!(given, h.released + u64::from(c.chunks_held()) + read, "chunks lost or doubled");
            let st = c.state();
            if synchronized(st) && !was_synchronized {
                // RCV.NXT is known from here on (the peer's SYN came).
                last_rcv_nxt = c.rcv_nxt();
                was_synchronized = true;
            }
            if synchronized(st) {
                prop_assert!(c.snd_una() <= c.snd_nxt(), "SND.UNA {:?} past SND.NXT {:?} in {:?}", c.snd_una(), c.snd_nxt(), st);
                prop_assert!(c.rcv_nxt() >= last_rcv_nxt, "RCV.NXT went back: {:?} -> {:?}", last_rcv_nxt, c.rcv_nxt());
                last_rcv_nxt = c.rcv_nxt();
            }
            prop_assert!(c.send_queued() <= cfg.snd_buf);
            prop_assert!(c.recv_queue().bytes() <= cfg.rcv_buf + 65535, "{} bytes held", c.recv_queue().bytes());
            if !matches!(st, State::Closed | State::TimeWait) && c.snd_una() != c.snd_nxt() {
                prop_assert!(c.poll_at().is_some(), "{:?} with {:?}..{:?} unacknowledged and no timer", st, c.snd_una(), c.snd_nxt());
            }
            if st == State::Closed {
                break;
            }
        }
    }
}
