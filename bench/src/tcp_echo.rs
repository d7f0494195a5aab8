//! `run tcp-echo`: sluice's TCP and the kernel's answering the same
//! request/response load from kernel-socket clients in one lab, interleaved
//! over rounds, closed loop and then open loop at one fixed rate.
//!
//! CPU is the whole machine's (server, generator, softirqs) over the
//! measured interval: the generator is the same for every target, so the
//! difference between targets is the server's. Closed loop, CPU per
//! transaction is mostly the inverse of the rate; at an equal fixed rate
//! (open loop) it is what each server costs.
use crate::cli::{OpenLoopRate, TcpEchoArgs, TcpGenerator, TcpTarget};
use crate::cpu::{clock_ticks, CpuSample};
use crate::interrupt::{Interrupted, StopFlag};
use crate::kernel_tcp_echo::KernelTcpEcho;
use crate::report::Latency;
use crate::sluiced::{Sluiced, Tuning};
use crate::summary::{median, ratio_of, thousands};
use crate::tcp_gen::{self, TcpGenConfig};
use crate::tcp_xdp_gen::{TcpXdpGen, TcpXdpGenConfig};
use anyhow::{anyhow, bail, Context};
use serde::Serialize;
use sluice_lab::{Lab, LabConfig, Side};
use std::fmt::Write as _;
use std::net::SocketAddrV4;

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct TcpRound {
    /// Round number, from 1.
    pub round: u32,
    /// The server.
    pub target: TcpTarget,
    /// Open loop rate, or `None` for closed loop.
    pub rate: Option<f64>,
    /// Intact echoes per second.
    pub per_s: Option<f64>,
    /// Machine CPU µs per echo.
    pub cpu_us: Option<f64>,
    /// Cores busy on average.
    pub cores_busy: f64,
    /// Latency of the intact echoes.
    pub latency: Option<Latency>,
    /// Echoes that differed, failed connections, open-loop deferrals.
    pub mismatched: u64,
    /// Connections that failed or were closed by the server during the interval.
    pub errors: u64,
    /// Open loop: requests that waited for a connection with room.
    pub deferred: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Good echoes in the measured interval.
    pub transactions: u64,
    /// Length of the measured interval, seconds (wrk: its own -d).
    pub elapsed_s: f64,
    /// CPU per echo, split by kind and by who spent it.
    pub cpu: Option<crate::results::CpuFigures>,
    /// sluiced's resident memory at the end, KiB.
    pub server_rss_kib: Option<u64>,
    /// What limited the figure.
    pub limit: String,
}

/// Medians of a target over its rounds, and its ratio to the kernel.
#[derive(Clone, Debug, Serialize)]
pub struct TcpSummary {
    /// The server.
    pub target: TcpTarget,
    /// Median echoes/s.
    pub per_s: Option<f64>,
    /// Median CPU µs per echo.
    pub cpu_us: Option<f64>,
    /// Median p50 latency, µs.
    pub p50_us: Option<f64>,
    /// Median p99 latency, µs.
    pub p99_us: Option<f64>,
    /// per_s / the kernel's.
    pub per_s_vs_kernel: Option<f64>,
    /// cpu_us / the kernel's.
    pub cpu_vs_kernel: Option<f64>,
}

/// The scenario's result.
#[derive(Clone, Debug, Serialize)]
pub struct TcpEchoReport {
    /// How it was started.
    pub command_line: Vec<String>,
    /// rr or crr.
    pub mode: String,
    /// tcp-rr, tcp-crr, http or http-close.
    pub scenario: String,
    /// The load generator.
    pub generator: TcpGenerator,
    /// Connections, window, size, queues.
    pub conns: usize,
    /// Requests in flight per connection.
    pub window: usize,
    /// Request size.
    pub size: usize,
    /// Queues (and server cores).
    pub queues: u32,
    /// Seconds per measurement.
    pub duration_s: f64,
    /// Closed loop rounds.
    pub closed: Vec<TcpRound>,
    /// Closed loop summary.
    pub closed_summary: Vec<TcpSummary>,
    /// The open loop rate and how it was chosen.
    pub open_rate: Option<(f64, String)>,
    /// Open loop rounds.
    pub open: Vec<TcpRound>,
    /// Open loop summary.
    pub open_summary: Vec<TcpSummary>,
    /// Rate sweep steps (one round per rate and target).
    pub sweep: Vec<TcpRound>,
    /// Kernel version.
    pub kernel: String,
    /// CPUs.
    pub cpus: usize,
}

