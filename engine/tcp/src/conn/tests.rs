//! The connection against itself on a simulated network, grouped by state;
//! every transition of RFC 9293's diagram, and the RFC 5961 / 7323 cases.
use crate::config::TcpConfig;
use crate::conn::{Events, State};
use crate::segment::{Flags, OutSegment, Segment, Timestamp};
use crate::seq::Seq;
use crate::stats::{TcpCounter, TcpDrop};
use crate::testkit::{pattern, queued, App, Sim, Wire, Wired};

const MS: u64 = 1000;
const S: u64 = 1_000_000;

fn cfg() -> TcpConfig {
    TcpConfig::default()
}

fn established() -> Sim {
    let mut s = Sim::new(cfg(), cfg(), 500, 1);
    s.connect();
    assert!(s.run_until(S, |s| s.states() == (Some(State::Established), Some(State::Established))));
    s
}

fn transfer(s: &mut Sim, n: usize, limit: u64) -> bool {
    let data = pattern(n, 3);
    let start = s.b.received.len();
    s.a.to_send.extend(&data);
    let ok = s.run_until(limit, |s| s.b.received.len() >= start + n);
    same(&s.b.received[start..], &data);
    ok
}

/// `got` is a prefix of `want` (no corruption, no reordering), compactly.
#[track_caller]
fn same(got: &[u8], want: &[u8]) {
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("bytes differ at {i} of {} received ({} expected)", got.len(), want.len());
    }
    assert!(got.len() <= want.len(), "{} bytes received, {} sent", got.len(), want.len());
}

mod handshake {
    use super::*;

    #[test]
    fn three_way_handshake_negotiates_every_option() {
        let s = established();
        let (a, b) = (s.a.conn.as_ref().unwrap(), s.b.conn.as_ref().unwrap());
        for n in [a.negotiated(), b.negotiated()] {
            assert!(n.timestamps && n.sack && n.window_scaling, "{n:?}");
            assert_eq!(n.peer_mss, 1460);
        }
        assert_eq!(a.negotiated().snd_wscale, b.negotiated().rcv_wscale);
        assert_eq!(a.send_mss(), 1448, "MSS minus the timestamp option");
        assert!(s.a.events.has(Events::ESTABLISHED) && s.b.events.has(Events::ESTABLISHED));
        // SYN, ACK (and nothing else) from the client; SYN-ACK from the server's listener.
        assert_eq!(s.a.sent[0].seg.flags, Flags::SYN);
        assert_eq!(s.b.stateless[0].seg.flags, Flags::SYN | Flags::ACK);
        assert_eq!(s.b.stats.counter(TcpCounter::PassiveOpens), 1);
    }

    #[test]
    fn options_are_used_only_when_both_sides_offer_them() {
        let mut plain = cfg();
        plain.timestamps = false;
        plain.sack = false;
        plain.window_scaling = false;
        let mut s = Sim::new(plain, cfg(), 500, 2);
        s.connect();
        assert!(s.run_until(S, |s| s.states() == (Some(State::Established), Some(State::Established))));
        for c in [s.a.conn.as_ref().unwrap(), s.b.conn.as_ref().unwrap()] {
            let n = c.negotiated();
            assert!(!n.timestamps && !n.sack && !n.window_scaling && n.rcv_wscale == 0, "{n:?}");
        }
        assert_eq!(s.a.conn.as_ref().unwrap().send_mss(), 1460);
        assert!(transfer(&mut s, 300_000, 10 * S));
    }

    #[test]
    fn a_lost_syn_is_retransmitted_after_the_initial_rto() {
        let mut s = Sim::new(cfg(), cfg(), 500, 3);
        let mut first = true;
        s.ab.drop_if = Some(Box::new(move |w: &Wired| {
            let drop = first && w.seg.flags.syn();
            first &= !drop;
            drop
        }));
        s.connect();
        let t0 = s.now;
        assert!(s.run_until(5 * S, |s| s.states().1 == Some(State::Established)));
        assert!(s.now - t0 >= S, "after the 1 s initial RTO");
        assert_eq!(s.a.sent.iter().filter(|w| w.seg.flags == Flags::SYN).count(), 2);
    }

