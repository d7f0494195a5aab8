//! What to send now, in Linux's order: a pending RST; the SYN or SYN-ACK;
//! retransmissions of what is deemed lost (within the congestion window,
//! RFC 6675's pipe); new data within both windows (Nagle and sender-side
//! silly window avoidance, RFC 9293 3.8.6.2.1); the FIN; and an ACK or
//! window update if nothing else carried one.
use super::{Conn, Emit, Env, PayloadRef, State, Transmitted};
use crate::buf::{Chunk, Meta, NIL};
use crate::cc::CongestionControl;
use crate::segment::{DataRange, Flags, OutSegment, SackList, Timestamp};
use crate::seq::Seq;
use crate::stats::TcpCounter;

/// Most duplicate ACKs sent in one call (a burst of out-of-order segments
/// needs only three to trigger a fast retransmit).
const MAX_DUPACKS: u32 = 8;

impl Conn {
    /// Sends what is due now through `emit`. Call after input, after
    /// timers, and after the application queued data or read.
    pub fn transmit<C: Chunk, E: Emit<C>>(&mut self, env: &mut Env<'_, C>, emit: &mut E) -> Transmitted {
        let mut t = Transmitted::default();
        if self.orphan && self.state == State::FinWait2 && self.t_linger == 0 {
            // Closed by the application after our FIN was already acked (a
            // half-close first): the orphan's FIN-WAIT-2 ends like any other.
            self.t_linger = env.now + self.cfg.fin_wait2;
        }
        if let Some(seq) = self.reset_for.take() {
            // "<SEQ=SEG.ACK><CTL=RST>" for an unacceptable ACK in a
            // non-synchronized state: the connection itself goes on.
            let seg = OutSegment { seq, flags: Flags::RST, ..OutSegment::default() };
            if self.emit_segment(&seg, None, env, emit, &mut t).is_err() {
                self.reset_for = Some(seq);
                return t;
            }
            env.stats.add(TcpCounter::ResetsOut, 1);
        }
        if self.rst_pending {
            let seg = OutSegment {
                seq: self.snd_nxt,
                ack: self.rcv_nxt,
                flags: Flags::RST | Flags::ACK,
                ..OutSegment::default()
            };
            if self.emit_segment(&seg, None, env, emit, &mut t).is_err() {
                return t;
            }
            env.stats.add(TcpCounter::ResetsOut, 1);
            self.rst_pending = false;
            self.set_state_closed(true);
            return t;
        }
        if self.state == State::Closed {
            return t;
        }
        // The SYN (or SYN-ACK) first while it is not acknowledged; in
        // FIN-WAIT-1 too, when a CLOSE in SYN-RECEIVED sent the FIN.
        // Nothing goes before it (a FIN would take its place in the
        // sequence space).
        if self.syn_pending && self.syn_unacked() && self.send_syn(env, emit, &mut t).is_err() {
            t.blocked = true;
            return t;
        }
        if self.state == State::SynSent {
            return t;
        }
        if self.state == State::TimeWait {
            if self.ack_now {
                let _ = self.send_ack(env, emit, &mut t);
            }
            return t;
        }
        if self.send_retransmissions(env, emit, &mut t).is_err()
            || self.send_probe_if_due(env, emit, &mut t).is_err()
            || self.send_new_data(env, emit, &mut t).is_err()
        {
            t.blocked = true;
            return t;
        }
        // A CLOSE in SYN-RECEIVED with nothing queued sends its FIN at once
        // and goes to FIN-WAIT-1 (RFC 9293 3.10.4); with data queued the
        // FIN waits for ESTABLISHED, behind the data.
        if self.fin_queued && self.fin_seq.is_none() && self.send_cursor.0 == NIL {
            let wnd_end = self.snd_una + self.snd_wnd;
            if self.snd_nxt < wnd_end || self.snd_wnd == 0 && self.snd_nxt == self.snd_una {
                // A FIN alone (it occupies one sequence number; a zero
                // window with nothing outstanding still lets it go, as
                // Linux does, so a close is not stuck behind a probe).
                if self.send_fin_only(env, emit, &mut t).is_err() {
                    t.blocked = true;
                    return t;
                }
            }
        }
        // One duplicate ACK per out-of-order segment (RFC 5681 4.2; the
        // first is the ACK below, or one that carried data): a peer that
        // counts them to three needs them all, even from one batch.
        let owed = std::mem::take(&mut self.dupacks_owed).min(MAX_DUPACKS);
        // ack_now is cleared by any segment that carried an ACK: one did.
        let mut acked = u32::from(owed > 0 && !self.ack_now);
        if self.ack_now || self.window_update_due() {
            if self.send_ack(env, emit, &mut t).is_err() {
                t.blocked = true;
                return t;
            }
            acked += 1;
        }
        for _ in acked..owed {
            if self.send_ack(env, emit, &mut t).is_err() {
                t.blocked = true;
                break;
            }
        }
        t
    }

