//! RFC 9293's state transitions one segment at a time (no simulated
//! network): each test drives a single [`Conn`] with hand-built segments
//! and timers, then checks the state it lands in and exactly what it sent
//! (flags, sequence and acknowledgment numbers).
//!
//! The passive side is `Conn::accept` with IRS 1000 / ISS 5000, so once
//! established RCV.NXT is 1001 and SND.NXT 5001 (1002 / 5002 after a FIN
//! each way); the active side is `Conn::connect` with ISS 100, and its
//! peer's SYN has ISN 7000. No timestamps, no window scaling, no delayed
//! ACKs and no tail loss probes, so every ACK and timer is deterministic.
use super::{Conn, Events, State};
use crate::buf::VecChunk;
use crate::config::TcpConfig;
use crate::segment::{Flags, Segment};
use crate::seq::Seq;
use crate::stats::{TcpCounter, TcpDrop};
use crate::testkit::Wired;

const MS: u64 = 1000;
const S: u64 = 1_000_000;
/// When every test starts.
const T0: u64 = 1_000_000;

fn cfg() -> TcpConfig {
    TcpConfig { tlp: false, delayed_ack: 0, ..TcpConfig::default() }
}

/// The core a connection runs on.
type H = crate::testkit::Core;

/// A segment with a full window and no options.
fn seg(seq: u32, ack: u32, flags: Flags) -> Segment {
    Segment { seq: Seq(seq), ack: Seq(ack), flags, wnd: 65535, ..Segment::default() }
}

/// (flags, seq, ack) of each segment, for exact comparisons.
fn hdrs(w: &[Wired]) -> Vec<(Flags, u32, u32)> {
    w.iter().map(|w| (w.seg.flags, w.seg.seq.0, w.seg.ack.0)).collect()
}

/// A passive open, ESTABLISHED: RCV.NXT 1001, SND.NXT 5001.
fn server(h: &mut H, cfg: TcpConfig, now: u64) -> Conn {
    let mut c = h.established_server(cfg, now);
    assert_eq!(c.take_events(), Events::ESTABLISHED);
    assert!(h.tx(&mut c, now).is_empty());
    c
}

/// An active open, SYN-SENT, its SYN (ISS 100) sent.
fn client(h: &mut H, cfg: TcpConfig, now: u64) -> Conn {
    let mut c = Conn::connect(cfg, Seq(100), 0, now, &mut h.stats);
    assert_eq!(c.state(), State::SynSent);
    let w = h.tx(&mut c, now);
    assert_eq!(hdrs(&w), [(Flags::SYN, 100, 0)]);
    c
}

/// The peer's SYN (ISN 7000, no options) crossing ours: SYN-RECEIVED, and
/// the SYN-ACK sent.
fn simultaneous(h: &mut H, cfg: TcpConfig, now: u64) -> Conn {
    let mut c = client(h, cfg, now);
    h.seg(&mut c, now + 10 * MS, Segment { seq: Seq(7000), flags: Flags::SYN, wnd: 65535, ..Segment::default() });
    assert_eq!(c.state(), State::SynReceived);
    let w = h.tx(&mut c, now + 10 * MS);
    assert_eq!(hdrs(&w), [(Flags::SYN | Flags::ACK, 100, 7001)], "SYN-ACK <SEQ=ISS><ACK=RCV.NXT>");
    c
}

/// A connection in `st`, reached at `now`, with its events taken.
/// FIN-WAIT-1 and what follows it come from CLOSE (so the connection is an
/// orphan); CLOSE-WAIT and LAST-ACK from the peer's FIN first.
fn reach(h: &mut H, cfg: TcpConfig, st: State, now: u64) -> Conn {
    let mut c = match st {
        State::SynSent => client(h, cfg, now),
        State::SynReceived => simultaneous(h, cfg, now),
        _ => server(h, cfg, now),
    };
    let fin_wait_1 = |h: &mut H, c: &mut Conn| {
        h.close(c);
        assert_eq!(hdrs(&h.tx(c, now)), [(Flags::FIN | Flags::ACK, 5001, 1001)]);
        assert_eq!(c.state(), State::FinWait1);
    };
    let close_wait = |h: &mut H, c: &mut Conn| {
        h.seg(c, now, seg(1001, 5001, Flags::FIN | Flags::ACK));
        assert_eq!(c.state(), State::CloseWait);
        assert_eq!(hdrs(&h.tx(c, now)), [(Flags::ACK, 5001, 1002)]);
    };
    match st {
        State::SynSent | State::SynReceived | State::Established => {}
        State::FinWait1 => fin_wait_1(h, &mut c),
        State::FinWait2 => {
            fin_wait_1(h, &mut c);
            h.seg(&mut c, now, seg(1001, 5002, Flags::ACK));
            assert!(h.tx(&mut c, now).is_empty());
        }
        State::CloseWait => close_wait(h, &mut c),
        State::LastAck => {
            close_wait(h, &mut c);
            h.close(&mut c);
            assert_eq!(hdrs(&h.tx(&mut c, now)), [(Flags::FIN | Flags::ACK, 5001, 1002)]);
        }
        State::Closing => {
            fin_wait_1(h, &mut c);
            // The peer's FIN, not acknowledging ours: the FINs crossed.
            h.seg(&mut c, now, seg(1001, 5001, Flags::FIN | Flags::ACK));
            assert_eq!(hdrs(&h.tx(&mut c, now)), [(Flags::ACK, 5002, 1002)]);
        }
        State::TimeWait => {
            fin_wait_1(h, &mut c);
            h.seg(&mut c, now, seg(1001, 5002, Flags::ACK));
            assert_eq!(c.state(), State::FinWait2);
            h.seg(&mut c, now, seg(1001, 5002, Flags::FIN | Flags::ACK));
            assert_eq!(hdrs(&h.tx(&mut c, now)), [(Flags::ACK, 5002, 1002)]);
        }
        State::Closed => unreachable!("not a state to reach"),
    }
    assert_eq!(c.state(), st);
    c.take_events();
    c
}

