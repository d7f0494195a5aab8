//! Control messages. One request per line, one reply per line, both JSON.
//!
//! ```text
//! > {"version":1,"command":"stats"}
//! < {"version":1,"stats":{...}}
//! < {"version":1,"error":"unsupported protocol version 7 (this sluiced speaks 1)"}
//! ```
//! Fields are only ever added; scripts should ignore fields they do not know.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the server reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// A request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Protocol version of the sender.
    pub version: u32,
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
}

impl Request {
    /// A request in this build's protocol version.
    pub fn new(command: Command) -> Self {
        Request { version: PROTOCOL_VERSION, command }
    }
}

/// The commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Engine identity and settings.
    Status,
    /// Counters, gauges and drops per core and in total.
    Stats,
    /// The configured services.
    Services,
    /// The TCP connections of every core (at most `limit` of them), of one
    /// service and in one state when those are named.
    Conns {
        /// Most connections to list (default 1000, at most 100 000).
        #[serde(default)]
        limit: Option<u32>,
        /// Only this service's (by name).
        #[serde(default)]
        service: Option<String>,
        /// Only those in this state ("established", "time-wait", ...).
        #[serde(default)]
        state: Option<String>,
        /// Fill in each connection's `detail` (costs the cores more).
        #[serde(default)]
        detail: bool,
    },
}

/// Connections listed when a request names no limit.
pub const DEFAULT_CONNS_LIMIT: u32 = 1000;
/// The most connections one reply lists (each core formats its part in
/// one go, between two passes).
pub const MAX_CONNS_LIMIT: u32 = 10_000;

/// A reply: the version and exactly one body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Protocol version of the daemon.
    pub version: u32,
    /// The answer.
    #[serde(flatten)]
    pub body: ReplyBody,
}

/// The body of a reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyBody {
    /// Answer to [`Command::Status`].
    Status(Status),
    /// Answer to [`Command::Stats`].
    Stats(StatsSnapshot),
    /// Answer to [`Command::Services`].
    Services(Vec<ServiceInfo>),
    /// Answer to [`Command::Conns`].
    Conns(ConnsSnapshot),
    /// The request failed; the text says why.
    Error(String),
}

/// Engine identity and settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// sluiced's version.
    pub daemon_version: String,
    /// Process id.
    pub pid: u32,
    /// Seconds since start.
    pub uptime_s: f64,
    /// Interface attached to.
    pub interface: String,
    /// Its index.
    pub ifindex: u32,
    /// Queues served (0..queues), one core each.
    pub queues: u32,
    /// CPU of each queue's worker.
    pub cpus: Vec<usize>,
    /// "zero-copy" or "copy".
    pub socket_mode: String,
    /// "driver" or "skb": how the XDP program is attached.
    pub xdp_mode: String,
    /// "busy", "adaptive" or "interrupt".
    pub poll: String,
    /// Frames per batch.
    pub batch_size: u32,
    /// UMEM frames.
    pub frames_total: u32,
    /// Bytes per frame.
    pub frame_size: u32,
    /// Bytes of the UMEM (frames × frame size).
    #[serde(default)]
    pub umem_bytes: u64,
    /// The UMEM's share of one core (its frames are split evenly; they
    /// drift between cores with traffic and are rebalanced).
    #[serde(default)]
    pub umem_per_core_bytes: u64,
    /// Services.
    pub services: Vec<ServiceInfo>,
    /// Service addresses sluice answers ARP for (the kernel answers for the
    /// others). Absent from daemons older than this field.
    #[serde(default)]
    pub arp_answered_for: Vec<String>,
    /// TCP connections the engine holds at most (0: no TCP service).
    #[serde(default)]
    pub tcp_max_connections: u64,
    /// Memory of one TCP connection (its block, table entry and timer),
    /// bytes; received or unacknowledged data is in frames, apart.
    #[serde(default)]
    pub tcp_bytes_per_connection: u64,
    /// Memory of one TIME-WAIT entry, bytes.
    #[serde(default)]
    pub tcp_bytes_per_time_wait: u64,
}

/// One service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Index in the configuration.
    pub id: u32,
    /// Name.
    pub name: String,
    /// "udp" or "tcp".
    pub proto: String,
    /// Address:port.
    pub listen: String,
    /// "echo", "discard", ...
    pub kind: String,
}

/// One core's (or the total's) numbers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CoreSnapshot {
    /// Worker index (= queue), absent for the total.
    pub core: Option<u32>,
    /// CPU the worker is pinned to, absent for the total.
    pub cpu: Option<usize>,
    /// Monotonic counters by name (`rx_packets`, `handoff_out`, ...).
    pub counters: BTreeMap<String, u64>,
    /// Drops by reason.
    pub drops: BTreeMap<String, u64>,
    /// Point-in-time gauges (ring occupancy, frames by place, kernel drops).
    pub gauges: BTreeMap<String, u64>,
    /// Share of received frames handed off to another core (0..1).
    pub handoff_share: f64,
}

