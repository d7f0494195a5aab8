//! `run udp-echo`: sluice, the kernel's UDP stack and a raw AF_XDP reflector
//! answering the same closed-loop load in one lab, interleaved over rounds.
use crate::cli::{Generator, OpenLoopRate, Target, UdpEchoArgs};
use crate::cpu::{clock_ticks, CpuSample, CpuUsage};
use crate::frame::FlowAddrs;
use crate::interrupt::{Interrupted, StopFlag};
use crate::kernel_echo::KernelEchoServer;
use crate::kernel_gen::{self, GenConfig};
use crate::reflect::Reflector;
use crate::report::{summarize, EchoReport, EchoSettings, Latency, Machine, OpenLoop, RoundResult, ServerStats};
use crate::sluiced::Sluiced;
use crate::summary::thousands;
use crate::xdp_gen::{XdpGen, XdpGenConfig};
use anyhow::{anyhow, bail, Context};
use sluice_engine::idle::IdlePolicy;
use sluice_lab::{Lab, LabConfig, Side};
use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

/// The echo service port.
pub const ECHO_PORT: u16 = 7;
/// First generator source port.
pub const BASE_PORT: u16 = 40000;
/// Batch of the kernel echo server's recvmmsg/sendmmsg.
const KERNEL_BATCH: usize = 64;
/// Extra time the server and generator threads may run beyond one measurement.
const SLACK: Duration = Duration::from_secs(60);

/// Everything a measurement needs.
struct Ctx<'a> {
    args: &'a UdpEchoArgs,
    lab: &'a Lab,
    stop: &'a StopFlag,
    hz: u64,
    addrs: FlowAddrs,
    sluiced: Option<PathBuf>,
}

impl Ctx<'_> {
    fn service(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.lab.addr(Side::Server), ECHO_PORT)
    }

    fn max_run(&self) -> Duration {
        self.args.warmup + self.args.duration + SLACK
    }
}

