//! The configuration file (TOML): parsing, defaults and validation.
//!
//! Validation happens in two steps, both before anything is attached:
//! [`Config::parse`] checks the file itself (unknown keys, types, addresses,
//! duplicate listeners, kinds this version serves), and
//! [`Config::check_system`] checks it against the machine (interface, queues,
//! cores, privileges). Every error names the file and the field.
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// The embedded default configuration, used when `sluiced` gets no
/// `--config`: UDP echo and discard on the lab's server address.
pub const DEFAULT_CONFIG: &str = include_str!("../../deploy/sluice.default.toml");

/// A configuration problem, naming where it is.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {field}: {problem}")]
pub struct ConfigError {
    /// The file (or "embedded default").
    pub source_name: String,
    /// The field, as a TOML path (`engine.queues`, `service[1].listen`).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// How a core waits for work.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PollMode {
    /// Spin on the rings always (lowest latency, one full core each).
    Busy,
    /// Spin while there is work, then sleep in poll() (the default).
    #[default]
    Adaptive,
    /// Sleep in poll() whenever a pass finds no work.
    Interrupt,
}

/// Whether to ask for zero-copy.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopy {
    /// Zero-copy if the driver offers it, else copy mode.
    #[default]
    Auto,
    /// Zero-copy or fail.
    On,
    /// Copy mode.
    Off,
}

/// Who answers ARP for the service addresses.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArpMode {
    /// sluice answers for service addresses that no local interface has;
    /// the kernel answers for the rest (the default).
    #[default]
    Auto,
    /// sluice answers for every service address.
    Always,
    /// sluice never answers ARP.
    Never,
}

/// How the owner core of a flow is found.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FlowOwner {
    /// The first core to see a flow owns it (shared directory; the default).
    #[default]
    Learned,
    /// A fixed function of the flow: its hash modulo the number of cores.
    Hash,
    /// The queue the NIC's RSS delivers the flow to (needs `[engine.rss]`).
    Rss,
}

/// The NIC's receive-side scaling, as `ethtool -x IFACE` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssConfig {
    /// The Toeplitz key.
    pub key: Vec<u8>,
    /// The indirection table (`None`: the kernel's default, entry i is
    /// queue i mod the NIC's rx queues, over `table_size` entries).
    pub indirection: Option<Vec<u16>>,
    /// Entries of the default indirection table (with no `indirection`).
    pub table_size: u32,
    /// Whether the NIC hashes UDP with its ports (`ethtool -n IFACE
    /// rx-flow-hash udp4` says "L4 bytes 0 & 1 [TCP/UDP src port]").
    pub udp_l4: bool,
}

impl RssConfig {
    /// The indirection table of a NIC with `rx_queues` rx queues.
    pub fn table(&self, rx_queues: u32) -> Vec<u16> {
        match &self.indirection {
            Some(t) => t.clone(),
            None => (0..self.table_size).map(|i| (i % rx_queues.max(1)) as u16).collect(),
        }
    }

    /// The table of a NIC with `rx_queues` queues, of which sluice serves
    /// `0..served`: an entry naming a queue sluice does not serve would be
    /// a flow's owner, or where an active open's replies come in, and no
    /// socket is there.
    fn checked_table(&self, rx_queues: u32, served: u32, ifname: &str) -> Result<Vec<u16>, String> {
        let table = self.table(rx_queues);
        match table.iter().find(|&&q| u32::from(q) >= served) {
            None => Ok(table),
            Some(bad) if self.indirection.is_some() => {
                Err(format!("names queue {bad}, but sluice serves queues 0..{served} of {ifname}"))
            }
            Some(_) => Err(format!(
                "the default table spreads flows over all {rx_queues} rx queues of {ifname}, but sluice serves \
                 {served}: give the NIC's table (`ethtool -X {ifname} equal {served}` makes one of them, \
                 `ethtool -x {ifname}` lists it)"
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRss {
    key: String,
    indirection: Option<Vec<u16>>,
    table_size: Option<u32>,
    #[serde(default)]
    udp_l4: bool,
}

/// What a service does with its traffic.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceKind {
    /// Send every datagram back to its sender.
    Echo,
    /// Count and drop.
    Discard,
    /// HTTP responder (TCP; comes with the TCP stack).
    Http,
    /// TCP load balancer (comes with the load balancer).
    TcpProxy,
    /// UDP load balancer (comes with the load balancer).
    UdpForward,
    /// sluice-bench's TCP load generator: a client that sends requests on
    /// connections it opens (not a service sluiced serves).
    RrClient,
}

impl ServiceKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Echo => "echo",
            ServiceKind::Discard => "discard",
            ServiceKind::Http => "http",
            ServiceKind::TcpProxy => "tcp-proxy",
            ServiceKind::UdpForward => "udp-forward",
            ServiceKind::RrClient => "rr-client",
        }
    }
}

/// Transport protocol of a service.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Proto {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Udp => 17,
            Proto::Tcp => 6,
        }
    }

    /// "udp" or "tcp".
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    engine: RawEngine,
    #[serde(default)]
    tcp: RawTcp,
    #[serde(default)]
    service: Vec<RawService>,
}

/// The `[tcp]` section: every key has a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTcp {
    max_connections: u32,
    syn_backlog: u32,
    syncookies: bool,
    mss: u16,
    rcv_buf_kb: u32,
    snd_buf_kb: u32,
    window_scaling: bool,
    timestamps: bool,
    sack: bool,
    nagle: bool,
    delayed_ack_ms: u32,
    rto_min_ms: u32,
    rto_max_ms: u32,
    syn_retries: u8,
    retries: u8,
    time_wait_s: u32,
    fin_wait2_s: u32,
    keepalive_s: u32,
    keepalive_interval_s: u32,
    keepalive_probes: u8,
    congestion: Congestion,
    initial_window: u32,
    tail_loss_probe: bool,
}