    /// Sends one segment, with the bookkeeping every segment needs.
    fn emit_segment<C: Chunk, E: Emit<C>>(
        &mut self,
        seg: &OutSegment,
        payload: Option<PayloadRef>,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        if let Err(b) = emit.emit(seg, payload, env.arena) {
            t.blocked = true;
            return Err(b);
        }
        t.segments += 1;
        env.stats.add(TcpCounter::SegsOut, 1);
        if seg.flags.ack() {
            // Any segment with an ACK is an ACK: nothing is owed any more.
            self.ack_now = false;
            self.segs_unacked = 0;
            self.t_delack = 0;
            self.rcv_consumed = false;
            self.rcv_wup = self.rcv_nxt;
            let edge = self.rcv_nxt + ((seg.wnd as u32) << self.neg.rcv_wscale);
            if edge > self.rcv_adv {
                self.rcv_adv = edge;
            }
        }
        Ok(())
    }

    /// The window to advertise now: what the buffer has room for, never
    /// moving the right edge back (RFC 9293 3.8.6.2.2 "shrinking"), and
    /// opened only in steps of min(rcv_buf / 2, MSS) (receiver-side silly
    /// window avoidance, 3.8.6.2.2).
    pub(crate) fn window_to_advertise(&self) -> u32 {
        let space = self.rcv_space();
        let current = self.advertised_wnd();
        let step = (self.cfg.rcv_buf / 2).min(self.rcv_mss).max(1);
        if space >= current + step {
            space
        } else {
            current
        }
    }

    /// The window that the last advertisement still gives from RCV.NXT.
    pub(crate) fn advertised_wnd(&self) -> u32 {
        self.rcv_adv.since(self.rcv_nxt)
    }

    /// Whether the window opened enough since the last advertisement to be
    /// worth an update (Linux's tcp_cleanup_rbuf: twice the advertised).
    pub(crate) fn window_update_due(&self) -> bool {
        if !self.rcv_consumed
            || !self.state.synchronized()
            || matches!(self.state, State::CloseWait | State::LastAck | State::Closing | State::TimeWait)
        {
            return false;
        }
        let adv = self.advertised_wnd();
        let space = self.rcv_space();
        let step = (self.cfg.rcv_buf / 2).min(self.rcv_mss).max(1);
        space >= adv + step && (adv == 0 || space >= 2 * adv)
    }

    fn wnd_field(&self) -> u16 {
        let wnd = self.window_to_advertise();
        // The field carries the window shifted down, rounded up so the right
        // edge never moves back (Linux's tcp_select_window does the same).
        let s = self.neg.rcv_wscale;
        (wnd.div_ceil(1 << s)).min(u16::MAX as u32) as u16
    }

    fn ts_opt(&self, now: u64) -> Option<Timestamp> {
        self.neg.timestamps.then(|| Timestamp { val: self.tsval(now), ecr: self.ts_recent })
    }

    fn sack_opt(&self) -> SackList {
        let mut l = SackList::default();
        if self.neg.sack {
            // With timestamps three blocks fit (RFC 2018 3).
            let max = if self.neg.timestamps { 3 } else { 4 };
            for b in self.sack_report[..self.sack_report_len as usize].iter().take(max) {
                l.push(*b);
            }
        }
        l
    }

    /// A header for the established connection: our sequence number and
    /// window, the ACK, timestamps and SACK blocks.
    fn header(&self, seq: Seq, flags: Flags, now: u64) -> OutSegment {
        let mut seg = OutSegment {
            seq,
            ack: self.rcv_nxt,
            flags: flags | Flags::ACK,
            wnd: self.wnd_field(),
            ..OutSegment::default()
        };
        seg.opts.timestamp = self.ts_opt(now);
        seg.opts.sack = self.sack_opt();
        seg
    }

