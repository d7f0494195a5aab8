//! `run conn-scale`: how much memory a server spends per idle connection.
//! For each count N and target, the generator on sluice's own TCP (so the
//! client side holds no kernel sockets) opens N connections that each send
//! one request, get its echo and then stay idle, and the server's memory is
//! read before and once all are held:
//! sluiced's RSS growth, or the kernel's slab and TCP socket-buffer growth
//! (/proc/meminfo `Slab`, /proc/net/sockstat `TCP mem`) for the kernel's
//! epoll server, which holds every accepted socket. sluiced reserves its
//! connection table for `max_connections` at start and touches it as
//! connections come, so its RSS grows by what each connection costs; the
//! table's own figure per connection is stated beside it.
//!
//! One client address has the source ports 1024..=65535: above 64,512
//! connections the generator uses more addresses of the client subnet
//! (198.18.0.10 and up), added to the client interface for the run.
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
/// Descriptors the bench needs besides the kernel server's connections.
const FDS_BESIDES: u64 = 256;
/// The generator's first source port (of each address).
const BASE_PORT: u16 = 1024;

/// The client's extra addresses for `n` connections: 198.18.0.10 and up,
/// in the lab's /24.
fn extra_addresses(n: u32) -> Vec<std::net::Ipv4Addr> {
    let need = TcpXdpGenConfig::addresses_for(BASE_PORT, n).saturating_sub(1);
    (0..need).map(|k| std::net::Ipv4Addr::new(198, 18, 0, 10 + k as u8)).collect()
}

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
    KernelProcs(KernelProcs),
}

/// The kernel's epoll echo server in child processes (`sluice-bench
/// serve-tcp-echo`), one listener each on the same port. Each ends when its
/// stdin closes; one that does not is killed by its PID.
pub struct KernelProcs {
    children: Vec<std::process::Child>,
}

impl KernelProcs {
    /// `procs` servers of `addr` in namespace `ns`, each ready when this returns.
    pub fn start(ns: &str, addr: SocketAddrV4, procs: usize) -> anyhow::Result<KernelProcs> {
        use std::io::BufRead;
        let exe = std::env::current_exe().context("locating sluice-bench")?;
        let mut me = KernelProcs { children: Vec::new() };
        for _ in 0..procs {
            let child = std::process::Command::new(&exe)
                .args(["serve-tcp-echo", "--ns", ns, "--listen", &addr.to_string()])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .context("starting a kernel TCP echo process")?;
            me.children.push(child);
            let c = me.children.last_mut().expect("pushed");
            let mut line = String::new();
            let out = c.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
            std::io::BufReader::new(out).read_line(&mut line).context("waiting for a kernel TCP echo process")?;
            if line.trim() != "ready" {
                bail!("a kernel TCP echo process did not start ({:?})", line.trim());
            }
        }
        Ok(me)
    }

    fn stop(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        for c in &mut self.children {
            drop(c.stdin.take());
        }
        // Tearing down a million sockets at once takes the kernel a while.
        let deadline = Instant::now() + Duration::from_secs(60);
        for c in &mut self.children {
            loop {
                match c.try_wait() {
                    Ok(Some(st)) if st.success() => break,
                    Ok(Some(st)) => {
                        problems.push(format!("a kernel TCP echo process exited with {st}"));
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        problems.push("a kernel TCP echo process did not stop; killed".into());
                        break;
                    }
                }
            }
        }
        self.children.clear();
        problems
    }
}

impl Drop for KernelProcs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `sluice-bench serve-tcp-echo`: the kernel TCP echo server in namespace
/// `ns` until stdin closes (conn-scale's child processes).
pub fn serve_tcp_echo(ns: &str, listen: SocketAddrV4, threads: usize) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let server = Lab::run_in(ns, || KernelTcpEcho::start(listen, threads))?.context("starting the server")?;
    println!("ready");
    std::io::stdout().flush()?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let problems = server.stop();
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

impl Server {
    /// The memory that grows with connections, bytes.
    fn memory(&self) -> anyhow::Result<u64> {
        match self {
            Server::Sluice(d) => {
                let pid = d.pid().ok_or_else(|| anyhow!("sluiced is not running"))?;
                crate::results::rss_kib(pid).map(|k| k * 1024).ok_or_else(|| anyhow!("no RSS for sluiced"))
            }
            Server::Kernel(_) | Server::KernelProcs(_) => kernel_socket_bytes(),
        }
    }

