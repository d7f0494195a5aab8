//! The command line. Users and scripts rely on these names: extend, don't rename.
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

/// Longest run or load duration accepted, seconds.
pub const MAX_SECONDS: f64 = 3600.0;

/// sluice-bench: veth labs, load generators and baselines for sluice.
#[derive(Parser, Debug)]
#[command(name = "sluice-bench", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Build, remove and inspect veth labs (network namespaces sluice-NAME-s/-c).
    #[command(subcommand)]
    Lab(LabCmd),
    /// Drive load at a server from inside a lab namespace.
    #[command(subcommand)]
    Load(LoadCmd),
    /// Run a benchmark scenario in a lab of its own.
    #[command(subcommand)]
    Run(Scenario),
    /// Compare two results files: what changed per figure, beyond the noise or not.
    Compare {
        /// The earlier results (sluice-bench/results/v1 JSON).
        old: PathBuf,
        /// The later results.
        new: PathBuf,
        /// Write the changes as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Render results files: one Markdown document (e.g. BENCHMARKS.md), HTML reports.
    Report(ReportArgs),
    /// The kernel TCP echo server in a namespace until stdin closes (conn-scale
    /// runs several when one process may not hold enough descriptors).
    #[command(hide = true)]
    ServeTcpEcho {
        /// The namespace.
        #[arg(long)]
        ns: String,
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddrV4,
        /// Threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// `report`.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Results files (sluice-bench/results/v1 JSON), in the order to show them.
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// Write the Markdown of every file to FILE (after --preamble).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Markdown put before the generated sections (the prose of BENCHMARKS.md).
    #[arg(long, value_name = "FILE")]
    pub preamble: Option<PathBuf>,
    /// Write an HTML report per file into DIR (DIR/SCENARIO.html).
    #[arg(long, value_name = "DIR")]
    pub html: Option<PathBuf>,
}

/// `lab …`.
#[derive(Subcommand, Debug)]
pub enum LabCmd {
    /// Create a lab that stays until `lab down`, and print what it has.
    Up {
        /// Lab name: the namespaces are sluice-NAME-s (server) and sluice-NAME-c (client).
        #[arg(long, default_value = "demo")]
        name: String,
        /// rx/tx queues of both veth ends.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        queues: u32,
    },
    /// Remove a lab.
    Down {
        /// Lab name.
        name: String,
    },
    /// Show one lab, or every sluice lab.
    Status {
        /// Lab name (all labs when omitted).
        name: Option<String>,
    },
}

/// `load …`.
#[derive(Subcommand, Debug)]
pub enum LoadCmd {
    /// Closed-loop UDP load with kernel sockets (recvmmsg/sendmmsg).
    Udp(LoadUdpArgs),
    /// TCP request/response load with kernel sockets (epoll), closed or open loop.
    Tcp(LoadTcpArgs),
}

/// How the TCP generator uses its connections.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TcpModeArg {
    /// Persistent connections, requests back to back.
    #[default]
    Rr,
    /// A new connection for every request (connect, request, echo, close).
    Crr,
}

