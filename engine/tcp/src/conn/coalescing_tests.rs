//! Receive coalescing: small segments share a chunk (a frame, in the
//! engine), so a peer writing small segments to a reader that is behind
//! gets the window's bytes taken, not dropped once every chunk is held.
//! The test core's chunks hold up to `testkit::FRAME_ROOM` (1800) bytes.
use super::Conn;
use crate::config::TcpConfig;
use crate::segment::{Flags, Segment};
use crate::seq::Seq;
use crate::stats::{TcpCounter, TcpDrop};
use crate::testkit::pattern;

type H = crate::testkit::Core;

const T0: u64 = 1_000_000;

fn cfg() -> TcpConfig {
    TcpConfig { tlp: false, delayed_ack: 0, ..TcpConfig::default() }
}

/// Data at `seq` (RCV.NXT starts at 1001), acknowledging nothing new.
fn data(seq: u32) -> Segment {
    Segment { seq: Seq(seq), ack: Seq(5001), flags: Flags::ACK | Flags::PSH, wnd: 65535, ..Segment::default() }
}

/// Everything the connection has received in order, read out.
fn read_all(h: &mut H, c: &mut Conn) -> Vec<u8> {
    let mut got = Vec::new();
    while let Some(ch) = c.recv(&mut h.arena) {
        got.extend_from_slice(ch.bytes());
    }
    got
}

/// Sends `bytes` in `size`-byte segments from `seq` on, one by one.
fn send_in(h: &mut H, c: &mut Conn, seq: u32, bytes: &[u8], size: usize) {
    for (k, piece) in bytes.chunks(size).enumerate() {
        h.data(c, T0, data(seq + (k * size) as u32), piece);
    }
}

#[test]
fn small_in_order_segments_fill_frames_instead_of_taking_one_each() {
    let mut h = H::new();
    let mut c = h.established_server(cfg(), T0);
    // 600 segments of 100 bytes (60,000 bytes, inside the 65,535-byte
    // window) to a reader that does not read: each in its own chunk, the
    // 257th and later would find all 256 chunks held.
    let want = pattern(60_000, 7);
    send_in(&mut h, &mut c, 1001, &want, 100);
    assert_eq!(h.stats.drops(TcpDrop::RcvBufFull), 0);
    assert_eq!(c.rcv_nxt(), Seq(1001 + 60_000), "every byte acknowledged");
    // While chunks are plentiful a chunk takes what makes one segment of
    // ours (1460 bytes): 14 of these.
    let per_chunk = 1460 / 100;
    assert_eq!(c.recv_queue().count() as usize, 600usize.div_ceil(per_chunk));
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 600 - 600u64.div_ceil(per_chunk as u64));
    assert_eq!(c.recv_queue().bytes(), 60_000);
    assert_eq!(read_all(&mut h, &mut c), want);
}

#[test]
fn segments_over_half_the_mss_keep_their_own_chunks_while_chunks_are_plentiful() {
    let mut h = H::new();
    let mut c = h.established_server(cfg(), T0);
    // Two 800-byte segments would fit one (test) frame, but 800 is more
    // than half the MSS: no copy while chunks are plentiful.
    let want = pattern(10 * 800, 8);
    send_in(&mut h, &mut c, 1001, &want, 800);
    assert_eq!(c.recv_queue().count(), 10);
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 0);
    assert_eq!(read_all(&mut h, &mut c), want);
}

#[test]
fn a_small_segment_is_not_copied_behind_a_full_sized_one_while_chunks_are_plentiful() {
    let mut h = H::new();
    let mut c = h.established_server(cfg(), T0);
    // 1460 + 100 would fit the frame but not one segment of ours: an echo
    // would send it in two pieces, both copied.
    let want = pattern(1560, 13);
    send_in(&mut h, &mut c, 1001, &want[..1460], 1460);
    h.data(&mut c, T0, data(1001 + 1460), &want[1460..]);
    assert_eq!(c.recv_queue().count(), 2);
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 0);
    assert_eq!(read_all(&mut h, &mut c), want);
}

