//! The results every scenario publishes: one versioned JSON schema, from
//! which the Markdown table, the HTML report and `compare` are made.
//!
//! A scenario keeps its own detailed report (`detail`); what is here is
//! the common part: per measurement (target × round × phase) the
//! throughput, CPU per transaction split by kind and by who spent it, the
//! latency percentiles, the daemon's RSS, losses, and what limited the
//! figure; per target and phase the medians with their spread over rounds
//! and the ratios to each baseline. A figure that was not measured is
//! `null`, never made up.
use crate::cpu::CpuUsage;
use crate::report::Latency;
use crate::summary::median;
use serde::{Deserialize, Serialize};

/// The schema of [`Results`]. Bump it when a field changes meaning or
/// goes away; adding a field keeps it (every struct here reads a missing
/// field as its default, so older v1 files still load).
pub const SCHEMA: &str = "sluice-bench/results/v1";

/// Everything one `run` measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Results {
    /// [`SCHEMA`].
    pub schema: String,
    /// `udp-echo`, `tcp-rr`, `tcp-crr`, …
    pub scenario: String,
    /// What reports call this run (`--label`; the scenario when not given).
    pub label: String,
    /// What one transaction is ("reply", "echo", "connection").
    pub unit: String,
    /// Which generator drove the load, in words.
    pub generator: String,
    /// Unix time the run started, seconds.
    pub started_unix_s: u64,
    /// The machine.
    pub machine: MachineInfo,
    /// The commit the bench was built from (`git describe`), if known.
    pub commit: Option<String>,
    /// How the bench was invoked.
    pub command_line: Vec<String>,
    /// Every option of the scenario, as parsed.
    pub options: serde_json::Value,
    /// Targets the others are compared with (`kernel`, …), in order.
    pub baselines: Vec<String>,
    /// Every measurement, in the order run.
    pub measurements: Vec<Measurement>,
    /// Per phase and target: medians and spread.
    pub summary: Vec<Summary>,
    /// Rate sweep: where each target stopped keeping up.
    pub knees: Vec<Knee>,
    /// The scenario's own report (every number it printed).
    pub detail: serde_json::Value,
}

/// The machine the numbers come from.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MachineInfo {
    /// Online CPUs.
    pub cpus: usize,
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: Option<String>,
    /// MemTotal, MiB.
    pub memory_mib: Option<u64>,
    /// `uname -r`.
    pub kernel: String,
    /// Busy cores in the second before the run, if measured.
    pub background_cores_busy: Option<f64>,
}

impl MachineInfo {
    /// This machine.
    pub fn here(background_cores_busy: Option<f64>) -> MachineInfo {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        MachineInfo {
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string()),
            memory_mib: meminfo
                .lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb / 1024),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
            background_cores_busy,
        }
    }
}

/// The commit this binary was built from.
pub fn commit() -> Option<String> {
    option_env!("SLUICE_COMMIT").filter(|c| !c.is_empty()).map(str::to_string)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Closed loop, open loop at one rate, or one step of a rate sweep.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// As fast as the window allows.
    #[default]
    Closed,
    /// A fixed rate, the same for every target.
    Open,
    /// One rate of a sweep.
    Sweep,
    /// conn-scale: `connections` idle connections held.
    Scale,
}

impl Phase {
    /// The word.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Closed => "closed",
            Phase::Open => "open",
            Phase::Sweep => "sweep",
            Phase::Scale => "scale",
        }
    }
}

/// CPU over a measured interval, all cores, in seconds per million
/// transactions, split by kind (/proc/stat) and by who spent it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct CpuFigures {
    /// Busy seconds per million transactions (the headline figure).
    pub busy_s_per_m: f64,
    /// User space (user + nice).
    pub user_s_per_m: f64,
    /// Kernel on behalf of processes.
    pub system_s_per_m: f64,
    /// Softirq (and hard interrupts).
    pub softirq_s_per_m: f64,
    /// Average busy cores.
    pub cores_busy: f64,
    /// Cores the generator kept busy (its threads' user + system).
    pub generator_cores: Option<f64>,
    /// Cores the server kept busy (the daemon's process, or the serving threads).
    pub server_cores: Option<f64>,
    /// Cores stolen by the hypervisor.
    pub steal_cores: f64,
    /// The server's own CPU µs per transaction (its process or threads, user
    /// + system; softirq work done in its context included).
    pub server_us: Option<f64>,
    /// The generator's own CPU µs per transaction.
    pub generator_us: Option<f64>,
}