impl Default for RawTcp {
    fn default() -> Self {
        RawTcp {
            max_connections: 65536,
            syn_backlog: 1024,
            syncookies: true,
            mss: 1460,
            rcv_buf_kb: 256,
            snd_buf_kb: 256,
            window_scaling: true,
            timestamps: true,
            sack: true,
            nagle: false,
            delayed_ack_ms: 40,
            rto_min_ms: 200,
            rto_max_ms: 120_000,
            syn_retries: 6,
            retries: 15,
            time_wait_s: 60,
            fin_wait2_s: 60,
            keepalive_s: 7200,
            keepalive_interval_s: 75,
            keepalive_probes: 9,
            congestion: Congestion::Cubic,
            initial_window: 10,
            tail_loss_probe: true,
        }
    }
}

/// TCP congestion control.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Congestion {
    /// RFC 9438 (the default, as in Linux).
    #[default]
    Cubic,
    /// RFC 5681 / 6582.
    Newreno,
}

/// What a frame must keep beside a TCP segment's payload: the kernel's rx
/// headroom (XDP_PACKET_HEADROOM, 256) and Ethernet, IPv4 and TCP headers
/// with 40 bytes of options.
pub const MAX_TCP_OVERHEAD: u32 = 256 + 14 + 20 + 60;

/// TCP settings (the `[tcp]` section).
#[derive(Clone, Debug, PartialEq)]
pub struct TcpSettings {
    /// Connections the engine holds at most, all cores together (a core
    /// may hold any share of them).
    pub max_connections: u32,
    /// Half-open connections per listener and core; beyond, SYN cookies.
    pub syn_backlog: u32,
    /// Answer with SYN cookies when the SYN queue is full (else drop).
    pub syncookies: bool,
    /// What each connection does (sizes, options, timers).
    pub conn: sluice_tcp::TcpConfig,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/sluice/ctl.sock")
}
fn default_batch() -> u32 {
    64
}
fn default_ring() -> u32 {
    2048
}
fn default_frame_size() -> u32 {
    4096
}
fn default_idle() -> u64 {
    30
}
fn default_spin() -> u32 {
    200
}
fn default_spin_us() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    interface: String,
    queues: Option<u32>,
    cores: Option<Vec<usize>>,
    #[serde(default = "default_socket")]
    control_socket: PathBuf,
    #[serde(default = "default_batch")]
    batch_size: u32,
    #[serde(default)]
    poll: PollMode,
    #[serde(default = "default_spin")]
    spin_iterations: u32,
    #[serde(default = "default_spin_us")]
    spin_us: u32,
    #[serde(default)]
    zero_copy: ZeroCopy,
    #[serde(default)]
    answer_arp: ArpMode,
    #[serde(default)]
    flow_owner: FlowOwner,
    rss: Option<RawRss>,
    frames: Option<u32>,
    umem_mb: Option<u32>,
    #[serde(default = "default_frame_size")]
    frame_size: u32,
    #[serde(default = "default_ring")]
    ring_size: u32,
    #[serde(default = "default_idle")]
    flow_idle_timeout_s: u64,
    metrics_listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    proto: Proto,
    listen: String,
    kind: ServiceKind,
    #[serde(default)]
    backends: Vec<String>,
    /// `[service.http]`, for kind = "http".
    http: Option<RawHttp>,
}

/// `[service.http]`: what the HTTP responder answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    status: u16,
    body: Option<String>,
    body_file: Option<PathBuf>,
    content_type: String,
    max_header_bytes: u32,
    max_body_kb: u32,
    keep_alive: bool,
    idle_timeout_s: u32,
    request_timeout_s: u32,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            status: 200,
            body: None,
            body_file: None,
            content_type: "text/plain; charset=utf-8".into(),
            max_header_bytes: 8192,
            max_body_kb: 1024,
            keep_alive: true,
            idle_timeout_s: 60,
            request_timeout_s: 30,
        }
    }
}

/// What an HTTP service answers to every request (a validated
/// `[service.http]`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HttpSettings {
    /// Status code of the answer.
    pub status: u16,
    /// Its body (not serialized: it may be a file's worth).
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Its Content-Type.
    pub content_type: String,
    /// Longest request head taken (beyond: 431).
    pub max_header_bytes: u32,
    /// Largest request body taken (beyond: 413).
    pub max_body_bytes: u64,
    /// Keep connections open between requests (else every answer closes).
    pub keep_alive: bool,
    /// A connection with no request under way, or whose answer the peer
    /// does not take, is closed after this long (seconds).
    pub idle_timeout_s: u32,
    /// A request's head and body must arrive within this long of its first
    /// byte (else 408 and close), seconds.
    pub request_timeout_s: u32,
}

/// The largest body an HTTP service answers with.
pub const MAX_HTTP_BODY: usize = 1 << 20;

/// Engine settings.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Interface to attach to.
    pub interface: String,
    /// Queues to serve (`None`: all rx queues of the interface).
    pub queues: Option<u32>,
    /// CPU of each queue's worker (`None`: CPU i for queue i).
    pub cores: Option<Vec<usize>>,
    /// Path of the control socket.
    pub control_socket: PathBuf,
    /// Frames per rx/tx batch.
    pub batch_size: u32,
    /// How cores wait.
    pub poll: PollMode,
    /// Empty passes an adaptive core spins (yielding the CPU) before it sleeps.
    pub spin_iterations: u32,
    /// Longest time, µs, an adaptive core spins without work before it sleeps.
    pub spin_us: u32,
    /// Zero-copy request.
    pub zero_copy: ZeroCopy,
    /// Who answers ARP for the service addresses.
    pub answer_arp: ArpMode,
    /// How a flow's owner core is found.
    pub flow_owner: FlowOwner,
    /// The NIC's RSS settings, if given: active opens pick local ports
    /// whose packets arrive on the opening core.
    pub rss: Option<RssConfig>,
    /// UMEM frames in all (`None`: from `umem_mb`, else two rings' worth
    /// per queue).
    pub frames: Option<u32>,
    /// UMEM size in MiB, the other way to say `frames`.
    pub umem_mb: Option<u32>,
    /// Bytes per frame.
    pub frame_size: u32,
    /// Slots of each rx/tx/fill/completion ring.
    pub ring_size: u32,
    /// Seconds after which an idle stateless flow's ownership (UDP) lapses;
    /// TCP state pins its flow's owner and frees it when it is gone.
    pub flow_idle_timeout_s: u64,
    /// Loopback address of the Prometheus endpoint, if any.
    pub metrics_listen: Option<SocketAddr>,
}

