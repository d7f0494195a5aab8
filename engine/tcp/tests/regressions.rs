//! Regressions found by a review of the state machine, each reduced to the
//! segments that showed it (public API only, no timers beyond the Conn's
//! own).
use sluice_tcp::buf::VecChunk;
use sluice_tcp::conn::{Conn, HalfOpen, Negotiated, State};
use sluice_tcp::segment::{Flags, SackBlock, Segment};
use sluice_tcp::testkit::Core;
use sluice_tcp::{Seq, TcpConfig};

type H = Core;

fn cfg() -> TcpConfig {
    TcpConfig { tlp: false, delayed_ack: 0, ..TcpConfig::default() }
}

fn server(h: &mut H, now: u64) -> Conn {
    h.established_server(cfg(), now)
}

fn ack(a: u32, sack: &[(u32, u32)]) -> Segment {
    let mut s = Segment { seq: Seq(1001), ack: Seq(a), flags: Flags::ACK, wnd: 65535, ..Default::default() };
    for &(l, r) in sack {
        s.opts.sack.push(SackBlock { left: Seq(l), right: Seq(r) });
    }
    s
}

/// The peer SACKs 2..5, then reneges (drops them, acks only the repaired
/// hole). After an RTO the SACKed data must be resent (RFC 2018 8).
#[test]
fn reneged_sack_blocks_are_retransmitted_after_rto() {
    let mut h = H::new();
    let mut now = 1_000_000;
    let mut c = server(&mut h, now);
    for _ in 0..5 {
        c.send(VecChunk::new(vec![7u8; 1000]), &mut h.arena).unwrap();
    }
    let w = h.tx(&mut c, now);
    assert_eq!(w.len(), 5);
    now += 10_000;
    // First segment lost; the other four SACKed, three dup ACKs.
    for _ in 0..3 {
        h.seg_with(&mut c, now, ack(5001, &[(6001, 10001)]), None);
    }
    let w = h.tx(&mut c, now);
    assert_eq!(w.iter().filter(|x| !x.payload.is_empty()).map(|x| x.seg.seq).collect::<Vec<_>>(), vec![Seq(5001)]);
    now += 10_000;
    // Hole repaired; the peer reneged on the rest (ACK 6001, no SACK).
    h.seg_with(&mut c, now, ack(6001, &[]), None);
    let _ = h.tx(&mut c, now);
    let mut resent = 0;
    for _ in 0..20 {
        let Some(t) = c.poll_at() else { break };
        now = t;
        h.timer(&mut c, now);
        let w = h.tx(&mut c, now);
        resent += w.iter().filter(|x| !x.payload.is_empty()).count();
        if resent > 0 || c.state() == State::Closed {
            break;
        }
    }
    assert!(resent > 0, "nothing retransmitted after the peer reneged; state {:?} una {}", c.state(), c.snd_una());
}

/// Active open: the SYN's RTO fires, and the SYN-ACK arrives before the
/// SYN went out again. Data must start at ISS+1.
#[test]
fn synack_after_rto_before_resend_keeps_sequence_numbers() {
    let mut h = H::new();
    let mut now = 1_000_000;
    let mut c = Conn::connect(cfg(), Seq(100), 0, now, &mut h.stats);
    let w = h.tx(&mut c, now);
    assert!(w[0].seg.flags.syn());
    now = c.poll_at().unwrap();
    h.timer(&mut c, now);
    let mut sa =
        Segment { seq: Seq(7000), ack: Seq(101), flags: Flags::SYN | Flags::ACK, wnd: 65535, ..Default::default() };
    sa.opts.mss = Some(1460);
    h.seg_with(&mut c, now, sa, None);
    assert_eq!(c.state(), State::Established);
    c.send(VecChunk::new(vec![1u8; 500]), &mut h.arena).unwrap();
    let w = h.tx(&mut c, now);
    assert!(w.iter().all(|x| x.seg.seq == Seq(101)), "segments after the handshake must carry seq ISS+1");
}