/// `load tcp`.
#[derive(Args, Debug, Clone)]
pub struct LoadTcpArgs {
    /// Namespace to run in (a sluice-… lab namespace, e.g. sluice-demo-c).
    #[arg(long)]
    pub netns: String,
    /// The TCP echo server, ADDR:PORT in 198.18.0.0/15.
    #[arg(long)]
    pub target: SocketAddrV4,
    /// Local address of the connections.
    #[arg(long, default_value = "198.18.0.1")]
    pub source: Ipv4Addr,
    /// Connections (open at once).
    #[arg(long, default_value_t = 64)]
    pub conns: usize,
    /// Requests in flight per connection (rr, closed loop).
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Bytes per request (and echo).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// rr (persistent connections) or crr (a connection per request).
    #[arg(long, value_enum, default_value_t = TcpModeArg::Rr)]
    pub mode: TcpModeArg,
    /// Open loop: requests per second in total (default: closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds (decimals allowed).
    #[arg(long, default_value = "3", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `load udp`.
#[derive(Args, Debug, Clone)]
pub struct LoadUdpArgs {
    /// Namespace to run in (a sluice-… lab namespace, e.g. sluice-demo-c).
    #[arg(long)]
    pub netns: String,
    /// The echo server, ADDR:PORT in 198.18.0.0/15.
    #[arg(long)]
    pub target: SocketAddrV4,
    /// Local address of the sockets.
    #[arg(long, default_value = "198.18.0.1")]
    pub source: Ipv4Addr,
    /// Sockets (= source ports = flows).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub flows: u16,
    /// Requests outstanding per flow.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds (decimals allowed).
    #[arg(long, default_value = "3", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `run …`.
#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// UDP echo: sluice vs the kernel's UDP stack vs a raw AF_XDP reflector.
    UdpEcho(UdpEchoArgs),
    /// TCP echo: sluice's TCP vs the kernel's, rr or crr (`--mode`).
    TcpEcho(TcpEchoArgs),
    /// tcp-echo with persistent connections (request/response), AF_XDP generator by default.
    TcpRr(TcpEchoArgs),
    /// tcp-echo with a connection per request (connect, request, echo, close).
    TcpCrr(TcpEchoArgs),
    /// HTTP/1.1: sluice's HTTP service vs nginx, keep-alive (AF_XDP generator or wrk) or a
    /// connection per request (`--close`, wrk).
    Http(TcpEchoArgs),
    /// Memory per idle connection: sluice and the kernel holding N connections.
    ConnScale(ConnScaleArgs),
}

/// `run conn-scale`.
#[derive(Args, Debug, Clone)]
pub struct ConnScaleArgs {
    /// rx/tx queues of the lab veth (= sluice cores and kernel server threads).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: u32,
    /// Connection counts, comma-separated (each 1..=1048576; above 64,512
    /// the client uses several addresses).
    #[arg(long, alias = "connections", value_delimiter = ',', default_value = "1000,10000,100000")]
    pub conns: Vec<u32>,
    /// Targets, comma-separated (sluice, sluice-interrupt, sluice-busy, kernel).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sluice,kernel")]
    pub targets: Vec<TcpTarget>,
    /// Seconds the server settles before each memory reading.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    pub settle: Duration,
    /// The sluiced binary (default: the sluiced next to this executable).
    #[arg(long, value_name = "PATH")]
    pub sluiced: Option<PathBuf>,
    /// Write the results (schema sluice-bench/results/v1) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write results.json, report.md and report.html (with plots) into DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// What reports call this run [default: conn-scale].
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// Descriptors one kernel-server process may use (default: what
    /// RLIMIT_NOFILE allows); more connections run the server in several
    /// processes. For tests.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(300..))]
    pub fds_per_process: Option<u64>,
}

impl ConnScaleArgs {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.conns.is_empty() || self.conns.iter().any(|&n| n == 0 || n > crate::tcp_xdp_gen::MAX_CONNS) {
            return Err(format!("--conns: counts of 1..={}", crate::tcp_xdp_gen::MAX_CONNS));
        }
        if self.targets.is_empty() || self.targets.contains(&TcpTarget::Nginx) {
            return Err("--targets: sluice, sluice-interrupt, sluice-busy or kernel".into());
        }
        Ok(())
    }
}

/// Which request/response scenario a [`TcpEchoArgs`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpScenario {
    /// `tcp-echo` (mode from `--mode`).
    Echo,
    /// `tcp-rr`.
    Rr,
    /// `tcp-crr`.
    Crr,
    /// `http`.
    Http,
}

/// The client of `run tcp-echo`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TcpGenerator {
    /// sluice's own TCP over AF_XDP on the client veth (cheaper per
    /// transaction than any server: the default for rr).
    #[default]
    Afxdp,
    /// Kernel sockets with epoll (closed or open loop, rr or crr; echo only).
    Kernel,
    /// wrk (kernel sockets, closed loop; HTTP only).
    Wrk,
}

impl TcpGenerator {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpGenerator::Afxdp => "afxdp",
            TcpGenerator::Kernel => "kernel",
            TcpGenerator::Wrk => "wrk",
        }
    }
}

/// A server of `run tcp-echo`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcpTarget {
    /// sluiced, `poll = "adaptive"`.
    Sluice,
    /// sluiced, `poll = "interrupt"`.
    SluiceInterrupt,
    /// sluiced, `poll = "busy"`.
    SluiceBusy,
    /// The kernel's TCP: an epoll echo server, one SO_REUSEPORT listener and pinned thread per queue.
    Kernel,
    /// nginx (Debian's), one pinned worker per queue (HTTP only).
    Nginx,
}

impl TcpTarget {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpTarget::Sluice => "sluice",
            TcpTarget::SluiceInterrupt => "sluice-interrupt",
            TcpTarget::SluiceBusy => "sluice-busy",
            TcpTarget::Kernel => "kernel",
            TcpTarget::Nginx => "nginx",
        }
    }

    /// sluiced's poll mode, `None` for the kernel.
    pub fn poll(self) -> Option<sluice_engine::config::PollMode> {
        use sluice_engine::config::PollMode;
        match self {
            TcpTarget::Sluice => Some(PollMode::Adaptive),
            TcpTarget::SluiceInterrupt => Some(PollMode::Interrupt),
            TcpTarget::SluiceBusy => Some(PollMode::Busy),
            TcpTarget::Kernel | TcpTarget::Nginx => None,
        }
    }
}

