//! Round-trip time estimation and the retransmission timeout (RFC 6298),
//! with Linux's floor: the RTO is SRTT plus the larger of 4·RTTVAR and the
//! configured minimum (200 ms by default), so a LAN's microsecond RTTs do
//! not make the timer fire at every scheduling hiccup.

/// The estimator of one connection. Times in µs.
#[derive(Clone, Copy, Debug)]
pub struct Rtt {
    srtt: u32,
    rttvar: u32,
    min_rtt: u32,
    backoff: u8,
}

/// The RTO's bounds, from the connection's config (not kept per
/// connection): the floor, the ceiling and the value before any sample.
#[derive(Clone, Copy, Debug)]
pub struct RtoBounds {
    /// Floor, µs.
    pub min: u32,
    /// Ceiling, µs.
    pub max: u32,
    /// Before the first sample, µs (RFC 6298 2.1: 1 s).
    pub initial: u32,
}

impl Default for Rtt {
    fn default() -> Self {
        Self::new()
    }
}

impl Rtt {
    /// No sample yet: the RTO is the bounds' `initial`.
    pub fn new() -> Self {
        Rtt { srtt: 0, rttvar: 0, min_rtt: u32::MAX, backoff: 0 }
    }

    /// A measurement `r` µs (RFC 6298 2.2 and 2.3; Karn's rule is the
    /// caller's: never from a retransmitted segment).
    pub fn sample(&mut self, r: u32) {
        let r = r.max(1);
        if self.srtt == 0 {
            self.srtt = r;
            self.rttvar = r / 2;
        } else {
            let err = self.srtt.abs_diff(r);
            self.rttvar = self.rttvar - self.rttvar / 4 + err / 4;
            self.srtt = self.srtt - self.srtt / 8 + r / 8;
        }
        self.min_rtt = self.min_rtt.min(r);
    }

    /// Smoothed RTT, µs (0: no sample yet).
    pub fn srtt(&self) -> u32 {
        self.srtt
    }

    /// RTT variation, µs.
    pub fn rttvar(&self) -> u32 {
        self.rttvar
    }

    /// The smallest RTT seen, µs (`u32::MAX`: none).
    pub fn min_rtt(&self) -> u32 {
        self.min_rtt
    }

    /// The RTO before backoff.
    pub fn base_rto(&self, b: RtoBounds) -> u32 {
        if self.srtt == 0 {
            return b.initial;
        }
        let rto = self.srtt as u64 + (4 * self.rttvar as u64).max(b.min as u64);
        rto.clamp(b.min as u64, b.max as u64) as u32
    }

    /// The RTO to arm now: the base doubled per backoff (RFC 6298 5.5),
    /// at most the maximum.
    pub fn rto(&self, b: RtoBounds) -> u32 {
        ((self.base_rto(b) as u64) << self.backoff.min(16)).min(b.max as u64) as u32
    }

    /// The timer expired: back off.
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Consecutive backoffs.
    pub fn backoffs(&self) -> u8 {
        self.backoff
    }

    /// New data was acknowledged: the backoff is kept until then (Karn,
    /// RFC 6298 5.7 note), and undone now.
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// After an RTO with no sample since, RFC 6298 5.7 allows restarting
    /// the estimate; Linux keeps it. We keep it too.
    pub fn has_sample(&self) -> bool {
        self.srtt != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_and_smoothing_follow_rfc_6298() {
        let b = RtoBounds { min: 200_000, max: 120_000_000, initial: 1_000_000 };
        let mut r = Rtt::new();
        assert_eq!(r.rto(b), 1_000_000, "no sample: the initial RTO");
        r.sample(100_000);
        assert_eq!((r.srtt(), r.rttvar()), (100_000, 50_000));
        assert_eq!(r.rto(b), 100_000 + 200_000, "srtt + 4 * rttvar");
        r.sample(200_000);
        assert_eq!(r.rttvar(), 50_000 - 12_500 + 25_000);
        assert_eq!(r.srtt(), 100_000 - 12_500 + 25_000);
        assert_eq!(r.min_rtt(), 100_000);
    }

    #[test]
    fn the_floor_and_backoff_and_ceiling() {
        let b = RtoBounds { min: 200_000, max: 1_000_000, initial: 1_000_000 };
        let mut r = Rtt::new();
        r.sample(50);
        assert_eq!(r.rto(b), 200_050, "a LAN RTT: srtt + the 200 ms floor");
        r.back_off();
        assert_eq!(r.rto(b), 400_100);
        for _ in 0..10 {
            r.back_off();
        }
        assert_eq!(r.rto(b), 1_000_000, "capped");
        r.reset_backoff();
        assert_eq!(r.rto(b), 200_050);
    }
}