mod syn_sent {
    use super::*;

    #[test]
    fn close_deletes_the_tcb_and_its_syn_timer() {
        let mut h = H::new();
        let mut c = client(&mut h, cfg(), T0);
        assert_eq!(c.poll_at(), Some(T0 + S), "the SYN's RTO");
        h.close(&mut c);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED, "a clean close, not ABORTED");
        assert_eq!(c.poll_at(), None, "no SYN retransmission after CLOSE");
        assert!(h.tx(&mut c, T0).is_empty(), "nothing is sent (RFC 9293 3.10.4)");
        // A SYN-ACK arriving later finds nothing.
        h.seg(&mut c, T0 + 10 * MS, seg(7000, 101, Flags::SYN | Flags::ACK));
        assert_eq!(c.state(), State::Closed);
        assert!(h.tx(&mut c, T0 + 10 * MS).is_empty());
        assert_eq!(h.stats.drops(TcpDrop::Closed), 1);
    }

    #[test]
    fn abort_closes_without_a_reset() {
        let mut h = H::new();
        let mut c = client(&mut h, cfg(), T0);
        c.abort();
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED);
        assert_eq!(c.poll_at(), None);
        assert!(h.tx(&mut c, T0).is_empty(), "no RST in SYN-SENT (RFC 9293 3.10.5)");
        assert_eq!(h.stats.counter(TcpCounter::ResetsOut), 0);
    }

    #[test]
    fn a_syn_ack_with_a_bad_ack_is_answered_with_a_reset_and_ignored() {
        let mut h = H::new();
        let mut c = client(&mut h, cfg(), T0);
        h.seg(&mut c, T0 + 10 * MS, seg(7000, 555, Flags::SYN | Flags::ACK));
        assert_eq!(c.state(), State::SynSent);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 10 * MS)), [(Flags::RST, 555, 0)], "<SEQ=SEG.ACK><CTL=RST>");
        assert_eq!(h.stats.drops(TcpDrop::BadSynAck), 1);
        assert_eq!(c.poll_at(), Some(T0 + S), "the SYN timer runs on");
        // The real SYN-ACK still completes the handshake.
        h.seg(&mut c, T0 + 20 * MS, seg(7000, 101, Flags::SYN | Flags::ACK));
        assert_eq!(c.state(), State::Established);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 20 * MS)), [(Flags::ACK, 101, 7001)]);
    }

    #[test]
    fn a_reset_counts_only_with_an_acceptable_ack() {
        let mut h = H::new();
        let mut c = client(&mut h, cfg(), T0);
        // RST without ACK: ignored (RFC 9293 3.10.7.3, RFC 5961 3.2).
        h.seg(&mut c, T0 + 10 * MS, seg(7000, 0, Flags::RST));
        assert_eq!(c.state(), State::SynSent);
        assert!(h.tx(&mut c, T0 + 10 * MS).is_empty());
        assert_eq!(h.stats.drops(TcpDrop::RstNotExact), 1);
        // RST with an ACK of something else: ignored, and not answered.
        h.seg(&mut c, T0 + 20 * MS, seg(7000, 555, Flags::RST | Flags::ACK));
        assert_eq!(c.state(), State::SynSent);
        assert!(h.tx(&mut c, T0 + 20 * MS).is_empty());
        assert_eq!(h.stats.drops(TcpDrop::BadSynAck), 1);
        // A segment with neither SYN nor RST, even with the right ACK: dropped.
        h.seg(&mut c, T0 + 30 * MS, seg(7001, 101, Flags::ACK));
        assert_eq!(c.state(), State::SynSent);
        assert!(h.tx(&mut c, T0 + 30 * MS).is_empty());
        assert_eq!(h.stats.drops(TcpDrop::BadSynAck), 2);
        assert_eq!(c.take_events(), Events::default());
        // RST acknowledging our SYN: refused.
        h.seg(&mut c, T0 + 40 * MS, seg(0, 101, Flags::RST | Flags::ACK));
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED);
        assert_eq!(c.poll_at(), None);
        assert!(h.tx(&mut c, T0 + 40 * MS).is_empty());
        assert_eq!(h.stats.counter(TcpCounter::ResetsIn), 1);
    }

    #[test]
    fn a_syn_ack_with_data_and_fin_goes_to_close_wait_with_the_data() {
        let mut h = H::new();
        let mut c = client(&mut h, cfg(), T0);
        h.data(&mut c, T0 + 10 * MS, seg(7000, 101, Flags::SYN | Flags::ACK | Flags::FIN), b"0123456789");
        assert_eq!(c.state(), State::CloseWait);
        let ev = c.take_events();
        assert_eq!(ev, Events::ESTABLISHED | Events::READABLE | Events::PEER_CLOSED);
        assert_eq!(c.rcv_nxt(), Seq(7012), "SYN + 10 bytes + FIN");
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 10 * MS)), [(Flags::ACK, 101, 7012)]);
        assert_eq!(c.recv(&mut h.arena).map(|ch| ch.bytes().to_vec()), Some(b"0123456789".to_vec()));
        assert!(c.read_closed());
    }
}