    #[test]
    fn a_handshake_whose_ack_and_data_were_lost_completes_on_the_next_ack() {
        // The client is established and has sent data; its ACK and data are
        // lost, and the listener's retransmitted SYN-ACK draws a challenge
        // ACK whose sequence number is past irs + 1. That ACK completes
        // the handshake (RFC 9293 3.10.7.4: in the window), not a RST.
        let mut s = Sim::new(cfg(), cfg(), 500, 6);
        let data = pattern(100, 7);
        s.a.to_send.extend(&data);
        let (mut syn_seq, mut blocking) = (None, true);
        s.ab.drop_if = Some(Box::new(move |w: &Wired| {
            if w.seg.flags.syn() {
                syn_seq = Some(w.seg.seq);
                return false;
            }
            let past = syn_seq.is_some_and(|q| w.seg.seq.diff(q + 1) > 0);
            if w.payload.is_empty() && w.seg.flags == Flags::ACK && past {
                blocking = false;
            }
            blocking
        }));
        s.connect();
        assert!(s.run_until(100 * MS, |s| s.states().0 == Some(State::Established)));
        assert_eq!(s.states().1, None, "the server has only its SYN queue entry");
        let synack = s.b.stateless[0].clone();
        assert_eq!(synack.seg.flags, Flags::SYN | Flags::ACK);
        let now = s.now;
        s.ba.push(now, synack, &mut s.rng);
        assert!(s.run_until(5 * S, |s| s.b.received.len() >= data.len()));
        same(&s.b.received, &data);
        assert_eq!(s.states(), (Some(State::Established), Some(State::Established)));
        assert!(s.b.stateless.iter().all(|w| !w.seg.flags.rst()), "no RST from the listener");
        assert_eq!(s.b.stats.counter(TcpCounter::PassiveOpens), 1);
    }

    #[test]
    fn syn_to_a_closed_port_is_refused_with_a_reset() {
        let mut s = Sim::new(cfg(), cfg(), 500, 4);
        s.b.listener = None;
        s.connect();
        assert!(s.run_until(S, |s| s.states().0 == Some(State::Closed)));
        assert!(s.a.events.has(Events::CLOSED | Events::ABORTED));
        assert_eq!(s.b.stateless[0].seg.flags, Flags::RST | Flags::ACK);
        assert_eq!(s.b.stateless[0].seg.ack, Seq(0x1234_5678) + 1);
    }

    #[test]
    fn simultaneous_open_goes_through_syn_received() {
        // Two active opens that cross: both send SYN, both answer SYN-ACK.
        let mut s = Sim::new(cfg(), cfg(), 500, 5);
        s.b.listener = None;
        let mut st = crate::stats::TcpStats::default();
        s.a.conn = Some(crate::conn::Conn::connect(s.a.cfg, Seq(1000), 1, s.now, &mut st));
        s.b.conn = Some(crate::conn::Conn::connect(s.b.cfg, Seq(9000), 2, s.now, &mut st));
        s.service();
        assert!(s.run_until(3 * S, |s| s.states() == (Some(State::Established), Some(State::Established))));
        assert!(s.a.sent.iter().any(|w| w.seg.flags == Flags::SYN | Flags::ACK), "a answered with a SYN-ACK");
        assert!(transfer(&mut s, 50_000, 5 * S));
    }

