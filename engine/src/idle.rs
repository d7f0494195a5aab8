//! What a polling thread does when a pass over its rings found no work: the
//! idle rule of sluiced's workers (`poll = busy | adaptive | interrupt`) and
//! of the bench's generators and reflector, written once.
//!
//! Spinning with `spin_loop` keeps the CPU to itself until the scheduler
//! preempts it, which on a 2-core machine shared by generator and server
//! threads delays whoever has the work. Yielding while spinning hands the CPU
//! to a runnable thread at once and costs one `sched_yield` when there is
//! none. After `spins` empty passes the thread sleeps in poll().
use std::str::FromStr;

/// Idle behaviour of a polling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Empty passes before sleeping in poll().
    pub spins: u32,
    /// `sched_yield` on each empty pass instead of a CPU pause.
    pub yield_cpu: bool,
}

impl IdlePolicy {
    /// Never sleep: spin with CPU pauses (sluiced's `busy`).
    pub const BUSY: IdlePolicy = IdlePolicy { spins: u32::MAX, yield_cpu: false };

    /// The rule of a worker's poll mode; `adaptive` yields for `spins`
    /// empty passes before it sleeps.
    pub fn of_poll_mode(mode: crate::config::PollMode, spins: u32) -> Self {
        match mode {
            crate::config::PollMode::Busy => Self::BUSY,
            crate::config::PollMode::Adaptive => Self::yielding(spins),
            crate::config::PollMode::Interrupt => Self::spin(0),
        }
    }

    /// Spin with CPU pauses.
    pub const fn spin(spins: u32) -> Self {
        IdlePolicy { spins, yield_cpu: false }
    }

    /// Spin yielding the CPU.
    pub const fn yielding(spins: u32) -> Self {
        IdlePolicy { spins, yield_cpu: true }
    }

    /// One empty pass: pauses or yields, and returns true when the thread
    /// should now sleep in poll() (the counter is then reset).
    #[inline]
    pub fn on_idle(&self, idle: &mut u32) -> bool {
        if self.spins == u32::MAX {
            std::hint::spin_loop();
            return false;
        }
        *idle += 1;
        if *idle > self.spins {
            *idle = 0;
            return true;
        }
        if self.yield_cpu {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
        false
    }
}

impl std::fmt::Display for IdlePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.spins, self.yield_cpu) {
            (0, _) => f.write_str("poll"),
            (u32::MAX, false) => f.write_str("busy"),
            (n, true) => write!(f, "yield:{n}"),
            (n, false) => write!(f, "spin:{n}"),
        }
    }
}

impl FromStr for IdlePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, n) = s.split_once(':').unwrap_or((s, "0"));
        let n: u32 = n.parse().map_err(|_| format!("bad count in {s:?}"))?;
        match kind {
            "spin" => Ok(IdlePolicy::spin(n)),
            "yield" => Ok(IdlePolicy::yielding(n)),
            "poll" => Ok(IdlePolicy::spin(0)),
            "busy" => Ok(IdlePolicy::BUSY),
            _ => Err(format!("{s:?}: expected spin:N, yield:N, poll or busy")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts() {
        assert_eq!("spin:5".parse::<IdlePolicy>().unwrap(), IdlePolicy::spin(5));
        assert_eq!("yield:7".parse::<IdlePolicy>().unwrap(), IdlePolicy::yielding(7));
        assert_eq!("poll".parse::<IdlePolicy>().unwrap(), IdlePolicy::spin(0));
        assert!("sometimes".parse::<IdlePolicy>().is_err());
        let mut idle = 0;
        for _ in 0..1000 {
            assert!(!IdlePolicy::BUSY.on_idle(&mut idle), "busy never sleeps");
        }
        let p = IdlePolicy::yielding(2);
        let mut idle = 0;
        assert!(!p.on_idle(&mut idle));
        assert!(!p.on_idle(&mut idle));
        assert!(p.on_idle(&mut idle), "sleeps after 2 empty passes");
        assert_eq!(idle, 0);
        assert!(IdlePolicy::spin(0).on_idle(&mut idle), "poll at once");
        for p in ["spin:5", "yield:200", "poll", "busy"] {
            assert_eq!(p.parse::<IdlePolicy>().unwrap().to_string(), p);
        }
    }
}
