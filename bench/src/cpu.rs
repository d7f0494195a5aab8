//! CPU time of the whole machine from `/proc/stat`, for "CPU per transaction".
//!
//! On veth the work of one transaction is spread over processes and softirqs
//! on every core (XDP and the copy into the UMEM run on the *sender's* CPU,
//! and a reply is processed by the peer's stack on the CPU that sent it), so
//! per-process accounting misses most of it. The bench reads the aggregate
//! `cpu` line before and after a measured interval and divides the busy time
//! by the number of transactions.
use std::io;
use std::time::{Duration, Instant};

/// Aggregate CPU times of all CPUs, in clock ticks (`USER_HZ`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq.
    pub busy: u64,
    /// idle + iowait.
    pub idle: u64,
    /// Time the hypervisor ran something else on our virtual CPUs.
    pub steal: u64,
}

impl CpuTimes {
    /// Field-wise difference `self - earlier` (saturating).
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }
}

/// Parses the aggregate `cpu ` line of `/proc/stat` text. `guest` and
/// `guest_nice` are already contained in `user` and `nice` and are not
/// added again; `steal` is kept apart (it is not work of this machine).
pub fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu ") || *l == "cpu")?;
    let v: Vec<u64> = line.split_whitespace().skip(1).map(|f| f.parse::<u64>()).collect::<Result<_, _>>().ok()?;
    // user nice system idle [iowait irq softirq steal guest guest_nice]; old
    // kernels have fewer fields.
    if v.len() < 4 {
        return None;
    }
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(CpuTimes { busy: at(0) + at(1) + at(2) + at(5) + at(6), idle: at(3) + at(4), steal: at(7) })
}

/// Reads `/proc/stat` now.
pub fn read_times() -> io::Result<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat")?;
    parse_proc_stat(&text).ok_or_else(|| io::Error::other("/proc/stat has no parsable aggregate cpu line"))
}

/// Clock ticks per second of `/proc/stat` (`sysconf(_SC_CLK_TCK)`, 100 on
/// Linux when it cannot be read).
pub fn clock_ticks() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// A reading of the CPU times and the moment it was taken.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    /// The times.
    pub times: CpuTimes,
    /// When.
    pub at: Instant,
}

impl CpuSample {
    /// Reads `/proc/stat` now.
    pub fn now() -> io::Result<CpuSample> {
        let times = read_times()?;
        Ok(CpuSample { times, at: Instant::now() })
    }

    /// The usage from `self` (earlier) to `later`.
    pub fn until(&self, later: &CpuSample, ticks_per_s: u64) -> CpuUsage {
        let d = later.times.since(&self.times);
        let hz = ticks_per_s.max(1) as f64;
        CpuUsage {
            busy_s: d.busy as f64 / hz,
            idle_s: d.idle as f64 / hz,
            steal_s: d.steal as f64 / hz,
            elapsed: later.at.saturating_duration_since(self.at),
        }
    }
}

/// CPU time spent over an interval, all CPUs summed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuUsage {
    /// Busy CPU seconds.
    pub busy_s: f64,
    /// Idle CPU seconds.
    pub idle_s: f64,
    /// Stolen CPU seconds (virtual machines).
    pub steal_s: f64,
    /// Wall-clock length of the interval.
    pub elapsed: Duration,
}

impl CpuUsage {
    /// Average number of busy cores over the interval.
    pub fn cores_busy(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.busy_s / s
        } else {
            0.0
        }
    }

    /// Busy CPU microseconds per item (`None` for zero items).
    pub fn us_per(&self, items: u64) -> Option<f64> {
        (items > 0).then(|| self.busy_s * 1e6 / items as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  4705 150 1120 1659190 1201 0 391 7 0 0\n\
                        cpu0 2352 75 560 829595 600 0 195 3 0 0\n\
                        cpu1 2353 75 560 829595 601 0 196 4 0 0\n\
                        intr 1462898 0 0\nctxt 2412323\n";

    #[test]
    fn parses_the_aggregate_line() {
        let t = parse_proc_stat(STAT).expect("parse");
        assert_eq!(t.busy, 4705 + 150 + 1120 + 391);
        assert_eq!(t.idle, 1659190 + 1201);
        assert_eq!(t.steal, 7);
    }

    #[test]
    fn guest_time_is_not_counted_twice_and_short_lines_parse() {
        let t = parse_proc_stat("cpu  10 0 5 100 0 0 0 0 8 2\n").unwrap();
        assert_eq!(t.busy, 15, "guest (8) and guest_nice (2) are inside user and nice");
        let t = parse_proc_stat("cpu 1 2 3 4\n").unwrap();
        assert_eq!((t.busy, t.idle, t.steal), (6, 4, 0));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse_proc_stat(""), None);
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4\n"), None, "only the aggregate line counts");
        assert_eq!(parse_proc_stat("cpu  1 2 x 4\n"), None);
        assert_eq!(parse_proc_stat("cpu  1 2 3\n"), None);
    }

    #[test]
    fn usage_per_item_and_cores() {
        let t0 = Instant::now();
        let a = CpuSample { times: CpuTimes { busy: 1000, idle: 5000, steal: 0 }, at: t0 };
        let b = CpuSample { times: CpuTimes { busy: 1300, idle: 5100, steal: 2 }, at: t0 + Duration::from_secs(2) };
        let u = a.until(&b, 100);
        assert!((u.busy_s - 3.0).abs() < 1e-9);
        assert!((u.cores_busy() - 1.5).abs() < 1e-9);
        assert!((u.us_per(1_000_000).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(u.us_per(0), None);
        assert!((u.steal_s - 0.02).abs() < 1e-9);
    }

    #[test]
    fn this_machine_has_a_proc_stat() {
        let t = read_times().expect("/proc/stat");
        assert!(t.busy + t.idle > 0);
        assert!(clock_ticks() >= 1);
    }
}