#[test]
fn a_partly_read_chunk_takes_bytes_behind_it_only_up_to_its_frames_end() {
    let mut h = H::new();
    let mut c = h.established_server(cfg(), T0);
    let want = pattern(700 + 12 * 100, 9);
    h.data(&mut c, T0, data(1001), &want[..700]);
    // The reader takes 600 bytes in place: 100 are left, at the end of
    // 700 of the frame's 1800. What was read does not make room at the
    // back: 11 segments of 100 fit behind, the 12th takes a new chunk.
    let released = &mut h.released;
    c.consume(600, &mut h.arena, &mut |_| *released += 1);
    send_in(&mut h, &mut c, 1701, &want[700..], 100);
    assert_eq!(c.recv_queue().count(), 2);
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 11);
    assert_eq!(read_all(&mut h, &mut c), want[600..]);
}

#[test]
fn a_larger_segment_goes_behind_a_small_tail_only_once_half_the_chunks_are_held() {
    let mut h = H::new();
    // Eight chunks: half of them held is four.
    let mut c = h.established_server(TcpConfig { rcv_chunks: 8, ..cfg() }, T0);
    // 1000, then 600 (1600 would be more than one segment of ours: a
    // chunk of its own), then 800: more than half the MSS, so it goes
    // behind the 600 (1400, one segment) only under pressure. The first
    // time three chunks are held: it keeps its own. The second time five
    // are: it is copied.
    let want = pattern(2 * 2400, 10);
    let mut seq = 1001;
    for round in 0..2 {
        for (k, len) in [1000usize, 600, 800].into_iter().enumerate() {
            let from = round * 2400 + [0, 1000, 1600][k];
            h.data(&mut c, T0, data(seq), &want[from..from + len]);
            seq += len as u32;
        }
    }
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 1);
    assert_eq!(c.recv_queue().count(), 5);
    assert_eq!(h.stats.drops(TcpDrop::RcvBufFull), 0);
    assert_eq!(read_all(&mut h, &mut c), want);
}

#[test]
fn under_pressure_a_segment_is_still_not_copied_past_one_segment_of_ours() {
    let mut h = H::new();
    let mut c = h.established_server(TcpConfig { rcv_chunks: 8, ..cfg() }, T0);
    // Five 1000-byte chunks held (pressure), then 750: 1750 fits the
    // (test) frame, but is more than one segment of ours; sent back it
    // would be two segments from one chunk. (So do two full-sized
    // segments in a 4096-byte frame.)
    let want = pattern(5 * 1000 + 750, 16);
    send_in(&mut h, &mut c, 1001, &want[..5000], 1000);
    h.data(&mut c, T0, data(6001), &want[5000..]);
    assert_eq!(c.recv_queue().count(), 6);
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 0);
    assert_eq!(read_all(&mut h, &mut c), want);
}

#[test]
fn small_out_of_order_segments_share_chunks_and_drain_whole() {
    let mut h = H::new();
    let mut c = h.established_server(cfg(), T0);
    let want = pattern(40_000, 11);
    // The first 100 bytes are lost; 399 segments of 100 bytes behind the
    // hole: more than the 128 out-of-order chunks one each would allow.
    send_in(&mut h, &mut c, 1101, &want[100..], 100);
    assert_eq!(h.stats.drops(TcpDrop::OooFull), 0);
    assert_eq!(h.stats.counter(TcpCounter::OutOfOrder), 399);
    assert_eq!(c.rcv_nxt(), Seq(1001), "the hole holds RCV.NXT");
    // The last ACK's SACK block covers everything behind the hole.
    let w = h.tx(&mut c, T0);
    let last = w.last().expect("duplicate ACKs").parse();
    assert_eq!(last.ack, Seq(1001));
    let b = last.opts.sack.blocks()[0];
    assert_eq!((b.left, b.right), (Seq(1101), Seq(1001 + 40_000)));
    // The hole fills: everything moves to the receive queue, in order.
    // 14 to a chunk (one segment of ours), so 29 chunks behind the hole.
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 399 - 399u64.div_ceil(14));
    h.data(&mut c, T0, data(1001), &want[..100]);
    assert_eq!(c.rcv_nxt(), Seq(1001 + 40_000));
    // The hole's segment, and the 29 moved over whole (1400 bytes is more
    // than half the MSS: not copied again).
    assert_eq!(c.recv_queue().count() as usize, 1 + 399usize.div_ceil(14));
    assert_eq!(read_all(&mut h, &mut c), want);
}

