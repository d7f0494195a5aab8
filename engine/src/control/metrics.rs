//! The opt-in Prometheus endpoint: `GET /metrics` on a loopback port, in the
//! text exposition format, rendered from the same snapshot `sluicectl stats`
//! shows.
use super::protocol::{CoreSnapshot, StatsSnapshot};
use crate::stats::{Counter, Gauge as GaugeName, TcpCounter};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Produces a fresh snapshot.
pub type SnapshotFn = Arc<dyn Fn() -> StatsSnapshot + Send + Sync>;

/// The running endpoint; stopped on drop.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listens on `addr` (validated to be loopback by the config).
    pub fn start(addr: SocketAddr, snapshot: SnapshotFn) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new().name("sluice-metrics".into()).spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &snapshot),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
        Ok(MetricsServer { stop, thread: Some(thread), addr })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The whole request head must arrive within this (so a slow client cannot
/// hold the one-at-a-time server).
const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Reads a request head (up to the blank line, at most 8 KiB) before
/// `REQUEST_DEADLINE` passes; the request line, or `None`.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let deadline = std::time::Instant::now() + REQUEST_DEADLINE;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let left = deadline.checked_duration_since(std::time::Instant::now()).filter(|d| !d.is_zero())?;
        stream.set_read_timeout(Some(left)).ok()?;
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > 8192 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    Some(text.lines().next().unwrap_or("").to_string())
}

fn serve(mut stream: TcpStream, snapshot: &SnapshotFn) {
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let _ = stream.set_write_timeout(Some(REQUEST_DEADLINE));
    let Some(request_line) = read_head(&mut stream) else { return };
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4", render(&snapshot())),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".to_string()),
    };
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The Prometheus text format (version 0.0.4, which the endpoint's
/// Content-Type announces): each family written whole, `# HELP` and
/// `# TYPE` first, with the exact name its samples carry (a counter's ends in
/// `_total`). Label values come from our own enums and numbers, but are
/// escaped anyway.
struct Exposition {
    out: String,
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

impl Exposition {
    /// Writes one family: `name` (with `_total` added for counters), its
    /// help, and one sample per (labels, value).
    fn family<V: std::fmt::Display>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, V)>,
    ) {
        let (name, ty) = match kind {
            Kind::Counter => (format!("{name}_total"), "counter"),
            Kind::Gauge => (name.to_string(), "gauge"),
        };
        let help = help.trim_end_matches('.').replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {ty}");
        for (labels, v) in samples {
            self.out.push_str(&name);
            if !labels.is_empty() {
                self.out.push('{');
                for (i, (k, val)) in labels.iter().enumerate() {
                    let val = val.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    let _ = write!(self.out, "{}{k}=\"{val}\"", if i > 0 { "," } else { "" });
                }
                self.out.push('}');
            }
            let _ = writeln!(self.out, " {v}");
        }
    }
}

