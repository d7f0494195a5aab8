//! NewReno (RFC 5681 3.1, RFC 6582): slow start below ssthresh, one MSS per
//! RTT above it, halve on loss, one segment after a timeout.
use super::CongestionControl;

/// NewReno's window.
#[derive(Clone, Debug)]
pub struct NewReno {
    cwnd: u32,
    ssthresh: u32,
    /// Bytes acknowledged in congestion avoidance since the window last grew.
    acked_ca: u32,
    app_limited: bool,
}

impl NewReno {
    /// Initial window `iw` bytes, ssthresh "arbitrarily high" (RFC 5681 3.1).
    pub fn new(iw: u32) -> Self {
        NewReno { cwnd: iw, ssthresh: u32::MAX, acked_ca: 0, app_limited: false }
    }
}

impl CongestionControl for NewReno {
    fn cwnd(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    fn on_ack(&mut self, _now: u64, acked: u32, _inflight: u32, mss: u32, _rtt: Option<u32>) {
        if self.app_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            // Slow start with appropriate byte counting (RFC 3465, L = 2).
            self.cwnd = self.cwnd.saturating_add(acked.min(2 * mss));
        } else {
            self.acked_ca += acked;
            if self.acked_ca >= self.cwnd {
                self.acked_ca -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(mss);
            }
        }
    }
    fn on_loss(&mut self, _now: u64, inflight: u32, mss: u32) {
        // RFC 5681 (4): ssthresh = max(FlightSize / 2, 2 * SMSS).
        self.ssthresh = (inflight / 2).max(2 * mss);
        self.cwnd = self.ssthresh;
        self.acked_ca = 0;
    }
    fn on_rto(&mut self, _now: u64, inflight: u32, mss: u32) {
        self.ssthresh = (inflight / 2).max(2 * mss);
        self.cwnd = mss;
        self.acked_ca = 0;
    }
    fn on_recovery_end(&mut self, _now: u64) {
        // RFC 6582 3.2 (3): the window is ssthresh after a full ACK (it was
        // set so on entry and does not grow during recovery).
        if self.ssthresh != u32::MAX {
            self.cwnd = self.ssthresh;
        }
    }
    fn set_app_limited(&mut self, limited: bool) {
        self.app_limited = limited;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_then_avoidance_then_halving() {
        let mss = 1000;
        let mut c = NewReno::new(10 * mss);
        c.on_ack(0, 10 * mss, 10 * mss, mss, None);
        assert_eq!(c.cwnd(), 12 * mss, "ABC: at most 2 MSS per ACK");
        c.on_loss(0, 12 * mss, mss);
        assert_eq!((c.cwnd(), c.ssthresh()), (6 * mss, 6 * mss));
        for _ in 0..6 {
            c.on_ack(0, mss, 6 * mss, mss, None);
        }
        assert_eq!(c.cwnd(), 7 * mss, "one MSS per window in avoidance");
        c.on_rto(0, 7 * mss, mss);
        assert_eq!((c.cwnd(), c.ssthresh()), (mss, 3500));
        c.set_app_limited(true);
        c.on_ack(0, mss, mss, mss, None);
        assert_eq!(c.cwnd(), mss, "no growth while application-limited");
    }
}
