//! TIME-WAIT without the connection block: what 2 MSL of TIME-WAIT needs
//! to answer stray segments (Linux's `inet_timewait_sock`), a few dozen
//! bytes instead of a whole [`Conn`], so a server that closes first (HTTP
//! with `Connection: close`) can keep many of them.
//!
//! The rules are those of [`Conn`] in TIME-WAIT: a retransmitted FIN is
//! acknowledged again and restarts the 2 MSL; a RST at RCV.NXT ends it
//! (whatever its timestamp: RFC 7323 5.2 exempts RSTs from PAWS); a SYN
//! with a higher sequence number or a newer timestamp may open a new
//! connection in its place; an old timestamp (PAWS), an old SYN or anything
//! else with data gets an ACK, at most one per [`OOW_ACK_INTERVAL_MS`] per
//! entry (Linux's `tcp_invalid_ratelimit`), so the entry does not reflect a
//! flood; a bare ACK is ignored.
use super::{Conn, State};
use crate::segment::{Flags, OutSegment, Segment, Timestamp};
use crate::seq::Seq;

/// The least time between two ACKs a TIME-WAIT entry sends to segments
/// that do not belong (not a retransmitted FIN), ms.
pub const OOW_ACK_INTERVAL_MS: u32 = 500;

/// A connection in TIME-WAIT, reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWait {
    /// RCV.NXT (after the peer's FIN).
    pub rcv_nxt: Seq,
    /// SND.NXT (after our FIN).
    pub snd_nxt: Seq,
    /// TS.Recent, when timestamps are on.
    pub ts_recent: Option<u32>,
    /// Our timestamp offset.
    pub ts_offset: u32,
    /// The window field of our last segment.
    pub wnd: u16,
    /// When the last rate-limited ACK went, ms (0: none yet).
    pub last_oow_ms: u32,
}

/// What to do with a segment for a TIME-WAIT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwVerdict {
    /// Nothing.
    Ignore,
    /// Send this ACK.
    Ack(OutSegment),
    /// Send this ACK and restart the 2 MSL (a retransmitted FIN).
    AckAndRestart(OutSegment),
    /// The entry ends (a RST).
    Close,
    /// The entry ends and the SYN goes to the listener.
    Reopen,
}

impl Conn {
    /// The TIME-WAIT entry this connection becomes (`None` unless it is in
    /// TIME-WAIT). The caller then frees the connection block.
    pub fn time_wait(&self) -> Option<TimeWait> {
        (self.state == State::TimeWait).then(|| TimeWait {
            rcv_nxt: self.rcv_nxt,
            snd_nxt: self.snd_nxt,
            ts_recent: self.neg.timestamps.then_some(self.ts_recent),
            ts_offset: self.ts_offset,
            wnd: (self.rcv_adv.since(self.rcv_nxt) >> self.neg.rcv_wscale).min(u16::MAX as u32) as u16,
            last_oow_ms: 0,
        })
    }
}

impl TimeWait {
    fn ack(&self, now: u64) -> OutSegment {
        let mut seg = OutSegment {
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: Flags::ACK,
            wnd: self.wnd,
            ..OutSegment::default()
        };
        if let Some(ecr) = self.ts_recent {
            seg.opts.timestamp = Some(Timestamp { val: ((now / 1000) as u32).wrapping_add(self.ts_offset), ecr });
        }
        seg
    }

    /// An ACK to a segment that does not belong, unless one went less than
    /// [`OOW_ACK_INTERVAL_MS`] ago.
    fn limited_ack(&mut self, now: u64) -> TwVerdict {
        let ms = ((now / 1000) as u32).max(1);
        if self.last_oow_ms != 0 && ms.wrapping_sub(self.last_oow_ms) < OOW_ACK_INTERVAL_MS {
            return TwVerdict::Ignore;
        }
        self.last_oow_ms = ms;
        TwVerdict::Ack(self.ack(now))
    }

