//! Congestion control behind one interface: NewReno (RFC 5681, RFC 6582)
//! and CUBIC (RFC 9438, the default, as in Linux). Windows are in bytes;
//! the loss recovery that decides what to send while in recovery is the
//! connection's (RFC 6675), not the algorithm's.
pub mod cubic;
pub mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

/// Which algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    /// RFC 5681 / 6582.
    NewReno,
    /// RFC 9438.
    #[default]
    Cubic,
}

/// The window after loss: the algorithm's.
pub trait CongestionControl {
    /// Congestion window, bytes.
    fn cwnd(&self) -> u32;
    /// Slow start threshold, bytes.
    fn ssthresh(&self) -> u32;
    /// `acked` bytes were newly acknowledged outside recovery, with
    /// `inflight` bytes outstanding before the ACK; `rtt` is the sample, µs.
    fn on_ack(&mut self, now: u64, acked: u32, inflight: u32, mss: u32, rtt: Option<u32>);
    /// Loss detected by duplicate ACKs or SACK: the window is reduced once
    /// per recovery episode.
    fn on_loss(&mut self, now: u64, inflight: u32, mss: u32);
    /// The retransmission timer expired.
    fn on_rto(&mut self, now: u64, inflight: u32, mss: u32);
    /// Recovery ended (the recovery point was acknowledged).
    fn on_recovery_end(&mut self, now: u64);
    /// The window was not fully used (application-limited): RFC 7661 says
    /// do not grow it then.
    fn set_app_limited(&mut self, limited: bool);
}

/// One connection's algorithm.
#[derive(Clone, Debug)]
pub enum Cc {
    /// NewReno.
    NewReno(NewReno),
    /// CUBIC.
    Cubic(Cubic),
}

impl Cc {
    /// A fresh `alg` with an initial window of `iw` bytes.
    pub fn new(alg: Algorithm, iw: u32) -> Self {
        match alg {
            Algorithm::NewReno => Cc::NewReno(NewReno::new(iw)),
            Algorithm::Cubic => Cc::Cubic(Cubic::new(iw)),
        }
    }

    fn inner(&self) -> &dyn CongestionControl {
        match self {
            Cc::NewReno(c) => c,
            Cc::Cubic(c) => c,
        }
    }

    fn inner_mut(&mut self) -> &mut dyn CongestionControl {
        match self {
            Cc::NewReno(c) => c,
            Cc::Cubic(c) => c,
        }
    }
}

impl CongestionControl for Cc {
    fn cwnd(&self) -> u32 {
        self.inner().cwnd()
    }
    fn ssthresh(&self) -> u32 {
        self.inner().ssthresh()
    }
    fn on_ack(&mut self, now: u64, acked: u32, inflight: u32, mss: u32, rtt: Option<u32>) {
        self.inner_mut().on_ack(now, acked, inflight, mss, rtt)
    }
    fn on_loss(&mut self, now: u64, inflight: u32, mss: u32) {
        self.inner_mut().on_loss(now, inflight, mss)
    }
    fn on_rto(&mut self, now: u64, inflight: u32, mss: u32) {
        self.inner_mut().on_rto(now, inflight, mss)
    }
    fn on_recovery_end(&mut self, now: u64) {
        self.inner_mut().on_recovery_end(now)
    }
    fn set_app_limited(&mut self, limited: bool) {
        self.inner_mut().set_app_limited(limited)
    }
}
