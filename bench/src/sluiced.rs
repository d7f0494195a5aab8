//! The real `sluiced` as a benchmark target: started in the lab's server
//! namespace with a temporary config, asked for its stats over the control
//! socket, stopped with SIGTERM by PID.
use crate::interrupt::StopFlag;
use anyhow::{anyhow, bail, Context};
use sluice_engine::control::client;
use sluice_engine::control::protocol::{Command, ReplyBody, StatsSnapshot, Status};
use sluice_lab::{Lab, Side};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long sluiced may take to answer on its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long it may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// sluiced's default `engine.spin_us`.
pub const DEFAULT_SPIN_US: u32 = 3;
/// sluiced's default `engine.spin_iterations`.
pub const DEFAULT_SPIN: u32 = 200;

/// Engine settings a run varies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuning {
    /// `engine.poll` (adaptive when `None`).
    pub poll: Option<sluice_engine::config::PollMode>,
    /// `engine.spin_iterations` (sluiced's default when `None`).
    pub spin: Option<u32>,
    /// `engine.spin_us` (sluiced's default when `None`).
    pub spin_us: Option<u32>,
    /// `engine.flow_owner = "hash"` instead of the default learned owners.
    pub hashed_owners: bool,
    /// Serve TCP echo instead of UDP echo.
    pub tcp: bool,
    /// Serve HTTP (the default answer, keep-alive) instead of echo.
    pub http: bool,
    /// `tcp.max_connections` (sluiced's default when `None`).
    pub max_connections: Option<u32>,
}

impl Tuning {
    fn engine_lines(&self) -> String {
        use sluice_engine::config::PollMode;
        let poll = match self.poll.unwrap_or(PollMode::Adaptive) {
            PollMode::Adaptive => "adaptive",
            PollMode::Interrupt => "interrupt",
            PollMode::Busy => "busy",
        };
        let mut s = format!("poll = \"{poll}\"\n");
        if let Some(n) = self.spin {
            s.push_str(&format!("spin_iterations = {n}\n"));
        }
        if let Some(n) = self.spin_us {
            s.push_str(&format!("spin_us = {n}\n"));
        }
        if self.hashed_owners {
            s.push_str("flow_owner = \"hash\"\n");
        }
        s
    }
}

/// The config sluiced gets: UDP (or, with `tuning.tcp`, TCP) echo on `listen`, `queues` queues of
/// `interface`, `tuning`'s poll mode (adaptive by default) and the rest of it.
pub fn config_text(interface: &str, queues: u32, socket: &Path, listen: SocketAddrV4, tuning: Tuning) -> String {
    format!(
        r#"# written by sluice-bench
[engine]
interface = "{interface}"
queues = {queues}
control_socket = "{}"
frames = 8192
{extra}{tcp}
[[service]]
name = "{kind}"
proto = "{proto}"
listen = "{listen}"
kind = "{kind}"
"#,
        socket.display(),
        extra = tuning.engine_lines(),
        tcp = tuning.max_connections.map(|n| format!("[tcp]\nmax_connections = {n}\n")).unwrap_or_default(),
        proto = if tuning.tcp || tuning.http { "tcp" } else { "udp" },
        kind = if tuning.http { "http" } else { "echo" },
    )
}

/// The `sluiced` next to the running executable.
pub fn default_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("sluiced"))
}

/// The sluiced a scenario runs: `given` (`--sluiced`), else the one next
/// to this executable; when `needed` (a sluice target is listed) it must
/// be there.
pub fn locate(given: Option<&Path>, needed: bool) -> anyhow::Result<PathBuf> {
    let p = match given {
        Some(p) => p.to_path_buf(),
        None => default_path().ok_or_else(|| anyhow!("cannot locate this executable"))?,
    };
    if needed && !p.is_file() {
        bail!(
            "no sluiced at {}: build it (cargo build --release -p sluice-engine), pass --sluiced PATH, \
             or leave sluice out of --targets",
            p.display()
        );
    }
    Ok(p)
}

/// A running sluiced. Dropping it stops it (SIGTERM, then SIGKILL) and
/// removes its temporary directory.
pub struct Sluiced {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
}

