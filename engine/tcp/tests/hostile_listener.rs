//! A listener against hostile peers, by property test: SYNs, ACKs, RSTs
//! and anything else from a few peers (so they collide in a small SYN
//! queue, which then overflows into SYN cookies), on retransmission
//! timers. Whatever comes, no handshake completes unless its ACK
//! acknowledges a SYN-ACK this listener sent to that peer (no blind
//! connection), the queue never holds more than its capacity, an entry
//! is made only by its peer's SYN and ended only by its peer's segment or
//! its timer's `Expired` (what the engine's owner pins rely on), and
//! nothing panics. (A cookie's MSS index is added to its low bits, as in Linux, so
//! a peer that saw the cookie may move it by up to 3 and get another MSS
//! of the table: only a peer that was sent the SYN-ACK can.)
use proptest::prelude::*;
use sluice_tcp::listener::{Listen, Listener, Secrets, SynTimer, Tuple};
use sluice_tcp::segment::{Flags, Segment, Timestamp};
use sluice_tcp::stats::TcpStats;
use sluice_tcp::{Seq, TcpConfig};
use std::collections::{HashMap, HashSet};

const PEERS: u8 = 6;
const CAPACITY: u32 = 3;

#[derive(Clone, Debug)]
enum Op {
    /// A SYN from peer `k` with ISN `isn` and some options.
    Syn { k: u8, isn: u32, ts: bool, wscale: Option<u8>, sack: bool },
    /// The ACK completing peer `k`'s last SYN-ACK (`ack_off` = 0: right),
    /// maybe with data.
    Complete { k: u8, ack_off: i32, len: u16 },
    /// Anything from peer `k`.
    Wild { k: u8, seq: u32, ack: u32, flags: u8, len: u16 },
    /// Time passes; SYN-ACKs due go again.
    Advance { us: u32 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PEERS, any::<u32>(), any::<bool>(), prop::option::of(0u8..20), any::<bool>())
            .prop_map(|(k, isn, ts, wscale, sack)| Op::Syn { k, isn, ts, wscale, sack }),
        4 => (0..PEERS, prop_oneof![4 => Just(0i32), 1 => -3i32..3, 1 => any::<i32>()], 0u16..1000)
            .prop_map(|(k, ack_off, len)| Op::Complete { k, ack_off, len }),
        4 => (0..PEERS, any::<u32>(), any::<u32>(), any::<u8>(), 0u16..100)
            .prop_map(|(k, seq, ack, flags, len)| Op::Wild { k, seq, ack, flags, len }),
        2 => prop_oneof![0u32..10_000, 10_000u32..3_000_000, 3_000_000u32..70_000_000].prop_map(|us| Op::Advance { us }),
    ]
}

fn tuple(k: u8) -> Tuple {
    Tuple { local_addr: [198, 18, 0, 2], local_port: 80, remote_addr: [198, 18, 1, k], remote_port: 40_000 + k as u16 }
}