/// A FIN that arrives alone beyond a hole, then the hole is filled by a
/// retransmission without FIN: the FIN must be taken then.
#[test]
fn a_bare_out_of_order_fin_is_taken_when_the_hole_fills() {
    let mut h = H::new();
    let now = 1_000_000;
    let mut c = server(&mut h, now);
    // Data 1001..1101 lost; FIN at 1101 arrives alone.
    h.seg_with(
        &mut c,
        now,
        Segment { seq: Seq(1101), ack: Seq(5001), flags: Flags::ACK | Flags::FIN, wnd: 65535, ..Default::default() },
        None,
    );
    let w = h.tx(&mut c, now);
    assert_eq!(w.len(), 1, "an out-of-order FIN gets a duplicate ACK at once");
    assert_eq!(w[0].seg.ack, Seq(1001));
    h.seg_with(
        &mut c,
        now + 1000,
        Segment { seq: Seq(1001), ack: Seq(5001), flags: Flags::ACK, wnd: 65535, len: 100, ..Default::default() },
        Some(VecChunk::new(vec![3u8; 100])),
    );
    let w = h.tx(&mut c, now + 1000);
    assert!(w.iter().any(|x| x.seg.ack == Seq(1102)), "data and FIN acknowledged");
    assert_eq!(c.state(), State::CloseWait, "the FIN at 1101 was remembered");
}

/// One-byte chunks: the send queue bounds chunks (frames), not only bytes.
#[test]
fn send_queue_chunks_are_bounded() {
    let mut h = H::new();
    let now = 1_000_000;
    let mut c = server(&mut h, now);
    let mut n = 0;
    while c.send(VecChunk::new(vec![1u8]), &mut h.arena).is_ok() {
        n += 1;
        if n == 100_000 {
            break;
        }
    }
    assert_eq!(n, cfg().snd_chunks, "one-byte chunks queued");
    assert_eq!(c.send_space(), 0);
}

/// Our ACK of the peer's FIN was lost: its retransmitted FIN must be ACKed.
#[test]
fn a_retransmitted_fin_in_close_wait_is_acked() {
    let mut h = H::new();
    let now = 1_000_000;
    let mut c = server(&mut h, now);
    let fin =
        Segment { seq: Seq(1001), ack: Seq(5001), flags: Flags::ACK | Flags::FIN, wnd: 65535, ..Default::default() };
    h.seg_with(&mut c, now, fin, None);
    assert_eq!(c.state(), State::CloseWait);
    let w = h.tx(&mut c, now);
    assert_eq!(w.len(), 1, "ACK of the FIN");
    h.seg_with(&mut c, now + 300_000, fin, None);
    let w = h.tx(&mut c, now + 300_000);
    assert_eq!(w.len(), 1, "the retransmitted FIN is answered");
}

/// A blind in-window SYN with a TSval far ahead must not move TS.Recent
/// (it is challenged and dropped), or every real segment fails PAWS.
#[test]
fn a_forged_syn_does_not_poison_ts_recent() {
    let mut h = H::new();
    let now = 1_000_000;
    let neg = Negotiated {
        peer_mss: 1460,
        rcv_wscale: 0,
        snd_wscale: 0,
        window_scaling: false,
        timestamps: true,
        sack: true,
    };
    let half = HalfOpen { irs: Seq(1000), iss: Seq(5000), neg, ts_recent: 100, ts_offset: 0, wnd: 65535, synack_at: 0 };
    let mut c = Conn::accept(cfg(), &half, now);
    let mut a = Segment { seq: Seq(1001), ack: Seq(5001), flags: Flags::ACK, wnd: 65535, ..Default::default() };
    a.opts.timestamp = Some(sluice_tcp::segment::Timestamp { val: 101, ecr: 0 });
    h.seg_with(&mut c, now, a, None);
    assert_eq!(c.state(), State::Established);
    let mut syn = Segment { seq: Seq(1001), flags: Flags::SYN, wnd: 65535, ..Default::default() };
    syn.opts.timestamp = Some(sluice_tcp::segment::Timestamp { val: 101 + (1 << 30), ecr: 0 });
    h.seg_with(&mut c, now + 1000, syn, None);
    assert_eq!(c.ts_recent(), 101, "TS.Recent moved by a segment that was dropped");
    // The peer's next real segment still gets through.
    let mut d =
        Segment { seq: Seq(1001), ack: Seq(5001), flags: Flags::ACK, wnd: 65535, len: 10, ..Default::default() };
    d.opts.timestamp = Some(sluice_tcp::segment::Timestamp { val: 102, ecr: 0 });
    h.seg_with(&mut c, now + 2000, d, Some(VecChunk::new(vec![5u8; 10])));
    assert_eq!(c.rcv_nxt(), Seq(1011));
}