    /// The SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED, simultaneous open).
    fn send_syn<C: Chunk, E: Emit<C>>(
        &mut self,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        let now = env.now;
        let syn_ack = self.state != State::SynSent;
        let mut seg = OutSegment {
            seq: self.iss,
            ack: if syn_ack { self.rcv_nxt } else { Seq(0) },
            flags: if syn_ack { Flags::SYN | Flags::ACK } else { Flags::SYN },
            // The window of a SYN is never scaled (RFC 7323 2.2).
            wnd: self.rcv_space().min(u16::MAX as u32) as u16,
            ..OutSegment::default()
        };
        seg.opts.mss = Some(self.cfg.mss);
        let offer = |ours: bool, theirs: bool| ours && (!syn_ack || theirs);
        if offer(self.cfg.window_scaling, self.neg.window_scaling) {
            seg.opts.wscale = Some(if syn_ack { self.neg.rcv_wscale } else { self.cfg.wscale() });
        }
        if offer(self.cfg.sack, self.neg.sack) {
            seg.opts.sack_permitted = true;
        }
        if offer(self.cfg.timestamps, self.neg.timestamps) {
            seg.opts.timestamp =
                Some(Timestamp { val: self.tsval(now), ecr: if syn_ack { self.ts_recent } else { 0 } });
        }
        self.emit_segment(&seg, None, env, emit, t)?;
        if self.syn_xmits > 0 {
            env.stats.add(TcpCounter::RetransSyn, 1);
        }
        self.syn_xmits = self.syn_xmits.saturating_add(1);
        self.syn_pending = false;
        self.syn_sent_at = now as u32;
        // (In FIN-WAIT-1 the FIN is out behind it: SND.NXT stays.)
        if self.state != State::FinWait1 {
            self.snd_nxt = self.iss + 1;
        }
        self.snd_max = self.snd_max.max(self.snd_nxt);
        self.t_rto = now + self.rto() as u64;
        if syn_ack {
            self.rcv_adv = self.rcv_nxt + seg.wnd as u32;
        }
        Ok(())
    }

    /// Retransmits lost nodes while the pipe has room (RFC 6675 5 (C)).
    fn send_retransmissions<C: Chunk, E: Emit<C>>(
        &mut self,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        let cwnd = self.cc.cwnd().max(self.mss);
        while let Some((node, off, len)) = self.next_lost(env.arena) {
            // The fast retransmission goes regardless of the pipe, and after
            // a timeout one segment does (the loss window).
            let fast = self.rec.fast_rexmit;
            let len = len.min(self.mss);
            if !fast && self.pipe() + len > cwnd && self.pipe() > 0 {
                break;
            }
            let n = env.arena.node(node);
            let seq = n.meta.seq + off;
            let node_end = off + len == n.chunk().len() as u32;
            let mut seg = self.header(seq, Flags(0), env.now);
            seg.data = Some(DataRange { offset: seq.since(self.data_start()), len });
            if node_end && n.next() == NIL && self.fin_seq.is_some_and(|f| f == seq + len) {
                seg.flags |= Flags::FIN;
            }
            seg.flags |= Flags::PSH;
            // A refused segment keeps the fast-retransmit right for the retry.
            self.emit_segment(&seg, Some(PayloadRef { node, offset: off, len }), env, emit, t)?;
            self.rec.fast_rexmit = false;
            self.mark_retransmitted(env.arena, node, len, env.now);
            env.stats.add(if self.rec.after_rto { TcpCounter::RetransRto } else { TcpCounter::RetransFast }, 1);
            if self.t_rto == 0 {
                self.t_rto = env.now + self.rto() as u64;
            }
        }
        // The FIN itself may be the lost one.
        if self.rec.after_rto
            && self.fin_seq.is_some_and(|f| f >= self.snd_una)
            && self.sndq.is_empty()
            && self.fin_lost
        {
            let fin = self.fin_seq.expect("checked");
            let seg = self.header(fin, Flags::FIN, env.now);
            self.emit_segment(&seg, None, env, emit, t)?;
            self.fin_lost = false;
            env.stats.add(TcpCounter::RetransRto, 1);
            self.retransmits += 1;
        }
        Ok(())
    }