/// Runs the scenario; `command_line` goes into the report.
pub fn run(args: &UdpEchoArgs, stop: &StopFlag, command_line: Vec<String>) -> anyhow::Result<EchoReport> {
    args.validate().map_err(|e| anyhow!(e))?;
    let sluiced = if args.targets.iter().any(|t| t.sluice_poll().is_some()) {
        Some(crate::sluiced::locate(args.sluiced.as_deref(), true)?)
    } else {
        None
    };
    sluice_lab::require_root()?;
    let hz = clock_ticks();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);

    eprintln!("measuring background CPU load for 1 s ...");
    let b0 = CpuSample::now()?;
    stop.sleep(Duration::from_secs(1))?;
    let background = b0.until(&CpuSample::now()?, hz).cores_busy();

    let lab = Lab::up(LabConfig::unique("bench").with_queues(args.queues)).context("building the lab")?;
    eprintln!("lab {} ({} / {}), {} queues", lab.name(), lab.server_ns, lab.client_ns, args.queues);
    let addrs = FlowAddrs {
        client_mac: crate::netinfo::interface_mac(&lab.client_ns, lab.interface(Side::Client))?,
        server_mac: crate::netinfo::interface_mac(&lab.server_ns, lab.interface(Side::Server))?,
        client_ip: lab.addr(Side::Client),
        server: SocketAddrV4::new(lab.addr(Side::Server), ECHO_PORT),
        base_port: BASE_PORT,
        flows: args.flows,
    };
    let ctx = Ctx { args, lab: &lab, stop, hz, addrs, sluiced: sluiced.clone() };
    let rounds = if args.open_loop_only { Vec::new() } else { run_rounds(&ctx, None, args.rounds)? };
    let summary = summarize(&args.targets, &rounds);
    let sweep = if args.rate == OpenLoopRate::Sweep {
        let fastest = summary.iter().filter_map(|t| t.replies_per_s).fold(0.0, f64::max);
        crate::results::sweep(fastest, "requests", |rate| run_rounds(&ctx, Some(rate), 1), |r| r.replies_per_s)?
    } else {
        Vec::new()
    };
    let open_loop = match (args.rate, args.generator) {
        (OpenLoopRate::Skip | OpenLoopRate::Sweep, _) => None,
        (OpenLoopRate::Fixed(_), Generator::Kernel) => bail!("--rate N needs the afxdp generator (--rate none)"),
        (OpenLoopRate::Auto, Generator::Kernel) => {
            eprintln!("open loop skipped: the kernel generator runs closed loop only");
            None
        }
        (rate, Generator::Afxdp) => {
            let (rate, chosen) = match rate {
                OpenLoopRate::Fixed(r) => (Some(r), "--rate".to_string()),
                _ => {
                    let slowest = summary.iter().filter_map(|t| t.replies_per_s).fold(f64::INFINITY, f64::min);
                    let r = (slowest.is_finite() && slowest > 0.0).then(|| (slowest / 2.0).round().max(1.0));
                    (r, format!("half the slowest target's closed-loop median, {}", thousands(slowest)))
                }
            };
            match rate {
                None => {
                    eprintln!("open loop skipped: no target produced a closed-loop rate");
                    None
                }
                Some(rate) => {
                    eprintln!("open loop at {} requests/s ({chosen})", thousands(rate));
                    let rounds = run_rounds(&ctx, Some(rate), args.rounds)?;
                    let summary = summarize(&args.targets, &rounds);
                    Some(OpenLoop { rate, chosen, rounds, summary })
                }
            }
        }
    };
    let lab_name = lab.name().to_string();
    let (sns, cns) = (lab.server_ns.clone(), lab.client_ns.clone());
    lab.down().context("removing the lab")?;
    if sluice_lab::ns_exists(&sns) || sluice_lab::ns_exists(&cns) {
        bail!("lab {lab_name} was not removed completely ({sns}, {cns})");
    }
    Ok(EchoReport {
        command_line,
        lab: lab_name,
        settings: EchoSettings {
            queues: args.queues,
            rounds: args.rounds,
            duration_s: args.duration.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            size: args.size,
            window: args.window,
            flows: args.flows,
            generator: args.generator,
            gen_idle: args.gen_idle.to_string(),
            server_spin: args.server_spin.unwrap_or(crate::sluiced::DEFAULT_SPIN),
            server_spin_us: args.server_spin_us.unwrap_or(crate::sluiced::DEFAULT_SPIN_US),
            flow_owner: if args.hashed_owners { "hash" } else { "learned" }.into(),
            targets: args.targets.clone(),
            sluiced: sluiced.map(|p| p.display().to_string()),
        },
        machine: Machine {
            cpus,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string(),
            clock_ticks: hz,
            background_cores_busy: Some(background),
        },
        rounds,
        summary,
        open_loop,
        sweep,
    })
}

/// Every round of every target, closed loop (`rate` None) or open loop.
fn run_rounds(ctx: &Ctx<'_>, rate: Option<f64>, nrounds: u32) -> anyhow::Result<Vec<RoundResult>> {
    let (args, stop) = (ctx.args, ctx.stop);
    let mut rounds = Vec::new();
    let kind = if rate.is_some() { "open loop " } else { "" };
    let phase = match rate {
        Some(r) => format!("{}/s", thousands(r)),
        None => "closed loop".to_string(),
    };
    let progress = crate::progress::Progress::new(u64::from(nrounds) * args.targets.len() as u64, &phase);
    for round in 0..nrounds {
        for (i, t) in args.order(round).into_iter().enumerate() {
            stop.check()?;
            progress.start(format!("{kind}round {}/{}: {}", round + 1, nrounds, t.as_str()));
            let r = match measure(ctx, t, round + 1, i + 1, rate) {
                Ok(r) => r,
                Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Err(e),
                Err(e) => {
                    RoundResult { offered_per_s: rate, ..RoundResult::failed(round + 1, i + 1, t, format!("{e:#}")) }
                }
            };
            match (&r.error, r.replies_per_s) {
                (Some(e), _) => progress.line(format!("  {} round {} FAILED: {e}", t.as_str(), round + 1)),
                (None, Some(rate)) => progress.line(format!(
                    "  {} round {}: {:.0} replies/s, {} CPU µs/reply, {:.2} cores busy",
                    t.as_str(),
                    round + 1,
                    rate,
                    r.cpu_us_per_reply.map(|c| format!("{c:.3}")).unwrap_or_else(|| "-".into()),
                    r.cores_busy
                )),
                _ => {}
            }
            progress.step();
            rounds.push(r);
        }
    }
    Ok(rounds)
}