    #[test]
    fn syn_retries_give_up_on_a_black_hole() {
        let mut s = Sim::new(cfg(), cfg(), 500, 6);
        s.ab.down = true;
        s.connect();
        assert!(s.run_until(300 * S, |s| s.states().0 == Some(State::Closed)));
        assert!(s.a.events.has(Events::ABORTED));
        assert_eq!(s.a.sent.iter().filter(|w| w.seg.flags == Flags::SYN).count(), 7, "the SYN and six retries");
        assert_eq!(s.a.stats.counter(TcpCounter::Timeouts), 1);
    }
}

mod established {
    use super::*;

    #[test]
    fn a_megabyte_each_way_arrives_intact() {
        let mut s = established();
        s.b.app = App::Echo;
        let data = pattern(1 << 20, 7);
        s.a.to_send.extend(&data);
        assert!(s.run_until(20 * S, |s| s.a.received.len() >= 1 << 20));
        same(&s.a.received, &data);
        assert_eq!(s.a.received.len(), data.len());
        assert_eq!(s.a.stats.counter(TcpCounter::RetransFast) + s.a.stats.counter(TcpCounter::RetransRto), 0);
    }

    #[test]
    fn every_chunk_given_in_comes_back_out() {
        let mut s = established();
        assert!(transfer(&mut s, 200_000, 10 * S));
        assert!(s.run_until(S, |s| s.a.conn.as_ref().unwrap().send_queued() == 0));
        assert_eq!(queued(&s.a), 0);
        assert_eq!(s.a.arena.used(), 0, "acknowledged chunks were released");
        assert_eq!(s.b.arena.used(), 0, "read chunks left the queue");
    }

    #[test]
    fn delayed_acks_ack_every_second_segment_or_after_the_timer() {
        let mut s = established();
        // Past the quick-ACK start.
        assert!(transfer(&mut s, 100_000, 10 * S));
        let before = s.b.sent.len();
        s.a.to_send.extend(pattern(100, 1));
        assert!(s.run_until(S, |s| s.b.received.len() >= 100_100));
        let sent_at = s.now;
        assert!(s.run_until(S, |s| s.b.sent.len() > before));
        assert!(s.now - sent_at >= 30 * MS, "one small segment: the 40 ms delayed ACK");
        assert_eq!(s.b.stats.counter(TcpCounter::DelayedAcks), 1);
    }

    #[test]
    fn zero_window_then_persist_probes_then_the_transfer_resumes() {
        let mut small = cfg();
        small.rcv_buf = 16 * 1024;
        let mut s = Sim::new(cfg(), small, 500, 8);
        s.connect();
        assert!(s.run_until(S, |s| s.states().1 == Some(State::Established)));
        s.b.app = App::Hold;
        s.a.to_send.extend(pattern(100_000, 2));
        // The receiver's buffer fills: the window shrinks to zero (a last
        // sliver goes out on persist timeouts, as Linux's override does).
        assert!(s.run_until(10 * S, |s| s.a.conn.as_ref().unwrap().info().snd_wnd == 0));
        assert_eq!(s.b.conn.as_ref().unwrap().recv_queue().bytes(), 16 * 1024, "the whole buffer, not a byte more");
        let probes0 = s.a.stats.counter(TcpCounter::WindowProbes);
        s.run_until(10 * S, |_| false);
        assert!(s.a.stats.counter(TcpCounter::WindowProbes) > probes0, "zero-window probes while it is shut");
        s.b.app = App::Sink;
        assert!(s.run_until(30 * S, |s| s.b.received.len() >= 100_000));
        same(&s.b.received, &pattern(100_000, 2));
    }

    #[test]
    fn a_tiny_window_still_moves_data() {
        let mut tiny = cfg();
        tiny.rcv_buf = 700; // less than one MSS
        tiny.window_scaling = false;
        let mut s = Sim::new(cfg(), tiny, 500, 9);
        s.connect();
        assert!(s.run_until(S, |s| s.states().1 == Some(State::Established)));
        assert!(transfer(&mut s, 20_000, 60 * S));
    }

