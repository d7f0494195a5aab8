//! wrk (Debian's) as the kernel-socket HTTP generator: closed loop,
//! keep-alive or a connection per request (`Connection: close`), run in the
//! client's namespace; its text output parsed.
use anyhow::{anyhow, bail, Context};
use std::net::SocketAddrV4;
use std::time::Duration;

/// What one wrk run reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub per_s: f64,
    /// Answers that were not 2xx or 3xx.
    pub non_2xx: u64,
    /// Socket errors: connect, read, write, timeout.
    pub errors: [u64; 4],
    /// Latency percentiles wrk printed (50, 75, 90, 99), µs.
    pub percentiles_us: Vec<(f64, f64)>,
    /// Largest latency, µs.
    pub max_us: Option<f64>,
}

/// `123.45us` / `1.20ms` / `2.00s` → µs.
fn duration_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// Parses wrk's output (run with `--latency`).
pub fn parse(text: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult::default();
    let mut in_dist = false;
    let mut got_rate = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Requests/sec:") {
            r.per_s = rest.trim().parse().with_context(|| format!("wrk: {t:?}"))?;
            got_rate = true;
        } else if let Some(rest) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = rest.trim().parse().unwrap_or(0);
        } else if let Some(rest) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for (i, part) in rest.split(',').enumerate().take(4) {
                r.errors[i] = part.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
            }
        } else if t.starts_with("Latency Distribution") {
            in_dist = true;
        } else if in_dist {
            let mut f = t.split_whitespace();
            match (f.next().and_then(|p| p.strip_suffix('%')), f.next().and_then(duration_us)) {
                (Some(p), Some(us)) => r.percentiles_us.push((p.parse().unwrap_or(0.0), us)),
                _ => in_dist = false,
            }
        } else if let Some(rest) = t.strip_prefix("Latency") {
            // "Latency   180.25us  200.00us  10.00ms   95.00%": avg, stdev, max.
            r.max_us = rest.split_whitespace().nth(2).and_then(duration_us);
        }
        // "  123456 requests in 5.00s, 12.34MB read"
        if let Some((n, _)) = t.split_once(" requests in ") {
            r.requests = n.trim().parse().unwrap_or(0);
        }
    }
    if !got_rate {
        bail!("wrk printed no Requests/sec:\n{text}");
    }
    Ok(r)
}

/// The whole seconds wrk runs for `duration` (at least 1).
pub fn seconds(duration: Duration) -> u64 {
    duration.as_secs_f64().round().max(1.0) as u64
}

/// Runs wrk from namespace `ns` at `target` for `duration` (whole seconds,
/// at least 1): `threads` threads, `conns` connections; `close`: a
/// connection per request.
pub fn run(
    ns: &str,
    target: SocketAddrV4,
    threads: usize,
    conns: usize,
    duration: Duration,
    close: bool,
) -> anyhow::Result<WrkResult> {
    let secs = seconds(duration);
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", ns, "wrk", "--latency"]);
    c.arg(format!("-t{}", threads.clamp(1, conns.max(1))));
    c.arg(format!("-c{}", conns.max(1)));
    c.arg(format!("-d{secs}s"));
    if close {
        c.args(["-H", "Connection: close"]);
    }
    c.arg(format!("http://{target}/"));
    let out = c.output().map_err(|e| anyhow!("running wrk ({e}): apt-get install wrk"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed ({}): {}{}", out.status, text, String::from_utf8_lossy(&out.stderr));
    }
    parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "Running 5s test @ http://198.18.0.2/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   410.25us  300.10us  12.50ms   91.00%
    Req/Sec    75.00k     5.00k   80.00k    70.00%
  Latency Distribution
     50%  350.00us
     75%  450.00us
     90%  600.00us
     99%    1.20ms
  741234 requests in 5.00s, 100.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 2
Requests/sec: 148246.80
Transfer/sec:     20.00MB
";

    #[test]
    fn wrk_output_parses() {
        let r = parse(OUT).unwrap();
        assert_eq!(r.requests, 741_234);
        assert!((r.per_s - 148_246.8).abs() < 1e-6);
        assert_eq!((r.non_2xx, r.errors), (2, [0, 3, 0, 1]));
        assert_eq!(r.percentiles_us, vec![(50.0, 350.0), (75.0, 450.0), (90.0, 600.0), (99.0, 1200.0)]);
        assert_eq!(r.max_us, Some(12_500.0));
        assert!(parse("garbage").is_err());
        assert_eq!(duration_us("2.00s"), Some(2e6));
    }
}