/// Server counters at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    rx: u64,
    tx: u64,
    drops: u64,
    handoff_out: u64,
    /// sluiced: times its cores went to sleep.
    sleeps: u64,
    /// sluiced's own lifetime handoff share.
    daemon_handoff_share: Option<f64>,
}

/// A server under test.
enum Server {
    Sluice(Sluiced),
    Kernel(KernelEchoServer),
    Reflect(Box<Reflector>),
}

impl Server {
    /// sluiced's PID (the others run inside the bench).
    fn daemon_pid(&self) -> Option<u32> {
        match self {
            Server::Sluice(d) => d.pid(),
            _ => None,
        }
    }

    fn start(ctx: &Ctx<'_>, t: Target) -> anyhow::Result<Server> {
        let service = ctx.service();
        Ok(match t {
            Target::Sluice | Target::SluiceInterrupt | Target::SluiceBusy => {
                let path = ctx.sluiced.as_ref().ok_or_else(|| anyhow!("no sluiced binary"))?;
                let tuning = crate::sluiced::Tuning {
                    poll: t.sluice_poll(),
                    spin: ctx.args.server_spin,
                    spin_us: ctx.args.server_spin_us,
                    hashed_owners: ctx.args.hashed_owners,
                    tcp: false,
                    http: false,
                    max_connections: None,
                };
                Server::Sluice(Sluiced::start(ctx.lab, path, service, tuning, ctx.stop)?)
            }
            Target::Kernel => {
                let threads = ctx.args.queues as usize;
                let s = Lab::run_in(&ctx.lab.server_ns, || KernelEchoServer::start(service, threads, KERNEL_BATCH))?
                    .context("starting the kernel echo server")?;
                Server::Kernel(s)
            }
            Target::Reflect => Server::Reflect(Box::new(Reflector::start(
                &ctx.lab.server_ns,
                ctx.lab.interface(Side::Server),
                ctx.args.queues,
                service,
                ctx.max_run(),
                // The same idle behaviour as sluiced's adaptive mode, so the two
                // differ only in what they do per frame.
                IdlePolicy::of_poll_mode(
                    sluice_engine::config::PollMode::Adaptive,
                    ctx.args.server_spin.unwrap_or(crate::sluiced::DEFAULT_SPIN),
                    ctx.args.server_spin_us.unwrap_or(crate::sluiced::DEFAULT_SPIN_US),
                ),
            )?)),
        })
    }

    fn counts(&self) -> anyhow::Result<Counts> {
        Ok(match self {
            Server::Sluice(d) => {
                let s = d.stats()?;
                let c = |k: &str| s.total.counters.get(k).copied().unwrap_or(0);
                Counts {
                    rx: c("rx_packets"),
                    tx: c("tx_packets"),
                    drops: s.total.drops.values().sum(),
                    handoff_out: c("handoff_out"),
                    sleeps: c("sleeps"),
                    daemon_handoff_share: Some(s.total.handoff_share),
                }
            }
            Server::Kernel(k) => {
                let s = k.stats();
                Counts {
                    rx: s.received_packets,
                    tx: s.sent_packets,
                    drops: s.send_errors,
                    handoff_out: 0,
                    sleeps: 0,
                    daemon_handoff_share: None,
                }
            }
            Server::Reflect(r) => {
                let c = r.counters();
                Counts {
                    rx: c.rx_packets,
                    tx: c.tx_packets,
                    drops: c.dropped,
                    handoff_out: 0,
                    sleeps: 0,
                    daemon_handoff_share: None,
                }
            }
        })
    }

    /// `Err` with the reason when the server stopped by itself.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self {
            Server::Sluice(d) => {
                if !d.running() {
                    bail!("sluiced exited during the run: {}", d.log_tail());
                }
            }
            Server::Reflect(r) => {
                if !r.running() {
                    bail!("a reflector thread stopped during the run");
                }
            }
            Server::Kernel(_) => {}
        }
        Ok(())
    }

    fn modes(&self) -> (Option<String>, Option<String>) {
        match self {
            Server::Sluice(d) => match d.status() {
                Ok(s) => (Some(s.socket_mode), Some(s.xdp_mode)),
                Err(_) => (None, None),
            },
            Server::Kernel(_) => (None, None),
            Server::Reflect(r) => (Some(r.socket_mode.to_string()), Some(r.xdp_mode.to_string())),
        }
    }

    /// Stops the server; returns problems worth reporting.
    fn stop(self) -> Vec<String> {
        match self {
            Server::Sluice(d) => match d.stop() {
                Ok(st) if st.success() => Vec::new(),
                Ok(st) => vec![format!("sluiced exited with {st}")],
                Err(e) => vec![format!("stopping sluiced: {e:#}")],
            },
            Server::Kernel(k) => k.stop().errors,
            Server::Reflect(r) => r.stop().1,
        }
    }
}