    #[test]
    fn half_close_lets_the_other_side_keep_sending() {
        let mut s = established();
        s.a.with(s.now, |c, _| c.shutdown());
        assert!(s.run_until(S, |s| s.states() == (Some(State::FinWait2), Some(State::CloseWait))));
        assert!(s.b.events.has(Events::PEER_CLOSED));
        let data = pattern(200_000, 5);
        s.b.to_send.extend(&data);
        assert!(s.run_until(10 * S, |s| s.a.received.len() >= 200_000), "the half-closed side still receives");
        same(&s.a.received, &data);
        s.b.close_when_sent = true;
        assert!(s.run_until(2 * S, |s| s.states() == (Some(State::TimeWait), Some(State::Closed))));
    }
}

mod closing {
    use super::*;

    #[test]
    fn active_close_passes_fin_wait_1_and_2_into_time_wait_for_2msl() {
        let mut s = established();
        s.a.close_when_sent = true;
        s.b.close_after_peer = true;
        let mut seen = Vec::new();
        assert!(s.run_until(5 * S, |s| {
            let st = s.states();
            if seen.last() != Some(&st) {
                seen.push(st);
            }
            st == (Some(State::TimeWait), Some(State::Closed))
        }));
        assert!(seen.iter().any(|s| s.0 == Some(State::FinWait1)));
        assert!(seen.iter().any(|s| s.1 == Some(State::CloseWait) || s.1 == Some(State::LastAck)));
        let tw = s.now;
        assert!(s.run_until(120 * S, |s| s.states().0 == Some(State::Closed)));
        assert!(s.now - tw >= 59 * S + 990 * MS, "TIME-WAIT lasts 2 MSL (60 s)");
        assert!(!s.a.events.has(Events::ABORTED));
    }

    #[test]
    fn simultaneous_close_goes_through_closing() {
        let mut s = established();
        s.a.close_when_sent = true;
        s.b.close_when_sent = true;
        let mut saw_closing = false;
        assert!(s.run_until(5 * S, |s| {
            saw_closing |= s.states().0 == Some(State::Closing) || s.states().1 == Some(State::Closing);
            s.states() == (Some(State::TimeWait), Some(State::TimeWait))
        }));
        assert!(saw_closing, "both FINs crossed");
    }

    #[test]
    fn a_retransmitted_fin_in_time_wait_is_acked_and_restarts_the_timer() {
        let mut s = established();
        // b's ACK of a's FIN... rather: drop a's ACK of b's FIN once, so b
        // retransmits its FIN while a is in TIME-WAIT.
        s.a.close_when_sent = true;
        assert!(s.run_until(5 * S, |s| s.states().0 == Some(State::FinWait2)));
        assert_eq!(s.states().1, Some(State::CloseWait));
        let mut dropped = false;
        s.ab.drop_if = Some(Box::new(move |w: &Wired| {
            let d = !dropped && w.seg.flags == Flags::ACK && w.payload.is_empty();
            dropped |= d;
            d
        }));
        s.b.close_when_sent = true;
        assert!(s.run_until(5 * S, |s| s.states().0 == Some(State::TimeWait)));
        let entered = s.now;
        assert!(s.run_until(10 * S, |s| s.states().1 == Some(State::Closed)), "b's FIN retransmission got its ACK");
        let restarted = s.now;
        assert!(restarted - entered >= 200 * MS);
        assert!(s.run_until(100 * S, |s| s.states().0 == Some(State::Closed)));
        // a got the FIN one link delay before `restarted`; without a restart
        // it would close 2 MSL after `entered`, 200 ms or more sooner.
        assert!(s.now - restarted >= cfg().time_wait - 5 * MS, "the 2 MSL timer restarted with the retransmitted FIN");
    }