    /// New data within the windows: the send cursor onward.
    fn send_new_data<C: Chunk, E: Emit<C>>(
        &mut self,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        if !matches!(self.state, State::Established | State::CloseWait) && !self.fin_queued_during_close() {
            return Ok(());
        }
        let now = env.now;
        let mut limited_by_app = true;
        while self.send_cursor.0 != NIL {
            let (node, off) = self.send_cursor;
            let unsent = (self.data_start() + self.sndq.bytes()).since(self.snd_nxt);
            if unsent == 0 {
                self.send_cursor = (super::NIL, 0);
                break;
            }
            let wnd_end = self.snd_una + self.snd_wnd;
            let wnd_room = wnd_end.since(self.snd_nxt);
            // A tail loss probe may send one segment beyond the window
            // (the right is used up only when a segment goes).
            let cwnd_room = if self.tlp_new_data { self.mss } else { self.cc.cwnd().saturating_sub(self.pipe()) };
            let want = unsent.min(self.mss);
            let room = wnd_room.min(cwnd_room);
            let mut limit = want;
            if room < want {
                limited_by_app = false;
                let sws_wait = room < self.mss && room < unsent && room < self.max_snd_wnd / 2;
                if room == 0 || (sws_wait && !self.sws_override) {
                    // Window-limited: sender-side SWS avoidance waits for a
                    // bigger window (RFC 9293 3.8.6.2.1); with nothing out,
                    // only the persist timer will find out when it opens.
                    if wnd_room < want && self.snd_una == self.snd_max && self.t_persist == 0 {
                        self.arm_persist(now);
                    }
                    break;
                }
                limit = room;
            }
            let len = aligned_len(env.arena, node, off, limit);
            // Nagle: a small segment waits while data is unacknowledged.
            if self.cfg.nagle && len < self.mss && self.snd_max != self.snd_una && !self.fin_queued {
                break;
            }
            let last = len == unsent;
            let fin = last && self.fin_queued && self.fin_seq.is_none() && self.snd_nxt + len < wnd_end;
            let mut flags = if last { Flags::PSH } else { Flags(0) };
            if fin {
                flags |= Flags::FIN;
            }
            let seq = self.snd_nxt;
            let mut seg = self.header(seq, flags, now);
            seg.data = Some(DataRange { offset: seq.since(self.data_start()), len });
            self.emit_segment(&seg, Some(PayloadRef { node, offset: off, len }), env, emit, t)?;
            self.tlp_new_data = false;
            self.sws_override = false;
            self.mark_sent(env, node, off, len, now);
            self.snd_nxt += len;
            if fin {
                self.fin_sent_at(seq + len);
                self.snd_nxt += 1;
            }
            self.snd_max = self.snd_max.max(self.snd_nxt);
            if self.t_rto == 0 {
                self.t_rto = now + self.rto() as u64;
            }
            self.arm_tlp(now);
        }
        self.cc.set_app_limited(limited_by_app && self.pipe() < self.cc.cwnd() / 2);
        Ok(())
    }

    fn fin_queued_during_close(&self) -> bool {
        // FIN-WAIT-1 before the FIN is sent cannot happen (the state changes
        // when the FIN goes); data goes out only in ESTABLISHED/CLOSE-WAIT.
        false
    }

    /// Nodes `node`.. covering `len` bytes from `off` were sent at `now`;
    /// moves the send cursor past them.
    fn mark_sent<C: Chunk>(&mut self, env: &mut Env<'_, C>, node: u32, off: u32, len: u32, now: u64) {
        let mut i = node;
        let mut left = len;
        let mut at = off;
        while i != NIL && left > 0 {
            let n = env.arena.node_mut(i);
            let clen = n.chunk().len() as u32;
            let take = (clen - at).min(left);
            let m = &mut n.meta;
            m.sent = m.sent.max(at + take);
            if !m.is(Meta::LOST) {
                // A lost node keeps the time of its (re)transmission: RACK
                // judges the lost bytes by it.
                m.sent_at = now;
            }
            m.xmits = m.xmits.saturating_add(1);
            left -= take;
            if at + take == clen {
                i = n.next();
                at = 0;
            } else {
                at += take;
            }
        }
        self.send_cursor = if i == NIL { (NIL, 0) } else { (i, at) };
    }

    fn fin_sent_at(&mut self, fin: Seq) {
        self.fin_seq = Some(fin);
        self.set_state(match self.state {
            State::CloseWait => State::LastAck,
            _ => State::FinWait1,
        });
    }

    fn send_fin_only<C: Chunk, E: Emit<C>>(
        &mut self,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        let seq = self.snd_nxt;
        let seg = self.header(seq, Flags::FIN, env.now);
        self.emit_segment(&seg, None, env, emit, t)?;
        self.fin_sent_at(seq);
        self.snd_nxt += 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if self.t_rto == 0 {
            self.t_rto = env.now + self.rto() as u64;
        }
        Ok(())
    }