enum Server {
    Sluice(Sluiced),
    Kernel(KernelTcpEcho),
    Nginx(crate::nginx::Nginx),
}

/// Runs the scenario.
pub fn run(args: &TcpEchoArgs, stop: &StopFlag, command_line: Vec<String>) -> anyhow::Result<TcpEchoReport> {
    args.validate().map_err(|e| anyhow!(e))?;
    let sluiced = crate::sluiced::locate(args.sluiced.as_deref(), args.targets.iter().any(|t| t.poll().is_some()))?;
    sluice_lab::require_root()?;
    let lab = Lab::up(LabConfig::unique("tcpbench").with_queues(args.queues)).context("building the lab")?;
    eprintln!("lab {} ({} / {}), {} queues", lab.name(), lab.server_ns, lab.client_ns, args.queues);
    // A generator making a connection per request needs its TIME-WAIT ports back.
    let _ = lab.command_in(Side::Client, "sysctl").args(["-qw", "net.ipv4.tcp_tw_reuse=1"]).status();
    let _ = lab.command_in(Side::Client, "sysctl").args(["-qw", "net.ipv4.ip_local_port_range=10000 65000"]).status();
    if args.generator == TcpGenerator::Afxdp {
        // The generator reads the server's frames as they are on the wire:
        // a kernel server must put full checksums in them (as the lab does
        // for the client side when sluice is the server).
        let out = lab
            .command_in(Side::Server, "ethtool")
            .args(["-K", lab.interface(Side::Server), "tx", "off"])
            .output()
            .context("running ethtool")?;
        if !out.status.success() {
            bail!("ethtool -K {} tx off: {}", lab.interface(Side::Server), String::from_utf8_lossy(&out.stderr));
        }
    }
    let service = SocketAddrV4::new(lab.addr(Side::Server), args.port());
    let gen = |rate| TcpGenConfig {
        target: service,
        source: lab.addr(Side::Client),
        conns: args.conns,
        window: args.window,
        size: args.size,
        duration: args.duration,
        threads: args.threads,
        mode: args.mode.into(),
        rate,
    };
    let rounds = |rate: Option<f64>, nrounds: u32| -> anyhow::Result<Vec<TcpRound>> {
        let mut out = Vec::new();
        let phase = match rate {
            Some(r) => format!("{}/s", thousands(r)),
            None => "closed loop".to_string(),
        };
        let progress = crate::progress::Progress::new(u64::from(nrounds) * args.targets.len() as u64, &phase);
        for round in 1..=nrounds {
            for t in args.order(round) {
                stop.check()?;
                progress.start(format!(
                    "{}round {round}/{}: {}",
                    if rate.is_some() { "open loop " } else { "" },
                    nrounds,
                    t.as_str()
                ));
                let r = match measure(args, &lab, &sluiced, t, gen(rate), round, stop) {
                    Ok(r) => r,
                    Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Err(e),
                    Err(e) => TcpRound {
                        round,
                        target: t,
                        rate,
                        per_s: None,
                        cpu_us: None,
                        cores_busy: 0.0,
                        latency: None,
                        mismatched: 0,
                        errors: 0,
                        deferred: 0,
                        error: Some(format!("{e:#}")),
                        transactions: 0,
                        elapsed_s: 0.0,
                        cpu: None,
                        server_rss_kib: None,
                        limit: "-".into(),
                    },
                };
                match (&r.error, r.per_s) {
                    (Some(e), _) => progress.line(format!("  {} round {round} FAILED: {e}", t.as_str())),
                    (None, Some(x)) => progress.line(format!(
                        "  {} round {round}: {} {}/s, {} CPU µs each, p99 {} µs",
                        t.as_str(),
                        thousands(x),
                        if args.http { "requests" } else { "echoes" },
                        r.cpu_us.map(|c| format!("{c:.2}")).unwrap_or_else(|| "-".into()),
                        r.latency.map(|l| l.p99_us.to_string()).unwrap_or_else(|| "-".into())
                    )),
                    _ => {}
                }
                progress.step();
                out.push(r);
            }
        }
        Ok(out)
    };
    let closed = if args.open_loop_only { Vec::new() } else { rounds(None, args.rounds)? };
    let closed_summary = summarize(&args.targets, &closed);
    let sweep = if args.rate == OpenLoopRate::Sweep {
        let fastest = closed_summary.iter().filter_map(|s| s.per_s).fold(0.0, f64::max);
        let unit = if args.http { "requests" } else { "echoes" };
        crate::results::sweep(fastest, unit, |rate| rounds(Some(rate), 1), |r| r.per_s)?
    } else {
        Vec::new()
    };
    let open_rate = match args.rate {
        OpenLoopRate::Skip | OpenLoopRate::Sweep => None,
        OpenLoopRate::Fixed(r) => Some((r, "--rate".to_string())),
        OpenLoopRate::Auto => {
            let slowest = closed_summary.iter().filter_map(|s| s.per_s).fold(f64::INFINITY, f64::min);
            (slowest.is_finite() && slowest > 0.0).then(|| {
                ((slowest / 2.0).round(), format!("half the slowest closed-loop median, {}", thousands(slowest)))
            })
        }
    };
    let open = match &open_rate {
        Some((r, _)) => rounds(Some(*r), args.rounds)?,
        None => Vec::new(),
    };
    let open_summary = summarize(&args.targets, &open);
    lab.down().context("removing the lab")?;
    Ok(TcpEchoReport {
        command_line,
        mode: args.mode.as_str().into(),
        scenario: args.scenario(),
        generator: args.generator,
        conns: args.conns,
        window: args.window,
        size: args.size,
        queues: args.queues,
        duration_s: args.duration.as_secs_f64(),
        closed,
        closed_summary,
        open_rate,
        open,
        open_summary,
        sweep,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}

fn measure(
    args: &TcpEchoArgs,
    lab: &Lab,
    sluiced: &std::path::Path,
    t: TcpTarget,
    cfg: TcpGenConfig,
    round: u32,
    stop: &StopFlag,
) -> anyhow::Result<TcpRound> {
    let service = cfg.target;
    let server = match (t.poll(), t) {
        (Some(poll), _) => {
            let tuning = Tuning { poll: Some(poll), tcp: true, http: args.http, ..Tuning::default() };
            Server::Sluice(Sluiced::start(lab, sluiced, service, tuning, stop)?)
        }
        (None, TcpTarget::Nginx) => {
            Server::Nginx(crate::nginx::Nginx::start(&lab.server_ns, service, args.queues, stop)?)
        }
        (None, _) => Server::Kernel(
            Lab::run_in(&lab.server_ns, || KernelTcpEcho::start(service, args.queues as usize))?
                .context("starting the kernel TCP echo server")?,
        ),
    };
    let hz = clock_ticks();
    let daemons: Vec<u32> = match &server {
        Server::Sluice(d) => d.pid().into_iter().collect(),
        Server::Nginx(n) => n.pids(),
        Server::Kernel(_) => Vec::new(),
    };
    let rss_pid = match &server {
        Server::Sluice(d) => d.pid(),
        _ => None,
    };
    let sample = || CpuSample::now_with_daemons(&daemons);
    // What the generator reports: (echoes, mismatched, failed connections,
    // deferred, latency, seconds).
    // wrk measures its own rate over its own -d seconds (whole seconds); the
    // CPU interval around it also holds its start and teardown.
    let mut wrk_rate: Option<(f64, f64)> = None;
    let (ok, mismatched, errors, deferred, latency, c0, c1) = match args.generator {
        TcpGenerator::Wrk => {
            let threads = args.threads.min(args.conns);
            if !args.warmup.is_zero() {
                crate::wrk::run(&lab.client_ns, service, threads, args.conns, args.warmup, args.close)
                    .context("wrk warm-up")?;
            }
            stop.check()?;
            let c0 = sample()?;
            let w = crate::wrk::run(&lab.client_ns, service, threads, args.conns, args.duration, args.close)?;
            let c1 = sample()?;
            wrk_rate = Some((w.per_s, crate::wrk::seconds(args.duration) as f64));
            let errors: u64 = w.errors.iter().sum();
            (w.requests, w.non_2xx, errors, 0, None, c0, c1)
        }
        TcpGenerator::Kernel => {
            let warm = TcpGenConfig { duration: args.warmup, ..cfg.clone() };
            if !args.warmup.is_zero() {
                Lab::run_in(&lab.client_ns, || tcp_gen::run(&warm))?.context("warm-up")?;
            }
            let c0 = sample()?;
            let rep = Lab::run_in(&lab.client_ns, || tcp_gen::run(&cfg))?.context("load generator")?;
            let c1 = sample()?;
            (rep.ok, rep.mismatched, rep.errors, rep.deferred, Latency::of(&rep.latency_us), c0, c1)
        }
        TcpGenerator::Afxdp => {
            let gcfg = TcpXdpGenConfig {
                interface: lab.interface(Side::Client).to_string(),
                queues: args.queues,
                client_ip: cfg.source,
                more_ips: Vec::new(),
                server: cfg.target,
                server_mac: crate::netinfo::interface_mac(&lab.server_ns, lab.interface(Side::Server))?,
                client_mac: crate::netinfo::interface_mac(&lab.client_ns, lab.interface(Side::Client))?,
                conns: cfg.conns as u32,
                base_port: 40000,
                size: cfg.size as u32,
                window: cfg.window as u8,
                poll: sluice_engine::config::PollMode::Adaptive,
                rate: cfg.rate,
                http: args.http,
                crr: args.mode == crate::cli::TcpModeArg::Crr,
                once: false,
            };
            let conns = u64::from(gcfg.conns);
            let crr = gcfg.crr;
            let gen = TcpXdpGen::start(&lab.client_ns, gcfg)?;
            stop.sleep(args.warmup)?;
            // Every connection is open before anything is measured (the
            // gauges are published every 100 ms; crr connections come and go).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !crr && gen.connections() < conns && std::time::Instant::now() < deadline {
                stop.sleep(std::time::Duration::from_millis(50))?;
            }
            let open = gen.connections();
            if !crr && open < conns {
                let t = gen.totals();
                bail!(
                    "the generator has {open} of {conns} connections open ({} opens refused, {} failed, {} closed by the server)",
                    gen.connect_failures(),
                    t.failed,
                    t.ended
                );
            }
            gen.take_max_us();
            let (t0, c0) = (gen.totals(), sample()?);
            stop.sleep(args.duration)?;
            let (t1, c1) = (gen.totals(), sample()?);
            let max_us = gen.take_max_us();
            gen.stop();
            let d = t1.since(&t0);
            let lat = d.quantile_us(0.5).map(|p50| Latency {
                p50_us: p50,
                p90_us: d.quantile_us(0.9).unwrap_or(p50),
                p99_us: d.quantile_us(0.99).unwrap_or(p50),
                p999_us: d.quantile_us(0.999).unwrap_or(p50),
                max_us: max_us.max(d.hist.last().map_or(p50, |h| h.0)),
            });
            (d.ok, d.mismatched, d.ended + d.failed, d.deferred, lat, c0, c1)
        }
    };
    let rss_kib = rss_pid.and_then(crate::results::rss_kib);
    let problems = match server {
        Server::Sluice(d) => match d.stop() {
            Ok(st) if st.success() => Vec::new(),
            Ok(st) => vec![format!("sluiced exited with {st}")],
            Err(e) => vec![format!("{e:#}")],
        },
        Server::Kernel(k) => k.stop(),
        Server::Nginx(n) => n.stop(),
    };
    let cpu = c0.until(&c1, hz);
    let secs = cpu.elapsed.as_secs_f64().max(1e-9);
    let error = if !problems.is_empty() {
        Some(problems.join("; "))
    } else if mismatched > 0 && args.http {
        Some(format!("{mismatched} answers were not 2xx"))
    } else if mismatched > 0 {
        Some(format!("{mismatched} echoes differed from their requests"))
    } else if ok == 0 {
        Some("no echo came back".into())
    } else {
        None
    };
    let (per_s, elapsed_s) = match wrk_rate {
        Some((r, d)) => ((ok > 0).then_some(r), d),
        None => ((ok > 0).then_some(ok as f64 / secs), secs),
    };
    let figures = crate::results::CpuFigures::of(&cpu, ok);
    let generator_threads = match args.generator {
        TcpGenerator::Afxdp => args.queues as usize,
        TcpGenerator::Kernel | TcpGenerator::Wrk => args.threads.min(args.conns),
    };
    let limit = crate::results::limit(&crate::results::LimitInputs {
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpu: figures,
        generator_threads,
        server_cores: args.queues as usize,
        server_spins: t == TcpTarget::SluiceBusy,
        offered: cfg.rate,
        achieved: per_s,
    });
    // Open loop: requests that waited past their time are named where the
    // figure is (their latency counts from their time all the same).
    let limit = if deferred > 0 && cfg.rate.is_some() {
        format!(
            "{limit}; {deferred} requests went out late (more than {} µs past their time: window full or generator behind)",
            sluice_engine::services::rr_client::LATE_US
        )
    } else {
        limit
    };
    Ok(TcpRound {
        round,
        target: t,
        rate: cfg.rate,
        per_s,
        cpu_us: cpu.us_per(ok),
        cores_busy: cpu.cores_busy(),
        latency,
        mismatched,
        errors,
        deferred,
        error,
        transactions: ok,
        elapsed_s,
        cpu: figures,
        server_rss_kib: rss_kib,
        limit,
    })
}

fn summarize(targets: &[TcpTarget], rounds: &[TcpRound]) -> Vec<TcpSummary> {
    let med = |t: TcpTarget, f: &dyn Fn(&TcpRound) -> Option<f64>| {
        let v: Vec<f64> = rounds.iter().filter(|r| r.target == t && r.error.is_none()).filter_map(f).collect();
        median(&v)
    };
    let mut out: Vec<TcpSummary> = targets
        .iter()
        .map(|&t| TcpSummary {
            target: t,
            per_s: med(t, &|r| r.per_s),
            cpu_us: med(t, &|r| r.cpu_us),
            p50_us: med(t, &|r| r.latency.map(|l| l.p50_us as f64)),
            p99_us: med(t, &|r| r.latency.map(|l| l.p99_us as f64)),
            per_s_vs_kernel: None,
            cpu_vs_kernel: None,
        })
        .collect();
    if let Some(k) = out.iter().find(|s| matches!(s.target, TcpTarget::Kernel | TcpTarget::Nginx)).cloned() {
        for s in &mut out {
            s.per_s_vs_kernel = ratio_of(s.per_s, k.per_s);
            s.cpu_vs_kernel = ratio_of(s.cpu_us, k.cpu_us);
        }
    }
    out
}

/// The published form of a `run tcp-rr` / `tcp-crr`.
pub fn to_results(r: &TcpEchoReport, args: &TcpEchoArgs, started_unix_s: u64) -> crate::results::Results {
    use crate::results::{Measurement, Phase, Results};
    let row = |phase: Phase, x: &TcpRound| Measurement {
        phase,
        rate: x.rate,
        round: x.round,
        target: x.target.as_str().to_string(),
        ok: x.error.is_none(),
        error: x.error.clone(),
        transactions: x.transactions,
        per_s: x.per_s,
        elapsed_s: x.elapsed_s,
        cpu: x.cpu,
        latency: x.latency,
        server_rss_kib: x.server_rss_kib,
        lost: x.errors,
        mismatched: x.mismatched,
        limit: x.limit.clone(),
        connections: None,
        memory_per_conn_b: None,
    };
    let mut measurements: Vec<Measurement> = r.closed.iter().map(|x| row(Phase::Closed, x)).collect();
    measurements.extend(r.open.iter().map(|x| row(Phase::Open, x)));
    measurements.extend(r.sweep.iter().map(|x| row(Phase::Sweep, x)));
    let baselines: Vec<String> = args
        .targets
        .iter()
        .filter(|t| matches!(t, TcpTarget::Kernel | TcpTarget::Nginx))
        .map(|t| t.as_str().to_string())
        .collect();
    let options = serde_json::json!({
        "mode": args.mode.as_str(),
        "generator": args.generator.as_str(),
        "queues": args.queues,
        "rounds": args.rounds,
        "duration_s": args.duration.as_secs_f64(),
        "warmup_s": args.warmup.as_secs_f64(),
        "connections": args.conns,
        "window": args.window,
        "size": args.size,
        "threads": args.threads,
        "targets": args.targets,
        "rate": args.rate.to_string(),
        "open_loop_only": args.open_loop_only,
        "http": args.http,
        "close": args.close,
        "server_veth_tx_checksum_offload": args.generator != TcpGenerator::Afxdp,
        "sluiced": args.sluiced.as_ref().map(|p| p.display().to_string()),
    });
    let generator = match args.generator {
        TcpGenerator::Afxdp => format!(
            "sluice's own TCP over AF_XDP on the client veth, {} cores, {} connections × {} in flight",
            args.queues, args.conns, args.window
        ),
        TcpGenerator::Kernel => format!(
            "kernel TCP sockets with epoll, {} threads, {} connections × {} in flight",
            args.threads.min(args.conns),
            args.conns,
            args.window
        ),
        TcpGenerator::Wrk => format!(
            "wrk (kernel sockets, closed loop), {} threads, {} connections{}",
            args.threads.min(args.conns),
            args.conns,
            if args.close { ", Connection: close on every request" } else { ", keep-alive" }
        ),
    };
    let summary = crate::results::summarize(&measurements, &baselines);
    Results {
        schema: crate::results::SCHEMA.into(),
        scenario: args.scenario(),
        label: args.label.clone().unwrap_or_else(|| args.scenario()),
        unit: match (args.http, args.mode) {
            (true, _) => "request".into(),
            (false, crate::cli::TcpModeArg::Rr) => "echo".into(),
            (false, crate::cli::TcpModeArg::Crr) => "connection".into(),
        },
        generator,
        started_unix_s,
        machine: crate::results::MachineInfo::here(None),
        commit: crate::results::commit(),
        command_line: r.command_line.clone(),
        options,
        knees: crate::results::knees(&summary),
        summary,
        baselines,
        measurements,
        detail: serde_json::to_value(r).unwrap_or_default(),
    }
}

/// The text report.
pub fn render(r: &TcpEchoReport) -> String {
    let mut s = String::new();
    let http = r.scenario.starts_with("http");
    let (unit, base) = if http { ("requests/s", "nginx") } else { ("echoes/s", "kernel") };
    let per = if http { "CPU µs/req" } else { "CPU µs/echo" };
    let _ = writeln!(
        s,
        "{} ({} generator): {} connections x {} in flight, {} queues, {} s per measurement (kernel {}, {} CPUs)",
        r.scenario,
        r.generator.as_str(),
        r.conns,
        r.window,
        r.queues,
        r.duration_s,
        r.kernel,
        r.cpus
    );
    let table = |s: &mut String, title: &str, sum: &[TcpSummary]| {
        let _ = writeln!(s, "\n{title}");
        let _ = writeln!(
            s,
            "{:<18} {:>12} {:>10} {:>12} {:>10} {:>9} {:>9}",
            "target",
            unit,
            format!("vs {base}"),
            per,
            format!("vs {base}"),
            "p50 µs",
            "p99 µs"
        );
        let f = |x: Option<f64>, d: usize| x.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "-".into());
        for t in sum {
            let _ = writeln!(
                s,
                "{:<18} {:>12} {:>10} {:>12} {:>10} {:>9} {:>9}",
                t.target.as_str(),
                t.per_s.map(thousands).unwrap_or_else(|| "-".into()),
                f(t.per_s_vs_kernel, 2),
                f(t.cpu_us, 2),
                f(t.cpu_vs_kernel, 2),
                f(t.p50_us, 0),
                f(t.p99_us, 0)
            );
        }
    };
    if !r.closed.is_empty() {
        table(&mut s, "closed loop (medians over rounds)", &r.closed_summary);
    }
    if let Some((rate, how)) = &r.open_rate {
        table(&mut s, &format!("open loop at {}/s ({how})", thousands(*rate)), &r.open_summary);
    }
    let failed: Vec<&TcpRound> = r.closed.iter().chain(&r.open).filter(|x| x.error.is_some()).collect();
    for f in failed {
        let _ = writeln!(s, "round {} {} failed: {}", f.round, f.target.as_str(), f.error.as_deref().unwrap_or(""));
    }
    s
}
