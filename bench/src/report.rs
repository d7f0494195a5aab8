//! Results of `run udp-echo` and `load udp`: what is kept (JSON) and what is
//! printed (tables). A number that was not measured is `None`/`null` and
//! printed as `-`, never made up.
use crate::cli::{Generator, Target};
use crate::summary::{median, ratio_of, thousands};
use serde::Serialize;
use std::fmt::Write as _;

/// Latency percentiles, µs.
#[derive(Clone, Copy, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl Latency {
    /// From a histogram, `None` when it is empty.
    pub fn of(h: &hdrhistogram::Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        })
    }
}

/// What the server under test reported over the measured interval.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ServerStats {
    /// Frames/datagrams it received.
    pub rx_packets: u64,
    /// Frames/datagrams it sent.
    pub tx_packets: u64,
    /// Frames it dropped (sluice: all drop reasons; kernel echo: send errors;
    /// reflector: short frames and full tx rings).
    pub drops: u64,
    /// sluice: share of received frames handed to another core, over the interval.
    pub handoff_share: Option<f64>,
    /// sluice: the daemon's own lifetime handoff share at the end.
    pub daemon_handoff_share: Option<f64>,
    /// AF_XDP socket mode ("copy" on veth).
    pub socket_mode: Option<String>,
    /// XDP attach mode.
    pub xdp_mode: Option<String>,
}

/// One target in one round.
#[derive(Clone, Debug, Serialize)]
pub struct RoundResult {
    /// Round, from 1.
    pub round: u32,
    /// Position of the target in this round's order, from 1.
    pub position: usize,
    /// The target.
    pub target: Target,
    /// Whether the measurement stands (no error, replies > 0).
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Correct replies in the measured interval.
    pub replies: u64,
    /// Replies per second.
    pub replies_per_s: Option<f64>,
    /// Length of the measured interval, seconds.
    pub elapsed_s: f64,
    /// Busy CPU seconds, all cores (from /proc/stat).
    pub cpu_busy_s: f64,
    /// Stolen CPU seconds (hypervisor).
    pub cpu_steal_s: f64,
    /// Average busy cores.
    pub cores_busy: f64,
    /// Busy CPU µs per reply, all cores.
    pub cpu_us_per_reply: Option<f64>,
    /// Requests sent.
    pub sent: u64,
    /// Requests lost (afxdp: not answered within 100 ms and re-sent; kernel: expired or outstanding at the end).
    pub lost: u64,
    /// Frames that were not a correct reply.
    pub mismatched: u64,
    /// Correct replies to requests already counted lost.
    pub late: u64,
    /// Request→reply latency (open loop: from each request's intended send time).
    pub latency: Option<Latency>,
    /// Open loop: the rate offered, requests/s.
    pub offered_per_s: Option<f64>,
    /// The server's view.
    pub server: Option<ServerStats>,
    /// Anything else worth knowing (generator socket mode, warnings).
    pub notes: Vec<String>,
    /// CPU per reply, split by kind and by who spent it.
    pub cpu: Option<crate::results::CpuFigures>,
    /// sluiced's resident memory at the end, KiB.
    pub server_rss_kib: Option<u64>,
    /// What limited the figure.
    pub limit: String,
}

impl RoundResult {
    /// An empty, failed result.
    pub fn failed(round: u32, position: usize, target: Target, error: String) -> RoundResult {
        RoundResult {
            round,
            position,
            target,
            ok: false,
            error: Some(error),
            replies: 0,
            replies_per_s: None,
            elapsed_s: 0.0,
            cpu_busy_s: 0.0,
            cpu_steal_s: 0.0,
            cores_busy: 0.0,
            cpu_us_per_reply: None,
            sent: 0,
            lost: 0,
            mismatched: 0,
            late: 0,
            latency: None,
            offered_per_s: None,
            server: None,
            notes: Vec::new(),
            cpu: None,
            server_rss_kib: None,
            limit: "-".into(),
        }
    }
}

/// Medians of one target over its successful rounds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TargetSummary {
    /// The target.
    pub target: Target,
    /// Successful rounds.
    pub rounds_ok: usize,
    /// Failed rounds.
    pub rounds_failed: usize,
    /// Median replies/s.
    pub replies_per_s: Option<f64>,
    /// Median CPU µs per reply.
    pub cpu_us_per_reply: Option<f64>,
    /// Median busy cores.
    pub cores_busy: Option<f64>,
    /// Median p99 latency, µs.
    pub p99_us: Option<f64>,
    /// Median replies/s ÷ the kernel target's.
    pub replies_per_s_vs_kernel: Option<f64>,
    /// Median CPU per reply ÷ the kernel target's (below 1: cheaper than the kernel).
    pub cpu_per_reply_vs_kernel: Option<f64>,
    /// Why rounds failed.
    pub failures: Vec<String>,
}