mod syn_received {
    use super::*;

    #[test]
    fn a_crossing_syn_ack_with_data_delivers_it_from_the_byte_after_its_syn() {
        let mut h = H::new();
        let mut c = simultaneous(&mut h, cfg(), T0);
        // The peer's SYN-ACK (its SYN is 7000) carries 5 bytes: 7001..7006.
        h.data(&mut c, T0 + 20 * MS, seg(7000, 101, Flags::SYN | Flags::ACK | Flags::PSH), b"hello");
        assert_eq!(c.state(), State::Established);
        assert_eq!(c.rcv_nxt(), Seq(7006));
        assert_eq!(c.recv(&mut h.arena).expect("the data").bytes(), b"hello");
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 20 * MS)), [(Flags::ACK, 101, 7006)]);
    }

    #[test]
    fn crossing_syns_enter_syn_received_and_the_peers_syn_ack_establishes() {
        let mut h = H::new();
        let mut c = simultaneous(&mut h, cfg(), T0);
        assert_eq!(c.take_events(), Events::default(), "not established yet");
        assert_eq!(c.poll_at(), Some(T0 + 10 * MS + S), "the SYN-ACK's RTO");
        // The peer's SYN-ACK: its SYN again, acknowledging ours.
        h.seg(&mut c, T0 + 20 * MS, seg(7000, 101, Flags::SYN | Flags::ACK));
        assert_eq!(c.state(), State::Established);
        assert_eq!(c.take_events(), Events::ESTABLISHED);
        assert_eq!(h.stats.drops(TcpDrop::SynInSync), 0, "taken as the ACK, not challenged");
        // Our SYN-ACK already acknowledged its SYN: nothing more is owed.
        assert!(h.tx(&mut c, T0 + 20 * MS).is_empty());
        assert_eq!((c.snd_una(), c.snd_nxt(), c.rcv_nxt()), (Seq(101), Seq(101), Seq(7001)));
    }

    #[test]
    fn an_unacceptable_ack_gets_a_reset_and_the_connection_stays() {
        let mut h = H::new();
        let mut c = simultaneous(&mut h, cfg(), T0);
        h.seg(&mut c, T0 + 20 * MS, seg(7001, 999, Flags::ACK));
        assert_eq!(c.state(), State::SynReceived);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 20 * MS)), [(Flags::RST, 999, 0)], "<SEQ=SEG.ACK><CTL=RST>");
        assert_eq!(h.stats.drops(TcpDrop::BadAck), 1);
        // The right ACK still completes it.
        h.seg(&mut c, T0 + 30 * MS, seg(7001, 101, Flags::ACK));
        assert_eq!(c.state(), State::Established);
        assert!(h.tx(&mut c, T0 + 30 * MS).is_empty());
    }

    #[test]
    fn a_reset_at_rcv_nxt_closes_it_and_one_elsewhere_is_challenged() {
        let mut h = H::new();
        let mut c = simultaneous(&mut h, cfg(), T0);
        // In the window, not exact: a challenge ACK (RFC 5961 3.2).
        h.seg(&mut c, T0 + 20 * MS, seg(7011, 0, Flags::RST));
        assert_eq!(c.state(), State::SynReceived);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 20 * MS)), [(Flags::ACK, 101, 7001)]);
        assert_eq!(h.stats.counter(TcpCounter::ChallengeAcks), 1);
        // Exactly RCV.NXT: refused (the open was active), CLOSED.
        h.seg(&mut c, T0 + 30 * MS, seg(7001, 0, Flags::RST));
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED);
        assert_eq!(c.poll_at(), None);
        assert!(h.tx(&mut c, T0 + 30 * MS).is_empty());
        assert_eq!(h.stats.counter(TcpCounter::ResetsIn), 1);
    }

    #[test]
    fn the_syn_ack_is_retransmitted_with_backoff_then_given_up() {
        let mut h = H::new();
        let cfg = cfg();
        let mut c = simultaneous(&mut h, cfg, T0);
        let mut sent_at = vec![T0 + 10 * MS];
        let mut now = T0 + 10 * MS;
        while c.state() != State::Closed {
            now = c.poll_at().expect("a timer while the handshake is open");
            h.timer(&mut c, now);
            let w = h.tx(&mut c, now);
            if c.state() == State::Closed {
                assert!(w.is_empty(), "no RST when the handshake times out");
                break;
            }
            assert_eq!(hdrs(&w), [(Flags::SYN | Flags::ACK, 100, 7001)]);
            sent_at.push(now);
            assert!(sent_at.len() < 20, "never gave up");
        }
        sent_at.push(now);
        // The SYN-ACKs share the SYN's budget of 1 + syn_retries
        // transmissions (as Linux, whose retransmission count carries over
        // from SYN-SENT): one SYN, then syn_retries SYN-ACKs.
        assert_eq!(sent_at.len() - 1, usize::from(cfg.syn_retries), "SYN-ACKs sent");
        let gaps: Vec<u64> = sent_at.windows(2).map(|p| (p[1] - p[0]) / S).collect();
        assert_eq!(gaps, [1, 2, 4, 8, 16, 32], "exponential backoff from the 1 s initial RTO");
        assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED);
        assert_eq!(h.stats.counter(TcpCounter::Timeouts), 1);
        assert_eq!(c.poll_at(), None);
    }
}

mod syn_received_close {
    use super::*;