impl From<TcpModeArg> for crate::tcp_gen::Mode {
    fn from(m: TcpModeArg) -> Self {
        match m {
            TcpModeArg::Rr => crate::tcp_gen::Mode::Rr,
            TcpModeArg::Crr => crate::tcp_gen::Mode::Crr,
        }
    }
}

impl TcpModeArg {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        crate::tcp_gen::Mode::from(self).as_str()
    }
}

/// `run tcp-echo`.
#[derive(Args, Debug, Clone)]
pub struct TcpEchoArgs {
    /// rx/tx queues of the lab veth (= sluice cores and kernel server threads).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: u32,
    /// Rounds; each runs every target once, in a rotated order.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Measured seconds per target and round (after the warm-up).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Warm-up seconds before each measurement.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    pub warmup: Duration,
    /// Connections of the generator.
    #[arg(long, alias = "connections", default_value_t = 64)]
    pub conns: usize,
    /// Requests in flight per connection (rr, closed loop).
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Bytes per request.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// rr (persistent connections) or crr (a connection per request) [tcp-echo: rr].
    #[arg(long = "mode", value_enum, value_name = "MODE")]
    pub mode_arg: Option<TcpModeArg>,
    /// The mode in effect (from the scenario or --mode).
    #[arg(skip)]
    pub mode: TcpModeArg,
    /// Generator threads (kernel sockets, epoll).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Load generator: sluice's TCP over AF_XDP, or kernel sockets [default: afxdp for rr,
    /// kernel for crr].
    #[arg(long = "generator", value_enum, value_name = "GENERATOR")]
    pub generator_arg: Option<TcpGenerator>,
    /// The generator in effect.
    #[arg(skip)]
    pub generator: TcpGenerator,
    /// Targets, comma-separated [default: sluice,sluice-interrupt,kernel; http:
    /// sluice,sluice-interrupt,nginx].
    #[arg(long = "targets", value_enum, value_delimiter = ',', value_name = "TARGETS")]
    pub targets_arg: Option<Vec<TcpTarget>>,
    /// The targets in effect.
    #[arg(skip)]
    pub targets: Vec<TcpTarget>,
    /// http: a connection per request (`Connection: close`; needs `--generator wrk`).
    #[arg(long)]
    pub close: bool,
    /// The scenario speaks HTTP (set by `run http`).
    #[arg(skip)]
    pub http: bool,
    /// The sluiced binary (default: the sluiced next to this executable).
    #[arg(long, value_name = "PATH")]
    pub sluiced: Option<PathBuf>,
    /// Open loop as well, at one rate for every target: `auto` (half the slowest
    /// closed-loop median), `none`, `sweep` (rates stepped up to past every
    /// target's knee), or requests per second.
    #[arg(long, default_value = "auto", value_name = "auto|none|sweep|N")]
    pub rate: OpenLoopRate,
    /// Skip the closed-loop rounds (with `--rate N`).
    #[arg(long)]
    pub open_loop_only: bool,
    /// Write the results (schema sluice-bench/results/v1) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write results.json, report.md and report.html (with plots) into DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// What reports call this run [default: the scenario's name].
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
}

impl TcpEchoArgs {
    /// Settles mode and generator: `scenario` is the mode the scenario's
    /// name fixes (`tcp-rr`, `tcp-crr`), `None` for `tcp-echo`.
    pub fn resolve(&mut self, scenario: TcpScenario) -> Result<(), String> {
        let fixed = match scenario {
            TcpScenario::Echo => None,
            TcpScenario::Rr | TcpScenario::Http => Some(TcpModeArg::Rr),
            TcpScenario::Crr => Some(TcpModeArg::Crr),
        };
        self.http = scenario == TcpScenario::Http;
        self.mode = match (fixed, self.mode_arg) {
            (Some(s), Some(m)) if s != m && self.http => {
                return Err("http has no --mode: --close makes a connection per request".into())
            }
            (Some(s), Some(m)) if s != m => {
                return Err(format!("--mode {} contradicts the scenario tcp-{}", m.as_str(), s.as_str()))
            }
            (Some(s), _) => s,
            (None, m) => m.unwrap_or_default(),
        };
        if self.close && !self.http {
            return Err("--close is for run http (tcp-crr makes a connection per echo)".into());
        }
        self.generator =
            self.generator_arg.unwrap_or(if self.http && self.close { TcpGenerator::Wrk } else { TcpGenerator::Afxdp });
        if self.generator == TcpGenerator::Wrk && self.rate == OpenLoopRate::Auto {
            // wrk runs closed loop only: no open loop unless asked (and
            // refused then).
            self.rate = OpenLoopRate::Skip;
        }
        let baseline = if self.http { TcpTarget::Nginx } else { TcpTarget::Kernel };
        self.targets =
            self.targets_arg.clone().unwrap_or_else(|| vec![TcpTarget::Sluice, TcpTarget::SluiceInterrupt, baseline]);
        Ok(())
    }