/// Medians per target, in `targets` order, with ratios to the `kernel` target.
pub fn summarize(targets: &[Target], rounds: &[RoundResult]) -> Vec<TargetSummary> {
    let mut out: Vec<TargetSummary> = targets
        .iter()
        .map(|&t| {
            let ok: Vec<&RoundResult> = rounds.iter().filter(|r| r.target == t && r.ok).collect();
            let failed: Vec<&RoundResult> = rounds.iter().filter(|r| r.target == t && !r.ok).collect();
            let med =
                |f: &dyn Fn(&RoundResult) -> Option<f64>| median(&ok.iter().filter_map(|r| f(r)).collect::<Vec<_>>());
            TargetSummary {
                target: t,
                rounds_ok: ok.len(),
                rounds_failed: failed.len(),
                replies_per_s: med(&|r| r.replies_per_s),
                cpu_us_per_reply: med(&|r| r.cpu_us_per_reply),
                cores_busy: med(&|r| Some(r.cores_busy)),
                p99_us: med(&|r| r.latency.map(|l| l.p99_us as f64)),
                replies_per_s_vs_kernel: None,
                cpu_per_reply_vs_kernel: None,
                failures: failed
                    .iter()
                    .map(|r| format!("round {}: {}", r.round, r.error.as_deref().unwrap_or("failed")))
                    .collect(),
            }
        })
        .collect();
    let kernel = out.iter().find(|s| s.target == Target::Kernel).cloned();
    if let Some(k) = kernel {
        for s in out.iter_mut() {
            s.replies_per_s_vs_kernel = ratio_of(s.replies_per_s, k.replies_per_s);
            s.cpu_per_reply_vs_kernel = ratio_of(s.cpu_us_per_reply, k.cpu_us_per_reply);
        }
    }
    out
}

/// The machine the numbers come from.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// Ticks per second of /proc/stat.
    pub clock_ticks: u64,
    /// Busy cores in the second before the run (other work on the machine).
    pub background_cores_busy: Option<f64>,
}

/// Settings of a `run udp-echo`.
#[derive(Clone, Debug, Serialize)]
pub struct EchoSettings {
    /// Veth queues.
    pub queues: u32,
    /// Rounds.
    pub rounds: u32,
    /// Measured seconds per target and round.
    pub duration_s: f64,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// UDP payload bytes.
    pub size: usize,
    /// Requests in flight per queue.
    pub window: u32,
    /// Generator flows.
    pub flows: u16,
    /// The generator.
    pub generator: Generator,
    /// The AF_XDP generator's idle policy.
    pub gen_idle: String,
    /// Empty passes sluiced and the reflector spin before sleeping (sluiced's
    /// `engine.spin_iterations`).
    pub server_spin: u32,
    /// Longest spin without work, µs (sluiced's `engine.spin_us`).
    pub server_spin_us: u32,
    /// "learned" or "hash": how sluiced finds a flow's owner core.
    pub flow_owner: String,
    /// Targets in round-1 order.
    pub targets: Vec<Target>,
    /// The sluiced binary, if sluice was a target.
    pub sluiced: Option<String>,
}

/// Everything `run udp-echo` measured.
#[derive(Clone, Debug, Serialize)]
pub struct EchoReport {
    /// How the bench was invoked.
    pub command_line: Vec<String>,
    /// The lab's name (its namespaces are sluice-NAME-s/-c).
    pub lab: String,
    /// Settings.
    pub settings: EchoSettings,
    /// The machine.
    pub machine: Machine,
    /// Every target in every round, in the order run.
    pub rounds: Vec<RoundResult>,
    /// Medians per target.
    pub summary: Vec<TargetSummary>,
    /// The open-loop rounds at one fixed rate, if run.
    pub open_loop: Option<OpenLoop>,
    /// Rate sweep steps (one round per rate and target).
    pub sweep: Vec<RoundResult>,
}

/// Every target answering the same fixed request rate (open loop), so CPU
/// per reply compares at equal load: in a closed loop on two busy cores it
/// is only the inverse of throughput.
#[derive(Clone, Debug, Serialize)]
pub struct OpenLoop {
    /// Requests per second offered to every target.
    pub rate: f64,
    /// How the rate was chosen.
    pub chosen: String,
    /// Every target in every round.
    pub rounds: Vec<RoundResult>,
    /// Medians per target.
    pub summary: Vec<TargetSummary>,
}