    /// A simultaneous open, SYN-RECEIVED, and the application's CLOSE with
    /// nothing queued: the FIN goes at once, right behind the SYN-ACK
    /// (RFC 9293 3.10.4), and the connection is in FIN-WAIT-1.
    fn closed_in_syn_received(h: &mut H) -> Conn {
        let mut c = simultaneous(h, cfg(), T0);
        h.close(&mut c);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 10 * MS)), [(Flags::FIN | Flags::ACK, 101, 7001)]);
        assert_eq!(c.state(), State::FinWait1);
        c
    }

    #[test]
    fn close_with_nothing_queued_sends_the_fin_at_once() {
        let mut h = H::new();
        let mut c = closed_in_syn_received(&mut h);
        // The peer's SYN-ACK acknowledges our SYN, not yet the FIN.
        h.seg(&mut c, T0 + 20 * MS, seg(7000, 101, Flags::SYN | Flags::ACK));
        assert_eq!(c.state(), State::FinWait1);
        assert_eq!(h.stats.drops(TcpDrop::SynInSync), 0, "taken as the ACK of our SYN");
        assert_eq!(c.poll_at(), Some(T0 + 20 * MS + S), "the FIN's timer runs on");
        // Its ACK of the FIN, then its own FIN.
        h.seg(&mut c, T0 + 30 * MS, seg(7001, 102, Flags::ACK));
        assert_eq!(c.state(), State::FinWait2);
        h.seg(&mut c, T0 + 40 * MS, seg(7001, 102, Flags::FIN | Flags::ACK));
        assert_eq!(c.state(), State::TimeWait);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 40 * MS)), [(Flags::ACK, 102, 7002)]);
    }

    #[test]
    fn the_ack_of_the_syn_tells_the_application_the_peer_is_there() {
        let mut h = H::new();
        let mut c = simultaneous(&mut h, cfg(), T0);
        // A half-close, not a CLOSE: the application goes on reading.
        c.shutdown();
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 10 * MS)), [(Flags::FIN | Flags::ACK, 101, 7001)]);
        h.seg(&mut c, T0 + 20 * MS, seg(7001, 101, Flags::ACK));
        assert_eq!(c.state(), State::FinWait1);
        assert_eq!(c.take_events(), Events::ESTABLISHED);
        h.data(&mut c, T0 + 30 * MS, seg(7001, 102, Flags::ACK | Flags::PSH), b"still here");
        assert_eq!(c.state(), State::FinWait2);
        assert_eq!(c.recv(&mut h.arena).expect("data").bytes(), b"still here");
    }

    #[test]
    fn one_ack_of_the_syn_and_the_fin_goes_to_fin_wait_2() {
        let mut h = H::new();
        let mut c = closed_in_syn_received(&mut h);
        h.seg(&mut c, T0 + 20 * MS, seg(7001, 102, Flags::ACK));
        assert_eq!(c.state(), State::FinWait2);
        assert!(h.tx(&mut c, T0 + 20 * MS).is_empty());
        assert_eq!((c.snd_una(), c.snd_nxt()), (Seq(102), Seq(102)));
    }

    #[test]
    fn a_lost_syn_ack_goes_again_with_the_fin_behind_it() {
        let mut h = H::new();
        let mut c = closed_in_syn_received(&mut h);
        // Nothing comes back: the SYN-ACK's timer (1 s from the SYN-ACK).
        let at = c.poll_at().expect("the SYN-ACK's timer");
        assert_eq!(at, T0 + 10 * MS + S);
        h.timer(&mut c, at);
        assert_eq!(
            hdrs(&h.tx(&mut c, at)),
            [(Flags::SYN | Flags::ACK, 100, 7001), (Flags::FIN | Flags::ACK, 101, 7001)]
        );
        assert_eq!(c.state(), State::FinWait1);
        h.seg(&mut c, at + 10 * MS, seg(7001, 102, Flags::ACK));
        assert_eq!(c.state(), State::FinWait2);
    }

    #[test]
    fn close_with_data_queued_sends_the_fin_behind_it_once_established() {
        let mut h = H::new();
        let mut c = simultaneous(&mut h, cfg(), T0);
        c.send(VecChunk::new(b"last words".to_vec()), &mut h.arena).unwrap();
        h.close(&mut c);
        assert!(h.tx(&mut c, T0 + 10 * MS).is_empty(), "data waits for ESTABLISHED, and the FIN behind it");
        assert_eq!(c.state(), State::SynReceived);
        h.seg(&mut c, T0 + 20 * MS, seg(7001, 101, Flags::ACK));
        let w = h.tx(&mut c, T0 + 20 * MS);
        assert_eq!(hdrs(&w), [(Flags::FIN | Flags::PSH | Flags::ACK, 101, 7001)]);
        assert_eq!(w[0].payload, b"last words");
        assert_eq!(c.state(), State::FinWait1);
    }
}

mod fin_wait_1 {
    use super::*;

    #[test]
    fn one_fin_acking_our_fin_goes_straight_to_time_wait() {
        // fin_wait2 unlike time_wait, so the deadline tells which it is.
        let cfg = TcpConfig { fin_wait2: 30 * S, ..cfg() };
        let mut h = H::new();
        let mut c = reach(&mut h, cfg, State::FinWait1, T0);
        let now = T0 + 10 * MS;
        h.seg(&mut c, now, seg(1001, 5002, Flags::FIN | Flags::ACK));
        assert_eq!(c.state(), State::TimeWait);
        assert_eq!(c.poll_at(), Some(now + cfg.time_wait), "2 MSL, not the FIN-WAIT-2 linger");
        assert_eq!(c.take_events(), Events::PEER_CLOSED);
        assert_eq!(hdrs(&h.tx(&mut c, now)), [(Flags::ACK, 5002, 1002)], "the peer's FIN acknowledged");
        assert_eq!(h.stats.counter(TcpCounter::TimeWaits), 1);
    }

