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
    /// user + nice (guest time is inside).
    pub user: u64,
    /// system (kernel code on behalf of processes: syscalls, and on veth the
    /// transmit path that runs the peer's XDP and receive).
    pub system: u64,
    /// softirq (NAPI polls, the stack's receive processing).
    pub softirq: u64,
    /// Hard interrupts.
    pub irq: u64,
}

impl CpuTimes {
    /// Field-wise difference `self - earlier` (saturating).
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
            steal: self.steal.saturating_sub(earlier.steal),
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            irq: self.irq.saturating_sub(earlier.irq),
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
    Some(CpuTimes {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        idle: at(3) + at(4),
        steal: at(7),
        user: at(0) + at(1),
        system: at(2),
        softirq: at(6),
        irq: at(5),
    })
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

/// Prefixes of the names of this process's threads that serve (kernel
/// baselines and the reflector run inside the bench): everything else in
/// the process is the generator (or asleep).
pub const SERVER_THREADS: [&str; 2] = ["kecho", "reflect"];

/// CPU ticks (utime + stime) of one process or thread, from the text of
/// its `/proc/…/stat`. The command name in parentheses may hold spaces and
/// parentheses: fields are counted after the last `)`.
pub fn parse_pid_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid … utime is field 14, stime 15 (1-based
    // over the whole line), i.e. indices 11 and 12 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Ticks of a process (all its threads, also those that have exited).
pub fn process_ticks(pid: u32) -> Option<u64> {
    parse_pid_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Ticks (user + system) of this process's children that have been waited
/// for (`getrusage(RUSAGE_CHILDREN)`).
pub fn children_ticks() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(u) = getrusage(UsageWho::RUSAGE_CHILDREN) else { return 0 };
    let us = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    (us(u.user_time()) + us(u.system_time())) * clock_ticks() / 1_000_000
}

/// Ticks of this process's live threads whose names start with one of `prefixes`.
pub fn own_thread_ticks(prefixes: &[&str]) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut sum = 0;
    for e in dir.flatten() {
        let p = e.path();
        let Ok(comm) = std::fs::read_to_string(p.join("comm")) else { continue };
        if prefixes.iter().any(|x| comm.starts_with(x)) {
            sum += std::fs::read_to_string(p.join("stat")).ok().as_deref().and_then(parse_pid_stat).unwrap_or(0);
        }
    }
    sum
}

/// Who spent CPU, in ticks: the bench's own generator threads and the
/// server (an external daemon, or serving threads inside the bench).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attribution {
    /// The bench process minus its serving threads.
    pub generator: u64,
    /// The daemon (`with_daemon`) plus the bench's serving threads.
    pub server: u64,
}

/// A reading of the CPU times and the moment it was taken.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    /// The times.
    pub times: CpuTimes,
    /// When.
    pub at: Instant,
    /// Per process, when it could be read.
    pub who: Option<Attribution>,
}

impl CpuSample {
    /// Reads `/proc/stat` and this process's threads now.
    pub fn now() -> io::Result<CpuSample> {
        CpuSample::now_with_daemons(&[])
    }

    /// As [`CpuSample::now`], with the server daemon's process counted as
    /// the server.
    pub fn now_with_daemon(daemon: Option<u32>) -> io::Result<CpuSample> {
        CpuSample::now_with_daemons(daemon.as_slice())
    }

    /// As [`CpuSample::now`], with these processes counted as the server
    /// (a daemon, or nginx's master and workers). The bench's reaped
    /// children (a wrk that ran and exited) count as the generator.
    pub fn now_with_daemons(daemons: &[u32]) -> io::Result<CpuSample> {
        let bench = process_ticks(std::process::id()).map(|t| t + children_ticks());
        let serving = own_thread_ticks(&SERVER_THREADS);
        let daemon_ticks = daemons.iter().map(|&p| process_ticks(p)).sum::<Option<u64>>();
        let times = read_times()?;
        let who = match (bench, daemon_ticks) {
            (Some(b), Some(d)) => Some(Attribution { generator: b.saturating_sub(serving), server: d + serving }),
            _ => None,
        };
        Ok(CpuSample { times, at: Instant::now(), who })
    }