/// One service.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ServiceConfig {
    /// Unique name.
    pub name: String,
    /// Transport.
    pub proto: Proto,
    /// Address and port it listens on.
    pub listen: SocketAddr,
    /// What it does.
    pub kind: ServiceKind,
    /// For kind = "http": what it answers.
    pub http: Option<HttpSettings>,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it came from, for messages.
    pub source_name: String,
    /// Engine settings.
    pub engine: EngineConfig,
    /// TCP settings.
    pub tcp: TcpSettings,
    /// Services, in file order (the index is the service id).
    pub services: Vec<ServiceConfig>,
}

struct Errs<'a> {
    source: &'a str,
}

impl Errs<'_> {
    fn at(&self, field: impl fmt::Display, problem: impl fmt::Display) -> ConfigError {
        ConfigError { source_name: self.source.to_string(), field: field.to_string(), problem: problem.to_string() }
    }
}

fn check_range(e: &Errs, field: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(e.at(format!("engine.{field}"), format!("{v} is out of range ({lo}..={hi})")));
    }
    Ok(())
}

fn validate_rss(e: &Errs, r: &RawRss) -> Result<RssConfig, ConfigError> {
    let key = crate::rss::parse_key(&r.key).map_err(|p| e.at("engine.rss.key", p))?;
    crate::rss::check_key(&key).map_err(|p| e.at("engine.rss.key", p))?;
    if let Some(t) = &r.indirection {
        if r.table_size.is_some() {
            return Err(e.at("engine.rss.table_size", "set either indirection or table_size, not both"));
        }
        if t.is_empty() || t.len() > 65536 {
            return Err(e.at("engine.rss.indirection", format!("{} entries: 1..=65536", t.len())));
        }
    }
    // No guess at the table: sizes differ by NIC (128, 512, ...), and a
    // wrong one sends flows to queues nobody expects.
    let table_size = match (&r.indirection, r.table_size) {
        (Some(t), _) => t.len() as u32,
        (None, Some(n)) => n,
        (None, None) => {
            return Err(e.at(
                "engine.rss",
                "give the NIC's indirection table (indirection = [...]) or its size (table_size): \
                 `ethtool -x IFACE` shows both",
            ))
        }
    };
    if !(1..=65536).contains(&table_size) {
        return Err(e.at("engine.rss.table_size", format!("{table_size} is out of range (1..=65536)")));
    }
    Ok(RssConfig { key, indirection: r.indirection.clone(), table_size, udp_l4: r.udp_l4 })
}