    #[test]
    fn data_for_an_orphan_is_answered_with_a_reset() {
        // After CLOSE the application reads nothing more: data resets the
        // connection (RFC 1122 4.2.2.13, RFC 2525 2.17; Linux's
        // TCPAbortOnData). The RST is <SEQ=SND.NXT> (5002, past our FIN) as
        // for ABORT. Linux answers with <SEQ=SEG.ACK> (5001) instead; a
        // peer that has not yet got our FIN takes 5002 as in-window, not
        // exact, and its challenge ACK (RFC 5961 3.2) then draws a RST at
        // 5001 from the closed tuple. Current behaviour, not Linux's.
        let mut h = H::new();
        let mut c = reach(&mut h, cfg(), State::FinWait1, T0);
        let now = T0 + 10 * MS;
        h.data(&mut c, now, seg(1001, 5001, Flags::ACK | Flags::PSH), b"0123456789");
        assert_eq!(hdrs(&h.tx(&mut c, now)), [(Flags::RST | Flags::ACK, 5002, 1001)]);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED);
        assert_eq!(c.poll_at(), None);
        assert_eq!(h.released, 1, "the data was not kept");
    }

    #[test]
    fn a_half_closed_connection_still_takes_data() {
        // shutdown(), not close(): not an orphan, so data is no reason to reset.
        let mut h = H::new();
        let mut c = server(&mut h, cfg(), T0);
        c.shutdown();
        assert_eq!(hdrs(&h.tx(&mut c, T0)), [(Flags::FIN | Flags::ACK, 5001, 1001)]);
        assert_eq!(c.state(), State::FinWait1);
        h.data(&mut c, T0 + 10 * MS, seg(1001, 5001, Flags::ACK | Flags::PSH), b"0123456789");
        assert_eq!(c.state(), State::FinWait1);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 10 * MS)), [(Flags::ACK, 5002, 1011)]);
    }

    #[test]
    fn close_with_unread_data_in_closing_resets() {
        // shutdown(), then the peer's data and FIN cross ours: CLOSING with
        // 10 bytes unread. CLOSE now loses them: a RST tells the peer
        // (RFC 9293 3.10.4 / RFC 2525 2.17, Linux's tcp_close in any state).
        let mut h = H::new();
        let mut c = server(&mut h, cfg(), T0);
        c.shutdown();
        assert_eq!(hdrs(&h.tx(&mut c, T0)), [(Flags::FIN | Flags::ACK, 5001, 1001)]);
        h.data(&mut c, T0 + 10 * MS, seg(1001, 5001, Flags::ACK | Flags::PSH | Flags::FIN), b"0123456789");
        assert_eq!(c.state(), State::Closing);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 10 * MS)), [(Flags::ACK, 5002, 1012)]);
        h.close(&mut c);
        assert_eq!(hdrs(&h.tx(&mut c, T0 + 20 * MS)), [(Flags::RST | Flags::ACK, 5002, 1012)]);
        assert_eq!(c.state(), State::Closed);
    }
}

mod fin_wait_2 {
    use super::*;

    #[test]
    fn an_orphan_lingers_for_fin_wait2_then_closes() {
        let cfg = TcpConfig { fin_wait2: 30 * S, ..cfg() };
        let mut h = H::new();
        let mut c = reach(&mut h, cfg, State::FinWait1, T0);
        let now = T0 + 10 * MS;
        h.seg(&mut c, now, seg(1001, 5002, Flags::ACK));
        assert_eq!(c.state(), State::FinWait2);
        assert_eq!(c.poll_at(), Some(now + cfg.fin_wait2), "closed first: the linger is armed at once");
        assert!(h.tx(&mut c, now).is_empty());
        h.timer(&mut c, now + cfg.fin_wait2 - 1);
        assert_eq!(c.state(), State::FinWait2, "not before its time");
        // Silently, as on Linux's usual path (with tcp_fin_timeout at 60 s
        // an orphaned FIN-WAIT-2 becomes a timewait socket that expires
        // without a RST).
        h.timer(&mut c, now + cfg.fin_wait2);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED);
        assert_eq!(c.poll_at(), None);
        assert!(h.tx(&mut c, now + cfg.fin_wait2).is_empty());
    }

    #[test]
    fn data_for_an_orphan_is_answered_with_a_reset() {
        let mut h = H::new();
        let mut c = reach(&mut h, cfg(), State::FinWait2, T0);
        let now = T0 + 10 * MS;
        h.data(&mut c, now, seg(1001, 5002, Flags::ACK | Flags::PSH), b"0123456789");
        assert_eq!(hdrs(&h.tx(&mut c, now)), [(Flags::RST | Flags::ACK, 5002, 1001)]);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED);
        assert_eq!(c.poll_at(), None);
    }
}

mod close_wait {
    use super::*;

