//! `run conn-scale`: how much memory a server spends per idle connection.
//! For each count N and target, the generator on sluice's own TCP (so the
//! client side holds no kernel sockets) opens N connections that each send
//! one request, get its echo and then stay idle, and the server's memory is
//! read before and once all are held:
//! sluiced's RSS growth, or the kernel's slab and TCP socket-buffer growth
//! (/proc/meminfo `Slab`, /proc/net/sockstat `TCP mem`) for the kernel's
//! epoll server, which holds every accepted socket. sluiced allocates its
//! connection table for `max_connections` at start, so its RSS grows by
//! what connections add beyond that (maps, timers, queues); the table's
//! own cost per connection is stated beside it.
use crate::cli::{ConnScaleArgs, TcpTarget};
use crate::interrupt::{Interrupted, StopFlag};
use crate::kernel_tcp_echo::KernelTcpEcho;
use crate::results::{Measurement, Phase, Results};
use crate::sluiced::{Sluiced, Tuning};
use crate::tcp_xdp_gen::{TcpXdpGen, TcpXdpGenConfig};
use anyhow::{anyhow, bail, Context};
use sluice_lab::{Lab, LabConfig, Side};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// The echo port the connections go to.
const PORT: u16 = 7;

/// Kernel memory that grows with sockets: slab plus TCP socket buffers, bytes.
pub fn kernel_socket_bytes() -> anyhow::Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("/proc/meminfo")?;
    let slab_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("Slab:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("/proc/meminfo has no Slab line"))?;
    let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    Ok(slab_kib * 1024 + tcp_mem_pages(&sockstat) * 4096)
}

