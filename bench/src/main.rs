//! sluice-bench: veth labs, load generators, baselines and reports.
#![forbid(unsafe_code)]

use anyhow::{anyhow, Context};
use clap::Parser;
use sluice_bench::cli::{
    Cli, Cmd, LabCmd, LoadCmd, LoadTcpArgs, LoadUdpArgs, ReportArgs, Scenario, TcpEchoArgs, TcpModeArg, TcpScenario,
};
use sluice_bench::interrupt::StopFlag;
use sluice_bench::kernel_gen::{self, GenConfig};
use sluice_bench::report::{self, Latency, LoadReport};
use sluice_bench::results;
use sluice_lab::{Lab, LabConfig, Side};
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stop = match StopFlag::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice-bench: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command_line: Vec<String> = std::env::args().collect();
    match run(cli, &stop, command_line) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, stop: &StopFlag, command_line: Vec<String>) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Lab(LabCmd::Up { name, queues }) => lab_up(&name, queues),
        Cmd::Lab(LabCmd::Down { name }) => {
            Lab::attach(&name)?.down()?;
            println!("lab {name} removed");
            Ok(())
        }
        Cmd::Lab(LabCmd::Status { name }) => lab_status(name.as_deref()),
        Cmd::Load(LoadCmd::Udp(a)) => load_udp(&a, command_line),
        Cmd::Load(LoadCmd::Tcp(a)) => load_tcp(&a, command_line),
        Cmd::Run(Scenario::TcpEcho(a)) => run_tcp(a, TcpScenario::Echo, stop, command_line),
        Cmd::Run(Scenario::TcpRr(a)) => run_tcp(a, TcpScenario::Rr, stop, command_line),
        Cmd::Run(Scenario::TcpCrr(a)) => run_tcp(a, TcpScenario::Crr, stop, command_line),
        Cmd::Run(Scenario::Http(a)) => run_tcp(a, TcpScenario::Http, stop, command_line),
        Cmd::Run(Scenario::ConnScale(a)) => {
            let r = sluice_bench::conn_scale::run(&a, stop, command_line)?;
            print!("{}", sluice_bench::publish::markdown(&r));
            publish(&r, a.json.as_deref(), a.report.as_deref())?;
            let failed = r.measurements.iter().filter(|m| !m.ok).count();
            if failed > 0 {
                return Err(anyhow!("{failed} measurement(s) failed (see above)"));
            }
            Ok(())
        }
        Cmd::Run(Scenario::UdpEcho(a)) => {
            let started = results::unix_now();
            let r = sluice_bench::udp_echo::run(&a, stop, command_line)?;
            print!("{}", report::render_echo(&r));
            publish(&sluice_bench::udp_echo::to_results(&r, &a, started), a.json.as_deref(), a.report.as_deref())?;
            let summary = match (&r.open_loop, r.rounds.is_empty()) {
                (Some(ol), true) => &ol.summary,
                _ => &r.summary,
            };
            let failed: usize = summary.iter().filter(|s| s.rounds_ok == 0).count();
            if failed > 0 {
                return Err(anyhow!("{failed} target(s) produced no measurement (see FAILED above)"));
            }
            Ok(())
        }
        Cmd::Compare { old, new, json } => {
            let (o, n) = (results::Results::read(&old)?, results::Results::read(&new)?);
            let changes = sluice_bench::compare::compare(&o, &n);
            print!("{}", sluice_bench::compare::render(&o, &n, &changes));
            if let Some(p) = json {
                write_json(&p, &changes)?;
            }
            Ok(())
        }
        Cmd::Report(a) => render_reports(&a),
        Cmd::ServeTcpEcho { ns, listen, threads } => sluice_bench::conn_scale::serve_tcp_echo(&ns, listen, threads),
    }
}

fn run_tcp(mut a: TcpEchoArgs, fixed: TcpScenario, stop: &StopFlag, command_line: Vec<String>) -> anyhow::Result<()> {
    a.resolve(fixed).map_err(|e| anyhow!(e))?;
    let started = results::unix_now();
    let r = sluice_bench::tcp_echo::run(&a, stop, command_line)?;
    print!("{}", sluice_bench::tcp_echo::render(&r));
    publish(&sluice_bench::tcp_echo::to_results(&r, &a, started), a.json.as_deref(), a.report.as_deref())?;
    let open: &[_] = if r.open.is_empty() { &[] } else { &r.open_summary };
    let closed: &[_] = if r.closed.is_empty() { &[] } else { &r.closed_summary };
    let empty = closed.iter().chain(open).filter(|s| s.per_s.is_none()).count();
    if empty > 0 {
        return Err(anyhow!("{empty} measurement(s) produced nothing (see FAILED above)"));
    }
    Ok(())
}