    /// The scenario's name in results.
    pub fn scenario(&self) -> String {
        match (self.http, self.close) {
            (true, false) => "http".into(),
            (true, true) => "http-close".into(),
            _ => format!("tcp-{}", self.mode.as_str()),
        }
    }

    /// The service port: 80 for HTTP, 7 (echo) otherwise.
    pub fn port(&self) -> u16 {
        if self.http {
            80
        } else {
            7
        }
    }

    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.targets.is_empty() {
            return Err("--targets is empty".into());
        }
        for (i, t) in self.targets.iter().enumerate() {
            if self.targets[..i].contains(t) {
                return Err(format!("target {} is listed twice", t.as_str()));
            }
        }
        if self.open_loop_only && !matches!(self.rate, OpenLoopRate::Fixed(_)) {
            return Err("--open-loop-only needs --rate N".into());
        }
        if self.http {
            if self.targets.contains(&TcpTarget::Kernel) {
                return Err("the kernel echo server does not speak HTTP: the http baseline is nginx".into());
            }
            match self.generator {
                TcpGenerator::Kernel => return Err("the kernel generator speaks echo: use --generator wrk".into()),
                TcpGenerator::Afxdp if self.close => {
                    return Err("--close needs --generator wrk (the afxdp generator keeps its connections)".into())
                }
                TcpGenerator::Wrk if !matches!(self.rate, OpenLoopRate::Skip) => {
                    return Err("wrk runs closed loop only: add --rate none".into())
                }
                _ => {}
            }
        } else {
            if self.targets.contains(&TcpTarget::Nginx) {
                return Err("nginx is a target of run http".into());
            }
            if self.generator == TcpGenerator::Wrk {
                return Err("wrk is a generator of run http".into());
            }
        }
        if self.generator == TcpGenerator::Afxdp && (self.conns > 4000 || self.window > crate::tcp_xdp_gen_max_window())
        {
            return Err(format!(
                "the afxdp generator takes at most 4000 connections and {} in flight each",
                crate::tcp_xdp_gen_max_window()
            ));
        }
        let probe = crate::tcp_gen::TcpGenConfig {
            target: std::net::SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7),
            source: Ipv4Addr::new(198, 18, 0, 1),
            conns: self.conns,
            window: self.window,
            size: self.size,
            duration: self.duration,
            threads: self.threads,
            mode: self.mode.into(),
            rate: None,
        };
        probe.validate()
    }

    /// The targets in round `round`'s order (rotated, so none always goes first).
    pub fn order(&self, round: u32) -> Vec<TcpTarget> {
        let n = self.targets.len();
        (0..n).map(|i| self.targets[(i + round as usize) % n]).collect()
    }
}

/// Which generator drives the load.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generator {
    /// AF_XDP generator on the client veth (cheap per request; the default).
    Afxdp,
    /// Kernel sockets with recvmmsg/sendmmsg (costs more than most servers).
    Kernel,
}

impl Generator {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Generator::Afxdp => "afxdp",
            Generator::Kernel => "kernel",
        }
    }
}

/// A server under test.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The real sluiced, `poll = "adaptive"` (its default).
    Sluice,
    /// sluiced with `poll = "interrupt"`: sleeps whenever a pass finds no work.
    #[value(name = "sluice-interrupt")]
    #[serde(rename = "sluice-interrupt")]
    SluiceInterrupt,
    /// sluiced with `poll = "busy"`: spins on its rings always.
    #[value(name = "sluice-busy")]
    #[serde(rename = "sluice-busy")]
    SluiceBusy,
    /// Kernel UDP echo (SO_REUSEPORT sockets, recvmmsg/sendmmsg, one thread per queue).
    Kernel,
    /// Raw AF_XDP reflector: swap addresses and send back, nothing else.
    Reflect,
}

impl Target {
    /// The CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Sluice => "sluice",
            Target::SluiceInterrupt => "sluice-interrupt",
            Target::SluiceBusy => "sluice-busy",
            Target::Kernel => "kernel",
            Target::Reflect => "reflect",
        }
    }

    /// The poll mode of a sluiced target.
    pub fn sluice_poll(self) -> Option<sluice_engine::config::PollMode> {
        use sluice_engine::config::PollMode;
        match self {
            Target::Sluice => Some(PollMode::Adaptive),
            Target::SluiceInterrupt => Some(PollMode::Interrupt),
            Target::SluiceBusy => Some(PollMode::Busy),
            Target::Kernel | Target::Reflect => None,
        }
    }
}

