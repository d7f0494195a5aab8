//! Loss detection and recovery: the SACK scoreboard (RFC 6675) kept on the
//! send queue's nodes, duplicate-ACK counting for peers without SACK
//! (NewReno, RFC 6582), RACK's time-based marking (RFC 8985 6), and what a
//! timeout does (everything unacknowledged and un-SACKed is lost).
//!
//! Counting is Linux's: `lost` and `retrans` bytes overlap (a lost segment
//! that was retransmitted is both), so the bytes in the network ("pipe",
//! RFC 6675 4) are `outstanding − sacked − lost + retrans`.
use super::Conn;
use crate::buf::{Arena, Chunk, Meta, NIL};
use crate::cc::CongestionControl;
use crate::segment::SackBlock;
use crate::seq::Seq;
use crate::stats::{TcpCounter, TcpStats};

/// RFC 6675's DupThresh.
const DUP_THRESH: u32 = 3;

/// The unit of `Recovery::rack_rtt`, µs (16 bits of it reach 1 s).
pub(crate) const RACK_RTT_UNIT: u64 = 16;

/// The recovery state of a connection.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Recovery {
    /// Bytes SACKed.
    pub sacked: u32,
    /// Bytes deemed lost.
    pub lost: u32,
    /// Bytes retransmitted and still out.
    pub retrans: u32,
    /// In fast recovery or in loss recovery after a timeout.
    pub active: bool,
    /// The recovery ends when SND.UNA passes this (RFC 6675 "RecoveryPoint").
    pub point: Seq,
    /// Recovery began with a timeout (no fast retransmit accounting).
    pub after_rto: bool,
    /// Duplicate ACKs in a row (peers without SACK), saturating.
    pub dupacks: u16,
    /// RACK: the round trip of the most recently sent segment delivered
    /// (RACK.rtt; taken only when that segment changes, where RFC 8985 6.2
    /// and Linux take it from every segment newly delivered: the
    /// difference is which of one ACK's samples counts), in units of
    /// [`RACK_RTT_UNIT`] µs rounded down; 0 when
    /// unknown or beyond the field (then the smoothed RTT stands in). 16
    /// bits keep `Recovery`, and so a connection, within its budget.
    pub rack_rtt: u16,
    /// Bytes a peer without SACK has signalled received by duplicate ACKs
    /// (one segment each, Linux's "reno SACK" emulation): they left the
    /// network, so they leave the pipe too.
    pub reno_sacked: u32,
    /// The fast retransmission (RFC 6675 4.2 / RFC 5681 3.2 step 2) is due
    /// regardless of the pipe.
    pub fast_rexmit: bool,
    /// RACK: send time of the most recently sent segment delivered, µs.
    pub rack_xmit: u64,
    /// RACK: that segment's end.
    pub rack_end: Seq,
    /// RACK: reordering was seen (a SACKed segment below a delivered one
    /// that was sent later).
    pub reordering: bool,
}

impl Recovery {
    /// Whether lost bytes wait for a retransmission.
    pub fn retransmit_pending(&self, c: &Conn) -> bool {
        self.lost > self.retrans && c.snd_una != c.snd_max
    }
}

impl Conn {
    /// Bytes sent and not yet acknowledged or SACKed, nor deemed lost (the
    /// "pipe" of RFC 6675).
    pub(crate) fn pipe(&self) -> u32 {
        let out = self.snd_max.since(self.snd_una);
        // A FIN deemed lost (after a timeout) is not in the network either.
        let fin = u32::from(self.fin_lost);
        (out + self.rec.retrans).saturating_sub(self.rec.sacked + self.rec.lost + self.rec.reno_sacked + fin)
    }

    /// A node leaves the send queue (acknowledged): its bytes leave the
    /// scoreboard counts.
    pub(crate) fn scoreboard_forget(&mut self, m: &Meta, len: u32) {
        let r = &mut self.rec;
        if m.is(Meta::SACKED) {
            r.sacked = r.sacked.saturating_sub(len);
        } else if m.is(Meta::LOST) {
            r.lost = r.lost.saturating_sub(m.lost_to);
            r.retrans = r.retrans.saturating_sub(m.resent);
        }
    }