    /// The usage from `self` (earlier) to `later`.
    pub fn until(&self, later: &CpuSample, ticks_per_s: u64) -> CpuUsage {
        let d = later.times.since(&self.times);
        let hz = ticks_per_s.max(1) as f64;
        let s = |t: u64| t as f64 / hz;
        let who = match (self.who, later.who) {
            (Some(a), Some(b)) => {
                Some((s(b.generator.saturating_sub(a.generator)), s(b.server.saturating_sub(a.server))))
            }
            _ => None,
        };
        CpuUsage {
            busy_s: s(d.busy),
            idle_s: s(d.idle),
            steal_s: s(d.steal),
            user_s: s(d.user),
            system_s: s(d.system),
            softirq_s: s(d.softirq),
            irq_s: s(d.irq),
            generator_s: who.map(|w| w.0),
            server_s: who.map(|w| w.1),
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
    /// User-space seconds (user + nice).
    pub user_s: f64,
    /// Kernel seconds on behalf of processes.
    pub system_s: f64,
    /// Softirq seconds.
    pub softirq_s: f64,
    /// Hard-interrupt seconds.
    pub irq_s: f64,
    /// The generator's seconds (user + system of its threads), if known.
    pub generator_s: Option<f64>,
    /// The server's seconds (user + system of its process or threads), if known.
    pub server_s: Option<f64>,
    /// Wall-clock length of the interval.
    pub elapsed: Duration,
}

impl CpuUsage {
    /// Average number of busy cores over the interval.
    pub fn cores_busy(&self) -> f64 {
        self.cores(self.busy_s)
    }

    /// `seconds` of CPU as cores busy on average over the interval.
    pub fn cores(&self, seconds: f64) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            seconds / s
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
        let t = |busy, idle, steal| CpuTimes { busy, idle, steal, user: busy / 2, ..CpuTimes::default() };
        let who = |generator, server| Some(Attribution { generator, server });
        let a = CpuSample { times: t(1000, 5000, 0), at: t0, who: who(10, 20) };
        let b = CpuSample { times: t(1300, 5100, 2), at: t0 + Duration::from_secs(2), who: who(110, 70) };
        let u = a.until(&b, 100);
        assert!((u.busy_s - 3.0).abs() < 1e-9);
        assert!((u.cores_busy() - 1.5).abs() < 1e-9);
        assert!((u.us_per(1_000_000).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(u.us_per(0), None);
        assert!((u.steal_s - 0.02).abs() < 1e-9);
        assert!((u.user_s - 1.5).abs() < 1e-9);
        assert_eq!((u.generator_s, u.server_s), (Some(1.0), Some(0.5)));
        assert!((u.cores(u.generator_s.unwrap()) - 0.5).abs() < 1e-9);
        let blind = CpuSample { who: None, ..b };
        assert_eq!(a.until(&blind, 100).generator_s, None, "unknown stays unknown");
    }

    #[test]
    fn the_split_adds_up_to_busy() {
        let t = parse_proc_stat(STAT).unwrap();
        assert_eq!((t.user, t.system, t.irq, t.softirq), (4705 + 150, 1120, 0, 391));
        assert_eq!(t.busy, t.user + t.system + t.irq + t.softirq);
    }

    #[test]
    fn pid_stat_fields_after_a_strange_name() {
        let line =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 3 0 1000 1 1 18446744073709551615\n";
        assert_eq!(parse_pid_stat(line), Some(42));
        assert_eq!(parse_pid_stat("4242 (x) S 1"), None);
        assert_eq!(parse_pid_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_is_readable() {
        assert!(process_ticks(std::process::id()).is_some());
        let s = CpuSample::now().unwrap();
        assert!(s.who.is_some());
    }

    #[test]
    fn this_machine_has_a_proc_stat() {
        let t = read_times().expect("/proc/stat");
        assert!(t.busy + t.idle > 0);
        assert!(clock_ticks() >= 1);
    }
}
