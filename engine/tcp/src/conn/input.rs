//! "Segment arrives" (RFC 9293 3.10.7), in the order Linux's
//! `tcp_rcv_state_process` takes it: SYN-SENT first; then, for every other
//! state, PAWS (RFC 7323 5), the sequence check, RST (RFC 5961 3), SYN
//! (RFC 5961 4), the ACK (RFC 5961 5, RFC 9293 3.10.7.4 step 5), the data
//! and the FIN. In-order segments on an established connection take a fast
//! path (header prediction) that does the same with fewer branches.
use super::{Conn, Env, Events, Negotiated, State};
use crate::buf::{Chunk, Meta, NIL};
use crate::cc::CongestionControl;
use crate::segment::{Flags, Segment};
use crate::seq::Seq;
use crate::stats::{TcpCounter, TcpDrop};

/// 24 days in seconds: a TS.Recent older than this is no longer used for PAWS
/// (RFC 7323 5.5).
const PAWS_IDLE_S: u32 = 24 * 24 * 3600;
/// At most one ACK per this long in answer to out-of-window segments, per
/// connection (Linux's tcp_invalid_ratelimit).
const OOW_ACK_INTERVAL: u64 = 500_000;

impl Conn {
    /// A segment arrived for this connection, with its payload (exactly
    /// `seg.len` bytes) as the caller's chunk. Whatever of the payload is
    /// not kept goes to `env.release`.
    pub fn on_segment<C: Chunk>(&mut self, seg: &Segment, payload: Option<C>, env: &mut Env<'_, C>) {
        debug_assert_eq!(payload.as_ref().map_or(0, |p| p.len() as u32), seg.len);
        env.stats.add(TcpCounter::SegsIn, 1);
        match self.state {
            State::Closed => {
                env.stats.drop(TcpDrop::Closed);
                release(payload, env);
            }
            State::SynSent => self.on_syn_sent(seg, payload, env),
            _ => self.on_synchronized(seg, payload, env),
        }
    }