    /// The first `n` bytes of the head node `i` were acknowledged: the
    /// counts and the node's own marks shrink by that much (the caller then
    /// advances the chunk).
    pub(crate) fn scoreboard_trim<C: Chunk>(&mut self, arena: &mut Arena<C>, i: u32, n: u32) {
        let r = &mut self.rec;
        let m = &mut arena.node_mut(i).meta;
        if m.is(Meta::SACKED) {
            r.sacked = r.sacked.saturating_sub(n);
        } else if m.is(Meta::LOST) {
            let l = n.min(m.lost_to);
            r.lost = r.lost.saturating_sub(l);
            m.lost_to -= l;
            let k = n.min(m.resent);
            r.retrans = r.retrans.saturating_sub(k);
            m.resent -= k;
            if m.lost_to == 0 {
                m.bits &= !(Meta::LOST | Meta::RETRANS);
            }
        }
        m.sent = m.sent.saturating_sub(n);
    }

    /// Marks node `i` lost: the bytes of it sent so far count as lost, and a
    /// retransmission of them as gone. False if it cannot be (never sent,
    /// SACKed) or already is and nothing of it was retransmitted.
    pub(crate) fn mark_lost<C: Chunk>(&mut self, arena: &mut Arena<C>, i: u32) -> bool {
        let r = &mut self.rec;
        let m = &mut arena.node_mut(i).meta;
        if m.sent == 0 || m.is(Meta::SACKED) || (m.is(Meta::LOST) && m.resent == 0 && m.lost_to == m.sent) {
            return false;
        }
        if m.is(Meta::LOST) {
            r.lost = r.lost.saturating_sub(m.lost_to);
            r.retrans = r.retrans.saturating_sub(m.resent);
        }
        m.lost_to = m.sent;
        m.resent = 0;
        m.bits = (m.bits | Meta::LOST) & !Meta::RETRANS;
        r.lost += m.lost_to;
        true
    }

    /// Marks the nodes fully covered by valid SACK blocks (RFC 2018 3,
    /// blocks within SND.UNA..SND.MAX only) and feeds RACK. Returns the
    /// bytes newly SACKed.
    /// `prior` is RACK's highest delivered end before this ACK (see
    /// [`rack_delivered`](Self::rack_delivered)).
    pub(crate) fn apply_sack<C: Chunk>(
        &mut self,
        blocks: &[SackBlock],
        arena: &mut Arena<C>,
        now: u64,
        prior: Option<Seq>,
    ) -> u32 {
        let mut newly = 0;
        for b in blocks {
            if b.left >= b.right || b.left < self.snd_una || b.right > self.snd_max {
                continue; // invalid, or a D-SACK below SND.UNA (RFC 2883): not used
            }
            let mut i = self.sndq.head();
            while i != NIL {
                let n = arena.node(i);
                let (start, len, next) = (n.meta.seq, n.chunk().len() as u32, n.next());
                let end = start + len;
                if start >= b.right {
                    break;
                }
                let whole = n.meta.sent == len;
                if start >= b.left && end <= b.right && !n.meta.is(Meta::SACKED) && whole {
                    let m = n.meta;
                    if m.is(Meta::LOST) {
                        self.rec.lost = self.rec.lost.saturating_sub(m.lost_to);
                        self.rec.retrans = self.rec.retrans.saturating_sub(m.resent);
                    }
                    self.rec.sacked += len;
                    newly += len;
                    let node = arena.node_mut(i);
                    node.meta.bits = (node.meta.bits & !(Meta::LOST | Meta::RETRANS)) | Meta::SACKED;
                    node.meta.lost_to = 0;
                    node.meta.resent = 0;
                    self.rack_delivered(&m, end, now, prior);
                }
                i = next;
            }
        }
        newly
    }

    /// What RACK had delivered before an ACK is applied (the `prior` of
    /// [`rack_delivered`](Self::rack_delivered)).
    pub(crate) fn rack_prior(&self) -> Option<Seq> {
        (self.rec.rack_xmit != 0).then_some(self.rec.rack_end)
    }

    /// RACK: a segment sent at `m.sent_at`, ending at `end`, was delivered
    /// (RFC 8985 6.2 step 2). Reordering is seen when it ends below what was
    /// delivered *before this ACK* (`prior`, as Linux's prior_fack): a
    /// cumulative ACK of A that SACKs a later C says nothing of their order,
    /// nor do the blocks of one ACK among themselves.
    pub(crate) fn rack_delivered(&mut self, m: &Meta, end: Seq, now: u64, prior: Option<Seq>) {
        if m.sent_at == 0 {
            return;
        }
        // A retransmitted segment's ACK may be for the original: use it only
        // if it came back later than the smallest RTT allows (6.2 step 1).
        if m.is(Meta::EVER_RETRANS) && now.saturating_sub(m.sent_at) < self.rtt.min_rtt() as u64 {
            return;
        }
        if prior.is_some_and(|p| end < p) && !m.is(Meta::EVER_RETRANS) {
            self.rec.reordering = true;
        }
        if m.sent_at > self.rec.rack_xmit || (m.sent_at == self.rec.rack_xmit && end > self.rec.rack_end) {
            self.rec.rack_xmit = m.sent_at;
            self.rec.rack_end = end;
            // Rounded down: a hole sent in the same pass is then lost on
            // this very ACK when reo_wnd is 0.
            let units = (now.saturating_sub(m.sent_at) / RACK_RTT_UNIT).max(1);
            self.rec.rack_rtt = u16::try_from(units).unwrap_or(0);
        }
    }