/// What the generator saw over the measured interval.
struct Load {
    replies: u64,
    rate_elapsed: Duration,
    sent: u64,
    lost: u64,
    mismatched: u64,
    late: u64,
    cpu: CpuUsage,
    latency: Option<Latency>,
    before: Counts,
    after: Counts,
    notes: Vec<String>,
    rss_kib: Option<u64>,
}

fn measure(ctx: &Ctx<'_>, t: Target, round: u32, position: usize, rate: Option<f64>) -> anyhow::Result<RoundResult> {
    let mut server = Server::start(ctx, t)?;
    let load = match ctx.args.generator {
        Generator::Afxdp => load_afxdp(ctx, &server, rate),
        Generator::Kernel => load_kernel(ctx, &server),
    };
    let alive = server.check_alive();
    let modes = server.modes();
    let stop_problems = server.stop();
    let load = load?;
    alive?;
    let mut r = RoundResult::failed(round, position, t, String::new());
    let d = Counts {
        rx: load.after.rx.saturating_sub(load.before.rx),
        tx: load.after.tx.saturating_sub(load.before.tx),
        drops: load.after.drops.saturating_sub(load.before.drops),
        handoff_out: load.after.handoff_out.saturating_sub(load.before.handoff_out),
        sleeps: load.after.sleeps.saturating_sub(load.before.sleeps),
        daemon_handoff_share: load.after.daemon_handoff_share,
    };
    let secs = load.rate_elapsed.as_secs_f64();
    r.replies = load.replies;
    r.replies_per_s = (secs > 0.0).then(|| load.replies as f64 / secs);
    r.elapsed_s = load.cpu.elapsed.as_secs_f64();
    r.cpu_busy_s = load.cpu.busy_s;
    r.cpu_steal_s = load.cpu.steal_s;
    r.cores_busy = load.cpu.cores_busy();
    r.cpu_us_per_reply = load.cpu.us_per(load.replies);
    r.sent = load.sent;
    r.lost = load.lost;
    r.mismatched = load.mismatched;
    r.late = load.late;
    r.latency = load.latency;
    r.offered_per_s = rate;
    r.server = Some(ServerStats {
        rx_packets: d.rx,
        tx_packets: d.tx,
        drops: d.drops,
        handoff_share: (t.sluice_poll().is_some() && d.rx > 0).then(|| d.handoff_out as f64 / d.rx as f64),
        daemon_handoff_share: d.daemon_handoff_share,
        socket_mode: modes.0,
        xdp_mode: modes.1,
    });
    r.notes = load.notes;
    if t.sluice_poll().is_some() && secs > 0.0 {
        r.notes.push(format!("sluiced cores slept {:.0} times/s", d.sleeps as f64 / secs));
    }
    r.notes.extend(stop_problems);
    r.cpu = crate::results::CpuFigures::of(&load.cpu, load.replies);
    r.server_rss_kib = load.rss_kib;
    r.limit = crate::results::limit(&crate::results::LimitInputs {
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        cpu: r.cpu,
        generator_threads: ctx.args.queues as usize,
        server_cores: ctx.args.queues as usize,
        server_spins: t == Target::SluiceBusy,
        offered: rate,
        achieved: r.replies_per_s,
    });
    if load.replies == 0 {
        r.error = Some(format!(
            "no replies (sent {}, lost {}, mismatched {}; server rx {} tx {} drops {})",
            load.sent, load.lost, load.mismatched, d.rx, d.tx, d.drops
        ));
    } else {
        r.ok = true;
        r.error = None;
    }
    Ok(r)
}

