//! `sluicectl stats --watch`: a snapshot every interval until Ctrl-C (or until
//! the daemon stops answering, which is an error).
use crate::render::render_stats;
use sluice_engine::control::client::ClientError;
use sluice_engine::control::protocol::StatsSnapshot;
use std::io::Write;
use std::time::{Duration, Instant};

/// Moves the cursor home and clears the terminal.
pub const CLEAR: &str = "\x1b[H\x1b[2J";

/// How to watch.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Time between snapshots.
    pub interval: Duration,
    /// One compact JSON object per line instead of tables.
    pub json: bool,
    /// Clear the screen before each frame (stdout is a terminal); otherwise
    /// frames are separated by a blank line.
    pub clear: bool,
}

/// Fetches and prints snapshots every `opts.interval`, `limit` times or
/// forever. Returns the first fetch error (the daemon went away) or output
/// error (e.g. a closed pipe).
pub fn run<W: Write>(
    out: &mut W,
    opts: &WatchOptions,
    limit: Option<u64>,
    mut fetch: impl FnMut() -> Result<StatsSnapshot, ClientError>,
) -> anyhow::Result<()> {
    let mut prev: Option<StatsSnapshot> = None;
    let mut shown = 0u64;
    let mut next = Instant::now();
    loop {
        let snap = fetch()?;
        let frame = if opts.json {
            let mut line = serde_json::to_string(&snap).map_err(|e| anyhow::anyhow!("cannot encode JSON: {e}"))?;
            line.push('\n');
            line
        } else {
            let mut f = String::new();
            if opts.clear {
                f.push_str(CLEAR);
            } else if shown > 0 {
                f.push('\n');
            }
            f.push_str(&format!("every {}s, Ctrl-C to quit", seconds(opts.interval)));
            f.push_str(if prev.is_none() { " (rates from the next refresh)\n" } else { "\n" });
            f.push_str(&render_stats(&snap, prev.as_ref()));
            f
        };
        // A bare io::Error: main treats a closed stdout as a quiet exit.
        out.write_all(frame.as_bytes())?;
        out.flush()?;
        shown += 1;
        if limit.is_some_and(|l| shown >= l) {
            return Ok(());
        }
        prev = Some(snap);
        next += opts.interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // The daemon was slow to answer: keep the interval from now on.
            next = now;
        }
    }
}

/// "1", "0.2", "0.15": at most two decimals, no trailing zeros.
fn seconds(d: Duration) -> String {
    let s = format!("{:.2}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(json: bool, clear: bool) -> WatchOptions {
        WatchOptions { interval: Duration::from_millis(10), json, clear }
    }

    /// Snapshots one second of uptime and 1000 packets apart.
    fn ticking() -> impl FnMut() -> Result<StatsSnapshot, ClientError> {
        let mut n = 0u64;
        move || {
            n += 1;
            let mut s = StatsSnapshot { uptime_s: n as f64, ..Default::default() };
            s.total.counters.insert("rx_packets".into(), n * 1000);
            Ok(s)
        }
    }

    #[test]
    fn frames_are_separated_by_blank_lines_and_show_rates_after_the_first() {
        let mut out = Vec::new();
        run(&mut out, &opts(false, false), Some(3), ticking()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches("every 0.01s, Ctrl-C to quit").count(), 3);
        assert_eq!(out.matches("\n\nevery").count(), 2, "blank line between frames");
        assert!(!out.contains(CLEAR));
        assert_eq!(out.matches("rates over 1.0s: rx 1000/s").count(), 2, "{out}");
    }

    #[test]
    fn interval_text() {
        assert_eq!(seconds(Duration::from_secs(1)), "1");
        assert_eq!(seconds(Duration::from_secs(60)), "60");
        assert_eq!(seconds(Duration::from_millis(200)), "0.2");
        assert_eq!(seconds(Duration::from_millis(150)), "0.15");
    }

    #[test]
    fn clears_the_screen_on_a_terminal() {
        let mut out = Vec::new();
        run(&mut out, &opts(false, true), Some(2), ticking()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with(CLEAR));
        assert_eq!(out.matches(CLEAR).count(), 2);
    }

    #[test]
    fn json_lines() {
        let mut out = Vec::new();
        run(&mut out, &opts(true, true), Some(3), ticking()).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<StatsSnapshot> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2].uptime_s, 3.0);
        assert!(!out.contains(CLEAR));
    }

    #[test]
    fn a_failing_daemon_ends_the_watch_with_its_error() {
        let mut tick = ticking();
        let mut calls = 0;
        let fetch = move || {
            calls += 1;
            if calls == 3 {
                Err(ClientError::Daemon("gone".into()))
            } else {
                tick()
            }
        };
        let mut out = Vec::new();
        let err = run(&mut out, &opts(false, false), None, fetch).unwrap_err();
        assert_eq!(err.to_string(), "sluiced: gone");
        assert_eq!(String::from_utf8(out).unwrap().matches("every").count(), 2);
    }
}