impl CpuFigures {
    /// From a usage over an interval and the transactions in it (`None` for none).
    pub fn of(u: &CpuUsage, transactions: u64) -> Option<CpuFigures> {
        if transactions == 0 {
            return None;
        }
        let per_m = |s: f64| s * 1e6 / transactions as f64;
        Some(CpuFigures {
            busy_s_per_m: per_m(u.busy_s),
            user_s_per_m: per_m(u.user_s),
            system_s_per_m: per_m(u.system_s),
            softirq_s_per_m: per_m(u.softirq_s + u.irq_s),
            cores_busy: u.cores_busy(),
            generator_cores: u.generator_s.map(|s| u.cores(s)),
            server_cores: u.server_s.map(|s| u.cores(s)),
            steal_cores: u.cores(u.steal_s),
            server_us: u.server_s.map(per_m),
            generator_us: u.generator_s.map(per_m),
        })
    }

    /// Busy µs per transaction (= busy seconds per million).
    pub fn us_per(&self) -> f64 {
        self.busy_s_per_m
    }
}

/// One target, one round, one phase.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Measurement {
    /// Closed, open or sweep.
    pub phase: Phase,
    /// Open loop and sweep: the rate offered, transactions/s.
    pub rate: Option<f64>,
    /// Round, from 1.
    pub round: u32,
    /// The target.
    pub target: String,
    /// Whether the measurement stands.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Good transactions in the measured interval.
    pub transactions: u64,
    /// Good transactions per second.
    pub per_s: Option<f64>,
    /// Length of the measured interval, seconds.
    pub elapsed_s: f64,
    /// CPU per transaction.
    pub cpu: Option<CpuFigures>,
    /// Latency (open loop: from each request's intended send time).
    pub latency: Option<Latency>,
    /// The daemon's resident memory at the end, KiB (sluiced only).
    pub server_rss_kib: Option<u64>,
    /// Requests lost or connections failed.
    pub lost: u64,
    /// Answers that were wrong.
    pub mismatched: u64,
    /// What limited the figure.
    pub limit: String,
    /// conn-scale: connections asked for.
    pub connections: Option<u64>,
    /// conn-scale: the server's memory per open connection, bytes (sluiced:
    /// its RSS growth; the kernel: slab and socket-buffer growth).
    pub memory_per_conn_b: Option<f64>,
}

/// Median and spread of one figure over rounds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// Rounds it is over.
    pub n: usize,
}

impl Spread {
    /// Of the values, `None` when there are none.
    pub fn of(xs: &[f64]) -> Option<Spread> {
        let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let m = median(&xs)?;
        let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some(Spread { median: m, min, max, n: xs.len() })
    }

    /// (max − min) ÷ median: the noise across rounds, 0 for one round.
    pub fn relative_range(&self) -> f64 {
        if self.median.abs() > 0.0 {
            (self.max - self.min) / self.median.abs()
        } else {
            0.0
        }
    }
}

/// A target's ratios to one baseline.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Ratio {
    /// The baseline target.
    pub baseline: String,
    /// Median throughput ÷ the baseline's.
    pub per_s: Option<f64>,
    /// Median CPU per transaction ÷ the baseline's (below 1: cheaper).
    pub cpu: Option<f64>,
}