    #[test]
    fn close_sends_fin_into_last_ack_and_its_ack_closes() {
        let mut h = H::new();
        let mut c = server(&mut h, cfg(), T0);
        h.seg(&mut c, T0, seg(1001, 5001, Flags::FIN | Flags::ACK));
        assert_eq!(c.state(), State::CloseWait);
        assert_eq!(c.take_events(), Events::PEER_CLOSED);
        assert_eq!(hdrs(&h.tx(&mut c, T0)), [(Flags::ACK, 5001, 1002)]);
        let now = T0 + 10 * MS;
        h.close(&mut c);
        assert_eq!(hdrs(&h.tx(&mut c, now)), [(Flags::FIN | Flags::ACK, 5001, 1002)]);
        assert_eq!(c.state(), State::LastAck);
        assert_eq!(c.poll_at(), Some(now + S), "the FIN's RTO");
        h.seg(&mut c, now + 10 * MS, seg(1002, 5002, Flags::ACK));
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED, "a clean close, not ABORTED");
        assert_eq!(c.poll_at(), None);
        assert!(h.tx(&mut c, now + 10 * MS).is_empty());
    }
}

mod time_wait {
    use super::*;

    #[test]
    fn a_retransmitted_fin_is_acked_and_restarts_2msl() {
        let cfg = cfg();
        let mut h = H::new();
        let mut c = reach(&mut h, cfg, State::TimeWait, T0);
        assert_eq!(c.poll_at(), Some(T0 + cfg.time_wait));
        // Our ACK of the peer's FIN was lost: the FIN comes again.
        let again = T0 + 10 * S;
        h.seg(&mut c, again, seg(1001, 5002, Flags::FIN | Flags::ACK));
        assert_eq!(c.state(), State::TimeWait);
        assert_eq!(hdrs(&h.tx(&mut c, again)), [(Flags::ACK, 5002, 1002)]);
        assert_eq!(c.poll_at(), Some(again + cfg.time_wait), "2 MSL from the retransmitted FIN");
        h.timer(&mut c, T0 + cfg.time_wait);
        assert_eq!(c.state(), State::TimeWait, "the old deadline no longer ends it");
        assert!(h.tx(&mut c, T0 + cfg.time_wait).is_empty());
        h.timer(&mut c, again + cfg.time_wait);
        assert_eq!(c.state(), State::Closed);
        assert_eq!(c.take_events(), Events::CLOSED, "a clean close, not ABORTED");
        assert_eq!(c.poll_at(), None);
        assert!(h.tx(&mut c, again + cfg.time_wait).is_empty());
    }
}

/// RST in the synchronized states other than ESTABLISHED (RFC 9293
/// 3.10.7.4 "second", RFC 5961 3.2).
mod resets {
    use super::*;

    /// Each state with its SND.NXT and RCV.NXT.
    const STATES: [(State, u32, u32); 5] = [
        (State::FinWait1, 5002, 1001),
        (State::FinWait2, 5002, 1001),
        (State::CloseWait, 5001, 1002),
        (State::Closing, 5002, 1002),
        (State::LastAck, 5002, 1002),
    ];

    #[test]
    fn a_reset_in_the_window_but_not_exact_gets_a_challenge_ack() {
        for (st, snd_nxt, rcv_nxt) in STATES {
            let mut h = H::new();
            let mut c = reach(&mut h, cfg(), st, T0);
            let now = T0 + 10 * MS;
            h.seg(&mut c, now, Segment { seq: Seq(rcv_nxt + 10), flags: Flags::RST, ..Segment::default() });
            assert_eq!(c.state(), st, "{st:?}: not reset");
            assert_eq!(hdrs(&h.tx(&mut c, now)), [(Flags::ACK, snd_nxt, rcv_nxt)], "{st:?}: challenge ACK");
            assert_eq!(h.stats.counter(TcpCounter::ChallengeAcks), 1, "{st:?}");
            assert_eq!(h.stats.drops(TcpDrop::RstNotExact), 1, "{st:?}");
            assert_eq!(c.take_events(), Events::default(), "{st:?}");
        }
    }

    #[test]
    fn a_reset_at_rcv_nxt_closes() {
        for (st, _, rcv_nxt) in STATES {
            let mut h = H::new();
            let mut c = reach(&mut h, cfg(), st, T0);
            let now = T0 + 10 * MS;
            h.seg(&mut c, now, Segment { seq: Seq(rcv_nxt), flags: Flags::RST, ..Segment::default() });
            assert_eq!(c.state(), State::Closed, "{st:?}");
            assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED, "{st:?}");
            assert_eq!(c.poll_at(), None, "{st:?}: every timer stopped");
            assert!(h.tx(&mut c, now).is_empty(), "{st:?}: a RST is never answered");
            assert_eq!(h.stats.counter(TcpCounter::ResetsIn), 1, "{st:?}");
        }
    }
}

/// ABORT (RFC 9293 3.10.5) in every state.
mod abort {
    use super::*;

    #[test]
    fn abort_resets_where_the_peer_may_still_send_and_always_closes() {
        // Some((seq, ack)): a RST <SEQ=SND.NXT> goes; None: nothing does.
        let cases = [
            (State::SynSent, None),
            (State::SynReceived, Some((101, 7001))),
            (State::Established, Some((5001, 1001))),
            (State::FinWait1, Some((5002, 1001))),
            (State::FinWait2, Some((5002, 1001))),
            (State::CloseWait, Some((5001, 1002))),
            (State::Closing, None),
            (State::LastAck, None),
            (State::TimeWait, None),
        ];
        for (st, rst) in cases {
            let mut h = H::new();
            let mut c = reach(&mut h, cfg(), st, T0);
            let now = T0 + 10 * MS;
            c.abort();
            let w = h.tx(&mut c, now);
            match rst {
                Some((seq, ack)) => {
                    assert_eq!(hdrs(&w), [(Flags::RST | Flags::ACK, seq, ack)], "{st:?}");
                    assert_eq!(h.stats.counter(TcpCounter::ResetsOut), 1, "{st:?}");
                }
                None => {
                    assert!(w.is_empty(), "{st:?}: no RST, got {:?}", hdrs(&w));
                    assert_eq!(h.stats.counter(TcpCounter::ResetsOut), 0, "{st:?}");
                }
            }
            assert_eq!(c.state(), State::Closed, "{st:?}");
            assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED, "{st:?}");
            assert_eq!(c.poll_at(), None, "{st:?}");
            // A second ABORT, or a transmit, changes nothing.
            c.abort();
            assert!(h.tx(&mut c, now).is_empty(), "{st:?}");
            assert_eq!(c.take_events(), Events::default(), "{st:?}");
        }
    }
}