    #[test]
    fn closing_after_a_half_close_still_ends_fin_wait_2() {
        // shutdown() first (FIN acked, FIN-WAIT-2, not an orphan yet), then
        // close(): the peer never sends its FIN, and the linger must end it.
        let mut s = established();
        s.a.with(s.now, |c, _| c.shutdown());
        assert!(s.run_until(S, |s| s.states() == (Some(State::FinWait2), Some(State::CloseWait))));
        let arena = &mut s.a.arena;
        s.a.conn.as_mut().unwrap().close(arena, &mut |_| {});
        s.a.with(s.now, |_, _| {});
        let closed_at = s.now;
        let fin_wait2 = cfg().fin_wait2;
        assert!(s.run_until(fin_wait2 + 5 * S, |s| s.states().0 == Some(State::Closed)), "FIN-WAIT-2 lingered forever");
        assert!(s.now - closed_at >= fin_wait2 - 10 * MS, "not before its time");
    }

    #[test]
    fn close_with_unread_data_resets() {
        let mut s = established();
        s.b.app = App::Hold;
        assert!(transfer_partial(&mut s, 5000));
        let arena = &mut s.b.arena;
        let c = s.b.conn.as_mut().unwrap();
        c.close(arena, &mut |_| {});
        assert!(s.run_until(S, |s| s.states() == (Some(State::Closed), Some(State::Closed))));
        assert!(s.a.events.has(Events::ABORTED) && s.b.events.has(Events::ABORTED));
        assert_eq!(s.a.stats.counter(TcpCounter::ResetsIn), 1);
    }

    fn transfer_partial(s: &mut Sim, n: usize) -> bool {
        s.a.to_send.extend(pattern(n, 1));
        s.run_until(S, |s| s.b.conn.as_ref().unwrap().recv_queue().bytes() as usize >= n)
    }

    #[test]
    fn abort_sends_a_reset_that_closes_the_peer() {
        let mut s = established();
        s.a.with(s.now, |c, _| c.abort());
        assert!(s.run_until(S, |s| s.states() == (Some(State::Closed), Some(State::Closed))));
        assert_eq!(s.a.stats.counter(TcpCounter::ResetsOut), 1);
        assert!(s.b.events.has(Events::ABORTED));
    }
}

mod rfc5961 {
    use super::*;

    /// Injects `seg` to b as if from a (an attacker who knows the tuple).
    fn inject(s: &mut Sim, seg: Segment) -> Vec<Wired> {
        let now = s.now;
        s.b.with(now, |c, env| c.on_segment(&seg, None, env));
        let mut w = Wire::default();
        s.b.with(now, |c, env| c.transmit(env, &mut w));
        w.out
    }

    fn ts(s: &Sim) -> Option<Timestamp> {
        let a = s.a.conn.as_ref().unwrap();
        Some(Timestamp { val: a.tsval_for_test(s.now), ecr: 0 })
    }

