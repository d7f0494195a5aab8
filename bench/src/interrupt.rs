//! Ctrl-C and SIGTERM: a flag that long-running steps check, so they return
//! early and every `Drop` (namespaces, XDP programs, child processes) runs.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shared stop flag.
#[derive(Clone, Debug, Default)]
pub struct StopFlag(Arc<AtomicBool>);

/// The error a step returns when the flag was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted by a signal; cleaning up")
    }
}

impl std::error::Error for Interrupted {}

/// Slice of a checked sleep.
const SLICE: Duration = Duration::from_millis(20);

impl StopFlag {
    /// A flag raised by SIGINT and SIGTERM (which then no longer kill the
    /// process outright).
    pub fn install() -> std::io::Result<StopFlag> {
        let flag = StopFlag::default();
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, flag.0.clone())?;
        }
        Ok(flag)
    }

    /// Whether a signal arrived.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Raises the flag (tests, or a step that wants everything to stop).
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// `Err(Interrupted)` if a signal arrived.
    pub fn check(&self) -> Result<(), Interrupted> {
        if self.is_set() {
            Err(Interrupted)
        } else {
            Ok(())
        }
    }

    /// Sleeps `d` in short slices, returning early with `Err` on a signal.
    pub fn sleep(&self, d: Duration) -> Result<(), Interrupted> {
        let until = Instant::now() + d;
        loop {
            self.check()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep((until - now).min(SLICE));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_returns_early_when_raised() {
        let f = StopFlag::default();
        let t = Instant::now();
        f.sleep(Duration::from_millis(30)).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(30));
        let g = f.clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            g.raise();
        });
        let t = Instant::now();
        assert_eq!(f.sleep(Duration::from_secs(10)), Err(Interrupted));
        assert!(t.elapsed() < Duration::from_secs(2));
        h.join().unwrap();
        assert_eq!(f.check(), Err(Interrupted));
    }
}