fn load_afxdp(ctx: &Ctx<'_>, server: &Server, rate: Option<f64>) -> anyhow::Result<Load> {
    let a = ctx.args;
    let cfg = XdpGenConfig {
        interface: ctx.lab.interface(Side::Client).to_string(),
        queues: a.queues,
        addrs: ctx.addrs,
        window: a.window,
        payload_len: a.size,
        pin: true,
        max_run: ctx.max_run(),
        idle: a.gen_idle,
        rate,
    };
    let gen = XdpGen::start(&ctx.lab.client_ns, cfg).context("starting the AF_XDP generator")?;
    ctx.stop.sleep(a.warmup)?;
    if !gen.running() {
        let fin = gen.stop();
        bail!("the generator stopped during the warm-up: {}", fin.errors.join("; "));
    }
    let before = server.counts()?;
    let c0 = gen.counters();
    gen.set_measuring(true);
    let cpu0 = CpuSample::now_with_daemon(server.daemon_pid())?;
    ctx.stop.sleep(a.duration)?;
    let cpu1 = CpuSample::now_with_daemon(server.daemon_pid())?;
    let rss_kib = server.daemon_pid().and_then(crate::results::rss_kib);
    let c1 = gen.counters();
    gen.set_measuring(false);
    let after = server.counts()?;
    let running = gen.running();
    let (socket_mode, xdp_mode) = (gen.socket_mode, gen.xdp_mode);
    let fin = gen.stop();
    if !running || !fin.errors.is_empty() {
        bail!("generator: {}", fin.errors.join("; "));
    }
    let cpu = cpu0.until(&cpu1, ctx.hz);
    let mut d = c1.since(&c0);
    let mut notes = vec![format!("generator: AF_XDP {socket_mode} mode, XDP {xdp_mode}")];
    if let Some(r) = rate {
        // Open loop re-sends nothing: what was sent in the interval and not
        // answered (give or take the requests in flight at its two ends) is lost.
        d.lost = d.sent.saturating_sub(d.replies + d.late);
        let secs = cpu.elapsed.as_secs_f64();
        let sent_rate = d.sent as f64 / secs.max(1e-9);
        if sent_rate < 0.99 * r {
            notes.push(format!(
                "SHORT: the generator sent {:.0} requests/s of the {:.0} offered (it could not keep up)",
                sent_rate, r
            ));
        }
        if let Some(l) = Latency::of(&fin.wake_late_us) {
            notes.push(format!(
                "generator woke late by p50 {} / p99 {} / max {} µs (part of every latency)",
                l.p50_us, l.p99_us, l.max_us
            ));
        }
    }
    if d.tx_full > 0 {
        notes.push(format!("generator passes that left requests waiting for the tx ring: {}", d.tx_full));
    }
    Ok(Load {
        replies: d.replies,
        rate_elapsed: cpu.elapsed,
        sent: d.sent,
        lost: d.lost,
        mismatched: d.mismatched,
        late: d.late,
        cpu,
        latency: Latency::of(&fin.latency_us),
        before,
        after,
        notes,
        rss_kib,
    })
}

/// The kernel generator's config: `window × queues` requests in flight
/// spread over the flows (at least one per flow), one thread per queue.
pub fn kernel_gen_config(args: &UdpEchoArgs, addrs: &FlowAddrs, duration: Duration) -> GenConfig {
    let in_flight = (args.window * args.queues) as usize;
    GenConfig {
        target: addrs.server,
        source: addrs.client_ip,
        flows: args.flows,
        window: (in_flight / usize::from(args.flows)).max(1),
        payload_len: args.size,
        duration,
        threads: args.queues as usize,
    }
}

fn load_kernel(ctx: &Ctx<'_>, server: &Server) -> anyhow::Result<Load> {
    let a = ctx.args;
    let ns = &ctx.lab.client_ns;
    let warm = kernel_gen_config(a, &ctx.addrs, a.warmup);
    Lab::run_in(ns, || kernel_gen::run(&warm))?.context("kernel generator warm-up")?;
    ctx.stop.check()?;
    let cfg = kernel_gen_config(a, &ctx.addrs, a.duration);
    let before = server.counts()?;
    let cpu0 = CpuSample::now_with_daemon(server.daemon_pid())?;
    let rep = Lab::run_in(ns, || kernel_gen::run(&cfg))?.context("kernel generator")?;
    let cpu1 = CpuSample::now_with_daemon(server.daemon_pid())?;
    let rss_kib = server.daemon_pid().and_then(crate::results::rss_kib);
    let after = server.counts()?;
    ctx.stop.check()?;
    let mut notes = vec![format!(
        "generator: kernel sockets, {} flows × window {}, {} threads",
        cfg.flows, cfg.window, rep.threads
    )];
    if rep.send_errors + rep.recv_errors > 0 {
        notes.push(format!("generator send errors {}, receive errors {}", rep.send_errors, rep.recv_errors));
    }
    Ok(Load {
        replies: rep.answered(),
        rate_elapsed: rep.elapsed,
        sent: rep.sent,
        lost: rep.lost,
        mismatched: rep.mismatched,
        late: rep.late,
        cpu: cpu0.until(&cpu1, ctx.hz),
        latency: Latency::of(&rep.latency_us),
        before,
        after,
        notes,
        rss_kib,
    })
}