    #[test]
    fn a_reset_in_the_window_but_not_exact_gets_a_challenge_ack() {
        let mut s = established();
        let b = s.b.conn.as_ref().unwrap();
        let (rcv_nxt, snd_nxt) = (b.rcv_nxt(), b.snd_nxt());
        let mut seg = Segment { seq: rcv_nxt + 100, flags: Flags::RST, ..Segment::default() };
        seg.opts.timestamp = ts(&s);
        let out = inject(&mut s, seg);
        assert_eq!(s.states().1, Some(State::Established), "not reset");
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].seg.flags, out[0].seg.seq, out[0].seg.ack), (Flags::ACK, snd_nxt, rcv_nxt), "challenge ACK");
        assert_eq!(s.b.stats.counter(TcpCounter::ChallengeAcks), 1);
        // Outside the window: silently dropped.
        let seg = Segment { seq: rcv_nxt + 10_000_000, flags: Flags::RST, ..Segment::default() };
        assert!(inject(&mut s, seg).is_empty());
        // Exactly RCV.NXT: reset.
        let seg = Segment { seq: rcv_nxt, flags: Flags::RST, ..Segment::default() };
        inject(&mut s, seg);
        assert_eq!(s.states().1, Some(State::Closed));
        assert!(s.b.events.has(Events::ABORTED) || s.b.conn.as_mut().unwrap().take_events().has(Events::ABORTED));
    }

    #[test]
    fn a_syn_on_an_established_connection_gets_a_challenge_ack() {
        let mut s = established();
        let rcv_nxt = s.b.conn.as_ref().unwrap().rcv_nxt();
        let mut seg = Segment { seq: rcv_nxt + 5, flags: Flags::SYN, ..Segment::default() };
        seg.opts.timestamp = ts(&s);
        let out = inject(&mut s, seg);
        assert_eq!(s.states().1, Some(State::Established));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].seg.flags, Flags::ACK);
        assert_eq!(s.b.stats.drops(TcpDrop::SynInSync), 1);
    }

    #[test]
    fn an_ack_of_unsent_or_too_old_data_is_dropped_and_answered() {
        let mut s = established();
        let b = s.b.conn.as_ref().unwrap();
        let (rcv_nxt, snd_nxt) = (b.rcv_nxt(), b.snd_nxt());
        let mut seg = Segment { seq: rcv_nxt, ack: snd_nxt + 1000, flags: Flags::ACK, wnd: 1000, ..Segment::default() };
        seg.opts.timestamp = ts(&s);
        let out = inject(&mut s, seg);
        assert_eq!(out.len(), 1, "an ACK in answer");
        assert_eq!(s.b.stats.drops(TcpDrop::BadAck), 1);
        seg.ack = snd_nxt - 10_000_000;
        seg.opts.timestamp = ts(&s);
        inject(&mut s, seg);
        assert_eq!(s.b.stats.drops(TcpDrop::BadAck), 2);
        assert_eq!(s.states().1, Some(State::Established));
    }

    #[test]
    fn challenge_acks_are_rate_limited_per_core() {
        let mut s = established();
        s.b.limits.challenge_per_s = 5;
        let rcv_nxt = s.b.conn.as_ref().unwrap().rcv_nxt();
        let mut answered = 0;
        for i in 0..20 {
            let mut seg = Segment { seq: rcv_nxt + 10 + i, flags: Flags::RST, ..Segment::default() };
            seg.opts.timestamp = ts(&s);
            answered += inject(&mut s, seg).len();
        }
        assert_eq!(answered, 5, "the second's budget, then nothing");
        assert_eq!(s.b.stats.counter(TcpCounter::ChallengeAcks), 5);
        assert_eq!(s.b.stats.counter(TcpCounter::ChallengeAcksLimited), 15);
    }
}

mod rfc7323 {
    use super::*;

    #[test]
    fn paws_drops_a_segment_with_an_old_timestamp() {
        let mut s = established();
        assert!(transfer(&mut s, 10_000, 5 * S));
        let b = s.b.conn.as_ref().unwrap();
        let (rcv_nxt, ts_recent) = (b.rcv_nxt(), b.ts_recent());
        let mut seg =
            Segment { seq: rcv_nxt, ack: b.snd_nxt(), flags: Flags::ACK, wnd: 1000, len: 5, ..Segment::default() };
        seg.opts.timestamp = Some(Timestamp { val: ts_recent.wrapping_sub(1000), ecr: 0 });
        let (now, released, snd_nxt) = (s.now, s.b.released, b.snd_nxt());
        s.b.with(now, |c, env| c.on_segment(&seg, Some(crate::buf::VecChunk::new(b"stale".to_vec())), env));
        assert_eq!(s.b.stats.drops(TcpDrop::PawsRejected), 1);
        assert_eq!(s.b.conn.as_ref().unwrap().rcv_nxt(), rcv_nxt, "the data was not taken");
        assert_eq!(s.b.released, released + 1, "its chunk was released");
        // R1: the segment is answered with an ACK (it carries data, so the
        // out-of-window rate limit does not hold it back).
        let mut w = Wire::default();
        s.b.with(now, |c, env| c.transmit(env, &mut w));
        let out: Vec<_> = w.out.iter().map(|w| (w.seg.flags, w.seg.seq, w.seg.ack, w.payload.len())).collect();
        assert_eq!(out, [(Flags::ACK, snd_nxt, rcv_nxt, 0)]);
        assert_eq!(s.states().1, Some(State::Established));
    }