    /// A segment for this entry at `now` (µs).
    pub fn on_segment(&mut self, seg: &Segment, now: u64) -> TwVerdict {
        let f = seg.flags;
        let ts = seg.opts.timestamp;
        let paws_old = matches!((self.ts_recent, ts), (Some(r), Some(t)) if (t.val.wrapping_sub(r) as i32) < 0);
        if f.rst() {
            return if seg.seq == self.rcv_nxt { TwVerdict::Close } else { TwVerdict::Ignore };
        }
        if f.syn() && !f.ack() {
            let newer = match (self.ts_recent, ts) {
                (Some(r), Some(t)) => (t.val.wrapping_sub(r) as i32) > 0,
                _ => seg.seq > self.rcv_nxt,
            };
            return if newer { TwVerdict::Reopen } else { self.limited_ack(now) };
        }
        if paws_old {
            return self.limited_ack(now);
        }
        if f.fin() && seg.seq + seg.len + 1 == self.rcv_nxt {
            if let (Some(_), Some(t)) = (self.ts_recent, ts) {
                self.ts_recent = Some(t.val);
            }
            return TwVerdict::AckAndRestart(self.ack(now));
        }
        if seg.len > 0 || f.fin() || f.syn() {
            return self.limited_ack(now);
        }
        TwVerdict::Ignore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Timestamp;

    fn tw(ts: Option<u32>) -> TimeWait {
        TimeWait { rcv_nxt: Seq(1002), snd_nxt: Seq(5002), ts_recent: ts, ts_offset: 7, wnd: 100, last_oow_ms: 0 }
    }

    fn seg(seq: u32, flags: Flags, len: u32, ts: Option<u32>) -> Segment {
        let mut s = Segment { seq: Seq(seq), ack: Seq(5002), flags, wnd: 1000, len, ..Segment::default() };
        s.opts.timestamp = ts.map(|val| Timestamp { val, ecr: 0 });
        s
    }

    #[test]
    fn time_wait_answers_as_the_rfc_and_linux_do() {
        let s = 1_000_000; // a second apart: no rate limit between these
        let mut t = tw(None);
        let fin = seg(1001, Flags::FIN | Flags::ACK, 0, None);
        let TwVerdict::AckAndRestart(a) = t.on_segment(&fin, 5 * s) else { panic!("FIN again") };
        assert_eq!((a.seq, a.ack, a.flags, a.wnd), (Seq(5002), Seq(1002), Flags::ACK, 100));
        assert_eq!(t.on_segment(&seg(1002, Flags::RST, 0, None), 0), TwVerdict::Close);
        assert_eq!(t.on_segment(&seg(1500, Flags::RST, 0, None), 0), TwVerdict::Ignore, "RST not at RCV.NXT");
        assert_eq!(t.on_segment(&seg(900, Flags::SYN, 0, None), 6 * s), TwVerdict::Ack(t.ack(6 * s)), "old SYN");
        assert_eq!(t.on_segment(&seg(90_000, Flags::SYN, 0, None), 0), TwVerdict::Reopen);
        assert_eq!(t.on_segment(&seg(1002, Flags::ACK, 0, None), 0), TwVerdict::Ignore, "bare ACK");
        assert!(matches!(t.on_segment(&seg(1002, Flags::ACK, 10, None), 7 * s), TwVerdict::Ack(_)));
        // With timestamps: PAWS and a newer SYN by its TSval.
        let mut t = tw(Some(500));
        let TwVerdict::Ack(a) = t.on_segment(&seg(1002, Flags::ACK, 10, Some(400)), 3 * s) else { panic!() };
        assert_eq!(a.opts.timestamp, Some(Timestamp { val: 3007, ecr: 500 }));
        assert_eq!(t.on_segment(&seg(10, Flags::SYN, 0, Some(600)), 0), TwVerdict::Reopen, "newer by timestamp");
        assert!(matches!(t.on_segment(&seg(90_000, Flags::SYN, 0, Some(499)), 4 * s), TwVerdict::Ack(_)));
        // RFC 7323 5.2: a RST is not subject to PAWS.
        assert_eq!(t.on_segment(&seg(1002, Flags::RST, 0, Some(400)), 0), TwVerdict::Close, "old-stamped RST");
    }

    #[test]
    fn answers_to_stray_segments_are_rate_limited_but_fin_retransmissions_are_not() {
        let mut t = tw(Some(500));
        let old = seg(1002, Flags::ACK, 10, Some(400));
        let ms = 1000;
        assert!(matches!(t.on_segment(&old, 10_000 * ms), TwVerdict::Ack(_)));
        for k in 1..50 {
            assert_eq!(t.on_segment(&old, (10_000 + k * 10) * ms), TwVerdict::Ignore, "a flood is not reflected");
        }
        assert_eq!(t.on_segment(&seg(900, Flags::SYN, 0, Some(450)), 10_100 * ms), TwVerdict::Ignore);
        assert!(matches!(t.on_segment(&old, 10_500 * ms), TwVerdict::Ack(_)), "after 500 ms again");
        let fin = seg(1001, Flags::FIN | Flags::ACK, 0, Some(600));
        for k in 0..3 {
            assert!(matches!(t.on_segment(&fin, (10_501 + k) * ms), TwVerdict::AckAndRestart(_)));
        }
    }
}