/// The retransmission timer gives up (R2, RFC 9293 3.8.3) while our FIN is
/// unacknowledged.
mod rto_give_up {
    use super::*;

    #[test]
    fn the_fin_is_retransmitted_then_the_connection_reset() {
        let cfg = TcpConfig { retries: 3, ..cfg() };
        for (st, snd_nxt, rcv_nxt) in
            [(State::FinWait1, 5002, 1001), (State::Closing, 5002, 1002), (State::LastAck, 5002, 1002)]
        {
            let mut h = H::new();
            let mut c = reach(&mut h, cfg, st, T0);
            let mut at = vec![T0];
            let mut sent = Vec::new();
            while c.state() != State::Closed {
                let now = c.poll_at().expect("a timer while the FIN is out");
                h.timer(&mut c, now);
                sent.extend(hdrs(&h.tx(&mut c, now)));
                at.push(now);
                assert!(at.len() < 20, "{st:?}: never gave up");
            }
            let fin = (Flags::FIN | Flags::ACK, 5001, rcv_nxt);
            assert_eq!(sent, [fin, fin, fin, (Flags::RST | Flags::ACK, snd_nxt, rcv_nxt)], "{st:?}");
            let gaps: Vec<u64> = at.windows(2).map(|p| (p[1] - p[0]) / S).collect();
            assert_eq!(gaps, [1, 2, 4, 8], "{st:?}: backoff from the 1 s initial RTO");
            assert_eq!(c.take_events(), Events::CLOSED | Events::ABORTED, "{st:?}");
            assert_eq!(h.stats.counter(TcpCounter::Timeouts), 1, "{st:?}");
            assert_eq!(h.stats.counter(TcpCounter::RtoExpired), 4, "{st:?}");
            assert_eq!(c.poll_at(), None, "{st:?}");
        }
    }
}

/// Loss found by time (RACK, RFC 8985), one segment at a time: what the
/// state machine decides when an ACK SACKs a segment above a hole.
mod rack {
    use super::*;
    use crate::segment::SackBlock;

    const MSS: u32 = 1460;

    /// An ESTABLISHED server with an RTT sample of 1 ms (one segment sent
    /// at `T0` and acknowledged at `T0 + 1 ms`), then `n` full segments
    /// queued and sent in one transmit at `at`: (conn, their first seq).
    fn burst(h: &mut H, n: usize, at: u64) -> (Conn, u32) {
        let cfg = cfg();
        let mut c = server(h, cfg, T0);
        let send = |c: &mut Conn, h: &mut H, len: usize| {
            assert!(c.send(VecChunk::new(vec![7; len]), &mut h.arena).is_ok());
        };
        send(&mut c, h, 100);
        assert_eq!(h.tx(&mut c, T0).len(), 1);
        h.seg(&mut c, T0 + MS, seg(1001, 5101, Flags::ACK));
        for _ in 0..n {
            send(&mut c, h, MSS as usize);
        }
        let w = h.tx(&mut c, at);
        assert_eq!(w.len(), n, "the burst went in one transmit (one clock reading)");
        (c, 5101)
    }

    fn sack_ack(ack: u32, left: u32, right: u32) -> Segment {
        let mut s = seg(1001, ack, Flags::ACK);
        s.opts.sack.push(SackBlock { left: Seq(left), right: Seq(right) });
        s
    }

    #[test]
    fn holes_below_a_sacked_segment_of_the_same_burst_are_lost_once_the_reordering_window_passes() {
        let mut h = H::new();
        let at = T0 + 10 * MS;
        let (mut c, first) = burst(&mut h, 3, at);
        // The first two are lost; the third is SACKed 1 ms later.
        let third = first + 2 * MSS;
        h.seg(&mut c, at + MS, sack_ack(first, third, third + MSS));
        assert!(h.tx(&mut c, at + MS).is_empty(), "within reo_wnd (min RTT / 4): not yet lost");
        // Sent in the same pass as the SACKed one and below it: RACK deems
        // them lost at their send time + RACK.rtt (1 ms, kept in 16 µs
        // units rounded down) + reo_wnd (250 µs), and its reordering timer
        // is there for it.
        let unit = super::super::recovery::RACK_RTT_UNIT;
        let due = at + MS / unit * unit + MS / 4;
        assert_eq!(c.poll_at(), Some(due), "the reordering timer, before any RTO or probe");
        h.timer(&mut c, due);
        assert_eq!(h.stats.counter(TcpCounter::RackTimeouts), 1);
        assert_eq!(h.stats.counter(TcpCounter::FastRecoveries), 1);
        let w = h.tx(&mut c, due);
        assert_eq!(w.first().map(|w| w.seg.seq.0), Some(first), "the first hole is resent at once: {:?}", hdrs(&w));
        assert_eq!(h.stats.counter(TcpCounter::RtoExpired), 0);
    }

