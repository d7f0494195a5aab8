//! The opt-in Prometheus endpoint: `GET /metrics` on a loopback port, in the
//! text exposition format, rendered from the same snapshot `sluicectl stats`
//! shows.
use super::protocol::StatsSnapshot;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
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

fn serve(stream: TcpStream, snapshot: &SnapshotFn) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(Duration::from_secs(2))).is_err() {
        return;
    }
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let Ok(r) = stream.try_clone() else { return };
    let mut reader = BufReader::new(r.take(8192));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers; the request has no body we care about.
    let mut line = String::new();
    while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
        line.clear();
    }
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

/// Renders a snapshot in the Prometheus text format.
pub fn render(s: &StatsSnapshot) -> String {
    let mut o = String::new();
    let _ =
        writeln!(o, "# HELP sluice_uptime_seconds Seconds since sluiced started.\n# TYPE sluice_uptime_seconds gauge");
    let _ = writeln!(o, "sluice_uptime_seconds {}", s.uptime_s);
    let mut counters: Vec<&String> = s.total.counters.keys().collect();
    counters.sort();
    for name in counters {
        let _ = writeln!(o, "# TYPE sluice_{name}_total counter");
        for c in &s.cores {
            let v = c.counters.get(name).copied().unwrap_or(0);
            let _ = writeln!(o, "sluice_{name}_total{{core=\"{}\"}} {v}", c.core.unwrap_or(0));
        }
    }
    let _ = writeln!(o, "# HELP sluice_drops_total Frames dropped, by reason.\n# TYPE sluice_drops_total counter");
    for c in &s.cores {
        for (reason, v) in &c.drops {
            let _ = writeln!(o, "sluice_drops_total{{core=\"{}\",reason=\"{reason}\"}} {v}", c.core.unwrap_or(0));
        }
    }
    let _ = writeln!(o, "# TYPE sluice_gauge gauge");
    for c in &s.cores {
        for (g, v) in &c.gauges {
            let _ = writeln!(o, "sluice_{g}{{core=\"{}\"}} {v}", c.core.unwrap_or(0));
        }
    }
    let _ = writeln!(o, "# TYPE sluice_handoff_share gauge");
    for c in &s.cores {
        let _ = writeln!(o, "sluice_handoff_share{{core=\"{}\"}} {}", c.core.unwrap_or(0), c.handoff_share);
    }
    let f = &s.frames;
    let _ = writeln!(o, "# TYPE sluice_frames gauge");
    for (k, v) in
        [("total", f.total), ("in_use", f.in_use), ("exchange", f.exchange), ("handoff_queued", f.handoff_queued)]
    {
        let _ = writeln!(o, "sluice_frames{{place=\"{k}\"}} {v}");
    }
    let _ = writeln!(o, "# HELP sluice_xdp_total XDP program verdicts per CPU.\n# TYPE sluice_xdp_total counter");
    for (cpu, m) in s.xdp.per_cpu.iter().enumerate() {
        for (k, v) in m {
            let _ = writeln!(o, "sluice_xdp_total{{cpu=\"{cpu}\",counter=\"{k}\"}} {v}");
        }
    }
    o
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
        assert!(t.contains("sluice_drops_total{core=\"1\",reason=\"udp_bad_checksum\"} 3\n"));
        assert!(t.contains("sluice_xdp_total{cpu=\"0\",counter=\"redirected\"} 7\n"));
        assert!(t.contains("sluice_uptime_seconds 2.5\n"));
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