/// One target in one phase (and rate), over its rounds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Summary {
    /// The phase.
    pub phase: Phase,
    /// The rate of an open-loop or sweep phase.
    pub rate: Option<f64>,
    /// The target.
    pub target: String,
    /// Measurements that stand.
    pub rounds_ok: usize,
    /// Measurements that failed.
    pub rounds_failed: usize,
    /// Transactions per second.
    pub per_s: Option<Spread>,
    /// Busy CPU µs per transaction.
    pub cpu_us: Option<Spread>,
    /// Medians of the CPU split, µs per transaction: user, system, softirq.
    pub cpu_split_us: Option<[f64; 3]>,
    /// The server's own CPU µs per transaction.
    pub server_cpu_us: Option<Spread>,
    /// Median latency percentiles, µs.
    pub latency: Option<Latency>,
    /// Median RSS of the daemon, KiB.
    pub server_rss_kib: Option<u64>,
    /// Lost requests or failed connections, summed.
    pub lost: u64,
    /// Ratios to each baseline.
    pub ratios: Vec<Ratio>,
    /// What limited the figure, as most rounds said.
    pub limit: String,
    /// Why rounds failed.
    pub failures: Vec<String>,
    /// conn-scale: connections asked for.
    pub connections: Option<u64>,
    /// conn-scale: median memory per connection, bytes.
    pub memory_per_conn_b: Option<f64>,
}

/// Where a target stopped keeping up in a rate sweep.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Knee {
    /// The target.
    pub target: String,
    /// The highest rate it served within 3 % (and its p99 within 10× its lowest-rate p99).
    pub last_good_rate: Option<f64>,
    /// The first rate it did not.
    pub first_bad_rate: Option<f64>,
}

/// Summaries of every (phase, rate, target), in the order first measured,
/// with ratios to each baseline of the same phase and rate.
pub fn summarize(measurements: &[Measurement], baselines: &[String]) -> Vec<Summary> {
    let mut keys: Vec<(Phase, Option<u64>, String, Option<u64>)> = Vec::new();
    for m in measurements {
        let k = (m.phase, m.rate.map(f64::to_bits), m.target.clone(), m.connections);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut out: Vec<Summary> = keys
        .iter()
        .map(|(phase, rate, target, connections)| {
            let all: Vec<&Measurement> = measurements
                .iter()
                .filter(|m| {
                    m.phase == *phase
                        && m.rate.map(f64::to_bits) == *rate
                        && &m.target == target
                        && m.connections == *connections
                })
                .collect();
            let ok: Vec<&Measurement> = all.iter().copied().filter(|m| m.ok).collect();
            let v = |f: &dyn Fn(&Measurement) -> Option<f64>| ok.iter().filter_map(|m| f(m)).collect::<Vec<f64>>();
            let med = |f: &dyn Fn(&Measurement) -> Option<f64>| median(&v(f));
            let split = match (
                med(&|m| m.cpu.map(|c| c.user_s_per_m)),
                med(&|m| m.cpu.map(|c| c.system_s_per_m)),
                med(&|m| m.cpu.map(|c| c.softirq_s_per_m)),
            ) {
                (Some(u), Some(s), Some(i)) => Some([u, s, i]),
                _ => None,
            };
            let lat = |f: fn(&Latency) -> u64| med(&|m| m.latency.as_ref().map(|l| f(l) as f64)).map(|x| x as u64);
            let latency = match (
                lat(|l| l.p50_us),
                lat(|l| l.p90_us),
                lat(|l| l.p99_us),
                lat(|l| l.p999_us),
                lat(|l| l.max_us),
            ) {
                (Some(p50_us), Some(p90_us), Some(p99_us), Some(p999_us), Some(max_us)) => {
                    Some(Latency { p50_us, p90_us, p99_us, p999_us, max_us })
                }
                _ => None,
            };
            Summary {
                phase: *phase,
                rate: rate.map(f64::from_bits),
                target: target.clone(),
                rounds_ok: ok.len(),
                rounds_failed: all.len() - ok.len(),
                per_s: Spread::of(&v(&|m| m.per_s)),
                cpu_us: Spread::of(&v(&|m| m.cpu.map(|c| c.us_per()))),
                cpu_split_us: split,
                server_cpu_us: Spread::of(&v(&|m| m.cpu.and_then(|c| c.server_us))),
                latency,
                server_rss_kib: med(&|m| m.server_rss_kib.map(|k| k as f64)).map(|k| k as u64),
                lost: ok.iter().map(|m| m.lost).sum(),
                ratios: Vec::new(),
                limit: summary_limit(&ok),
                failures: all
                    .iter()
                    .filter(|m| !m.ok)
                    .map(|m| format!("round {}: {}", m.round, m.error.as_deref().unwrap_or("failed")))
                    .collect(),
                connections: *connections,
                memory_per_conn_b: med(&|m| m.memory_per_conn_b),
            }
        })
        .collect();
    let snapshot = out.clone();
    for s in &mut out {
        for b in baselines {
            if let Some(base) = snapshot
                .iter()
                .find(|x| x.phase == s.phase && x.rate == s.rate && x.connections == s.connections && &x.target == b)
            {
                s.ratios.push(Ratio {
                    baseline: b.clone(),
                    per_s: crate::summary::ratio_of(s.per_s.map(|x| x.median), base.per_s.map(|x| x.median)),
                    cpu: crate::summary::ratio_of(s.cpu_us.map(|x| x.median), base.cpu_us.map(|x| x.median)),
                });
            }
        }
    }
    out
}

/// The limit most rounds name, by its kind (the text before its figures:
/// "generator (1.93 of 2 cores)" and "generator (1.95 …)" are one kind),
/// shown with the first round's figures of that kind.
fn summary_limit(ok: &[&Measurement]) -> String {
    let kind = |l: &str| l.split(" (").next().unwrap_or(l).to_string();
    let kinds: Vec<String> = ok.iter().map(|m| kind(&m.limit)).collect();
    match most_common(kinds.iter().map(String::as_str)) {
        Some(k) => ok.iter().find(|m| kind(&m.limit) == k).map_or_else(|| "-".into(), |m| m.limit.clone()),
        None => "-".into(),
    }
}

fn most_common<'a>(it: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for x in it {
        match counts.iter_mut().find(|(k, _)| *k == x) {
            Some((_, n)) => *n += 1,
            None => counts.push((x, 1)),
        }
    }
    // First seen wins a tie.
    let best = counts.iter().map(|c| c.1).max()?;
    counts.into_iter().find(|c| c.1 == best).map(|c| c.0)
}