    #[test]
    fn window_scaling_lets_the_window_exceed_64k() {
        let mut s = established();
        assert!(transfer(&mut s, 2 << 20, 20 * S));
        // The SYN-ACK's window is never scaled; later ones are.
        let info = s.a.conn.as_ref().unwrap().info();
        assert!(info.snd_wnd > 65535, "{}", info.snd_wnd);
        let flight_max = s.a.sent.iter().map(|w| w.seg.seq.0).max().unwrap();
        let _ = flight_max;
    }
}

mod loss {
    use super::*;

    fn lossy(pct: f64, seed: u64) -> Sim {
        let mut s = established();
        s.rng = crate::testkit::Rng::new(seed);
        s.ab.loss_pct = pct;
        s.ba.loss_pct = pct;
        s
    }

    #[test]
    fn one_percent_loss_both_ways_data_intact() {
        for seed in 1..4 {
            let mut s = lossy(1.0, seed);
            assert!(transfer(&mut s, 1 << 20, 120 * S), "seed {seed}: {} of {}", s.b.received.len(), 1 << 20);
        }
    }

    #[test]
    fn five_percent_loss_both_ways_data_intact() {
        for seed in 10..13 {
            let mut s = lossy(5.0, seed);
            assert!(transfer(&mut s, 512 << 10, 300 * S), "seed {seed}: {} bytes", s.b.received.len());
            let st = &s.a.stats;
            assert!(st.counter(TcpCounter::RetransFast) + st.counter(TcpCounter::RetransRto) > 0);
        }
    }

    #[test]
    fn sack_recovers_a_single_loss_without_a_timeout() {
        let mut s = established();
        assert!(transfer(&mut s, 100_000, 5 * S));
        let mut n = 0;
        s.ab.drop_if = Some(Box::new(move |w: &Wired| {
            n += usize::from(!w.payload.is_empty());
            n == 20 && !w.payload.is_empty()
        }));
        assert!(transfer(&mut s, 500_000, 10 * S));
        assert_eq!(s.a.stats.counter(TcpCounter::RtoExpired), 0, "no timeout");
        assert!(s.a.stats.counter(TcpCounter::RetransFast) >= 1);
        assert_eq!(s.a.stats.counter(TcpCounter::FastRecoveries), 1);
    }

    #[test]
    fn newreno_without_sack_recovers_too() {
        let mut nosack = cfg();
        nosack.sack = false;
        let mut s = Sim::new(nosack, cfg(), 500, 21);
        s.connect();
        assert!(s.run_until(S, |s| s.states().1 == Some(State::Established)));
        assert!(transfer(&mut s, 100_000, 5 * S));
        let mut n = 0;
        s.ab.drop_if = Some(Box::new(move |w: &Wired| {
            n += usize::from(!w.payload.is_empty());
            (n == 20 || n == 23) && !w.payload.is_empty()
        }));
        assert!(transfer(&mut s, 500_000, 20 * S));
        assert!(s.a.stats.counter(TcpCounter::RetransFast) >= 2);
    }

    #[test]
    fn reordering_and_duplication_keep_bytes_intact() {
        let mut s = established();
        s.ab.reorder_pct = 5.0;
        s.ab.dup_pct = 3.0;
        s.ba.dup_pct = 3.0;
        s.ab.jitter = 200;
        assert!(transfer(&mut s, 1 << 20, 60 * S));
    }