/// Renders a snapshot in the Prometheus text format.
pub fn render(s: &StatsSnapshot) -> String {
    let mut x = Exposition { out: String::new() };
    x.family("sluice_uptime_seconds", Kind::Gauge, "Seconds since sluiced started", [(vec![], s.uptime_s)]);
    let core_of = |c: &CoreSnapshot| c.core.unwrap_or(0).to_string();
    let counters = Counter::ALL.iter().map(|k| (k.name(), k.help()));
    let tcp = TcpCounter::ALL.iter().map(|k| (k.name(), k.help()));
    for (name, help) in counters.chain(tcp) {
        let samples = s.cores.iter().map(|c| (vec![("core", core_of(c))], c.counters.get(name).copied().unwrap_or(0)));
        x.family(&format!("sluice_{name}"), Kind::Counter, help, samples);
    }
    let drops = s.cores.iter().flat_map(|c| {
        c.drops.iter().map(move |(reason, v)| (vec![("core", core_of(c)), ("reason", reason.clone())], *v))
    });
    x.family("sluice_drops", Kind::Counter, "Frames dropped (and TCP segments not taken), by core and reason", drops);
    for g in GaugeName::ALL {
        let samples =
            s.cores.iter().map(|c| (vec![("core", core_of(c))], c.gauges.get(g.name()).copied().unwrap_or(0)));
        let kind = if g.is_cumulative() { Kind::Counter } else { Kind::Gauge };
        x.family(&format!("sluice_{}", g.name()), kind, g.help(), samples);
    }
    let share = s.cores.iter().map(|c| (vec![("core", core_of(c))], c.handoff_share));
    x.family("sluice_handoff_share", Kind::Gauge, "Share of received frames handed to another core", share);
    let f = &s.frames;
    let places = [
        ("total", f.total),
        ("in_use", f.in_use),
        ("exchange", f.exchange),
        ("handoff_queued", f.handoff_queued),
        ("kernel_rx", f.kernel_rx),
        ("kernel_tx", f.kernel_tx),
    ];
    x.family(
        "sluice_frames",
        Kind::Gauge,
        "UMEM frames by place",
        places.map(|(k, v)| (vec![("place", k.to_string())], v)),
    );
    x.family(
        "sluice_frames_leaked",
        Kind::Counter,
        "Frame tokens dropped instead of given back (a bug if above zero)",
        [(vec![], f.leaked)],
    );
    let xdp =
        s.xdp.per_cpu.iter().enumerate().flat_map(|(cpu, m)| {
            m.iter().map(move |(k, v)| (vec![("cpu", cpu.to_string()), ("counter", k.clone())], *v))
        });
    x.family("sluice_xdp", Kind::Counter, "XDP program verdicts, by CPU", xdp);
    x.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::CoreSnapshot;

    fn snap() -> StatsSnapshot {
        let mut c = CoreSnapshot { core: Some(1), ..Default::default() };
        c.counters.insert("rx_packets".into(), 42);
        c.drops.insert("udp_bad_checksum".into(), 3);
        let mut s = StatsSnapshot { uptime_s: 2.5, ..Default::default() };
        s.total.counters.insert("rx_packets".into(), 42);
        s.cores.push(c);
        s.xdp.per_cpu.push([("redirected".to_string(), 7u64)].into_iter().collect());
        s
    }

    #[test]
    fn renders_prometheus_text() {
        let t = render(&snap());
        assert!(t.contains("sluice_rx_packets_total{core=\"1\"} 42\n"), "{t}");
        assert!(t.contains("sluice_drops_total{core=\"1\",reason=\"udp_bad_checksum\"} 3\n"), "{t}");
        assert!(t.contains("sluice_xdp_total{cpu=\"0\",counter=\"redirected\"} 7\n"), "{t}");
        assert!(t.contains("sluice_uptime_seconds 2.5\n"), "{t}");
    }

    /// Every sample belongs to a family declared with `# TYPE` (and
    /// `# HELP`) before it, with the type its name says, checked by an
    /// independent parser of the text format and by the format's rules.
    #[test]
    fn every_sample_family_has_a_correct_type_line() {
        let t = render(&snap());
        let lines: Vec<std::io::Result<String>> = t.lines().map(|l| Ok(l.to_string())).collect();
        let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).expect("the text format parses");
        assert!(scrape.samples.len() > 20, "{t}");
        let mut types: std::collections::HashMap<String, String> = Default::default();
        let mut current = String::new();
        for l in t.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').unwrap();
                assert!(types.insert(name.to_string(), ty.to_string()).is_none(), "family {name} declared twice");
                assert!(t.contains(&format!("# HELP {name} ")), "{name} has no HELP");
                current = name.to_string();
            } else if !l.starts_with('#') {
                // Samples follow their own family's TYPE line (no interleaving).
                let name = l.split(['{', ' ']).next().unwrap();
                assert_eq!(name, current, "sample {l:?} outside its family");
            }
        }
        for smp in &scrape.samples {
            let name = &smp.metric;
            let ty = types.get(name).unwrap_or_else(|| panic!("sample {name} has no TYPE line"));
            // The parser types each sample from the TYPE line of its exact name.
            match (&smp.value, ty.as_str()) {
                (prometheus_parse::Value::Counter(_), "counter") | (prometheus_parse::Value::Gauge(_), "gauge") => {}
                (v, _) => panic!("{name}: parsed as {v:?}, declared {ty}"),
            }
            if ty == "counter" {
                assert!(name.ends_with("_total"), "counter {name} without _total");
            }
        }
        for g in ["sluice_tx_backlog", "sluice_frames", "sluice_handoff_share", "sluice_uptime_seconds"] {
            assert_eq!(types.get(g).map(String::as_str), Some("gauge"), "{g}");
        }
        for c in [
            "sluice_drops_total",
            "sluice_rx_packets_total",
            "sluice_xdp_total",
            "sluice_frames_leaked_total",
            "sluice_xsk_rx_ring_full_total",
        ] {
            assert_eq!(types.get(c).map(String::as_str), Some("counter"), "{c}");
        }
    }

    #[test]
    fn a_client_that_trickles_its_request_is_cut_off() {
        let m = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(snap)).unwrap();
        let mut slow = TcpStream::connect(m.addr()).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..5 {
            if slow.write_all(b"G").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(700));
        }
        // The server moved on within its deadline: a normal request is served.
        let mut s = TcpStream::connect(m.addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"));
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn serves_get_metrics_over_http() {
        let m = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(snap)).unwrap();
        let get = |req: &str| {
            let mut s = TcpStream::connect(m.addr()).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut body = String::new();
            s.read_to_string(&mut body).unwrap();
            body
        };
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK") && r.contains("sluice_rx_packets_total"), "{r}");
        assert!(get("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get("garbage\r\n\r\n").starts_with("HTTP/1.1 405"));
    }
}