/// The knee of each target in the sweep phase: the highest rate served
/// (≥ 97 % of it delivered, p99 within 10× of the p99 at the lowest rate)
/// and the lowest rate above it that was not.
pub fn knees(summary: &[Summary]) -> Vec<Knee> {
    let mut targets: Vec<&str> = Vec::new();
    for s in summary.iter().filter(|s| s.phase == Phase::Sweep) {
        if !targets.contains(&s.target.as_str()) {
            targets.push(&s.target);
        }
    }
    targets
        .into_iter()
        .map(|t| {
            let mut steps: Vec<&Summary> =
                summary.iter().filter(|s| s.phase == Phase::Sweep && s.target == t).collect();
            steps.sort_by(|a, b| a.rate.unwrap_or(0.0).total_cmp(&b.rate.unwrap_or(0.0)));
            let base_p99 = steps.iter().find_map(|s| s.latency.map(|l| l.p99_us)).unwrap_or(0);
            let good = |s: &Summary| {
                let rate = s.rate.unwrap_or(f64::INFINITY);
                let served = s.per_s.is_some_and(|p| p.median >= 0.97 * rate);
                let p99_ok = s.latency.is_some_and(|l| l.p99_us <= base_p99.max(1) * 10);
                served && p99_ok
            };
            // The highest rate served, and the lowest unserved one above it: a
            // noisy low step does not hide a knee further up.
            let last = steps.iter().rposition(|s| good(s));
            let last_good = last.and_then(|i| steps[i].rate);
            let from = last.map_or(0, |i| i + 1);
            let first_bad = steps[from..].iter().position(|s| !good(s)).map(|i| i + from);
            Knee {
                target: t.to_string(),
                last_good_rate: last_good,
                first_bad_rate: first_bad.and_then(|i| steps[i].rate),
            }
        })
        .collect()
}