/// Writes the results where asked: JSON to `json`, the full report to `dir`.
fn publish(r: &results::Results, json: Option<&Path>, dir: Option<&Path>) -> anyhow::Result<()> {
    if let Some(d) = dir {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    // The JSON first: whatever goes wrong with the rest, the figures are kept.
    if let Some(p) = json {
        write_json(p, r)?;
    }
    if let Some(d) = dir {
        sluice_bench::publish::write_report(d, r)?;
    }
    Ok(())
}

fn render_reports(a: &ReportArgs) -> anyhow::Result<()> {
    let all: Vec<results::Results> = a.results.iter().map(|p| results::Results::read(p)).collect::<Result<_, _>>()?;
    let mut md = match &a.preamble {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        None => String::new(),
    };
    for r in &all {
        if !md.is_empty() && !md.ends_with("\n\n") {
            md.push('\n');
        }
        md.push_str(&sluice_bench::publish::markdown(r));
    }
    match &a.markdown {
        Some(p) => {
            std::fs::write(p, &md).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        None if a.html.is_none() => print!("{md}"),
        None => {}
    }
    if let Some(dir) = &a.html {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for r in &all {
            let page = sluice_bench::publish::html(r).map_err(|e| anyhow!(e))?;
            let name: String = r
                .label
                .chars()
                .chain(if r.label.is_empty() { r.scenario.chars() } else { "".chars() })
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect();
            let p = dir.join(format!("{name}.html"));
            std::fs::write(&p, page).with_context(|| format!("writing {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    sluice_bench::publish::write_atomic(path, text.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn lab_up(name: &str, queues: u32) -> anyhow::Result<()> {
    let lab = Lab::up(LabConfig::new(name).with_queues(queues))?.keep();
    let st = lab.status()?;
    println!("{st}");
    println!(
        "server {} in {} ({}), client {} in {} ({}); {queues} queues",
        lab.interface(Side::Server),
        lab.server_ns,
        lab.addr(Side::Server),
        lab.interface(Side::Client),
        lab.client_ns,
        lab.addr(Side::Client),
    );
    println!("remove it with: sluice-bench lab down {name}");
    Ok(())
}

fn lab_status(name: Option<&str>) -> anyhow::Result<()> {
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => Lab::list(),
    };
    if names.is_empty() {
        println!("no sluice labs");
        return Ok(());
    }
    for n in names {
        // keep(): looking must never remove anything.
        let lab = Lab::attach(&n)?.keep();
        match lab.status() {
            Ok(st) => println!("{st}"),
            Err(e) => println!("lab {n}: incomplete ({e})"),
        }
    }
    Ok(())
}

fn load_tcp(a: &LoadTcpArgs, command_line: Vec<String>) -> anyhow::Result<()> {
    use sluice_bench::tcp_gen::{self, Mode, TcpGenConfig};
    let cfg = TcpGenConfig {
        target: a.target,
        source: a.source,
        conns: a.conns,
        window: a.window,
        size: a.size,
        duration: a.duration,
        threads: a.threads,
        mode: match a.mode {
            TcpModeArg::Rr => Mode::Rr,
            TcpModeArg::Crr => Mode::Crr,
        },
        rate: a.rate,
    };
    cfg.validate().map_err(|e| anyhow::anyhow!(e))?;
    let rep = Lab::run_in(&a.netns, || tcp_gen::run(&cfg))?.context("load generator")?;
    let r = report::TcpLoadReport {
        command_line,
        netns: a.netns.clone(),
        target: a.target.to_string(),
        mode: cfg.mode.as_str().into(),
        rate: a.rate,
        ok_per_s: rep.per_sec(),
        ok: rep.ok,
        mismatched: rep.mismatched,
        errors: rep.errors,
        connects: rep.connects,
        deferred: rep.deferred,
        outstanding_at_end: rep.outstanding_at_end,
        latency: Latency::of(&rep.latency_us),
        elapsed_s: rep.elapsed.as_secs_f64(),
        conns: cfg.conns,
        threads: cfg.threads.min(cfg.conns),
    };
    print!("{}", report::render_tcp_load(&r));
    if let Some(p) = &a.json {
        write_json(p, &r)?;
    }
    Ok(())
}

fn load_udp(a: &LoadUdpArgs, command_line: Vec<String>) -> anyhow::Result<()> {
    let cfg = GenConfig {
        target: a.target,
        source: a.source,
        flows: a.flows,
        window: a.window,
        payload_len: a.size,
        duration: a.duration,
        threads: a.threads,
    };
    cfg.validate()?;
    let rep = Lab::run_in(&a.netns, || kernel_gen::run(&cfg))?.context("load generator")?;
    let r = LoadReport {
        command_line,
        netns: a.netns.clone(),
        target: a.target.to_string(),
        answered_per_s: rep.answered_per_sec(),
        answered: rep.answered(),
        sent: rep.sent,
        received: rep.received,
        lost: rep.expired,
        in_flight_at_end: rep.outstanding_at_end,
        mismatched: rep.mismatched,
        late: rep.late,
        send_errors: rep.send_errors,
        recv_errors: rep.recv_errors,
        latency: Latency::of(&rep.latency_us),
        elapsed_s: rep.elapsed.as_secs_f64(),
        flows: rep.flows,
        threads: rep.threads,
    };
    print!("{}", report::render_load(&r));
    if let Some(p) = &a.json {
        write_json(p, &r)?;
    }
    Ok(())
}