/// The `inuse` sockets of the `TCP:` line of /proc/net/sockstat (0 if absent).
pub fn tcp_inuse(sockstat: &str) -> u64 {
    let Some(line) = sockstat.lines().find(|l| l.starts_with("TCP:")) else { return 0 };
    let f: Vec<&str> = line.split_whitespace().collect();
    f.iter().position(|w| *w == "inuse").and_then(|i| f.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The `mem` pages of the `TCP:` line of /proc/net/sockstat (0 if absent).
pub fn tcp_mem_pages(sockstat: &str) -> u64 {
    let Some(line) = sockstat.lines().find(|l| l.starts_with("TCP:")) else { return 0 };
    let f: Vec<&str> = line.split_whitespace().collect();
    f.iter().position(|w| *w == "mem").and_then(|i| f.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

enum Server {
    Sluice(Sluiced),
    Kernel(KernelTcpEcho),
}

impl Server {
    /// The memory that grows with connections, bytes.
    fn memory(&self) -> anyhow::Result<u64> {
        match self {
            Server::Sluice(d) => {
                let pid = d.pid().ok_or_else(|| anyhow!("sluiced is not running"))?;
                crate::results::rss_kib(pid).map(|k| k * 1024).ok_or_else(|| anyhow!("no RSS for sluiced"))
            }
            Server::Kernel(_) => kernel_socket_bytes(),
        }
    }

    /// Connections the server holds now (sluiced's own gauge, published
    /// every 100 ms; the kernel's TCP sockets in use in the server's
    /// namespace, listeners included).
    fn held(&self, ns: &str) -> anyhow::Result<u64> {
        match self {
            Server::Sluice(d) => Ok(d.stats()?.total.gauges.get("tcp_conns").copied().unwrap_or(0)),
            Server::Kernel(_) => {
                // thread-self: /proc/self/net is the main thread's namespace.
                let text = Lab::run_in(ns, || std::fs::read_to_string("/proc/thread-self/net/sockstat"))??;
                Ok(tcp_inuse(&text))
            }
        }
    }

    fn stop(self) -> Vec<String> {
        match self {
            Server::Sluice(d) => match d.stop() {
                Ok(st) if st.success() => Vec::new(),
                Ok(st) => vec![format!("sluiced exited with {st}")],
                Err(e) => vec![format!("{e:#}")],
            },
            Server::Kernel(k) => k.stop(),
        }
    }
}

/// Runs the scenario.
pub fn run(args: &ConnScaleArgs, stop: &StopFlag, command_line: Vec<String>) -> anyhow::Result<Results> {
    args.validate().map_err(|e| anyhow!(e))?;
    let started = crate::results::unix_now();
    let sluiced = crate::sluiced::locate(args.sluiced.as_deref(), args.targets.iter().any(|t| t.poll().is_some()))?;
    sluice_lab::require_root()?;
    // The kernel's epoll server runs in this process and holds a descriptor
    // per connection.
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit")?;
        let want = (u64::from(args.conns.iter().copied().max().unwrap_or(0)) + 1024).min(hard);
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).context("raising RLIMIT_NOFILE")?;
    }
    let lab = Lab::up(LabConfig::unique("scalebench").with_queues(args.queues)).context("building the lab")?;
    // The generator reads the kernel server's frames as they are on the wire.
    let out = lab.command_in(Side::Server, "ethtool").args(["-K", lab.interface(Side::Server), "tx", "off"]).output();
    if !out.is_ok_and(|o| o.status.success()) {
        bail!("ethtool -K {} tx off failed", lab.interface(Side::Server));
    }
    let service = SocketAddrV4::new(lab.addr(Side::Server), PORT);
    let mut measurements = Vec::new();
    for (round, &n) in args.conns.iter().enumerate() {
        for &t in &args.targets {
            stop.check()?;
            eprintln!("conn-scale: {n} connections to {} ...", t.as_str());
            let m = match measure(args, &lab, &sluiced, t, service, n, stop) {
                Ok(m) => m,
                Err(e) if e.downcast_ref::<Interrupted>().is_some() => return Err(e),
                Err(e) => Measurement {
                    phase: Phase::Scale,
                    round: round as u32 + 1,
                    target: t.as_str().into(),
                    error: Some(format!("{e:#}")),
                    connections: Some(u64::from(n)),
                    limit: "-".into(),
                    ..Measurement::default()
                },
            };
            match (&m.error, m.memory_per_conn_b) {
                (Some(e), _) => eprintln!("  FAILED: {e}"),
                (None, Some(b)) => eprintln!("  {b:.0} B per connection ({})", m.limit),
                _ => {}
            }
            measurements.push(Measurement { round: round as u32 + 1, ..m });
        }
    }
    lab.down().context("removing the lab")?;
    let summary = crate::results::summarize(&measurements, &[]);
    Ok(Results {
        schema: crate::results::SCHEMA.into(),
        scenario: "conn-scale".into(),
        label: args.label.clone().unwrap_or_else(|| "conn-scale".into()),
        unit: "connection".into(),
        generator: format!("sluice's own TCP over AF_XDP on the client veth, {} cores, idle connections", args.queues),
        started_unix_s: started,
        machine: crate::results::MachineInfo::here(None),
        commit: crate::results::commit(),
        command_line,
        options: serde_json::json!({
            "queues": args.queues,
            "connections": args.conns,
            "targets": args.targets,
            "settle_s": args.settle.as_secs_f64(),
            "sluiced": args.sluiced.as_ref().map(|p| p.display().to_string()),
        }),
        baselines: Vec::new(),
        summary,
        measurements,
        knees: Vec::new(),
        detail: serde_json::Value::Null,
    })
}

fn measure(
    args: &ConnScaleArgs,
    lab: &Lab,
    sluiced: &std::path::Path,
    t: TcpTarget,
    service: SocketAddrV4,
    n: u16,
    stop: &StopFlag,
) -> anyhow::Result<Measurement> {
    let server = match t.poll() {
        Some(poll) => {
            let tuning = Tuning { poll: Some(poll), tcp: true, ..Tuning::default() };
            Server::Sluice(Sluiced::start(lab, sluiced, service, tuning, stop)?)
        }
        None => Server::Kernel(
            Lab::run_in(&lab.server_ns, || KernelTcpEcho::start(service, args.queues as usize))?
                .context("starting the kernel TCP echo server")?,
        ),
    };
    let rss_pid = match &server {
        Server::Sluice(d) => d.pid(),
        Server::Kernel(_) => None,
    };
    stop.sleep(args.settle)?;
    let before = server.memory()?;
    let held_before = server.held(&lab.server_ns)?;
    let t0 = Instant::now();
    let gcfg = TcpXdpGenConfig {
        interface: lab.interface(Side::Client).to_string(),
        queues: args.queues,
        client_ip: lab.addr(Side::Client),
        server: service,
        server_mac: crate::netinfo::interface_mac(&lab.server_ns, lab.interface(Side::Server))?,
        client_mac: crate::netinfo::interface_mac(&lab.client_ns, lab.interface(Side::Client))?,
        conns: n,
        base_port: 40000,
        size: 64,
        // One echo per connection, then idle: the echo proves the server
        // holds it.
        window: 1,
        poll: sluice_engine::config::PollMode::Adaptive,
        rate: None,
        http: false,
        crr: false,
        once: true,
    };
    let gen = TcpXdpGen::start(&lab.client_ns, gcfg)?;
    let deadline = Instant::now() + Duration::from_secs(10 + u64::from(n) / 1000);
    while (gen.connections() < u64::from(n) || gen.totals().ok < u64::from(n)) && Instant::now() < deadline {
        stop.sleep(Duration::from_millis(100))?;
    }
    // Open and answered once: the client's side of "held".
    let open = gen.connections().min(gen.totals().ok);
    stop.sleep(args.settle)?;
    // What the server holds, not what the client thinks is open (an
    // overflowing accept queue drops the handshake's last ACK, and an idle
    // client never finds out).
    let mut held = server.held(&lab.server_ns)?.saturating_sub(held_before);
    let until = Instant::now() + Duration::from_secs(5);
    while held < open && Instant::now() < until {
        stop.sleep(Duration::from_millis(200))?;
        held = server.held(&lab.server_ns)?.saturating_sub(held_before);
    }
    let after = server.memory()?;
    // For a row that fails: where the handshakes went, from both stacks'
    // own counters.
    let mut clues = gen.clues().into_iter().map(|(k, v)| format!("client {k}={v}")).collect::<Vec<_>>();
    if let Server::Sluice(d) = &server {
        if let Ok(s) = d.stats() {
            let all = s.total.drops.iter().chain(&s.total.counters).chain(&s.total.gauges);
            clues.extend(all.filter(|(k, v)| **v > 0 && is_clue(k)).map(|(k, v)| format!("server {k}={v}")));
        }
    }
    let rss_kib = rss_pid.and_then(crate::results::rss_kib);
    let failed = gen.connect_failures() + gen.totals().failed;
    gen.stop();
    let problems = server.stop();
    let per_conn = (held > 0).then(|| after.saturating_sub(before) as f64 / held as f64);
    // A burst of N handshakes may lose a few (a SYN out of retries); the
    // figure divides by what the server really holds, and stands if that
    // is at least 99 % of N (the shortfall is in the row's text).
    let enough = |x: u64| x * 100 >= u64::from(n) * 99;
    let error = if !problems.is_empty() {
        Some(problems.join("; "))
    } else if !enough(open) {
        Some(format!("{open} of {n} connections open ({failed} refused or failed; {})", clues.join(", ")))
    } else if !enough(held) {
        Some(format!("the server holds {held} of the {n} connections the client opened ({})", clues.join(", ")))
    } else {
        None
    };
    let how = match t.poll() {
        Some(_) => format!(
            "sluiced's RSS growth; its connection table ({} B a connection) is allocated at start",
            sluice_engine::tcp::TcpCore::BYTES_PER_CONNECTION
        ),
        None => "kernel slab + TCP buffer growth".to_string(),
    };
    Ok(Measurement {
        phase: Phase::Scale,
        target: t.as_str().into(),
        ok: error.is_none(),
        error,
        transactions: held,
        elapsed_s: t0.elapsed().as_secs_f64(),
        server_rss_kib: rss_kib,
        connections: Some(u64::from(n)),
        memory_per_conn_b: per_conn,
        limit: format!("{how}; the server holds {held} of {n}, the client {open} ({failed} refused or failed)"),
        ..Measurement::default()
    })
}

/// Whether a counter says something about lost handshakes.
pub fn is_clue(name: &str) -> bool {
    const CLUES: [&str; 9] = [
        "tcp_resets",
        "tcp_syncookies_failed",
        "tcp_listen_overflows",
        "tcp_connect_failed",
        "tcp_arena_full",
        "tcp_retrans_syn",
        "tcp_half_open",
        "xsk_rx_dropped",
        "tcp_syn_in_sync",
    ];
    CLUES.iter().any(|c| name.starts_with(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_tcp_mem_is_read() {
        let s = "sockets: used 300\nTCP: inuse 5 orphan 0 tw 2 alloc 9 mem 17\nUDP: inuse 1 mem 2\n";
        assert_eq!(tcp_mem_pages(s), 17);
        assert_eq!(tcp_mem_pages("TCP: inuse 5\n"), 0);
        assert_eq!(tcp_mem_pages(""), 0);
        assert_eq!((tcp_inuse(s), tcp_inuse("")), (5, 0));
        assert!(kernel_socket_bytes().unwrap() > 0);
    }
}