/// `run udp-echo`.
#[derive(Args, Debug, Clone)]
pub struct UdpEchoArgs {
    /// rx/tx queues of the lab veth (= sluice and reflector cores, kernel echo threads, generator threads).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub queues: u32,
    /// Rounds; each runs every target once, in a rotated order.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// Measured seconds per target and round (after the warm-up).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub duration: Duration,
    /// Warm-up seconds before each measurement.
    #[arg(long, default_value = "1", value_parser = parse_seconds)]
    pub warmup: Duration,
    /// UDP payload bytes (8..=1472).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Requests in flight per queue (the kernel generator spreads window × queues over its flows).
    #[arg(long, default_value_t = 64)]
    pub window: u32,
    /// Source ports (flows) of the generator.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub flows: u16,
    /// Load generator.
    #[arg(long, value_enum, default_value_t = Generator::Afxdp)]
    pub generator: Generator,
    /// What the AF_XDP generator's threads do when idle: yield:N (sched_yield for N empty
    /// passes, then poll()), spin:N (CPU pause instead of yielding) or poll.
    #[arg(long, default_value = "yield:200")]
    pub gen_idle: sluice_engine::idle::IdlePolicy,
    /// Empty passes sluiced (engine.spin_iterations) and the reflector spin before sleeping in
    /// poll() [default: sluiced's default, 200].
    #[arg(long, value_name = "N")]
    pub server_spin: Option<u32>,
    /// Longest spin without work, µs, of sluiced (engine.spin_us) and the reflector
    /// [default: sluiced's default, 3].
    #[arg(long, value_name = "US")]
    pub server_spin_us: Option<u32>,
    /// Run sluiced with flow_owner = "hash" (owner core = flow hash mod cores) instead of
    /// learned owners, to measure the handoffs a fixed function costs on veth.
    #[arg(long)]
    pub hashed_owners: bool,
    /// Targets, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sluice,sluice-interrupt,kernel,reflect")]
    pub targets: Vec<Target>,
    /// The sluiced binary (default: the sluiced next to this executable).
    #[arg(long, value_name = "PATH")]
    pub sluiced: Option<PathBuf>,
    /// Open loop as well: after the closed-loop rounds, every target answers the
    /// same fixed rate of requests/s (afxdp generator), so CPU per reply is compared at
    /// equal load. `auto`: half the slowest target's closed-loop median; `none`: skip;
    /// `sweep`: rates stepped up to past every target's knee; or a number.
    #[arg(long, default_value = "auto", value_name = "auto|none|sweep|N")]
    pub rate: OpenLoopRate,
    /// Skip the closed-loop rounds (with `--rate N`): only the open loop.
    #[arg(long)]
    pub open_loop_only: bool,
    /// Write the results (schema sluice-bench/results/v1) as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write results.json, report.md and report.html (with plots) into DIR.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// What reports call this run [default: the scenario's name].
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
}

/// `--rate` of `run udp-echo`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OpenLoopRate {
    /// Half the slowest target's closed-loop median.
    Auto,
    /// No open-loop rounds.
    Skip,
    /// This many requests per second.
    Fixed(f64),
    /// Step the rate up (fractions of the fastest closed-loop median) until
    /// no target keeps up, one round per step.
    Sweep,
}

impl std::fmt::Display for OpenLoopRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenLoopRate::Auto => f.write_str("auto"),
            OpenLoopRate::Skip => f.write_str("none"),
            OpenLoopRate::Sweep => f.write_str("sweep"),
            OpenLoopRate::Fixed(r) => write!(f, "{r}"),
        }
    }
}

impl std::str::FromStr for OpenLoopRate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(OpenLoopRate::Auto),
            "none" => Ok(OpenLoopRate::Skip),
            "sweep" => Ok(OpenLoopRate::Sweep),
            _ => {
                let v: f64 = s.parse().map_err(|_| format!("{s:?}: expected auto, none or requests per second"))?;
                if !(1.0..=crate::xdp_gen::MAX_RATE).contains(&v) {
                    return Err(format!("rate {v} must be 1..={}", crate::xdp_gen::MAX_RATE));
                }
                Ok(OpenLoopRate::Fixed(v))
            }
        }
    }
}

/// Parses seconds (`5`, `0.5`) into a positive duration of at most [`MAX_SECONDS`].
pub fn parse_seconds(s: &str) -> Result<Duration, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(v > 0.0 && v <= MAX_SECONDS) {
        return Err(format!("{s} s is out of range (0 < seconds <= {MAX_SECONDS})"));
    }
    Ok(Duration::from_secs_f64(v))
}