/// The rates of a sweep, as fractions of the fastest closed-loop median
/// `peak` (3 significant digits): below, at and past it.
pub fn sweep_rates(peak: f64) -> Vec<f64> {
    [0.1, 0.25, 0.5, 0.7, 0.85, 1.0, 1.15, 1.3]
        .iter()
        .map(|f| {
            let x = f * peak;
            let mag = 10f64.powi(x.max(1.0).log10().floor() as i32 - 2);
            ((x / mag).round() * mag).max(1.0)
        })
        .collect()
}

/// Runs a rate sweep: `step(rate)` measures every target once at each of
/// [`sweep_rates`]`(fastest)`, rising until a step where no target kept up
/// (`per_s` of each measurement); returns every measurement.
pub fn sweep<R>(
    fastest: f64,
    unit: &str,
    mut step: impl FnMut(f64) -> anyhow::Result<Vec<R>>,
    per_s: impl Fn(&R) -> Option<f64>,
) -> anyhow::Result<Vec<R>> {
    if fastest <= 0.0 {
        anyhow::bail!("the rate sweep needs a closed-loop rate, and no target produced one");
    }
    let mut out = Vec::new();
    for rate in sweep_rates(fastest) {
        eprintln!("sweep: {} {unit}/s offered", crate::summary::thousands(rate));
        let got = step(rate)?;
        let any = got.iter().any(|r| kept_up(rate, per_s(r)));
        out.extend(got);
        if !any {
            break;
        }
    }
    Ok(out)
}

/// Whether a sweep step was served: at least 97 % of the rate.
pub fn kept_up(rate: f64, per_s: Option<f64>) -> bool {
    per_s.is_some_and(|p| p >= 0.97 * rate)
}

/// What one measurement's figure was limited by.
#[derive(Clone, Copy, Debug)]
pub struct LimitInputs {
    /// CPUs of the machine.
    pub cpus: usize,
    /// Its CPU figures.
    pub cpu: Option<CpuFigures>,
    /// Threads the generator runs (its capacity in cores).
    pub generator_threads: usize,
    /// Cores the server may use.
    pub server_cores: usize,
    /// The server polls its rings without sleeping (always at 100 %).
    pub server_spins: bool,
    /// Open loop: the rate offered.
    pub offered: Option<f64>,
    /// Transactions per second achieved.
    pub achieved: Option<f64>,
}

/// Names what limited a figure: the open-loop schedule when it was met;
/// otherwise whichever of generator and server ran at ≥ 90 % of its cores,
/// or the whole machine at ≥ 95 %, or nothing saturated (the figure is
/// latency-bound: connections × window ÷ round-trip time).
pub fn limit(i: &LimitInputs) -> String {
    if let (Some(offered), Some(got)) = (i.offered, i.achieved) {
        if got >= 0.97 * offered {
            return "offered rate (open loop)".into();
        }
    }
    let Some(c) = i.cpu else {
        return "unknown (no CPU figures)".into();
    };
    let mut hit = Vec::new();
    if let Some(g) = c.generator_cores {
        if g >= 0.9 * i.generator_threads.max(1) as f64 {
            hit.push(format!("generator ({g:.2} of {} cores)", i.generator_threads));
        }
    }
    if let Some(s) = c.server_cores {
        if !i.server_spins && s >= 0.9 * i.server_cores.max(1) as f64 {
            hit.push(format!("server ({s:.2} of {} cores)", i.server_cores));
        }
    }
    let machine_full = c.cores_busy >= 0.95 * i.cpus.max(1) as f64;
    if i.server_spins && hit.is_empty() {
        // Its cores are at 100 % by construction: CPU cannot tell.
        return format!(
            "{}unknown (the server polls without sleeping)",
            if i.offered.is_some() { "short of the offered rate: " } else { "" }
        );
    }
    let short = if i.offered.is_some() { "short of the offered rate: " } else { "" };
    if !hit.is_empty() {
        return format!("{short}{}", hit.join(" and "));
    }
    if machine_full {
        let who = match (c.generator_cores, c.server_cores) {
            (Some(g), Some(s)) => format!(" (generator {g:.2}, server {s:.2}, rest softirq and others)"),
            _ => String::new(),
        };
        return format!("{short}all {} cores busy{who}", i.cpus);
    }
    format!("{short}no core saturated (latency-bound)")
}