/// `0.29× (3.4× less)` / `1.50× (1.5× more)`.
fn cpu_ratio(x: f64) -> String {
    if x <= 1.0 {
        format!("{x:.2}× ({:.1}× less)", 1.0 / x)
    } else {
        format!("{x:.2}× ({x:.1}× more)")
    }
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map(f).unwrap_or_else(|| "-".into())
}

/// The tables people read.
pub fn render_echo(r: &EchoReport) -> String {
    let s = &r.settings;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "UDP echo: {} B payload, {} queues, window {}/queue ({} in flight), {} generator, {} round(s) × {:.1} s after {:.1} s warm-up",
        s.size,
        s.queues,
        s.window,
        s.window * s.queues,
        s.generator.as_str(),
        s.rounds,
        s.duration_s,
        s.warmup_s
    );
    let _ = writeln!(
        o,
        "adaptive servers: {} empty passes or {} µs before sleeping; sluiced flow owners: {}; afxdp generator idle: {} (open loop: {} µs timer ticks)",
        s.server_spin,
        s.server_spin_us,
        s.flow_owner,
        s.gen_idle,
        crate::xdp_gen::OPEN_LOOP_TICK.as_micros()
    );
    let _ = writeln!(
        o,
        "machine: {} CPUs, kernel {}, background before the run {} cores busy",
        r.machine.cpus,
        r.machine.kernel,
        opt(r.machine.background_cores_busy, |x| format!("{x:.2}"))
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:<8} {:>12} {:>13} {:>11} {:>15} {:>19} {:>9} {:>7}",
        "target", "replies/s", "CPU µs/reply", "cores busy", "rate ÷ kernel", "CPU/reply ÷ kernel", "p99 µs", "rounds"
    );
    for t in &r.summary {
        let _ = writeln!(
            o,
            "{:<8} {:>12} {:>13} {:>11} {:>15} {:>19} {:>9} {:>7}",
            t.target.as_str(),
            opt(t.replies_per_s, thousands),
            opt(t.cpu_us_per_reply, |x| format!("{x:.3}")),
            opt(t.cores_busy, |x| format!("{x:.2}")),
            opt(t.replies_per_s_vs_kernel, |x| format!("{x:.2}×")),
            opt(t.cpu_per_reply_vs_kernel, cpu_ratio),
            opt(t.p99_us, |x| format!("{x:.0}")),
            format!("{}/{}", t.rounds_ok, t.rounds_ok + t.rounds_failed),
        );
    }
    let _ = writeln!(
        o,
        "medians over successful rounds; CPU = busy time of all cores (/proc/stat), generator and softirqs included"
    );
    for t in r.summary.iter().filter(|t| !t.failures.is_empty()) {
        for f in &t.failures {
            let _ = writeln!(o, "FAILED {} {}", t.target.as_str(), f);
        }
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "{:>5} {:<8} {:>12} {:>13} {:>6} {:>11} {:>7} {:>6} {:>5} {:>12}  server rx / tx / drops",
        "round", "target", "replies/s", "CPU µs/reply", "cores", "sent", "lost", "mism.", "late", "p50/p99 µs"
    );
    for x in &r.rounds {
        if !x.ok {
            let _ = writeln!(
                o,
                "{:>5} {:<8} FAILED: {}",
                x.round,
                x.target.as_str(),
                x.error.as_deref().unwrap_or("unknown")
            );
            continue;
        }
        let lat = x.latency.map(|l| format!("{}/{}", l.p50_us, l.p99_us)).unwrap_or_else(|| "-".into());
        let srv = x
            .server
            .as_ref()
            .map(|s| {
                let mut t = format!("{} / {} / {}", s.rx_packets, s.tx_packets, s.drops);
                if let Some(h) = s.handoff_share {
                    let _ = write!(t, ", handoff {:.1}%", h * 100.0);
                }
                t
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            o,
            "{:>5} {:<8} {:>12} {:>13} {:>6.2} {:>11} {:>7} {:>6} {:>5} {:>12}  {}",
            x.round,
            x.target.as_str(),
            opt(x.replies_per_s, thousands),
            opt(x.cpu_us_per_reply, |v| format!("{v:.3}")),
            x.cores_busy,
            x.sent,
            x.lost,
            x.mismatched,
            x.late,
            lat,
            srv
        );
    }
    if let Some(ol) = &r.open_loop {
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "open loop: every target offered {} requests/s ({}); latency from each request's intended send time",
            thousands(ol.rate),
            ol.chosen
        );
        let _ = writeln!(
            o,
            "{:<16} {:>10} {:>10} {:>9} {:>13} {:>11} {:>19} {:>20} {:>7}",
            "target",
            "sent/s",
            "replies/s",
            "lost",
            "CPU µs/reply",
            "cores busy",
            "CPU/reply ÷ kernel",
            "p50/p99/p99.9 µs",
            "rounds"
        );
        for t in &ol.summary {
            let lat = ol
                .rounds
                .iter()
                .filter(|x| x.target == t.target && x.ok)
                .filter_map(|x| x.latency)
                .map(|l| (l.p50_us, l.p99_us, l.p999_us))
                .collect::<Vec<_>>();
            let med = |f: fn(&(u64, u64, u64)) -> u64| median(&lat.iter().map(|l| f(l) as f64).collect::<Vec<_>>());
            let lat = match (med(|l| l.0), med(|l| l.1), med(|l| l.2)) {
                (Some(a), Some(b), Some(c)) => format!("{a:.0}/{b:.0}/{c:.0}"),
                _ => "-".into(),
            };
            let ok: Vec<&RoundResult> = ol.rounds.iter().filter(|x| x.target == t.target && x.ok).collect();
            let sent_rate = median(
                &ok.iter().filter(|x| x.elapsed_s > 0.0).map(|x| x.sent as f64 / x.elapsed_s).collect::<Vec<_>>(),
            );
            let lost: u64 = ok.iter().map(|x| x.lost).sum();
            let _ = writeln!(
                o,
                "{:<16} {:>10} {:>10} {:>9} {:>13} {:>11} {:>19} {:>20} {:>7}",
                t.target.as_str(),
                opt(sent_rate, thousands),
                opt(t.replies_per_s, thousands),
                lost,
                opt(t.cpu_us_per_reply, |x| format!("{x:.3}")),
                opt(t.cores_busy, |x| format!("{x:.2}")),
                opt(t.cpu_per_reply_vs_kernel, cpu_ratio),
                lat,
                format!("{}/{}", t.rounds_ok, t.rounds_ok + t.rounds_failed),
            );
        }
        for x in ol.rounds.iter().filter(|x| x.ok) {
            for n in x.notes.iter().filter(|n| n.starts_with("SHORT") || n.starts_with("generator woke late")) {
                let _ = writeln!(o, "  round {} {}: {n}", x.round, x.target.as_str());
            }
        }
        for t in ol.summary.iter().filter(|t| !t.failures.is_empty()) {
            for f in &t.failures {
                let _ = writeln!(o, "FAILED {} (open loop) {}", t.target.as_str(), f);
            }
        }
    }
    o
}