    #[test]
    fn a_lost_tail_is_probed_before_the_rto() {
        let mut s = established();
        assert!(transfer(&mut s, 100_000, 5 * S));
        // Drop the last segment of the next burst.
        let mut n = 0;
        s.ab.drop_if = Some(Box::new(move |w: &Wired| {
            n += usize::from(!w.payload.is_empty());
            n == 7 && !w.payload.is_empty()
        }));
        let t0 = s.now;
        assert!(transfer(&mut s, 7 * 1448, 5 * S));
        assert!(s.a.stats.counter(TcpCounter::TlpProbes) >= 1);
        assert!(s.now - t0 < 200 * MS, "recovered before a 200 ms RTO: {} µs", s.now - t0);
    }

    #[test]
    fn rto_backs_off_and_gives_up_with_a_reset() {
        let mut c = cfg();
        c.retries = 4;
        let mut s = Sim::new(c, cfg(), 500, 30);
        s.connect();
        assert!(s.run_until(S, |s| s.states().1 == Some(State::Established)));
        s.ab.down = true;
        s.a.to_send.extend(pattern(5000, 1));
        assert!(s.run_until(120 * S, |s| s.states().0 == Some(State::Closed)));
        assert!(s.a.events.has(Events::ABORTED));
        assert_eq!(s.a.stats.counter(TcpCounter::Timeouts), 1);
        let rtos = s.a.stats.counter(TcpCounter::RtoExpired);
        assert!(rtos >= 4, "{rtos}");
    }

    #[test]
    fn keepalive_detects_a_dead_peer() {
        let mut c = cfg();
        c.keepalive_idle = 10 * S;
        c.keepalive_interval = S;
        c.keepalive_probes = 3;
        let mut s = Sim::new(c, cfg(), 500, 31);
        s.connect();
        assert!(s.run_until(S, |s| s.states().1 == Some(State::Established)));
        s.run_until(20 * S, |_| false);
        assert!(s.a.stats.counter(TcpCounter::KeepaliveProbes) >= 1, "probes on an idle connection");
        assert_eq!(s.states().0, Some(State::Established), "answered probes keep it");
        s.ab.down = true;
        s.ba.down = true;
        assert!(s.run_until(60 * S, |s| s.states().0 == Some(State::Closed)));
        assert_eq!(s.a.stats.counter(TcpCounter::Timeouts), 1);
    }
}

#[test]
fn a_blocked_emit_loses_nothing() {
    let mut s = established();
    let data = pattern(50_000, 9);
    let now = s.now;
    // The application writes; the caller cannot send right now.
    s.a.with(now, |c, env| {
        for piece in data.chunks(1448) {
            c.send(crate::buf::VecChunk::new(piece.to_vec()), env.arena).unwrap();
        }
        let mut w = Wire { refuse: true, ..Wire::default() };
        let t = c.transmit(env, &mut w);
        assert!(t.blocked && t.segments == 0 && w.out.is_empty());
        assert!(c.wants_transmit(), "still has everything to send");
    });
    assert!(s.run_until(10 * S, |s| s.b.received.len() >= 50_000));
    same(&s.b.received, &data);
}

#[test]
fn reset_for_an_unknown_flow_follows_rfc_9293() {
    let syn = Segment { seq: Seq(500), flags: Flags::SYN, ..Segment::default() };
    let r = crate::conn::reset_for(&syn).unwrap();
    assert_eq!((r.seq, r.ack, r.flags), (Seq(0), Seq(501), Flags::RST | Flags::ACK));
    let ack = Segment { seq: Seq(500), ack: Seq(77), flags: Flags::ACK, len: 10, ..Segment::default() };
    let r = crate::conn::reset_for(&ack).unwrap();
    assert_eq!((r.seq, r.flags), (Seq(77), Flags::RST));
    assert!(crate::conn::reset_for(&Segment { flags: Flags::RST, ..Segment::default() }).is_none());
    let _ = OutSegment::default();
}
