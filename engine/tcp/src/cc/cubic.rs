//! CUBIC (RFC 9438): after a loss the window follows
//! `W(t) = C·(t − K)³ + W_max` (in segments, t in seconds since the
//! reduction), with a Reno-friendly floor, β = 0.7, C = 0.4, fast
//! convergence. Slow start below ssthresh as in RFC 5681 (with byte
//! counting); HyStart is not implemented.
use super::CongestionControl;

const BETA: f64 = 0.7;
const C: f64 = 0.4;

/// CUBIC's state.
#[derive(Clone, Debug)]
pub struct Cubic {
    cwnd: u32,
    ssthresh: u32,
    /// W_max, segments.
    w_max: f32,
    /// W_max before the last reduction (fast convergence).
    w_last_max: f32,
    /// K, seconds.
    k: f32,
    /// When the current congestion-avoidance epoch began, µs (0: not yet).
    epoch: u64,
    /// The Reno-friendly estimate, segments.
    w_est: f64,
    /// Fractional growth carried between ACKs, bytes.
    carry: f32,
    app_limited: bool,
    srtt: u32,
}

impl Cubic {
    /// Initial window `iw` bytes.
    pub fn new(iw: u32) -> Self {
        Cubic {
            cwnd: iw,
            ssthresh: u32::MAX,
            w_max: 0.0,
            w_last_max: 0.0,
            k: 0.0,
            epoch: 0,
            w_est: 0.0,
            carry: 0.0,
            app_limited: false,
            srtt: 0,
        }
    }

    fn reduce(&mut self, mss: u32) {
        let cwnd = self.cwnd as f64 / mss as f64;
        // Fast convergence (RFC 9438 4.7).
        let w_max = if cwnd < f64::from(self.w_last_max) { cwnd * (1.0 + BETA) / 2.0 } else { cwnd };
        self.w_max = w_max as f32;
        self.w_last_max = cwnd as f32;
        self.ssthresh = ((cwnd * BETA * mss as f64) as u32).max(2 * mss);
        self.k = (w_max * (1.0 - BETA) / C).cbrt() as f32;
        self.epoch = 0;
        self.carry = 0.0;
    }

    /// K, seconds (for tests).
    pub fn k(&self) -> f64 {
        f64::from(self.k)
    }
}