/// Result of `load udp`.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// How the bench was invoked.
    pub command_line: Vec<String>,
    /// Namespace the generator ran in.
    pub netns: String,
    /// Target.
    pub target: String,
    /// Correct replies per second.
    pub answered_per_s: f64,
    /// Correct replies in time.
    pub answered: u64,
    /// Requests sent.
    pub sent: u64,
    /// Datagrams received.
    pub received: u64,
    /// Requests not answered within the request timeout (1 s).
    pub lost: u64,
    /// Requests still waiting for their reply when the run stopped (not lost:
    /// the run ended before they could be answered).
    pub in_flight_at_end: u64,
    /// Replies that did not match a request.
    pub mismatched: u64,
    /// Correct replies that came too late.
    pub late: u64,
    /// Send and receive call errors.
    pub send_errors: u64,
    /// Receive call errors.
    pub recv_errors: u64,
    /// Latency.
    pub latency: Option<Latency>,
    /// Seconds.
    pub elapsed_s: f64,
    /// Flows.
    pub flows: u16,
    /// Threads.
    pub threads: usize,
}

/// The `load udp` summary.
/// `load tcp`'s result.
#[derive(Clone, Debug, Serialize)]
pub struct TcpLoadReport {
    /// How it was started.
    pub command_line: Vec<String>,
    /// Client namespace.
    pub netns: String,
    /// The echo service.
    pub target: String,
    /// rr or crr.
    pub mode: String,
    /// Open loop rate asked for, requests/s.
    pub rate: Option<f64>,
    /// Intact echoes per second.
    pub ok_per_s: f64,
    /// Intact echoes.
    pub ok: u64,
    /// Echoes that differed from the request.
    pub mismatched: u64,
    /// Connections that failed.
    pub errors: u64,
    /// Connections opened.
    pub connects: u64,
    /// Open loop: requests that had to wait for a connection with room.
    pub deferred: u64,
    /// Requests not answered when the run ended.
    pub outstanding_at_end: u64,
    /// Latency of the intact echoes.
    pub latency: Option<Latency>,
    /// Seconds run.
    pub elapsed_s: f64,
    /// Connections.
    pub conns: usize,
    /// Threads.
    pub threads: usize,
}