fn check_pow2(e: &Errs, field: &str, v: u32) -> Result<(), ConfigError> {
    if !v.is_power_of_two() {
        return Err(e.at(format!("engine.{field}"), format!("{v} must be a power of two")));
    }
    Ok(())
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            source_name: path.display().to_string(),
            field: "(file)".into(),
            problem: format!("cannot read: {err}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The embedded default.
    pub fn embedded_default() -> Config {
        Self::parse(DEFAULT_CONFIG, "embedded default").expect("the embedded default config is valid (tested)")
    }

    /// Parses and validates TOML text; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let e = Errs { source: source_name };
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let span = err.span().map(|s| line_of(text, s.start));
            let field = span.map(|l| format!("line {l}")).unwrap_or_else(|| "(syntax)".into());
            e.at(field, err.message().trim())
        })?;
        let r = raw.engine;
        if r.interface.is_empty() || r.interface.len() > 15 || r.interface.contains(['/', ' ']) {
            return Err(e.at("engine.interface", format!("{:?} is not a valid interface name", r.interface)));
        }
        if let Some(q) = r.queues {
            check_range(&e, "queues", q as u64, 1, sluice_ebpf::abi::MAX_QUEUES as u64)?;
        }
        if let Some(cores) = &r.cores {
            if cores.is_empty() {
                return Err(e.at("engine.cores", "must list at least one CPU"));
            }
            if let Some(q) = r.queues {
                if cores.len() != q as usize {
                    return Err(e.at("engine.cores", format!("lists {} CPUs for {q} queues", cores.len())));
                }
            }
        }
        check_range(&e, "batch_size", r.batch_size as u64, 1, 256)?;
        check_range(&e, "spin_us", r.spin_us as u64, 0, 1_000_000)?;
        if let Some(f) = r.frames {
            check_range(&e, "frames", f as u64, 64, 1 << 20)?;
        }
        if r.frame_size != 2048 && r.frame_size != 4096 {
            return Err(e.at("engine.frame_size", format!("{} must be 2048 or 4096", r.frame_size)));
        }
        if let Some(mb) = r.umem_mb {
            if r.frames.is_some() {
                return Err(e.at("engine.umem_mb", "set either frames or umem_mb, not both"));
            }
            // At most 2^20 frames, as `frames` allows: 2^20 x frame_size bytes.
            let max_mb = ((1u64 << 20) * r.frame_size as u64) >> 20;
            check_range(&e, "umem_mb", mb as u64, 1, max_mb)?;
        }
        if let Some(cores) = &r.cores {
            let mut seen = HashSet::new();
            if let Some(dup) = cores.iter().find(|c| !seen.insert(**c)) {
                return Err(e.at("engine.cores", format!("CPU {dup} is listed twice: one worker per CPU")));
            }
        }
        check_pow2(&e, "ring_size", r.ring_size)?;
        check_range(&e, "ring_size", r.ring_size as u64, 64, 16384)?;
        check_range(&e, "flow_idle_timeout_s", r.flow_idle_timeout_s, 1, 86400)?;
        let metrics_listen = match &r.metrics_listen {
            None => None,
            Some(s) => {
                let a: SocketAddr =
                    s.parse().map_err(|_| e.at("engine.metrics_listen", format!("{s:?} is not an address:port")))?;
                if !a.ip().is_loopback() {
                    return Err(e.at("engine.metrics_listen", format!("{a} is not a loopback address")));
                }
                Some(a)
            }
        };
        let rss = match &r.rss {
            None if r.flow_owner == FlowOwner::Rss => {
                return Err(e.at("engine.flow_owner", "\"rss\" needs the NIC's settings in [engine.rss]"));
            }
            None => None,
            Some(_) if r.flow_owner == FlowOwner::Hash => {
                return Err(e.at(
                    "engine.flow_owner",
                    "\"hash\" ignores the NIC's RSS given in [engine.rss]: use \"rss\" or \"learned\"",
                ));
            }
            Some(raw) => Some(validate_rss(&e, raw)?),
        };
        let engine = EngineConfig {
            interface: r.interface,
            queues: r.queues,
            cores: r.cores,
            control_socket: r.control_socket,
            batch_size: r.batch_size,
            poll: r.poll,
            spin_iterations: r.spin_iterations,
            spin_us: r.spin_us,
            zero_copy: r.zero_copy,
            answer_arp: r.answer_arp,
            flow_owner: r.flow_owner,
            rss,
            frames: r.frames,
            umem_mb: r.umem_mb,
            frame_size: r.frame_size,
            ring_size: r.ring_size,
            flow_idle_timeout_s: r.flow_idle_timeout_s,
            metrics_listen,
        };
        let tcp = validate_tcp(&e, &raw.tcp)?;
        // A segment is built in one frame: headers (with the longest
        // options) and a full MSS must fit behind the kernel's rx headroom.
        let room = engine.frame_size.saturating_sub(MAX_TCP_OVERHEAD);
        if tcp.conn.mss as u32 > room {
            return Err(e.at(
                "tcp.mss",
                format!(
                    "{} does not fit a {}-byte frame (at most {room}: {MAX_TCP_OVERHEAD} bytes go to headroom and headers)",
                    tcp.conn.mss, engine.frame_size
                ),
            ));
        }
        let services = validate_services(&e, raw.service)?;
        let cfg = Config { source_name: source_name.to_string(), engine, tcp, services };
        // Steering keys: one per service, plus ICMP echo and (possibly) ARP
        // per service address; the XDP program's map holds MAX_SERVICES.
        let keys = cfg.services.len() + 2 * cfg.service_addrs().len();
        let max = sluice_ebpf::abi::MAX_SERVICES as usize;
        if keys > max {
            return Err(e.at(
                "service",
                format!(
                    "{} services on {} addresses need {keys} steering keys (a service each, ICMP and ARP per \
                     address); the XDP program holds {max}",
                    cfg.services.len(),
                    cfg.service_addrs().len()
                ),
            ));
        }
        Ok(cfg)
    }

    /// Whether any service is a TCP one (the TCP stack runs).
    pub fn serves_tcp(&self) -> bool {
        self.services.iter().any(|s| s.proto == Proto::Tcp)
    }

    /// The IPv4 addresses that have a service.
    pub fn service_addrs(&self) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = self
            .services
            .iter()
            .filter_map(|s| match s.listen.ip() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn tcp_range(e: &Errs, field: &str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(e.at(format!("tcp.{field}"), format!("{v} is out of range ({lo}..={hi})")));
    }
    Ok(())
}