    /// Connections the server holds now (sluiced's own gauge, published
    /// every 100 ms; the kernel's TCP sockets in use in the server's
    /// namespace, listeners included).
    fn held(&self, ns: &str) -> anyhow::Result<u64> {
        match self {
            Server::Sluice(d) => Ok(d.stats()?.total.gauges.get("tcp_conns").copied().unwrap_or(0)),
            Server::Kernel(_) | Server::KernelProcs(_) => {
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
            Server::KernelProcs(mut k) => k.stop(),
        }
    }
}

/// Runs the scenario.
pub fn run(args: &ConnScaleArgs, stop: &StopFlag, command_line: Vec<String>) -> anyhow::Result<Results> {
    args.validate().map_err(|e| anyhow!(e))?;
    let started = crate::results::unix_now();
    let sluiced = crate::sluiced::locate(args.sluiced.as_deref(), args.targets.iter().any(|t| t.poll().is_some()))?;
    sluice_lab::require_root()?;
    let most = args.conns.iter().copied().max().unwrap_or(0);
    // The kernel's epoll server runs in this process and holds a descriptor
    // per connection: raise the limit, the hard one too (root may, up to
    // fs.nr_open).
    let fd_limit = if args.targets.contains(&TcpTarget::Kernel) {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit")?;
        let want = u64::from(most) + FDS_BESIDES;
        if want > hard && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
            want
        } else {
            // Without CAP_SYS_RESOURCE the hard limit stands; counts above
            // it run the kernel's server in several processes.
            setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).context("raising RLIMIT_NOFILE")?;
            want.min(hard)
        }
    } else {
        0
    };
    let fd_limit = args.fds_per_process.map_or(fd_limit, |f| f.min(fd_limit));
    let lab = Lab::up(LabConfig::unique("scalebench").with_queues(args.queues)).context("building the lab")?;
    for a in extra_addresses(most) {
        let out = lab
            .command_in(Side::Client, "ip")
            .args(["addr", "add", &format!("{a}/24"), "dev", lab.interface(Side::Client)])
            .output()
            .context("ip addr add")?;
        if !out.status.success() {
            bail!("adding {a} to the client interface: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    }
    // The generator reads the kernel server's frames as they are on the wire.
    let out = lab.command_in(Side::Server, "ethtool").args(["-K", lab.interface(Side::Server), "tx", "off"]).output();
    if !out.is_ok_and(|o| o.status.success()) {
        bail!("ethtool -K {} tx off failed", lab.interface(Side::Server));
    }
    let mut measurements = Vec::new();
    for (round, &n) in args.conns.iter().enumerate() {
        for &t in &args.targets {
            stop.check()?;
            eprintln!("conn-scale: {n} connections to {} ...", t.as_str());
            let m = match measure(args, &lab, &sluiced, t, n, fd_limit, stop) {
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
    n: u32,
    fd_limit: u64,
    stop: &StopFlag,
) -> anyhow::Result<Measurement> {
    let service = SocketAddrV4::new(lab.addr(Side::Server), PORT);
    let server = match t.poll() {
        Some(poll) => {
            // Room for every connection (and some), at most the config's limit.
            let room = (n + n / 8 + 1024).clamp(65536, 1 << 24);
            let tuning = Tuning { poll: Some(poll), tcp: true, max_connections: Some(room), ..Tuning::default() };
            Server::Sluice(Sluiced::start(lab, sluiced, service, tuning, stop)?)
        }
        None if u64::from(n) + FDS_BESIDES <= fd_limit => Server::Kernel(
            Lab::run_in(&lab.server_ns, || KernelTcpEcho::start(service, args.queues as usize))?
                .context("starting the kernel TCP echo server")?,
        ),
        // More connections than one process may hold descriptors for: the
        // same server in several processes, their SO_REUSEPORT listeners
        // sharing the port (the kernel spreads connections by hash; each
        // process gets a quarter of headroom over its share).
        None => {
            let per = fd_limit.saturating_sub(FDS_BESIDES) * 3 / 4;
            let procs = u64::from(n).div_ceil(per.max(1));
            Server::KernelProcs(KernelProcs::start(&lab.server_ns, service, procs as usize)?)
        }
    };
    let procs = match &server {
        Server::KernelProcs(k) => k.children.len(),
        _ => 0,
    };
    let rss_pid = match &server {
        Server::Sluice(d) => d.pid(),
        Server::Kernel(_) | Server::KernelProcs(_) => None,
    };
    stop.sleep(args.settle)?;
    let before = server.memory()?;
    let held_before = server.held(&lab.server_ns)?;
    let t0 = Instant::now();
    let gcfg = TcpXdpGenConfig {
        interface: lab.interface(Side::Client).to_string(),
        queues: args.queues,
        client_ip: lab.addr(Side::Client),
        more_ips: extra_addresses(n),
        server: service,
        server_mac: crate::netinfo::interface_mac(&lab.server_ns, lab.interface(Side::Server))?,
        client_mac: crate::netinfo::interface_mac(&lab.client_ns, lab.interface(Side::Client))?,
        conns: n,
        base_port: BASE_PORT,
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
    let deadline = Instant::now() + Duration::from_secs(10 + u64::from(n) / 500);
    let mut said = Instant::now();
    // Until all are open and answered, or nothing moved for 30 s.
    let (mut last, mut moved) = ((0, 0), Instant::now());
    while (gen.connections() < u64::from(n) || gen.totals().ok < u64::from(n)) && Instant::now() < deadline {
        stop.sleep(Duration::from_millis(100))?;
        let now = (gen.connections(), gen.totals().ok);
        if now != last {
            (last, moved) = (now, Instant::now());
        } else if moved.elapsed() > Duration::from_secs(30) {
            break;
        }
        if said.elapsed() >= Duration::from_secs(5) {
            said = Instant::now();
            let cores = gen.connections_per_core().iter().map(u64::to_string).collect::<Vec<_>>().join("/");
            eprintln!(
                "  {} open ({cores} by core), {} answered, {} refused or failed",
                now.0,
                now.1,
                gen.connect_failures() + gen.totals().failed
            );
        }
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
            "sluiced's RSS growth; its connection table ({} B a connection) is reserved at start, touched as connections come",
            sluice_engine::tcp::TcpCore::BYTES_PER_CONNECTION
        ),
        None if procs > 0 => format!(
            "kernel slab + TCP buffer growth; the epoll server in {procs} processes (at most {fd_limit} descriptors each)"
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