/// The text of `load tcp`.
pub fn render_tcp_load(r: &TcpLoadReport) -> String {
    let lat = r
        .latency
        .map(|l| {
            format!("latency p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs", l.p50_us, l.p99_us, l.p999_us, l.max_us)
        })
        .unwrap_or_else(|| "latency - (no echoes)".into());
    let rate = r.rate.map(|x| format!(", open loop at {}/s", thousands(x))).unwrap_or_default();
    format!(
        "{} echoes/s from {} to {} ({} {} connections, {} threads, {:.2} s{rate})\n\
         intact {}, mismatched {}, failed connections {}, connections opened {}, deferred {}, in flight at the end {}\n{lat}\n",
        thousands(r.ok_per_s),
        r.netns,
        r.target,
        r.conns,
        r.mode,
        r.threads,
        r.elapsed_s,
        r.ok,
        r.mismatched,
        r.errors,
        r.connects,
        r.deferred,
        r.outstanding_at_end
    )
}

pub fn render_load(r: &LoadReport) -> String {
    let lat = r
        .latency
        .map(|l| format!("latency p50 {} µs, p99 {} µs, max {} µs", l.p50_us, l.p99_us, l.max_us))
        .unwrap_or_else(|| "latency - (no replies)".into());
    format!(
        "{} answered/s to {} from {} ({} flows, {} threads, {:.2} s)\n\
         sent {}, answered {}, lost {} (no reply within 1 s), in flight at the end {}, mismatched {}, late {}, \
         send errors {}, receive errors {}\n{lat}\n",
        thousands(r.answered_per_s),
        r.target,
        r.netns,
        r.flows,
        r.threads,
        r.elapsed_s,
        r.sent,
        r.answered,
        r.lost,
        r.in_flight_at_end,
        r.mismatched,
        r.late,
        r.send_errors,
        r.recv_errors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(round: u32, target: Target, rate: f64, cpu: f64) -> RoundResult {
        let mut r = RoundResult::failed(round, 1, target, String::new());
        r.ok = true;
        r.error = None;
        r.replies_per_s = Some(rate);
        r.cpu_us_per_reply = Some(cpu);
        r.cores_busy = 1.5;
        r
    }

    #[test]
    fn medians_and_ratios_per_target() {
        let rounds = vec![
            ok(1, Target::Sluice, 300.0, 2.0),
            ok(1, Target::Kernel, 100.0, 8.0),
            ok(2, Target::Sluice, 500.0, 1.0),
            ok(2, Target::Kernel, 120.0, 10.0),
            ok(3, Target::Sluice, 400.0, 3.0),
            RoundResult::failed(3, 2, Target::Kernel, "no replies".into()),
            RoundResult::failed(1, 3, Target::Reflect, "boom".into()),
        ];
        let s = summarize(&[Target::Sluice, Target::Kernel, Target::Reflect], &rounds);
        assert_eq!(s[0].replies_per_s, Some(400.0));
        assert_eq!(s[0].cpu_us_per_reply, Some(2.0));
        assert_eq!(s[1].replies_per_s, Some(110.0), "median of two: their mean");
        assert_eq!(s[1].cpu_us_per_reply, Some(9.0));
        assert_eq!((s[1].rounds_ok, s[1].rounds_failed), (2, 1));
        let r = s[0].replies_per_s_vs_kernel.unwrap();
        assert!((r - 400.0 / 110.0).abs() < 1e-12);
        let c = s[0].cpu_per_reply_vs_kernel.unwrap();
        assert!((c - 2.0 / 9.0).abs() < 1e-12);
        assert_eq!(s[1].replies_per_s_vs_kernel, Some(1.0));
        assert_eq!(s[2].replies_per_s, None, "a failed target gets no number");
        assert_eq!(s[2].replies_per_s_vs_kernel, None);
        assert_eq!(s[2].failures, vec!["round 1: boom".to_string()]);
    }

    #[test]
    fn no_kernel_target_means_no_ratios() {
        let s = summarize(&[Target::Reflect], &[ok(1, Target::Reflect, 10.0, 1.0)]);
        assert_eq!(s[0].replies_per_s, Some(10.0));
        assert_eq!(s[0].replies_per_s_vs_kernel, None);
        assert_eq!(s[0].cpu_per_reply_vs_kernel, None);
    }
}