impl UdpEchoArgs {
    /// Checks what clap cannot: distinct targets, sizes.
    pub fn validate(&self) -> Result<(), String> {
        if self.targets.is_empty() {
            return Err("--targets is empty".into());
        }
        if self.open_loop_only && !matches!(self.rate, OpenLoopRate::Fixed(_)) {
            return Err("--open-loop-only needs --rate N (auto is derived from the closed-loop rounds)".into());
        }
        if self.generator == Generator::Kernel && matches!(self.rate, OpenLoopRate::Fixed(_) | OpenLoopRate::Sweep) {
            return Err("--rate N and --rate sweep need the afxdp generator (the kernel one runs closed loop)".into());
        }
        for (i, t) in self.targets.iter().enumerate() {
            if self.targets[..i].contains(t) {
                return Err(format!("target {} is listed twice", t.as_str()));
            }
        }
        if !(crate::kernel_gen::MIN_PAYLOAD..=crate::frame::MAX_PAYLOAD).contains(&self.size) {
            return Err(format!(
                "--size {} must be {}..={}",
                self.size,
                crate::kernel_gen::MIN_PAYLOAD,
                crate::frame::MAX_PAYLOAD
            ));
        }
        if !(1..=crate::xdp_gen::MAX_WINDOW).contains(&self.window)
            || self.window * self.queues > crate::xdp_gen::MAX_IN_FLIGHT
        {
            return Err(format!(
                "--window {} × --queues {} must stay within 1..={} per queue and {} in all",
                self.window,
                self.queues,
                crate::xdp_gen::MAX_WINDOW,
                crate::xdp_gen::MAX_IN_FLIGHT
            ));
        }
        if u32::from(self.flows) < self.queues {
            return Err(format!("--flows {} must be at least --queues {}", self.flows, self.queues));
        }
        Ok(())
    }