fn validate_tcp(e: &Errs, t: &RawTcp) -> Result<TcpSettings, ConfigError> {
    tcp_range(e, "max_connections", t.max_connections as u64, 16, 1 << 24)?;
    tcp_range(e, "syn_backlog", t.syn_backlog as u64, 16, 1 << 20)?;
    tcp_range(e, "mss", t.mss as u64, 536, 9000 - 40)?;
    tcp_range(e, "rcv_buf_kb", t.rcv_buf_kb as u64, 4, 64 * 1024)?;
    tcp_range(e, "snd_buf_kb", t.snd_buf_kb as u64, 4, 64 * 1024)?;
    tcp_range(e, "delayed_ack_ms", t.delayed_ack_ms as u64, 0, 500)?;
    tcp_range(e, "rto_min_ms", t.rto_min_ms as u64, 1, 10_000)?;
    tcp_range(e, "rto_max_ms", t.rto_max_ms as u64, t.rto_min_ms as u64, 600_000)?;
    tcp_range(e, "syn_retries", t.syn_retries as u64, 1, 20)?;
    tcp_range(e, "retries", t.retries as u64, 1, 30)?;
    tcp_range(e, "time_wait_s", t.time_wait_s as u64, 1, 600)?;
    tcp_range(e, "fin_wait2_s", t.fin_wait2_s as u64, 1, 3600)?;
    tcp_range(e, "keepalive_s", t.keepalive_s as u64, 0, 7 * 86_400)?;
    tcp_range(e, "keepalive_interval_s", t.keepalive_interval_s as u64, 1, 86_400)?;
    tcp_range(e, "keepalive_probes", t.keepalive_probes as u64, 1, 100)?;
    tcp_range(e, "initial_window", t.initial_window as u64, 1, 100)?;
    let rcv_buf = t.rcv_buf_kb * 1024;
    let ms = |v: u32| v as u64 * 1000;
    let s = |v: u32| v as u64 * 1_000_000;
    let conn = sluice_tcp::TcpConfig {
        mss: t.mss,
        rcv_buf,
        snd_buf: t.snd_buf_kb * 1024,
        // Enough frames for the buffer in full segments, and slack for
        // mid-sized ones (small ones share frames); beyond, the window
        // closes.
        rcv_chunks: (rcv_buf / 512).max(16),
        ooo_chunks: (rcv_buf / 1024).max(8),
        snd_chunks: (t.snd_buf_kb * 1024 / 512).max(16),
        window_scaling: t.window_scaling,
        timestamps: t.timestamps,
        sack: t.sack,
        nagle: t.nagle,
        delayed_ack: ms(t.delayed_ack_ms),
        rto_min: t.rto_min_ms * 1000,
        rto_max: t.rto_max_ms * 1000,
        rto_initial: 1_000_000u32.max(t.rto_min_ms * 1000),
        syn_retries: t.syn_retries,
        retries: t.retries,
        time_wait: s(t.time_wait_s),
        fin_wait2: s(t.fin_wait2_s),
        keepalive_idle: s(t.keepalive_s),
        keepalive_interval: s(t.keepalive_interval_s),
        keepalive_probes: t.keepalive_probes,
        cc: match t.congestion {
            Congestion::Cubic => sluice_tcp::cc::Algorithm::Cubic,
            Congestion::Newreno => sluice_tcp::cc::Algorithm::NewReno,
        },
        initial_window: t.initial_window,
        tlp: t.tail_loss_probe,
    };
    Ok(TcpSettings { max_connections: t.max_connections, syn_backlog: t.syn_backlog, syncookies: t.syncookies, conn })
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn validate_services(e: &Errs, raw: Vec<RawService>) -> Result<Vec<ServiceConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(e.at("service", "no services: add at least one [[service]]"));
    }
    let mut names = HashSet::new();
    let mut listeners = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        let at = |f: &str| format!("service[{i}].{f}");
        if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(e.at(at("name"), format!("{:?}: use letters, digits, '-' and '_'", s.name)));
        }
        if !names.insert(s.name.clone()) {
            return Err(e.at(at("name"), format!("duplicate service name {:?}", s.name)));
        }
        let listen: SocketAddr = s.listen.parse().map_err(|_| {
            e.at(at("listen"), format!("{:?} is not an address:port (e.g. \"198.18.0.2:7\")", s.listen))
        })?;
        let v4 = match listen.ip() {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => return Err(e.at(at("listen"), "IPv6 services are not served yet")),
        };
        if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.is_loopback() {
            return Err(e.at(at("listen"), format!("{v4} cannot be a service address")));
        }
        if listen.port() == 0 {
            return Err(e.at(at("listen"), "port 0 is not a port to listen on"));
        }
        if !listeners.insert((s.proto, listen)) {
            return Err(e.at(at("listen"), format!("duplicate listener {} {listen}", s.proto.as_str())));
        }
        match (s.proto, s.kind) {
            (Proto::Udp, ServiceKind::Echo | ServiceKind::Discard) => {}
            (Proto::Tcp, ServiceKind::Echo | ServiceKind::Discard) => {}
            (Proto::Tcp, ServiceKind::Http) => {}
            (Proto::Tcp, ServiceKind::TcpProxy) => {
                return Err(e.at(at("kind"), "tcp-proxy comes with the load balancer and is not served by this version"))
            }
            (Proto::Udp, ServiceKind::UdpForward) => {
                return Err(
                    e.at(at("kind"), "udp-forward comes with the load balancer and is not served by this version")
                )
            }
            (_, ServiceKind::RrClient) => {
                return Err(e.at(at("kind"), "rr-client is sluice-bench's load generator, not a service"))
            }
            (p, k) => return Err(e.at(at("kind"), format!("{} is not a {} service", k.as_str(), p.as_str()))),
        }
        if !s.backends.is_empty() {
            return Err(e.at(at("backends"), format!("a {} service has no backends", s.kind.as_str())));
        }
        let http = match (s.kind, s.http) {
            (ServiceKind::Http, raw) => Some(validate_http(e, &at("http"), raw.unwrap_or_default())?),
            (_, None) => None,
            (k, Some(_)) => return Err(e.at(at("http"), format!("a {} service has no [service.http]", k.as_str()))),
        };
        out.push(ServiceConfig { name: s.name, proto: s.proto, listen, kind: s.kind, http });
    }
    Ok(out)
}

fn validate_http(e: &Errs, at: &str, h: RawHttp) -> Result<HttpSettings, ConfigError> {
    let field = |f: &str| format!("{at}.{f}");
    if !(200..=599).contains(&h.status) || h.status == 204 || h.status == 304 {
        return Err(
            e.at(field("status"), format!("{} is not a status to answer with (200..=599, not 204 or 304)", h.status))
        );
    }
    if h.content_type.is_empty() || h.content_type.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(e.at(field("content_type"), format!("{:?} is not a header value", h.content_type)));
    }
    let body = match (h.body, h.body_file) {
        (Some(_), Some(_)) => return Err(e.at(field("body_file"), "give body or body_file, not both")),
        (Some(b), None) => b.into_bytes(),
        (None, Some(p)) => {
            std::fs::read(&p).map_err(|err| e.at(field("body_file"), format!("{}: {err}", p.display())))?
        }
        (None, None) => b"hello from sluice\n".to_vec(),
    };
    if body.len() > MAX_HTTP_BODY {
        return Err(e.at(field("body"), format!("{} bytes; at most {MAX_HTTP_BODY}", body.len())));
    }
    if !(256..=65536).contains(&h.max_header_bytes) {
        return Err(e.at(field("max_header_bytes"), format!("{} is out of range (256..=65536)", h.max_header_bytes)));
    }
    if h.max_body_kb > 1 << 20 {
        return Err(e.at(field("max_body_kb"), format!("{} is out of range (0..=1048576)", h.max_body_kb)));
    }
    for (name, v) in [("idle_timeout_s", h.idle_timeout_s), ("request_timeout_s", h.request_timeout_s)] {
        if !(1..=86_400).contains(&v) {
            return Err(e.at(field(name), format!("{v} is out of range (1..=86400 seconds)")));
        }
    }
    Ok(HttpSettings {
        status: h.status,
        body,
        content_type: h.content_type,
        max_header_bytes: h.max_header_bytes,
        max_body_bytes: h.max_body_kb as u64 * 1024,
        keep_alive: h.keep_alive,
        idle_timeout_s: h.idle_timeout_s,
        request_timeout_s: h.request_timeout_s,
    })
}