    #[test]
    fn an_ack_that_acknowledges_one_segment_and_sacks_a_later_one_is_no_reordering() {
        // A delayed-ACK receiver: ACK = end of the first, SACK of the third
        // (the second lost). Nothing arrived out of its sending order.
        let mut h = H::new();
        let at = T0 + 10 * MS;
        let (mut c, first) = burst(&mut h, 3, at);
        let third = first + 2 * MSS;
        h.seg(&mut c, at + MS, sack_ack(first + MSS, third, third + MSS));
        assert!(!c.rec.reordering, "reordering seen where none was");
        // A segment sent earlier that arrives after a later one was
        // delivered on an earlier ACK is reordering.
        h.seg(&mut c, at + 2 * MS, seg(1001, third + MSS, Flags::ACK));
        assert!(c.rec.reordering, "the second, delivered after the third, is reordering");
    }

    #[test]
    fn a_reordering_deadline_nothing_waits_on_any_more_is_dropped() {
        // The hole's reordering timer is armed; then the late segments'
        // ACK arrives (it was reordering, not loss): nothing is left for the
        // timer to judge, so the next deadline is the RTO, not a stale one.
        let mut h = H::new();
        let at = T0 + 10 * MS;
        let (mut c, first) = burst(&mut h, 3, at);
        let third = first + 2 * MSS;
        h.seg(&mut c, at + MS, sack_ack(first, third, third + MSS));
        let reo = c.poll_at().expect("the reordering timer");
        h.seg(&mut c, at + MS + 10, sack_ack(third, third, third + MSS));
        let next = c.poll_at().expect("the RTO");
        assert!(next > reo, "the stale reordering deadline stayed: {next} <= {reo}");
        assert_eq!(next, c.t_rto);
        assert!(!c.reo_armed);
    }

    #[test]
    fn with_three_segments_sacked_the_hole_is_lost_on_the_ack_itself() {
        // DupThresh segments SACKed and no reordering seen: reo_wnd is 0,
        // and the hole, sent before the SACKed ones, is lost at once.
        let mut h = H::new();
        let at = T0 + 10 * MS;
        let (mut c, first) = burst(&mut h, 4, at);
        h.seg(&mut c, at + MS, sack_ack(first, first + MSS, first + 4 * MSS));
        let w = h.tx(&mut c, at + MS);
        assert_eq!(w.first().map(|w| w.seg.seq.0), Some(first), "{:?}", hdrs(&w));
        assert_eq!(h.stats.counter(TcpCounter::RackTimeouts), 0);
    }
}

/// Sequence numbers wrap: after 2^32 - 1 bytes acknowledged, SND.UNA is
/// ISS again, and the connection must not take that for "our SYN is not
/// yet acknowledged" (the send queue would be read one byte off).
mod sequence_space {
    use super::*;

    #[test]
    fn data_queued_when_snd_una_has_wrapped_round_to_iss_goes_out_at_snd_una() {
        let mut h = H::new();
        let mut c = server(&mut h, cfg(), T0);
        // As if 2^32 - 1 bytes had been sent and acknowledged since the SYN.
        c.snd_una = c.iss;
        c.snd_nxt = c.iss;
        c.snd_max = c.iss;
        c.send(VecChunk::new(b"hello".to_vec()), &mut h.arena).unwrap();
        let w = h.tx(&mut c, T0);
        assert_eq!(hdrs(&w), [(Flags::PSH | Flags::ACK, 5000, 1001)]);
        assert_eq!(w[0].payload, b"hello");
        h.seg(&mut c, T0 + MS, seg(1001, 5005, Flags::ACK));
        assert_eq!(c.send_queued(), 0, "all acknowledged");
        c.send(VecChunk::new(b"again".to_vec()), &mut h.arena).unwrap();
        let w = h.tx(&mut c, T0 + MS);
        assert_eq!(hdrs(&w), [(Flags::PSH | Flags::ACK, 5005, 1001)]);
        assert_eq!(w[0].payload, b"again");
    }

    #[test]
    fn a_fin_at_iss_plus_1_after_a_wrap_is_not_taken_for_a_syn_received_close() {
        let mut h = H::new();
        let mut c = server(&mut h, cfg(), T0);
        // As if a multiple of 2^32 bytes had gone, all but the last one
        // acknowledged: the last byte at ISS, our FIN at ISS + 1.
        c.snd_una = c.iss;
        c.snd_nxt = c.iss;
        c.snd_max = c.iss;
        c.send(VecChunk::new(b"z".to_vec()), &mut h.arena).unwrap();
        h.close(&mut c);
        assert_eq!(hdrs(&h.tx(&mut c, T0)), [(Flags::FIN | Flags::PSH | Flags::ACK, 5000, 1001)]);
        assert_eq!(c.state(), State::FinWait1);
        // A duplicate ACK (SEG.ACK = ISS) is an ACK, not one to reset.
        h.seg(&mut c, T0 + MS, seg(1001, 5000, Flags::ACK));
        assert!(h.tx(&mut c, T0 + MS).is_empty(), "no RST, no SYN-ACK");
        assert_eq!(c.state(), State::FinWait1);
        // The RTO sends the byte and the FIN again, not a SYN-ACK.
        let at = c.poll_at().expect("the RTO");
        h.timer(&mut c, at);
        assert_eq!(hdrs(&h.tx(&mut c, at)), [(Flags::FIN | Flags::PSH | Flags::ACK, 5000, 1001)]);
        h.seg(&mut c, at + MS, seg(1001, 5002, Flags::ACK));
        assert_eq!(c.state(), State::FinWait2);
    }
}