proptest! {
    #[test]
    fn no_handshake_completes_without_our_syn_ack_and_the_queue_holds_its_bound(
        seed in any::<[u64; 8]>(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let cfg = TcpConfig::default();
        let mut l = Listener::new(cfg, Secrets::from_random(seed), CAPACITY);
        let mut stats = TcpStats::default();
        let mut now = 1_000_000u64;
        // Every SYN-ACK sent, by peer: (its ISS, the peer's IRS + 1,
        // whether a queue entry holds it).
        let mut sent: HashMap<u8, Vec<(Seq, Seq, bool)>> = HashMap::new();
        // What each peer last asked for, to complete it.
        let mut isn: HashMap<u8, u32> = HashMap::new();
        // The peers with a queue entry, as `holds` and the timer's reports
        // say.
        let mut held: HashSet<u8> = HashSet::new();
        for op in ops {
            let (k, seg) = match op {
                Op::Syn { k, isn: n, ts, wscale, sack } => {
                    isn.insert(k, n);
                    let mut s = Segment { seq: Seq(n), flags: Flags::SYN, wnd: 65535, ..Segment::default() };
                    s.opts.mss = Some(1460);
                    s.opts.wscale = wscale;
                    s.opts.sack_permitted = sack;
                    if ts {
                        s.opts.timestamp = Some(Timestamp { val: n ^ 0x55, ecr: 0 });
                    }
                    (k, s)
                }
                Op::Complete { k, ack_off, len } => {
                    let Some(&(iss, _, _)) = sent.get(&k).and_then(|v| v.last()) else { continue };
                    let n = isn.get(&k).copied().unwrap_or(0);
                    let s = Segment {
                        seq: Seq(n.wrapping_add(1)),
                        ack: Seq(iss.0.wrapping_add(1).wrapping_add(ack_off as u32)),
                        flags: Flags::ACK,
                        wnd: 65535,
                        len: len as u32,
                        ..Segment::default()
                    };
                    (k, s)
                }
                Op::Wild { k, seq, ack, flags, len } => {
                    (k, Segment { seq: Seq(seq), ack: Seq(ack), flags: Flags(flags), wnd: 1000, len: len as u32, ..Segment::default() })
                }
                Op::Advance { us } => {
                    now += u64::from(us);
                    let mut again = Vec::new();
                    let mut expired = Vec::new();
                    l.on_timer(now, &mut stats, &mut |t, _ctx, ev| match ev {
                        SynTimer::Resend(seg) => again.push((*t, seg.seq, seg.ack)),
                        SynTimer::Expired => expired.push(*t),
                    });
                    for t in expired {
                        prop_assert!(held.remove(&t.remote_addr[3]), "expired without an entry: {:?}", t);
                    }
                    for j in 0..PEERS {
                        prop_assert_eq!(l.holds(&tuple(j)), held.contains(&j), "peer {} after the timer", j);
                    }
                    for (t, seq, ack) in again {
                        let k = t.remote_addr[3];
                        prop_assert_eq!(t, tuple(k));
                        sent.entry(k).or_default().push((seq, ack, true));
                    }
                    prop_assert!(l.half_open() <= CAPACITY);
                    continue;
                }
            };
            let room = l.has_room();
            let verdict = l.on_segment(&tuple(k), &seg, now, &mut stats, u64::from(k));
            let holds = l.holds(&tuple(k));
            if holds && !held.contains(&k) {
                // What the engine pins ahead of: a new entry only from a
                // SYN (no ACK, RST or FIN) when there was room.
                let f = seg.flags;
                prop_assert!(f.syn() && !f.ack() && !f.rst() && !f.fin(), "an entry from {:?}", f);
                prop_assert!(room, "an entry made with no room");
            }
            if holds {
                held.insert(k);
            } else {
                held.remove(&k);
            }
            for j in (0..PEERS).filter(|&j| j != k) {
                prop_assert_eq!(l.holds(&tuple(j)), held.contains(&j), "peer {}'s entry after peer {}'s segment", j, k);
            }
            prop_assert_eq!(l.half_open() as usize, held.len());
            match verdict {
                Listen::SynAck { seg: out, kept } => {
                    prop_assert!(out.flags.syn() && out.flags.ack());
                    sent.entry(k).or_default().push((out.seq, out.ack, kept));
                }
                Listen::Accept(h) => {
                    // The ACK acknowledges a SYN-ACK we sent this peer,
                    // and the connection starts from that one's numbers.
                    prop_assert!(seg.flags.ack() && !seg.flags.syn() && !seg.flags.rst(), "accepted {:?}", seg.flags);
                    prop_assert_eq!(seg.ack, h.iss + 1);
                    let ours = sent.get(&k).map(|v| {
                        v.iter().any(|&(iss, ack, kept)| {
                            let spread = if kept { 0 } else { 3 };
                            ack == h.irs + 1 && (h.iss.0.wrapping_sub(iss.0).wrapping_add(spread) <= 2 * spread)
                        })
                    });
                    prop_assert_eq!(ours, Some(true), "a handshake nobody sent a SYN-ACK for: {:?}", h);
                    prop_assert!([536, 1300, 1440, 1460].contains(&h.neg.peer_mss), "{:?}", h);
                }
                Listen::Reset(r) => prop_assert!(r.flags.rst()),
                Listen::Drop => {}
            }
            prop_assert!(l.half_open() <= CAPACITY);
        }
    }
}