/// What the system check found: the queues and CPUs to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemPlan {
    /// Interface index.
    pub ifindex: u32,
    /// Queues to serve: 0..queues.
    pub queues: u32,
    /// CPU of each queue's worker.
    pub cpus: Vec<usize>,
    /// UMEM frames.
    pub frames: u32,
    /// The NIC's RSS indirection table, when `[engine.rss]` gives it.
    pub rss_table: Option<Vec<u16>>,
}

/// The CPUs this process may run on (sched_getaffinity), in order.
pub fn allowed_cpus() -> nix::Result<Vec<usize>> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))?;
    Ok((0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false)).collect())
}

/// "0-3,6" for a sorted CPU list.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        out.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    out.join(",")
}

/// Rx queues of an interface, from sysfs.
pub fn interface_rx_queues(ifname: &str) -> std::io::Result<u32> {
    let dir = Path::new("/sys/class/net").join(ifname).join("queues");
    let n = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    Ok(n as u32)
}

/// Index of an interface in this network namespace, or None if it has none
/// (if_nametoindex asks the kernel, so it is right whatever /sys shows).
pub fn interface_index(ifname: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(ifname).ok().filter(|&i| i != 0)
}

/// Effective capabilities of this process (CapEff of /proc/self/status).
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0)
}

impl Config {
    /// Checks the configuration against this machine: privileges, the
    /// interface, its queues and the CPUs.
    pub fn check_system(&self) -> Result<SystemPlan, ConfigError> {
        let e = Errs { source: &self.source_name };
        const CAP_NET_ADMIN: u64 = 12;
        const CAP_NET_RAW: u64 = 13;
        const CAP_SYS_ADMIN: u64 = 21;
        const CAP_BPF: u64 = 39;
        let caps = effective_caps();
        let has = |c: u64| caps & (1 << c) != 0;
        if !has(CAP_NET_ADMIN) || !has(CAP_NET_RAW) || !(has(CAP_BPF) || has(CAP_SYS_ADMIN)) {
            return Err(e.at(
                "(privileges)",
                "sluiced needs root (CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF) to attach XDP and open AF_XDP sockets",
            ));
        }
        let ifname = &self.engine.interface;
        let ifindex = interface_index(ifname).ok_or_else(|| {
            e.at("engine.interface", format!("no interface {ifname:?} in this network namespace (see `ip link`)"))
        })?;
        let have = interface_rx_queues(ifname)
            .map_err(|err| e.at("engine.interface", format!("cannot read the queues of {ifname}: {err}")))?;
        if have == 0 {
            return Err(e.at("engine.interface", format!("{ifname} reports no rx queues")));
        }
        let queues = match self.engine.queues {
            Some(q) if q > have => {
                return Err(e.at("engine.queues", format!("{q} queues requested but {ifname} has {have} rx queues")))
            }
            Some(q) => q,
            None => have.min(sluice_ebpf::abi::MAX_QUEUES),
        };
        let rss_table = match &self.engine.rss {
            Some(rss) => Some(rss.checked_table(have, queues, ifname).map_err(|p| e.at("engine.rss.indirection", p))?),
            None => None,
        };
        let allowed = allowed_cpus()
            .map_err(|err| e.at("engine.cores", format!("cannot read the CPUs this process may run on: {err}")))?;
        if allowed.is_empty() {
            return Err(e.at("engine.cores", "this process may run on no CPU (sched_getaffinity)"));
        }
        let cpus = match &self.engine.cores {
            Some(c) if c.len() != queues as usize => {
                return Err(e.at("engine.cores", format!("lists {} CPUs for {queues} queues", c.len())))
            }
            Some(c) => c.clone(),
            // One worker per allowed CPU, in order. More queues than CPUs
            // would put two workers on one CPU: busy polling would starve
            // one of them, so that needs an explicit engine.cores.
            None if queues as usize > allowed.len() && self.engine.poll == PollMode::Busy => {
                return Err(e.at(
                    "engine.queues",
                    format!(
                        "{queues} queues on {} allowed CPUs would share CPUs between busy-polling workers: \
                         set engine.queues = {} (or list engine.cores)",
                        allowed.len(),
                        allowed.len()
                    ),
                ))
            }
            None => (0..queues as usize).map(|q| allowed[q % allowed.len()]).collect(),
        };
        if let Some(bad) = cpus.iter().find(|c| !allowed.contains(c)) {
            return Err(e.at(
                "engine.cores",
                format!("CPU {bad} is not one this process may run on (allowed: {})", cpu_list(&allowed)),
            ));
        }
        // Each queue needs a full fill ring plus as much again for frames in
        // flight (rx ring, in hand, tx ring) and for the other cores to lend.
        let need = queues * 2 * self.engine.ring_size;
        let from_mb = self.engine.umem_mb.map(|mb| ((mb as u64) << 20) / self.engine.frame_size as u64);
        let frames = self.engine.frames.or(from_mb.map(|f| f as u32)).unwrap_or(need.max(4096));
        if frames < need {
            let field = if self.engine.umem_mb.is_some() { "engine.umem_mb" } else { "engine.frames" };
            return Err(e.at(
                field,
                format!(
                    "{frames} frames ({} MiB) are too few for {queues} queue(s) with ring_size {}: need at least \
                     {need} frames (2 x ring_size per queue, {} MiB)",
                    (frames as u64 * self.engine.frame_size as u64) >> 20,
                    self.engine.ring_size,
                    (need as u64 * self.engine.frame_size as u64).div_ceil(1 << 20)
                ),
            ));
        }
        // Every core reserves its tables for all of max_connections (a core
        // may hold any share): more than the machine's memory and the
        // reservation itself would fail at start.
        if self.serves_tcp() {
            let http = self.services.iter().any(|s| s.kind == ServiceKind::Http);
            let per = crate::tcp::TcpCore::BYTES_PER_CONNECTION as u64
                + if http { crate::services::AppStates::bytes_for(ServiceKind::Http) as u64 } else { 0 };
            let reserve = u64::from(self.tcp.max_connections) * per;
            if let Some(total) = mem_total() {
                if reserve > total {
                    return Err(e.at(
                        "tcp.max_connections",
                        format!(
                            "{} connections reserve {} MiB on each core ({per} B each; a core may hold them                              all), more than this machine's {} MiB",
                            self.tcp.max_connections,
                            reserve >> 20,
                            total >> 20
                        ),
                    ));
                }
            }
        }
        Ok(SystemPlan { ifindex, queues, cpus, frames, rss_table })
    }
}