/// Frame accounting across the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FramesSnapshot {
    /// Frames in the UMEM.
    pub total: u64,
    /// Frames on the shared exchange stack.
    pub exchange: u64,
    /// Frames in handoff queues between cores.
    pub handoff_queued: u64,
    /// Sum of every place (cores + exchange + handoff); equals `total` when
    /// the engine is quiet (cores publish at slightly different instants).
    pub accounted: u64,
    /// Frames not on a free list or the exchange.
    pub in_use: u64,
    /// Frame tokens dropped instead of given back, in this process (a bug
    /// if ever above zero: those frames are lost).
    #[serde(default)]
    pub leaked: u64,
    /// Frames the frame table has lent to the kernel for receiving (fill
    /// and rx rings), counted from the table itself.
    #[serde(default)]
    pub kernel_rx: u64,
    /// Frames lent to the kernel for sending (tx and completion rings).
    #[serde(default)]
    pub kernel_tx: u64,
}

/// The XDP program's per-CPU counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct XdpSnapshot {
    /// One map per CPU (`redirected`, `passed`, `malformed`, `no_socket`, ...).
    pub per_cpu: Vec<BTreeMap<String, u64>>,
    /// Sum over CPUs.
    pub total: BTreeMap<String, u64>,
}

/// Everything `sluicectl stats` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Seconds since start (for rates).
    pub uptime_s: f64,
    /// "zero-copy" or "copy".
    pub socket_mode: String,
    /// Per core.
    pub cores: Vec<CoreSnapshot>,
    /// Sum over cores.
    pub total: CoreSnapshot,
    /// Frame accounting.
    pub frames: FramesSnapshot,
    /// XDP program counters.
    pub xdp: XdpSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_form_is_flat() {
        let s = serde_json::to_string(&Request::new(Command::Stats)).unwrap();
        assert_eq!(s, r#"{"version":1,"command":"stats"}"#);
        let r: Request = serde_json::from_str(r#"{"command":"status","version":1}"#).unwrap();
        assert_eq!(r.command, Command::Status);
    }

    #[test]
    fn error_reply_wire_form() {
        let r = Reply { version: 1, body: ReplyBody::Error("nope".into()) };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"version":1,"error":"nope"}"#);
    }

    #[test]
    fn unknown_command_is_an_error_not_a_panic() {
        assert!(serde_json::from_str::<Request>(r#"{"version":1,"command":"explode"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"version":1}"#).is_err());
        assert!(serde_json::from_str::<Request>("[]").is_err());
    }

    #[test]
    fn stats_round_trip() {
        let mut s = StatsSnapshot::default();
        s.total.counters.insert("rx_packets".into(), 5);
        let r = Reply { version: 1, body: ReplyBody::Stats(s) };
        let back: Reply = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}

/// The TCP connections, as the cores answered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnsSnapshot {
    /// Connections listed (the first `limit`, core by core).
    pub conns: Vec<ConnEntry>,
    /// Connections the cores have in all that match the filters (TIME-WAIT
    /// included).
    pub total: u64,
    /// Cores that did not answer in time (their connections are missing).
    pub cores_missing: Vec<u32>,
}

/// One TCP connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnEntry {
    /// The core that owns it.
    pub core: u32,
    /// The service's name.
    pub service: String,
    /// sluice's address and port.
    pub local: String,
    /// The peer's.
    pub remote: String,
    /// RFC 9293 state, in lower case ("established", "time-wait", ...).
    pub state: String,
    /// Seconds since it was created.
    pub age_s: f64,
    /// Congestion window, bytes.
    pub cwnd: u32,
    /// Slow start threshold, bytes (absent before the first loss).
    pub ssthresh: Option<u32>,
    /// Smoothed RTT, µs (0 before the first sample).
    pub srtt_us: u32,
    /// Retransmission timeout now, µs.
    pub rto_us: u32,
    /// Payload bytes per segment sent.
    pub mss: u32,
    /// The peer's receive window, bytes.
    pub snd_wnd: u32,
    /// Bytes sent and not yet acknowledged.
    pub unacked: u32,
    /// Bytes received (in order) for the service.
    pub bytes_in: u64,
    /// Bytes the peer acknowledged.
    pub bytes_out: u64,
    /// Segments retransmitted.
    pub retransmits: u32,
    /// Bytes received and not yet taken by the service.
    pub recv_queued: u32,
    /// Bytes queued for sending (sent or not) and not yet acknowledged.
    pub send_queued: u32,
    /// Frames (chunks) it holds.
    pub chunks: u32,
    /// A transmission is waiting for a frame (or for its payload's frame
    /// to come back from the tx ring).
    pub blocked: bool,
    /// The state machine's internals (sequence space, scoreboard, timers),
    /// for diagnosing, when asked for; the format may change.
    #[serde(default)]
    pub detail: String,
}
