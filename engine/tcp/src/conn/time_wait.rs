//! TIME-WAIT without the connection block: what 2 MSL of TIME-WAIT needs
//! to answer stray segments (Linux's `inet_timewait_sock`), a few dozen
//! bytes instead of a whole [`Conn`], so a server that closes first (HTTP
//! with `Connection: close`) can keep many of them.
//!
//! The rules are those of [`Conn`] in TIME-WAIT: a retransmitted FIN is
//! acknowledged again and restarts the 2 MSL; a RST at RCV.NXT ends it; a
//! SYN with a higher sequence number or a newer timestamp may open a new
//! connection in its place; an old timestamp (PAWS) or anything else with
//! data gets an ACK; a bare ACK is ignored.
use super::{Conn, State};
use crate::segment::{Flags, OutSegment, Segment, Timestamp};
use crate::seq::Seq;

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

    /// A segment for this entry at `now` (µs).
    pub fn on_segment(&mut self, seg: &Segment, now: u64) -> TwVerdict {
        let f = seg.flags;
        let ts = seg.opts.timestamp;
        let paws_old = matches!((self.ts_recent, ts), (Some(r), Some(t)) if (t.val.wrapping_sub(r) as i32) < 0);
        if f.rst() {
            return if !paws_old && seg.seq == self.rcv_nxt { TwVerdict::Close } else { TwVerdict::Ignore };
        }
        if f.syn() && !f.ack() {
            let newer = match (self.ts_recent, ts) {
                (Some(r), Some(t)) => (t.val.wrapping_sub(r) as i32) > 0,
                _ => seg.seq > self.rcv_nxt,
            };
            return if newer { TwVerdict::Reopen } else { TwVerdict::Ack(self.ack(now)) };
        }
        if paws_old {
            return TwVerdict::Ack(self.ack(now));
        }
        if f.fin() && seg.seq + seg.len + 1 == self.rcv_nxt {
            if let (Some(_), Some(t)) = (self.ts_recent, ts) {
                self.ts_recent = Some(t.val);
            }
            return TwVerdict::AckAndRestart(self.ack(now));
        }
        if seg.len > 0 || f.fin() || f.syn() {
            return TwVerdict::Ack(self.ack(now));
        }
        TwVerdict::Ignore
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::Timestamp;

    fn tw(ts: Option<u32>) -> TimeWait {
        TimeWait { rcv_nxt: Seq(1002), snd_nxt: Seq(5002), ts_recent: ts, ts_offset: 7, wnd: 100 }
    }

    fn seg(seq: u32, flags: Flags, len: u32, ts: Option<u32>) -> Segment {
        let mut s = Segment { seq: Seq(seq), ack: Seq(5002), flags, wnd: 1000, len, ..Segment::default() };
        s.opts.timestamp = ts.map(|val| Timestamp { val, ecr: 0 });
        s
    }

    #[test]
    fn time_wait_answers_as_the_rfc_and_linux_do() {
        let mut t = tw(None);
        let fin = seg(1001, Flags::FIN | Flags::ACK, 0, None);
        let TwVerdict::AckAndRestart(a) = t.on_segment(&fin, 5_000_000) else { panic!("FIN again") };
        assert_eq!((a.seq, a.ack, a.flags, a.wnd), (Seq(5002), Seq(1002), Flags::ACK, 100));
        assert_eq!(t.on_segment(&seg(1002, Flags::RST, 0, None), 0), TwVerdict::Close);
        assert_eq!(t.on_segment(&seg(1500, Flags::RST, 0, None), 0), TwVerdict::Ignore, "RST not at RCV.NXT");
        assert_eq!(t.on_segment(&seg(900, Flags::SYN, 0, None), 0), TwVerdict::Ack(t.ack(0)), "old SYN");
        assert_eq!(t.on_segment(&seg(90_000, Flags::SYN, 0, None), 0), TwVerdict::Reopen);
        assert_eq!(t.on_segment(&seg(1002, Flags::ACK, 0, None), 0), TwVerdict::Ignore, "bare ACK");
        assert!(matches!(t.on_segment(&seg(1002, Flags::ACK, 10, None), 0), TwVerdict::Ack(_)));
        // With timestamps: PAWS and a newer SYN by its TSval.
        let mut t = tw(Some(500));
        let TwVerdict::Ack(a) = t.on_segment(&seg(1002, Flags::ACK, 10, Some(400)), 3_000_000) else { panic!() };
        assert_eq!(a.opts.timestamp, Some(Timestamp { val: 3007, ecr: 500 }));
        assert_eq!(t.on_segment(&seg(1002, Flags::RST, 0, Some(400)), 0), TwVerdict::Ignore, "old RST");
        assert_eq!(t.on_segment(&seg(10, Flags::SYN, 0, Some(600)), 0), TwVerdict::Reopen, "newer by timestamp");
        assert!(matches!(t.on_segment(&seg(90_000, Flags::SYN, 0, Some(499)), 0), TwVerdict::Ack(_)));
    }
}