/// The machine's memory, bytes (/proc/meminfo MemTotal).
fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s, "test.toml")
    }

    const OK: &str = r#"
[engine]
interface = "sluice0"

[[service]]
name = "echo"
proto = "udp"
listen = "198.18.0.2:7"
kind = "echo"
"#;

    #[test]
    fn http_services_and_their_errors() {
        let http = OK.replace("\"udp\"", "\"tcp\"").replace("\"echo\"\n", "\"http\"\n");
        let c = parse(&http).unwrap();
        let h = c.services[0].http.as_ref().expect("defaults");
        assert_eq!((h.status, h.body.as_slice(), h.keep_alive), (200, &b"hello from sluice\n"[..], true));
        let with = |extra: &str| format!("{http}[service.http]\n{extra}\n");
        let c = parse(&with("status = 404\nbody = \"nope\"\nkeep_alive = false")).unwrap();
        let h = c.services[0].http.as_ref().unwrap();
        assert_eq!((h.status, h.body.as_slice(), h.keep_alive), (404, &b"nope"[..], false));
        assert!(err_of(&with("status = 99")).contains("service[0].http.status"));
        assert!(err_of(&with("status = 204")).contains("not 204"));
        assert!(err_of(&with("content_type = \"a\\nb\"")).contains("content_type"));
        assert!(err_of(&with("body = \"x\"\nbody_file = \"/etc/hostname\"")).contains("not both"));
        assert!(err_of(&with("body_file = \"/nonexistent/sluice\"")).contains("body_file"));
        assert!(err_of(&with("max_header_bytes = 10")).contains("max_header_bytes"));
        assert!(err_of(&with("gzip = true")).contains("unknown field"));
        let echo_with_http = format!("{}[service.http]\n", OK.replace("\"udp\"", "\"tcp\""));
        assert!(err_of(&echo_with_http).contains("has no [service.http]"));
        assert!(err_of(&OK.replace("\"echo\"\n", "\"http\"\n")).contains("not a udp service"));
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::embedded_default();
        assert!(!c.services.is_empty());
        assert_eq!(c.engine.poll, PollMode::Adaptive);
    }

    #[test]
    fn shipped_example_configs_are_valid() {
        for (name, text) in [
            ("udp-echo-busy.toml", include_str!("../../deploy/examples/udp-echo-busy.toml")),
            ("tcp-http.toml", include_str!("../../deploy/examples/tcp-http.toml")),
            ("sluice.default.toml", DEFAULT_CONFIG),
        ] {
            if let Err(e) = Config::parse(text, name) {
                panic!("{e}");
            }
        }
    }

    #[test]
    fn rss_settings_and_their_errors() {
        let with = |engine: &str, rss: &str| {
            OK.replace(
                "interface = \"sluice0\"\n",
                &format!("interface = \"sluice0\"\n{engine}\n[engine.rss]\n{rss}\n"),
            )
        };
        let key = "key = \"6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0\"\ntable_size = 128";
        let c = parse(&with("flow_owner = \"rss\"", key)).unwrap();
        assert_eq!(c.engine.flow_owner, FlowOwner::Rss);
        let rss = c.engine.rss.expect("given");
        assert_eq!((rss.key.len(), rss.table_size, rss.udp_l4), (16, 128, false));
        assert_eq!(rss.table(3)[..5], [0, 1, 2, 0, 1], "the kernel's default table");
        // The default table over the NIC's queues: all served, or refused.
        assert_eq!(rss.checked_table(2, 2, "eth0").unwrap().len(), 128);
        assert!(rss.checked_table(8, 4, "eth0").unwrap_err().contains("ethtool -X eth0 equal 4"));
        assert!(err_of(&with("", "key = \"6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0\"")).contains("table_size"));
        assert!(err_of(&with("flow_owner = \"hash\"", key)).contains("ignores the NIC's RSS"));
        let plain = "key = \"6d:5a:56:da:25:5b:0e:c2:41:67:25:3d:43:a3:8f:b0\"";
        let c = parse(&with("", &format!("{plain}\nindirection = [1, 0]\nudp_l4 = true"))).unwrap();
        let rss = c.engine.rss.unwrap();
        assert_eq!((rss.table(2), rss.udp_l4), (vec![1, 0], true));
        assert_eq!(rss.checked_table(4, 2, "eth0").unwrap(), vec![1, 0], "an explicit table is the table");
        assert!(rss.checked_table(4, 1, "eth0").unwrap_err().contains("names queue 1"));
        assert!(err_of(&OK.replace("[engine]", "[engine]\nflow_owner = \"rss\"")).contains("[engine.rss]"));
        assert!(err_of(&with("", "key = \"6d:5a\"\ntable_size = 4")).contains("engine.rss.key"));
        assert!(err_of(&with("", "key = \"6d:5g\"\ntable_size = 4")).contains("not hex"));
        assert!(err_of(&with("", &format!("{plain}\nindirection = []"))).contains("engine.rss.indirection"));
        assert!(err_of(&with("", &format!("{plain}\nindirection = [0]\ntable_size = 4"))).contains("not both"));
        assert!(err_of(&with("", &format!("{plain}\ntable_size = 0"))).contains("engine.rss.table_size"));
        assert!(err_of(&with("", &format!("{key}\nhash = \"xor\""))).contains("unknown field"));
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(OK).unwrap();
        assert_eq!(c.engine.batch_size, 64);
        assert_eq!(c.engine.control_socket, PathBuf::from("/run/sluice/ctl.sock"));
        assert_eq!(c.service_addrs(), vec![Ipv4Addr::new(198, 18, 0, 2)]);
    }

    fn err_of(s: &str) -> String {
        parse(s).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err_of(&OK.replace("interface = \"sluice0\"", "interface = \"sluice0\"\nqueus = 2"));
        assert!(e.contains("test.toml") && e.contains("unknown field `queus`") && e.contains("line 4"), "{e}");
    }

    #[test]
    fn bad_address_is_named() {
        let e = err_of(&OK.replace("198.18.0.2:7", "198.18.0.300:7"));
        assert!(e.contains("service[0].listen") && e.contains("198.18.0.300:7"), "{e}");
    }

    #[test]
    fn duplicate_listener_is_refused() {
        let two = format!(
            "{OK}\n[[service]]\nname = \"e2\"\nproto = \"udp\"\nlisten = \"198.18.0.2:7\"\nkind = \"discard\"\n"
        );
        let e = err_of(&two);
        assert!(e.contains("service[1].listen") && e.contains("duplicate listener"), "{e}");
    }

    #[test]
    fn missing_interface_key_is_named() {
        let e = err_of(&OK.replace("interface = \"sluice0\"", ""));
        assert!(e.contains("missing field `interface`"), "{e}");
    }

    #[test]
    fn ranges_and_kinds_are_checked() {
        assert!(err_of(&OK.replace("[engine]", "[engine]\nbatch_size = 0")).contains("engine.batch_size"));
        assert!(err_of(&OK.replace("[engine]", "[engine]\nring_size = 1000")).contains("power of two"));
        assert!(err_of(&OK.replace("[engine]", "[engine]\npoll = \"sometimes\"")).contains("unknown variant"));
        assert!(err_of(&OK.replace("[engine]", "[engine]\nmetrics_listen = \"198.18.0.2:9100\"")).contains("loopback"));
        assert!(parse(&OK.replace("\"udp\"", "\"tcp\"")).is_ok(), "TCP echo is served");
        assert!(err_of(&OK.replace("\"udp\"", "\"tcp\"").replace("\"echo\"\n", "\"tcp-proxy\"\n"))
            .contains("load balancer"));
        assert!(err_of(&OK.replace("[engine]", "[tcp]\nmss = 100\n[engine]")).contains("tcp.mss"));
        assert!(err_of(&OK.replace("[engine]", "[tcp]\ncongestion = \"bbr\"\n[engine]")).contains("unknown variant"));
        assert!(err_of(&OK.replace("[engine]", "[tcp]\nmax_conns = 5\n[engine]")).contains("unknown field"));
        let c = parse(&OK.replace("[engine]", "[tcp]\nrcv_buf_kb = 64\nkeepalive_s = 0\n[engine]")).unwrap();
        assert_eq!((c.tcp.conn.rcv_buf, c.tcp.conn.keepalive_idle), (65536, 0));
        assert!(err_of(&OK.replace("\"echo\"\n", "\"udp-forward\"\n")).contains("load balancer"));
        assert!(err_of(&OK.replace("198.18.0.2:7", "[2001:db8::1]:7")).contains("IPv6"));
        assert!(err_of(&OK.replace("198.18.0.2:7", "198.18.0.2:0")).contains("port 0"));
        assert!(err_of("[engine]\ninterface = \"x\"\n").contains("no services"));
        assert!(err_of("this is not toml").contains("test.toml"));
    }

    #[test]
    fn cores_are_checked_by_id_against_the_allowed_set() {
        assert!(err_of(&OK.replace("[engine]", "[engine]\ncores = [0, 0]")).contains("listed twice"));
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        // `lo` is in every namespace, with one rx queue.
        let lo = OK.replace("sluice0", "lo");
        let c = parse(&lo.replace("[engine]", "[engine]\nqueues = 1\ncores = [4000]")).unwrap();
        if !nix::unistd::geteuid().is_root() {
            // The system check speaks of privileges first; CI runs as root.
            assert!(std::env::var_os("CI").is_none(), "CI must run this as root");
            return;
        }
        let e = c.check_system().unwrap_err().to_string();
        assert!(e.contains("CPU 4000 is not one this process may run on"), "{e}");
        let plan = parse(&lo).unwrap().check_system().unwrap();
        assert_eq!(plan.cpus, vec![allowed[0]], "the default is the first allowed CPU");
        assert_eq!(cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        assert_eq!(cpu_list(&[5]), "5");
    }

    #[test]
    fn umem_size_in_mib_and_steering_keys_are_checked() {
        let c = parse(&OK.replace("[engine]", "[engine]\numem_mb = 64")).unwrap();
        assert_eq!(c.engine.umem_mb, Some(64));
        assert!(err_of(&OK.replace("[engine]", "[engine]\numem_mb = 64\nframes = 8192")).contains("not both"));
        assert!(err_of(&OK.replace("[engine]", "[engine]\numem_mb = 0")).contains("engine.umem_mb"));
        let mut many = String::from("[engine]\ninterface = \"sluice0\"\n");
        for i in 0..1400u32 {
            let addr = format!("198.18.{}.{}", i / 250, 1 + i % 250);
            many += &format!("[[service]]\nname = \"s{i}\"\nproto = \"udp\"\nlisten = \"{addr}:7\"\nkind = \"echo\"\n");
        }
        let e = err_of(&many);
        assert!(e.contains("4200 steering keys") && e.contains("4096"), "{e}");
    }

    #[test]
    fn missing_interface_on_the_system_is_named() {
        let c = parse(&OK.replace("sluice0", "sluice-nope9")).unwrap();
        let e = c.check_system().unwrap_err().to_string();
        // As root the interface check speaks; otherwise the privilege check does.
        assert!(e.contains("no interface \"sluice-nope9\"") || e.contains("needs root"), "{e}");
    }
}
