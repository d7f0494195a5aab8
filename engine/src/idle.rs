//! What a polling thread does when a pass over its rings found no work: the
//! idle rule of sluiced's workers (`poll = busy | adaptive | interrupt`) and
//! of the bench's generators and reflector, written once.
//!
//! Spinning with `spin_loop` keeps the CPU to itself until the scheduler
//! preempts it, which on a 2-core machine shared by generator and server
//! threads delays whoever has the work. Yielding while spinning hands the CPU
//! to a runnable thread at once and costs one `sched_yield` when there is
//! none. A thread stops spinning and sleeps in poll() after `spins` empty
//! passes or `spin_us` microseconds without work, whichever comes first.
//!
//! The time bound is what makes `adaptive` cheap under a light steady load:
//! spinning saves a wakeup only when the next packet comes within the spin,
//! and a pass budget alone (200 yields, some 100 µs or more) kept a core that
//! sees a packet every ~10 µs from ever sleeping, spending a whole CPU to save
//! little; an open-loop run at a fixed rate showed it (BENCHMARKS.md). As in
//! the ski-rental rule, the spin should last about what a sleep and wakeup
//! cost (a few µs here): sluiced's default is 3 µs. Under saturation work
//! comes back within that of yielding, so the spin keeps its throughput.
use std::str::FromStr;

/// Idle behaviour of a polling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Empty passes before sleeping in poll() (`u32::MAX`: never sleep).
    pub spins: u32,
    /// `sched_yield` on each empty pass instead of a CPU pause.
    pub yield_cpu: bool,
    /// Longest spin without work, µs (`u32::MAX`: no time bound).
    pub spin_us: u32,
}

/// A thread's idle streak: empty passes so far and when the streak began.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdleStreak {
    passes: u32,
    since_us: u64,
}

impl IdleStreak {
    /// A pass found work: the streak is over.
    #[inline]
    pub fn reset(&mut self) {
        self.passes = 0;
    }
}

impl IdlePolicy {
    /// Never sleep: spin with CPU pauses (sluiced's `busy`).
    pub const BUSY: IdlePolicy = IdlePolicy { spins: u32::MAX, yield_cpu: false, spin_us: u32::MAX };

    /// The rule of a worker's poll mode; `adaptive` yields for at most
    /// `spins` empty passes and `spin_us` µs before it sleeps.
    pub fn of_poll_mode(mode: crate::config::PollMode, spins: u32, spin_us: u32) -> Self {
        match mode {
            crate::config::PollMode::Busy => Self::BUSY,
            crate::config::PollMode::Adaptive => IdlePolicy { spin_us, ..Self::yielding(spins) },
            crate::config::PollMode::Interrupt => Self::spin(0),
        }
    }

    /// Spin with CPU pauses, bounded by passes only.
    pub const fn spin(spins: u32) -> Self {
        IdlePolicy { spins, yield_cpu: false, spin_us: u32::MAX }
    }

    /// Spin yielding the CPU, bounded by passes only.
    pub const fn yielding(spins: u32) -> Self {
        IdlePolicy { spins, yield_cpu: true, spin_us: u32::MAX }
    }

    /// One empty pass at `now_us` (any monotonic µs clock): pauses or
    /// yields, and returns true when the thread should now sleep in poll()
    /// (the streak then starts over).
    #[inline]
    pub fn on_idle(&self, st: &mut IdleStreak, now_us: u64) -> bool {
        if self.spins == u32::MAX && self.spin_us == u32::MAX {
            std::hint::spin_loop();
            return false;
        }
        if st.passes == 0 {
            st.since_us = now_us;
        }
        st.passes += 1;
        if st.passes > self.spins || now_us.saturating_sub(st.since_us) >= self.spin_us as u64 {
            st.passes = 0;
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
        let us = if self.spin_us == u32::MAX { String::new() } else { format!(":{}us", self.spin_us) };
        match (self.spins, self.yield_cpu) {
            (0, _) => f.write_str("poll"),
            (u32::MAX, false) if us.is_empty() => f.write_str("busy"),
            (n, true) => write!(f, "yield:{n}{us}"),
            (n, false) => write!(f, "spin:{n}{us}"),
        }
    }
}

impl FromStr for IdlePolicy {
    type Err = String;
    /// `spin:N`, `yield:N`, either with `:Tus` (a time bound), `poll`, `busy`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or("");
        let n: u32 = match parts.next() {
            None => 0,
            Some(n) => n.parse().map_err(|_| format!("bad count in {s:?}"))?,
        };
        let spin_us = match parts.next() {
            None => u32::MAX,
            Some(t) => t
                .strip_suffix("us")
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("bad time bound in {s:?}: expected e.g. 30us"))?,
        };
        if parts.next().is_some() {
            return Err(format!("{s:?}: too many fields"));
        }
        match kind {
            "spin" => Ok(IdlePolicy { spin_us, ..IdlePolicy::spin(n) }),
            "yield" => Ok(IdlePolicy { spin_us, ..IdlePolicy::yielding(n) }),
            "poll" | "busy" if s.contains(':') => Err(format!("{s:?}: {kind} takes no count or time")),
            "poll" => Ok(IdlePolicy::spin(0)),
            "busy" => Ok(IdlePolicy::BUSY),
            _ => Err(format!("{s:?}: expected spin:N[:Tus], yield:N[:Tus], poll or busy")),
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
        assert!("yield:7:30".parse::<IdlePolicy>().is_err());
        assert!("busy:5".parse::<IdlePolicy>().is_err() && "poll:3".parse::<IdlePolicy>().is_err());
        let mut st = IdleStreak::default();
        for t in 0..1000 {
            assert!(!IdlePolicy::BUSY.on_idle(&mut st, t), "busy never sleeps");
        }
        let p = IdlePolicy::yielding(2);
        let mut st = IdleStreak::default();
        assert!(!p.on_idle(&mut st, 0));
        assert!(!p.on_idle(&mut st, 0));
        assert!(p.on_idle(&mut st, 0), "sleeps after 2 empty passes");
        assert!(IdlePolicy::spin(0).on_idle(&mut st, 0), "poll at once");
        for p in ["spin:5", "yield:200", "poll", "busy", "yield:200:30us"] {
            assert_eq!(p.parse::<IdlePolicy>().unwrap().to_string(), p);
        }
    }

    #[test]
    fn the_time_bound_ends_a_spin_early() {
        let p: IdlePolicy = "yield:1000:30us".parse().unwrap();
        let mut st = IdleStreak::default();
        assert!(!p.on_idle(&mut st, 100), "the streak starts at 100 µs");
        assert!(!p.on_idle(&mut st, 120));
        assert!(p.on_idle(&mut st, 130), "30 µs without work: sleep");
        assert!(!p.on_idle(&mut st, 500), "a new streak");
        st.reset();
        assert!(!p.on_idle(&mut st, 10_000), "reset by work");
    }
}