/// The published form of a `run udp-echo`.
pub fn to_results(r: &EchoReport, args: &UdpEchoArgs, started_unix_s: u64) -> crate::results::Results {
    use crate::results::{Measurement, Phase, Results};
    let row = |phase: Phase, x: &RoundResult| Measurement {
        phase,
        rate: x.offered_per_s,
        round: x.round,
        target: x.target.as_str().to_string(),
        ok: x.ok,
        error: x.error.clone(),
        transactions: x.replies,
        per_s: x.replies_per_s,
        elapsed_s: x.elapsed_s,
        cpu: x.cpu,
        latency: x.latency,
        server_rss_kib: x.server_rss_kib,
        lost: x.lost,
        mismatched: x.mismatched,
        limit: x.limit.clone(),
        connections: None,
        memory_per_conn_b: None,
    };
    let mut measurements: Vec<Measurement> = r.rounds.iter().map(|x| row(Phase::Closed, x)).collect();
    if let Some(ol) = &r.open_loop {
        measurements.extend(ol.rounds.iter().map(|x| row(Phase::Open, x)));
    }
    measurements.extend(r.sweep.iter().map(|x| row(Phase::Sweep, x)));
    let baselines: Vec<String> = [Target::Kernel, Target::Reflect]
        .iter()
        .filter(|t| args.targets.contains(t))
        .map(|t| t.as_str().into())
        .collect();
    let mut options = serde_json::to_value(&r.settings).unwrap_or_default();
    if let Some(o) = options.as_object_mut() {
        o.insert("rate".into(), serde_json::Value::String(args.rate.to_string()));
        o.insert("open_loop_only".into(), serde_json::Value::Bool(args.open_loop_only));
    }
    let generator = match args.generator {
        Generator::Afxdp => {
            format!("AF_XDP frames, one thread per queue ({} queues, idle {})", args.queues, args.gen_idle)
        }
        Generator::Kernel => format!("kernel UDP sockets, recvmmsg/sendmmsg, {} threads", args.queues),
    };
    Results {
        schema: crate::results::SCHEMA.into(),
        scenario: "udp-echo".into(),
        label: args.label.clone().unwrap_or_else(|| "udp-echo".into()),
        unit: "reply".into(),
        generator,
        started_unix_s,
        machine: crate::results::MachineInfo::here(r.machine.background_cores_busy),
        commit: crate::results::commit(),
        command_line: r.command_line.clone(),
        options,
        knees: crate::results::knees(&crate::results::summarize(&measurements, &baselines)),
        summary: crate::results::summarize(&measurements, &baselines),
        baselines,
        measurements,
        detail: serde_json::to_value(r).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd, Scenario};
    use clap::Parser;
    use std::net::Ipv4Addr;

    #[test]
    fn kernel_generator_keeps_the_same_number_in_flight() {
        let Cmd::Run(Scenario::UdpEcho(a)) = Cli::try_parse_from(["sluice-bench", "run", "udp-echo"]).unwrap().command
        else {
            panic!()
        };
        let addrs = FlowAddrs {
            client_mac: [0; 6],
            server_mac: [0; 6],
            client_ip: Ipv4Addr::new(198, 18, 0, 1),
            server: SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7),
            base_port: BASE_PORT,
            flows: 64,
        };
        let g = kernel_gen_config(&a, &addrs, Duration::from_secs(1));
        assert_eq!(usize::from(g.flows) * g.window, 128, "64 × 2 = window 64 × 2 queues");
        assert_eq!(g.threads, 2);
        assert!(g.validate().is_ok());
    }
}