    /// Marks what is lost now (RFC 6675 IsLost via SACKed bytes above,
    /// RFC 8985 time-based marking) and enters recovery if anything is; a
    /// segment RACK will deem lost later (sent before one delivered, but
    /// within RACK.rtt + reo_wnd of now) arms the reordering timer for that
    /// moment (RFC 8985 6.3), so the loss is found without another ACK (a
    /// small window, as a slow reader's, may bring none) or a timeout.
    pub(crate) fn detect_loss<C: Chunk>(&mut self, arena: &mut Arena<C>, now: u64, stats: &mut TcpStats) {
        if self.snd_una == self.snd_max {
            return;
        }
        let mss = self.mss;
        let mut marked = false;
        if self.neg.sack && self.rec.sacked > 0 {
            // Walk in order, counting SACKed bytes above each node from the
            // total: lost if more than (DupThresh − 1) · SMSS are above it.
            let mut sacked_above = self.rec.sacked;
            // RACK.rtt: the most recently sent segment delivered's round
            // trip (RFC 8985 6.2 step 2), not the smoothed RTT, which a
            // peer's delayed ACKs inflate.
            let rtt = if self.rec.rack_rtt > 0 {
                u64::from(self.rec.rack_rtt) * RACK_RTT_UNIT
            } else {
                self.rtt.srtt().max(self.rtt.min_rtt().min(1_000_000)) as u64
            };
            // reo_wnd (RFC 8985 6.2 step 4): a quarter of the minimum RTT
            // (at most the smoothed RTT), or none while no reordering was
            // seen and the losses are plain (in recovery, or DupThresh
            // segments SACKed).
            let plain = self.rec.active || self.rec.sacked >= DUP_THRESH * mss;
            let reo = if !self.rec.reordering && plain {
                0
            } else {
                (self.rtt.min_rtt().min(1_000_000) / 4).min(self.rtt.srtt().max(1)) as u64
            };
            let mut reo_at = u64::MAX;
            let mut i = self.sndq.head();
            while i != NIL {
                let n = arena.node(i);
                let (m, len, next) = (n.meta, n.chunk().len() as u32, n.next());
                if m.is(Meta::SACKED) {
                    sacked_above = sacked_above.saturating_sub(len);
                } else if m.sent != 0 && (!m.is(Meta::LOST) || m.resent > 0) {
                    // Not yet deemed lost, or its retransmission is out: RACK
                    // judges both by when they were last sent, so a lost
                    // retransmission is found without a timeout (RFC 8985
                    // 6.2 step 5).
                    let by_dupthresh = !m.is(Meta::LOST) && sacked_above > (DUP_THRESH - 1) * mss;
                    // Sent before the most recently sent segment delivered:
                    // earlier, or in the same pass (one clock reading) and
                    // below it (RFC 8985 6.2's RACK_sent_after).
                    let end = m.seq + len;
                    let before =
                        m.sent_at < self.rec.rack_xmit || (m.sent_at == self.rec.rack_xmit && end <= self.rec.rack_end);
                    let rack_at = m.sent_at + rtt + reo;
                    let by_rack = before && now >= rack_at;
                    if (by_dupthresh || by_rack) && self.mark_lost(arena, i) {
                        marked = true;
                    } else if before && !by_rack {
                        reo_at = reo_at.min(rack_at);
                    }
                }
                if sacked_above == 0 && !self.rec.reordering && self.rec.rack_xmit == 0 {
                    break;
                }
                i = next;
            }
            if reo_at != u64::MAX {
                self.t_tlp = reo_at;
                self.reo_armed = true;
            } else if self.reo_armed {
                self.release_reo_slot(now);
            }
        } else if !self.neg.sack && u32::from(self.rec.dupacks) >= DUP_THRESH {
            marked = self.mark_head_lost(arena);
        }
        if marked && !self.rec.active {
            self.enter_recovery(now);
            stats.add(TcpCounter::FastRecoveries, 1);
        }
    }

    /// Marks the first unacknowledged node lost (NewReno's retransmission
    /// of the first hole); false if it already was.
    pub(crate) fn mark_head_lost<C: Chunk>(&mut self, arena: &mut Arena<C>) -> bool {
        let i = self.sndq.head();
        if i == NIL || arena.node(i).meta.is(Meta::LOST) {
            return false;
        }
        self.mark_lost(arena, i)
    }

