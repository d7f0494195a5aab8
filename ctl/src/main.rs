//! sluicectl: query a running sluiced over its control socket.
//!
//! ```text
//! sluicectl [--socket PATH] status [--json]
//! sluicectl [--socket PATH] stats [--json] [--watch] [--interval SECS]
//! sluicectl [--socket PATH] services [--json]
//! ```
//! Errors print one line on stderr and exit 1; bad arguments exit 2.
mod human;
mod render;
mod table;
mod watch;

use anyhow::{anyhow, Result};
use clap::{Parser, Subcommand};
use sluice_engine::control::client::{self, ClientError};
use sluice_engine::control::protocol::{Command, ReplyBody, StatsSnapshot};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Socket used when neither `--socket` nor `SLUICE_CTL_SOCKET` is given.
const DEFAULT_SOCKET: &str = "/run/sluice/ctl.sock";
/// Environment variable naming the socket when `--socket` is absent.
const SOCKET_ENV: &str = "SLUICE_CTL_SOCKET";
/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(name = "sluicectl", version, about = "Query a running sluiced over its control socket")]
struct Cli {
    /// Control socket of sluiced [default: $SLUICE_CTL_SOCKET, else /run/sluice/ctl.sock]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Daemon version, uptime, interface, queues, modes and services
    Status {
        /// Print the reply as pretty JSON
        #[arg(long)]
        json: bool,
    },
    /// Counters, rings, frames and drops per core and in total
    Stats {
        /// Print the snapshot as pretty JSON (with --watch: one compact object per line)
        #[arg(long)]
        json: bool,
        /// Refresh until Ctrl-C, with rates
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch (0.1 to 60)
        #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_interval, requires = "watch")]
        interval: Duration,
    },
    /// The configured services
    Services {
        /// Print the reply as pretty JSON
        #[arg(long)]
        json: bool,
    },
    /// The TCP connections, with state, RTT, windows and queues
    Conns {
        /// Print the reply as pretty JSON
        #[arg(long)]
        json: bool,
        /// List at most this many (1 to 10000)
        #[arg(long, value_name = "N", default_value = "1000", value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// Show the state machine's internals (sequence space, scoreboard, timers) for each
        #[arg(long)]
        detail: bool,
        /// Only this service's connections (its name in the config)
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Only connections in this state (established, syn-received, fin-wait-1, fin-wait-2,
        /// close-wait, closing, last-ack, time-wait)
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.1..=60.0).contains(&secs) {
        return Err(format!("{secs} is outside 0.1..=60 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `--socket`, else `$SLUICE_CTL_SOCKET` (if not empty), else the default.
fn socket_path(flag: Option<PathBuf>, env: Option<std::ffi::OsString>) -> PathBuf {
    flag.or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from)).unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

fn main() {
    let cli = Cli::parse(); // usage errors exit 2
    let socket = socket_path(cli.socket, std::env::var_os(SOCKET_ENV));
    if let Err(e) = run(&socket, cli.command) {
        // stdout closed early (`sluicectl stats --watch | head`): not an error.
        if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) {
            return;
        }
        eprintln!("sluicectl: {e:#}");
        std::process::exit(1);
    }
}

fn run(socket: &Path, cmd: Cmd) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let text = match cmd {
        Cmd::Status { json } => match ask(socket, Command::Status)? {
            ReplyBody::Status(s) if json => pretty(serde_json::to_string_pretty(&s))?,
            ReplyBody::Status(s) => render::render_status(&s),
            other => return Err(unexpected("status", &other)),
        },
        Cmd::Services { json } => match ask(socket, Command::Services)? {
            ReplyBody::Services(s) if json => pretty(serde_json::to_string_pretty(&s))?,
            ReplyBody::Services(s) => render::render_services(&s),
            other => return Err(unexpected("services", &other)),
        },
        Cmd::Conns { json, limit, service, state, detail } => {
            match ask(socket, Command::Conns { limit: Some(limit), service, state, detail })? {
                ReplyBody::Conns(c) if json => pretty(serde_json::to_string_pretty(&c))?,
                ReplyBody::Conns(c) => render::render_conns(&c),
                ReplyBody::Error(e) => return Err(anyhow!("{e}")),
                other => return Err(unexpected("conns", &other)),
            }
        }
        Cmd::Stats { json, watch: true, interval } => {
            let opts = watch::WatchOptions { interval, json, clear: !json && std::io::stdout().is_terminal() };
            return watch::run(&mut out, &opts, None, || stats(socket));
        }
        Cmd::Stats { json, .. } => {
            let s = stats(socket)?;
            if json {
                pretty(serde_json::to_string_pretty(&s))?
            } else {
                render::render_stats(&s, None)
            }
        }
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

fn ask(socket: &Path, cmd: Command) -> Result<ReplyBody, ClientError> {
    client::request(socket, cmd, TIMEOUT)
}

fn stats(socket: &Path) -> Result<StatsSnapshot, ClientError> {
    match ask(socket, Command::Stats)? {
        ReplyBody::Stats(s) => Ok(s),
        other => Err(ClientError::BadReply(format!("expected stats, got {}", kind(&other)))),
    }
}

fn kind(b: &ReplyBody) -> &'static str {
    match b {
        ReplyBody::Status(_) => "status",
        ReplyBody::Stats(_) => "stats",
        ReplyBody::Services(_) => "services",
        ReplyBody::Conns(_) => "conns",
        ReplyBody::Error(_) => "error",
    }
}

fn unexpected(want: &str, got: &ReplyBody) -> anyhow::Error {
    anyhow!("bad reply from sluiced: expected {want}, got {}", kind(got))
}

/// The encoded JSON with a final newline.
fn pretty(encoded: serde_json::Result<String>) -> Result<String> {
    let mut s = encoded.map_err(|e| anyhow!("cannot encode JSON: {e}"))?;
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn socket_flag_beats_env_beats_default() {
        let p = |f: Option<&str>, e: Option<&str>| socket_path(f.map(PathBuf::from), e.map(Into::into));
        assert_eq!(p(Some("/a"), Some("/b")), PathBuf::from("/a"));
        assert_eq!(p(None, Some("/b")), PathBuf::from("/b"));
        assert_eq!(p(None, Some("")), PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(p(None, None), PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn interval_bounds() {
        assert_eq!(parse_interval("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_interval("60"), Ok(Duration::from_secs(60)));
        assert!(parse_interval("0.05").is_err());
        assert!(parse_interval("61").is_err());
        assert!(parse_interval("NaN").is_err());
        assert!(parse_interval("x").is_err());
    }

    #[test]
    fn parses_the_promised_interface() {
        let c = Cli::try_parse_from(["sluicectl", "--socket", "/s", "stats", "--watch", "--interval", "0.5"]).unwrap();
        assert_eq!(c.socket, Some(PathBuf::from("/s")));
        assert!(
            matches!(c.command, Cmd::Stats { watch: true, json: false, interval } if interval == Duration::from_millis(500))
        );
        let c = Cli::try_parse_from(["sluicectl", "stats"]).unwrap();
        assert!(matches!(c.command, Cmd::Stats { watch: false, interval, .. } if interval == Duration::from_secs(1)));
        let c = Cli::try_parse_from(["sluicectl", "status", "--json", "--socket", "/t"]).unwrap();
        assert_eq!(c.socket, Some(PathBuf::from("/t")));
        assert!(Cli::try_parse_from(["sluicectl", "stats", "--interval", "2"]).is_err(), "--interval needs --watch");
        assert!(matches!(Cli::try_parse_from(["sluicectl", "conns"]).unwrap().command, Cmd::Conns { limit: 1000, .. }));
        assert!(Cli::try_parse_from(["sluicectl", "conns", "--limit", "0"]).is_err());
        assert!(Cli::try_parse_from(["sluicectl", "conns", "--limit", "10001"]).is_err());
        assert!(Cli::try_parse_from(["sluicectl", "frobnicate"]).is_err());
        assert!(Cli::try_parse_from(["sluicectl"]).is_err());
    }
}