impl CongestionControl for Cubic {
    fn cwnd(&self) -> u32 {
        self.cwnd
    }
    fn ssthresh(&self) -> u32 {
        self.ssthresh
    }
    fn on_ack(&mut self, now: u64, acked: u32, _inflight: u32, mss: u32, rtt: Option<u32>) {
        if let Some(r) = rtt {
            self.srtt = if self.srtt == 0 { r } else { self.srtt - self.srtt / 8 + r / 8 };
        }
        if self.app_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = self.cwnd.saturating_add(acked.min(2 * mss));
            return;
        }
        let mssf = mss as f64;
        let cwnd = self.cwnd as f64 / mssf;
        if self.epoch == 0 {
            self.epoch = now.max(1);
            if f64::from(self.w_max) < cwnd {
                // No loss yet (or the window grew past W_max): start the
                // curve at the current window (RFC 9438 4.2).
                self.w_max = cwnd as f32;
                self.k = 0.0;
            }
            self.w_est = cwnd;
        }
        let t = now.saturating_sub(self.epoch) as f64 / 1e6 + self.srtt as f64 / 1e6;
        let target = C * (t - f64::from(self.k)).powi(3) + f64::from(self.w_max);
        let acked_segs = acked as f64 / mssf;
        // Reno-friendly region (RFC 9438 4.3).
        let alpha = 3.0 * (1.0 - BETA) / (1.0 + BETA);
        self.w_est += alpha * acked_segs / cwnd;
        let next = if target < self.w_est {
            self.w_est
        } else {
            // Concave or convex region (4.4, 4.5): grow by (target - cwnd) /
            // cwnd per segment acknowledged, at most 1.5x per RTT.
            let goal = target.min(1.5 * cwnd);
            cwnd + (goal - cwnd).max(0.0) * acked_segs / cwnd
        };
        // Fractions of a byte carried (f32: a connection block's bytes;
        // W_est stays f64, its per-ACK steps are too small for f32 at
        // large windows).
        self.carry += ((next - cwnd) * mssf) as f32;
        if self.carry >= 1.0 {
            let add = self.carry as u32;
            self.cwnd = self.cwnd.saturating_add(add);
            self.carry -= add as f32;
        }
    }
    fn on_loss(&mut self, _now: u64, _inflight: u32, mss: u32) {
        self.reduce(mss);
        self.cwnd = self.ssthresh;
    }
    fn on_rto(&mut self, _now: u64, _inflight: u32, mss: u32) {
        self.reduce(mss);
        self.cwnd = mss;
    }
    fn on_recovery_end(&mut self, _now: u64) {
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
    fn reduction_is_to_seventy_percent_and_k_follows_the_rfc() {
        let mss = 1000;
        let mut c = Cubic::new(100 * mss);
        c.ssthresh = 0; // in congestion avoidance
        c.on_loss(0, 100 * mss, mss);
        assert_eq!(c.cwnd(), 70 * mss);
        // K = cbrt(W_max * (1 - beta) / C) = cbrt(100 * 0.3 / 0.4) = 4.217 s.
        assert!((c.k() - 4.2172).abs() < 1e-3, "{}", c.k());
    }

    #[test]
    fn the_window_climbs_back_to_w_max_in_about_k_seconds() {
        let mss = 1000;
        let mut c = Cubic::new(100 * mss);
        c.ssthresh = 0;
        c.on_loss(0, 100 * mss, mss);
        let mut now = 1;
        // One window of ACKs every 100 ms RTT for 4.2 s (a long RTT, so the
        // cubic curve and not the Reno-friendly estimate leads).
        while now < 4_217_000 {
            let w = c.cwnd();
            for _ in 0..(w / mss) {
                c.on_ack(now, mss, w, mss, Some(100_000));
            }
            now += 100_000;
        }
        let w = c.cwnd() as f64 / mss as f64;
        assert!((95.0..=106.0).contains(&w), "near W_max = 100 after K: {w}");
        // Then it probes beyond.
        for _ in 0..30 {
            let w = c.cwnd();
            for _ in 0..(w / mss) {
                c.on_ack(now, mss, w, mss, Some(100_000));
            }
            now += 100_000;
        }
        assert!(c.cwnd() > 110 * mss, "convex growth after W_max: {}", c.cwnd());
    }

    #[test]
    fn at_short_rtts_the_reno_friendly_estimate_leads() {
        // RFC 9438 4.3: with a 10 ms RTT, Reno would regrow faster than the
        // cubic curve (K = 4.2 s); CUBIC must be at least as aggressive.
        let mss = 1000;
        let mut c = Cubic::new(100 * mss);
        c.ssthresh = 0;
        c.on_loss(0, 100 * mss, mss);
        let mut now = 1;
        for _ in 0..100 {
            let w = c.cwnd();
            for _ in 0..(w / mss) {
                c.on_ack(now, mss, w, mss, Some(10_000));
            }
            now += 10_000;
        }
        // Reno from 70 segments: +0.53 per RTT (alpha) for 100 RTTs = 123.
        let w = c.cwnd() as f64 / mss as f64;
        assert!((118.0..=128.0).contains(&w), "{w}");
    }

    #[test]
    fn a_timeout_leaves_one_segment_and_fast_convergence_lowers_w_max() {
        let mss = 1000;
        let mut c = Cubic::new(50 * mss);
        c.ssthresh = 0;
        c.on_loss(0, 50 * mss, mss);
        c.on_loss(0, 35 * mss, mss); // lower than the last W_max: converge
        assert!(c.w_max < 35.0, "{}", c.w_max);
        c.on_rto(0, 10 * mss, mss);
        assert_eq!(c.cwnd(), mss);
        c.on_ack(1, mss, mss, mss, None);
        assert_eq!(c.cwnd(), 2 * mss, "slow start after a timeout");
    }
}