/// The daemon's resident memory, KiB, from /proc/PID/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

impl Results {
    /// Reads a results file, refusing other schemas.
    pub fn read(path: &std::path::Path) -> anyhow::Result<Results> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        match v.get("schema").and_then(|s| s.as_str()) {
            Some(SCHEMA) => {}
            Some(other) => anyhow::bail!("{}: schema {other:?}, this bench reads {SCHEMA:?}", path.display()),
            None => anyhow::bail!("{}: no \"schema\" field: not a sluice-bench results file", path.display()),
        }
        serde_json::from_value(v).with_context(|| format!("{}: does not match {SCHEMA}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn m(phase: Phase, rate: Option<f64>, round: u32, target: &str, per_s: f64, cpu_us: f64) -> Measurement {
        Measurement {
            phase,
            rate,
            round,
            target: target.into(),
            ok: true,
            error: None,
            transactions: per_s as u64,
            per_s: Some(per_s),
            elapsed_s: 1.0,
            cpu: Some(CpuFigures {
                busy_s_per_m: cpu_us,
                user_s_per_m: cpu_us / 2.0,
                system_s_per_m: cpu_us / 4.0,
                softirq_s_per_m: cpu_us / 4.0,
                cores_busy: 1.0,
                generator_cores: Some(0.5),
                server_cores: Some(0.5),
                steal_cores: 0.0,
                server_us: Some(cpu_us / 2.0),
                generator_us: None,
            }),
            latency: Some(Latency { p50_us: 10, p90_us: 20, p99_us: 30, p999_us: 40, max_us: 50 }),
            server_rss_kib: None,
            lost: 0,
            mismatched: 0,
            limit: "x".into(),
            connections: None,
            memory_per_conn_b: None,
        }
    }

    #[test]
    fn medians_spread_and_ratios_per_phase() {
        let ms = vec![
            m(Phase::Closed, None, 1, "sluice", 100.0, 2.0),
            m(Phase::Closed, None, 1, "kernel", 50.0, 4.0),
            m(Phase::Closed, None, 2, "sluice", 120.0, 3.0),
            m(Phase::Closed, None, 2, "kernel", 40.0, 5.0),
            m(Phase::Closed, None, 3, "sluice", 110.0, 2.5),
            m(Phase::Closed, None, 3, "kernel", 45.0, 4.5),
            m(Phase::Open, Some(30.0), 1, "sluice", 30.0, 1.0),
            m(Phase::Open, Some(30.0), 1, "kernel", 30.0, 4.0),
        ];
        let s = summarize(&ms, &["kernel".into()]);
        assert_eq!(s.len(), 4);
        let sl = &s[0];
        assert_eq!((sl.phase, sl.target.as_str(), sl.rounds_ok), (Phase::Closed, "sluice", 3));
        let p = sl.per_s.unwrap();
        assert_eq!((p.median, p.min, p.max, p.n), (110.0, 100.0, 120.0, 3));
        assert!((p.relative_range() - 20.0 / 110.0).abs() < 1e-12);
        assert_eq!(sl.ratios[0].per_s, Some(110.0 / 45.0));
        assert_eq!(sl.ratios[0].cpu, Some(2.5 / 4.5));
        let open = s.iter().find(|x| x.phase == Phase::Open && x.target == "sluice").unwrap();
        assert_eq!(open.ratios[0].cpu, Some(0.25), "open loop compares with the open-loop baseline");
        assert_eq!(sl.cpu_split_us, Some([1.25, 0.625, 0.625]));
    }

    #[test]
    fn the_summary_names_the_limit_most_rounds_name_by_kind() {
        let mut a = m(Phase::Closed, None, 1, "sluice", 100.0, 2.0);
        a.limit = "all 2 cores busy (generator 0.9, server 1.0)".into();
        let mut b = a.clone();
        b.round = 2;
        b.limit = "generator (1.93 of 2 cores)".into();
        let mut c = a.clone();
        c.round = 3;
        c.limit = "generator (1.95 of 2 cores)".into();
        let s = summarize(&[a, b, c], &[]);
        assert_eq!(s[0].limit, "generator (1.93 of 2 cores)");
    }

    #[test]
    fn older_files_and_odd_numbers_still_read() {
        let v: Results = serde_json::from_str(r#"{"schema": "sluice-bench/results/v1", "scenario": "x"}"#).unwrap();
        assert_eq!((v.scenario.as_str(), v.measurements.len()), ("x", 0));
        let one: Measurement = serde_json::from_str(r#"{"target": "t", "cpu": {"busy_s_per_m": 1.0}}"#).unwrap();
        assert_eq!(one.cpu.unwrap().server_us, None);
        let s = Spread::of(&[f64::NAN, 2.0, f64::INFINITY, 4.0]).unwrap();
        assert_eq!((s.min, s.max, s.n), (2.0, 4.0, 2));
        assert!(Spread::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn failed_rounds_are_counted_not_averaged() {
        let mut bad = m(Phase::Closed, None, 2, "sluice", 1e9, 0.001);
        bad.ok = false;
        bad.error = Some("boom".into());
        let s = summarize(&[m(Phase::Closed, None, 1, "sluice", 100.0, 2.0), bad], &[]);
        assert_eq!((s[0].rounds_ok, s[0].rounds_failed), (1, 1));
        assert_eq!(s[0].per_s.unwrap().median, 100.0);
        assert_eq!(s[0].failures, vec!["round 2: boom".to_string()]);
    }

    #[test]
    fn knee_is_the_last_rate_served() {
        let mut ms = Vec::new();
        for (rate, got, p99) in [(100.0, 100.0, 30), (200.0, 199.0, 35), (400.0, 300.0, 900)] {
            let mut x = m(Phase::Sweep, Some(rate), 1, "kernel", got, 1.0);
            x.latency.as_mut().unwrap().p99_us = p99;
            ms.push(x);
        }
        for (rate, p99) in [(100.0, 30), (200.0, 31), (400.0, 400)] {
            let mut x = m(Phase::Sweep, Some(rate), 1, "sluice", rate, 1.0);
            x.latency.as_mut().unwrap().p99_us = p99;
            ms.push(x);
        }
        let k = knees(&summarize(&ms, &[]));
        assert_eq!(k[0], Knee { target: "kernel".into(), last_good_rate: Some(200.0), first_bad_rate: Some(400.0) });
        assert_eq!(k[1].first_bad_rate, Some(400.0), "p99 13× the lowest-rate p99 is past the knee");
        assert_eq!(k[1].last_good_rate, Some(200.0));
        // A bad lowest step (a cold start) does not hide the knee above it.
        let mut ms2 = ms.clone();
        ms2[0].per_s = Some(50.0);
        let k = knees(&summarize(&ms2, &[]));
        assert_eq!((k[0].last_good_rate, k[0].first_bad_rate), (Some(200.0), Some(400.0)));
    }

    #[test]
    fn limits_name_the_saturated_part() {
        let cpu = |g: f64, s: f64, busy: f64| {
            Some(CpuFigures { cores_busy: busy, generator_cores: Some(g), server_cores: Some(s), ..Default::default() })
        };
        let base = LimitInputs {
            cpus: 2,
            cpu: cpu(0.3, 0.3, 0.8),
            generator_threads: 1,
            server_cores: 1,
            server_spins: false,
            offered: None,
            achieved: Some(1.0),
        };
        assert_eq!(limit(&base), "no core saturated (latency-bound)");
        assert!(limit(&LimitInputs { cpu: cpu(0.95, 0.3, 1.4), ..base }).starts_with("generator (0.95 of 1"));
        assert!(limit(&LimitInputs { cpu: cpu(0.2, 0.97, 1.4), ..base }).starts_with("server (0.97 of 1"));
        assert!(
            limit(&LimitInputs { cpu: cpu(0.2, 0.97, 1.4), server_spins: true, ..base }).starts_with("unknown"),
            "a spinning server is always at 100 %: no claim"
        );
        assert!(limit(&LimitInputs { cpu: cpu(0.6, 0.6, 1.98), ..base }).starts_with("all 2 cores busy"));
        let open = LimitInputs { offered: Some(100.0), achieved: Some(98.0), ..base };
        assert_eq!(limit(&open), "offered rate (open loop)");
        let short = LimitInputs { offered: Some(100.0), achieved: Some(50.0), cpu: cpu(0.99, 0.1, 1.2), ..base };
        assert!(limit(&short).starts_with("short of the offered rate: generator"));
        assert!(limit(&LimitInputs { cpu: None, ..base }).starts_with("unknown"));
    }

    #[test]
    fn json_round_trip_and_schema_check() {
        let ms = vec![m(Phase::Closed, None, 1, "sluice", 100.0, 2.0)];
        let r = Results {
            schema: SCHEMA.into(),
            scenario: "tcp-rr".into(),
            label: "tcp-rr".into(),
            unit: "echo".into(),
            generator: "g".into(),
            started_unix_s: 1,
            machine: MachineInfo::here(None),
            commit: None,
            command_line: vec!["x".into()],
            options: serde_json::json!({"a": 1}),
            baselines: vec![],
            summary: summarize(&ms, &[]),
            measurements: ms,
            knees: vec![],
            detail: serde_json::Value::Null,
        };
        let dir = std::env::temp_dir().join(format!("sluice-results-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.json");
        std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
        let back = Results::read(&p).unwrap();
        assert_eq!(back.measurements, r.measurements);
        assert_eq!(back.summary, r.summary);
        std::fs::write(&p, r#"{"schema": "sluice-bench/results/v0"}"#).unwrap();
        assert!(Results::read(&p).unwrap_err().to_string().contains("v0"));
        std::fs::write(&p, r#"{"closed": []}"#).unwrap();
        assert!(Results::read(&p).unwrap_err().to_string().contains("no \"schema\""));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sweep_steps_round_and_rise() {
        let r = sweep_rates(123_456.0);
        assert_eq!(r[0], 12_300.0);
        assert_eq!(r[5], 123_000.0);
        assert!(r.windows(2).all(|w| w[0] < w[1]));
        assert!(sweep_rates(3.0).iter().all(|&x| x >= 1.0));
        assert!(kept_up(100.0, Some(97.0)) && !kept_up(100.0, Some(96.0)) && !kept_up(1.0, None));
    }

    #[test]
    fn a_sweep_rises_until_no_target_keeps_up() {
        // Targets serve at most 50: the steps at 10 and 25 are served, 50
        // is served by one (97 % rule), 70 by none, and nothing after.
        let got = sweep(100.0, "x", |rate| Ok(vec![rate.min(50.0), rate.min(40.0)]), |&p| Some(p)).unwrap();
        assert_eq!(got, vec![10.0, 10.0, 25.0, 25.0, 50.0, 40.0, 50.0, 40.0]);
        assert!(sweep(0.0, "x", |_| Ok(vec![1.0]), |&p| Some(p)).is_err(), "no closed-loop rate");
    }

    #[test]
    fn this_machine_is_described() {
        let m = MachineInfo::here(Some(0.1));
        assert!(m.cpus >= 1 && !m.kernel.is_empty());
        assert!(m.memory_mib.unwrap_or(0) > 0);
    }
}