/// TIME-WAIT as Linux keeps it: a RST at RCV.NXT ends it, and a SYN with a
/// higher sequence number may open a new connection in its place.
#[test]
fn time_wait_ends_on_a_reset_and_takes_a_newer_syn() {
    let mut h = H::new();
    let now = 1_000_000;
    let mut c = server(&mut h, now);
    // We close first: FIN out, acknowledged, then the peer's FIN.
    c.close(&mut h.arena, &mut |_| {});
    let w = h.tx(&mut c, now);
    assert!(w.iter().any(|x| x.seg.flags.fin()));
    h.seg_with(&mut c, now + 1000, ack(5002, &[]), None);
    h.seg_with(
        &mut c,
        now + 2000,
        Segment { seq: Seq(1001), ack: Seq(5002), flags: Flags::ACK | Flags::FIN, wnd: 65535, ..Default::default() },
        None,
    );
    assert_eq!(c.state(), State::TimeWait);
    let old = Segment { seq: Seq(900), flags: Flags::SYN, wnd: 65535, ..Default::default() };
    let newer = Segment { seq: Seq(2_000_000), flags: Flags::SYN, wnd: 65535, ..Default::default() };
    assert!(!c.time_wait_takes_syn(&old));
    assert!(c.time_wait_takes_syn(&newer));
    h.seg_with(&mut c, now + 3000, Segment { seq: Seq(1002), flags: Flags::RST, ..Default::default() }, None);
    assert_eq!(c.state(), State::Closed);
}

/// Data and our FIN out, the data's first chunk lost and the rest SACKed:
/// after the RTO the cwnd is one MSS, and the FIN (one sequence number)
/// still counted in flight must not hold the one retransmission back (this
/// wedged a connection in LAST-ACK against Linux at 5 % loss).
#[test]
fn after_an_rto_the_lost_segment_goes_even_with_a_fin_in_flight() {
    let mut h = H::new();
    let mut now = 1_000_000;
    let mut c = server(&mut h, now);
    // A full MSS (1460 without timestamps): after the RTO it is all the
    // one-MSS window takes.
    c.send(VecChunk::new(vec![1u8; 1460]), &mut h.arena).unwrap();
    c.send(VecChunk::new(vec![2u8; 56]), &mut h.arena).unwrap();
    c.close(&mut h.arena, &mut |_| {});
    let w = h.tx(&mut c, now);
    assert!(w.iter().any(|x| x.seg.flags.fin()), "data and FIN out");
    // The peer got the 56 bytes (SACKed) and nothing else.
    now += 5_000;
    h.seg_with(&mut c, now, ack(5001, &[(6461, 6517)]), None);
    let _ = h.tx(&mut c, now);
    let mut resent = false;
    for _ in 0..3 {
        now = c.poll_at().expect("a timer is armed");
        h.timer(&mut c, now);
        let w = h.tx(&mut c, now);
        if w.iter().any(|x| x.seg.seq == Seq(5001) && x.payload.len() == 1460) {
            resent = true;
            break;
        }
    }
    assert!(resent, "the lost MSS was never resent after the RTO");
}