#[test]
fn an_out_of_order_segment_not_right_behind_its_neighbour_keeps_its_own_chunk() {
    let mut h = H::new();
    let mut c = h.established_server(cfg(), T0);
    let want = pattern(500, 12);
    // 1101..1201 and 1301..1401: a gap between them, so two chunks; then
    // 1201..1301 goes behind the first, and the first hole fills.
    h.data(&mut c, T0, data(1101), &want[100..200]);
    h.data(&mut c, T0, data(1301), &want[300..400]);
    h.data(&mut c, T0, data(1201), &want[200..300]);
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 1);
    h.data(&mut c, T0, data(1001), &want[..100]);
    h.data(&mut c, T0, data(1401), &want[400..]);
    assert_eq!(c.rcv_nxt(), Seq(1501));
    assert_eq!(read_all(&mut h, &mut c), want);
}

#[test]
fn a_fin_on_a_coalesced_segment_closes_the_read_side_after_all_its_bytes() {
    let mut h = H::new();
    let mut c = h.established_server(cfg(), T0);
    let want = pattern(1000, 14);
    send_in(&mut h, &mut c, 1001, &want[..900], 100);
    let mut fin = data(1901);
    fin.flags |= Flags::FIN;
    h.data(&mut c, T0, fin, &want[900..]);
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 9);
    assert_eq!(c.state(), super::State::CloseWait);
    assert_eq!(c.rcv_nxt(), Seq(1001 + 1000 + 1), "the FIN acknowledged");
    assert!(!c.read_closed(), "bytes are still to be read");
    assert_eq!(read_all(&mut h, &mut c), want);
    assert!(c.read_closed());
}

#[test]
fn a_full_out_of_order_queue_still_takes_the_segment_behind_its_top_and_prunes_it_whole() {
    let mut h = H::new();
    // Eight chunks.
    let mut c = h.established_server(TcpConfig { rcv_chunks: 8, ..cfg() }, T0);
    let want = pattern(2000, 15);
    let at = |k: usize| 1001 + (k * 100) as u32;
    let piece = |k: usize| &want[k * 100..(k + 1) * 100];
    // The 100-byte pieces 1, 3, 5, ..., 15 arrive (0 is lost): eight
    // separate out-of-order chunks, and the queue is full.
    for k in (1..16).step_by(2) {
        h.data(&mut c, T0, data(at(k)), piece(k));
    }
    assert_eq!(h.stats.counter(TcpCounter::OutOfOrder), 8);
    // Full: piece 17 (not right behind the top) is dropped at once; piece
    // 16 (right behind piece 15) still goes into piece 15's frame.
    h.data(&mut c, T0, data(at(17)), piece(17));
    assert_eq!(h.stats.drops(TcpDrop::OooFull), 1);
    h.data(&mut c, T0, data(at(16)), piece(16));
    assert_eq!(h.stats.counter(TcpCounter::RcvCoalesced), 1);
    let _ = h.tx(&mut c, T0);
    // Piece 0 arrives: in-order data needs a chunk, so the top chunk
    // (pieces 15 and 16) is pruned whole, and the SACK blocks say so.
    h.data(&mut c, T0, data(at(0)), piece(0));
    assert_eq!(h.stats.drops(TcpDrop::OooFull), 2);
    assert_eq!(c.rcv_nxt(), Seq(at(2)));
    let w = h.tx(&mut c, T0);
    let ack = w.last().expect("an ACK").parse();
    assert_eq!(ack.ack, Seq(at(2)));
    assert!(!ack.opts.sack.blocks().is_empty());
    for b in ack.opts.sack.blocks() {
        assert!(b.right <= Seq(at(15)), "a pruned range still reported: {b:?}");
    }
    // The peer retransmits from the first hole on: everything arrives.
    for k in 2..20 {
        h.data(&mut c, T0, data(at(k)), piece(k));
    }
    assert_eq!(c.rcv_nxt(), Seq(at(20)));
    assert_eq!(read_all(&mut h, &mut c), want);
}