    /// The target order of round `round` (0-based): the list rotated left by `round`.
    pub fn order(&self, round: u32) -> Vec<Target> {
        let mut v = self.targets.clone();
        if !v.is_empty() {
            let k = round as usize % v.len();
            v.rotate_left(k);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sluice-bench").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn lab_commands() {
        match parse(&["lab", "up"]).unwrap().command {
            Cmd::Lab(LabCmd::Up { name, queues }) => assert_eq!((name.as_str(), queues), ("demo", 2)),
            c => panic!("{c:?}"),
        }
        match parse(&["lab", "up", "--name", "x1", "--queues", "4"]).unwrap().command {
            Cmd::Lab(LabCmd::Up { name, queues }) => assert_eq!((name.as_str(), queues), ("x1", 4)),
            c => panic!("{c:?}"),
        }
        assert!(parse(&["lab", "up", "--queues", "0"]).is_err());
        match parse(&["lab", "down", "demo"]).unwrap().command {
            Cmd::Lab(LabCmd::Down { name }) => assert_eq!(name, "demo"),
            c => panic!("{c:?}"),
        }
        assert!(parse(&["lab", "down"]).is_err(), "down needs a name");
        match parse(&["lab", "status"]).unwrap().command {
            Cmd::Lab(LabCmd::Status { name }) => assert_eq!(name, None),
            c => panic!("{c:?}"),
        }
        match parse(&["lab", "status", "demo"]).unwrap().command {
            Cmd::Lab(LabCmd::Status { name }) => assert_eq!(name.as_deref(), Some("demo")),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn load_udp_defaults_and_options() {
        let c = parse(&["load", "udp", "--netns", "sluice-demo-c", "--target", "198.18.0.2:7"]).unwrap();
        let Cmd::Load(LoadCmd::Udp(a)) = c.command else { panic!() };
        assert_eq!(a.netns, "sluice-demo-c");
        assert_eq!(a.target, "198.18.0.2:7".parse().unwrap());
        assert_eq!(a.source, Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!((a.flows, a.window, a.size, a.threads), (64, 8, 64, 1));
        assert_eq!(a.duration, Duration::from_secs(3));
        assert_eq!(a.json, None);
        let c = parse(&[
            "load",
            "udp",
            "--netns",
            "n",
            "--target",
            "198.18.0.2:9",
            "--source",
            "198.18.0.5",
            "--flows",
            "8",
            "--window",
            "2",
            "--size",
            "100",
            "--duration",
            "0.5",
            "--threads",
            "2",
            "--json",
            "/tmp/o.json",
        ])
        .unwrap();
        let Cmd::Load(LoadCmd::Udp(a)) = c.command else { panic!() };
        assert_eq!((a.flows, a.window, a.size, a.threads), (8, 2, 100, 2));
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(a.json, Some(PathBuf::from("/tmp/o.json")));
        assert!(parse(&["load", "udp", "--netns", "n"]).is_err(), "--target is required");
        assert!(parse(&["load", "udp", "--netns", "n", "--target", "nope"]).is_err());
        assert!(parse(&["load", "udp", "--netns", "n", "--target", "198.18.0.2:7", "--duration", "0"]).is_err());
    }

    #[test]
    fn run_udp_echo_defaults_and_options() {
        let Cmd::Run(Scenario::UdpEcho(a)) = parse(&["run", "udp-echo"]).unwrap().command else { panic!() };
        assert_eq!((a.queues, a.rounds, a.size, a.window, a.flows), (2, 3, 64, 64, 64));
        assert_eq!((a.duration, a.warmup), (Duration::from_secs(5), Duration::from_secs(1)));
        assert_eq!(a.generator, Generator::Afxdp);
        assert_eq!(a.gen_idle, sluice_engine::idle::IdlePolicy::yielding(200));
        assert_eq!(a.server_spin, None);
        assert_eq!(a.targets, vec![Target::Sluice, Target::SluiceInterrupt, Target::Kernel, Target::Reflect]);
        assert_eq!(a.rate, OpenLoopRate::Auto);
        assert!(a.validate().is_ok());
        for (arg, want) in
            [("none", OpenLoopRate::Skip), ("sweep", OpenLoopRate::Sweep), ("250000", OpenLoopRate::Fixed(250_000.0))]
        {
            let Cmd::Run(Scenario::UdpEcho(a)) = parse(&["run", "udp-echo", "--rate", arg]).unwrap().command else {
                panic!()
            };
            assert_eq!(a.rate, want);
        }
        assert!(parse(&["run", "udp-echo", "--rate", "0"]).is_err());
        assert!(parse(&["run", "udp-echo", "--rate", "fast"]).is_err());
        let Cmd::Run(Scenario::UdpEcho(a)) = parse(&[
            "run",
            "udp-echo",
            "--queues",
            "1",
            "--rounds",
            "1",
            "--duration",
            "1",
            "--targets",
            "kernel,reflect",
            "--generator",
            "kernel",
            "--sluiced",
            "/x/sluiced",
            "--json",
            "r.json",
            "--server-spin",
            "0",
            "--gen-idle",
            "poll",
        ])
        .unwrap()
        .command
        else {
            panic!()
        };
        assert_eq!(a.targets, vec![Target::Kernel, Target::Reflect]);
        assert_eq!(a.generator, Generator::Kernel);
        assert_eq!(a.sluiced, Some(PathBuf::from("/x/sluiced")));
        assert_eq!(a.json, Some(PathBuf::from("r.json")));
        assert_eq!(a.server_spin, Some(0));
        assert_eq!(a.gen_idle, sluice_engine::idle::IdlePolicy::spin(0));
        assert!(parse(&["run", "udp-echo", "--targets", "nginx"]).is_err());
        let Cmd::Run(Scenario::UdpEcho(a)) =
            parse(&["run", "udp-echo", "--targets", "sluice-busy,sluice-interrupt"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!(a.targets, vec![Target::SluiceBusy, Target::SluiceInterrupt]);
        assert_eq!(Target::SluiceBusy.sluice_poll(), Some(sluice_engine::config::PollMode::Busy));
        assert_eq!(Target::Kernel.sluice_poll(), None);
        assert!(parse(&["run", "udp-echo", "--gen-idle", "sometimes"]).is_err());
        assert!(parse(&["run", "udp-echo", "--generator", "dpdk"]).is_err());
        assert!(parse(&["run", "http2"]).is_err());
    }

    #[test]
    fn tcp_echo_and_load_tcp_options() {
        let Cmd::Run(Scenario::TcpEcho(mut a)) = parse(&["run", "tcp-echo"]).unwrap().command else { panic!() };
        a.resolve(TcpScenario::Echo).unwrap();
        assert_eq!((a.conns, a.window, a.size, a.mode), (64, 1, 64, TcpModeArg::Rr));
        assert_eq!((a.generator, a.scenario().as_str()), (TcpGenerator::Afxdp, "tcp-rr"));
        let Cmd::Run(Scenario::TcpCrr(mut c)) = parse(&["run", "tcp-crr", "--connections", "8"]).unwrap().command
        else {
            panic!()
        };
        c.resolve(TcpScenario::Crr).unwrap();
        assert_eq!((c.mode, c.generator, c.conns), (TcpModeArg::Crr, TcpGenerator::Afxdp, 8));
        assert_eq!(c.rate, OpenLoopRate::Auto, "afxdp crr: open loop too, opens on a schedule");
        c.validate().unwrap();
        let Cmd::Run(Scenario::TcpRr(mut r)) = parse(&["run", "tcp-rr", "--mode", "crr"]).unwrap().command else {
            panic!()
        };
        assert!(r.resolve(TcpScenario::Rr).unwrap_err().contains("contradicts"));
        let Cmd::Run(Scenario::Http(mut h)) = parse(&["run", "http"]).unwrap().command else { panic!() };
        h.resolve(TcpScenario::Http).unwrap();
        assert_eq!((h.generator, h.port(), h.scenario().as_str()), (TcpGenerator::Afxdp, 80, "http"));
        assert_eq!(h.targets, vec![TcpTarget::Sluice, TcpTarget::SluiceInterrupt, TcpTarget::Nginx]);
        h.validate().unwrap();
        let Cmd::Run(Scenario::Http(mut h)) = parse(&["run", "http", "--close", "--rate", "none"]).unwrap().command
        else {
            panic!()
        };
        h.resolve(TcpScenario::Http).unwrap();
        assert_eq!((h.generator, h.scenario().as_str()), (TcpGenerator::Wrk, "http-close"));
        h.validate().unwrap();
        let Cmd::Run(Scenario::Http(mut h)) = parse(&["run", "http", "--close"]).unwrap().command else { panic!() };
        h.resolve(TcpScenario::Http).unwrap();
        assert_eq!(h.rate, OpenLoopRate::Skip, "wrk: closed loop unless asked");
        h.validate().unwrap();
        let Cmd::Run(Scenario::Http(mut h)) = parse(&["run", "http", "--close", "--rate", "1000"]).unwrap().command
        else {
            panic!()
        };
        h.resolve(TcpScenario::Http).unwrap();
        assert!(h.validate().unwrap_err().contains("closed loop"));
        let Cmd::Run(Scenario::Http(mut h)) = parse(&["run", "http", "--targets", "kernel"]).unwrap().command else {
            panic!()
        };
        h.resolve(TcpScenario::Http).unwrap();
        assert!(h.validate().unwrap_err().contains("nginx"));
        let Cmd::Run(Scenario::TcpRr(mut r)) = parse(&["run", "tcp-rr", "--targets", "nginx"]).unwrap().command else {
            panic!()
        };
        r.resolve(TcpScenario::Rr).unwrap();
        assert!(r.validate().is_err());
        let Cmd::Run(Scenario::TcpCrr(mut c)) =
            parse(&["run", "tcp-crr", "--generator", "afxdp", "--rate", "1000"]).unwrap().command
        else {
            panic!()
        };
        c.resolve(TcpScenario::Crr).unwrap();
        c.validate().expect("the afxdp generator's crr runs open loop too");
        let Cmd::Run(Scenario::TcpCrr(mut c)) = parse(&["run", "tcp-crr", "--generator", "kernel"]).unwrap().command
        else {
            panic!()
        };
        c.resolve(TcpScenario::Crr).unwrap();
        assert_eq!(c.rate, OpenLoopRate::Auto, "the kernel generator's crr has an open loop");
        assert_eq!(a.targets, vec![TcpTarget::Sluice, TcpTarget::SluiceInterrupt, TcpTarget::Kernel]);
        assert_eq!(a.order(1), vec![TcpTarget::SluiceInterrupt, TcpTarget::Kernel, TcpTarget::Sluice]);
        a.validate().unwrap();
        let Cmd::Run(Scenario::TcpEcho(mut a)) =
            parse(&["run", "tcp-echo", "--mode", "crr", "--targets", "kernel,kernel"]).unwrap().command
        else {
            panic!()
        };
        a.resolve(TcpScenario::Echo).unwrap();
        assert!(a.validate().unwrap_err().contains("twice"));
        let Cmd::Run(Scenario::TcpEcho(mut a)) = parse(&["run", "tcp-echo", "--size", "4"]).unwrap().command else {
            panic!()
        };
        a.resolve(TcpScenario::Echo).unwrap();
        assert!(a.validate().unwrap_err().contains("size"));
        let Cmd::Load(LoadCmd::Tcp(l)) =
            parse(&["load", "tcp", "--netns", "sluice-x-c", "--target", "198.18.0.2:7", "--rate", "1000"])
                .unwrap()
                .command
        else {
            panic!()
        };
        assert_eq!((l.rate, l.mode, l.conns), (Some(1000.0), TcpModeArg::Rr, 64));
        assert!(parse(&["load", "tcp", "--netns", "n", "--target", "198.18.0.2:7", "--mode", "udp"]).is_err());
    }

    #[test]
    fn udp_echo_validation_and_round_order() {
        let Cmd::Run(Scenario::UdpEcho(mut a)) =
            parse(&["run", "udp-echo", "--targets", "sluice,kernel,reflect"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!(a.order(0), vec![Target::Sluice, Target::Kernel, Target::Reflect]);
        assert_eq!(a.order(1), vec![Target::Kernel, Target::Reflect, Target::Sluice]);
        assert_eq!(a.order(2), vec![Target::Reflect, Target::Sluice, Target::Kernel]);
        assert_eq!(a.order(3), a.order(0));
        a.targets = vec![Target::Kernel, Target::Kernel];
        assert!(a.validate().is_err(), "duplicate target");
        a.targets = vec![Target::Kernel];
        a.size = 4;
        assert!(a.validate().is_err());
        a.size = 64;
        a.window = 5000;
        assert!(a.validate().is_err());
        a.window = 64;
        a.flows = 1;
        assert!(a.validate().is_err(), "fewer flows than queues");
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
        for bad in ["0", "-1", "x", "1e9", "NaN", "inf"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