    /// RFC 9293 3.10.7.3.
    fn on_syn_sent<C: Chunk>(&mut self, seg: &Segment, payload: Option<C>, env: &mut Env<'_, C>) {
        let f = seg.flags;
        // First, the ACK: it must acknowledge our SYN exactly.
        let ack_ok = f.ack() && seg.ack == self.iss + 1;
        if f.ack() && !ack_ok {
            if !f.rst() {
                // "send a reset <SEQ=SEG.ACK><CTL=RST>" (the caller builds
                // it from the segment).
                self.reset_for = Some(seg.ack);
            }
            env.stats.drop(TcpDrop::BadSynAck);
            return release(payload, env);
        }
        if f.rst() {
            // Connection refused: only with an acceptable ACK (RFC 5961 3.2).
            if ack_ok {
                env.stats.add(TcpCounter::ResetsIn, 1);
                self.set_state_closed(true);
            } else {
                env.stats.drop(TcpDrop::RstNotExact);
            }
            return release(payload, env);
        }
        if !f.syn() {
            env.stats.drop(TcpDrop::BadSynAck);
            return release(payload, env);
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.rcv_wup = self.rcv_nxt;
        let o = &seg.opts;
        let ws = self.cfg.window_scaling && o.wscale.is_some();
        self.set_negotiated(Negotiated {
            peer_mss: o.mss.unwrap_or(536).max(64),
            rcv_wscale: if ws { self.cfg.wscale() } else { 0 },
            snd_wscale: if ws { o.wscale.unwrap_or(0) } else { 0 },
            window_scaling: ws,
            timestamps: self.cfg.timestamps && o.timestamp.is_some(),
            sack: self.cfg.sack && o.sack_permitted,
        });
        if let Some(ts) = o.timestamp {
            self.ts_recent = ts.val;
            self.ts_recent_at = super::secs(env.now);
        }
        // The SYN-ACK's window is never scaled.
        self.snd_wnd = seg.wnd as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
        if ack_ok {
            // Our SYN is acknowledged: ESTABLISHED.
            if self.syn_xmits == 1 {
                self.rtt.sample((env.now as u32).wrapping_sub(self.syn_sent_at));
            }
            self.snd_una = seg.ack;
            self.snd_nxt = self.snd_nxt.max(self.snd_una);
            self.snd_max = self.snd_max.max(self.snd_nxt);
            self.syn_pending = false;
            self.t_rto = 0;
            self.rtt.reset_backoff();
            self.last_rx = env.now;
            // The right edge our SYN advertised (its window is unscaled).
            self.rcv_adv = self.rcv_nxt + self.rcv_space().min(u16::MAX as u32);
            self.set_state(State::Established);
            self.events.set(Events::ESTABLISHED);
            self.ack_now = true;
            self.arm_keepalive(env.now);
            // Data on a SYN-ACK (rare; RFC 9293 allows it) is kept.
            if seg.len > 0 || f.fin() {
                let mut s = *seg;
                s.seq = seg.seq + 1;
                s.flags = Flags(f.0 & !Flags::SYN.0);
                self.accept_data(&s, payload, env);
            } else {
                release(payload, env);
            }
        } else {
            // Simultaneous open: SYN-RECEIVED, our SYN-ACK goes out.
            self.set_state(State::SynReceived);
            self.syn_pending = true;
            release(payload, env);
        }
    }

    /// Every state after SYN-SENT (RFC 9293 3.10.7.4).
    fn on_synchronized<C: Chunk>(&mut self, seg: &Segment, payload: Option<C>, env: &mut Env<'_, C>) {
        let f = seg.flags;
        // PAWS (RFC 7323 5.3 R1), before the sequence check.
        if let Some(ts) = seg.opts.timestamp.filter(|_| self.neg.timestamps) {
            let old = (ts.val.wrapping_sub(self.ts_recent) as i32) < 0;
            if old && !f.rst() && super::secs(env.now).saturating_sub(self.ts_recent_at) < PAWS_IDLE_S {
                env.stats.drop(TcpDrop::PawsRejected);
                self.oow_ack(seg, env.now);
                return release(payload, env);
            }
        }
        if self.state == State::TimeWait {
            return self.on_time_wait(seg, payload, env);
        }
        if self.fast_path(seg, &payload) {
            return self.established_fast(seg, payload, env);
        }
        // The sequence check (RFC 9293 3.10.7.4 "first"): acceptable when
        // the segment ends at or after the last window update's RCV.NXT
        // and starts within the window (Linux's tcp_sequence, which also
        // lets a zero window take ACKs and RSTs at RCV.NXT).
        let end = seg.seq + seg.seg_len();
        let right = self.rcv_nxt + self.advertised_wnd();
        let acceptable = end >= self.rcv_wup && (seg.seq <= right || (seg.seq == right && seg.seg_len() == 0));
        if !acceptable {
            env.stats.drop(TcpDrop::OutOfWindow);
            if !f.rst() {
                if f.syn() {
                    self.challenge_ack(env);
                } else {
                    self.oow_ack(seg, env.now);
                }
            }
            return release(payload, env);
        }
        // RST (RFC 5961 3.2): exactly RCV.NXT resets, anything else in the
        // window gets a challenge ACK.
        if f.rst() {
            release(payload, env);
            if seg.seq == self.rcv_nxt {
                env.stats.add(TcpCounter::ResetsIn, 1);
                self.on_reset(env);
            } else {
                env.stats.drop(TcpDrop::RstNotExact);
                self.challenge_ack(env);
            }
            return;
        }
        // A simultaneous open's SYN-ACK in SYN-RECEIVED: the peer's SYN
        // again, now with our SYN acknowledged; take it as the ACK (as
        // Linux's tcp_validate_incoming does).
        let crossing_synack =
            self.syn_unacked() && f.syn() && f.ack() && seg.seq + 1 == self.rcv_nxt && seg.ack == self.iss + 1;
        if crossing_synack {
            // Its SYN is the one we have: what else it carries (the ACK,
            // data, a FIN) starts at RCV.NXT, as in on_syn_sent.
            let mut s = *seg;
            s.seq = seg.seq + 1;
            s.flags = Flags(f.0 & !Flags::SYN.0);
            return self.on_synchronized(&s, payload, env);
        }
        // SYN on a synchronized connection (RFC 5961 4.2).
        if f.syn() {
            env.stats.drop(TcpDrop::SynInSync);
            self.challenge_ack(env);
            return release(payload, env);
        }
        if !f.ack() {
            env.stats.drop(TcpDrop::NoAck);
            return release(payload, env);
        }
        if self.syn_unacked() {
            // RFC 9293 3.10.7.4 step 5, SYN-RECEIVED (or the FIN-WAIT-1 a
            // CLOSE there led to: its FIN is out behind the SYN).
            if seg.ack.in_range_inclusive(self.snd_una + 1, self.snd_nxt) {
                self.snd_una = self.iss + 1;
                self.syn_pending = false;
                self.t_rto = 0;
                self.rtt.reset_backoff();
                self.snd_wnd = (seg.wnd as u32) << self.neg.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = seg.ack;
                // Synchronized now (in FIN-WAIT-1 too: an application that
                // only shut down its side still learns the peer is there).
                self.events.set(Events::ESTABLISHED);
                if self.state == State::SynReceived {
                    self.set_state(State::Established);
                    self.arm_keepalive(env.now);
                } else if self.snd_una != self.snd_max {
                    // The FIN is still out: its timer runs on.
                    self.t_rto = env.now + self.rto() as u64;
                }
            } else {
                self.reset_for = Some(seg.ack);
                env.stats.drop(TcpDrop::BadAck);
                return release(payload, env);
            }
        }
        if !self.process_ack(seg, env) {
            return release(payload, env);
        }
        // Accepted: TS.Recent follows the segment that covers Last.ACK.sent
        // (RFC 7323 4.3 and 5.3 R3: only from segments that passed every
        // check, as Linux's tcp_replace_ts_recent after tcp_ack), and the
        // peer is alive (keepalive counts from here, not from any segment
        // that merely carries its tuple).
        self.update_ts_recent(seg, env.now);
        self.last_rx = env.now;
        self.keepalive_sent = 0;
        // Our FIN acknowledged?
        let fin_acked = self.fin_seq.is_some_and(|s| self.snd_una > s);
        match self.state {
            State::FinWait1 if fin_acked => {
                self.set_state(State::FinWait2);
                if self.orphan {
                    self.t_linger = env.now + self.cfg.fin_wait2;
                }
            }
            State::Closing if fin_acked => {
                self.enter_time_wait(env);
                return release(payload, env);
            }
            State::LastAck if fin_acked => {
                self.set_state_closed(false);
                return release(payload, env);
            }
            _ => {}
        }
        self.accept_data(seg, payload, env);
    }

    /// A valid RST: the connection is gone (RFC 9293 3.10.7.4 "second").
    fn on_reset<C: Chunk>(&mut self, env: &mut Env<'_, C>) {
        let _ = env;
        self.rst_pending = false;
        self.set_state_closed(true);
    }

    /// Whether the segment takes the fast path: an established connection,
    /// the next expected segment, only ACK (and PSH), no SYN/FIN/RST, an
    /// ACK within what was sent, the same window, not in recovery.
    fn fast_path<C>(&self, seg: &Segment, _payload: &Option<C>) -> bool {
        self.state == State::Established
            && (seg.flags.0 & !(Flags::PSH.0)) == Flags::ACK.0
            && seg.seq == self.rcv_nxt
            && seg.ack.in_range_inclusive(self.snd_una, self.snd_max)
            && (seg.wnd as u32) << self.neg.snd_wscale == self.snd_wnd
            && seg.opts.sack.is_empty()
            && !self.rec.active
            && self.ooo.is_empty()
            && (seg.len == 0 || seg.len <= self.rcv_space())
    }

    /// The fast path: the same steps as the slow one, for the common case.
    fn established_fast<C: Chunk>(&mut self, seg: &Segment, payload: Option<C>, env: &mut Env<'_, C>) {
        self.update_ts_recent(seg, env.now);
        self.last_rx = env.now;
        self.keepalive_sent = 0;
        if seg.ack > self.snd_una {
            self.ack_new_data(seg, env, self.rack_prior());
        } else if seg.len == 0 && self.snd_max != self.snd_una {
            self.on_dupack(seg, env);
        }
        if let Some(p) = payload {
            if p.is_empty() {
                (env.release)(p);
            } else {
                self.take_in_order(p, seg, env);
            }
        }
    }

    /// Step five: the ACK field. Returns false when the segment is to be
    /// dropped (and whatever answer it needs was arranged).
    fn process_ack<C: Chunk>(&mut self, seg: &Segment, env: &mut Env<'_, C>) -> bool {
        // An ACK of something never sent: answer with an ACK, drop (RFC
        // 9293; RFC 5961 5.2).
        if seg.ack > self.snd_max {
            env.stats.drop(TcpDrop::BadAck);
            self.challenge_ack(env);
            return false;
        }
        // Too old to be an ACK of ours (RFC 5961 5.2: below SND.UNA −
        // MAX.SND.WND).
        if seg.ack < self.snd_una - self.max_snd_wnd.max(1) {
            env.stats.drop(TcpDrop::BadAck);
            self.challenge_ack(env);
            return false;
        }
        // What RACK had delivered before this ACK (its reordering test).
        let prior = self.rack_prior();
        let sack_newly = if self.neg.sack && !seg.opts.sack.is_empty() {
            self.apply_sack(seg.opts.sack.blocks(), env.arena, env.now, prior)
        } else {
            0
        };
        if seg.ack > self.snd_una {
            self.ack_new_data(seg, env, prior);
        } else {
            // Not new: a window update, or a duplicate ACK.
            let wnd = (seg.wnd as u32) << self.neg.snd_wscale;
            let dup = seg.ack == self.snd_una
                && seg.len == 0
                && !seg.flags.fin()
                && wnd == self.snd_wnd
                && self.snd_max != self.snd_una;
            // An old ACK (below SND.UNA) says nothing about the window
            // (RFC 9293 3.10.7.4: SND.UNA =< SEG.ACK =< SND.NXT).
            if seg.ack == self.snd_una {
                self.update_window(seg);
            }
            if dup || sack_newly > 0 {
                self.on_dupack(seg, env);
            }
        }
        true
    }

    /// A duplicate ACK (RFC 5681 2) or one that SACKed new data.
    fn on_dupack<C: Chunk>(&mut self, _seg: &Segment, env: &mut Env<'_, C>) {
        self.rec.dupacks = self.rec.dupacks.saturating_add(1);
        if !self.neg.sack {
            self.reno_dupack();
        }
        self.detect_loss(env.arena, env.now, env.stats);
    }

    /// SND.UNA < SEG.ACK <= SND.MAX: data (or our SYN/FIN) acknowledged.
    fn ack_new_data<C: Chunk>(&mut self, seg: &Segment, env: &mut Env<'_, C>, prior: Option<Seq>) {
        let now = env.now;
        let acked_total = seg.ack.since(self.snd_una);
        let inflight_before = self.snd_max.since(self.snd_una);
        // Release what is now acknowledged, taking an RTT sample from the
        // newest never-retransmitted node (Karn).
        let mut rtt_sample = None;
        let mut data_acked = 0u32;
        let data_start = self.data_start();
        let mut remaining = seg.ack.since(data_start).min(self.sndq.bytes());
        while remaining > 0 {
            let head = self.sndq.head();
            let n = env.arena.node(head);
            let (m, len) = (n.meta, n.chunk().len() as u32);
            let take = remaining.min(len);
            if m.sent_at != 0 && !m.is(Meta::EVER_RETRANS) && take == len {
                rtt_sample = Some(now.saturating_sub(m.sent_at) as u32);
            }
            if take == len {
                self.rack_delivered(&m, m.seq + len, now, prior);
                self.scoreboard_forget(&m, len);
                if self.send_cursor.0 == head {
                    self.send_cursor = (NIL, 0);
                }
                let (c, _) = env.arena.pop_front(&mut self.sndq).expect("head exists");
                (env.release)(c);
            } else {
                self.scoreboard_trim(env.arena, head, take);
                env.arena.advance_front(&mut self.sndq, take);
                if self.send_cursor.0 == head {
                    self.send_cursor.1 = self.send_cursor.1.saturating_sub(take);
                }
            }
            remaining -= take;
            data_acked += take;
        }
        self.bytes_out += data_acked as u64;
        self.snd_una = seg.ack;
        if self.snd_nxt < self.snd_una {
            self.snd_nxt = self.snd_una;
        }
        if self.send_cursor.0 == NIL && !self.sndq.is_empty() {
            // Offsets count from the new SND.UNA, the queue's head now.
            self.reset_send_cursor(self.snd_nxt, env);
        }
        // RTT: with timestamps, the echoed TSval is a sample too (RFC 7323
        // 4), used when no node gave one (e.g. only retransmissions acked).
        if rtt_sample.is_none() && self.neg.timestamps {
            if let Some(ts) = seg.opts.timestamp {
                let ms = self.tsval(now).wrapping_sub(ts.ecr);
                if ts.ecr != 0 && ms < 60_000 && self.rtt.has_sample() {
                    rtt_sample = Some(ms.saturating_mul(1000).max(1));
                }
            }
        }
        if let Some(r) = rtt_sample {
            self.rtt.sample(r);
        }
        self.rtt.reset_backoff();
        self.rec.dupacks = 0;
        self.rec.reno_sacked = self.rec.reno_sacked.saturating_sub(data_acked);
        self.tlp_out = false;
        if self.fin_seq.is_some_and(|f| self.snd_una > f) {
            self.fin_lost = false;
        }
        self.update_window(seg);
        let was_active = self.rec.active;
        self.maybe_end_recovery(now);
        if self.rec.active {
            // A partial ACK: the next hole is lost too (RFC 6582 3.2 step 5
            // without SACK; with SACK the scoreboard decides).
            if !self.neg.sack {
                self.mark_head_lost(env.arena);
            } else {
                self.detect_loss(env.arena, now, env.stats);
            }
        } else if !was_active {
            let acked = data_acked.max(acked_total.min(1));
            self.cc.on_ack(now, acked, inflight_before, self.mss, rtt_sample);
            if self.rec.sacked > 0 {
                self.detect_loss(env.arena, now, env.stats);
            }
        }
        // The retransmission timer: restart while data is outstanding (RFC
        // 6298 5.3), stop when all is acknowledged (5.2).
        if self.snd_una == self.snd_max {
            self.t_rto = 0;
            self.t_tlp = 0;
        } else {
            self.t_rto = now + self.rto() as u64;
            if self.rec.sacked == 0 {
                // Nothing SACKed, so nothing for the reordering timer to judge.
                self.release_reo_slot(now);
            } else {
                self.arm_tlp(now);
            }
        }
        if data_acked > 0 {
            self.events.set(Events::WRITABLE);
        }
    }

    /// Puts the send cursor on the first byte at or after `seq`.
    pub(crate) fn reset_send_cursor<C: Chunk>(&mut self, seq: crate::seq::Seq, env: &mut Env<'_, C>) {
        let off = seq.since(self.data_start());
        self.send_cursor = env.arena.locate(&self.sndq, off).unwrap_or((NIL, 0));
    }

    /// Takes the window from an acceptable segment (Linux's
    /// tcp_may_update_window: a segment that advances neither SND.UNA nor
    /// SND.WL1 may only grow the window).
    fn update_window(&mut self, seg: &Segment) {
        let wnd = (seg.wnd as u32) << self.neg.snd_wscale;
        let newer = seg.ack > self.snd_wl2 || seg.seq > self.snd_wl1 || (seg.seq == self.snd_wl1 && wnd > self.snd_wnd);
        if newer || (seg.seq == self.snd_wl1 && seg.ack == self.snd_wl2 && wnd > self.snd_wnd) {
            self.snd_wnd = wnd;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            if wnd > 0 {
                self.t_persist = 0;
                self.persist_backoff = 0;
            }
        }
    }

    /// Steps six to eight: the segment's data and FIN.
    fn accept_data<C: Chunk>(&mut self, seg: &Segment, payload: Option<C>, env: &mut Env<'_, C>) {
        let takes_data = matches!(self.state, State::Established | State::FinWait1 | State::FinWait2);
        let Some(mut p) = payload.filter(|p| !p.is_empty()) else {
            if seg.flags.fin() {
                self.on_fin(seg.seq + seg.len, env);
            }
            return;
        };
        if !takes_data {
            // CLOSE-WAIT and later: the peer already sent FIN; ignore.
            (env.release)(p);
            return;
        }
        if self.orphan {
            // Data after the application closed: reset (RFC 2525 2.17).
            (env.release)(p);
            self.rst_pending = true;
            return;
        }
        let mut seq = seg.seq;
        // Drop what was already received.
        let dup = self.rcv_nxt.since(seq);
        if dup >= p.len() as u32 {
            (env.release)(p);
            // A duplicate: ACK at once so the sender learns (RFC 9293).
            self.ack_now = true;
            if seg.flags.fin() && seg.seq + seg.len == self.rcv_nxt {
                self.on_fin(self.rcv_nxt, env);
            }
            return;
        }
        if dup > 0 {
            p.advance(dup as usize);
            seq += dup;
        }
        // Drop what lies beyond the window we advertised.
        let right = self.rcv_nxt + self.advertised_wnd().max(self.rcv_space());
        let room = right.since(seq);
        let mut fin = seg.flags.fin();
        if (p.len() as u32) > room {
            fin = false;
            if room == 0 {
                env.stats.drop(TcpDrop::RcvBufFull);
                (env.release)(p);
                self.ack_now = true;
                return;
            }
            p.truncate(room as usize);
        }
        let len = p.len() as u32;
        if seq == self.rcv_nxt {
            let mut s = *seg;
            s.seq = seq;
            s.len = len;
            self.take_in_order(p, &s, env);
            if fin && seq + len == self.rcv_nxt {
                self.on_fin(self.rcv_nxt, env);
            }
        } else {
            self.take_out_of_order(p, seq, env);
            if fin {
                self.peer_fin = Some(seq + len);
            }
        }
    }

    /// In-order data at RCV.NXT.
    fn take_in_order<C: Chunk>(&mut self, p: C, seg: &Segment, env: &mut Env<'_, C>) {
        let len = p.len() as u32;
        // What the advertised window promised is taken (its edge may lie a
        // few bytes past the buffer: the window field is rounded up, and it
        // never shrinks); beyond it, only what the buffer has room for.
        let promised = seg.seq + len <= self.rcv_adv;
        if self.coalesce_in_order(&p, promised, env) {
            (env.release)(p);
        } else {
            // Out-of-order data makes room for in-order data, which is
            // worth more (Linux's tcp_prune_ofo_queue).
            while self.rcvq.count() + self.ooo.count() >= self.cfg.rcv_chunks && !self.ooo.is_empty() {
                self.prune_ooo_tail(env);
            }
            if self.rcvq.count() + self.ooo.count() >= self.cfg.rcv_chunks || (!promised && len > self.rcv_space()) {
                env.stats.drop(TcpDrop::RcvBufFull);
                (env.release)(p);
                self.ack_now = true;
                return;
            }
            if let Err(p) = env.arena.push_back(&mut self.rcvq, p, seg.seq) {
                env.stats.drop(TcpDrop::ArenaFull);
                (env.release)(p);
                self.ack_now = true;
                return;
            }
        }
        self.rcv_nxt += len;
        self.bytes_in += len as u64;
        self.rcv_mss = self.rcv_mss.max(len.min(self.cfg.mss as u32));
        self.events.set(Events::READABLE);
        let had_ooo = !self.ooo.is_empty();
        if had_ooo {
            self.drain_ooo(env);
            // Filling a hole: ACK at once (RFC 5681 4.2).
            self.ack_now = true;
        }
        if let Some(f) = self.peer_fin.filter(|f| *f == self.rcv_nxt) {
            // A FIN that came before the data in front of it.
            self.on_fin(f, env);
        }
        self.schedule_ack(len, env.now);
    }

    /// Whether a segment of `len` bytes is worth copying behind `tail`
    /// bytes of data instead of keeping a frame of its own, as Linux's
    /// `tcp_try_coalesce` merges into the queue's tail. Only if the two
    /// still make one segment of ours: a chunk then never spans two of our
    /// segments, so an echo sends it back as one, zero copy, and the
    /// scoreboard (whole chunks SACKed or lost) stays as fine as the
    /// segments. (Letting full-sized segments pair up in one 4096-byte
    /// frame under pressure cost a slow reader through 5 % loss 27 RTOs in
    /// 6 transfers where this rule has 1.) Within that: a small segment (at
    /// most half what the peer's segments carry: the copy costs less than
    /// the frame it frees, and a peer writing small segments to a slow
    /// reader would otherwise run the connection out of chunks long before
    /// the window's bytes) always; a larger one once half the connection's
    /// chunks are held.
    fn coalesce_worthy(&self, len: u32, tail: u32) -> bool {
        let pressed = 2 * (self.rcvq.count() + self.ooo.count()) >= self.cfg.rcv_chunks;
        tail + len <= self.mss && (pressed || len <= self.rcv_mss / 2)
    }

    /// Appends in-order `p` to the receive queue's last chunk if it is
    /// worth it and the chunk's frame has room; the caller releases `p`
    /// then. Data beyond the window's promise still needs buffer room.
    fn coalesce_in_order<C: Chunk>(&mut self, p: &C, promised: bool, env: &mut Env<'_, C>) -> bool {
        let len = p.len() as u32;
        let tail = self.rcvq.tail();
        if tail == NIL || !self.coalesce_worthy(len, env.arena.node(tail).chunk().len() as u32) {
            return false;
        }
        let held = self.rcvq.bytes() + self.ooo.bytes();
        if !promised && len > self.cfg.rcv_buf.saturating_sub(held) {
            return false;
        }
        if !env.arena.append_into(&mut self.rcvq, tail, p, env.absorb) {
            return false;
        }
        env.stats.add(TcpCounter::RcvCoalesced, 1);
        true
    }

    /// Appends out-of-order `p` (at `seq`) to node `prev` of the
    /// out-of-order queue if it follows it exactly and is worth it; then
    /// `p` is released and reported in SACK blocks.
    fn coalesce_out_of_order<C: Chunk>(&mut self, prev: u32, p: C, seq: Seq, env: &mut Env<'_, C>) -> Result<(), C> {
        if prev == NIL {
            return Err(p);
        }
        let n = env.arena.node(prev);
        let tail = n.chunk().len() as u32;
        let end = n.meta.seq + tail;
        let len = p.len() as u32;
        if end != seq || !self.coalesce_worthy(len, tail) || !env.arena.append_into(&mut self.ooo, prev, &p, env.absorb)
        {
            return Err(p);
        }
        (env.release)(p);
        env.stats.add(TcpCounter::OutOfOrder, 1);
        env.stats.add(TcpCounter::RcvCoalesced, 1);
        self.note_sack(seq, seq + len, env);
        Ok(())
    }

    /// Decides between an immediate and a delayed ACK for `len` new bytes.
    fn schedule_ack(&mut self, len: u32, now: u64) {
        self.segs_unacked += 1;
        let _ = len;
        if self.cfg.delayed_ack == 0 || self.quickacks > 0 || self.segs_unacked >= 2 {
            self.quickacks = self.quickacks.saturating_sub(1);
            self.ack_now = true;
        } else if self.t_delack == 0 {
            self.t_delack = now + self.cfg.delayed_ack;
        }
    }

    /// Data beyond a hole: kept in order of sequence, overlaps trimmed,
    /// and an immediate duplicate ACK with SACK blocks (RFC 5681 4.2, RFC
    /// 2018 4).
    fn take_out_of_order<C: Chunk>(&mut self, mut p: C, mut seq: Seq, env: &mut Env<'_, C>) {
        self.ack_now = true;
        self.dupacks_owed += 1;
        if self.ooo.count() >= self.cfg.ooo_chunks || self.rcvq.count() + self.ooo.count() >= self.cfg.rcv_chunks {
            // Full: only what goes right behind the highest data (the
            // usual next segment) may still fit in its frame; the rest is
            // dropped without a walk of the queue.
            if let Err(p) = self.coalesce_out_of_order(self.ooo.tail(), p, seq, env) {
                env.stats.drop(TcpDrop::OooFull);
                (env.release)(p);
            }
            return;
        }
        // Find the node to insert after; trim against neighbours.
        let mut prev = NIL;
        let mut i = self.ooo.head();
        while i != NIL {
            let n = env.arena.node(i);
            let (s, l, next) = (n.meta.seq, n.chunk().len() as u32, n.next());
            let e = s + l;
            if e <= seq {
                prev = i;
                i = next;
                continue;
            }
            if s <= seq {
                // Overlaps the start of p: cut p's front.
                let cut = e.since(seq);
                if cut >= p.len() as u32 {
                    (env.release)(p);
                    self.note_sack(seq, seq, env);
                    return;
                }
                p.advance(cut as usize);
                seq += cut;
                prev = i;
                i = next;
                continue;
            }
            // s > seq: p ends before or overlaps this node.
            let end = seq + p.len() as u32;
            if end > s {
                p.truncate(s.since(seq) as usize);
            }
            break;
        }
        if p.is_empty() {
            (env.release)(p);
            return;
        }
        let len = p.len() as u32;
        // Right behind the chunk before it: into that one's frame, if worth it.
        let p = match self.coalesce_out_of_order(prev, p, seq, env) {
            Ok(()) => return,
            Err(p) => p,
        };
        match env.arena.insert_after(&mut self.ooo, prev, p, seq) {
            Ok(_) => {
                env.stats.add(TcpCounter::OutOfOrder, 1);
                self.note_sack(seq, seq + len, env);
            }
            Err(p) => {
                env.stats.drop(TcpDrop::ArenaFull);
                (env.release)(p);
            }
        }
    }

    /// Drops the highest out-of-order chunk (to make room for in-order
    /// data): what was reported of it in SACK blocks is taken back (RFC
    /// 2018 8 allows the receiver to renege), a FIN beyond it forgotten.
    fn prune_ooo_tail<C: Chunk>(&mut self, env: &mut Env<'_, C>) {
        let mut prev = NIL;
        let mut i = self.ooo.head();
        while i != NIL && env.arena.node(i).next() != NIL {
            prev = i;
            i = env.arena.node(i).next();
        }
        let Some((c, m)) = env.arena.remove_after(&mut self.ooo, prev) else { return };
        (env.release)(c);
        env.stats.drop(TcpDrop::OooFull);
        let cut = m.seq;
        let mut n = 0;
        for k in 0..self.sack_report_len as usize {
            let mut b = self.sack_report[k];
            if b.left >= cut {
                continue;
            }
            if b.right > cut {
                b.right = cut;
            }
            self.sack_report[n] = b;
            n += 1;
        }
        self.sack_report_len = n as u8;
        if self.peer_fin.is_some_and(|f| f >= cut) {
            self.peer_fin = None;
        }
    }

    /// Moves out-of-order data that RCV.NXT reached into the receive queue.
    fn drain_ooo<C: Chunk>(&mut self, env: &mut Env<'_, C>) {
        while !self.ooo.is_empty() {
            let n = env.arena.node(self.ooo.head());
            let (s, l) = (n.meta.seq, n.chunk().len() as u32);
            if s > self.rcv_nxt {
                break;
            }
            let (mut c, m) = env.arena.pop_front(&mut self.ooo).expect("not empty");
            let skip = self.rcv_nxt.since(m.seq);
            if skip >= l {
                (env.release)(c);
                continue;
            }
            c.advance(skip as usize);
            let len = c.len() as u32;
            let at = self.rcv_nxt;
            if self.coalesce_in_order(&c, true, env) {
                (env.release)(c);
            } else if let Err(c) = env.arena.push_back(&mut self.rcvq, c, at) {
                (env.release)(c);
                break;
            }
            self.rcv_nxt += len;
            self.bytes_in += len as u64;
        }
        self.prune_sack_report();
        if let Some(f) = self.peer_fin {
            if f == self.rcv_nxt && self.ooo.is_empty() {
                self.on_fin(f, env);
            }
        }
    }

    /// The peer's FIN at `seq` (RFC 9293 3.10.7.4 "eighth").
    fn on_fin<C: Chunk>(&mut self, seq: Seq, env: &mut Env<'_, C>) {
        if seq != self.rcv_nxt {
            if seq > self.rcv_nxt {
                // Beyond a hole: kept, taken when the hole fills, and
                // answered at once like any out-of-order segment.
                self.peer_fin = Some(seq);
                self.dupacks_owed += 1;
            }
            // Below RCV.NXT it is a retransmitted FIN: our ACK of it was
            // lost, so say it again (Linux's tcp_data_queue for old data).
            self.ack_now = true;
            return;
        }
        self.peer_fin = None;
        self.rcv_nxt += 1;
        self.ack_now = true;
        self.events.set(Events::PEER_CLOSED);
        match self.state {
            State::SynReceived | State::Established => self.set_state(State::CloseWait),
            State::FinWait1 => {
                if self.fin_seq.is_some_and(|s| self.snd_una > s) {
                    self.enter_time_wait(env);
                } else {
                    self.set_state(State::Closing);
                }
            }
            State::FinWait2 => self.enter_time_wait(env),
            _ => {}
        }
    }

    /// TIME-WAIT: a retransmitted FIN is acknowledged and restarts the
    /// 2 MSL timer (RFC 9293 3.10.7.4); anything else is ignored.
    fn on_time_wait<C: Chunk>(&mut self, seg: &Segment, payload: Option<C>, env: &mut Env<'_, C>) {
        release(payload, env);
        if seg.flags.rst() {
            // A RST ends TIME-WAIT, as Linux does by default (tcp_rfc1337
            // = 0; RFC 9293 3.10.7.4 allows either): the peer says the old
            // connection is gone.
            if seg.seq == self.rcv_nxt {
                env.stats.add(TcpCounter::ResetsIn, 1);
                self.set_state_closed(false);
            } else {
                env.stats.drop(TcpDrop::RstNotExact);
            }
            return;
        }
        if seg.flags.fin() && seg.seq + seg.len + 1 == self.rcv_nxt {
            self.ack_now = true;
            self.t_linger = env.now + self.cfg.time_wait;
        } else if seg.flags.syn() {
            self.challenge_ack(env);
        } else {
            self.oow_ack(seg, env.now);
        }
    }

    /// Whether a SYN for this TIME-WAIT connection's tuple may open a new
    /// connection in its place (Linux's tcp_timewait_state_process): its
    /// sequence number lies beyond the old RCV.NXT, or its timestamp is
    /// newer than the old connection's. The caller then frees this one and
    /// gives the SYN to the listener.
    pub fn time_wait_takes_syn(&self, seg: &Segment) -> bool {
        if self.state != State::TimeWait || !seg.flags.syn() || seg.flags.ack() || seg.flags.rst() {
            return false;
        }
        match seg.opts.timestamp.filter(|_| self.neg.timestamps) {
            Some(ts) => (ts.val.wrapping_sub(self.ts_recent) as i32) > 0,
            None => seg.seq > self.rcv_nxt,
        }
    }

    pub(crate) fn enter_time_wait<C: Chunk>(&mut self, env: &mut Env<'_, C>) {
        self.set_state(State::TimeWait);
        env.stats.add(TcpCounter::TimeWaits, 1);
        self.t_rto = 0;
        self.t_tlp = 0;
        self.t_persist = 0;
        self.t_keepalive = 0;
        self.t_delack = 0;
        self.t_linger = env.now + self.cfg.time_wait;
        // Nothing more will be sent or read.
        env.arena.release_all(&mut self.sndq, env.release);
        env.arena.release_all(&mut self.ooo, env.release);
        self.send_cursor = (NIL, 0);
    }

    /// TS.Recent <- SEG.TSval when the segment covers the last ACK we sent
    /// (RFC 7323 4.3; Linux keys on rcv_wup).
    fn update_ts_recent(&mut self, seg: &Segment, now: u64) {
        if let Some(ts) = seg.opts.timestamp.filter(|_| self.neg.timestamps) {
            if seg.seq <= self.rcv_wup && (ts.val.wrapping_sub(self.ts_recent) as i32) >= 0 {
                self.ts_recent = ts.val;
                self.ts_recent_at = super::secs(now);
            }
        }
    }

    /// An ACK answering something invalid, at most one per 500 ms.
    fn oow_ack(&mut self, seg: &Segment, now: u64) {
        // A segment with data is a retransmission whose ACK was lost: it is
        // always answered (it cannot be part of an ACK loop; Linux's
        // tcp_oow_rate_limited exempts it too).
        if seg.len > 0 && !seg.flags.syn() {
            self.ack_now = true;
            return;
        }
        if now.saturating_sub(self.last_oow_ack) >= OOW_ACK_INTERVAL || self.last_oow_ack == 0 {
            self.last_oow_ack = now.max(1);
            self.ack_now = true;
        }
    }

    /// A challenge ACK (RFC 5961 3.2, 4.2, 5.2), rate-limited per core (7).
    fn challenge_ack<C: Chunk>(&mut self, env: &mut Env<'_, C>) {
        if env.limits.challenge_ack(env.now) {
            env.stats.add(TcpCounter::ChallengeAcks, 1);
            self.ack_now = true;
        } else {
            env.stats.add(TcpCounter::ChallengeAcksLimited, 1);
        }
    }

    /// Remembers a block received out of order for the SACK option: most
    /// recent first, merged with blocks it touches (RFC 2018 4).
    fn note_sack<C: Chunk>(&mut self, left: Seq, right: Seq, env: &mut Env<'_, C>) {
        if !self.neg.sack {
            return;
        }
        // The block of the out-of-order queue that contains the new data.
        let mut blk = crate::segment::SackBlock { left, right };
        let mut i = self.ooo.head();
        let mut cur: Option<crate::segment::SackBlock> = None;
        while i != NIL {
            let n = env.arena.node(i);
            let (s, e) = (n.meta.seq, n.meta.seq + n.chunk().len() as u32);
            cur = match cur {
                Some(b) if s <= b.right => Some(crate::segment::SackBlock { left: b.left, right: b.right.max(e) }),
                Some(b) => {
                    if b.left <= left && right <= b.right && left < right {
                        blk = b;
                    }
                    Some(crate::segment::SackBlock { left: s, right: e })
                }
                None => Some(crate::segment::SackBlock { left: s, right: e }),
            };
            i = n.next();
        }
        if let Some(b) = cur {
            if b.left <= left && right <= b.right {
                blk = b;
            }
        }
        let mut out = [crate::segment::SackBlock::default(); 4];
        out[0] = blk;
        let mut n = 1;
        for b in self.sack_report[..self.sack_report_len as usize].iter() {
            let overlaps = b.left <= blk.right && blk.left <= b.right;
            if !overlaps && n < 4 {
                out[n] = *b;
                n += 1;
            }
        }
        self.sack_report = out;
        self.sack_report_len = n as u8;
    }

    /// Drops reported blocks RCV.NXT has passed.
    fn prune_sack_report(&mut self) {
        let mut out = [crate::segment::SackBlock::default(); 4];
        let mut n = 0;
        for b in self.sack_report[..self.sack_report_len as usize].iter() {
            if b.right > self.rcv_nxt {
                out[n] = crate::segment::SackBlock { left: b.left.max(self.rcv_nxt), right: b.right };
                n += 1;
            }
        }
        self.sack_report = out;
        self.sack_report_len = n as u8;
    }
}

fn release<C: Chunk>(payload: Option<C>, env: &mut Env<'_, C>) {
    if let Some(p) = payload {
        (env.release)(p);
    }
}
