//! The engine clock: monotonic microseconds since the engine started. The
//! worker reads it once per pass and hands `now` to the protocol code, which
//! never reads a clock itself.
use std::time::{Duration, Instant};

/// Monotonic time since an epoch, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Clock { epoch: Instant::now() }
    }

    /// Microseconds since the epoch.
    #[inline]
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The instant `us` microseconds after the epoch.
    pub fn instant_at(&self, us: u64) -> Instant {
        self.epoch + Duration::from_micros(us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_forward_in_microseconds() {
        let c = Clock::new();
        let a = c.now_us();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.now_us();
        assert!(b >= a + 2000, "{a} -> {b}");
        assert!(c.instant_at(b) <= Instant::now());
        // Sub-millisecond resolution: the first change seen is far below a
        // millisecond (a millisecond clock would step by 1000).
        let x = c.now_us();
        let mut y = c.now_us();
        while y == x {
            y = c.now_us();
        }
        assert!(y - x < 1000, "the clock stepped by {} µs", y - x);
    }
}