    fn enter_recovery(&mut self, now: u64) {
        if self.rec.active {
            return;
        }
        self.rec.active = true;
        self.rec.after_rto = false;
        self.rec.fast_rexmit = true;
        self.rec.point = self.snd_max;
        let inflight = self.snd_max.since(self.snd_una);
        self.cc.on_loss(now, inflight, self.mss);
    }

    /// SND.UNA moved: leave recovery once it passes the recovery point
    /// (RFC 6675 5, RFC 6582 3.2 step 3).
    pub(crate) fn maybe_end_recovery(&mut self, now: u64) {
        if self.rec.active && self.snd_una >= self.rec.point {
            self.rec.active = false;
            self.rec.dupacks = 0;
            self.rec.reno_sacked = 0;
            if !self.rec.after_rto {
                self.cc.on_recovery_end(now);
            }
            self.rec.after_rto = false;
        }
    }

    /// The retransmission timer expired: every byte sent and not
    /// acknowledged or SACKed is lost (RFC 6675 5.1), the window collapses,
    /// and sending starts over from SND.UNA. When the head itself is
    /// SACKed, the receiver has reneged (it dropped data it had SACKed, as
    /// an out-of-memory Linux or sluice's own pruning does): then no SACK
    /// is trusted and everything sent is lost (Linux's
    /// tcp_timeout_mark_lost).
    pub(crate) fn enter_loss<C: Chunk>(&mut self, arena: &mut Arena<C>, now: u64) {
        let inflight = self.snd_max.since(self.snd_una);
        let mut i = self.sndq.head();
        let reneged = i != NIL && arena.node(i).meta.is(Meta::SACKED);
        self.rec.lost = 0;
        self.rec.retrans = 0;
        if reneged {
            self.rec.sacked = 0;
        }
        while i != NIL {
            let n = arena.node_mut(i);
            let next = n.next();
            let m = &mut n.meta;
            if m.sent != 0 && (reneged || !m.is(Meta::SACKED)) {
                m.bits = (m.bits | Meta::LOST) & !(Meta::RETRANS | Meta::SACKED);
                m.lost_to = m.sent;
                m.resent = 0;
                self.rec.lost += m.lost_to;
            }
            i = next;
        }
        self.cc.on_rto(now, inflight, self.mss);
        self.rec.active = true;
        self.rec.after_rto = true;
        // The loss window: one segment goes now whatever the pipe says
        // (RFC 5681 3.1; a FIN or SACKed bytes still counted must not hold
        // it back, or nothing is ever resent).
        self.rec.fast_rexmit = true;
        self.rec.point = self.snd_max;
        self.rec.dupacks = 0;
        self.rec.reno_sacked = 0;
    }

    /// A duplicate ACK from a peer without SACK: one more segment arrived
    /// beyond the hole (at most all but one of those outstanding).
    pub(crate) fn reno_dupack(&mut self) {
        let out = self.snd_max.since(self.snd_una);
        self.rec.reno_sacked = (self.rec.reno_sacked + self.mss).min(out.saturating_sub(self.mss));
    }

    /// The next lost bytes to retransmit: (node, offset in it, bytes), the
    /// bytes lost and not yet retransmitted at the start of the first node
    /// that has any; `None` when there are none.
    pub(crate) fn next_lost<C: Chunk>(&self, arena: &Arena<C>) -> Option<(u32, u32, u32)> {
        if !self.rec.retransmit_pending(self) {
            return None;
        }
        let mut i = self.sndq.head();
        while i != NIL {
            let n = arena.node(i);
            let m = &n.meta;
            if m.seq >= self.snd_max {
                return None;
            }
            if m.is(Meta::LOST) && !m.is(Meta::SACKED) && m.resent < m.lost_to {
                return Some((i, m.resent, m.lost_to - m.resent));
            }
            i = n.next();
        }
        None
    }

    /// `len` more lost bytes of node `i` were retransmitted at `now`.
    pub(crate) fn mark_retransmitted<C: Chunk>(&mut self, arena: &mut Arena<C>, i: u32, len: u32, now: u64) {
        let m = &mut arena.node_mut(i).meta;
        m.resent = (m.resent + len).min(m.lost_to);
        if m.resent == m.lost_to {
            m.bits |= Meta::RETRANS;
        }
        m.bits |= Meta::EVER_RETRANS;
        m.sent_at = now;
        m.xmits = m.xmits.saturating_add(1);
        self.rec.retrans += len;
        self.retransmits += 1;
    }
}