impl Sluiced {
    /// Starts `binary` in the server namespace of `lab` serving UDP echo on
    /// `listen` and waits until its control socket answers.
    pub fn start(
        lab: &Lab,
        binary: &Path,
        listen: SocketAddrV4,
        tuning: Tuning,
        stop: &StopFlag,
    ) -> anyhow::Result<Sluiced> {
        static N: AtomicU32 = AtomicU32::new(0);
        if !binary.is_file() {
            bail!("no sluiced at {}", binary.display());
        }
        let dir = std::env::temp_dir().join(format!(
            "sluice-bench-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let socket = dir.join("ctl.sock");
        let cfg = dir.join("sluiced.toml");
        let log = dir.join("sluiced.log");
        let mut me = Sluiced { child: None, dir, socket, log };
        let text = config_text(lab.interface(Side::Server), lab.server_rx_queues(), &me.socket, listen, tuning);
        std::fs::write(&cfg, text).context("writing the sluiced config")?;
        let stderr = std::fs::File::create(&me.log).context("creating the sluiced log")?;
        let child = lab
            .command_in(Side::Server, &binary.to_string_lossy())
            .arg("--config")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        me.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Ready once the program is attached (the control socket answers
            // a moment before that).
            let attached = matches!(
                client::request(&me.socket, Command::Status, Duration::from_secs(2)),
                Ok(ReplyBody::Status(s)) if s.xdp_mode == "driver" || s.xdp_mode == "skb"
            );
            if attached {
                return Ok(me);
            }
            if let Some(st) = me.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                me.child = None;
                bail!("sluiced exited at start ({st}): {}", me.log_tail());
            }
            if Instant::now() >= deadline {
                bail!("sluiced did not answer on {} within {START_TIMEOUT:?}: {}", me.socket.display(), me.log_tail());
            }
            stop.sleep(Duration::from_millis(50))?;
        }
    }

    /// The PID of the daemon (`ip netns exec` execs it in place).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Its status.
    pub fn status(&self) -> anyhow::Result<Status> {
        match client::request(&self.socket, Command::Status, REQUEST_TIMEOUT)? {
            ReplyBody::Status(s) => Ok(s),
            other => Err(anyhow!("unexpected reply to status: {other:?}")),
        }
    }

    /// Its stats.
    pub fn stats(&self) -> anyhow::Result<StatsSnapshot> {
        match client::request(&self.socket, Command::Stats, REQUEST_TIMEOUT)? {
            ReplyBody::Stats(s) => Ok(s),
            other => Err(anyhow!("unexpected reply to stats: {other:?}")),
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n");
        if tail.is_empty() {
            "(empty log)".into()
        } else {
            format!("log:\n{tail}")
        }
    }

    /// SIGTERM by PID, wait (SIGKILL after [`STOP_TIMEOUT`]); returns how it
    /// exited.
    pub fn stop(mut self) -> anyhow::Result<ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else { bail!("sluiced is not running") };
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).context("SIGTERM to sluiced")?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(st) = child.try_wait()? {
                return Ok(st);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let st = child.wait()?;
                bail!("sluiced did not exit within {STOP_TIMEOUT:?} of SIGTERM; killed ({st})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sluiced {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Err(e) = self.terminate() {
                eprintln!("sluice-bench: stopping sluiced: {e:#}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn config_parses_with_the_engine() {
        let listen = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 7);
        let text = config_text("sluice0", 2, Path::new("/tmp/x/ctl.sock"), listen, Tuning::default());
        let cfg = sluice_engine::config::Config::parse(&text, "bench").expect("valid config");
        assert_eq!(cfg.engine.interface, "sluice0");
        assert_eq!(cfg.engine.queues, Some(2));
        assert_eq!(cfg.engine.poll, sluice_engine::config::PollMode::Adaptive);
        assert_eq!(cfg.engine.spin_iterations, DEFAULT_SPIN, "the bench's idea of the default is sluiced's");
        assert_eq!(cfg.engine.spin_us, DEFAULT_SPIN_US, "the bench's idea of the default is sluiced's");
        assert_eq!(cfg.services.len(), 1);
        assert_eq!(cfg.engine.flow_owner, sluice_engine::config::FlowOwner::Learned);
        let tuning = Tuning {
            poll: Some(sluice_engine::config::PollMode::Interrupt),
            spin: Some(0),
            spin_us: Some(7),
            hashed_owners: true,
            tcp: true,
            http: false,
            max_connections: Some(1_100_000),
        };
        let http = config_text("sluice0", 2, Path::new("/tmp/x/ctl.sock"), listen, Tuning { http: true, ..tuning });
        let cfg = sluice_engine::config::Config::parse(&http, "bench").expect("valid config");
        assert_eq!(cfg.services[0].kind, sluice_engine::config::ServiceKind::Http);
        assert_eq!(cfg.services[0].proto, sluice_engine::config::Proto::Tcp);
        let text = config_text("sluice0", 2, Path::new("/tmp/x/ctl.sock"), listen, tuning);
        let cfg = sluice_engine::config::Config::parse(&text, "bench").expect("valid config");
        assert_eq!(cfg.engine.spin_iterations, 0);
        assert_eq!(cfg.engine.spin_us, 7);
        assert_eq!(cfg.engine.poll, sluice_engine::config::PollMode::Interrupt);
        assert_eq!(cfg.services[0].proto, sluice_engine::config::Proto::Tcp);
        assert_eq!(cfg.engine.flow_owner, sluice_engine::config::FlowOwner::Hash);
        assert_eq!(cfg.tcp.max_connections, 1_100_000);
    }
}