    /// Sends the last segment sent again (a tail loss probe without new
    /// data), or the FIN if that is all that is out.
    pub(crate) fn retransmit_tail<C: Chunk, E: Emit<C>>(
        &mut self,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        let last = self.snd_max - 1;
        let mut i = self.sndq.head();
        let mut off = 0u32;
        while i != NIL {
            let n = env.arena.node(i);
            let len = n.chunk().len() as u32;
            if n.meta.seq <= last && last < n.meta.seq + len {
                let m = n.meta;
                if m.sent == 0 || m.is(Meta::SACKED) {
                    return Ok(());
                }
                // The last MSS of what was sent of it (never past SND.MAX).
                let piece = m.sent.min(self.mss);
                let at = m.sent - piece;
                let seq = m.seq + at;
                let mut seg = self.header(seq, Flags::PSH, env.now);
                if self.fin_seq.is_some_and(|f| f == seq + piece) && n.next() == NIL && m.sent == len {
                    seg.flags |= Flags::FIN;
                }
                seg.data = Some(DataRange { offset: off + at, len: piece });
                self.emit_segment(&seg, Some(PayloadRef { node: i, offset: at, len: piece }), env, emit, t)?;
                // A probe, not a repair: the scoreboard is untouched, but no
                // RTT sample may come from this node now (Karn).
                let m = &mut env.arena.node_mut(i).meta;
                m.bits |= Meta::EVER_RETRANS;
                m.sent_at = env.now;
                self.retransmits += 1;
                if self.t_rto == 0 {
                    self.t_rto = env.now + self.rto() as u64;
                }
                return Ok(());
            }
            off += len;
            i = n.next();
        }
        if let Some(f) = self.fin_seq.filter(|f| *f >= self.snd_una) {
            let seg = self.header(f, Flags::FIN, env.now);
            self.emit_segment(&seg, None, env, emit, t)?;
            self.retransmits += 1;
        }
        Ok(())
    }

    /// A pure ACK (or window update) at SND.NXT.
    pub(crate) fn send_ack<C: Chunk, E: Emit<C>>(
        &mut self,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        let seg = self.header(self.acceptable_seq(), Flags(0), env.now);
        self.emit_segment(&seg, None, env, emit, t)
    }

    /// The sequence number of a segment without data: SND.NXT, unless that
    /// lies beyond the peer's window (it shrank, or a probe went past it),
    /// when the window's right edge is, so the peer still takes the ACK
    /// (Linux's tcp_acceptable_seq).
    pub(crate) fn acceptable_seq(&self) -> Seq {
        let end = self.snd_una + self.snd_wnd;
        if self.snd_nxt <= end {
            self.snd_nxt
        } else {
            end
        }
    }

    /// A probe that elicits an ACK without new data: a segment at
    /// SND.UNA − 1 (zero-window probe and keepalive, as Linux's
    /// tcp_xmit_probe_skb).
    pub(crate) fn send_probe<C: Chunk, E: Emit<C>>(
        &mut self,
        env: &mut Env<'_, C>,
        emit: &mut E,
        t: &mut Transmitted,
    ) -> Result<(), super::Blocked> {
        let seg = self.header(self.snd_una - 1, Flags(0), env.now);
        self.emit_segment(&seg, None, env, emit, t)
    }
}

/// How much of the send queue from `(node, off)` one segment of at most
/// `limit` bytes takes: whole chunks while they fit, so every segment ends
/// on a chunk boundary and the scoreboard, which marks whole chunks SACKed
/// or lost, sees exactly what the peer got (a segment is then also often
/// exactly one chunk, sent without a copy); a chunk larger than `limit`
/// goes in `limit`-sized pieces.
fn aligned_len<C: Chunk>(arena: &crate::buf::Arena<C>, node: u32, off: u32, limit: u32) -> u32 {
    let n = arena.node(node);
    let first = n.chunk().len() as u32 - off;
    if first >= limit {
        return limit;
    }
    let mut len = first;
    let mut i = n.next();
    while i != NIL {
        let n = arena.node(i);
        let l = n.chunk().len() as u32;
        if len + l > limit {
            break;
        }
        len += l;
        i = n.next();
    }
    len
}

/// The RST answering a segment that reached no connection (RFC 9293
/// 3.10.7.1, CLOSED state): `<SEQ=SEG.ACK><CTL=RST>` for a segment with
/// ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`. `None` for a RST
/// (never answered).
pub fn reset_for(seg: &crate::segment::Segment) -> Option<OutSegment> {
    if seg.flags.rst() {
        return None;
    }
    Some(if seg.flags.ack() {
        OutSegment { seq: seg.ack, flags: Flags::RST, ..OutSegment::default() }
    } else {
        OutSegment {
            seq: Seq(0),
            ack: seg.seq + seg.seg_len(),
            flags: Flags::RST | Flags::ACK,
            ..OutSegment::default()
        }
    })
}
